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
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Reservation {
    /// Pass to `settle` or `release`.
    pub id: String,
    /// Quota held: `amount` when it fit, else the most that fit (at least `min_amount`).
    pub amount: i64,
    /// RFC 3339; an unsettled hold is released after this (unless renewed).
    pub expires_at: String,
}

/// What billable work actually used, recorded with the charge.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
}

/// Who exists (owned by the User service); lets other services refuse unknown user ids.
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// Whether a user with this id exists.
    async fn user_exists(&self, user_id: &str) -> Result<bool, ApiError>;
    /// Whether the user exists and is not disabled.
    async fn user_active(&self, user_id: &str) -> Result<bool, ApiError>;
}

/// What an API key allows, as the gateway hands it to the Relay.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key's id (never the secret).
    pub key_id: String,
    /// Its owner, who pays.
    pub user_id: String,
    /// Channel group the key routes through.
    pub group: String,
    /// Models the key may use; `None` for any.
    pub allowed_models: Option<Vec<String>>,
    /// The key's own quota limit; `None` for unlimited.
    pub quota_limit: Option<i64>,
    /// Requests per minute for this key; `None` for the server default.
    pub rpm_limit: Option<u32>,
    /// Tokens per minute for this key; `None` for no token limit.
    pub tpm_limit: Option<u32>,
}

impl KeyInfo {
    /// Whether the key may use `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// Checks API keys (owned by the Relay): status, expiry, owner, client address.
#[async_trait]
pub trait KeyDirectory: Send + Sync {
    /// The key's permissions, or an error saying why it cannot be used from `client_ip`.
    async fn authenticate_key(
        &self,
        secret: &str,
        client_ip: std::net::IpAddr,
    ) -> Result<KeyInfo, ApiError>;
}

/// Who an in-process relay call is made for. Chat calls the relay as the signed-in user (no API
/// key), so the charge lands on the user's ledger with the conversation recorded.
#[derive(Debug, Clone)]
pub struct RelayCaller {
    /// Whose balance pays.
    pub user_id: String,
    /// Channel group to route through.
    pub group: String,
    /// The request id the charge is recorded under.
    pub request_id: String,
    /// The chat conversation the call belongs to.
    pub conversation_id: Option<String>,
    /// Cancelled, the call stops reading its upstream (closing that connection, so the
    /// vendor stops generating) and is billed for what was delivered.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// What a relayed call was charged, once it is settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCharge {
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
    /// Quota units charged.
    pub cost: i64,
    /// `ok`, `partial`, `stopped`, `estimated`, ...
    pub status: String,
}

/// A relayed answer in progress: its bytes, and the charge once the call is settled (sent
/// after the last byte; dropped without a value if settling failed).
pub struct RelayStream {
    /// OpenAI chat-completion SSE bytes, as they arrive.
    pub bytes: ByteStream,
    /// The exact charge.
    pub charge: tokio::sync::oneshot::Receiver<RelayCharge>,
}

/// A relayed answer: the upstream's OpenAI chat-completion SSE bytes, as they arrive. A stream
/// that broke off ends with an SSE frame whose JSON has a top-level `error`.
pub type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = bytes::Bytes> + Send>>;

/// A model a caller may chat with, and what it costs.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PricedModel {
    /// Model name as clients ask for it.
    pub id: String,
    /// Quota units per million prompt tokens.
    pub input_price: i64,
    /// Quota units per million completion tokens.
    pub output_price: i64,
    /// Quota units per million prompt tokens read from the upstream's cache.
    pub cache_read_price: i64,
    /// Quota units per call, on top of the token prices.
    pub per_call: i64,
}

/// The Relay as other services use it (Chat): billed calls on behalf of a user.
#[async_trait]
pub trait RelayApi: Send + Sync {
    /// Streams an OpenAI-format chat completion (`request` is the OpenAI body; `stream` is
    /// forced on) and bills the user. Refusals before any upstream byte (no quota, no channel,
    /// unpriced model, every channel failed) come back as errors and charge nothing.
    async fn chat_stream(
        &self,
        caller: RelayCaller,
        request: serde_json::Value,
    ) -> Result<RelayStream, ApiError>;

    /// Models that have a price and a channel for `group`, at that group's prices (each rate
    /// times the group's multiplier, rounded up).
    async fn priced_models(&self, group: &str) -> Result<Vec<PricedModel>, ApiError>;

    /// Transcribes recorded audio with a speech-to-text `model` and bills the user; answers
    /// the text.
    async fn transcribe(&self, caller: RelayCaller, audio: AudioUpload)
    -> Result<String, ApiError>;
}

/// Recorded audio to transcribe.
#[derive(Debug, Clone)]
pub struct AudioUpload {
    /// Speech-to-text model.
    pub model: String,
    /// File name as uploaded (its extension tells the upstream the format).
    pub file_name: String,
    /// MIME type (`audio/webm`, ...).
    pub content_type: String,
    /// The recording.
    pub bytes: bytes::Bytes,
    /// ISO-639-1 language hint, if known.
    pub language: Option<String>,
}

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
