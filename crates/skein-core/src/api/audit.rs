//! The audit log of administrators' actions (kept by the User service).

use async_trait::async_trait;

/// One action an administrator took, as the audit log keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Who acted.
    pub actor_id: String,
    /// Their role when they acted (`admin`, `root`).
    pub actor_role: String,
    /// The method and route, e.g. `PATCH /api/v1/channels/{id}`.
    pub action: String,
    /// The path acted on, ids included, e.g. `/api/v1/channels/0190…`.
    pub target: String,
    /// The request body with every secret (keys, passwords, tokens) replaced, at most a few KB;
    /// what the action asked to become.
    pub detail: Option<String>,
    /// What the target was before the action (JSON, secrets replaced, at most a few KB), when
    /// the handler could say: with `detail` it reads as before → after.
    #[serde(default)]
    pub before: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// The request id, to find the action's log lines.
    pub request_id: String,
    /// The client address.
    pub ip: String,
}

/// The audit log of administrators' actions: insert-only (owned by the User service). The
/// gateway records every change an admin asks for through the API.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Keeps `entry`; a failure is logged by the implementation, never undoes the action.
    async fn record(&self, entry: AuditEntry);
}

/// The state an administrator's change found, set by the handler as a response extension
/// (`(Extension(AuditBefore(json)), Json(answer))`) so the gateway's audit record can show
/// before → after without knowing any service's tables.
#[derive(Debug, Clone)]
pub struct AuditBefore(pub serde_json::Value);

impl AuditBefore {
    /// The serialised `state`, or `Null` if it cannot be serialised (the action still runs).
    pub fn of<T: serde::Serialize>(state: &T) -> Self {
        AuditBefore(serde_json::to_value(state).unwrap_or_default())
    }
}
