//! The Knowledge service's API for other services: may a user read a knowledge base, search
//! the bases a user may read, and which bases a conversation has attached. Chat retrieves
//! through it; agents and plugins will too.

use async_trait::async_trait;

use crate::error::ApiError;

/// Who searches, and for which request: the query's embedding is billed to `user_id` and
/// recorded with the conversation when there is one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KnowledgeCaller {
    /// Who searches (and pays for the query's embedding).
    pub user_id: String,
    /// The request the charge is recorded under.
    pub request_id: String,
    /// The chat conversation the search is made for, if any.
    pub conversation_id: Option<String>,
}

/// A search over one or more knowledge bases.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KnowledgeQuery {
    /// The bases to search; every one must be readable by the caller (404 otherwise).
    pub base_ids: Vec<String>,
    /// What to look for.
    pub query: String,
    /// The most passages to answer.
    pub top_k: usize,
}

/// One passage found, with where it comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnowledgePassage {
    /// The knowledge base.
    pub base_id: String,
    /// The document.
    pub document_id: String,
    /// The document's name.
    pub document_name: String,
    /// The file the document was read from (for a preview link).
    pub file_id: String,
    /// The chunk.
    pub chunk_id: String,
    /// The chunk's text.
    pub text: String,
    /// The headings above the chunk, outermost first.
    pub headings: Vec<String>,
    /// First and last page, when the document has pages.
    pub pages: Option<(u32, u32)>,
    /// Its fused (or reranked) score; higher is better, comparable within one search.
    pub score: f64,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnowledgeResults {
    /// The passages that passed the relevance threshold, best first.
    pub passages: Vec<KnowledgePassage>,
    /// True when nothing passed: the answer should say there is no relevant knowledge.
    pub no_answer: bool,
}

/// The Knowledge service as other services use it.
#[async_trait]
pub trait KnowledgeApi: Send + Sync {
    /// Whether `user_id` may read base `base_id` (owner, shared with them, or public).
    async fn may_read(&self, user_id: &str, base_id: &str) -> Result<bool, ApiError>;

    /// Searches `query.base_ids` for the caller; a base the caller may not read is a 404.
    async fn search(
        &self,
        caller: KnowledgeCaller,
        query: KnowledgeQuery,
    ) -> Result<KnowledgeResults, ApiError>;

    /// The bases `user_id` attached to conversation `conversation_id` that they may still
    /// read (a base unshared since is left out).
    async fn conversation_bases(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Vec<String>, ApiError>;
}
