//! The OpenAPI document of `/api`, gathered from the handlers' annotations, and its viewer.

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use skein_billing::BillingService;
use skein_core::error::{ErrorBody, ErrorEnvelope};
use skein_relay::RelayService;
use skein_user::UserService;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::ServiceSet;

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
    tags(
        (name = "auth", description = "Registration, sign-in and tokens"),
        (name = "user", description = "The signed-in user's profile"),
        (name = "invites", description = "Invite codes"),
        (name = "admin", description = "Administration (admin and root)"),
        (name = "channels", description = "Upstream channels (admin)"),
        (name = "pricing", description = "The pricing table"),
        (name = "keys", description = "The signed-in user's API keys for the /v1 routes"),
        (name = "billing", description = "The signed-in user's quota, ledger, usage and redemption"),
        (name = "chat", description = "Conversations, streamed answers, branches, export and import"),
        (name = "admin-billing", description = "Balances, usage and redemption codes of everyone (admin)"),
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

/// The `/api/v1` routes of the selected services and their OpenAPI document.
pub fn api_router(
    services: &ServiceSet,
    users: Arc<UserService>,
    billing: Arc<BillingService>,
    relay: Arc<RelayService>,
    chat: Option<Arc<skein_chat::ChatService>>,
) -> (Router, utoipa::openapi::OpenApi) {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
    if services.contains("user") {
        api = api.nest("/api/v1", users.routes());
    }
    if services.contains("billing") {
        api = api.nest("/api/v1", billing.routes());
    }
    if services.contains("relay") {
        api = api.nest("/api/v1", relay.routes());
    }
    if let Some(chat) = chat {
        api = api.nest("/api/v1", chat.routes());
    }
    let (router, mut doc) = api.split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    (router, doc)
}

/// An interactive viewer for `/api/openapi.json` (Scalar, loaded from its CDN by the browser).
pub async fn docs_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Skein API</title>
</head>
<body>
  <noscript>The interactive viewer needs JavaScript. The raw document is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript>
  <script id="api-reference" data-url="/api/openapi.json"></script>
  <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>"#,
    )
}
