//! Every search provider against a local fake of its API: the fake checks the request as the
//! vendor documents it (method, path, where the key goes, the query's field names) and
//! answers in the vendor's shape; the provider must turn that into titles, URLs and snippets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skein_plugin::search::{Hit, ProviderKind, SearchSettings, provider};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Value>,
    status: StatusCode,
}

async fn any(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    fake.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_string(),
        query,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    (fake.status, axum::Json((*fake.answer).clone())).into_response()
}

async fn fake(answer: Value, status: StatusCode) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let state = Fake {
        seen: seen.clone(),
        answer: Arc::new(answer),
        status,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new().fallback(any).with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (address, seen)
}

fn settings(kind: ProviderKind, address: SocketAddr) -> SearchSettings {
    SearchSettings {
        provider: kind,
        base_url: Some(format!("http://{address}")),
        api_key: Some("the-key".into()),
        engine_id: Some("engine-1".into()),
        count: 3,
    }
}

async fn run(kind: ProviderKind, answer: Value) -> (Vec<Hit>, Seen) {
    let (address, seen) = fake(answer, StatusCode::OK).await;
    let hits = provider(&settings(kind, address))
        .unwrap()
        .search(&reqwest::Client::new(), "天气 rust", 3)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    (hits, seen[0].clone())
}

fn query(seen: &Seen, name: &str) -> Option<String> {
    seen.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn hit(title: &str, url: &str, snippet: &str) -> Hit {
    Hit {
        title: title.into(),
        url: url.into(),
        snippet: snippet.into(),
    }
}

#[tokio::test]
async fn searxng_uses_the_json_format_of_the_search_route() {
    let (hits, seen) = run(ProviderKind::Searxng, json!({"query": "天气 rust", "number_of_results": 0,
        "results": [{"url": "https://a.example/", "title": "A", "content": "about a", "engine": "duckduckgo"}]})).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, "/search")
    );
    assert_eq!(query(&seen, "q").as_deref(), Some("天气 rust"));
    assert_eq!(query(&seen, "format").as_deref(), Some("json"));
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(hits, [hit("A", "https://a.example/", "about a")]);
}

#[tokio::test]
async fn tavily_posts_the_query_with_a_bearer_key() {
    let (hits, seen) = run(
        ProviderKind::Tavily,
        json!({"query": "q", "results": [
        {"title": "T", "url": "https://t.example/", "content": "tavily says", "score": 0.5}]}),
    )
    .await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::POST, "/search")
    );
    assert_eq!(seen.headers["authorization"], "Bearer the-key");
    assert_eq!(seen.body["query"], "天气 rust");
    assert_eq!(seen.body["max_results"], 3);
    assert_eq!(hits, [hit("T", "https://t.example/", "tavily says")]);
}

#[tokio::test]
async fn serper_posts_q_with_its_key_header() {
    let (hits, seen) = run(
        ProviderKind::Serper,
        json!({"searchParameters": {"q": "q"}, "organic": [
        {"title": "S", "link": "https://s.example/", "snippet": "serper says", "position": 1}]}),
    )
    .await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::POST, "/search")
    );
    assert_eq!(seen.headers["x-api-key"], "the-key");
    assert_eq!(seen.body, json!({"q": "天气 rust", "num": 3}));
    assert_eq!(hits, [hit("S", "https://s.example/", "serper says")]);
}

#[tokio::test]
async fn bing_gets_v7_search_with_its_subscription_key() {
    let (hits, seen) = run(
        ProviderKind::Bing,
        json!({"_type": "SearchResponse", "webPages": {"value": [
        {"name": "B", "url": "https://b.example/", "snippet": "bing says"}]}}),
    )
    .await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, "/v7.0/search")
    );
    assert_eq!(seen.headers["ocp-apim-subscription-key"], "the-key");
    assert_eq!(query(&seen, "q").as_deref(), Some("天气 rust"));
    assert_eq!(query(&seen, "count").as_deref(), Some("3"));
    assert_eq!(hits, [hit("B", "https://b.example/", "bing says")]);
}

#[tokio::test]
async fn google_gets_custom_search_with_key_and_engine_in_the_query() {
    let (hits, seen) = run(ProviderKind::Google, json!({"kind": "customsearch#search", "items": [
        {"kind": "customsearch#result", "title": "G", "link": "https://g.example/", "snippet": "google says"}]})).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::GET, "/customsearch/v1")
    );
    assert_eq!(query(&seen, "key").as_deref(), Some("the-key"));
    assert_eq!(query(&seen, "cx").as_deref(), Some("engine-1"));
    assert_eq!(query(&seen, "q").as_deref(), Some("天气 rust"));
    assert_eq!(query(&seen, "num").as_deref(), Some("3"));
    assert_eq!(hits, [hit("G", "https://g.example/", "google says")]);
}

#[tokio::test]
async fn bocha_posts_to_web_search_and_prefers_the_summary() {
    let (hits, seen) = run(ProviderKind::Bocha, json!({"code": 200, "log_id": "x", "msg": null, "data": {
        "_type": "SearchResponse", "webPages": {"value": [
            {"id": "1", "name": "博查", "url": "https://bocha.example/", "snippet": "short", "summary": "the longer summary"},
            {"id": "2", "name": "Two", "url": "https://two.example/", "snippet": "only a snippet"}]}}})).await;
    assert_eq!(
        (seen.method.clone(), seen.path.as_str()),
        (Method::POST, "/v1/web-search")
    );
    assert_eq!(seen.headers["authorization"], "Bearer the-key");
    assert_eq!(seen.body["query"], "天气 rust");
    assert_eq!(seen.body["summary"], true);
    assert_eq!(seen.body["count"], 3);
    assert_eq!(
        hits,
        [
            hit("博查", "https://bocha.example/", "the longer summary"),
            hit("Two", "https://two.example/", "only a snippet"),
        ]
    );
}

#[tokio::test]
async fn refusals_and_missing_setup_are_clear_and_never_show_the_key() {
    let (address, _) = fake(
        json!({"error": "bad key the-key"}),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let error = provider(&settings(ProviderKind::Tavily, address))
        .unwrap()
        .search(&reqwest::Client::new(), "x", 3)
        .await
        .unwrap_err();
    assert!(
        error.contains("HTTP 401") && !error.contains("the-key"),
        "{error}"
    );
    // Google puts the key in the URL: an unreachable host must not echo it.
    let mut google = settings(ProviderKind::Google, "127.0.0.1:9".parse().unwrap());
    google.base_url = Some("http://127.0.0.1:9".into());
    let error = provider(&google)
        .unwrap()
        .search(&reqwest::Client::new(), "x", 3)
        .await
        .unwrap_err();
    assert!(!error.contains("the-key"), "{error}");
    let mut keyless = settings(ProviderKind::Serper, address);
    keyless.api_key = None;
    assert!(provider(&keyless).err().unwrap().contains("no API key"));
    let mut nowhere = settings(ProviderKind::Searxng, address);
    nowhere.base_url = None;
    assert!(provider(&nowhere).err().unwrap().contains("address"));
    let mut no_cx = settings(ProviderKind::Google, address);
    no_cx.engine_id = None;
    assert!(provider(&no_cx).err().unwrap().contains("cx"));
}
