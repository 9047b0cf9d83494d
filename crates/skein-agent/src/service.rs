//! The Agent service as the binary composes it.

use std::sync::Arc;

use skein_core::service::{Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::AgentService;

#[async_trait::async_trait]
impl Service for AgentService {
    fn name(&self) -> ServiceName {
        ServiceName::Agent
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }

    fn background(&self) -> Option<&skein_core::service::BackgroundTasks> {
        Some(&self.background)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag(
                "agents",
                "Assistants: drafts, immutable versions, conversations pinned to a version, import and export",
            ),
            tag(
                "market",
                "Public assistants: categories, search, likes, favourites, usage, reports",
            ),
        ]
    }
}

impl skein_core::runtime::Gauges for AgentService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
