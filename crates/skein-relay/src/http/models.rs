//! `GET /v1/models` in OpenAI's shape: the models this key may use.

use std::sync::Arc;

use axum::extract::State;
use serde_json::{Value, json};
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::extract::ApiJson;

use crate::RelayService;

/// Lists the models the calling key may use: served by a channel of its group, priced (or
/// servable unpriced under `relay.allow_unpriced`), and allowed by the key.
pub(crate) async fn list_models(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
) -> ApiResult<ApiJson<Value>> {
    let table = svc.table();
    let mut models = table.models(&key.group);
    // An alias is listed where the model it is served as is.
    let routes = svc.model_routes();
    let served: Vec<String> = routes
        .aliases()
        .filter(|(alias, target)| {
            models.iter().any(|m| m == target) && !models.iter().any(|m| m == alias)
        })
        .map(|(alias, _)| alias.to_string())
        .collect();
    models.extend(served);
    models.sort();
    let plans = svc.entitlements(&key.user_id).await?;
    let data: Vec<Value> = models
        .into_iter()
        .filter(|m| {
            key.allows_model(m)
                && plans.allows_model(m)
                && svc.price_for(&key.group, routes.resolve(m)).is_some()
        })
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "skein" }))
        .collect();
    Ok(ApiJson(json!({ "object": "list", "data": data })))
}
