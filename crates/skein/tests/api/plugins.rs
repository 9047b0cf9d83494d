//! The Plugin service through the real server: a chat whose model calls the built-in web
//! search (a fake provider) and gets its results back upstream, billed per model call; an
//! OpenAPI plugin called against a local fake — refused on 127.0.0.1 until an admin allows
//! private addresses, then called with its key, and a tool that hangs, answers 50 MB or
//! invalid JSON, or does not exist is an error the model hears; a private plugin and its
//! secrets are its owner's alone.

pub(crate) mod code_interpreter;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use skein_testkit::{Persona, RelayWorld, TestApp, Upstream, on_both_backends};

/// What a fake service received: `(path, headers, query or body)`.
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A fake Tavily: `POST /search` with a bearer key, two results.
async fn fake_tavily(seen: Seen) -> SocketAddr {
    async fn search(
        State(seen): State<Seen>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> impl IntoResponse {
        seen.lock()
            .unwrap()
            .push(("/search".into(), headers, body.clone()));
        axum::Json(
            json!({"query": body["query"], "response_time": 0.1, "images": [], "results": [
            {"title": "Rust 2024 edition", "url": "https://blog.rust-lang.org/2025/02/20/Rust-1.85.0.html",
             "content": "Rust 1.85 stabilises the 2024 edition.", "score": 0.9},
            {"title": "Edition guide", "url": "https://doc.rust-lang.org/edition-guide/",
             "content": "The Rust Edition Guide.", "score": 0.8}]}),
        )
    }
    serve(
        Router::new()
            .route("/search", post(search))
            .with_state(seen),
    )
    .await
}

/// A fake weather API with an OpenAPI document: `/weather` answers, `/hang` never does,
/// `/huge` streams 50 MB, `/bad` says JSON and sends none.
async fn fake_weather(seen: Seen) -> SocketAddr {
    async fn weather(
        State(seen): State<Seen>,
        headers: HeaderMap,
        Query(q): Query<Value>,
    ) -> impl IntoResponse {
        seen.lock()
            .unwrap()
            .push(("/weather".into(), headers, q.clone()));
        axum::Json(json!({"city": q["city"], "sky": "sunny", "celsius": 21}))
    }
    async fn hang() -> &'static str {
        std::future::pending::<()>().await;
        "never"
    }
    async fn huge() -> impl IntoResponse {
        let chunk = axum::body::Bytes::from(vec![b'x'; 1024 * 1024]);
        let stream =
            futures::stream::iter((0..50).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        (
            [("content-type", "text/plain")],
            axum::body::Body::from_stream(stream),
        )
    }
    async fn bad() -> impl IntoResponse {
        ([("content-type", "application/json")], "{\"sky\": sunny")
    }
    serve(
        Router::new()
            .route("/weather", get(weather))
            .route("/hang", get(hang))
            .route("/huge", get(huge))
            .route("/bad", get(bad))
            .with_state(seen),
    )
    .await
}

fn weather_document(address: SocketAddr) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Weather", "version": "1"},
        "servers": [{"url": format!("http://{address}")}],
        "paths": {
            "/weather": {"get": {"operationId": "get_weather", "summary": "Today's weather in a city",
                "parameters": [{"name": "city", "in": "query", "required": true, "schema": {"type": "string"}}]}},
            "/hang": {"get": {"operationId": "hang", "summary": "Never answers"}},
            "/huge": {"get": {"operationId": "huge", "summary": "Answers 50 MB"}},
            "/bad": {"get": {"operationId": "bad_json", "summary": "Answers broken JSON"}}
        }
    })
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

async fn conversation(app: &TestApp, who: &Persona) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

async fn send(
    app: &TestApp,
    who: &Persona,
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

/// The user's usage records once no hold is open.
async fn settled_usage(app: &TestApp, who: &Persona, records: usize) -> Vec<Value> {
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

async fn enable(app: &TestApp, who: &Persona, plugin: &str, extra: Value) -> Value {
    let mut body = json!({"enabled": true});
    if let Value::Object(map) = extra {
        for (k, v) in map {
            body[k] = v;
        }
    }
    let r = app
        .put(
            &format!("/api/v1/plugins/{plugin}/preferences"),
            Some(&who.access),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// The one tool result of an answer in which the model called `tool` with `arguments`.
async fn call_tool(
    app: &TestApp,
    world: &RelayWorld,
    conversation: &str,
    tool: &str,
    arguments: &str,
) -> Value {
    world.upstream.set_tool_call(Some(tool), Some(arguments));
    let ev = send(app, &world.user, conversation, "use the tool").await;
    let call = find(&ev, "tool_call");
    assert_eq!(call["name"], tool, "{ev:?}");
    let done = &find(&ev, "done")["message"];
    assert_eq!(done["status"], "done", "{done}");
    find(&ev, "tool_result").clone()
}

on_both_backends! {
    async fn a_model_searches_the_web_and_the_results_go_back_upstream_as_citations(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let tavily = fake_tavily(seen.clone()).await;

        // Nothing is offered until the admin sets a provider and the user enables the tool.
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        assert_eq!(tools.json["items"], json!([]), "{}", tools.text);
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.user.access),
            json!({"search": {"provider": "tavily"}})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": {"provider": "tavily"}})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("search")), "{}", r.text);
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": {"provider": "tavily", "base_url": format!("http://{tavily}"), "api_key": "tvly-secret-key", "count": 2}})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["search"]["key_set"], true);
        assert!(!r.text.contains("tvly-secret-key"));
        let market = app.get("/api/v1/plugins", Some(&world.user.access)).await;
        let search = market.json["items"].as_array().unwrap().iter().find(|p| p["id"] == "builtin-web-search").unwrap().clone();
        assert_eq!((search["available"].as_bool(), search["enabled"].as_bool()), (Some(true), Some(false)), "{search}");
        enable(&app, &world.user, "builtin-web-search", json!({})).await;
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        assert_eq!(tools.json["items"][0]["name"], "web_search", "{}", tools.text);
        assert_eq!(tools.json["items"][0]["parameters"]["required"], json!(["query"]));

        let id = conversation(&app, &world.user).await;
        world.upstream.set_tool_call(Some("web_search"), Some(r#"{"query": "rust 2024 edition"}"#));
        let ev = send(&app, &world.user, &id, "what is new in rust").await;

        // The provider got Tavily's request: bearer key, query, result count.
        let received = seen.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].1["authorization"], "Bearer tvly-secret-key");
        assert_eq!(received[0].2["query"], "rust 2024 edition");
        assert_eq!(received[0].2["max_results"], 2);

        // The clients saw the call and its result; the model read the numbered results.
        let result = find(&ev, "tool_result");
        assert_eq!(result["is_error"], false, "{result}");
        let content = result["content"].as_str().unwrap();
        assert!(content.contains("[1] Rust 2024 edition") && content.contains("[2] Edition guide"), "{content}");
        let sent = world.upstream.requests();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0]["tools"][0]["function"]["name"], "web_search");
        let last = sent[1]["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["role"].as_str(), last["tool_call_id"].as_str()), (Some("tool"), Some("call_mock1")));
        assert_eq!(last["content"].as_str(), Some(content));

        // Stored with the answer, citations included; two model calls, each billed.
        let done = &find(&ev, "done")["message"];
        let citations = &done["tool_calls"][0]["citations"];
        assert_eq!(citations[0]["url"], "https://blog.rust-lang.org/2025/02/20/Rust-1.85.0.html", "{done}");
        assert_eq!(citations[1]["title"], "Edition guide");
        let records = settled_usage(&app, &world.user, 2).await;
        let total: i64 = records.iter().map(|r| r["cost"].as_i64().unwrap()).sum();
        for record in &records {
            assert_eq!(record["cost"].as_i64().unwrap(),
                record["prompt_tokens"].as_i64().unwrap() * 2 + record["completion_tokens"].as_i64().unwrap() * 6, "{record}");
        }
        assert_eq!(done["usage"]["cost"].as_i64(), Some(total), "{done}");

        // The usage is counted; a conversation can turn the tool off.
        let mine = app.get("/api/v1/plugins/builtin-web-search", Some(&world.user.access)).await;
        assert_eq!((mine.json["calls"].as_i64(), mine.json["your_calls"].as_i64()), (Some(1), Some(1)), "{}", mine.text);
        let r = app.put(&format!("/api/v1/plugins/conversations/{id}/builtin-web-search"), Some(&world.user.access), json!({"enabled": false})).await;
        assert_eq!(r.json["items"][0]["enabled"], false, "{}", r.text);
        let tools = app.get(&format!("/api/v1/plugins/tools?conversation_id={id}"), Some(&world.user.access)).await;
        assert_eq!(tools.json["items"], json!([]));
        let ev = send(&app, &world.user, &id, "and now").await;
        assert!(ev.iter().all(|(e, _)| e != "tool_call"), "{ev:?}");
        assert!(world.upstream.requests()[2].get("tools").is_none());

        // The next question still carries the earlier call and what it returned, before that
        // answer's text, though the tool is off now.
        let replay = world.upstream.requests()[2]["messages"].as_array().unwrap().clone();
        let at = replay.iter().position(|m| m["tool_calls"].is_array()).unwrap_or_else(|| panic!("{replay:?}"));
        let call = &replay[at]["tool_calls"][0];
        assert_eq!((call["function"]["name"].as_str(), call["function"]["arguments"].as_str()),
            (Some("web_search"), Some(r#"{"query": "rust 2024 edition"}"#)), "{replay:?}");
        assert_eq!(replay[at + 1], json!({"role": "tool", "tool_call_id": call["id"], "content": content}));
        assert_eq!((replay[at + 2]["role"].as_str(), replay[at - 1]["content"].as_str()), (Some("assistant"), Some("what is new in rust")));
        assert_eq!(replay.last().unwrap()["content"], "and now");

        // Exports keep the call; an import of the JSON brings it back to the answer.
        let exported = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=json"), Some(&world.user.access)).await;
        let answer = exported.json["messages"].as_array().unwrap().iter()
            .find(|m| m["tool_calls"].is_array()).unwrap_or_else(|| panic!("{}", exported.text)).clone();
        assert_eq!((answer["tool_calls"][0]["name"].as_str(), answer["tool_calls"][0]["result"].as_str()), (Some("web_search"), Some(content)));
        let md = app.get(&format!("/api/v1/chat/conversations/{id}/export?format=markdown"), Some(&world.user.access)).await;
        assert!(md.text.contains("<details><summary>Tool: web_search</summary>") && md.text.contains("[2] Edition guide"), "{}", md.text);
        let r = app.post("/api/v1/chat/import", Some(&world.user.access), exported.json.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let copy = r.json["ids"][0].as_str().unwrap();
        let h = app.get(&format!("/api/v1/chat/conversations/{copy}/messages"), Some(&world.user.access)).await;
        let back = h.json["messages"].as_array().unwrap().iter()
            .find(|m| m["tool_calls"].is_array()).unwrap_or_else(|| panic!("{}", h.text)).clone();
        assert_eq!((back["tool_calls"][0]["name"].as_str(), back["tool_calls"][0]["result"].as_str()), (Some("web_search"), Some(content)));
    }

    async fn openapi_tools_are_called_with_their_key_behind_the_ssrf_guard_and_limits(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;

        // Malformed and oversized documents are refused clearly.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Broken", "kind": "openapi", "openapi": {"swagger": "2.0"}})).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{}", r.text);
        assert!(r.text.contains("OpenAPI 3"), "{}", r.text);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Broken", "kind": "openapi", "openapi": "openapi: 3.0.0"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let mut huge = weather_document(fake);
        huge["info"]["description"] = json!("x".repeat(1_100_000));
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Huge", "kind": "openapi", "openapi": huge})).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);

        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), json!({
            "name": "Weather", "kind": "openapi", "category": "tools", "openapi": weather_document(fake),
            "auth": {"kind": "api_key_header", "name": "X-Api-Key", "secret": "weather-secret"}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(!r.text.contains("weather-secret"));
        let plugin = r.json["id"].as_str().unwrap().to_string();
        let mut names: Vec<&str> = r.json["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["bad_json", "get_weather", "hang", "huge"]);
        enable(&app, &world.user, &plugin, json!({})).await;
        let id = conversation(&app, &world.user).await;

        // 127.0.0.1 is refused while private addresses are not allowed; nothing is sent.
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Paris"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("not allowed"), "{result}");
        assert!(seen.lock().unwrap().is_empty());

        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "tool_timeout_secs": 2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // Called with the plugin's key; the JSON answer goes to the model.
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Paris"}"#).await;
        assert_eq!(result["is_error"], false, "{result}");
        let answer: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
        assert_eq!(answer, json!({"city": "Paris", "sky": "sunny", "celsius": 21}));
        let received = seen.lock().unwrap().clone();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].1["x-api-key"], "weather-secret");
        assert_eq!(received[0].2["city"], "Paris");

        // A hang ends at the deadline, 50 MB at the size limit, broken JSON as broken.
        let started = std::time::Instant::now();
        let result = call_tool(&app, &world, &id, "hang", "{}").await;
        assert_eq!(result["is_error"], true);
        assert!(result["content"].as_str().unwrap().contains("2 seconds"), "{result}");
        assert!(started.elapsed() < Duration::from_secs(20));
        let result = call_tool(&app, &world, &id, "huge", "{}").await;
        assert_eq!(result["is_error"], true);
        assert!(result["content"].as_str().unwrap().contains("more than 1048576 bytes"), "{result}");
        let result = call_tool(&app, &world, &id, "bad_json", "{}").await;
        assert_eq!(result["is_error"], true);
        assert!(result["content"].as_str().unwrap().contains("invalid JSON"), "{result}");
        // Arguments that are not JSON, and a tool the model made up.
        let result = call_tool(&app, &world, &id, "get_weather", "{city: Paris").await;
        assert_eq!(result["is_error"], true);
        assert!(result["content"].as_str().unwrap().contains("not valid JSON"), "{result}");
        let result = call_tool(&app, &world, &id, "rm_rf", "{}").await;
        assert_eq!(result["is_error"], true);
        assert!(result["content"].as_str().unwrap().contains("no tool called rm_rf"), "{result}");

        // The key is never shown, to the admin either.
        let all = app.get("/api/v1/admin/plugins", Some(&world.root.access)).await;
        assert_eq!(all.status, StatusCode::OK);
        assert!(!all.text.contains("weather-secret"));
        let audit = app.get("/api/v1/admin/audit", Some(&world.root.access)).await;
        assert_eq!(audit.status, StatusCode::OK);
        assert!(audit.text.contains("/api/v1/admin/plugins") && !audit.text.contains("weather-secret"), "{}", audit.text);
        let r = app.call(Method::DELETE, &format!("/api/v1/admin/plugins/{plugin}"), Some(&world.root.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.call(Method::DELETE, "/api/v1/admin/plugins/builtin-web-search", Some(&world.root.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "built-ins stay");
    }

    async fn a_private_plugin_and_its_secrets_are_its_owners_alone(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let eve = app.register("eve").await;

        // Ada registers her own plugin; her key is hers, sealed, shown only as "set".
        let r = app.post("/api/v1/plugins", Some(&world.user.access), json!({
            "name": "My weather", "kind": "openapi", "openapi": weather_document(fake),
            "auth": {"kind": "bearer"}, "required_secrets": ["api_key"]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert_eq!(r.json["scope"], "private");
        let plugin = r.json["id"].as_str().unwrap().to_string();
        let view = enable(&app, &world.user, &plugin, json!({"secrets": {"api_key": "ada-own-key"}})).await;
        assert_eq!(view["secrets_set"], json!(["api_key"]));
        assert!(!view.to_string().contains("ada-own-key"));

        // Eve sees nothing of it and cannot enable, toggle or delete it.
        let market = app.get("/api/v1/plugins", Some(&eve.access)).await;
        assert!(market.json["items"].as_array().unwrap().iter().all(|p| p["id"] != plugin.as_str()), "{}", market.text);
        assert_eq!(app.get(&format!("/api/v1/plugins/{plugin}"), Some(&eve.access)).await.status, StatusCode::NOT_FOUND);
        let r = app.put(&format!("/api/v1/plugins/{plugin}/preferences"), Some(&eve.access), json!({"enabled": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.put(&format!("/api/v1/plugins/conversations/x/{plugin}"), Some(&eve.access), json!({"enabled": true})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.call(Method::DELETE, &format!("/api/v1/plugins/{plugin}"), Some(&eve.access), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let tools = app.get("/api/v1/plugins/tools", Some(&eve.access)).await;
        assert_eq!(tools.json["items"], json!([]));

        // Private addresses allowed for published plugins only (the setting above): a user's
        // own plugin still cannot reach 127.0.0.1 until the admin allows that for users too.
        let id = conversation(&app, &world.user).await;
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Oslo"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("not allowed"), "{result}");
        assert!(seen.lock().unwrap().is_empty(), "nothing reached the private address");
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "allow_private_addresses_for_user_plugins": true})).await;
        assert_eq!(r.json["allow_private_addresses_for_user_plugins"], true, "{}", r.text);

        // Ada's tool runs with her key.
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Oslo"}"#).await;
        assert_eq!(result["is_error"], false, "{result}");
        assert_eq!(seen.lock().unwrap()[0].1["authorization"], "Bearer ada-own-key");
        let r = app.call(Method::DELETE, &format!("/api/v1/plugins/{plugin}"), Some(&world.user.access), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/plugins/tools", Some(&world.user.access)).await.json["items"], json!([]));
    }

    async fn an_mcp_server_is_listed_and_called_over_streamable_http(backend) {
        use skein_testkit::mock_mcp::MockMcp;
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let mcp = MockMcp::start(Some("mcp-token")).await;
        let new = |secret: &str| json!({"name": "Echo", "kind": "mcp", "server_url": mcp.url,
            "auth": {"kind": "bearer", "secret": secret}});

        // On 127.0.0.1 it is refused until private addresses are allowed; a wrong key fails
        // at registration, not in a chat.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("mcp-token")).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::BAD_GATEWAY, "mcp_unreachable"), "{}", r.text);
        assert!(r.text.contains("not allowed"), "{}", r.text);
        assert!(mcp.methods().is_empty());
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "tool_timeout_secs": 2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("wrong")).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
        assert!(r.text.contains("HTTP 401"), "{}", r.text);

        // A server whose second page names itself as the next (to be cached for a day): the
        // listing stops at the repeated cursor, each page asked for once.
        mcp.looping.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("mcp-token")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let names: Vec<&str> = r.json["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "slow"], "{}", r.text);
        assert_eq!(mcp.methods().iter().filter(|m| *m == "tools/list").count(), 2, "{:?}", mcp.methods());
        let r = app.call(Method::DELETE, &format!("/api/v1/admin/plugins/{}", r.json["id"].as_str().unwrap()), Some(&world.root.access), None).await;
        assert!(r.status.is_success(), "{}", r.text);
        mcp.looping.store(false, std::sync::atomic::Ordering::Relaxed);

        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("mcp-token")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let names: Vec<&str> = r.json["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "slow"], "both pages; the unusable name left out");
        let plugin = r.json["id"].as_str().unwrap().to_string();
        enable(&app, &world.user, &plugin, json!({})).await;
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        assert_eq!(tools.json["items"][0]["parameters"]["required"], json!(["text"]));

        let id = conversation(&app, &world.user).await;
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "你好"}"#).await;
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("echo: 你好"), Some(false)), "{result}");
        let methods = mcp.methods();
        assert_eq!(&methods[methods.len() - 3..], ["initialize", "notifications/initialized", "tools/call"]);
        let received = mcp.received.lock().unwrap().clone();
        assert_eq!(received.last().unwrap().1["authorization"], "Bearer mcp-token");

        // A server that asks during a call (a ping, then sampling under the call's own id) is
        // answered at once on POSTs of their own: the ping with an empty result, sampling
        // refused (Skein offers none); its question is not taken for the call's answer.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?ask"}"#).await;
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("echo: ping {}; sampling -32601"), Some(false)), "{result}");
        // (The sampling request reused the call's id: its answer is the last response.)
        let methods = mcp.methods();
        let last = &methods[methods.len() - 3..];
        assert_eq!(&last[..2], ["tools/call", "response srv-ping"], "{methods:?}");
        assert!(last[2].starts_with("response ") && last[2] != "response srv-ping", "{methods:?}");

        // A call past the deadline is an error the model hears.
        let result = call_tool(&app, &world, &id, "slow", r#"{"seconds": 30}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("2 seconds"), "{result}");

        // 50 MB is cut at the size limit, and a stream that ends without an answer is an
        // error at once, not a wait for the deadline.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?huge"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("more than 1048576 bytes"), "{result}");
        let started = std::time::Instant::now();
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?vanish"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(started.elapsed() < Duration::from_millis(1900), "waited {:?} for {result}", started.elapsed());
        // A request "accepted" with no answer fails at once too; an HTTP error's JSON-RPC
        // reason is what the model reads.
        let started = std::time::Instant::now();
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?accept"}"#).await;
        assert!(result["content"].as_str().unwrap().contains("accepted a request without answering it (HTTP 202)"), "{result}");
        assert!(started.elapsed() < Duration::from_millis(1900), "waited {:?} for {result}", started.elapsed());
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?reject"}"#).await;
        assert!(result["content"].as_str().unwrap().contains("HTTP 400: text must not start with ?"), "{result}");
    }

    async fn an_mcp_server_is_listed_and_called_over_the_older_sse_transport(backend) {
        use skein_testkit::mock_mcp::MockMcpSse;
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let mcp = MockMcpSse::start(Some("sse-token")).await;
        let new = |secret: &str| json!({"name": "Echo (SSE)", "kind": "mcp", "server_url": mcp.url,
            "auth": {"kind": "bearer", "secret": secret}});
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "tool_timeout_secs": 2})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // A wrong key fails at registration with the server's own answer.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("wrong")).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::BAD_GATEWAY, "mcp_unreachable"), "{}", r.text);
        assert!(r.text.contains("HTTP 401"), "{}", r.text);
        assert_eq!(mcp.methods(), ["GET /sse"], "the POST was refused before it was read");
        mcp.received.lock().unwrap().clear();

        // The Streamable HTTP POST is refused (405), so the event stream is opened: its
        // endpoint takes the messages, and both pages of tools are listed.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("sse-token")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let names: Vec<&str> = r.json["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "slow"], "both pages; the unusable name left out");
        assert_eq!(mcp.methods(), ["GET /sse", "initialize", "notifications/initialized", "tools/list", "tools/list"]);
        let plugin = r.json["id"].as_str().unwrap().to_string();
        enable(&app, &world.user, &plugin, json!({})).await;
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        assert_eq!(tools.json["items"][0]["parameters"]["required"], json!(["text"]), "{}", tools.text);

        // A call: a new stream, the call POSTed to its endpoint, the progress and the answer
        // read from the stream; the key went with every request.
        let id = conversation(&app, &world.user).await;
        world.upstream.set_tool_call(Some("echo"), Some(r#"{"text": "你好"}"#));
        let ev = send(&app, &world.user, &id, "echo this").await;
        let result = find(&ev, "tool_result");
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("echo: 你好"), Some(false)), "{result}");
        assert_eq!(find(&ev, "tool_progress")["text"], "started", "{ev:?}");
        let methods = mcp.methods();
        assert_eq!(&methods[methods.len() - 4..], ["GET /sse", "initialize", "notifications/initialized", "tools/call"]);
        let received = mcp.received.lock().unwrap().clone();
        assert!(received.iter().all(|(_, h)| h["authorization"] == "Bearer sse-token"), "{received:?}");
        let sent = world.upstream.requests();
        let last = sent.last().unwrap()["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["content"], "echo: 你好", "the model read the answer: {last}");

        // A result with isError is the tool's own answer; a call past the deadline ends.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": ""}"#).await;
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("nothing to echo"), Some(true)), "{result}");
        // The server's own requests during a call are answered through its endpoint.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?ask"}"#).await;
        assert_eq!(result["content"], "echo: ping {}; sampling -32601", "{result}");
        // (The sampling request reused the call's id: its answer is the last response.)
        let methods = mcp.methods();
        let last = &methods[methods.len() - 3..];
        assert_eq!(&last[..2], ["tools/call", "response srv-ping"], "{methods:?}");
        assert!(last[2].starts_with("response ") && last[2] != "response srv-ping", "{methods:?}");
        let result = call_tool(&app, &world, &id, "slow", r#"{"seconds": 30}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("2 seconds"), "{result}");
    }

    async fn a_drawn_image_is_billed_to_the_user_and_stored_as_their_file(backend) {
        use skein_testkit::{Price, WorldSpec};
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.chat.default_model = Some("gpt-test".into());
        })
        .await;
        let world = WorldSpec::new(Upstream::OpenAi)
            .model("gpt-test", Some("gpt-upstream"))
            .price("gpt-test", Price::tokens(2_000_000, 6_000_000))
            // gpt-image-1 upstream: answered in base64.
            .model("img", Some("gpt-image-1"))
            .price("img", Price { per_call: 1_000, ..Price::tokens(0, 0) })
            .build(&app)
            .await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "image_model": "img"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        enable(&app, &world.user, "builtin-image", json!({})).await;
        let id = conversation(&app, &world.user).await;
        let result = call_tool(&app, &world, &id, "generate_image", r#"{"prompt": "a red fox"}"#).await;
        assert_eq!(result["is_error"], false, "{result}");
        let file = result["citations"][0]["reference"]["file_id"].as_str().unwrap().to_string();

        // The picture is the user's file, as the upstream drew it.
        let meta = app.get(&format!("/api/v1/files/{file}"), Some(&world.user.access)).await;
        assert_eq!(meta.status, StatusCode::OK, "{}", meta.text);
        assert_eq!(meta.json["content_type"], "image/png");
        let bytes = app.client.get(app.url(&format!("/api/v1/files/{file}/content"))).bearer_auth(&world.user.access)
            .send().await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], [b"\x89PNG\r\n\x1a\n".as_slice(), b"a red fox"].concat().as_slice());
        let other = app.register("eve").await;
        assert_eq!(app.get(&format!("/api/v1/files/{file}"), Some(&other.access)).await.status, StatusCode::NOT_FOUND);

        // Two model calls and one image, each billed to the user with the conversation.
        let records = settled_usage(&app, &world.user, 3).await;
        let image: Vec<&Value> = records.iter().filter(|r| r["model"] == "img").collect();
        assert_eq!(image.len(), 1, "{records:?}");
        assert_eq!(image[0]["cost"].as_i64(), Some(1_000));
        assert_eq!(image[0]["conversation_id"].as_str(), Some(id.as_str()));
    }
}

/// Publishes the weather plugin (private addresses allowed) and enables it for the user;
/// answers its id.
async fn weather_plugin(app: &TestApp, world: &RelayWorld, fake: SocketAddr) -> String {
    let r = app
        .put(
            "/api/v1/admin/plugins/settings",
            Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "tool_timeout_secs": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/api/v1/admin/plugins",
            Some(&world.root.access),
            json!({"name": "Weather", "kind": "openapi", "openapi": weather_document(fake)}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let plugin = r.json["id"].as_str().unwrap().to_string();
    enable(app, &world.user, &plugin, json!({})).await;
    plugin
}

/// Publishes the mock MCP server's tools at `price` per call (private addresses allowed, a
/// 2 s deadline) and enables them for the user; answers the server and the plugin's id.
async fn paid_echo(
    app: &TestApp,
    world: &RelayWorld,
    price: i64,
) -> (skein_testkit::mock_mcp::MockMcp, String) {
    let mcp = skein_testkit::mock_mcp::MockMcp::start(None).await;
    let r = app
        .put(
            "/api/v1/admin/plugins/settings",
            Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "tool_timeout_secs": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post(
            "/api/v1/admin/plugins",
            Some(&world.root.access),
            json!({"name": "Echo", "kind": "mcp", "server_url": mcp.url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let plugin = r.json["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/plugins/{plugin}"),
            Some(&world.root.access),
            Some(json!({"price_per_call": price})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    enable(app, &world.user, &plugin, json!({})).await;
    (mcp, plugin)
}

/// The paid calls' records, `(call_key, tool, status, created_at)`, read from the database
/// (no route shows them).
async fn charge_rows(app: &TestApp) -> Vec<(String, String, String, i64)> {
    let db = skein_db::Db::connect(&app.config.database_url(), 1)
        .await
        .unwrap();
    skein_db::sqlx::query_as(
        "SELECT call_key, tool, status, created_at FROM plugin_tool_charges ORDER BY created_at, call_key",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
}

async fn balance(app: &TestApp, who: &Persona) -> i64 {
    let r = app.get("/api/v1/billing/quota", Some(&who.access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["balance"].as_i64().unwrap()
}

/// Sends a message and reads its stream as it comes; at the first `tool_approval` event,
/// `decide` is called with it. Answers every event.
async fn send_deciding<F, Fut>(
    app: &TestApp,
    who: &Persona,
    conversation: &str,
    content: &str,
    decide: F,
) -> Vec<(String, Value)>
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut r = app
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
    let mut text = String::new();
    let mut decide = Some(decide);
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if decide.is_some()
            && let Some((_, approval)) = events(&text)
                .into_iter()
                .find(|(e, _)| e == "tool_approval")
        {
            (decide.take().unwrap())(approval).await;
        }
    }
    events(&text)
}

/// Attaches to answer `message` as `who` (`GET /chat/messages/{id}/stream`) and reads its
/// events until one named `until` (or the stream's end), for at most 10 s.
async fn attach_until(
    app: &TestApp,
    who: &Persona,
    message: &str,
    until: &str,
) -> Vec<(String, Value)> {
    let mut r = app
        .client
        .get(app.url(&format!("/api/v1/chat/messages/{message}/stream")))
        .bearer_auth(&who.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if events(&text).iter().any(|(e, _)| e == until) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the attached stream went quiet");
    events(&text)
}

on_both_backends! {
    async fn paid_tools_are_charged_once_per_call_and_refused_when_the_balance_cannot_pay(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;
        let plugin = weather_plugin(&app, &world, fake).await;
        let path = format!("/api/v1/admin/plugins/{plugin}");

        // Only admins price tools; a price must be a whole quota amount from 0.
        let r = app.call(Method::PATCH, &path, Some(&world.user.access), Some(json!({"price_per_call": 0}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app.call(Method::PATCH, &path, Some(&world.root.access), Some(json!({"price_per_call": -1}))).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("price_per_call")), "{}", r.text);
        let r = app.call(Method::PATCH, &path, Some(&world.root.access), Some(json!({"tool_prices": {"huge": -5}}))).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains("huge"), "{}", r.text);
        let r = app.call(Method::PATCH, "/api/v1/admin/plugins/nope", Some(&world.root.access), Some(json!({"price_per_call": 1}))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.call(Method::PATCH, &path, Some(&world.root.access),
            Some(json!({"price_per_call": 30, "tool_prices": {"hang": 0}}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["price_per_call"].as_i64(), r.json["tool_prices"]["hang"].as_i64()), (Some(30), Some(0)), "{}", r.text);
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        let price = |name: &str| tools.json["items"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["price"].as_i64();
        assert_eq!((price("get_weather"), price("hang")), (Some(30), Some(0)), "{}", tools.text);

        // One paid call: charged 30 exactly once, shown in usage with the conversation.
        let start = balance(&app, &world.user).await;
        let id = conversation(&app, &world.user).await;
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Paris"}"#).await;
        assert_eq!(result["is_error"], false, "{result}");
        let records = settled_usage(&app, &world.user, 3).await;
        let tool: Vec<&Value> = records.iter().filter(|r| r["model"] == "tool:get_weather").collect();
        assert_eq!(tool.len(), 1, "{records:?}");
        assert_eq!(tool[0]["cost"].as_i64(), Some(30));
        assert_eq!(tool[0]["conversation_id"].as_str(), Some(id.as_str()));
        let models: i64 = records.iter().filter(|r| r["model"] == "gpt-test").map(|r| r["cost"].as_i64().unwrap()).sum();
        assert!(models > 0);
        assert_eq!(balance(&app, &world.user).await, start - models - 30);

        // A call that fails is not paid for; a free tool (its own price 0) neither.
        let result = call_tool(&app, &world, &id, "bad_json", "{}").await;
        assert_eq!(result["is_error"], true, "{result}");
        let records = settled_usage(&app, &world.user, 5).await;
        assert_eq!(records.iter().filter(|r| r["model"].as_str().unwrap().starts_with("tool:")).count(), 1, "{records:?}");
        let models: i64 = records.iter().filter(|r| r["model"] == "gpt-test").map(|r| r["cost"].as_i64().unwrap()).sum();
        assert_eq!(balance(&app, &world.user).await, start - models - 30);

        // A price the balance cannot pay: refused before the tool runs, nothing charged.
        let r = app.call(Method::PATCH, &path, Some(&world.root.access), Some(json!({"price_per_call": 5_000_000}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let before = seen.lock().unwrap().len();
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Rome"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("cannot pay"), "{result}");
        assert_eq!(seen.lock().unwrap().len(), before, "the tool did not run");
        let records = settled_usage(&app, &world.user, 7).await;
        assert_eq!(records.iter().filter(|r| r["model"].as_str().unwrap().starts_with("tool:")).count(), 1, "{records:?}");
        let models: i64 = records.iter().filter(|r| r["model"] == "gpt-test").map(|r| r["cost"].as_i64().unwrap()).sum();
        assert_eq!(balance(&app, &world.user).await, start - models - 30);
    }

    async fn user_settings_are_checked_against_the_plugins_schema(backend) {
        let app = TestApp::spawn(backend).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let fake = fake_weather(Seen::default()).await;
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["units"],
            "properties": {"units": {"type": "string", "enum": ["metric", "imperial"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "label": {"type": "string", "maxLength": 8}}});

        // A schema that cannot check settings is refused when the plugin is registered.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), json!({"name": "Weather",
            "kind": "openapi", "openapi": weather_document(fake), "settings_schema": {"type": "string"}})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("settings_schema")), "{}", r.text);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), json!({"name": "Weather",
            "kind": "openapi", "openapi": weather_document(fake), "settings_schema": schema})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let plugin = r.json["id"].as_str().unwrap().to_string();
        assert_eq!(r.json["settings_schema"], schema);
        let path = format!("/api/v1/plugins/{plugin}/preferences");

        // Each misfit is a 422 naming the setting, in English and in Chinese; nothing is stored.
        for (settings, field, en) in [
            (json!({"days": 3}), "settings.units", "settings.units is required"),
            (json!({"units": "kelvin"}), "settings.units", "settings.units must be one of [\"metric\",\"imperial\"]"),
            (json!({"units": "metric", "days": 9}), "settings.days", "settings.days must be at most 7"),
            (json!({"units": "metric", "days": "3"}), "settings.days", "settings.days must be of type integer"),
            (json!({"units": "metric", "label": "much too long"}), "settings.label", "settings.label must be at most 8 characters"),
            (json!({"units": "metric", "colour": "red"}), "settings.colour", "settings.colour is not a known setting"),
        ] {
            let r = app.put(&path, Some(&world.user.access), json!({"enabled": true, "settings": settings})).await;
            assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{}", r.text);
            assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
            assert_eq!(r.json["error"]["message"], format!("The settings do not fit the plugin: {en}."), "{}", r.text);
        }
        let zh = app.send(app.client.put(app.url(&path)).bearer_auth(&world.user.access)
            .header("accept-language", "zh-CN").json(&json!({"enabled": true, "settings": {"units": "metric", "days": 0}}))).await;
        assert_eq!((zh.status, zh.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("settings.days")), "{}", zh.text);
        assert_eq!(zh.json["error"]["message"], "设置不符合插件的要求：settings.days 不能小于 1。", "{}", zh.text);
        let zh = app.send(app.client.put(app.url(&path)).bearer_auth(&world.user.access)
            .header("accept-language", "zh-CN").json(&json!({"enabled": true, "settings": {}}))).await;
        assert_eq!(zh.json["error"]["message"], "设置不符合插件的要求：settings.units 为必填项。", "{}", zh.text);
        let r = app.put(&path, Some(&world.user.access), json!({"enabled": true, "settings": ["metric"]})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("settings")), "{}", r.text);
        let view = app.get(&format!("/api/v1/plugins/{plugin}"), Some(&world.user.access)).await;
        assert_eq!((view.json["enabled"].as_bool(), &view.json["settings"]), (Some(false), &json!({})), "{}", view.text);

        // Settings that fit are stored and shown back; a later misfit leaves them as they were.
        let good = json!({"units": "imperial", "days": 7, "label": "home"});
        let r = app.put(&path, Some(&world.user.access), json!({"enabled": true, "settings": good})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!((r.json["enabled"].as_bool(), &r.json["settings"]), (Some(true), &good), "{}", r.text);
        let r = app.put(&path, Some(&world.user.access), json!({"enabled": true, "settings": {"units": "metric", "days": 8}})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        let view = app.get(&format!("/api/v1/plugins/{plugin}"), Some(&world.user.access)).await;
        assert_eq!(view.json["settings"], good, "{}", view.text);
        // Switching the plugin off without settings keeps them.
        let r = app.put(&path, Some(&world.user.access), json!({"enabled": false})).await;
        assert_eq!((r.json["enabled"].as_bool(), &r.json["settings"]), (Some(false), &good), "{}", r.text);

        // An admin's new schema is checked the same way.
        let r = app.call(Method::PATCH, &format!("/api/v1/admin/plugins/{plugin}"), Some(&world.root.access),
            Some(json!({"settings_schema": {"type": "object", "properties": {"days": {"type": "date"}}}}))).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("settings_schema")), "{}", r.text);
    }

    async fn an_openapi_document_in_yaml_becomes_tools_that_are_called(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // As people write them: comments, an anchor reused, a folded summary, `on` as a name.
        let yaml = format!(r#"# The weather service
openapi: 3.0.3
info:
  title: Weather
  version: "1"
servers:
  - url: http://{fake}
x-city: &city
  name: city
  in: query
  required: true
  schema: {{type: string}}
paths:
  /weather:
    get:
      operationId: get_weather
      summary: >-
        Today's weather
        in a city
      parameters: [*city]
      responses:
        200: {{description: The weather}}
  /bad:
    get:
      operationId: bad_json
      parameters:
        - {{name: on, in: query, schema: {{type: boolean}}}}
"#);

        // Broken and hostile YAML is refused by name, with where it broke.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Broken", "kind": "openapi", "openapi": "openapi: 3.0.3\npaths:\n  /x: [\n"})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("openapi")), "{}", r.text);
        assert!(r.text.contains("not valid YAML") && r.text.contains("line"), "{}", r.text);
        let mut bomb = String::from("openapi: 3.0.3\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
        }
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Bomb", "kind": "openapi", "openapi": bomb})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.text.contains("aliases counted"), "{}", r.text);
        let zh = app.send(app.client.post(app.url("/api/v1/admin/plugins")).bearer_auth(&world.root.access)
            .header("accept-language", "zh-CN").json(&json!({"name": "Bomb", "kind": "openapi", "openapi": bomb}))).await;
        assert!(zh.json["error"]["message"].as_str().unwrap().starts_with("无法读取 OpenAPI 文档"), "{}", zh.text);

        // The YAML document's operations are the tools, parameters as the document says.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Weather (YAML)", "kind": "openapi", "openapi": yaml})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let plugin = r.json["id"].as_str().unwrap().to_string();
        enable(&app, &world.user, &plugin, json!({})).await;
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        let items = tools.json["items"].as_array().unwrap();
        let mut names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["bad_json", "get_weather"], "{}", tools.text);
        let tool = |name: &str| items.iter().find(|t| t["name"] == name).unwrap().clone();
        let weather = tool("get_weather");
        assert_eq!(weather["description"], "Today's weather in a city", "{weather}");
        assert_eq!(weather["parameters"]["required"], json!(["city"]), "{weather}");
        assert_eq!(weather["parameters"]["properties"]["city"]["type"], "string", "{weather}");
        assert!(tool("bad_json")["parameters"]["properties"].get("on").is_some(), "YAML 1.2: `on` is a name: {}", tools.text);

        // A call goes through to the service.
        let id = conversation(&app, &world.user).await;
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Lyon"}"#).await;
        assert_eq!(result["is_error"], false, "{result}");
        let answer: Value = serde_json::from_str(result["content"].as_str().unwrap()).unwrap();
        assert_eq!(answer, json!({"city": "Lyon", "sky": "sunny", "celsius": 21}));
        let received = seen.lock().unwrap().clone();
        assert_eq!((received.len(), received[0].2["city"].as_str()), (1, Some("Lyon")));
    }

    async fn a_paid_tool_that_ran_is_charged_even_when_it_reports_an_error(backend) {
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let (_mcp, _plugin) = paid_echo(&app, &world, 25).await;
        let start = balance(&app, &world.user).await;
        let id = conversation(&app, &world.user).await;

        // Answered: charged.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "hi"}"#).await;
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("echo: hi"), Some(false)), "{result}");
        // Ran and answered that it failed (an MCP result with isError): the work was done,
        // so it is charged too; the model hears the tool's own words.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": ""}"#).await;
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("nothing to echo"), Some(true)), "{result}");
        // No answer within the deadline: released, not charged.
        let result = call_tool(&app, &world, &id, "slow", r#"{"seconds": 30}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("2 seconds"), "{result}");

        // Six model calls and two tool charges of 25; nothing else.
        let records = settled_usage(&app, &world.user, 8).await;
        let tools: Vec<i64> = records.iter().filter(|r| r["model"] == "tool:echo").map(|r| r["cost"].as_i64().unwrap()).collect();
        assert_eq!(tools, [25, 25], "{records:?}");
        assert!(records.iter().all(|r| r["model"] == "tool:echo" || r["model"] == "gpt-test"), "{records:?}");
        let models: i64 = records.iter().filter(|r| r["model"] == "gpt-test").map(|r| r["cost"].as_i64().unwrap()).sum();
        assert_eq!(balance(&app, &world.user).await, start - models - 50);
        let mut statuses = charge_rows(&app).await.into_iter().map(|(_, tool, status, _)| format!("{tool} {status}")).collect::<Vec<_>>();
        statuses.sort();
        assert_eq!(statuses, ["echo charged", "echo charged", "slow released"]);
    }

    async fn paid_call_records_are_pruned_after_their_retention(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.plugin.charge_retention_days = 2;
            c.plugin.charge_prune_every_secs = 1;
        })
        .await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let (_mcp, plugin) = paid_echo(&app, &world, 3).await;
        let id = conversation(&app, &world.user).await;
        for text in ["one", "two"] {
            let result = call_tool(&app, &world, &id, "echo", &json!({"text": text}).to_string()).await;
            assert_eq!(result["is_error"], false, "{result}");
        }
        settled_usage(&app, &world.user, 6).await;
        let rows = charge_rows(&app).await;
        assert_eq!(rows.len(), 2, "{rows:?}");

        // One call three days old; an old released one and an old one whose end was never
        // written (the process stopped mid-call), as a previous process would leave them.
        let db = skein_db::Db::connect(&app.config.database_url(), 1).await.unwrap();
        let three_days_ago = skein_core::ids::now_ms() - 3 * 24 * 3600 * 1000;
        skein_db::sqlx::query("UPDATE plugin_tool_charges SET created_at = $1 WHERE call_key = $2")
            .bind(three_days_ago).bind(&rows[0].0).execute(db.pool()).await.unwrap();
        for (key, status) in [("tool:old-released", "released"), ("tool:old-held", "held")] {
            skein_db::sqlx::query("INSERT INTO plugin_tool_charges (call_key, user_id, plugin_id, tool, price, status, created_at) \
                 VALUES ($1, 'u', $2, 'echo', 3, $3, $4)")
                .bind(key).bind(&plugin).bind(status).bind(three_days_ago).execute(db.pool()).await.unwrap();
        }

        // The periodic prune removes the settled records past two days, and only those.
        for _ in 0..200 {
            let mut keys: Vec<String> = charge_rows(&app).await.into_iter().map(|r| r.0).collect();
            if keys.len() == 2 {
                keys.sort();
                let mut expected = vec![rows[1].0.clone(), "tool:old-held".to_string()];
                expected.sort();
                assert_eq!(keys, expected);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the records were never pruned: {:?}", charge_rows(&app).await);
    }

    async fn a_tool_that_needs_approval_waits_for_the_user(backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.chat.tool_approval_timeout_secs = 4;
        })
        .await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;
        let plugin = weather_plugin(&app, &world, fake).await;
        let r = app.call(Method::PATCH, &format!("/api/v1/admin/plugins/{plugin}"), Some(&world.root.access),
            Some(json!({"requires_approval": true}))).await;
        assert_eq!((r.status, r.json["requires_approval"].as_bool()), (StatusCode::OK, Some(true)), "{}", r.text);
        let eve = app.register("eve").await;
        let id = conversation(&app, &world.user).await;
        world.upstream.set_tool_call(Some("get_weather"), Some(r#"{"city": "Paris"}"#));

        // Approved: the stream asked, another user cannot answer for the owner, the owner can.
        let ev = send_deciding(&app, &world.user, &id, "weather?", |approval| {
            let (app, user, eve) = (&app, &world.user, &eve);
            async move {
                assert_eq!((approval["name"].as_str(), approval["arguments"].as_str()), (Some("get_weather"), Some(r#"{"city": "Paris"}"#)), "{approval}");
                assert_eq!(approval["timeout_secs"], 4);
                let message = approval["message_id"].as_str().unwrap();
                let call = approval["id"].as_str().unwrap();
                let path = format!("/api/v1/chat/messages/{message}/tool-calls/{call}/approve");
                assert_eq!(app.post(&path, Some(&eve.access), json!({})).await.status, StatusCode::NOT_FOUND);
                let r = app.post(&format!("/api/v1/chat/messages/{message}/tool-calls/nope/approve"), Some(&user.access), json!({})).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
                // A client attaching now (a reload) is told the call and that it waits.
                let replay = attach_until(app, user, message, "tool_approval").await;
                let names: Vec<&str> = replay.iter().map(|(e, _)| e.as_str()).collect();
                assert_eq!(names, ["start", "tool_call", "tool_approval"], "{replay:?}");
                assert_eq!((replay[1].1["id"].as_str(), replay[2].1["id"].as_str()), (Some(call), Some(call)), "{replay:?}");
                let r = app.post(&path, Some(&user.access), json!({})).await;
                assert_eq!((r.status, r.json["approved"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{}", r.text);
                // Decided once: a second answer finds nothing waiting, and a client attaching
                // after the decision is not asked again.
                assert_eq!(app.post(&path, Some(&user.access), json!({})).await.status, StatusCode::NOT_FOUND);
                let replay = attach_until(app, user, message, "done").await;
                assert!(replay.iter().any(|(e, _)| e == "tool_call" || e == "done"), "{replay:?}");
                assert!(!replay.iter().any(|(e, _)| e == "tool_approval"), "{replay:?}");
            }
        }).await;
        assert_eq!(find(&ev, "tool_call")["requires_approval"], true, "{ev:?}");
        let result = find(&ev, "tool_result");
        assert_eq!(result["is_error"], false, "{result}");
        assert_eq!(seen.lock().unwrap().len(), 1);

        // Denied: the tool does not run, and the model hears why.
        let ev = send_deciding(&app, &world.user, &id, "weather again?", |approval| {
            let (app, user) = (&app, &world.user);
            async move {
                let path = format!("/api/v1/chat/messages/{}/tool-calls/{}/deny", approval["message_id"].as_str().unwrap(), approval["id"].as_str().unwrap());
                let r = app.post(&path, Some(&user.access), json!({})).await;
                assert_eq!((r.status, r.json["approved"].as_bool()), (StatusCode::ACCEPTED, Some(false)), "{}", r.text);
            }
        }).await;
        let result = find(&ev, "tool_result");
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("denied"), "{result}");
        assert_eq!(seen.lock().unwrap().len(), 1, "a denied call does not run");
        let sent = world.upstream.requests();
        let last = sent.last().unwrap()["messages"].as_array().unwrap().last().unwrap().clone();
        assert!(last["content"].as_str().unwrap().contains("denied"), "{last}");

        // Nobody answers: after the timeout it does not run either; the answer still ends.
        let started = std::time::Instant::now();
        let ev = send(&app, &world.user, &id, "and once more").await;
        let result = find(&ev, "tool_result");
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("within 4 seconds"), "{result}");
        assert!(started.elapsed() >= Duration::from_secs(4));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(find(&ev, "done")["message"]["status"], "done");
    }

    async fn a_running_mcp_call_streams_its_progress(backend) {
        use skein_testkit::mock_mcp::MockMcp;
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let mcp = MockMcp::start(None).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Echo", "kind": "mcp", "server_url": mcp.url})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        enable(&app, &world.user, r.json["id"].as_str().unwrap(), json!({})).await;
        let id = conversation(&app, &world.user).await;
        world.upstream.set_tool_call(Some("slow"), Some(r#"{"seconds": 1}"#));
        let ev = send(&app, &world.user, &id, "take your time").await;
        let names: Vec<&str> = ev.iter().map(|(e, _)| e.as_str()).collect();
        let progress = names.iter().position(|e| *e == "tool_progress").unwrap_or_else(|| panic!("no progress in {names:?}"));
        let result = names.iter().position(|e| *e == "tool_result").unwrap();
        assert!(progress < result, "{names:?}");
        let report = find(&ev, "tool_progress");
        assert_eq!((report["name"].as_str(), report["id"].as_str()), (Some("slow"), Some("call_mock1")), "{report}");
        assert_eq!((report["stage"].as_str(), report["text"].as_str(), report["progress"].as_i64(), report["total"].as_i64()),
            (Some("progress"), Some("started"), Some(1), Some(2)), "{report}");
        assert_eq!(find(&ev, "tool_result")["content"], "done");
    }

    async fn an_mcp_servers_sampling_request_is_answered_by_the_admins_model_and_billed(backend) {
        use skein_testkit::mock_mcp::MockMcp;
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let mcp = MockMcp::start(None).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true, "sampling_model": "gpt-test"})).await;
        assert_eq!((r.status, r.json["sampling_model"].as_str()), (StatusCode::OK, Some("gpt-test")), "{}", r.text);
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access),
            json!({"name": "Echo", "kind": "mcp", "server_url": mcp.url})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        enable(&app, &world.user, r.json["id"].as_str().unwrap(), json!({})).await;
        let id = conversation(&app, &world.user).await;

        // The server asks for a completion during the call: answered by the admin's model
        // through the relay (the mock model echoes), the answer in MCP's shape.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?ask"}"#).await;
        let content = result["content"].as_str().unwrap();
        let answer = content.strip_prefix("echo: ping {}; sampling answered ").unwrap_or_else(|| panic!("{content}"));
        let answer: Value = serde_json::from_str(answer).unwrap();
        assert_eq!((answer["role"].as_str(), answer["model"].as_str(), answer["content"]["text"].as_str()),
            (Some("assistant"), Some("gpt-test"), Some("echo: hi")), "{answer}");
        // Declared at initialize; the completion went upstream without tools, its length capped
        // at what the server asked.
        assert!(mcp.capabilities.lock().unwrap()["sampling"].is_object(), "{}", mcp.capabilities.lock().unwrap());
        let sampled: Vec<Value> = world.upstream.requests().into_iter()
            .filter(|r| r["messages"][0]["content"] == "hi").collect();
        assert_eq!(sampled.len(), 1, "{sampled:?}");
        assert!(sampled[0].get("tools").is_none(), "{}", sampled[0]);
        assert_eq!(sampled[0]["max_tokens"].as_u64().or(sampled[0]["max_completion_tokens"].as_u64()), Some(8), "{}", sampled[0]);

        // Two model calls for the chat and one for the sampling, each billed to the user with
        // the conversation.
        let records = settled_usage(&app, &world.user, 3).await;
        assert!(records.iter().all(|r| r["conversation_id"].as_str() == Some(id.as_str()) && r["cost"].as_i64() > Some(0)), "{records:?}");

        // Without a sampling model, sampling is refused, not offered.
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true})).await;
        assert_eq!(r.json["sampling_model"], Value::Null, "{}", r.text);
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?ask"}"#).await;
        assert_eq!(result["content"], "echo: ping {}; sampling -32601", "{result}");
        assert!(mcp.capabilities.lock().unwrap().get("sampling").is_none(), "{}", mcp.capabilities.lock().unwrap());
    }

    async fn fetch_page_reads_a_page_as_text_behind_the_ssrf_guard(backend) {
        async fn article() -> impl IntoResponse {
            ([("content-type", "text/html; charset=utf-8")],
             "<html><head><title>Edition &amp; guide</title><script>steal()</script></head>\
              <body><h1>Rust 2024</h1><p>Stabilised in 1.85.</p></body></html>")
        }
        async fn moved() -> impl IntoResponse {
            (StatusCode::FOUND, [("location", "/article")], "")
        }
        async fn binary() -> impl IntoResponse {
            ([("content-type", "image/png")], vec![0x89u8, b'P', b'N', b'G'])
        }
        async fn big() -> impl IntoResponse {
            ([("content-type", "text/plain")], "x".repeat(3 * 1024 * 1024))
        }
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let tavily = fake_tavily(Seen::default()).await;
        let site = serve(Router::new().route("/article", get(article)).route("/moved", get(moved))
            .route("/bin", get(binary)).route("/big", get(big))).await;
        let settings = |private: bool| json!({"search": {"provider": "tavily", "base_url": format!("http://{tavily}"), "api_key": "k"},
            "allow_private_addresses": private, "allow_private_addresses_for_user_plugins": private});
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access), settings(false)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        enable(&app, &world.user, "builtin-web-search", json!({})).await;
        let tools = app.get("/api/v1/plugins/tools", Some(&world.user.access)).await;
        let names: Vec<&str> = tools.json["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["web_search", "fetch_page"]);
        let id = conversation(&app, &world.user).await;

        // The model's address is untrusted: a private one is refused until allowed for all.
        let url = format!("http://{site}/moved");
        let result = call_tool(&app, &world, &id, "fetch_page", &json!({"url": url}).to_string()).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("not allowed"), "{result}");
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access), settings(true)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // Redirect followed; HTML reduced to its text, the script dropped; cited.
        let result = call_tool(&app, &world, &id, "fetch_page", &json!({"url": url}).to_string()).await;
        assert_eq!(result["is_error"], false, "{result}");
        assert_eq!(result["content"].as_str().unwrap(),
            format!("Title: Edition & guide\nURL: http://{site}/article\n\nRust 2024\nStabilised in 1.85."));
        assert_eq!(result["citations"][0]["url"].as_str(), Some(format!("http://{site}/article").as_str()));

        // Not text, too big, not http, not a URL: clear errors the model hears.
        let result = call_tool(&app, &world, &id, "fetch_page", &json!({"url": format!("http://{site}/bin")}).to_string()).await;
        assert!(result["content"].as_str().unwrap().contains("not text (it is image/png)"), "{result}");
        let result = call_tool(&app, &world, &id, "fetch_page", &json!({"url": format!("http://{site}/big")}).to_string()).await;
        assert!(result["content"].as_str().unwrap().contains("more than 2097152 bytes"), "{result}");
        let result = call_tool(&app, &world, &id, "fetch_page", r#"{"url": "file:///etc/passwd"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(!result["content"].as_str().unwrap().contains("root:"), "{result}");
        let result = call_tool(&app, &world, &id, "fetch_page", r#"{"url": "nope"}"#).await;
        assert!(result["content"].as_str().unwrap().contains("not a URL"), "{result}");
    }

    async fn an_openapi_plugin_signs_in_with_oauth_client_credentials_once_per_token(backend) {
        /// A token endpoint: client `skein` with secret `s3cret` gets `tok-1` for an hour.
        async fn token(State(asked): State<Seen>, headers: HeaderMap, body: String) -> axum::response::Response {
            let form: Value = serde_json::to_value(serde_urlencoded::from_str::<Vec<(String, String)>>(&body).unwrap()).unwrap();
            asked.lock().unwrap().push(("/token".into(), headers.clone(), form));
            let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "skein:s3cret"));
            if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
                return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client", "error_description": "secret s3cret expected"}))).into_response();
            }
            axum::Json(json!({"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})).into_response()
        }
        let app = TestApp::spawn_with(backend, |c| c.chat.title_model = Some(String::new())).await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let seen: Seen = Arc::default();
        let fake = fake_weather(seen.clone()).await;
        let asked: Seen = Arc::default();
        let issuer = serve(Router::new().route("/token", post(token)).with_state(asked.clone())).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access),
            json!({"search": null, "allow_private_addresses": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let new = |secret: &str| json!({"name": "Weather", "kind": "openapi", "openapi": weather_document(fake),
            "auth": {"kind": "oauth2_client_credentials", "token_url": format!("http://{issuer}/token"),
                "client_id": "skein", "secret": secret, "scope": "weather.read"}});

        // The client needs its endpoint, id and secret.
        let mut bad = new("s3cret");
        bad["auth"]["token_url"] = json!("ftp://x");
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), bad).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("auth.token_url")), "{}", r.text);
        let mut bad = new("");
        bad["auth"]["secret"] = Value::Null;
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), bad).await;
        assert_eq!(r.json["error"]["details"]["field"].as_str(), Some("auth.secret"), "{}", r.text);

        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), new("s3cret")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        assert!(!r.text.contains("s3cret"));
        enable(&app, &world.user, r.json["id"].as_str().unwrap(), json!({})).await;
        let id = conversation(&app, &world.user).await;
        for city in ["Paris", "Oslo"] {
            let result = call_tool(&app, &world, &id, "get_weather", &json!({"city": city}).to_string()).await;
            assert_eq!(result["is_error"], false, "{result}");
        }
        // Both calls carried the token; it was asked for once, with the scope.
        let received = seen.lock().unwrap().clone();
        assert_eq!(received.len(), 2);
        assert!(received.iter().all(|r| r.1["authorization"] == "Bearer tok-1"), "{received:?}");
        let asked_now = asked.lock().unwrap().clone();
        assert_eq!(asked_now.len(), 1, "the token is kept until it expires");
        assert_eq!(asked_now[0].2, json!([["grant_type", "client_credentials"], ["scope", "weather.read"]]));

        // A wrong secret: the call fails with the endpoint's error code, the secret unsaid.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), {
            let mut p = new("wrong");
            p["name"] = json!("Weather 2");
            p
        }).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let second = r.json["id"].as_str().unwrap().to_string();
        enable(&app, &world.user, &second, json!({})).await;
        let r = app.put(&format!("/api/v1/plugins/conversations/{id}/{}", received_plugin(&app, &world).await), Some(&world.user.access), json!({"enabled": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let result = call_tool(&app, &world, &id, "get_weather", r#"{"city": "Rome"}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        let content = result["content"].as_str().unwrap();
        assert!(content.contains("could not sign in") && content.contains("invalid_client"), "{content}");
        assert!(!content.contains("s3cret") && !content.contains("wrong"), "{content}");
        assert_eq!(seen.lock().unwrap().len(), 2, "nothing was called without a token");
    }

    async fn a_local_mcp_server_the_operator_allowed_runs_over_stdio_for_admins_only(backend) {
        let dir = tempfile::tempdir().unwrap();
        let script = skein_testkit::mock_mcp::stdio_server(dir.path());
        let app = TestApp::spawn_with(backend, |c| {
            c.chat.title_model = Some(String::new());
            c.plugin.mcp_commands = vec![skein_plugin::config::McpCommand {
                name: "echo".into(),
                command: "/usr/bin/python3".into(),
                args: vec![script.display().to_string()],
            }];
        })
        .await;
        let world = skein_testkit::relay_world(&app, Upstream::OpenAi).await;
        let r = app.put("/api/v1/admin/plugins/settings", Some(&world.root.access), json!({"search": null, "tool_timeout_secs": 3})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);

        // Only a command the operator listed, and only for admins.
        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), json!({"name": "Shell", "kind": "mcp", "command": "sh"})).await;
        assert_eq!((r.status, r.json["error"]["details"]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("command")), "{}", r.text);
        let r = app.post("/api/v1/plugins", Some(&world.user.access), json!({"name": "Mine", "kind": "mcp", "command": "echo"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

        let r = app.post("/api/v1/admin/plugins", Some(&world.root.access), json!({"name": "Local echo", "kind": "mcp", "command": "echo"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let names: Vec<&str> = r.json["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["echo", "slow"]);
        enable(&app, &world.user, r.json["id"].as_str().unwrap(), json!({})).await;
        let id = conversation(&app, &world.user).await;

        // Called over stdio; its progress notification streamed; a line that is not JSON skipped.
        world.upstream.set_tool_call(Some("echo"), Some(r#"{"text": "你好"}"#));
        let ev = send(&app, &world.user, &id, "echo this").await;
        let result = find(&ev, "tool_result");
        assert_eq!((result["content"].as_str(), result["is_error"].as_bool()), (Some("echo: 你好"), Some(false)), "{result}");
        assert_eq!(find(&ev, "tool_progress")["text"], "echoing");
        // The program's own requests during a call are answered on its standard input.
        let result = call_tool(&app, &world, &id, "echo", r#"{"text": "?ask"}"#).await;
        assert_eq!(result["content"], "echo: ping {}; sampling -32601", "{result}");

        // A call past the deadline: the program is ended, the model hears why.
        let result = call_tool(&app, &world, &id, "slow", r#"{"seconds": 30}"#).await;
        assert_eq!(result["is_error"], true, "{result}");
        assert!(result["content"].as_str().unwrap().contains("3 seconds"), "{result}");
    }
}

/// The first published Weather plugin's id.
async fn received_plugin(app: &TestApp, world: &RelayWorld) -> String {
    let all = app.get("/api/v1/plugins", Some(&world.user.access)).await;
    all.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Weather")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}
