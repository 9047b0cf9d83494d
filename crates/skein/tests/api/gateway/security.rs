//! Security hardening (issue #11): logins a stranger cannot lock, a first run that cannot be
//! taken over, the refresh cookie, security headers, `/internal` off the public port, a bound
//! on invalid API keys, and private files at rest.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{
    Backend, PASSWORD, SETUP_TOKEN, TestApp, both_backends, on_both_backends, redis_url,
};

/// A login from `ip` (the server trusts `X-Forwarded-For` in these tests, as behind a proxy).
async fn login_from(app: &TestApp, ip: &str, login: &str, password: &str) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"login": login, "password": password})),
    )
    .await
}

async fn behind_proxy(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| c.server.trust_forwarded_for = true).await
}

on_both_backends! {
    async fn a_strangers_thousand_bad_passwords_do_not_lock_the_owner_out(backend) {
        let app = behind_proxy(backend).await;
        app.register("ada").await;
        let mut refused = 0;
        let mut checked = 0;
        for i in 0..1000 {
            let r = login_from(&app, "203.0.113.7", "ada", &format!("guess number {i}")).await;
            match r.status {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(r.error_code(), "login_locked");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {}", r.text),
            }
        }
        assert!(checked <= 8, "the stranger had {checked} passwords checked");
        assert_eq!(refused + checked, 1000);
        // The owner, from elsewhere, signs in at once.
        let owner = login_from(&app, "198.51.100.20", "ada", PASSWORD).await;
        assert_eq!(owner.status, StatusCode::OK, "{}", owner.text);
        // The stranger's address is still made to wait, even with the right password.
        let stranger = login_from(&app, "203.0.113.7", "ada", PASSWORD).await;
        assert_eq!((stranger.status, stranger.error_code()), (StatusCode::TOO_MANY_REQUESTS, "login_locked"));
        let wait: u64 = stranger.header("retry-after").unwrap().parse().unwrap();
        assert!(wait >= 1, "retry-after {wait}");
    }
}

#[tokio::test]
async fn login_delays_grow_and_ipv6_is_keyed_by_its_64() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.trust_forwarded_for = true;
        c.limits.login_failures_per_account = 2;
    })
    .await;
    app.register("ada").await;
    for _ in 0..2 {
        let r = login_from(&app, "2001:db8:1:2::1", "ada", "wrong wrong").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Another address in the same /64 is the same client.
    let same = login_from(&app, "2001:db8:1:2::ffff", "ada", PASSWORD).await;
    assert_eq!(
        (same.status, same.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "login_locked")
    );
    let first_wait: u64 = same.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&first_wait), "first wait {first_wait}");
    // A neighbouring /64 is someone else.
    let other = login_from(&app, "2001:db8:1:3::1", "ada", PASSWORD).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    // After the wait, a further failure doubles it.
    tokio::time::sleep(std::time::Duration::from_secs(first_wait)).await;
    let r = login_from(&app, "2001:db8:1:2::1", "ada", "wrong again").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let longer = login_from(&app, "2001:db8:1:2::1", "ada", PASSWORD).await;
    let second_wait: u64 = longer.header("retry-after").unwrap().parse().unwrap();
    assert!((6..=10).contains(&second_wait), "second wait {second_wait}");
}

/// The delays live in Redis, so a second instance enforces them too.
#[tokio::test]
async fn login_delays_hold_across_instances_with_redis() {
    let prefix = format!("skein-test-{}:", uuid::Uuid::now_v7().simple());
    let one = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.trust_forwarded_for = true;
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = prefix.clone();
        c.limits.login_failures_per_account = 2;
    })
    .await;
    let two = one.sibling().await;
    one.register("ada").await;
    login_from(&one, "203.0.113.9", "ada", "nope nope").await;
    login_from(&two, "203.0.113.9", "ada", "nope nope").await;
    assert_eq!(
        login_from(&one, "203.0.113.9", "ada", PASSWORD)
            .await
            .error_code(),
        "login_locked"
    );
    assert_eq!(
        login_from(&two, "203.0.113.9", "ada", PASSWORD)
            .await
            .error_code(),
        "login_locked"
    );
    assert_eq!(
        login_from(&two, "203.0.113.10", "ada", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn password_changes_have_their_own_strict_limit() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.limits.password_changes_per_user_per_hour = 3;
    })
    .await;
    let ada = app.register("ada").await;
    let bob = app.register("bob").await;
    for _ in 0..3 {
        let r = app
            .put(
                "/api/v1/user/password",
                Some(&ada.access),
                json!({"current_password": "wrong password", "new_password": "another password"}),
            )
            .await;
        assert_eq!(r.error_code(), "wrong_password");
    }
    let limited = app
        .put(
            "/api/v1/user/password",
            Some(&ada.access),
            json!({"current_password": PASSWORD, "new_password": "another password"}),
        )
        .await;
    assert_eq!(
        (limited.status, limited.error_code()),
        (StatusCode::TOO_MANY_REQUESTS, "password_change_limited")
    );
    assert!(limited.header("retry-after").is_some());
    let other = app
        .put(
            "/api/v1/user/password",
            Some(&bob.access),
            json!({"current_password": PASSWORD, "new_password": "another password"}),
        )
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "bob has his own budget: {}",
        other.text
    );
}

/// The peak resident memory of this test process (the server runs in it), in KiB.
#[cfg(target_os = "linux")]
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Fifty parallel password changes stay under a memory bound: each argon2 run takes
/// `argon2_memory_kib`, and only one per core runs at once (without the semaphore all fifty
/// would run together, 50 × 32 MiB).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn fifty_parallel_password_changes_stay_under_a_memory_bound() {
    const HASH_KIB: u64 = 32 * 1024;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth.argon2_memory_kib = HASH_KIB as u32;
        c.auth.argon2_iterations = 1;
    })
    .await;
    let ada = app.register("ada").await;
    let before = peak_rss_kib();
    let body = json!({"current_password": "wrong password", "new_password": "another password"});
    let calls = (0..50).map(|_| app.put("/api/v1/user/password", Some(&ada.access), body.clone()));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.error_code() == "wrong_password"));
    let grown = peak_rss_kib().saturating_sub(before);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let bound = (cores + 1) * HASH_KIB + 64 * 1024;
    assert!(
        grown <= bound,
        "peak memory grew by {} MiB for 50 parallel changes (bound {} MiB on {cores} cores)",
        grown / 1024,
        bound / 1024
    );
}

fn register_body(username: &str, token: Option<&str>) -> Value {
    let mut body = json!({"username": username, "password": PASSWORD});
    if let Some(token) = token {
        body["setup_token"] = json!(token);
    }
    body
}

both_backends! {
    async fn the_first_account_needs_the_setup_token(app) {
        let setup = app.get("/api/v1/auth/setup", None).await;
        assert_eq!((setup.status, setup.json["needs_setup"].as_bool()), (StatusCode::OK, Some(true)));
        let none = app.post("/api/v1/auth/register", None, register_body("mallory", None)).await;
        assert_eq!((none.status, none.error_code()), (StatusCode::FORBIDDEN, "setup_token_required"), "{}", none.text);
        assert!(none.json["error"]["message"].as_str().unwrap().contains("setup token"));
        let wrong = app.post("/api/v1/auth/register", None, register_body("mallory", Some("not-the-token-at-all"))).await;
        assert_eq!((wrong.status, wrong.error_code()), (StatusCode::FORBIDDEN, "setup_token_required"));
        // Refused attempts claimed nothing: the owner with the token becomes root.
        let root = app.post("/api/v1/auth/register", None, register_body("owner", Some(SETUP_TOKEN))).await;
        assert_eq!(root.status, StatusCode::CREATED, "{}", root.text);
        assert_eq!(root.json["user"]["role"], "root");
        let setup = app.get("/api/v1/auth/setup", None).await;
        assert_eq!(setup.json["needs_setup"].as_bool(), Some(false));
        // From now on the field is ignored, right or wrong.
        let later = app.post("/api/v1/auth/register", None, register_body("ada", Some("stale token value"))).await;
        assert_eq!(later.status, StatusCode::CREATED, "{}", later.text);
        assert_eq!(later.json["user"]["role"], "user");
        let plain = app.post("/api/v1/auth/register", None, register_body("bob", None)).await;
        assert_eq!(plain.json["user"]["role"], "user");
    }
}

#[tokio::test]
async fn without_a_configured_token_a_random_one_is_made_and_logged() {
    // The token is made at build time and handed to `skein serve` to print; a server with no
    // configured token refuses even a guess that matches the test default.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.server.setup_token = None).await;
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            register_body("owner", Some(SETUP_TOKEN)),
        )
        .await;
    assert_eq!(r.error_code(), "setup_token_required");
}

fn set_cookie(r: &skein_testkit::Resp) -> String {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("skein_refresh="))
        .unwrap_or_default()
        .to_string()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

both_backends! {
    async fn the_refresh_token_lives_in_an_httponly_cookie_guarded_against_csrf(app) {
        app.register("ada").await;
        // The web app signs in with the CSRF header: the token is only in the cookie.
        let login = app.send(app.client.post(app.url("/api/v1/auth/login"))
            .header("x-skein-csrf", "1")
            .json(&json!({"login": "ada", "password": PASSWORD}))).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.text);
        let cookie = set_cookie(&login);
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/auth", "Max-Age="] {
            assert!(cookie.contains(flag), "{flag} missing: {cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag, or local use breaks");
        assert!(login.json.get("refresh_token").is_none(), "a page script could read it: {}", login.text);
        assert!(login.json["access_token"].as_str().is_some());
        let token = cookie_value(&cookie);
        assert!(token.starts_with("skr_"));

        // Refreshing with the cookie but without the header (a cross-site form) is refused.
        let forged = app.send(app.client.post(app.url("/api/v1/auth/refresh"))
            .header("cookie", format!("skein_refresh={token}"))
            .json(&json!({}))).await;
        assert_eq!((forged.status, forged.error_code()), (StatusCode::FORBIDDEN, "csrf_header_required"), "{}", forged.text);
        let forged_logout = app.send(app.client.post(app.url("/api/v1/auth/logout"))
            .header("cookie", format!("skein_refresh={token}"))).await;
        assert_eq!(forged_logout.error_code(), "csrf_header_required");

        // With the header it rotates, again only into the cookie.
        let refreshed = app.send(app.client.post(app.url("/api/v1/auth/refresh"))
            .header("cookie", format!("skein_refresh={token}"))
            .header("x-skein-csrf", "1")
            .json(&json!({}))).await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
        assert!(refreshed.json.get("refresh_token").is_none());
        let next = cookie_value(&set_cookie(&refreshed));
        assert!(next.starts_with("skr_") && next != token);
        let me = app.get("/api/v1/user/profile", refreshed.json["access_token"].as_str()).await;
        assert_eq!(me.status, StatusCode::OK);

        // Logout by cookie ends the session and clears the cookie.
        let out = app.send(app.client.post(app.url("/api/v1/auth/logout"))
            .header("cookie", format!("skein_refresh={next}"))
            .header("x-skein-csrf", "1")).await;
        assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text);
        assert!(set_cookie(&out).contains("Max-Age=0"));
        let after = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": next})).await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED);

        // API clients keep the token in the body, as before.
        let api = app.login("ada", PASSWORD).await;
        let body = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": api.refresh})).await;
        assert_eq!(body.status, StatusCode::OK);
        assert!(body.json["refresh_token"].as_str().is_some_and(|t| t.starts_with("skr_")));
    }
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_hsts_is_sent() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.register("ada").await;
    let r = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-proto", "https")
                .header("x-skein-csrf", "1")
                .json(&json!({"login": "ada", "password": PASSWORD})),
        )
        .await;
    assert!(set_cookie(&r).contains("; Secure"), "{}", set_cookie(&r));
    let hsts = r.header("strict-transport-security").unwrap_or_default();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    let plain = app.get("/healthz", None).await;
    assert!(plain.header("strict-transport-security").is_none());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let root = app.root().await;
    let answers = [
        app.get("/healthz", None).await,
        app.get("/api/v1/user/profile", Some(&root.access)).await,
        app.get("/api/v1/nope", None).await,
        app.get("/v1/models", Some("sk-wrong")).await,
        app.get("/", None).await,
        app.get("/api/docs", None).await,
    ];
    for r in &answers {
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            r.status
        );
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        assert_eq!(
            r.header("permissions-policy"),
            Some("camera=(), geolocation=(), microphone=(self)")
        );
    }
}

#[tokio::test]
async fn the_app_csp_allows_images_from_this_origin_only() {
    assert!(
        skein::web::CSP.contains("img-src 'self' data: blob:;"),
        "{}",
        skein::web::CSP
    );
    assert!(!skein::web::CSP.contains("https:"));
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.get("/", None).await;
    if skein::web::is_built() {
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("img-src 'self' data: blob:;"), "{csp}");
        assert!(!csp.contains("https:"), "{csp}");
    }
}

#[tokio::test]
async fn the_app_csp_lets_thumbnails_come_from_the_configured_cdn() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.file.public_base_url = Some("https://cdn.example.com".into());
    })
    .await;
    let page = app.get("/files", None).await;
    if skein::web::is_built() {
        let csp = page.header("content-security-policy").unwrap();
        assert!(
            csp.contains("img-src 'self' data: blob: https://cdn.example.com;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
    }
}

#[tokio::test]
async fn the_api_reference_loads_no_third_party_script() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.get("/api/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("https://"), "{}", page.text);
    assert!(page.text.contains("src=\"/api/docs/viewer.js\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let script = app.get("/api/docs/viewer.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text.contains("/api/openapi.json") && !script.text.contains("https://"));
}

#[tokio::test]
async fn internal_routes_are_absent_on_the_public_port() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.billing.internal_token = Some(skein_core::secret::Secret::new(crate::billing::TOKEN));
        c.server.internal_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let root = app.root().await;
    let body = json!({"user_id": root.id, "amount": 0});
    let public = app
        .send(
            app.client
                .post(app.url("/internal/billing/reserve"))
                .bearer_auth(crate::billing::TOKEN)
                .json(&body),
        )
        .await;
    assert_eq!(public.status, StatusCode::NOT_FOUND, "{}", public.text);
    let internal = app
        .send(
            app.client
                .post(app.internal_url("/internal/billing/reserve"))
                .bearer_auth(crate::billing::TOKEN)
                .json(&json!({"user_id": root.id, "amount": 1})),
        )
        .await;
    assert_ne!(internal.status, StatusCode::NOT_FOUND, "{}", internal.text);
    assert!(
        internal.status.is_client_error() || internal.status.is_success(),
        "{}",
        internal.text
    );
    // The internal listener serves nothing public.
    let api = app
        .send(
            app.client
                .get(app.internal_url("/api/v1/user/profile"))
                .bearer_auth(&root.access),
        )
        .await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_flood_of_invalid_keys_is_cut_off_per_ip_before_lookup() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.trust_forwarded_for = true;
        c.limits.invalid_keys_per_ip_per_minute = 10;
    })
    .await;
    let ada = app.register("ada").await;
    let key = app
        .post("/api/v1/keys", Some(&ada.access), json!({"name": "k"}))
        .await;
    let secret = key.json["key"].as_str().unwrap().to_string();
    let models = |ip: &'static str, key: String| {
        app.send(
            app.client
                .get(app.url("/v1/models"))
                .header("x-forwarded-for", ip)
                .bearer_auth(key),
        )
    };
    let mut statuses = Vec::new();
    for i in 0..200 {
        let r = models("203.0.113.66", format!("sk-{i:048}")).await;
        statuses.push(r.status);
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        unauthorized <= 11,
        "{unauthorized} invalid keys were looked up"
    );
    assert_eq!(unauthorized + limited, 200);
    let flooded = models("203.0.113.66", secret.clone()).await;
    assert_eq!(
        flooded.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the flooding address waits"
    );
    assert_eq!(
        flooded.json["error"]["type"], "rate_limit_error",
        "{}",
        flooded.text
    );
    assert!(flooded.header("retry-after").is_some());
    let elsewhere = models("198.51.100.5", secret).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text);
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.data_dir = c.data_dir.join("fresh").join("data");
    })
    .await;
    app.register("ada").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = &app.config.data_dir;
    assert_eq!(mode(dir), 0o700, "data dir");
    assert_eq!(mode(&dir.join("skein.db")), 0o600, "database");
    for extra in [
        "skein.db-wal",
        "skein.db-shm",
        "jwt_secret",
        "relay_secret_key",
    ] {
        let path = dir.join(extra);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{extra}");
        }
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_setup_route_and_optional_refresh_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/api/openapi.json", None).await;
    assert!(doc.json["paths"]["/api/v1/auth/setup"]["get"].is_object());
    let tokens = &doc.json["components"]["schemas"]["TokenResponse"];
    let required: Vec<&str> = tokens["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        required.contains(&"access_token") && !required.contains(&"refresh_token"),
        "{required:?}"
    );
    let register = &doc.json["components"]["schemas"]["RegisterRequest"]["properties"];
    assert!(register["setup_token"].is_object());
}
