//! Who may do what with a knowledge base: its owner everything; a user it is shared with for
//! writing adds, removes and re-indexes documents; one it is shared with for reading (or every
//! user, when it is public) searches and reads. A base a user may not read is "not found"
//! (404), never "forbidden", so ids leak nothing.

use axum::http::StatusCode;
use skein_core::{ApiError, ApiResult, ids};

use crate::KnowledgeService;
use crate::store::{self, BaseRow};

/// What a user may do with a base, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Search and read.
    Read,
    /// Also add, remove and re-index documents.
    Write,
    /// Also change settings and shares, and delete the base.
    Own,
}

impl Access {
    /// The wire name (`owner`, `write`, `read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Own => "owner",
        }
    }
}

/// 404 for a base that does not exist or that the caller may not read.
pub fn base_not_found() -> ApiError {
    ApiError::not_found("Knowledge base", "知识库")
}

/// 403 for a readable base the caller may not change.
pub fn read_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "knowledge_read_only",
        "You may read this knowledge base but not change it.",
        "你可以查看这个知识库，但不能修改它。",
    )
}

/// 403 for what only the owner may do.
pub fn owner_only() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "knowledge_owner_only",
        "Only the owner of this knowledge base may do this.",
        "只有知识库的所有者可以执行此操作。",
    )
}

impl KnowledgeService {
    /// The base and what `user_id` may do with it; 404 when they may not read it.
    pub async fn access(&self, user_id: &str, base_id: &str) -> ApiResult<(BaseRow, Access)> {
        if !ids::looks_like_id(base_id) {
            return Err(base_not_found());
        }
        let base = store::base(&self.db, base_id)
            .await?
            .ok_or_else(base_not_found)?;
        if base.owner_id == user_id {
            return Ok((base, Access::Own));
        }
        let access = match store::share_of(&self.db, base_id, user_id)
            .await?
            .as_deref()
        {
            Some("write") => Some(Access::Write),
            Some(_) => Some(Access::Read),
            None if base.visibility == "public" => Some(Access::Read),
            None => None,
        };
        access.map(|a| (base, a)).ok_or_else(base_not_found)
    }

    /// The base when `user_id` may at least `need` it: 404 when they may not read it, 403
    /// when they may read but not do this.
    pub async fn require(
        &self,
        user_id: &str,
        base_id: &str,
        need: Access,
    ) -> ApiResult<(BaseRow, Access)> {
        let (base, access) = self.access(user_id, base_id).await?;
        if access >= need {
            return Ok((base, access));
        }
        Err(match need {
            Access::Own => owner_only(),
            _ => read_only(),
        })
    }
}
