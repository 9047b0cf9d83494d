//! Who may do what with a knowledge base: its owner everything; a user it is shared with for
//! writing adds, removes and re-indexes documents; one it is shared with for reading (or every
//! user, when it is public) searches and reads. A base a user may not read is "not found"
//! (404), never "forbidden", so ids leak nothing.

use skein_core::{ApiResult, ids};

use crate::KnowledgeService;
use crate::errors;
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

impl KnowledgeService {
    /// The base and what `user_id` may do with it; 404 when they may not read it.
    pub async fn access(&self, user_id: &str, base_id: &str) -> ApiResult<(BaseRow, Access)> {
        if !ids::looks_like_id(base_id) {
            return Err(errors::base_not_found());
        }
        let base = store::base(&self.db, base_id)
            .await?
            .ok_or_else(errors::base_not_found)?;
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
        access.map(|a| (base, a)).ok_or_else(errors::base_not_found)
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
            Access::Own => errors::owner_only(),
            _ => errors::read_only(),
        })
    }
}
