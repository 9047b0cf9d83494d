//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Gateway;

/// How long one dependency may take to answer a readiness check.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A dependency `/readyz` checks.
#[async_trait]
pub trait Probe: Send + Sync {
    /// The name shown in `/readyz`.
    fn name(&self) -> &str;
    /// Ok when reachable; the error says why not.
    async fn check(&self) -> Result<(), String>;
}

/// Boxed future a [`ProbeFn`] returns.
pub type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A probe from a name and a closure.
pub struct ProbeFn<F> {
    name: String,
    check: F,
}

impl<F> ProbeFn<F>
where
    F: Fn() -> ProbeFuture + Send + Sync,
{
    /// A probe named `name` that runs `check`.
    pub fn new(name: impl Into<String>, check: F) -> Self {
        ProbeFn {
            name: name.into(),
            check,
        }
    }
}

#[async_trait]
impl<F> Probe for ProbeFn<F>
where
    F: Fn() -> ProbeFuture + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Result<(), String> {
        (self.check)().await
    }
}

pub(crate) fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(gateway)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "alive" }))
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let mut checks = Map::new();
    let mut ready = true;
    let limiter = gateway.limiter.clone();
    let limiter_result = tokio::time::timeout(PROBE_TIMEOUT, limiter.ping())
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    for probe in &gateway.probes {
        let result = tokio::time::timeout(PROBE_TIMEOUT, probe.check())
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r);
        ready &= result.is_ok();
        checks.insert(probe.name().to_string(), outcome(result));
    }
    ready &= limiter_result.is_ok();
    checks.insert(
        format!("rate_limiter_{}", limiter.backend()),
        outcome(limiter_result),
    );
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ready { "ready" } else { "not_ready" };
    (
        status,
        axum::Json(json!({ "status": word, "checks": checks })),
    )
}

fn outcome(result: Result<(), String>) -> Value {
    match result {
        Ok(()) => Value::from("ok"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Value::from(format!("error: {e}"))
        }
    }
}
