//! The User service's API: sessions, accounts and who exists.

use async_trait::async_trait;

use crate::error::ApiError;
use crate::principal::Role;

/// What the gateway needs to know about a session to accept an access token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// The session's user.
    pub user_id: String,
    /// The user's current role.
    pub role: Role,
    /// False when the session was revoked or expired, or the user is disabled.
    pub active: bool,
}

/// Answers whether an access token's session still stands (owned by the User service).
#[async_trait]
pub trait SessionDirectory: Send + Sync {
    /// The session's state, or `None` if no such session exists.
    async fn session(&self, session_id: &str) -> Result<Option<SessionInfo>, ApiError>;
}

/// Things that happen to accounts which other services act on (Billing grants quota on
/// registration). The User service calls every registered observer after the account is
/// committed; an observer's failure is logged, never undoes the registration.
#[async_trait]
pub trait AccountEvents: Send + Sync {
    /// A user registered, possibly invited by `inviter_id`.
    async fn user_registered(
        &self,
        user_id: &str,
        inviter_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let _ = (user_id, inviter_id);
        Ok(())
    }

    /// A user was disabled or enabled: drop anything cached about them.
    async fn user_status_changed(&self, user_id: &str) -> Result<(), ApiError> {
        let _ = user_id;
        Ok(())
    }
}

/// One language's version of a [`UserMail`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MailText {
    /// Subject line.
    pub subject: String,
    /// Paragraphs, plain text (escaped in the HTML part).
    pub lines: Vec<String>,
    /// A button: its label and the page it opens, a path of the web app (`/billing/bills`).
    pub link: Option<(String, String)>,
}

/// A message another service asks the User service to send to one of its users; the User
/// service picks the address and the language (the user's own).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserMail {
    /// A short name for the mail queue and logs (`statement`).
    pub kind: String,
    /// In English.
    pub en: MailText,
    /// In Chinese.
    pub zh: MailText,
}

/// Who exists (owned by the User service); lets other services refuse unknown user ids.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Whether a user with this id exists.
    async fn user_exists(&self, user_id: &str) -> Result<bool, ApiError>;
    /// Whether the user exists and is not disabled.
    async fn user_active(&self, user_id: &str) -> Result<bool, ApiError>;
    /// Queues `mail` to the user's verified address, in their language, through the mail
    /// queue; answers whether it was queued (`false`: no verified address, or mail is off).
    async fn mail_user(&self, user_id: &str, mail: &UserMail) -> Result<bool, ApiError> {
        let _ = (user_id, mail);
        Ok(false)
    }
}
