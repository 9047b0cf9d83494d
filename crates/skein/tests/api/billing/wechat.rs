//! WeChat Pay API v3 top-up against a local fake of the API that checks every request's
//! `WECHATPAY2-SHA256-RSA2048` Authorization with the merchant's public key and signs its
//! answers and notifications with a platform key of its own, as WeChat Pay does: Native pay
//! (the QR `code_url`), the platform certificate download (encrypted with the APIv3 key),
//! AES-256-GCM encrypted notifications (paid, duplicated at once, forged, late, tampered,
//! for the wrong amount or currency, for another merchant), and reconciliation through the
//! order query. The WeChat Pay public key mode (`PUB_KEY_ID_...`) is checked too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;
use skein_billing::payment::Currency;
use skein_billing::payment::config::WechatConfig;
use skein_core::secret::Secret;
use skein_testkit::{Backend, TestApp, on_both_backends};

use crate::billing::payments::{order, order_status, pay_app, payment_config, topups};
use crate::billing::{quota, verify_clean};

pub(crate) const MCHID: &str = "1900009191";
pub(crate) const APPID: &str = "wxd678efh567hg6787";
const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
pub(crate) const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzoGfmLmvHN";
const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub(crate) const PUBLIC_KEY_ID: &str = "PUB_KEY_ID_0119000091912024120400000000000001";
const MERCHANT_PRIVATE: &str = include_str!("fixtures/wechat-merchant-private.pem");
const MERCHANT_PUBLIC: &str = include_str!("fixtures/wechat-merchant-public.pem");
const PLATFORM_PRIVATE: &str = include_str!("fixtures/wechat-platform-private.pem");
const PLATFORM_PUBLIC: &str = include_str!("fixtures/wechat-platform-public.pem");
const PLATFORM_CERT: &str = include_str!("fixtures/wechat-platform-cert.pem");

/// What the fake saw and says.
#[derive(Default)]
struct Fake {
    /// `out_trade_no` → (total, trade_state) the fake says.
    transactions: BTreeMap<String, (i64, &'static str)>,
    /// Native orders made: the bodies Skein sent.
    orders: Vec<Value>,
    /// Requests whose Authorization did not verify.
    refused: usize,
    /// Certificate downloads and order queries answered.
    downloads: usize,
    queries: usize,
    /// The serial the fake signs with (the certificate's, or the public key's id).
    serial: String,
}

type Shared = Arc<Mutex<Fake>>;

pub(crate) fn platform_signer() -> SigningKey<Sha256> {
    SigningKey::new(RsaPrivateKey::from_pkcs8_pem(PLATFORM_PRIVATE).unwrap())
}

pub(crate) fn merchant_signer() -> SigningKey<Sha256> {
    SigningKey::new(RsaPrivateKey::from_pkcs8_pem(MERCHANT_PRIVATE).unwrap())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks an Authorization header the way WeChat Pay does: the scheme, the merchant, its
/// certificate serial, a fresh timestamp, and the signature over
/// `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n` with the merchant's public key.
pub(crate) fn authorized(
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(params) = value.strip_prefix("WECHATPAY2-SHA256-RSA2048 ") else {
        return false;
    };
    let fields: BTreeMap<&str, &str> = params
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let (Some(mchid), Some(nonce), Some(sig), Some(ts), Some(serial)) = (
        fields.get("mchid"),
        fields.get("nonce_str"),
        fields.get("signature"),
        fields.get("timestamp"),
        fields.get("serial_no"),
    ) else {
        return false;
    };
    if *mchid != MCHID || *serial != MERCHANT_SERIAL || nonce.is_empty() {
        return false;
    }
    if (now_secs() - ts.parse::<i64>().unwrap_or(0)).abs() > 300 {
        return false;
    }
    let message = format!("{method}\n{path_and_query}\n{ts}\n{nonce}\n{body}\n");
    let Ok(bytes) = STANDARD.decode(sig) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(RsaPublicKey::from_public_key_pem(MERCHANT_PUBLIC).unwrap())
        .verify(message.as_bytes(), &signature)
        .is_ok()
}

/// The four `Wechatpay-*` headers over `body`, signed with `key` at `timestamp`.
pub(crate) fn signed_headers(
    key: &SigningKey<Sha256>,
    serial: &str,
    timestamp: i64,
    body: &str,
) -> Vec<(&'static str, String)> {
    let nonce = format!("n{}", uuid::Uuid::now_v7().simple());
    let message = format!("{timestamp}\n{nonce}\n{body}\n");
    vec![
        ("wechatpay-timestamp", timestamp.to_string()),
        ("wechatpay-nonce", nonce),
        (
            "wechatpay-signature",
            STANDARD.encode(key.sign(message.as_bytes()).to_bytes()),
        ),
        ("wechatpay-serial", serial.to_string()),
        ("request-id", "08F78BB5AF0610D302A0D8A55F8CC74F".to_string()),
    ]
}

fn answer(fake: &Fake, status: AxumStatus, body: Value) -> Response {
    let text = body.to_string();
    let mut response = (status, text.clone()).into_response();
    for (name, value) in signed_headers(&platform_signer(), &fake.serial, now_secs(), &text) {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).unwrap());
    }
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn unauthorized() -> Response {
    (
        AxumStatus::UNAUTHORIZED,
        axum::Json(json!({"code": "SIGN_ERROR", "message": "签名错误"})),
    )
        .into_response()
}

/// AES-256-GCM under `key`, as WeChat Pay wraps a resource.
pub(crate) fn encrypt(key: &str, associated_data: &str, clear: &str) -> Value {
    let nonce = &uuid::Uuid::now_v7().simple().to_string()[..12];
    let sealed = Aes256Gcm::new_from_slice(key.as_bytes())
        .unwrap()
        .encrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: clear.as_bytes(),
                aad: associated_data.as_bytes(),
            },
        )
        .unwrap();
    json!({"algorithm": "AEAD_AES_256_GCM", "ciphertext": STANDARD.encode(sealed), "associated_data": associated_data, "nonce": nonce})
}

async fn native(State(fake): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(&headers, "POST", "/v3/pay/transactions/native", &body) {
        fake.refused += 1;
        return unauthorized();
    }
    let order: Value = serde_json::from_str(&body).unwrap();
    let no = order["out_trade_no"].as_str().unwrap().to_string();
    fake.orders.push(order);
    answer(
        &fake,
        AxumStatus::OK,
        json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={}", &no[..10])}),
    )
}

async fn certificates(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(&headers, "GET", "/v3/certificates", "") {
        fake.refused += 1;
        return unauthorized();
    }
    fake.downloads += 1;
    let item = json!({
        "serial_no": PLATFORM_SERIAL,
        "effective_time": "2026-12-04T20:18:18+08:00",
        "expire_time": "2036-12-01T20:18:18+08:00",
        "encrypt_certificate": encrypt(APIV3_KEY, "certificate", PLATFORM_CERT),
    });
    answer(&fake, AxumStatus::OK, json!({"data": [item]}))
}

async fn query(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path(no): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let mut fake = fake.lock().unwrap();
    let q = q.unwrap_or_default();
    if !authorized(
        &headers,
        "GET",
        &format!("/v3/pay/transactions/out-trade-no/{no}?{q}"),
        "",
    ) || q != format!("mchid={MCHID}")
    {
        fake.refused += 1;
        return unauthorized();
    }
    fake.queries += 1;
    match fake.transactions.get(&no).copied() {
        Some((total, state)) => answer(
            &fake,
            AxumStatus::OK,
            transaction(&no, total, "CNY", state, MCHID),
        ),
        None => answer(
            &fake,
            AxumStatus::NOT_FOUND,
            json!({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}),
        ),
    }
}

pub(crate) fn transaction(no: &str, total: i64, currency: &str, state: &str, mchid: &str) -> Value {
    json!({
        "appid": APPID, "mchid": mchid, "out_trade_no": no,
        "transaction_id": format!("42000019{}", &no[..20]),
        "trade_type": "NATIVE", "trade_state": state, "trade_state_desc": "支付成功",
        "bank_type": "OTHERS", "attach": "", "success_time": "2026-12-04T20:10:09+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": total, "payer_total": total, "currency": currency, "payer_currency": currency},
    })
}

async fn fake_api(serial: &str) -> (String, Shared) {
    let fake = Shared::default();
    fake.lock().unwrap().serial = serial.to_string();
    let app = Router::new()
        .route("/v3/pay/transactions/native", post(native))
        .route("/v3/certificates", get(certificates))
        .route("/v3/pay/transactions/out-trade-no/{no}", get(query))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

/// A notification event as WeChat Pay posts it: the transaction encrypted with `apiv3_key`,
/// the body signed with `key` under `serial` at `timestamp`.
pub(crate) struct Notice {
    pub(crate) transaction: Value,
    pub(crate) event_type: &'static str,
    pub(crate) apiv3_key: &'static str,
    pub(crate) key: SigningKey<Sha256>,
    pub(crate) serial: String,
    pub(crate) timestamp: i64,
}

impl Notice {
    pub(crate) fn paid(no: &str, total: i64, serial: &str) -> Notice {
        Notice {
            transaction: transaction(no, total, "CNY", "SUCCESS", MCHID),
            event_type: "TRANSACTION.SUCCESS",
            apiv3_key: APIV3_KEY,
            key: platform_signer(),
            serial: serial.to_string(),
            timestamp: now_secs(),
        }
    }
}

pub(crate) async fn notify(app: &TestApp, n: &Notice) -> skein_testkit::Resp {
    let mut resource = encrypt(n.apiv3_key, "transaction", &n.transaction.to_string());
    resource["original_type"] = json!("transaction");
    let body = json!({
        "id": format!("EV-{}", uuid::Uuid::now_v7().simple()),
        "create_time": "2026-12-04T20:10:10+08:00",
        "resource_type": "encrypt-resource",
        "event_type": n.event_type,
        "summary": "支付成功",
        "resource": resource,
    });
    let text = body.to_string();
    let mut request = app
        .client
        .post(app.url("/api/v1/billing/payment/wechat/notify"))
        .header("content-type", "application/json")
        .body(text.clone());
    for (name, value) in signed_headers(&n.key, &n.serial, n.timestamp, &text) {
        request = request.header(name, value);
    }
    app.send(request).await
}

pub(crate) fn wechat_config(base: &str, public_key: bool) -> WechatConfig {
    WechatConfig {
        mchid: MCHID.into(),
        appid: APPID.into(),
        private_key: Secret::new(MERCHANT_PRIVATE),
        merchant_serial_no: MERCHANT_SERIAL.into(),
        apiv3_key: Secret::new(APIV3_KEY),
        public_key: public_key.then(|| PLATFORM_PUBLIC.to_string()),
        public_key_id: public_key.then(|| PUBLIC_KEY_ID.to_string()),
        api_base: base.to_string(),
        tolerance_secs: 300,
    }
}

async fn wechat_app(backend: Backend, base: &str, public_key: bool) -> TestApp {
    let mut payment = payment_config(base, Currency::Cny);
    payment.wechat = Some(wechat_config(base, public_key));
    pay_app(backend, payment).await
}

on_both_backends! {
    async fn wechat_pay_orders_are_signed_decrypted_verified_and_credited_once(backend) {
        let (base, fake) = fake_api(PLATFORM_SERIAL).await;
        let app = wechat_app(backend, &base, false).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let options = app.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert!(options.text.contains("\"wechat\"") && options.text.contains("native"), "{}", options.text);

        // Native pay: the order as WeChat Pay needs it, in fen, answered with a code_url
        // whose answer signature Skein checked after downloading the platform certificate.
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "wechat"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        let no = id.replace('-', "");
        assert_eq!(created["pay_url"].as_str().unwrap(), format!("weixin://wxpay/bizpayurl?pr={}", &no[..10]));
        let sent = fake.lock().unwrap().orders[0].clone();
        assert_eq!(sent["out_trade_no"], no.as_str());
        assert_eq!(sent["amount"], json!({"total": 1000, "currency": "CNY"}));
        assert_eq!((sent["mchid"].as_str(), sent["appid"].as_str()), (Some(MCHID), Some(APPID)));
        assert_eq!(sent["notify_url"], "https://skein.example.com/api/v1/billing/payment/wechat/notify");
        assert_eq!(fake.lock().unwrap().downloads, 1);

        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        // Forged: signed with another key (the merchant's own), under an unknown serial,
        // encrypted with another APIv3 key, late (ten minutes old), or for another merchant.
        let mut forged = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        forged.key = merchant_signer();
        let r = notify(&app, &forged).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let r = notify(&app, &Notice::paid(&no, 1000, "0000000000000000000000000000000000000000")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let mut tampered = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        tampered.apiv3_key = "00000000000000000000000000000000";
        let r = notify(&app, &tampered).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let mut late = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        late.timestamp -= 600;
        let r = notify(&app, &late).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "a replay of an old capture: {}", r.text);
        let mut other = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        other.transaction = transaction(&no, 1000, "CNY", "SUCCESS", "1900000001");
        let r = notify(&app, &other).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // A signature over another body (the amount raised after signing).
        let r = app.send({
            let genuine = json!({"event_type": "TRANSACTION.SUCCESS", "resource": encrypt(APIV3_KEY, "transaction", &transaction(&no, 1000, "CNY", "SUCCESS", MCHID).to_string())}).to_string();
            let mut request = app.client.post(app.url("/api/v1/billing/payment/wechat/notify")).body(genuine.replace("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESS "));
            for (name, value) in signed_headers(&platform_signer(), PLATFORM_SERIAL, now_secs(), &genuine) {
                request = request.header(name, value);
            }
            request
        }).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // No headers at all.
        let r = app.send(app.client.post(app.url("/api/v1/billing/payment/wechat/notify")).body("{}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(order_status(&app, &ada, &id).await, "pending");
        assert_eq!(fake.lock().unwrap().downloads, 1, "an unknown serial does not download the certificates again within a minute");

        // Not paid yet (an event that pays nothing): taken, nothing credited.
        let mut refund = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        refund.event_type = "REFUND.SUCCESS";
        let r = notify(&app, &refund).await;
        assert_eq!((r.status, r.json["code"].as_str()), (StatusCode::OK, Some("SUCCESS")), "{}", r.text);
        // Paid, and the same notification four times at once: credited once.
        let genuine = Notice::paid(&no, 1000, PLATFORM_SERIAL);
        let all = futures::future::join_all((0..4).map(|_| notify(&app, &genuine))).await;
        assert!(all.iter().all(|r| r.status == StatusCode::OK && r.json["code"] == "SUCCESS"), "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000);
        let r = notify(&app, &Notice::paid(&no, 1000, PLATFORM_SERIAL)).await;
        assert_eq!(r.status, StatusCode::OK, "a later duplicate is acknowledged: {}", r.text);
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // Paid for less than the order, or in another currency: the order fails, nothing
        // is credited.
        let short = order(&app, &ada, json!({"amount": 5000, "provider": "wechat"})).await;
        let short_id = short["order"]["id"].as_str().unwrap().to_string();
        let r = notify(&app, &Notice::paid(&short_id.replace('-', ""), 50, PLATFORM_SERIAL)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(order_status(&app, &ada, &short_id).await, "failed");
        let dollars = order(&app, &ada, json!({"amount": 5000, "provider": "wechat"})).await;
        let dollars_id = dollars["order"]["id"].as_str().unwrap().to_string();
        let mut usd = Notice::paid(&dollars_id.replace('-', ""), 5000, PLATFORM_SERIAL);
        usd.transaction = transaction(&dollars_id.replace('-', ""), 5000, "USD", "SUCCESS", MCHID);
        let r = notify(&app, &usd).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(order_status(&app, &ada, &dollars_id).await, "failed");
        let failed = app.get(&format!("/api/v1/billing/orders/{dollars_id}"), Some(&ada.access)).await;
        assert!(failed.json["note"].as_str().unwrap().contains("USD"), "{}", failed.text);
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // A lost notification: reconciliation asks the order query, whose answer is signed.
        let lost = order(&app, &ada, json!({"amount": 2000, "provider": "wechat"})).await;
        let lost_id = lost["order"]["id"].as_str().unwrap().to_string();
        let lost_no = lost_id.replace('-', "");
        let reconcile = |id: String| {
            let app = &app;
            let root = &root;
            async move { app.post(&format!("/api/v1/admin/billing/orders/{id}/reconcile"), Some(&root.access), json!({})).await }
        };
        let r = reconcile(lost_id.clone()).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("pending")), "never scanned: {}", r.text);
        fake.lock().unwrap().transactions.insert(lost_no.clone(), (2000, "NOTPAY"));
        let r = reconcile(lost_id.clone()).await;
        assert_eq!(r.json["status"], "pending", "scanned, not paid: {}", r.text);
        fake.lock().unwrap().serial = "1111111111111111111111111111111111111111".into();
        fake.lock().unwrap().transactions.insert(lost_no.clone(), (2000, "SUCCESS"));
        let r = reconcile(lost_id.clone()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "an answer under a key WeChat Pay never issued is not believed: {}", r.text);
        fake.lock().unwrap().serial = PLATFORM_SERIAL.into();
        let r = reconcile(lost_id.clone()).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("paid")), "{}", r.text);
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000 + 1_000_000);
        let seen = {
            let fake = fake.lock().unwrap();
            (fake.refused, fake.queries, fake.orders.len())
        };
        assert_eq!(seen, (0, 4, 4), "every request carried a valid merchant signature");
        verify_clean(&app, &root, &ada).await;
    }
}

/// With WeChat Pay's public key configured, its id is the serial, nothing is downloaded, and
/// a key id it does not know is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_pay_public_key_mode_needs_no_certificate_download() {
    let (base, fake) = fake_api(PUBLIC_KEY_ID).await;
    let app = wechat_app(Backend::Sqlite, &base, true).await;
    let ada = app.register("ada").await;
    let created = order(
        &app,
        &ada,
        json!({"amount": 1000, "provider": "wechat", "method": "native"}),
    )
    .await;
    let id = created["order"]["id"].as_str().unwrap().to_string();
    let no = id.replace('-', "");
    let r = notify(&app, &Notice::paid(&no, 1000, PLATFORM_SERIAL)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = notify(&app, &Notice::paid(&no, 1000, PUBLIC_KEY_ID)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(order_status(&app, &ada, &id).await, "paid");
    assert_eq!(fake.lock().unwrap().downloads, 0);
    assert_eq!(fake.lock().unwrap().refused, 0);
}

#[tokio::test]
async fn wechat_pay_settings_that_cannot_work_stop_the_start_clearly() {
    let mut payment = payment_config("http://127.0.0.1:9", Currency::Cny);
    let mut wechat = wechat_config("http://127.0.0.1:9", false);
    wechat.apiv3_key = Secret::new("too short");
    payment.wechat = Some(wechat.clone());
    let error = payment.validate().unwrap_err();
    assert!(error.contains("apiv3_key"), "{error}");
    assert!(
        !error.contains("too short"),
        "the secret is not echoed: {error}"
    );
    wechat.apiv3_key = Secret::new(APIV3_KEY);
    wechat.public_key_id = Some(PUBLIC_KEY_ID.into());
    payment.wechat = Some(wechat.clone());
    assert!(payment.validate().unwrap_err().contains("public_key"));
    wechat.public_key_id = None;
    payment.wechat = Some(wechat);
    payment.currency = Currency::Usd;
    payment.epay = None;
    assert!(payment.validate().unwrap_err().contains("CNY"));
}
