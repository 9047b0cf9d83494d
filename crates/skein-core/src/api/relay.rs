//! The Relay service's API: API keys, and billed model calls on behalf of a user.

use async_trait::async_trait;

use crate::error::ApiError;

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
