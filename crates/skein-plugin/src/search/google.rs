//! Google Programmable Search (Custom Search JSON API):
//! `GET https://www.googleapis.com/customsearch/v1?key=...&cx=...&q=...&num=...` (`num` at
//! most 10); the answer's `items` carry `title`, `link` and `snippet`.

use async_trait::async_trait;

use super::{Hit, SearchProvider, json_answer, text};

/// Google's API.
pub const BASE_URL: &str = "https://www.googleapis.com";

/// Google Programmable Search.
pub struct Google {
    /// The API's address.
    pub base_url: String,
    /// The API key.
    pub api_key: String,
    /// The search engine id (`cx`).
    pub engine_id: String,
}

#[async_trait]
impl SearchProvider for Google {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let num = count.clamp(1, 10).to_string();
        let request = http
            .get(format!("{}/customsearch/v1", self.base_url))
            .query(&[
                ("key", self.api_key.as_str()),
                ("cx", self.engine_id.as_str()),
                ("q", query),
                ("num", num.as_str()),
            ]);
        let answer = json_answer(request).await?;
        Ok(answer["items"]
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
