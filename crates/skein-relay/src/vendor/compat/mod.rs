//! Every OpenAI-compatible upstream on one adapter driven by data: OpenAI itself and Azure
//! OpenAI, and the vendors with quirks (DeepSeek, DashScope/Qwen, Zhipu GLM, Moonshot Kimi,
//! SiliconFlow, Volcengine Ark, MiniMax, Tencent Hunyuan, Baidu Qianfan, iFlytek Spark). A
//! [`Profile`] per vendor ([`profiles`]) says where it lives and how it takes the key, how its
//! reasoning is switched on and reported, which tool choices it takes and what its error codes
//! mean. The code here applies a profile; it never names a vendor. A profile with no quirks
//! ([`Profile::pass_through`]) sends the pivot as the client wrote it and hands answers on
//! untouched, byte for byte.
//!
//! Every direction of reasoning meets in the pivot's `reasoning_content`: the client's effort
//! (OpenAI's `reasoning_effort`, Anthropic's `thinking`, Gemini's `thinkingConfig`, all made an
//! effort by their conversions) becomes the vendor's switch here, and the vendor's reasoning
//! (`reasoning_content`, `reasoning`, MiniMax's `reasoning_details`) comes back as
//! `reasoning_content`, which the client conversions turn into thinking blocks or thought parts.

pub mod profiles;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use skein_core::ApiResult;

use super::openai::{PassThrough, azure, ids};
use super::{Attempt, KEY_REJECTED, StreamDecoder, Upstream, classify, pivot};
use crate::channels::{ChannelKind, LiveChannel};
use crate::errors;

/// One OpenAI-compatible vendor's differences from OpenAI.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// The channel kind it serves.
    pub kind: ChannelKind,
    /// The vendor's name, for messages.
    pub vendor: &'static str,
    /// The base URL its documentation gives OpenAI SDKs (the API version included); none
    /// when every account has its own (Azure's resources).
    pub default_base_url: Option<&'static str>,
    /// Where requests go and how the key is sent.
    pub endpoints: Endpoints,
    /// Whether the base URL answers OpenAI's own paths with OpenAI's bodies, so the
    /// embeddings, completions, images, audio and rerank routes may go there too.
    pub openai_paths: bool,
    /// Answers, whole and streamed, are already the pivot's and go on untouched (no parse
    /// per chunk); with no request quirks either, the pivot is sent as the client wrote it.
    pub pass_through: bool,
    /// How reasoning is switched on.
    pub thinking: Thinking,
    /// Where answers carry reasoning.
    pub reasoning: Reasoning,
    /// What happens to earlier turns' reasoning sent back by a client.
    pub history: History,
    /// Which `tool_choice` values it takes.
    pub tool_choice: ToolChoice,
    /// A stream's usage comes inside its last choice instead of beside it.
    pub usage_in_choice: bool,
    /// Cached prompt tokens come as `usage.cached_tokens` instead of under
    /// `prompt_tokens_details`.
    pub cached_at_top: bool,
    /// The vendor may answer an error with a 2xx whose body carries a non-zero code.
    pub errors_in_ok: bool,
    /// Vendor error codes (or `error.type` names) and what they mean; a trailing `*` matches
    /// any code with that prefix.
    pub codes: &'static [(&'static str, Class)],
    /// How much more than o200k its tokenizer may count, in per-mille.
    pub safety_permille: i64,
}

/// Where an OpenAI-compatible vendor takes requests and how it wants the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// Fixed paths under the base URL, the key as a bearer token.
    Paths {
        /// The chat path.
        chat: &'static str,
        /// The model-list path, if the vendor has one.
        models: Option<&'static str>,
    },
    /// Azure's per-resource paths (the mapped model is the deployment, the API version in
    /// the query; see [`azure`]), the key in an `api-key` header.
    Azure,
}

/// How a vendor takes the pivot's `reasoning_effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thinking {
    /// `reasoning_effort` as the client wrote it (OpenAI's own field).
    AsSent,
    /// `thinking: {"type": "enabled" | "disabled"}`.
    TypeObject,
    /// `enable_thinking: bool`, with `thinking_budget` in tokens when `budget`.
    EnableFlag {
        /// Whether the vendor takes a budget too.
        budget: bool,
    },
    /// `reasoning_split: true`, so reasoning comes apart from the answer; the model always
    /// reasons, so the effort itself has nothing to change.
    ReasoningSplit,
    /// The model name decides (a reasoning model reasons); the effort is not sent, because
    /// the vendor has no field that takes it.
    ModelSelected,
}

/// Where a vendor's answers carry reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    /// `reasoning_content` (or `reasoning`), as the pivot does.
    Content,
    /// `reasoning_details: [{"type": "reasoning.text", "text"}]` (MiniMax).
    Details,
}

/// What happens to the `reasoning_content` of assistant turns a client sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Sent as written (vendors that want it back, for tool calls made while thinking).
    Keep,
    /// Removed (vendors whose message schema has no such field).
    Strip,
    /// Removed before the last user message, kept after it: the vendor refuses earlier
    /// questions' reasoning but needs the current tool loop's.
    StripBeforeLastUser,
    /// Sent as `reasoning_details` (MiniMax).
    Details,
}

/// Which `tool_choice` values a vendor takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolChoice {
    /// All of OpenAI's.
    Any,
    /// Only `auto`: `none` is carried by sending no tools, the rest is refused by name.
    AutoOnly,
    /// `auto` and `none`; the rest is refused by name.
    AutoOrNone,
}

/// What a vendor error means for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The account is out of balance or quota (or suspended): disable the channel.
    Quota,
    /// The key is rejected: disable the channel once the key itself confirms it.
    Auth,
    /// Too many requests: try another channel.
    RateLimit,
    /// The vendor is overloaded or failed: try another channel.
    Overloaded,
    /// The vendor's content review refused the request: the client's to see, with the
    /// `content_filter` code; no other channel is tried and the channel stays healthy.
    ContentFilter,
}

/// A vendor error's code: `error.code`, `base_resp.status_code` or a top-level `code` (a
/// non-zero number or a string), as text; then `error.type`.
fn error_codes(body: &[u8]) -> (Option<String>, Option<String>) {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |c: &Value| match c {
        Value::String(s) if !s.is_empty() && s != "0" => Some(s.clone()),
        Value::Number(n) if n.as_i64() != Some(0) => Some(n.to_string()),
        _ => None,
    };
    let code = text(&v["error"]["code"])
        .or_else(|| text(&v["base_resp"]["status_code"]))
        .or_else(|| text(&v["code"]));
    let kind = v["error"]["type"].as_str().map(str::to_string);
    (code, kind)
}

/// The vendor's message in an error body, wherever its shape puts it.
fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    [
        &v["error"]["message"],
        &v["base_resp"]["status_msg"],
        &v["message"],
        &v["error"],
    ]
    .into_iter()
    .find_map(|m| m.as_str().filter(|s| !s.is_empty()))
    .map(str::to_string)
    .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect())
}

impl Profile {
    /// What a code means for this vendor (exact, or by a `prefix*` row).
    fn class_of(&self, code: &str) -> Option<Class> {
        self.codes.iter().find_map(|(pattern, class)| {
            let hit = match pattern.strip_suffix('*') {
                Some(prefix) => code.starts_with(prefix),
                None => code == *pattern,
            };
            hit.then_some(*class)
        })
    }

    /// What an error body means, from its code first and its type second.
    fn class_of_body(&self, body: &[u8]) -> Option<Class> {
        let (code, kind) = error_codes(body);
        code.as_deref()
            .and_then(|c| self.class_of(c))
            .or_else(|| kind.as_deref().and_then(|k| self.class_of(k)))
    }

    /// The vendor's body for a pivot request: the reasoning switch, earlier reasoning and tool
    /// choice in the vendor's terms; everything else as the client wrote it.
    pub fn body(&self, pivot: &Value) -> ApiResult<Value> {
        let mut body = pivot.clone();
        let Some(fields) = body.as_object_mut() else {
            return Ok(body);
        };
        self.thinking_fields(fields)?;
        self.tool_choice_fields(fields)?;
        if let Some(Value::Array(messages)) = fields.get_mut("messages") {
            self.history_fields(messages);
        }
        Ok(body)
    }

    fn thinking_fields(&self, fields: &mut Map<String, Value>) -> ApiResult<()> {
        if self.thinking == Thinking::AsSent {
            return Ok(());
        }
        let effort = match fields.get("reasoning_effort") {
            Some(Value::String(effort)) => Some(effort.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(errors::cannot_carry("reasoning_effort", self.vendor)),
        };
        if self.thinking == Thinking::ReasoningSplit {
            fields.entry("reasoning_split").or_insert(Value::Bool(true));
        }
        let Some(effort) = effort else {
            return Ok(());
        };
        fields.remove("reasoning_effort");
        let budget = pivot::budget_for_effort(&effort)
            .ok_or_else(|| errors::cannot_carry("reasoning_effort", self.vendor))?;
        let on = budget > 0;
        // A switch the client set in the vendor's own terms wins over the effort.
        match self.thinking {
            Thinking::TypeObject => {
                fields
                    .entry("thinking")
                    .or_insert_with(|| json!({"type": if on { "enabled" } else { "disabled" }}));
            }
            Thinking::EnableFlag {
                budget: takes_budget,
            } => {
                if !fields.contains_key("enable_thinking") {
                    fields.insert("enable_thinking".into(), Value::Bool(on));
                    if on && takes_budget {
                        fields
                            .entry("thinking_budget")
                            .or_insert_with(|| json!(budget));
                    }
                }
            }
            Thinking::AsSent | Thinking::ReasoningSplit | Thinking::ModelSelected => {}
        }
        Ok(())
    }

    fn tool_choice_fields(&self, fields: &mut Map<String, Value>) -> ApiResult<()> {
        let choice = fields.get("tool_choice").cloned().unwrap_or(Value::Null);
        let allowed = match (self.tool_choice, choice.as_str()) {
            (ToolChoice::Any, _) | (_, Some("auto")) => true,
            _ if choice.is_null() => true,
            (ToolChoice::AutoOrNone, Some("none")) => true,
            (ToolChoice::AutoOnly, Some("none")) => {
                // No tools offered is what `none` means.
                fields.remove("tools");
                fields.remove("tool_choice");
                fields.remove("parallel_tool_calls");
                true
            }
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(errors::cannot_carry("tool_choice", self.vendor))
        }
    }

    fn history_fields(&self, messages: &mut [Value]) {
        let last_user = messages.iter().rposition(|m| m["role"] == "user");
        for (i, message) in messages.iter_mut().enumerate() {
            let Some(m) = message.as_object_mut() else {
                continue;
            };
            if m.get("role").and_then(Value::as_str) != Some("assistant") {
                continue;
            }
            match self.history {
                History::Keep => {}
                History::Strip => {
                    m.remove("reasoning_content");
                }
                History::StripBeforeLastUser => {
                    if last_user.is_some_and(|u| i < u) {
                        m.remove("reasoning_content");
                    }
                }
                History::Details => {
                    if let Some(Value::String(text)) = m.remove("reasoning_content") {
                        m.insert(
                            "reasoning_details".into(),
                            json!([{"type": "reasoning.text", "text": text}]),
                        );
                    }
                }
            }
        }
    }

    /// Whether answers need rewriting to be the pivot (else they go to OpenAI clients as the
    /// vendor wrote them).
    fn rewrites_answers(&self) -> bool {
        !self.pass_through
            && (self.reasoning != Reasoning::Content || self.usage_in_choice || self.cached_at_top)
    }

    /// Whether a request needs changing for this vendor; without, the pivot goes as written
    /// (no copy of a body that may carry megabytes of images).
    fn rewrites_requests(&self) -> bool {
        self.thinking != Thinking::AsSent
            || self.tool_choice != ToolChoice::Any
            || self.history != History::Keep
    }

    /// A request to `builder` with the channel's key where this vendor wants it.
    fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
        channel: &LiveChannel,
    ) -> reqwest::RequestBuilder {
        match self.endpoints {
            Endpoints::Paths { .. } => builder.bearer_auth(channel.key()),
            Endpoints::Azure => builder.header("api-key", channel.key()),
        }
    }

    /// Makes a usage object the pivot's: cached tokens where the pivot reads them.
    fn fix_usage(&self, usage: &mut Value) {
        if !self.cached_at_top {
            return;
        }
        if let Some(cached) = usage.get("cached_tokens").and_then(Value::as_i64)
            && usage["prompt_tokens_details"]["cached_tokens"].is_null()
        {
            usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
        }
    }

    /// Makes a message or a delta the pivot's: reasoning as `reasoning_content`, and no empty
    /// ids or names on the pieces of a streamed tool call (which clients would read as a new
    /// call).
    fn fix_message(&self, message: &mut Value) {
        let Some(m) = message.as_object_mut() else {
            return;
        };
        let details = m.remove("reasoning_details");
        if let Some(Value::Array(details)) = details {
            let text: String = details.iter().filter_map(|d| d["text"].as_str()).collect();
            if !text.is_empty() {
                m.insert("reasoning_content".into(), Value::String(text));
            }
        }
        if !m.contains_key("reasoning_content")
            && let Some(Value::String(text)) = m.remove("reasoning")
        {
            m.insert("reasoning_content".into(), Value::String(text));
        }
        if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
            for call in calls.iter_mut().filter_map(Value::as_object_mut) {
                if call
                    .get("id")
                    .is_some_and(|id| id.as_str() == Some("") || id.is_null())
                {
                    call.remove("id");
                }
                if call.get("type").is_some_and(|t| t.as_str() == Some("")) {
                    call.remove("type");
                }
                if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut)
                    && f.get("name")
                        .is_some_and(|n| n.as_str() == Some("") || n.is_null())
                {
                    f.remove("name");
                }
            }
        }
    }

    /// A stream chunk made the pivot's.
    fn fix_chunk(&self, chunk: &mut Value) {
        let mut lifted = None;
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for choice in choices.iter_mut() {
                self.fix_message(&mut choice["delta"]);
                if self.usage_in_choice
                    && let Some(usage) = choice.as_object_mut().and_then(|c| c.remove("usage"))
                    && usage.is_object()
                {
                    lifted = Some(usage);
                }
            }
        }
        if let Some(usage) = lifted {
            chunk["usage"] = usage;
        }
        if chunk.get("usage").is_some_and(Value::is_object) {
            self.fix_usage(&mut chunk["usage"]);
        }
    }
}

impl Upstream for Profile {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn default_base_url(&self) -> Option<&'static str> {
        self.default_base_url
    }

    fn tokenizer_safety_permille(&self) -> i64 {
        self.safety_permille
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        // Serialised straight to bytes: the same text `to_string` writes, without going
        // through the formatter (it showed in the hot path's profile).
        let body = if self.rewrites_requests() {
            serde_json::to_vec(&self.body(pivot)?)
        } else {
            serde_json::to_vec(pivot)
        }
        .map_err(skein_core::ApiError::internal)?;
        let builder = match self.endpoints {
            Endpoints::Paths { chat, .. } => channel.post(http, chat),
            Endpoints::Azure => {
                let deployment = pivot["model"].as_str().unwrap_or("");
                http.post(azure::chat_url(&channel.base_url, deployment)?)
            }
        };
        Ok(self
            .authorized(builder, channel)
            .header("content-type", "application/json")
            .body(body))
    }

    fn serves_openai_paths(&self) -> bool {
        self.openai_paths
    }

    fn speaks_pivot(&self) -> bool {
        !self.rewrites_answers()
    }

    fn response(&self, mut body: Value, _model: &str) -> Value {
        if self.pass_through {
            return body;
        }
        if let Some(Value::Array(choices)) = body.get_mut("choices") {
            for choice in choices.iter_mut() {
                self.fix_message(&mut choice["message"]);
            }
        }
        if body.get("usage").is_some_and(Value::is_object) {
            self.fix_usage(&mut body["usage"]);
        }
        body
    }

    fn decoder(&self, _model: &str) -> Box<dyn StreamDecoder> {
        if self.pass_through {
            return Box::new(PassThrough);
        }
        Box::new(Decoder { profile: *self })
    }

    fn classify(&self, status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
        match self.class_of_body(&body) {
            Some(Class::Quota) => Attempt::Dead(format!(
                "upstream {status}: the channel's account is out of quota ({})",
                error_message(&body)
            )),
            Some(Class::Auth) => Attempt::Dead(format!("upstream {status}: {KEY_REJECTED}")),
            Some(Class::RateLimit | Class::Overloaded) => classify(
                if status < 500 { 429 } else { status },
                retry_after,
                body,
                false,
            ),
            Some(Class::ContentFilter) => {
                Attempt::Refused(if status < 400 { 400 } else { status }, body)
            }
            None if (200..300).contains(&status) => Attempt::Refused(400, body),
            None => {
                // OpenAI's own signals of an empty account, which compatible vendors reuse
                // (DeepSeek's 402).
                let (code, _) = error_codes(&body);
                let out_of_credit = status == 402
                    || (status == 429 && code.as_deref() == Some("insufficient_quota"));
                classify(status, retry_after, body, out_of_credit)
            }
        }
    }

    fn errors_in_ok(&self) -> bool {
        self.errors_in_ok
    }

    fn error_in_ok(&self, body: &[u8]) -> bool {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let nonzero = |c: &Value| c.as_i64().is_some_and(|c| c != 0);
        nonzero(&v["base_resp"]["status_code"])
            || (nonzero(&v["code"]) && v.get("choices").is_none_or(Value::is_null))
            || v["error"].is_object()
    }

    fn error_to_openai(&self, body: Bytes) -> Bytes {
        if self.pass_through {
            return body;
        }
        let filtered = self.class_of_body(&body) == Some(Class::ContentFilter);
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        if !filtered && v["error"]["message"].is_string() {
            return body;
        }
        let (code, kind) = error_codes(&body);
        let message = error_message(&body);
        let (kind, code) = if filtered {
            (
                "invalid_request_error".to_string(),
                Some("content_filter".to_string()),
            )
        } else {
            (kind.unwrap_or_else(|| "upstream_error".into()), code)
        };
        Bytes::from(
            super::openai::errors::error_value(&message, &kind, code.as_deref()).to_string(),
        )
    }

    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let builder = match self.endpoints {
            Endpoints::Paths {
                models: Some(path), ..
            } => http.get(format!("{}{path}", channel.base_url)),
            Endpoints::Paths { models: None, .. } => {
                return Err(skein_core::ApiError::bad_request(
                    "no_model_list",
                    format!(
                        "{} offers no model list; name the models by hand.",
                        self.vendor
                    ),
                    format!("{} 不提供模型列表，请手动填写模型。", self.vendor),
                ));
            }
            Endpoints::Azure => http.get(azure::models_url(&channel.base_url)?),
        };
        Ok(self.authorized(builder, channel))
    }

    fn models(&self, body: &Value) -> Vec<String> {
        ids(&body["data"], "id")
    }
}

/// A compatible vendor's stream made the pivot's, chunk by chunk (see [`Profile::fix_chunk`]).
struct Decoder {
    profile: Profile,
}

impl StreamDecoder for Decoder {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        let Some(mut chunk) = pivot::event_json(&event) else {
            // `[DONE]`, comments, keep-alives: as they came.
            return Ok(vec![event]);
        };
        if chunk["error"].is_object()
            || chunk["base_resp"]["status_code"]
                .as_i64()
                .is_some_and(|c| c != 0)
        {
            return Err(error_message(&event_payload(&event)));
        }
        self.profile.fix_chunk(&mut chunk);
        Ok(vec![pivot::data_event(&chunk)])
    }

    fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// The `data:` payload of an event, as bytes.
fn event_payload(event: &[u8]) -> Vec<u8> {
    crate::proxy::event_data(event)
        .map(String::into_bytes)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
