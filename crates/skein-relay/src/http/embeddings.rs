//! `POST /v1/embeddings`: relayed to OpenAI-format channels, billed from the upstream's
//! `usage.prompt_tokens` at the model's input price (plus its per-call price, if any).
//!
//! The body goes upstream as the client wrote it with only the model mapped, and the answer
//! comes back byte for byte: `encoding_format: "base64"` (what the official SDKs ask for by
//! default) and `dimensions` are the upstream's to honour, and their output is never decoded.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;

use super::meter::{self, Charge, Upstream};
use crate::RelayService;

/// Relays an embeddings request.
pub(crate) async fn embeddings(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let request = meter::parse_json(&body)?;
    let prompt_estimate = meter::input_tokens(&request["input"]).ok_or_else(|| {
        meter::invalid(
            "input",
            "must be a string, an array of strings, or an array of token arrays.",
            "必须是字符串、字符串数组或 token 数组的数组。",
        )
    })?;
    if let Some(format) = request.get("encoding_format")
        && !matches!(format.as_str(), Some("float" | "base64"))
    {
        return Err(meter::invalid(
            "encoding_format",
            "must be \"float\" or \"base64\".",
            "必须是 \"float\" 或 \"base64\"。",
        ));
    }
    if let Some(dimensions) = request.get("dimensions")
        && dimensions.as_i64().is_none_or(|d| d <= 0)
    {
        return Err(meter::invalid(
            "dimensions",
            "must be a positive integer.",
            "必须是正整数。",
        ));
    }
    let request_id = request_id.map(|r| r.0.0).unwrap_or_default();
    let plan = meter::plan(&svc, &key, request["model"].as_str()).await?;
    let estimate = plan.rates.cost(prompt_estimate, 0, 0);
    let upstream = Upstream {
        path: "/v1/embeddings",
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
                match meter::usage_in(bytes).and_then(|u| u["prompt_tokens"].as_i64()) {
                    Some(prompt) => Charge::new(rates.cost(prompt, 0, 0), prompt, 0, "ok"),
                    // No usage from the upstream: bill the estimate of the input.
                    None => Charge::new(
                        rates.cost(prompt_estimate, 0, 0),
                        prompt_estimate,
                        0,
                        "estimated",
                    ),
                }
            })
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::meter::input_tokens;
    use serde_json::json;

    #[test]
    fn input_shapes() {
        assert_eq!(input_tokens(&json!([1, 2, 3])), Some(3));
        assert_eq!(input_tokens(&json!([[1, 2], [3]])), Some(3));
        // Text counts with the tokenizer, plus a tenth for other vendors' tokenizers: one-letter
        // words are a token each (bytes / 3 would say 6,667).
        // (The tokenizer sees text in slices, which may add a token per slice.)
        let counted = input_tokens(&json!("a ".repeat(10_000))).unwrap_or(0);
        assert!((11_000..=11_050).contains(&counted), "{counted}");
        // Short texts are held at their length in bytes (an upper bound), plus the tenth.
        assert_eq!(input_tokens(&json!(["hello", "hello"])), Some(12));
        for bad in [
            json!(null),
            json!(5),
            json!([]),
            json!([{}]),
            json!([[]]),
            json!([["a"]]),
        ] {
            assert_eq!(input_tokens(&bad), None, "{bad}");
        }
    }
}
