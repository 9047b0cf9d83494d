//! System settings an administrator changes at run time (owned by the User service): who may
//! register, the grants, the default and title models, the announcement banner and how money
//! is shown. Other services read the current values through [`SettingsSource`]; a value never
//! set in the database is the configuration file's.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who may create an account (the very first account always may, and becomes root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationMode {
    /// Anyone may register.
    Open,
    /// Registering needs an invite code.
    InviteOnly,
    /// No one may register; administrators create accounts.
    Closed,
}

/// How amounts of quota are shown in the web app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CurrencyDisplay {
    /// Raw quota units.
    Units,
    /// US dollars (`quota_per_usd` units each).
    Usd,
    /// Chinese yuan, at the settings' exchange rate.
    Cny,
}

/// The announcement banner, shown to everyone until each dismisses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Announcement {
    /// Changes whenever the text does, so a dismissed banner comes back when it is rewritten.
    pub id: String,
    /// English text (plain, no Markdown).
    pub en: String,
    /// Chinese text (plain, no Markdown).
    pub zh: String,
}

/// The settings in effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemSettings {
    /// Who may register.
    pub registration_mode: RegistrationMode,
    /// Quota every new account starts with.
    pub signup_grant: i64,
    /// Quota the inviter receives when someone registers with their code.
    pub invite_reward_inviter: i64,
    /// Quota the invitee receives on top of the signup grant.
    pub invite_reward_invitee: i64,
    /// The model a new chat uses when none is chosen; `null`: the first the user may use.
    pub default_model: Option<String>,
    /// The model that writes conversation titles; `null`: the conversation's own model;
    /// `""`: no generated titles.
    pub title_model: Option<String>,
    /// The banner, or `null` for none.
    pub announcement: Option<Announcement>,
    /// How amounts are shown unless a user chooses otherwise.
    pub currency: CurrencyDisplay,
    /// Yuan per US dollar, for showing amounts in CNY (display only).
    pub cny_per_usd: f64,
}

/// Where a service reads the settings in effect (the User service in this process, or a copy
/// read from it in another). Reading is cheap: the values are kept in memory and follow every
/// change.
pub trait SettingsSource: Send + Sync {
    /// The settings in effect now.
    fn current(&self) -> std::sync::Arc<SystemSettings>;
}
