//! Payment settings changed through the admin API (Admin → Payments): a provider an admin
//! sets takes the next order without a restart, secrets never come back (not in the
//! settings, not in the audit log), bad values are refused per field, stored settings
//! outlive a restart, a reset returns to skein.toml, and another instance sees a change at
//! once (PostgreSQL, over the bus).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::payments::{
    EPAY_KEY, epay_notification, epay_notify, epay_sign, fakes, order, order_status, pay_app,
    payment_config,
};
use crate::billing::quota;

const SETTINGS: &str = "/api/v1/admin/billing/payment-settings";

async fn settings(app: &TestApp, who: &Persona) -> skein_testkit::Resp {
    app.get(SETTINGS, Some(&who.access)).await
}

async fn put(app: &TestApp, who: &Persona, body: Value) -> skein_testkit::Resp {
    app.put(SETTINGS, Some(&who.access), body).await
}

/// An EPay section against the local fake at `base`.
fn epay(base: &str, key: Option<&str>) -> Value {
    let mut section =
        json!({"url": format!("{base}/epay/"), "pid": "1001", "methods": ["alipay", "wxpay"]});
    if let Some(key) = key {
        section["key"] = json!(key);
    }
    section
}

/// The error fields a 422 lists.
fn error_fields(r: &skein_testkit::Resp) -> Vec<String> {
    r.json["error"]["details"]["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

on_both_backends! {
    async fn an_admin_turns_on_epay_and_the_next_order_goes_through_it(backend) {
        let (base, fake) = fakes().await;
        // skein.toml has no [billing.payment] provider: top-up is off.
        let app = TestApp::spawn(backend).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let off = app.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert_eq!(off.json["enabled"], false, "{}", off.text);
        let refused = app.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 1000, "provider": "epay"})).await;
        assert_eq!((refused.status, refused.error_code()), (StatusCode::NOT_FOUND, "payments_disabled"));

        // Users may neither read nor change the settings.
        assert_eq!(settings(&app, &ada).await.status, StatusCode::FORBIDDEN);
        let r = put(&app, &ada, json!({"min_amount": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

        let r = put(&app, &root, json!({
            "public_url": "https://skein.example.com", "currency": "CNY", "quota_per_unit": 50_000,
            "epay": epay(&base, Some(EPAY_KEY)),
        })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(!r.text.contains(EPAY_KEY), "the key came back: {}", r.text);
        assert_eq!(r.json["values"]["enabled"], true);
        assert_eq!(r.json["values"]["epay"]["key_set"], true);
        assert_eq!(r.json["sources"]["epay"], "stored");
        assert_eq!(r.json["sources"]["min_amount"], "file");
        assert_eq!(r.json["defaults"]["enabled"], false, "the file's values, for a reset");
        let read = settings(&app, &root).await;
        assert_eq!(read.status, StatusCode::OK);
        assert!(!read.text.contains(EPAY_KEY), "the key came back: {}", read.text);
        assert_eq!(read.json["values"]["epay"]["url"], format!("{base}/epay/"));

        // No restart: the user's next order goes through EPay, signed with the stored key,
        // and the gateway's signed notification credits it.
        let options = app.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert_eq!((options.json["enabled"].as_bool(), options.json["quota_per_unit"].as_i64()), (Some(true), Some(50_000)), "{}", options.text);
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        let (path, query) = created["pay_url"].as_str().unwrap().split_once('?').unwrap();
        assert_eq!(path, format!("{base}/epay/submit.php"));
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["sign"], epay_sign(&params, EPAY_KEY));
        assert_eq!(params["notify_url"], "https://skein.example.com/api/v1/billing/payment/epay/notify");
        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        let r = epay_notify(&app, &epay_notification(&id, "10.00", EPAY_KEY)).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "success"));
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000);

        // A change without the key keeps it (write-only); an empty key clears it, which EPay
        // cannot work without: refused, naming the field, nothing stored.
        let r = put(&app, &root, json!({"epay": epay(&base, None)})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["values"]["epay"]["key_set"], true);
        let r = put(&app, &root, json!({"epay": epay(&base, Some(""))})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(r.json["error"]["details"]["field"], "epay.key");
        assert_eq!(settings(&app, &root).await.json["values"]["epay"]["key_set"], true);

        // An order made under the old key, then the key rotated: notifications are checked
        // with the new key only, and reconciliation still finds the old order paid (the
        // fake answers only to the old key).
        let pending = order(&app, &ada, json!({"amount": 2000, "provider": "epay"})).await;
        let pending_id = pending["order"]["id"].as_str().unwrap().to_string();
        let r = put(&app, &root, json!({"epay": epay(&base, Some("rotated-key-456"))})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let old_key = epay_notify(&app, &epay_notification(&pending_id, "20.00", EPAY_KEY)).await;
        assert_eq!(old_key.status, StatusCode::BAD_REQUEST, "a replaced key verifies nothing: {}", old_key.text);
        fake.lock().unwrap().epay_paid.insert(pending_id.clone(), "20.00".into());
        let r = app.post(&format!("/api/v1/admin/billing/orders/{pending_id}/reconcile"), Some(&root.access), json!({})).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("paid")), "{}", r.text);
        let fresh = order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
        let (_, query) = fresh["pay_url"].as_str().unwrap().split_once('?').unwrap();
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["sign"], epay_sign(&params, "rotated-key-456"), "new orders use the new key");

        // The audit log has each change, and no secret.
        let audit = app.get("/api/v1/admin/audit?per_page=100", Some(&root.access)).await;
        assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
        let changes = audit.json["items"].as_array().unwrap().iter()
            .filter(|e| e["action"] == "PUT /api/v1/admin/billing/payment-settings").count();
        assert!(changes >= 4, "{}", audit.text);
        for secret in [EPAY_KEY, "rotated-key-456"] {
            assert!(!audit.text.contains(secret), "a secret is in the audit log: {}", audit.text);
        }
    }

    async fn bad_values_are_refused_naming_each_field_in_both_languages(backend) {
        let (base, _fake) = fakes().await;
        let app = pay_app(backend, payment_config(&base, Currency::Cny)).await;
        let root = app.root().await;
        let r = put(&app, &root, json!({"min_amount": 0, "amounts": [500_000], "plan_reminder_days": 61, "currency": "EUR"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{}", r.text);
        let fields = error_fields(&r);
        for field in ["min_amount", "amounts", "plan_reminder_days", "currency"] {
            assert!(fields.iter().any(|f| f == field), "{field} not reported: {}", r.text);
        }
        // EPay settles in CNY: USD with EPay configured names the currency.
        let zh = app.send(app.client.put(app.url(SETTINGS)).bearer_auth(&root.access)
            .header("accept-language", "zh-CN").json(&json!({"currency": "USD"}))).await;
        assert_eq!(zh.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", zh.text);
        assert_eq!(zh.json["error"]["details"]["field"], "currency");
        assert!(zh.json["error"]["message"].as_str().unwrap().contains("人民币"), "{}", zh.text);
        let r = put(&app, &root, json!({"public_url": "ftp://x", "reset": ["no_such"]})).await;
        let fields = error_fields(&r);
        assert!(fields.contains(&"public_url".to_string()) && fields.contains(&"reset".to_string()), "{}", r.text);
        let r = put(&app, &root, json!({"stripe": {"secret_key": "", "webhook_secret": "whsec_x"}})).await;
        assert_eq!(r.json["error"]["details"]["field"], "stripe.secret_key", "{}", r.text);
        // Nothing of any refused change was stored.
        let read = settings(&app, &root).await;
        assert!(read.json["sources"].as_object().unwrap().values().all(|s| s == "file"), "{}", read.text);
        assert_eq!(read.json["values"]["min_amount"], 100);
    }

    async fn stored_settings_survive_a_restart_and_a_reset_returns_to_the_file(backend) {
        let (base, _fake) = fakes().await;
        let mut app = pay_app(backend, payment_config(&base, Currency::Cny)).await;
        let root = app.root().await;
        let ada = app.register("ada").await;
        let r = put(&app, &root, json!({"min_amount": 500, "amounts": [500, 1000], "max_pending_orders": 2, "stripe": null})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["values"]["stripe"], Value::Null, "turned off over the file's");
        assert_eq!(r.json["defaults"]["stripe"]["secret_key_set"], true);

        // Restart: a new server on the same database and data directory.
        app.begin_shutdown().await.unwrap().unwrap();
        let restarted = app.sibling().await;
        let read = settings(&restarted, &root).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.text);
        assert_eq!(read.json["values"]["min_amount"], 500);
        assert_eq!(read.json["values"]["max_pending_orders"], 2);
        assert_eq!(read.json["sources"]["stripe"], "stored");
        assert_eq!(read.json["load_error"], Value::Null);
        let options = restarted.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        let providers: Vec<&str> = options.json["providers"].as_array().unwrap().iter().map(|p| p["provider"].as_str().unwrap()).collect();
        assert_eq!(providers, vec!["epay"], "{}", options.text);
        assert_eq!(options.json["min_amount"], 500);
        let small = restarted.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 200, "provider": "epay"})).await;
        assert_eq!(small.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", small.text);

        // Reset one, then everything: the file's values again.
        let r = put(&restarted, &root, json!({"reset": ["max_pending_orders"]})).await;
        assert_eq!((r.json["values"]["max_pending_orders"].as_i64(), r.json["sources"]["max_pending_orders"].as_str()), (Some(5), Some("file")), "{}", r.text);
        assert_eq!(r.json["sources"]["min_amount"], "stored");
        let r = restarted.call(Method::DELETE, SETTINGS, Some(&root.access), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.json["sources"].as_object().unwrap().values().all(|s| s == "file"), "{}", r.text);
        assert_eq!(r.json["values"]["min_amount"], 100);
        assert_eq!(r.json["values"]["stripe"]["secret_key_set"], true);
        let options = restarted.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert_eq!(options.json["providers"].as_array().unwrap().len(), 2, "{}", options.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_sees_a_change_at_once_on_postgres() {
    let (base, _fake) = fakes().await;
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().await;
    let root = a.root().await;
    let ada = a.register("ada").await;
    let r = put(
        &a,
        &root,
        json!({"public_url": "https://skein.example.com", "epay": epay(&base, Some(EPAY_KEY))}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Well within the 30 s periodic reload: the bus's note did it.
    let mut seen = false;
    for _ in 0..50 {
        let options = b
            .get("/api/v1/billing/payment/options", Some(&ada.access))
            .await;
        if options.json["enabled"] == true {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "the other instance never saw the change");
    let created = order(
        &b,
        &ada,
        json!({"amount": 1000, "provider": "epay", "method": "alipay"}),
    )
    .await;
    let (_, query) = created["pay_url"]
        .as_str()
        .unwrap()
        .split_once('?')
        .unwrap();
    let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
    assert_eq!(
        params["sign"],
        epay_sign(&params, EPAY_KEY),
        "the key opened there"
    );
}
