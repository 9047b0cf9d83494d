//! The one error shape of `/api`: `{"error":{"code","message","details"},"request_id"}`.
//!
//! Handlers return [`ApiError`]; it carries its message in both languages. The gateway's
//! envelope middleware renders it once, in the caller's language, with the request id.

use std::borrow::Cow;

use axum::extract::rejection::{JsonDataError, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::i18n::Lang;

/// What every fallible handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

/// An error a client sees: an HTTP status, a stable machine code, a message in English and
/// Chinese, and optional structured details.
///
/// Boxed, so `Result<T, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug, Clone)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    en: Cow<'static, str>,
    zh: Cow<'static, str>,
    details: Option<Value>,
    retry_after_secs: Option<u64>,
}

/// The JSON body of every `/api` error (documented in OpenAPI).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
    /// The id of the request, as in the `X-Request-Id` header and the server's logs.
    pub request_id: String,
}

/// The `error` member of [`ErrorEnvelope`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: String,
    /// A sentence for a person, in the language of `Accept-Language` (English or Chinese).
    pub message: String,
    /// Structured context, when there is any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with any status and code, and its message in both languages.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        en: impl Into<Cow<'static, str>>,
        zh: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError(Box::new(Inner {
            status,
            code: code.into(),
            en: en.into(),
            zh: zh.into(),
            details: None,
            retry_after_secs: None,
        }))
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// A stable code clients can branch on (`email_taken`, `invalid_token`, ...).
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// Structured context (which field failed, a limit, ...); never secrets.
    pub fn details(&self) -> Option<&Value> {
        self.0.details.as_ref()
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.0.details = Some(details);
        self
    }

    /// Adds a `Retry-After` hint.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after_secs = Some(secs);
        self
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(
        code: impl Into<Cow<'static, str>>,
        en: impl Into<Cow<'static, str>>,
        zh: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, en, zh)
    }

    /// 401: no or bad credentials.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign-in required.",
            "需要登录。",
        )
    }

    /// 401: the access token is expired, tampered with, or its session has ended.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is invalid or expired. Sign in again or refresh the token.",
            "访问令牌无效或已过期，请重新登录或刷新令牌。",
        )
    }

    /// 403: signed in, but not allowed.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "You do not have permission to do this.",
            "你没有执行此操作的权限。",
        )
    }

    /// 404 for a thing (named in both languages) that does not exist or is not the caller's.
    pub fn not_found(what_en: &str, what_zh: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what_en} not found."),
            format!("{what_zh}不存在。"),
        )
    }

    /// 409: the request conflicts with what is stored (a taken email, ...).
    pub fn conflict(
        code: impl Into<Cow<'static, str>>,
        en: impl Into<Cow<'static, str>>,
        zh: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(StatusCode::CONFLICT, code, en, zh)
    }

    /// 422: a field is well-formed JSON but not an acceptable value.
    pub fn invalid_field(
        field: &str,
        en: impl Into<Cow<'static, str>>,
        zh: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            en,
            zh,
        )
        .with_details(json!({ "field": field }))
    }

    /// 429 with the seconds to wait.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many requests. Try again in {retry_after_secs} s."),
            format!("请求过于频繁，请在 {retry_after_secs} 秒后重试。"),
        )
        .with_retry_after(retry_after_secs)
    }

    /// 503: a dependency (database, cache) is unavailable; the caller may retry.
    pub fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("A dependency is unavailable ({what}). Try again shortly."),
            format!("依赖服务暂不可用（{what}），请稍后重试。"),
        )
    }

    /// 500 for a fault that is ours. The cause is logged here, once, and never sent to the
    /// client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side. Quote the request id when reporting it.",
            "服务器内部错误，反馈时请附上请求 ID。",
        )
    }

    /// The message in a language.
    pub fn message(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.0.en,
            Lang::Zh => &self.0.zh,
        }
    }

    /// The `Retry-After` hint, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.0.retry_after_secs
    }

    /// The envelope for this error, ready to serialise.
    pub fn envelope(&self, lang: Lang, request_id: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.0.code.to_string(),
                message: self.message(lang).to_string(),
                details: self.0.details.clone(),
            },
            request_id: request_id.to_string(),
        }
    }

    /// Renders the full response for a language and request id.
    pub fn render(&self, lang: Lang, request_id: &str) -> Response {
        let body = serde_json::to_vec(&self.envelope(lang, request_id)).unwrap_or_default();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.0.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Writes an error as the JSON body one vendor's SDKs parse (OpenAI's, Anthropic's,
/// Gemini's), in the caller's language.
pub type VendorErrorShape = fn(&ApiError, Lang) -> Value;

/// The error shapes of the vendor-compatible routes (`/v1`, `/v1beta`), whose clients are
/// vendors' SDKs rather than Skein's: the Relay owns those shapes, and the gateway asks it by
/// path instead of knowing them.
pub trait VendorErrors: Send + Sync {
    /// The shape the clients of `path` parse, or `None` when `path` is not a vendor route.
    fn shape_for(&self, path: &str) -> Option<VendorErrorShape>;
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.status.as_u16(),
            self.0.code,
            self.0.en
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    /// Renders in English without a request id, and keeps the error in the response's
    /// extensions so the gateway can render it again in the caller's language.
    fn into_response(self) -> Response {
        let mut response = self.render(Lang::En, "");
        response.extensions_mut().insert(self);
        response
    }
}

// ---- core's own codes ----------------------------------------------------------------------
// The refusals of core's extractors, one constructor each like every service's `errors.rs`;
// they live here because they are answered before any service sees the request.

/// 401 for a `/v1` route reached without an API key (the gateway found none to check).
pub(crate) fn api_key_required() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
        "Send an API key: Authorization: Bearer sk-...",
        "请提供 API 密钥：Authorization: Bearer sk-...",
    )
}

/// 422 for a NUL in a body or query: no field of ours has a use for it.
pub(crate) fn nul_error() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        "Text may not contain NUL characters.",
        "文本中不能包含 NUL 字符。",
    )
}

/// 422 for a JSON body with a missing field or a value of the wrong type, with serde's reason.
pub(crate) fn json_data_error(e: &JsonDataError) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
        "The request body has a missing field or a value of the wrong type.",
        "请求体缺少字段或字段类型错误。",
    )
    .with_details(json!({ "reason": e.body_text() }))
}

/// 415 for a JSON route called without `Content-Type: application/json`.
pub(crate) fn json_content_type_missing() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the body as JSON with Content-Type: application/json.",
        "请以 JSON 格式发送请求体，并设置 Content-Type: application/json。",
    )
}

/// 413 for a body over the configured limit.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "The request body is larger than this server accepts.",
        "请求体超过了服务器允许的大小。",
    )
}

/// 422 for query parameters that do not fit the route's type, with serde's reason.
pub(crate) fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        "A query parameter is missing or has the wrong type.",
        "查询参数缺失或类型错误。",
    )
    .with_details(json!({ "reason": rejection.body_text() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_one_shape_in_both_languages() {
        let e = ApiError::invalid_field("email", "Email is invalid.", "邮箱格式不正确。");
        let en = serde_json::to_value(e.envelope(Lang::En, "r1")).unwrap_or_default();
        assert_eq!(en["error"]["code"], "validation_failed");
        assert_eq!(en["error"]["message"], "Email is invalid.");
        assert_eq!(en["error"]["details"]["field"], "email");
        assert_eq!(en["request_id"], "r1");
        let zh = serde_json::to_value(e.envelope(Lang::Zh, "r1")).unwrap_or_default();
        assert_eq!(zh["error"]["message"], "邮箱格式不正确。");
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let r = ApiError::too_many_requests(7).render(Lang::En, "x");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
    }
}
