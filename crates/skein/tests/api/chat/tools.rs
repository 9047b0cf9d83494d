//! Chat's tool seam through the real server: a tool runner added to the chat service, as the
//! Plugin service will add its plugins, is offered to the model; when the model calls it the
//! call runs, the clients see it, its result goes back upstream in OpenAI's format, and the
//! answer continues; each round is billed on its own and the message shows their sum and
//! keeps the calls. Also: answers are billed in a price group the user was granted.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_chat::tools::{Progress, ToolCall, ToolResult, ToolRunner, ToolSpec};
use skein_chat::turn::Turn;
use skein_core::ApiResult;
use skein_testkit::mock_openai::{prompt_tokens, reply_to};
use skein_testkit::{Price, RelayWorld, TestApp, Upstream, WorldSpec, on_both_backends};

/// A weather service in miniature: one tool, `weather`, answering for the city it is given;
/// one that hangs when asked about `Atlantis`.
struct Weather;

#[async_trait]
impl ToolRunner for Weather {
    fn name(&self) -> &str {
        "weather"
    }

    async fn tools(&self, turn: &Turn) -> ApiResult<Vec<ToolSpec>> {
        // Offered only when the question mentions the weather: a runner decides per turn.
        let asks = turn
            .question()
            .is_some_and(|q| q.content.contains("weather"));
        Ok(if asks {
            vec![ToolSpec {
                name: "weather".into(),
                description: "Today's weather in a city.".into(),
                parameters: json!({"type": "object",
                    "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                requires_approval: false,
            }]
        } else {
            Vec::new()
        })
    }

    async fn run(&self, _turn: &Turn, call: &ToolCall, _progress: &Progress) -> ToolResult {
        let Ok(arguments) = serde_json::from_str::<Value>(&call.arguments) else {
            return ToolResult::error("The arguments are not JSON.");
        };
        let city = arguments["city"].as_str().unwrap_or_default();
        if city.contains("Atlantis") {
            // Never answers: only a stop (or the deadline) ends the call.
            return std::future::pending().await;
        }
        ToolResult {
            content: format!("sunny and mild in {city}"),
            ..ToolResult::default()
        }
    }
}

/// `(event, data)` of a finished SSE body.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let name = frame.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).ok()?))
        })
        .collect()
}

fn find<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

async fn conversation(app: &TestApp, who: &skein_testkit::Persona) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Sends `content` and reads the whole answer's events.
async fn send(
    app: &TestApp,
    who: &skein_testkit::Persona,
    conversation: &str,
    content: &str,
) -> Vec<(String, Value)> {
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/chat/conversations/{conversation}/messages"
        )))
        .bearer_auth(&who.access)
        .json(&json!({ "content": content }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    events(&r.text().await.unwrap())
}

/// The user's usage records once no hold is open, newest first.
async fn settled_usage(app: &TestApp, who: &skein_testkit::Persona, records: usize) -> Vec<Value> {
    for _ in 0..500 {
        let usage = app
            .get("/api/v1/billing/usage", Some(&who.access))
            .await
            .json;
        let quota = app
            .get("/api/v1/billing/quota", Some(&who.access))
            .await
            .json;
        let items = usage["items"].as_array().cloned().unwrap_or_default();
        if items.len() == records && quota["reserved"] == 0 {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{records} calls were never settled");
}

/// 2 per prompt token, 6 per completion token.
fn cost(record: &Value) -> i64 {
    record["prompt_tokens"].as_i64().unwrap() * 2
        + record["completion_tokens"].as_i64().unwrap() * 6
}

on_both_backends! {
    async fn a_tool_call_is_run_and_the_answer_continues_with_its_result(backend) {
        let app = TestApp::spawn_extended(
            backend,
            |c| c.chat.title_model = Some(String::new()),
            |skein| skein.chat.as_ref().expect("this server runs chat").add_tool_runner(Arc::new(Weather)),
        )
        .await;
        let RelayWorld { user, upstream, .. } = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let id = conversation(&app, &user).await;
        let question = "what is the weather in Paris";
        let ev = send(&app, &user, &id, question).await;

        // The clients saw the call, its result, then the answer that followed.
        let call = find(&ev, "tool_call");
        assert_eq!((call["id"].as_str(), call["name"].as_str()), (Some("call_mock1"), Some("weather")), "{ev:?}");
        assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), json!({"city": question}));
        let result = find(&ev, "tool_result");
        assert_eq!(result["content"], format!("sunny and mild in {question}"));
        assert_eq!(result["is_error"], false);
        let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert!(at("tool_call") < at("tool_result") && at("tool_result") < at("delta"), "{names:?}");
        let text: String = ev.iter().filter(|(e, _)| e == "delta").map(|(_, d)| d["content"].as_str().unwrap()).collect();
        let messages = json!([{"role": "user", "content": question}]);
        assert_eq!(text, reply_to(&messages));

        // Upstream: the tool was offered; the second call carried the assistant's call and the
        // result, in OpenAI's format.
        let sent = upstream.requests();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0]["tools"][0]["function"]["name"], "weather");
        let followed: &Vec<Value> = sent[1]["messages"].as_array().unwrap();
        let n = followed.len();
        assert_eq!(followed[n - 2]["role"], "assistant");
        assert_eq!(followed[n - 2]["content"], Value::Null);
        assert_eq!(followed[n - 2]["tool_calls"][0]["id"], "call_mock1");
        assert_eq!(followed[n - 2]["tool_calls"][0]["type"], "function");
        assert_eq!(followed[n - 2]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(followed[n - 1], json!({"role": "tool", "tool_call_id": "call_mock1",
            "content": format!("sunny and mild in {question}")}));

        // Two billed calls; the message shows their sum and keeps the call.
        let records = settled_usage(&app, &user, 2).await;
        let total: i64 = records.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
        for record in &records {
            assert_eq!(record["cost"].as_i64().unwrap(), cost(record), "{record}");
            assert_eq!(record["conversation_id"].as_str(), Some(id.as_str()), "{record}");
        }
        let second_prompt = prompt_tokens(&sent[1]["messages"]);
        assert!(records.iter().any(|r| r["prompt_tokens"] == second_prompt), "{records:?}");
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["status"], "done");
        assert_eq!(done["usage"]["cost"].as_i64(), Some(total), "{done}");
        assert_eq!(done["tool_calls"][0]["name"], "weather", "{done}");
        assert_eq!(done["tool_calls"][0]["result"], format!("sunny and mild in {question}"));
        let history = app.get(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access)).await.json;
        let stored = history["messages"].as_array().unwrap().iter().find(|m| m["id"] == done["id"]).unwrap().clone();
        assert_eq!(stored["tool_calls"], done["tool_calls"]);

        // A turn the runner offers nothing for is one plain call, as without tools.
        let ev = send(&app, &user, &id, "hello there").await;
        assert!(ev.iter().all(|(e, _)| e != "tool_call"), "{ev:?}");
        let sent = upstream.requests();
        assert_eq!(sent.len(), 3);
        assert!(sent[2].get("tools").is_none(), "{}", sent[2]);
        assert!(find(&ev, "done")["message"].get("tool_calls").is_none());
        settled_usage(&app, &user, 3).await;
    }

    async fn a_stop_while_a_tool_runs_ends_the_answer_and_calls_nothing_more(backend) {
        use futures::StreamExt;
        let app = TestApp::spawn_extended(
            backend,
            |c| c.chat.title_model = Some(String::new()),
            |skein| skein.chat.as_ref().expect("this server runs chat").add_tool_runner(Arc::new(Weather)),
        )
        .await;
        let RelayWorld { user, upstream, .. } = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let id = conversation(&app, &user).await;
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{id}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": "the weather in Atlantis"})).send().await.unwrap();
        let mut body = r.bytes_stream();
        let mut seen = String::new();
        let mut stopped = false;
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if !stopped && seen.contains("event: tool_call") {
                let answer = find(&events(&seen), "start")["assistant_message_id"].as_str().unwrap().to_string();
                let r = app.post(&format!("/api/v1/chat/messages/{answer}/stop"), Some(&user.access), json!({})).await;
                assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
                stopped = true;
            }
        }
        let ev = events(&seen);
        assert!(ev.iter().all(|(e, _)| e != "tool_result"), "{ev:?}");
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["status"], "stopped", "{done}");
        // One billed call, the one that asked for the tool; the relay was not called again.
        assert_eq!(upstream.requests().len(), 1);
        let records = settled_usage(&app, &user, 1).await;
        assert_eq!(done["usage"]["cost"], records[0]["cost"], "{done}");
    }

    async fn a_model_that_keeps_calling_tools_must_answer_in_words_after_the_last_round(backend) {
        let app = TestApp::spawn_extended(
            backend,
            |c| c.chat.title_model = Some(String::new()),
            |skein| skein.chat.as_ref().expect("this server runs chat").add_tool_runner(Arc::new(Weather)),
        )
        .await;
        let RelayWorld { user, upstream, .. } = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        upstream.set_tool_rounds(100);
        let id = conversation(&app, &user).await;
        let ev = send(&app, &user, &id, "the weather in Oslo, again and again").await;
        let rounds = skein_chat::tools::MAX_TOOL_ROUNDS;
        assert_eq!(ev.iter().filter(|(e, _)| e == "tool_result").count(), rounds, "{ev:?}");
        // One call per round, then one without tools, which the model answers in words.
        let sent = upstream.requests();
        assert_eq!(sent.len(), rounds + 1);
        assert!(sent[..rounds].iter().all(|r| r["tools"].is_array()));
        assert!(sent[rounds].get("tools").is_none(), "{}", sent[rounds]);
        let done = &find(&ev, "done")["message"];
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(done["content"], "echo: the weather in Oslo, again and again");
        assert_eq!(done["tool_calls"].as_array().map(Vec::len), Some(rounds));
        let records = settled_usage(&app, &user, rounds + 1).await;
        let total: i64 = records.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
        assert_eq!(done["usage"]["cost"].as_i64(), Some(total));
    }

    async fn answers_are_billed_in_a_group_the_user_was_granted(backend) {
        // "cheap" is configured first, but users are granted "default" unless an admin says
        // otherwise: chat used to bill everyone at the first configured group.
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.relay.groups = vec!["cheap".into(), "default".into()];
            c.relay.default_user_groups = vec!["default".into()];
        })
        .await;
        let RelayWorld { root, user, upstream: _upstream, .. } = WorldSpec::new(Upstream::OpenAi)
            .model("gpt-test", Some("gpt-upstream"))
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            .channel(json!({"groups": ["cheap", "default"]}))
            .build(&app)
            .await;
        let r = app.put("/api/v1/admin/groups/cheap", Some(&root.access), json!({"multiplier_permille": 500})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        let price = |models: &Value| {
            models.as_array().unwrap().iter().find(|m| m["id"] == "gpt-test").map(|m| m["input_price"].as_i64().unwrap())
        };
        let models = app.get("/api/v1/chat/models", Some(&user.access)).await;
        assert_eq!(price(&models.json), Some(2_000_000), "the user's own group's price: {}", models.text);
        let id = conversation(&app, &user).await;
        send(&app, &user, &id, "hello there").await;
        let records = settled_usage(&app, &user, 1).await;
        assert_eq!(records[0]["cost"].as_i64().unwrap(), cost(&records[0]), "billed at ×1.0: {}", records[0]);

        // Granted the cheap group, the user's answers cost half.
        let r = app.put(&format!("/api/v1/admin/relay/users/{}/groups", user.id), Some(&root.access), json!({"groups": ["cheap"]})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let models = app.get("/api/v1/chat/models", Some(&user.access)).await;
        assert_eq!(price(&models.json), Some(1_000_000), "{}", models.text);
        send(&app, &user, &id, "hello again").await;
        let records = settled_usage(&app, &user, 2).await;
        let full = cost(&records[0]);
        assert_eq!(records[0]["cost"].as_i64().unwrap(), (full + 1) / 2, "billed at ×0.5: {}", records[0]);

        // With no group at all, chat refuses as a key would, and charges nothing.
        let r = app.put(&format!("/api/v1/admin/relay/users/{}/groups", user.id), Some(&root.access), json!({"groups": []})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.post(&format!("/api/v1/chat/conversations/{id}/messages"), Some(&user.access), json!({"content": "and now"})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "group_not_allowed"), "{}", r.text);
        settled_usage(&app, &user, 2).await;
    }
}
