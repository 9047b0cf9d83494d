//! Server-sent events of an answer: the frames a client gets first, then the answer's events
//! as they are written, with heartbeats while the model is quiet.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast;

use crate::generate::{Event, Generation, sse};

/// How often an idle SSE stream sends a comment so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// An SSE response: `first` frames, then the answer's events until it ends.
pub(super) fn sse_response(
    first: Vec<Bytes>,
    receiver: broadcast::Receiver<Event>,
    generation: Option<Arc<Generation>>,
) -> Response {
    let head = futures::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures::stream::unfold(Some((receiver, generation)), |state| async move {
        let (mut receiver, generation) = state?;
        loop {
            let frame = match tokio::time::timeout(HEARTBEAT, receiver.recv()).await {
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                Ok(Ok(Event::End)) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Ok(event)) => match event.frame() {
                    Some(frame) => frame,
                    None => continue,
                },
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    // This reader fell behind and lost deltas: send the whole text so far, and
                    // the client replaces what it has.
                    tracing::warn!(missed, "a chat stream reader fell behind");
                    let Some(generation) = &generation else {
                        continue;
                    };
                    let (content, reasoning) = generation.text();
                    sse(
                        "replace",
                        &json!({ "content": content, "reasoning": reasoning }),
                    )
                }
            };
            return Some((Ok(frame), Some((receiver, generation))));
        }
    });
    let mut response = Response::new(Body::from_stream(futures::StreamExt::chain(head, tail)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
