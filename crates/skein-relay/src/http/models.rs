//! `GET /v1/models` in OpenAI's shape: the models this key may use.

use std::sync::Arc;

use axum::extract::State;
use serde_json::{Value, json};
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::extract::ApiJson;

use crate::RelayService;

/// Lists the models the calling key may use. Until channels are configured a key can reach
/// no model, so only an explicit allowlist shows up.
pub(crate) async fn list_models(
    State(_svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
) -> ApiResult<ApiJson<Value>> {
    let data: Vec<Value> = key
        .allowed_models
        .unwrap_or_default()
        .into_iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "skein" }))
        .collect();
    Ok(ApiJson(json!({ "object": "list", "data": data })))
}
