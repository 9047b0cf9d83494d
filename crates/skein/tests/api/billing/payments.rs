//! Top-up through payment providers, against local fakes of EPay and Stripe that check what
//! Skein signs and send signed notifications: paid, duplicated (also all at once), forged,
//! stale, for the wrong amount, late (after the order expired), and lost (found by
//! reconciliation). Each order is credited exactly once or not at all, and the ledger stays
//! consistent (`skein billing verify`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use skein_billing::payment::config::{EpayConfig, StripeConfig};
use skein_billing::payment::{Currency, PaymentConfig};
use skein_core::secret::Secret;
use skein_testkit::{Backend, Persona, TestApp, on_both_backends};

use crate::billing::{quota, verify_clean};

pub(crate) const EPAY_KEY: &str = "epay-merchant-key-123";
pub(crate) const STRIPE_SK: &str = "sk_test_skein";
pub(crate) const STRIPE_WHSEC: &str = "whsec_skein_test";

/// What the fake providers saw and what they say was paid.
#[derive(Default)]
pub(crate) struct Fake {
    /// EPay orders the fake says are paid: out_trade_no → money.
    pub(crate) epay_paid: HashMap<String, String>,
    /// Stripe sessions made: id → the form Skein sent.
    sessions: HashMap<String, HashMap<String, String>>,
    /// Sessions the fake says are paid.
    stripe_paid: Vec<String>,
    /// Requests with a wrong key or without idempotency.
    pub(crate) refused: usize,
}

pub(crate) type Shared = Arc<Mutex<Fake>>;

async fn epay_query(
    State(fake): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let mut fake = fake.lock().unwrap();
    if q.get("key").map(String::as_str) != Some(EPAY_KEY)
        || q.get("act").map(String::as_str) != Some("order")
    {
        fake.refused += 1;
        return Json(json!({"code": -1, "msg": "KEY校验失败"}));
    }
    let no = q.get("out_trade_no").cloned().unwrap_or_default();
    match fake.epay_paid.get(&no) {
        Some(money) => Json(
            json!({"code": 1, "msg": "查询订单号成功！", "trade_no": format!("T{no}"), "out_trade_no": no, "type": "alipay", "pid": "1001", "money": money, "status": 1}),
        ),
        None => Json(json!({"code": 1, "out_trade_no": no, "money": "0", "status": 0})),
    }
}

async fn stripe_create(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (AxumStatus, Json<Value>) {
    let mut fake = fake.lock().unwrap();
    let auth_ok = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {STRIPE_SK}"));
    if !auth_ok || headers.get("idempotency-key").is_none() {
        fake.refused += 1;
        return (
            AxumStatus::UNAUTHORIZED,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
            ),
        );
    }
    let id = format!("cs_test_{}", fake.sessions.len() + 1);
    fake.sessions.insert(id.clone(), form);
    (
        AxumStatus::OK,
        Json(
            json!({"id": id, "object": "checkout.session", "url": format!("https://checkout.stripe.test/c/pay/{id}")}),
        ),
    )
}

async fn stripe_get(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> (AxumStatus, Json<Value>) {
    let fake = fake.lock().unwrap();
    let auth_ok = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {STRIPE_SK}"));
    let Some(form) = fake.sessions.get(&id).filter(|_| auth_ok) else {
        return (
            AxumStatus::NOT_FOUND,
            Json(json!({"error": {"message": "No such checkout.session"}})),
        );
    };
    let paid = fake.stripe_paid.contains(&id);
    (AxumStatus::OK, Json(session_object(&id, form, paid)))
}

fn session_object(id: &str, form: &HashMap<String, String>, paid: bool) -> Value {
    json!({
        "id": id,
        "object": "checkout.session",
        "client_reference_id": form["client_reference_id"],
        "amount_total": form["line_items[0][price_data][unit_amount]"].parse::<i64>().unwrap(),
        "currency": form["line_items[0][price_data][currency]"],
        "payment_status": if paid { "paid" } else { "unpaid" },
        "status": if paid { "complete" } else { "open" },
    })
}

/// Starts the fakes on one loopback port: EPay under `/epay/`, Stripe's API at the root.
pub(crate) async fn fakes() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/epay/api.php", get(epay_query))
        .route("/v1/checkout/sessions", post(stripe_create))
        .route("/v1/checkout/sessions/{id}", get(stripe_get))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

pub(crate) fn payment_config(base: &str, currency: Currency) -> PaymentConfig {
    PaymentConfig {
        public_url: Some("https://skein.example.com".into()),
        currency,
        quota_per_unit: 50_000,
        amounts: vec![1_000, 5_000],
        min_amount: 100,
        max_amount: 100_000,
        order_ttl_secs: 3600,
        reconcile_every_secs: 3600,
        max_pending_orders: 5,
        subscription_every_secs: 3600,
        plan_reminder_days: 3,
        epay: (currency == Currency::Cny).then(|| EpayConfig {
            url: format!("{base}/epay/"),
            pid: "1001".into(),
            key: Secret::new(EPAY_KEY),
            methods: vec!["alipay".into(), "wxpay".into()],
        }),
        stripe: Some(StripeConfig {
            secret_key: Secret::new(STRIPE_SK),
            webhook_secret: Secret::new(STRIPE_WHSEC),
            api_base: base.to_string(),
            tolerance_secs: 300,
        }),
        alipay: None,
        wechat: None,
    }
}

pub(crate) async fn pay_app(backend: Backend, payment: PaymentConfig) -> TestApp {
    TestApp::spawn_with(backend, |c| c.billing.payment = payment).await
}

pub(crate) fn epay_sign(params: &BTreeMap<String, String>, key: &str) -> String {
    let text = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && *k != "sign" && *k != "sign_type")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(Md5::digest(format!("{text}{key}").as_bytes()))
}

/// A notification as the EPay gateway sends it, signed with `key`.
pub(crate) fn epay_notification(order_id: &str, money: &str, key: &str) -> String {
    let mut p = BTreeMap::new();
    for (k, v) in [
        ("pid", "1001"),
        ("trade_no", &format!("T{order_id}")),
        ("out_trade_no", order_id),
        ("type", "alipay"),
        ("name", "Skein top-up"),
        ("money", money),
        ("trade_status", "TRADE_SUCCESS"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    let sign = epay_sign(&p, key);
    p.insert("sign".into(), sign);
    p.insert("sign_type".into(), "MD5".into());
    serde_urlencoded::to_string(&p).unwrap()
}

pub(crate) async fn epay_notify(app: &TestApp, query: &str) -> skein_testkit::Resp {
    app.send(
        app.client
            .get(app.url(&format!("/api/v1/billing/payment/epay/notify?{query}"))),
    )
    .await
}

pub(crate) fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn stripe_webhook(
    app: &TestApp,
    body: &str,
    signature: &str,
) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url("/api/v1/billing/payment/stripe/notify"))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) async fn order(app: &TestApp, who: &Persona, body: Value) -> Value {
    let r = app
        .post("/api/v1/billing/orders", Some(&who.access), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json
}

pub(crate) async fn order_status(app: &TestApp, who: &Persona, id: &str) -> String {
    let r = app
        .get(&format!("/api/v1/billing/orders/{id}"), Some(&who.access))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["status"].as_str().unwrap().to_string()
}

pub(crate) async fn topups(app: &TestApp, who: &Persona) -> Vec<Value> {
    let r = app
        .get(
            "/api/v1/billing/ledger?kind=topup&per_page=100",
            Some(&who.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

on_both_backends! {
    async fn epay_orders_are_credited_exactly_once(backend) {
        let (base, fake) = fakes().await;
        let app = pay_app(backend, payment_config(&base, Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;

        let options = app.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert_eq!(options.json["enabled"], true, "{}", options.text);
        assert_eq!(options.json["currency"], "CNY");
        assert_eq!(options.json["quota_per_unit"], 50_000);

        let created = order(&app, &ada, json!({"amount": 1000, "provider": "epay", "method": "wxpay"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        assert_eq!(created["order"]["quota"], 500_000);
        assert_eq!(created["order"]["status"], "pending");
        // The payer is sent to submit.php with a correctly signed request.
        let pay_url = created["pay_url"].as_str().unwrap();
        let (path, query) = pay_url.split_once('?').unwrap();
        assert_eq!(path, format!("{base}/epay/submit.php"));
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["out_trade_no"], id);
        assert_eq!(params["money"], "10.00");
        assert_eq!(params["type"], "wxpay");
        assert_eq!(params["notify_url"], "https://skein.example.com/api/v1/billing/payment/epay/notify");
        assert_eq!(params["sign"], epay_sign(&params, EPAY_KEY));

        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        // A forged notification (signed with another key) credits nothing.
        let forged = epay_notify(&app, &epay_notification(&id, "10.00", "not-the-key")).await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.text);
        assert_eq!(order_status(&app, &ada, &id).await, "pending");

        // The real one, then the same again four times at once: one credit.
        let genuine = epay_notification(&id, "10.00", EPAY_KEY);
        let first = epay_notify(&app, &genuine).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.text, "success");
        let again = futures::future::join_all((0..4).map(|_| epay_notify(&app, &genuine))).await;
        assert!(again.iter().all(|r| r.status == StatusCode::OK && r.text == "success"));
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000);
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // Paid for less than the order: the order fails, nothing is credited.
        let short = order(&app, &ada, json!({"amount": 5000, "provider": "epay"})).await;
        let short_id = short["order"]["id"].as_str().unwrap().to_string();
        let r = epay_notify(&app, &epay_notification(&short_id, "0.50", EPAY_KEY)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(order_status(&app, &ada, &short_id).await, "failed");
        // ... even if the right amount arrives afterwards (an admin looks at it).
        epay_notify(&app, &epay_notification(&short_id, "50.00", EPAY_KEY)).await;
        assert_eq!(order_status(&app, &ada, &short_id).await, "failed");
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // A lost notification: the provider says it was paid; reconciliation credits it.
        let lost = order(&app, &ada, json!({"amount": 2000, "provider": "epay"})).await;
        let lost_id = lost["order"]["id"].as_str().unwrap().to_string();
        fake.lock().unwrap().epay_paid.insert(lost_id.clone(), "20.00".into());
        let r = app.post(&format!("/api/v1/admin/billing/orders/{lost_id}/reconcile"), Some(&root.access), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["status"], "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000 + 1_000_000);
        assert_eq!(fake.lock().unwrap().refused, 0, "Skein sent the merchant key");

        // Orders are private: another user sees 404, the admin sees all.
        let bob = app.register("bob").await;
        let r = app.get(&format!("/api/v1/billing/orders/{id}"), Some(&bob.access)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.get("/api/v1/billing/orders", Some(&bob.access)).await;
        assert_eq!(r.json["total"], 0);
        let r = app.get(&format!("/api/v1/admin/billing/orders?user_id={}", ada.id), Some(&root.access)).await;
        assert_eq!(r.json["total"], 3, "{}", r.text);
        let r = app.get("/api/v1/admin/billing/orders", Some(&ada.access)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        verify_clean(&app, &root, &ada).await;
    }

    async fn stripe_webhooks_are_verified_and_credited_once(backend) {
        let (base, fake) = fakes().await;
        let app = pay_app(backend, payment_config(&base, Currency::Usd)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;

        let created = order(&app, &ada, json!({"amount": 1000, "provider": "stripe"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        assert_eq!(created["order"]["currency"], "USD");
        let session = created["order"]["provider_ref"].as_str().unwrap().to_string();
        assert!(created["pay_url"].as_str().unwrap().ends_with(&session));
        let form = fake.lock().unwrap().sessions[&session].clone();
        assert_eq!(form["client_reference_id"], id);
        assert_eq!(form["line_items[0][price_data][unit_amount]"], "1000");
        assert_eq!(form["line_items[0][price_data][currency]"], "usd");
        assert_eq!(form["mode"], "payment");

        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        let event = json!({
            "id": "evt_1", "object": "event", "type": "checkout.session.completed",
            "data": {"object": session_object(&session, &form, true)}
        })
        .to_string();
        // Wrong secret, stale timestamp, no header: refused, nothing credited.
        let r = stripe_webhook(&app, &event, &stripe_signature("whsec_other", now_secs(), &event)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let r = stripe_webhook(&app, &event, &stripe_signature(STRIPE_WHSEC, now_secs() - 3600, &event)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let r = app.send(app.client.post(app.url("/api/v1/billing/payment/stripe/notify")).body(event.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // A body changed after signing.
        let tampered = event.replace("1000", "100000");
        let r = stripe_webhook(&app, &tampered, &stripe_signature(STRIPE_WHSEC, now_secs(), &event)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(order_status(&app, &ada, &id).await, "pending");

        // Genuine, then Stripe's retry of the same event.
        for _ in 0..2 {
            let r = stripe_webhook(&app, &event, &stripe_signature(STRIPE_WHSEC, now_secs(), &event)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        // 10.00 USD at 50,000 units per dollar.
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000);
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // Events that pay nothing are acknowledged and change nothing.
        let other = json!({"id": "evt_2", "type": "payment_intent.created", "data": {"object": {}}}).to_string();
        let r = stripe_webhook(&app, &other, &stripe_signature(STRIPE_WHSEC, now_secs(), &other)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // EPay is not configured on this server.
        let r = app.post("/api/v1/billing/orders", Some(&ada.access), json!({"amount": 1000, "provider": "epay"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        verify_clean(&app, &root, &ada).await;
    }
}

/// A payment that arrives after its order expired still counts: the user paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_for_an_expired_order_is_credited() {
    let (base, _fake) = fakes().await;
    let mut config = payment_config(&base, Currency::Cny);
    config.order_ttl_secs = 1;
    config.reconcile_every_secs = 1;
    let app = pay_app(Backend::Sqlite, config).await;
    let ada = app.register("ada").await;
    let created = order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
    let id = created["order"]["id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..100 {
        status = order_status(&app, &ada, &id).await;
        if status == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
    let r = epay_notify(&app, &epay_notification(&id, "10.00", EPAY_KEY)).await;
    assert_eq!(r.text, "success");
    assert_eq!(order_status(&app, &ada, &id).await, "paid");
    assert_eq!(
        quota(&app, &ada).await["balance"].as_i64().unwrap(),
        before + 500_000
    );
}

/// Bad input, and a server without payment providers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_refuse_bad_input_and_top_up_can_be_off() {
    let (base, _fake) = fakes().await;
    let app = pay_app(Backend::Sqlite, payment_config(&base, Currency::Cny)).await;
    let ada = app.register("ada").await;
    for (body, field) in [
        (json!({"amount": 99, "provider": "epay"}), "amount"),
        (json!({"amount": 100_001, "provider": "epay"}), "amount"),
        (json!({"amount": 1000, "provider": "paypal"}), "provider"),
        (
            json!({"amount": 1000, "provider": "epay", "method": "bitcoin"}),
            "method",
        ),
    ] {
        let r = app
            .post("/api/v1/billing/orders", Some(&ada.access), body.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
    }
    let r = app
        .post(
            "/api/v1/billing/orders",
            Some(&ada.access),
            json!({"amount": "ten", "provider": "epay"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = app
        .post(
            "/api/v1/billing/orders",
            None,
            json!({"amount": 1000, "provider": "epay"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .get("/api/v1/billing/orders/not-an-id", Some(&ada.access))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A notification for an order that does not exist is taken (so the gateway stops
    // retrying) and credits nothing.
    let r = epay_notify(
        &app,
        &epay_notification("01J0000000000000000000000", "10.00", EPAY_KEY),
    )
    .await;
    assert_eq!(r.text, "success");
    assert_eq!(
        app.get("/api/v1/billing/ledger?kind=topup", Some(&ada.access))
            .await
            .json["total"],
        0
    );

    let off = TestApp::spawn(Backend::Sqlite).await;
    let bob = off.register("bob").await;
    let r = off
        .get("/api/v1/billing/payment/options", Some(&bob.access))
        .await;
    assert_eq!(r.json["enabled"], false);
    let r = off
        .post(
            "/api/v1/billing/orders",
            Some(&bob.access),
            json!({"amount": 1000, "provider": "epay"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"]["code"], "payments_disabled");
    let r = off
        .send(
            off.client
                .get(off.url("/api/v1/billing/payment/epay/notify?a=b")),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
