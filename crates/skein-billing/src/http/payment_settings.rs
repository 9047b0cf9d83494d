//! Admin → Payments: the payment settings in effect (each marked as the file's or stored,
//! never a provider's secret: only whether one is set), their change (validated like the
//! file's `[billing.payment]`, secrets write-only) and their reset to the file's.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use skein_core::api::AuditBefore;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::secret::Secret;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::BillingService;
use crate::payment::config::{AlipayConfig, EpayConfig, PaymentConfig, StripeConfig, WechatConfig};
use crate::payment::settings::{self as live, NAMES, typed_secret};
use crate::payment::{Currency, Payments};

/// Where a setting in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// The configuration file (`[billing.payment]`, or its default).
    File,
    /// An admin stored it (Admin → Payments, or this API).
    Stored,
}

/// An EPay merchant as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EpayView {
    /// The gateway's base address.
    pub url: String,
    /// The merchant id.
    pub pid: String,
    /// Whether the merchant key is set (it is never shown).
    pub key_set: bool,
    /// Methods offered.
    pub methods: Vec<String>,
}

/// A Stripe account as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StripeView {
    /// Whether the secret API key is set (never shown).
    pub secret_key_set: bool,
    /// Whether the webhook signing secret is set (never shown).
    pub webhook_secret_set: bool,
    /// The API's address.
    pub api_base: String,
    /// How old a signed webhook may be, in seconds.
    pub tolerance_secs: i64,
}

/// An Alipay app as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlipayView {
    /// The app's id.
    pub app_id: String,
    /// Whether the app's private key is set (never shown).
    pub private_key_set: bool,
    /// Alipay's public key (not a secret).
    pub alipay_public_key: String,
    /// The gateway.
    pub gateway_url: String,
    /// `page` and/or `wap`.
    pub methods: Vec<String>,
}

/// A WeChat Pay merchant as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WechatView {
    /// The merchant id.
    pub mchid: String,
    /// The app id.
    pub appid: String,
    /// Whether the merchant API private key is set (never shown).
    pub private_key_set: bool,
    /// The merchant certificate's serial number.
    pub merchant_serial_no: String,
    /// Whether the APIv3 key is set (never shown).
    pub apiv3_key_set: bool,
    /// The WeChat Pay public key (PEM), if used.
    pub public_key: Option<String>,
    /// Its id.
    pub public_key_id: Option<String>,
    /// The API's address.
    pub api_base: String,
    /// Timestamp tolerance, in seconds.
    pub tolerance_secs: i64,
}

/// One set of payment settings (those in effect, or the file's), secrets as "set or not".
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentValues {
    /// Whether online top-up is on (a provider is configured).
    pub enabled: bool,
    /// The address users and providers reach this server at.
    pub public_url: Option<String>,
    /// `CNY` or `USD`.
    pub currency: Currency,
    /// Quota units per yuan or dollar; 0 derives it from the exchange rate.
    pub quota_per_unit: i64,
    /// Amounts offered as buttons, in minor units.
    pub amounts: Vec<i64>,
    /// Smallest amount, in minor units.
    pub min_amount: i64,
    /// Largest amount, in minor units.
    pub max_amount: i64,
    /// An unpaid order expires after this many seconds.
    pub order_ttl_secs: i64,
    /// Most unpaid orders one user may hold; 0 = no cap.
    pub max_pending_orders: i64,
    /// Days before a subscription ends its owner is reminded; 0 = off.
    pub plan_reminder_days: i64,
    /// EPay, when on.
    pub epay: Option<EpayView>,
    /// Stripe, when on.
    pub stripe: Option<StripeView>,
    /// Alipay, when on.
    pub alipay: Option<AlipayView>,
    /// WeChat Pay, when on.
    pub wechat: Option<WechatView>,
}

/// The payment settings as an admin sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentSettings {
    /// The values in effect.
    pub values: PaymentValues,
    /// The configuration file's values (what a reset returns to).
    pub defaults: PaymentValues,
    /// Where each setting in effect comes from, by name.
    pub sources: BTreeMap<String, SettingSource>,
    /// Quota units one yuan or dollar buys now (`quota_per_unit`, or derived when 0).
    pub effective_quota_per_unit: i64,
    /// Why the stored settings are not in effect (the file's are), if they are not.
    pub load_error: Option<String>,
}

/// An EPay merchant to use. A secret left out keeps the one in effect; `""` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EpayUpdate {
    /// The gateway's base address (`https://pay.example.com/`).
    pub url: String,
    /// The merchant id.
    pub pid: String,
    /// The merchant key (write-only).
    pub key: Option<String>,
    /// Methods offered; default `alipay`, `wxpay`.
    pub methods: Option<Vec<String>>,
}

/// A Stripe account to use. A secret left out keeps the one in effect; `""` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeUpdate {
    /// The secret API key (write-only).
    pub secret_key: Option<String>,
    /// The webhook signing secret (write-only).
    pub webhook_secret: Option<String>,
    /// The API's address; default `https://api.stripe.com`.
    pub api_base: Option<String>,
    /// Webhook tolerance in seconds; default 300.
    pub tolerance_secs: Option<i64>,
}

/// An Alipay app to use. A secret left out keeps the one in effect; `""` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlipayUpdate {
    /// The app's id.
    pub app_id: String,
    /// The app's RSA private key (write-only).
    pub private_key: Option<String>,
    /// Alipay's public key for the app.
    pub alipay_public_key: String,
    /// The gateway; default Alipay's production gateway.
    pub gateway_url: Option<String>,
    /// `page` and/or `wap`; default both.
    pub methods: Option<Vec<String>>,
}

/// A WeChat Pay merchant to use. A secret left out keeps the one in effect; `""` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WechatUpdate {
    /// The merchant id.
    pub mchid: String,
    /// The app id.
    pub appid: String,
    /// The merchant API private key, PKCS#8 PEM (write-only).
    pub private_key: Option<String>,
    /// The merchant certificate's serial number.
    pub merchant_serial_no: String,
    /// The APIv3 key (write-only).
    pub apiv3_key: Option<String>,
    /// The WeChat Pay public key (PEM); empty or `null`: download platform certificates.
    pub public_key: Option<String>,
    /// That key's id.
    pub public_key_id: Option<String>,
    /// The API's address; default WeChat Pay's.
    pub api_base: Option<String>,
    /// Timestamp tolerance in seconds; default 300.
    pub tolerance_secs: Option<i64>,
}

/// Payment settings to change; fields left out stay as they are. A provider set to `null`
/// is turned off (even when the file configures it).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettingsUpdate {
    /// The public address (`https://ai.example.com`); `null` or `""`: none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub public_url: Option<Option<String>>,
    /// `CNY` or `USD`.
    #[schema(value_type = Option<Currency>)]
    pub currency: Option<String>,
    /// Quota units per yuan or dollar; 0 derives it from the exchange rate.
    pub quota_per_unit: Option<i64>,
    /// Amounts offered as buttons, in minor units.
    pub amounts: Option<Vec<i64>>,
    /// Smallest amount, in minor units (1 or more).
    pub min_amount: Option<i64>,
    /// Largest amount, in minor units.
    pub max_amount: Option<i64>,
    /// Seconds an unpaid order lives (1 or more).
    pub order_ttl_secs: Option<i64>,
    /// Most unpaid orders per user; 0 = no cap.
    pub max_pending_orders: Option<i64>,
    /// Reminder days before a subscription ends, 0 to 60.
    pub plan_reminder_days: Option<i64>,
    /// EPay, or `null` to turn it off.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<EpayUpdate>)]
    pub epay: Option<Option<EpayUpdate>>,
    /// Stripe, or `null` to turn it off.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<StripeUpdate>)]
    pub stripe: Option<Option<StripeUpdate>>,
    /// Alipay, or `null` to turn it off.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<AlipayUpdate>)]
    pub alipay: Option<Option<AlipayUpdate>>,
    /// WeChat Pay, or `null` to turn it off.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<WechatUpdate>)]
    pub wechat: Option<Option<WechatUpdate>>,
    /// Settings to return to the file's value (applied before the others).
    #[serde(default)]
    pub reset: Vec<String>,
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The payment settings: the values in effect, the file's, and where each comes from.
#[utoipa::path(get, path = "/admin/billing/payment-settings", tag = "admin-billing", security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentSettings),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ))]
pub async fn get_payment_settings(
    State(svc): State<Arc<BillingService>>,
    _admin: AdminUser,
) -> ApiJson<PaymentSettings> {
    ApiJson(admin_view(&svc))
}

/// Change the payment settings. They apply to new orders at once, on every instance, without
/// a restart; a setting never changed (or reset) is the file's. Secrets are write-only: left
/// out keeps the one in effect, `""` clears it. Every invalid field is reported at once
/// (`details.errors`) and nothing is stored then.
#[utoipa::path(put, path = "/admin/billing/payment-settings", tag = "admin-billing", security(("bearer" = [])),
    request_body = PaymentSettingsUpdate,
    responses(
        (status = 200, body = PaymentSettings),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, description = "A value that cannot work (each listed in details.errors, with its field)", body = ErrorEnvelope),
    ))]
pub async fn update_payment_settings(
    State(svc): State<Arc<BillingService>>,
    admin: AdminUser,
    lang: Lang,
    ApiJson(req): ApiJson<PaymentSettingsUpdate>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<PaymentSettings>)> {
    let before = AuditBefore::of(&admin_view(&svc).values);
    let writes = plan(&svc, req, lang)?;
    svc.store_payment_settings(writes, &admin.0.user_id).await?;
    tracing::info!(admin = %admin.0.user_id, "payment settings changed");
    Ok((Extension(before), ApiJson(admin_view(&svc))))
}

/// Return every payment setting to the file's (`PUT` with `reset` returns some).
#[utoipa::path(delete, path = "/admin/billing/payment-settings", tag = "admin-billing", security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentSettings),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, description = "The file's settings cannot work", body = ErrorEnvelope),
    ))]
pub async fn reset_payment_settings(
    State(svc): State<Arc<BillingService>>,
    admin: AdminUser,
    lang: Lang,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<PaymentSettings>)> {
    let before = AuditBefore::of(&admin_view(&svc).values);
    let req = PaymentSettingsUpdate {
        reset: NAMES.iter().map(|n| (*n).to_string()).collect(),
        ..PaymentSettingsUpdate::default()
    };
    let writes = plan(&svc, req, lang)?;
    svc.store_payment_settings(writes, &admin.0.user_id).await?;
    tracing::info!(admin = %admin.0.user_id, "payment settings reset to the file's");
    Ok((Extension(before), ApiJson(admin_view(&svc))))
}

/// The rows to write (`Some`) or delete (`None`) for `req`, after checking that the settings
/// they make can work.
fn plan(
    svc: &BillingService,
    req: PaymentSettingsUpdate,
    lang: Lang,
) -> ApiResult<Vec<(&'static str, Option<String>)>> {
    let file = &svc.config.payment;
    let effective = svc.payment_effective();
    // Stored settings that cannot be used leave the file's in effect, and a change starts
    // from those; the unusable rows stay until reset (the view's `load_error` says which).
    let mut next = effective.config.clone();
    let mut errors: Vec<ApiError> = Vec::new();
    let mut names: Vec<&'static str> = Vec::new();
    for name in &req.reset {
        match NAMES.iter().find(|n| **n == name.as_str()) {
            Some(&known) => {
                reset_one(&mut next, file, known);
                names.push(known);
            }
            None => errors.push(ApiError::invalid_field(
                "reset",
                format!("There is no payment setting called {name:?}."),
                format!("没有名为 {name:?} 的支付设置。"),
            )),
        }
    }
    let mut touched: Vec<&'static str> = Vec::new();
    let mut set = |name: &'static str| touched.push(name);
    if let Some(url) = req.public_url {
        next.public_url = url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        set("public_url");
    }
    if let Some(code) = req.currency {
        match Currency::parse(code.trim()) {
            Some(currency) => next.currency = currency,
            None => errors.push(ApiError::invalid_field(
                "currency",
                "The currency must be CNY or USD.",
                "币种必须是 CNY 或 USD。",
            )),
        }
        set("currency");
    }
    for (name, value, slot) in [
        (
            "quota_per_unit",
            req.quota_per_unit,
            &mut next.quota_per_unit,
        ),
        ("min_amount", req.min_amount, &mut next.min_amount),
        ("max_amount", req.max_amount, &mut next.max_amount),
        (
            "order_ttl_secs",
            req.order_ttl_secs,
            &mut next.order_ttl_secs,
        ),
        (
            "max_pending_orders",
            req.max_pending_orders,
            &mut next.max_pending_orders,
        ),
        (
            "plan_reminder_days",
            req.plan_reminder_days,
            &mut next.plan_reminder_days,
        ),
    ] {
        if let Some(value) = value {
            *slot = value;
            set(name);
        }
    }
    if let Some(amounts) = req.amounts {
        if amounts.len() > 20 {
            errors.push(ApiError::invalid_field(
                "amounts",
                "Offer at most 20 amounts.",
                "预设金额最多 20 个。",
            ));
        }
        next.amounts = amounts;
        set("amounts");
    }
    let text = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let list = |l: Vec<String>| -> Vec<String> {
        l.into_iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect()
    };
    if let Some(epay) = req.epay {
        let kept = effective.config.epay.as_ref();
        next.epay = epay.map(|u| EpayConfig {
            url: u.url.trim().to_string(),
            pid: u.pid.trim().to_string(),
            key: typed_secret(u.key, kept.map(|k| &k.key)),
            methods: u
                .methods
                .map(list)
                .unwrap_or_else(|| vec!["alipay".into(), "wxpay".into()]),
        });
        set("epay");
    }
    if let Some(stripe) = req.stripe {
        let kept = effective.config.stripe.as_ref();
        next.stripe = stripe.map(|u| StripeConfig {
            secret_key: typed_secret(u.secret_key, kept.map(|k| &k.secret_key)),
            webhook_secret: typed_secret(u.webhook_secret, kept.map(|k| &k.webhook_secret)),
            api_base: text(u.api_base).unwrap_or_else(|| "https://api.stripe.com".into()),
            tolerance_secs: u.tolerance_secs.unwrap_or(300),
        });
        set("stripe");
    }
    if let Some(alipay) = req.alipay {
        let kept = effective.config.alipay.as_ref();
        next.alipay = alipay.map(|u| AlipayConfig {
            app_id: u.app_id.trim().to_string(),
            private_key: typed_secret(u.private_key, kept.map(|k| &k.private_key)),
            alipay_public_key: u.alipay_public_key.trim().to_string(),
            gateway_url: text(u.gateway_url)
                .unwrap_or_else(|| "https://openapi.alipay.com/gateway.do".into()),
            methods: u
                .methods
                .map(list)
                .unwrap_or_else(|| vec!["page".into(), "wap".into()]),
        });
        set("alipay");
    }
    if let Some(wechat) = req.wechat {
        let kept = effective.config.wechat.as_ref();
        next.wechat = wechat.map(|u| WechatConfig {
            mchid: u.mchid.trim().to_string(),
            appid: u.appid.trim().to_string(),
            private_key: typed_secret(u.private_key, kept.map(|k| &k.private_key)),
            merchant_serial_no: u.merchant_serial_no.trim().to_string(),
            apiv3_key: typed_secret(u.apiv3_key, kept.map(|k| &k.apiv3_key)),
            public_key: text(u.public_key),
            public_key_id: text(u.public_key_id),
            api_base: text(u.api_base).unwrap_or_else(|| "https://api.mch.weixin.qq.com".into()),
            tolerance_secs: u.tolerance_secs.unwrap_or(300),
        });
        set("wechat");
    }
    for problem in next.problems() {
        // A field already reported (an unknown currency) is not reported twice.
        if !errors.iter().any(|e| field_of(e) == Some(problem.field)) {
            errors.push(ApiError::invalid_field(
                problem.field,
                problem.en,
                problem.zh,
            ));
        }
    }
    all(errors, lang)?;
    let sealer = || svc.payment_sealer().map_err(ApiError::internal);
    let mut writes: Vec<(&'static str, Option<String>)> =
        names.iter().map(|name| (*name, None)).collect();
    for name in touched {
        let value = match name {
            "public_url" => Ok(json!(next.public_url).to_string()),
            "currency" => Ok(json!(next.currency).to_string()),
            "quota_per_unit" => Ok(json!(next.quota_per_unit).to_string()),
            "amounts" => Ok(json!(next.amounts).to_string()),
            "min_amount" => Ok(json!(next.min_amount).to_string()),
            "max_amount" => Ok(json!(next.max_amount).to_string()),
            "order_ttl_secs" => Ok(json!(next.order_ttl_secs).to_string()),
            "max_pending_orders" => Ok(json!(next.max_pending_orders).to_string()),
            "plan_reminder_days" => Ok(json!(next.plan_reminder_days).to_string()),
            "epay" => {
                live::stored_section(sealer()?, "epay", next.epay.as_ref(), live::epay_secrets)
            }
            "stripe" => live::stored_section(
                sealer()?,
                "stripe",
                next.stripe.as_ref(),
                live::stripe_secrets,
            ),
            "alipay" => live::stored_section(
                sealer()?,
                "alipay",
                next.alipay.as_ref(),
                live::alipay_secrets,
            ),
            "wechat" => live::stored_section(
                sealer()?,
                "wechat",
                next.wechat.as_ref(),
                live::wechat_secrets,
            ),
            _ => continue,
        }
        .map_err(ApiError::internal)?;
        // A value set in the same request as its reset wins over the reset.
        writes.retain(|(n, _)| *n != name);
        writes.push((name, Some(value)));
    }
    Ok(writes)
}

/// `next`'s setting `name` back to the file's.
fn reset_one(next: &mut PaymentConfig, file: &PaymentConfig, name: &str) {
    match name {
        "public_url" => next.public_url = file.public_url.clone(),
        "currency" => next.currency = file.currency,
        "quota_per_unit" => next.quota_per_unit = file.quota_per_unit,
        "amounts" => next.amounts = file.amounts.clone(),
        "min_amount" => next.min_amount = file.min_amount,
        "max_amount" => next.max_amount = file.max_amount,
        "order_ttl_secs" => next.order_ttl_secs = file.order_ttl_secs,
        "max_pending_orders" => next.max_pending_orders = file.max_pending_orders,
        "plan_reminder_days" => next.plan_reminder_days = file.plan_reminder_days,
        "epay" => next.epay = file.epay.clone(),
        "stripe" => next.stripe = file.stripe.clone(),
        "alipay" => next.alipay = file.alipay.clone(),
        "wechat" => next.wechat = file.wechat.clone(),
        _ => {}
    }
}

/// The field an error names.
fn field_of(error: &ApiError) -> Option<&str> {
    error
        .details()
        .and_then(|d| d.get("field"))
        .and_then(|f| f.as_str())
}

/// One 422 for every field that failed, so the form shows them all at once: the first as
/// usual (`details.field`) and `details.errors` listing each with its message in `lang`.
fn all(errors: Vec<ApiError>, lang: Lang) -> ApiResult<()> {
    let listed: Vec<_> = errors
        .iter()
        .map(|e| json!({"field": field_of(e), "message": e.message(lang)}))
        .collect();
    match errors.into_iter().next() {
        None => Ok(()),
        Some(first) => {
            let field = field_of(&first).map(str::to_string);
            Err(first.with_details(json!({"field": field, "errors": listed})))
        }
    }
}

fn is_set(secret: &Secret) -> bool {
    !secret.expose().is_empty()
}

/// `config` as an admin sees it: every secret as whether it is set.
fn values(config: &PaymentConfig) -> PaymentValues {
    PaymentValues {
        enabled: config.enabled(),
        public_url: config.public_url.clone(),
        currency: config.currency,
        quota_per_unit: config.quota_per_unit,
        amounts: config.amounts.clone(),
        min_amount: config.min_amount,
        max_amount: config.max_amount,
        order_ttl_secs: config.order_ttl_secs,
        max_pending_orders: config.max_pending_orders,
        plan_reminder_days: config.plan_reminder_days,
        epay: config.epay.as_ref().map(|c| EpayView {
            url: c.url.clone(),
            pid: c.pid.clone(),
            key_set: is_set(&c.key),
            methods: c.methods.clone(),
        }),
        stripe: config.stripe.as_ref().map(|c| StripeView {
            secret_key_set: is_set(&c.secret_key),
            webhook_secret_set: is_set(&c.webhook_secret),
            api_base: c.api_base.clone(),
            tolerance_secs: c.tolerance_secs,
        }),
        alipay: config.alipay.as_ref().map(|c| AlipayView {
            app_id: c.app_id.clone(),
            private_key_set: is_set(&c.private_key),
            alipay_public_key: c.alipay_public_key.clone(),
            gateway_url: c.gateway_url.clone(),
            methods: c.methods.clone(),
        }),
        wechat: config.wechat.as_ref().map(|c| WechatView {
            mchid: c.mchid.clone(),
            appid: c.appid.clone(),
            private_key_set: is_set(&c.private_key),
            merchant_serial_no: c.merchant_serial_no.clone(),
            apiv3_key_set: is_set(&c.apiv3_key),
            public_key: c.public_key.clone(),
            public_key_id: c.public_key_id.clone(),
            api_base: c.api_base.clone(),
            tolerance_secs: c.tolerance_secs,
        }),
    }
}

/// The whole admin view.
fn admin_view(svc: &BillingService) -> PaymentSettings {
    let effective = svc.payment_effective();
    let payments: Arc<Payments> = svc.any_payments();
    PaymentSettings {
        values: values(&effective.config),
        defaults: values(&svc.config.payment),
        sources: NAMES
            .iter()
            .map(|name| {
                let source = if effective.error.is_none() && effective.stored.contains(*name) {
                    SettingSource::Stored
                } else {
                    SettingSource::File
                };
                ((*name).to_string(), source)
            })
            .collect(),
        effective_quota_per_unit: payments.quota_per_unit,
        load_error: effective.error.clone(),
    }
}
