//! The Knowledge service as the binary composes it.

use std::sync::Arc;
use std::time::Duration;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::KnowledgeService;

#[async_trait::async_trait]
impl Service for KnowledgeService {
    fn name(&self) -> ServiceName {
        ServiceName::Knowledge
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![tag(
            "knowledge",
            "Knowledge bases: documents, indexing progress, chunks, hybrid search, sharing, conversation attachments",
        )]
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.background)
    }

    async fn drain(&self, grace: Duration) {
        // A job cut off here resumes from its last committed batch once its lease runs out.
        let _ = grace;
    }
}

impl skein_core::runtime::Gauges for KnowledgeService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![(
            "knowledge.workers",
            skein_core::runtime::count(self.background.len()),
        )]
    }
}
