//! API keys: the secret shown once, every way vendors' SDKs send it, the checks (status,
//! expiry, address, owner, rate), vendor-shaped errors, and isolation between users.

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{Backend, Persona, TestApp, both_backends};

async fn create(app: &TestApp, who: &Persona, body: serde_json::Value) -> skein_testkit::Resp {
    app.post("/api/v1/keys", Some(&who.access), body).await
}

async fn models(app: &TestApp, secret: &str) -> skein_testkit::Resp {
    app.send(app.client.get(app.url("/v1/models")).bearer_auth(secret))
        .await
}

both_backends! {
    async fn a_key_is_shown_once_and_works_in_every_header(app) {
        let ada = app.register("ada").await;
        let r = create(&app, &ada, json!({"name": "laptop", "allowed_models": ["gpt-4o", "claude-sonnet"]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let secret = r.json["key"].as_str().unwrap().to_string();
        assert!(secret.starts_with("sk-") && secret.len() == 51);
        let id = r.json["id"].as_str().unwrap().to_string();
        assert!(r.json["key_hint"].as_str().unwrap().ends_with(&secret[secret.len() - 4..]));

        let list = app.get("/api/v1/keys", Some(&ada.access)).await;
        assert_eq!(list.json["total"], 1);
        assert!(!list.text.contains(&secret), "the secret came back in the list");
        let one = app.get(&format!("/api/v1/keys/{id}"), Some(&ada.access)).await;
        assert!(one.json.get("key").is_none() && !one.text.contains(&secret));

        let r = models(&app, &secret).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["object"], "list");
        // No channel serves anything yet, so the key can reach no model (relay tests list some).
        assert_eq!(r.json["data"], json!([]));
        for (name, value) in [("x-api-key", secret.clone()), ("x-goog-api-key", secret.clone())] {
            let r = app.send(app.client.get(app.url("/v1/models")).header(name, value)).await;
            assert_eq!(r.status, StatusCode::OK, "{name}");
        }
        let r = app.send(app.client.get(app.url(&format!("/v1/models?key={secret}")))).await;
        assert_eq!(r.status, StatusCode::OK, "?key=");
        // A user's JWT is not an API key.
        assert_eq!(models(&app, &ada.access).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn disabled_deleted_and_unknown_keys_are_refused_in_openai_shape(app) {
        let ada = app.register("ada").await;
        let r = create(&app, &ada, json!({"name": "ci"})).await;
        let secret = r.json["key"].as_str().unwrap().to_string();
        let id = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(models(&app, &secret).await.status, StatusCode::OK);

        let off = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"status": "disabled"})).await;
        assert_eq!(off.json["status"], "disabled");
        let refused = models(&app, &secret).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refused.json["error"]["type"], "authentication_error", "{}", refused.text);
        assert_eq!(refused.json["error"]["code"], "invalid_api_key");
        assert!(refused.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(refused.json["error"]["param"], serde_json::Value::Null);

        app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"status": "active"})).await;
        assert_eq!(models(&app, &secret).await.status, StatusCode::OK);
        let gone = app.call(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), Some(&ada.access), None).await;
        assert_eq!(gone.status, StatusCode::NO_CONTENT);
        assert_eq!(models(&app, &secret).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get(&format!("/api/v1/keys/{id}"), Some(&ada.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(models(&app, "sk-not-a-real-key").await.json["error"]["code"], "invalid_api_key");
        let none = app.get("/v1/models", None).await;
        assert_eq!((none.status, none.json["error"]["type"].as_str()), (StatusCode::UNAUTHORIZED, Some("authentication_error")));
    }

    async fn keys_are_private_to_their_owner(app) {
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;
        let id = create(&app, &ada, json!({"name": "mine"})).await.json["id"].as_str().unwrap().to_string();
        assert_eq!(app.get(&format!("/api/v1/keys/{id}"), Some(&bob.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.patch(&format!("/api/v1/keys/{id}"), Some(&bob.access), json!({"name": "stolen"})).await.status, StatusCode::NOT_FOUND);
        let del = app.call(reqwest::Method::DELETE, &format!("/api/v1/keys/{id}"), Some(&bob.access), None).await;
        assert_eq!(del.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get("/api/v1/keys", Some(&bob.access)).await.json["total"], 0);
        assert_eq!(app.get(&format!("/api/v1/keys/{id}"), Some(&ada.access)).await.json["name"], "mine");
        assert_eq!(app.get("/api/v1/keys", None).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn bad_key_settings_are_422(app) {
        let ada = app.register("ada").await;
        for body in [
            json!({"name": ""}),
            json!({"name": "x".repeat(65)}),
            json!({"name": "k", "quota_limit": -1}),
            json!({"name": "k", "allowed_ips": ["10.0.0.0/33"]}),
            json!({"name": "k", "allowed_ips": ["localhost"]}),
            json!({"name": "k", "group": "vip"}),
            json!({"name": "k", "rpm_limit": 0}),
            json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}),
            json!({"name": "k", "allowed_models": [""]}),
            json!({"name": "k", "secret": "sk-mine"}),
            json!({"name": 5}),
        ] {
            let r = create(&app, &ada, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        }
        assert_eq!(app.get("/api/v1/keys", Some(&ada.access)).await.json["total"], 0, "nothing was created");
        let id = create(&app, &ada, json!({"name": "k", "quota_limit": 100})).await.json["id"].as_str().unwrap().to_string();
        let cleared = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"quota_limit": null})).await;
        assert_eq!(cleared.json["quota_limit"], serde_json::Value::Null);
        assert_eq!(cleared.json["name"], "k", "omitted fields stay");
        let bad = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"status": "deleted"})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn address_allowlists_expiry_owner_status_and_rate_are_enforced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_root, admin) = app.root_and_admin().await;
    let ada = app.register("ada").await;

    let elsewhere = create(
        &app,
        &ada,
        json!({"name": "office", "allowed_ips": ["10.0.0.0/8"]}),
    )
    .await;
    let r = models(&app, elsewhere.json["key"].as_str().unwrap()).await;
    assert_eq!(
        (r.status, r.json["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("ip_not_allowed"))
    );
    let here = create(
        &app,
        &ada,
        json!({"name": "local", "allowed_ips": ["127.0.0.1", "::1/128"]}),
    )
    .await;
    assert_eq!(here.json["allowed_ips"], json!(["127.0.0.1/32", "::1/128"]));
    assert_eq!(
        models(&app, here.json["key"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );

    let soon = skein_core::ids::ms_to_rfc3339(skein_core::ids::now_ms() + 1_000);
    let brief = create(&app, &ada, json!({"name": "brief", "expires_at": soon})).await;
    let brief_key = brief.json["key"].as_str().unwrap().to_string();
    assert_eq!(models(&app, &brief_key).await.status, StatusCode::OK);

    let limited = create(&app, &ada, json!({"name": "slow", "rpm_limit": 2})).await;
    let limited_key = limited.json["key"].as_str().unwrap().to_string();
    assert_eq!(models(&app, &limited_key).await.status, StatusCode::OK);
    assert_eq!(models(&app, &limited_key).await.status, StatusCode::OK);
    let over = models(&app, &limited_key).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        over.json["error"]["type"], "rate_limit_error",
        "{}",
        over.text
    );
    assert!(over.header("retry-after").is_some());

    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let expired = models(&app, &brief_key).await;
    assert_eq!(
        (expired.status, expired.json["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("api_key_expired"))
    );

    // A disabled owner's keys stop working.
    let fresh = create(&app, &ada, json!({"name": "fresh"})).await.json["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v1/admin/users/{}", ada.id),
        Some(&admin.access),
        json!({"status": "disabled"}),
    )
    .await;
    assert_eq!(models(&app, &fresh).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_vendor_route_answers_errors_in_its_own_shape() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let anthropic = app.post("/v1/messages", None, json!({})).await;
    assert_eq!(anthropic.json["type"], "error", "{}", anthropic.text);
    assert!(
        anthropic.json["error"]["type"].is_string()
            && anthropic.json["error"]["message"].is_string()
    );
    let gemini = app
        .post("/v1beta/models/gemini-pro:generateContent", None, json!({}))
        .await;
    assert_eq!(
        gemini.json["error"]["code"],
        gemini.status.as_u16(),
        "{}",
        gemini.text
    );
    assert!(gemini.json["error"]["status"].is_string());
    let openai = app.post("/v1/chat/completions", None, json!({})).await;
    assert!(
        openai.json["error"]["type"].is_string() && openai.json["error"].get("param").is_some(),
        "{}",
        openai.text
    );
    assert!(openai.header("x-request-id").is_some());
}

/// `PUT /admin/relay/users/{id}/groups` as `who`.
async fn grant(
    app: &TestApp,
    who: &Persona,
    user_id: &str,
    groups: serde_json::Value,
) -> skein_testkit::Resp {
    app.put(
        &format!("/api/v1/admin/relay/users/{user_id}/groups"),
        Some(&who.access),
        json!({ "groups": groups }),
    )
    .await
}

skein_testkit::on_both_backends! {
    async fn groups_are_given_by_admins_not_chosen(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.relay.groups = vec!["default".into(), "vip".into(), "cheap".into()];
            c.relay.default_user_groups = vec!["default".into()];
        })
        .await;
        let (root, admin) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let bob = app.register("bob").await;

        // A new user gets the default, and the key form lists only it.
        let mine = app.get("/api/v1/relay/groups", Some(&ada.access)).await;
        assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
        assert_eq!(mine.json, json!([{"group": "default", "multiplier_permille": 1000}]));
        let r = app.get(&format!("/api/v1/admin/relay/users/{}/groups", ada.id), Some(&admin.access)).await;
        assert_eq!((r.json["groups"].clone(), r.json["is_default"].clone()), (json!(["default"]), json!(true)), "{}", r.text);

        // Not granted: creating or moving a key into the cheap group is 403, and nothing changes.
        let r = create(&app, &ada, json!({"name": "cheap", "group": "cheap"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "group_not_allowed"), "{}", r.text);
        assert_eq!(app.get("/api/v1/keys", Some(&ada.access)).await.json["total"], 0);
        let key = create(&app, &ada, json!({"name": "k"})).await;
        assert_eq!((key.status, key.json["group"].as_str()), (StatusCode::CREATED, Some("default")), "{}", key.text);
        let id = key.json["id"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"group": "vip"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "group_not_allowed"), "{}", r.text);
        assert_eq!(app.get(&format!("/api/v1/keys/{id}"), Some(&ada.access)).await.json["group"], "default");
        // An unknown group stays a 422.
        let r = create(&app, &ada, json!({"name": "x", "group": "gold"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

        // Only admins grant, only configured groups, only existing users.
        assert_eq!(grant(&app, &ada, &ada.id, json!(["cheap"])).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("/api/v1/admin/relay/users/{}/groups", bob.id), Some(&ada.access)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(grant(&app, &admin, &ada.id, json!(["gold"])).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        let nobody = skein_core::ids::new_id();
        assert_eq!(grant(&app, &admin, &nobody, json!(["cheap"])).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/admin/relay/users/{nobody}/groups"), Some(&admin.access)).await.status, StatusCode::NOT_FOUND);
        assert_eq!(grant(&app, &admin, "not-an-id", json!(["cheap"])).await.status, StatusCode::NOT_FOUND);

        // The admin grants cheap; then both create and move work.
        let r = grant(&app, &admin, &ada.id, json!(["cheap", "default", "cheap"])).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["groups"].clone(), r.json["is_default"].clone()), (json!(["default", "cheap"]), json!(false)));
        let r = create(&app, &ada, json!({"name": "cheap", "group": "cheap"})).await;
        assert_eq!((r.status, r.json["group"].as_str()), (StatusCode::CREATED, Some("cheap")), "{}", r.text);
        let cheap_secret = r.json["key"].as_str().unwrap().to_string();
        let r = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"group": "cheap"})).await;
        assert_eq!((r.status, r.json["group"].as_str()), (StatusCode::OK, Some("cheap")), "{}", r.text);
        let listed: Vec<String> = app.get("/api/v1/relay/groups", Some(&ada.access)).await.json.as_array().unwrap()
            .iter().map(|g| g["group"].as_str().unwrap().to_string()).collect();
        assert_eq!(listed, ["default", "cheap"]);

        // Other users' data never leak: bob still has only the default, and sees only his own.
        assert_eq!(app.get("/api/v1/relay/groups", Some(&bob.access)).await.json, json!([{"group": "default", "multiplier_permille": 1000}]));
        let r = create(&app, &bob, json!({"name": "b", "group": "cheap"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

        // A key works while its group is granted; taking the group away stops it at once on
        // this instance (the cheaper prices cannot be kept by an old key).
        assert_eq!(models(&app, &cheap_secret).await.status, StatusCode::OK);
        let r = grant(&app, &root, &ada.id, json!(["default"])).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = models(&app, &cheap_secret).await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("group_not_allowed")), "{}", r.text);

        // [] grants nothing: no key can be made, even in the default group.
        assert_eq!(grant(&app, &admin, &ada.id, json!([])).await.status, StatusCode::OK);
        let r = create(&app, &ada, json!({"name": "none"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "group_not_allowed"), "{}", r.text);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("administrator"), "{}", r.text);
        // null returns the user to the default.
        let r = grant(&app, &admin, &ada.id, serde_json::Value::Null).await;
        assert_eq!((r.json["groups"].clone(), r.json["is_default"].clone()), (json!(["default"]), json!(true)), "{}", r.text);
        assert_eq!(create(&app, &ada, json!({"name": "back"})).await.status, StatusCode::CREATED);
    }

    async fn new_users_get_the_configured_default_groups(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.relay.groups = vec!["default".into(), "vip".into()];
            c.relay.default_user_groups = vec!["vip".into()];
        })
        .await;
        let ada = app.register("ada").await;
        assert_eq!(app.get("/api/v1/relay/groups", Some(&ada.access)).await.json, json!([{"group": "vip", "multiplier_permille": 1000}]));
        // Omitting the group takes the first granted one; the unlisted default is refused.
        let r = create(&app, &ada, json!({"name": "k"})).await;
        assert_eq!((r.status, r.json["group"].as_str()), (StatusCode::CREATED, Some("vip")), "{}", r.text);
        let r = create(&app, &ada, json!({"name": "k2", "group": "default"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }

    async fn key_limits_are_clamped_to_the_servers_maximum(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.limits.api_per_key_per_minute = 3;
            c.limits.max_tokens_per_key_per_minute = 1_000;
        })
        .await;
        let ada = app.register("ada").await;
        let r = create(&app, &ada, json!({"name": "greedy", "rpm_limit": 1_000_000, "tpm_limit": 5_000_000})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["rpm_limit"].as_i64(), r.json["tpm_limit"].as_i64()), (Some(3), Some(1_000)), "{}", r.text);
        let secret = r.json["key"].as_str().unwrap().to_string();
        let id = r.json["id"].as_str().unwrap().to_string();
        // The clamped limit is the one enforced: the fourth request in a minute is refused.
        for _ in 0..3 {
            assert_eq!(models(&app, &secret).await.status, StatusCode::OK);
        }
        assert_eq!(models(&app, &secret).await.status, StatusCode::TOO_MANY_REQUESTS);
        // Updates clamp the same way; a lower limit is kept as asked.
        let r = app.patch(&format!("/api/v1/keys/{id}"), Some(&ada.access), json!({"rpm_limit": 99, "tpm_limit": 10})).await;
        assert_eq!((r.json["rpm_limit"].as_i64(), r.json["tpm_limit"].as_i64()), (Some(3), Some(10)), "{}", r.text);

        // A ceiling lowered later applies to keys stored before it, shown and enforced.
        let mut lowered_config = app.config.clone();
        lowered_config.limits.api_per_key_per_minute = 2;
        let mut app = app;
        app.config = lowered_config;
        let lowered = app.sibling().await;
        let r = lowered.get(&format!("/api/v1/keys/{id}"), Some(&ada.access)).await;
        assert_eq!(r.json["rpm_limit"].as_i64(), Some(2), "{}", r.text);
        for _ in 0..2 {
            assert_eq!(models(&lowered, &secret).await.status, StatusCode::OK);
        }
        assert_eq!(models(&lowered, &secret).await.status, StatusCode::TOO_MANY_REQUESTS);
    }
}
