//! Self-service top-up: a user picks an amount, gets an order, pays a provider, and the
//! provider's signed notification (or the reconciliation job asking the provider) credits
//! the order's quota exactly once.
//!
//! Exactly once comes from the ledger, not from the providers: the statement that moves an
//! order to `paid` inserts its ledger entry in the same transaction (through the writer),
//! and the entry's idempotency key is the order id. Duplicate, replayed and late
//! notifications therefore change nothing; forged ones fail their signature check first.

mod alipay;
pub mod config;
pub mod coupon;
mod epay;
pub mod plan;
pub mod plan_change;
mod plan_orders;
pub mod plan_reminder;
pub mod refund;
pub mod settings;
mod settings_store;
pub(crate) mod store;
mod stripe;
mod wechat;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use skein_core::ids::{ms_to_rfc3339, new_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

pub use config::{Currency, PaymentConfig};
use refund::{Refund, RefundOutcome, RefundUpdate};

use crate::BillingService;
use crate::writer::{Done, Op};

/// A payment provider's name, as in URLs and order rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    /// EPay (易支付).
    Epay,
    /// Stripe Checkout.
    Stripe,
    /// Alipay (支付宝).
    Alipay,
    /// WeChat Pay (微信支付).
    Wechat,
}

impl ProviderName {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderName::Epay => "epay",
            ProviderName::Stripe => "stripe",
            ProviderName::Alipay => "alipay",
            ProviderName::Wechat => "wechat",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<ProviderName> {
        match name {
            "epay" => Some(ProviderName::Epay),
            "stripe" => Some(ProviderName::Stripe),
            "alipay" => Some(ProviderName::Alipay),
            "wechat" => Some(ProviderName::Wechat),
            _ => None,
        }
    }
}

/// An order's state: `pending` → `paid` (or `expired` → `paid` for a late payment, or
/// `failed`); a paid order's refunds move it to `partially_refunded` and `refunded`, and a
/// refund the provider turns down moves it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for the payment.
    Pending,
    /// Paid and credited.
    Paid,
    /// Not paid within the order's lifetime (a payment that still arrives is credited).
    Expired,
    /// A notification did not match the order (amount or currency); nothing was credited.
    Failed,
    /// Paid, and refunds (pending or succeeded) cover part of it.
    PartiallyRefunded,
    /// Paid, and refunds (pending or succeeded) cover all of it.
    Refunded,
}

impl OrderStatus {
    /// Whether the order was paid (refunded in part or in full included).
    pub fn was_paid(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::Failed => "failed",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<OrderStatus> {
        match text {
            "pending" => Some(OrderStatus::Pending),
            "paid" => Some(OrderStatus::Paid),
            "expired" => Some(OrderStatus::Expired),
            "failed" => Some(OrderStatus::Failed),
            "partially_refunded" => Some(OrderStatus::PartiallyRefunded),
            "refunded" => Some(OrderStatus::Refunded),
            _ => None,
        }
    }
}

/// A top-up order.
#[derive(Debug, Clone)]
pub struct Order {
    /// Its id (the provider's `out_trade_no` / `client_reference_id`).
    pub id: String,
    /// Who pays.
    pub user_id: String,
    /// Through whom.
    pub provider: ProviderName,
    /// The provider's method (`alipay`, `wxpay`, `card`).
    pub method: Option<String>,
    /// In what.
    pub currency: Currency,
    /// How much, in minor units.
    pub amount_minor: i64,
    /// Quota units credited when paid.
    pub quota: i64,
    /// Its state.
    pub status: OrderStatus,
    /// The provider's id for it (trade number, session id).
    pub provider_ref: Option<String>,
    /// Why it failed.
    pub note: Option<String>,
    /// When it was made (ms).
    pub created_at: i64,
    /// When it was paid (ms).
    pub paid_at: Option<i64>,
    /// The coupon it used.
    pub coupon_id: Option<String>,
    /// What the coupon took off, in minor units (`amount_minor` is what is paid).
    pub discount_minor: i64,
    /// The subscription plan it buys (`None` for a top-up).
    pub plan_id: Option<String>,
    /// What was refunded so far (refunds not failed), in minor units.
    pub refunded_minor: i64,
    /// For a plan upgrade: the subscription it replaces, and the proration (see
    /// `plan_change`).
    pub change: Option<plan_change::Proration>,
}

impl Order {
    /// What the payer sees on the provider's page.
    fn title(&self) -> String {
        if self.plan_id.is_some() {
            return format!("Skein subscription {}", self.id);
        }
        format!("Skein top-up {}", self.id)
    }
}

/// An order as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Order id.
    pub id: String,
    /// Who pays.
    pub user_id: String,
    /// `epay`, `stripe`, `alipay` or `wechat`.
    pub provider: ProviderName,
    /// The provider's method (`alipay`, `wxpay`, `card`).
    pub method: Option<String>,
    /// `CNY` or `USD`.
    pub currency: Currency,
    /// Amount in minor units (fen, cents).
    pub amount_minor: i64,
    /// Amount as text (`"10.00"`).
    pub amount: String,
    /// Quota units credited when paid.
    pub quota: i64,
    /// State.
    pub status: OrderStatus,
    /// The provider's reference, once known.
    pub provider_ref: Option<String>,
    /// Why it failed.
    pub note: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was paid (RFC 3339).
    pub paid_at: Option<String>,
    /// The coupon it used.
    pub coupon_id: Option<String>,
    /// What the coupon took off, in minor units; the amount before it is
    /// `amount_minor + discount_minor`.
    pub discount_minor: i64,
    /// The subscription plan it buys; none for a top-up.
    pub plan_id: Option<String>,
    /// Refunded so far (refunds pending or succeeded), in minor units.
    pub refunded_minor: i64,
    /// For a plan upgrade: the subscription it replaces.
    pub change_from: Option<String>,
    /// For a plan upgrade: the credit for the unused part of the replaced subscription's
    /// period, taken off the plan's price before any coupon, in minor units.
    pub credit_minor: i64,
}

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
        OrderView {
            amount: format_minor(o.amount_minor),
            id: o.id,
            user_id: o.user_id,
            provider: o.provider,
            method: o.method,
            currency: o.currency,
            amount_minor: o.amount_minor,
            quota: o.quota,
            status: o.status,
            provider_ref: o.provider_ref,
            note: o.note,
            created_at: ms_to_rfc3339(o.created_at),
            paid_at: o.paid_at.map(ms_to_rfc3339),
            coupon_id: o.coupon_id,
            discount_minor: o.discount_minor,
            plan_id: o.plan_id,
            refunded_minor: o.refunded_minor,
            change_from: o.change.as_ref().map(|c| c.from.clone()),
            credit_minor: o.change.as_ref().map_or(0, |c| c.credit_minor),
        }
    }
}

/// Where the payer goes to pay.
pub(crate) struct Checkout {
    /// The provider's page.
    pub pay_url: String,
    /// The provider's id for the order, when it makes one up front (a Stripe session).
    pub provider_ref: Option<String>,
}

/// A notification as received, for the provider to verify.
pub(crate) struct Notification {
    /// The raw query string.
    pub query: String,
    /// The raw body.
    pub body: bytes::Bytes,
    /// The signature header, where the provider sends one (`Stripe-Signature`).
    pub signature: Option<String>,
    /// Every header (WeChat Pay signs with four of them).
    pub headers: axum::http::HeaderMap,
    /// When it arrived (ms).
    pub received_ms: i64,
}

/// A provider's word that an order was paid.
#[derive(Debug, Clone)]
pub(crate) struct Paid {
    /// Our order id.
    pub order_id: String,
    /// The provider's reference.
    pub provider_ref: Option<String>,
    /// What was paid, in minor units.
    pub amount_minor: i64,
    /// In what.
    pub currency: Currency,
}

/// One payment provider.
#[async_trait]
pub(crate) trait Provider: Send + Sync {
    /// Its name.
    fn name(&self) -> ProviderName;
    /// The methods it offers.
    fn methods(&self) -> Vec<String>;
    /// Starts paying an order: where to send the payer.
    async fn checkout(
        &self,
        order: &Order,
        notify_url: &str,
        return_url: &str,
    ) -> ApiResult<Checkout>;
    /// Checks a notification's signature and reads it: `Ok(Some)` for a payment,
    /// `Ok(None)` for a genuine notification that pays nothing, `Err` for a forged or
    /// unreadable one.
    async fn verify(&self, notification: &Notification) -> Result<Option<Paid>, String>;
    /// The content type and body the provider expects when a notification was taken.
    fn acknowledge(&self) -> (&'static str, &'static str);
    /// Asks the provider whether an order was paid (reconciliation).
    async fn query(&self, order: &Order) -> ApiResult<Option<Paid>>;
    /// Whether it has a refund API; without one, refunds are recorded by an admin who
    /// returned the money outside Skein.
    fn refunds(&self) -> bool {
        false
    }
    /// Asks the provider to refund; idempotent by the refund's id, so asking again after a
    /// lost answer refunds nothing twice. `Err` when the provider could not be reached (the
    /// refund stays pending and is asked about again).
    async fn refund(
        &self,
        _order: &Order,
        _refund: &Refund,
        _notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        Err(manual_only())
    }
    /// Asks the provider where a refund stands (reconciliation).
    async fn query_refund(
        &self,
        order: &Order,
        refund: &Refund,
        notify_url: &str,
    ) -> ApiResult<RefundOutcome> {
        self.refund(order, refund, notify_url).await
    }
    /// Reads a refund notification whose signature [`Provider::verify`] has just checked.
    fn refund_event(&self, _notification: &Notification) -> Result<Option<RefundUpdate>, String> {
        Ok(None)
    }
}

/// The refusal of a provider refund where the provider has no refund API.
pub(crate) fn manual_only() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "refund_manual_only",
        "This provider has no refund API: return the money in its merchant console, then record the refund with \"manual\": true.",
        "该支付渠道没有退款接口：请在其商户后台退款，然后以 \"manual\": true 记录退款。",
    )
    .with_details(serde_json::json!({"field": "manual"}))
}

/// What applying a payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The order's quota was credited now; the balance after it.
    Credited(i64),
    /// It was credited before (a duplicate or late notification).
    Already,
    /// The payment did not match the order; the order failed and nothing was credited.
    Mismatch,
    /// No such order.
    Unknown,
}

/// The configured providers and the top-up rules.
pub(crate) struct Payments {
    pub config: PaymentConfig,
    /// Quota units per yuan/dollar.
    pub quota_per_unit: i64,
    providers: Vec<Arc<dyn Provider>>,
    /// Providers of settings since replaced (newest first, a few): asked about orders made
    /// under them by reconciliation, never used to verify a notification.
    pub(crate) retired: Vec<Arc<dyn Provider>>,
}

impl Payments {
    /// The providers `config` names, with the quota rate derived from the billing rules.
    pub(crate) fn new(config: PaymentConfig, quota_per_usd: i64, cny_per_usd: f64) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
        if let Some(epay) = &config.epay {
            providers.push(Arc::new(epay::Epay::new(epay.clone(), http.clone())));
        }
        if let Some(stripe) = &config.stripe {
            providers.push(Arc::new(stripe::Stripe::new(stripe.clone(), http.clone())));
        }
        if let Some(alipay) = &config.alipay {
            // The keys were read when the configuration was validated.
            match alipay::Alipay::new(alipay.clone(), http.clone()) {
                Ok(provider) => providers.push(Arc::new(provider)),
                Err(e) => tracing::error!(error = %e, "Alipay is not offered"),
            }
        }
        if let Some(wechat) = &config.wechat {
            match wechat::Wechat::new(wechat.clone(), http) {
                Ok(provider) => providers.push(Arc::new(provider)),
                Err(e) => tracing::error!(error = %e, "WeChat Pay is not offered"),
            }
        }
        let quota_per_unit = if config.quota_per_unit > 0 {
            config.quota_per_unit
        } else {
            match config.currency {
                Currency::Usd => quota_per_usd,
                // Display rate turned into a whole number of quota units per yuan.
                #[allow(clippy::cast_possible_truncation)]
                Currency::Cny => (quota_per_usd as f64 / cny_per_usd).round() as i64,
            }
        };
        Payments {
            config,
            quota_per_unit,
            providers,
            retired: Vec::new(),
        }
    }

    /// The provider of this name, if configured.
    pub(crate) fn provider(&self, name: ProviderName) -> Option<&Arc<dyn Provider>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// The configured providers.
    pub(crate) fn providers(&self) -> &[Arc<dyn Provider>] {
        &self.providers
    }

    /// Quota units an amount (minor units) buys, rounded down.
    pub(crate) fn quota_for(&self, amount_minor: i64) -> i64 {
        let quota = i128::from(amount_minor) * i128::from(self.quota_per_unit) / 100;
        i64::try_from(quota).unwrap_or(i64::MAX)
    }

    pub(crate) fn notify_url(&self, provider: ProviderName) -> String {
        format!(
            "{}/api/v1/billing/payment/{}/notify",
            self.public_url(),
            provider.as_str()
        )
    }

    fn return_url(&self, order_id: &str) -> String {
        format!("{}/billing/topup?order={order_id}", self.public_url())
    }

    fn public_url(&self) -> &str {
        self.config
            .public_url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
    }
}

/// `1234` minor units as `"12.34"`.
pub(crate) fn format_minor(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `"12.34"` (or `"12.3"`, `"12"`) as `1234` minor units; `None` for anything else.
pub(crate) fn parse_minor(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

fn no_provider() -> ApiError {
    ApiError::invalid_field(
        "provider",
        "This payment provider is not available.",
        "该支付方式不可用。",
    )
}

impl BillingService {
    /// The payment rules in effect, or a clear error when top-up is off. A clone of the
    /// current set: an admin's change applies to the next call, never midway through one.
    pub(crate) fn payments(&self) -> ApiResult<Arc<Payments>> {
        let payments = self.any_payments();
        if payments.config.enabled() {
            return Ok(payments);
        }
        Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "payments_disabled",
            "Online top-up is not enabled on this server; ask an administrator for a redemption code.",
            "本站未开启在线充值；请向管理员索取兑换码。",
        ))
    }

    /// The payment rules in effect, top-up on or off (reconciliation still asks retired
    /// providers about their orders and expires them after top-up was turned off).
    pub(crate) fn any_payments(&self) -> Arc<Payments> {
        match self.payments.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes an order and asks its provider where the payer goes.
    pub(crate) async fn create_order(
        &self,
        user_id: &str,
        provider: &str,
        method: Option<&str>,
        amount_minor: i64,
        coupon: Option<&str>,
    ) -> ApiResult<(Order, String)> {
        let payments = self.payments()?;
        let name = ProviderName::parse(provider).ok_or_else(no_provider)?;
        let provider = payments.provider(name).ok_or_else(no_provider)?;
        let methods = provider.methods();
        let method = match method {
            Some(m) if methods.iter().any(|x| x == m) => m.to_string(),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "method",
                    "This payment method is not offered.",
                    "不支持该付款方式。",
                ));
            }
            None => methods.first().cloned().unwrap_or_default(),
        };
        let rules = &payments.config;
        if amount_minor < rules.min_amount || amount_minor > rules.max_amount {
            return Err(ApiError::invalid_field(
                "amount",
                format!(
                    "The amount must be between {} and {}.",
                    format_minor(rules.min_amount),
                    format_minor(rules.max_amount)
                ),
                format!(
                    "金额须在 {} 到 {} 之间。",
                    format_minor(rules.min_amount),
                    format_minor(rules.max_amount)
                ),
            )
            .with_details(serde_json::json!({
                "field": "amount", "min": rules.min_amount, "max": rules.max_amount
            })));
        }
        let quota = payments.quota_for(amount_minor);
        if quota <= 0 {
            return Err(ApiError::invalid_field(
                "amount",
                "The amount is too small to buy any quota.",
                "金额太小，不足以购买额度。",
            ));
        }
        let now = now_ms();
        let order = Order {
            id: new_id(),
            user_id: user_id.to_string(),
            provider: name,
            method: Some(method),
            currency: rules.currency,
            amount_minor,
            quota,
            status: OrderStatus::Pending,
            provider_ref: None,
            note: None,
            created_at: now,
            paid_at: None,
            coupon_id: None,
            discount_minor: 0,
            plan_id: None,
            refunded_minor: 0,
            change: None,
        };
        let (order, pay_url) = self
            .place_and_checkout(order, coupon.map(str::trim).filter(|c| !c.is_empty()))
            .await?;
        tracing::info!(order_id = %order.id, user_id, provider = name.as_str(), amount_minor = order.amount_minor, discount_minor = order.discount_minor, quota, "top-up order created");
        Ok((order, pay_url))
    }

    /// Stores a new order (under the pending cap, claiming its coupon) and asks its provider
    /// where the payer goes; an order whose checkout could not start fails at once.
    pub(crate) async fn place_and_checkout(
        &self,
        order: Order,
        coupon: Option<&str>,
    ) -> ApiResult<(Order, String)> {
        let payments = self.payments()?;
        let name = order.provider;
        let provider = payments.provider(name).ok_or_else(no_provider)?;
        let mut order = match self
            .writer
            .submit(Op::PlaceOrder {
                order,
                coupon: coupon.map(str::to_string),
                max_pending: payments.config.max_pending_orders,
            })
            .await?
        {
            Done::Placed(placed) => *placed,
            other => return Err(crate::unexpected(&other)),
        };
        let checkout = match provider
            .checkout(
                &order,
                &payments.notify_url(name),
                &payments.return_url(&order.id),
            )
            .await
        {
            Ok(checkout) => checkout,
            Err(error) => {
                // Nothing can pay this order: it fails now and gives its coupon back.
                store::abandon(
                    &self.db,
                    &order.id,
                    "the provider could not start the payment",
                    now_ms(),
                )
                .await?;
                return Err(error);
            }
        };
        if let Some(reference) = &checkout.provider_ref {
            store::set_reference(&self.db, &order.id, reference).await?;
            order.provider_ref = Some(reference.clone());
        }
        Ok((order, checkout.pay_url))
    }

    /// Credits a paid order (once), through the writer.
    pub(crate) async fn apply_payment(&self, paid: Paid) -> ApiResult<Applied> {
        let order_id = paid.order_id.clone();
        let done = self.writer.submit(Op::PayOrder(paid)).await?;
        match done {
            Done::Paid { applied, user_id } => {
                if let Some(user_id) = user_id {
                    self.forget_balance(&user_id);
                    // A plan order starts or extends a subscription.
                    self.entitlements_changed(&user_id);
                }
                match applied {
                    Applied::Credited(balance) => {
                        tracing::info!(%order_id, balance, "top-up order paid and credited");
                    }
                    Applied::Mismatch => {
                        tracing::warn!(%order_id, "payment does not match its order; not credited");
                    }
                    Applied::Unknown => {
                        tracing::warn!(%order_id, "payment for an unknown order");
                    }
                    Applied::Already => {}
                }
                Ok(applied)
            }
            other => Err(crate::unexpected(&other)),
        }
    }

    /// Takes a provider's notification: verified, then applied. `Err` for forged ones.
    pub(crate) async fn take_notification(
        &self,
        provider: &str,
        notification: Notification,
    ) -> ApiResult<(&'static str, &'static str)> {
        let payments = self.payments()?;
        let name = ProviderName::parse(provider)
            .ok_or_else(|| ApiError::not_found("payment provider", "支付渠道"))?;
        let provider = payments
            .provider(name)
            .ok_or_else(|| ApiError::not_found("payment provider", "支付渠道"))?;
        match provider.verify(&notification).await {
            Err(why) => {
                tracing::warn!(provider = name.as_str(), %why, "payment notification refused");
                Err(ApiError::bad_request(
                    "invalid_notification",
                    "The notification's signature is not valid.",
                    "通知签名无效。",
                ))
            }
            Ok(None) => {
                // Not a payment: a refund's outcome, or an event that changes nothing.
                match provider.refund_event(&notification) {
                    Ok(Some(update)) => {
                        self.apply_refund(&update.refund_id, update.outcome).await?;
                    }
                    Ok(None) => {}
                    Err(why) => {
                        tracing::warn!(provider = name.as_str(), %why, "refund notification refused");
                        return Err(ApiError::bad_request(
                            "invalid_notification",
                            "The notification could not be read.",
                            "无法读取该通知。",
                        ));
                    }
                }
                Ok(provider.acknowledge())
            }
            Ok(Some(paid)) => {
                self.apply_payment(paid).await?;
                Ok(provider.acknowledge())
            }
        }
    }

    /// Asks the provider about one order now and applies what it says: the provider in
    /// effect first, then those replaced by an admin's change (the order may have been made
    /// under one). `Err` only when none of them could answer.
    pub(crate) async fn reconcile_order(&self, order: &Order) -> ApiResult<()> {
        let payments = self.any_payments();
        let mut answered = false;
        let mut failure = None;
        let candidates = payments.provider(order.provider).into_iter().chain(
            payments
                .retired
                .iter()
                .filter(|p| p.name() == order.provider),
        );
        for provider in candidates {
            match provider.query(order).await {
                Ok(Some(paid)) => {
                    self.apply_payment(paid).await?;
                    return Ok(());
                }
                Ok(None) => answered = true,
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            Some(error) if !answered => Err(error),
            _ => Ok(()),
        }
    }

    /// The reconciliation tick: pending orders older than one tick are checked with their
    /// provider (younger ones are still being paid), and those past their lifetime expire.
    pub(crate) async fn reconcile(&self) {
        let payments = self.any_payments();
        let now = now_ms();
        let tick_ms = i64::try_from(payments.config.reconcile_every_secs)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        let orders = match store::pending_before(&self.db, now - tick_ms, 100).await {
            Ok(orders) => orders,
            Err(error) => {
                tracing::warn!(%error, "reconciliation could not read pending orders");
                return;
            }
        };
        for order in orders {
            if let Err(error) = self.reconcile_order(&order).await {
                tracing::warn!(order_id = %order.id, %error, "reconciliation query failed");
            }
        }
        self.reconcile_refunds(now - tick_ms).await;
        let ttl_ms = payments.config.order_ttl_secs.saturating_mul(1000);
        match store::expire(&self.db, now - ttl_ms, now).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "unpaid top-up orders expired"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "expiring unpaid orders failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_trip_and_refuse_junk() {
        assert_eq!(format_minor(1234), "12.34");
        assert_eq!(format_minor(5), "0.05");
        assert_eq!(parse_minor("12.34"), Some(1234));
        assert_eq!(parse_minor("12.3"), Some(1230));
        assert_eq!(parse_minor("12"), Some(1200));
        assert_eq!(parse_minor("0.05"), Some(5));
        for junk in ["", ".5", "1.234", "-1.00", "1e3", "１.00", "1.0x"] {
            assert_eq!(parse_minor(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn quota_is_derived_from_the_billing_rate_and_rounds_down() {
        let cny = Payments::new(PaymentConfig::default(), 500_000, 7.2);
        // 500,000 / 7.2 = 69,444.4 → 69,444 units per yuan.
        assert_eq!(cny.quota_per_unit, 69_444);
        assert_eq!(cny.quota_for(1_000), 694_440);
        assert_eq!(cny.quota_for(1), 694);
        let usd = Payments::new(
            PaymentConfig {
                currency: Currency::Usd,
                ..PaymentConfig::default()
            },
            500_000,
            7.2,
        );
        assert_eq!(usd.quota_for(250), 1_250_000);
    }
}
