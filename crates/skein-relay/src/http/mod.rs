//! The Relay's HTTP routes: key management under `/api/v1`, vendor-compatible under `/v1`.
//! The vendor-compatible handlers only read the client's format, call the
//! [`crate::pipeline`] and render its reply.

pub(crate) mod channels;
mod chat;
mod count_tokens;
mod groups;
pub(crate) mod internal;
mod keys;
mod media;
mod model_routes;
mod models;
mod openai;
mod pricing;
mod realtime;
mod reply;
mod requests;
mod responses;
mod routing;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::RelayService;

pub(crate) fn routes(service: Arc<RelayService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::get_key, keys::update_key, keys::delete_key))
        .routes(routes!(groups::my_groups))
        .routes(routes!(groups::user_groups, groups::set_user_groups))
        .routes(routes!(channels::list_channels, channels::create_channel))
        .routes(routes!(
            channels::get_channel,
            channels::update_channel,
            channels::delete_channel
        ))
        .routes(routes!(channels::test_channel))
        .routes(routes!(channels::channel_probes, channels::probe_channel))
        .routes(routes!(channels::refresh_balance))
        .routes(routes!(channels::channel_models))
        .routes(routes!(channels::fetch_models))
        .routes(routes!(channels::pull_model))
        .routes(routes!(pricing::list_prices))
        .routes(routes!(pricing::set_price, pricing::delete_price))
        .routes(routes!(pricing::list_defaults, pricing::load_defaults))
        .routes(routes!(pricing::list_unpriced))
        .routes(routes!(pricing::list_groups))
        .routes(routes!(pricing::set_group))
        .routes(routes!(requests::list_requests))
        .routes(routes!(requests::channel_stats))
        .routes(routes!(requests::prune_requests))
        .routes(routes!(requests::get_request))
        .routes(routes!(model_routes::list_routes))
        .routes(routes!(model_routes::set_route, model_routes::delete_route))
        .routes(routes!(routing::list_routing))
        .routes(routes!(routing::set_routing))
        .routes(routes!(routing::export_channels))
        .routes(routes!(routing::apply_channels))
        .routes(routes!(routing::channels_file))
        .routes(routes!(routing::list_cache))
        .routes(routes!(routing::set_cache))
        .with_state(service)
}

pub(crate) fn vendor_routes(service: Arc<RelayService>) -> Router {
    Router::new()
        .route("/v1/models", get(models::list_models))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/images/generations", post(openai::image_generations))
        .route("/v1/audio/speech", post(openai::speech))
        // Audio uploads may be up to 25 MB, more than the server's body limit for JSON.
        .route(
            "/v1/audio/transcriptions",
            post(media::transcriptions).layer(DefaultBodyLimit::max(media::AUDIO_BODY_LIMIT)),
        )
        .route(
            "/v1/audio/translations",
            post(media::translations).layer(DefaultBodyLimit::max(media::AUDIO_BODY_LIMIT)),
        )
        .route("/v1/rerank", post(openai::rerank))
        .route("/v1/realtime", get(realtime::realtime))
        .route("/v1/messages", post(chat::messages))
        .route("/v1/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route("/v1/responses/{id}/cancel", post(responses::cancel))
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::input_items),
        )
        .route(
            "/v1/messages/count_tokens",
            post(count_tokens::count_tokens),
        )
        .route("/v1beta/models/{model_action}", post(chat::gemini))
        // The google-genai SDK uses `v1` when given a base URL of its own.
        .route("/v1/models/{model_action}", post(chat::gemini))
        .with_state(service)
}
