//! Bocha (博查) Web Search: `POST https://api.bochaai.com/v1/web-search` with
//! `Authorization: Bearer ...` and a JSON body `{"query", "freshness", "summary", "count"}`;
//! the answer is `{"code": 200, "data": {"webPages": {"value": [...]}}}`, each with `name`,
//! `url`, `snippet` and (with `summary`) a longer `summary`.

use async_trait::async_trait;
use serde_json::json;

use super::{Hit, SearchProvider, json_answer, text};

/// Bocha's API.
pub const BASE_URL: &str = "https://api.bochaai.com";

/// Bocha Web Search.
pub struct Bocha {
    /// The API's address.
    pub base_url: String,
    /// The key.
    pub api_key: String,
}

#[async_trait]
impl SearchProvider for Bocha {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let request = http
            .post(format!("{}/v1/web-search", self.base_url))
            .bearer_auth(&self.api_key)
            .json(&json!({
                "query": query,
                "freshness": "noLimit",
                "summary": true,
                "count": count.clamp(1, 50),
            }));
        let answer = json_answer(request).await?;
        if let Some(code) = answer["code"].as_i64()
            && code != 200
        {
            return Err(format!("Bocha refused the search (code {code})"));
        }
        Ok(answer["data"]["webPages"]["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let summary = text(&r["summary"]);
                Hit {
                    title: text(&r["name"]),
                    url: text(&r["url"]),
                    snippet: if summary.is_empty() {
                        text(&r["snippet"])
                    } else {
                        summary
                    },
                }
            })
            .collect())
    }
}
