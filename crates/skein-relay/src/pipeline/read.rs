//! Reading an answer of the routes besides chat and billing it: whole, as server-sent
//! events, or as raw bytes. The readers of streams are tasks of the service's own: a client
//! that leaves does not stop them from reading on to the upstream's usage and billing that.

use axum::http::{HeaderValue, header};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use skein_core::ApiResult;

use super::bill::{Charge, Meter};
use super::{Reply, SpawnInSpan};
use crate::errors;
use crate::proxy::{SseSplitter, Tokens, event_data, usage_of};

/// Reads a whole answer, bills it with `bill` (given the bytes, so each route parses only
/// what it needs: an embeddings answer can be megabytes of floats), and answers the
/// upstream's status, content type and bytes as they were. If the upstream breaks off before
/// the answer is complete, the caller gets 502 and the hold is released: nothing usable was
/// delivered.
pub(crate) async fn whole(
    resp: reqwest::Response,
    meter: Meter,
    bill: impl FnOnce(&Meter, &[u8]) -> Charge,
) -> ApiResult<Reply> {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let bytes = match crate::upstream::read_body(resp, meter.idle).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%error, "upstream body broke off");
            meter.release().await;
            return Err(errors::broken_off());
        }
    };
    let mut charge = bill(&meter, &bytes);
    charge.ttft = Some(meter.started.elapsed());
    let mut reply = Reply::whole(status, content_type, bytes);
    if meter.caller.settles_before_answer() {
        reply.charge = meter.settle(charge).await;
    } else {
        meter.settle_later(charge).await;
    }
    Ok(reply)
}

/// Relays a server-sent-events answer event by event. `text_len` measures what an event
/// delivered (for the bill when the upstream never says its usage); `bill` turns the
/// upstream's usage or that estimate into a charge. Usage the client did not ask for is
/// hidden from it.
pub(crate) fn sse(
    resp: reqwest::Response,
    meter: Meter,
    client_wants_usage: bool,
    text_len: fn(&Value) -> usize,
    bill: impl FnOnce(&Meter, Option<Tokens>, usize, bool) -> Charge + Send + 'static,
) -> Reply {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let tasks = meter.svc.tasks.clone();
    tasks.spawn_in_current_span(async move {
        let mut upstream = resp.bytes_stream();
        let mut splitter = SseSplitter::default();
        let mut tokens = None;
        let mut delivered = 0usize;
        let mut first = None;
        let mut client_gone = false;
        let mut broken = false;
        let idle = meter.idle;
        let write_timeout = meter.svc.tuning.client_write_timeout;
        loop {
            let chunk = match tokio::time::timeout(idle, upstream.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            };
            for mut event in splitter.push(&chunk) {
                let mut forward = true;
                if let Some(data) = event_data(&event)
                    && data != "[DONE]"
                    && let Ok(mut value) = serde_json::from_str::<Value>(&data)
                {
                    if let Some(found) = usage_of(&value) {
                        tokens = Some(found);
                    }
                    let len = text_len(&value);
                    if len > 0 && first.is_none() {
                        first = Some(meter.started.elapsed());
                    }
                    delivered += len;
                    if !client_wants_usage {
                        match hide_usage(&mut value) {
                            Unasked::Kept => {}
                            Unasked::Dropped => forward = false,
                            Unasked::Rewritten(rewritten) => event = rewritten,
                        }
                    }
                }
                if forward && !client_gone {
                    let mut framed = Vec::with_capacity(event.len() + 2);
                    framed.extend_from_slice(&event);
                    framed.extend_from_slice(b"\n\n");
                    // A client that stops reading is given a bounded wait, then dropped: the
                    // upstream is still read to its usage and billed.
                    if tx
                        .send_timeout(Bytes::from(framed), write_timeout)
                        .await
                        .is_err()
                    {
                        client_gone = true;
                        tracing::info!(reservation_id = %meter.reservation_id, "client disconnected mid-stream; draining upstream");
                    }
                }
            }
        }
        if broken && !client_gone {
            let error = crate::vendor::openai::errors::stream_broke();
            let _ = tx
                .send_timeout(Bytes::from(format!("data: {error}\n\n")), write_timeout)
                .await;
        }
        // The stream ends for its client once a settle may fall behind (`settle_slot`).
        let slot = meter.svc.settle_slot().await;
        drop(tx);
        let mut charge = bill(&meter, tokens, delivered, broken);
        charge.ttft = first;
        if charge.status == "ok" && client_gone {
            charge.status = "client_closed";
        }
        meter.settle(charge).await;
        drop(slot);
    });
    Reply::stream(HeaderValue::from_static("text/event-stream"), rx)
}

/// What is left of a stream chunk once the usage Skein asked for on a client's behalf (to
/// bill from the upstream's own count) is taken out for a client that did not ask for it.
pub(crate) enum Unasked {
    /// The chunk had no usage: send it as it was.
    Kept,
    /// The chunk was that usage alone: send nothing.
    Dropped,
    /// The chunk without its usage, framed as an event.
    Rewritten(Bytes),
}

/// Takes the usage out of a stream chunk (see [`Unasked`]).
pub(crate) fn hide_usage(chunk: &mut Value) -> Unasked {
    let Some(obj) = chunk.as_object_mut() else {
        return Unasked::Kept;
    };
    if obj.remove("usage").is_none() {
        return Unasked::Kept;
    }
    if obj
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        Unasked::Dropped
    } else {
        Unasked::Rewritten(Bytes::from(format!("data: {chunk}")))
    }
}

/// Relays a binary answer (speech audio) chunk by chunk as it arrives, then settles `charge`
/// (marked `partial` if the upstream broke off). The upstream did the work whether or not the
/// client stayed, so a client that leaves is still charged.
pub(crate) fn bytes(resp: reqwest::Response, meter: Meter, charge: Charge) -> Reply {
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let tasks = meter.svc.tasks.clone();
    tasks.spawn_in_current_span(async move {
        let mut upstream = resp.bytes_stream();
        let mut first = None;
        let mut broken = false;
        let mut client_gone = false;
        let idle = meter.idle;
        let write_timeout = meter.svc.tuning.client_write_timeout;
        loop {
            match tokio::time::timeout(idle, upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    first.get_or_insert_with(|| meter.started.elapsed());
                    if !client_gone && tx.send_timeout(chunk, write_timeout).await.is_err() {
                        client_gone = true;
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        let slot = meter.svc.settle_slot().await;
        drop(tx);
        let status = match (broken, client_gone) {
            (true, _) => "partial",
            (false, true) => "client_closed",
            (false, false) => charge.status,
        };
        meter
            .settle(Charge {
                status,
                ttft: first,
                ..charge
            })
            .await;
        drop(slot);
    });
    Reply::stream(content_type, rx)
}
