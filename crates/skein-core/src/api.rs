//! The traits services reach each other through. In one process the trait object is the
//! service itself; split across processes it is an HTTP client of the service's internal API.

use async_trait::async_trait;

use crate::auth::Role;
use crate::error::ApiError;

/// What the gateway needs to know about a session to accept an access token.
#[derive(Debug, Clone)]
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
