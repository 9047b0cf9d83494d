//! Invite codes: users' own, admins' batches, registration with a code, invite-only mode.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{Backend, PASSWORD, TestApp, both_backends};

fn register_with(code: &str, username: &str) -> serde_json::Value {
    json!({"username": username, "password": PASSWORD, "invite_code": code})
}

both_backends! {
    async fn users_make_their_own_codes_within_the_limit(app) {
        app.root().await;
        let ada = app.register("ada").await;
        let limit = app.config.registration.user_invite_code_limit;
        for _ in 0..limit {
            let r = app.post("/api/v1/user/invite-codes", Some(&ada.access), json!({})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            assert_eq!(r.json["max_uses"], 1);
            assert_eq!(r.json["code"].as_str().unwrap().len(), 10);
        }
        let over = app.post("/api/v1/user/invite-codes", Some(&ada.access), json!({})).await;
        assert_eq!((over.status, over.error_code()), (StatusCode::CONFLICT, "invite_code_limit"));
        let mine = app.get("/api/v1/user/invite-codes", Some(&ada.access)).await;
        assert_eq!(mine.json.as_array().unwrap().len(), limit as usize);

        // Another user sees none of them.
        let bob = app.register("bob").await;
        let theirs = app.get("/api/v1/user/invite-codes", Some(&bob.access)).await;
        assert_eq!(theirs.json, json!([]));
    }

    async fn registering_with_a_code_records_the_inviter(app) {
        app.root().await;
        let ada = app.register("ada").await;
        let code = app.post("/api/v1/user/invite-codes", Some(&ada.access), json!({})).await.json["code"].as_str().unwrap().to_string();
        let r = app.post("/api/v1/auth/register", None, register_with(&code.to_lowercase(), "bob")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["user"]["invited_by"], ada.id.as_str());

        let invitees = app.get("/api/v1/user/invitees", Some(&ada.access)).await;
        assert_eq!(invitees.json.as_array().unwrap().len(), 1);
        assert_eq!(invitees.json[0]["display_name"], "bob");
        assert!(invitees.json[0].get("email").is_none(), "invitee contact details leaked");

        let used_up = app.post("/api/v1/auth/register", None, register_with(&code, "carol")).await;
        assert_eq!((used_up.status, used_up.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_invite_code"));
        let unknown = app.post("/api/v1/auth/register", None, register_with("NOSUCHCODE", "carol")).await;
        assert_eq!(unknown.error_code(), "invalid_invite_code");
        // A failed registration left no account behind.
        app.post("/api/v1/auth/register", None, json!({"username": "carol", "password": PASSWORD})).await;
        let mine = app.get("/api/v1/user/invite-codes", Some(&ada.access)).await;
        assert_eq!(mine.json[0]["used_count"], 1);
    }

    async fn admins_make_batches_and_disable_codes(app) {
        let (_root, admin) = app.root_and_admin().await;
        let r = app.post("/api/v1/admin/invite-codes", Some(&admin.access),
            json!({"count": 3, "max_uses": 2, "note": "launch party"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let codes = r.json.as_array().unwrap();
        assert_eq!(codes.len(), 3);
        assert!(codes.iter().all(|c| c["max_uses"] == 2 && c["by_admin"] == true && c["note"] == "launch party"));

        let code = codes[0]["code"].as_str().unwrap();
        let id = codes[0]["id"].as_str().unwrap();
        assert_eq!(app.post("/api/v1/auth/register", None, register_with(code, "user1")).await.status, StatusCode::CREATED);
        assert_eq!(app.post("/api/v1/auth/register", None, register_with(code, "user2")).await.status, StatusCode::CREATED);
        assert_eq!(app.post("/api/v1/auth/register", None, register_with(code, "user3")).await.error_code(), "invalid_invite_code");

        let second = codes[1]["code"].as_str().unwrap();
        let second_id = codes[1]["id"].as_str().unwrap();
        let off = app.patch(&format!("/api/v1/admin/invite-codes/{second_id}"), Some(&admin.access), json!({"disabled": true})).await;
        assert_eq!(off.json["disabled"], true);
        assert_eq!(app.post("/api/v1/auth/register", None, register_with(second, "user4")).await.error_code(), "invalid_invite_code");

        let list = app.get("/api/v1/admin/invite-codes?per_page=2", Some(&admin.access)).await;
        assert_eq!((list.json["total"].as_i64(), list.json["items"].as_array().map(Vec::len)), (Some(3), Some(2)));
        let _ = id;

        for (body, field) in [
            (json!({"count": 0}), "count"),
            (json!({"count": 501}), "count"),
            (json!({"max_uses": -1}), "max_uses"),
            (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
            (json!({"expires_at": "next tuesday"}), "expires_at"),
        ] {
            let r = app.post("/api/v1/admin/invite-codes", Some(&admin.access), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(r.json["error"]["details"]["field"], field);
        }
        let missing = app.patch("/api/v1/admin/invite-codes/01890000-0000-7000-8000-000000000000", Some(&admin.access), json!({"disabled": true})).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let garbage = app.patch("/api/v1/admin/invite-codes/' OR 1=1 --", Some(&admin.access), json!({"disabled": true})).await;
        assert_eq!(garbage.status, StatusCode::NOT_FOUND);

        let ada = app.register("ada").await;
        assert_eq!(app.post("/api/v1/admin/invite-codes", Some(&ada.access), json!({})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/admin/invite-codes", Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
    }

    async fn the_last_use_of_a_code_goes_to_exactly_one_person(app) {
        let (_root, admin) = app.root_and_admin().await;
        let r = app.post("/api/v1/admin/invite-codes", Some(&admin.access), json!({"max_uses": 1})).await;
        let code = r.json[0]["code"].as_str().unwrap().to_string();
        let attempts = (0..6).map(|i| app.post("/api/v1/auth/register", None, register_with(&code, &format!("racer{i}"))));
        let results = futures::future::join_all(attempts).await;
        let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(created, 1, "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
        assert!(results.iter().all(|r| r.status == StatusCode::CREATED || r.error_code() == "invalid_invite_code"));
    }
}

#[tokio::test]
async fn invite_only_servers_require_a_code() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.registration.invite_required = true).await;
    let root = app.root().await; // the first account needs none
    let missing = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invite_code_required")
    );
    let code = app
        .post("/api/v1/admin/invite-codes", Some(&root.access), json!({}))
        .await
        .json[0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = app
        .post("/api/v1/auth/register", None, register_with(&code, "ada"))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
}
