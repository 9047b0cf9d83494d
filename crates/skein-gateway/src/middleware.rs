//! The gateway's steps, in the order a request meets them; each runs `next` (the steps after
//! it) at most once. [`crate::edge`] chains them.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use skein_core::ApiError;
use skein_core::auth::{AuthState, AuthUser};
use skein_core::error::VendorErrorShape;
use skein_core::error::body_too_large;
use skein_core::i18n::Lang;
use skein_core::ids::new_id;
use skein_core::limit::{Decision, Quota};
use skein_core::request::{ClientIp, RequestId};
use tracing::Instrument;

use crate::Gateway;
use crate::errors;

const REQUEST_ID: &str = "x-request-id";

/// Requests answered, by route template (never the raw path), method and status code.
static HTTP_REQUESTS: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    &["route", "method", "code"],
);
/// Time to the response head (a stream's body may run on long after it).
static HTTP_DURATION: skein_core::metrics::Histogram = skein_core::metrics::Histogram::new(
    "skein_http_request_duration_seconds",
    "Time from a request's arrival to its response head, by route template and method.",
    &["route", "method"],
    skein_core::metrics::SECONDS_BUCKETS,
);
/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// Assigns the request id and client address, runs the request inside a span carrying them,
/// and writes one log line when it finishes (never bodies, query strings or headers).
pub(crate) async fn request_context<F, Fut>(
    gateway: &Gateway,
    mut req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
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
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(ClientIp(ip));

    // The root of the request's trace (when traces are on): a server span named by its route
    // template once routing has found it ([`record_route`]), continuing the caller's trace
    // when it sent a valid `traceparent`.
    let traceparent = req
        .headers()
        .get(skein_core::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| skein_core::trace::TraceParent::parse(v).is_some())
        .map(str::to_string);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        user_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        traceparent = traceparent.as_deref(),
        otel.kind = "server",
        otel.name = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // The trace id in every log line of the request, to go from a log line to its trace.
    if let Some(context) = skein_core::trace::of(&span) {
        span.record("trace_id", context.trace_id_hex());
    }
    let https = forwarded_https(req.headers());
    let mut response = next(req).instrument(span.clone()).await;
    // The route template, from the route that answered ([`crate::edge::Guard`], which named
    // the span by it); a request no route took is named here.
    let route = response.extensions_mut().remove::<MatchedPath>();
    if route.is_none() {
        record_route(&span, &method, UNMATCHED);
    }
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    security_headers(response.headers_mut(), https);
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_micros() as f64 / 1000.0;
    let method_label = method_label(&method);
    HTTP_REQUESTS.inc(&[route, method_label, response.status().as_str()]);
    HTTP_DURATION.observe(&[route, method_label], elapsed.as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, duration_ms, client_ip = %ip, "request failed");
        } else {
            tracing::info!(status, duration_ms, client_ip = %ip, "request finished");
        }
    });
    response
}

/// The route label of a request no route answered (a 404 outside the web app, say).
const UNMATCHED: &str = "<unmatched>";

/// Names a request's span by its route template (each field is recorded once: the text log
/// format appends a recorded value rather than replacing it).
pub(crate) fn record_route(span: &tracing::Span, method: &axum::http::Method, route: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("route", route);
    span.record("otel.name", format_args!("{method} {route}"));
}

/// The method as a metric label: the standard ones by name, anything else as `OTHER`, so a
/// client inventing methods cannot add series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Whether the proxy in front says the client spoke HTTPS (`X-Forwarded-Proto: https`).
pub(crate) fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Headers every response carries, whatever produced it (API, web app, health, errors):
/// no MIME sniffing, no full URLs in `Referer` to other origins, no camera or location
/// (the microphone only for this origin: voice input), and HSTS once the client came over
/// HTTPS (a browser ignores HSTS on plain HTTP anyway, so trusting the header costs nothing).
fn security_headers(headers: &mut HeaderMap, https: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), geolocation=(), microphone=(self)"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

fn client_ip(req: &Request, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            // The rightmost entry is the one our trusted proxy appended; entries to its left
            // were written by the client and prove nothing.
            .and_then(|v| v.split(',').next_back())
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

/// The gateway's request timeout, for every route but the relay's (`/v1`, `/v1beta`,
/// `/internal/relay`): a relayed
/// request has its upstream's own idle timeouts, and cutting it here would only hang up on an
/// answer the vendor is still writing (and charging for). File uploads (`POST /api/v1/files`)
/// and upload-session parts and completions are not cut either: a large file takes as long as the client's link needs, and the File
/// service ends an upload that stops sending instead (an idle timeout). Answers 408 when it
/// runs out.
pub(crate) async fn timeout_unless_relayed<F, Fut>(
    limit: std::time::Duration,
    req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let path = req.uri().path();
    // The Relay's typed calls from other processes (`/internal/relay/*`) are relayed too.
    let upload = req.method() == axum::http::Method::POST && path == "/api/v1/files";
    // An upload session's parts and its completion (which assembles the whole file) run as
    // long as their bytes need, with the File service's idle timeout instead.
    let session = path.starts_with("/api/v1/files/uploads/")
        && ((req.method() == axum::http::Method::PUT && path.contains("/parts/"))
            || (req.method() == axum::http::Method::POST && path.ends_with("/complete")));
    if path.starts_with("/v1/")
        || path.starts_with("/v1beta/")
        || path.starts_with("/internal/relay/")
        || upload
        || session
    {
        return next(req).await;
    }
    match tokio::time::timeout(limit, next(req)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// Renders every `/api` error in one JSON shape, in the caller's language, with the request id.
/// Errors raised by handlers carry an [`ApiError`]; errors from layers and the router
/// (404, 405, 408, 413) are plain and get translated here.
pub(crate) async fn error_envelope<F, Fut>(gateway: &Gateway, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let lang = Lang::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let path = req.uri().path();
    let is_api = path.starts_with("/api/") || path == "/api";
    // A vendor route's errors take the shape its vendor's SDKs parse; the Relay owns those
    // shapes. Without it, they get Skein's own envelope.
    let vendor = gateway
        .vendor_errors
        .as_ref()
        .and_then(|shapes| shapes.shape_for(path));
    let internal = path.starts_with(skein_core::internal::PREFIX);
    let mut response = next(req).await;
    // A re-rendered answer keeps the route template the edge labels its metrics with.
    let route = response.extensions_mut().remove::<MatchedPath>();
    let envelope = Envelope {
        lang,
        request_id: &request_id,
        vendor,
        internal,
        is_api,
    };
    let mut response = envelope.render(response);
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// How a request's errors are rendered.
struct Envelope<'a> {
    lang: Lang,
    request_id: &'a str,
    /// The vendor's error shape, on a vendor route.
    vendor: Option<VendorErrorShape>,
    /// Another Skein process asked (`/internal`).
    internal: bool,
    /// Under `/api`.
    is_api: bool,
}

impl Envelope<'_> {
    /// The answer with its error, if any, rendered in the caller's shape and language.
    fn render(&self, response: Response) -> Response {
        let Envelope {
            lang,
            request_id,
            vendor,
            internal,
            is_api,
        } = *self;
        if let Some(error) = response.extensions().get::<ApiError>() {
            let error = error.clone();
            if internal {
                // Another Skein process reads this: it gets every language, to rebuild the
                // error.
                return skein_core::internal::render_error(&error, lang, request_id);
            }
            return match vendor {
                Some(vendor) => rerender_as(vendor, &error, lang, request_id, response.headers()),
                None => rerender(&error, lang, request_id, response.headers()),
            };
        }
        let failed = response.status().is_client_error() || response.status().is_server_error();
        if let Some(vendor) = vendor
            && failed
            && !is_json(response.headers())
        {
            let error = errors::plain_status_error(response.status());
            return rerender_as(vendor, &error, lang, request_id, response.headers());
        }
        let status = response.status();
        if is_api && failed && !is_json(response.headers()) {
            let error = errors::plain_status_error(status);
            return rerender(&error, lang, request_id, response.headers());
        }
        response
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Whether a path is a vendor-compatible route (`/v1`, `/v1beta`): an API key is the
/// credential there, and errors take the shape of the vendor's SDKs.
fn is_vendor_route(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/v1beta/")
}

fn rerender_as(
    shape: VendorErrorShape,
    error: &ApiError,
    lang: Lang,
    request_id: &str,
    old: &HeaderMap,
) -> Response {
    let status = error.status();
    let body = shape(error, lang);
    let mut response = (status, axum::Json(body)).into_response();
    for (name, value) in old {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response
                .headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
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

/// Establishes who the caller is and counts the request against the caller's rate limit.
pub(crate) async fn authenticate_and_limit<F, Fut>(
    gateway: &Gateway,
    mut req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let path = req.uri().path();
    if is_vendor_route(path) {
        return authenticate_key_and_limit(gateway, req, next).await;
    }
    if !path.starts_with("/api/") {
        return next(req).await;
    }
    let is_auth_route =
        req.method() == axum::http::Method::POST && path.starts_with("/api/v1/auth/");
    let (state, expiry) = authenticate(gateway, req.headers()).await;
    if let Some(expiry) = expiry {
        req.extensions_mut().insert(expiry);
    }
    if let AuthState::User(user) = &state {
        tracing::Span::current().record("user_id", user.user_id.as_str());
    }
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.bucket())
        .unwrap_or_else(|| Ipv4Addr::UNSPECIFIED.to_string());
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
    let auditor = match (&state, &gateway.audit) {
        (AuthState::User(user), Some(log))
            if user.role >= skein_core::auth::Role::Admin
                && is_admin_change(req.method(), req.uri().path()) =>
        {
            Some((user.clone(), log.clone()))
        }
        _ => None,
    };
    req.extensions_mut().insert(state);
    match auditor {
        Some((user, log)) => audited(gateway, user, log, &key, quota, req, next).await,
        None => run_limited(gateway, &key, quota, req, next).await,
    }
}

/// Whether a request is a change only administrators make: everything under `/api/v1/admin`
/// and the channels (whose routes are admin-only) except reads.
fn is_admin_change(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && (path.starts_with("/api/v1/admin/")
            || path == "/api/v1/channels"
            || path.starts_with("/api/v1/channels/"))
}

/// Longest request body kept in an audit entry, in bytes.
const AUDIT_DETAIL_MAX: usize = 4096;

/// Runs an administrator's change and records it in the audit log with its answer's status:
/// who, the route, the path, the body with its secrets replaced, the request id and address.
async fn audited<F, Fut>(
    gateway: &Gateway,
    user: AuthUser,
    log: Arc<dyn skein_core::api::AuditLog>,
    key: &str,
    quota: Quota,
    req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, gateway.server.body_limit_bytes).await else {
        return body_too_large().into_response();
    };
    let action = format!(
        "{} {}",
        parts.method,
        parts
            .extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or(parts.uri.path())
    );
    let target = parts.uri.path().to_string();
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let ip = parts
        .extensions
        .get::<ClientIp>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let detail = serde_json::from_slice(&bytes).ok().map(redacted);
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let mut response = run_limited(gateway, key, quota, req, next).await;
    let before = response
        .extensions_mut()
        .remove::<skein_core::api::AuditBefore>()
        .map(|b| redacted(b.0));
    log.record(skein_core::api::AuditEntry {
        actor_id: user.user_id,
        actor_role: user.role.as_str().to_string(),
        action,
        target,
        detail,
        before,
        status: response.status().as_u16(),
        request_id,
        ip,
    })
    .await;
    response
}

/// A JSON value as text with every secret's value replaced (any field whose name says key,
/// password, secret or token), cut to [`AUDIT_DETAIL_MAX`].
fn redacted(mut value: serde_json::Value) -> String {
    fn redact(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (name, field) in map.iter_mut() {
                    let name = name.to_ascii_lowercase();
                    if ["key", "password", "secret", "token", "authorization"]
                        .iter()
                        .any(|s| name.contains(s))
                        && !name.ends_with("_id")
                    {
                        *field = serde_json::Value::String("[redacted]".into());
                    } else {
                        redact(field);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
            _ => {}
        }
    }
    redact(&mut value);
    let mut text = value.to_string();
    if text.len() > AUDIT_DETAIL_MAX {
        let mut end = AUDIT_DETAIL_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Charges one request to `key` and runs it, or answers 429; sets `X-RateLimit-*` either way.
async fn run_limited<F, Fut>(
    gateway: &Gateway,
    key: &str,
    quota: Quota,
    mut req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    // A socket carries many requests after this one: its handler counts each. Only upgrades
    // get the handle, so plain requests allocate nothing more.
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if upgrade {
        req.extensions_mut()
            .insert(skein_core::limit::RequestQuota::new(
                gateway.limiter.clone(),
                key,
                quota,
            ));
    }
    match gateway.limiter.check(key, quota, 1).await {
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
            let mut response = next(req).await;
            set_limit_headers(response.headers_mut(), &decision);
            response
        }
        Err(error) => {
            // Fail open: losing the limiter must not take the API down with it.
            tracing::warn!(%error, "rate limiter unavailable; request allowed");
            next(req).await
        }
    }
}

/// The vendor-compatible routes: an API key is the credential, its own rpm (or the server's
/// per-key default) the limit.
async fn authenticate_key_and_limit<F, Fut>(
    gateway: &Gateway,
    mut req: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let ip = req
        .extensions()
        .get::<ClientIp>()
        .map(|c| c.0)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let state = match (&gateway.keys, api_key(&req)) {
        (Some(keys), Some(secret)) => {
            // Wrong keys cost their address: past the bound, keys from there are refused
            // before the directory is asked, so a flood of guesses never reaches the database
            // (the directory caches valid keys only), while other addresses are untouched.
            let bad_key = format!("badkey:ip:{}", skein_core::request::ip_bucket(ip));
            let quota = Quota::per_minute(gateway.limits.invalid_keys_per_ip_per_minute);
            match gateway.limiter.check(&bad_key, quota, 0).await {
                Ok(probe) if !probe.allowed => {
                    let wait = probe
                        .retry_after
                        .map_or(1, |d| d.as_secs_f64().ceil() as u64)
                        .max(1);
                    tracing::warn!(client_ip = %ip, "invalid API keys from this address; refused before lookup");
                    return errors::invalid_key_rate_limited(wait).into_response();
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "rate limiter unavailable; key check allowed"),
            }
            match keys.authenticate_key(&secret, ip).await {
                Ok(key) => AuthState::Key(key),
                Err(error) => {
                    if error.status() == StatusCode::UNAUTHORIZED
                        && let Err(error) = gateway.limiter.check(&bad_key, quota, 1).await
                    {
                        tracing::warn!(%error, "rate limiter unavailable");
                    }
                    AuthState::Rejected(error)
                }
            }
        }
        _ => AuthState::Anonymous,
    };
    let limit = match &state {
        AuthState::Key(key) => {
            tracing::Span::current().record("user_id", key.user_id.as_str());
            Some((
                format!("key:{}", key.key_id),
                key.rpm_limit
                    .unwrap_or(gateway.limits.api_per_key_per_minute),
            ))
        }
        _ => None,
    };
    req.extensions_mut().insert(state);
    let Some((key, per_minute)) = limit else {
        return next(req).await;
    };
    run_limited(gateway, &key, Quota::per_minute(per_minute), req, next).await
}

/// The key where each vendor's SDK sends it: `Authorization: Bearer` (OpenAI, and Anthropic's
/// SDK too), the `openai-insecure-api-key.<key>` WebSocket subprotocol (OpenAI's Realtime in a
/// browser), `x-api-key` (Anthropic), `x-goog-api-key` or `?key=` (Gemini).
fn api_key(req: &Request) -> Option<String> {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let named = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("key="))
            .map(|v| v.to_string())
    });
    // Browsers cannot set headers on a WebSocket: OpenAI's Realtime clients offer the key as
    // an `openai-insecure-api-key.<key>` subprotocol instead (never echoed back).
    let subprotocol = || {
        headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix("openai-insecure-api-key."))
    };
    bearer
        .or_else(subprotocol)
        .or_else(|| named("x-api-key"))
        .or_else(|| named("x-goog-api-key"))
        .map(|v| v.trim().to_string())
        .or(query)
        .filter(|v| !v.is_empty())
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

/// Who sent a request, and when its access token expires. The token comes from
/// `Authorization: Bearer`, or on a WebSocket upgrade without that header from the
/// `skein.bearer.<token>` subprotocol (browsers cannot set headers on a WebSocket).
async fn authenticate(
    gateway: &Gateway,
    headers: &HeaderMap,
) -> (AuthState, Option<skein_core::auth::TokenExpiry>) {
    let token = match headers.get(header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim),
        None => match socket_token(headers) {
            Some(token) => Some(token),
            None => return (AuthState::Anonymous, None),
        },
    };
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return (AuthState::Rejected(ApiError::invalid_token()), None);
    };
    let claims = match gateway.jwt.verify(token) {
        Ok(claims) => claims,
        Err(error) => return (AuthState::Rejected(error), None),
    };
    let expiry = skein_core::auth::TokenExpiry(claims.exp);
    match gateway.sessions.session(&claims.sid).await {
        Ok(Some(session)) if session.active && session.user_id == claims.sub => (
            AuthState::User(AuthUser {
                user_id: claims.sub,
                session_id: claims.sid,
                role: session.role,
            }),
            Some(expiry),
        ),
        Ok(_) => (AuthState::Rejected(ApiError::invalid_token()), None),
        Err(error) => (AuthState::Rejected(error), None),
    }
}

/// The access token offered as a `skein.bearer.<token>` subprotocol of a WebSocket upgrade.
fn socket_token(headers: &HeaderMap) -> Option<&str> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(skein_core::auth::WS_TOKEN_PROTOCOL))
}
