//! The User service as the binary composes it.

use std::sync::Arc;

use skein_core::service::{Service, ServiceName, tag};
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::UserService;

impl Service for UserService {
    fn name(&self) -> ServiceName {
        ServiceName::User
    }

    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        crate::http::routes(self)
    }

    fn api_tags(&self) -> Vec<Tag> {
        vec![
            tag("auth", "Registration, sign-in and tokens"),
            tag("user", "The signed-in user's profile"),
            tag("invites", "Invite codes"),
            tag(
                "settings",
                "System settings applied without a restart, and each user's display preferences",
            ),
            tag(
                "account",
                "Email verification, password reset, sessions and two-factor sign-in",
            ),
        ]
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }

    fn background(&self) -> Option<&skein_core::service::BackgroundTasks> {
        Some(self.background_tasks())
    }
}
