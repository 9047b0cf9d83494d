//! A streamed chat answer: the upstream's events read on a task of the service's own,
//! converted to the caller's format (a client's bytes, or typed events for an in-process
//! caller), counted against the hold, and billed before the closing events are sent.

use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use skein_core::api::{ChatEvent, ChatStream, RelayCharge, StreamError};

use super::Format;
use crate::pipeline::Reply;
use crate::pipeline::SpawnInSpan;
use crate::pipeline::bill::{Charge, Meter};
use crate::pipeline::read::{Unasked, hide_usage};
use crate::proxy::{SseSplitter, Tokens, estimate_tokens, event_data, usage_of};
use crate::vendor::StreamDecoder;

/// A chat answer's hold and what settling it needs once the upstream is done.
pub(super) struct Bill {
    /// The hold, on the serving channel.
    pub meter: Meter,
    /// Prompt tokens estimated before the call, billed when nothing better is known.
    pub prompt_estimate: i64,
    /// The request's messages (streams only), counted when a stream ends without usage.
    pub messages: Option<Value>,
    /// Cancelled, the in-process caller stopped the answer.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Completion tokens (all choices) the hold pays for.
    pub output_cap: i64,
    /// Answers asked for (`n`).
    pub choices: i64,
}

impl Bill {
    /// Settles `tokens` at the model's price with `status`; answers the charge, or `None` if
    /// the ledger could not take it.
    pub async fn settle(
        self,
        tokens: Tokens,
        status: &'static str,
        ttft: Option<Duration>,
    ) -> Option<RelayCharge> {
        let cost = self.meter.rates().cost_counts(
            &crate::pricing::Counts {
                prompt: tokens.prompt,
                completion: tokens.completion,
                cached: tokens.cached,
                cache_write: tokens.cache_write,
                cache_write_1h: tokens.cache_write_1h,
                audio_prompt: tokens.audio_prompt,
                audio_completion: tokens.audio_completion,
            },
            1,
        );
        self.meter
            .settle(Charge {
                cost,
                prompt: tokens.prompt,
                completion: tokens.completion,
                cached: tokens.cached,
                cache_write: tokens.cache_write.saturating_add(tokens.cache_write_1h),
                tpm_tokens: tokens.prompt.saturating_add(tokens.completion),
                status,
                ttft,
            })
            .await
    }
}

/// What a stream's reader task keeps while it turns pivot events into the client's format.
struct StreamState {
    /// Where the client's bytes go; `None` for an in-process caller, which gets `events`.
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    /// Where an in-process caller's typed events go.
    events: Option<tokio::sync::mpsc::Sender<ChatEvent>>,
    anthropic: Option<crate::vendor::anthropic::StreamConverter>,
    /// The Responses API's events, for a Responses client.
    responses: Option<crate::vendor::openai::responses::StreamConverter>,
    /// Where a kept Responses answer's final `response` goes before its last event.
    keep_response: Option<super::KeepResponse>,
    gemini_sse: Option<bool>,
    model: String,
    pending_calls: Vec<(String, String)>,
    first_item: bool,
    client_wants_usage: bool,
    tokens: Option<Tokens>,
    delivered_text: usize,
    /// The text delivered (up to [`DELIVERED_KEPT`] bytes), to count with the tokenizer.
    delivered: String,
    first_token: Option<Duration>,
    client_gone: bool,
    started: Instant,
    reservation_id: String,
    /// The client speaks the upstream's format: upstream events go to it as they are, and
    /// pivot events only count usage.
    native: bool,
    /// How long a write may wait on a client that stopped reading.
    write_timeout: Duration,
    /// The stream's closing events (`[DONE]`, `message_stop`), sent only once the charge is
    /// committed: a client never holds a finished answer the ledger does not.
    tail: Vec<Bytes>,
    /// Gemini streams have no closing event, so their last item is the one held back: each
    /// item waits here until the next arrives.
    held: Option<Bytes>,
    /// Completion tokens (all choices) the hold pays for, and those counted so far.
    output_cap: i64,
    output_seen: i64,
    /// Output text not counted yet.
    uncounted: String,
    /// The output reached what was held: the stream is ended here.
    cut: bool,
}

impl StreamState {
    /// Sends bytes to the client unless it left. A client that stops reading gets a bounded
    /// wait and is then dropped: the reader never stalls on it, and reads on to the bill.
    async fn send(&mut self, bytes: Bytes) {
        if self.client_gone {
            return;
        }
        let Some(tx) = self.tx.as_ref() else { return };
        if tx.send_timeout(bytes, self.write_timeout).await.is_err() {
            // The client left; read on to the upstream's own usage and bill that.
            self.client_gone = true;
            tracing::info!(reservation_id = %self.reservation_id, "client disconnected or stopped reading mid-stream; draining upstream");
        }
    }

    /// Sends a typed event to an in-process caller unless it left; like [`Self::send`], a
    /// caller that stops reading gets a bounded wait and is then dropped.
    async fn send_event(&mut self, event: ChatEvent) {
        if self.client_gone {
            return;
        }
        let Some(events) = self.events.as_ref() else {
            return;
        };
        if events
            .send_timeout(event, self.write_timeout)
            .await
            .is_err()
        {
            self.client_gone = true;
            tracing::info!(reservation_id = %self.reservation_id, "in-process caller stopped reading mid-stream; draining upstream");
        }
    }

    /// Sends one client event: a closing one is kept for after the charge, and a Gemini item
    /// waits for the next.
    async fn emit(&mut self, bytes: Bytes, closing: bool) {
        if closing {
            self.tail.push(bytes);
        } else if self.gemini_sse.is_some() {
            if let Some(previous) = self.held.replace(bytes) {
                self.send(previous).await;
            }
        } else {
            self.send(bytes).await;
        }
    }

    /// Sends one upstream event as it came (re-framed for Gemini's JSON-array streams).
    async fn send_native(&mut self, event: &Bytes) {
        if self.cut {
            return;
        }
        if self.gemini_sse == Some(false) {
            let Some(data) = event_data(event) else {
                return;
            };
            let item = format!("{}{data}", if self.first_item { "[" } else { "," });
            self.first_item = false;
            self.emit(Bytes::from(item), false).await;
            return;
        }
        let closing = self.anthropic.is_some()
            && event_data(event).is_some_and(|d| d.contains("\"message_stop\""));
        let mut framed = Vec::with_capacity(event.len() + 2);
        framed.extend_from_slice(event);
        framed.extend_from_slice(b"\n\n");
        self.emit(Bytes::from(framed), closing).await;
    }

    /// Reads usage and delivered text from one pivot event and sends it on in the client's
    /// format; marks the stream cut once the output reaches what was held.
    async fn forward(&mut self, event: Bytes) {
        if self.cut {
            return;
        }
        let mut forward = true;
        let mut event = event;
        if let Some(data) = event_data(&event)
            && data != "[DONE]"
            && let Ok(mut value) = serde_json::from_str::<Value>(&data)
        {
            if let Some(found) = usage_of(&value) {
                self.tokens = Some(found);
            }
            if let Some(choices) = value["choices"].as_array() {
                for choice in choices {
                    let delta = &choice["delta"];
                    let content = delta["content"].as_str().unwrap_or("");
                    let reasoning = delta["reasoning_content"].as_str().unwrap_or("");
                    let calls = delta.get("tool_calls").map(Value::to_string);
                    let len = content.len()
                        + reasoning.len()
                        + calls.as_ref().map(String::len).unwrap_or(0);
                    if len > 0 && self.first_token.is_none() {
                        self.first_token = Some(self.started.elapsed());
                    }
                    if len > 0 {
                        // Tool calls count by their names and arguments, as vendors count
                        // them, not by the JSON that frames each delta.
                        self.uncounted.push_str(content);
                        self.uncounted.push_str(reasoning);
                        for call in delta["tool_calls"].as_array().into_iter().flatten() {
                            let f = &call["function"];
                            self.uncounted.push_str(f["name"].as_str().unwrap_or(""));
                            self.uncounted
                                .push_str(f["arguments"].as_str().unwrap_or(""));
                        }
                    }
                    self.delivered_text += len;
                    if self.delivered.len() < DELIVERED_KEPT {
                        self.delivered.push_str(content);
                        self.delivered.push_str(reasoning);
                        if let Some(calls) = &calls {
                            self.delivered.push_str(calls);
                        }
                    }
                }
            }
            // Counted a few hundred bytes at a time: a token split across deltas counts once,
            // and the tokenizer sees each byte once.
            if self.uncounted.len() >= COUNT_EVERY {
                let counted = skein_text::tokens::count_tokens(&self.uncounted);
                self.output_seen = self
                    .output_seen
                    .saturating_add(i64::try_from(counted).unwrap_or(i64::MAX));
                self.uncounted.clear();
            }
            if self.output_seen > cut_at(self.output_cap) {
                // The vendor wrote past the limit it was sent: what was held is spent.
                self.cut = true;
                tracing::warn!(reservation_id = %self.reservation_id, cap = self.output_cap, "the upstream wrote past the held output; ending the stream");
            }
            if self.native {
                return;
            }
            if self.events.is_some() {
                for event in super::events::from_chunk(&value) {
                    self.send_event(event).await;
                }
                return;
            }
            if let Some(converter) = self.responses.as_mut() {
                let events = converter.chunk(&value);
                forward = !events.is_empty();
                event = Bytes::from(events.trim_end_matches('\n').to_string());
            } else if let Some(converter) = self.anthropic.as_mut() {
                let events = converter.chunk(&value);
                forward = !events.is_empty();
                event = Bytes::from(events.trim_end_matches('\n').to_string());
            } else if let Some(sse) = self.gemini_sse {
                match crate::vendor::gemini::chunk_from_openai(
                    &value,
                    &self.model,
                    &mut self.pending_calls,
                ) {
                    Some(item) => {
                        event = Bytes::from(if sse {
                            format!("data: {item}")
                        } else {
                            format!("{}{item}", if self.first_item { "[" } else { "," })
                        });
                        self.first_item = false;
                    }
                    None => forward = false,
                }
            } else if !self.client_wants_usage {
                match hide_usage(&mut value) {
                    Unasked::Kept => {}
                    Unasked::Dropped => forward = false,
                    Unasked::Rewritten(rewritten) => event = rewritten,
                }
            }
        }
        let done = event_data(&event).as_deref() == Some("[DONE]");
        if done
            && (self.anthropic.is_some() || self.gemini_sse.is_some() || self.responses.is_some())
        {
            // Anthropic streams end with message_stop and Responses streams with
            // response.completed, sent once usage is known; Gemini's simply end.
            forward = false;
        }
        if self.native {
            return;
        }
        if forward {
            let mut framed = Vec::with_capacity(event.len() + 2);
            framed.extend_from_slice(&event);
            framed.extend_from_slice(b"\n\n");
            self.emit(Bytes::from(framed), done).await;
        }
    }

    /// The events that end a stream cut at its held output the way a vendor ends one that hit
    /// its `max_tokens`, in the client's format: a `length` finish, the usage, the end.
    async fn end_cut(&mut self, tokens: Tokens, choices: i64) {
        let id = format!("chatcmpl-{}", self.reservation_id);
        let created = skein_core::ids::now_ms() / 1000;
        let usage =
            crate::vendor::pivot::openai_usage(tokens.prompt, tokens.completion, tokens.cached, 0);
        if self.native {
            let tail = if self.anthropic.is_some() {
                format!(
                    "event: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
                    json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
                        "usage": {"output_tokens": tokens.completion}}),
                    json!({"type": "message_stop"})
                )
            } else {
                let item = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}],
                    "usageMetadata": {"promptTokenCount": tokens.prompt, "candidatesTokenCount": tokens.completion,
                        "totalTokenCount": tokens.prompt + tokens.completion}});
                match self.gemini_sse {
                    Some(false) => format!("{}{item}", if self.first_item { "[" } else { "," }),
                    _ => format!("data: {item}\n\n"),
                }
            };
            self.first_item = false;
            if let Some(previous) = self.held.take() {
                self.send(previous).await;
            }
            self.tail.push(Bytes::from(tail));
            return;
        }
        // The closing events below are not output: let them through.
        self.cut = false;
        self.output_cap = i64::MAX;
        let finishes: Vec<Value> = (0..choices.max(1))
            .map(|i| json!({"index": i, "delta": {}, "logprobs": null, "finish_reason": "length"}))
            .collect();
        let finish = json!({"id": id, "object": "chat.completion.chunk", "created": created,
            "model": self.model, "choices": finishes});
        let usage = crate::vendor::pivot::openai_usage_chunk(&id, &self.model, created, usage);
        for event in [
            format!("data: {finish}"),
            format!("data: {usage}"),
            "data: [DONE]".to_string(),
        ] {
            self.forward(Bytes::from(event)).await;
        }
        self.cut = true;
    }
}

/// Where a stream is cut: a fifth (and a few tokens) past the output held, because tokens are
/// counted here delta by delta with o200k and a vendor's own tokenizer differs; a vendor that
/// honours the limit it was sent stops well before. A charge beyond the hold is still bounded
/// by the overdraft.
fn cut_at(cap: i64) -> i64 {
    cap.saturating_add(cap / 5).saturating_add(32)
}

/// Bytes of output gathered before they are counted against the hold.
const COUNT_EVERY: usize = 256;

/// Most delivered text kept for counting; beyond it the rest is estimated from its length.
const DELIVERED_KEPT: usize = 1 << 20;

/// Tokens of a stream that ended without the vendor's usage: the prompt and the text that was
/// delivered, counted with the tokenizer.
fn counted(bill: &Bill, state: &StreamState) -> Tokens {
    let prompt = bill
        .messages
        .as_ref()
        .map(|m| i64::try_from(skein_text::tokens::count_messages(m, 765)).unwrap_or(i64::MAX))
        .unwrap_or(bill.prompt_estimate);
    let beyond = state.delivered_text.saturating_sub(state.delivered.len());
    let completion = i64::try_from(skein_text::tokens::count_tokens(&state.delivered))
        .unwrap_or(i64::MAX)
        .saturating_add(if beyond > 0 {
            estimate_tokens(beyond)
        } else {
            0
        });
    Tokens {
        prompt,
        completion,
        ..Tokens::default()
    }
}

/// A streamed answer for its caller.
pub(super) enum Streamed {
    /// Bytes in a client's format.
    Bytes(Reply),
    /// Typed events for an in-process caller.
    Events(ChatStream),
}

/// Relays a streamed answer: reads the upstream's events on a task of the service's own,
/// turns them into the caller's format, counts the output against the hold (ending the
/// stream where the hold runs out), settles, and only then sends the closing events.
pub(super) fn relay_stream(
    resp: reqwest::Response,
    bill: Bill,
    client_wants_usage: bool,
    format: Format,
    mut decoder: Box<dyn StreamDecoder>,
    native: bool,
    responses: Option<super::ResponsesEcho<'_>>,
) -> Streamed {
    let (responses_request, keep_response) = match responses {
        Some(echo) => (Some(echo.request), echo.keep),
        None => (None, None),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let (events_tx, events_rx) = tokio::sync::mpsc::channel::<ChatEvent>(64);
    let typed = format == Format::Events;
    let mut state = StreamState {
        tx: (!typed).then_some(tx),
        events: typed.then_some(events_tx),
        anthropic: (format == Format::Anthropic)
            .then(|| crate::vendor::anthropic::StreamConverter::new(&bill.meter.model)),
        responses: (format == Format::Responses).then(|| {
            crate::vendor::openai::responses::StreamConverter::new(
                responses_request.unwrap_or(&Value::Null),
                &bill.meter.model,
            )
        }),
        keep_response,
        gemini_sse: match format {
            Format::Gemini { sse } => Some(sse),
            _ => None,
        },
        model: bill.meter.model.clone(),
        pending_calls: Vec::new(),
        first_item: true,
        client_wants_usage,
        tokens: None,
        delivered_text: 0,
        delivered: String::new(),
        first_token: None,
        client_gone: false,
        started: bill.meter.started,
        reservation_id: bill.meter.reservation_id.clone(),
        native,
        write_timeout: bill.meter.svc.tuning.client_write_timeout,
        tail: Vec::new(),
        held: None,
        output_cap: bill.output_cap,
        output_seen: 0,
        uncounted: String::new(),
        cut: false,
    };
    let tasks = bill.meter.svc.tasks.clone();
    tasks.spawn_in_current_span(async move {
        let mut upstream = resp.bytes_stream();
        let mut splitter = if decoder.ndjson() {
            SseSplitter::lines()
        } else {
            SseSplitter::default()
        };
        let mut broken = false;
        // The upstream said in its stream that it failed (a passed-through client heard it).
        let mut reported = false;
        let idle = bill.meter.idle;
        let cancel = bill.cancel.clone();
        let cancelled = async move {
            match cancel {
                Some(cancel) => cancel.cancelled_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(cancelled);
        let mut stopped = false;
        'read: loop {
            let next = tokio::select! {
                biased;
                () = &mut cancelled => {
                    // The in-process caller stopped the answer: drop the upstream connection
                    // so the vendor stops generating, and bill what was delivered.
                    stopped = true;
                    break;
                }
                next = tokio::time::timeout(idle, upstream.next()) => next,
            };
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    broken = true;
                    break;
                }
            };
            for event in splitter.push(&chunk) {
                if state.native {
                    state.send_native(&event).await;
                }
                match decoder.event(event) {
                    Ok(events) => {
                        for event in events {
                            state.forward(event).await;
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "the upstream reported an error mid-stream");
                        broken = true;
                        reported = true;
                        break 'read;
                    }
                }
                if state.cut {
                    break 'read;
                }
            }
        }
        // Closing the connection stops a vendor that writes past its limit.
        drop(upstream);
        let cut = state.cut;
        let tail = if broken || stopped || cut {
            decoder.partial()
        } else {
            decoder.finish()
        };
        for event in tail {
            state.forward(event).await;
        }
        let (tokens, status) = match (state.tokens, broken) {
            _ if cut => {
                // Billed for the output that was held (the vendor's count never came).
                let mut tokens = counted(&bill, &state);
                tokens.completion = tokens.completion.min(state.output_cap);
                (tokens, "length_cut")
            }
            (Some(tokens), _) if stopped => (tokens, "stopped"),
            (None, _) if stopped => (counted(&bill, &state), "stopped"),
            (Some(tokens), false) => (
                tokens,
                if state.client_gone {
                    "client_closed"
                } else {
                    "ok"
                },
            ),
            (Some(tokens), true) => (tokens, "partial"),
            (None, _) => (
                counted(&bill, &state),
                if broken { "partial" } else { "estimated" },
            ),
        };
        if cut {
            state.end_cut(tokens, bill.choices).await;
        }
        let first_token = state.first_token;
        // The charge is committed before the stream's last event leaves: a client never holds
        // a finished answer that the ledger does not.
        let charge = bill.settle(tokens, status, first_token).await;
        if typed {
            // An in-process caller hears of a break, then the charge: nothing follows it.
            if broken && !stopped {
                state
                    .send_event(ChatEvent::Error(StreamError {
                        code: "upstream_error".into(),
                        message: "The upstream stream broke off.".into(),
                    }))
                    .await;
            }
            if let Some(charge) = charge {
                state.send_event(ChatEvent::Done(charge)).await;
            }
            return;
        }
        if let Some(last) = state.held.take() {
            state.send(last).await;
        }
        // A passed-through client already has the vendor's own error event.
        let told = state.native && reported && state.gemini_sse != Some(false);
        if let Some(converter) = state.responses.as_mut()
            && !state.client_gone
        {
            // Cut or not, a Responses stream ends with its response: completed (incomplete
            // when cut at the held output) or failed.
            let closing = if broken {
                converter.error("The upstream stream broke off.")
            } else {
                converter.finish()
            };
            if let Some(keep) = state.keep_response.take() {
                keep(converter.response().clone()).await;
            }
            state.tail.push(Bytes::from(closing));
        } else if !state.client_gone && !told && !cut {
            let first_item = state.first_item;
            let gemini_sse = state.gemini_sse;
            let tail = match (state.anthropic.as_mut(), broken) {
                // A native Anthropic stream already carries message_stop.
                (Some(_), false) if state.native => None,
                (Some(_), true) => Some(crate::vendor::anthropic::StreamConverter::error(
                    "The upstream stream broke off.",
                )),
                (Some(converter), false) => Some(converter.finish()),
                (None, broken) if gemini_sse.is_some() => {
                    let open = if first_item { "[" } else { "," };
                    let error = crate::vendor::gemini::errors::stream_broke();
                    match (gemini_sse, broken) {
                        (Some(true), true) => Some(format!("data: {error}\n\n")),
                        (Some(true), false) => None,
                        (_, true) => Some(format!("{open}{error}]")),
                        (_, false) => Some(if first_item {
                            "[]".to_string()
                        } else {
                            "]".to_string()
                        }),
                    }
                }
                (None, true) => {
                    let error = crate::vendor::openai::errors::stream_broke();
                    Some(format!("data: {error}\n\n"))
                }
                (None, false) => None,
            };
            if let Some(tail) = tail {
                state.tail.insert(0, Bytes::from(tail));
            }
        }
        if cut && state.gemini_sse == Some(false) {
            state.tail.push(Bytes::from_static(b"]"));
        }
        if cut && state.anthropic.is_some() && !state.native {
            let closing = state
                .anthropic
                .as_mut()
                .map(crate::vendor::anthropic::StreamConverter::finish);
            if let Some(closing) = closing {
                state.tail.push(Bytes::from(closing));
            }
        }
        for event in std::mem::take(&mut state.tail) {
            state.send(event).await;
        }
    });
    if typed {
        let mut events_rx = events_rx;
        return Streamed::Events(Box::pin(futures::stream::poll_fn(move |cx| {
            events_rx.poll_recv(cx)
        })));
    }
    let content_type = if format == (Format::Gemini { sse: false }) {
        "application/json"
    } else {
        "text/event-stream"
    };
    Streamed::Bytes(Reply::stream(HeaderValue::from_static(content_type), rx))
}
