//! Service-to-service calls over HTTP: the token that guards `/internal/*`, how an error
//! crosses the wire whole, and the client a process uses to call a service that runs in
//! another process.
//!
//! `/internal/*` is served only on the internal listener (`server.internal_listen`), never on
//! the public one, and every request there must carry the internal token. An error keeps its
//! status, code, details, `Retry-After` and both languages across the hop, so a client of the
//! calling process sees exactly what it would have seen with both services in one process.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::i18n::Lang;
use crate::secret::Secret;
use crate::service::ServiceName;

/// Every internal route starts with this.
pub const PREFIX: &str = "/internal/";

/// Wraps `router` so that every request must carry `Authorization: Bearer <token>`, compared
/// in constant time. A user's JWT or an API key is not the token.
pub fn guard(router: Router, token: Secret) -> Router {
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let token = token.clone();
            async move {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
                    next.run(req).await
                } else {
                    ApiError::unauthorized().into_response()
                }
            }
        },
    ))
}

/// Renders an error of an internal route: the usual envelope in the caller's language, plus
/// the message in every language (`error.messages`), so the calling process can rebuild the
/// error whole.
pub fn render_error(error: &ApiError, lang: Lang, request_id: &str) -> Response {
    let mut envelope = serde_json::to_value(error.envelope(lang, request_id))
        .unwrap_or_else(|_| serde_json::json!({}));
    if let Some(body) = envelope.get_mut("error").and_then(|e| e.as_object_mut()) {
        body.insert(
            "messages".into(),
            serde_json::json!({"en": error.message(Lang::En), "zh": error.message(Lang::Zh)}),
        );
    }
    let mut response = (error.status(), axum::Json(envelope)).into_response();
    if let Some(secs) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A client of one service's internal routes in another process.
#[derive(Clone)]
pub struct InternalClient {
    service: ServiceName,
    base: String,
    token: Secret,
    http: reqwest::Client,
    /// For calls that take as long as they take ([`InternalClient::open`]): no overall
    /// timeout, since a chat answer may be written for many minutes and an image drawn for
    /// one; the service bounds its own work (a relayed call has its upstream's timeouts).
    streaming: reqwest::Client,
}

impl std::fmt::Debug for InternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalClient")
            .field("service", &self.service)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Longest an internal call may take; past it the caller gets 503 rather than hanging on a
/// service that stopped answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl InternalClient {
    /// A client of `service` at `base_url` (its internal listener, `http://host:port`).
    pub fn new(service: ServiceName, base_url: &str, token: Secret) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ApiError::internal)?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ApiError::internal)?;
        Ok(InternalClient {
            service,
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http,
            streaming,
        })
    }

    /// Which service this client calls.
    pub fn service(&self) -> ServiceName {
        self.service
    }

    /// POSTs `body` as JSON to `path` (`/internal/...`) and reads the JSON answer.
    pub async fn call<B, T>(&self, path: &str, body: &B) -> Result<T, ApiError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let response = self.send(path, body).await?;
        response.json::<T>().await.map_err(|error| {
            tracing::error!(service = %self.service, path, %error, "unreadable internal answer");
            ApiError::unavailable(self.service.as_str())
        })
    }

    /// POSTs `body` as JSON to `path` and expects success without a body worth reading.
    pub async fn notify<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), ApiError> {
        self.send(path, body).await.map(drop)
    }

    /// POSTs `body` as JSON to `path` and hands back the answer's head once it is a success,
    /// for the caller to read the body as it streams (no overall timeout). A refusal comes
    /// back as the error the service raised, as with [`InternalClient::call`].
    pub async fn open<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, ApiError> {
        let request = self.streaming.post(self.url(path)).json(body);
        self.exchange(path, request).await
    }

    /// POSTs raw `bytes` of `content_type` to `path` with `query` (the call's other fields:
    /// a recording is not worth base64 in JSON) and reads the JSON answer. Like
    /// [`InternalClient::open`] it has no overall deadline: the service bounds its own work.
    pub async fn call_bytes<Q, T>(
        &self,
        path: &str,
        query: &Q,
        content_type: &str,
        bytes: bytes::Bytes,
    ) -> Result<T, ApiError>
    where
        Q: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let request = self
            .streaming
            .post(self.url(path))
            .query(query)
            .header(header::CONTENT_TYPE, content_type)
            .body(bytes);
        let response = self.exchange(path, request).await?;
        response.json::<T>().await.map_err(|error| {
            tracing::error!(service = %self.service, path, %error, "unreadable internal answer");
            ApiError::unavailable(self.service.as_str())
        })
    }

    /// POSTs a streamed `body` of `content_type` to `path` with `query` (an upload passed
    /// on as it arrives, never whole in memory) and reads the JSON answer. No overall
    /// deadline: the upload takes as long as its sender does, and the service bounds it.
    pub async fn call_stream<Q, T>(
        &self,
        path: &str,
        query: &Q,
        content_type: &str,
        body: crate::api::ByteStream,
    ) -> Result<T, ApiError>
    where
        Q: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let request = self
            .streaming
            .post(self.url(path))
            .query(query)
            .header(header::CONTENT_TYPE, content_type)
            .body(reqwest::Body::wrap_stream(body));
        let response = self.exchange(path, request).await?;
        response.json::<T>().await.map_err(|error| {
            tracing::error!(service = %self.service, path, %error, "unreadable internal answer");
            ApiError::unavailable(self.service.as_str())
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, ApiError> {
        let request = self.http.post(self.url(path)).json(body);
        self.exchange(path, request).await
    }

    /// Sends `request` with the token; a failure is the error the service raised.
    async fn exchange(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        // The called service's spans join the caller's trace.
        let response = crate::trace::inject(request)
            .bearer_auth(self.token.expose())
            .send()
            .await
            .map_err(|error| {
                tracing::error!(service = %self.service, path, %error, "internal call failed");
                ApiError::unavailable(self.service.as_str())
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = response.json::<serde_json::Value>().await.ok();
        Err(self.rebuild(status, retry_after, body.as_ref(), path))
    }

    /// The error the remote service answered, as it was raised there.
    fn rebuild(
        &self,
        status: reqwest::StatusCode,
        retry_after: Option<u64>,
        body: Option<&serde_json::Value>,
        path: &str,
    ) -> ApiError {
        let error = body.and_then(|b| b.get("error"));
        let code = error.and_then(|e| e.get("code")).and_then(|c| c.as_str());
        let (Some(error), Some(code), Ok(status)) =
            (error, code, StatusCode::from_u16(status.as_u16()))
        else {
            // Not one of ours (a proxy, a route this version does not have): the service is
            // as good as unreachable.
            tracing::error!(service = %self.service, path, status = status.as_u16(), "internal call answered without an error envelope");
            return ApiError::unavailable(self.service.as_str());
        };
        if status == StatusCode::UNAUTHORIZED && code == "unauthorized" {
            tracing::error!(service = %self.service, "internal token refused: do both processes share services.internal_token?");
        }
        let message = |lang: &str| {
            error
                .get("messages")
                .and_then(|m| m.get(lang))
                .or_else(|| error.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let mut rebuilt = ApiError::new(status, code.to_string(), message("en"), message("zh"));
        if let Some(details) = error.get("details").filter(|d| !d.is_null()) {
            rebuilt = rebuilt.with_details(details.clone());
        }
        if let Some(secs) = retry_after {
            rebuilt = rebuilt.with_retry_after(secs);
        }
        rebuilt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_rendered_for_the_wire_comes_back_whole() {
        let original = ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "Not enough quota.",
            "额度不足。",
        )
        .with_details(serde_json::json!({"needed": 5, "available": 2}))
        .with_retry_after(3);
        let response = render_error(&original, Lang::Zh, "req-1");
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(
            envelope["error"]["message"], "额度不足。",
            "the caller's language, as on every route"
        );
        let client = InternalClient::new(
            ServiceName::Billing,
            "http://127.0.0.1:1",
            Secret::new("t".repeat(32)),
        );
        let Ok(client) = client else { panic!("client") };
        let rebuilt = client.rebuild(
            reqwest::StatusCode::PAYMENT_REQUIRED,
            Some(3),
            Some(&envelope),
            "/internal/billing/reserve",
        );
        assert_eq!(rebuilt.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(rebuilt.code(), "insufficient_quota");
        assert_eq!(rebuilt.message(Lang::Zh), "额度不足。");
        assert_eq!(rebuilt.message(Lang::En), "Not enough quota.");
        assert_eq!(rebuilt.details(), original.details());
        assert_eq!(rebuilt.retry_after_secs(), Some(3));
        let garbage = client.rebuild(reqwest::StatusCode::NOT_FOUND, None, None, "/x");
        assert_eq!(garbage.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

/// The body of an account event sent to another process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEvent {
    /// The account concerned.
    pub user_id: String,
    /// Who invited them (registrations only).
    #[serde(default)]
    pub inviter_id: Option<String>,
}

/// `/internal/<service>/events/user-registered` and `.../user-status-changed`: a service that
/// observes account events ([`crate::api::AccountEvents`]) hears them through these when the
/// User service runs in another process.
pub fn account_events_routes(
    service: ServiceName,
    observer: std::sync::Arc<dyn crate::api::AccountEvents>,
) -> Router {
    use axum::extract::State;
    use axum::routing::post;
    type Observer = State<std::sync::Arc<dyn crate::api::AccountEvents>>;
    async fn registered(
        State(observer): Observer,
        crate::extract::ApiJson(event): crate::extract::ApiJson<AccountEvent>,
    ) -> Result<StatusCode, ApiError> {
        observer
            .user_registered(&event.user_id, event.inviter_id.as_deref())
            .await?;
        Ok(StatusCode::NO_CONTENT)
    }
    async fn status_changed(
        State(observer): Observer,
        crate::extract::ApiJson(event): crate::extract::ApiJson<AccountEvent>,
    ) -> Result<StatusCode, ApiError> {
        observer.user_status_changed(&event.user_id).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    Router::new()
        .route(
            &format!("{PREFIX}{service}/events/user-registered"),
            post(registered),
        )
        .route(
            &format!("{PREFIX}{service}/events/user-status-changed"),
            post(status_changed),
        )
        .with_state(observer)
}

/// An observer of account events in another process: the User service calls it like a local
/// observer, and it forwards each event to that process's internal routes.
#[derive(Debug, Clone)]
pub struct RemoteAccountEvents(pub InternalClient);

#[async_trait::async_trait]
impl crate::api::AccountEvents for RemoteAccountEvents {
    async fn user_registered(
        &self,
        user_id: &str,
        inviter_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let path = format!("{PREFIX}{}/events/user-registered", self.0.service());
        let event = AccountEvent {
            user_id: user_id.to_string(),
            inviter_id: inviter_id.map(str::to_string),
        };
        self.0.notify(&path, &event).await
    }

    async fn user_status_changed(&self, user_id: &str) -> Result<(), ApiError> {
        let path = format!("{PREFIX}{}/events/user-status-changed", self.0.service());
        let event = AccountEvent {
            user_id: user_id.to_string(),
            inviter_id: None,
        };
        self.0.notify(&path, &event).await
    }
}
