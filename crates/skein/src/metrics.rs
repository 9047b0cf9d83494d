//! `GET /metrics`: the process's Prometheus metrics, for a scraper holding
//! `server.metrics_token`.
//!
//! Counters and histograms are recorded where things happen (the gateway's request log, the
//! Relay's settle, the Billing API) into `skein_core::metrics`; what is a current value
//! rather than a count (pool sizes, dependency health, breaker states, memory) is read here
//! at scrape time. Without a token configured the route does not exist: nothing about the
//! process is public by default, and the token is not the internal one (a scraper must not
//! be able to call the services' internal APIs).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use skein_core::limit::RateLimiter;
use skein_core::metrics::Text;
use skein_core::secret::Secret;
use skein_db::Db;

/// How long a dependency may take to answer a scrape's health check.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What a scrape reads.
pub struct Sources {
    /// The database pool.
    pub db: Db,
    /// The pool's configured ceiling.
    pub db_max_connections: u32,
    /// The rate limiter (Redis when configured).
    pub limiter: Arc<dyn RateLimiter>,
    /// The runtime report's gauges and process figures.
    pub runtime: Arc<skein_gateway::runtime::Runtime>,
    /// The Relay, when it runs here: its channels' circuit states.
    pub relay: Option<Arc<skein_relay::RelayService>>,
    /// The services this process runs, for `skein_build_info`.
    pub services: String,
    /// When the process started, for `process_start_time_seconds`.
    pub started: SystemTime,
}

/// `/metrics` behind `token`.
pub fn routes(sources: Arc<Sources>, token: Secret) -> Router {
    let routes = Router::new()
        .route("/metrics", get(scrape))
        .with_state(sources);
    skein_core::internal::guard(routes, token)
}

async fn scrape(State(sources): State<Arc<Sources>>) -> impl IntoResponse {
    let mut out = Text::default();
    build_info(&mut out, &sources.services);
    process(&mut out, &sources);
    database(&mut out, &sources).await;
    redis(&mut out, sources.limiter.as_ref()).await;
    if let Some(relay) = &sources.relay {
        circuits(&mut out, relay);
        balances(&mut out, relay);
    }
    skein_core::metrics::registry().render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
}

fn build_info(out: &mut Text, services: &str) {
    out.family(
        "skein_build_info",
        "Always 1; the labels say which build runs and which services this process serves.",
        "gauge",
    );
    out.sample(
        "skein_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            (
                "revision",
                option_env!("SKEIN_GIT_REVISION").unwrap_or("unknown"),
            ),
            ("services", services),
        ],
        1.0,
    );
}

fn process(out: &mut Text, sources: &Sources) {
    let report = sources.runtime.report();
    let started = sources
        .started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        started,
    );
    if let Some(rss) = report.rss_bytes {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss as f64,
        );
    }
    if let Some(fds) = report.open_fds {
        out.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            fds as f64,
        );
    }
    if let Some(threads) = report.threads {
        out.gauge("process_threads", "Number of OS threads.", threads as f64);
    }
    out.gauge(
        "skein_tokio_tasks",
        "Tokio tasks alive (connections, streams, background work).",
        report.tasks as f64,
    );
    if let Some(running) = report.gauges.get("chat.running_answers") {
        out.gauge(
            "skein_chat_generations_in_flight",
            "Chat answers being written by this process now.",
            *running as f64,
        );
    }
    out.family(
        "skein_runtime_entries",
        "Entries in each cache, map and pool the services report (the admin runtime report's gauges).",
        "gauge",
    );
    for (name, value) in &report.gauges {
        out.sample(
            "skein_runtime_entries",
            &[("name", name.as_str())],
            *value as f64,
        );
    }
}

async fn database(out: &mut Text, sources: &Sources) {
    let pool = sources.db.pool();
    let size = f64::from(pool.size());
    let idle = pool.num_idle() as f64;
    out.family(
        "skein_db_pool_connections",
        "Database pool connections by state.",
        "gauge",
    );
    out.sample("skein_db_pool_connections", &[("state", "idle")], idle);
    out.sample(
        "skein_db_pool_connections",
        &[("state", "in_use")],
        (size - idle).max(0.0),
    );
    out.gauge(
        "skein_db_pool_max_connections",
        "The database pool's configured ceiling.",
        f64::from(sources.db_max_connections),
    );
    let backend = match sources.db.backend() {
        skein_db::Backend::Sqlite => "sqlite",
        skein_db::Backend::Postgres => "postgres",
    };
    let up = matches!(
        tokio::time::timeout(PING_TIMEOUT, sources.db.ping()).await,
        Ok(Ok(()))
    );
    out.family(
        "skein_db_up",
        "1 when the database answered a ping within 2 seconds at this scrape.",
        "gauge",
    );
    out.sample(
        "skein_db_up",
        &[("backend", backend)],
        if up { 1.0 } else { 0.0 },
    );
}

async fn redis(out: &mut Text, limiter: &dyn RateLimiter) {
    if limiter.backend() != "redis" {
        return;
    }
    let up = matches!(
        tokio::time::timeout(PING_TIMEOUT, limiter.ping()).await,
        Ok(Ok(()))
    );
    out.gauge(
        "skein_redis_up",
        "1 when Redis answered a ping within 2 seconds at this scrape.",
        if up { 1.0 } else { 0.0 },
    );
}

fn circuits(out: &mut Text, relay: &skein_relay::RelayService) {
    out.family(
        "skein_relay_channel_circuit_state",
        "Circuit breaker of each enabled channel on this instance: 0 closed, 1 half-open (one trial request), 2 open (no traffic).",
        "gauge",
    );
    for (id, name, state) in relay.channel_circuits() {
        let value = match state {
            "open" => 2.0,
            "half_open" => 1.0,
            _ => 0.0,
        };
        out.sample(
            "skein_relay_channel_circuit_state",
            &[("channel", id.as_str()), ("name", name.as_str())],
            value,
        );
    }
}

fn balances(out: &mut Text, relay: &skein_relay::RelayService) {
    let known = relay.channel_balances();
    out.family(
        "skein_relay_channel_balance",
        "Upstream balance of each enabled channel whose vendor reports one, as last read, in the currency labelled.",
        "gauge",
    );
    for (id, name, amount, currency, _) in &known {
        out.sample(
            "skein_relay_channel_balance",
            &[
                ("channel", id.as_str()),
                ("name", name.as_str()),
                ("currency", currency.as_str()),
            ],
            *amount,
        );
    }
    out.family(
        "skein_relay_channel_balance_low",
        "1 when a channel's upstream balance is under its low_balance_threshold (it is tried last), else 0.",
        "gauge",
    );
    for (id, name, _, _, low) in &known {
        out.sample(
            "skein_relay_channel_balance_low",
            &[("channel", id.as_str()), ("name", name.as_str())],
            if *low { 1.0 } else { 0.0 },
        );
    }
}
