//! The provider matrix for the Chinese vendors and Ollama: every client format (OpenAI chat,
//! Anthropic Messages, Gemini) against every new channel kind, whole and streamed, through the
//! real server to mocks that speak each vendor's documented wire format. Each pair proves the
//! answer's text and reasoning reach the client in its own format (reasoning_content,
//! thinking blocks, thought parts), that the upstream got its own path, key and model, that the
//! bill is exactly the vendor's usage (cached tokens where the vendor reports them), that a
//! stream broken half way is billed as partial, and that tool calls and their results
//! round-trip. Apart from the matrix: each kind's thinking switch, its error codes (an empty
//! balance disables the channel and fails over, a rate limit fails over and keeps it, a
//! content-review refusal reaches the client and keeps it), and its admin model list and
//! default base URL.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_compat::{self, MockCompat};
use skein_testkit::mock_dashscope::{self, MockDashScope};
use skein_testkit::mock_ollama::MockOllama;
use skein_testkit::mock_openai::MockOpenAi;
use skein_testkit::{Backend, Fault, MockVendor, Persona, Price, Resp, TestApp};

use crate::relay::providers::{
    Client, MODEL, finish_of, reasoning_of, stream_items, text_body, text_of, tool_of,
    tool_result_body,
};

/// The name the channel maps [`MODEL`] to upstream.
const UPSTREAM_MODEL: &str = "up-model";
/// Starting balance.
const BALANCE: i64 = 1_000_000;
/// The key the mocks accept.
const KEY: &str = "sk-up-vendor";
/// The reasoning the mocks do before answering.
const THOUGHT: &str = "let me think hard ";

/// The new channel kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DeepSeek,
    DashScope,
    Zhipu,
    Moonshot,
    SiliconFlow,
    Volcengine,
    MiniMax,
    Hunyuan,
    Qianfan,
    Spark,
    Ollama,
    DashScopeNative,
}

impl Kind {
    const ALL: [Kind; 12] = [
        Kind::DeepSeek,
        Kind::DashScope,
        Kind::Zhipu,
        Kind::Moonshot,
        Kind::SiliconFlow,
        Kind::Volcengine,
        Kind::MiniMax,
        Kind::Hunyuan,
        Kind::Qianfan,
        Kind::Spark,
        Kind::Ollama,
        Kind::DashScopeNative,
    ];

    fn channel_type(self) -> &'static str {
        match self {
            Kind::DeepSeek => "deepseek",
            Kind::DashScope => "dashscope",
            Kind::Zhipu => "zhipu",
            Kind::Moonshot => "moonshot",
            Kind::SiliconFlow => "siliconflow",
            Kind::Volcengine => "volcengine",
            Kind::MiniMax => "minimax",
            Kind::Hunyuan => "hunyuan",
            Kind::Qianfan => "qianfan",
            Kind::Spark => "spark",
            Kind::Ollama => "ollama",
            Kind::DashScopeNative => "dashscope_native",
        }
    }

    /// The path of the vendor's documented base URL.
    fn prefix(self) -> &'static str {
        use mock_compat::Dialect;
        match self {
            Kind::DeepSeek => mock_compat::DeepSeek::PREFIX,
            Kind::DashScope => mock_compat::DashScope::PREFIX,
            Kind::Zhipu => mock_compat::Zhipu::PREFIX,
            Kind::Moonshot => mock_compat::Moonshot::PREFIX,
            Kind::SiliconFlow => mock_compat::SiliconFlow::PREFIX,
            Kind::Volcengine => mock_compat::Volcengine::PREFIX,
            Kind::MiniMax => mock_compat::MiniMax::PREFIX,
            Kind::Hunyuan => mock_compat::Hunyuan::PREFIX,
            Kind::Qianfan => mock_compat::Qianfan::PREFIX,
            Kind::Spark => mock_compat::Spark::PREFIX,
            Kind::Ollama => "",
            Kind::DashScopeNative => mock_dashscope::PREFIX,
        }
    }

    /// The chat path the vendor takes requests on.
    fn chat_path(self) -> String {
        match self {
            Kind::Ollama => "/api/chat".into(),
            Kind::DashScopeNative => {
                format!("{}{}", mock_dashscope::PREFIX, mock_dashscope::GENERATION)
            }
            _ => format!("{}/chat/completions", self.prefix()),
        }
    }

    async fn start(self) -> MockVendor {
        match self {
            Kind::DeepSeek => MockCompat::<mock_compat::DeepSeek>::start(KEY)
                .await
                .into_any(),
            Kind::DashScope => MockCompat::<mock_compat::DashScope>::start(KEY)
                .await
                .into_any(),
            Kind::Zhipu => MockCompat::<mock_compat::Zhipu>::start(KEY)
                .await
                .into_any(),
            Kind::Moonshot => MockCompat::<mock_compat::Moonshot>::start(KEY)
                .await
                .into_any(),
            Kind::SiliconFlow => MockCompat::<mock_compat::SiliconFlow>::start(KEY)
                .await
                .into_any(),
            Kind::Volcengine => MockCompat::<mock_compat::Volcengine>::start(KEY)
                .await
                .into_any(),
            Kind::MiniMax => MockCompat::<mock_compat::MiniMax>::start(KEY)
                .await
                .into_any(),
            Kind::Hunyuan => MockCompat::<mock_compat::Hunyuan>::start(KEY)
                .await
                .into_any(),
            Kind::Qianfan => MockCompat::<mock_compat::Qianfan>::start(KEY)
                .await
                .into_any(),
            Kind::Spark => MockCompat::<mock_compat::Spark>::start(KEY)
                .await
                .into_any(),
            Kind::Ollama => MockOllama::start(KEY).await.into_any(),
            Kind::DashScopeNative => MockDashScope::start(KEY).await.into_any(),
        }
    }

    /// The messages of a body the upstream got, where the vendor's format puts them.
    fn sent_messages(self, sent: &Value) -> Vec<Value> {
        let messages = match self {
            Kind::DashScopeNative => &sent["input"]["messages"],
            _ => &sent["messages"],
        };
        messages.as_array().cloned().unwrap_or_default()
    }

    /// The tools of a body the upstream got, where the vendor's format puts them.
    fn sent_tools(self, sent: &Value) -> Value {
        match self {
            Kind::DashScopeNative => sent["parameters"]["tools"].clone(),
            _ => sent["tools"].clone(),
        }
    }
}

struct World {
    app: TestApp,
    root: Persona,
    user: Persona,
    key: String,
    mock: MockVendor,
    kind: Kind,
    channel_id: String,
}

async fn world(backend: Backend, kind: Kind) -> World {
    let app = TestApp::spawn(backend).await;
    let root = app.root().await;
    let user = app.register("ada").await;
    let mock = kind.start().await;
    let created = app
        .add_channel(
            &root,
            json!({"type": kind.channel_type(), "name": "primary", "priority": 10,
                "base_url": format!("{}{}", mock.base_url, kind.prefix()), "keys": [KEY],
                "models": [MODEL], "model_mapping": {MODEL: UPSTREAM_MODEL}}),
        )
        .await;
    assert_eq!(created["type"], kind.channel_type(), "{created}");
    let channel_id = created["id"].as_str().unwrap_or_default().to_string();
    app.set_price(
        &root,
        MODEL,
        Price {
            cache_read_per_mtok: 1_000_000,
            ..Price::tokens(2_000_000, 6_000_000)
        },
    )
    .await;
    app.fund(&root, &user, BALANCE).await;
    let key = app.api_key(&user, "test").await;
    World {
        app,
        root,
        user,
        key,
        mock,
        kind,
        channel_id,
    }
}

/// An OpenAI channel `backup` for [`MODEL`], below the primary.
async fn add_backup(w: &World) -> MockOpenAi {
    let backup = MockOpenAi::start("sk-backup").await;
    w.app
        .add_channel(
            &w.root,
            json!({"type": "openai", "name": "backup", "base_url": backup.base_url,
                "keys": [backup.key], "models": [MODEL], "priority": -1}),
        )
        .await;
    backup
}

/// Sends a client-format body on the client's own route, authenticated the client's way.
async fn call(w: &World, client: Client, body: &Value, stream: bool) -> Resp {
    let app = &w.app;
    let req = match client {
        Client::OpenAi => app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&w.key),
        Client::Anthropic => app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &w.key)
            .header("anthropic-version", "2023-06-01"),
        Client::Gemini => {
            let action = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            app.client
                .post(app.url(&format!("/v1beta/models/{MODEL}:{action}")))
                .header("x-goog-api-key", &w.key)
        }
    };
    app.send(req.json(body)).await
}

/// What the last answer should be billed as, `(prompt, completion, cached)`, from the usage
/// the mock reported in its vendor's terms.
fn expected_tokens(w: &World) -> (i64, i64, i64) {
    let u = w.mock.usages().last().cloned().expect("a usage");
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    match w.kind {
        Kind::Ollama => (int(&u["prompt_eval_count"]), int(&u["eval_count"]), 0),
        Kind::DashScopeNative => (
            int(&u["input_tokens"]),
            int(&u["output_tokens"]),
            int(&u["prompt_tokens_details"]["cached_tokens"]),
        ),
        // Moonshot reports cached tokens at the top of its usage.
        Kind::Moonshot => (
            int(&u["prompt_tokens"]),
            int(&u["completion_tokens"]),
            int(&u["cached_tokens"]),
        ),
        _ => (
            int(&u["prompt_tokens"]),
            int(&u["completion_tokens"]),
            int(&u["prompt_tokens_details"]["cached_tokens"]),
        ),
    }
}

/// The usage records once `records` requests are settled.
async fn settled(w: &World, records: usize) -> Vec<Value> {
    // Generous: on a loaded 2-core machine running the whole matrix, settling can lag.
    for _ in 0..2000 {
        let usage = w
            .app
            .get("/api/v1/billing/usage?per_page=100", Some(&w.user.access))
            .await;
        if let Some(items) = usage.json["items"].as_array()
            && items.len() == records
        {
            return items.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{records} requests were never settled");
}

/// Checks the `records`-th request's usage record and the balance against the vendor's usage.
async fn assert_billed(w: &World, spent_before: i64, records: usize, r: &Resp) -> i64 {
    let (prompt, completion, cached) = expected_tokens(w);
    let items = settled(w, records).await;
    let request_id = r.header("x-request-id").expect("a request id");
    let record = items
        .iter()
        .find(|i| i["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no usage record for {request_id}: {items:?}"));
    let cost = (prompt - cached) * 2 + cached + completion * 6;
    assert_eq!(
        (
            record["prompt_tokens"].as_i64(),
            record["completion_tokens"].as_i64(),
            record["cached_tokens"].as_i64(),
            record["cost"].as_i64(),
        ),
        (Some(prompt), Some(completion), Some(cached), Some(cost)),
        "{:?}: {record}",
        w.kind
    );
    assert_eq!(record["channel_id"], w.channel_id.as_str());
    let quota = w
        .app
        .get("/api/v1/billing/quota", Some(&w.user.access))
        .await
        .json;
    let spent = spent_before + cost;
    assert_eq!(quota["balance"].as_i64(), Some(BALANCE - spent), "{quota}");
    spent
}

/// The upstream got its own path, the channel's key as a bearer token, and the mapped model.
fn assert_routed(w: &World) {
    let r = w
        .mock
        .received()
        .last()
        .cloned()
        .expect("the upstream was called");
    assert_eq!(r.path, w.kind.chat_path(), "{:?}", w.kind);
    assert_eq!(
        r.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.body["model"], UPSTREAM_MODEL);
}

fn stop_of(client: Client) -> &'static str {
    match client {
        Client::OpenAi => "stop",
        Client::Anthropic => "end_turn",
        Client::Gemini => "STOP",
    }
}

/// A reasoned answer, whole and streamed: text, reasoning and finish in the client's format,
/// routed the vendor's way, billed exactly; then a stream broken half way, billed as partial.
async fn case_answer(client: Client, kind: Kind, backend: Backend) {
    let w = world(backend, kind).await;
    w.mock.set_reasoning(Some(THOUGHT));
    w.mock
        .set_cached_tokens(if kind == Kind::Ollama { 0 } else { 3 });
    let mut spent = 0;
    for (n, stream) in [(1, false), (2, true)] {
        let r = call(
            &w,
            client,
            &text_body(client, "count my tokens", stream, false),
            stream,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?} {stream}: {}", r.text);
        assert_eq!(
            text_of(client, &r, stream),
            "echo: count my tokens",
            "{kind:?} {stream}: {}",
            r.text
        );
        assert_eq!(
            reasoning_of(client, &r, stream),
            THOUGHT,
            "{kind:?} {stream}: {}",
            r.text
        );
        assert_eq!(finish_of(client, &r, stream), stop_of(client), "{}", r.text);
        if stream {
            assert_eq!(r.header("content-type"), Some("text/event-stream"));
            assert!(stream_items(&r).len() > 1, "streamed in pieces: {}", r.text);
        }
        assert_routed(&w);
        spent = assert_billed(&w, spent, n, &r).await;
    }

    // A stream that dies half way is billed for what was delivered, and the client is told.
    w.mock.fail_next(Fault::DieAfter(2));
    let r = call(
        &w,
        client,
        &text_body(client, "one two three four five six", true, false),
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    match client {
        Client::OpenAi => assert!(r.text.contains("\"code\":\"upstream_error\""), "{}", r.text),
        Client::Anthropic => assert!(r.text.contains("event: error"), "{}", r.text),
        Client::Gemini => assert!(r.text.contains("UNAVAILABLE"), "{}", r.text),
    }
    let items = settled(&w, 3).await;
    let record = items
        .iter()
        .find(|i| Some(i["request_id"].as_str().unwrap_or("")) == r.header("x-request-id"))
        .expect("a record of the broken stream");
    assert_eq!(record["status"], "partial", "{record}");
    assert!(
        record["cost"].as_i64().unwrap_or(0) > 0,
        "the delivered part is billed"
    );
}

/// A tool call, whole and streamed, reaches the client in its format; the tool's result goes
/// back paired with its call, in the vendor's terms.
async fn case_tools(client: Client, kind: Kind, backend: Backend) {
    let w = world(backend, kind).await;
    let mut spent = 0;
    for (n, stream) in [(1, false), (2, true)] {
        let r = call(
            &w,
            client,
            &text_body(client, "weather in Paris", stream, true),
            stream,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?} {stream}: {}", r.text);
        let (name, args, _) = tool_of(client, &r, stream);
        assert_eq!(
            (name.as_str(), &args),
            ("weather", &json!({"city": "weather in Paris"})),
            "{kind:?} {stream}: {}",
            r.text
        );
        let stop = match client {
            Client::OpenAi => "tool_calls",
            Client::Anthropic => "tool_use",
            Client::Gemini => "STOP",
        };
        assert_eq!(finish_of(client, &r, stream), stop, "{}", r.text);
        let sent = w.mock.requests().last().cloned().unwrap_or_default();
        assert_eq!(
            kind.sent_tools(&sent)[0]["function"]["parameters"]["properties"]["city"],
            json!({"type": "string"}),
            "{sent}"
        );
        spent = assert_billed(&w, spent, n, &r).await;
    }
    let r = call(&w, client, &tool_result_body(client), false).await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
    let sent = w.mock.requests().last().cloned().unwrap_or_default();
    let messages = kind.sent_messages(&sent);
    let call = &messages[1]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "weather", "{sent}");
    let result = &messages[2];
    assert_eq!(result["role"], "tool", "{sent}");
    assert!(
        result["content"]
            .as_str()
            .unwrap_or("")
            .contains("sunny 21C"),
        "{sent}"
    );
    if kind == Kind::Ollama {
        // Ollama takes arguments as an object and names the tool a result answers.
        assert_eq!(call["arguments"], json!({"city": "Paris"}), "{sent}");
        assert_eq!(result["tool_name"], "weather", "{sent}");
    } else {
        let args: Value =
            serde_json::from_str(call["arguments"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(args, json!({"city": "Paris"}), "{sent}");
        assert_eq!(
            result["tool_call_id"], messages[1]["tool_calls"][0]["id"],
            "{sent}"
        );
    }
    if kind == Kind::DashScopeNative {
        // DashScope's tool message also names the function it answers.
        assert_eq!(result["name"], "weather", "{sent}");
    }
    assert_billed(&w, spent, 3, &r).await;
}

/// Every (client, kind) pair runs both cases on SQLite; the answer case (which bills whole,
/// streamed and broken answers) also runs on PostgreSQL, where holds and settles take the
/// other path.
macro_rules! matrix {
    ($($name:ident => $kind:expr;)*) => {
        $(
            mod $name {
                use super::*;
                macro_rules! pair {
                    ($client:ident, $c:expr) => {
                        mod $client {
                            use super::*;
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn answer_sqlite() { case_answer($c, $kind, Backend::Sqlite).await }
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn answer_postgres() { case_answer($c, $kind, Backend::Postgres).await }
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn tools_sqlite() { case_tools($c, $kind, Backend::Sqlite).await }
                        }
                    };
                }
                pair!(openai_client, Client::OpenAi);
                pair!(anthropic_client, Client::Anthropic);
                pair!(gemini_client, Client::Gemini);
            }
        )*
    };
}

matrix! {
    deepseek => Kind::DeepSeek;
    dashscope => Kind::DashScope;
    zhipu => Kind::Zhipu;
    moonshot => Kind::Moonshot;
    siliconflow => Kind::SiliconFlow;
    volcengine => Kind::Volcengine;
    minimax => Kind::MiniMax;
    hunyuan => Kind::Hunyuan;
    qianfan => Kind::Qianfan;
    spark => Kind::Spark;
    ollama => Kind::Ollama;
    dashscope_native => Kind::DashScopeNative;
}

/// A client's request to think (Anthropic's budget of 10,000 tokens, a medium effort) reaches
/// each vendor as its own switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_reaches_each_vendor_as_its_own_switch() {
    let body = json!({"model": MODEL, "max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [{"role": "user", "content": "think"}]});
    for kind in Kind::ALL {
        let w = world(Backend::Sqlite, kind).await;
        let r = call(&w, Client::Anthropic, &body, false).await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
        let sent = w.mock.requests().last().cloned().unwrap_or_default();
        assert!(sent.get("reasoning_effort").is_none(), "{kind:?}: {sent}");
        match kind {
            Kind::DeepSeek | Kind::Zhipu | Kind::Volcengine => {
                assert_eq!(
                    sent["thinking"],
                    json!({"type": "enabled"}),
                    "{kind:?}: {sent}"
                )
            }
            Kind::DashScope | Kind::SiliconFlow => assert_eq!(
                (&sent["enable_thinking"], &sent["thinking_budget"]),
                (&json!(true), &json!(8192)),
                "{kind:?}: {sent}"
            ),
            Kind::DashScopeNative => assert_eq!(
                (
                    &sent["parameters"]["enable_thinking"],
                    &sent["parameters"]["thinking_budget"]
                ),
                (&json!(true), &json!(8192)),
                "{kind:?}: {sent}"
            ),
            Kind::MiniMax => assert_eq!(sent["reasoning_split"], true, "{sent}"),
            Kind::Ollama => assert_eq!(sent["think"], true, "{sent}"),
            // The model decides: nothing of the effort is sent.
            Kind::Moonshot | Kind::Hunyuan | Kind::Qianfan | Kind::Spark => {
                assert!(
                    sent.get("thinking").is_none() && sent.get("enable_thinking").is_none(),
                    "{kind:?}: {sent}"
                )
            }
        }
    }
}

/// A GLM channel takes only `tool_choice: auto`: `none` is carried by offering no tools, and
/// `required` is refused by name before anything is sent, and costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glm_tool_choice_is_carried_or_refused_by_name() {
    let w = world(Backend::Sqlite, Kind::Zhipu).await;
    let mut body = text_body(Client::OpenAi, "weather in Paris", false, true);
    body["tool_choice"] = json!("none");
    let r = call(&w, Client::OpenAi, &body, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = w.mock.requests().last().cloned().unwrap_or_default();
    assert!(
        sent.get("tools").is_none() && sent.get("tool_choice").is_none(),
        "{sent}"
    );
    body["tool_choice"] = json!("required");
    let r = call(&w, Client::OpenAi, &body, false).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "unsupported_field", "{}", r.text);
    assert!(r.text.contains("tool_choice"), "{}", r.text);
    assert_eq!(
        w.mock.requests().len(),
        1,
        "the refused request was not sent"
    );
}

async fn channel_status(w: &World) -> Value {
    w.app
        .get(
            &format!("/api/v1/channels/{}", w.channel_id),
            Some(&w.root.access),
        )
        .await
        .json
}

/// Each vendor's own errors fall into the relay's classes: an empty balance (in the
/// vendor's own words and status — DeepSeek's 402, GLM's 1113 behind a 429, SiliconFlow's
/// 30001 and Ark's AccountOverdueError behind a 403, MiniMax's and Spark's codes inside a 200)
/// disables the channel and the request fails over to the backup; a rate limit fails over and
/// keeps the channel; a content-review refusal reaches the client (as `content_filter` where
/// the vendor names it so), tries no other channel and keeps this one.
async fn ask(w: &World) -> Resp {
    call(
        w,
        Client::OpenAi,
        &text_body(Client::OpenAi, "hi", false, false),
        false,
    )
    .await
}

async fn case_errors(kind: Kind, backend: Backend) {
    let w = world(backend, kind).await;
    let backup = add_backup(&w).await;

    w.mock.fail_next(Fault::Status(429));
    let r = ask(&w).await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
    assert_eq!(backup.requests().len(), 1, "{kind:?}: the backup answered");
    assert_eq!(channel_status(&w).await["status"], "enabled", "{kind:?}");

    w.mock.fail_next(Fault::ContentFilter);
    let r = ask(&w).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{kind:?}: {}", r.text);
    assert_eq!(
        backup.requests().len(),
        1,
        "{kind:?}: no failover for the client's content"
    );
    let named = matches!(
        kind,
        Kind::DashScope
            | Kind::DashScopeNative
            | Kind::Zhipu
            | Kind::Moonshot
            | Kind::Volcengine
            | Kind::MiniMax
            | Kind::Spark
    );
    if named {
        assert_eq!(
            r.json["error"]["code"], "content_filter",
            "{kind:?}: {}",
            r.text
        );
    }
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{kind:?}: {}",
        r.text
    );
    assert_eq!(channel_status(&w).await["status"], "enabled", "{kind:?}");

    w.mock.fail_next(Fault::NoCredit);
    let r = ask(&w).await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
    assert_eq!(backup.requests().len(), 2, "{kind:?}: the backup answered");
    let channel = channel_status(&w).await;
    assert_eq!(channel["status"], "auto_disabled", "{kind:?}: {channel}");
    if kind != Kind::Ollama {
        assert!(
            channel["status_reason"]
                .as_str()
                .unwrap_or("")
                .contains("out of quota"),
            "{kind:?}: {channel}"
        );
    }
    let items = settled(&w, 2).await;
    assert!(
        items
            .iter()
            .all(|i| i["channel_id"] != w.channel_id.as_str()),
        "billed on the backup: {items:?}"
    );
}

mod errors {
    use super::*;
    macro_rules! kinds {
        ($($name:ident => $kind:expr;)*) => {
            $(
                mod $name {
                    use super::*;
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn sqlite() { case_errors($kind, Backend::Sqlite).await }
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn postgres() { case_errors($kind, Backend::Postgres).await }
                }
            )*
        };
    }
    kinds! {
        deepseek => Kind::DeepSeek;
        dashscope => Kind::DashScope;
        zhipu => Kind::Zhipu;
        moonshot => Kind::Moonshot;
        siliconflow => Kind::SiliconFlow;
        volcengine => Kind::Volcengine;
        minimax => Kind::MiniMax;
        hunyuan => Kind::Hunyuan;
        qianfan => Kind::Qianfan;
        spark => Kind::Spark;
        dashscope_native => Kind::DashScopeNative;
    }
}

/// The admin side of each kind: a channel created without a base URL gets the vendor's
/// documented one; the channel test passes through the adapter; the vendor's own model list
/// is read in its format (Ollama's `/api/tags`), and a vendor without one says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_has_its_default_base_url_test_and_model_list() {
    let defaults = [
        (Kind::DeepSeek, "https://api.deepseek.com"),
        (
            Kind::DashScope,
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
        ),
        (Kind::Zhipu, "https://open.bigmodel.cn/api/paas/v4"),
        (Kind::Moonshot, "https://api.moonshot.cn/v1"),
        (Kind::SiliconFlow, "https://api.siliconflow.cn/v1"),
        (Kind::Volcengine, "https://ark.cn-beijing.volces.com/api/v3"),
        (Kind::MiniMax, "https://api.minimaxi.com/v1"),
        (Kind::Hunyuan, "https://api.hunyuan.cloud.tencent.com/v1"),
        (Kind::Qianfan, "https://qianfan.baidubce.com/v2"),
        (Kind::Spark, "https://spark-api-open.xf-yun.com/v1"),
        (Kind::Ollama, "http://localhost:11434"),
        (
            Kind::DashScopeNative,
            "https://dashscope.aliyuncs.com/api/v1",
        ),
    ];
    for (kind, default) in defaults {
        let w = world(Backend::Sqlite, kind).await;
        let created = w
            .app
            .add_channel(
                &w.root,
                json!({"type": kind.channel_type(), "name": "defaulted", "keys": ["k"], "models": ["x"]}),
            )
            .await;
        assert_eq!(created["base_url"], default, "{kind:?}: {created}");

        let test = w
            .app
            .post(
                &format!("/api/v1/channels/{}/test", w.channel_id),
                Some(&w.root.access),
                json!({}),
            )
            .await;
        assert_eq!(test.json["ok"], true, "{kind:?}: {}", test.text);
        assert_routed(&w);
        let models = w
            .app
            .get(
                &format!("/api/v1/channels/{}/models", w.channel_id),
                Some(&w.root.access),
            )
            .await;
        let owner = kind.channel_type();
        match kind {
            Kind::Ollama => assert_eq!(
                models.json["models"],
                json!(["llama3.2:latest", "qwen3:8b"]),
                "{}",
                models.text
            ),
            Kind::Spark => assert!(
                models.text.contains("no model list"),
                "{kind:?}: {}",
                models.text
            ),
            _ => {
                let vendor = w.mock.vendor.to_lowercase();
                assert_eq!(
                    models.json["models"],
                    json!([
                        format!("{vendor}-mock-chat"),
                        format!("{vendor}-mock-reasoner")
                    ]),
                    "{owner}: {}",
                    models.text
                );
            }
        }
    }
}

/// An admin pulls a model onto an Ollama channel's server; other kinds refuse, and so does a
/// name Ollama's library could not hold; a model the library lacks is Ollama's 404 in a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_pull_models_onto_ollama() {
    let w = world(Backend::Sqlite, Kind::Ollama).await;
    let path = format!("/api/v1/channels/{}/pull", w.channel_id);
    let r = w
        .app
        .post(&path, Some(&w.user.access), json!({"model": "qwen3:8b"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = w
        .app
        .post(&path, Some(&w.root.access), json!({"model": "qwen3:8b"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "success");
    let pulled = w
        .mock
        .received()
        .last()
        .cloned()
        .expect("the pull reached Ollama");
    assert_eq!(pulled.path, "/api/pull");
    assert_eq!(pulled.body, json!({"model": "qwen3:8b", "stream": false}));
    let r = w
        .app
        .post(
            &path,
            Some(&w.root.access),
            json!({"model": "qwen3; rm -rf /"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = w
        .app
        .post(
            &path,
            Some(&w.root.access),
            json!({"model": "missing-model"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.text.contains("does not exist"), "{}", r.text);

    let other = world(Backend::Sqlite, Kind::DeepSeek).await;
    let r = other
        .app
        .post(
            &format!("/api/v1/channels/{}/pull", other.channel_id),
            Some(&other.root.access),
            json!({"model": "qwen3:8b"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(other.mock.received().is_empty());
}

/// OpenAI's images route on a native DashScope channel: an asynchronous task submitted, polled
/// and answered as OpenAI answers (URLs, or the images inlined), billed per image delivered;
/// a refused prompt is OpenAI's content-filter error and costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashscope_native_images_run_as_a_task_and_bill_per_image() {
    // The mock serves its result images on loopback, which only a trusted network allows.
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.relay.allow_private_image_urls = true).await;
    let root = app.root().await;
    let user = app.register("ada").await;
    let mock = MockDashScope::start(KEY).await;
    app.add_channel(
        &root,
        json!({"type": "dashscope_native", "name": "wanx", "base_url": format!("{}{}", mock.base_url, mock_dashscope::PREFIX),
            "keys": [KEY], "models": [MODEL], "model_mapping": {MODEL: "wan2.2-t2i-flash"}}),
    )
    .await;
    app.set_price(&root, MODEL, Price::per_call(40_000)).await;
    app.fund(&root, &user, BALANCE).await;
    let key = app.api_key(&user, "images").await;
    let images = |body: Value| {
        let app = &app;
        let key = &key;
        async move { app.post("/v1/images/generations", Some(key), body).await }
    };
    let balance = || async {
        app.get("/api/v1/billing/quota", Some(&user.access))
            .await
            .json["balance"]
            .as_i64()
            .unwrap_or_default()
    };

    let r = images(json!({"model": MODEL, "prompt": "a red fox", "n": 2, "size": "1024x768", "quality": "standard"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let data = r.json["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.text))
        .clone();
    assert_eq!(data.len(), 2, "{}", r.text);
    assert!(
        data[0]["url"].as_str().unwrap_or("").contains("/results/"),
        "{}",
        r.text
    );
    assert_eq!(data[0]["revised_prompt"], "a red fox, highly detailed");
    // Submitted as DashScope documents it: asynchronously, its own body shape and size syntax.
    let submitted = mock
        .received()
        .into_iter()
        .find(|r| r.path.ends_with(mock_dashscope::IMAGE_SYNTHESIS))
        .expect("a task");
    assert_eq!(
        submitted
            .headers
            .get("x-dashscope-async")
            .and_then(|v| v.to_str().ok()),
        Some("enable")
    );
    assert_eq!(
        submitted.body,
        json!({"model": "wan2.2-t2i-flash", "input": {"prompt": "a red fox"},
        "parameters": {"n": 2, "size": "1024*768"}})
    );
    let mut expected = BALANCE - 2 * 40_000;
    // The settle follows the answer: wait for it.
    for _ in 0..200 {
        if balance().await == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(balance().await, expected);

    // An image that failed inside the task is left out and not billed.
    let r = images(json!({"model": MODEL, "prompt": "half a fox", "n": 2})).await;
    assert_eq!(
        (r.status, r.json["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{}",
        r.text
    );
    expected -= 40_000;

    // Inlined on request.
    let r = images(json!({"model": MODEL, "prompt": "a fox", "response_format": "b64_json"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b64 = r.json["data"][0]["b64_json"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.text));
    let png =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("base64");
    assert_eq!(&png[..4], b"\x89PNG");
    expected -= 40_000;

    // A prompt the vendor's review refuses: OpenAI's content filter error, nothing billed.
    let r = images(json!({"model": MODEL, "prompt": "something forbidden"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "content_filter", "{}", r.text);
    // A field DashScope has no place for is named, before anything is sent.
    let before = mock.received().len();
    let r = images(json!({"model": MODEL, "prompt": "a fox", "mask": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["param"], "mask", "{}", r.text);
    assert_eq!(mock.received().len(), before);

    for _ in 0..200 {
        if balance().await == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(balance().await, expected);
}

/// A DashScope image task is paid for once it is accepted, so what goes wrong after that stays
/// with that task: a poll that fails is asked again (the answer comes from the first channel),
/// and a task that never ends within the channel's timeout is a 504 for the client with
/// nothing billed; neither is submitted again on the second channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashscope_image_task_is_never_submitted_twice() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.relay.allow_private_image_urls = true).await;
    let root = app.root().await;
    let user = app.register("ada").await;
    let first = MockDashScope::start(KEY).await;
    let second = MockDashScope::start(KEY).await;
    for (mock, name, priority) in [(&first, "first", 10), (&second, "second", 0)] {
        app.add_channel(
            &root,
            json!({"type": "dashscope_native", "name": name, "priority": priority, "timeout_secs": 3,
                "base_url": format!("{}{}", mock.base_url, mock_dashscope::PREFIX),
                "keys": [KEY], "models": [MODEL], "model_mapping": {MODEL: "wan2.2-t2i-flash"}}),
        )
        .await;
    }
    app.set_price(&root, MODEL, Price::per_call(40_000)).await;
    app.fund(&root, &user, BALANCE).await;
    let key = app.api_key(&user, "images").await;
    let submissions = |mock: &MockDashScope| {
        mock.received()
            .iter()
            .filter(|r| r.path.ends_with(mock_dashscope::IMAGE_SYNTHESIS))
            .count()
    };

    // The task route fails for its first 1.5 s: polled again until it answers.
    let r = app
        .post(
            "/v1/images/generations",
            Some(&key),
            json!({"model": MODEL, "prompt": "a flaky fox"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.json["data"][0]["url"]
            .as_str()
            .unwrap_or("")
            .contains("/results/"),
        "{}",
        r.text
    );
    assert_eq!((submissions(&first), submissions(&second)), (1, 0));

    // A task that never ends: a 504 that says why, once the channel's 3 s are up.
    let r = app
        .post(
            "/v1/images/generations",
            Some(&key),
            json!({"model": MODEL, "prompt": "a stuck fox"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text);
    assert!(r.text.contains("not submitted again"), "{}", r.text);
    assert_eq!((submissions(&first), submissions(&second)), (2, 0));

    // One image billed: the stuck task's hold was released.
    let mut balance = 0;
    for _ in 0..200 {
        balance = app
            .get("/api/v1/billing/quota", Some(&user.access))
            .await
            .json["balance"]
            .as_i64()
            .unwrap_or_default();
        if balance == BALANCE - 40_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(balance, BALANCE - 40_000);
}
