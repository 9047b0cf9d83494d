//! Stripe Checkout: an order becomes a Checkout Session (`POST /v1/checkout/sessions`, form
//! encoded, the order id as `client_reference_id` and as the idempotency key), the payer
//! pays on Stripe's page, and Stripe calls the webhook with a `checkout.session.completed`
//! event signed in the `Stripe-Signature` header (`t=<unix>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`).
//!
//! Refunds: the session's `payment_intent` is refunded with `POST /v1/refunds` (`amount`,
//! `reason=requested_by_customer`, `metadata[refund_id]`, our refund id as the
//! `Idempotency-Key`); a refund object's `status` is `pending`, `requires_action`,
//! `succeeded`, `failed` or `canceled`, and later changes arrive as `refund.updated` /
//! `refund.failed` / `charge.refund.updated` events, or from `GET /v1/refunds/{id}`.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use skein_core::{ApiError, ApiResult};

use super::config::{Currency, StripeConfig};
use super::refund::{Refund, RefundOutcome, RefundUpdate};
use super::{Checkout, Notification, Order, Paid, Provider, ProviderName};

/// Stripe keeps an idempotency key for 24 hours: past that, sending a refund again could
/// refund twice, so an unanswered refund older than this is only looked up, never resent.
const IDEMPOTENCY_WINDOW_MS: i64 = 23 * 3600 * 1000;

/// The Stripe provider.
pub(crate) struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

impl Stripe {
    /// A provider for this account.
    pub(crate) fn new(config: StripeConfig, http: reqwest::Client) -> Self {
        Stripe { config, http }
    }

    fn api(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base.trim_end_matches('/'))
    }
}

/// Checks a `Stripe-Signature` header against the raw body: some `v1` signature must be the
/// HMAC-SHA256 of `"<t>.<body>"` under the endpoint secret, and `t` within `tolerance_secs`
/// of `now_secs` (an old, replayed event is refused).
pub(crate) fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    tolerance_secs: i64,
    now_secs: i64,
) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => signatures.push(sig.to_string()),
            _ => {}
        }
    }
    let t = timestamp.ok_or("no timestamp in Stripe-Signature")?;
    if signatures.is_empty() {
        return Err("no v1 signature in Stripe-Signature".into());
    }
    for sig in &signatures {
        let Ok(given) = hex::decode(sig) else {
            continue;
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            if (now_secs - t).abs() > tolerance_secs {
                return Err("signature timestamp outside the tolerance".into());
            }
            return Ok(());
        }
    }
    Err("bad signature".into())
}

/// What a Checkout Session says about payment, from an event or from the API.
fn paid_session(session: &serde_json::Value) -> Option<Paid> {
    if session["payment_status"].as_str() != Some("paid") {
        return None;
    }
    Some(Paid {
        order_id: session["client_reference_id"].as_str()?.to_string(),
        provider_ref: session["id"].as_str().map(str::to_string),
        amount_minor: session["amount_total"].as_i64()?,
        currency: Currency::parse(session["currency"].as_str()?)?,
    })
}

/// What a refund object says.
fn refund_outcome(refund: &serde_json::Value) -> RefundOutcome {
    let provider_ref = refund["id"].as_str().map(str::to_string);
    match refund["status"].as_str() {
        Some("succeeded") => RefundOutcome::Succeeded { provider_ref },
        Some(status @ ("failed" | "canceled")) => RefundOutcome::Failed {
            reason: format!(
                "Stripe: refund {status} ({})",
                refund["failure_reason"]
                    .as_str()
                    .unwrap_or("no reason given")
            ),
        },
        _ => RefundOutcome::Pending { provider_ref },
    }
}

impl Stripe {
    /// Sends a request; a 400 or 402 is Stripe's final word (`Ok(Err(message))`), anything
    /// else unsuccessful is "try again later" (`Err`).
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> ApiResult<Result<serde_json::Value, String>> {
        let response = request
            .bearer_auth(self.config.secret_key.expose())
            .send()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe: {}", e.without_url())))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe answer: {}", e.without_url())))?;
        if status.is_success() {
            return Ok(Ok(body));
        }
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string();
        tracing::warn!(%status, message, "Stripe refused a refund request");
        if status == reqwest::StatusCode::BAD_REQUEST
            || status == reqwest::StatusCode::PAYMENT_REQUIRED
        {
            Ok(Err(message))
        } else {
            Err(ApiError::unavailable("Stripe"))
        }
    }
}

#[async_trait]
impl Provider for Stripe {
    fn name(&self) -> ProviderName {
        ProviderName::Stripe
    }

    fn methods(&self) -> Vec<String> {
        vec!["card".into()]
    }

    async fn checkout(
        &self,
        order: &Order,
        _notify_url: &str,
        return_url: &str,
    ) -> ApiResult<Checkout> {
        let form = [
            ("mode", "payment".to_string()),
            ("client_reference_id", order.id.clone()),
            ("metadata[order_id]", order.id.clone()),
            ("success_url", return_url.to_string()),
            ("cancel_url", return_url.to_string()),
            ("line_items[0][quantity]", "1".to_string()),
            (
                "line_items[0][price_data][currency]",
                order.currency.code().to_ascii_lowercase(),
            ),
            (
                "line_items[0][price_data][unit_amount]",
                order.amount_minor.to_string(),
            ),
            (
                "line_items[0][price_data][product_data][name]",
                order.title(),
            ),
        ];
        let response = self
            .http
            .post(self.api("/v1/checkout/sessions"))
            .bearer_auth(self.config.secret_key.expose())
            .header("Idempotency-Key", format!("skein-order-{}", order.id))
            .form(&form)
            .send()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe: {}", e.without_url())))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe answer: {}", e.without_url())))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("unknown error");
            tracing::warn!(%status, message, order_id = %order.id, "Stripe refused a checkout session");
            return Err(ApiError::unavailable("Stripe"));
        }
        let (Some(id), Some(url)) = (body["id"].as_str(), body["url"].as_str()) else {
            return Err(ApiError::unavailable(
                "Stripe (a session without id or url)",
            ));
        };
        Ok(Checkout {
            pay_url: url.to_string(),
            provider_ref: Some(id.to_string()),
        })
    }

    async fn verify(&self, notification: &Notification) -> Result<Option<Paid>, String> {
        let header = notification
            .signature
            .as_deref()
            .ok_or("no Stripe-Signature header")?;
        verify_signature(
            header,
            &notification.body,
            self.config.webhook_secret.expose(),
            self.config.tolerance_secs,
            notification.received_ms / 1000,
        )?;
        let event: serde_json::Value = serde_json::from_slice(&notification.body)
            .map_err(|e| format!("unreadable event: {e}"))?;
        match event["type"].as_str() {
            Some("checkout.session.completed" | "checkout.session.async_payment_succeeded") => {
                Ok(paid_session(&event["data"]["object"]))
            }
            // Other events (failed async payments, refunds) are acknowledged and ignored.
            _ => Ok(None),
        }
    }

    fn acknowledge(&self) -> (&'static str, &'static str) {
        ("application/json", "{\"received\":true}")
    }

    async fn query(&self, order: &Order) -> ApiResult<Option<Paid>> {
        let Some(session) = &order.provider_ref else {
            return Ok(None);
        };
        let response = self
            .http
            .get(self.api(&format!("/v1/checkout/sessions/{session}")))
            .bearer_auth(self.config.secret_key.expose())
            .send()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Ok(None);
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| ApiError::unavailable(&format!("Stripe answer: {}", e.without_url())))?;
        Ok(paid_session(&body).filter(|p| p.order_id == order.id))
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
        let Some(session) = &order.provider_ref else {
            return Ok(RefundOutcome::Failed {
                reason: "Stripe: the order has no checkout session".into(),
            });
        };
        let session = match self
            .send(
                self.http
                    .get(self.api(&format!("/v1/checkout/sessions/{session}"))),
            )
            .await?
        {
            Ok(session) => session,
            Err(message) => return Ok(RefundOutcome::Failed { reason: message }),
        };
        // `payment_intent` is an id, or the object when expanded.
        let intent = session["payment_intent"]
            .as_str()
            .or_else(|| session["payment_intent"]["id"].as_str());
        let Some(intent) = intent else {
            return Ok(RefundOutcome::Failed {
                reason: "Stripe: the checkout session has no payment intent".into(),
            });
        };
        let form = [
            ("payment_intent", intent.to_string()),
            ("amount", refund.amount_minor.to_string()),
            ("reason", "requested_by_customer".to_string()),
            ("metadata[refund_id]", refund.id.clone()),
            ("metadata[order_id]", order.id.clone()),
        ];
        match self
            .send(
                self.http
                    .post(self.api("/v1/refunds"))
                    .header("Idempotency-Key", format!("skein-refund-{}", refund.id))
                    .form(&form),
            )
            .await?
        {
            Ok(object) => Ok(refund_outcome(&object)),
            Err(message) => Ok(RefundOutcome::Failed {
                reason: format!("Stripe: {message}"),
            }),
        }
    }

    async fn query_refund(
        &self,
        order: &Order,
        refund: &Refund,
        notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        let Some(id) = &refund.provider_ref else {
            if skein_core::ids::now_ms() - refund.created_at < IDEMPOTENCY_WINDOW_MS {
                return self.refund(order, refund, notify_url).await;
            }
            tracing::warn!(refund_id = %refund.id, "a Stripe refund without an answer is past the idempotency window; look it up in the Stripe dashboard");
            return Ok(RefundOutcome::Pending { provider_ref: None });
        };
        match self
            .send(self.http.get(self.api(&format!("/v1/refunds/{id}"))))
            .await?
        {
            Ok(object) => Ok(refund_outcome(&object)),
            Err(_) => Ok(RefundOutcome::Pending { provider_ref: None }),
        }
    }

    fn refund_event(&self, notification: &Notification) -> Result<Option<RefundUpdate>, String> {
        let event: serde_json::Value = serde_json::from_slice(&notification.body)
            .map_err(|e| format!("unreadable event: {e}"))?;
        if !matches!(
            event["type"].as_str(),
            Some("refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated")
        ) {
            return Ok(None);
        }
        let object = &event["data"]["object"];
        if object["object"].as_str() != Some("refund") {
            return Ok(None);
        }
        // Refunds made in the dashboard carry no id of ours and change nothing here.
        let Some(refund_id) = object["metadata"]["refund_id"].as_str() else {
            return Ok(None);
        };
        Ok(Some(RefundUpdate {
            refund_id: refund_id.to_string(),
            outcome: refund_outcome(object),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_their_timestamp() {
        let body = br#"{"type":"checkout.session.completed"}"#;
        let good = header("whsec_x", 1_000, body);
        assert!(verify_signature(&good, body, "whsec_x", 300, 1_100).is_ok());
        // Another secret, another body, or a stale timestamp: refused.
        assert!(verify_signature(&good, body, "whsec_y", 300, 1_100).is_err());
        assert!(verify_signature(&good, b"{}", "whsec_x", 300, 1_100).is_err());
        assert!(verify_signature(&good, body, "whsec_x", 300, 1_400).is_err());
        // A rotated secret sends two v1 signatures; either may match.
        let two = format!("{good},v1=00ff");
        assert!(verify_signature(&two, body, "whsec_x", 300, 1_000).is_ok());
        assert!(verify_signature("v1=00", body, "whsec_x", 300, 1_000).is_err());
    }
}
