//! The `[billing.payment]` section: what users may pay, in which currency, through which
//! providers.

use serde::{Deserialize, Serialize};
use skein_core::secret::Secret;

/// Self-service top-up. Off until a provider is configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// The address users and providers reach this server at (`https://ai.example.com`):
    /// notifications go to `<public_url>/api/v1/billing/payment/<provider>/...` and payers
    /// return to `<public_url>/billing/topup`.
    pub public_url: Option<String>,
    /// What users pay in: `CNY` or `USD`.
    pub currency: Currency,
    /// Quota units per yuan or dollar; 0 derives it from `billing.quota_per_usd` (and
    /// `billing.cny_per_usd` for CNY).
    pub quota_per_unit: i64,
    /// Amounts offered as buttons, in minor units (fen, cents).
    pub amounts: Vec<i64>,
    /// Smallest amount a user may enter, in minor units.
    pub min_amount: i64,
    /// Largest amount a user may enter, in minor units.
    pub max_amount: i64,
    /// An unpaid order expires after this long (a payment that still arrives is credited).
    pub order_ttl_secs: i64,
    /// How often pending orders are checked with their provider (a lost notification).
    pub reconcile_every_secs: u64,
    /// Most unpaid (pending) orders one user may hold at once; 0 = no cap. Without a cap a
    /// user could hold a limited coupon's uses in orders they never pay.
    pub max_pending_orders: i64,
    /// How often subscription periods that have begun are granted and ended ones expired.
    pub subscription_every_secs: u64,
    /// How many days before a subscription's paid time ends its owner is reminded by mail
    /// (and again once it has ended); 0 = no reminders.
    pub plan_reminder_days: i64,
    /// The EPay (易支付) gateway, when used.
    pub epay: Option<EpayConfig>,
    /// Stripe Checkout, when used.
    pub stripe: Option<StripeConfig>,
    /// Alipay (支付宝) through its Open Platform, when used.
    pub alipay: Option<AlipayConfig>,
    /// WeChat Pay (微信支付) API v3 Native pay, when used.
    pub wechat: Option<WechatConfig>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            public_url: None,
            currency: Currency::Cny,
            quota_per_unit: 0,
            amounts: vec![1_000, 5_000, 10_000, 50_000],
            min_amount: 100,
            max_amount: 10_000_000,
            order_ttl_secs: 2 * 3600,
            reconcile_every_secs: 60,
            max_pending_orders: 5,
            subscription_every_secs: 60,
            plan_reminder_days: 3,
            epay: None,
            stripe: None,
            alipay: None,
            wechat: None,
        }
    }
}

/// A currency users pay in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Currency {
    /// Chinese yuan (minor unit: fen).
    #[serde(rename = "CNY")]
    Cny,
    /// US dollar (minor unit: cent).
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
            Currency::Usd => "USD",
        }
    }

    /// Parses an ISO 4217 code in any case.
    pub fn parse(code: &str) -> Option<Currency> {
        match code.to_ascii_uppercase().as_str() {
            "CNY" => Some(Currency::Cny),
            "USD" => Some(Currency::Usd),
            _ => None,
        }
    }
}

/// An EPay (易支付) merchant account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpayConfig {
    /// The gateway's base address (`https://pay.example.com/`); `submit.php` and `api.php`
    /// are under it.
    pub url: String,
    /// The merchant id (`pid`); a number is taken as its digits (`SKEIN_..._PID=1001`).
    #[serde(deserialize_with = "text_or_number")]
    pub pid: String,
    /// The merchant key that signs requests and notifications.
    pub key: Secret,
    /// Payment methods offered (`alipay`, `wxpay`, `qqpay`, ...).
    #[serde(default = "default_epay_methods")]
    pub methods: Vec<String>,
}

/// A string, or a number written without quotes (environment variables arrive that way).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(u64),
    }
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(n) => n.to_string(),
    })
}

fn default_epay_methods() -> Vec<String> {
    vec!["alipay".into(), "wxpay".into()]
}

/// A Stripe account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// The secret API key (`sk_live_...`).
    pub secret_key: Secret,
    /// The webhook endpoint's signing secret (`whsec_...`).
    pub webhook_secret: Secret,
    /// The API's address; only tests change it.
    #[serde(default = "default_stripe_api")]
    pub api_base: String,
    /// How old a signed webhook may be, in seconds (Stripe's libraries use 300).
    #[serde(default = "default_stripe_tolerance")]
    pub tolerance_secs: i64,
}

/// An Alipay Open Platform app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlipayConfig {
    /// The app's id (`app_id`); a number is taken as its digits.
    #[serde(deserialize_with = "text_or_number")]
    pub app_id: String,
    /// The app's RSA private key (2048-bit), PEM or the Base64 text Alipay's key tool writes
    /// (PKCS#8 or PKCS#1).
    pub private_key: Secret,
    /// Alipay's public key for the app (from the Open Platform console), PEM or Base64.
    pub alipay_public_key: String,
    /// The gateway (`https://openapi.alipay.com/gateway.do`; the sandbox is
    /// `https://openapi-sandbox.dl.alipaydev.com/gateway.do`).
    #[serde(default = "default_alipay_gateway")]
    pub gateway_url: String,
    /// What is offered: `page` (a computer's cashier page) and `wap` (a phone's).
    #[serde(default = "default_alipay_methods")]
    pub methods: Vec<String>,
}

/// A WeChat Pay (微信支付) merchant, paid through API v3 Native pay (a QR code).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfig {
    /// The merchant id (`mchid`); a number is taken as its digits.
    #[serde(deserialize_with = "text_or_number")]
    pub mchid: String,
    /// The app id bound to the merchant (`appid`, an official account's or an app's).
    pub appid: String,
    /// The merchant API private key (`apiclient_key.pem`, PKCS#8 PEM).
    pub private_key: Secret,
    /// The serial number of the merchant API certificate that key belongs to.
    pub merchant_serial_no: String,
    /// The APIv3 key (32 characters) that encrypts notifications and platform certificates.
    pub apiv3_key: Secret,
    /// The WeChat Pay public key (PEM, from the merchant console); without it the platform
    /// certificates are downloaded from `/v3/certificates`.
    #[serde(default)]
    pub public_key: Option<String>,
    /// That public key's id (`PUB_KEY_ID_...`), which `Wechatpay-Serial` names.
    #[serde(default)]
    pub public_key_id: Option<String>,
    /// The API's address; only tests change it.
    #[serde(default = "default_wechat_api")]
    pub api_base: String,
    /// How far a signed notification's or answer's timestamp may be from now, in seconds
    /// (the official SDKs use 300).
    #[serde(default = "default_stripe_tolerance")]
    pub tolerance_secs: i64,
}

fn default_wechat_api() -> String {
    "https://api.mch.weixin.qq.com".into()
}

fn default_alipay_gateway() -> String {
    "https://openapi.alipay.com/gateway.do".into()
}

fn default_alipay_methods() -> Vec<String> {
    vec!["page".into(), "wap".into()]
}

fn default_stripe_api() -> String {
    "https://api.stripe.com".into()
}

fn default_stripe_tolerance() -> i64 {
    300
}

impl PaymentConfig {
    /// Whether any provider is configured.
    pub fn enabled(&self) -> bool {
        self.epay.is_some()
            || self.stripe.is_some()
            || self.alipay.is_some()
            || self.wechat.is_some()
    }

    /// Checks values that parse but cannot work (the configuration file's check: nothing is
    /// checked while no provider is configured, as before settings could be stored).
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some(p) => Err(format!("billing.payment.{}: {}", p.field, p.en)),
        }
    }

    /// Every value that cannot work, each naming its field (`min_amount`, `epay.key`) in
    /// English and Chinese: the admin API reports them all at once, the file check the first.
    /// Unlike [`PaymentConfig::validate`], the amounts and limits are checked with no provider
    /// too, so a stored value is never one that fails the day a provider is added.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &'static str, en: String, zh: String| {
            out.push(Problem { field, en, zh });
        };
        match &self.public_url {
            None if self.enabled() => bad(
                "public_url",
                "The public address is required when a payment provider is on.".into(),
                "开启支付渠道时必须填写站点公网地址。".into(),
            ),
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => bad(
                "public_url",
                "The public address must start with http:// or https://.".into(),
                "站点公网地址必须以 http:// 或 https:// 开头。".into(),
            ),
            _ => {}
        }
        if self.quota_per_unit < 0 {
            bad(
                "quota_per_unit",
                "Quota per unit must be 0 (derived from the exchange rate) or more.".into(),
                "每单位额度必须为 0（按汇率推算）或更大。".into(),
            );
        }
        if self.min_amount < 1 {
            bad(
                "min_amount",
                "The smallest amount must be at least 1 minor unit.".into(),
                "最小金额至少为 1 分。".into(),
            );
        }
        if self.max_amount < self.min_amount {
            bad(
                "max_amount",
                "The largest amount must not be below the smallest.".into(),
                "最大金额不能小于最小金额。".into(),
            );
        }
        if self.order_ttl_secs < 1 {
            bad(
                "order_ttl_secs",
                "An order must live at least 1 second.".into(),
                "订单有效期至少为 1 秒。".into(),
            );
        }
        if self.reconcile_every_secs < 1 {
            bad(
                "reconcile_every_secs",
                "Reconciliation must run at least every second.".into(),
                "对账间隔至少为 1 秒。".into(),
            );
        }
        if !(0..=60).contains(&self.plan_reminder_days) {
            bad(
                "plan_reminder_days",
                "Reminder days must be between 0 and 60.".into(),
                "到期提醒天数必须在 0 到 60 之间。".into(),
            );
        }
        if self.max_pending_orders < 0 {
            bad(
                "max_pending_orders",
                "The pending-order cap must be 0 (no cap) or more.".into(),
                "待支付订单上限必须为 0（不限）或更大。".into(),
            );
        }
        if self.subscription_every_secs < 1 {
            bad(
                "subscription_every_secs",
                "Subscriptions must be checked at least every second.".into(),
                "订阅检查间隔至少为 1 秒。".into(),
            );
        }
        if self
            .amounts
            .iter()
            .any(|a| *a < self.min_amount || *a > self.max_amount)
        {
            bad(
                "amounts",
                "Every offered amount must lie between the smallest and the largest amount.".into(),
                "每个预设金额都必须在最小金额与最大金额之间。".into(),
            );
        }
        let cny_only = |name: &str| {
            (
                format!("{name} settles in CNY: set the currency to CNY."),
                format!("{name} 仅以人民币结算：请将币种设为 CNY。"),
            )
        };
        if let Some(epay) = &self.epay {
            if epay.url.trim().is_empty() {
                bad(
                    "epay.url",
                    "Enter the EPay gateway's address.".into(),
                    "请填写易支付网关地址。".into(),
                );
            }
            if epay.pid.is_empty() {
                bad(
                    "epay.pid",
                    "Enter the EPay merchant id.".into(),
                    "请填写易支付商户号。".into(),
                );
            }
            if epay.key.expose().is_empty() {
                bad(
                    "epay.key",
                    "Enter the EPay merchant key.".into(),
                    "请填写易支付商户密钥。".into(),
                );
            }
            if epay.methods.is_empty() {
                bad(
                    "epay.methods",
                    "Offer at least one EPay method.".into(),
                    "请至少提供一种易支付付款方式。".into(),
                );
            }
            if self.currency != Currency::Cny {
                let (en, zh) = cny_only("EPay");
                bad("currency", en, zh);
            }
        }
        if let Some(stripe) = &self.stripe {
            if stripe.secret_key.expose().is_empty() {
                bad(
                    "stripe.secret_key",
                    "Enter the Stripe secret key.".into(),
                    "请填写 Stripe 私钥。".into(),
                );
            }
            if stripe.webhook_secret.expose().is_empty() {
                bad(
                    "stripe.webhook_secret",
                    "Enter the Stripe webhook signing secret.".into(),
                    "请填写 Stripe Webhook 签名密钥。".into(),
                );
            }
            if stripe.tolerance_secs < 1 {
                bad(
                    "stripe.tolerance_secs",
                    "The tolerance must be at least 1 second.".into(),
                    "时间容差至少为 1 秒。".into(),
                );
            }
        }
        if let Some(alipay) = &self.alipay {
            if self.currency != Currency::Cny {
                let (en, zh) = cny_only("Alipay");
                bad("currency", en, zh);
            }
            if alipay.app_id.is_empty() {
                bad(
                    "alipay.app_id",
                    "Enter the Alipay app id.".into(),
                    "请填写支付宝应用 ID。".into(),
                );
            }
            if alipay.methods.is_empty()
                || alipay
                    .methods
                    .iter()
                    .any(|m| m.as_str() != "page" && m.as_str() != "wap")
            {
                bad(
                    "alipay.methods",
                    "Alipay methods must be among \"page\" and \"wap\".".into(),
                    "支付宝付款方式只能是 \"page\" 和 \"wap\"。".into(),
                );
            }
            if let Err(why) = super::alipay::Alipay::new(alipay.clone(), reqwest::Client::new()) {
                bad(
                    "alipay.private_key",
                    format!("The Alipay keys cannot be used: {why}"),
                    format!("支付宝密钥无法使用：{why}"),
                );
            }
        }
        if let Some(wechat) = &self.wechat {
            if self.currency != Currency::Cny {
                let (en, zh) = cny_only("WeChat Pay");
                bad("currency", en, zh);
            }
            for (field, value, en, zh) in [
                (
                    "wechat.mchid",
                    &wechat.mchid,
                    "Enter the merchant id.",
                    "请填写商户号。",
                ),
                (
                    "wechat.appid",
                    &wechat.appid,
                    "Enter the app id.",
                    "请填写 AppID。",
                ),
                (
                    "wechat.merchant_serial_no",
                    &wechat.merchant_serial_no,
                    "Enter the merchant certificate's serial number.",
                    "请填写商户证书序列号。",
                ),
            ] {
                if value.is_empty() {
                    bad(field, en.into(), zh.into());
                }
            }
            if wechat.tolerance_secs < 1 {
                bad(
                    "wechat.tolerance_secs",
                    "The tolerance must be at least 1 second.".into(),
                    "时间容差至少为 1 秒。".into(),
                );
            }
            if let Err(why) = super::wechat::Wechat::new(wechat.clone(), reqwest::Client::new()) {
                bad(
                    "wechat.private_key",
                    format!("The WeChat Pay keys cannot be used: {why}"),
                    format!("微信支付密钥无法使用：{why}"),
                );
            }
        }
        out
    }
}

/// A value of [`PaymentConfig`] that cannot work: its field and why, in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field, as the admin API names it (`min_amount`, `epay.key`).
    pub field: &'static str,
    /// Why, in English.
    pub en: String,
    /// Why, in Chinese.
    pub zh: String,
}
