//! WeChat Pay (微信支付) API v3, Native pay (a QR code the payer scans), as its documentation
//! describes:
//!
//! - every request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",
//!   nonce_str="..",signature="..",timestamp="..",serial_no=".."`, where the signature is
//!   SHA256withRSA (PKCS#1 v1.5) with the merchant's API key over
//!   `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, Base64-encoded, and `serial_no` names the
//!   merchant's API certificate;
//! - every answer and notification is signed by WeChat Pay: `Wechatpay-Signature` over
//!   `TIMESTAMP\nNONCE\nBODY\n` (from `Wechatpay-Timestamp`, `Wechatpay-Nonce`), made with the
//!   key `Wechatpay-Serial` names: the WeChat Pay public key (`PUB_KEY_ID_...`, from the
//!   merchant console) or a platform certificate (downloaded from `GET /v3/certificates`,
//!   itself encrypted with the APIv3 key); a timestamp more than `tolerance_secs` away from
//!   now is refused, as the official SDKs do (five minutes), so an old capture cannot be
//!   replayed;
//! - pay: `POST /v3/pay/transactions/native` with `appid`, `mchid`, `description`,
//!   `out_trade_no`, `notify_url` and `amount: {total, currency}` in fen answers a `code_url`
//!   (`weixin://wxpay/bizpayurl?pr=...`) to show as a QR code;
//! - notify: a JSON event whose `resource` is the transaction encrypted with AEAD_AES_256_GCM
//!   under the APIv3 key (`nonce`, `associated_data`, Base64 `ciphertext` with the 16-byte tag
//!   at its end); answered 200 `{"code":"SUCCESS"}` once taken;
//! - query: `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=...` answers the same
//!   transaction in the clear (404 `ORDER_NOT_EXIST` before the payer scanned).
//!
//! - refund: `POST /v3/refund/domestic/refunds` with `out_trade_no`, `out_refund_no` (our
//!   refund id; the same number twice is one refund), `reason`, `notify_url` and `amount:
//!   {refund, total, currency}` answers the refund with `status` `SUCCESS`, `PROCESSING`,
//!   `CLOSED` or `ABNORMAL`; `GET /v3/refund/domestic/refunds/{out_refund_no}` answers the
//!   same (404 `RESOURCE_NOT_EXISTS` when it never arrived), and the outcome is notified as a
//!   `REFUND.SUCCESS`, `REFUND.ABNORMAL` or `REFUND.CLOSED` event whose resource
//!   (associated data `refund`) holds `out_refund_no` and `refund_status`.
//!
//! `out_trade_no` allows 6–32 letters, digits and `_-|*`; an order id travels without its
//! dashes, as for Alipay.

use std::collections::HashMap;
use std::sync::RwLock;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::RsaPublicKey;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde_json::{Value, json};
use sha2::Sha256;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};

use super::alipay::{order_id, private_key, public_key, trade_no};
use super::config::{Currency, WechatConfig};
use super::refund::{Refund, RefundOutcome, RefundUpdate};
use super::{Checkout, Notification, Order, Paid, Provider, ProviderName};

/// The acknowledgement WeChat Pay expects for a notification it may stop sending.
const ACK: &str = r#"{"code":"SUCCESS","message":"成功"}"#;

/// How often, at most, the platform certificates are downloaded again because a signature
/// named a serial not known yet: a forged notification with a random serial must not turn
/// into a download each.
const REFRESH_MS: i64 = 60_000;

/// The WeChat Pay provider.
pub(crate) struct Wechat {
    config: WechatConfig,
    signer: SigningKey<Sha256>,
    /// The APIv3 key, which decrypts notifications and downloaded certificates.
    apiv3_key: [u8; 32],
    /// The keys WeChat Pay signs with, by serial.
    keys: RwLock<Keys>,
    http: reqwest::Client,
}

#[derive(Default)]
struct Keys {
    by_serial: HashMap<String, VerifyingKey<Sha256>>,
    /// When the platform certificates were last downloaded (ms); `None` before the first.
    fetched_ms: Option<i64>,
}

/// An answer of the API whose signature was checked.
struct Answer {
    status: reqwest::StatusCode,
    body: String,
}

impl Wechat {
    /// A provider for this merchant, its keys read (PEM).
    pub(crate) fn new(config: WechatConfig, http: reqwest::Client) -> Result<Self, String> {
        let private = private_key(config.private_key.expose())
            .map_err(|e| format!("billing.payment.wechat.private_key: {e}"))?;
        let apiv3_key: [u8; 32] = config
            .apiv3_key
            .expose()
            .as_bytes()
            .try_into()
            .map_err(|_| "billing.payment.wechat.apiv3_key must be 32 characters".to_string())?;
        let mut keys = Keys::default();
        match (&config.public_key, &config.public_key_id) {
            (Some(pem), Some(id)) => {
                let key = public_key(pem)
                    .map_err(|e| format!("billing.payment.wechat.public_key: {e}"))?;
                keys.by_serial.insert(id.clone(), VerifyingKey::new(key));
            }
            (None, None) => {}
            _ => {
                return Err(
                    "billing.payment.wechat: public_key and public_key_id go together".into(),
                );
            }
        }
        Ok(Wechat {
            signer: SigningKey::new(private),
            apiv3_key,
            keys: RwLock::new(keys),
            config,
            http,
        })
    }

    /// Whether WeChat Pay's public key is configured (otherwise its platform certificates are
    /// downloaded).
    fn uses_public_key(&self) -> bool {
        self.config.public_key.is_some()
    }

    /// The `Authorization` header of a request.
    fn authorization(&self, method: &str, path_and_query: &str, body: &str) -> String {
        let timestamp = now_ms() / 1000;
        let nonce = skein_core::ids::new_id()
            .replace('-', "")
            .to_ascii_uppercase();
        let message = format!("{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n");
        let signature = STANDARD.encode(self.signer.sign(message.as_bytes()).to_bytes());
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.config.mchid, self.config.merchant_serial_no
        )
    }

    /// Sends a signed request and checks the signature of a successful answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> ApiResult<Answer> {
        let unavailable = |what: String| ApiError::unavailable(&format!("WeChat Pay: {what}"));
        let text = body.unwrap_or_default();
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header(
                "Authorization",
                self.authorization(method.as_str(), path, &text),
            )
            .header("Accept", "application/json")
            .header("User-Agent", concat!("skein/", env!("CARGO_PKG_VERSION")));
        if method == reqwest::Method::POST {
            request = request
                .header("Content-Type", "application/json")
                .body(text);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            let signed = Signed::from_headers(&headers).map_err(unavailable)?;
            let key = self.key_for(&signed.serial).await.map_err(unavailable)?;
            signed
                .verify(
                    &key,
                    body.as_bytes(),
                    self.config.tolerance_secs,
                    now_ms() / 1000,
                )
                .map_err(|e| unavailable(format!("answer not signed by WeChat Pay: {e}")))?;
        }
        Ok(Answer { status, body })
    }

    /// The key WeChat Pay signs with under `serial`, downloading the platform certificates
    /// when it is not known yet (at most once a minute).
    async fn key_for(&self, serial: &str) -> Result<VerifyingKey<Sha256>, String> {
        let stale = {
            let keys = self.keys.read().map_err(|_| "key store poisoned")?;
            if let Some(key) = keys.by_serial.get(serial) {
                return Ok(key.clone());
            }
            keys.fetched_ms.is_none_or(|at| now_ms() - at >= REFRESH_MS)
        };
        if self.uses_public_key() || !stale {
            return Err(format!("unknown WeChat Pay key serial {serial:?}"));
        }
        self.download_certificates().await?;
        let keys = self.keys.read().map_err(|_| "key store poisoned")?;
        keys.by_serial
            .get(serial)
            .cloned()
            .ok_or_else(|| format!("unknown WeChat Pay key serial {serial:?}"))
    }

    /// `GET /v3/certificates`: each certificate decrypted with the APIv3 key, its public key
    /// read, and the answer's own signature checked with one of them (the bootstrap the
    /// official SDKs use: only WeChat Pay knows both the APIv3 key and the platform key).
    async fn download_certificates(&self) -> Result<(), String> {
        if let Ok(mut keys) = self.keys.write() {
            keys.fetched_ms = Some(now_ms());
        }
        let path = "/v3/certificates";
        let url = format!("{}{path}", self.config.api_base.trim_end_matches('/'));
        let response = self
            .http
            .get(&url)
            .header("Authorization", self.authorization("GET", path, ""))
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("certificate download: {}", e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| format!("certificate download: {}", e.without_url()))?;
        if !status.is_success() {
            return Err(format!("certificate download answered {status}"));
        }
        let list: Value =
            serde_json::from_str(&body).map_err(|e| format!("certificate list: {e}"))?;
        let now = now_ms();
        let mut found = HashMap::new();
        for item in list["data"].as_array().into_iter().flatten() {
            let Some(serial) = item["serial_no"].as_str() else {
                continue;
            };
            let expired = item["expire_time"]
                .as_str()
                .and_then(skein_core::ids::rfc3339_to_ms)
                .is_some_and(|at| at <= now);
            if expired {
                continue;
            }
            let pem = decrypt(&self.apiv3_key, &item["encrypt_certificate"])?;
            let key = certificate_key(&pem)?;
            found.insert(serial.to_string(), VerifyingKey::<Sha256>::new(key));
        }
        let signed = Signed::from_headers(&headers)?;
        let key = found
            .get(&signed.serial)
            .ok_or("the certificate list is not signed by a certificate in it")?;
        signed.verify(key, body.as_bytes(), self.config.tolerance_secs, now / 1000)?;
        tracing::info!(
            certificates = found.len(),
            "WeChat Pay platform certificates downloaded"
        );
        let mut keys = self.keys.write().map_err(|_| "key store poisoned")?;
        keys.by_serial.extend(found);
        Ok(())
    }

    /// The order a transaction pays, if it is a successful payment to this merchant.
    fn paid(&self, transaction: &Value) -> Result<Option<Paid>, String> {
        if transaction["mchid"].as_str() != Some(self.config.mchid.as_str())
            || transaction["appid"].as_str() != Some(self.config.appid.as_str())
        {
            return Err("a transaction of another merchant or app".into());
        }
        if transaction["trade_state"].as_str() != Some("SUCCESS") {
            return Ok(None);
        }
        let no = transaction["out_trade_no"]
            .as_str()
            .ok_or("no out_trade_no")?;
        let order_id = order_id(no).ok_or("out_trade_no is not an order of ours")?;
        let amount_minor = transaction["amount"]["total"]
            .as_i64()
            .ok_or("no amount.total")?;
        let code = transaction["amount"]["currency"].as_str().unwrap_or("CNY");
        let currency = Currency::parse(code)
            .ok_or_else(|| format!("currency {code:?} is not one Skein takes"))?;
        Ok(Some(Paid {
            order_id,
            provider_ref: transaction["transaction_id"].as_str().map(str::to_string),
            amount_minor,
            currency,
        }))
    }
}

/// What a refund (an answer, or a notification's resource) says; `refund_status` in
/// notifications, `status` in answers.
fn refund_outcome(refund: &Value) -> RefundOutcome {
    let provider_ref = refund["refund_id"].as_str().map(str::to_string);
    let status = refund["status"]
        .as_str()
        .or_else(|| refund["refund_status"].as_str());
    match status {
        Some("SUCCESS") => RefundOutcome::Succeeded { provider_ref },
        Some("CLOSED") => RefundOutcome::Failed {
            reason: "WeChat Pay: refund CLOSED".to_string(),
        },
        // ABNORMAL is not final: the merchant can still complete the refund in WeChat Pay's
        // console (a later SUCCESS), so treating it as failed and giving the quota back could
        // leave the user with both the money and the quota. It stays pending (and in the
        // reconciliation's view) until SUCCESS or CLOSED.
        Some("ABNORMAL") => {
            tracing::warn!(
                ?provider_ref,
                "WeChat Pay refund ABNORMAL: complete or close it in the merchant console"
            );
            RefundOutcome::Pending { provider_ref }
        }
        _ => RefundOutcome::Pending { provider_ref },
    }
}

/// WeChat Pay's signature headers of an answer or notification.
struct Signed {
    timestamp: String,
    nonce: String,
    signature: String,
    serial: String,
}

impl Signed {
    fn from_headers(headers: &axum::http::HeaderMap) -> Result<Signed, String> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| format!("no {name} header"))
        };
        Ok(Signed {
            timestamp: get("wechatpay-timestamp")?,
            nonce: get("wechatpay-nonce")?,
            signature: get("wechatpay-signature")?,
            serial: get("wechatpay-serial")?,
        })
    }

    /// Checks the signature over `TIMESTAMP\nNONCE\nBODY\n`, then the timestamp's age.
    fn verify(
        &self,
        key: &VerifyingKey<Sha256>,
        body: &[u8],
        tolerance_secs: i64,
        now_secs: i64,
    ) -> Result<(), String> {
        let bytes = STANDARD
            .decode(self.signature.trim())
            .map_err(|_| "signature is not Base64".to_string())?;
        let signature =
            Signature::try_from(bytes.as_slice()).map_err(|_| "malformed signature".to_string())?;
        let mut message = format!("{}\n{}\n", self.timestamp, self.nonce).into_bytes();
        message.extend_from_slice(body);
        message.push(b'\n');
        key.verify(&message, &signature)
            .map_err(|_| "bad signature".to_string())?;
        let at: i64 = self
            .timestamp
            .trim()
            .parse()
            .map_err(|_| "Wechatpay-Timestamp is not a number".to_string())?;
        if (now_secs - at).abs() > tolerance_secs {
            return Err(format!(
                "Wechatpay-Timestamp {at} is more than {tolerance_secs} s from now"
            ));
        }
        Ok(())
    }
}

/// Decrypts an `encrypt-resource` (AEAD_AES_256_GCM under the APIv3 key) to its text.
pub(crate) fn decrypt(key: &[u8; 32], resource: &Value) -> Result<String, String> {
    if resource["algorithm"].as_str() != Some("AEAD_AES_256_GCM") {
        return Err("resource is not AEAD_AES_256_GCM".into());
    }
    let nonce = resource["nonce"].as_str().ok_or("resource without nonce")?;
    // The cipher takes exactly 12 bytes of nonce; anything else is not WeChat Pay's.
    if nonce.len() != 12 {
        return Err("resource nonce is not 12 bytes".into());
    }
    let aad = resource["associated_data"].as_str().unwrap_or_default();
    let ciphertext = STANDARD
        .decode(
            resource["ciphertext"]
                .as_str()
                .ok_or("resource without ciphertext")?,
        )
        .map_err(|_| "ciphertext is not Base64".to_string())?;
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| "bad APIv3 key".to_string())?;
    let clear = cipher
        .decrypt(
            Nonce::from_slice(nonce.as_bytes()),
            Payload {
                msg: &ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| "resource does not decrypt with the APIv3 key".to_string())?;
    String::from_utf8(clear).map_err(|_| "resource is not UTF-8".to_string())
}

/// The RSA public key of a PEM X.509 certificate.
fn certificate_key(pem: &str) -> Result<RsaPublicKey, String> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| "platform certificate is not PEM".to_string())?;
    let spki = certificate_spki(&der).ok_or("platform certificate is not X.509")?;
    RsaPublicKey::from_public_key_der(spki)
        .map_err(|_| "platform certificate holds no RSA key".to_string())
}

/// One DER element at the start of `data`: its tag, and where its content starts and ends.
fn element(data: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in data.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    (end <= data.len()).then_some((tag, head, end))
}

/// The SubjectPublicKeyInfo of a DER certificate: `Certificate ::= SEQUENCE { tbsCertificate
/// SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject,
/// subjectPublicKeyInfo, ... }, ... }` — walked, not fully parsed; its key is all we need,
/// since trust comes from the APIv3 key that encrypted it.
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let (tag, head, end) = element(der)?;
    if tag != 0x30 {
        return None;
    }
    let certificate = &der[head..end];
    let (tag, head, end) = element(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = &certificate[head..end];
    if rest.first() == Some(&0xa0) {
        rest = &rest[element(rest)?.2..];
    }
    for _ in 0..5 {
        rest = &rest[element(rest)?.2..];
    }
    let (tag, _, end) = element(rest)?;
    (tag == 0x30).then(|| &rest[..end])
}

#[async_trait]
impl Provider for Wechat {
    fn name(&self) -> ProviderName {
        ProviderName::Wechat
    }

    fn methods(&self) -> Vec<String> {
        vec!["native".into()]
    }

    async fn checkout(
        &self,
        order: &Order,
        notify_url: &str,
        _return_url: &str,
    ) -> ApiResult<Checkout> {
        let body = json!({
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": order.title(),
            "out_trade_no": trade_no(&order.id),
            "notify_url": notify_url,
            "amount": {"total": order.amount_minor, "currency": order.currency.code()},
        })
        .to_string();
        let answer = self
            .call(
                reqwest::Method::POST,
                "/v3/pay/transactions/native",
                Some(body),
            )
            .await?;
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        if !answer.status.is_success() {
            tracing::warn!(status = %answer.status, code = parsed["code"].as_str().unwrap_or(""),
                message = parsed["message"].as_str().unwrap_or(""), order_id = %order.id,
                "WeChat Pay refused a Native order");
            return Err(ApiError::unavailable("WeChat Pay"));
        }
        let code_url = parsed["code_url"]
            .as_str()
            .ok_or_else(|| ApiError::unavailable("WeChat Pay (an answer without code_url)"))?;
        Ok(Checkout {
            pay_url: code_url.to_string(),
            provider_ref: None,
        })
    }

    async fn verify(&self, notification: &Notification) -> Result<Option<Paid>, String> {
        let signed = Signed::from_headers(&notification.headers)?;
        let key = self.key_for(&signed.serial).await?;
        signed.verify(
            &key,
            &notification.body,
            self.config.tolerance_secs,
            notification.received_ms / 1000,
        )?;
        let event: Value = serde_json::from_slice(&notification.body)
            .map_err(|e| format!("unreadable notification: {e}"))?;
        // Refunds and other events are acknowledged and change nothing here.
        if event["event_type"].as_str() != Some("TRANSACTION.SUCCESS") {
            return Ok(None);
        }
        let clear = decrypt(&self.apiv3_key, &event["resource"])?;
        let transaction: Value =
            serde_json::from_str(&clear).map_err(|e| format!("unreadable transaction: {e}"))?;
        self.paid(&transaction)
    }

    fn acknowledge(&self) -> (&'static str, &'static str) {
        ("application/json", ACK)
    }

    async fn query(&self, order: &Order) -> ApiResult<Option<Paid>> {
        let path = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            trade_no(&order.id),
            self.config.mchid
        );
        let answer = self.call(reqwest::Method::GET, &path, None).await?;
        // 404 ORDER_NOT_EXIST: the payer never scanned the code; nothing is paid.
        if !answer.status.is_success() {
            return Ok(None);
        }
        let transaction: Value = serde_json::from_str(&answer.body)
            .map_err(|e| ApiError::unavailable(&format!("WeChat Pay answer: {e}")))?;
        match self.paid(&transaction) {
            Ok(Some(paid)) if paid.order_id == order.id => Ok(Some(paid)),
            Ok(_) => Ok(None),
            Err(why) => Err(ApiError::unavailable(&format!("WeChat Pay answer: {why}"))),
        }
    }

    fn refunds(&self) -> bool {
        true
    }

    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
        notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        let body = json!({
            "out_trade_no": trade_no(&order.id),
            "out_refund_no": trade_no(&refund.id),
            "reason": refund.reason.chars().take(80).collect::<String>(),
            "notify_url": notify_url,
            "amount": {
                "refund": refund.amount_minor,
                "total": order.amount_minor,
                "currency": order.currency.code(),
            },
        })
        .to_string();
        let answer = self
            .call(
                reqwest::Method::POST,
                "/v3/refund/domestic/refunds",
                Some(body),
            )
            .await?;
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or_default();
        if answer.status.is_success() {
            if parsed["out_refund_no"].as_str() != Some(trade_no(&refund.id).as_str()) {
                return Err(ApiError::unavailable(
                    "WeChat Pay (a refund answer for another refund)",
                ));
            }
            return Ok(refund_outcome(&parsed));
        }
        let code = parsed["code"].as_str().unwrap_or_default();
        let message = parsed["message"].as_str().unwrap_or_default();
        tracing::warn!(status = %answer.status, code, message, refund_id = %refund.id, "WeChat Pay refused a refund");
        // 400 (PARAM_ERROR, INVALID_REQUEST: more than was paid, a closed order) is final;
        // 403 NOT_ENOUGH, 429 and 5xx are "try again with the same out_refund_no".
        if answer.status == reqwest::StatusCode::BAD_REQUEST {
            return Ok(RefundOutcome::Failed {
                reason: format!("WeChat Pay: {code} {message}"),
            });
        }
        Err(ApiError::unavailable("WeChat Pay"))
    }

    async fn query_refund(
        &self,
        order: &Order,
        refund: &Refund,
        notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        let path = format!("/v3/refund/domestic/refunds/{}", trade_no(&refund.id));
        let answer = self.call(reqwest::Method::GET, &path, None).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            // It never reached WeChat Pay: ask again (the same out_refund_no).
            return self.refund(order, refund, notify_url).await;
        }
        if !answer.status.is_success() {
            return Err(ApiError::unavailable("WeChat Pay"));
        }
        let parsed: Value = serde_json::from_str(&answer.body)
            .map_err(|e| ApiError::unavailable(&format!("WeChat Pay answer: {e}")))?;
        Ok(refund_outcome(&parsed))
    }

    fn refund_event(&self, notification: &Notification) -> Result<Option<RefundUpdate>, String> {
        let event: Value = serde_json::from_slice(&notification.body)
            .map_err(|e| format!("unreadable notification: {e}"))?;
        if !matches!(
            event["event_type"].as_str(),
            Some("REFUND.SUCCESS" | "REFUND.ABNORMAL" | "REFUND.CLOSED")
        ) {
            return Ok(None);
        }
        let clear = decrypt(&self.apiv3_key, &event["resource"])?;
        let refund: Value =
            serde_json::from_str(&clear).map_err(|e| format!("unreadable refund: {e}"))?;
        if refund["mchid"].as_str() != Some(self.config.mchid.as_str()) {
            return Err("a refund of another merchant".into());
        }
        // A signed refund event that names no refund of ours (one made in the merchant
        // console) is taken and changes nothing, so WeChat Pay stops sending it.
        let Some(refund_id) = refund["out_refund_no"].as_str().and_then(order_id) else {
            tracing::info!(
                "a WeChat Pay refund notification for a refund Skein did not make is ignored"
            );
            return Ok(None);
        };
        Ok(Some(RefundUpdate {
            refund_id,
            outcome: refund_outcome(&refund),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn resources_decrypt_only_with_the_apiv3_key_and_their_associated_data() {
        let key = *b"0123456789abcdef0123456789abcdef";
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(b"abcdefghijkl"),
                Payload {
                    msg: b"{\"trade_state\":\"SUCCESS\"}",
                    aad: b"transaction",
                },
            )
            .unwrap();
        let resource = json!({"algorithm": "AEAD_AES_256_GCM", "nonce": "abcdefghijkl",
            "associated_data": "transaction", "ciphertext": STANDARD.encode(&sealed)});
        assert_eq!(
            decrypt(&key, &resource).unwrap(),
            "{\"trade_state\":\"SUCCESS\"}"
        );
        let mut other = resource.clone();
        other["associated_data"] = json!("certificate");
        assert!(decrypt(&key, &other).is_err());
        assert!(decrypt(b"fedcba9876543210fedcba9876543210", &resource).is_err());
        let mut short = resource.clone();
        short["nonce"] = json!("abc");
        assert!(
            decrypt(&key, &short).is_err(),
            "a short nonce is refused, not a panic"
        );
    }

    #[test]
    fn der_lengths_that_run_past_the_data_are_refused() {
        assert_eq!(element(&[0x30, 0x03, 1, 2, 3]), Some((0x30, 2, 5)));
        assert_eq!(element(&[0x30, 0x82, 0x01, 0x00, 1]), None);
        assert_eq!(element(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(certificate_spki(&[0x30, 0x00]), None);
        assert_eq!(certificate_spki(b""), None);
    }
}
