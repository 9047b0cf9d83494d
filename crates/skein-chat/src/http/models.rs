//! The models a user may chat with.

use std::sync::Arc;

use axum::extract::State;
use skein_core::ApiResult;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use utoipa::ToSchema;

use crate::{ChatService, context};

/// A model the caller may chat with.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ChatModel {
    /// Model name.
    pub id: String,
    /// Context window, tokens.
    pub context_window: u32,
    /// Quota units per million prompt tokens.
    pub input_price: i64,
    /// Quota units per million completion tokens.
    pub output_price: i64,
}

/// The models the caller may chat with, and their prices.
#[utoipa::path(get, path = "/chat/models", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatModel>), (status = 401, body = ErrorEnvelope)))]
pub async fn models(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<ChatModel>>> {
    // At the prices of the group the user's answers are billed in.
    let models = svc.relay.priced_models(&user.user_id, None).await?;
    Ok(ApiJson(
        models
            .into_iter()
            .filter(crate::is_chat_model)
            .map(|m| ChatModel {
                context_window: context::window(&svc.config, &m.id),
                id: m.id,
                input_price: m.input_price,
                output_price: m.output_price,
            })
            .collect(),
    ))
}
