//! Azure OpenAI: OpenAI's wire format behind per-resource URLs. The channel's base URL is the
//! resource (`https://NAME.openai.azure.com`), optionally with `?api-version=...`; the mapped
//! model name is the deployment; the key goes in an `api-key` header.

use bytes::Bytes;
use serde_json::Value;
use skein_core::{ApiError, ApiResult};

use super::{PassThrough, StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};

/// The API version used when the base URL names none (the first GA version with
/// `stream_options.include_usage`, which streamed billing relies on).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The Azure adapter.
pub struct Azure;

/// The resource URL and API version of a channel's base URL.
fn resource(base_url: &str) -> (&str, String) {
    let (base, query) = base_url.split_once('?').unwrap_or((base_url, ""));
    let version = query
        .split('&')
        .find_map(|p| p.strip_prefix("api-version="))
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_API_VERSION);
    (base.trim_end_matches('/'), version.to_string())
}

/// The URL of a path under the resource, with the API version.
fn url(base_url: &str, segments: &[&str]) -> ApiResult<reqwest::Url> {
    let (base, version) = resource(base_url);
    let mut url = reqwest::Url::parse(base).map_err(ApiError::internal)?;
    url.path_segments_mut()
        .map_err(|()| ApiError::internal("the Azure base URL cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    url.query_pairs_mut().append_pair("api-version", &version);
    Ok(url)
}

/// The chat-completions URL of a deployment.
pub fn chat_url(base_url: &str, deployment: &str) -> ApiResult<reqwest::Url> {
    url(
        base_url,
        &["openai", "deployments", deployment, "chat", "completions"],
    )
}

impl Upstream for Azure {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Azure
    }

    fn default_base_url(&self) -> Option<&'static str> {
        None
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let deployment = pivot["model"].as_str().unwrap_or("");
        Ok(http
            .post(chat_url(&channel.base_url, deployment)?)
            .header("api-key", channel.key())
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
            .get(url(&channel.base_url, &["openai", "models"])?)
            .header("api-key", channel.key()))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        super::openai::ids(&body["data"], "id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_urls_carry_the_api_version() {
        let u = chat_url("https://r.openai.azure.com", "gpt-4o").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u.as_str(),
            "https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        let u = chat_url(
            "https://r.openai.azure.com/?api-version=2025-01-01-preview",
            "d",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            u.as_str(),
            "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2025-01-01-preview"
        );
    }
}
