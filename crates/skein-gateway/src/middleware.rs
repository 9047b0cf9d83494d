//! The gateway's middleware functions, in the order a request meets them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use skein_core::ApiError;
use skein_core::auth::{AuthState, AuthUser};
use skein_core::extract::body_too_large;
use skein_core::i18n::Lang;
use skein_core::ids::new_id;
use skein_core::limit::{Decision, Quota};
use skein_core::request::{ClientIp, RequestId};
use tracing::Instrument;

use crate::Gateway;

const REQUEST_ID: &str = "x-request-id";
/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Assigns the request id and client address, runs the request inside a span carrying them,
/// and writes one log line when it finishes (never bodies, query strings or headers).
pub(crate) async fn request_context(
    State(gateway): State<Arc<Gateway>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .unwrap_or_else(new_id);
    let ip = client_ip(&req, gateway.server.trust_forwarded_for);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "<unmatched>".into());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(ClientIp(ip));

    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        user_id = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_micros() as f64 / 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, duration_ms, client_ip = %ip, "request failed");
        } else {
            tracing::info!(status, duration_ms, client_ip = %ip, "request finished");
        }
    });
    response
}

fn client_ip(req: &Request, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Renders every `/api` error in one JSON shape, in the caller's language, with the request id.
/// Errors raised by handlers carry an [`ApiError`]; errors from layers and the router
/// (404, 405, 408, 413) are plain and get translated here.
pub(crate) async fn error_envelope(req: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let is_api = req.uri().path().starts_with("/api/") || req.uri().path() == "/api";
    let response = next.run(req).await;
    if let Some(error) = response.extensions().get::<ApiError>() {
        let error = error.clone();
        return rerender(&error, lang, &request_id, response.headers());
    }
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_api && (status.is_client_error() || status.is_server_error()) && !is_json {
        let error = plain_status_error(status);
        return rerender(&error, lang, &request_id, response.headers());
    }
    response
}

fn rerender(error: &ApiError, lang: Lang, request_id: &str, old: &HeaderMap) -> Response {
    let mut response = error.render(lang, request_id);
    for (name, value) in old {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response
                .headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    response
}

fn plain_status_error(status: StatusCode) -> ApiError {
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

/// Establishes who the caller is and counts the request against the caller's rate limit.
pub(crate) async fn authenticate_and_limit(
    State(gateway): State<Arc<Gateway>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    let is_auth_route =
        req.method() == axum::http::Method::POST && path.starts_with("/api/v1/auth/");
    let state = authenticate(&gateway, req.headers()).await;
    if let AuthState::User(user) = &state {
        tracing::Span::current().record("user_id", user.user_id.as_str());
    }
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let limits = &gateway.limits;
    let (key, quota) = match (&state, is_auth_route) {
        (_, true) => (
            format!("auth:ip:{ip}"),
            Quota::per_minute(limits.auth_per_ip_per_minute),
        ),
        (AuthState::User(user), false) => (
            format!("api:user:{}", user.user_id),
            Quota::per_minute(limits.api_per_user_per_minute),
        ),
        (_, false) => (
            format!("api:ip:{ip}"),
            Quota::per_minute(limits.api_per_ip_per_minute),
        ),
    };
    req.extensions_mut().insert(state);
    match gateway.limiter.check(&key, quota, 1).await {
        Ok(decision) if !decision.allowed => {
            let wait = decision
                .retry_after
                .map(|d| d.as_secs_f64().ceil() as u64)
                .unwrap_or(1)
                .max(1);
            let mut response = ApiError::too_many_requests(wait).into_response();
            set_limit_headers(response.headers_mut(), &decision);
            response
        }
        Ok(decision) => {
            let mut response = next.run(req).await;
            set_limit_headers(response.headers_mut(), &decision);
            response
        }
        Err(error) => {
            // Fail open: losing the limiter must not take the API down with it.
            tracing::warn!(%error, "rate limiter unavailable; request allowed");
            next.run(req).await
        }
    }
}

fn set_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    let reset = decision.reset_after.as_secs_f64().ceil() as u64;
    headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(decision.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
}

async fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> AuthState {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return AuthState::Anonymous;
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return AuthState::Rejected(ApiError::invalid_token());
    };
    let claims = match gateway.jwt.verify(token) {
        Ok(claims) => claims,
        Err(error) => return AuthState::Rejected(error),
    };
    match gateway.sessions.session(&claims.sid).await {
        Ok(Some(session)) if session.active && session.user_id == claims.sub => {
            AuthState::User(AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
                role: session.role,
            })
        }
        Ok(_) => AuthState::Rejected(ApiError::invalid_token()),
        Err(error) => AuthState::Rejected(error),
    }
}
