//! Secrets people give Skein are sealed in the database: a sign-in provider's client secret
//! (added through the admin API) and TOTP secrets. These tests read the raw rows, put plain
//! rows back as an older Skein wrote them, restart, and check that the rows are sealed again
//! and that sign-in with the provider and with a second factor still work; then rotate the key.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use skein_testkit::mock_oauth::{FakePerson, MockOAuth};
use skein_testkit::{PASSWORD, Resp, TestApp, on_both_backends};

const PUBLIC_URL: &str = "http://skein.test";
const CLIENT_SECRET: &str = "gh-secret-at-rest-4f1c";

/// One stored value, read straight from the database.
async fn raw(app: &TestApp, sql: &str, key: &str) -> String {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let value: String = skein_db::sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    value
}

/// Writes a value straight into the database (an older Skein's plain row).
async fn overwrite(app: &TestApp, sql: &str, key: &str, value: &str) {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    let done = skein_db::sqlx::query(sql)
        .bind(key)
        .bind(value)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    db.close().await;
}

async fn provider_secret(app: &TestApp) -> String {
    raw(
        app,
        "SELECT client_secret FROM oauth_providers WHERE slug = $1",
        "gh",
    )
    .await
}

async fn totp_secret(app: &TestApp, user_id: &str) -> String {
    raw(
        app,
        "SELECT secret FROM user_totp WHERE user_id = $1",
        user_id,
    )
    .await
}

/// A whole GitHub sign-in through `app` and the fake (which checks the client secret).
async fn github_sign_in(app: &TestApp) -> Resp {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .post(app.url("/api/v1/auth/oauth/gh/start"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .find_map(|v| {
            v.to_str()
                .unwrap()
                .strip_prefix("skein_oauth=")
                .map(|r| r.split(';').next().unwrap().to_string())
        })
        .unwrap();
    let started: Value = res.json().await.unwrap();
    let at_provider = http
        .get(started["authorize_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let back = reqwest::Url::parse(at_provider.headers()[LOCATION].to_str().unwrap()).unwrap();
    let q = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    let res = http
        .post(app.url("/api/v1/auth/oauth/gh/callback"))
        .header(COOKIE, format!("skein_oauth={cookie}"))
        .json(&json!({"code": q("code"), "state": q("state")}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Resp {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// Password, then a TOTP code for `step`: answers the 2FA step's status.
async fn sign_in_with_code(app: &TestApp, login: &str, code: &str) -> StatusCode {
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": login, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let challenge = r.json["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge: {}", r.text));
    let r = app
        .post(
            "/api/v1/auth/login/2fa",
            None,
            json!({"challenge": challenge, "code": code}),
        )
        .await;
    assert!(
        r.status != StatusCode::OK || r.json["access_token"].is_string(),
        "{}",
        r.text
    );
    r.status
}

fn hex_key(byte: u8) -> String {
    hex::encode([byte; 32])
}

on_both_backends! {
    async fn provider_and_totp_secrets_are_sealed_converted_and_rotated(backend) {
        let github = MockOAuth::github("gh-client", CLIENT_SECRET).await;
        let base = github.base.clone();
        let old_key = hex_key(0x11);
        let app = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            c.relay.secret_key = Some(skein_core::secret::Secret::new(old_key.clone()));
        })
        .await;
        let root = app.root().await;
        let made = app.post("/api/v1/admin/oauth/providers", Some(&root.access), json!({
            "slug": "gh", "kind": "github", "client_id": "gh-client", "client_secret": CLIENT_SECRET,
            "authorize_url": format!("{base}/login/oauth/authorize"),
            "token_url": format!("{base}/login/oauth/access_token"),
            "api_url": base,
        })).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
        let sealed = provider_secret(&app).await;
        assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
        assert!(!sealed.contains(CLIENT_SECRET) && !sealed.contains("at-rest"), "{sealed}");

        github.sign_in_as(FakePerson { id: "1".into(), login: "octo".into(), emails: vec![("octo@gh.test".into(), true, true)], unionid: None });
        let first = github_sign_in(&app).await;
        assert_eq!(first.status, StatusCode::OK, "the opened secret is the right one: {}", first.text);

        // TOTP: the row holds no base32 secret.
        let tess = app.register("tess").await;
        let setup = app.post("/api/v1/user/2fa/totp/setup", Some(&tess.access), json!({"password": PASSWORD})).await;
        let secret = setup.json["secret"].as_str().unwrap().to_string();
        let stored = totp_secret(&app, &tess.id).await;
        assert!(stored.starts_with("sealed:v1:") && !stored.contains(&secret), "{stored}");
        let step = skein_core::ids::now_ms() / 1000 / 30;
        let code = |s: i64| skein_user::totp::code_at(&secret, s).unwrap();
        let on = app.post("/api/v1/user/2fa/totp/enable", Some(&tess.access), json!({"code": code(step - 1)})).await;
        assert_eq!(on.status, StatusCode::OK, "{}", on.text);

        // A sealed value moved to another row does not open: a copy of the row is useless.
        let bob = app.register("bob").await;
        let bob_setup = app.post("/api/v1/user/2fa/totp/setup", Some(&bob.access), json!({"password": PASSWORD})).await;
        assert_eq!(bob_setup.status, StatusCode::OK);
        overwrite(&app, "UPDATE user_totp SET secret = $2 WHERE user_id = $1", &bob.id, &stored).await;
        let moved = app.post("/api/v1/user/2fa/totp/enable", Some(&bob.access), json!({"code": code(step)})).await;
        assert_eq!(moved.status, StatusCode::INTERNAL_SERVER_ERROR, "tess's sealed secret under bob's row: {}", moved.text);

        // Rows as a Skein before sealing wrote them: plain text. A restart seals them.
        overwrite(&app, "UPDATE oauth_providers SET client_secret = $2 WHERE slug = $1", "gh", CLIENT_SECRET).await;
        overwrite(&app, "UPDATE user_totp SET secret = $2 WHERE user_id = $1", &tess.id, &secret).await;
        let restarted = app.sibling().await;
        let converted = provider_secret(&restarted).await;
        assert!(converted.starts_with("sealed:v1:") && !converted.contains(CLIENT_SECRET), "{converted}");
        let converted_totp = totp_secret(&restarted, &tess.id).await;
        assert!(converted_totp.starts_with("sealed:v1:") && !converted_totp.contains(&secret), "{converted_totp}");
        assert_eq!(sign_in_with_code(&restarted, "tess", &code(step)).await, StatusCode::OK, "2FA after the conversion");
        github.sign_in_as(FakePerson { id: "1".into(), login: "octo".into(), emails: vec![("octo@gh.test".into(), true, true)], unionid: None });
        let again = github_sign_in(&restarted).await;
        assert_eq!(again.status, StatusCode::OK, "provider sign-in after the conversion: {}", again.text);
        assert_eq!(again.json["user"]["id"], first.json["user"]["id"]);

        // Rotation: a new key with the old one listed as previous re-seals under the new key id.
        let old_id = converted.split(':').nth(2).unwrap().to_string();
        let rotated = app.sibling_services("all", |c| {
            c.relay.secret_key = Some(skein_core::secret::Secret::new(hex_key(0x22)));
            c.relay.previous_secret_keys = vec![skein_core::secret::Secret::new(old_key.clone())];
        }).await;
        let resealed = provider_secret(&rotated).await;
        let new_id = resealed.split(':').nth(2).unwrap().to_string();
        assert_ne!(new_id, old_id, "sealed under the new key: {resealed}");
        assert_eq!(totp_secret(&rotated, &tess.id).await.split(':').nth(2).unwrap(), new_id);
        assert_eq!(sign_in_with_code(&rotated, "tess", &code(step + 1)).await, StatusCode::OK, "2FA after the rotation");
        github.sign_in_as(FakePerson { id: "1".into(), login: "octo".into(), emails: vec![("octo@gh.test".into(), true, true)], unionid: None });
        let third = github_sign_in(&rotated).await;
        assert_eq!(third.status, StatusCode::OK, "provider sign-in after the rotation: {}", third.text);
    }
}

on_both_backends! {
    async fn unauthenticated_routes_are_limited_per_address(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.oauth.public_url = Some(PUBLIC_URL.into());
            let gh = skein_user::oauth::ProviderConfig {
                kind: skein_user::oauth::ProviderKind::Github,
                display_name: None,
                client_id: "gh".into(),
                client_secret: skein_core::secret::Secret::new("s"),
                issuer: None,
                tenant: None,
                scopes: None,
                authorize_url: None,
                token_url: None,
                api_url: None,
                link_by_email: false,
                enabled: true,
            };
            c.oauth.providers.insert("gh".into(), gh);
            c.limits.oauth_starts_per_ip_per_hour = 3;
            c.limits.password_resets_per_ip_per_hour = 2;
            c.limits.account_links_per_ip_per_hour = 2;
            // Mail is queued, never sent, in this test: a closed port is enough.
            c.mail.smtp_host = Some("127.0.0.1".into());
            c.mail.smtp_port = 9;
            c.mail.security = skein_user::config::SmtpSecurity::Plain;
        })
        .await;
        app.root().await;
        for _ in 0..3 {
            let r = app.post("/api/v1/auth/oauth/gh/start", None, json!({})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let r = app.send(app.client.post(app.url("/api/v1/auth/oauth/gh/start")).header("accept-language", "zh-CN").json(&json!({}))).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("请求过于频繁"), "{}", r.text);

        // Reset mails: the same answer for known and unknown addresses, until the address's hour
        // is used up.
        for email in ["root@example.com", "nobody@example.com"] {
            let r = app.post("/api/v1/auth/password/forgot", None, json!({"email": email})).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        }
        let r = app.post("/api/v1/auth/password/forgot", None, json!({"email": "root@example.com"})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert!(r.header("retry-after").is_some());

        // Guessing links.
        for _ in 0..2 {
            let r = app.post("/api/v1/auth/verify-email", None, json!({"token": "skl_guess"})).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        }
        let r = app.post("/api/v1/auth/password/reset", None, json!({"token": "skl_guess", "new_password": "a new long password"})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    }
}
