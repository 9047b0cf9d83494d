//! The Relay's typed API as other services call it: in the same process (`InProcessRelay`)
//! and from another process (`RemoteRelay`, over the relay's internal routes). Every test runs
//! with both, and both must behave the same: embeddings, rerank, transcription, images and
//! chat go through the same pipeline as the vendor-compatible routes — routed, mapped, held
//! and billed exactly — and answer typed values with the charge; refusals are errors that
//! cost nothing and cross the wire whole.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein::ServiceSet;
use skein_core::api::{
    AudioUpload, ChatEvent, EmbedRequest, ImageRequest, RelayApi, RelayCaller, RerankRequest,
};
use skein_core::internal::InternalClient;
use skein_core::secret::Secret;
use skein_core::service::ServiceName;
use skein_relay::{InProcessRelay, RemoteRelay};
use skein_testkit::mock_openai::endpoints::{embedding_of, rerank_tokens, transcript_of};
use skein_testkit::mock_openai::{Fault, MockOpenAi, prompt_tokens, reply_to};
use skein_testkit::{Backend, Persona, Price, TestApp};

const TOKEN: &str = "internal-token-for-relay-tests-0123456789";

/// Which `RelayApi` a test calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `InProcessRelay`, on a second instance of the deployment built in the test.
    InProcess,
    /// `RemoteRelay`, against the app's internal listener.
    Remote,
}

/// The app, with an internal listener for the remote client.
async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.services.internal_token = Some(Secret::new(TOKEN));
        c.server.internal_listen = Some("127.0.0.1:0".into());
    })
    .await
}

/// One test body, run with each relay on each database.
macro_rules! each_relay {
    ($(async fn $name:ident($app:ident, $via:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn run($app: TestApp, $via: Via) $body
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_process_sqlite() { run(spawn(Backend::Sqlite).await, Via::InProcess).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_process_postgres() { run(spawn(Backend::Postgres).await, Via::InProcess).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn remote_sqlite() { run(spawn(Backend::Sqlite).await, Via::Remote).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn remote_postgres() { run(spawn(Backend::Postgres).await, Via::Remote).await }
            }
        )*
    };
}

/// Prices: (model, input per Mtok, output per Mtok, per call).
const PRICES: &[(&str, i64, i64, i64)] = &[
    ("emb-test", 1_000_000, 0, 0),
    ("rerank-test", 1_000_000, 0, 2),
    ("whisper-test", 0, 0, 300),
    ("img-test", 0, 0, 1_000),
    ("chat-test", 1_000_000, 2_000_000, 0),
];
const START: i64 = 1_000_000;

struct Setup {
    user: Persona,
    upstream: MockOpenAi,
    relay: Arc<dyn RelayApi>,
}

/// A channel and prices made through the API, then the relay to call: a second instance of
/// the deployment (same database) whose Relay is called in process, as Chat calls it beside
/// the Relay; or the app's Relay over its internal routes, as Chat calls it from another
/// process.
async fn setup(app: &TestApp, via: Via) -> Setup {
    let root = app.root().await;
    let user = app.register("ada").await;
    let upstream = MockOpenAi::start("sk-upstream").await;
    let models: Vec<&str> = PRICES.iter().map(|p| p.0).collect();
    app.add_channel(&root, json!({
        "type": "openai", "name": "primary", "base_url": upstream.base_url, "keys": [upstream.key],
        "models": models, "model_mapping": {"emb-test": "text-embedding-upstream", "whisper-test": "whisper-upstream"},
    }))
    .await;
    for &(model, input, output, per_call) in PRICES {
        let price = Price {
            per_call,
            ..Price::tokens(input, output)
        };
        app.set_price(&root, model, price).await;
    }
    app.fund(&root, &user, START).await;
    let relay: Arc<dyn RelayApi> = match via {
        Via::InProcess => {
            let mut config = app.config.clone();
            config.server.internal_listen = None;
            let skein = skein::build(config, &ServiceSet::parse("user,billing,relay").unwrap())
                .await
                .expect("a second instance");
            Arc::new(InProcessRelay(
                skein.relay.clone().expect("this instance runs the relay"),
            ))
        }
        Via::Remote => Arc::new(RemoteRelay(
            InternalClient::new(
                ServiceName::Relay,
                &app.internal_url(""),
                Secret::new(TOKEN),
            )
            .unwrap(),
        )),
    };
    Setup {
        user,
        upstream,
        relay,
    }
}

/// The user's own call: the relay picks their group.
fn caller(_app: &TestApp, user: &Persona, request_id: &str) -> RelayCaller {
    RelayCaller {
        user_id: user.id.clone(),
        group: None,
        request_id: request_id.into(),
        conversation_id: None,
        cancel: None,
    }
}

async fn balance(app: &TestApp, who: &Persona) -> i64 {
    app.get("/api/v1/billing/quota", Some(&who.access))
        .await
        .json["balance"]
        .as_i64()
        .unwrap()
}

each_relay! {
    async fn typed_calls_are_routed_mapped_and_billed_exactly(app, via) {
        let s = setup(&app, via).await;
        let mut spent = 0;

        let inputs = vec!["red fox".to_string(), "blue whale swims".to_string()];
        let embedded = s.relay.embed(caller(&app, &s.user, "req-embed"), EmbedRequest {
            model: "emb-test".into(), inputs: inputs.clone(), dimensions: Some(8),
        }).await.unwrap();
        assert_eq!(embedded.vectors, inputs.iter().map(|i| embedding_of(&json!(i), 8)).collect::<Vec<_>>());
        // Five words, one token each at one unit per token.
        assert_eq!((embedded.charge.prompt_tokens, embedded.charge.cost, embedded.charge.status.as_str()), (5, 5, "ok"));
        spent += embedded.charge.cost;
        let sent = s.upstream.requests();
        assert_eq!(sent.last().unwrap()["model"], "text-embedding-upstream", "the model is mapped");
        assert_eq!(sent.last().unwrap()["encoding_format"], "float");

        let documents = vec!["a red fox".to_string(), "a blue whale".to_string(), "red red fox".to_string()];
        let ranked = s.relay.rerank(caller(&app, &s.user, "req-rerank"), RerankRequest {
            model: "rerank-test".into(), query: "red fox".into(), documents: documents.clone(), top_n: Some(2),
        }).await.unwrap();
        assert_eq!(ranked.results.len(), 2);
        assert!(ranked.results[0].score >= ranked.results[1].score, "{:?}", ranked.results);
        assert_ne!(ranked.results[0].index, 1, "the whale is the least relevant: {:?}", ranked.results);
        let tokens = rerank_tokens("red fox", &documents.iter().map(|d| json!(d)).collect::<Vec<Value>>());
        assert_eq!(ranked.charge.cost, tokens + 2);
        spent += ranked.charge.cost;

        let audio: Vec<u8> = b"\x1aE\xdf\xa3 webm bytes\r\n--not-a-boundary".to_vec();
        let heard = s.relay.transcribe(caller(&app, &s.user, "req-stt"), AudioUpload {
            model: "whisper-test".into(), file_name: "my \"take\".webm".into(), content_type: "audio/webm".into(),
            bytes: audio.clone().into(), language: Some("en".into()),
        }).await.unwrap();
        assert_eq!(heard.text, transcript_of("mytake.webm", &audio));
        assert_eq!(heard.charge.cost, 300);
        spent += heard.charge.cost;
        let sent = s.upstream.requests();
        assert_eq!(sent.last().unwrap()["model"], "whisper-upstream", "the form's model is mapped");

        let drawn = s.relay.image(caller(&app, &s.user, "req-img"), ImageRequest {
            model: "img-test".into(), prompt: "a fox".into(), n: 2, size: None,
        }).await.unwrap();
        assert_eq!(drawn.images.len(), 2);
        assert!(drawn.images.iter().all(|i| i.url.is_some() || i.b64_json.is_some()), "{:?}", drawn.images);
        assert_eq!(drawn.charge.cost, 2_000);
        spent += drawn.charge.cost;

        // Each charge was settled before it was answered: the ledger already has it.
        assert_eq!(balance(&app, &s.user).await, START - spent);
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await;
        let ids: Vec<&str> = usage.json["items"].as_array().unwrap().iter().filter_map(|u| u["request_id"].as_str()).collect();
        for id in ["req-embed", "req-rerank", "req-stt", "req-img"] {
            assert!(ids.contains(&id), "{id} is on the record: {ids:?}");
        }
    }

    async fn typed_refusals_are_errors_that_cost_nothing(app, via) {
        let s = setup(&app, via).await;
        let unknown = s.relay.embed(caller(&app, &s.user, "r1"), EmbedRequest {
            model: "no-such-model".into(), inputs: vec!["x".into()], dimensions: None,
        }).await.unwrap_err();
        assert_eq!((unknown.status(), unknown.code()), (StatusCode::NOT_FOUND, "model_not_found"));
        s.upstream.fail_next(Fault::Status(400));
        let refused = s.relay.rerank(caller(&app, &s.user, "r2"), RerankRequest {
            model: "rerank-test".into(), query: "q".into(), documents: vec!["d".into()], top_n: None,
        }).await.unwrap_err();
        assert_eq!((refused.status(), refused.code()), (StatusCode::BAD_REQUEST, "upstream_refused"));
        assert!(refused.message(skein_core::i18n::Lang::En).starts_with("The rerank provider refused the request: "), "{refused}");
        assert_eq!(balance(&app, &s.user).await, START);
    }

    async fn typed_chat_streams_text_and_tool_calls_and_ends_with_the_settled_charge(app, via) {
        let s = setup(&app, via).await;
        let messages = json!([{"role": "user", "content": "hello there"}]);
        let events: Vec<ChatEvent> = s.relay.chat(caller(&app, &s.user, "req-chat"),
            json!({"model": "chat-test", "messages": messages})).await.unwrap().collect().await;
        let text: String = events.iter().filter_map(|e| match e { ChatEvent::Delta(t) => Some(t.as_str()), _ => None }).collect();
        assert_eq!(text, reply_to(&messages));
        let Some(ChatEvent::Done(charge)) = events.last() else { panic!("the stream ends with Done: {events:?}") };
        let Some(ChatEvent::Usage(usage)) = events.iter().find(|e| matches!(e, ChatEvent::Usage(_))) else { panic!("usage: {events:?}") };
        assert_eq!((charge.prompt_tokens, charge.completion_tokens, charge.status.as_str()), (usage.prompt_tokens, usage.completion_tokens, "ok"));
        assert_eq!(charge.cost, usage.prompt_tokens + 2 * usage.completion_tokens);
        assert!(events.contains(&ChatEvent::Finish("stop".into())), "{events:?}");
        assert_eq!(balance(&app, &s.user).await, START - charge.cost, "settled before Done");

        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
        let events: Vec<ChatEvent> = s.relay.chat(caller(&app, &s.user, "req-tools"),
            json!({"model": "chat-test", "messages": [{"role": "user", "content": "Paris"}], "tools": tools})).await.unwrap().collect().await;
        let calls: Vec<_> = events.iter().filter_map(|e| match e { ChatEvent::ToolCallDelta(d) => Some(d.clone()), _ => None }).collect();
        assert_eq!((calls[0].index, calls[0].id.as_deref(), calls[0].name.as_deref()), (0, Some("call_mock1"), Some("get_weather")));
        let arguments: String = calls.iter().map(|d| d.arguments.as_str()).collect();
        assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));
        assert!(calls[1..].iter().all(|d| d.id.is_none() && d.name.is_none()), "{calls:?}");
        assert!(events.contains(&ChatEvent::Finish("tool_calls".into())), "{events:?}");
        assert!(matches!(events.last(), Some(ChatEvent::Done(c)) if c.status == "ok"), "{events:?}");

        // A stream that breaks off says so, then bills what was delivered.
        s.upstream.fail_next(Fault::DieAfter(2));
        let events: Vec<ChatEvent> = s.relay.chat(caller(&app, &s.user, "req-broken"),
            json!({"model": "chat-test", "messages": messages})).await.unwrap().collect().await;
        let n = events.len();
        assert!(matches!(&events[n - 2], ChatEvent::Error(e) if e.code == "upstream_error"), "{events:?}");
        assert!(matches!(&events[n - 1], ChatEvent::Done(c) if c.status == "partial" && c.cost > 0), "{events:?}");
    }

    async fn a_stopped_chat_ends_with_the_charge_of_what_was_delivered(app, via) {
        let s = setup(&app, via).await;
        s.upstream.set_stream_pause(Duration::from_millis(40));
        let words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen";
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut who = caller(&app, &s.user, "req-stop");
        who.cancel = Some(cancel.clone());
        let mut events = s.relay.chat(who, json!({"model": "chat-test",
            "messages": [{"role": "user", "content": words}]})).await.unwrap();
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            if matches!(event, ChatEvent::Delta(_)) && !cancel.is_cancelled() {
                cancel.cancel();
            }
            seen.push(event);
        }
        // The relay stopped reading and billed what was delivered; its Done still arrived.
        let Some(ChatEvent::Done(charge)) = seen.last() else { panic!("the stream ends with Done: {seen:?}") };
        assert_eq!(charge.status, "stopped", "{seen:?}");
        let delivered = seen.iter().filter(|e| matches!(e, ChatEvent::Delta(_))).count();
        assert!(delivered < 15, "the answer went on after the stop: {seen:?}");
        // Settled before Done, once, with the hold released.
        let quota = app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json;
        assert_eq!((quota["balance"].as_i64(), quota["reserved"].as_i64()), (Some(START - charge.cost), Some(0)), "{quota}");
        let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await.json;
        assert_eq!(usage["total"], 1, "{usage}");
        assert_eq!(usage["items"][0]["cost"].as_i64(), Some(charge.cost));
    }

    async fn a_dropped_chat_is_read_on_and_billed_once_from_the_upstream_usage(app, via) {
        let s = setup(&app, via).await;
        s.upstream.set_stream_pause(Duration::from_millis(20));
        let messages = json!([{"role": "user", "content": "one two three four five six seven eight"}]);
        let mut events = s.relay.chat(caller(&app, &s.user, "req-drop"),
            json!({"model": "chat-test", "messages": messages})).await.unwrap();
        while let Some(event) = events.next().await {
            if matches!(event, ChatEvent::Delta(_)) {
                break;
            }
        }
        drop(events);
        // As in process: the relay notices its caller left, reads the upstream to its usage
        // and bills that whole answer, once.
        let whole = prompt_tokens(&messages) + 2 * (reply_to(&messages).split_whitespace().count() as i64);
        let mut settled = None;
        for _ in 0..500 {
            // The record first: once it is there, so is the balance it was written with (on
            // SQLite the other instance's hold lives in its memory, so `reserved` says nothing).
            let usage = app.get("/api/v1/billing/usage", Some(&s.user.access)).await.json;
            let quota = app.get("/api/v1/billing/quota", Some(&s.user.access)).await.json;
            let records = usage["items"].as_array().map_or(0, Vec::len);
            if quota["reserved"] == 0 && records == 1 {
                settled = Some((quota["balance"].as_i64().unwrap(), usage["items"][0].clone()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (balance, record) = settled.expect("the dropped answer was never settled");
        assert_eq!(record["status"], "client_closed", "{record}");
        assert_eq!(record["cost"].as_i64(), Some(whole), "{record}");
        assert_eq!(balance, START - whole);
    }
}
