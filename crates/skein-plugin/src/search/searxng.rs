//! SearXNG: `GET {instance}/search?q=...&format=json` (the instance must list `json` under
//! `search.formats`); the answer's `results` carry `title`, `url` and `content`.

use async_trait::async_trait;

use super::{Hit, SearchProvider, json_answer, text};

/// A SearXNG instance.
pub struct SearXng {
    /// The instance's address.
    pub base_url: String,
}

#[async_trait]
impl SearchProvider for SearXng {
    async fn search(
        &self,
        http: &reqwest::Client,
        query: &str,
        count: u32,
    ) -> Result<Vec<Hit>, String> {
        let request = http.get(format!("{}/search", self.base_url)).query(&[
            ("q", query),
            ("format", "json"),
            ("pageno", "1"),
        ]);
        let answer = json_answer(request).await?;
        Ok(answer["results"]
            .as_array()
            .into_iter()
            .flatten()
            .take(count as usize)
            .map(|r| Hit {
                title: text(&r["title"]),
                url: text(&r["url"]),
                snippet: text(&r["content"]),
            })
            .collect())
    }
}
