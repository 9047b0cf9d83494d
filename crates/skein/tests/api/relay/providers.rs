//! The provider matrix: every client format (OpenAI chat, Anthropic Messages, Gemini
//! generateContent) against every upstream kind (OpenAI, Azure, Anthropic, Gemini), each pair
//! through the same cases — text, stream, tools (with streamed argument deltas), tool results,
//! images, the upstream's errors on the client's route, and exact billing of the usage the
//! upstream reported, cached and reasoning tokens included. The upstreams are the testkit's
//! mocks, which speak each vendor's own wire format and record what they were sent.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::mock_openai::{self, MockOpenAi};
use skein_testkit::{
    Backend, Fault, MockVendor, Persona, Price, Resp, TestApp, Upstream, WorldSpec,
};

/// The model clients ask for.
pub(crate) const MODEL: &str = "m-test";
/// The name the channel maps it to upstream.
const UPSTREAM_MODEL: &str = "up-model";
/// Starting balance.
const BALANCE: i64 = 1_000_000;
/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAACklEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Client {
    OpenAi,
    Anthropic,
    Gemini,
}

/// The mock behind a world's channel, by its kind (the arms read the vendor's own terms).
enum Mock {
    OpenAi(MockVendor),
    Azure(MockVendor),
    Anthropic(MockVendor),
    Gemini(MockVendor),
}

impl Mock {
    fn new(kind: Upstream, mock: MockVendor) -> Mock {
        match kind {
            Upstream::OpenAi => Mock::OpenAi(mock),
            Upstream::Azure => Mock::Azure(mock),
            Upstream::Anthropic => Mock::Anthropic(mock),
            Upstream::Gemini => Mock::Gemini(mock),
        }
    }

    fn vendor(&self) -> &MockVendor {
        match self {
            Mock::OpenAi(m) | Mock::Azure(m) | Mock::Anthropic(m) | Mock::Gemini(m) => m,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.vendor().requests()
    }

    fn last(&self) -> Value {
        self.requests()
            .last()
            .cloned()
            .expect("the upstream was called")
    }

    fn revoke_key(&self, revoked: bool) {
        self.vendor().revoke_key(revoked);
    }

    fn fail_status(&self, code: u16) {
        self.vendor().fail_next(Fault::Status(code));
    }

    fn die_after(&self, n: usize) {
        self.vendor().fail_next(Fault::DieAfter(n));
    }

    /// Cached prompt tokens and reasoning, where the vendor reports them.
    fn think_and_cache(&self) {
        match self {
            Mock::OpenAi(_) | Mock::Azure(_) => {}
            Mock::Anthropic(m) => {
                m.set_cached_tokens(3);
                m.set_reasoning(Some("let me think hard "));
            }
            Mock::Gemini(m) => {
                m.set_cached_tokens(3);
                m.set_reasoning(Some("let me think hard "));
                m.set_usage_only_at_end(true);
            }
        }
    }

    /// What the last answer should be billed as, `(prompt, completion, cached)` in OpenAI's
    /// terms, from the usage the mock reported in its vendor's terms.
    fn expected_tokens(&self) -> (i64, i64, i64) {
        let int = |v: &Value, k: &str| v[k].as_i64().unwrap_or(0);
        match self {
            Mock::OpenAi(m) | Mock::Azure(m) => {
                let u = m.usages().last().cloned().expect("a usage");
                (
                    int(&u, "prompt_tokens"),
                    int(&u, "completion_tokens"),
                    u["prompt_tokens_details"]["cached_tokens"]
                        .as_i64()
                        .unwrap_or(0),
                )
            }
            // Anthropic counts cache reads and writes apart from input_tokens.
            Mock::Anthropic(m) => {
                let u = m.usages().last().cloned().expect("a usage");
                (
                    int(&u, "input_tokens")
                        + int(&u, "cache_read_input_tokens")
                        + int(&u, "cache_creation_input_tokens"),
                    int(&u, "output_tokens"),
                    int(&u, "cache_read_input_tokens"),
                )
            }
            // Gemini's prompt count includes cached tokens; thoughts are apart from candidates.
            Mock::Gemini(m) => {
                let u = m.usages().last().cloned().expect("a usage");
                (
                    int(&u, "promptTokenCount"),
                    int(&u, "candidatesTokenCount") + int(&u, "thoughtsTokenCount"),
                    int(&u, "cachedContentTokenCount"),
                )
            }
        }
    }
}

struct World {
    pub app: TestApp,
    pub root: Persona,
    pub user: Persona,
    pub key: String,
    pub mock: Mock,
    pub channel_id: String,
}

async fn world(backend: Backend, kind: Upstream, allow_private_images: bool) -> World {
    let app = TestApp::spawn_with(backend, |c| {
        c.relay.allow_private_image_urls = allow_private_images
    })
    .await;
    let key = match kind {
        Upstream::OpenAi => "sk-up-openai",
        Upstream::Azure => "az-up-key",
        Upstream::Anthropic => "sk-ant-up",
        Upstream::Gemini => "AIza-up",
    };
    let s = WorldSpec::new(kind)
        .upstream_key(key)
        .model(MODEL, Some(UPSTREAM_MODEL))
        .price(
            MODEL,
            Price {
                cache_read_per_mtok: 1_000_000,
                ..Price::tokens(2_000_000, 6_000_000)
            },
        )
        .balance(BALANCE)
        .build(&app)
        .await;
    World {
        app,
        root: s.root,
        user: s.user,
        key: s.key,
        mock: Mock::new(kind, s.upstream),
        channel_id: s.channel_id,
    }
}

/// An OpenAI channel `backup` for [`MODEL`], below the primary.
async fn add_backup(w: &World) -> MockOpenAi {
    let backup = MockOpenAi::start("sk-backup").await;
    w.app
        .add_channel(
            &w.root,
            json!({"type": "openai", "name": "backup",
                "base_url": backup.base_url, "keys": [backup.key], "models": [MODEL], "priority": -1}),
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

pub(crate) fn weather_tool(client: Client) -> Value {
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    match client {
        Client::OpenAi => {
            json!([{"type": "function", "function": {"name": "weather", "description": "Weather now", "parameters": schema}}])
        }
        Client::Anthropic => {
            json!([{"name": "weather", "description": "Weather now", "input_schema": schema}])
        }
        Client::Gemini => {
            json!([{"functionDeclarations": [{"name": "weather", "description": "Weather now", "parameters": schema}]}])
        }
    }
}

/// A request with a system prompt and one user text, optionally offering the weather tool.
pub(crate) fn text_body(client: Client, text: &str, stream: bool, tools: bool) -> Value {
    let mut body = match client {
        Client::OpenAi => json!({"model": MODEL, "max_tokens": 50, "stream": stream,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]}),
        Client::Anthropic => {
            json!({"model": MODEL, "max_tokens": 50, "stream": stream, "system": "be brief",
            "messages": [{"role": "user", "content": text}]})
        }
        Client::Gemini => json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": {"maxOutputTokens": 50}}),
    };
    if tools {
        body["tools"] = weather_tool(client);
    }
    body
}

/// A conversation that called the weather tool and now gives its result.
pub(crate) fn tool_result_body(client: Client) -> Value {
    match client {
        Client::OpenAi => json!({"model": MODEL, "tools": weather_tool(client), "messages": [
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "sunny 21C"}]}),
        Client::Anthropic => {
            json!({"model": MODEL, "max_tokens": 50, "tools": weather_tool(client), "messages": [
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_9", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9", "content": "sunny 21C"}]}]})
        }
        Client::Gemini => json!({"tools": weather_tool(client), "contents": [
            {"role": "user", "parts": [{"text": "weather in Paris"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"result": "sunny 21C"}}}]}]}),
    }
}

/// A user message with a base64 image and, where the client format has them, an image URL.
fn image_body(client: Client, url: &str) -> Value {
    match client {
        Client::OpenAi => json!({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}},
            {"type": "image_url", "image_url": {"url": url}}]}]}),
        Client::Anthropic => {
            json!({"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "image", "source": {"type": "url", "url": url}}]}]})
        }
        // Gemini clients send images inline (the relay does not take fileData URIs).
        Client::Gemini => json!({"contents": [{"role": "user", "parts": [
            {"text": "what is this"}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}]}),
    }
}

/// The `data:` payloads of a client stream, parsed.
pub(crate) fn stream_items(r: &Resp) -> Vec<Value> {
    r.text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// The answer's text as the client sees it.
pub(crate) fn text_of(client: Client, r: &Resp, stream: bool) -> String {
    match (client, stream) {
        (Client::OpenAi, false) => r.json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        (Client::OpenAi, true) => stream_items(r)
            .iter()
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect(),
        (Client::Anthropic, false) => r.json["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect(),
        (Client::Anthropic, true) => stream_items(r)
            .iter()
            .filter(|v| v["delta"]["type"] == "text_delta")
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
            .collect(),
        (Client::Gemini, false) => gemini_text(&r.json),
        (Client::Gemini, true) => stream_items(r).iter().map(gemini_text).collect(),
    }
}

pub(crate) fn gemini_text(item: &Value) -> String {
    item["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["thought"].as_bool() != Some(true))
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// The reasoning as the client sees it.
pub(crate) fn reasoning_of(client: Client, r: &Resp, stream: bool) -> String {
    let thoughts = |item: &Value| -> String {
        item["candidates"][0]["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["thought"].as_bool() == Some(true))
            .filter_map(|p| p["text"].as_str())
            .collect()
    };
    match (client, stream) {
        (Client::OpenAi, false) => r.json["choices"][0]["message"]["reasoning_content"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        (Client::OpenAi, true) => stream_items(r)
            .iter()
            .filter_map(|v| {
                v["choices"][0]["delta"]["reasoning_content"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect(),
        (Client::Anthropic, false) => r.json["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "thinking")
            .filter_map(|b| b["thinking"].as_str())
            .collect(),
        (Client::Anthropic, true) => stream_items(r)
            .iter()
            .filter(|v| v["delta"]["type"] == "thinking_delta")
            .filter_map(|v| v["delta"]["thinking"].as_str().map(str::to_string))
            .collect(),
        (Client::Gemini, false) => thoughts(&r.json),
        (Client::Gemini, true) => stream_items(r).iter().map(thoughts).collect(),
    }
}

/// The finish reason as the client sees it.
pub(crate) fn finish_of(client: Client, r: &Resp, stream: bool) -> String {
    let found = match (client, stream) {
        (Client::OpenAi, false) => r.json["choices"][0]["finish_reason"].clone(),
        (Client::OpenAi, true) => stream_items(r)
            .iter()
            .rev()
            .find_map(|v| v["choices"][0]["finish_reason"].as_str().map(|s| json!(s)))
            .unwrap_or_default(),
        (Client::Anthropic, false) => r.json["stop_reason"].clone(),
        (Client::Anthropic, true) => stream_items(r)
            .iter()
            .find(|v| v["type"] == "message_delta")
            .map(|v| v["delta"]["stop_reason"].clone())
            .unwrap_or_default(),
        (Client::Gemini, false) => r.json["candidates"][0]["finishReason"].clone(),
        (Client::Gemini, true) => stream_items(r)
            .iter()
            .rev()
            .find_map(|v| {
                v["candidates"][0]["finishReason"]
                    .as_str()
                    .map(|s| json!(s))
            })
            .unwrap_or_default(),
    };
    found.as_str().unwrap_or("").to_string()
}

/// The tool call the client sees: name, arguments, and in how many pieces the arguments came.
pub(crate) fn tool_of(client: Client, r: &Resp, stream: bool) -> (String, Value, usize) {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("{e}: {s}"));
    match (client, stream) {
        (Client::OpenAi, false) => {
            let call = &r.json["choices"][0]["message"]["tool_calls"][0]["function"];
            (
                call["name"].as_str().unwrap_or("").into(),
                parse(call["arguments"].as_str().unwrap_or("")),
                1,
            )
        }
        (Client::OpenAi, true) => {
            let mut name = String::new();
            let mut args = String::new();
            let mut pieces = 0;
            for v in stream_items(r) {
                for call in v["choices"][0]["delta"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    assert_eq!(call["index"], 0, "one call: {call}");
                    if let Some(n) = call["function"]["name"].as_str() {
                        name.push_str(n);
                    }
                    if let Some(a) = call["function"]["arguments"]
                        .as_str()
                        .filter(|a| !a.is_empty())
                    {
                        args.push_str(a);
                        pieces += 1;
                    }
                }
            }
            (name, parse(&args), pieces)
        }
        (Client::Anthropic, false) => {
            let block = r.json["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .cloned()
                .unwrap_or_else(|| panic!("no tool_use: {}", r.text));
            (
                block["name"].as_str().unwrap_or("").into(),
                block["input"].clone(),
                1,
            )
        }
        (Client::Anthropic, true) => {
            let items = stream_items(r);
            let start = items
                .iter()
                .find(|v| v["content_block"]["type"] == "tool_use")
                .unwrap_or_else(|| panic!("no tool_use block: {}", r.text));
            let pieces: Vec<&str> = items
                .iter()
                .filter(|v| v["delta"]["type"] == "input_json_delta")
                .filter_map(|v| v["delta"]["partial_json"].as_str())
                .collect();
            (
                start["content_block"]["name"].as_str().unwrap_or("").into(),
                parse(&pieces.concat()),
                pieces.len(),
            )
        }
        (Client::Gemini, stream) => {
            let items = if stream {
                stream_items(r)
            } else {
                vec![r.json.clone()]
            };
            let calls: Vec<Value> = items
                .iter()
                .flat_map(|i| {
                    i["candidates"][0]["content"]["parts"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|p| p.get("functionCall").cloned())
                .collect();
            assert_eq!(calls.len(), 1, "{}", r.text);
            (
                calls[0]["name"].as_str().unwrap_or("").into(),
                calls[0]["args"].clone(),
                1,
            )
        }
    }
}

/// The system prompt and the last user text as the upstream received them, in its format.
fn sent_text(kind: Upstream, sent: &Value) -> (String, String) {
    // Anthropic takes a string or text blocks (a same-vendor client's body goes as written).
    let texts = |v: &Value, field: &str| -> String {
        if let Some(text) = v.as_str() {
            return text.to_string();
        }
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p[field].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    match kind {
        Upstream::OpenAi | Upstream::Azure => {
            let messages = sent["messages"].as_array().unwrap();
            let system = messages.iter().find(|m| m["role"] == "system").unwrap();
            let user = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
            (
                mock_openai::content_text(&system["content"]),
                mock_openai::content_text(&user["content"]),
            )
        }
        Upstream::Anthropic => {
            let user = sent["messages"].as_array().unwrap().last().unwrap();
            (
                texts(&sent["system"], "text"),
                texts(&user["content"], "text"),
            )
        }
        Upstream::Gemini => {
            let user = sent["contents"].as_array().unwrap().last().unwrap();
            (
                texts(&sent["systemInstruction"]["parts"], "text"),
                texts(&user["parts"], "text"),
            )
        }
    }
}

/// Waits until `records` requests are settled (on SQLite holds live in memory, so the
/// account's `reserved` column says nothing; the usage record commits with the charge).
async fn settled(w: &World, records: usize) -> Vec<Value> {
    for _ in 0..500 {
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

/// Waits for the `records`-th request (the answer `r`) to settle, then checks its usage record
/// and the balance against what the upstream reported: `(prompt, completion, cached)` and the
/// cost formula.
async fn assert_billed(w: &World, spent_before: i64, records: usize, r: &Resp) -> i64 {
    let (prompt, completion, cached) = w.mock.expected_tokens();
    let items = settled(w, records).await;
    let request_id = r.header("x-request-id").expect("a request id");
    let record = items
        .iter()
        .find(|i| i["request_id"] == request_id)
        .unwrap_or_else(|| panic!("no usage record for {request_id}: {items:?}"));
    let quota = w
        .app
        .get("/api/v1/billing/quota", Some(&w.user.access))
        .await
        .json;
    let expected_cost = (prompt - cached) * 2 + cached + completion * 6;
    assert_eq!(
        (
            record["prompt_tokens"].as_i64(),
            record["completion_tokens"].as_i64(),
            record["cached_tokens"].as_i64(),
            record["cost"].as_i64()
        ),
        (
            Some(prompt),
            Some(completion),
            Some(cached),
            Some(expected_cost)
        ),
        "{record}"
    );
    assert_eq!(record["model"], MODEL);
    assert_eq!(record["channel_id"], w.channel_id.as_str());
    let spent = spent_before + expected_cost;
    assert_eq!(quota["balance"].as_i64(), Some(BALANCE - spent), "{quota}");
    spent
}

/// The upstream got its own key, the mapped model, and the vendor's route.
fn assert_routed(w: &World, stream: bool) {
    match &w.mock {
        Mock::OpenAi(m) => {
            assert_eq!(
                m.authorizations().last().unwrap(),
                &format!("Bearer {}", m.key)
            );
            assert_eq!(m.requests().last().unwrap()["model"], UPSTREAM_MODEL);
        }
        Mock::Azure(m) => {
            assert_eq!(m.header_values("api-key").last().unwrap(), &m.key);
            assert_eq!(
                m.header_values("x-mock-path").last().unwrap(),
                &format!(
                    "/openai/deployments/{UPSTREAM_MODEL}/chat/completions?api-version=2024-10-21"
                )
            );
        }
        Mock::Anthropic(m) => {
            assert_eq!(m.header_values("x-api-key").last().unwrap(), &m.key);
            assert_eq!(
                m.header_values("anthropic-version").last().unwrap(),
                "2023-06-01"
            );
            assert!(m.header_values("authorization").last().unwrap().is_empty());
            let sent = m.requests().last().cloned().unwrap();
            assert_eq!(sent["model"], UPSTREAM_MODEL);
            assert_eq!(sent["stream"].as_bool().unwrap_or(false), stream);
        }
        Mock::Gemini(m) => {
            let r = m.received().last().cloned().unwrap();
            assert_eq!(r.headers.get("x-goog-api-key").unwrap(), m.key.as_str());
            let expected = if stream {
                format!("/v1beta/models/{UPSTREAM_MODEL}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{UPSTREAM_MODEL}:generateContent")
            };
            assert_eq!(r.path, expected);
        }
    }
}

async fn case_text(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, false).await;
    let r = call(
        &w,
        client,
        &text_body(client, "hello there relay", false, false),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        text_of(client, &r, false),
        "echo: hello there relay",
        "{}",
        r.text
    );
    let stop = match client {
        Client::OpenAi => "stop",
        Client::Anthropic => "end_turn",
        Client::Gemini => "STOP",
    };
    assert_eq!(finish_of(client, &r, false), stop);
    assert_routed(&w, false);
    assert_eq!(
        sent_text(kind, &w.mock.last()),
        ("be brief".to_string(), "hello there relay".to_string())
    );
    assert_billed(&w, 0, 1, &r).await;

    // A second turn: the history reaches the upstream in order.
    let body = match client {
        Client::OpenAi => json!({"model": MODEL, "messages": [{"role": "user", "content": "one"},
            {"role": "assistant", "content": "echo: one"}, {"role": "user", "content": "two"}]}),
        Client::Anthropic => {
            json!({"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "one"},
            {"role": "assistant", "content": "echo: one"}, {"role": "user", "content": "two"}]})
        }
        Client::Gemini => json!({"contents": [{"role": "user", "parts": [{"text": "one"}]},
            {"role": "model", "parts": [{"text": "echo: one"}]}, {"role": "user", "parts": [{"text": "two"}]}]}),
    };
    let r = call(&w, client, &body, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(text_of(client, &r, false), "echo: two");
    let sent = w.mock.last();
    let turns = match kind {
        Upstream::OpenAi | Upstream::Azure | Upstream::Anthropic => {
            sent["messages"].as_array().unwrap().len()
        }
        Upstream::Gemini => sent["contents"].as_array().unwrap().len(),
    };
    assert_eq!(turns, 3, "{sent}");
}

async fn case_stream(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, false).await;
    let r = call(
        &w,
        client,
        &text_body(client, "stream me some words please", true, false),
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        text_of(client, &r, true),
        "echo: stream me some words please",
        "{}",
        r.text
    );
    let stop = match client {
        Client::OpenAi => "stop",
        Client::Anthropic => "end_turn",
        Client::Gemini => "STOP",
    };
    assert_eq!(finish_of(client, &r, true), stop, "{}", r.text);
    match client {
        Client::OpenAi => {
            assert!(r.text.trim_end().ends_with("data: [DONE]"), "{}", r.text);
            assert!(
                !r.text.contains("\"usage\""),
                "usage the client did not ask for: {}",
                r.text
            );
        }
        Client::Anthropic => {
            let kinds: Vec<&str> = r
                .text
                .lines()
                .filter_map(|l| l.strip_prefix("event: "))
                .collect();
            assert_eq!(kinds.first(), Some(&"message_start"));
            assert_eq!(kinds.last(), Some(&"message_stop"));
        }
        Client::Gemini => {
            let items = stream_items(&r);
            assert!(items.len() > 1, "streamed in pieces: {}", r.text);
        }
    }
    assert_routed(&w, true);
    let spent = assert_billed(&w, 0, 1, &r).await;

    // A stream that dies half way is billed for what was delivered, and the client is told.
    w.mock.die_after(2);
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
    let items = settled(&w, 2).await;
    let record = items
        .iter()
        .find(|i| Some(i["request_id"].as_str().unwrap_or("")) == r.header("x-request-id"))
        .unwrap();
    assert_eq!(record["status"], "partial", "{record}");
    let charged = record["cost"].as_i64().unwrap();
    assert!(charged > 0, "the delivered part is billed");
    if kind == Upstream::Gemini {
        // Gemini's running totals say exactly what was made before the break: "echo: one".
        let (prompt, _, _) = w.mock.expected_tokens();
        assert_eq!(
            (
                record["prompt_tokens"].as_i64(),
                record["completion_tokens"].as_i64()
            ),
            (Some(prompt), Some(2)),
            "{record}"
        );
    }
    let q = w
        .app
        .get("/api/v1/billing/quota", Some(&w.user.access))
        .await
        .json;
    assert_eq!(q["balance"].as_i64(), Some(BALANCE - spent - charged));
}

async fn case_tools(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, false).await;
    let mut spent = 0;
    for (n, stream) in [(1, false), (2, true)] {
        let r = call(
            &w,
            client,
            &text_body(client, "weather in Paris", stream, true),
            stream,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let (name, args, pieces) = tool_of(client, &r, stream);
        assert_eq!(
            (name.as_str(), &args),
            ("weather", &json!({"city": "weather in Paris"})),
            "{}",
            r.text
        );
        // The OpenAI and Anthropic mocks stream arguments in two pieces; clients that stream
        // argument deltas must see both (Gemini sends calls whole, and its clients get them so).
        if stream && client != Client::Gemini && kind != Upstream::Gemini {
            assert!(
                pieces >= 2,
                "argument deltas were streamed as deltas: {}",
                r.text
            );
        }
        let stop = match client {
            Client::OpenAi => "tool_calls",
            Client::Anthropic => "tool_use",
            Client::Gemini => "STOP",
        };
        assert_eq!(finish_of(client, &r, stream), stop, "{}", r.text);
        // The upstream got the tool in its own format.
        let sent = w.mock.last();
        let declared = match kind {
            Upstream::OpenAi | Upstream::Azure => {
                sent["tools"][0]["function"]["parameters"]["properties"]["city"].clone()
            }
            Upstream::Anthropic => sent["tools"][0]["input_schema"]["properties"]["city"].clone(),
            // A Gemini client's own declaration goes as written (`parameters`); a converted one
            // carries JSON Schema as `parametersJsonSchema`.
            Upstream::Gemini if client == Client::Gemini => {
                sent["tools"][0]["functionDeclarations"][0]["parameters"]["properties"]["city"]
                    .clone()
            }
            Upstream::Gemini => sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
                ["properties"]["city"]
                .clone(),
        };
        assert_eq!(declared, json!({"type": "string"}), "{sent}");
        spent = assert_billed(&w, spent, n, &r).await;
    }

    // The tool's result goes back, paired with its call.
    let r = call(&w, client, &tool_result_body(client), false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = w.mock.last();
    match kind {
        Upstream::OpenAi | Upstream::Azure => {
            let messages = sent["messages"].as_array().unwrap();
            let call = &messages[1]["tool_calls"][0];
            assert_eq!(call["function"]["name"], "weather");
            let args: Value =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args, json!({"city": "Paris"}));
            assert_eq!(messages[2]["role"], "tool");
            assert_eq!(messages[2]["tool_call_id"], call["id"]);
            assert!(
                messages[2]["content"]
                    .as_str()
                    .unwrap()
                    .contains("sunny 21C"),
                "{sent}"
            );
        }
        Upstream::Anthropic => {
            let messages = sent["messages"].as_array().unwrap();
            let call = &messages[1]["content"][0];
            assert_eq!(
                (call["type"].as_str(), call["name"].as_str()),
                (Some("tool_use"), Some("weather"))
            );
            assert_eq!(call["input"], json!({"city": "Paris"}));
            let result = &messages[2]["content"][0];
            assert_eq!(result["type"], "tool_result");
            assert_eq!(result["tool_use_id"], call["id"]);
            assert!(
                result["content"].as_str().unwrap().contains("sunny 21C"),
                "{sent}"
            );
            assert!(
                text_of(client, &r, false).contains("sunny 21C"),
                "{}",
                r.text
            );
        }
        Upstream::Gemini => {
            let contents = sent["contents"].as_array().unwrap();
            assert_eq!(contents[1]["role"], "model");
            assert_eq!(
                contents[1]["parts"][0]["functionCall"],
                json!({"name": "weather", "args": {"city": "Paris"}})
            );
            let response = &contents[2]["parts"][0]["functionResponse"];
            assert_eq!(response["name"], "weather");
            assert!(
                response["response"].to_string().contains("sunny 21C"),
                "{sent}"
            );
            assert!(
                text_of(client, &r, false).contains("sunny 21C"),
                "{}",
                r.text
            );
        }
    }
    assert_billed(&w, spent, 3, &r).await;
}

/// Serves the PNG at `/cat.png` (and a redirect to it at `/moved`) on loopback.
async fn image_server() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/cat.png",
            axum::routing::get(|| async { ([("content-type", "image/png")], PNG) }),
        )
        .route(
            "/page.html",
            axum::routing::get(|| async { ([("content-type", "text/html")], "<html></html>") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

async fn case_images(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, true).await;
    let (host, _server) = image_server().await;
    let url = format!("{host}/cat.png");
    let r = call(&w, client, &image_body(client, &url), false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = w.mock.last();
    let data_url = format!("data:image/png;base64,{PNG_B64}");
    let with_url = client != Client::Gemini;
    match kind {
        Upstream::OpenAi | Upstream::Azure => {
            let parts = sent["messages"][0]["content"].as_array().unwrap();
            assert_eq!(parts[1]["image_url"]["url"], data_url.as_str());
            if with_url {
                assert_eq!(parts[2]["image_url"]["url"], url.as_str());
            }
        }
        Upstream::Anthropic => {
            let blocks = sent["messages"][0]["content"].as_array().unwrap();
            assert_eq!(
                blocks[1],
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}})
            );
            if with_url {
                assert_eq!(
                    blocks[2],
                    json!({"type": "image", "source": {"type": "url", "url": url}})
                );
            }
        }
        Upstream::Gemini => {
            let parts = sent["contents"][0]["parts"].as_array().unwrap();
            assert_eq!(
                parts[1],
                json!({"inlineData": {"mimeType": "image/png", "data": PNG_B64}})
            );
            if with_url {
                // Gemini takes no remote URLs: the relay fetched the image and inlined it.
                assert_eq!(
                    parts[2],
                    json!({"inlineData": {"mimeType": "image/png", "data": PNG_B64}})
                );
            }
        }
    }
    assert_eq!(text_of(client, &r, false), "echo: what is this");
    assert_billed(&w, 0, 1, &r).await;
}

/// The upstream's refusal reaches the client in the client's own error shape, free; a
/// rate-limited or failing upstream with no other channel is a 502 in that shape too.
async fn case_errors(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, false).await;
    w.mock.fail_status(400);
    let r = call(&w, client, &text_body(client, "hi", false, false), false).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let message = match client {
        Client::OpenAi => {
            assert_eq!(
                r.json["error"]["type"], "invalid_request_error",
                "{}",
                r.text
            );
            r.json["error"]["message"].as_str()
        }
        Client::Anthropic => {
            assert_eq!(r.json["type"], "error", "{}", r.text);
            assert_eq!(r.json["error"]["type"], "invalid_request_error");
            r.json["error"]["message"].as_str()
        }
        Client::Gemini => {
            assert_eq!(
                (
                    r.json["error"]["code"].as_i64(),
                    r.json["error"]["status"].as_str()
                ),
                (Some(400), Some("INVALID_ARGUMENT")),
                "{}",
                r.text
            );
            r.json["error"]["message"].as_str()
        }
    };
    assert!(
        message.unwrap_or("").contains("Scripted failure."),
        "{}",
        r.text
    );

    w.mock.fail_status(if kind == Upstream::Anthropic {
        529
    } else {
        503
    });
    let r = call(&w, client, &text_body(client, "hi", true, false), true).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    match client {
        Client::OpenAi => assert_eq!(
            r.json["error"]["code"], "upstream_unavailable",
            "{}",
            r.text
        ),
        Client::Anthropic => assert_eq!(r.json["type"], "error", "{}", r.text),
        Client::Gemini => assert_eq!(r.json["error"]["code"], 502, "{}", r.text),
    }
    let q = w
        .app
        .get("/api/v1/billing/quota", Some(&w.user.access))
        .await
        .json;
    assert_eq!(
        (q["balance"].as_i64(), q["reserved"].as_i64()),
        (Some(BALANCE), Some(0)),
        "errors are free"
    );
}

/// Cached prompt tokens and reasoning tokens, as each vendor reports them, are billed exactly
/// (cached at the cache-read rate, reasoning as completion), whole and streamed.
async fn case_usage(client: Client, kind: Upstream, backend: Backend) {
    let w = world(backend, kind, false).await;
    w.mock.think_and_cache();
    let mut spent = 0;
    for (n, stream) in [(1, false), (2, true)] {
        let r = call(
            &w,
            client,
            &text_body(client, "count my tokens", stream, false),
            stream,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            text_of(client, &r, stream),
            "echo: count my tokens",
            "{}",
            r.text
        );
        if (client, kind, stream) == (Client::Gemini, Upstream::Gemini, false) {
            // Thoughts reach Gemini clients counted apart, as Gemini itself reports them.
            assert_eq!(
                (
                    r.json["usageMetadata"]["thoughtsTokenCount"].as_i64(),
                    r.json["usageMetadata"]["candidatesTokenCount"].as_i64()
                ),
                (Some(4), Some(4)),
                "{}",
                r.text
            );
        }
        if matches!(kind, Upstream::Anthropic | Upstream::Gemini) {
            // The reasoning reaches every client apart from the answer, in its own format:
            // OpenAI's `reasoning_content`, Anthropic's thinking blocks, Gemini's thought parts.
            assert_eq!(
                reasoning_of(client, &r, stream),
                "let me think hard ",
                "{}",
                r.text
            );
        }
        spent = assert_billed(&w, spent, n, &r).await;
    }
    let (_, _, cached) = w.mock.expected_tokens();
    if matches!(kind, Upstream::Anthropic | Upstream::Gemini) {
        assert_eq!(cached, 3, "the cached-token path was exercised");
    }
}

/// Every (client, upstream) pair runs every case on SQLite; the cases that bill (streams,
/// cached and reasoning usage) also run on PostgreSQL, where holds and settles take the other
/// path. (Conversions do not depend on the database; the whole matrix on both took ~2 minutes
/// of a shared 2-core machine for no extra coverage.)
macro_rules! matrix {
    ($($name:ident => $client:expr, $kind:expr;)*) => {
        $(
            mod $name {
                use super::*;
                macro_rules! sqlite {
                    ($case:ident) => {
                        mod $case {
                            use super::*;
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn sqlite() { super::super::$case($client, $kind, Backend::Sqlite).await }
                        }
                    };
                }
                macro_rules! both {
                    ($case:ident) => {
                        mod $case {
                            use super::*;
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn sqlite() { super::super::$case($client, $kind, Backend::Sqlite).await }
                            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                            async fn postgres() { super::super::$case($client, $kind, Backend::Postgres).await }
                        }
                    };
                }
                sqlite!(case_text);
                both!(case_stream);
                sqlite!(case_tools);
                sqlite!(case_images);
                sqlite!(case_errors);
                both!(case_usage);
            }
        )*
    };
}

matrix! {
    openai_client_openai_upstream => Client::OpenAi, Upstream::OpenAi;
    openai_client_azure_upstream => Client::OpenAi, Upstream::Azure;
    openai_client_anthropic_upstream => Client::OpenAi, Upstream::Anthropic;
    openai_client_gemini_upstream => Client::OpenAi, Upstream::Gemini;
    anthropic_client_openai_upstream => Client::Anthropic, Upstream::OpenAi;
    anthropic_client_azure_upstream => Client::Anthropic, Upstream::Azure;
    anthropic_client_anthropic_upstream => Client::Anthropic, Upstream::Anthropic;
    anthropic_client_gemini_upstream => Client::Anthropic, Upstream::Gemini;
    gemini_client_openai_upstream => Client::Gemini, Upstream::OpenAi;
    gemini_client_azure_upstream => Client::Gemini, Upstream::Azure;
    gemini_client_anthropic_upstream => Client::Gemini, Upstream::Anthropic;
    gemini_client_gemini_upstream => Client::Gemini, Upstream::Gemini;
}

/// The admin's channel test works for every kind through its adapter, and reports a rejected
/// key; a rejected key on the live path disables the channel and fails over.
async fn case_channel_admin(kind: Upstream) {
    let w = world(Backend::Sqlite, kind, false).await;
    let path = format!("/api/v1/channels/{}/test", w.channel_id);
    let r = w.app.post(&path, Some(&w.root.access), json!({})).await;
    assert_eq!(
        (r.status, r.json["ok"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        r.text
    );
    assert_routed(&w, false);
    // The upstream's own model list, in the vendor's format.
    let models = w
        .app
        .get(
            &format!("/api/v1/channels/{}/models", w.channel_id),
            Some(&w.root.access),
        )
        .await;
    match kind {
        Upstream::Anthropic => assert_eq!(
            models.json["models"],
            json!(["claude-mock-1", "claude-mock-2"]),
            "{}",
            models.text
        ),
        Upstream::Gemini => assert_eq!(
            models.json["models"],
            json!(["gemini-mock-flash", "gemini-mock-pro"]),
            "{}",
            models.text
        ),
        Upstream::OpenAi | Upstream::Azure => {
            assert_eq!(
                models.json["models"],
                json!(["gpt-mock"]),
                "{}",
                models.text
            )
        }
    }
    w.mock.fail_status(401);
    let r = w.app.post(&path, Some(&w.root.access), json!({})).await;
    assert_eq!(r.json["ok"], false, "{}", r.text);
    assert!(
        r.json["message"].as_str().unwrap().contains("401"),
        "{}",
        r.text
    );

    // Live traffic: 429 moves to the backup; a rejected key disables the channel.
    let backup = add_backup(&w).await;
    w.mock.fail_status(429);
    let r = call(
        &w,
        Client::OpenAi,
        &text_body(Client::OpenAi, "hi", false, false),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(backup.requests().len(), 1);
    // A key the vendor revoked (confirmed on its model list) disables the channel.
    w.mock.revoke_key(true);
    let r = call(
        &w,
        Client::OpenAi,
        &text_body(Client::OpenAi, "hi", false, false),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let channel = w
        .app
        .get(
            &format!("/api/v1/channels/{}", w.channel_id),
            Some(&w.root.access),
        )
        .await;
    assert_eq!(channel.json["status"], "auto_disabled", "{}", channel.text);
}

mod channel_admin {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openai() {
        case_channel_admin(Upstream::OpenAi).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn azure() {
        case_channel_admin(Upstream::Azure).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anthropic() {
        case_channel_admin(Upstream::Anthropic).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gemini() {
        case_channel_admin(Upstream::Gemini).await
    }
}

/// Vendor-specific failure signals: Anthropic's 529 overloaded is retried elsewhere, an unpaid
/// Anthropic account disables its channel; an invalid Gemini key (a 400) disables its channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_specific_errors_are_classified() {
    for (kind, fault, disabled) in [
        (Upstream::Anthropic, 0, false),
        (Upstream::Anthropic, 1, true),
        (Upstream::Gemini, 2, true),
        (Upstream::Gemini, 3, false),
    ] {
        let w = world(Backend::Sqlite, kind, false).await;
        let backup = add_backup(&w).await;
        match (&w.mock, fault) {
            (Mock::Anthropic(m), 0) => m.fail_next(Fault::Status(529)),
            (Mock::Anthropic(m), _) => m.fail_next(Fault::NoCredit),
            (Mock::Gemini(m), 3) => m.fail_next(Fault::Status(429)),
            _ => {}
        }
        if fault == 2 {
            // A channel whose key Google rejects.
            let r = w
                .app
                .patch(
                    &format!("/api/v1/channels/{}", w.channel_id),
                    Some(&w.root.access),
                    json!({"keys": ["AIza-wrong"]}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let r = call(
            &w,
            Client::Anthropic,
            &text_body(Client::Anthropic, "hi", false, false),
            false,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?}/{fault}: {}", r.text);
        assert_eq!(
            backup.requests().len(),
            1,
            "{kind:?}/{fault}: the backup answered"
        );
        let channel = w
            .app
            .get(
                &format!("/api/v1/channels/{}", w.channel_id),
                Some(&w.root.access),
            )
            .await;
        let status = if disabled { "auto_disabled" } else { "enabled" };
        assert_eq!(
            channel.json["status"], status,
            "{kind:?}/{fault}: {}",
            channel.text
        );
    }
}

/// Gemini upstreams need remote images fetched: a URL on a private or loopback address is
/// refused with a clear 400 on the client's route, and nothing is charged or sent upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_image_urls_are_not_fetched_for_gemini() {
    let w = world(Backend::Sqlite, Upstream::Gemini, false).await;
    let (host, _server) = image_server().await;
    for client in [Client::OpenAi, Client::Anthropic] {
        for url in [
            format!("{host}/cat.png"),
            "http://169.254.169.254/latest/meta-data".to_string(),
            "http://[::1]/x.png".to_string(),
            "http://localhost/x.png".to_string(),
        ] {
            let r = call(&w, client, &image_body(client, &url), false).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
            assert!(
                r.text.contains("image_url_not_allowed") || r.text.contains("cannot be fetched"),
                "{url}: {}",
                r.text
            );
        }
    }
    assert!(w.mock.requests().is_empty(), "nothing reached the upstream");
    let q = w
        .app
        .get("/api/v1/billing/quota", Some(&w.user.access))
        .await
        .json;
    assert_eq!(
        (q["balance"].as_i64(), q["reserved"].as_i64()),
        (Some(BALANCE), Some(0))
    );

    // Allowed (a trusted network), the same loopback server is fetched, but a page that is not
    // an image is still refused.
    let w = world(Backend::Sqlite, Upstream::Gemini, true).await;
    let r = call(
        &w,
        Client::OpenAi,
        &image_body(Client::OpenAi, &format!("{host}/page.html")),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.json["error"]["code"], "image_url_unreachable",
        "{}",
        r.text
    );
}

/// A field the upstream cannot express is refused with a 400 naming it, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_an_upstream_cannot_carry_are_refused_by_name() {
    for kind in [Upstream::Anthropic, Upstream::Gemini] {
        let w = world(Backend::Sqlite, kind, false).await;
        for (field, value) in [
            ("logprobs", json!(true)),
            ("n", json!(2)),
            ("x_unknown", json!(1)),
        ] {
            let mut body = text_body(Client::OpenAi, "hi", false, false);
            body[field] = value;
            let r = call(&w, Client::OpenAi, &body, false).await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{kind:?} {field}: {}",
                r.text
            );
            assert_eq!(r.json["error"]["code"], "unsupported_field", "{}", r.text);
            assert!(
                r.json["error"]["message"].as_str().unwrap().contains(field),
                "{}",
                r.text
            );
        }
        assert!(w.mock.requests().is_empty());
        let q = w
            .app
            .get("/api/v1/billing/quota", Some(&w.user.access))
            .await
            .json;
        assert_eq!(q["balance"].as_i64(), Some(BALANCE));
    }
}

/// An Anthropic stream that reports an `error` event mid-way is a broken stream: the client is
/// told, and the request is billed as partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_error_event_breaks_the_stream() {
    let w = world(Backend::Sqlite, Upstream::Anthropic, false).await;
    let Mock::Anthropic(m) = &w.mock else {
        unreachable!()
    };
    m.fail_next(Fault::ErrorEventAfter(2));
    let r = call(
        &w,
        Client::OpenAi,
        &text_body(Client::OpenAi, "one two three four five", true, false),
        true,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("\"code\":\"upstream_error\""), "{}", r.text);
    assert!(!r.text.contains("[DONE]"), "{}", r.text);
    assert_eq!(text_of(Client::OpenAi, &r, true), "echo: one ");
    let items = settled(&w, 1).await;
    assert_eq!(items[0]["status"], "partial", "{}", items[0]);

    // An Anthropic client passed through hears the vendor's own error event, once.
    m.fail_next(Fault::ErrorEventAfter(2));
    let mut body = text_body(Client::Anthropic, "one two three four five", true, false);
    body["stream"] = json!(true);
    let r = call(&w, Client::Anthropic, &body, true).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text.matches("event: error").count(), 1, "{}", r.text);
    assert!(r.text.contains("overloaded_error"), "{}", r.text);
    let items = settled(&w, 2).await;
    assert!(items.iter().all(|i| i["status"] == "partial"), "{items:?}");
}

/// A client of the upstream's own vendor is passed through: fields the pivot cannot express
/// reach the upstream as written, answers come back as the vendor wrote them, and billing still
/// comes from the vendor's usage. Channels of other kinds refuse those fields by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_vendor_clients_are_passed_through() {
    // Anthropic: top_k, thinking and cache_control are not in the pivot.
    let w = world(Backend::Sqlite, Upstream::Anthropic, false).await;
    let body = json!({"model": MODEL, "max_tokens": 64, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "pass me through"}]});
    let mut n = 0;
    let mut spent = 0;
    for stream in [false, true] {
        let mut body = body.clone();
        body["stream"] = json!(stream);
        let r = call(&w, Client::Anthropic, &body, stream).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            text_of(Client::Anthropic, &r, stream),
            "echo: pass me through"
        );
        let sent = w.mock.last();
        let mut expected = body.clone();
        expected["model"] = json!(UPSTREAM_MODEL);
        assert_eq!(sent, expected, "the body went as written, model mapped");
        n += 1;
        spent = assert_billed(&w, spent, n, &r).await;
        if stream {
            // The mock's own events, ping included, reached the client unchanged.
            assert!(r.text.contains("event: ping"), "{}", r.text);
            assert_eq!(
                r.text.matches("event: message_stop").count(),
                1,
                "{}",
                r.text
            );
        } else {
            assert_eq!(
                r.json["id"], "msg_mock",
                "the vendor's own answer: {}",
                r.text
            );
        }
    }
    // Beta features the client turned on travel with it.
    let Mock::Anthropic(anthropic) = &w.mock else {
        unreachable!()
    };
    let r = w
        .app
        .send(
            w.app
                .client
                .post(w.app.url("/v1/messages"))
                .header("x-api-key", &w.key)
                .header("anthropic-version", "2099-01-01")
                .header("anthropic-beta", "interleaved-thinking-2025-05-14")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        anthropic
            .header_values("anthropic-beta")
            .last()
            .map(String::as_str),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        anthropic
            .header_values("anthropic-version")
            .last()
            .map(String::as_str),
        Some("2023-06-01"),
        "the adapter's own version"
    );
    n += 1;
    assert_billed(&w, spent, n, &r).await;
    // The vendor's own error body reaches the client.
    w.mock.fail_status(400);
    let r = call(&w, Client::Anthropic, &body, false).await;
    assert_eq!(
        (r.status, r.json["error"]["message"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Scripted failure."))
    );
    // Another kind of channel cannot carry top_k: refused by name.
    let other = world(Backend::Sqlite, Upstream::OpenAi, false).await;
    let r = call(&other, Client::Anthropic, &body, false).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Named (thinking is carried as an effort; top_k has no place in the pivot).
    assert!(r.text.contains("top_k"), "{}", r.text);
    assert!(other.mock.requests().is_empty());

    // Gemini: safetySettings are not in the pivot; the JSON-array stream is re-framed from the
    // upstream's server-sent events.
    let w = world(Backend::Sqlite, Upstream::Gemini, false).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "pass me through"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]});
    let r = call(&w, Client::Gemini, &body, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // As written, with only the output limit that was held added.
    let mut written = body.clone();
    written["generationConfig"] = json!({"maxOutputTokens": 16_384});
    assert_eq!(w.mock.last(), written, "the body went as written");
    assert_eq!(r.json["responseId"], "mock-response");
    let spent = assert_billed(&w, 0, 1, &r).await;
    let array = w
        .app
        .send(
            w.app
                .client
                .post(
                    w.app
                        .url(&format!("/v1beta/models/{MODEL}:streamGenerateContent")),
                )
                .header("x-goog-api-key", &w.key)
                .json(&body),
        )
        .await;
    assert_eq!(array.status, StatusCode::OK, "{}", array.text);
    let items: Vec<Value> =
        serde_json::from_str(&array.text).unwrap_or_else(|e| panic!("{e}: {}", array.text));
    let text: String = items.iter().map(gemini_text).collect();
    assert_eq!(text, "echo: pass me through");
    let Mock::Gemini(gemini) = &w.mock else {
        unreachable!()
    };
    assert_eq!(
        gemini.received().last().unwrap().path,
        format!("/v1beta/models/{UPSTREAM_MODEL}:streamGenerateContent?alt=sse")
    );
    assert_billed(&w, spent, 2, &array).await;
}

/// A slow first byte past the channel's timeout is a failed attempt for every kind: the
/// request moves to the next channel and is billed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_times_out_and_fails_over() {
    for kind in [Upstream::Anthropic, Upstream::Gemini] {
        let w = world(Backend::Sqlite, kind, false).await;
        let r = w
            .app
            .patch(
                &format!("/api/v1/channels/{}", w.channel_id),
                Some(&w.root.access),
                json!({"timeout_secs": 1}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let backup = add_backup(&w).await;
        let slow = std::time::Duration::from_millis(1500);
        match &w.mock {
            Mock::Anthropic(m) => m.fail_next(Fault::Delay(slow)),
            Mock::Gemini(m) => m.fail_next(Fault::Delay(slow)),
            _ => unreachable!(),
        }
        let r = call(
            &w,
            Client::OpenAi,
            &text_body(Client::OpenAi, "are you slow", false, false),
            false,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
        assert_eq!(text_of(Client::OpenAi, &r, false), "echo: are you slow");
        assert_eq!(
            (w.mock.requests().len(), backup.requests().len()),
            (1, 1),
            "{kind:?}"
        );
        let items = settled(&w, 1).await;
        assert_ne!(
            items[0]["channel_id"],
            w.channel_id.as_str(),
            "billed on the backup"
        );
    }
}

/// A thinking budget is carried across vendors as an effort: an Anthropic client's `thinking`
/// reaches an OpenAI upstream as `reasoning_effort` and a Gemini upstream as `thinkingConfig`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_is_carried_across_vendors() {
    let body = json!({"model": MODEL, "max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [{"role": "user", "content": "think"}]});
    for kind in [Upstream::OpenAi, Upstream::Gemini] {
        let w = world(Backend::Sqlite, kind, false).await;
        let r = call(&w, Client::Anthropic, &body, false).await;
        assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
        let sent = w.mock.last();
        match kind {
            Upstream::Gemini => assert_eq!(
                sent["generationConfig"]["thinkingConfig"],
                json!({"thinkingBudget": 8192, "includeThoughts": true}),
                "{sent}"
            ),
            _ => assert_eq!(sent["reasoning_effort"], "medium", "{sent}"),
        }
    }
}
