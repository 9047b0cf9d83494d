//! System settings through the real server: admins change them, they apply without a restart
//! (on this instance at once, on another over the bus), `skein.toml` stays the default, bad
//! values are refused with every field named in both languages, and users keep their own
//! currency choice.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{
    Backend, PASSWORD, Price, TestApp, Upstream, WorldSpec, both_backends, on_both_backends,
};

const SETTINGS: &str = "/api/v1/admin/settings";
const PUBLIC: &str = "/api/v1/settings/public";

async fn register(app: &TestApp, name: &str, invite: Option<&str>) -> skein_testkit::Resp {
    let mut body = json!({"username": name, "password": PASSWORD});
    if let Some(code) = invite {
        body["invite_code"] = json!(code);
    }
    app.post("/api/v1/auth/register", None, body).await
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    app.get("/api/v1/billing/quota", Some(token)).await.json["balance"]
        .as_i64()
        .unwrap()
}

both_backends! {
    async fn only_admins_see_or_change_settings_and_anyone_reads_the_public_part(app) {
        let root = app.root().await;
        let ada = app.register("ada").await;
        assert_eq!(app.get(SETTINGS, Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
        let r = app.put(SETTINGS, Some(&ada.access), json!({"registration_mode": "closed"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(SETTINGS, None).await.status, StatusCode::UNAUTHORIZED);
        // The refused change changed nothing.
        let public = app.get(PUBLIC, None).await;
        assert_eq!(public.status, StatusCode::OK, "{}", public.text);
        assert_eq!(public.json, json!({"registration_mode": "open", "announcement": null, "currency": "usd", "cny_per_usd": 7.2, "quota_per_usd": 500000, "invite_reward_invitee": 0, "invite_reward_inviter": 0, "sign_in": {"password": true, "phone": false, "passkeys": true, "verified_email_for_login": false}}));

        let admin = app.get(SETTINGS, Some(&root.access)).await;
        assert_eq!(admin.status, StatusCode::OK);
        assert_eq!(admin.json["values"], admin.json["defaults"]);
        assert_eq!(admin.json["overridden"], json!([]));
        assert_eq!(admin.json["quota_per_usd"], 500000);
    }

    async fn registration_mode_applies_at_once_and_a_reset_returns_to_the_file(app) {
        let root = app.root().await;
        let r = app.put(SETTINGS, Some(&root.access), json!({"registration_mode": "closed"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["values"]["registration_mode"], "closed");
        assert_eq!(r.json["defaults"]["registration_mode"], "open");
        assert_eq!(r.json["overridden"], json!(["registration_mode"]));
        assert_eq!(app.get(PUBLIC, None).await.json["registration_mode"], "closed");
        let refused = register(&app, "ada", None).await;
        assert_eq!((refused.status, refused.error_code()), (StatusCode::FORBIDDEN, "registration_closed"));

        // Invite-only: a code is needed, and a code works.
        app.put(SETTINGS, Some(&root.access), json!({"registration_mode": "invite_only"})).await;
        let refused = register(&app, "ada", None).await;
        assert_eq!((refused.status, refused.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "invite_code_required"));
        let code = app.post("/api/v1/user/invite-codes", Some(&root.access), json!({})).await;
        assert_eq!(code.status, StatusCode::CREATED, "{}", code.text);
        let ok = register(&app, "ada", code.json["code"].as_str()).await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);

        // Reset: the file's value (open) again, and nothing is marked changed.
        let r = app.put(SETTINGS, Some(&root.access), json!({"reset": ["registration_mode"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["values"]["registration_mode"].as_str(), r.json["overridden"].clone()), (Some("open"), json!([])));
        assert_eq!(register(&app, "bob", None).await.status, StatusCode::CREATED);
    }

    async fn invalid_values_are_refused_together_in_both_languages_and_nothing_is_stored(app) {
        let root = app.root().await;
        let body = json!({
            "registration_mode": "sometimes",
            "signup_grant": -5,
            "announcement": {"en": "Maintenance tonight", "zh": "  "},
            "currency": "eur",
            "cny_per_usd": 0,
            "default_model": "gpt-4o",
            "reset": ["colour"],
        });
        let r = app.put(SETTINGS, Some(&root.access), body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let fields: Vec<&str> = r.json["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, vec!["reset", "registration_mode", "signup_grant", "announcement.zh", "currency", "cny_per_usd"]);
        assert_eq!(r.json["error"]["message"], "There is no setting called \"colour\".");
        let zh = app.send(app.client.put(app.url(SETTINGS)).bearer_auth(&root.access)
            .header("accept-language", "zh-CN").json(&body)).await;
        assert_eq!(zh.status, StatusCode::UNPROCESSABLE_ENTITY);
        let messages: Vec<&str> = zh.json["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
        assert!(messages.contains(&"注册方式必须是 open（开放）、invite_only（仅限邀请）或 closed（关闭）。"), "{messages:?}");
        assert!(messages.contains(&"汇率必须大于 0 且不超过 1000（人民币/美元）。"), "{messages:?}");
        // Not even the valid default model was stored.
        let now = app.get(SETTINGS, Some(&root.access)).await;
        assert_eq!(now.json["overridden"], json!([]));
        assert!(now.json["values"]["default_model"].is_null());
        // A wrong JSON type is a 422 as well, never a 500.
        let r = app.put(SETTINGS, Some(&root.access), json!({"signup_grant": "lots"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    }

    async fn announcement_changes_its_id_with_its_text_and_can_be_removed(app) {
        let root = app.root().await;
        let r = app.put(SETTINGS, Some(&root.access), json!({"announcement": {"en": " Maintenance at 22:00 UTC.\nBack by 23:00. ", "zh": "22:00（UTC）维护。"}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let first = app.get(PUBLIC, None).await.json["announcement"].clone();
        assert_eq!((first["en"].as_str(), first["zh"].as_str()), (Some("Maintenance at 22:00 UTC.\nBack by 23:00."), Some("22:00（UTC）维护。")));
        app.put(SETTINGS, Some(&root.access), json!({"announcement": {"en": "Done.", "zh": "维护完成。"}})).await;
        let second = app.get(PUBLIC, None).await.json["announcement"].clone();
        assert_ne!(first["id"], second["id"], "a new text must show again to those who dismissed the old one");
        let r = app.put(SETTINGS, Some(&root.access), json!({"announcement": null})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(app.get(PUBLIC, None).await.json["announcement"].is_null());
    }

    async fn currency_is_the_admins_default_and_each_users_own_choice(app) {
        let root = app.root().await;
        let ada = app.register("ada").await;
        let r = app.put(SETTINGS, Some(&root.access), json!({"currency": "cny", "cny_per_usd": 7.1})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let public = app.get(PUBLIC, None).await.json;
        assert_eq!((public["currency"].as_str(), public["cny_per_usd"].as_f64()), (Some("cny"), Some(7.1)));
        // Balances in CNY follow the new rate: one dollar of quota is 7.1 yuan.
        let adjust = app.post(&format!("/api/v1/admin/billing/users/{}/adjust", ada.id), Some(&root.access), json!({"amount": 500_000, "memo": "test"})).await;
        assert_eq!(adjust.status, StatusCode::OK, "{}", adjust.text);
        let q = app.get("/api/v1/billing/quota", Some(&ada.access)).await;
        assert_eq!(q.json["balance_cny"].as_f64(), Some(7.1), "{}", q.text);

        assert_eq!(app.get("/api/v1/user/preferences", Some(&ada.access)).await.json, json!({"currency": null}));
        let r = app.put("/api/v1/user/preferences", Some(&ada.access), json!({"currency": "units"})).await;
        assert_eq!((r.status, r.json.clone()), (StatusCode::OK, json!({"currency": "units"})));
        assert_eq!(app.get("/api/v1/user/preferences", Some(&ada.access)).await.json["currency"], "units");
        // Another user's choice is their own.
        assert_eq!(app.get("/api/v1/user/preferences", Some(&root.access)).await.json["currency"], Value::Null);
        let r = app.put("/api/v1/user/preferences", Some(&ada.access), json!({"currency": "btc"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.get("/api/v1/user/preferences", Some(&ada.access)).await.json["currency"], "units");
        let r = app.put("/api/v1/user/preferences", Some(&ada.access), json!({"currency": null})).await;
        assert_eq!(r.json["currency"], Value::Null);
        assert_eq!(app.get("/api/v1/user/preferences", None).await.status, StatusCode::UNAUTHORIZED);
    }
}

on_both_backends! {
    async fn the_file_is_the_default_until_an_admin_changes_it(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.registration.enabled = false;
            c.billing.signup_grant = 100;
        }).await;
        let root = app.root().await;
        assert_eq!(app.get(PUBLIC, None).await.json["registration_mode"], "closed");
        assert_eq!(register(&app, "ada", None).await.status, StatusCode::FORBIDDEN);
        let r = app.put(SETTINGS, Some(&root.access), json!({"registration_mode": "open", "signup_grant": 700, "invite_reward_inviter": 30, "invite_reward_invitee": 20})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["defaults"]["signup_grant"], 100);
        // The new grants apply to the very next registration, without a restart.
        let ada = register(&app, "ada", None).await;
        assert_eq!(ada.status, StatusCode::CREATED, "{}", ada.text);
        let ada_token = ada.json["access_token"].as_str().unwrap().to_string();
        assert_eq!(balance(&app, &ada_token).await, 700);
        let code = app.post("/api/v1/user/invite-codes", Some(&ada_token), json!({})).await;
        let bob = register(&app, "bob", code.json["code"].as_str()).await;
        assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.text);
        assert_eq!(balance(&app, bob.json["access_token"].as_str().unwrap()).await, 720);
        assert_eq!(balance(&app, &ada_token).await, 730);
        // Back to the file: closed, and a grant of 100.
        let r = app.put(SETTINGS, Some(&root.access), json!({"reset": ["registration_mode", "signup_grant"]})).await;
        assert_eq!(r.json["overridden"], json!(["invite_reward_invitee", "invite_reward_inviter"]));
        assert_eq!(register(&app, "carol", None).await.status, StatusCode::FORBIDDEN);
    }

    async fn chat_uses_the_default_model_in_effect(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = WorldSpec::new(Upstream::OpenAi)
            .model("gpt-test", Some("gpt-upstream"))
            .model("gpt-other", None)
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            .price("gpt-other", Price::tokens(2_000_000, 6_000_000))
            .build(&app)
            .await;
        let (user, root) = (&world.user, &world.root);
        for (default, upstream_model) in [("gpt-other", "gpt-other"), ("gpt-test", "gpt-upstream")] {
            let r = app.put(SETTINGS, Some(&root.access), json!({"default_model": default})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let c = app.post("/api/v1/chat/conversations", Some(&user.access), json!({})).await;
            assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
            let id = c.json["id"].as_str().unwrap();
            let sent = app.post(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access), json!({"content": "hi"})).await;
            assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
            let last = world.upstream.requests().last().unwrap().clone();
            assert_eq!(last["model"], upstream_model, "default {default}");
        }
    }
}

/// Two instances on one PostgreSQL database: a change made on one applies on the other
/// without a restart (over the bus, PostgreSQL LISTEN/NOTIFY here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_applies_on_the_other() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().await;
    let root = a.root().await;
    assert_eq!(register(&b, "ada", None).await.status, StatusCode::CREATED);
    let r = a
        .put(
            SETTINGS,
            Some(&root.access),
            json!({"registration_mode": "closed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The note travels asynchronously: wait for it, far less than the 30 s safety reload.
    let mut mode = Value::Null;
    for _ in 0..100 {
        mode = b.get(PUBLIC, None).await.json["registration_mode"].clone();
        if mode == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        mode, "closed",
        "the other instance never heard of the change"
    );
    assert_eq!(
        register(&b, "bob", None).await.status,
        StatusCode::FORBIDDEN
    );
    // And a reset travels the same way.
    a.put(
        SETTINGS,
        Some(&root.access),
        json!({"reset": ["registration_mode"]}),
    )
    .await;
    for _ in 0..100 {
        if b.get(PUBLIC, None).await.json["registration_mode"] == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(register(&b, "bob", None).await.status, StatusCode::CREATED);
}
