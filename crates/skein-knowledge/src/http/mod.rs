//! The Knowledge service's HTTP routes (`/api/v1/knowledge/...`), one file per area; every
//! route is listed here. All are for signed-in users; what each may do with a base is
//! checked in every handler ([`crate::access`]).

mod bases;
mod conversations;
mod documents;
mod events;
pub(crate) mod internal;
mod search;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::KnowledgeService;

use bases::*;
use conversations::*;
use documents::*;
use events::*;
use search::*;

/// Every Knowledge route. Direct uploads take bodies up to the largest indexed document
/// (the File service enforces its own knowledge limit while streaming).
pub(crate) fn routes(service: Arc<KnowledgeService>) -> OpenApiRouter {
    let largest = service
        .config
        .max_document_bytes
        .max(service.config.max_pdf_bytes);
    let upload_limit = usize::try_from(largest)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    OpenApiRouter::new()
        .routes(routes!(list_bases, create_base))
        .routes(routes!(get_base, update_base, delete_base))
        .routes(routes!(base_stats))
        .routes(routes!(get_shares, set_shares))
        .routes(routes!(reindex_base))
        .routes(routes!(list_documents, add_document))
        .routes(routes!(add_url))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_document))
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .routes(routes!(get_document, delete_document))
        .routes(routes!(reindex_document))
        .routes(routes!(list_chunks))
        .routes(routes!(search_base))
        .routes(routes!(get_conversation_bases, set_conversation_bases))
        .routes(routes!(document_file))
        .routes(routes!(base_events))
        .with_state(service)
}
