//! The chat socket (`GET /api/v1/chat/socket`) through the real server with a real WebSocket
//! client: the same events as the SSE routes, stop and re-attach over the socket, several
//! answers on one socket, tokens that must not open it, other users' ids, and the bounds.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use skein_core::auth::{JwtKeys, Role};
use skein_testkit::mock_openai::reply_to;
use skein_testkit::{
    Backend, Persona, RelayWorld, TestApp, Upstream, on_both_backends, relay_world,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn chat_app(backend: Backend, configure: impl FnOnce(&mut skein::config::Config)) -> TestApp {
    TestApp::spawn_with(backend, |c| {
        c.chat.title_model = Some(String::new());
        configure(c);
    })
    .await
}

/// Opens the socket as a browser does: the token in a subprotocol beside `skein.chat.v1`.
async fn open(app: &TestApp, token: &str) -> Result<Socket, Error> {
    let url = app
        .url("/api/v1/chat/socket")
        .replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("skein.chat.v1, skein.bearer.{token}")).unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    // The server names its protocol and never echoes the token.
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "skein.chat.v1"
    );
    Ok(socket)
}

fn refused_status(result: Result<Socket, Error>) -> StatusCode {
    match result {
        Err(Error::Http(response)) => StatusCode::from_u16(response.status().as_u16()).unwrap(),
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("the socket opened"),
    }
}

async fn request(socket: &mut Socket, body: Value) {
    socket
        .send(Message::Text(body.to_string().into()))
        .await
        .unwrap();
}

/// The next frame of the server (pings are answered by the client library).
async fn next(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.expect("the socket closed").unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// The events of request `id` up to its `end`, as `(event, data)`; other requests' frames
/// are left to `others`.
async fn events_of(socket: &mut Socket, id: &str, others: &mut Vec<Value>) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    loop {
        let frame = next(socket).await;
        if frame["id"] != id {
            others.push(frame);
            continue;
        }
        let event = frame["event"].as_str().unwrap().to_string();
        if event == "end" {
            return events;
        }
        events.push((event, frame["data"].clone()));
    }
}

/// Server-sent events of a finished stream, as `(event, data)`.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["content"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(e, _)| e.as_str()).collect()
}

async fn new_conversation(app: &TestApp, who: &Persona) -> String {
    let r = app
        .post("/api/v1/chat/conversations", Some(&who.access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

async fn history(app: &TestApp, who: &Persona, conversation: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/chat/conversations/{conversation}/messages"),
            Some(&who.access),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

fn server_secret(app: &TestApp) -> String {
    std::fs::read_to_string(app.config.data_dir.join("jwt_secret"))
        .unwrap()
        .trim()
        .to_string()
}

/// A token for `who`'s session signed with the server's key, living `ttl_secs`.
fn token_living(app: &TestApp, who: &Persona, ttl_secs: i64) -> String {
    let payload = who.access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    JwtKeys::new(server_secret(app).as_bytes(), ttl_secs)
        .issue(&who.id, claims["sid"].as_str().unwrap(), Role::User)
        .unwrap()
}

on_both_backends! {
    async fn an_answer_over_the_socket_has_the_events_of_sse(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let content = "tell me about the sea";

        // Over SSE.
        let over_sse = new_conversation(&app, &user).await;
        let r = app.client.post(app.url(&format!("/api/v1/chat/conversations/{over_sse}/messages")))
            .bearer_auth(&user.access).json(&json!({"content": content})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let sse = sse_events(&r.text().await.unwrap());

        // Over the socket: the same events in the same order with the same data.
        let over_socket = new_conversation(&app, &user).await;
        let mut socket = open(&app, &user.access).await.unwrap();
        request(&mut socket, json!({"type": "send", "id": "m1", "conversation_id": over_socket, "content": content})).await;
        let mut others = Vec::new();
        let ws = events_of(&mut socket, "m1", &mut others).await;
        assert!(others.is_empty(), "{others:?}");
        assert_eq!(names(&ws), names(&sse), "socket {ws:?}\nsse {sse:?}");
        assert_eq!(names(&ws).first(), Some(&"start"));
        assert_eq!(text_of(&ws), reply_to(&json!([{"role": "user", "content": content}])));
        assert_eq!(text_of(&ws), text_of(&sse));
        assert_eq!(find(&ws, "usage")["cost"], find(&sse, "usage")["cost"]);
        assert!(find(&ws, "usage")["cost"].as_i64().unwrap() > 0);
        let start = find(&ws, "start");
        assert_eq!(start["conversation_id"], over_socket.as_str());
        let done = &find(&ws, "done")["message"];
        assert_eq!((done["status"].as_str(), done["id"].as_str()), (Some("done"), start["assistant_message_id"].as_str()));

        // Saved like any answer.
        let h = history(&app, &user, &over_socket).await;
        assert_eq!(h["messages"][1]["content"], text_of(&ws).as_str());

        // Regenerate and attach (to the finished answer) on the same socket.
        let answer = done["id"].as_str().unwrap().to_string();
        request(&mut socket, json!({"type": "regenerate", "id": "r1", "message_id": answer})).await;
        let regenerated = events_of(&mut socket, "r1", &mut others).await;
        assert_eq!(text_of(&regenerated), text_of(&ws));
        request(&mut socket, json!({"type": "attach", "id": "a1", "message_id": answer})).await;
        let attached = events_of(&mut socket, "a1", &mut others).await;
        assert_eq!(names(&attached), ["start", "done"]);
        assert_eq!(find(&attached, "done")["message"]["content"], text_of(&ws).as_str());

        // Refusals the SSE route answers with a status come back as `rejected` frames with
        // that status and the same error envelope.
        request(&mut socket, json!({"type": "send", "id": "bad", "conversation_id": over_socket, "content": "  "})).await;
        let bad = next(&mut socket).await;
        assert_eq!((bad["id"].as_str(), bad["event"].as_str(), bad["status"].as_u64()), (Some("bad"), Some("rejected"), Some(422)), "{bad}");
        assert_eq!(bad["data"]["error"]["code"], "validation_failed", "{bad}");
        request(&mut socket, json!({"type": "dance", "id": "x"})).await;
        assert_eq!(next(&mut socket).await["status"], 400);
        socket.send(Message::Text("not json".into())).await.unwrap();
        assert_eq!(next(&mut socket).await["event"], "rejected");
        socket.close(None).await.unwrap();
    }

    async fn stop_and_reattach_over_the_socket(backend) {
        let app = chat_app(backend, |_| {}).await;
        let RelayWorld { user, upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        upstream.set_stream_pause(Duration::from_millis(40));
        let words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen";
        let full = reply_to(&json!([{"role": "user", "content": words}]));

        // Two answers on one socket, one stopped, the other re-attached by a second socket.
        let first = new_conversation(&app, &user).await;
        let second = new_conversation(&app, &user).await;
        let mut socket = open(&app, &user.access).await.unwrap();
        request(&mut socket, json!({"type": "send", "id": "a", "conversation_id": first, "content": words})).await;
        request(&mut socket, json!({"type": "send", "id": "b", "conversation_id": second, "content": words})).await;
        let mut answers = std::collections::HashMap::new();
        while answers.len() < 2 {
            let frame = next(&mut socket).await;
            if frame["event"] == "start" {
                answers.insert(frame["id"].as_str().unwrap().to_string(), frame["data"]["assistant_message_id"].as_str().unwrap().to_string());
            }
        }
        // Wait for a delta of `a`, then stop it over the socket.
        loop {
            let frame = next(&mut socket).await;
            if frame["id"] == "a" && frame["event"] == "delta" {
                break;
            }
        }
        request(&mut socket, json!({"type": "stop", "id": "s", "message_id": answers["a"]})).await;
        // `b` is watched from another socket too (then this one stops listening to it).
        let mut watcher = open(&app, &user.access).await.unwrap();
        request(&mut watcher, json!({"type": "attach", "id": "w", "message_id": answers["b"]})).await;
        request(&mut socket, json!({"type": "cancel", "id": "b"})).await;

        let mut a = Vec::new();
        let mut a_ended = false;
        let mut stopped = None;
        while !(a_ended && stopped.is_some()) {
            let frame = next(&mut socket).await;
            match (frame["id"].as_str(), frame["event"].as_str()) {
                (Some("a"), Some("end")) => a_ended = true,
                (Some("a"), Some(event)) => a.push((event.to_string(), frame["data"].clone())),
                (Some("s"), Some("result")) => stopped = Some(frame),
                _ => {}
            }
        }
        let stopped = stopped.unwrap();
        assert_eq!(stopped["data"]["stopping"], true, "{stopped}");
        let done = &find(&a, "done")["message"];
        assert_eq!(done["status"], "stopped");
        let kept = done["content"].as_str().unwrap();
        assert!(!kept.is_empty() && kept.len() < full.len() && full.starts_with(kept), "kept {kept:?}");

        // The watcher got all of `b`: the text so far, then the rest.
        let mut ignored = Vec::new();
        let w = events_of(&mut watcher, "w", &mut ignored).await;
        assert_eq!(names(&w).first(), Some(&"start"));
        assert_eq!(text_of(&w), full);
        assert_eq!(find(&w, "done")["message"]["status"], "done");
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    async fn tokens_and_other_users_ids_are_refused(backend) {
        let app = chat_app(backend, |c| c.chat.max_sockets_per_user = 2).await;
        let RelayWorld { user, upstream: _upstream, .. } = relay_world(&app, Upstream::OpenAi).await;
        let mallory = app.register("mallory").await;

        // No token, a bad one, an expired one, one of a session that was signed out.
        let url = app.url("/api/v1/chat/socket").replacen("http://", "ws://", 1);
        assert_eq!(refused_status(tokio_tungstenite::connect_async(url.as_str()).await.map(|(s, _)| s)), StatusCode::UNAUTHORIZED);
        assert_eq!(refused_status(open(&app, "not.a.token").await), StatusCode::UNAUTHORIZED);
        let expired = token_living(&app, &user, -120);
        assert_eq!(refused_status(open(&app, &expired).await), StatusCode::UNAUTHORIZED);
        let leaving = app.login(&mallory.login, &mallory.password).await;
        let mut stale = open(&app, &leaving.access).await.unwrap();
        let r = app.post("/api/v1/auth/logout", Some(&leaving.access), json!({"refresh_token": leaving.refresh})).await;
        assert!(r.status.is_success(), "{}", r.text);
        assert_eq!(refused_status(open(&app, &leaving.access).await), StatusCode::UNAUTHORIZED);
        // A socket opened before the sign-out takes no more requests.
        request(&mut stale, json!({"type": "attach", "id": "late", "message_id": "whatever"})).await;
        let late = next(&mut stale).await;
        assert_eq!((late["event"].as_str(), late["status"].as_u64()), (Some("rejected"), Some(401)), "{late}");
        assert_eq!(late["data"]["error"]["code"], "invalid_token");
        // A non-browser client may send the usual header instead.
        let mut by_header = url.as_str().into_client_request().unwrap();
        by_header.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {}", user.access)).unwrap());
        let (mut plain, _) = tokio_tungstenite::connect_async(by_header).await.unwrap();
        plain.close(None).await.unwrap();
        while plain.next().await.is_some() {}

        // Another user's conversation and messages read as missing, with nothing written.
        let id = new_conversation(&app, &user).await;
        let mut socket = open(&app, &user.access).await.unwrap();
        request(&mut socket, json!({"type": "send", "id": "m", "conversation_id": id, "content": "first"})).await;
        let mut others = Vec::new();
        let answer = find(&events_of(&mut socket, "m", &mut others).await, "done")["message"]["id"].as_str().unwrap().to_string();
        let mut theirs = open(&app, &mallory.access).await.unwrap();
        for (n, body) in [
            json!({"type": "send", "conversation_id": id, "content": "mine now"}),
            json!({"type": "regenerate", "message_id": answer}),
            json!({"type": "attach", "message_id": answer}),
            json!({"type": "stop", "message_id": answer}),
        ].into_iter().enumerate() {
            let mut body = body;
            body["id"] = json!(format!("x{n}"));
            request(&mut theirs, body.clone()).await;
            let frame = next(&mut theirs).await;
            assert_eq!((frame["event"].as_str(), frame["status"].as_u64()), (Some("rejected"), Some(404)), "{body}: {frame}");
            assert_eq!(frame["data"]["error"]["code"], "not_found", "{frame}");
            assert!(!frame.to_string().contains("echo"), "{frame}");
        }
        assert_eq!(history(&app, &user, &id).await["messages"].as_array().unwrap().len(), 2);

        // At most two sockets per user (the setting): a third is refused until one closes.
        let _second = open(&app, &user.access).await.unwrap();
        assert_eq!(refused_status(open(&app, &user.access).await), StatusCode::TOO_MANY_REQUESTS);
        socket.close(None).await.unwrap();
        while socket.next().await.is_some() {}
        let mut reopened = None;
        for _ in 0..200 {
            match open(&app, &user.access).await {
                Ok(socket) => {
                    reopened = Some(socket);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(reopened.is_some(), "a closed socket never gave its place back");
    }

    async fn a_socket_closes_when_its_token_expires(backend) {
        let app = chat_app(backend, |_| {}).await;
        let user = app.register("ada").await;
        let short = token_living(&app, &user, 1);
        let mut socket = open(&app, &short).await.unwrap();
        let close = loop {
            match socket.next().await.expect("closed without a close frame").unwrap() {
                Message::Close(close) => break close,
                _ => continue,
            }
        };
        let close = close.expect("a close frame with a code");
        assert_eq!(close.code, CloseCode::from(4401), "{close:?}");
        assert_eq!(close.reason.as_str(), "token expired");
    }
}

/// Requests on a socket count against the user's rate limit as HTTP requests do: opening one
/// socket must not be a way around it.
#[tokio::test]
async fn requests_on_a_socket_count_against_the_rate_limit() {
    let app = chat_app(Backend::Sqlite, |c| c.limits.api_per_user_per_minute = 4).await;
    let ada = app.register("ada").await;
    let bob = app.register("bob").await;
    // Opening the socket is the first of ada's four.
    let mut socket = open(&app, &ada.access).await.unwrap();
    for n in 0..3 {
        let id = format!("s{n}");
        request(
            &mut socket,
            json!({"type": "stop", "id": id, "message_id": "no-such-message"}),
        )
        .await;
        let frame = next(&mut socket).await;
        assert_eq!(
            (frame["id"].as_str(), frame["status"].as_u64()),
            (Some(id.as_str()), Some(404)),
            "{frame}"
        );
    }
    request(
        &mut socket,
        json!({"type": "stop", "id": "over", "message_id": "no-such-message"}),
    )
    .await;
    let frame = next(&mut socket).await;
    assert_eq!(
        (frame["event"].as_str(), frame["status"].as_u64()),
        (Some("rejected"), Some(429)),
        "{frame}"
    );
    assert_eq!(frame["data"]["error"]["code"], "rate_limited", "{frame}");
    // The same budget as HTTP: ada's next HTTP request is refused too, bob's is not.
    let r = app.get("/api/v1/user/profile", Some(&ada.access)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = app.get("/api/v1/user/profile", Some(&bob.access)).await;
    assert_eq!(r.status, StatusCode::OK, "bob has his own budget");
}
