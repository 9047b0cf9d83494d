//! Which request fields may reach a vendor: an allowlist of the ones that do not change what
//! the vendor charges beyond the tokens it reports. A field that would (a priority tier, web
//! search, long-context betas) is refused with `unsupported_field`, because the relay could
//! not bill what the operator pays for it. Audio output is allowed only for models whose price
//! has an audio output rate: its tokens are then billed at that rate.

use serde_json::Value;
use skein_core::ApiResult;

use super::chat::Format;
use crate::errors;

/// OpenAI chat-completion fields billed only through the token counts in `usage`, and the
/// sampling fields of OpenAI-compatible servers (vLLM, DeepSeek, Qwen, GLM) that are too.
const OPENAI_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "metadata",
    "store",
    "modalities",
    "prediction",
    "verbosity",
    "functions",
    "function_call",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    // OpenAI-compatible servers' own sampling and reasoning switches.
    "top_k",
    "min_p",
    "repetition_penalty",
    "enable_thinking",
    "thinking",
    "thinking_budget",
    "chat_template_kwargs",
];

/// Anthropic betas that change no price (the 1-hour cache is billed from its usage).
const ANTHROPIC_BETAS: &[&str] = &[
    "prompt-caching-",
    "extended-cache-ttl-",
    "token-efficient-tools-",
    "interleaved-thinking-",
    "fine-grained-tool-streaming-",
    "output-128k-",
    "message-batches-",
    "pdfs-",
    "computer-use-",
    "files-api-",
];

/// Refuses a request whose fields would make the vendor charge more than its reported tokens.
/// `native` is the client's own body and headers when it spoke Anthropic's or Gemini's format.
/// `extra` are top-level fields the operator allowed besides the built-in list
/// (`relay.extra_request_fields`), for a vendor's own options they know to be priced by tokens.
/// `audio_priced`: the model has an audio output rate, so audio output may be asked for.
pub(crate) fn refuse_unpriced(
    pivot: &Value,
    format: Format,
    native: Option<(&Value, &Vec<(String, String)>)>,
    extra: &[String],
    audio_priced: bool,
) -> ApiResult<()> {
    match (format, native) {
        (Format::OpenAi | Format::Events | Format::Responses, _) => {
            openai(pivot, extra, audio_priced)
        }
        (Format::Anthropic, Some((body, headers))) => anthropic(body, headers),
        (Format::Gemini { .. }, Some((body, _))) => gemini(body),
        _ => Ok(()),
    }
}

fn openai(request: &Value, extra: &[String], audio_priced: bool) -> ApiResult<()> {
    for (field, value) in request.as_object().into_iter().flatten() {
        let audio_field = audio_priced && field == "audio";
        if !OPENAI_FIELDS.contains(&field.as_str())
            && !audio_field
            && !extra.iter().any(|e| e == field)
        {
            return Err(errors::unpriced_field(field));
        }
        let priced = match field.as_str() {
            // Priority and scale tiers cost more than the listed price; flex costs less.
            "service_tier" => {
                value.is_null() || matches!(value.as_str(), Some("auto" | "default" | "flex"))
            }
            // Audio output is billed at the model's audio rate, when it has one.
            "modalities" => {
                audio_priced
                    || value
                        .as_array()
                        .is_none_or(|m| m.iter().all(|v| v == "text"))
            }
            // Only function (and free-form custom) tools: hosted tools are billed per call.
            "tools" => value.as_array().is_none_or(|tools| {
                tools
                    .iter()
                    .all(|t| matches!(t["type"].as_str(), Some("function" | "custom") | None))
            }),
            _ => true,
        };
        if !priced {
            return Err(errors::unpriced_field(field));
        }
    }
    Ok(())
}

fn anthropic(body: &Value, headers: &[(String, String)]) -> ApiResult<()> {
    // Server tools (web search, web fetch, code execution) are billed per use.
    for tool in body["tools"].as_array().into_iter().flatten() {
        if let Some(kind) = tool["type"].as_str()
            && ["web_search", "web_fetch", "code_execution", "mcp"]
                .iter()
                .any(|p| kind.starts_with(p))
        {
            return Err(errors::unpriced_field(&format!("tools[type={kind}]")));
        }
    }
    if body.get("mcp_servers").is_some_and(|v| !v.is_null()) {
        return Err(errors::unpriced_field("mcp_servers"));
    }
    if let Some(tier) = body.get("service_tier").filter(|v| !v.is_null())
        && !matches!(tier.as_str(), Some("auto" | "standard_only"))
    {
        return Err(errors::unpriced_field("service_tier"));
    }
    for (_, value) in headers {
        for beta in value.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            if !ANTHROPIC_BETAS.iter().any(|p| beta.starts_with(p)) {
                return Err(errors::unpriced_field(&format!("anthropic-beta: {beta}")));
            }
        }
    }
    Ok(())
}

fn gemini(body: &Value) -> ApiResult<()> {
    // Grounding with Google Search or Maps, and URL context, are billed per request.
    for tool in body["tools"].as_array().into_iter().flatten() {
        for (name, _) in tool.as_object().into_iter().flatten() {
            if matches!(
                name.as_str(),
                "googleSearch"
                    | "google_search"
                    | "googleSearchRetrieval"
                    | "google_search_retrieval"
                    | "googleMaps"
                    | "google_maps"
                    | "urlContext"
                    | "url_context"
                    | "enterpriseWebSearch"
            ) {
                return Err(errors::unpriced_field(&format!("tools.{name}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(result: ApiResult<()>) -> String {
        result
            .err()
            .map(|e| e.code().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn openai_fields_are_an_allowlist() {
        let ok = json!({"model": "m", "messages": [], "temperature": 0.2, "service_tier": "auto",
            "tools": [{"type": "function", "function": {"name": "f"}}], "modalities": ["text"]});
        assert!(openai(&ok, &[], false).is_ok());
        let vendor = json!({"model": "m", "x_vendor": 1});
        assert_eq!(code(openai(&vendor, &[], false)), "unsupported_field");
        assert!(openai(&vendor, &["x_vendor".to_string()], false).is_ok());
        // Audio output only for a model priced for it.
        let audio = json!({"model": "m", "modalities": ["text", "audio"],
            "audio": {"voice": "alloy", "format": "wav"}});
        assert_eq!(code(openai(&audio, &[], false)), "unsupported_field");
        assert!(openai(&audio, &[], true).is_ok());
        for bad in [
            json!({"model": "m", "service_tier": "priority"}),
            json!({"model": "m", "web_search_options": {}}),
            json!({"model": "m", "modalities": ["text", "audio"]}),
            json!({"model": "m", "tools": [{"type": "web_search"}]}),
            json!({"model": "m", "enable_search": true}),
        ] {
            assert_eq!(code(openai(&bad, &[], false)), "unsupported_field", "{bad}");
        }
    }

    #[test]
    fn anthropic_server_tools_and_price_changing_betas_are_refused() {
        let plain = json!({"tools": [{"name": "f", "input_schema": {}}]});
        let betas = vec![(
            "anthropic-beta".to_string(),
            "prompt-caching-2024-07-31, interleaved-thinking-2025-05-14".to_string(),
        )];
        assert!(anthropic(&plain, &betas).is_ok());
        let search = json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]});
        assert_eq!(code(anthropic(&search, &[])), "unsupported_field");
        let long = vec![(
            "anthropic-beta".to_string(),
            "context-1m-2025-08-07".to_string(),
        )];
        assert_eq!(code(anthropic(&plain, &long)), "unsupported_field");
        assert_eq!(
            code(anthropic(&json!({"service_tier": "priority"}), &[])),
            "unsupported_field"
        );
    }

    #[test]
    fn gemini_grounding_is_refused() {
        assert!(gemini(&json!({"tools": [{"functionDeclarations": []}]})).is_ok());
        assert_eq!(
            code(gemini(&json!({"tools": [{"googleSearch": {}}]}))),
            "unsupported_field"
        );
    }
}
