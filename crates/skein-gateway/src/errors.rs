//! The gateway's own error codes (unrouted statuses, invalid-key floods), written once.

use axum::http::StatusCode;
use skein_core::ApiError;
use skein_core::error::body_too_large;

/// The `/api` error for a bodiless status from a router or layer, so it has the one shape.
pub(crate) fn plain_status_error(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::new(
            status,
            "route_not_found",
            "No such API route.",
            "没有这个 API 路由。",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "This route does not accept that HTTP method.",
            "该路由不支持此 HTTP 方法。",
        ),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            "timeout",
            "The request took too long and was stopped.",
            "请求处理超时，已被终止。",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
        other => ApiError::new(
            other,
            "http_error",
            format!("The request failed with HTTP status {}.", other.as_u16()),
            format!("请求失败，HTTP 状态码 {}。", other.as_u16()),
        ),
    }
}

/// 429 for an address past its invalid API keys, refused before any lookup reaches the database.
pub(crate) fn invalid_key_rate_limited(wait: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_key_rate_limited",
        format!(
            "Too many requests with invalid API keys from this address. Try again in {wait} s."
        ),
        format!("该地址使用无效 API 密钥的请求过多，请在 {wait} 秒后重试。"),
    )
    .with_retry_after(wait)
}
