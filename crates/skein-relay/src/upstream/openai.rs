//! OpenAI and OpenAI-compatible upstreams (DeepSeek, Qwen, vLLM, ...): the pivot format is
//! theirs, so the body goes as the client wrote it (unknown fields included) with a bearer key.

use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;

use super::{PassThrough, StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};

/// The OpenAI adapter.
pub struct OpenAi;

impl Upstream for OpenAi {
    fn kind(&self) -> ChannelKind {
        ChannelKind::OpenAi
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://api.openai.com")
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        Ok(http
            .post(format!("{}/v1/chat/completions", channel.base_url))
            .bearer_auth(channel.key())
            .header("content-type", "application/json")
            .body(pivot.to_string()))
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
        Ok(http
            .get(format!("{}/v1/models", channel.base_url))
            .bearer_auth(channel.key()))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        ids(&body["data"], "id")
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
