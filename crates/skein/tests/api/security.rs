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

/// Fifty parallel password changes: every one is answered, none fails for lack of memory
/// (hashing is bounded by a semaphore; the unit test in `password.rs` checks the bound).
#[tokio::test]
async fn fifty_parallel_password_changes_are_all_answered() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada").await;
    let body = json!({"current_password": "wrong password", "new_password": "another password"});
    let calls = (0..50).map(|_| app.put("/api/v1/user/password", Some(&ada.access), body.clone()));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.error_code() == "wrong_password"));
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
