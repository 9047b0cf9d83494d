//! Rows as stored and the shapes the API answers with.

use std::fmt;

use serde::{Deserialize, Serialize};
use skein_core::auth::Role;
use skein_core::ids::ms_to_rfc3339;
use utoipa::ToSchema;

/// Whether an account may sign in and be used; stored and sent as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Signs in, holds sessions and keys.
    Active,
    /// Switched off by an administrator: no sign-in, its sessions and keys refused.
    Disabled,
}

impl UserStatus {
    /// The stored and sent name.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    /// The status named `name`, if this build knows it.
    pub fn parse(name: &str) -> Option<UserStatus> {
        [UserStatus::Active, UserStatus::Disabled]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decoding a stored status (`#[sqlx(try_from = "String")]`). A name this build does not know
/// (written by a newer version) reads as `Disabled`: such an account is refused rather than
/// let in on a state this build cannot check.
impl From<String> for UserStatus {
    fn from(name: String) -> Self {
        UserStatus::parse(&name).unwrap_or(UserStatus::Disabled)
    }
}

/// A `users` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Unique, case-insensitive; absent for email-only accounts.
    pub username: Option<String>,
    /// Unique, lower-cased; absent for username-only accounts.
    pub email: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Shown name.
    pub display_name: String,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// `en` or `zh-CN`.
    pub language: String,
    /// `system`, `light` or `dark`.
    pub theme: String,
    /// What the account may do.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Whether it may sign in.
    #[sqlx(try_from = "String")]
    pub status: UserStatus,
    /// The inviter, when registered with a code.
    pub invited_by: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
    /// Last sign-in, ms.
    pub last_login_at: Option<i64>,
    /// When the current email was verified, ms.
    pub email_verified_at: Option<i64>,
    /// 1 when two-factor sign-in is on.
    pub totp_enabled: i64,
    /// The verified phone number (E.164), if any.
    pub phone: Option<String>,
    /// How many passkeys the account has.
    pub passkeys: i64,
}

impl UserRow {
    /// Whether the account may sign in and be used.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }

    /// Whether a password (or code, or provider) sign-in needs a second step: the account has
    /// TOTP on or a passkey (either answers the step).
    pub fn has_second_factor(&self) -> bool {
        self.totp_enabled > 0 || self.passkeys > 0
    }
}

/// Columns of [`UserRow`], for `SELECT`s.
pub const USER_COLUMNS: &str = "id, username, email, password_hash, display_name, avatar_url, \
     language, theme, role, status, invited_by, created_at, updated_at, last_login_at, email_verified_at, phone, \
     (SELECT COUNT(*) FROM user_totp t WHERE t.user_id = users.id AND t.enabled_at IS NOT NULL) AS totp_enabled, \
     (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = users.id) AS passkeys";

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    /// Id.
    pub id: String,
    /// Username, if the account has one.
    pub username: Option<String>,
    /// Email, if the account has one.
    pub email: Option<String>,
    /// Shown name.
    pub display_name: String,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// UI language: `en` or `zh-CN`.
    pub language: String,
    /// UI theme: `system`, `light` or `dark`.
    pub theme: String,
    /// What the account may do.
    pub role: Role,
    /// Whether it may sign in.
    pub status: UserStatus,
    /// Who invited this user.
    pub invited_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_login_at: Option<String>,
    /// Whether the email (if any) was proved to be the user's.
    pub email_verified: bool,
    /// Whether sign-in asks for a TOTP code after the password.
    pub two_factor_enabled: bool,
    /// The phone number (E.164) proved by an SMS code, if the account has one.
    pub phone: Option<String>,
}

impl From<UserRow> for Profile {
    fn from(row: UserRow) -> Self {
        Profile {
            id: row.id,
            username: row.username,
            email: row.email,
            display_name: row.display_name,
            avatar_url: row.avatar_url,
            language: row.language,
            theme: row.theme,
            role: row.role,
            status: row.status,
            invited_by: row.invited_by,
            created_at: ms_to_rfc3339(row.created_at),
            last_login_at: row.last_login_at.map(ms_to_rfc3339),
            email_verified: row.email_verified_at.is_some(),
            two_factor_enabled: row.totp_enabled > 0,
            phone: row.phone,
        }
    }
}

/// An `invite_codes` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    /// Id.
    pub id: String,
    /// The code people type.
    pub code: String,
    /// Whose invitations it records.
    pub owner_id: String,
    /// 1 when an admin made it.
    pub by_admin: i64,
    /// Uses allowed; 0 = unlimited.
    pub max_uses: i64,
    /// Uses so far.
    pub used_count: i64,
    /// Expiry, ms.
    pub expires_at: Option<i64>,
    /// 1 when disabled.
    pub disabled: i64,
    /// Admin's note.
    pub note: Option<String>,
    /// Created, ms.
    pub created_at: i64,
}

/// Columns of [`InviteRow`].
pub const INVITE_COLUMNS: &str =
    "id, code, owner_id, by_admin, max_uses, used_count, expires_at, disabled, note, created_at";

/// An invite code as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InviteCode {
    /// Id.
    pub id: String,
    /// The code to share.
    pub code: String,
    /// Whose invitations it records.
    pub owner_id: String,
    /// Uses allowed; 0 = unlimited.
    pub max_uses: i64,
    /// Uses so far.
    pub used_count: i64,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// Disabled codes cannot be used.
    pub disabled: bool,
    /// Whether an admin made it.
    pub by_admin: bool,
    /// Admin's note.
    pub note: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<InviteRow> for InviteCode {
    fn from(row: InviteRow) -> Self {
        InviteCode {
            id: row.id,
            code: row.code,
            owner_id: row.owner_id,
            max_uses: row.max_uses,
            used_count: row.used_count,
            expires_at: row.expires_at.map(ms_to_rfc3339),
            disabled: row.disabled != 0,
            by_admin: row.by_admin != 0,
            note: row.note,
            created_at: ms_to_rfc3339(row.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_an_unknown_one_reads_as_disabled() {
        for status in [UserStatus::Active, UserStatus::Disabled] {
            assert_eq!(UserStatus::from(status.as_str().to_string()), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(
            UserStatus::from("suspended".to_string()),
            UserStatus::Disabled
        );
    }
}
