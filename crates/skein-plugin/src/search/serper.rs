//! Serper: `POST https://google.serper.dev/search` with the key in `X-API-KEY` and a JSON
//! body `{"q", "num"}`; the answer's `organic` results carry `title`, `link` and `snippet`.

use async_trait::async_trait;
use serde_json::json;

use super::{Hit, SearchProvider, json_answer, text};

/// Serper's API.
pub const BASE_URL: &str = "https://google.serper.dev";

/// Serper.
pub struct Serper {
    /// The API's address.
    pub base_url: String,
    /// The key.
    pub api_key: String,
}

#[async_trait]
impl SearchProvider for Serper {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let request = http
            .post(format!("{}/search", self.base_url))
            .header("X-API-KEY", &self.api_key)
            .json(&json!({"q": query, "num": count.clamp(1, 100)}));
        let answer = json_answer(request).await?;
        Ok(answer["organic"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Hit {
                title: text(&r["title"]),
                url: text(&r["link"]),
                snippet: text(&r["snippet"]),
            })
            .collect())
    }
}
