//! EPay (易支付), the page-jump payment protocol many relays use: requests and notifications
//! are flat key–value sets signed with MD5 over the sorted pairs and the merchant key.
//!
//! - pay: the payer is sent to `<url>/submit.php?pid&type&out_trade_no&notify_url&return_url&name&money&sign&sign_type=MD5`;
//! - notify: the gateway calls `notify_url` (GET, or a form POST) with `pid`, `trade_no`,
//!   `out_trade_no`, `type`, `name`, `money`, `trade_status=TRADE_SUCCESS`, `sign`,
//!   `sign_type`, and expects the body `success`;
//! - query: `<url>/api.php?act=order&pid&key&out_trade_no` answers JSON with `status` 1 when
//!   paid.

use std::collections::BTreeMap;

use async_trait::async_trait;
use md5::{Digest, Md5};
use skein_core::ApiResult;
use subtle::ConstantTimeEq;

use super::config::{Currency, EpayConfig};
use super::{
    Checkout, Notification, Order, Paid, Provider, ProviderName, format_minor, parse_minor,
};

/// The EPay provider.
pub(crate) struct Epay {
    config: EpayConfig,
    http: reqwest::Client,
}

impl Epay {
    /// A provider for this merchant account.
    pub(crate) fn new(config: EpayConfig, http: reqwest::Client) -> Self {
        Epay { config, http }
    }

    fn base(&self) -> String {
        let url = self.config.url.trim_end_matches('/');
        format!("{url}/")
    }
}

/// The EPay signature of a parameter set: MD5 (lowercase hex) of `k1=v1&k2=v2...` over the
/// non-empty parameters other than `sign` and `sign_type`, sorted by name, followed directly
/// by the merchant key.
pub(crate) fn sign(params: &BTreeMap<String, String>, key: &str) -> String {
    let mut text = params
        .iter()
        .filter(|(k, v)| !v.is_empty() && k.as_str() != "sign" && k.as_str() != "sign_type")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    text.push_str(key);
    hex::encode(Md5::digest(text.as_bytes()))
}

#[async_trait]
impl Provider for Epay {
    fn name(&self) -> ProviderName {
        ProviderName::Epay
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
        let mut params = BTreeMap::new();
        params.insert("pid".to_string(), self.config.pid.clone());
        params.insert("type".to_string(), order.method.clone().unwrap_or_default());
        params.insert("out_trade_no".to_string(), order.id.clone());
        params.insert("notify_url".to_string(), notify_url.to_string());
        params.insert("return_url".to_string(), return_url.to_string());
        params.insert("name".to_string(), order.title());
        params.insert("money".to_string(), format_minor(order.amount_minor));
        let signature = sign(&params, self.config.key.expose());
        params.insert("sign".to_string(), signature);
        params.insert("sign_type".to_string(), "MD5".to_string());
        let query = serde_urlencoded::to_string(&params).map_err(skein_core::ApiError::internal)?;
        Ok(Checkout {
            pay_url: format!("{}submit.php?{query}", self.base()),
            provider_ref: None,
        })
    }

    async fn verify(&self, notification: &Notification) -> Result<Option<Paid>, String> {
        // The gateway sends the fields in the query string (GET) or as a form body (POST).
        let raw = if notification.query.is_empty() {
            String::from_utf8_lossy(&notification.body).into_owned()
        } else {
            notification.query.clone()
        };
        let params: BTreeMap<String, String> = serde_urlencoded::from_str(&raw)
            .map_err(|e| format!("unreadable notification: {e}"))?;
        let given = params.get("sign").map(String::as_str).unwrap_or_default();
        let expected = sign(&params, self.config.key.expose());
        if given.is_empty() || !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err("bad signature".into());
        }
        if params.get("pid").map(String::as_str) != Some(self.config.pid.as_str()) {
            return Err("notification for another merchant".into());
        }
        if params.get("trade_status").map(String::as_str) != Some("TRADE_SUCCESS") {
            return Ok(None);
        }
        let order_id = params
            .get("out_trade_no")
            .cloned()
            .ok_or("no out_trade_no")?;
        let money = params.get("money").ok_or("no money")?;
        let amount_minor = parse_minor(money).ok_or_else(|| format!("bad money {money:?}"))?;
        Ok(Some(Paid {
            order_id,
            provider_ref: params.get("trade_no").cloned(),
            amount_minor,
            // EPay gateways settle in yuan; the order's own currency is checked against this.
            currency: Currency::Cny,
        }))
    }

    fn acknowledge(&self) -> (&'static str, &'static str) {
        ("text/plain; charset=utf-8", "success")
    }

    async fn query(&self, order: &Order) -> ApiResult<Option<Paid>> {
        let response = self
            .http
            .get(format!("{}api.php", self.base()))
            .query(&[
                ("act", "order"),
                ("pid", self.config.pid.as_str()),
                ("key", self.config.key.expose()),
                ("out_trade_no", order.id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| {
                skein_core::ApiError::unavailable(&format!("EPay query: {}", e.without_url()))
            })?;
        let body: serde_json::Value = response.json().await.map_err(|e| {
            skein_core::ApiError::unavailable(&format!("EPay query answer: {}", e.without_url()))
        })?;
        let paid = body["code"].as_i64() == Some(1)
            && (body["status"].as_i64() == Some(1) || body["status"].as_str() == Some("1"));
        if !paid || body["out_trade_no"].as_str() != Some(order.id.as_str()) {
            return Ok(None);
        }
        let Some(amount_minor) = body["money"].as_str().and_then(parse_minor) else {
            return Ok(None);
        };
        Ok(Some(Paid {
            order_id: order.id.clone(),
            provider_ref: body["trade_no"].as_str().map(str::to_string),
            amount_minor,
            currency: Currency::Cny,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The worked example of the protocol's documentation style: sorted, empty values and
    /// `sign`/`sign_type` left out, key appended without a separator.
    #[test]
    fn signature_covers_sorted_non_empty_fields_and_the_key() {
        let mut p = BTreeMap::new();
        p.insert("pid".to_string(), "1001".to_string());
        p.insert("money".to_string(), "1.00".to_string());
        p.insert("name".to_string(), "".to_string());
        p.insert("sign_type".to_string(), "MD5".to_string());
        p.insert("out_trade_no".to_string(), "A1".to_string());
        let expected = hex::encode(Md5::digest(b"money=1.00&out_trade_no=A1&pid=1001KEY"));
        assert_eq!(sign(&p, "KEY"), expected);
        p.insert("sign".to_string(), expected.clone());
        assert_eq!(sign(&p, "KEY"), expected, "sign itself is not signed");
        assert_ne!(sign(&p, "OTHER"), expected);
    }
}
