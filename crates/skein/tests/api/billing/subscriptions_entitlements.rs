//! A subscription plan's group and model list, enforced by the relay through
//! `BillingApi::entitlements`: while the plan is active its subscriber may use only the
//! plan's models (403 `model_not_in_plan` in OpenAI's error shape, English or Chinese) and
//! may route in the plan's group; once the plan ends (expired or refunded) both are gone.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Price, TestApp, Upstream, WorldSpec, on_both_backends};

use crate::billing::payments::payment_config;
use crate::billing::subscriptions::{backdate, buy_and_pay, make_plan, run, subscriptions};

async fn chat(app: &TestApp, key: &str, model: &str, lang: &str) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .header("accept-language", lang)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})),
    )
    .await
}

fn refused_as_not_in_plan(r: &skein_testkit::Resp) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "model_not_in_plan", "{}", r.text);
    assert_eq!(r.json["error"]["type"], "permission_error", "{}", r.text);
}

async fn model_ids(app: &TestApp, key: &str) -> Vec<String> {
    let r = app
        .send(app.client.get(app.url("/v1/models")).bearer_auth(key))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

on_both_backends! {
    async fn a_plan_limits_models_and_grants_its_group_while_active(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.billing.payment = payment_config("http://127.0.0.1:9", Currency::Cny);
            c.relay.groups = vec!["default".into(), "pro".into()];
            c.relay.default_user_groups = vec!["default".into()];
        })
        .await;
        let s = WorldSpec::new(Upstream::OpenAi)
            .model("gpt-test", Some("gpt-upstream"))
            .model("gpt-other", None)
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            .price("gpt-other", Price::tokens(2_000_000, 6_000_000))
            .channel(json!({"groups": ["default", "pro"]}))
            .balance(50_000_000)
            .build(&app)
            .await;
        let bob = app.register("bob").await;
        let plan = make_plan(&app, &s.root, json!({"name_en": "Test Pro", "name_zh": "测试专业版", "price": 2900, "period": "month",
            "quota_per_period": 1_000_000, "group_name": "pro", "models": ["gpt-test"]})).await;
        let plan_id = plan["id"].as_str().unwrap().to_string();

        // No plan yet: every model, and no key in the plan's group.
        assert_eq!(chat(&app, &s.key, "gpt-other", "en").await.status, StatusCode::OK);
        let r = app.post("/api/v1/keys", Some(&s.user.access), json!({"name": "pro", "group": "pro"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "group_not_allowed"), "{}", r.text);

        // Subscribed: only the plan's models, on every key; refusals cost nothing.
        buy_and_pay(&app, &s.user, &plan_id).await;
        let before = app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json["balance"].as_i64().unwrap();
        let r = chat(&app, &s.key, "gpt-other", "en").await;
        refused_as_not_in_plan(&r);
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("Test Pro") && message.contains("gpt-other") && message.contains("gpt-test"), "{message}");
        let r = chat(&app, &s.key, "gpt-other", "zh-CN").await;
        refused_as_not_in_plan(&r);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("测试专业版"), "{}", r.text);
        assert_eq!(app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json["balance"].as_i64().unwrap(), before);
        assert_eq!(chat(&app, &s.key, "gpt-test", "en").await.status, StatusCode::OK);
        assert_eq!(model_ids(&app, &s.key).await, ["gpt-test"]);

        // The plan's group is theirs now, first among their groups: a new key lands in it.
        let r = app.get("/api/v1/relay/groups", Some(&s.user.access)).await;
        assert_eq!((r.json[0]["group"].as_str(), r.json[1]["group"].as_str()), (Some("pro"), Some("default")), "{}", r.text);
        let r = app.post("/api/v1/keys", Some(&s.user.access), json!({"name": "plain"})).await;
        assert_eq!((r.status, r.json["group"].as_str()), (StatusCode::CREATED, Some("pro")), "{}", r.text);
        let pro_key = r.json["key"].as_str().unwrap().to_string();
        assert_eq!(chat(&app, &pro_key, "gpt-test", "en").await.status, StatusCode::OK);
        refused_as_not_in_plan(&chat(&app, &pro_key, "gpt-other", "en").await);

        // Someone without the plan is not affected.
        let bob_key = app.api_key(&bob, "bob").await;
        app.fund(&s.root, &bob, 1_000_000).await;
        assert_eq!(chat(&app, &bob_key, "gpt-other", "en").await.status, StatusCode::OK);

        // The plan ends: every model again, and the plan's group (and its key) are gone.
        let sub = subscriptions(&app, &s.user).await[0]["id"].as_str().unwrap().to_string();
        backdate(&app, &sub, 40).await;
        run(&app, &s.root).await;
        assert_eq!(chat(&app, &s.key, "gpt-other", "en").await.status, StatusCode::OK);
        let r = chat(&app, &pro_key, "gpt-test", "en").await;
        assert_eq!((r.status, r.json["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("group_not_allowed")), "{}", r.text);
        let mut ids = model_ids(&app, &s.key).await;
        ids.sort();
        assert_eq!(ids, ["gpt-other", "gpt-test"]);
        let groups: Vec<Value> = app.get("/api/v1/relay/groups", Some(&s.user.access)).await.json.as_array().unwrap().clone();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0]["group"], "default");
    }
}
