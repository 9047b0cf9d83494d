//! Azure OpenAI's URL shape (the rest is the OpenAI-compatible adapter's). The channel's base
//! URL is the resource (`https://NAME.openai.azure.com`), optionally with `?api-version=...`;
//! the mapped model name is the deployment.

use skein_core::{ApiError, ApiResult};

/// The API version used when the base URL names none (the first GA version with
/// `stream_options.include_usage`, which streamed billing relies on).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

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

/// The API version of Realtime sessions when the base URL names none (Realtime is in
/// Azure's preview versions).
pub const REALTIME_API_VERSION: &str = "2025-04-01-preview";

/// The Realtime URL of a deployment (`https`; the caller makes it `wss`), with the base URL's
/// API version when it names one, else [`REALTIME_API_VERSION`].
pub fn realtime_url(base_url: &str, deployment: &str) -> ApiResult<reqwest::Url> {
    let named = base_url.contains("api-version=");
    let (base, version) = resource(base_url);
    let version = if named {
        version
    } else {
        REALTIME_API_VERSION.to_string()
    };
    let mut url = reqwest::Url::parse(base).map_err(ApiError::internal)?;
    url.path_segments_mut()
        .map_err(|()| ApiError::internal("the Azure base URL cannot take a path"))?
        .pop_if_empty()
        .extend(["openai", "realtime"]);
    url.query_pairs_mut()
        .append_pair("api-version", &version)
        .append_pair("deployment", deployment);
    Ok(url)
}

/// The URL of the resource's model list.
pub fn models_url(base_url: &str) -> ApiResult<reqwest::Url> {
    url(base_url, &["openai", "models"])
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
