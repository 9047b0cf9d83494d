//! Distributed traces: a `tracing` layer that turns Skein's spans into OpenTelemetry spans
//! and sends them to a collector over OTLP/HTTP with the JSON encoding.
//!
//! Why hand-written rather than `opentelemetry` + `opentelemetry-otlp` + `tracing-opentelemetry`:
//! that stack adds about forty crates (prost, the SDK's runtime and metrics machinery) to a
//! build that runs on two shared cores, for the one thing needed here — spans with ids,
//! parents, times and attributes, batched to `/v1/traces`. OTLP/HTTP JSON is a stable part of
//! the OTLP specification, every collector (the OpenTelemetry Collector, Tempo, Jaeger,
//! Honeycomb) accepts it, and this is one file (about 600 lines with its tests) on crates
//! already in the tree.
//!
//! What becomes a span: every span from Skein's own crates (targets `skein*`) at INFO or
//! above, whatever the log level; and every SQL statement, from the event sqlx writes when a
//! statement finishes (its elapsed time gives the start), as a child of the span that ran it.
//! Fields named `otel.name`, `otel.kind` (`server`, `client`) and `otel.status_code`
//! (`ERROR`) set the span's name, kind and status; a `traceparent` field on a span without
//! a parent continues the caller's trace.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use skein_core::config::TelemetryConfig;
use skein_core::trace::TraceParent;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Spans queued for export at most; past it new spans are dropped (and counted), so a
/// collector that is down never grows the process's memory.
const QUEUE: usize = 8192;
/// Spans per export request at most.
const BATCH: usize = 512;
/// A span waits at most this long before it is sent.
const INTERVAL: Duration = Duration::from_millis(500);
/// sqlx's target for the event it writes when a statement finishes.
const SQLX: &str = "sqlx::query";

/// Spans dropped because the export queue was full.
static DROPPED: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_trace_spans_dropped_total",
    "Trace spans dropped because the OTLP export queue was full (the collector is slow or down).",
    &[],
);
/// Export requests by outcome.
static EXPORTS: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_trace_exports_total",
    "OTLP trace export requests, by outcome (ok, error).",
    &["outcome"],
);

/// The OTLP/HTTP endpoint and what every export carries, before the exporter starts.
pub struct Exporter {
    url: String,
    headers: Vec<(String, String)>,
    service_name: String,
    ratio: f64,
}

impl Exporter {
    /// The exporter `config` asks for: its endpoint, else the standard `OTEL_*` variables;
    /// `None` when neither names one (traces off).
    pub fn from_config(config: &TelemetryConfig) -> Option<Exporter> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let traces_url = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
        let url = match &config.otlp_endpoint {
            Some(base) => traces_url(base),
            None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                Some(full) => full,
                None => traces_url(&env("OTEL_EXPORTER_OTLP_ENDPOINT")?),
            },
        };
        // `key=value,key=value`, percent-encoded values (an authorization header, typically).
        let headers = env("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|list| {
                list.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.trim().to_string(), percent_decode(v.trim())))
                    .filter(|(k, _)| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(Exporter {
            url,
            headers,
            service_name: env("OTEL_SERVICE_NAME").unwrap_or_else(|| config.service_name.clone()),
            ratio: config.sample_ratio.clamp(0.0, 1.0),
        })
    }

    /// Starts the export thread and answers the layer that feeds it.
    pub fn start(self) -> OtlpLayer {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE);
        let resource = json!({"attributes": [
            attribute("service.name", &Attr::Str(self.service_name.clone())),
            attribute("service.version", &Attr::Str(env!("CARGO_PKG_VERSION").into())),
            attribute("telemetry.sdk.name", &Attr::Str("skein".into())),
            attribute("telemetry.sdk.language", &Attr::Str("rust".into())),
        ]});
        let url = self.url.clone();
        let headers = self.headers;
        let spawned = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || export_loop(&url, &headers, &resource, &receiver));
        if let Err(error) = spawned {
            eprintln!("traces off: cannot start the export thread: {error}");
        }
        let _ = SENDER.set(Mutex::new(sender.clone()));
        OtlpLayer {
            sender,
            ratio: self.ratio,
            url: self.url,
        }
    }
}

/// Which callsites the trace layer sees: Skein's spans at INFO and above, sqlx's statement
/// events, and Skein's errors (which mark their span failed).
pub fn filter() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    FilterFn::new(traced)
}

fn traced(meta: &Metadata<'_>) -> bool {
    let ours = meta.target().starts_with("skein");
    if meta.is_span() {
        ours && *meta.level() <= Level::INFO
    } else {
        meta.target() == SQLX || (ours && *meta.level() == Level::ERROR)
    }
}

/// The layer: keeps each live span's context in its extensions and queues finished spans.
pub struct OtlpLayer {
    sender: SyncSender<Message>,
    ratio: f64,
    url: String,
}

impl OtlpLayer {
    /// Where spans go.
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    fn queue(&self, span: Finished) {
        match self.sender.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => DROPPED.inc(&[]),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A span being recorded (in the registry's extensions of its `tracing` span).
struct Live {
    context: TraceParent,
    parent: Option<[u8; 8]>,
    name: String,
    kind: u8,
    start: u64,
    attributes: Vec<(String, Attr)>,
    error: bool,
}

/// A finished span, on its way to the exporter.
struct Finished {
    context: TraceParent,
    parent: Option<[u8; 8]>,
    name: String,
    kind: u8,
    start: u64,
    end: u64,
    attributes: Vec<(String, Attr)>,
    error: bool,
}

enum Message {
    Span(Box<Finished>),
    Flush(SyncSender<()>),
}

/// An attribute's value.
#[derive(Debug, Clone)]
enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// OTLP span kinds.
const INTERNAL: u8 = 1;
const SERVER: u8 = 2;
const CLIENT: u8 = 3;

/// Reads a span's or event's fields: the `otel.*` controls, `traceparent`, and the rest as
/// attributes.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    kind: Option<u8>,
    error: bool,
    traceparent: Option<String>,
    attributes: Vec<(String, Attr)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Attr) {
        match (field.name(), &value) {
            ("otel.name", Attr::Str(name)) => self.name = Some(name.clone()),
            ("otel.kind", Attr::Str(kind)) => {
                self.kind = Some(match kind.to_ascii_lowercase().as_str() {
                    "server" => SERVER,
                    "client" => CLIENT,
                    _ => INTERNAL,
                });
            }
            ("otel.status_code", Attr::Str(code)) => {
                self.error = code.eq_ignore_ascii_case("error")
            }
            ("traceparent", Attr::Str(value)) => self.traceparent = Some(value.clone()),
            // The log lines' copy of the span's own trace id.
            ("trace_id", _) => {}
            (name, _) => self.attributes.push((name.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Attr::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Attr::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Attr::Int(i64::try_from(value).unwrap_or(i64::MAX)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Attr::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Attr::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Attr::Str(format!("{value:?}")));
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A random id that is not all zeros (which W3C reserves for "invalid").
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        rand::Rng::fill(&mut rand::thread_rng(), &mut id[..]);
        if id != [0; N] {
            return id;
        }
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<Live>().map(|live| live.context));
        let (trace_id, parent, sampled) = match parent {
            Some(parent) => (parent.trace_id, Some(parent.span_id), parent.sampled),
            None => match fields.traceparent.as_deref().and_then(TraceParent::parse) {
                // The caller's trace goes on. Its decision to record it stands for Skein's own
                // processes (`/internal/*`, behind the internal token); an outside client's
                // "sampled" is one vote more, so it cannot have every request it sends
                // recorded past `sample_ratio`.
                Some(remote) => {
                    let internal = fields.attributes.iter().any(|(name, value)| {
                        name == "route"
                            && matches!(value, Attr::Str(r) if r.starts_with("/internal/"))
                    });
                    let sampled = remote.sampled
                        && (internal || self.ratio >= 1.0 || rand::random::<f64>() < self.ratio);
                    (remote.trace_id, Some(remote.span_id), sampled)
                }
                None => (
                    random_id::<16>(),
                    None,
                    self.ratio >= 1.0 || rand::random::<f64>() < self.ratio,
                ),
            },
        };
        let live = Live {
            context: TraceParent {
                trace_id,
                span_id: random_id::<8>(),
                sampled,
            },
            parent,
            name: fields
                .name
                .unwrap_or_else(|| attrs.metadata().name().to_string()),
            kind: fields.kind.unwrap_or(INTERNAL),
            start: now_nanos(),
            attributes: fields.attributes,
            error: fields.error,
        };
        span.extensions_mut().insert(live);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        let mut extensions = span.extensions_mut();
        let Some(live) = extensions.get_mut::<Live>() else {
            return;
        };
        if let Some(name) = fields.name {
            live.name = name;
        }
        live.error |= fields.error;
        for (key, value) in fields.attributes {
            match live.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => live.attributes.push((key, value)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        if event.metadata().target() != SQLX {
            // One of Skein's errors: the span it happened in failed.
            if let Some(live) = span.extensions_mut().get_mut::<Live>() {
                live.error = true;
            }
            return;
        }
        let Some(parent) = span.extensions().get::<Live>().map(|live| live.context) else {
            return;
        };
        if !parent.sampled {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut summary = String::from("db.query");
        let mut statement = None;
        let mut elapsed = 0.0;
        let mut attributes = Vec::new();
        for (key, value) in fields.attributes {
            match (key.as_str(), value) {
                ("summary", Attr::Str(text)) => summary = text,
                ("db.statement", Attr::Str(text)) => {
                    statement = Some(text.trim().to_string()).filter(|t| !t.is_empty())
                }
                ("elapsed_secs", Attr::Float(secs)) => elapsed = secs,
                ("rows_affected" | "rows_returned", value) => {
                    attributes.push((format!("db.{key}"), value))
                }
                _ => {}
            }
        }
        // The whole statement when sqlx shortened it to a summary (never parameters: they
        // are bound, not part of the text).
        let text = statement.unwrap_or_else(|| summary.trim_end_matches(" …").to_string());
        attributes.push(("db.query.text".into(), Attr::Str(text)));
        let end = now_nanos();
        let took = (elapsed.max(0.0) * 1e9) as u64;
        let name: String = summary.chars().take(80).collect();
        self.queue(Finished {
            context: TraceParent {
                trace_id: parent.trace_id,
                span_id: random_id::<8>(),
                sampled: true,
            },
            parent: Some(parent.span_id),
            name,
            kind: CLIENT,
            start: end.saturating_sub(took),
            end,
            attributes,
            error: false,
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(live) = span.extensions_mut().remove::<Live>() else {
            return;
        };
        if !live.context.sampled {
            return;
        }
        self.queue(Finished {
            context: live.context,
            parent: live.parent,
            name: live.name,
            kind: live.kind,
            start: live.start,
            end: now_nanos(),
            attributes: live.attributes,
            error: live.error,
        });
    }
}

/// Makes `skein_core::trace` answer spans' contexts from this layer's records, so outgoing
/// requests carry `traceparent`.
pub fn install_hook() {
    skein_core::trace::set_context_hook(context_of);
}

fn context_of(span: &tracing::Span) -> Option<TraceParent> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        // The nearest span this layer records (the current one may be a library's).
        span.scope()
            .find_map(|s| s.extensions().get::<Live>().map(|live| live.context))
    })
    .flatten()
}

static SENDER: OnceLock<Mutex<SyncSender<Message>>> = OnceLock::new();

/// Asks the export thread to send what it holds and waits up to `limit` for it.
pub fn flush(limit: Duration) {
    let Some(sender) = SENDER.get() else { return };
    let (done, wait) = std::sync::mpsc::sync_channel(1);
    let sent = match sender.lock() {
        Ok(sender) => sender.try_send(Message::Flush(done)).is_ok(),
        Err(_) => false,
    };
    if sent {
        let _ = wait.recv_timeout(limit);
    }
}

/// The export thread: batches spans and POSTs them, on a runtime of its own so it works
/// before, after and outside the server's.
fn export_loop(
    url: &str,
    headers: &[(String, String)],
    resource: &Value,
    receiver: &Receiver<Message>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("traces off: cannot start the export runtime: {error}");
            return;
        }
    };
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            eprintln!("traces off: cannot build the export client: {error}");
            return;
        }
    };
    let mut batch: Vec<Finished> = Vec::new();
    let mut oldest = Instant::now();
    let mut last_complaint: Option<Instant> = None;
    loop {
        let wait = INTERVAL.saturating_sub(oldest.elapsed());
        let message = receiver.recv_timeout(if batch.is_empty() { INTERVAL } else { wait });
        let mut flushed = None;
        let stop = match message {
            Ok(Message::Span(span)) => {
                if batch.is_empty() {
                    oldest = Instant::now();
                }
                batch.push(*span);
                false
            }
            Ok(Message::Flush(done)) => {
                flushed = Some(done);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = batch.len() >= BATCH || oldest.elapsed() >= INTERVAL;
        if !batch.is_empty() && (due || stop || flushed.is_some()) {
            let body = encode(resource, &batch);
            batch.clear();
            let mut request = http
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let outcome = runtime.block_on(async {
                match request.send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("the collector answered {}", response.status())),
                    Err(error) => Err(error.to_string()),
                }
            });
            match outcome {
                Ok(()) => EXPORTS.inc(&["ok"]),
                Err(error) => {
                    EXPORTS.inc(&["error"]);
                    // Once a minute at most: a collector that is down must not flood the log.
                    if last_complaint.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        last_complaint = Some(Instant::now());
                        tracing::warn!(%error, "trace export failed; spans dropped");
                    }
                }
            }
        }
        if let Some(done) = flushed {
            let _ = done.try_send(());
        }
        if stop {
            return;
        }
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids in hex, 64-bit integers as
/// strings).
fn encode(resource: &Value, spans: &[Finished]) -> Vec<u8> {
    let spans: Vec<Value> = spans
        .iter()
        .map(|span| {
            let mut out = json!({
                "traceId": hex::encode(span.context.trace_id),
                "spanId": hex::encode(span.context.span_id),
                "name": span.name,
                "kind": span.kind,
                "startTimeUnixNano": span.start.to_string(),
                "endTimeUnixNano": span.end.max(span.start).to_string(),
                "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                "flags": u32::from(span.context.sampled),
                "status": {"code": if span.error { 2 } else { 0 }},
            });
            if let Some(parent) = span.parent {
                out["parentSpanId"] = Value::String(hex::encode(parent));
            }
            out
        })
        .collect();
    let request = json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{
            "scope": {"name": "skein", "version": env!("CARGO_PKG_VERSION")},
            "spans": spans,
        }],
    }]});
    serde_json::to_vec(&request).unwrap_or_default()
}

fn attribute(key: &str, value: &Attr) -> Value {
    let value = match value {
        Attr::Str(text) => json!({"stringValue": text}),
        Attr::Int(n) => json!({"intValue": n.to_string()}),
        Attr::Float(x) => json!({"doubleValue": x}),
        Attr::Bool(b) => json!({"boolValue": b}),
    };
    json!({"key": key, "value": value})
}

/// `%XX` escapes decoded (the `OTEL_EXPORTER_OTLP_HEADERS` format); anything malformed is
/// kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_percent_decoded() {
        assert_eq!(percent_decode("Bearer%20abc"), "Bearer abc");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn encodes_ids_in_hex_and_times_as_strings() {
        let span = Finished {
            context: TraceParent {
                trace_id: [1; 16],
                span_id: [2; 8],
                sampled: true,
            },
            parent: Some([3; 8]),
            name: "relay.route".into(),
            kind: INTERNAL,
            start: 5,
            end: 7,
            attributes: vec![("model".into(), Attr::Str("gpt".into()))],
            error: true,
        };
        let body: Value = serde_json::from_slice(&encode(&json!({}), &[span])).unwrap();
        let out = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(out["traceId"], "01".repeat(16));
        assert_eq!(out["parentSpanId"], "03".repeat(8));
        assert_eq!(out["startTimeUnixNano"], "5");
        assert_eq!(out["status"]["code"], 2);
        assert_eq!(out["attributes"][0]["value"]["stringValue"], "gpt");
    }
}
