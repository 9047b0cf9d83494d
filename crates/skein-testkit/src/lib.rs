//! The test harness: [`TestApp`] starts the real Skein server on an ephemeral port over a fresh
//! SQLite file or a fresh PostgreSQL database, and tests act on it only through HTTP, as
//! people and programs do.
//!
//! PostgreSQL is reached at `SKEIN_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets its own database, dropped
//! when the test ends. Redis, where a test asks for it, is `SKEIN_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`).
//!
//! Upstreams are mock vendors ([`mock_vendor`]: one harness, one [`Fault`] enum; a module per
//! vendor's wire format), and the set-ups tests repeat are [`fixtures`]: [`relay_world`] and
//! persona helpers that assert their own success.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Once;

pub mod fixtures;
pub mod mock_anthropic;
pub mod mock_compat;
pub mod mock_dashscope;
pub mod mock_gemini;
pub mod mock_mcp;
pub mod mock_oauth;
pub mod mock_ollama;
pub mod mock_openai;
pub mod mock_passkey;
pub mod mock_sms;
pub mod mock_vendor;
pub mod pdf;
pub mod proxy;

pub use fixtures::{Price, RelayWorld, Upstream, WorldSpec, relay_world};
pub use mock_vendor::{Fault, MockVendor};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use skein::ServiceSet;
use skein::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A new PostgreSQL database.
    Postgres,
}

/// Runs the same test body against SQLite and PostgreSQL:
///
/// ```ignore
/// both_backends! {
///     async fn profile_round_trip(app) { /* use app: TestApp */ }
/// }
/// ```
/// makes `profile_round_trip::sqlite` and `profile_round_trip::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $app = $crate::TestApp::spawn($crate::Backend::Sqlite).await;
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let $app = $crate::TestApp::spawn($crate::Backend::Postgres).await;
                    $body
                }
            }
        )*
    };
}

/// Like [`both_backends!`], but binds only the [`Backend`], for tests that configure their
/// own server: `on_both_backends! { async fn name(backend) { ... } }`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $backend = $crate::Backend::Sqlite;
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let $backend = $crate::Backend::Postgres;
                    $body
                }
            }
        )*
    };
}

/// An answer from the server.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub json: Value,
    /// Body as text.
    pub text: String,
}

impl Resp {
    /// The envelope's `error.code`.
    pub fn error_code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A signed-in account a test acts as.
#[derive(Debug, Clone)]
pub struct Persona {
    /// User id.
    pub id: String,
    /// Username used to sign in.
    pub login: String,
    /// Password.
    pub password: String,
    /// Current access token.
    pub access: String,
    /// Current refresh token.
    pub refresh: String,
}

/// A running Skein server over a fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The backend in use.
    pub backend: Backend,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// The configuration the server runs with (database url and data dir included), so a
    /// second server can share them.
    pub config: Config,
    /// `http://127.0.0.1:PORT` of the internal listener (`/internal/*`), when the test set
    /// `server.internal_listen`.
    pub internal_base: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

/// A password every persona uses unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// The setup token every test server is configured with (`server.setup_token`); personas send
/// it on registration, where it is ignored once an account exists.
pub const SETUP_TOKEN: &str = "setup-token-for-tests-0123456789";

/// Installs the process's subscriber once, as `main` does: log lines with `TEST_LOG`, and the
/// trace exporter when the first server of the test sets `telemetry.otlp_endpoint` (the
/// subscriber is global, so a test process exports to one collector: nextest runs each test
/// in a process of its own).
fn init_logs(telemetry: &skein_core::config::TelemetryConfig) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let logs = std::env::var_os("TEST_LOG").is_some();
        if logs || telemetry.otlp_endpoint.is_some() {
            let mut log = skein_core::config::LogConfig::default();
            if !logs {
                log.level = "off".into();
            }
            skein::telemetry::init(&log, telemetry);
        }
    });
}

/// Listeners bound by [`reserve_internal_address`], held until a server configured with that
/// address starts: between a probe's drop and a later bind another test could take the port.
static RESERVED: std::sync::Mutex<Vec<std::net::TcpListener>> = std::sync::Mutex::new(Vec::new());

/// A loopback address, already bound and kept, for `server.internal_listen`: processes of a
/// split deployment must know each other's address before either starts.
pub fn reserve_internal_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a reserved port");
    let address = listener.local_addr().expect("addr").to_string();
    RESERVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(listener);
    address
}

/// The reserved listener for `address`, if [`reserve_internal_address`] made it.
fn take_reserved(address: &str) -> Option<tokio::net::TcpListener> {
    let mut reserved = RESERVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = reserved
        .iter()
        .position(|l| l.local_addr().is_ok_and(|a| a.to_string() == address))?;
    let listener = reserved.swap_remove(at);
    listener.set_nonblocking(true).expect("nonblocking");
    Some(tokio::net::TcpListener::from_std(listener).expect("reserved listener"))
}

/// The PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("SKEIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis server tests use.
pub fn redis_url() -> String {
    std::env::var("SKEIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

impl TestApp {
    /// Starts a server with the test defaults (limits high enough not to get in the way).
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `configure` adjusts the configuration.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_services(backend, "all", configure).await
    }

    /// Starts a server after `configure` adjusts the configuration and `extend` the built
    /// services before they serve (as an embedder would: a chat context source of the test's
    /// own, say).
    pub async fn spawn_extended(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
        extend: impl FnOnce(&skein::Skein),
    ) -> TestApp {
        Self::spawn_inner(backend, "all", configure, extend).await
    }

    /// Starts a server that runs only `services` (`"user,billing"`, or `"all"`), after
    /// `configure` adjusts the test configuration: with `"all"` the usual single process, else
    /// one process of a deployment split across processes.
    pub async fn spawn_services(
        backend: Backend,
        services: &str,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        Self::spawn_inner(backend, services, configure, |_| {}).await
    }

    async fn spawn_inner(
        backend: Backend,
        services: &str,
        configure: impl FnOnce(&mut Config),
        extend: impl FnOnce(&skein::Skein),
    ) -> TestApp {
        let services = ServiceSet::parse(services).expect("service names");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.server.listen = "127.0.0.1:0".into();
        config.database.max_connections = Some(5);
        config.limits.auth_per_ip_per_minute = 100_000;
        config.limits.api_per_user_per_minute = 100_000;
        config.limits.api_per_ip_per_minute = 100_000;
        config.limits.login_failures_per_ip = 100_000;
        config.limits.password_changes_per_user_per_hour = 100_000;
        config.limits.invalid_keys_per_ip_per_minute = 100_000;
        config.limits.oauth_starts_per_ip_per_hour = 100_000;
        config.limits.password_resets_per_ip_per_hour = 100_000;
        config.limits.account_links_per_ip_per_hour = 100_000;
        config.limits.sms_codes_per_ip_per_hour = 100_000;
        config.server.setup_token = Some(skein_core::secret::Secret::new(SETUP_TOKEN));
        let pg_database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let (url, name) = create_pg_database().await;
                config.database.url = Some(url);
                Some(name)
            }
        };
        configure(&mut config);
        Self::start(backend, config, Some(dir), pg_database, &services, extend).await
    }

    /// Starts another process of the same deployment (database, data directory, Redis) that
    /// runs only `services`, after `configure` adjusts its configuration.
    pub async fn sibling_services(
        &self,
        services: &str,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = self.config.clone();
        configure(&mut config);
        let set = ServiceSet::parse(services).expect("service names");
        Self::start(self.backend, config, None, None, &set, |_| {}).await
    }

    /// Starts another server on the same database, data directory and Redis as `self`
    /// (two instances of one deployment).
    pub async fn sibling(&self) -> TestApp {
        Self::start(
            self.backend,
            self.config.clone(),
            None,
            None,
            &ServiceSet::all(),
            |_| {},
        )
        .await
    }

    async fn start(
        backend: Backend,
        config: Config,
        dir: Option<tempfile::TempDir>,
        pg_database: Option<String>,
        services: &ServiceSet,
        extend: impl FnOnce(&skein::Skein),
    ) -> TestApp {
        init_logs(&config.telemetry);
        let skein = skein::build(config.clone(), services)
            .await
            .expect("build skein");
        extend(&skein);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let internal = match &config.server.internal_listen {
            // The configured address: processes of a split deployment must know each other's.
            Some(address) => Some(match take_reserved(address) {
                Some(listener) => listener,
                None => tokio::net::TcpListener::bind(address.as_str())
                    .await
                    .expect("bind internal"),
            }),
            None => None,
        };
        let internal_base = internal
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().expect("addr")));
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(skein::serve(listener, internal, skein, async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            backend,
            client: reqwest::Client::new(),
            config,
            internal_base,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            pg_database,
        }
    }

    /// Signals shutdown (as SIGTERM would) and answers the server task to await.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server already stopped")
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A full URL for `path` on the internal listener.
    pub fn internal_url(&self, path: &str) -> String {
        let base = self
            .internal_base
            .as_deref()
            .expect("set server.internal_listen to get an internal listener");
        format!("{base}{path}")
    }

    /// Sends a request, optionally with a bearer token and a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::read(send_once_more(req).await).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        Self::read(send_once_more(req).await).await
    }

    async fn read(res: reqwest::Response) -> Resp {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// Registers `username` (email `username@example.com`) and answers the signed-in persona.
    pub async fn register(&self, username: &str) -> Persona {
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD, "setup_token": SETUP_TOKEN }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "register {username}: {}",
            r.text
        );
        persona(&r.json, username, PASSWORD)
    }

    /// Signs in and answers a fresh persona (a new session).
    pub async fn login(&self, login: &str, password: &str) -> Persona {
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({ "login": login, "password": password }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {login}: {}", r.text);
        persona(&r.json, login, password)
    }

    /// The first account: root.
    pub async fn root(&self) -> Persona {
        let root = self.register("root").await;
        let me = self.get("/api/v1/user/profile", Some(&root.access)).await;
        assert_eq!(
            me.json["role"], "root",
            "the first account should be root: {}",
            me.text
        );
        root
    }

    /// A root and an admin made by that root: `(root, admin)`.
    pub async fn root_and_admin(&self) -> (Persona, Persona) {
        let root = self.root().await;
        let admin = self.register("admin").await;
        let r = self
            .patch(
                &format!("/api/v1/admin/users/{}", admin.id),
                Some(&root.access),
                json!({ "role": "admin" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "promote admin: {}", r.text);
        (root, admin)
    }
}

fn persona(json: &Value, login: &str, password: &str) -> Persona {
    Persona {
        id: json["user"]["id"].as_str().expect("user id").to_string(),
        login: login.to_string(),
        password: password.to_string(),
        access: json["access_token"]
            .as_str()
            .expect("access_token")
            .to_string(),
        refresh: json["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
    }
}

async fn create_pg_database() -> (String, String) {
    use skein_db::sqlx::{Connection, Executor, PgConnection};
    let admin = postgres_admin_url();
    let name = format!("skein_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for these tests ({admin}): {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database");
    conn.close().await.ok();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    (format!("{base}/{name}"), name)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(name) = self.pg_database.take() {
            // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        use skein_db::sqlx::{Connection, Executor, PgConnection};
                        if let Ok(mut conn) = PgConnection::connect(&admin).await {
                            let _ = conn
                                .execute(
                                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                                )
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Sends `req`, and once more when it could not be sent at all: a pooled keep-alive
/// connection the server closed as idle just as the client reused it fails with a broken
/// pipe before the server reads anything (a known race of HTTP/1.1 connection reuse). A
/// second failure, or any failure after the request was sent, still fails the test.
async fn send_once_more(req: reqwest::RequestBuilder) -> reqwest::Response {
    let again = req.try_clone();
    match (req.send().await, again) {
        (Ok(res), _) => res,
        (Err(e), Some(again)) if e.is_request() => again.send().await.expect("send (again)"),
        (Err(e), _) => panic!("send: {e:?}"),
    }
}
