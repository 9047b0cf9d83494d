//! The Relay service as the binary composes it.

use std::sync::Arc;
use std::time::Duration;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::RelayService;

#[async_trait::async_trait]
impl Service for RelayService {
    fn name(&self) -> ServiceName {
        ServiceName::Relay
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        RelayService::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag("channels", "Upstream channels (admin)"),
            tag("pricing", "The pricing table"),
            tag("keys", "The signed-in user's API keys for the /v1 routes"),
            tag(
                "admin-requests",
                "The request log and channel statistics (admin)",
            ),
        ]
    }

    fn vendor_routes(self: Arc<Self>) -> axum::Router {
        RelayService::vendor_routes(self)
    }

    /// The typed [`skein_core::api::RelayApi`] for callers in other processes
    /// (`/internal/relay/*`), and account events from a User service in another process (a
    /// disabled owner's keys stop at once on the instance told).
    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self.clone()).merge(
            skein_core::internal::account_events_routes(ServiceName::Relay, self),
        )
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.background)
    }

    async fn drain(&self, grace: Duration) {
        RelayService::drain(self, grace).await;
    }
}
