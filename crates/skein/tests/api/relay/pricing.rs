//! Pricing beyond one model's rates: per-group multipliers (exact ledger amounts through chat
//! and the other routes), the built-in default prices an admin loads where none are set, and
//! `relay.allow_unpriced`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::{MockOpenAi, prompt_tokens, reply_to};
use skein_testkit::{Persona, Price, TestApp, both_backends, on_both_backends};

const START: i64 = 1_000_000;

/// A channel serving `models` to both groups, and `user` funded with [`START`].
async fn serve(app: &TestApp, root: &Persona, user: &Persona, models: Value) -> MockOpenAi {
    let upstream = MockOpenAi::start("sk-upstream-pricing").await;
    let groups: Vec<String> = app.config.relay.groups.clone();
    app.add_channel(root, json!({
        "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
        "models": models, "groups": groups
    }))
    .await;
    app.fund(root, user, START).await;
    upstream
}

async fn price(app: &TestApp, root: &Persona, model: &str, input: i64, output: i64) {
    app.set_price(root, model, Price::tokens(input, output))
        .await;
}

/// A new key of `group`: its secret and its id.
async fn key(app: &TestApp, user: &Persona, group: &str) -> (String, String) {
    let r = app
        .post(
            "/api/v1/keys",
            Some(&user.access),
            json!({"name": group, "group": group}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (
        r.json["key"].as_str().unwrap().to_string(),
        r.json["id"].as_str().unwrap().to_string(),
    )
}

async fn call(app: &TestApp, key: &str, path: &str, body: Value) -> skein_testkit::Resp {
    app.send(app.client.post(app.url(path)).bearer_auth(key).json(&body))
        .await
}

/// The balance and the usage records once `records` requests are settled.
async fn settled(app: &TestApp, who: &Persona, records: i64) -> (i64, Vec<Value>) {
    for _ in 0..500 {
        let quota = app.get("/api/v1/billing/quota", Some(&who.access)).await;
        let usage = app.get("/api/v1/billing/usage", Some(&who.access)).await;
        let items = usage.json["items"].as_array().cloned().unwrap_or_default();
        if items.len() == usize::try_from(records).unwrap() && quota.json["reserved"] == 0 {
            let quota = app.get("/api/v1/billing/quota", Some(&who.access)).await;
            return (quota.json["balance"].as_i64().unwrap(), items);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{records} requests were never settled");
}

/// The record of the request made with `key_id` for `model` (records made in the same
/// millisecond have no order).
fn record_of(records: &[Value], key_id: &str, model: &str) -> Value {
    records
        .iter()
        .find(|r| r["key_id"] == key_id && r["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no record for {key_id} {model} in {records:?}"))
}

/// `ceil(n × permille / 1000)`, the multiplier applied to a whole-unit amount.
fn scaled(units: i64, permille: i64) -> i64 {
    (units * permille + 999) / 1000
}

on_both_backends! {
    async fn a_group_multiplier_scales_every_route_exactly(backend) {
        let app = TestApp::spawn_with(backend, |c| c.relay.groups = vec!["default".into(), "vip".into()]).await;
        let root = app.root().await;
        let user = app.register("ada").await;
        let _upstream = serve(&app, &root, &user, json!(["gpt-test", "emb-test"])).await;
        price(&app, &root, "gpt-test", 2_000_000, 6_000_000).await;
        price(&app, &root, "emb-test", 3_000_000, 0).await;

        // Every configured group is listed, unset ones at ×1.0.
        let r = app.get("/api/v1/admin/groups", Some(&root.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json[0]["group"], "default");
        assert_eq!(r.json[1]["multiplier_permille"], 1000);
        assert!(r.json[1]["updated_at"].is_null());
        // Only admins, only configured groups, only sane multipliers.
        let r = app.put("/api/v1/admin/groups/vip", Some(&user.access), json!({"multiplier_permille": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.put("/api/v1/admin/groups/gold", Some(&root.access), json!({"multiplier_permille": 900})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = app.put("/api/v1/admin/groups/vip", Some(&root.access), json!({"multiplier_permille": -1})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        // 0.777: chosen so that rounding matters.
        let r = app.put("/api/v1/admin/groups/vip", Some(&root.access), json!({"multiplier_permille": 777})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["group"].as_str(), r.json["multiplier_permille"].as_i64()), (Some("vip"), Some(777)));
        assert!(r.json["updated_at"].is_string());
        assert_eq!(app.get("/api/v1/admin/groups", Some(&root.access)).await.json[1]["multiplier_permille"], 777);

        // Groups are given, not chosen: the user needs the admin's grant for vip.
        let r = app.put(&format!("/api/v1/admin/relay/users/{}/groups", user.id), Some(&root.access), json!({"groups": ["default", "vip"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let vip = key(&app, &user, "vip").await;
        let plain = key(&app, &user, "default").await;
        let messages = json!([{"role": "user", "content": "hello there relay friend"}]);
        let full = prompt_tokens(&messages) * 2 + reply_to(&messages).split_whitespace().count() as i64 * 6;

        // Chat (the chat pipeline's bill): the rates times 0.777, rounded up once.
        let r = call(&app, &vip.0, "/v1/chat/completions", json!({"model": "gpt-test", "messages": messages})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (balance, records) = settled(&app, &user, 1).await;
        let record = record_of(&records, &vip.1, "gpt-test");
        let vip_cost = scaled(full, 777);
        assert_ne!(vip_cost * 1000, full * 777, "the case must exercise rounding");
        assert_eq!(balance, START - vip_cost);
        assert_eq!(record["cost"].as_i64(), Some(vip_cost), "{record}");
        let pricing: Value = serde_json::from_str(record["pricing"].as_str().unwrap()).unwrap();
        assert_eq!(pricing["multiplier_permille"], 777);
        assert_eq!(pricing["group"], "vip");
        assert_eq!(pricing["input_per_mtok"], 2_000_000);

        // The default group is untouched.
        let r = call(&app, &plain.0, "/v1/chat/completions", json!({"model": "gpt-test", "messages": messages})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (balance, records) = settled(&app, &user, 2).await;
        let record = record_of(&records, &plain.1, "gpt-test");
        assert_eq!(record["cost"].as_i64(), Some(full));
        assert_eq!(balance, START - vip_cost - full);
        let pricing: Value = serde_json::from_str(record["pricing"].as_str().unwrap()).unwrap();
        assert_eq!(pricing["multiplier_permille"], 1000);

        // Embeddings (the shared meter): 5 tokens × 3 = 15 units × 0.777 = 11.655 → 12.
        let r = call(&app, &vip.0, "/v1/embeddings", json!({"model": "emb-test", "input": ["the quick brown fox", "jumps"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (balance, records) = settled(&app, &user, 3).await;
        let record = record_of(&records, &vip.1, "emb-test");
        assert_eq!(record["cost"].as_i64(), Some(12));
        assert_eq!(balance, START - vip_cost - full - 12);
        let pricing: Value = serde_json::from_str(record["pricing"].as_str().unwrap()).unwrap();
        assert_eq!(pricing["multiplier_permille"], 777);
    }

    async fn unpriced_models_are_refused_unless_allowed(backend) {
        for allow in [false, true] {
            let app = TestApp::spawn_with(backend, |c| c.relay.allow_unpriced = allow).await;
            let root = app.root().await;
            let user = app.register("ada").await;
            let _upstream = serve(&app, &root, &user, json!(["free-test"])).await;
            let (key, key_id) = key(&app, &user, "default").await;
            let models = app.send(app.client.get(app.url("/v1/models")).bearer_auth(&key)).await;
            assert_eq!(models.json["data"].as_array().map(Vec::len), Some(usize::from(allow)));
            let messages = json!([{"role": "user", "content": "hello"}]);
            let r = call(&app, &key, "/v1/chat/completions", json!({"model": "free-test", "messages": messages})).await;
            if !allow {
                assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
                assert_eq!(r.error_code(), "model_not_priced");
                let r = call(&app, &key, "/v1/embeddings", json!({"model": "free-test", "input": "x"})).await;
                assert_eq!(r.error_code(), "model_not_priced");
                continue;
            }
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let (balance, records) = settled(&app, &user, 1).await;
            let record = record_of(&records, &key_id, "free-test");
            assert_eq!(balance, START, "an unpriced model is served free");
            assert_eq!(record["cost"].as_i64(), Some(0));
            assert!(record["pricing"].is_null(), "{record}");
            assert_eq!(record["status"], "ok_unpriced");
            assert!(record["prompt_tokens"].as_i64().unwrap() > 0);
            let r = call(&app, &key, "/v1/embeddings", json!({"model": "free-test", "input": "x y"})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let (balance, records) = settled(&app, &user, 2).await;
            let record = records.iter().find(|r| r["prompt_tokens"] == 2).cloned().unwrap_or_default();
            assert_eq!((balance, record["cost"].as_i64()), (START, Some(0)));
            assert!(record["pricing"].is_null(), "{record}");
            assert_eq!(record["status"], "ok_unpriced");
        }
    }
}

both_backends! {
    async fn default_prices_are_listed_and_loaded_only_where_missing(app) {
        let root = app.root().await;
        let user = app.register("ada").await;
        assert_eq!(app.get("/api/v1/admin/pricing/defaults", Some(&user.access)).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post("/api/v1/admin/pricing/defaults", Some(&user.access), json!({})).await.status, StatusCode::FORBIDDEN);
        let r = app.get("/api/v1/admin/pricing/defaults", Some(&root.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let defaults = r.json.as_array().unwrap().clone();
        let mini = defaults.iter().find(|d| d["model"] == "gpt-4o-mini").unwrap();
        // $0.15 / $0.60 per million tokens at 500,000 units per USD.
        assert_eq!((mini["input_per_mtok"].as_i64(), mini["output_per_mtok"].as_i64()), (Some(75_000), Some(300_000)));
        assert!(mini["as_of"].as_str().is_some_and(|d| d.len() == 10));
        assert!(mini["source"].as_str().is_some_and(|s| s.starts_with("https://")));
        let dalle = defaults.iter().find(|d| d["model"] == "dall-e-3").unwrap();
        assert!(dalle["per_call"].as_i64().unwrap() > 0);
        // Nothing is priced until an admin asks.
        assert_eq!(app.get("/api/v1/pricing", Some(&user.access)).await.json, json!([]));

        // Served but unpriced models are listed for the admin to price, with their channels.
        let _upstream = serve(&app, &root, &user, json!(["gpt-4o", "gpt-4o-mini", "house-model"])).await;
        assert_eq!(app.get("/api/v1/admin/pricing/unpriced", Some(&user.access)).await.status, StatusCode::FORBIDDEN);
        let r = app.get("/api/v1/admin/pricing/unpriced", Some(&root.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json, json!([
            {"model": "gpt-4o", "channels": ["primary"], "has_default": true},
            {"model": "gpt-4o-mini", "channels": ["primary"], "has_default": true},
            {"model": "house-model", "channels": ["primary"], "has_default": false},
        ]));

        // An admin's own price survives loading the defaults.
        price(&app, &root, "gpt-4o", 7, 9).await;
        let r = app.post("/api/v1/admin/pricing/defaults", Some(&root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let added: Vec<&str> = r.json["added"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(r.json["kept"], json!(["gpt-4o"]));
        assert_eq!(added.len(), defaults.len() - 1);
        assert!(added.contains(&"gpt-4o-mini") && !added.contains(&"gpt-4o"));
        let prices = app.get("/api/v1/pricing", Some(&user.access)).await.json;
        let of = |model: &str| prices.as_array().unwrap().iter().find(|p| p["model"] == model).unwrap().clone();
        assert_eq!((of("gpt-4o")["input_per_mtok"].as_i64(), of("gpt-4o")["output_per_mtok"].as_i64()), (Some(7), Some(9)));
        assert_eq!(of("gpt-4o-mini")["input_per_mtok"], 75_000);
        // What no default covers is still listed.
        let r = app.get("/api/v1/admin/pricing/unpriced", Some(&root.access)).await;
        assert_eq!(r.json, json!([{"model": "house-model", "channels": ["primary"], "has_default": false}]));

        // Editable like any price, and never overwritten by a second load.
        price(&app, &root, "gpt-4o-mini", 1, 2).await;
        let r = app.post("/api/v1/admin/pricing/defaults", Some(&root.access), json!({})).await;
        assert_eq!(r.json["added"], json!([]));
        assert_eq!(r.json["kept"].as_array().map(Vec::len), Some(defaults.len()));
        let prices = app.get("/api/v1/pricing", Some(&user.access)).await.json;
        let mini = prices.as_array().unwrap().iter().find(|p| p["model"] == "gpt-4o-mini").unwrap();
        assert_eq!(mini["input_per_mtok"], 1);
    }
}

on_both_backends! {
    async fn chat_in_the_web_app_pays_the_first_groups_multiplier(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let s = skein_testkit::relay_world(&app, skein_testkit::Upstream::OpenAi).await;
        let r = app.put("/api/v1/admin/groups/default", Some(&s.root.access), json!({"multiplier_permille": 333})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The model list shows the group's prices: 2,000,000 × 0.333 and 6,000,000 × 0.333.
        let models = app.get("/api/v1/chat/models", Some(&s.user.access)).await;
        assert_eq!(models.status, StatusCode::OK, "{}", models.text);
        let listed = models.json.as_array().or_else(|| models.json["items"].as_array()).or_else(|| models.json["data"].as_array()).cloned().unwrap_or_default();
        let model = listed.iter().find(|m| m["id"] == "gpt-test").unwrap_or_else(|| panic!("{}", models.text));
        assert_eq!((model["input_price"].as_i64(), model["output_price"].as_i64()), (Some(666_000), Some(1_998_000)));
        let r = app.post("/api/v1/chat/conversations", Some(&s.user.access),
            json!({"title": "t", "model": "gpt-test", "system_prompt": "be brief"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&s.user.access).json(&json!({"content": "hello there"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let text = r.text().await.unwrap();
        let usage: Value = text
            .split("\n\n")
            .find(|e| e.lines().any(|l| l == "event: usage"))
            .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .unwrap_or_else(|| panic!("no usage event in {text}"));
        // "be brief" + "hello there" at 2, "echo: hello there" at 6: 26 units × 0.333 = 8.658 → 9.
        assert_eq!(usage["cost"], 9, "{usage}");
        let (balance, records) = settled(&app, &s.user, 1).await;
        assert_eq!(balance, 1_000_000 - 9);
        let pricing: Value = serde_json::from_str(records[0]["pricing"].as_str().unwrap()).unwrap();
        assert_eq!((pricing["group"].as_str(), pricing["multiplier_permille"].as_i64()), (Some("default"), Some(333)));
    }
}
