//! Composition of Skein: configuration in, a running HTTP server out.
//!
//! `main.rs` is only the command line; everything a test or an embedder needs to start the
//! real server (build the services, wrap them in the gateway, serve until told to stop)
//! lives here, so the test harness runs exactly what users run.

pub mod agent_chat;
pub mod cluster;
pub mod compose;
pub mod config;
pub mod memory;
pub mod metrics;
pub mod openapi;
pub mod rag;
pub mod services;
pub mod telemetry;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use skein_billing::BillingService;
use skein_core::auth::JwtKeys;
use skein_core::limit::RateLimiter;
use skein_core::runtime::Gauges;
use skein_core::service::Service;
use skein_db::Db;
use skein_gateway::limit::memory::MemoryLimiter;
use skein_gateway::limit::redis::RedisLimiter;
use skein_gateway::{Gateway, Probe, ProbeFn};
use skein_user::UserService;
use tokio::net::TcpListener;

use crate::config::Config;

pub use services::ServiceSet;

/// Every service's migrations, in the order they are applied (`skein migrate`).
pub fn all_migrations() -> Vec<&'static skein_db::ServiceMigrations> {
    compose::SERVICES
        .iter()
        .map(|plug| plug.migrations)
        .collect()
}

/// The migrations of the services `selected` runs.
fn migrations_of(selected: &ServiceSet) -> Vec<&'static skein_db::ServiceMigrations> {
    compose::SERVICES
        .iter()
        .filter(|plug| selected.contains(plug.name))
        .map(|plug| plug.migrations)
        .collect()
}

/// A built Skein: the router to serve and the handles to shut down cleanly.
pub struct Skein {
    /// Every public route, wrapped in the gateway.
    pub router: Router,
    /// The service-to-service routes (`/internal/*`), for their own listener only; `None`
    /// without an internal token.
    pub internal: Option<Router>,
    /// The setup token made at this start (no account exists yet and none is configured);
    /// `skein serve` prints it once.
    pub setup_token: Option<String>,
    /// The database pool (closed on shutdown).
    pub db: Db,
    /// The services this process runs, in build order (drained in reverse).
    pub services: Vec<Arc<dyn Service>>,
    /// The User service when this process runs it, for the CLI's admin commands.
    pub users: Option<Arc<UserService>>,
    /// The Billing service when this process runs it, for `skein billing verify`.
    pub billing: Option<Arc<BillingService>>,
    /// The Relay service when this process runs it, for in-process callers and embedders.
    pub relay: Option<Arc<skein_relay::RelayService>>,
    /// The Chat service when this process runs it, for embedders that add context sources or
    /// tool runners before serving.
    pub chat: Option<Arc<skein_chat::ChatService>>,
    /// What the process holds (the admin runtime report, and the `SIGUSR1` log summary).
    pub runtime: Arc<skein_gateway::runtime::Runtime>,
    /// The configuration in effect.
    pub config: Config,
}

/// Connects to the database and applies pending migrations.
///
/// The data directory is created readable by its owner only (`0700`) and the SQLite file
/// `0600`: they hold password hashes, sealed upstream keys and the generated secrets.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    open_database_for(config, &all_migrations()).await
}

/// Connects and applies `migrations` (those of the services a process runs).
async fn open_database_for(
    config: &Config,
    migrations: &[&'static skein_db::ServiceMigrations],
) -> anyhow::Result<Db> {
    create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    if let Some(path) = sqlite_path(&config.database_url()) {
        create_private_file(&path)
            .with_context(|| format!("cannot create the database file {}", path.display()))?;
    }
    let settings = skein_db::PoolSettings {
        max_connections: config
            .database
            .pool_size(config.database_url().starts_with("sqlite:")),
        idle_timeout: Duration::from_secs(config.database.idle_timeout_secs.max(1)),
        sqlite_cache_kib: config.database.sqlite_cache_kib,
        sqlite_heap_limit_bytes: config
            .database
            .sqlite_heap_limit_mib
            .saturating_mul(1 << 20),
        ..skein_db::PoolSettings::default()
    };
    let db = Db::connect_with(&config.database_url(), &settings)
        .await
        .context("cannot open the database")?;
    db.migrate(migrations)
        .await
        .context("cannot migrate the database")?;
    Ok(db)
}

/// Creates `dir` (and missing parents) with mode `0700`; an existing directory is left as it is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes sure the SQLite file exists with mode `0600` before SQLite opens it (SQLite gives its
/// `-wal` and `-shm` files the same mode), and tightens a file an older version left readable.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// The file behind a `sqlite:` URL (`None` for PostgreSQL and in-memory databases).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Moves the chat images older versions kept inside message rows into the File service
/// (`skein migrate` runs it after the schema migrations); `progress` hears of each batch.
/// Safe to run again: it finds only what it has not moved.
pub async fn move_chat_images(
    config: &Config,
    db: &Db,
    progress: impl FnMut(&skein_chat::images::MoveReport),
) -> anyhow::Result<skein_chat::images::MoveReport> {
    let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new());
    let files = compose::file_service(config, db.clone(), limiter).await?;
    let api: Arc<dyn skein_core::api::FileApi> = files.clone();
    let report = skein_chat::images::move_inline_images(db, &api, progress)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En)))?;
    files.drain(Duration::from_secs(5)).await;
    Ok(report)
}

/// Builds the services named in `selected` over `config`, reaching the ones it does not run
/// at `services.*_url`.
pub async fn build(config: Config, selected: &ServiceSet) -> anyhow::Result<Skein> {
    let db = open_database_for(&config, &migrations_of(selected)).await?;
    let secret = jwt_secret(&config)?;
    let jwt = JwtKeys::new(secret.as_bytes(), config.auth.access_token_ttl_secs);
    let mut gauges: skein_core::runtime::GaugeSources = Vec::new();
    let limiter: Arc<dyn RateLimiter> = match &config.redis.url {
        Some(url) => Arc::new(
            RedisLimiter::connect(url, &config.redis.key_prefix)
                .await
                .context("cannot connect to Redis")?,
        ),
        None => {
            let memory = Arc::new(MemoryLimiter::new());
            memory.start_sweeper();
            gauges.push(memory.clone());
            memory
        }
    };

    let mut wiring = compose::Wiring::new(config, db.clone(), jwt.clone(), limiter.clone());
    wiring.connect_remote(selected)?;
    let mut services: Vec<Arc<dyn Service>> = Vec::new();
    for plug in compose::SERVICES {
        if selected.contains(plug.name) {
            services.push((plug.build)(&mut wiring).await?);
        }
    }
    if let Some(users) = &wiring.user_service {
        for observer in &wiring.observers {
            users.observe(observer.clone());
        }
    }
    let bus = cluster::connect_bus(&wiring.config, &db).await?;
    cluster::join(&wiring, &bus);
    let config = wiring.config.clone();

    let pool_db = db.clone();
    let sqlite = db.backend() == skein_db::Backend::Sqlite;
    gauges.push(Arc::new(skein_core::runtime::GaugesFn(move || {
        let pool = pool_db.pool();
        let mut gauges = vec![
            ("db.pool.size", u64::from(pool.size())),
            ("db.pool.idle", skein_core::runtime::count(pool.num_idle())),
            // The o200k table, loaded at the first count (0 before).
            (
                "text.tokenizer_bytes",
                skein_core::runtime::count(skein_text::tokens::tokenizer_heap_bytes()),
            ),
        ];
        if sqlite {
            // SQLite's own heap (C `malloc` through jemalloc, counted by SQLite itself).
            gauges.push(("db.sqlite.memory_bytes", skein_db::sqlite_memory_used()));
            gauges.push((
                "db.sqlite.memory_highwater_bytes",
                skein_db::sqlite_memory_highwater(),
            ));
        }
        gauges
    })));
    gauges.extend(services.iter().map(|s| s.clone() as Arc<dyn Gauges>));
    gauges.extend(wiring.gauges.iter().cloned());
    let runtime = Arc::new(skein_gateway::runtime::Runtime {
        sources: gauges,
        allocator: memory::allocator_stats(),
    });
    let (mut api, openapi) = openapi::api_router(&services, runtime.clone());
    for service in &services {
        api = api.merge(service.clone().vendor_routes());
    }
    // `/internal/*` never joins the public router: it gets its own listener
    // (`server.internal_listen`), so a public port cannot reach it whatever its token; and
    // without a token it does not exist at all.
    let internal = config.internal_token().map(|token| {
        let routes = services.iter().fold(Router::new(), |routes, s| {
            routes.merge(s.clone().internal_routes())
        });
        skein_core::internal::guard(routes, token.clone())
    });
    let setup_token = match &wiring.user_service {
        Some(users) => users
            .prepare_setup(config.server.setup_token.as_ref().map(|t| t.expose()))
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message(skein_core::i18n::Lang::En)))?,
        None => None,
    };
    let probe_db = db.clone();
    let database_probe: Arc<dyn Probe> = Arc::new(ProbeFn::new("database", move || {
        let db = probe_db.clone();
        Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
    }));
    let sessions = wiring.sessions.clone().context(
        "the gateway checks every signed-in request's session: run the User service here (--services ...,user) or set services.user_url",
    )?;
    // The chat socket checks the session again on each request it carries, as the gateway
    // checks every HTTP request, so signing out (or a password change) ends its use at once.
    if let Some(chat) = &wiring.chat_service {
        chat.set_sessions(sessions.clone());
    }
    let metrics_limiter = limiter.clone();
    let gateway = Arc::new(Gateway {
        server: config.server.clone(),
        limits: config.limits.clone(),
        jwt,
        sessions,
        keys: wiring.keys.clone(),
        limiter,
        probes: vec![database_probe],
        audit: wiring.audit.clone(),
        vendor_errors: Some(Arc::new(skein_relay::vendor::ErrorShapes)),
    });
    // Serialised once: the document's tree is several MiB of small allocations kept for the
    // process's life (heap profile, issue #22); its JSON is a fraction of that, shared by every
    // request instead of cloned and re-serialised per request.
    let openapi = axum::body::Bytes::from(
        serde_json::to_vec(&openapi).context("cannot serialise the OpenAPI document")?,
    );
    let public = api
        .route(
            "/api/openapi.json",
            get(move || openapi_json(openapi.clone())),
        )
        .route("/api/docs", get(openapi::docs_page))
        .route("/api/docs/viewer.js", get(openapi::docs_script))
        .fallback({
            let csp: Arc<str> = web::csp_for(&config.file).into();
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap| {
                let csp = csp.clone();
                async move { web::serve(&csp, method, uri, headers).await }
            }
        });
    // `/metrics` exists only with its own token (never the internal one).
    let public = match &config.server.metrics_token {
        Some(token) => public.merge(metrics::routes(
            Arc::new(metrics::Sources {
                db: db.clone(),
                db_max_connections: config.database.pool_size(sqlite),
                limiter: metrics_limiter,
                runtime: runtime.clone(),
                relay: wiring.relay_service.clone(),
                services: selected.names().join(","),
                started: std::time::SystemTime::now(),
            }),
            token.clone(),
        )),
        None => public,
    };
    let internal = internal.map(|routes| gateway.clone().wrap(routes));
    let router = gateway.wrap(public);
    Ok(Skein {
        router,
        internal,
        setup_token,
        db,
        services,
        users: wiring.user_service.clone(),
        billing: wiring.billing_service.clone(),
        relay: wiring.relay_service.clone(),
        chat: wiring.chat_service.clone(),
        runtime,
        config,
    })
}

async fn openapi_json(doc: axum::body::Bytes) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc,
    )
}

/// Serves `skein` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to `server.shutdown_grace_secs` and closes the database. `/internal/*` is served
/// only on `internal`, when given.
pub async fn serve(
    listener: TcpListener,
    internal: Option<TcpListener>,
    mut skein: Skein,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(skein.config.server.shutdown_grace_secs);
    memory::log_on_sigusr1(skein.runtime.clone());
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let internal_task = match (internal, skein.internal.take()) {
        (Some(listener), Some(router)) => {
            let mut stopping = stopping_rx.clone();
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            Some(tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(async move {
                        let _ = stopping.wait_for(|stopping| *stopping).await;
                    })
                    .await
            }))
        }
        _ => None,
    };
    let make_service = skein
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY small writes (stream events) wait on delayed ACKs: tens of ms each.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, make_service).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let deadline = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("server failed")?,
        () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping unfinished requests"),
    }
    if let Some(task) = internal_task {
        task.abort();
    }
    // Callers first (chat's answers settle through the relay), then their periodic tasks.
    for service in skein.services.iter().rev() {
        service.drain(grace).await;
    }
    for service in &skein.services {
        if let Some(tasks) = service.background() {
            tasks.stop(grace).await;
        }
    }
    skein.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Kubernetes, systemd).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// The JWT secret: configured, or read from (and on first start written to)
/// `data_dir/jwt_secret`, readable by the owner only.
fn jwt_secret(config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.expose().to_string());
    }
    let path = config.data_dir.join("jwt_secret");
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let secret = secret.trim().to_string();
        anyhow::ensure!(
            secret.len() >= 32,
            "{} is shorter than 32 characters",
            path.display()
        );
        return Ok(secret);
    }
    let secret = random_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(secret)
}

/// The key that seals upstream secrets: configured, or kept in `data_dir/relay_secret_key`.
pub(crate) fn relay_secret(config: &Config) -> anyhow::Result<[u8; 32]> {
    let text = match &config.relay.secret_key {
        Some(secret) => secret.expose().to_string(),
        None => {
            let path = config.data_dir.join("relay_secret_key");
            if path.exists() {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_string()
            } else {
                let secret = random_secret();
                write_private(&path, &secret)?;
                tracing::info!(path = %path.display(), "generated a new relay secret key");
                secret
            }
        }
    };
    let bytes = hex::decode(text.trim()).context("the relay secret key is not hex")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the relay secret key must be 32 bytes (64 hex characters)"))
}

/// The earlier relay secret keys (`relay.previous_secret_keys`), which still open what they
/// sealed while everything is sealed again under the current one.
pub(crate) fn previous_relay_secrets(config: &Config) -> anyhow::Result<Vec<[u8; 32]>> {
    config
        .relay
        .previous_secret_keys
        .iter()
        .map(|key| {
            let bytes = hex::decode(key.expose().trim())
                .context("a previous relay secret key is not hex")?;
            bytes.try_into().map_err(|_| {
                anyhow::anyhow!(
                    "relay.previous_secret_keys must be 32 bytes (64 hex characters) each"
                )
            })
        })
        .collect()
}

fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    anyhow::ensure!(contents.len() >= 32, "could not generate a secret");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
