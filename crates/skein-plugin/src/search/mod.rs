//! Web search, the built-in `web_search` tool: one [`SearchProvider`] per search API, each in
//! its own module and faithful to the vendor's documented request and answer; the admin picks
//! one and sets its key ([`SearchSettings`]). Results go back to the model as numbered text and
//! to the answer as citations.
//!
//! The provider's address is the admin's choice (a self-hosted SearXNG is usually on a private
//! network), so it is not checked against private addresses the way user-registered tools are;
//! answers are still size-limited and timed out.

mod bing;
mod bocha;
mod google;
mod searxng;
mod serper;
mod tavily;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_core::api::ToolCitation;
use utoipa::ToSchema;

pub use bing::Bing;
pub use bocha::Bocha;
pub use google::Google;
pub use searxng::SearXng;
pub use serper::Serper;
pub use tavily::Tavily;

/// The most bytes of a search answer read.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// The longest a search may take.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Which search API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// A SearXNG instance's JSON API (`format=json` must be enabled on it).
    Searxng,
    /// Tavily Search.
    Tavily,
    /// Serper (Google results).
    Serper,
    /// Bing Web Search v7.
    Bing,
    /// Google Programmable Search (Custom Search JSON API).
    Google,
    /// Bocha Web Search (博查).
    Bocha,
}

/// The search provider an admin set, with its key in the clear (only ever in memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchSettings {
    /// Which API.
    pub provider: ProviderKind,
    /// Its address, when not the vendor's own (required for SearXNG).
    pub base_url: Option<String>,
    /// Its key (not used by SearXNG).
    pub api_key: Option<String>,
    /// Google's search engine id (`cx`).
    pub engine_id: Option<String>,
    /// Results asked for.
    pub count: u32,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Page title.
    pub title: String,
    /// Page address.
    pub url: String,
    /// What the provider says of it.
    pub snippet: String,
}

/// A search API.
#[async_trait]
pub trait SearchProvider: Send + Sync {
    /// Searches for `query`, asking for `count` results.
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String>;
}

/// The provider `settings` name, ready to search; a missing key or address is an error the
/// admin reads.
pub fn provider(settings: &SearchSettings) -> Result<Box<dyn SearchProvider>, String> {
    let key = || {
        settings
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| "the search provider has no API key".to_string())
    };
    let base = |default: &str| {
        settings
            .base_url
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| default.to_string())
            .trim_end_matches('/')
            .to_string()
    };
    Ok(match settings.provider {
        ProviderKind::Searxng => Box::new(SearXng {
            base_url: settings
                .base_url
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| "SearXNG needs the address of an instance".to_string())?
                .trim_end_matches('/')
                .to_string(),
        }),
        ProviderKind::Tavily => Box::new(Tavily {
            base_url: base(tavily::BASE_URL),
            api_key: key()?,
        }),
        ProviderKind::Serper => Box::new(Serper {
            base_url: base(serper::BASE_URL),
            api_key: key()?,
        }),
        ProviderKind::Bing => Box::new(Bing {
            base_url: base(bing::BASE_URL),
            api_key: key()?,
        }),
        ProviderKind::Google => Box::new(Google {
            base_url: base(google::BASE_URL),
            api_key: key()?,
            engine_id: settings
                .engine_id
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    "Google Programmable Search needs a search engine id (cx)".to_string()
                })?,
        }),
        ProviderKind::Bocha => Box::new(Bocha {
            base_url: base(bocha::BASE_URL),
            api_key: key()?,
        }),
    })
}

/// Sends a provider's request and reads its JSON answer; a refusal names the status and
/// never echoes the key.
pub(crate) async fn json_answer(
    request: reqwest::RequestBuilder,
) -> Result<serde_json::Value, String> {
    let response = request.timeout(SEARCH_TIMEOUT).send().await.map_err(|e| {
        format!(
            "the search provider could not be reached: {}",
            crate::net::without_url(&e)
        )
    })?;
    let status = response.status();
    let body = crate::net::read_limited(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| format!("the search provider's answer failed: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "the search provider refused the search (HTTP {})",
            status.as_u16()
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|_| "the search provider's answer is not JSON".to_string())
}

/// The text of a JSON field, or empty.
pub(crate) fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().trim().to_string()
}

/// The hits as the model reads them: numbered, so it can cite `[1]`.
pub fn for_model(query: &str, hits: &[Hit]) -> String {
    if hits.is_empty() {
        return format!("No web results for \"{query}\".");
    }
    let mut out = format!("Web results for \"{query}\" (cite them as [n]):\n");
    for (i, hit) in hits.iter().enumerate() {
        out.push_str(&format!(
            "\n[{}] {}\n{}\n{}\n",
            i + 1,
            hit.title,
            hit.url,
            hit.snippet
        ));
    }
    out
}

/// The hits as citations.
pub fn citations(hits: &[Hit]) -> Vec<ToolCitation> {
    hits.iter()
        .map(|h| ToolCitation {
            title: h.title.clone(),
            url: h.url.clone(),
            snippet: h.snippet.clone(),
        })
        .collect()
}
