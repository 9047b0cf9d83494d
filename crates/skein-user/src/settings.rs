//! System settings changed at run time: the values in effect are the configuration file's,
//! overlaid by what an administrator stored (`system_settings`, one row per setting holding
//! its JSON). The service keeps the overlay in memory; a change is written, applied here at
//! once and told to the other instances on the bus, which read the table again.

use std::sync::{Arc, RwLock};

use serde::Deserialize;
use serde_json::Value;
use skein_core::api::{
    Announcement, CurrencyDisplay, RegistrationMode, SettingsSource, SystemSettings,
};
use skein_core::{ApiError, ApiResult};

/// The names of the settings, as stored and as `reset` takes them.
pub const NAMES: [&str; 9] = [
    "registration_mode",
    "signup_grant",
    "invite_reward_inviter",
    "invite_reward_invitee",
    "default_model",
    "title_model",
    "announcement",
    "currency",
    "cny_per_usd",
];

/// The largest grant: billing's largest single amount.
pub const MAX_GRANT: i64 = 1_000_000_000_000_000;
/// The longest model name accepted.
pub const MAX_MODEL_CHARS: usize = 200;
/// The longest announcement text, per language.
pub const MAX_ANNOUNCEMENT_CHARS: usize = 500;

/// What the configuration file says, before any stored change.
#[derive(Debug, Clone)]
pub struct SettingsDefaults {
    /// The values in effect while nothing is stored.
    pub system: SystemSettings,
    /// Quota units per US dollar (`billing.quota_per_usd`; not a run-time setting: prices are
    /// stored in these units).
    pub quota_per_usd: i64,
}

impl SettingsDefaults {
    /// Defaults from the configuration sections that used to decide these values alone.
    pub fn from_config(
        registration: &crate::RegistrationConfig,
        grants: Grants,
        default_model: Option<String>,
        title_model: Option<String>,
        quota_per_usd: i64,
        cny_per_usd: f64,
    ) -> Self {
        let registration_mode = if !registration.enabled {
            RegistrationMode::Closed
        } else if registration.invite_required {
            RegistrationMode::InviteOnly
        } else {
            RegistrationMode::Open
        };
        SettingsDefaults {
            system: SystemSettings {
                registration_mode,
                signup_grant: grants.signup,
                invite_reward_inviter: grants.inviter,
                invite_reward_invitee: grants.invitee,
                default_model,
                title_model,
                announcement: None,
                currency: CurrencyDisplay::Usd,
                cny_per_usd,
            },
            quota_per_usd,
        }
    }
}

/// The grants of `[billing]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grants {
    /// Every new account's.
    pub signup: i64,
    /// The inviter's.
    pub inviter: i64,
    /// The invitee's.
    pub invitee: i64,
}

impl Default for SettingsDefaults {
    fn default() -> Self {
        SettingsDefaults::from_config(
            &crate::RegistrationConfig::default(),
            Grants::default(),
            None,
            None,
            500_000,
            7.2,
        )
    }
}

/// The settings in effect, and which were changed from the file's.
#[derive(Debug, Clone)]
pub struct Effective {
    /// The values.
    pub values: Arc<SystemSettings>,
    /// The names of the settings that have a stored value.
    pub overridden: Vec<String>,
}

/// The live settings of one instance.
pub struct LiveSettings {
    defaults: SettingsDefaults,
    effective: RwLock<Effective>,
}

impl LiveSettings {
    /// The file's values, until [`LiveSettings::install`] is given the stored ones.
    pub fn new(defaults: SettingsDefaults) -> Self {
        let effective = Effective {
            values: Arc::new(defaults.system.clone()),
            overridden: Vec::new(),
        };
        LiveSettings {
            defaults,
            effective: RwLock::new(effective),
        }
    }

    /// The configuration file's values.
    pub fn defaults(&self) -> &SettingsDefaults {
        &self.defaults
    }

    /// What is in effect now.
    pub fn effective(&self) -> Effective {
        match self.effective.read() {
            Ok(e) => e.clone(),
            // A poisoned lock: a writer panicked mid-swap, which cannot leave a half-written
            // `Effective` (the swap is one assignment); keep serving it.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces what is in effect with the file's values overlaid by `rows` (name, JSON). A
    /// row that no longer parses (a value written by a newer version) is skipped and logged:
    /// the file's value stands for it.
    pub fn install(&self, rows: &[(String, String)]) {
        let mut values = self.defaults.system.clone();
        let mut overridden = Vec::new();
        for (name, json) in rows {
            match serde_json::from_str::<Value>(json)
                .map_err(|e| e.to_string())
                .and_then(|v| apply(&mut values, name, v))
            {
                Ok(()) => overridden.push(name.clone()),
                Err(error) => tracing::warn!(setting = %name, %error, "ignoring a stored setting"),
            }
        }
        let next = Effective {
            values: Arc::new(values),
            overridden,
        };
        match self.effective.write() {
            Ok(mut e) => *e = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

impl SettingsSource for LiveSettings {
    fn current(&self) -> Arc<SystemSettings> {
        self.effective().values
    }
}

/// Sets `name` in `settings` from its stored JSON.
fn apply(settings: &mut SystemSettings, name: &str, v: Value) -> Result<(), String> {
    fn de<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    match name {
        "registration_mode" => settings.registration_mode = de(v)?,
        "signup_grant" => settings.signup_grant = de(v)?,
        "invite_reward_inviter" => settings.invite_reward_inviter = de(v)?,
        "invite_reward_invitee" => settings.invite_reward_invitee = de(v)?,
        "default_model" => settings.default_model = de(v)?,
        "title_model" => settings.title_model = de(v)?,
        "announcement" => settings.announcement = de::<Option<Announcement>>(v)?,
        "currency" => settings.currency = de(v)?,
        "cny_per_usd" => settings.cny_per_usd = de(v)?,
        other => return Err(format!("unknown setting {other}")),
    }
    Ok(())
}

/// Parses a registration mode as typed.
pub fn registration_mode(raw: &str) -> ApiResult<RegistrationMode> {
    match raw.trim() {
        "open" => Ok(RegistrationMode::Open),
        "invite_only" => Ok(RegistrationMode::InviteOnly),
        "closed" => Ok(RegistrationMode::Closed),
        _ => Err(ApiError::invalid_field(
            "registration_mode",
            "Registration mode must be open, invite_only or closed.",
            "注册方式必须是 open（开放）、invite_only（仅限邀请）或 closed（关闭）。",
        )),
    }
}

/// Parses a currency as typed.
pub fn currency(raw: &str, field: &str) -> ApiResult<CurrencyDisplay> {
    match raw.trim() {
        "units" => Ok(CurrencyDisplay::Units),
        "usd" => Ok(CurrencyDisplay::Usd),
        "cny" => Ok(CurrencyDisplay::Cny),
        _ => Err(ApiError::invalid_field(
            field,
            "Currency must be units, usd or cny.",
            "货币显示方式必须是 units（额度）、usd（美元）或 cny（人民币）。",
        )),
    }
}

/// The name of a currency as stored.
pub fn currency_name(c: CurrencyDisplay) -> &'static str {
    match c {
        CurrencyDisplay::Units => "units",
        CurrencyDisplay::Usd => "usd",
        CurrencyDisplay::Cny => "cny",
    }
}

/// A grant: a whole number of quota units, 0 up to [`MAX_GRANT`].
pub fn grant(value: i64, field: &str) -> ApiResult<i64> {
    if (0..=MAX_GRANT).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid_field(
            field,
            format!("The grant must be between 0 and {MAX_GRANT} quota units."),
            format!("赠送额度必须在 0 到 {MAX_GRANT} 之间。"),
        ))
    }
}

/// A model name: trimmed, at most [`MAX_MODEL_CHARS`], no control characters. Empty stays
/// empty (for the title model it means "no generated titles"; for the default model, none).
pub fn model(raw: &str, field: &str) -> ApiResult<String> {
    let name = raw.trim();
    if name.chars().count() > MAX_MODEL_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!(
                "A model name has at most {MAX_MODEL_CHARS} characters and no control characters."
            ),
            format!("模型名称最多 {MAX_MODEL_CHARS} 个字符，且不能包含控制字符。"),
        ));
    }
    Ok(name.to_string())
}

/// One language's announcement text: trimmed plain text, at most
/// [`MAX_ANNOUNCEMENT_CHARS`], line breaks allowed, no other control characters.
pub fn announcement_text(raw: &str, field: &str) -> ApiResult<String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            "Write the announcement in both English and Chinese, or remove it.",
            "公告需要同时填写英文和中文，或者删除公告。",
        ));
    }
    if text.chars().count() > MAX_ANNOUNCEMENT_CHARS
        || text.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ApiError::invalid_field(
            field,
            format!(
                "The announcement has at most {MAX_ANNOUNCEMENT_CHARS} characters of plain text."
            ),
            format!("公告最多 {MAX_ANNOUNCEMENT_CHARS} 个字符的纯文本。"),
        ));
    }
    Ok(text.to_string())
}

/// Yuan per US dollar: a finite number above 0 and at most 1,000.
pub fn exchange_rate(value: f64) -> ApiResult<f64> {
    if value.is_finite() && value > 0.0 && value <= 1000.0 {
        Ok(value)
    } else {
        Err(ApiError::invalid_field(
            "cny_per_usd",
            "The exchange rate must be a number above 0 and at most 1000 yuan per dollar.",
            "汇率必须大于 0 且不超过 1000（人民币/美元）。",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_overlay_the_file_and_bad_rows_are_skipped() {
        let live = LiveSettings::new(SettingsDefaults::default());
        live.install(&[
            ("registration_mode".into(), "\"closed\"".into()),
            ("signup_grant".into(), "\"not a number\"".into()),
            ("title_model".into(), "\"\"".into()),
        ]);
        let e = live.effective();
        assert_eq!(e.values.registration_mode, RegistrationMode::Closed);
        assert_eq!(e.values.signup_grant, 0);
        assert_eq!(e.values.title_model.as_deref(), Some(""));
        assert_eq!(e.overridden, vec!["registration_mode", "title_model"]);
        live.install(&[]);
        assert_eq!(live.current().registration_mode, RegistrationMode::Open);
    }

    #[test]
    fn values_are_checked() {
        assert!(registration_mode("invite_only").is_ok());
        assert!(registration_mode("sometimes").is_err());
        assert!(grant(-1, "signup_grant").is_err());
        assert!(grant(MAX_GRANT + 1, "signup_grant").is_err());
        assert!(exchange_rate(f64::NAN).is_err());
        assert!(exchange_rate(0.0).is_err());
        assert!(exchange_rate(7.1).is_ok());
        assert!(announcement_text("  ", "announcement.en").is_err());
        assert!(announcement_text("line one\nline two", "announcement.en").is_ok());
        assert!(announcement_text("bell\u{7}", "announcement.en").is_err());
        assert!(model(&"m".repeat(201), "default_model").is_err());
    }
}
