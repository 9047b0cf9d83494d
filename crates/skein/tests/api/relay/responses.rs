//! The OpenAI Responses API (`POST /v1/responses`) through the relay's one pipeline, to an
//! OpenAI and an Anthropic upstream (the testkit's mocks, which speak each vendor's own wire
//! format): text whole and streamed with the documented event order, a function tool round
//! trip, what the upstream was sent, exact billing from the upstream's usage, and malformed or
//! unsupported input refused with a 400 that costs nothing. Then model aliases and fallbacks:
//! an alias serves another model at that model's price, a fallback model takes over (at its own
//! price) only when every channel of the model failed, and the usage record names the model
//! that served.

use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_testkit::{
    Backend, Fault, Persona, Price, RelayWorld, Resp, TestApp, Upstream, WorldSpec,
    on_both_backends,
};

/// The model clients ask for.
const MODEL: &str = "m-resp";
/// The name the channel maps it to upstream.
const UPSTREAM_MODEL: &str = "up-model";
/// Starting balance.
const BALANCE: i64 = 1_000_000;

async fn world(backend: Backend, kind: Upstream) -> (TestApp, RelayWorld) {
    let app = TestApp::spawn(backend).await;
    let key = match kind {
        Upstream::OpenAi => "sk-up-openai",
        Upstream::Azure => "az-up-key",
        Upstream::Anthropic => "sk-ant-up",
        Upstream::Gemini => "AIza-up",
    };
    let w = WorldSpec::new(kind)
        .upstream_key(key)
        .model(MODEL, Some(UPSTREAM_MODEL))
        .price(MODEL, Price::tokens(2_000_000, 6_000_000))
        .balance(BALANCE)
        .build(&app)
        .await;
    (app, w)
}

async fn respond(app: &TestApp, key: &str, body: &Value) -> Resp {
    app.send(
        app.client
            .post(app.url("/v1/responses"))
            .bearer_auth(key)
            .json(body),
    )
    .await
}

/// `(prompt, completion)` in OpenAI's terms from the usage the mock last reported.
fn expected_tokens(w: &RelayWorld) -> (i64, i64) {
    let u = w.upstream.usages().last().cloned().expect("a usage");
    let int = |k: &str| u[k].as_i64().unwrap_or(0);
    match w.kind {
        Upstream::OpenAi | Upstream::Azure => (int("prompt_tokens"), int("completion_tokens")),
        Upstream::Anthropic => (
            int("input_tokens")
                + int("cache_read_input_tokens")
                + int("cache_creation_input_tokens"),
            int("output_tokens"),
        ),
        Upstream::Gemini => (
            int("promptTokenCount"),
            int("candidatesTokenCount") + int("thoughtsTokenCount"),
        ),
    }
}

/// Waits until `records` requests of `user` are settled and answers their usage records.
pub(crate) async fn settled(app: &TestApp, user: &Persona, records: usize) -> Vec<Value> {
    for _ in 0..1000 {
        let usage = app
            .get("/api/v1/billing/usage?per_page=100", Some(&user.access))
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

/// The usage record of the answer `r`, once `records` are settled.
async fn record_of(app: &TestApp, user: &Persona, records: usize, r: &Resp) -> Value {
    let items = settled(app, user, records).await;
    let id = r.header("x-request-id").expect("a request id");
    items
        .iter()
        .find(|i| i["request_id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no usage record for {id}: {items:?}"))
}

pub(crate) async fn balance(app: &TestApp, user: &Persona) -> i64 {
    app.get("/api/v1/billing/quota", Some(&user.access))
        .await
        .json["balance"]
        .as_i64()
        .expect("a balance")
}

/// Checks the `records`-th request (`r`) was billed exactly the upstream's usage at 2 per
/// prompt and 6 per completion token; answers what was spent in all.
async fn assert_billed(app: &TestApp, w: &RelayWorld, spent: i64, records: usize, r: &Resp) -> i64 {
    let (prompt, completion) = expected_tokens(w);
    let record = record_of(app, &w.user, records, r).await;
    let cost = prompt * 2 + completion * 6;
    assert_eq!(
        (
            record["prompt_tokens"].as_i64(),
            record["completion_tokens"].as_i64(),
            record["cost"].as_i64(),
            record["model"].as_str(),
        ),
        (Some(prompt), Some(completion), Some(cost), Some(MODEL)),
        "{record}"
    );
    assert_eq!(record["channel_id"], w.channel_id.as_str());
    assert_eq!(balance(app, &w.user).await, BALANCE - spent - cost);
    spent + cost
}

/// The events of a Responses stream: `(event name, data)`, checking each data's `type` is the
/// event's name and that sequence numbers count up from 0.
fn events(r: &Resp) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in r.text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or_else(|| panic!("an event without a name: {block}"));
        let data: Value = block
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("JSON data"))
            .unwrap_or_else(|| panic!("an event without data: {block}"));
        assert_eq!(data["type"], name, "{block}");
        assert_eq!(data["sequence_number"], out.len(), "{}", r.text);
        out.push((name.to_string(), data));
    }
    out
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// The text the upstream was sent as the system prompt and as the last user turn.
fn sent_text(w: &RelayWorld) -> (String, String) {
    let sent = w
        .upstream
        .requests()
        .last()
        .cloned()
        .expect("the upstream was called");
    assert_eq!(sent["model"], UPSTREAM_MODEL, "{sent}");
    let messages = sent["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    let system = match w.kind {
        Upstream::Anthropic => text(&sent["system"]),
        _ => text(&messages[0]["content"]),
    };
    (system, text(&last["content"]))
}

async fn case_text(backend: Backend, kind: Upstream) {
    let (app, w) = world(backend, kind).await;
    let body = json!({"model": MODEL, "instructions": "be brief", "input": "hello there relay",
        "max_output_tokens": 50, "metadata": {"run": "1"}});
    let r = respond(&app, &w.key, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{kind:?}: {}", r.text);
    let resp = &r.json;
    assert_eq!(resp["object"], "response");
    assert!(resp["id"].as_str().unwrap().starts_with("resp_"), "{resp}");
    assert_eq!(resp["status"], "completed");
    assert_eq!(resp["model"], MODEL);
    assert_eq!(resp["instructions"], "be brief");
    // Kept by default, as OpenAI does.
    assert_eq!(resp["store"], true);
    assert_eq!(resp["metadata"], json!({"run": "1"}));
    let output = resp["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{resp}");
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(output[0]["content"][0]["type"], "output_text");
    assert_eq!(output[0]["content"][0]["text"], "echo: hello there relay");
    let (prompt, completion) = expected_tokens(&w);
    assert_eq!(
        (
            resp["usage"]["input_tokens"].as_i64(),
            resp["usage"]["output_tokens"].as_i64(),
            resp["usage"]["total_tokens"].as_i64()
        ),
        (Some(prompt), Some(completion), Some(prompt + completion)),
        "{resp}"
    );
    assert_eq!(
        sent_text(&w),
        ("be brief".to_string(), "hello there relay".to_string())
    );
    let spent = assert_billed(&app, &w, 0, 1, &r).await;

    // Streamed: the documented events in order, the text in deltas, usage at the end.
    let body = json!({"model": MODEL, "instructions": "be brief", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "stream me some words please"}]}],
        "stream": true});
    let r = respond(&app, &w.key, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = events(&r);
    let kinds = names(&events);
    let deltas = kinds
        .iter()
        .filter(|k| **k == "response.output_text.delta")
        .count();
    assert!(deltas >= 2, "the text came in pieces: {}", r.text);
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(kinds, expected, "{kind:?}");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "echo: stream me some words please");
    let (_, created) = &events[0];
    let (_, completed) = events.last().unwrap();
    assert_eq!(created["response"]["status"], "in_progress");
    assert_eq!(completed["response"]["id"], created["response"]["id"]);
    assert_eq!(completed["response"]["status"], "completed");
    assert_eq!(
        completed["response"]["output"][0]["content"][0]["text"],
        "echo: stream me some words please"
    );
    let (prompt, completion) = expected_tokens(&w);
    assert_eq!(
        (
            completed["response"]["usage"]["input_tokens"].as_i64(),
            completed["response"]["usage"]["output_tokens"].as_i64()
        ),
        (Some(prompt), Some(completion))
    );
    let spent = assert_billed(&app, &w, spent, 2, &r).await;

    // A stream that breaks half way ends with response.failed and is billed as partial.
    w.upstream.fail_next(Fault::DieAfter(2));
    let body = json!({"model": MODEL, "input": "one two three four five six", "stream": true});
    let r = respond(&app, &w.key, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = self::events(&r);
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("response.failed"),
        "{}",
        r.text
    );
    let record = record_of(&app, &w.user, 3, &r).await;
    assert_eq!(record["status"], "partial", "{record}");
    let charged = record["cost"].as_i64().unwrap();
    assert!(charged > 0, "the delivered part is billed");
    assert_eq!(balance(&app, &w.user).await, BALANCE - spent - charged);
}

async fn case_tools(backend: Backend, kind: Upstream) {
    let (app, w) = world(backend, kind).await;
    let mut spent = 0;
    let mut call_id = String::new();
    for (n, stream) in [(1, false), (2, true)] {
        let body = json!({"model": MODEL, "input": "weather in Paris", "tools": weather_tool(),
            "tool_choice": "auto", "stream": stream});
        let r = respond(&app, &w.key, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let response = if stream {
            let events = events(&r);
            let kinds = names(&events);
            let added = kinds
                .iter()
                .position(|k| *k == "response.output_item.added")
                .unwrap();
            assert_eq!(
                events[added].1["item"]["type"], "function_call",
                "{}",
                r.text
            );
            assert_eq!(events[added].1["item"]["name"], "weather");
            // The mocks stream the arguments in two pieces: both arrive as deltas.
            let pieces = kinds
                .iter()
                .filter(|k| **k == "response.function_call_arguments.delta")
                .count();
            assert!(pieces >= 2, "{}", r.text);
            let done = events
                .iter()
                .find(|(n, _)| n == "response.function_call_arguments.done")
                .map(|(_, d)| d.clone())
                .unwrap();
            let args: Value = serde_json::from_str(done["arguments"].as_str().unwrap()).unwrap();
            assert_eq!(args, json!({"city": "weather in Paris"}));
            assert_eq!(kinds.last(), Some(&"response.completed"));
            events.last().unwrap().1["response"].clone()
        } else {
            r.json.clone()
        };
        let call = response["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .cloned()
            .unwrap_or_else(|| panic!("no function call: {response}"));
        assert_eq!(call["name"], "weather");
        assert_eq!(call["status"], "completed");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "weather in Paris"}), "{response}");
        call_id = call["call_id"].as_str().unwrap().to_string();
        assert!(!call_id.is_empty());
        // The upstream got the tool in its own format.
        let sent = w.upstream.requests().last().cloned().unwrap();
        let declared = match kind {
            Upstream::Anthropic => sent["tools"][0]["input_schema"]["properties"]["city"].clone(),
            _ => sent["tools"][0]["function"]["parameters"]["properties"]["city"].clone(),
        };
        assert_eq!(declared, json!({"type": "string"}), "{sent}");
        spent = assert_billed(&app, &w, spent, n, &r).await;
    }

    // The result goes back with its call: the upstream sees the call and the result paired.
    let body = json!({"model": MODEL, "tools": weather_tool(), "input": [
        {"role": "user", "content": "weather in Paris"},
        {"type": "function_call", "call_id": call_id, "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": call_id, "output": "sunny 21C"}]});
    let r = respond(&app, &w.key, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let sent = w.upstream.requests().last().cloned().unwrap();
    let messages = sent["messages"].as_array().unwrap();
    match kind {
        Upstream::Anthropic => {
            let call = &messages[1]["content"][0];
            assert_eq!(call["type"], "tool_use", "{sent}");
            assert_eq!(call["id"], call_id.as_str());
            assert_eq!(call["input"], json!({"city": "Paris"}));
            let result = &messages[2]["content"][0];
            assert_eq!(result["type"], "tool_result");
            assert_eq!(result["tool_use_id"], call_id.as_str());
            assert!(result.to_string().contains("sunny 21C"), "{sent}");
        }
        _ => {
            let call = &messages[1]["tool_calls"][0];
            assert_eq!(call["id"], call_id.as_str(), "{sent}");
            assert_eq!(call["function"]["name"], "weather");
            assert_eq!(messages[2]["role"], "tool");
            assert_eq!(messages[2]["tool_call_id"], call_id.as_str());
            assert_eq!(messages[2]["content"], "sunny 21C");
        }
    }
    assert_eq!(r.json["status"], "completed", "{}", r.text);
    assert!(
        r.json["output"][0]["content"][0]["text"].is_string(),
        "{}",
        r.text
    );
    assert_billed(&app, &w, spent, 3, &r).await;
}

on_both_backends! {
    async fn text_and_streams_reach_an_openai_upstream_and_are_billed_exactly(backend) {
        case_text(backend, Upstream::OpenAi).await;
    }

    async fn text_and_streams_reach_an_anthropic_upstream_and_are_billed_exactly(backend) {
        case_text(backend, Upstream::Anthropic).await;
    }

    async fn a_function_tool_round_trips_through_an_openai_upstream(backend) {
        case_tools(backend, Upstream::OpenAi).await;
    }

    async fn a_function_tool_round_trips_through_an_anthropic_upstream(backend) {
        case_tools(backend, Upstream::Anthropic).await;
    }

    async fn options_reach_the_upstream_as_chat_fields(backend) {
        let (app, w) = world(backend, Upstream::OpenAi).await;
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let body = json!({"model": MODEL, "input": "hi", "temperature": 0.5, "top_p": 0.9,
            "max_output_tokens": 40, "reasoning": {"effort": "low"}, "parallel_tool_calls": false,
            "tools": weather_tool(), "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": true}}});
        let r = respond(&app, &w.key, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let sent = w.upstream.requests().last().cloned().unwrap();
        assert_eq!(sent["temperature"], 0.5);
        assert_eq!(sent["top_p"], 0.9);
        assert_eq!(sent["max_tokens"], 40, "{sent}");
        assert_eq!(sent["reasoning_effort"], "low");
        assert_eq!(sent["parallel_tool_calls"], false);
        assert_eq!(sent["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(sent["response_format"], json!({"type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": true}}));
        // The response echoes what was asked.
        assert_eq!(r.json["temperature"], 0.5);
        assert_eq!(r.json["max_output_tokens"], 40);
        assert_eq!(r.json["tools"], weather_tool());
        assert_eq!(r.json["text"]["format"]["type"], "json_schema");
        assert_eq!(r.json["parallel_tool_calls"], false);
    }

    async fn malformed_or_unsupported_input_is_refused_and_costs_nothing(backend) {
        let (app, w) = world(backend, Upstream::OpenAi).await;
        for (body, code) in [
            (json!({"model": MODEL}), "invalid_request"),
            (json!({"model": MODEL, "input": 42}), "invalid_request"),
            (json!({"model": MODEL, "input": []}), "invalid_request"),
            (json!({"model": MODEL, "input": [{"content": "no type"}]}), "invalid_request"),
            (json!({"model": MODEL, "input": [{"type": "function_call", "name": "f"}]}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "instructions": 3}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "max_output_tokens": -1}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "reasoning": {"effort": "extreme"}}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "store": "yes"}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "background": 1}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "previous_response_id": 7}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "background": true, "store": false}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "background": true, "stream": true}), "invalid_request"),
            (json!({"model": MODEL, "input": "x", "conversation": "conv_1"}), "unsupported_field"),
            (json!({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]}), "unsupported_content"),
            (json!({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}), "unsupported_tool"),
            (json!({"model": MODEL, "input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}), "unsupported_tool"),
            (json!({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}), "unsupported_content"),
            (json!({"model": MODEL, "input": "x", "prompt": {"id": "pmpt_1"}}), "unsupported_field"),
            (json!({"input": "x"}), "missing_model"),
        ] {
            let r = respond(&app, &w.key, &body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
            // OpenAI's error shape, which the SDK reads.
            assert_eq!(r.json["error"]["type"], "invalid_request_error", "{}", r.text);
            assert_eq!(r.json["error"]["code"], code, "{body}: {}", r.text);
            assert!(r.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        // In Chinese too.
        let r = app
            .send(
                app.client
                    .post(app.url("/v1/responses"))
                    .bearer_auth(&w.key)
                    .header("accept-language", "zh-CN")
                    .json(&json!({"model": MODEL, "input": "x", "previous_response_id": "resp_1"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "response_not_found", "{}", r.text);
        assert!(r.json["error"]["message"].as_str().unwrap().contains("没有为你保存"), "{}", r.text);
        // Not JSON at all.
        let r = app
            .send(
                app.client
                    .post(app.url("/v1/responses"))
                    .bearer_auth(&w.key)
                    .header("content-type", "application/json")
                    .body("{not json"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // Nothing reached the upstream and nothing was charged.
        assert!(w.upstream.requests().is_empty());
        assert_eq!(balance(&app, &w.user).await, BALANCE);
        let usage = app.get("/api/v1/billing/usage", Some(&w.user.access)).await;
        assert_eq!(usage.json["items"], json!([]));
        // Another user's key cannot reach the model without a key of its own.
        let r = app
            .send(app.client.post(app.url("/v1/responses")).json(&json!({"model": MODEL, "input": "x"})))
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    async fn an_alias_serves_another_model_at_its_price(backend) {
        let (app, w) = world(backend, Upstream::OpenAi).await;
        let root = &w.root;
        let r = app
            .put("/api/v1/admin/model-routes/gpt-4o", Some(&root.access), json!({"alias_of": MODEL}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["model"], "gpt-4o");
        assert_eq!(r.json["alias_of"], MODEL);
        assert_eq!(r.json["fallbacks"], json!([]));
        let list = app.get("/api/v1/admin/model-routes", Some(&root.access)).await;
        assert_eq!(list.json[0]["model"], "gpt-4o", "{}", list.text);
        // Only admins see or change routes.
        let r = app.get("/api/v1/admin/model-routes", Some(&w.user.access)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app
            .put("/api/v1/admin/model-routes/x", Some(&w.user.access), json!({"alias_of": MODEL}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Keys list the alias beside the model.
        let models = app
            .send(app.client.get(app.url("/v1/models")).bearer_auth(&w.key))
            .await;
        let ids: Vec<&str> = models.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["id"].as_str())
            .collect();
        assert_eq!(ids, ["gpt-4o", MODEL], "{}", models.text);

        // Chat completions and the Responses API both serve the alias as the model: its
        // channel and mapping, its price, its name on the usage record.
        let r = app
            .send(
                app.client
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(&w.key)
                    .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi alias"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["choices"][0]["message"]["content"], "echo: hi alias");
        assert_eq!(w.upstream.requests().last().unwrap()["model"], UPSTREAM_MODEL);
        let spent = assert_billed(&app, &w, 0, 1, &r).await;
        let r = respond(&app, &w.key, &json!({"model": "gpt-4o", "input": "hi responses"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["output"][0]["content"][0]["text"], "echo: hi responses");
        assert_billed(&app, &w, spent, 2, &r).await;

        // Bad routes are refused by field, in both languages.
        for (model, body, field) in [
            ("gpt-4o", json!({"alias_of": "gpt-4o"}), "alias_of"),
            ("gpt-5x", json!({"alias_of": "gpt-4o"}), "alias_of"),
            (MODEL, json!({"alias_of": "other"}), "alias_of"),
            ("y", json!({}), "alias_of"),
            ("y", json!({"fallbacks": ["a", "a"]}), "fallbacks"),
            ("y", json!({"fallbacks": ["y"]}), "fallbacks"),
            ("y", json!({"fallbacks": ["a", "b", "c", "d", "e", "f"]}), "fallbacks"),
            ("y", json!({"fallbacks": [""]}), "fallbacks"),
        ] {
            let r = app
                .put(&format!("/api/v1/admin/model-routes/{model}"), Some(&root.access), body.clone())
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{model} {body}: {}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
        }
        let r = app
            .put("/api/v1/admin/model-routes/y", Some(&root.access), json!({"alias_of": 3}))
            .await;
        assert!(r.status.is_client_error(), "{}", r.text);

        // Removed, the alias is an unknown model again.
        let r = app
            .call(reqwest::Method::DELETE, "/api/v1/admin/model-routes/gpt-4o", Some(&root.access), None)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let r = app
            .call(reqwest::Method::DELETE, "/api/v1/admin/model-routes/gpt-4o", Some(&root.access), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = respond(&app, &w.key, &json!({"model": "gpt-4o", "input": "hi"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "model_not_found");
    }

    async fn a_fallback_serves_at_its_own_price_only_when_every_channel_failed(backend) {
        let (app, w) = world(backend, Upstream::OpenAi).await;
        let root = &w.root;
        let (backup, backup_id) = w.add_backup(&app, "sk-backup", &["m-cheap"], 5).await;
        app.set_price(root, "m-cheap", Price::tokens(1_000_000, 3_000_000)).await;
        let r = app
            .put(&format!("/api/v1/admin/model-routes/{MODEL}"), Some(&root.access),
                json!({"fallbacks": ["m-cheap"]}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // The model's only channel fails (5xx): the fallback serves, billed at its price and
        // recorded under its name and channel.
        w.upstream.fail_next(Fault::Status(500));
        let r = respond(&app, &w.key, &json!({"model": MODEL, "input": "please fall back"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["output"][0]["content"][0]["text"], "echo: please fall back");
        assert_eq!(backup.requests().last().unwrap()["model"], "m-cheap");
        let u = backup.usages().last().cloned().unwrap();
        let (prompt, completion) = (u["prompt_tokens"].as_i64().unwrap(), u["completion_tokens"].as_i64().unwrap());
        let record = record_of(&app, &w.user, 1, &r).await;
        let cost = prompt + completion * 3;
        assert_eq!(record["model"], "m-cheap", "{record}");
        assert_eq!(record["channel_id"], backup_id.as_str());
        assert_eq!(record["cost"].as_i64(), Some(cost), "{record}");
        assert_eq!(balance(&app, &w.user).await, BALANCE - cost);

        // Streamed through chat completions too.
        w.upstream.fail_next(Fault::Status(503));
        let r = app
            .send(
                app.client
                    .post(app.url("/v1/chat/completions"))
                    .bearer_auth(&w.key)
                    .json(&json!({"model": MODEL, "stream": true,
                        "messages": [{"role": "user", "content": "stream fallback"}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("fallback"), "{}", r.text);
        let record = record_of(&app, &w.user, 2, &r).await;
        assert_eq!(record["model"], "m-cheap", "{record}");

        // A healthy model is served by its own channel at its own price.
        let r = respond(&app, &w.key, &json!({"model": MODEL, "input": "no need"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let record = record_of(&app, &w.user, 3, &r).await;
        assert_eq!(record["model"], MODEL, "{record}");
        assert_eq!(record["channel_id"], w.channel_id.as_str());

        // The request's own fault (the upstream's 4xx) never falls back.
        let before = backup.requests().len();
        w.upstream.fail_next(Fault::Status(400));
        let r = respond(&app, &w.key, &json!({"model": MODEL, "input": "bad one"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(backup.requests().len(), before);
    }
}

/// The official OpenAI Python SDK's `client.responses.create` and `client.responses.stream`
/// against an OpenAI and an Anthropic upstream: what matters is what the SDK parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdk_speaks_the_responses_api() {
    let python = crate::relay::sdk::python();
    let check = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import openai: run ./scripts/test (it installs the SDKs) or set SKEIN_TEST_PYTHON"
    );
    for kind in [Upstream::OpenAi, Upstream::Anthropic] {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let w = WorldSpec::new(kind)
            .model("gpt-test", None)
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            .build(&app)
            .await;
        let path = format!(
            "{}/tests/sdk/openai_responses_sdk.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = tokio::process::Command::new(&python)
            .arg(path)
            .env("BASE", &app.base)
            .env("KEY", &w.key)
            .output()
            .await
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind:?}: the SDK script failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
        assert_eq!(seen["text"], "echo: hello from responses", "{kind:?}");
        assert_eq!(seen["status"], "completed");
        assert_eq!(seen["id_prefix"], "resp_");
        // The mocks count words: "be brief" + "hello from responses" = 5, "echo: ..." = 4.
        assert_eq!(
            (
                seen["input_tokens"].as_i64(),
                seen["output_tokens"].as_i64(),
                seen["total_tokens"].as_i64()
            ),
            (Some(5), Some(4), Some(9)),
            "{kind:?}"
        );
        assert_eq!(
            seen["stream_text"], "echo: hello from responses",
            "{kind:?}"
        );
        assert_eq!(seen["stream_first"], "response.created");
        assert_eq!(seen["stream_last"], "response.completed");
        assert!(seen["stream_deltas"].as_i64().unwrap() >= 2, "{seen}");
        assert_eq!(seen["stream_output_tokens"], 4);
        assert_eq!(seen["raw_text"], "echo: raw events please");
        assert_eq!(seen["raw_sequence_ok"], true);
        assert_eq!(seen["call_name"], "weather");
        assert_eq!(seen["call_args"], json!({"city": "weather in Paris"}));
        // Each mock echoes the last user turn: Anthropic's is the tool result.
        let after = seen["after_tool"].as_str().unwrap_or("");
        match kind {
            Upstream::Anthropic => assert!(after.contains("sunny 21C"), "{seen}"),
            _ => assert_eq!(after, "echo: weather in Paris", "{seen}"),
        }
        assert_eq!(seen["after_tool_status"], "completed");
        assert_eq!(
            seen["stream_call_args"],
            json!({"city": "weather in Paris"})
        );
        assert!(seen["stream_arg_deltas"].as_i64().unwrap() >= 2, "{seen}");
        // The mocks echo the last user turn; the conversation before it was sent too (the
        // kept-state tests check what the upstream got).
        assert_eq!(seen["continued"], "echo: what is my name", "{kind:?}");
        assert!(
            seen["continued_previous"]
                .as_str()
                .is_some_and(|id| id.starts_with("resp_")),
            "{seen}"
        );
        assert_eq!(seen["retrieved"], "echo: what is my name");
        assert_eq!(seen["input_items"], json!(["what is my name"]));
        assert_eq!(seen["deleted"], true);
        assert_eq!(
            seen["after_delete"],
            json!({"status": 404, "code": "response_not_found"})
        );
        assert_eq!(
            seen["previous"],
            json!({"status": 404, "code": "response_not_found"})
        );
        assert_eq!(seen["background_first"], "queued");
        assert_eq!(seen["background_status"], "completed");
        assert_eq!(seen["background_text"], "echo: in the background");
        assert_eq!(
            seen["web_search"],
            json!({"status": 400, "code": "unsupported_tool"})
        );
    }
}

/// An alias and a fallback set through one instance are applied by another instance of the
/// same deployment (PostgreSQL's bus), well before the periodic reload would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_set_on_one_instance_apply_on_another() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.sibling().await;
    let w = WorldSpec::new(Upstream::OpenAi)
        .model(MODEL, Some(UPSTREAM_MODEL))
        .price(MODEL, Price::tokens(2_000_000, 6_000_000))
        .build(&a)
        .await;
    let since = std::time::Instant::now();
    let r = a
        .put(
            "/api/v1/admin/model-routes/gpt-4o",
            Some(&w.root.access),
            json!({"alias_of": MODEL}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    loop {
        let r = respond(&b, &w.key, &json!({"model": "gpt-4o", "input": "across"})).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json["output"][0]["content"][0]["text"], "echo: across");
            break;
        }
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert!(
            since.elapsed() < std::time::Duration::from_secs(5),
            "the alias never reached the other instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!("an alias set on A served on B after {:?}", since.elapsed());
}
