//! The Relay's HTTP routes: key management under `/api/v1`, vendor-compatible under `/v1`.

mod keys;
mod models;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::RelayService;

pub(crate) fn routes(service: Arc<RelayService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::get_key, keys::update_key, keys::delete_key))
        .with_state(service)
}

pub(crate) fn vendor_routes(service: Arc<RelayService>) -> Router {
    Router::new()
        .route("/v1/models", get(models::list_models))
        .with_state(service)
}
