//! `/internal/chat/*`: what another process's services ask of Chat (the Agent service
//! starting a conversation with an assistant). Served only on the internal listener, behind
//! the internal token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use skein_core::ApiResult;
use skein_core::extract::ApiJson;

use crate::ChatService;
use crate::remote::{OpenBody, Opened};

pub(crate) fn routes(service: Arc<ChatService>) -> Router {
    Router::new()
        .route("/internal/chat/open", post(open))
        .with_state(service)
}

async fn open(
    State(svc): State<Arc<ChatService>>,
    ApiJson(body): ApiJson<OpenBody>,
) -> ApiResult<ApiJson<Opened>> {
    let conversation_id = svc.open_conversation(&body.user_id, &body.title).await?;
    Ok(ApiJson(Opened { conversation_id }))
}
