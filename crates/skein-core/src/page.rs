//! Pagination for list endpoints: `?page=1&per_page=20`, answered as a [`Page`].

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The largest page a client may ask for.
pub const MAX_PER_PAGE: u32 = 100;

/// Query parameters every list endpoint accepts.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// The page number, at least 1.
    pub fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The page size, clamped to `1..=MAX_PER_PAGE`.
    pub fn per_page(&self) -> u32 {
        self.per_page.unwrap_or(20).clamp(1, MAX_PER_PAGE)
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page())
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        i64::from(self.page() - 1) * i64::from(self.per_page())
    }
}

/// One page of a list, with the total so a client can draw a pager.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// How many items match in all.
    pub total: i64,
    /// This page's number.
    pub page: u32,
    /// The page size used.
    pub per_page: u32,
}

impl<T> Page<T> {
    /// Wraps the items of one page.
    pub fn new(items: Vec<T>, total: i64, query: PageQuery) -> Self {
        Page {
            items,
            total,
            page: query.page(),
            per_page: query.per_page(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_offsets() {
        let q = PageQuery {
            page: Some(0),
            per_page: Some(1000),
        };
        assert_eq!((q.page(), q.per_page(), q.offset()), (1, 100, 0));
        let q = PageQuery {
            page: Some(3),
            per_page: Some(10),
        };
        assert_eq!((q.limit(), q.offset()), (10, 20));
    }
}
