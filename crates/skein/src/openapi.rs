//! The OpenAPI document of `/api`, gathered from the handlers' annotations, and its viewer.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use skein_core::error::{ErrorBody, ErrorEnvelope};
use skein_core::service::Service;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skein API",
        description = "Skein's own REST API (`/api/v1`), used by the web app and integrations. \
            Errors share one shape: `{\"error\":{\"code\",\"message\",\"details\"},\"request_id\"}`; \
            messages follow `Accept-Language` (English or Chinese).",
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorEnvelope, ErrorBody)),
    // Each service names its own tags (`Service::api_tags`); `admin` is shared by the
    // gateway's runtime report and the User service's administration.
    tags(
        (name = "admin", description = "Administration (admin and root)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The `/api/v1` routes of the services a process runs and their OpenAPI document, with
/// every service's tags.
pub fn api_router(
    services: &[Arc<dyn Service>],
    runtime: Arc<skein_gateway::runtime::Runtime>,
) -> (Router, utoipa::openapi::OpenApi) {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", skein_gateway::runtime::routes(runtime));
    for service in services {
        api = api.nest("/api/v1", service.clone().api_routes());
    }
    let (router, mut doc) = api.split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let tags = doc.tags.get_or_insert_with(Vec::new);
    tags.extend(services.iter().flat_map(|service| service.api_tags()));
    (router, doc)
}

/// Content Security Policy of the API reference: its own script, and reads of this origin.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/// A viewer for `/api/openapi.json` served from the binary (its script is
/// [`docs_script`]), so the app's origin never runs a third-party script.
pub async fn docs_page() -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, DOCS_CSP)],
        Html(
            r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Skein API</title>
  <link rel="icon" href="data:,">
  <style>
    body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #1f2328; }
    code, pre { font-family: ui-monospace, monospace; }
    pre { background: #f6f8fa; padding: .75rem; overflow: auto; border-radius: 6px; font-size: .85rem; }
    details.op { border: 1px solid #d0d7de; border-radius: 6px; margin: .4rem 0; padding: .4rem .75rem; }
    summary { cursor: pointer; }
    .method { display: inline-block; min-width: 4.5rem; font-weight: 600; font-size: .8rem; }
    .get { color: #0969da; } .post { color: #1a7f37; } .put, .patch { color: #9a6700; } .delete { color: #cf222e; }
    .muted { color: #656d76; }
  </style>
</head>
<body>
  <main id="app">Loading the API reference… / 正在加载 API 文档…</main>
  <noscript>The viewer needs JavaScript. The raw document is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
  <script src="/api/docs/viewer.js"></script>
</body>
</html>"#,
        ),
    )
}

/// The viewer's script.
pub async fn docs_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("docs/viewer.js"),
    )
}
