//! Alipay (支付宝) through its Open Platform gateway, as its documentation describes:
//!
//! - every request is a flat parameter set (`app_id`, `method`, `charset`, `sign_type=RSA2`,
//!   `timestamp` in Beijing time, `version=1.0`, `biz_content` as JSON), signed with the
//!   merchant's RSA key: SHA256withRSA (PKCS#1 v1.5) over the non-empty parameters but
//!   `sign`, sorted by name and joined as `k=v&k=v`, Base64-encoded;
//! - pay: the payer is sent to the gateway with `alipay.trade.page.pay` (a computer,
//!   `FAST_INSTANT_TRADE_PAY`) or `alipay.trade.wap.pay` (a phone, `QUICK_WAP_WAY`);
//! - notify: Alipay POSTs a form to `notify_url` (`trade_status`, `out_trade_no`,
//!   `total_amount`, `trade_no`, `app_id`, `sign`, `sign_type`, ...); the signature, made
//!   with Alipay's key over every field but `sign` and `sign_type`, is checked with Alipay's
//!   public key, and the answer is the body `success`;
//! - query: `alipay.trade.query` answers `{"alipay_trade_query_response": {...}, "sign":
//!   "..."}`, where the signature covers the exact text of the response object.
//!
//! - refund: `alipay.trade.refund` (`out_trade_no`, `refund_amount` in yuan, `out_request_no`
//!   naming the refund, `refund_reason`) answers `alipay_trade_refund_response`, signed like
//!   the query; `code` `10000` means refunded (`fund_change` `N` on a repeat of the same
//!   `out_request_no`, which Alipay refunds only once, so asking again is safe), `40004`
//!   with a business `sub_code` is a refusal, and `ACQ.SYSTEM_ERROR` or `20000` is to be
//!   retried with the same `out_request_no`.
//!
//! `out_trade_no` allows letters, digits and underscores only, so an order id travels
//! without its dashes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::Sha256;
use skein_core::{ApiError, ApiResult};

use super::config::{AlipayConfig, Currency};
use super::refund::{Refund, RefundOutcome};
use super::{
    Checkout, Notification, Order, Paid, Provider, ProviderName, format_minor, parse_minor,
};

/// The Alipay provider.
pub(crate) struct Alipay {
    config: AlipayConfig,
    signer: SigningKey<Sha256>,
    alipay: VerifyingKey<Sha256>,
    http: reqwest::Client,
}

impl Alipay {
    /// A provider for this app, its keys read (PEM, or Base64 DER as Alipay's key tool
    /// writes them).
    pub(crate) fn new(config: AlipayConfig, http: reqwest::Client) -> Result<Self, String> {
        let private = private_key(config.private_key.expose())
            .map_err(|e| format!("billing.payment.alipay.private_key: {e}"))?;
        let public = public_key(&config.alipay_public_key)
            .map_err(|e| format!("billing.payment.alipay.alipay_public_key: {e}"))?;
        Ok(Alipay {
            signer: SigningKey::new(private),
            alipay: VerifyingKey::new(public),
            config,
            http,
        })
    }

    /// The common parameters of a request for `method`, with its `biz_content`, signed.
    fn request(
        &self,
        method: &str,
        biz: &Value,
        extra: &[(&str, &str)],
    ) -> BTreeMap<String, String> {
        let mut params = BTreeMap::new();
        for (k, v) in [
            ("app_id", self.config.app_id.as_str()),
            ("method", method),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("version", "1.0"),
        ] {
            params.insert(k.to_string(), v.to_string());
        }
        params.insert(
            "timestamp".to_string(),
            beijing_time(skein_core::ids::now_ms()),
        );
        params.insert("biz_content".to_string(), biz.to_string());
        for (k, v) in extra {
            params.insert((*k).to_string(), (*v).to_string());
        }
        let signature = STANDARD.encode(
            self.signer
                .sign(signing_text(&params, &["sign"]).as_bytes())
                .to_bytes(),
        );
        params.insert("sign".to_string(), signature);
        params
    }

    /// Calls the gateway with `params` and answers the signed object under `key`.
    async fn call(&self, params: &BTreeMap<String, String>, key: &str) -> ApiResult<Value> {
        let unavailable = |what: String| ApiError::unavailable(&format!("Alipay: {what}"));
        let body = self
            .http
            .post(&self.config.gateway_url)
            .form(params)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
            .text()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let raw = raw_member(&body, key).ok_or_else(|| unavailable(format!("no {key}")))?;
        let whole: Value =
            serde_json::from_str(&body).map_err(|e| unavailable(format!("not JSON: {e}")))?;
        let signature = whole["sign"]
            .as_str()
            .ok_or_else(|| unavailable("unsigned answer".into()))?;
        self.verify_text(raw, signature).map_err(unavailable)?;
        serde_json::from_str(raw).map_err(ApiError::internal)
    }

    fn verify_text(&self, text: &str, signature: &str) -> Result<(), String> {
        let bytes = STANDARD
            .decode(signature.trim())
            .map_err(|_| "signature is not Base64".to_string())?;
        let signature =
            Signature::try_from(bytes.as_slice()).map_err(|_| "malformed signature".to_string())?;
        self.alipay
            .verify(text.as_bytes(), &signature)
            .map_err(|_| "bad signature".to_string())
    }
}

/// `k=v&k=v` over the non-empty parameters not in `skip`, sorted by name: what is signed.
pub(crate) fn signing_text(params: &BTreeMap<String, String>, skip: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `yyyy-MM-dd HH:mm:ss` in China Standard Time (UTC+8), as the gateway wants its timestamp.
fn beijing_time(now_ms: i64) -> String {
    let text = skein_core::ids::ms_to_rfc3339(now_ms + 8 * 3600 * 1000);
    text.get(..19).unwrap_or_default().replace('T', " ")
}

/// An order id as `out_trade_no` (no dashes).
pub(crate) fn trade_no(order_id: &str) -> String {
    order_id.replace('-', "")
}

/// The order id of an `out_trade_no` (the dashes put back where an id has them).
pub(crate) fn order_id(trade_no: &str) -> Option<String> {
    if trade_no.len() != 32 || !trade_no.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &trade_no[..8],
        &trade_no[8..12],
        &trade_no[12..16],
        &trade_no[16..20],
        &trade_no[20..]
    ))
}

/// The DER inside a PEM block, or the Base64 DER itself.
fn der(text: &str) -> Result<Vec<u8>, String> {
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(body)
        .map_err(|_| "not a PEM or Base64 key".to_string())
}

pub(crate) fn private_key(text: &str) -> Result<RsaPrivateKey, String> {
    let der = der(text)?;
    RsaPrivateKey::from_pkcs8_der(&der)
        .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
        .map_err(|_| "not an RSA private key (PKCS#8 or PKCS#1)".to_string())
}

pub(crate) fn public_key(text: &str) -> Result<RsaPublicKey, String> {
    let der = der(text)?;
    RsaPublicKey::from_public_key_der(&der)
        .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
        .map_err(|_| "not an RSA public key".to_string())
}

/// The exact text of the object under `key` in `body`, which the gateway's signature covers.
fn raw_member<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\"");
    let at = body.find(&needle)? + needle.len();
    let rest = body[at..].trim_start().strip_prefix(':')?;
    let start = body.len() - rest.len() + (rest.len() - rest.trim_start().len());
    let mut values = serde_json::Deserializer::from_str(&body[start..]).into_iter::<Value>();
    values.next()?.ok()?;
    Some(&body[start..start + values.byte_offset()])
}

#[async_trait]
impl Provider for Alipay {
    fn name(&self) -> ProviderName {
        ProviderName::Alipay
    }

    fn methods(&self) -> Vec<String> {
        self.config.methods.clone()
    }

    async fn checkout(
        &self,
        order: &Order,
        notify_url: &str,
        return_url: &str,
    ) -> ApiResult<Checkout> {
        let (method, product) = match order.method.as_deref() {
            Some("wap") => ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
            _ => ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
        };
        let biz = json!({
            "out_trade_no": trade_no(&order.id),
            "total_amount": format_minor(order.amount_minor),
            "subject": order.title(),
            "product_code": product,
        });
        let params = self.request(
            method,
            &biz,
            &[("notify_url", notify_url), ("return_url", return_url)],
        );
        let query = serde_urlencoded::to_string(&params).map_err(ApiError::internal)?;
        Ok(Checkout {
            pay_url: format!("{}?{query}", self.config.gateway_url),
            provider_ref: None,
        })
    }

    async fn verify(&self, notification: &Notification) -> Result<Option<Paid>, String> {
        let params: BTreeMap<String, String> = serde_urlencoded::from_bytes(&notification.body)
            .map_err(|e| format!("unreadable notification: {e}"))?;
        let given = params.get("sign").ok_or("no sign")?;
        if params.get("sign_type").map(String::as_str) != Some("RSA2") {
            return Err("sign_type is not RSA2".into());
        }
        self.verify_text(&signing_text(&params, &["sign", "sign_type"]), given)?;
        if params.get("app_id") != Some(&self.config.app_id) {
            return Err("notification for another app".into());
        }
        if !matches!(
            params.get("trade_status").map(String::as_str),
            Some("TRADE_SUCCESS" | "TRADE_FINISHED")
        ) {
            return Ok(None);
        }
        let out_trade_no = params.get("out_trade_no").ok_or("no out_trade_no")?;
        let order_id = order_id(out_trade_no).ok_or("out_trade_no is not an order of ours")?;
        let amount = params.get("total_amount").ok_or("no total_amount")?;
        let amount_minor =
            parse_minor(amount).ok_or_else(|| format!("bad total_amount {amount:?}"))?;
        Ok(Some(Paid {
            order_id,
            provider_ref: params.get("trade_no").cloned(),
            amount_minor,
            // Alipay settles in yuan; the order's own currency is checked against this.
            currency: Currency::Cny,
        }))
    }

    fn acknowledge(&self) -> (&'static str, &'static str) {
        ("text/plain; charset=utf-8", "success")
    }

    async fn query(&self, order: &Order) -> ApiResult<Option<Paid>> {
        let unavailable = |what: String| ApiError::unavailable(&format!("Alipay query: {what}"));
        let params = self.request(
            "alipay.trade.query",
            &json!({ "out_trade_no": trade_no(&order.id) }),
            &[],
        );
        let body = self
            .http
            .post(&self.config.gateway_url)
            .form(&params)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
            .text()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let raw = raw_member(&body, "alipay_trade_query_response")
            .ok_or_else(|| unavailable("no alipay_trade_query_response".into()))?;
        let whole: Value =
            serde_json::from_str(&body).map_err(|e| unavailable(format!("not JSON: {e}")))?;
        let signature = whole["sign"]
            .as_str()
            .ok_or_else(|| unavailable("unsigned answer".into()))?;
        self.verify_text(raw, signature).map_err(unavailable)?;
        let response: Value = serde_json::from_str(raw).map_err(ApiError::internal)?;
        // 40004 (ACQ.TRADE_NOT_EXIST): the payer never reached the cashier; nothing is paid.
        if response["code"].as_str() != Some("10000")
            || !matches!(
                response["trade_status"].as_str(),
                Some("TRADE_SUCCESS" | "TRADE_FINISHED")
            )
            || response["out_trade_no"].as_str() != Some(trade_no(&order.id).as_str())
        {
            return Ok(None);
        }
        let Some(amount_minor) = response["total_amount"].as_str().and_then(parse_minor) else {
            return Ok(None);
        };
        Ok(Some(Paid {
            order_id: order.id.clone(),
            provider_ref: response["trade_no"].as_str().map(str::to_string),
            amount_minor,
            currency: Currency::Cny,
        }))
    }

    fn refunds(&self) -> bool {
        true
    }

    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
        _notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        let biz = json!({
            "out_trade_no": trade_no(&order.id),
            "refund_amount": format_minor(refund.amount_minor),
            "out_request_no": trade_no(&refund.id),
            "refund_reason": refund.reason,
        });
        let params = self.request("alipay.trade.refund", &biz, &[]);
        let response = self.call(&params, "alipay_trade_refund_response").await?;
        let code = response["code"].as_str().unwrap_or_default();
        let sub_code = response["sub_code"].as_str().unwrap_or_default();
        if code == "10000" {
            if response["out_trade_no"].as_str() != Some(trade_no(&order.id).as_str()) {
                return Err(ApiError::unavailable(
                    "Alipay (a refund answer for another order)",
                ));
            }
            return Ok(RefundOutcome::Succeeded {
                provider_ref: response["trade_no"].as_str().map(str::to_string),
            });
        }
        if code == "40004" && sub_code != "ACQ.SYSTEM_ERROR" {
            return Ok(RefundOutcome::Failed {
                reason: format!(
                    "Alipay: {sub_code} {}",
                    response["sub_msg"].as_str().unwrap_or_default()
                ),
            });
        }
        tracing::warn!(code, sub_code, refund_id = %refund.id, "Alipay could not refund now; it is asked again");
        Err(ApiError::unavailable("Alipay"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn order_ids_travel_without_dashes_and_come_back() {
        let id = skein_core::ids::new_id();
        let no = trade_no(&id);
        assert_eq!(no.len(), 32);
        assert!(no.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(order_id(&no).as_deref(), Some(id.as_str()));
        assert_eq!(order_id("abc"), None);
        assert_eq!(order_id(&"z".repeat(32)), None);
    }

    #[test]
    fn the_signed_text_is_sorted_non_empty_and_leaves_out_the_signature() {
        let mut p = BTreeMap::new();
        p.insert("method".to_string(), "alipay.trade.query".to_string());
        p.insert("app_id".to_string(), "2021".to_string());
        p.insert("sign".to_string(), "x".to_string());
        p.insert("sign_type".to_string(), "RSA2".to_string());
        p.insert("notify_url".to_string(), String::new());
        assert_eq!(
            signing_text(&p, &["sign"]),
            "app_id=2021&method=alipay.trade.query&sign_type=RSA2"
        );
        assert_eq!(
            signing_text(&p, &["sign", "sign_type"]),
            "app_id=2021&method=alipay.trade.query"
        );
    }

    #[test]
    fn the_response_object_is_taken_byte_for_byte() {
        let body = r#"{"alipay_trade_query_response":{"code":"10000","msg":"Success","total_amount":"88.88"},"sign":"abc"}"#;
        assert_eq!(
            raw_member(body, "alipay_trade_query_response"),
            Some(r#"{"code":"10000","msg":"Success","total_amount":"88.88"}"#)
        );
        let spaced =
            "{\"sign\":\"abc\", \"alipay_trade_query_response\" : {\"a\": [1, {\"b\":\"}\"}]} }";
        assert_eq!(
            raw_member(spaced, "alipay_trade_query_response"),
            Some("{\"a\": [1, {\"b\":\"}\"}]}")
        );
        assert_eq!(raw_member("{}", "alipay_trade_query_response"), None);
    }

    #[test]
    fn beijing_time_is_eight_hours_ahead_in_the_gateways_format() {
        // 2026-12-04T16:30:05Z
        assert_eq!(beijing_time(1_796_401_805_000), "2026-12-05 00:30:05");
    }
}
