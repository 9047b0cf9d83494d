//! OpenAI and every OpenAI-compatible upstream (DeepSeek, Qwen, vLLM, ..., and Azure OpenAI) on
//! one adapter: the pivot format is theirs, so the body goes as the client wrote it (unknown
//! fields included) and answers come back as they are. Vendors differ only in where the
//! request goes and how the key is sent ([`Endpoints`]); a new OpenAI-compatible vendor is one
//! more [`OpenAiCompatible`] value.

pub mod azure;
pub mod errors;
pub mod responses;

use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;

use super::{StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};

/// Where an OpenAI-compatible vendor takes requests and how it wants the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// OpenAI's own paths under the base URL (`/v1/chat/completions`, `/v1/models`), the key
    /// as a bearer token.
    OpenAi,
    /// Azure's per-resource paths (the mapped model is the deployment, the API version in the
    /// query; see [`azure`]), the key in an `api-key` header.
    Azure,
}

/// One OpenAI-compatible vendor.
#[derive(Debug)]
pub struct OpenAiCompatible {
    /// The channel kind it serves.
    pub kind: ChannelKind,
    /// The vendor's base URL, if it has one for everybody.
    pub default_base_url: Option<&'static str>,
    /// Its URL shape and key header.
    pub endpoints: Endpoints,
    /// How much more than o200k its tokenizer may count, in per-mille (see
    /// [`crate::estimate`]).
    pub safety_permille: i64,
}

/// OpenAI, and any OpenAI-compatible API behind OpenAI's paths. OpenAI-compatible vendors'
/// tokenizers (DeepSeek, Qwen, GLM, ...) differ from o200k by up to about a tenth.
pub static OPENAI: OpenAiCompatible = OpenAiCompatible {
    kind: ChannelKind::OpenAi,
    default_base_url: Some("https://api.openai.com"),
    endpoints: Endpoints::OpenAi,
    safety_permille: 1_100,
};

/// Azure OpenAI: each resource has its own URL, so there is no default; its models are
/// OpenAI's own, counted by o200k exactly.
pub static AZURE: OpenAiCompatible = OpenAiCompatible {
    kind: ChannelKind::Azure,
    default_base_url: None,
    endpoints: Endpoints::Azure,
    safety_permille: 1_000,
};

impl OpenAiCompatible {
    /// A request to `url` with the channel's key where this vendor wants it.
    fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
        channel: &LiveChannel,
    ) -> reqwest::RequestBuilder {
        match self.endpoints {
            Endpoints::OpenAi => builder.bearer_auth(channel.key()),
            Endpoints::Azure => builder.header("api-key", channel.key()),
        }
    }
}

impl Upstream for OpenAiCompatible {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn default_base_url(&self) -> Option<&'static str> {
        self.default_base_url
    }

    fn tokenizer_safety_permille(&self) -> i64 {
        self.safety_permille
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let builder = match self.endpoints {
            Endpoints::OpenAi => http.post(format!("{}/v1/chat/completions", channel.base_url)),
            Endpoints::Azure => {
                let deployment = pivot["model"].as_str().unwrap_or("");
                http.post(azure::chat_url(&channel.base_url, deployment)?)
            }
        };
        Ok(self
            .authorized(builder, channel)
            .header("content-type", "application/json")
            .body(pivot.to_string()))
    }

    fn serves_openai_paths(&self) -> bool {
        self.endpoints == Endpoints::OpenAi
    }

    fn speaks_pivot(&self) -> bool {
        true
    }

    fn response(&self, body: Value, _model: &str) -> Value {
        body
    }

    fn decoder(&self, _model: &str) -> Box<dyn StreamDecoder> {
        Box::new(PassThrough)
    }

    fn error_to_openai(&self, body: Bytes) -> Bytes {
        body
    }

    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let builder = match self.endpoints {
            Endpoints::OpenAi => http.get(format!("{}/v1/models", channel.base_url)),
            Endpoints::Azure => http.get(azure::models_url(&channel.base_url)?),
        };
        Ok(self.authorized(builder, channel))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        ids(&body["data"], "id")
    }
}

/// The stream decoder of OpenAI-compatible upstreams: their stream is already the pivot.
pub struct PassThrough;

impl StreamDecoder for PassThrough {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        Ok(vec![event])
    }

    fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// The string `field` of every item of a list.
pub(crate) fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m[field].as_str().map(str::to_string))
        .collect()
}
