//! The `[billing]` section of the configuration.

use serde::{Deserialize, Serialize};
use skein_core::secret::Secret;

/// Quota, grants and reservations. Amounts are integer quota units.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Quota units per US dollar (one-api's 500,000).
    pub quota_per_usd: i64,
    /// Yuan per US dollar, for showing prices in CNY (display only; never stored).
    pub cny_per_usd: f64,
    /// Quota every new account starts with.
    pub signup_grant: i64,
    /// Quota the inviter receives when someone registers with their code.
    pub invite_reward_inviter: i64,
    /// Quota the invitee receives on top of the signup grant.
    pub invite_reward_invitee: i64,
    /// How far below zero holds may take a balance (0 = never).
    pub overdraft: i64,
    /// An unsettled reservation is released after this long (a crashed caller).
    pub reservation_ttl_secs: i64,
    /// How often this process checks every balance against the ledger (what `skein billing
    /// verify` does) and publishes the result as metrics, in seconds; 0 = never. The check
    /// reads the whole ledger, so keep it rare on large installs.
    pub verify_every_secs: u64,
    /// The internal token's older name, from when only Billing had internal routes: used when
    /// `services.internal_token` is not set.
    pub internal_token: Option<Secret>,
    /// Self-service top-up through payment providers.
    pub payment: crate::payment::PaymentConfig,
    /// Mail each user last month's statement early in a month (to their verified address,
    /// when mail is configured); off by default. Users can always mail one to themselves.
    pub statement_mail: bool,
    /// The UTC offset, in minutes, of the months scheduled statements cover (480 for China).
    pub statement_utc_offset_minutes: i32,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            quota_per_usd: 500_000,
            cny_per_usd: 7.2,
            signup_grant: 0,
            invite_reward_inviter: 0,
            invite_reward_invitee: 0,
            overdraft: 0,
            reservation_ttl_secs: 900,
            verify_every_secs: 0,
            internal_token: None,
            payment: crate::payment::PaymentConfig::default(),
            statement_mail: false,
            statement_utc_offset_minutes: 0,
        }
    }
}

impl BillingConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.quota_per_usd <= 0 || self.cny_per_usd <= 0.0 || self.reservation_ttl_secs < 1 {
            return Err(
                "billing.quota_per_usd and cny_per_usd must be positive; reservation_ttl_secs at least 1"
                    .into(),
            );
        }
        if [
            self.signup_grant,
            self.invite_reward_inviter,
            self.invite_reward_invitee,
            self.overdraft,
        ]
        .iter()
        .any(|v| *v < 0)
        {
            return Err("billing grants and overdraft cannot be negative".into());
        }
        if let Some(token) = &self.internal_token
            && token.expose().len() < 32
        {
            return Err("billing.internal_token must be at least 32 characters".into());
        }
        if !(-720..=840).contains(&self.statement_utc_offset_minutes) {
            return Err("billing.statement_utc_offset_minutes must be between -720 and 840".into());
        }
        self.payment.validate()
    }
}
