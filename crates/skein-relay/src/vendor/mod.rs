//! The vendors: one module per upstream wire format and client format, behind one
//! [`Upstream`] trait. A module owns everything about its vendor — the client's request in
//! the vendor's format to the pivot (OpenAI chat completions) and the pivot's answer back, the
//! pivot request to the vendor's HTTP request (URL, authentication, body) and the vendor's
//! answer, whole or streamed, back to the pivot, what a vendor's error means for routing
//! ([`Attempt`]), and the error shapes its clients parse. Adding a vendor is a module here and
//! a [`ChannelKind`] variant, wired in [`adapter`] (the compiler lists every match to extend).
//!
//! This module depends on [`crate::channels`] and [`crate::proxy`] only; sending lives in
//! [`crate::upstream`], which depends on it, never the other way round.

pub mod anthropic;
pub mod compat;
pub mod dashscope;
pub mod gemini;
pub mod ollama;
pub mod openai;
pub mod pivot;

use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;
use skein_core::error::{VendorErrorShape, VendorErrors};

use crate::channels::{ChannelKind, LiveChannel};

/// What an upstream attempt came to.
pub enum Attempt {
    /// A 2xx answer to stream or read.
    Ok(reqwest::Response),
    /// Worth trying another channel: connect error, timeout, 429, 5xx. The reason is logged.
    Retry(String),
    /// The upstream refused the request itself (4xx other than 429): the client should see it.
    Refused(u16, Bytes),
    /// The channel itself is unusable (its key is rejected, its account is out of quota):
    /// disable it and try another.
    Dead(String),
}

/// One upstream wire format.
pub trait Upstream: Send + Sync {
    /// The channel kind it serves.
    fn kind(&self) -> ChannelKind;

    /// The vendor's base URL, for channels that name none (Azure has none: each resource has
    /// its own).
    fn default_base_url(&self) -> Option<&'static str>;

    /// How much more than o200k the vendor's tokenizer may count, in per-mille: the hold's
    /// safety factor for prompts sent to it (see [`crate::estimate`]).
    fn tokenizer_safety_permille(&self) -> i64;

    /// Whether the base URL answers OpenAI's own paths with OpenAI's bodies, so the
    /// embeddings, completions, images, audio and rerank routes may go there too.
    fn serves_openai_paths(&self) -> bool {
        false
    }

    /// Whether remote images must be fetched and sent inline (the vendor takes no URLs).
    fn inlines_images(&self) -> bool {
        false
    }

    /// The HTTP request for a pivot request whose `model` is already the upstream's name.
    /// Fails with a 400 naming a field the vendor cannot express.
    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder>;

    /// The request for a body already in this vendor's own format (a client of the same
    /// vendor), sent as the client wrote it with only the model mapped, so nothing is lost to
    /// the pivot. `None` when the adapter has no such path.
    fn native_request(
        &self,
        _http: &reqwest::Client,
        _channel: &LiveChannel,
        _body: &Value,
        _model: &str,
        _stream: bool,
    ) -> Option<ApiResult<reqwest::RequestBuilder>> {
        None
    }

    /// Whether the vendor's answers are already the pivot format (OpenAI's), so they can reach
    /// OpenAI clients byte for byte.
    fn speaks_pivot(&self) -> bool {
        false
    }

    /// Whether the vendor may report an error in a 2xx answer (a code in its body), so a
    /// whole JSON answer is read and checked with [`Upstream::error_in_ok`] before it counts
    /// as an answer.
    fn errors_in_ok(&self) -> bool {
        false
    }

    /// Whether a 2xx body is in fact the vendor's error (then [`Upstream::classify`] says
    /// what it means).
    fn error_in_ok(&self, _body: &[u8]) -> bool {
        false
    }

    /// A whole (non-streamed) answer as a pivot chat completion.
    fn response(&self, body: Value, model: &str) -> Value;

    /// A decoder for a streamed answer to `model`.
    fn decoder(&self, model: &str) -> Box<dyn StreamDecoder>;

    /// What a non-2xx answer means: retry elsewhere, refuse the request, or a dead channel.
    /// The default reads OpenAI's error body: 402, or 429 with code `insufficient_quota`, is an
    /// account out of credit.
    fn classify(&self, status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
        let error = error_object(&body);
        let out_of_credit = status == 402
            || (status == 429 && error["code"].as_str() == Some("insufficient_quota"));
        classify(status, retry_after, body, out_of_credit)
    }

    /// A vendor error body in OpenAI's shape (`{"error": {"message", "type", ...}}`), which the
    /// client-side conversions read.
    fn error_to_openai(&self, body: Bytes) -> Bytes;

    /// The request that lists the models an account can use.
    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder>;

    /// The model ids in the answer to [`Upstream::models_request`].
    fn models(&self, body: &Value) -> Vec<String>;
}

/// Turns a vendor's stream into pivot server-sent events (`data: {chunk}`, `data: [DONE]`).
pub trait StreamDecoder: Send {
    /// The pivot events for one upstream event; `Err` when the upstream reported an error
    /// inside the stream (it will not finish).
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String>;

    /// The pivot events owed once the upstream stream ended cleanly.
    fn finish(&mut self) -> Vec<Bytes>;

    /// Whether the upstream streams newline-delimited JSON (one object a line) instead of
    /// server-sent events, so the stream is split at each line.
    fn ndjson(&self) -> bool {
        false
    }

    /// The usage known so far when the stream broke off (vendors that report running totals),
    /// so a partial answer is billed from the vendor's count rather than an estimate.
    fn partial(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}

/// The adapter of a channel kind: the one place a new kind is wired to its module.
pub fn adapter(kind: ChannelKind) -> &'static dyn Upstream {
    match kind {
        ChannelKind::OpenAi => &compat::profiles::OPENAI,
        ChannelKind::Azure => &compat::profiles::AZURE,
        ChannelKind::Anthropic => &anthropic::Anthropic,
        ChannelKind::Gemini => &gemini::Gemini,
        ChannelKind::DeepSeek => &compat::profiles::DEEPSEEK,
        ChannelKind::DashScope => &compat::profiles::DASHSCOPE,
        ChannelKind::Zhipu => &compat::profiles::ZHIPU,
        ChannelKind::Moonshot => &compat::profiles::MOONSHOT,
        ChannelKind::SiliconFlow => &compat::profiles::SILICONFLOW,
        ChannelKind::Volcengine => &compat::profiles::VOLCENGINE,
        ChannelKind::MiniMax => &compat::profiles::MINIMAX,
        ChannelKind::Hunyuan => &compat::profiles::HUNYUAN,
        ChannelKind::Qianfan => &compat::profiles::QIANFAN,
        ChannelKind::Spark => &compat::profiles::SPARK,
        ChannelKind::Ollama => &ollama::Ollama,
        ChannelKind::DashScopeNative => &dashscope::DashScopeNative,
    }
}

/// The error shapes of the vendor-compatible routes, chosen by path (the gateway renders
/// errors raised before or outside a handler through this): Gemini's under `/v1beta` and for
/// `/v1/models/{model}:method`, Anthropic's under `/v1/messages`, OpenAI's elsewhere under
/// `/v1`.
pub struct ErrorShapes;

impl VendorErrors for ErrorShapes {
    fn shape_for(&self, path: &str) -> Option<VendorErrorShape> {
        if path.starts_with("/v1beta/") || (path.starts_with("/v1/models/") && path.contains(':')) {
            Some(gemini::errors::api_error)
        } else if path.starts_with("/v1/messages") {
            Some(anthropic::errors::api_error)
        } else if path.starts_with("/v1/") {
            Some(openai::errors::api_error)
        } else {
            None
        }
    }
}

/// How a dead channel's reason says its key was rejected (rather than its account emptied):
/// such a reason is confirmed with the key itself before the channel is disabled.
pub const KEY_REJECTED: &str = "the channel's key was rejected";

/// The rules every vendor shares: a rejected key (401/403) or an account out of credit (which
/// the adapter recognises in its vendor's error body) is a dead channel; 429 and 5xx
/// (Anthropic's 529 overloaded included) are worth another channel; any other 4xx is the
/// request's fault. Adapters read structured fields (codes, statuses, the start of a
/// vendor-written message), never a search of the whole body, which can echo what the client
/// sent: a client must not be able to disable a channel by writing a vendor's phrase.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: Bytes,
    out_of_credit: bool,
) -> Attempt {
    if status == 401 || status == 403 {
        return Attempt::Dead(format!("upstream {status}: {KEY_REJECTED}"));
    }
    if (300..400).contains(&status) {
        // Not followed (the key would go to another host): this channel cannot serve.
        return Attempt::Retry(format!("upstream {status}: a redirect, not followed"));
    }
    if out_of_credit {
        // No retry helps until someone pays.
        return Attempt::Dead(format!(
            "upstream {status}: the channel's account is out of quota"
        ));
    }
    if status == 429 || status >= 500 {
        return Attempt::Retry(match retry_after {
            Some(after) => format!("upstream {status} (retry-after {after})"),
            None => format!("upstream {status}"),
        });
    }
    Attempt::Refused(status, body)
}

/// The `error` object of a vendor's error body (Google's may come as a one-item array), or
/// `Null`.
pub fn error_object(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    if v.is_array() {
        v[0]["error"].clone()
    } else {
        v["error"].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(a: &Attempt) -> bool {
        matches!(a, Attempt::Dead(_))
    }

    #[test]
    fn every_kind_has_its_adapter() {
        for kind in ChannelKind::ALL {
            assert_eq!(adapter(kind).kind(), kind);
        }
    }

    #[test]
    fn errors_are_classified_from_structured_fields_only() {
        let openai = adapter(ChannelKind::OpenAi);
        let quota = Bytes::from(
            r#"{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}"#,
        );
        assert!(dead(&openai.classify(429, None, quota)));
        // A 400 that echoes the client's words is the request's fault, whatever they say.
        let echo = Bytes::from(
            r#"{"error": {"message": "Invalid value: 'insufficient_quota'.", "type": "invalid_request_error", "code": null}}"#,
        );
        assert!(matches!(
            openai.classify(400, None, echo),
            Attempt::Refused(400, _)
        ));
        assert!(
            matches!(openai.classify(429, Some("2"), Bytes::new()), Attempt::Retry(r) if r.contains("retry-after 2"))
        );

        let anthropic = adapter(ChannelKind::Anthropic);
        let credit = Bytes::from(
            r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "Your credit balance is too low to access the Anthropic API."}}"#,
        );
        assert!(dead(&anthropic.classify(400, None, credit)));
        let echo = Bytes::from(
            r#"{"type": "error", "error": {"type": "invalid_request_error", "message": "messages.0: Your credit balance is too low"}}"#,
        );
        assert!(matches!(
            anthropic.classify(400, None, echo),
            Attempt::Refused(..)
        ));
        let overloaded = Bytes::from(
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        );
        assert!(matches!(
            anthropic.classify(529, None, overloaded),
            Attempt::Retry(_)
        ));

        let gemini = adapter(ChannelKind::Gemini);
        let bad_key = Bytes::from(
            r#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}"#,
        );
        assert!(dead(&gemini.classify(400, None, bad_key)));
        let billing = Bytes::from(
            r#"[{"error": {"code": 400, "message": "Enable billing.", "status": "FAILED_PRECONDITION"}}]"#,
        );
        assert!(dead(&gemini.classify(400, None, billing)));
        let echo = Bytes::from(
            r#"{"error": {"code": 400, "message": "Invalid value at 'x' (API_KEY_INVALID FAILED_PRECONDITION)", "status": "INVALID_ARGUMENT"}}"#,
        );
        assert!(matches!(
            gemini.classify(400, None, echo),
            Attempt::Refused(..)
        ));
        assert!(matches!(
            gemini.classify(429, None, Bytes::new()),
            Attempt::Retry(_)
        ));
    }

    #[test]
    fn vendor_routes_get_their_vendors_error_shapes() {
        use skein_core::ApiError;
        use skein_core::i18n::Lang;
        let error = ApiError::not_found("Model", "模型");
        let render = |path: &str| {
            ErrorShapes
                .shape_for(path)
                .map(|shape| shape(&error, Lang::En))
        };
        let openai = render("/v1/chat/completions").unwrap_or_default();
        assert_eq!(openai["error"]["type"], "not_found_error");
        assert_eq!(openai["error"]["code"], error.code());
        assert!(openai["error"]["param"].is_null());
        // A field's error names it where OpenAI does.
        let field = crate::errors::cannot_carry("mask", "DashScope");
        let named = ErrorShapes
            .shape_for("/v1/images/generations")
            .map(|shape| shape(&field, Lang::En))
            .unwrap_or_default();
        assert_eq!(named["error"]["param"], "mask");
        let anthropic = render("/v1/messages").unwrap_or_default();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "not_found_error");
        for path in [
            "/v1beta/models/m:generateContent",
            "/v1/models/m:generateContent",
        ] {
            let gemini = render(path).unwrap_or_default();
            assert_eq!(gemini["error"]["status"], "NOT_FOUND", "{path}");
            assert_eq!(gemini["error"]["code"], 404, "{path}");
        }
        assert_eq!(
            render("/v1/models").unwrap_or_default()["error"]["type"],
            "not_found_error"
        );
        assert!(render("/api/v1/keys").is_none());
        let zh = ErrorShapes
            .shape_for("/v1/messages")
            .map(|shape| shape(&error, Lang::Zh))
            .unwrap_or_default();
        assert_eq!(zh["error"]["message"], error.message(Lang::Zh));
    }
}
