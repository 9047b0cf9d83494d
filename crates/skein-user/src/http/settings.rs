//! System settings (admins), what the web app needs before sign-in (anyone), and each user's
//! display preferences.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Deserializer, Serialize};
use skein_core::api::{Announcement, CurrencyDisplay, RegistrationMode, SystemSettings};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::ids::{new_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::settings::{self as rules, NAMES};
use crate::{UserService, store, validate};

/// The settings as an administrator sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSettings {
    /// The values in effect.
    pub values: SystemSettings,
    /// The configuration file's values (what a reset returns to).
    pub defaults: SystemSettings,
    /// The settings changed from the file's.
    pub overridden: Vec<String>,
    /// Quota units per US dollar (`billing.quota_per_usd`, fixed by the file).
    pub quota_per_usd: i64,
}

/// An announcement's text in both languages.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementText {
    /// English, plain text, at most 500 characters.
    pub en: String,
    /// Chinese, plain text, at most 500 characters.
    pub zh: String,
}

/// Settings to change; omitted fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// `open`, `invite_only` or `closed`.
    #[schema(value_type = Option<RegistrationMode>)]
    pub registration_mode: Option<String>,
    /// Quota every new account starts with (0 or more).
    pub signup_grant: Option<i64>,
    /// Quota the inviter receives (0 or more).
    pub invite_reward_inviter: Option<i64>,
    /// Quota the invitee receives (0 or more).
    pub invite_reward_invitee: Option<i64>,
    /// The default chat model; `null` or `""`: none (the first the user may use).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub default_model: Option<Option<String>>,
    /// The title model; `null`: the conversation's own; `""`: no generated titles.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub title_model: Option<Option<String>>,
    /// The banner's text, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<AnnouncementText>)]
    pub announcement: Option<Option<AnnouncementText>>,
    /// `units`, `usd` or `cny`.
    #[schema(value_type = Option<CurrencyDisplay>)]
    pub currency: Option<String>,
    /// Yuan per US dollar, above 0 and at most 1000.
    pub cny_per_usd: Option<f64>,
    /// Settings to return to the configuration file's value (applied before the others).
    #[serde(default)]
    pub reset: Vec<String>,
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What the web app needs before anyone signs in.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicSettings {
    /// Who may register.
    pub registration_mode: RegistrationMode,
    /// The banner, or `null`.
    pub announcement: Option<Announcement>,
    /// How amounts are shown unless a user chooses otherwise.
    pub currency: CurrencyDisplay,
    /// Yuan per US dollar.
    pub cny_per_usd: f64,
    /// Quota units per US dollar.
    pub quota_per_usd: i64,
    /// What someone who registers with an invite code receives on top of the signup grant.
    pub invite_reward_invitee: i64,
    /// What the code's owner receives for each registration with it.
    pub invite_reward_inviter: i64,
    /// Which sign-in methods the sign-in page offers.
    pub sign_in: PublicSignIn,
}

/// The sign-in methods on, for the sign-in page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicSignIn {
    /// Password sign-in and registration (off: administrators only).
    pub password: bool,
    /// Sign-in by SMS code.
    pub phone: bool,
    /// Sign-in with a passkey.
    pub passkeys: bool,
    /// New accounts must verify their address before signing in.
    pub verified_email_for_login: bool,
}

/// A user's own display choices.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisplayPreferences {
    /// The currency chosen; `null` follows the system setting.
    pub currency: Option<CurrencyDisplay>,
}

/// A change of one's display choices.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisplayPreferencesUpdate {
    /// `units`, `usd`, `cny`, or `null` to follow the system setting.
    #[schema(value_type = Option<CurrencyDisplay>)]
    pub currency: Option<String>,
}

/// The system settings: the values in effect, the file's, and which were changed.
#[utoipa::path(get, path = "/admin/settings", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = AdminSettings),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ))]
pub async fn admin_get_settings(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<AdminSettings>> {
    Ok(ApiJson(admin_view(&svc)))
}

/// Change system settings. They apply at once on every instance, without a restart; a setting
/// never changed (or reset) is the configuration file's. Every invalid field is reported at
/// once and nothing is stored then.
#[utoipa::path(put, path = "/admin/settings", tag = "settings", security(("bearer" = [])),
    request_body = SettingsUpdate,
    responses(
        (status = 200, body = AdminSettings),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, description = "An invalid value (each listed in details.errors)", body = ErrorEnvelope),
    ))]
pub async fn admin_update_settings(
    State(svc): State<Arc<UserService>>,
    admin: AdminUser,
    lang: Lang,
    ApiJson(req): ApiJson<SettingsUpdate>,
) -> ApiResult<ApiJson<AdminSettings>> {
    let writes = parse_update(req, lang)?;
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    for write in &writes {
        match write {
            Write::Reset(name) => store::settings::delete_setting(&mut *tx, name).await?,
            Write::Set(name, value) => {
                store::settings::put_setting(&mut *tx, name, value, &admin.0.user_id, now).await?
            }
        }
    }
    tx.commit().await.map_err(skein_db::DbError::from)?;
    // Applied here at once; the other instances read the table again when told.
    svc.load_settings().await?;
    svc.tell_settings_changed();
    Ok(ApiJson(admin_view(&svc)))
}

/// What the web app needs before sign-in: the registration mode, the announcement and how
/// money is shown.
#[utoipa::path(get, path = "/settings/public", tag = "settings",
    responses((status = 200, body = PublicSettings)))]
pub async fn public_settings(
    State(svc): State<Arc<UserService>>,
) -> ApiResult<ApiJson<PublicSettings>> {
    let s = svc.system.effective().values;
    let sign_in = svc.sign_in();
    Ok(ApiJson(PublicSettings {
        sign_in: PublicSignIn {
            password: sign_in.methods.password,
            phone: sign_in.sms_provider.is_some(),
            passkeys: sign_in.methods.passkeys,
            verified_email_for_login: sign_in.methods.verified_email_for_login,
        },
        registration_mode: s.registration_mode,
        announcement: s.announcement.clone(),
        currency: s.currency,
        cny_per_usd: s.cny_per_usd,
        quota_per_usd: svc.system.defaults().quota_per_usd,
        invite_reward_invitee: s.invite_reward_invitee,
        invite_reward_inviter: s.invite_reward_inviter,
    }))
}

/// The caller's own display choices.
#[utoipa::path(get, path = "/user/preferences", tag = "settings", security(("bearer" = [])),
    responses((status = 200, body = DisplayPreferences), (status = 401, body = ErrorEnvelope)))]
pub async fn get_preferences(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<DisplayPreferences>> {
    preferences_of(&svc, &user.user_id).await.map(ApiJson)
}

/// Change one's display choices (the currency amounts are shown in).
#[utoipa::path(put, path = "/user/preferences", tag = "settings", security(("bearer" = [])),
    request_body = DisplayPreferencesUpdate,
    responses(
        (status = 200, body = DisplayPreferences),
        (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn update_preferences(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<DisplayPreferencesUpdate>,
) -> ApiResult<ApiJson<DisplayPreferences>> {
    let currency = req
        .currency
        .as_deref()
        .map(|c| rules::currency(c, "currency"))
        .transpose()?;
    store::settings::set_user_currency(
        svc.db.pool(),
        &user.user_id,
        currency.map(rules::currency_name),
        now_ms(),
    )
    .await?;
    preferences_of(&svc, &user.user_id).await.map(ApiJson)
}

async fn preferences_of(svc: &UserService, user_id: &str) -> ApiResult<DisplayPreferences> {
    let stored = store::settings::user_currency(svc.db.pool(), user_id).await?;
    Ok(DisplayPreferences {
        // A value this version does not know reads as "follow the system".
        currency: stored.and_then(|c| rules::currency(&c, "currency").ok()),
    })
}

fn admin_view(svc: &UserService) -> AdminSettings {
    let effective = svc.system.effective();
    AdminSettings {
        values: (*effective.values).clone(),
        defaults: svc.system.defaults().system.clone(),
        overridden: effective.overridden,
        quota_per_usd: svc.system.defaults().quota_per_usd,
    }
}

/// One row to write or delete.
enum Write {
    Reset(String),
    Set(&'static str, String),
}

/// Checks every field (all errors at once, in `lang`) and answers the rows to write: resets
/// first, so a field both reset and set ends up set.
fn parse_update(req: SettingsUpdate, lang: Lang) -> ApiResult<Vec<Write>> {
    let mut errors = Vec::new();
    let mut writes = Vec::new();
    // Errors found while `set` holds `errors` (the second language of an announcement).
    let mut extra = Vec::new();
    for name in &req.reset {
        match NAMES.iter().find(|n| **n == name.as_str()) {
            Some(n) => writes.push(Write::Reset((*n).to_string())),
            None => errors.push(ApiError::invalid_field(
                "reset",
                format!("There is no setting called {name:?}."),
                format!("没有名为 {name:?} 的设置。"),
            )),
        }
    }
    let mut set = |name: &'static str, value: ApiResult<serde_json::Value>| match value {
        Ok(v) => writes.push(Write::Set(name, v.to_string())),
        Err(e) => errors.push(e),
    };
    use serde_json::json;
    if let Some(mode) = &req.registration_mode {
        set(
            "registration_mode",
            rules::registration_mode(mode).map(|m| json!(m)),
        );
    }
    for (name, value) in [
        ("signup_grant", req.signup_grant),
        ("invite_reward_inviter", req.invite_reward_inviter),
        ("invite_reward_invitee", req.invite_reward_invitee),
    ] {
        if let Some(v) = value {
            set(name, rules::grant(v, name).map(|g| json!(g)));
        }
    }
    if let Some(model) = &req.default_model {
        // Empty means none: stored as null so the chat falls back to the first model.
        let parsed = match model {
            Some(m) => {
                rules::model(m, "default_model").map(|m| json!((!m.is_empty()).then_some(m)))
            }
            None => Ok(serde_json::Value::Null),
        };
        set("default_model", parsed);
    }
    if let Some(model) = &req.title_model {
        let parsed = match model {
            Some(m) => rules::model(m, "title_model").map(|m| json!(m)),
            None => Ok(serde_json::Value::Null),
        };
        set("title_model", parsed);
    }
    if let Some(announcement) = &req.announcement {
        let parsed = match announcement {
            None => Ok(serde_json::Value::Null),
            Some(text) => {
                let en = rules::announcement_text(&text.en, "announcement.en");
                let zh = rules::announcement_text(&text.zh, "announcement.zh");
                match (en, zh) {
                    // A new id with every text: a banner dismissed before shows again.
                    (Ok(en), Ok(zh)) => Ok(json!(Announcement {
                        id: new_id(),
                        en,
                        zh
                    })),
                    (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
                    (Err(e), Err(z)) => {
                        extra.push(z);
                        Err(e)
                    }
                }
            }
        };
        set("announcement", parsed);
    }
    if let Some(currency) = &req.currency {
        set(
            "currency",
            rules::currency(currency, "currency").map(|c| json!(c)),
        );
    }
    if let Some(rate) = req.cny_per_usd {
        set("cny_per_usd", rules::exchange_rate(rate).map(|r| json!(r)));
    }
    errors.extend(extra);
    validate::all(errors, lang)?;
    Ok(writes)
}
