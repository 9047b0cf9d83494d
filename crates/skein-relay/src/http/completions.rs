//! `POST /v1/completions`, OpenAI's legacy text completions (see
//! [`crate::pipeline::calls::completions`]).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;

use super::reply::{answer, key_caller, request_id};
use crate::RelayService;
use crate::pipeline::{calls, input};

/// Relays a text completion.
pub(crate) async fn completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let request = input::parse_json(&body)?;
    answer(calls::completions(&svc, key_caller(key), request_id(id), request).await)
}
