//! Anthropic Messages: the client format (`POST /v1/messages`) to the pivot and back, and the
//! upstream adapter (`x-api-key` and `anthropic-version` headers, the body converted by
//! [`request_from_openai`], answers and stream events converted back to the pivot).

pub mod errors;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub use request::*;
pub use response::*;
pub use stream::*;

use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;

use super::pivot::{data_event, done_event, event_json};
use super::{Attempt, StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};

/// The API version this adapter speaks.
pub const VERSION: &str = "2023-06-01";

/// The Anthropic adapter.
pub struct Anthropic;

impl Upstream for Anthropic {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Anthropic
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://api.anthropic.com")
    }

    fn tokenizer_safety_permille(&self) -> i64 {
        // Claude's tokenizer counts up to about a third more than o200k.
        1_350
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let body = request_from_openai(pivot)?;
        Ok(http
            .post(format!("{}/v1/messages", channel.base_url))
            .header("x-api-key", channel.key())
            .header("anthropic-version", VERSION)
            .header("content-type", "application/json")
            .body(body.to_string()))
    }

    fn native_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        body: &Value,
        model: &str,
        _stream: bool,
    ) -> Option<ApiResult<reqwest::RequestBuilder>> {
        let mut body = body.clone();
        body["model"] = Value::String(model.to_string());
        Some(Ok(http
            .post(format!("{}/v1/messages", channel.base_url))
            .header("x-api-key", channel.key())
            .header("anthropic-version", VERSION)
            .header("content-type", "application/json")
            .body(body.to_string())))
    }

    fn response(&self, body: Value, _model: &str) -> Value {
        response_to_openai(&body)
    }

    fn decoder(&self, _model: &str) -> Box<dyn StreamDecoder> {
        Box::new(Decoder(UpstreamStream::default()))
    }

    fn classify(&self, status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
        errors::classify_answer(status, retry_after, body)
    }

    fn error_to_openai(&self, body: Bytes) -> Bytes {
        errors::to_openai(body)
    }

    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder> {
        Ok(http
            .get(format!("{}/v1/models?limit=1000", channel.base_url))
            .header("x-api-key", channel.key())
            .header("anthropic-version", VERSION))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        super::openai::ids(&body["data"], "id")
    }
}

struct Decoder(UpstreamStream);

impl StreamDecoder for Decoder {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        let Some(data) = event_json(&event) else {
            return Ok(Vec::new());
        };
        Ok(self
            .0
            .event(&data)?
            .into_iter()
            .map(|c| c.as_ref().map(data_event).unwrap_or_else(done_event))
            .collect())
    }

    fn finish(&mut self) -> Vec<Bytes> {
        // A clean end always came after message_stop, which said everything already.
        Vec::new()
    }
}
