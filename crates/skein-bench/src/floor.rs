//! The relay's floor: a proxy made of Skein's own HTTP stacks (axum on hyper for the clients,
//! with TCP_NODELAY; reqwest with Skein's pool settings for the upstream; tokio with Skein's
//! runtime settings) and nothing between the two legs — no authentication, routing, hold,
//! settle, usage record or request log. `bench-relay --floor` runs its closed loop through
//! it, beside the mock alone and Skein: what any relay built on these stacks answers on this
//! machine, so the gap to it is what Skein's own work costs. It keeps the system allocator:
//! linking jemalloc into this crate would hand C's `malloc` of every benchmark program to it
//! whenever they are built together with `skein`, whose build asks jemalloc to serve `malloc`
//! too.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use clap::Parser;

/// A bare two-leg proxy for `POST /v1/chat/completions`, to measure the HTTP stacks' floor.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// The upstream's chat completions URL (the mock's `…/v1/chat/completions`).
    #[arg(long)]
    upstream: String,
    /// Idle upstream connections kept per host (Skein's `relay.upstream_idle_per_host`).
    #[arg(long, default_value_t = 64)]
    idle_per_host: usize,
}

/// What every request shares.
struct Floor {
    /// The upstream client, built as Skein's relay builds its own.
    http: reqwest::Client,
    /// Parsed once, as Skein's channels keep their URLs.
    url: reqwest::Url,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .global_queue_interval(4)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("relay-floor: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("relay-floor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()?;
    let floor = Arc::new(Floor {
        http,
        url: args.upstream.parse()?,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(floor);
    // As `skein serve` does: small writes do not wait on delayed ACKs.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await?
        .tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                eprintln!("relay-floor: cannot set TCP_NODELAY: {error}");
            }
        });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Sends the client's body and credentials upstream and the upstream's answer back.
async fn forward(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = floor
        .http
        .post(floor.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(credentials) = headers.get(AUTHORIZATION) {
        request = request.header(AUTHORIZATION, credentials.clone());
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    match answer.bytes().await {
        Ok(bytes) => (status, [(CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}
