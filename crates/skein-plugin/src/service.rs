//! The Plugin service as the binary composes it.

use std::sync::Arc;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::PluginService;

#[async_trait::async_trait]
impl Service for PluginService {
    fn name(&self) -> ServiceName {
        ServiceName::Plugin
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.background)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag(
                "plugins",
                "The plugin market: browse, enable and configure tools",
            ),
            tag(
                "admin-plugins",
                "Publish plugins (OpenAPI, MCP) and set up web search and images",
            ),
        ]
    }
}

impl skein_core::runtime::Gauges for PluginService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
