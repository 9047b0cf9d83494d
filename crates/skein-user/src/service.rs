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
        ]
    }

    fn internal_routes(self: Arc<Self>) -> axum::Router {
        crate::http::internal::routes(self)
    }
}
