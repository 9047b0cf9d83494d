//! Progress pushed: `GET /knowledge/bases/{id}/events`, server-sent events of the base's
//! documents as they are queued, extracted, embedded, made ready, fail or go.
//!
//! **Why the server watches the database:** any instance may run a document's job (the queue
//! is in the database), so the instance holding the browser's stream cannot rely on hearing
//! about it in memory. It reads the base's documents every half second, one indexed query,
//! and sends only what changed; the browser stops polling. The stream rechecks the reader's
//! access every 30 s and ends after 10 minutes so the client reconnects with a fresh check.
//! Because each stream costs a query every half second, one user holds at most
//! `knowledge.event_streams_per_user` (default 8) at once on an instance; one more is a 429.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::{ApiError, ApiResult};

use super::documents::{DocumentView, view};
use crate::KnowledgeService;
use crate::errors;
use crate::store;

/// How often the stream reads the base's documents.
const POLL: Duration = Duration::from_millis(500);
/// How often an idle stream sends a comment so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often the reader's access is checked again.
const RECHECK: Duration = Duration::from_secs(30);
/// How long one stream lasts before the client reconnects.
const LIFETIME: Duration = Duration::from_secs(600);

/// What of a document the stream last sent: status, progress, change time.
type Seen = (String, i64, i64, i64);

/// One of a user's open streams; the slot is given back when the stream is dropped (it ended,
/// or the client went away).
struct Slot {
    svc: Arc<KnowledgeService>,
    user_id: String,
}

impl Slot {
    /// A slot for `user_id`, or a 429 when they hold the most streams already.
    fn take(svc: &Arc<KnowledgeService>, user_id: &str) -> ApiResult<Slot> {
        let max = svc.config.event_streams_per_user;
        let mut open = svc
            .event_streams
            .lock()
            .map_err(|_| ApiError::internal("the event stream count is poisoned"))?;
        let held = open.entry(user_id.to_string()).or_insert(0);
        if *held >= max {
            return Err(errors::too_many_streams(max));
        }
        *held += 1;
        Ok(Slot {
            svc: svc.clone(),
            user_id: user_id.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.svc.event_streams.lock()
            && let Some(held) = open.get_mut(&self.user_id)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

struct Watch {
    /// Held for as long as the stream lives.
    _slot: Slot,
    svc: Arc<KnowledgeService>,
    user_id: String,
    base_id: String,
    seen: HashMap<String, Seen>,
    first: bool,
    started: Instant,
    checked: Instant,
    sent: Instant,
}

fn frame(event: &str, data: &impl serde::Serialize) -> String {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_string());
    format!("event: {event}\ndata: {data}\n\n")
}

impl Watch {
    /// The frames for what changed since the last look; `None` when the stream should end.
    async fn changes(&mut self) -> Option<String> {
        if self.started.elapsed() > LIFETIME {
            return None;
        }
        if self.checked.elapsed() > RECHECK {
            self.svc.access(&self.user_id, &self.base_id).await.ok()?;
            self.checked = Instant::now();
        }
        let rows = store::document_rows(&self.svc.db, &self.base_id)
            .await
            .ok()?;
        let mut out = String::new();
        let mut now_seen = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: Seen = (
                row.status.clone(),
                row.progress_done,
                row.progress_total,
                row.updated_at,
            );
            if self.seen.get(&row.id) != Some(&key) {
                now_seen.insert(row.id.clone(), key);
                out.push_str(&frame("document", &view(row)));
            } else {
                now_seen.insert(row.id.clone(), key);
            }
        }
        for gone in self.seen.keys().filter(|id| !now_seen.contains_key(*id)) {
            out.push_str(&frame("removed", &serde_json::json!({ "id": gone })));
        }
        self.seen = now_seen;
        if self.first {
            // Everything the base holds was sent: the client may drop what it had.
            out.push_str(&frame("synced", &serde_json::json!({})));
            self.first = false;
        }
        Some(out)
    }
}

/// Follow a base's documents: server-sent events `document` (a document as
/// `GET .../documents/{doc_id}` shows it, sent when it appears and whenever its status or
/// progress changes), `removed` (`{"id"}`) and, after the first full round, `synced`. A user
/// holds at most `knowledge.event_streams_per_user` streams at once (429 beyond).
#[utoipa::path(get, path = "/knowledge/bases/{id}/events", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 200, content_type = "text/event-stream", body = DocumentView,
        description = "`event: document` frames of documents, `removed` and `synced`"),
        (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
pub async fn base_events(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    let slot = Slot::take(&svc, &user.user_id)?;
    let now = Instant::now();
    let watch = Watch {
        _slot: slot,
        svc,
        user_id: user.user_id,
        base_id: base.id,
        seen: HashMap::new(),
        first: true,
        started: now,
        checked: now,
        sent: now,
    };
    let stream = futures::stream::unfold(watch, |mut watch| async move {
        loop {
            if !watch.first {
                tokio::time::sleep(POLL).await;
            }
            let frames = watch.changes().await?;
            if !frames.is_empty() {
                watch.sent = Instant::now();
                return Some((Ok::<_, Infallible>(Bytes::from(frames)), watch));
            }
            if watch.sent.elapsed() > HEARTBEAT {
                watch.sent = Instant::now();
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), watch));
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
