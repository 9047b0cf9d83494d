//! Registration, login, refresh-token rotation, logout, password change.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{PASSWORD, both_backends};

both_backends! {
    async fn first_account_is_root_and_later_ones_are_users(app) {
        let root = app.root().await;
        let ada = app.register("ada").await;
        let me = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        assert_eq!(me.json["role"], "user");
        assert_ne!(root.id, ada.id);
        assert!(me.json.get("password_hash").is_none(), "hash leaked: {}", me.text);
    }

    async fn register_rejects_bad_input_with_clear_errors(app) {
        let cases = [
            (json!({"email": "ada@example.com"}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (json!({"username": "ada", "password": 12345678}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (json!({"username": "ada", "password": PASSWORD, "is_admin": true}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (json!({"password": PASSWORD}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"email": "not-an-email", "password": PASSWORD}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"username": "ada", "password": "short"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"username": "a".repeat(33), "password": PASSWORD}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"username": "x'); DROP TABLE users;--", "password": PASSWORD}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"username": "ada", "password": PASSWORD, "display_name": "x".repeat(65)}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (json!({"username": "ada", "password": PASSWORD, "language": "klingon"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ];
        for (body, status, code) in cases {
            let r = app.post("/api/v1/auth/register", None, body.clone()).await;
            assert_eq!((r.status, r.error_code()), (status, code), "{body}: {}", r.text);
            assert!(r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        let field = app.post("/api/v1/auth/register", None, json!({"email": "nope", "password": PASSWORD})).await;
        assert_eq!(field.json["error"]["details"]["field"], "email");
        // Every bad field is named at once, each with its message in the asked language.
        let all = app.send(app.client.post(app.url("/api/v1/auth/register")).header("accept-language", "zh-CN")
            .json(&json!({"username": "a", "email": "nope", "password": "short"}))).await;
        assert_eq!(all.error_code(), "validation_failed");
        let errors = all.json["error"]["details"]["errors"].as_array().cloned().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(fields, ["username", "email", "password"], "{}", all.text);
        assert_eq!(errors[2]["message"], "密码长度必须为 8 到 128 个字符。");
        assert_eq!(all.json["error"]["details"]["field"], "username");

        let malformed = app.send(app.client.post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/json").body("{\"username\": \"ada\",")).await;
        assert_eq!((malformed.status, malformed.error_code()), (StatusCode::BAD_REQUEST, "malformed_json"));
        let not_json = app.send(app.client.post(app.url("/api/v1/auth/register")).body("username=ada")).await;
        assert_eq!((not_json.status, not_json.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));

        // Nothing was created by any of the above: the first real account is still root.
        app.root().await;
    }

    async fn sql_looking_text_is_stored_verbatim(app) {
        let root = app.root().await;
        let evil = "Robert'); DROP TABLE users;-- \" OR 1=1";
        let r = app.post("/api/v1/auth/register", None,
            json!({"email": "bobby@example.com", "password": PASSWORD, "display_name": evil})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["user"]["display_name"], evil);
        let search = app.get("/api/v1/admin/users?q=%27%29%3B%20DROP", Some(&root.access)).await;
        assert_eq!(search.status, StatusCode::OK, "{}", search.text);
        assert_eq!(search.json["total"], 1);
        let all = app.get("/api/v1/admin/users", Some(&root.access)).await;
        assert_eq!(all.json["total"], 2, "users table intact");
    }

    async fn duplicates_are_conflicts_not_errors(app) {
        app.register("ada").await;
        let same_email = app.post("/api/v1/auth/register", None,
            json!({"username": "ada2", "email": "ADA@example.com", "password": PASSWORD})).await;
        assert_eq!((same_email.status, same_email.error_code()), (StatusCode::CONFLICT, "email_taken"));
        let same_name = app.post("/api/v1/auth/register", None,
            json!({"username": "AdA", "password": PASSWORD})).await;
        assert_eq!((same_name.status, same_name.error_code()), (StatusCode::CONFLICT, "username_taken"));
    }

    async fn login_by_username_or_email_and_wrong_credentials(app) {
        app.register("ada").await;
        app.login("ada", PASSWORD).await;
        app.login("ADA@example.com", PASSWORD).await;
        let wrong = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": "wrong password"})).await;
        assert_eq!((wrong.status, wrong.error_code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
        let nobody = app.post("/api/v1/auth/login", None, json!({"login": "nobody", "password": PASSWORD})).await;
        assert_eq!(nobody.error_code(), "invalid_credentials", "no hint that the account does not exist");
        assert_eq!(wrong.json["error"]["message"], nobody.json["error"]["message"]);
    }

    async fn refresh_rotates_and_reuse_revokes_the_family(app) {
        let ada = app.register("ada").await;
        let first = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": ada.refresh})).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let rotated = first.json["refresh_token"].as_str().unwrap().to_string();
        let access = first.json["access_token"].as_str().unwrap().to_string();
        assert_ne!(rotated, ada.refresh);
        assert_eq!(first.json["expires_in"], 900);
        assert_eq!(app.get("/api/v1/user/profile", Some(&access)).await.status, StatusCode::OK);

        // The old token again: theft. The whole session ends, including the newest tokens.
        let replay = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": ada.refresh})).await;
        assert_eq!((replay.status, replay.error_code()), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
        let after = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": rotated})).await;
        assert_eq!((after.status, after.error_code()), (StatusCode::UNAUTHORIZED, "invalid_refresh_token"));
        let profile = app.get("/api/v1/user/profile", Some(&access)).await;
        assert_eq!((profile.status, profile.error_code()), (StatusCode::UNAUTHORIZED, "invalid_token"));

        let garbage = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": "skr_nonsense"})).await;
        assert_eq!(garbage.error_code(), "invalid_refresh_token");
    }

    async fn logout_ends_the_session(app) {
        let ada = app.register("ada").await;
        let other = app.login("ada", PASSWORD).await;
        let r = app.post("/api/v1/auth/logout", Some(&ada.access), json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        assert_eq!(app.get("/api/v1/user/profile", Some(&ada.access)).await.error_code(), "invalid_token");
        let refresh = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": ada.refresh})).await;
        assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
        // Another session of the same user is untouched.
        assert_eq!(app.get("/api/v1/user/profile", Some(&other.access)).await.status, StatusCode::OK);
        // Logging out with only a refresh token works too.
        let by_refresh = app.post("/api/v1/auth/logout", None, json!({"refresh_token": other.refresh})).await;
        assert_eq!(by_refresh.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/user/profile", Some(&other.access)).await.status, StatusCode::UNAUTHORIZED);
        let anonymous = app.post("/api/v1/auth/logout", None, json!({})).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }

    async fn password_change_signs_out_other_sessions(app) {
        let here = app.register("ada").await;
        let elsewhere = app.login("ada", PASSWORD).await;
        let wrong = app.put("/api/v1/user/password", Some(&here.access),
            json!({"current_password": "not my password", "new_password": "a brand new secret"})).await;
        assert_eq!((wrong.status, wrong.error_code()), (StatusCode::FORBIDDEN, "wrong_password"));
        let weak = app.put("/api/v1/user/password", Some(&here.access),
            json!({"current_password": PASSWORD, "new_password": "short"})).await;
        assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);

        let ok = app.put("/api/v1/user/password", Some(&here.access),
            json!({"current_password": PASSWORD, "new_password": "a brand new secret"})).await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        assert_eq!(ok.json["revoked_sessions"], 1);

        assert_eq!(app.get("/api/v1/user/profile", Some(&here.access)).await.status, StatusCode::OK, "this session stays");
        assert_eq!(app.get("/api/v1/user/profile", Some(&elsewhere.access)).await.status, StatusCode::UNAUTHORIZED);
        let old_refresh = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": elsewhere.refresh})).await;
        assert_eq!(old_refresh.status, StatusCode::UNAUTHORIZED);
        let old_password = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": PASSWORD})).await;
        assert_eq!(old_password.status, StatusCode::UNAUTHORIZED);
        app.login("ada", "a brand new secret").await;
    }

    async fn concurrent_refreshes_of_one_token_cannot_both_win(app) {
        let ada = app.register("ada").await;
        let body = json!({"refresh_token": ada.refresh});
        let (a, b, c) = tokio::join!(
            app.post("/api/v1/auth/refresh", None, body.clone()),
            app.post("/api/v1/auth/refresh", None, body.clone()),
            app.post("/api/v1/auth/refresh", None, body.clone()),
        );
        let winners = [&a, &b, &c].iter().filter(|r| r.status == StatusCode::OK).count();
        assert!(winners <= 1, "one refresh token was exchanged {winners} times");
    }
}

mod registration_policy {
    use super::*;
    use skein_testkit::{Backend, TestApp};

    #[tokio::test]
    async fn closed_registration_still_admits_the_first_account() {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| c.registration.enabled = false).await;
        app.root().await;
        let r = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": "ada", "password": PASSWORD}),
            )
            .await;
        assert_eq!(
            (r.status, r.error_code()),
            (StatusCode::FORBIDDEN, "registration_closed")
        );
    }
}
