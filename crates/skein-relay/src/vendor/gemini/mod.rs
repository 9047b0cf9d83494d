//! Gemini (Google AI Studio's `generativelanguage` API): the client format
//! (`models/{m}:generateContent`) to the pivot and back, and the upstream adapter
//! (`x-goog-api-key`, the model in the URL — `/v1beta/models/{m}:generateContent`,
//! `:streamGenerateContent?alt=sse` for streams — the body converted by
//! [`request_from_openai`], answers and stream items converted back to the pivot). Remote
//! images are fetched and inlined first ([`images`]).

pub mod errors;
pub mod images;
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
use skein_core::{ApiError, ApiResult};

use super::pivot::{data_event, done_event, event_json};
use super::{Attempt, StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};

/// The Gemini adapter.
pub struct Gemini;

/// The URL of a model's method.
fn model_url(base_url: &str, model: &str, method: &str, sse: bool) -> ApiResult<reqwest::Url> {
    let mut url = reqwest::Url::parse(base_url).map_err(ApiError::internal)?;
    url.path_segments_mut()
        .map_err(|()| ApiError::internal("the Gemini base URL cannot take a path"))?
        .pop_if_empty()
        .extend(["v1beta", "models", &format!("{model}:{method}")]);
    if sse {
        url.query_pairs_mut().append_pair("alt", "sse");
    }
    Ok(url)
}

impl Upstream for Gemini {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Gemini
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("https://generativelanguage.googleapis.com")
    }

    fn tokenizer_safety_permille(&self) -> i64 {
        // Gemini's tokenizer differs from o200k by up to about a tenth, and a little more.
        1_150
    }

    fn inlines_images(&self) -> bool {
        true
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let body = request_from_openai(pivot)?;
        let model = pivot["model"].as_str().unwrap_or("");
        let stream = pivot["stream"].as_bool() == Some(true);
        let url = if stream {
            model_url(&channel.base_url, model, "streamGenerateContent", true)?
        } else {
            model_url(&channel.base_url, model, "generateContent", false)?
        };
        Ok(http
            .post(url)
            .header("x-goog-api-key", channel.key())
            .header("content-type", "application/json")
            .body(body.to_string()))
    }

    fn native_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        body: &Value,
        model: &str,
        stream: bool,
    ) -> Option<ApiResult<reqwest::RequestBuilder>> {
        // Streams are always asked for as server-sent events; the relay reframes them for
        // clients that want Gemini's JSON-array stream.
        let url = if stream {
            model_url(&channel.base_url, model, "streamGenerateContent", true)
        } else {
            model_url(&channel.base_url, model, "generateContent", false)
        };
        Some(url.map(|url| {
            http.post(url)
                .header("x-goog-api-key", channel.key())
                .header("content-type", "application/json")
                .body(body.to_string())
        }))
    }

    fn response(&self, body: Value, model: &str) -> Value {
        response_to_openai(&body, model)
    }

    fn decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        Box::new(Decoder(UpstreamStream::new(model)))
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
            .get(format!("{}/v1beta/models?pageSize=1000", channel.base_url))
            .header("x-goog-api-key", channel.key()))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        super::openai::ids(&body["models"], "name")
            .into_iter()
            .map(|n| n.trim_start_matches("models/").to_string())
            .collect()
    }
}

struct Decoder(UpstreamStream);

impl StreamDecoder for Decoder {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        let Some(item) = event_json(&event) else {
            return Ok(Vec::new());
        };
        Ok(self.0.item(&item)?.iter().map(data_event).collect())
    }

    fn finish(&mut self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self.0.finish().iter().map(data_event).collect();
        out.push(done_event());
        out
    }

    fn partial(&mut self) -> Vec<Bytes> {
        // Gemini's usage is a running total in every item: the last one counts what was made.
        self.0.finish().iter().map(data_event).collect()
    }
}
