//! Tavily: `POST https://api.tavily.com/search` with `Authorization: Bearer tvly-...` and a
//! JSON body `{"query", "max_results", "search_depth"}`; the answer's `results` carry
//! `title`, `url` and `content`.

use async_trait::async_trait;
use serde_json::json;

use super::{Hit, SearchProvider, json_answer, text};

/// Tavily's API.
pub const BASE_URL: &str = "https://api.tavily.com";

/// Tavily Search.
pub struct Tavily {
    /// The API's address.
    pub base_url: String,
    /// The key.
    pub api_key: String,
}

#[async_trait]
impl SearchProvider for Tavily {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let request = http
            .post(format!("{}/search", self.base_url))
            .bearer_auth(&self.api_key)
            .json(&json!({
                "query": query,
                "max_results": count.clamp(1, 20),
                "search_depth": "basic",
                "include_answer": false,
            }));
        let answer = json_answer(request).await?;
        Ok(answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Hit {
                title: text(&r["title"]),
                url: text(&r["url"]),
                snippet: text(&r["content"]),
            })
            .collect())
    }
}
