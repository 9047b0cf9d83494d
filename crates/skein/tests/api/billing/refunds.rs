//! Refunds of paid orders, against local fakes that behave as the providers document:
//! Stripe (`POST /v1/refunds` with its idempotency replay and its "more than was paid"
//! refusal, `GET /v1/refunds/{id}`, signed `refund.*` webhooks) and WeChat Pay v3
//! (`POST /v3/refund/domestic/refunds` checked against the merchant's signature, signed
//! answers, AES-GCM encrypted `REFUND.*` notifications); EPay, whose protocol has no refund
//! call, takes refunds recorded by hand. Each refund debits the balance once, eight clicks at
//! once refund once, partial refunds sum to exactly the order, forged notifications change
//! nothing, and `skein billing verify` stays clean.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_billing::payment::Currency;
use skein_testkit::{Persona, TestApp, on_both_backends};

use crate::billing::payments::{
    EPAY_KEY, STRIPE_SK, STRIPE_WHSEC, epay_notification, epay_notify, now_secs, order, pay_app,
    payment_config, stripe_signature, stripe_webhook,
};
use crate::billing::wechat::{
    APIV3_KEY, MCHID, Notice, PUBLIC_KEY_ID, authorized, encrypt, merchant_signer, platform_signer,
    signed_headers, wechat_config,
};
use crate::billing::{adjust, quota, verify_clean};

/// What the Stripe fake holds.
#[derive(Default)]
struct StripeFake {
    /// Checkout sessions: id → (the form Skein sent, its payment intent).
    sessions: HashMap<String, (HashMap<String, String>, String)>,
    /// Payment intents: id → amount.
    intents: HashMap<String, i64>,
    /// Refund objects by id.
    refunds: BTreeMap<String, Value>,
    /// Idempotency key → the refund it made (Stripe replays the first answer).
    keys: HashMap<String, String>,
    /// Refunds made (not replays).
    made: usize,
    /// Requests without the key or idempotency.
    refused: usize,
}

type SharedStripe = Arc<Mutex<StripeFake>>;

fn stripe_authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {STRIPE_SK}"))
}

fn stripe_error(status: AxumStatus, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
        .into_response()
}

async fn stripe_session_create(
    State(fake): State<SharedStripe>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if !stripe_authorized(&headers) {
        fake.refused += 1;
        return stripe_error(AxumStatus::UNAUTHORIZED, "Invalid API Key provided");
    }
    let n = fake.sessions.len() + 1;
    let id = format!("cs_test_{n}");
    let intent = format!("pi_test_{n}");
    let amount: i64 = form["line_items[0][price_data][unit_amount]"]
        .parse()
        .unwrap();
    fake.intents.insert(intent.clone(), amount);
    fake.sessions.insert(id.clone(), (form, intent));
    Json(json!({"id": id, "object": "checkout.session", "url": format!("https://checkout.stripe.test/c/pay/{id}")}))
        .into_response()
}

fn session_object(id: &str, form: &HashMap<String, String>, intent: &str) -> Value {
    json!({
        "id": id,
        "object": "checkout.session",
        "client_reference_id": form["client_reference_id"],
        "amount_total": form["line_items[0][price_data][unit_amount]"].parse::<i64>().unwrap(),
        "currency": form["line_items[0][price_data][currency]"],
        "payment_intent": intent,
        "payment_status": "paid",
        "status": "complete",
    })
}

async fn stripe_session_get(
    State(fake): State<SharedStripe>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let fake = fake.lock().unwrap();
    match fake
        .sessions
        .get(&id)
        .filter(|_| stripe_authorized(&headers))
    {
        Some((form, intent)) => Json(session_object(&id, form, intent)).into_response(),
        None => stripe_error(AxumStatus::NOT_FOUND, "No such checkout.session"),
    }
}

/// `POST /v1/refunds` as Stripe documents it: the same Idempotency-Key replays the first
/// answer; a refund beyond what is left of the payment is a 400.
async fn stripe_refund_create(
    State(fake): State<SharedStripe>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(key) = key.filter(|_| stripe_authorized(&headers)) else {
        fake.refused += 1;
        return stripe_error(AxumStatus::UNAUTHORIZED, "Invalid API Key provided");
    };
    if let Some(id) = fake.keys.get(&key) {
        return Json(fake.refunds[id].clone()).into_response();
    }
    let intent = form.get("payment_intent").cloned().unwrap_or_default();
    let Some(paid) = fake.intents.get(&intent).copied() else {
        return stripe_error(AxumStatus::BAD_REQUEST, "No such payment_intent");
    };
    let amount: i64 = form
        .get("amount")
        .and_then(|a| a.parse().ok())
        .unwrap_or(paid);
    let refunded: i64 = fake
        .refunds
        .values()
        .filter(|r| r["payment_intent"] == intent.as_str() && r["status"] != "failed")
        .map(|r| r["amount"].as_i64().unwrap())
        .sum();
    if amount > paid - refunded {
        return stripe_error(
            AxumStatus::BAD_REQUEST,
            &format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                paid - refunded
            ),
        );
    }
    fake.made += 1;
    let id = format!("re_test_{}", fake.made);
    let object = json!({
        "id": id, "object": "refund", "amount": amount, "currency": "usd",
        "payment_intent": intent, "reason": form.get("reason"), "status": "pending",
        "metadata": {"refund_id": form.get("metadata[refund_id]"), "order_id": form.get("metadata[order_id]")},
    });
    fake.refunds.insert(id.clone(), object.clone());
    fake.keys.insert(key, id);
    Json(object).into_response()
}

async fn stripe_refund_get(
    State(fake): State<SharedStripe>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let fake = fake.lock().unwrap();
    match fake
        .refunds
        .get(&id)
        .filter(|_| stripe_authorized(&headers))
    {
        Some(object) => Json(object.clone()).into_response(),
        None => stripe_error(AxumStatus::NOT_FOUND, "No such refund"),
    }
}

async fn stripe_fake() -> (String, SharedStripe) {
    let fake = SharedStripe::default();
    let app = Router::new()
        .route("/v1/checkout/sessions", post(stripe_session_create))
        .route("/v1/checkout/sessions/{id}", get(stripe_session_get))
        .route("/v1/refunds", post(stripe_refund_create))
        .route("/v1/refunds/{id}", get(stripe_refund_get))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

/// A Stripe order of `amount` cents made by `who` and paid through a signed webhook.
async fn stripe_paid(app: &TestApp, fake: &SharedStripe, who: &Persona, amount: i64) -> String {
    let created = order(app, who, json!({"amount": amount, "provider": "stripe"})).await;
    let id = created["order"]["id"].as_str().unwrap().to_string();
    let session = created["order"]["provider_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let object = {
        let fake = fake.lock().unwrap();
        let (form, intent) = &fake.sessions[&session];
        session_object(&session, form, intent)
    };
    let event = json!({"id": format!("evt_{session}"), "object": "event", "type": "checkout.session.completed", "data": {"object": object}}).to_string();
    let r = stripe_webhook(
        app,
        &event,
        &stripe_signature(STRIPE_WHSEC, now_secs(), &event),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    id
}

/// A `refund.*` event about the fake's refund `re`, now in `status`, signed with `secret`.
async fn stripe_refund_event(
    app: &TestApp,
    fake: &SharedStripe,
    re: &str,
    kind: &str,
    status: &str,
    secret: &str,
) -> skein_testkit::Resp {
    let mut object = fake.lock().unwrap().refunds[re].clone();
    object["status"] = json!(status);
    let event = json!({"id": format!("evt_{re}_{status}"), "object": "event", "type": kind, "data": {"object": object}}).to_string();
    stripe_webhook(app, &event, &stripe_signature(secret, now_secs(), &event)).await
}

async fn refund(
    app: &TestApp,
    admin: &Persona,
    order_id: &str,
    body: Value,
) -> skein_testkit::Resp {
    app.post(
        &format!("/api/v1/admin/billing/orders/{order_id}/refunds"),
        Some(&admin.access),
        body,
    )
    .await
}

async fn refund_with_key(
    app: &TestApp,
    admin: &Persona,
    order_id: &str,
    key: &str,
    body: Value,
) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url(&format!("/api/v1/admin/billing/orders/{order_id}/refunds")))
            .bearer_auth(&admin.access)
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

async fn refunds_of(app: &TestApp, admin: &Persona, order_id: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/admin/billing/refunds?order_id={order_id}&per_page=100"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

async fn refund_status(app: &TestApp, admin: &Persona, order_id: &str, id: &str) -> String {
    refunds_of(app, admin, order_id)
        .await
        .iter()
        .find(|r| r["id"] == id)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn balance(app: &TestApp, who: &Persona) -> i64 {
    quota(app, who).await["balance"].as_i64().unwrap()
}

async fn ledger_kind(app: &TestApp, who: &Persona, kind: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/v1/billing/ledger?kind={kind}&per_page=100"),
            Some(&who.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["items"].as_array().unwrap().clone()
}

on_both_backends! {
    async fn stripe_refunds_happen_once_and_partial_refunds_sum_to_the_order(backend) {
        let (base, fake) = stripe_fake().await;
        let app = pay_app(backend, payment_config(&base, Currency::Usd)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;

        let id = stripe_paid(&app, &fake, &ada, 1000).await;
        let before = balance(&app, &ada).await;
        // Users cannot refund.
        let r = refund(&app, &ada, &id, json!({"reason": "mine"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Eight clicks at once on "refund in full": one refund, one debit, one Stripe refund.
        let all = futures::future::join_all((0..8).map(|_| refund(&app, &root, &id, json!({"reason": "customer asked"})))).await;
        let made: Vec<_> = all.iter().filter(|r| r.status == StatusCode::CREATED).collect();
        assert_eq!(made.len(), 1, "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert!(all.iter().filter(|r| r.status != StatusCode::CREATED).all(|r| r.status == StatusCode::CONFLICT && r.error_code() == "already_refunded"),
            "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        let first = made[0].json.clone();
        assert_eq!((first["amount_minor"].as_i64(), first["quota"].as_i64(), first["status"].as_str()), (Some(1000), Some(500_000), Some("pending")), "{first}");
        assert_eq!(first["provider_ref"], "re_test_1");
        assert_eq!(fake.lock().unwrap().made, 1);
        assert_eq!(balance(&app, &ada).await, before - 500_000);
        assert_eq!(ledger_kind(&app, &ada, "refund").await.len(), 1);
        let seen = app.get(&format!("/api/v1/billing/orders/{id}"), Some(&ada.access)).await;
        assert_eq!(seen.json["refunded_minor"], 1000, "{}", seen.text);
        // What Skein sent Stripe.
        let sent = fake.lock().unwrap().refunds["re_test_1"].clone();
        assert_eq!((sent["amount"].as_i64(), sent["payment_intent"].as_str()), (Some(1000), Some("pi_test_1")));
        assert_eq!(sent["metadata"]["refund_id"], first["id"]);

        // A forged refund webhook changes nothing; the genuine one (twice) finishes it.
        let refund_id = first["id"].as_str().unwrap().to_string();
        let r = stripe_refund_event(&app, &fake, "re_test_1", "refund.updated", "succeeded", "whsec_forged").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(refund_status(&app, &root, &id, &refund_id).await, "pending");
        for _ in 0..2 {
            let r = stripe_refund_event(&app, &fake, "re_test_1", "refund.updated", "succeeded", STRIPE_WHSEC).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        assert_eq!(refund_status(&app, &root, &id, &refund_id).await, "succeeded");
        assert_eq!(balance(&app, &ada).await, before - 500_000);

        // Partial refunds: 3.00, the same 3.00 clicked eight times with one Idempotency-Key,
        // too much, then the rest; their quota sums to exactly the order's.
        let id2 = stripe_paid(&app, &fake, &ada, 1000).await;
        let r = refund(&app, &root, &id2, json!({"reason": "part", "amount": 300})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["quota"], 150_000);
        let part = r.json["id"].as_str().unwrap().to_string();
        let all = futures::future::join_all((0..8).map(|_| refund_with_key(&app, &root, &id2, "dialog-7", json!({"reason": "part two", "amount": 300})))).await;
        assert_eq!(all.iter().filter(|r| r.status == StatusCode::CREATED).count(), 1, "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert!(all.iter().all(|r| r.json["id"] == all[0].json["id"] && r.status.is_success()));
        let r = refund(&app, &root, &id2, json!({"reason": "too much", "amount": 1000})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_order"), "{}", r.text);
        assert_eq!(r.json["error"]["details"]["remaining"], 400);
        let r = refund(&app, &root, &id2, json!({"reason": "the rest"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["amount_minor"].as_i64(), r.json["quota"].as_i64()), (Some(400), Some(200_000)));
        let rest = r.json["id"].as_str().unwrap().to_string();
        let rest_re = r.json["provider_ref"].as_str().unwrap().to_string();
        let parts = refunds_of(&app, &root, &id2).await;
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().map(|p| p["quota"].as_i64().unwrap()).sum::<i64>(), 500_000);
        assert_eq!(parts.iter().map(|p| p["amount_minor"].as_i64().unwrap()).sum::<i64>(), 1000);
        assert_eq!(fake.lock().unwrap().made, 4);
        let r = refund(&app, &root, &id2, json!({"reason": "again"})).await;
        assert_eq!(r.error_code(), "already_refunded", "{}", r.text);

        // Stripe turns the first part down later: it fails and its quota comes back once.
        let part_re = parts.iter().find(|p| p["id"] == part.as_str()).unwrap()["provider_ref"].as_str().unwrap().to_string();
        let low = balance(&app, &ada).await;
        for _ in 0..2 {
            let r = stripe_refund_event(&app, &fake, &part_re, "refund.failed", "failed", STRIPE_WHSEC).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        assert_eq!(refund_status(&app, &root, &id2, &part).await, "failed");
        assert_eq!(balance(&app, &ada).await, low + 150_000);
        assert_eq!(ledger_kind(&app, &ada, "refund_reversal").await.len(), 1);
        let seen = app.get(&format!("/api/v1/billing/orders/{id2}"), Some(&ada.access)).await;
        assert_eq!(seen.json["refunded_minor"], 700, "{}", seen.text);

        // Reconciliation asks Stripe about a pending refund.
        fake.lock().unwrap().refunds.get_mut(&rest_re).unwrap()["status"] = json!("succeeded");
        let r = app.post(&format!("/api/v1/admin/billing/refunds/{rest}/reconcile"), Some(&root.access), json!({})).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{}", r.text);

        // A balance smaller than the quota to take back: refused, unless forced.
        let bob = app.register("bob").await;
        let id3 = stripe_paid(&app, &fake, &bob, 1000).await;
        let spent = balance(&app, &bob).await - 100_000;
        assert_eq!(adjust(&app, &root, &bob.id, -spent).await.status, StatusCode::OK);
        let r = refund(&app, &root, &id3, json!({"reason": "fraud"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "refund_exceeds_balance"), "{}", r.text);
        assert_eq!(r.json["error"]["details"]["available"], 100_000);
        assert_eq!(balance(&app, &bob).await, 100_000);
        assert_eq!(fake.lock().unwrap().made, 4, "nothing was sent to Stripe");
        let r = refund(&app, &root, &id3, json!({"reason": "fraud", "force": true})).await;
        assert_eq!((r.status, r.json["forced"].as_bool()), (StatusCode::CREATED, Some(true)), "{}", r.text);
        assert_eq!(balance(&app, &bob).await, 100_000 - 500_000);
        assert_eq!(fake.lock().unwrap().refused, 0, "Skein sent its key and an Idempotency-Key");

        verify_clean(&app, &root, &ada).await;
        verify_clean(&app, &root, &bob).await;
    }

    async fn epay_refunds_are_recorded_by_hand_and_bad_refunds_are_refused(backend) {
        let app = pay_app(backend, payment_config("http://127.0.0.1:9", Currency::Cny)).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "epay"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();

        // Not paid yet.
        let r = refund(&app, &root, &id, json!({"reason": "early", "manual": true})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "order_not_refundable"), "{}", r.text);
        assert_eq!(epay_notify(&app, &epay_notification(&id, "10.00", EPAY_KEY)).await.text, "success");
        let before = balance(&app, &ada).await;

        // EPay has no refund call: only a manual refund is taken.
        let r = refund(&app, &root, &id, json!({"reason": "returned by bank transfer"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "refund_manual_only"), "{}", r.text);
        for (body, field) in [
            (json!({"reason": "", "manual": true}), "reason"),
            (json!({"reason": "x", "amount": 0, "manual": true}), "amount"),
            (json!({"reason": "x", "amount": -5, "manual": true}), "amount"),
        ] {
            let r = refund(&app, &root, &id, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let r = refund(&app, &root, "01J00000-0000-0000-0000-000000000000", json!({"reason": "x", "manual": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = refund(&app, &root, "not-an-id", json!({"reason": "x", "manual": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before, "refused refunds took nothing");

        let r = refund(&app, &root, &id, json!({"reason": "returned by bank transfer", "manual": true, "amount": 250})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!((r.json["status"].as_str(), r.json["manual"].as_bool(), r.json["quota"].as_i64()), (Some("succeeded"), Some(true), Some(125_000)), "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before - 125_000);
        // The Chinese message, for a second refund that is too large.
        let r = app.send(app.client.post(app.url(&format!("/api/v1/admin/billing/orders/{id}/refunds")))
            .bearer_auth(&root.access).header("accept-language", "zh-CN")
            .json(&json!({"reason": "x", "manual": true, "amount": 800}))).await;
        assert_eq!(r.error_code(), "refund_exceeds_order");
        assert!(r.json["error"]["message"].as_str().unwrap().contains("最多还可退款 7.50"), "{}", r.text);
        verify_clean(&app, &root, &ada).await;
    }
}

/// What the WeChat Pay fake holds.
#[derive(Default)]
struct WechatFake {
    /// Refunds by out_refund_no: the body Skein sent.
    refunds: BTreeMap<String, Value>,
    /// What a refund query answers.
    query_status: String,
    refused: usize,
}

type SharedWechat = Arc<Mutex<WechatFake>>;

fn signed_answer(status: AxumStatus, body: Value) -> Response {
    let text = body.to_string();
    let mut response = (status, text.clone()).into_response();
    for (name, value) in signed_headers(&platform_signer(), PUBLIC_KEY_ID, now_secs(), &text) {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn wechat_refund_object(sent: &Value, status: &str) -> Value {
    json!({
        "refund_id": format!("50000000382019052709732678{}", &sent["out_refund_no"].as_str().unwrap()[..6]),
        "out_refund_no": sent["out_refund_no"], "transaction_id": "4200000000000000000000000001",
        "out_trade_no": sent["out_trade_no"], "channel": "ORIGINAL", "user_received_account": "招商银行信用卡0403",
        "create_time": "2026-12-04T20:10:10+08:00", "status": status, "funds_account": "AVAILABLE",
        "amount": {"total": sent["amount"]["total"], "refund": sent["amount"]["refund"], "payer_total": sent["amount"]["total"],
            "payer_refund": sent["amount"]["refund"], "settlement_refund": sent["amount"]["refund"], "settlement_total": sent["amount"]["total"],
            "discount_refund": 0, "currency": "CNY"},
    })
}

async fn wechat_native(
    State(fake): State<SharedWechat>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorized(&headers, "POST", "/v3/pay/transactions/native", &body) {
        fake.lock().unwrap().refused += 1;
        return (AxumStatus::UNAUTHORIZED, "{}").into_response();
    }
    signed_answer(
        AxumStatus::OK,
        json!({"code_url": "weixin://wxpay/bizpayurl?pr=test"}),
    )
}

/// `POST /v3/refund/domestic/refunds`: the merchant's signature checked, one refund per
/// out_refund_no (a repeat answers the same), more than the payment refused with 400.
async fn wechat_refund_create(
    State(fake): State<SharedWechat>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(&headers, "POST", "/v3/refund/domestic/refunds", &body) {
        fake.refused += 1;
        return (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"code": "SIGN_ERROR", "message": "签名错误"})),
        )
            .into_response();
    }
    let sent: Value = serde_json::from_str(&body).unwrap();
    let no = sent["out_refund_no"].as_str().unwrap().to_string();
    if let Some(earlier) = fake.refunds.get(&no) {
        return signed_answer(AxumStatus::OK, wechat_refund_object(earlier, "PROCESSING"));
    }
    let refunded: i64 = fake
        .refunds
        .values()
        .filter(|r| r["out_trade_no"] == sent["out_trade_no"] && r["closed"] != true)
        .map(|r| r["amount"]["refund"].as_i64().unwrap())
        .sum();
    if refunded + sent["amount"]["refund"].as_i64().unwrap()
        > sent["amount"]["total"].as_i64().unwrap()
    {
        return signed_answer(
            AxumStatus::BAD_REQUEST,
            json!({"code": "INVALID_REQUEST", "message": "申请退款金额超过订单可退金额"}),
        );
    }
    fake.refunds.insert(no, sent.clone());
    signed_answer(AxumStatus::OK, wechat_refund_object(&sent, "PROCESSING"))
}

async fn wechat_refund_get(
    State(fake): State<SharedWechat>,
    headers: HeaderMap,
    Path(no): Path<String>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(
        &headers,
        "GET",
        &format!("/v3/refund/domestic/refunds/{no}"),
        "",
    ) {
        fake.refused += 1;
        return (AxumStatus::UNAUTHORIZED, "{}").into_response();
    }
    match fake.refunds.get(&no) {
        Some(sent) => signed_answer(
            AxumStatus::OK,
            wechat_refund_object(sent, &fake.query_status),
        ),
        None => signed_answer(
            AxumStatus::NOT_FOUND,
            json!({"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"}),
        ),
    }
}

async fn wechat_fake() -> (String, SharedWechat) {
    let fake = SharedWechat::default();
    let app = Router::new()
        .route("/v3/pay/transactions/native", post(wechat_native))
        .route("/v3/refund/domestic/refunds", post(wechat_refund_create))
        .route("/v3/refund/domestic/refunds/{no}", get(wechat_refund_get))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

/// A `REFUND.*` notification as WeChat Pay posts it: the refund encrypted with `apiv3_key`
/// (associated data `refund`), the body signed with `key`.
async fn wechat_refund_notify(
    app: &TestApp,
    sent: &Value,
    event_type: &str,
    refund_status: &str,
    apiv3_key: &str,
    key: &rsa::pkcs1v15::SigningKey<sha2::Sha256>,
) -> skein_testkit::Resp {
    let clear = json!({
        "mchid": MCHID, "out_trade_no": sent["out_trade_no"], "transaction_id": "4200000000000000000000000001",
        "out_refund_no": sent["out_refund_no"], "refund_id": "50000000382019052709732678859",
        "refund_status": refund_status, "success_time": "2026-12-04T20:12:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": sent["amount"]["total"], "refund": sent["amount"]["refund"], "payer_total": sent["amount"]["total"], "payer_refund": sent["amount"]["refund"]},
    });
    let mut resource = encrypt(apiv3_key, "refund", &clear.to_string());
    resource["original_type"] = json!("refund");
    let body = json!({
        "id": format!("EV-{}", uuid::Uuid::now_v7().simple()), "create_time": "2026-12-04T20:12:01+08:00",
        "resource_type": "encrypt-resource", "event_type": event_type, "summary": "退款成功", "resource": resource,
    })
    .to_string();
    let mut request = app
        .client
        .post(app.url("/api/v1/billing/payment/wechat/notify"))
        .header("content-type", "application/json")
        .body(body.clone());
    for (name, value) in signed_headers(key, PUBLIC_KEY_ID, now_secs(), &body) {
        request = request.header(name, value);
    }
    app.send(request).await
}

on_both_backends! {
    async fn wechat_pay_refunds_are_signed_and_their_notifications_verified(backend) {
        let (base, fake) = wechat_fake().await;
        let mut payment = payment_config(&base, Currency::Cny);
        payment.wechat = Some(wechat_config(&base, true));
        let app = pay_app(backend, payment).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "wechat"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        let no = id.replace('-', "");
        let r = crate::billing::wechat::notify(&app, &Notice::paid(&no, 1000, PUBLIC_KEY_ID)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let before = balance(&app, &ada).await;

        // 3.00 of 10.00: sent signed, PROCESSING, the quota taken at once.
        let r = refund(&app, &root, &id, json!({"reason": "partial", "amount": 300})).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::CREATED, Some("pending")), "{}", r.text);
        let part = r.json["id"].as_str().unwrap().to_string();
        let sent = fake.lock().unwrap().refunds[&part.replace('-', "")].clone();
        assert_eq!((sent["out_trade_no"].as_str(), sent["amount"]["refund"].as_i64(), sent["amount"]["total"].as_i64(), sent["amount"]["currency"].as_str()),
            (Some(no.as_str()), Some(300), Some(1000), Some("CNY")), "{sent}");
        assert_eq!(sent["notify_url"], "https://skein.example.com/api/v1/billing/payment/wechat/notify");
        assert_eq!(balance(&app, &ada).await, before - 150_000);

        // Forged: signed by someone else's key, or a resource not sealed with the APIv3 key.
        let r = wechat_refund_notify(&app, &sent, "REFUND.SUCCESS", "SUCCESS", APIV3_KEY, &merchant_signer()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let r = wechat_refund_notify(&app, &sent, "REFUND.SUCCESS", "SUCCESS", "0123456789abcdef0123456789abcdef", &platform_signer()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(refund_status(&app, &root, &id, &part).await, "pending");

        // WeChat Pay closes it (the money never left): failed, quota back once, and the
        // amount can be refunded again.
        fake.lock().unwrap().refunds.get_mut(&part.replace('-', "")).unwrap()["closed"] = json!(true);
        for _ in 0..2 {
            let r = wechat_refund_notify(&app, &sent, "REFUND.CLOSED", "CLOSED", APIV3_KEY, &platform_signer()).await;
            assert_eq!((r.status, r.json["code"].as_str()), (StatusCode::OK, Some("SUCCESS")), "{}", r.text);
        }
        assert_eq!(refund_status(&app, &root, &id, &part).await, "failed");
        assert_eq!(balance(&app, &ada).await, before);

        // The whole order then; a late SUCCESS for the failed one changes nothing.
        let r = refund(&app, &root, &id, json!({"reason": "all"})).await;
        assert_eq!((r.status, r.json["amount_minor"].as_i64(), r.json["quota"].as_i64()), (StatusCode::CREATED, Some(1000), Some(500_000)), "{}", r.text);
        let all = r.json["id"].as_str().unwrap().to_string();
        let r = wechat_refund_notify(&app, &sent, "REFUND.SUCCESS", "SUCCESS", APIV3_KEY, &platform_signer()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(refund_status(&app, &root, &id, &part).await, "failed");
        // Its outcome comes from the query (the notification was lost).
        fake.lock().unwrap().query_status = "SUCCESS".into();
        let r = app.post(&format!("/api/v1/admin/billing/refunds/{all}/reconcile"), Some(&root.access), json!({})).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before - 500_000);
        assert_eq!(fake.lock().unwrap().refused, 0, "every request carried the merchant's signature");
        verify_clean(&app, &root, &ada).await;
    }
}

/// What the Alipay fake holds.
#[derive(Default)]
struct AlipayFake {
    /// `out_request_no` → (out_trade_no, refund_amount) of refunds made.
    refunds: BTreeMap<String, (String, String)>,
    /// Answer `ACQ.SYSTEM_ERROR` (retry later), as the gateway does when it is busy.
    busy: bool,
    /// Refund requests received, repeats included.
    requests: usize,
    refused: usize,
}

type SharedAlipay = Arc<Mutex<AlipayFake>>;

/// `alipay.trade.refund` as documented: the app's signature checked, one refund per
/// `out_request_no` (a repeat answers success with `fund_change` `N`), a refund beyond the
/// trade refused with `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`, the response object signed.
async fn alipay_gateway(
    State(fake): State<SharedAlipay>,
    Form(params): Form<BTreeMap<String, String>>,
) -> String {
    use crate::billing::alipay::{APP_ID, app_signed, platform_signer, sign_with};
    let mut fake = fake.lock().unwrap();
    if !app_signed(&params) || params.get("app_id").map(String::as_str) != Some(APP_ID) {
        fake.refused += 1;
        return json!({"error_response": {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}}).to_string();
    }
    assert_eq!(params["method"], "alipay.trade.refund");
    fake.requests += 1;
    let biz: Value = serde_json::from_str(&params["biz_content"]).unwrap();
    let trade = biz["out_trade_no"].as_str().unwrap().to_string();
    let request = biz["out_request_no"].as_str().unwrap().to_string();
    let amount = biz["refund_amount"].as_str().unwrap().to_string();
    let cents = |a: &str| (a.parse::<f64>().unwrap() * 100.0).round() as i64;
    let response = if fake.busy {
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}"#.to_string()
    } else {
        let repeat = fake.refunds.contains_key(&request);
        let refunded: i64 = fake
            .refunds
            .values()
            .filter(|(t, _)| *t == trade)
            .map(|(_, a)| cents(a))
            .sum();
        if !repeat && refunded + cents(&amount) > 1000 {
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL","sub_msg":"退款金额超限"}"#.to_string()
        } else {
            if !repeat {
                fake.refunds
                    .insert(request, (trade.clone(), amount.clone()));
            }
            let total: i64 = fake
                .refunds
                .values()
                .filter(|(t, _)| *t == trade)
                .map(|(_, a)| cents(a))
                .sum();
            format!(
                r#"{{"code":"10000","msg":"Success","trade_no":"2026120422001446880500011111","out_trade_no":"{trade}","buyer_logon_id":"159****5620","fund_change":"{}","refund_fee":"{}.{:02}","send_back_fee":"{amount}"}}"#,
                if repeat { "N" } else { "Y" },
                total / 100,
                total % 100
            )
        }
    };
    let signature = sign_with(&platform_signer(), &response);
    format!(r#"{{"alipay_trade_refund_response":{response},"sign":"{signature}"}}"#)
}

on_both_backends! {
    async fn alipay_refunds_are_signed_and_a_busy_gateway_is_asked_again(backend) {
        use crate::billing::alipay::{APP_ID, alipay_app, notification, notify, platform_signer};
        let fake = SharedAlipay::default();
        let router = Router::new().route("/gateway.do", post(alipay_gateway)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let app = alipay_app(backend, &base).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "alipay", "method": "page"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        let r = notify(&app, &notification(&id.replace('-', ""), "10.00", "TRADE_SUCCESS", APP_ID, &platform_signer())).await;
        assert_eq!(r.text, "success");
        let before = balance(&app, &ada).await;

        // 4.00 back: Alipay answers at once.
        let r = refund(&app, &root, &id, json!({"reason": "partial", "amount": 400})).await;
        assert_eq!((r.status, r.json["status"].as_str(), r.json["quota"].as_i64()), (StatusCode::CREATED, Some("succeeded"), Some(200_000)), "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before - 200_000);

        // The gateway is busy: the refund stays pending (its quota already taken), and asking
        // again with the same out_request_no once it recovers refunds it once.
        fake.lock().unwrap().busy = true;
        let r = refund(&app, &root, &id, json!({"reason": "the rest"})).await;
        assert_eq!((r.status, r.json["status"].as_str(), r.json["amount_minor"].as_i64()), (StatusCode::CREATED, Some("pending"), Some(600)), "{}", r.text);
        let rest = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(balance(&app, &ada).await, before - 500_000);
        fake.lock().unwrap().busy = false;
        for _ in 0..2 {
            let r = app.post(&format!("/api/v1/admin/billing/refunds/{rest}/reconcile"), Some(&root.access), json!({})).await;
            assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{}", r.text);
        }
        {
            let fake = fake.lock().unwrap();
            assert_eq!(fake.refunds.len(), 2, "refunded twice at Alipay: {:?}", fake.refunds);
            assert_eq!(fake.refunds[&rest.replace('-', "")].1, "6.00");
            assert_eq!(fake.refused, 0);
        }
        let r = refund(&app, &root, &id, json!({"reason": "again"})).await;
        assert_eq!(r.error_code(), "already_refunded", "{}", r.text);
        assert_eq!(balance(&app, &ada).await, before - 500_000);
        verify_clean(&app, &root, &ada).await;
    }
}
