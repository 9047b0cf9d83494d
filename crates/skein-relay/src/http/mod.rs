//! The Relay's HTTP routes: key management under `/api/v1`, vendor-compatible under `/v1`.

mod channels;
pub(crate) mod chat;
mod keys;
mod models;
mod pricing;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::RelayService;

pub(crate) fn routes(service: Arc<RelayService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::get_key, keys::update_key, keys::delete_key))
        .routes(routes!(channels::list_channels, channels::create_channel))
        .routes(routes!(
            channels::get_channel,
            channels::update_channel,
            channels::delete_channel
        ))
        .routes(routes!(channels::test_channel))
        .routes(routes!(channels::channel_models))
        .routes(routes!(pricing::list_prices))
        .routes(routes!(pricing::set_price, pricing::delete_price))
        .with_state(service)
}

pub(crate) fn vendor_routes(service: Arc<RelayService>) -> Router {
    Router::new()
        .route("/v1/models", get(models::list_models))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(chat::messages))
        .route("/v1beta/models/{model_action}", post(chat::gemini))
        // The google-genai SDK uses `v1` when given a base URL of its own.
        .route("/v1/models/{model_action}", post(chat::gemini))
        .with_state(service)
}
