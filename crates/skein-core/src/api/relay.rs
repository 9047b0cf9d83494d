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
    /// Price group to route and bill through: `None` for the user's own (the first group an
    /// admin granted them, in configuration order, as for a new API key); a named group must
    /// be one the user was granted (403 `group_not_allowed` otherwise), so a service can never
    /// bill a user at a group they could not pick themselves.
    pub group: Option<String>,
    /// The request id the charge is recorded under.
    pub request_id: String,
    /// The chat conversation the call belongs to.
    pub conversation_id: Option<String>,
    /// Cancelled, the call stops reading its upstream (closing that connection, so the
    /// vendor stops generating) and is billed for what was delivered.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
}

/// What a relayed call was charged, once it is settled.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// One event of a relayed chat answer, in the order the answer is written. Only the first
/// choice is reported (in-process callers ask for one answer). A stream ends with
/// [`ChatEvent::Done`] once the call is settled; a stream that ends without it was not
/// settled (the ledger could not be reached), and the hold expires on its own.
///
/// Across processes each event is one JSON object (`{"type": "delta", "data": "Hi"}`), so
/// the stream a remote caller reads is the same typed stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum ChatEvent {
    /// More answer text.
    Delta(String),
    /// More reasoning text (`reasoning_content` or `reasoning` in OpenAI's dialects).
    Reasoning(String),
    /// A piece of a tool call; pieces with the same `index` make one call.
    ToolCallDelta(ToolCallDelta),
    /// Why the model stopped, in OpenAI's words (`stop`, `length`, `tool_calls`, ...).
    Finish(String),
    /// The token counts the upstream reported (what is billed comes with `Done`).
    Usage(TokenUsage),
    /// The answer broke off after it began; what was delivered is still billed.
    Error(StreamError),
    /// The call is settled: what it was charged. Nothing follows.
    Done(RelayCharge),
}

/// A piece of a streamed tool call: the first piece of a call carries its id and name, the
/// rest more of its JSON arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer this piece belongs to.
    pub index: u32,
    /// The call's id, on its first piece.
    pub id: Option<String>,
    /// The function's name, on its first piece.
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: String,
}

/// Token counts an upstream reported for a chat answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens (reasoning included).
    pub completion_tokens: i64,
    /// Prompt tokens read from the upstream's cache.
    pub cached_tokens: i64,
}

/// Why a relayed answer broke off: a stable code and an English message for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamError {
    /// `upstream_error`, ...
    pub code: String,
    /// What happened, without channel names or hosts.
    pub message: String,
}

/// A relayed chat answer as typed events (see [`ChatEvent`]).
pub type ChatStream = std::pin::Pin<Box<dyn futures::Stream<Item = ChatEvent> + Send>>;

/// Texts to embed with an embedding `model`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EmbedRequest {
    /// Embedding model.
    pub model: String,
    /// The texts, one vector each.
    pub inputs: Vec<String>,
    /// Length of each vector, for models that can shorten theirs.
    pub dimensions: Option<u32>,
}

/// Vectors of an [`EmbedRequest`], in the order of its inputs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// What the call was charged.
    pub charge: RelayCharge,
}

/// Documents to order by relevance to a query with a rerank `model`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RerankRequest {
    /// Rerank model.
    pub model: String,
    /// What the documents are ranked against.
    pub query: String,
    /// The documents.
    pub documents: Vec<String>,
    /// Keep only the best `top_n`; `None` for all.
    pub top_n: Option<u32>,
}

/// The documents of a [`RerankRequest`], most relevant first.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reranking {
    /// Scores, most relevant first.
    pub results: Vec<RerankScore>,
    /// What the call was charged.
    pub charge: RelayCharge,
}

/// How relevant one document is.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RerankScore {
    /// The document's position in the request.
    pub index: usize,
    /// Its relevance; higher is more relevant.
    pub score: f64,
}

/// The text of a transcribed recording.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Transcript {
    /// What was said.
    pub text: String,
    /// What the call was charged.
    pub charge: RelayCharge,
}

/// Images to draw with an image `model`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageRequest {
    /// Image model.
    pub model: String,
    /// What to draw.
    pub prompt: String,
    /// How many images (1 to 128).
    pub n: u32,
    /// `1024x1024`, ..., as the model accepts it; `None` for its default.
    pub size: Option<String>,
}

/// Images drawn for an [`ImageRequest`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Images {
    /// The images, as the upstream gave them.
    pub images: Vec<GeneratedImage>,
    /// What the call was charged.
    pub charge: RelayCharge,
}

/// One drawn image: a URL to fetch it from or its bytes in base64, as the upstream chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedImage {
    /// Where to fetch it (such links expire).
    pub url: Option<String>,
    /// The image itself, base64-encoded.
    pub b64_json: Option<String>,
    /// The prompt the model drew from, if it rewrote it.
    pub revised_prompt: Option<String>,
}

/// A model a caller may chat with, and what it costs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// The Relay as other services use it (Chat; Knowledge, Plugin and Agent next): billed calls
/// on behalf of a user, typed. Refusals before any upstream byte (no quota, no channel,
/// unknown or unpriced model, every channel failed, the upstream's own 4xx) come back as
/// errors and charge nothing; an answer that began is billed for what was delivered.
#[async_trait]
pub trait RelayApi: Send + Sync {
    /// Streams an OpenAI-format chat completion (`request` is the OpenAI body; `stream` is
    /// forced on) as typed events, and bills the user; the last event is
    /// [`ChatEvent::Done`] with the charge. Cancelling `caller.cancel` stops the answer.
    async fn chat(
        &self,
        caller: RelayCaller,
        request: serde_json::Value,
    ) -> Result<ChatStream, ApiError>;

    /// Models that have a price and a channel in `user_id`'s group (`group` as in
    /// [`RelayCaller::group`]: `None` for the user's own), at that group's prices (each rate
    /// times the group's multiplier, rounded up): what the user's calls will be charged.
    async fn priced_models(
        &self,
        user_id: &str,
        group: Option<&str>,
    ) -> Result<Vec<PricedModel>, ApiError>;

    /// Embeds texts, billed by the upstream's token count.
    async fn embed(
        &self,
        caller: RelayCaller,
        request: EmbedRequest,
    ) -> Result<Embeddings, ApiError>;

    /// Orders documents by relevance to a query, billed by tokens (or per call).
    async fn rerank(
        &self,
        caller: RelayCaller,
        request: RerankRequest,
    ) -> Result<Reranking, ApiError>;

    /// Transcribes recorded audio with a speech-to-text model and bills the user.
    async fn transcribe(
        &self,
        caller: RelayCaller,
        audio: AudioUpload,
    ) -> Result<Transcript, ApiError>;

    /// Draws images, billed per image delivered (plus tokens where the model reports them).
    async fn image(&self, caller: RelayCaller, request: ImageRequest) -> Result<Images, ApiError>;

    /// Speaks text with a text-to-speech model, billed per character (the model's input
    /// price read per million characters, as OpenAI prices `tts-1`).
    async fn speak(&self, caller: RelayCaller, request: SpeechRequest) -> Result<Speech, ApiError>;
}

/// Text to speak with a text-to-speech `model`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpeechRequest {
    /// Text-to-speech model.
    pub model: String,
    /// What to say (OpenAI takes at most 4,096 characters).
    pub input: String,
    /// The voice (`alloy`, ...), as the model names them.
    pub voice: String,
    /// `mp3`, `opus`, `aac`, `flac`, `wav` or `pcm`.
    pub format: String,
}

/// The audio spoken for a [`SpeechRequest`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Speech {
    /// The audio (base64 between processes).
    #[serde(with = "base64_bytes")]
    pub audio: bytes::Bytes,
    /// Its MIME type, as the upstream said (`audio/mpeg`, ...).
    pub content_type: String,
    /// What the call was charged.
    pub charge: RelayCharge,
}

/// Bytes as one base64 string in JSON, a quarter larger instead of four times (an array).
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(bytes: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(bytes::Bytes::from)
            .map_err(serde::de::Error::custom)
    }
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
