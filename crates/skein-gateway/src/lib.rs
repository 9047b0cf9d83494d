//! Skein's edge: every request passes here before any service sees it.
//!
//! In order, outermost first: request id and request log, CORS, the error envelope (every
//! `/api` error in one shape and the caller's language), the body limit, then, once routing
//! has found the route, the timeout and authentication plus rate limiting. Health checks
//! (`/healthz`, `/readyz`) live here too.
//!
//! **Architecture Invariant:** the gateway knows no service's tables. It reaches sessions
//! through [`SessionDirectory`] and limits through [`RateLimiter`].

pub mod bus;
mod edge;
pub(crate) mod errors;
pub mod health;
pub mod limit;
mod middleware;
pub mod runtime;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use skein_core::api::{KeyDirectory, SessionDirectory};
use skein_core::auth::JwtKeys;
use skein_core::config::{LimitsConfig, ServerConfig};
use skein_core::error::VendorErrors;
use skein_core::limit::RateLimiter;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use health::{Probe, ProbeFn};

/// Everything the edge needs, shared by all requests.
pub struct Gateway {
    /// The HTTP server's settings (limits, CORS, proxies).
    pub server: ServerConfig,
    /// Rate limits.
    pub limits: LimitsConfig,
    /// Verifies access tokens.
    pub jwt: JwtKeys,
    /// Whether a token's session still stands.
    pub sessions: Arc<dyn SessionDirectory>,
    /// Checks API keys on the vendor-compatible routes (`/v1`, `/v1beta`), when the Relay runs.
    pub keys: Option<Arc<dyn KeyDirectory>>,
    /// Where rate-limit state lives.
    pub limiter: Arc<dyn RateLimiter>,
    /// What `/readyz` checks.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Where administrators' changes are recorded (the User service), when it runs here.
    pub audit: Option<Arc<dyn skein_core::api::AuditLog>>,
    /// The error shapes of the vendor-compatible routes (the Relay's); without them those
    /// routes' errors take Skein's own envelope.
    pub vendor_errors: Option<Arc<dyn VendorErrors>>,
}

impl Gateway {
    /// Wraps the services' routes with the edge layers and adds the health checks.
    ///
    /// The edge is one service in front of the routes (see [`edge::Edge`]) rather than a
    /// layer per step on every route: axum boxes each route layer and clones the whole boxed
    /// stack below it on every request, which cost more than the steps themselves. Only the
    /// steps whose answers carry the matched route template (timeout, authentication, rate
    /// limit, audit) are a route layer.
    pub fn wrap(self: Arc<Self>, services: Router) -> Router {
        let timeout = Duration::from_secs(self.server.request_timeout_secs);
        let cors = cors_layer(&self.server.cors_origins);
        let gateway = self.clone();
        let routes = services
            .merge(health::routes(self.clone()))
            .layer(tower::layer::layer_fn(move |route| {
                edge::Guard::new(gateway.clone(), timeout, route)
            }));
        let body_limit = DefaultBodyLimit::max(self.server.body_limit_bytes);
        Router::new().fallback_service(edge::Edge::new(self, routes, cors, body_limit))
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderName::from_static("x-ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(3600)),
    )
}
