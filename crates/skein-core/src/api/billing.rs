//! The Billing service's API: holds on quota, settled with the exact cost.

use async_trait::async_trait;

use crate::error::ApiError;

/// A hold on quota before billable work starts.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// Whose balance pays.
    pub user_id: String,
    /// The API key used, with its own quota limit (`None` = unlimited); both are checked.
    pub key: Option<KeyLimit>,
    /// The most the work can cost, in quota units (> 0).
    pub amount: i64,
    /// The least hold the work can start with (1..=amount). When `amount` does not fit the
    /// balance (or the key's limit), the largest hold between `min_amount` and `amount` that
    /// fits is granted; `Reservation.amount` says what was granted. All-or-nothing callers
    /// pass `min_amount: amount`.
    pub min_amount: i64,
    /// What the hold is for (a request id), kept with the reservation.
    pub reference: String,
}

/// An API key's own quota limit.
#[derive(Debug, Clone)]
pub struct KeyLimit {
    /// The key's id.
    pub key_id: String,
    /// Quota the key may spend in all; `None` for unlimited.
    pub limit: Option<i64>,
}

/// A granted hold.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Reservation {
    /// Pass to `settle` or `release`.
    pub id: String,
    /// Quota held: `amount` when it fit, else the most that fit (at least `min_amount`).
    pub amount: i64,
    /// RFC 3339; an unsettled hold is released after this (unless renewed).
    pub expires_at: String,
}

/// What billable work actually used, recorded with the charge.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Exact cost in quota units (>= 0).
    pub cost: i64,
    /// Model name as the client asked for it.
    #[serde(default)]
    pub model: String,
    /// Upstream channel that served it.
    pub channel_id: Option<String>,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: i64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: i64,
    /// Prompt tokens served from cache.
    #[serde(default)]
    pub cached_tokens: i64,
    /// Prompt tokens written to the upstream's cache (Anthropic cache writes), billed apart.
    #[serde(default)]
    pub cache_write_tokens: i64,
    /// Whole request duration, ms.
    #[serde(default)]
    pub duration_ms: i64,
    /// Time to first token, ms (streams).
    pub ttft_ms: Option<i64>,
    /// Whether the answer was streamed.
    #[serde(default)]
    pub stream: bool,
    /// `ok`, `partial` (stream cut), `error`.
    #[serde(default)]
    pub status: String,
    /// The client request id.
    #[serde(default)]
    pub request_id: String,
    /// The chat conversation, when the work came from Chat.
    pub conversation_id: Option<String>,
    /// The prices the cost was computed with (JSON), kept with the record.
    pub pricing: Option<String>,
}

/// The result of a settle.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Settlement {
    /// The reservation settled.
    pub reservation_id: String,
    /// Quota charged: the actual cost, unless it went beyond the hold further than the
    /// overdraft allows (then `uncollected` says what was not charged).
    pub charged: i64,
    /// Balance after the charge.
    pub balance_after: i64,
    /// How far the cost went beyond the hold (cost - held, when positive): how much the
    /// estimate missed by.
    pub overrun: i64,
    /// What could not be charged because the balance would have gone below `-overdraft`
    /// (cost - charged, when positive).
    pub uncollected: i64,
}

/// What a user's active subscription plans entitle them to, for the Relay to enforce.
/// The default (no active plan) adds no group and restricts no model.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entitlements {
    /// Key groups the plans grant, besides those an admin granted (first in the list, so a
    /// subscriber's chat and new keys route in the plan's group).
    pub groups: Vec<String>,
    /// The models the plans allow (their union); `None` when no active plan restricts
    /// models (none active, or one for all models).
    pub models: Option<Vec<String>>,
    /// The active plans' names (English, Chinese), for messages.
    pub plans: Vec<(String, String)>,
}

impl Entitlements {
    /// Whether the plans allow `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// Told when a user's [`Entitlements`] may have changed (a plan bought, ended or refunded),
/// so a cache of them drops its copy. Implemented by the Relay; in one process the Billing
/// service calls it directly, other instances find out when their copy expires.
pub trait EntitlementWatcher: Send + Sync {
    /// Forget what is cached of `user_id`'s entitlements.
    fn entitlements_changed(&self, user_id: &str);
}

/// Reserve before billable work, settle after with the exact cost, release if nothing was
/// delivered. Implemented by the Billing service.
#[async_trait]
pub trait BillingApi: Send + Sync {
    /// Holds `amount` (or, when that does not fit, the most between `min_amount` and
    /// `amount` that does) against the user's balance and the key's limit; refuses with 402
    /// `insufficient_quota` / `key_quota_exceeded` (details `needed`, `available`) when not
    /// even `min_amount` fits.
    async fn reserve(&self, request: ReserveRequest) -> Result<Reservation, ApiError>;
    /// Charges `usage.cost` and frees the rest of the hold. Beyond the hold it charges only
    /// what keeps the balance (less other holds) at or above `-overdraft`; the rest is
    /// reported as `uncollected`. Settling the same reservation again answers the first
    /// settlement and charges nothing more. An expired hold still settles.
    async fn settle(&self, reservation_id: &str, usage: Usage) -> Result<Settlement, ApiError>;
    /// Pushes an open hold's expiry a full `reservation_ttl` from now, so work that runs long
    /// (a long stream) keeps its hold. A hold already settled, released or expired is left as
    /// it is (success); an unknown id is not found.
    async fn renew(&self, reservation_id: &str) -> Result<(), ApiError>;
    /// Frees the whole hold (nothing was delivered). Idempotent.
    async fn release(&self, reservation_id: &str) -> Result<(), ApiError>;
    /// What the user's active subscription plans entitle them to (groups, models).
    async fn entitlements(&self, user_id: &str) -> Result<Entitlements, ApiError>;
}
