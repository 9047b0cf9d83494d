//! The Agent service's HTTP routes (`/api/v1/agents/...`, `/api/v1/market/...`,
//! `/api/v1/admin/agent-*`), one file per area; every route is listed here, grouped by who
//! calls it.

mod admin;
mod agents;
mod chat;
pub(crate) mod internal;
mod market;
mod versions;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use skein_core::ApiError;
use skein_core::auth::{AuthState, AuthUser};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AgentService;

use admin::*;
use agents::*;
use chat::*;
use market::*;
use versions::*;

/// Every Agent route.
pub(crate) fn routes(service: Arc<AgentService>) -> OpenApiRouter {
    OpenApiRouter::new()
        // Owners.
        .routes(routes!(create_agent))
        .routes(routes!(list_mine))
        .routes(routes!(import_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
        .routes(routes!(duplicate_agent))
        .routes(routes!(export_agent))
        .routes(routes!(publish))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(rollback))
        .routes(routes!(compare))
        .routes(routes!(stats))
        // Anyone signed in who may see the assistant.
        .routes(routes!(start_conversation))
        .routes(routes!(start_preview))
        .routes(routes!(get_conversation_agent))
        .routes(routes!(like, unlike))
        .routes(routes!(favourite, unfavourite))
        .routes(routes!(list_favourites))
        .routes(routes!(report))
        // Anyone, signed in or not.
        .routes(routes!(market))
        .routes(routes!(categories))
        // Admins.
        .routes(routes!(put_category))
        .routes(routes!(delete_category))
        .routes(routes!(moderate))
        .routes(routes!(list_reports))
        .routes(routes!(resolve_report))
        .with_state(service)
}

/// The signed-in user when there is one: the market and public assistant pages answer
/// anonymous callers too.
pub(crate) struct MaybeUser(pub Option<AuthUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::User(user)) => Ok(MaybeUser(Some(user.clone()))),
            _ => Ok(MaybeUser(None)),
        }
    }
}
