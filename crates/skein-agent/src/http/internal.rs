//! `/internal/agent/*`: the [`AgentApi`] over HTTP, for a Chat service in another process.
//! The binary serves these only on the internal listener, behind the internal token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use skein_core::ApiResult;
use skein_core::api::{AgentApi, AgentPersona};
use skein_core::extract::ApiJson;

use crate::AgentService;
use crate::remote::ConversationBody;

pub(crate) fn routes(service: Arc<AgentService>) -> Router {
    Router::new()
        .route("/internal/agent/persona", post(persona))
        .route("/internal/agent/record-message", post(record_message))
        .with_state(service)
}

async fn persona(
    State(svc): State<Arc<AgentService>>,
    ApiJson(body): ApiJson<ConversationBody>,
) -> ApiResult<ApiJson<Option<AgentPersona>>> {
    Ok(ApiJson(
        svc.persona(&body.conversation_id, &body.user_id).await?,
    ))
}

async fn record_message(
    State(svc): State<Arc<AgentService>>,
    ApiJson(body): ApiJson<ConversationBody>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    svc.record_message(&body.conversation_id, &body.user_id)
        .await?;
    Ok(ApiJson(serde_json::json!({})))
}
