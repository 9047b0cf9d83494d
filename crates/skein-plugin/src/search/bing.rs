//! Bing Web Search v7: `GET https://api.bing.microsoft.com/v7.0/search?q=...&count=...` with
//! the key in `Ocp-Apim-Subscription-Key`; the answer's `webPages.value` carry `name`, `url`
//! and `snippet`.

use async_trait::async_trait;

use super::{Hit, SearchProvider, json_answer, text};

/// Bing's API.
pub const BASE_URL: &str = "https://api.bing.microsoft.com";

/// Bing Web Search.
pub struct Bing {
    /// The API's address.
    pub base_url: String,
    /// The subscription key.
    pub api_key: String,
}

#[async_trait]
impl SearchProvider for Bing {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let count = count.clamp(1, 50).to_string();
        let request = http
            .get(format!("{}/v7.0/search", self.base_url))
            .header("Ocp-Apim-Subscription-Key", &self.api_key)
            .query(&[
                ("q", query),
                ("count", count.as_str()),
                ("responseFilter", "Webpages"),
            ]);
        let answer = json_answer(request).await?;
        Ok(answer["webPages"]["value"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Hit {
                title: text(&r["name"]),
                url: text(&r["url"]),
                snippet: text(&r["snippet"]),
            })
            .collect())
    }
}
