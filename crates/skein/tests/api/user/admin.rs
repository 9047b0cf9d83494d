//! Admin user management and who may manage whom.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{PASSWORD, both_backends};

both_backends! {
    async fn admins_list_search_and_page_users(app) {
        let (root, admin) = app.root_and_admin().await;
        for name in ["alice", "alfred", "bob", "under_score"] {
            app.register(name).await;
        }
        let pct = app.post("/api/v1/auth/register", None,
            json!({"username": "pct", "password": PASSWORD, "display_name": "100% sure"})).await;
        assert_eq!(pct.status, StatusCode::CREATED);
        let all = app.get("/api/v1/admin/users?per_page=3", Some(&admin.access)).await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.text);
        assert_eq!(all.json["total"], 7);
        assert_eq!(all.json["items"].as_array().unwrap().len(), 3);
        assert!(all.json["items"][0].get("password_hash").is_none());
        let page3 = app.get("/api/v1/admin/users?per_page=3&page=3", Some(&admin.access)).await;
        assert_eq!(page3.json["items"].as_array().unwrap().len(), 1);
        assert_eq!(page3.json["items"][0]["id"], root.id.as_str(), "newest first, root last");

        let al = app.get("/api/v1/admin/users?q=AL", Some(&admin.access)).await;
        assert_eq!(al.json["total"], 2);
        let literal = app.get("/api/v1/admin/users?q=%25", Some(&admin.access)).await;
        assert_eq!(literal.json["total"], 1, "% matches literally: {}", literal.text);
        let underscore = app.get("/api/v1/admin/users?q=_", Some(&admin.access)).await;
        assert_eq!(underscore.json["total"], 1, "_ matches literally");
        let admins = app.get("/api/v1/admin/users?role=admin", Some(&admin.access)).await;
        assert_eq!(admins.json["total"], 1);

        assert_eq!(app.get("/api/v1/admin/users?role=wizard", Some(&admin.access)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.get("/api/v1/admin/users?page=abc", Some(&admin.access)).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        let ada = app.register("ada").await;
        assert_eq!(app.get("/api/v1/admin/users", Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/admin/users", None).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn unknown_users_are_404(app) {
        let (_root, admin) = app.root_and_admin().await;
        for id in ["01890000-0000-7000-8000-000000000000", "nope", "1%20OR%201=1"] {
            let r = app.get(&format!("/api/v1/admin/users/{id}"), Some(&admin.access)).await;
            assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{id}");
        }
    }

    async fn only_root_changes_roles_and_nobody_manages_upward_or_self(app) {
        let (root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let path = |id: &str| format!("/api/v1/admin/users/{id}");

        let r = app.patch(&path(&ada.id), Some(&admin.access), json!({"role": "admin"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "admin granted a role");
        let r = app.patch(&path(&root.id), Some(&admin.access), json!({"status": "disabled"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "admin disabled root");
        let r = app.patch(&path(&admin.id), Some(&admin.access), json!({"status": "disabled"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "cannot_manage_self"));
        let r = app.patch(&path(&root.id), Some(&root.access), json!({"role": "user"})).await;
        assert_eq!(r.error_code(), "cannot_manage_self", "root demoted itself");
        let r = app.patch(&path(&ada.id), Some(&root.access), json!({"role": "emperor"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        let r = app.patch(&path(&ada.id), Some(&root.access), json!({"role": "admin"})).await;
        assert_eq!(r.json["role"], "admin");
        // The new role applies to the token ada already holds.
        assert_eq!(app.get("/api/v1/admin/users", Some(&ada.access)).await.status, StatusCode::OK);
        let r = app.patch(&path(&ada.id), Some(&root.access), json!({"role": "user"})).await;
        assert_eq!(r.json["role"], "user");
        assert_eq!(app.get("/api/v1/admin/users", Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
    }

    async fn admin_password_reset_signs_the_user_out(app) {
        let (_root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let path = format!("/api/v1/admin/users/{}/reset-password", ada.id);
        let weak = app.post(&path, Some(&admin.access), json!({"new_password": "123"})).await;
        assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post(&path, Some(&admin.access), json!({"new_password": "reset by admin 1"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["revoked_sessions"], 1);
        assert_eq!(app.get("/api/v1/user/profile", Some(&ada.access)).await.status, StatusCode::UNAUTHORIZED);
        let old = app.post("/api/v1/auth/login", None, json!({"login": "ada", "password": PASSWORD})).await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
        app.login("ada", "reset by admin 1").await;
        assert!(!r.text.contains("reset by admin 1"), "the password is never echoed");
    }
}
