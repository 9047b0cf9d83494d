//! Admin → Sign-in: which sign-in methods are on, which SMS vendor sends codes and the company
//! directory (LDAP, see `super::ldap_admin`). Applied at once on every instance, without a
//! restart (see `crate::signin`).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::signin::{self, SignInMethods, SmsSource, StoredSms};
use crate::sms::SmsProviderKind;
use crate::{UserService, store, validate};

/// The SMS vendor in effect, as an admin sees it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmsView {
    /// `log`, `aliyun`, `tencent`, `twilio`, or `null` (phone sign-in off).
    pub provider: Option<SmsProviderKind>,
    /// `config` (skein.toml's `[sms]`) or `admin` (stored here).
    pub source: SmsSource,
    /// The vendor's settings as `[sms.<vendor>]` spells them, without the secret.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Whether the vendor's secret is set (it is never shown).
    pub secret_set: bool,
    /// The name of the vendor's secret field (`access_key_secret`, `secret_key`,
    /// `auth_token`), `null` for `log`.
    pub secret_field: Option<&'static str>,
}

/// The sign-in settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSignIn {
    /// The methods in effect.
    pub values: SignInMethods,
    /// The configuration file's (what a reset returns to).
    pub defaults: SignInMethods,
    /// The settings an admin changed (`sign_in.password`, ..., `sign_in.sms`).
    pub overridden: Vec<String>,
    /// The SMS vendor in effect.
    pub sms: SmsView,
    /// Whether mail can be sent (verification needs it).
    pub mail_enabled: bool,
    /// The company directory (LDAP) in effect, without the service account's password.
    pub ldap: super::ldap_admin::LdapView,
}

/// An SMS vendor to use from now on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsUpdate {
    /// `log`, `aliyun`, `tencent`, `twilio`, or `null` to turn phone sign-in off.
    pub provider: Option<SmsProviderKind>,
    /// The vendor's settings as `[sms.<vendor>]` spells them. The secret (`access_key_secret`,
    /// `secret_key`, `auth_token`) may be left out to keep the one in effect for this vendor.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: Value,
}

/// Sign-in settings to change; omitted fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInUpdate {
    /// Password sign-in and registration for plain users.
    pub password: Option<bool>,
    /// A verified address before signing in (needs mail).
    pub verified_email_for_login: Option<bool>,
    /// A verified address before API keys work (needs mail).
    pub verified_email_for_relay: Option<bool>,
    /// Passkey sign-in.
    pub passkeys: Option<bool>,
    /// The SMS vendor.
    pub sms: Option<SmsUpdate>,
    /// The company directory (LDAP); its password is write-only.
    pub ldap: Option<super::ldap_admin::LdapUpdate>,
    /// Settings to return to the configuration file's (`sign_in.password`, ...,
    /// `sign_in.ldap`), applied first.
    #[serde(default)]
    pub reset: Vec<String>,
}

/// What sign-in looks like: the methods in effect, the file's, and the SMS vendor (without its
/// secret).
#[utoipa::path(get, path = "/admin/sign-in", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = AdminSignIn),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ))]
pub async fn admin_get_sign_in(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<AdminSignIn>> {
    Ok(ApiJson(view(&svc)))
}

/// Change the sign-in settings. They apply at once on every instance; the SMS vendor's secret
/// and the LDAP service account's password are stored sealed and never answered. Every invalid field is reported at once and nothing is
/// stored then.
#[utoipa::path(put, path = "/admin/sign-in", tag = "settings", security(("bearer" = [])),
    request_body = SignInUpdate,
    responses(
        (status = 200, body = AdminSignIn),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, description = "An invalid value (each listed in details.errors)", body = ErrorEnvelope),
    ))]
pub async fn admin_update_sign_in(
    State(svc): State<Arc<UserService>>,
    admin: AdminUser,
    lang: Lang,
    ApiJson(req): ApiJson<SignInUpdate>,
) -> ApiResult<ApiJson<AdminSignIn>> {
    let writes = parse_update(&svc, req, lang)?;
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    for (name, value) in &writes {
        match value {
            None => store::settings::delete_setting(&mut *tx, name).await?,
            Some(value) => {
                store::settings::put_setting(&mut *tx, name, value, &admin.0.user_id, now).await?
            }
        }
    }
    tx.commit().await.map_err(skein_db::DbError::from)?;
    tracing::info!(admin = %admin.0.user_id, changed = ?writes.iter().map(|(n, _)| n).collect::<Vec<_>>(), "sign-in settings changed");
    svc.load_settings().await?;
    svc.tell_settings_changed();
    Ok(ApiJson(view(&svc)))
}

fn view(svc: &UserService) -> AdminSignIn {
    let effective = svc.sign_in();
    let provider = effective.sms.provider;
    let secret_field = provider.and_then(signin::secret_field);
    let mut settings = provider
        .and_then(|kind| signin::vendor_section(&effective.sms, kind))
        .unwrap_or(Value::Null);
    let mut secret_set = false;
    if let (Some(field), Some(map)) = (secret_field, settings.as_object_mut()) {
        secret_set = map
            .remove(field)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()));
    }
    AdminSignIn {
        values: effective.methods,
        defaults: svc.sign_in_defaults(),
        overridden: effective.overridden.clone(),
        sms: SmsView {
            provider,
            source: effective.sms_source,
            settings,
            secret_set,
            secret_field,
        },
        mail_enabled: svc.mail_enabled(),
        ldap: super::ldap_admin::view(&effective),
    }
}

/// Checks every field (all errors at once) and answers the rows to write (`None`: delete).
fn parse_update(
    svc: &UserService,
    req: SignInUpdate,
    lang: Lang,
) -> ApiResult<Vec<(&'static str, Option<String>)>> {
    let mut errors = Vec::new();
    let mut writes = Vec::new();
    for name in &req.reset {
        match signin::NAMES.iter().find(|n| **n == name.as_str()) {
            Some(n) => writes.push((*n, None)),
            None => errors.push(ApiError::invalid_field(
                "reset",
                format!("There is no sign-in setting called {name:?}."),
                format!("没有名为 {name:?} 的登录设置。"),
            )),
        }
    }
    for (name, field, value) in [
        (signin::PASSWORD, "password", req.password),
        (
            signin::VERIFIED_EMAIL_FOR_LOGIN,
            "verified_email_for_login",
            req.verified_email_for_login,
        ),
        (
            signin::VERIFIED_EMAIL_FOR_RELAY,
            "verified_email_for_relay",
            req.verified_email_for_relay,
        ),
        (signin::PASSKEYS, "passkeys", req.passkeys),
    ] {
        let Some(on) = value else { continue };
        if on && name != signin::PASSWORD && name != signin::PASSKEYS && !svc.mail_enabled() {
            errors.push(ApiError::invalid_field(
                field,
                "Requiring a verified address needs outgoing mail: configure [mail] first.",
                "要求验证邮箱需要能发送邮件：请先配置 [mail]。",
            ));
            continue;
        }
        writes.push((name, Some(on.to_string())));
    }
    if let Some(sms) = req.sms {
        match parse_sms(svc, sms) {
            Ok(json) => writes.push((signin::SMS, Some(json))),
            Err(e) => errors.push(e),
        }
    }
    if let Some(ldap) = req.ldap {
        match super::ldap_admin::parse(svc, ldap) {
            Ok(json) => writes.push((signin::LDAP, Some(json))),
            Err(e) => errors.push(e),
        }
    }
    validate::all(errors, lang)?;
    Ok(writes)
}

/// The `sign_in.sms` row for `update`: checked by building its config, the secret kept from
/// the settings in effect when left out, then sealed.
fn parse_sms(svc: &UserService, update: SmsUpdate) -> ApiResult<String> {
    let invalid = |en: String, zh: String| ApiError::invalid_field("sms", en, zh);
    let mut stored = StoredSms {
        provider: update.provider,
        settings: match update.settings {
            Value::Null => Value::Object(Default::default()),
            Value::Object(map) => Value::Object(map),
            _ => {
                return Err(invalid(
                    "sms.settings must be an object of the vendor's settings.".into(),
                    "sms.settings 必须是服务商设置组成的对象。".into(),
                ));
            }
        },
    };
    if let Some(kind) = stored.provider
        && let Some(field) = signin::secret_field(kind)
    {
        let typed = stored
            .settings
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        if !typed {
            let effective = svc.sign_in();
            let kept = signin::vendor_section(&effective.sms, kind)
                .and_then(|section| section.get(field).cloned())
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()));
            match (kept, stored.settings.as_object_mut()) {
                (Some(secret), Some(map)) => {
                    map.insert(field.into(), secret);
                }
                _ => {
                    return Err(invalid(
                        format!("Enter the {} of the SMS vendor {}.", field, kind.as_str()),
                        format!("请填写短信服务商 {} 的 {}。", kind.as_str(), field),
                    ));
                }
            }
        }
    }
    if let Err(why) = signin::overlay_sms(&svc.settings.sms, &stored) {
        return Err(invalid(
            format!("These SMS settings cannot work: {why}"),
            format!("短信设置无法使用：{why}"),
        ));
    }
    svc.seal_sms_secret(&mut stored)?;
    serde_json::to_string(&stored).map_err(ApiError::internal)
}
