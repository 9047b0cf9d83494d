//! `POST /v1/rerank`: the Cohere/Jina-style rerank API (`{model, query, documents, top_n}`),
//! relayed to `{base}/v1/rerank` of OpenAI-format channels (vLLM, Jina, Xinference and most
//! gateways serve it there).
//!
//! Billing: the upstream's `usage` tokens (`total_tokens`, else `prompt_tokens`) at the
//! model's input price plus its per-call price; an upstream that reports no tokens (Cohere
//! reports search units) is billed the per-call price alone.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;

use super::meter::{self, Charge, Upstream};
use crate::RelayService;
use crate::proxy::estimate_tokens;

/// Relays a rerank request.
pub(crate) async fn rerank(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let request = meter::parse_json(&body)?;
    let query = request["query"]
        .as_str()
        .filter(|q| !q.is_empty())
        .ok_or_else(|| {
            meter::invalid("query", "must be a non-empty string.", "必须是非空字符串。")
        })?;
    let documents = request["documents"]
        .as_array()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            meter::invalid(
                "documents",
                "must be a non-empty array.",
                "必须是非空数组。",
            )
        })?;
    // Each document is scored against the query, so the query counts once per document.
    let mut tokens_estimate = 0i64;
    for document in documents {
        let text_len = match document {
            Value::String(text) => text.len(),
            Value::Object(_) => document.to_string().len(),
            _ => {
                return Err(meter::invalid(
                    "documents",
                    "must hold strings or objects.",
                    "只能包含字符串或对象。",
                ));
            }
        };
        tokens_estimate = tokens_estimate.saturating_add(estimate_tokens(text_len + query.len()));
    }
    if let Some(top_n) = request.get("top_n")
        && top_n.as_i64().is_none_or(|n| n <= 0)
    {
        return Err(meter::invalid(
            "top_n",
            "must be a positive integer.",
            "必须是正整数。",
        ));
    }
    let request_id = request_id.map(|r| r.0.0).unwrap_or_default();
    let plan = meter::plan(&svc, &key, request["model"].as_str()).await?;
    let estimate = plan.rates.cost(tokens_estimate, 0, 0);
    let upstream = Upstream {
        path: "/v1/rerank",
        content_type: "application/json".into(),
        body: move |model: &str| meter::with_model(&request, model),
        stream: false,
    };
    meter::call(
        &svc,
        &key,
        &request_id,
        plan,
        estimate,
        upstream,
        move |resp, meter| {
            meter::whole(resp, meter, move |meter, bytes| {
                let rates = meter.rates();
                let tokens = meter::usage_in(bytes).and_then(|u| {
                    u["total_tokens"]
                        .as_i64()
                        .or_else(|| u["prompt_tokens"].as_i64())
                });
                match tokens {
                    Some(tokens) => Charge::new(rates.cost(tokens, 0, 0), tokens, 0, "ok"),
                    None => Charge::new(rates.cost_calls(0, 0, 0, 1), 0, 0, "ok"),
                }
            })
        },
    )
    .await
}
