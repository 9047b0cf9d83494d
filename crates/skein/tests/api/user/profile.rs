//! The signed-in user's profile.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::both_backends;

both_backends! {
    async fn profile_reads_and_updates(app) {
        let ada = app.register("ada").await;
        let me = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        assert_eq!(me.json["username"], "ada");
        assert_eq!(me.json["email"], "ada@example.com");
        assert_eq!(me.json["theme"], "system");

        let r = app.patch("/api/v1/user/profile", Some(&ada.access), json!({
            "display_name": "Ada Lovelace", "language": "zh-CN", "theme": "dark",
            "avatar_url": "https://cdn.example.com/ada.png"
        })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["display_name"], "Ada Lovelace");
        assert_eq!(r.json["language"], "zh-CN");
        assert_eq!(r.json["theme"], "dark");
        assert_eq!(r.json["avatar_url"], "https://cdn.example.com/ada.png");

        // Omitted fields stay; an explicit null clears the avatar.
        let r = app.patch("/api/v1/user/profile", Some(&ada.access), json!({"avatar_url": null})).await;
        assert_eq!(r.json["avatar_url"], serde_json::Value::Null);
        assert_eq!(r.json["display_name"], "Ada Lovelace");
        let again = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        assert_eq!(again.json, r.json, "the update was stored");
    }

    async fn profile_rejects_bad_values_and_changes_nothing(app) {
        let ada = app.register("ada").await;
        let before = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        for body in [
            json!({"theme": "neon"}),
            json!({"language": "fr"}),
            json!({"display_name": ""}),
            json!({"display_name": "名".repeat(65)}),
            json!({"avatar_url": "javascript:alert(1)"}),
            json!({"role": "root"}),
            json!({"display_name": 42}),
            json!({"theme": "dark", "language": "xx"}),
        ] {
            let r = app.patch("/api/v1/user/profile", Some(&ada.access), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} accepted: {}", r.text);
        }
        let after = app.get("/api/v1/user/profile", Some(&ada.access)).await;
        assert_eq!(before.json, after.json);
        assert_eq!(app.patch("/api/v1/user/profile", None, json!({"theme": "dark"})).await.status, StatusCode::UNAUTHORIZED);
    }
}
