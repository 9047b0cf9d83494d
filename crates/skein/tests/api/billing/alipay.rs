//! Alipay top-up against a local fake of Alipay's gateway that checks Skein's RSA2 signatures
//! with the app's public key and signs its answers and notifications with a platform key of
//! its own, as Alipay does: the cashier URL, asynchronous notifications (genuine, replayed,
//! forged, for another app, not yet paid), and reconciliation through `alipay.trade.query`
//! (paid, unknown, and an answer whose signature does not match).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Form, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;
use skein_billing::payment::Currency;
use skein_billing::payment::config::AlipayConfig;
use skein_core::secret::Secret;
use skein_testkit::{Backend, TestApp, on_both_backends};

use crate::billing::payments::{order, order_status, pay_app, payment_config, topups};
use crate::billing::{quota, verify_clean};

pub(crate) const APP_ID: &str = "2021000000000001";
const APP_PRIVATE: &str = include_str!("fixtures/alipay-app-private.pem");
const APP_PUBLIC: &str = include_str!("fixtures/alipay-app-public.pem");
const PLATFORM_PRIVATE: &str = include_str!("fixtures/alipay-platform-private.pem");
const PLATFORM_PUBLIC: &str = include_str!("fixtures/alipay-platform-public.pem");

/// What the fake gateway saw and says.
#[derive(Default)]
struct Fake {
    /// `out_trade_no` → amount the fake says was paid.
    paid: BTreeMap<String, String>,
    /// Answer queries with a signature that does not match.
    tamper: bool,
    /// Requests whose signature did not verify with the app's public key.
    refused: usize,
    /// Queries answered.
    queries: usize,
}

type Shared = Arc<Mutex<Fake>>;

pub(crate) fn platform_signer() -> SigningKey<Sha256> {
    SigningKey::new(RsaPrivateKey::from_pkcs1_pem(PLATFORM_PRIVATE).unwrap())
}

fn app_verifier() -> VerifyingKey<Sha256> {
    VerifyingKey::new(RsaPublicKey::from_public_key_pem(APP_PUBLIC).unwrap())
}

/// `k=v&...` over the sorted non-empty fields not in `skip`.
fn signed_text(params: &BTreeMap<String, String>, skip: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn sign_with(key: &SigningKey<Sha256>, text: &str) -> String {
    STANDARD.encode(key.sign(text.as_bytes()).to_bytes())
}

pub(crate) fn app_signed(params: &BTreeMap<String, String>) -> bool {
    let Ok(bytes) = STANDARD.decode(&params["sign"]) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    app_verifier()
        .verify(signed_text(params, &["sign"]).as_bytes(), &signature)
        .is_ok()
}

/// `alipay.trade.query`, answered as the gateway does: the response object's exact text is
/// what the platform key signs.
async fn gateway(
    State(fake): State<Shared>,
    Form(params): Form<BTreeMap<String, String>>,
) -> String {
    let mut fake = fake.lock().unwrap();
    if !app_signed(&params) || params.get("app_id").map(String::as_str) != Some(APP_ID) {
        fake.refused += 1;
        return json!({"error_response": {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}}).to_string();
    }
    assert_eq!(params["method"], "alipay.trade.query");
    assert_eq!(params["sign_type"], "RSA2");
    fake.queries += 1;
    let biz: Value = serde_json::from_str(&params["biz_content"]).unwrap();
    let no = biz["out_trade_no"].as_str().unwrap().to_string();
    let response = match fake.paid.get(&no) {
        Some(amount) => format!(
            r#"{{"code":"10000","msg":"Success","trade_no":"2026120422001{}","out_trade_no":"{no}","buyer_logon_id":"159****5620","trade_status":"TRADE_SUCCESS","total_amount":"{amount}"}}"#,
            &no[..8]
        ),
        None => r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}"#.to_string(),
    };
    let mut signature = sign_with(&platform_signer(), &response);
    if fake.tamper {
        signature = sign_with(&platform_signer(), "something else");
    }
    format!(r#"{{"alipay_trade_query_response":{response},"sign":"{signature}"}}"#)
}

async fn fake_gateway() -> (String, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/gateway.do", post(gateway))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

/// The app key as Alipay's key tool writes it: Base64 without PEM lines.
fn bare(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// An asynchronous notification as Alipay posts it, signed with `key`.
pub(crate) fn notification(
    trade_no: &str,
    amount: &str,
    status: &str,
    app_id: &str,
    key: &SigningKey<Sha256>,
) -> String {
    let mut p = BTreeMap::new();
    for (k, v) in [
        ("gmt_create", "2026-12-04 20:10:01"),
        ("charset", "utf-8"),
        ("gmt_payment", "2026-12-04 20:10:09"),
        ("notify_time", "2026-12-04 20:10:10"),
        ("subject", "Skein top-up"),
        ("buyer_id", "2088102177846880"),
        ("invoice_amount", amount),
        ("version", "1.0"),
        ("notify_id", "2026120400222201009053501455611111"),
        (
            "fund_bill_list",
            r#"[{"amount":"10.00","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
        ("notify_type", "trade_status_sync"),
        ("out_trade_no", trade_no),
        ("total_amount", amount),
        ("trade_status", status),
        ("trade_no", "2026120422001446880500011111"),
        ("auth_app_id", app_id),
        ("receipt_amount", amount),
        ("point_amount", "0.00"),
        ("app_id", app_id),
        ("buyer_pay_amount", amount),
        ("seller_id", "2088102177649450"),
    ] {
        p.insert(k.to_string(), v.to_string());
    }
    let sign = sign_with(key, &signed_text(&p, &["sign", "sign_type"]));
    p.insert("sign".into(), sign);
    p.insert("sign_type".into(), "RSA2".into());
    serde_urlencoded::to_string(&p).unwrap()
}

pub(crate) async fn notify(app: &TestApp, form: &str) -> skein_testkit::Resp {
    app.send(
        app.client
            .post(app.url("/api/v1/billing/payment/alipay/notify"))
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(form.to_string()),
    )
    .await
}

pub(crate) async fn alipay_app(backend: Backend, base: &str) -> TestApp {
    let mut payment = payment_config(base, Currency::Cny);
    payment.alipay = Some(AlipayConfig {
        app_id: APP_ID.into(),
        private_key: Secret::new(bare(APP_PRIVATE)),
        alipay_public_key: PLATFORM_PUBLIC.into(),
        gateway_url: format!("{base}/gateway.do"),
        methods: vec!["page".into(), "wap".into()],
    });
    pay_app(backend, payment).await
}

on_both_backends! {
    async fn alipay_orders_are_signed_verified_and_credited_once(backend) {
        let (base, fake) = fake_gateway().await;
        let app = alipay_app(backend, &base).await;
        let (root, _) = app.root_and_admin().await;
        let ada = app.register("ada").await;
        let options = app.get("/api/v1/billing/payment/options", Some(&ada.access)).await;
        assert!(options.text.contains("alipay"), "{}", options.text);

        // The cashier URL: the phone's cashier, every field Alipay needs, signed with the app key.
        let created = order(&app, &ada, json!({"amount": 1000, "provider": "alipay", "method": "wap"})).await;
        let id = created["order"]["id"].as_str().unwrap().to_string();
        let (path, query) = created["pay_url"].as_str().unwrap().split_once('?').unwrap();
        assert_eq!(path, format!("{base}/gateway.do"));
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["method"], "alipay.trade.wap.pay");
        assert_eq!((params["app_id"].as_str(), params["sign_type"].as_str(), params["charset"].as_str(), params["version"].as_str()), (APP_ID, "RSA2", "utf-8", "1.0"));
        assert_eq!(params["notify_url"], "https://skein.example.com/api/v1/billing/payment/alipay/notify");
        assert!(params["timestamp"].len() == 19 && params["timestamp"].as_bytes()[10] == b' ', "{}", params["timestamp"]);
        let biz: Value = serde_json::from_str(&params["biz_content"]).unwrap();
        let trade_no = id.replace('-', "");
        assert_eq!(biz["out_trade_no"], trade_no.as_str());
        assert_eq!(biz["total_amount"], "10.00");
        assert_eq!(biz["product_code"], "QUICK_WAP_WAY");
        assert!(app_signed(&params), "the cashier request verifies with the app's public key");
        let page = order(&app, &ada, json!({"amount": 1000, "provider": "alipay"})).await;
        let (_, query) = page["pay_url"].as_str().unwrap().split_once('?').unwrap();
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["method"], "alipay.trade.page.pay");

        let before = quota(&app, &ada).await["balance"].as_i64().unwrap();
        // Forged (signed with the app's own key, not Alipay's), or for another app: refused.
        let app_key = SigningKey::<Sha256>::new(RsaPrivateKey::from_pkcs8_pem(APP_PRIVATE).unwrap());
        let r = notify(&app, &notification(&trade_no, "10.00", "TRADE_SUCCESS", APP_ID, &app_key)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let r = notify(&app, &notification(&trade_no, "10.00", "TRADE_SUCCESS", "2021999999999999", &platform_signer())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // Not paid yet: taken, nothing credited.
        let r = notify(&app, &notification(&trade_no, "10.00", "WAIT_BUYER_PAY", APP_ID, &platform_signer())).await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "success"));
        assert_eq!(order_status(&app, &ada, &id).await, "pending");
        // Paid: credited once, however often Alipay repeats it.
        let genuine = notification(&trade_no, "10.00", "TRADE_SUCCESS", APP_ID, &platform_signer());
        let all = futures::future::join_all((0..4).map(|_| notify(&app, &genuine))).await;
        assert!(all.iter().all(|r| r.status == StatusCode::OK && r.text == "success"), "{:?}", all.iter().map(|r| &r.text).collect::<Vec<_>>());
        assert_eq!(order_status(&app, &ada, &id).await, "paid");
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000);
        assert_eq!(topups(&app, &ada).await.len(), 1);

        // A lost notification: reconciliation asks alipay.trade.query.
        let lost = order(&app, &ada, json!({"amount": 2000, "provider": "alipay"})).await;
        let lost_id = lost["order"]["id"].as_str().unwrap().to_string();
        let reconcile = |id: String| {
            let app = &app;
            let root = &root;
            async move { app.post(&format!("/api/v1/admin/billing/orders/{id}/reconcile"), Some(&root.access), json!({})).await }
        };
        let r = reconcile(lost_id.clone()).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("pending")), "not paid yet: {}", r.text);
        fake.lock().unwrap().paid.insert(lost_id.replace('-', ""), "20.00".into());
        fake.lock().unwrap().tamper = true;
        let r = reconcile(lost_id.clone()).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "an answer Alipay did not sign is not believed: {}", r.text);
        assert_eq!(order_status(&app, &ada, &lost_id).await, "pending");
        fake.lock().unwrap().tamper = false;
        let r = reconcile(lost_id.clone()).await;
        assert_eq!((r.status, r.json["status"].as_str()), (StatusCode::OK, Some("paid")), "{}", r.text);
        assert_eq!(quota(&app, &ada).await["balance"].as_i64().unwrap(), before + 500_000 + 1_000_000);
        let seen = {
            let fake = fake.lock().unwrap();
            (fake.refused, fake.queries)
        };
        assert_eq!(seen, (0, 3), "every query was signed with the app key");
        verify_clean(&app, &root, &ada).await;
    }
}

#[tokio::test]
async fn alipay_keys_that_cannot_be_read_stop_the_start_clearly() {
    let mut payment = payment_config("http://127.0.0.1:9", Currency::Cny);
    payment.alipay = Some(AlipayConfig {
        app_id: APP_ID.into(),
        private_key: Secret::new("not a key"),
        alipay_public_key: PLATFORM_PUBLIC.into(),
        gateway_url: "http://127.0.0.1:9/gateway.do".into(),
        methods: vec!["page".into()],
    });
    let error = payment.validate().unwrap_err();
    assert!(
        error.contains("billing.payment.alipay.private_key"),
        "{error}"
    );
    assert!(
        !error.contains("not a key"),
        "the secret is not echoed: {error}"
    );
    payment.alipay.as_mut().unwrap().private_key = Secret::new(bare(APP_PRIVATE));
    payment.alipay.as_mut().unwrap().methods = vec!["qr".into()];
    assert!(payment.validate().unwrap_err().contains("methods"));
}
