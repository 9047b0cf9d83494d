//! The web app's serving: client routes fall back to `index.html` (or, in a binary built
//! without the UI, the page that says how to build it), the API prefixes are never shadowed,
//! and a missing file is a 404, not HTML.

use reqwest::StatusCode;
use skein_testkit::{Backend, TestApp};

#[tokio::test]
async fn client_routes_get_the_app_and_api_prefixes_keep_their_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/",
        "/chat",
        "/chat/0190-abc",
        "/admin/channels",
        "/settings",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{path}: {:?}",
            r.header("content-type")
        );
        assert!(r.text.contains("Skein"), "{path}");
        assert!(r.header("content-security-policy").is_some() || !skein::web::is_built());
    }
    // Unknown paths under the API prefixes answer in the API's own error shapes.
    let api = app.get("/api/v1/no-such-route", None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.json["error"]["code"], "route_not_found");
    let v1 = app.get("/v1/no-such-route", None).await;
    assert_eq!(v1.status, StatusCode::NOT_FOUND);
    assert_eq!(v1.json["error"]["type"], "not_found_error");
    for path in [
        "/v1beta/nothing",
        "/internal/x",
        "/healthz/x",
        "/readyz/x",
        "/api",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text.contains("<html"), "{path} must not be the app");
    }
    // Writes to unknown paths are not the app's either.
    let post = app
        .send(
            app.client
                .post(app.url("/chat"))
                .json(&serde_json::json!({})),
        )
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    // The real health routes still answer.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    // A missing script is a 404, not index.html.
    let missing = app.get("/assets/nope-123.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn built_assets_are_served_with_types_and_revalidation() {
    if !skein::web::is_built() {
        eprintln!("web/dist is not built: skipping the asset checks");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let index = app.get("/", None).await;
    let etag = index.header("etag").expect("etag").to_string();
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let again = app
        .send(app.client.get(app.url("/")).header("if-none-match", &etag))
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let script = index
        .text
        .split("src=\"/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html loads a script");
    let js = app.get(&format!("/{script}"), None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.header("content-type")
            .unwrap_or_default()
            .contains("javascript")
    );
    assert!(
        js.header("cache-control")
            .unwrap_or_default()
            .contains("immutable")
    );
}
