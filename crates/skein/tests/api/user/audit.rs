//! The audit log: every change an administrator asks for is kept — who, what, on which path,
//! the body with its secrets replaced, the status — readable by admins only, with filters,
//! pages and CSV, and nothing in the API can remove it.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::both_backends;

both_backends! {
    async fn every_admin_change_is_recorded_without_its_secrets(app) {
        let (root, admin) = app.root_and_admin().await;
        let user = app.register("ada").await;
        let secret = "sk-very-secret-upstream-key";
        let r = app.post("/api/v1/channels", Some(&admin.access), json!({
            "type": "openai", "name": "audited", "base_url": "https://api.example.com", "keys": [secret], "models": ["m"]
        })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let channel = r.json["id"].as_str().unwrap().to_string();
        let r = app.put("/api/v1/admin/pricing/m", Some(&admin.access), json!({
            "input_per_mtok": 1, "output_per_mtok": 2, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", user.id), Some(&root.access),
            json!({"amount": 500, "memo": "welcome"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // A refused attempt is kept too, with its status.
        let r = app.patch(&format!("/api/v1/admin/users/{}", root.id), Some(&admin.access), json!({"status": "disabled"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // A user's own changes are not admin actions; a user trying an admin route is refused.
        assert_eq!(app.post("/api/v1/keys", Some(&user.access), json!({"name": "k"})).await.status, StatusCode::CREATED);

        let log = app.get("/api/v1/admin/audit", Some(&admin.access)).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.text);
        assert!(!log.text.contains(secret), "a secret reached the audit log: {}", log.text);
        let items = log.json["items"].as_array().unwrap();
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(!actions.iter().any(|a| a.contains("/keys")), "{actions:?}");
        let find = |action: &str| items.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action} missing: {actions:?}"));
        let created = find("POST /api/v1/channels");
        assert_eq!(created["actor_id"], admin.id.as_str());
        assert_eq!(created["actor_role"], "admin");
        assert_eq!(created["status"], 201);
        assert!(created["detail"].as_str().unwrap().contains("[redacted]"), "{created}");
        assert!(created["detail"].as_str().unwrap().contains("audited"), "{created}");
        assert!(!created["request_id"].as_str().unwrap().is_empty());
        assert!(!created["ip"].as_str().unwrap().is_empty());
        let adjusted = find("POST /api/v1/admin/billing/users/{id}/adjust");
        assert_eq!(adjusted["actor_role"], "root");
        assert_eq!(adjusted["target"], format!("/api/v1/admin/billing/users/{}/adjust", user.id));
        assert!(adjusted["detail"].as_str().unwrap().contains("welcome"));
        assert_eq!(find("PATCH /api/v1/admin/users/{id}")["status"], 403);
        // Newest first.
        assert_eq!(items[0]["action"], "PATCH /api/v1/admin/users/{id}");
        assert!(items.iter().any(|e| e["target"] == format!("/api/v1/admin/users/{}", admin.id)), "the promotion");
        let _ = channel;

        // Filters and pages.
        let pricing = app.get("/api/v1/admin/audit?action=pricing", Some(&admin.access)).await;
        assert_eq!(pricing.json["total"], 1, "{}", pricing.text);
        let mine = app.get(&format!("/api/v1/admin/audit?actor_id={}&per_page=1", root.id), Some(&admin.access)).await;
        assert_eq!(mine.json["items"].as_array().unwrap().len(), 1);
        assert!(mine.json["total"].as_i64().unwrap() >= 2, "{}", mine.text);
        let future = app.get("/api/v1/admin/audit?from=2999-01-01T00:00:00Z", Some(&admin.access)).await;
        assert_eq!(future.json["total"], 0);
        let bad = app.get("/api/v1/admin/audit?from=yesterday", Some(&admin.access)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        // CSV, for the whole log.
        let csv = app.get("/api/v1/admin/audit?format=csv", Some(&admin.access)).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
        assert!(csv.text.starts_with("time,actor_id,actor_role,action,target,status,request_id,ip,before,detail\n"));
        assert!(csv.text.contains("POST /api/v1/channels") && !csv.text.contains(secret));

        // Admins only, and nothing removes an entry.
        assert_eq!(app.get("/api/v1/admin/audit", Some(&user.access)).await.status, StatusCode::FORBIDDEN);
        let delete = app.send(app.client.delete(app.url("/api/v1/admin/audit")).bearer_auth(&root.access)).await;
        assert!(matches!(delete.status, StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND), "{}", delete.status);
        let after = app.get("/api/v1/admin/audit", Some(&admin.access)).await;
        // Reads are not recorded; the refused DELETE is, with its status.
        assert_eq!(after.json["total"], log.json["total"].as_i64().unwrap() + 1);
        assert_eq!(after.json["items"][0]["action"], "DELETE /api/v1/admin/audit");
        assert_eq!(after.json["items"][0]["status"], delete.status.as_u16());
    }
}

both_backends! {
    async fn an_admin_change_records_what_it_found(app) {
        let (root, admin) = app.root_and_admin().await;
        let user = app.register("grace").await;
        let secret = "sk-sealed-before-and-after";
        let r = app.post("/api/v1/channels", Some(&admin.access), json!({
            "type": "openai", "name": "first-name", "base_url": "https://api.example.com", "keys": [secret], "models": ["m"]
        })).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let channel = r.json["id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/channels/{channel}"), Some(&admin.access), json!({"name": "second-name", "priority": 5})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let rates = |input: i64| json!({"input_per_mtok": input, "output_per_mtok": 2, "cache_read_per_mtok": 0, "cache_write_per_mtok": 0, "per_call": 0});
        assert_eq!(app.put("/api/v1/admin/pricing/m", Some(&admin.access), rates(11)).await.status, StatusCode::OK);
        assert_eq!(app.put("/api/v1/admin/pricing/m", Some(&admin.access), rates(22)).await.status, StatusCode::OK);
        let r = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", user.id), Some(&root.access), json!({"amount": 700, "memo": "top-up"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let balance_before = r.json["balance"].as_i64().unwrap() - 700;
        assert_eq!(app.patch(&format!("/api/v1/admin/users/{}", user.id), Some(&admin.access), json!({"status": "disabled"})).await.status, StatusCode::OK);
        let r = app.send(app.client.delete(app.url(&format!("/api/v1/channels/{channel}"))).bearer_auth(&admin.access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

        let log = app.get("/api/v1/admin/audit?per_page=100", Some(&admin.access)).await;
        assert!(!log.text.contains(secret), "a secret reached the audit log: {}", log.text);
        let items = log.json["items"].as_array().unwrap();
        let before = |action: &str, nth: usize| -> serde_json::Value {
            let found: Vec<_> = items.iter().filter(|e| e["action"] == action).collect();
            let text = found.get(nth).unwrap_or_else(|| panic!("{action} #{nth} missing")).get("before").and_then(|b| b.as_str()).unwrap_or_else(|| panic!("{action} has no before"));
            serde_json::from_str(text).unwrap()
        };
        // Newest first: the patch found the first name and priority.
        let patched = before("PATCH /api/v1/channels/{id}", 0);
        assert_eq!((patched["name"].as_str(), patched["priority"].as_i64()), (Some("first-name"), Some(0)), "{patched}");
        let deleted = before("DELETE /api/v1/channels/{id}", 0);
        assert_eq!(deleted["name"], "second-name", "{deleted}");
        // The second price change found the first price; the first found none.
        assert_eq!(before("PUT /api/v1/admin/pricing/{model}", 0)["input_per_mtok"], 11);
        assert_eq!(before("PUT /api/v1/admin/pricing/{model}", 1), serde_json::Value::Null);
        assert_eq!(before("POST /api/v1/admin/billing/users/{id}/adjust", 0)["balance"], balance_before);
        assert_eq!(before("PATCH /api/v1/admin/users/{id}", 0)["status"], "active");
        // Creations have no before.
        let created = items.iter().find(|e| e["action"] == "POST /api/v1/channels").unwrap();
        assert!(created["before"].is_null(), "{created}");
    }
}
