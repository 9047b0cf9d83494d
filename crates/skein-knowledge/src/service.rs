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

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
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
        use skein_core::runtime::count;
        use std::sync::atomic::Ordering::Relaxed;
        let (lexical_bases, lexical_bytes) = self.lexical.cached();
        let (vector_bases, vector_floats) = self.vectors.usage();
        let (l, v) = (self.lexical.rebuilds(), self.vector_rebuilds.counts());
        vec![
            ("knowledge.workers", count(self.background.len())),
            ("knowledge.lexical_cache.bases", count(lexical_bases)),
            ("knowledge.lexical_cache.bytes", count(lexical_bytes)),
            ("knowledge.lexical_cache.rebuilds", l.kept.load(Relaxed)),
            ("knowledge.lexical_cache.refused", l.refused.load(Relaxed)),
            ("knowledge.lexical_cache.failed", l.failed.load(Relaxed)),
            ("knowledge.vector_cache.bases", count(vector_bases)),
            (
                "knowledge.vector_cache.bytes",
                count(vector_floats.saturating_mul(4)),
            ),
            ("knowledge.vector_cache.rebuilds", v.kept.load(Relaxed)),
            ("knowledge.vector_cache.refused", v.refused.load(Relaxed)),
            ("knowledge.vector_cache.failed", v.failed.load(Relaxed)),
        ]
    }
}
