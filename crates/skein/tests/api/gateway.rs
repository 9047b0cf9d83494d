//! The edge: request ids, the error envelope and its languages, routing errors, body limits,
//! CORS, health checks, the OpenAPI document, graceful shutdown.

pub(crate) mod limits;
pub(crate) mod security;

use reqwest::StatusCode;
use serde_json::json;
use skein_testkit::{Backend, PASSWORD, TestApp, both_backends};

both_backends! {
    async fn health_and_readiness(app) {
        let alive = app.get("/healthz", None).await;
        assert_eq!((alive.status, alive.json["status"].as_str()), (StatusCode::OK, Some("alive")));
        let ready = app.get("/readyz", None).await;
        assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
        assert_eq!(ready.json["checks"]["database"], "ok");
        assert_eq!(ready.json["checks"]["rate_limiter_memory"], "ok");
    }
}

#[tokio::test]
async fn request_ids_are_honoured_or_generated_and_match_the_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app
        .send(
            app.client
                .get(app.url("/api/v1/user/profile"))
                .header("x-request-id", "trace-abc-123"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(r.json["request_id"], "trace-abc-123");

    let generated = app.get("/api/v1/user/profile", None).await;
    let id = generated.header("x-request-id").unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(generated.json["request_id"], id.as_str());

    let hostile = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "x".repeat(500)),
        )
        .await;
    assert_ne!(
        hostile.header("x-request-id").map(str::len),
        Some(500),
        "over-long ids are replaced"
    );
}

#[tokio::test]
async fn errors_speak_the_callers_language() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let zh = app
        .send(
            app.client
                .get(app.url("/api/v1/user/profile"))
                .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8"),
        )
        .await;
    assert_eq!(zh.json["error"]["message"], "需要登录。");
    let en = app
        .send(
            app.client
                .get(app.url("/api/v1/user/profile"))
                .header("accept-language", "en-US"),
        )
        .await;
    assert_eq!(en.json["error"]["message"], "Sign-in required.");
    assert_eq!(zh.json["error"]["code"], en.json["error"]["code"]);
    let route = app
        .send(
            app.client
                .get(app.url("/api/v1/nowhere"))
                .header("accept-language", "zh"),
        )
        .await;
    assert_eq!(
        (route.status, route.error_code()),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    assert_eq!(route.json["error"]["message"], "没有这个 API 路由。");
}

#[tokio::test]
async fn routing_errors_use_the_envelope() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let wrong_method = app
        .call(reqwest::Method::DELETE, "/api/v1/auth/login", None, None)
        .await;
    assert_eq!(
        (wrong_method.status, wrong_method.error_code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert!(
        wrong_method.json["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.server.body_limit_bytes = 4096).await;
    let huge = json!({"username": "ada", "password": PASSWORD, "display_name": "x".repeat(10_000)});
    let r = app.post("/api/v1/auth/register", None, huge).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        "{}",
        r.text
    );
    // Still serving, and nothing was created.
    app.root().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.cors_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = app
        .send(
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
                .header("origin", "https://app.example.com")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,authorization",
                ),
        )
        .await;
    assert!(preflight.status.is_success(), "{:?}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let other = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("origin", "https://evil.example.com"),
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);

    let default = TestApp::spawn(Backend::Sqlite).await;
    let none = default
        .send(
            default
                .client
                .get(default.url("/healthz"))
                .header("origin", "https://app.example.com"),
        )
        .await;
    assert_eq!(
        none.header("access-control-allow-origin"),
        None,
        "same-origin only by default"
    );
}

#[tokio::test]
async fn openapi_describes_the_api_and_has_a_viewer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.json["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/user/profile",
        "/api/v1/user/password",
        "/api/v1/user/invite-codes",
        "/api/v1/user/invitees",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/users/{id}/reset-password",
        "/api/v1/admin/invite-codes",
        "/api/v1/admin/invite-codes/{id}",
        "/api/v1/relay/groups",
        "/api/v1/admin/relay/users/{user_id}/groups",
        "/api/v1/files",
        "/api/v1/files/{id}/content",
        "/api/v1/files/{id}/shares",
        "/api/v1/shares/{token}/content",
    ] {
        assert!(paths.contains_key(path), "{path} missing from OpenAPI");
    }
    assert!(paths["/api/v1/user/profile"].get("patch").is_some());
    assert!(doc.json["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc.json["components"]["schemas"]["ErrorEnvelope"].is_object());
    let viewer = app.get("/api/docs", None).await;
    assert_eq!(viewer.status, StatusCode::OK);
    assert!(viewer.text.contains("/api/openapi.json"));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    // A deliberately slow password hash keeps a registration in flight while shutdown begins.
    let mut app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.auth.argon2_memory_kib = 128 * 1024;
        c.auth.argon2_iterations = 8;
    })
    .await;
    let client = app.client.clone();
    let url = app.url("/api/v1/auth/register");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"username": "ada", "password": PASSWORD, "setup_token": skein_testkit::SETUP_TOKEN}))
            .send()
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let server = app.begin_shutdown();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was cut off");
    assert_eq!(response.status(), StatusCode::CREATED);
    server.await.unwrap().expect("server stopped cleanly");
    let after = app.client.get(app.url("/healthz")).send().await;
    assert!(after.is_err(), "still accepting connections after shutdown");
}

#[tokio::test]
async fn slow_requests_time_out_with_408_in_the_envelope() {
    // A local MCP server that never answers stands in for a handler that takes too long:
    // registering it waits for its tool list (up to 20 s) past the 1 s request deadline. A
    // slow password hash served before, but how slow depends on the machine's memory speed.
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.server.request_timeout_secs = 1;
        c.plugin.mcp_commands = vec![skein_plugin::config::McpCommand {
            name: "mute".into(),
            command: "/bin/sleep".into(),
            args: vec!["30".into()],
        }];
    })
    .await;
    let root = app.root().await;
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/api/v1/admin/plugins",
            Some(&root.access),
            json!({"name": "Mute", "kind": "mcp", "command": "mute"}),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::REQUEST_TIMEOUT, "timeout"),
        "{}",
        r.text
    );
    assert!(r.json["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "answered at the deadline, not when the program gave up"
    );
}

#[tokio::test]
async fn sql_looking_input_in_every_text_field_is_just_text() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let root = app.root().await;
    let payee = app.register("payee").await;
    let evil = "'; DROP TABLE users; --";
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": evil, "password": evil}),
        )
        .await;
    assert_eq!(r.error_code(), "invalid_credentials");
    let r = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "root' OR '1'='1", "password": "x' OR '1'='1"}),
        )
        .await;
    assert_eq!(r.error_code(), "invalid_credentials");
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "bob@example.com", "password": PASSWORD, "invite_code": evil}),
        )
        .await;
    assert_eq!(r.error_code(), "invalid_invite_code");
    let r = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": evil}))
        .await;
    assert_eq!(r.error_code(), "invalid_refresh_token");
    let r = app
        .patch(
            "/api/v1/user/profile",
            Some(&root.access),
            json!({"display_name": evil}),
        )
        .await;
    assert_eq!(r.json["display_name"], evil);
    let r = app
        .post(
            "/api/v1/admin/invite-codes",
            Some(&root.access),
            json!({"note": evil}),
        )
        .await;
    assert_eq!(r.json[0]["note"], evil);
    let r = app
        .get(
            "/api/v1/admin/users?q=%27%3B%20DROP%20TABLE%20users%3B%20--&role=&status=",
            Some(&root.access),
        )
        .await;
    assert_eq!(r.json["total"], 1, "{}", r.text);
    let r = app
        .post(
            "/api/v1/billing/redeem",
            Some(&root.access),
            json!({"code": evil}),
        )
        .await;
    assert_eq!(r.error_code(), "invalid_redemption_code");
    let r = app
        .post(
            &format!("/api/v1/admin/billing/users/{}/adjust", payee.id),
            Some(&root.access),
            json!({"amount": 5, "memo": evil}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ledger = app.get("/api/v1/billing/ledger", Some(&payee.access)).await;
    assert_eq!(ledger.json["items"][0]["memo"], evil);
    let r = app
        .get(
            "/api/v1/billing/usage?model=%27%20OR%201%3D1%20--",
            Some(&root.access),
        )
        .await;
    assert_eq!(
        (r.status, r.json["total"].as_i64()),
        (StatusCode::OK, Some(0))
    );
    // Everything still works and nothing was dropped.
    app.login("root", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/admin/users", Some(&root.access))
            .await
            .json["total"],
        2,
        "root and the payee"
    );
}
