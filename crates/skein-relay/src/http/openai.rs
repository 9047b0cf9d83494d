//! OpenAI's JSON routes besides chat — `POST /v1/embeddings`, `/v1/completions`,
//! `/v1/images/generations`, `/v1/audio/speech` and `/v1/rerank` (the Cohere/Jina shape) —
//! each a JSON body relayed through its [`crate::pipeline::calls`] step.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;
use skein_core::api::KeyInfo;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;

use super::reply::answer;
use crate::RelayService;
use crate::pipeline::calls::{self, Answer};
use crate::pipeline::{Caller, input};

/// Parses the client's JSON body and relays it through `call` for `key`.
async fn relay<Fut>(
    svc: Arc<RelayService>,
    key: KeyInfo,
    id: RequestId,
    body: &[u8],
    call: impl FnOnce(Arc<RelayService>, Caller, String, Value) -> Fut,
) -> ApiResult<Response>
where
    Fut: Future<Output = ApiResult<Answer>>,
{
    let request = input::parse_json(body)?;
    answer(call(svc, Caller::Key(key), id.into_string(), request).await)
}

/// Relays an embeddings request.
pub(crate) async fn embeddings(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    relay(svc, key, id, &body, calls::embeddings).await
}

/// Relays a text completion, whole or streamed.
pub(crate) async fn completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    relay(svc, key, id, &body, calls::completions).await
}

/// Relays an image generation.
pub(crate) async fn image_generations(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    relay(svc, key, id, &body, calls::images).await
}

/// Relays a speech request; the audio streams back as it is made.
pub(crate) async fn speech(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    relay(svc, key, id, &body, calls::speech).await
}

/// Relays a rerank request.
pub(crate) async fn rerank(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    relay(svc, key, id, &body, calls::rerank).await
}
