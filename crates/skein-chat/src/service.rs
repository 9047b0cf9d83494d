//! The Chat service as the binary composes it.

use std::sync::Arc;
use std::time::Duration;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::ChatService;

#[async_trait::async_trait]
impl Service for ChatService {
    fn name(&self) -> ServiceName {
        ServiceName::Chat
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        ChatService::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![tag(
            "chat",
            "Conversations, streamed answers, branches, export and import",
        )]
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.background)
    }

    async fn drain(&self, grace: Duration) {
        ChatService::drain(self, grace).await;
    }
}
