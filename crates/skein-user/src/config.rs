//! The `[registration]` section of the configuration (the User service's own; it also reads
//! the shared `[auth]` and `[limits]`).

use serde::{Deserialize, Serialize};

/// Who may register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether anyone may register (the first account always may).
    pub enabled: bool,
    /// Whether registration needs an invite code.
    pub invite_required: bool,
    /// How many invite codes a user may create.
    pub user_invite_code_limit: u32,
    /// Uses of each code a user creates (0 = unlimited).
    pub user_invite_code_max_uses: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: true,
            invite_required: false,
            user_invite_code_limit: 5,
            user_invite_code_max_uses: 1,
        }
    }
}

impl RegistrationConfig {
    /// Checks values that parse but cannot work. Every value of this section can work today
    /// (0 uses means unlimited); the method is here so the binary treats every section alike.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
