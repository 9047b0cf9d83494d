//! `/internal/plugin/*`: the [`PluginApi`] over HTTP, for Chat and Agent services in another
//! process. Served only on the internal listener, behind the internal token.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;
use skein_core::api::{PluginApi, ToolDescriptor, ToolProgress};
use skein_core::extract::ApiJson;

use crate::PluginService;
use crate::remote::{CallLine, ExecuteBody, MayUseBody, ToolsBody, Usable};

/// Longest deadline a remote caller may give a call (chat's own limit is far below it).
const MAX_DEADLINE: Duration = Duration::from_secs(3600);

/// Progress reports held for a slow reader; past them, reports are dropped (they are
/// advisory), never the output.
const PROGRESS_BUFFER: usize = 64;

pub(crate) fn routes(service: Arc<PluginService>) -> Router {
    Router::new()
        .route("/internal/plugin/tools", post(tools))
        .route("/internal/plugin/may-use", post(may_use))
        .route("/internal/plugin/execute", post(execute))
        .with_state(service)
}

async fn tools(
    State(svc): State<Arc<PluginService>>,
    ApiJson(body): ApiJson<ToolsBody>,
) -> ApiResult<ApiJson<Vec<ToolDescriptor>>> {
    Ok(ApiJson(svc.tools(&body.caller).await?))
}

async fn may_use(
    State(svc): State<Arc<PluginService>>,
    ApiJson(body): ApiJson<MayUseBody>,
) -> ApiResult<ApiJson<Usable>> {
    let usable = svc.may_use(&body.user_id, &body.plugin_id).await?;
    Ok(ApiJson(Usable { usable }))
}

/// Aborts the call when the stream is dropped: the caller hung up (Stop), and an in-process
/// caller dropping its future would have ended the call the same way.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn execute(
    State(svc): State<Arc<PluginService>>,
    ApiJson(body): ApiJson<ExecuteBody>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<CallLine>(PROGRESS_BUFFER);
    let reports = tx.clone();
    let progress: ToolProgress = Arc::new(move |report: Value| {
        let _ = reports.try_send(CallLine::Progress(report));
    });
    let deadline = Duration::from_millis(body.deadline_ms).min(MAX_DEADLINE);
    let task = tokio::spawn(async move {
        let output = svc
            .execute_reporting(
                &body.caller,
                &body.name,
                &body.arguments,
                deadline,
                progress,
            )
            .await;
        let _ = tx.send(CallLine::Output(output)).await;
    });
    let guard = AbortOnDrop(task.abort_handle());
    // The stream ends after the output line, whoever still holds a progress sender.
    let lines = futures::stream::unfold((rx, guard, false), |(mut rx, guard, done)| async move {
        if done {
            return None;
        }
        let line = rx.recv().await?;
        let last = matches!(line, CallLine::Output(_));
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(bytes)), (rx, guard, last)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
