//! Distributed traces: with `telemetry.otlp_endpoint` set, one chat completion's spans reach
//! an OTLP/HTTP collector stand-in as one tree (the server span, routing, the upstream attempt,
//! billing's hold and settle, SQL statements), an incoming `traceparent` is continued and the
//! trace goes on to the upstream vendor and, when split, to Skein's other process.
//!
//! The subscriber is global to the test process, so each test here starts its collector before
//! its first server (nextest gives every test a process of its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use skein_core::secret::Secret;
use skein_testkit::mock_openai::MockOpenAi;
use skein_testkit::{Backend, Price, TestApp, Upstream, on_both_backends, redis_url, relay_world};

/// The trace a test client starts (W3C's own example ids).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// One exported span, flattened from OTLP JSON.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    name: String,
    kind: i64,
    service: String,
    attributes: HashMap<String, Value>,
    start: u128,
    end: u128,
}

/// A stand-in for an OpenTelemetry collector: accepts OTLP/HTTP JSON on `/v1/traces` and
/// keeps every span.
struct Collector {
    base: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

async fn accept(
    State(spans): State<Arc<Mutex<Vec<Span>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(json!({})));
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({})));
    };
    let mut out = spans.lock().unwrap();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let nanos = |key: &str| span[key].as_str().unwrap().parse::<u128>().unwrap();
                let attributes = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        let value = a["value"].as_object().unwrap().values().next().unwrap();
                        (a["key"].as_str().unwrap().to_string(), value.clone())
                    })
                    .collect();
                out.push(Span {
                    trace_id: span["traceId"].as_str().unwrap().to_string(),
                    span_id: span["spanId"].as_str().unwrap().to_string(),
                    parent: span["parentSpanId"].as_str().map(str::to_string),
                    name: span["name"].as_str().unwrap().to_string(),
                    kind: span["kind"].as_i64().unwrap(),
                    service: service.clone(),
                    attributes,
                    start: nanos("startTimeUnixNano"),
                    end: nanos("endTimeUnixNano"),
                });
            }
        }
    }
    // What a collector answers: an `ExportTraceServiceResponse`.
    (StatusCode::OK, axum::Json(json!({"partialSuccess": {}})))
}

impl Collector {
    async fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(accept))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { base, spans }
    }

    /// The spans of `trace_id`, once `ready` holds for them (the exporter batches every half
    /// second), or a failure that shows what arrived.
    async fn trace(&self, trace_id: &str, ready: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        for _ in 0..200 {
            let spans: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if ready(&spans) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = self.spans.lock().unwrap().clone();
        panic!("trace {trace_id} never completed; spans received: {all:#?}");
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name} span expected: {spans:#?}");
    found[0]
}

/// Whether `ancestor` is `span`'s parent, grandparent, ...
fn descends(spans: &[Span], span: &Span, ancestor: &Span) -> bool {
    let mut parent = span.parent.clone();
    while let Some(id) = parent {
        if id == ancestor.span_id {
            return true;
        }
        parent = spans
            .iter()
            .find(|s| s.span_id == id)
            .and_then(|s| s.parent.clone());
    }
    false
}

fn chat_body() -> Value {
    json!({"model": "gpt-test", "messages": [{"role": "user", "content": "trace this answer"}]})
}

on_both_backends! {
    async fn one_chat_completion_is_one_trace_continued_from_the_client_and_sent_upstream(backend) {
        let collector = Collector::start().await;
        let app = TestApp::spawn_with(backend, |c| {
            c.telemetry.otlp_endpoint = Some(collector.base.clone());
            c.telemetry.service_name = "skein-test".into();
        })
        .await;
        let s = relay_world(&app, Upstream::OpenAi).await;

        let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
        let r = app
            .send(
                app.client
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(&s.key)
                    .header("traceparent", &traceparent)
                    .json(&chat_body()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        let spans = collector
            .trace(TRACE_ID, |spans| {
                ["POST /v1/chat/completions", "relay.route", "relay.attempt", "billing.hold", "billing.settle"]
                    .iter()
                    .all(|name| !named(spans, name).is_empty())
            })
            .await;

        // The root: a server span, the child of the client's span, under our service name.
        let root = one(&spans, "POST /v1/chat/completions");
        assert_eq!(root.kind, 2, "{root:?}");
        assert_eq!(root.parent.as_deref(), Some(CLIENT_SPAN));
        assert_eq!(root.service, "skein-test");
        assert_eq!(root.attributes["http.response.status_code"], "200");
        assert_eq!(root.attributes["route"], "/v1/chat/completions");
        assert!(root.start <= root.end);

        // Routing, the upstream attempt and billing hang under it.
        let route = one(&spans, "relay.route");
        assert_eq!(route.parent.as_deref(), Some(root.span_id.as_str()), "{spans:#?}");
        assert_eq!(route.attributes["model"], "gpt-test");
        let attempt = one(&spans, "relay.attempt");
        assert_eq!(attempt.kind, 3, "a client span: {attempt:?}");
        assert!(descends(&spans, attempt, root), "{spans:#?}");
        assert_eq!(attempt.attributes["channel.id"], Value::String(s.channel_id.clone()));
        assert_eq!(attempt.attributes["upstream_model"], "gpt-upstream");
        assert_eq!(attempt.attributes["outcome"], "ok");
        assert_eq!(attempt.attributes["http.response.status_code"], "200");
        let hold = one(&spans, "billing.hold");
        let settle = one(&spans, "billing.settle");
        assert!(descends(&spans, hold, root) && descends(&spans, settle, root), "{spans:#?}");
        // In order: routing, then the hold, then the attempt, then the settle.
        assert!(route.end <= hold.start + 1_000_000, "{route:?} {hold:?}");
        assert!(hold.end <= attempt.start + 1_000_000, "{hold:?} {attempt:?}");
        assert!(attempt.start <= settle.start, "{attempt:?} {settle:?}");

        // The vendor got the trace, with the attempt's span as its parent.
        let sent = s.upstream.header_values("traceparent");
        assert_eq!(sent, vec![format!("00-{TRACE_ID}-{}-01", attempt.span_id)]);

        // SQL statements are spans too, under the span that ran them.
        let statements: Vec<&Span> = spans.iter().filter(|s| s.attributes.contains_key("db.query.text")).collect();
        if backend == Backend::Postgres {
            assert!(!statements.is_empty(), "{spans:#?}");
        }
        for statement in &statements {
            assert_eq!(statement.kind, 3);
            assert!(descends(&spans, statement, root), "{statement:?}");
        }

        // No traceparent, or a malformed one: a trace of its own, its root without a parent.
        for header in [None, Some("00-not-a-trace-01")] {
            let mut req = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&s.key).json(&chat_body());
            if let Some(header) = header {
                req = req.header("traceparent", header);
            }
            let r = app.send(req).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let sent = s.upstream.header_values("traceparent");
        assert_eq!(sent.len(), 3, "{sent:?}");
        let mut fresh = Vec::new();
        for header in &sent[1..] {
            let trace_id = header.split('-').nth(1).unwrap().to_string();
            assert_ne!(trace_id, TRACE_ID);
            let spans = collector
                .trace(&trace_id, |spans| {
                    ["POST /v1/chat/completions", "billing.settle"].iter().all(|name| !named(spans, name).is_empty())
                })
                .await;
            let root = one(&spans, "POST /v1/chat/completions");
            assert_eq!(root.parent, None, "{root:?}");
            fresh.push(trace_id);
        }
        assert_ne!(fresh[0], fresh[1]);
    }
}

/// A request whose caller decided not to record (`sampled` = 0) is not exported, yet its
/// context still reaches the vendor so the decision travels on.
#[tokio::test]
async fn an_unsampled_trace_is_propagated_but_not_exported() {
    let collector = Collector::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.telemetry.otlp_endpoint = Some(collector.base.clone());
    })
    .await;
    let s = relay_world(&app, Upstream::OpenAi).await;
    let r = app
        .send(
            app.client
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&s.key)
                .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-00"))
                .json(&chat_body()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = s.upstream.header_values("traceparent");
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with(&format!("00-{TRACE_ID}-")) && sent[0].ends_with("-00"),
        "{sent:?}"
    );
    // A later, sampled request's spans arrive; the unsampled one's never do.
    let r = app
        .send(
            app.client
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&s.key)
                .json(&chat_body()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = s.upstream.header_values("traceparent");
    let later = sent[1].split('-').nth(1).unwrap().to_string();
    collector
        .trace(&later, |spans| !named(spans, "billing.settle").is_empty())
        .await;
    assert!(
        collector
            .spans
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.trace_id != TRACE_ID),
        "an unsampled trace was exported"
    );
}

/// Split across two processes (`user,billing` and `relay,chat`), the relay's call to Billing
/// carries the trace: the billing process's server span is a child of the relay's request,
/// and its hold under that.
#[tokio::test]
async fn the_trace_crosses_to_the_billing_process_when_split() {
    const TOKEN: &str = "internal-token-for-trace-tests-0123456789";
    let collector = Collector::start().await;
    let (first_internal, second_internal) = (
        skein_testkit::reserve_internal_address(),
        skein_testkit::reserve_internal_address(),
    );
    let prefix = format!("trace-{}:", uuid::Uuid::now_v7());
    let users = TestApp::spawn_services(Backend::Postgres, "user,billing", |c| {
        c.redis.url = Some(redis_url());
        c.redis.key_prefix = prefix.clone();
        c.services.internal_token = Some(Secret::new(TOKEN));
        c.server.internal_listen = Some(first_internal.clone());
        c.services.relay_url = Some(format!("http://{second_internal}"));
        c.auth.session_cache_secs = 1;
        c.telemetry.otlp_endpoint = Some(collector.base.clone());
    })
    .await;
    let relay = users
        .sibling_services("relay,chat", |c| {
            c.server.internal_listen = Some(second_internal.clone());
            c.services.relay_url = None;
            c.services.user_url = Some(format!("http://{first_internal}"));
            c.services.billing_url = Some(format!("http://{first_internal}"));
        })
        .await;

    let root = users.root().await;
    let ada = users.register("ada").await;
    users.fund(&root, &ada, 1_000_000).await;
    let upstream = MockOpenAi::start("sk-upstream-trace").await;
    relay
        .add_channel(&root, json!({
            "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
            "models": ["gpt-test"], "model_mapping": {"gpt-test": "gpt-upstream"}, "priority": 10
        }))
        .await;
    relay
        .set_price(&root, "gpt-test", Price::tokens(2_000_000, 6_000_000))
        .await;
    let key = relay.api_key(&ada, "k").await;

    let r = relay
        .send(
            relay
                .client
                .post(relay.url("/v1/chat/completions"))
                .bearer_auth(&key)
                .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
                .json(&chat_body()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let spans = collector
        .trace(TRACE_ID, |spans| {
            spans
                .iter()
                .any(|s| s.name.starts_with("POST /internal/billing") && s.kind == 2)
                && !named(spans, "billing.hold").is_empty()
                && !named(spans, "relay.attempt").is_empty()
                // The request's own span ends last, and may come in a later export batch.
                && !named(spans, "POST /v1/chat/completions").is_empty()
        })
        .await;
    let front = one(&spans, "POST /v1/chat/completions");
    assert_eq!(front.parent.as_deref(), Some(CLIENT_SPAN));
    let internal: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("POST /internal/billing") && s.kind == 2)
        .collect();
    for span in &internal {
        assert!(
            descends(&spans, span, front),
            "{span:?} is not under the relay's request: {spans:#?}"
        );
    }
    let hold = one(&spans, "billing.hold");
    assert!(
        internal
            .iter()
            .any(|server| hold.parent.as_deref() == Some(server.span_id.as_str())),
        "the hold runs under the billing process's server span: {spans:#?}"
    );
    let sent = upstream.header_values("traceparent");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with(&format!("00-{TRACE_ID}-")), "{sent:?}");
}
