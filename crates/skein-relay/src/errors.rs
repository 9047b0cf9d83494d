//! The relay's own error codes (routes, pipeline, vendor adapters), one constructor each.

use std::net::IpAddr;

use axum::http::StatusCode;
use serde_json::json;
use skein_core::ApiError;

// ---- API keys and what they may use -------------------------------------------------------

/// 401 for any key that cannot be used; the message never says which check failed for an
/// unknown key, so keys cannot be probed.
pub(crate) fn invalid_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "The API key is invalid, revoked or disabled.",
        "API 密钥无效、已撤销或已停用。",
    )
}

/// 401 for a known key past its expiry (its owner may say so: the key was theirs).
pub(crate) fn api_key_expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "api_key_expired",
        "The API key has expired.",
        "API 密钥已过期。",
    )
}

/// 403 for a key used from an address outside its allowed networks.
pub(crate) fn ip_not_allowed(ip: IpAddr) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "ip_not_allowed",
        format!("This API key may not be used from {ip}."),
        format!("该 API 密钥不允许从 {ip} 使用。"),
    )
}

/// 403 for a group the key's owner was not granted.
pub(crate) fn group_not_allowed(group: &str, allowed: &[String]) -> ApiError {
    let (en, zh) = if allowed.is_empty() {
        (
            "No key group has been granted to you yet; ask an administrator.".to_string(),
            "你尚未被授予任何密钥分组，请联系管理员。".to_string(),
        )
    } else {
        (
            format!(
                "You may not use the group {group:?}. Your groups: {}.",
                allowed.join(", ")
            ),
            format!(
                "你无权使用分组 {group:?}。你可用的分组：{}。",
                allowed.join("、")
            ),
        )
    };
    ApiError::new(StatusCode::FORBIDDEN, "group_not_allowed", en, zh)
        .with_details(serde_json::json!({ "group": group, "allowed": allowed }))
}

/// 403 `model_not_allowed`: the key's own model list leaves `model` out.
pub(crate) fn model_not_allowed(model: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "model_not_allowed",
        format!("This API key may not use {model}."),
        format!("该 API 密钥不允许使用 {model}。"),
    )
}

/// 403 `model_not_in_plan`: the caller's active subscription plans name their models and
/// `model` is not one of them.
pub(crate) fn not_in_plan(model: &str, plans: &skein_core::api::Entitlements) -> ApiError {
    let allowed = plans.models.clone().unwrap_or_default();
    let en_names: Vec<&str> = plans.plans.iter().map(|(en, _)| en.as_str()).collect();
    let zh_names: Vec<&str> = plans.plans.iter().map(|(_, zh)| zh.as_str()).collect();
    ApiError::new(
        StatusCode::FORBIDDEN,
        "model_not_in_plan",
        format!(
            "Your plan ({}) does not include {model}. Models in your plan: {}.",
            en_names.join(", "),
            allowed.join(", ")
        ),
        format!(
            "你的套餐（{}）不包含 {model}。套餐内的模型：{}。",
            zh_names.join("、"),
            allowed.join("、")
        ),
    )
    .with_details(serde_json::json!({ "model": model, "allowed": allowed }))
}

/// 404 `model_not_found`: no channel serves `model` for the caller's group.
pub(crate) fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!("No channel serves {model} for this key."),
        format!("没有可为该密钥提供 {model} 的渠道。"),
    )
}

/// 400 `model_not_priced`: a model nobody set a price for cannot be billed.
pub(crate) fn not_priced(model: &str) -> ApiError {
    ApiError::bad_request(
        "model_not_priced",
        format!(
            "{model} has no price yet, so it cannot be billed. Ask an administrator to price it."
        ),
        format!("{model} 尚未定价，无法计费，请联系管理员设置价格。"),
    )
}

/// 429 for a key that has used its `tpm` tokens this minute; `wait` seconds until it may again.
pub(crate) fn tokens_per_minute_exceeded(tpm: u32, wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "tokens_per_minute_exceeded",
        format!("This API key has used its {tpm} tokens per minute. Try again in {wait} s."),
        format!("该 API 密钥已用完每分钟 {tpm} 个 token 的额度，请在 {wait} 秒后重试。"),
    )
    .with_retry_after(wait)
}

/// 429 past `per_minute` token counts a minute: counting is free, so it has its own limit.
pub(crate) fn count_tokens_limited(per_minute: u32, wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "This API key has counted tokens {per_minute} times this minute. Try again in {wait} s."
        ),
        format!("该 API 密钥本分钟已计数 {per_minute} 次，请在 {wait} 秒后重试。"),
    )
    .with_retry_after(wait)
}

// ---- upstreams ----------------------------------------------------------------------------

/// 503 while every channel for `shown` rests after repeated failures (its breakers are open).
pub(crate) fn channels_cooling_down(shown: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "channels_cooling_down",
        format!("Every channel for {shown} failed repeatedly and is resting. Try again shortly."),
        format!("{shown} 的所有渠道都连续失败，正在冷却，请稍后重试。"),
    )
    .with_retry_after(crate::breaker::OPEN_FOR.as_secs())
}

/// 502 `upstream_unavailable` once every channel failed. Which channels and why goes to the
/// log under the request id; the caller hears neither (channel names, hosts and transport
/// errors are the operator's business).
pub(crate) fn all_failed(model: &str, tried: &[String]) -> ApiError {
    tracing::warn!(tried = ?tried, %model, "every channel failed");
    crate::metrics::UNAVAILABLE.inc(&[model]);
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        format!(
            "{model} is unavailable right now: every provider behind it failed. Try again shortly."
        ),
        format!("{model} 暂时不可用：其后的所有服务商都失败了，请稍后重试。"),
    )
}

/// The upstream's own refusal as an error for an in-process caller: its status, and its
/// message (from an OpenAI-shaped error body) after `prefix` ("The model's provider refused
/// the request", and the Chinese `prefix_zh`).
pub(crate) fn refused_error(
    status: StatusCode,
    body: &[u8],
    prefix: &str,
    prefix_zh: &str,
) -> ApiError {
    let upstream: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let message = upstream["error"]["message"]
        .as_str()
        .unwrap_or("The upstream refused the request.")
        .to_string();
    ApiError::new(
        status,
        "upstream_refused",
        format!("{prefix}: {message}"),
        format!("{prefix_zh}：{message}"),
    )
}

/// 502 for an answer that broke off.
pub(crate) fn broken_off() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "The upstream answer broke off.",
        "上游响应中断。",
    )
}

/// 502 `upstream_error`: the upstream answered 2xx with something that is not its API's
/// answer. The call was still billed (the upstream did the work).
pub(crate) fn unreadable() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "The provider's answer could not be read.",
        "无法读取服务商的响应。",
    )
}

// ---- channels (admin) ---------------------------------------------------------------------

/// 422 for moving a channel without its keys: keys sealed for one upstream never follow unseen.
pub(crate) fn keys_required() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "keys_required",
        "Changing a channel's type or base_url needs its keys again in the same request.",
        "修改渠道的类型或 base_url 时，需要在同一请求中重新填写密钥。",
    )
}

/// 422 for moving a channel that sends extra headers without them, for the keys' reason.
pub(crate) fn headers_required() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "headers_required",
        "This channel sends extra headers: changing its type or base_url needs them again in the same request (send {} to drop them).",
        "该渠道带有额外请求头：修改类型或 base_url 时，需要在同一请求中重新填写（发送 {} 表示删除）。",
    )
}

/// 422 for reading the balance of a channel whose vendor has no balance endpoint.
pub(crate) fn no_balance_endpoint() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_balance_endpoint",
        "This channel's vendor has no balance endpoint Skein can read.",
        "该渠道的服务商没有可供 Skein 读取的余额接口。",
    )
}

/// 502 for an upstream that did not report its balance, with the reason.
pub(crate) fn balance_unread(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        format!("The upstream did not report its balance: {reason}"),
        format!("上游未能返回余额：{reason}"),
    )
}

/// 502 for an upstream that did not list its models, with the reason.
pub(crate) fn models_unlisted(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        format!("The upstream did not list its models: {reason}"),
        format!("上游未能列出模型：{reason}"),
    )
}

/// 502 for an Ollama channel that did not pull `model`, with the reason.
pub(crate) fn pull_failed(model: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        format!("Ollama did not pull {model}: {reason}"),
        format!("Ollama 未能拉取 {model}：{reason}"),
    )
}

// ---- routes -------------------------------------------------------------------------------

/// 404 for a Gemini model path without its `:method`.
pub(crate) fn gemini_route_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "Use models/{model}:generateContent.",
        "请使用 models/{model}:generateContent。",
    )
}

/// 404 for a Gemini `:method` other than `generateContent` and `streamGenerateContent`.
pub(crate) fn gemini_method_not_supported(action: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("The method {action} is not supported."),
        format!("不支持方法 {action}。"),
    )
}

/// 415 for an audio request that is not a multipart form.
pub(crate) fn audio_not_multipart() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the audio as multipart/form-data with a file and a model field.",
        "请以 multipart/form-data 格式上传音频，包含 file 与 model 字段。",
    )
}

/// 413 for an audio file over `limit` bytes (OpenAI's own limit, 25 MB).
pub(crate) fn audio_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        "Audio files may be at most 25 MB.",
        "音频文件不能超过 25 MB。",
    )
    .with_details(json!({ "limit": limit }))
}

// ---- request fields -----------------------------------------------------------------------

/// 400 `invalid_<field>` for a missing or wrong-typed field.
pub(crate) fn invalid_input(field: &str, what_en: &str, what_zh: &str) -> ApiError {
    ApiError::bad_request(
        format!("invalid_{field}"),
        format!("{field} {what_en}"),
        format!("{field} {what_zh}"),
    )
    .with_details(json!({ "field": field }))
}

/// 400 for a field that changes the provider's charge while its price is not set here.
pub(crate) fn unpriced_field(field: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_field",
        format!(
            "{field} changes what the model's provider charges, and that price is not set here, so the request cannot be relayed. Leave it out."
        ),
        format!("{field} 会改变模型服务商的收费，而此处未设置对应价格，因此无法转发该请求，请去掉该字段。"),
    )
    .with_details(serde_json::json!({ "field": field }))
}

/// A 400 naming a field of the request that `upstream` cannot express, so the client learns
/// what to remove instead of getting an answer to a different question.
pub(crate) fn cannot_carry(field: &str, upstream: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_field",
        format!("{field} cannot be carried to this model's upstream ({upstream})."),
        format!("{field} 无法转发到该模型的上游（{upstream}）。"),
    )
    .with_details(json!({ "field": field }))
}

/// A 400 naming a field of a client's request that only an upstream of the client's own
/// vendor understands (it is passed through to such a channel as written), when the model's
/// channels are of other kinds.
pub(crate) fn only_native(field: &str, vendor: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_field",
        format!("{field} can be sent only to {vendor} upstreams, and this model's channels are of another kind."),
        format!("{field} 只能发送到 {vendor} 上游，而该模型的渠道属于其他类型。"),
    )
    .with_details(json!({ "field": field }))
}

/// 400 for content (`what`) an Anthropic or Gemini upstream has no form for.
pub(crate) fn unsupported_content(what: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_content",
        format!("{what} cannot be carried to this model's upstream."),
        format!("{what} 无法转发到该模型的上游。"),
    )
}

/// 400 for an image URL the relay will not fetch for Gemini (`why`: not public, no host, ...).
pub(crate) fn image_url_not_allowed(url: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        "image_url_not_allowed",
        format!("The image URL {url} cannot be fetched: {why}."),
        format!("无法获取图片地址 {url}：{why}。"),
    )
    .with_details(serde_json::json!({ "field": "image_url" }))
}

/// 400 for an image URL whose fetch for Gemini failed (`why`).
pub(crate) fn image_url_unreachable(url: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        "image_url_unreachable",
        format!("The image at {url} could not be fetched: {why}."),
        format!("无法获取图片 {url}：{why}。"),
    )
    .with_details(serde_json::json!({ "field": "image_url" }))
}

// ---- the Responses API --------------------------------------------------------------------

/// A 400 `invalid_request` about one field of a Responses request.
pub(crate) fn invalid_responses_field(field: &str, en: &str, zh: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_request",
        format!("{field}: {en}"),
        format!("{field}：{zh}"),
    )
    .with_details(json!({ "field": field }))
}

/// A 400 for OpenAI's Conversations API, which this relay does not have.
pub(crate) fn no_conversations() -> ApiError {
    ApiError::bad_request(
        "unsupported_field",
        "conversation needs OpenAI's Conversations API, which this server does not have. Continue a conversation with previous_response_id, or send it whole in input.",
        "conversation 需要 OpenAI 的 Conversations API，本服务器没有该接口。请用 previous_response_id 继续对话，或在 input 中发送完整对话。",
    )
    .with_details(json!({ "field": "conversation" }))
}

/// A 404 for a stored response this caller does not have (unknown, deleted, expired or
/// another user's: the same answer, so ids reveal nothing).
pub(crate) fn response_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "response_not_found",
        format!(
            "No response with id {id} is stored for you (it may have expired or been deleted)."
        ),
        format!("没有为你保存 id 为 {id} 的响应（可能已过期或被删除）。"),
    )
    .with_details(json!({ "id": id }))
}

/// A 400 for continuing from a background response that has not finished.
pub(crate) fn response_in_progress(id: &str) -> ApiError {
    ApiError::bad_request(
        "response_in_progress",
        format!("Response {id} is still in progress: continue from it once it has finished."),
        format!("响应 {id} 仍在进行中：请在它完成后再继续。"),
    )
    .with_details(json!({ "id": id }))
}

/// A 400 for a conversation that reaches back through more than `max` kept responses.
pub(crate) fn conversation_too_long(max: usize) -> ApiError {
    ApiError::bad_request(
        "conversation_too_long",
        format!(
            "The conversation reaches back through more than {max} responses: start a new one with the whole context in input."
        ),
        format!("该对话向前超过 {max} 个响应：请在 input 中带上完整上下文重新开始。"),
    )
}

/// A 400 for cancelling a response that does not run in the background.
pub(crate) fn not_background() -> ApiError {
    ApiError::bad_request(
        "not_background",
        "Only a background response can be cancelled.",
        "只有后台响应可以取消。",
    )
}

/// A 400 naming a built-in tool type the relay cannot run.
pub(crate) fn unsupported_tool(kind: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_tool",
        format!(
            "The built-in tool {kind} is not available here; only function tools are supported."
        ),
        format!("此处不支持内置工具 {kind}，只支持 function 类型的工具。"),
    )
    .with_details(json!({ "tool": kind }))
}

/// A 400 naming an input item or content part type that cannot be carried.
pub(crate) fn unsupported_item(what: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_content",
        format!("Input of type {what} is not supported here."),
        format!("此处不支持类型为 {what} 的输入。"),
    )
    .with_details(json!({ "type": what }))
}
