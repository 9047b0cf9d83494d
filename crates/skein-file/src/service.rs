//! The File service as the binary composes it.

use std::sync::Arc;
use std::time::Duration;

use skein_core::service::{BackgroundTasks, Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::FileService;

#[async_trait::async_trait]
impl Service for FileService {
    fn name(&self) -> ServiceName {
        ServiceName::File
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag(
                "files",
                "Uploads, downloads with ranges, signed URLs, previews",
            ),
            tag("shares", "Share links to files, and their public side"),
        ]
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }

    fn background(&self) -> Option<&BackgroundTasks> {
        Some(&self.background)
    }

    async fn drain(&self, grace: Duration) {
        FileService::drain(self, grace).await;
    }
}

impl skein_core::runtime::Gauges for FileService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        vec![("file.jobs", skein_core::runtime::count(self.jobs.len()))]
    }
}
