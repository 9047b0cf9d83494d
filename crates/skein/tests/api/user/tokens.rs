//! Access tokens that must not work: tampered, unsigned, expired, foreign, for a disabled user.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::json;
use skein_core::auth::{JwtKeys, Role};
use skein_testkit::{PASSWORD, TestApp, both_backends};

fn server_secret(app: &TestApp) -> String {
    std::fs::read_to_string(app.config.data_dir.join("jwt_secret"))
        .unwrap()
        .trim()
        .to_string()
}

both_backends! {
    async fn forged_and_broken_tokens_are_rejected(app) {
        let ada = app.register("ada").await;
        let [header, _payload, signature]: [&str; 3] = ada.access.split('.').collect::<Vec<_>>().try_into().unwrap();
        let claims = |role: &str| URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"{}","sid":"x","role":"{role}","iat":0,"exp":99999999999,"iss":"skein"}}"#, ada.id));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let foreign = JwtKeys::new(b"someone-elses-secret-someone-elses", 900).issue(&ada.id, "x", Role::Root).unwrap();
        let bad_tokens = [
            format!("{header}.{}.{signature}", claims("root")),
            format!("{none_header}.{}.", claims("root")),
            foreign,
            "not.a.jwt".to_string(),
            String::new(),
        ];
        for token in &bad_tokens {
            let r = app.send(app.client.get(app.url("/api/v1/user/profile")).header("authorization", format!("Bearer {token}"))).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {token:?} accepted: {}", r.text);
            assert_eq!(r.error_code(), "invalid_token");
        }
        let no_scheme = app.send(app.client.get(app.url("/api/v1/user/profile")).header("authorization", ada.access.clone())).await;
        assert_eq!(no_scheme.status, StatusCode::UNAUTHORIZED);
        let anonymous = app.get("/api/v1/user/profile", None).await;
        assert_eq!((anonymous.status, anonymous.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    }

    async fn expired_tokens_are_rejected(app) {
        let ada = app.register("ada").await;
        let me = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        // The session id is inside the real token; sign an already-expired one with the real key.
        let payload = ada.access.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let sid = claims["sid"].as_str().unwrap();
        let expired = JwtKeys::new(server_secret(&app).as_bytes(), -120).issue(me.json["id"].as_str().unwrap(), sid, Role::User).unwrap();
        let r = app.get("/api/v1/user/profile", Some(&expired)).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "invalid_token"));
        // The same claims, unexpired, are fine: it is the expiry that failed.
        let fresh = JwtKeys::new(server_secret(&app).as_bytes(), 60).issue(me.json["id"].as_str().unwrap(), sid, Role::User).unwrap();
        assert_eq!(app.get("/api/v1/user/profile", Some(&fresh)).await.status, StatusCode::OK);
    }

    async fn a_token_claiming_another_role_gets_the_real_one(app) {
        let (_root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let payload = ada.access.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        // Even correctly signed, a role in the token is not trusted over the stored one.
        let inflated = JwtKeys::new(server_secret(&app).as_bytes(), 60).issue(&ada.id, claims["sid"].as_str().unwrap(), Role::Root).unwrap();
        let r = app.get("/api/v1/admin/users", Some(&inflated)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/admin/users", Some(&admin.access)).await.status, StatusCode::OK);
    }

    async fn a_disabled_users_tokens_stop_working(app) {
        let (_root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let r = app.patch(&format!("/api/v1/admin/users/{}", ada.id), Some(&admin.access), json!({"status": "disabled"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "disabled");
        assert_eq!(app.get("/api/v1/user/profile", Some(&ada.access)).await.status, StatusCode::UNAUTHORIZED);
        let refresh = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": ada.refresh})).await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
        let login = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": PASSWORD})).await;
        assert_eq!((login.status, login.error_code()), (StatusCode::FORBIDDEN, "account_disabled"));

        let r = app.patch(&format!("/api/v1/admin/users/{}", ada.id), Some(&admin.access), json!({"status": "active"})).await;
        assert_eq!(r.status, StatusCode::OK);
        app.login("ada", PASSWORD).await;
    }
}
