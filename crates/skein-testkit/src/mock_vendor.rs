//! The harness every mock vendor shares: [`MockVendor`] starts a vendor's routes on an
//! ephemeral port, records every request (path, headers, body), answers the faults and the
//! script a test queued, streams answers cut at odd byte boundaries, and stops when dropped.
//!
//! A vendor module ([`crate::mock_openai`], [`crate::mock_anthropic`], [`crate::mock_gemini`])
//! keeps only its wire format: a [`WireFormat`] with its routes, its error bodies and how it
//! authenticates. One [`Fault`] enum and one set of method names serve all three:
//!
//! - `start(key)`, then `base_url` and `key` for a channel;
//! - `fail_next(Fault)` to queue a fault for the next request;
//! - `set_*` to script the answers from now on (`set_reply`, `set_cached_tokens`,
//!   `set_reasoning`, `set_stream_pause`, …);
//! - `received()`, `requests()`, `usages()`, `header_values(name)` to read what happened;
//! - `revoke_key(bool)`, `stop_recording()`; dropped, the server stops.
//!
//! [`MockVendor`] is generic only in which wire format it started with
//! ([`crate::mock_openai::MockOpenAi`] is `MockVendor<OpenAi>`); [`MockVendor::into_any`]
//! forgets it, so code that handles every vendor holds a plain `MockVendor`.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

/// What the next request gets instead of a normal answer, in the vendor's own terms.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with the vendor's error body for it (and `Retry-After` where the
    /// vendor sends one).
    Status(u16),
    /// Refuse as the vendor refuses an account without credit or quota left.
    NoCredit,
    /// Refuse as the vendor's content review refuses a prompt.
    ContentFilter,
    /// Stream this many content pieces, then break the connection (no usage, no end marker).
    DieAfter(usize),
    /// Stream this many content pieces, then the vendor's in-stream error event (only vendors
    /// that have one: see [`WireFormat::ERROR_EVENTS`]).
    ErrorEventAfter(usize),
    /// Wait this long before answering (a slow first byte).
    Delay(Duration),
}

/// Where a stream is cut short, from the fault that applies to a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    /// Break the connection after this many content pieces.
    pub die_after: Option<usize>,
    /// Send the vendor's error event after this many content pieces.
    pub error_after: Option<usize>,
}

impl Cut {
    /// Whether the stream stops before content piece `i` (and how: see the fields).
    pub fn stops_at(&self, i: usize) -> bool {
        self.die_after == Some(i) || self.error_after == Some(i)
    }
}

/// A request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query (`/v1beta/models/m:streamGenerateContent?alt=sse`).
    pub path: String,
    /// Headers, plus `x-mock-path` (the path and query).
    pub headers: HeaderMap,
    /// The body as JSON, or for a multipart upload the mock's summary of it.
    pub body: Value,
}

/// How the answers go from now on (set through [`MockVendor`]'s `set_*` methods). A vendor
/// honours what its wire format can express; each setter says which.
#[derive(Debug, Clone)]
pub struct Script {
    /// Pause between the pieces of every stream (to hold many streams open at once).
    pub stream_pause: Duration,
    /// Answer this text instead of the echo.
    pub reply: Option<String>,
    /// Prompt tokens reported as read from the cache.
    pub cached_tokens: i64,
    /// Reasoning done before the answer (its text where the vendor sends it, its words counted
    /// as output tokens).
    pub reasoning: Option<String>,
    /// Write past the client's output limit, as a misbehaving upstream would (OpenAI).
    pub ignore_max_tokens: bool,
    /// Report this many times the prompt tokens (OpenAI: a tokenizer that counts more).
    pub prompt_scale: i64,
    /// Report token usage on reranks (Jina's shape) or search units (Cohere's) (OpenAI).
    pub rerank_usage: bool,
    /// Send usage only in the last stream item instead of in every one (Gemini).
    pub usage_only_at_end: bool,
    /// Rounds of tool calls before answering in words, while tools are offered (OpenAI).
    pub tool_rounds: usize,
    /// Call this tool (by name, offered or not) instead of the first one offered (OpenAI).
    pub tool_name: Option<String>,
    /// Call the tool with these arguments (JSON text) instead of `{"city": <question>}`
    /// (OpenAI).
    pub tool_arguments: Option<String>,
    /// Wait this long before every answer that has no fault queued (a slow upstream).
    pub delay: Duration,
    /// The account's balance, where the vendor reports one (in its currency).
    pub balance: f64,
    /// Models the account has no access to: a chat with one is refused as the vendor refuses
    /// it (OpenAI: 404 `model_not_found`).
    pub missing_models: Vec<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            stream_pause: Duration::ZERO,
            reply: None,
            cached_tokens: 0,
            reasoning: None,
            ignore_max_tokens: false,
            prompt_scale: 1,
            rerank_usage: true,
            usage_only_at_end: false,
            tool_rounds: 1,
            tool_name: None,
            tool_arguments: None,
            delay: Duration::ZERO,
            balance: 110.0,
            missing_models: Vec::new(),
        }
    }
}

/// What a mock remembers between requests.
struct State {
    faults: VecDeque<Fault>,
    requests: Vec<Received>,
    usages: Vec<Value>,
    /// Whether to keep requests (a load test would grow without bound).
    record: bool,
    /// The account's key was revoked: every request, the model list included, is refused.
    revoked: bool,
    script: Script,
}

/// What a request found when it arrived: the fault it takes and the script of the moment.
pub struct Admission {
    /// The fault queued for this request, if any.
    pub fault: Option<Fault>,
    /// The script in force.
    pub script: Script,
}

/// The state a vendor's handlers share (axum's router state).
#[derive(Clone)]
pub struct Shared {
    key: String,
    state: Arc<Mutex<State>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("mock lock")
    }

    /// The key requests must carry: none matches once it was revoked.
    pub fn key(&self) -> String {
        if self.lock().revoked {
            "revoked\u{1}".to_string()
        } else {
            self.key.clone()
        }
    }

    /// Whether header `name` carries the key, after `prefix` (`"Bearer "` or `""`).
    pub fn authorized(&self, headers: &HeaderMap, name: &str, prefix: &str) -> bool {
        let expected = format!("{prefix}{}", self.key());
        headers.get(name).and_then(|v| v.to_str().ok()) == Some(expected.as_str())
    }

    /// Records a request (unless recording stopped) and takes the next queued fault.
    pub fn admit(&self, headers: &HeaderMap, body: Value) -> Admission {
        let mut state = self.lock();
        if state.record {
            let path = headers
                .get(PATH_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            state.requests.push(Received {
                path,
                headers: headers.clone(),
                body,
            });
        }
        let delay = state.script.delay;
        let fault = state
            .faults
            .pop_front()
            .or_else(|| (!delay.is_zero()).then_some(Fault::Delay(delay)));
        Admission {
            fault,
            script: state.script.clone(),
        }
    }

    /// The script in force.
    pub fn script(&self) -> Script {
        self.lock().script.clone()
    }

    /// Remembers the usage of an answer given (what a bill should come from).
    pub fn record_usage(&self, usage: Value) {
        self.lock().usages.push(usage);
    }
}

/// The header the harness adds to every request: its path and query.
pub const PATH_HEADER: &str = "x-mock-path";

/// A vendor's wire format: what a vendor module supplies to the harness.
pub trait WireFormat: Send + Sync + 'static {
    /// The vendor's name, for messages.
    const VENDOR: &'static str;
    /// Bytes per piece of a streamed body (cut ignoring event boundaries, as networks do).
    const PIECE_BYTES: usize;
    /// Whether the vendor's streams have an error event ([`Fault::ErrorEventAfter`]).
    const ERROR_EVENTS: bool;
    /// The vendor's routes.
    fn routes() -> Router<Shared>;
    /// The vendor's error answer for `status` (with `Retry-After` where it sends one).
    fn status_error(status: u16) -> Response;
    /// The vendor's refusal of an account without credit.
    fn no_credit() -> Response;
    /// The vendor's content-review refusal (a plain 400 for vendors without one).
    fn content_filter() -> Response {
        Self::status_error(400)
    }
}

/// Applies a request's fault: `Err` is the answer to send instead (after any delay), `Ok`
/// where its stream is cut short.
pub async fn apply<W: WireFormat>(fault: Option<Fault>) -> Result<Cut, Response> {
    match fault {
        None => Ok(Cut::default()),
        Some(Fault::Status(code)) => Err(W::status_error(code)),
        Some(Fault::NoCredit) => Err(W::no_credit()),
        Some(Fault::ContentFilter) => Err(W::content_filter()),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(Cut::default())
        }
        Some(Fault::DieAfter(n)) => Ok(Cut {
            die_after: Some(n),
            error_after: None,
        }),
        Some(Fault::ErrorEventAfter(n)) => Ok(Cut {
            die_after: None,
            error_after: Some(n),
        }),
    }
}

/// Aborts the server task when the last handle goes.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The wire format of a mock whose vendor was forgotten ([`MockVendor::into_any`]).
#[derive(Debug)]
pub enum AnyVendor {}

/// A running mock vendor speaking wire format `W`; dropped, it stops.
pub struct MockVendor<W = AnyVendor> {
    /// `http://127.0.0.1:PORT` (use as a channel's base URL).
    pub base_url: String,
    /// The API key it accepts.
    pub key: String,
    /// The vendor it speaks ([`WireFormat::VENDOR`]).
    pub vendor: &'static str,
    error_events: bool,
    shared: Shared,
    _task: Task,
    _wire: PhantomData<fn() -> W>,
}

impl<W: WireFormat> MockVendor<W> {
    /// Starts a mock of `W` that accepts `key`, on an ephemeral port.
    pub async fn start(key: &str) -> MockVendor<W> {
        let shared = Shared {
            key: key.to_string(),
            state: Arc::new(Mutex::new(State {
                faults: VecDeque::new(),
                requests: Vec::new(),
                usages: Vec::new(),
                record: true,
                revoked: false,
                script: Script::default(),
            })),
        };
        let app = W::routes()
            .layer(axum::middleware::from_fn(note_path))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockVendor {
            base_url,
            key: key.to_string(),
            vendor: W::VENDOR,
            error_events: W::ERROR_EVENTS,
            shared,
            _task: Task(task),
            _wire: PhantomData,
        }
    }
}

impl<W> MockVendor<W> {
    /// Queues a fault for the next request (faults apply in order, one per request).
    ///
    /// # Panics
    /// When the vendor cannot express the fault (an error event on a vendor without one).
    pub fn fail_next(&self, fault: Fault) {
        assert!(
            self.error_events || !matches!(fault, Fault::ErrorEventAfter(_)),
            "{} streams have no error event: {fault:?} cannot be scripted",
            self.vendor
        );
        self.shared.lock().faults.push_back(fault);
    }

    /// The same mock, whatever its vendor (for code that handles every vendor alike).
    pub fn into_any(self) -> MockVendor {
        MockVendor {
            base_url: self.base_url,
            key: self.key,
            vendor: self.vendor,
            error_events: self.error_events,
            shared: self.shared,
            _task: self._task,
            _wire: PhantomData,
        }
    }

    fn script(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.shared.lock().script);
    }

    /// Revokes (`true`) or restores the key, as a vendor's console would: while revoked every
    /// request is refused as unauthenticated, the model list included.
    pub fn revoke_key(&self, revoked: bool) {
        self.shared.lock().revoked = revoked;
    }

    /// Stops keeping requests (for load tests) and forgets those kept.
    pub fn stop_recording(&self) {
        let mut state = self.shared.lock();
        state.record = false;
        state.requests.clear();
    }

    /// Refuses chats with `models` from now on, as for an account without access to them
    /// (OpenAI).
    pub fn set_missing_models(&self, models: &[&str]) {
        let models = models.iter().map(|m| m.to_string()).collect();
        self.script(|s| s.missing_models = models);
    }

    /// Waits this long before every answer from now on (a slow upstream; a queued fault
    /// replaces the wait for its request).
    pub fn set_delay(&self, delay: Duration) {
        self.script(|s| s.delay = delay);
    }

    /// Reports `amount` as the account's balance from now on (vendors with a balance
    /// endpoint; 110 by default).
    pub fn set_balance(&self, amount: f64) {
        self.script(|s| s.balance = amount);
    }

    /// Pauses this long between the pieces of every stream from now on.
    pub fn set_stream_pause(&self, pause: Duration) {
        self.script(|s| s.stream_pause = pause);
    }

    /// Answers `text` (a word a piece when streamed) instead of the echo, from now on.
    pub fn set_reply(&self, text: &str) {
        self.script(|s| s.reply = Some(text.to_string()));
    }

    /// Reports this many prompt tokens as read from the cache, in the vendor's terms: OpenAI's
    /// `cached_tokens` and Gemini's `cachedContentTokenCount` are part of the prompt count,
    /// Anthropic's `cache_read_input_tokens` apart from `input_tokens`.
    pub fn set_cached_tokens(&self, tokens: i64) {
        self.script(|s| s.cached_tokens = tokens);
    }

    /// Reasons `text` before answering: Anthropic sends a signed thinking block, Gemini a
    /// `thought: true` part (counted in `thoughtsTokenCount`), OpenAI only counts it
    /// (`reasoning_tokens`, part of `completion_tokens`).
    pub fn set_reasoning(&self, text: Option<&str>) {
        self.script(|s| s.reasoning = text.map(str::to_string));
    }

    /// Ignores the client's output limit from now on (`true`), writing the whole reply as a
    /// misbehaving upstream would (OpenAI); by default the reply stops there.
    pub fn set_ignore_max_tokens(&self, on: bool) {
        self.script(|s| s.ignore_max_tokens = on);
    }

    /// Reports `scale` times the prompt tokens from now on (OpenAI; 1 is the default).
    pub fn set_prompt_scale(&self, scale: i64) {
        self.script(|s| s.prompt_scale = scale.max(1));
    }

    /// Answers reranks with token usage (Jina's shape, the default) or without it (Cohere's
    /// search units) (OpenAI).
    pub fn set_rerank_usage(&self, on: bool) {
        self.script(|s| s.rerank_usage = on);
    }

    /// Sends usage only in the last stream item instead of in every one (Gemini).
    pub fn set_usage_only_at_end(&self, on: bool) {
        self.script(|s| s.usage_only_at_end = on);
    }

    /// Calls an offered tool `rounds` times in a row (a new call after each tool result)
    /// before answering in words, as a model working through a task does (OpenAI; 1 by
    /// default: the first tool result is answered).
    pub fn set_tool_rounds(&self, rounds: usize) {
        self.script(|s| s.tool_rounds = rounds);
    }

    /// Calls tool `name` (offered or not, to test a model that makes one up) with
    /// `arguments` (JSON text, or any text) instead of the first offered tool with
    /// `{"city": <question>}`; `None` returns to the default (OpenAI).
    pub fn set_tool_call(&self, name: Option<&str>, arguments: Option<&str>) {
        let (name, arguments) = (name.map(str::to_string), arguments.map(str::to_string));
        self.script(|s| {
            s.tool_name = name;
            s.tool_arguments = arguments;
        });
    }

    /// The requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().requests.clone()
    }

    /// The bodies of the requests received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// The usage of every answer given so far, in the vendor's terms (what a bill should
    /// come from).
    pub fn usages(&self) -> Vec<Value> {
        self.shared.lock().usages.clone()
    }

    /// One header of every request received so far (empty when absent); `x-mock-path` is
    /// the path and query each arrived on.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.shared
            .lock()
            .requests
            .iter()
            .map(|r| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// The `Authorization` headers received so far (empty when absent).
    pub fn authorizations(&self) -> Vec<String> {
        self.header_values("authorization")
    }
}

/// Notes each request's path and query in [`PATH_HEADER`], so every route records it.
async fn note_path(mut request: Request, next: Next) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&path) {
        request.headers_mut().insert(PATH_HEADER, value);
    }
    next.run(request).await
}

/// A body that streams `pieces`, pausing `pause` before each, and ending in a broken
/// connection when `died`.
pub fn streamed_body(pieces: Vec<Bytes>, pause: Duration, died: bool) -> Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = pieces.into_iter().map(Ok).collect();
    let stream = futures::StreamExt::then(futures::stream::iter(pieces), move |piece| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        piece
    });
    if died {
        Body::from_stream(futures::StreamExt::chain(
            stream,
            // A moment first, so the headers and the pieces before it reach the client.
            futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(std::io::Error::other("mock died"))
            }),
        ))
    } else {
        Body::from_stream(stream)
    }
}

/// A `text/event-stream` answer of `events`, cut into `W::PIECE_BYTES`-byte pieces that
/// ignore event boundaries, ending in a broken connection when `died`.
pub fn event_stream<W: WireFormat>(events: Vec<String>, pause: Duration, died: bool) -> Response {
    let all = events.concat().into_bytes();
    let pieces = all
        .chunks(W::PIECE_BYTES)
        .map(Bytes::copy_from_slice)
        .collect();
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(streamed_body(pieces, pause, died))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Words in `text` split on whitespace: the mocks' tokens.
pub fn words(text: &str) -> i64 {
    text.split_whitespace().count() as i64
}
