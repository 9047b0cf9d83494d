//! `/internal/knowledge/*`: the [`KnowledgeApi`] over HTTP, for Chat and Agent services in
//! another process. Served only on the internal listener, behind the internal token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use skein_core::ApiResult;
use skein_core::api::{KnowledgeApi, KnowledgeResults};
use skein_core::extract::ApiJson;

use crate::KnowledgeService;
use crate::remote::{BasesBody, MayReadBody, Readable, SearchBody};

pub(crate) fn routes(service: Arc<KnowledgeService>) -> Router {
    Router::new()
        .route("/internal/knowledge/may-read", post(may_read))
        .route("/internal/knowledge/search", post(search))
        .route(
            "/internal/knowledge/conversation-bases",
            post(conversation_bases),
        )
        .with_state(service)
}

async fn may_read(
    State(svc): State<Arc<KnowledgeService>>,
    ApiJson(body): ApiJson<MayReadBody>,
) -> ApiResult<ApiJson<Readable>> {
    let readable = svc.may_read(&body.user_id, &body.base_id).await?;
    Ok(ApiJson(Readable { readable }))
}

async fn search(
    State(svc): State<Arc<KnowledgeService>>,
    ApiJson(body): ApiJson<SearchBody>,
) -> ApiResult<ApiJson<KnowledgeResults>> {
    Ok(ApiJson(svc.search(body.caller, body.query).await?))
}

async fn conversation_bases(
    State(svc): State<Arc<KnowledgeService>>,
    ApiJson(body): ApiJson<BasesBody>,
) -> ApiResult<ApiJson<Vec<String>>> {
    Ok(ApiJson(
        svc.conversation_bases(&body.user_id, &body.conversation_id)
            .await?,
    ))
}
