//! The edge as one service in front of the router (every step of [`crate::middleware`] up to
//! routing, in order), and the one route layer, [`Guard`], whose steps need the matched route.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::CorsLayer;

use crate::Gateway;
use crate::middleware;

/// The gateway's steps around the services' routes, cloned once per request (its parts are
/// shared: an `Arc`, a router that is itself an `Arc`).
#[derive(Clone)]
pub(crate) struct Edge {
    gateway: Arc<Gateway>,
    routes: Router,
    cors: Option<Arc<CorsLayer>>,
    body_limit: DefaultBodyLimit,
}

impl Edge {
    /// The edge in front of `routes`.
    pub(crate) fn new(
        gateway: Arc<Gateway>,
        routes: Router,
        cors: Option<CorsLayer>,
        body_limit: DefaultBodyLimit,
    ) -> Edge {
        Edge {
            gateway,
            routes,
            cors: cors.map(Arc::new),
            body_limit,
        }
    }

    /// One request through every step, outermost first: request id and log line, CORS, the
    /// error envelope, then the routes with the body limit (where each route's [`Guard`]
    /// takes the timeout, authentication and rate limit).
    async fn handle(self, req: Request) -> Response {
        let Edge {
            gateway,
            routes,
            cors,
            body_limit,
        } = self;
        let routes = move |req: Request| async move {
            let Ok(response) = body_limit.layer(routes).oneshot(req).await;
            response
        };
        let gateway = &gateway;
        middleware::request_context(gateway, req, move |req| {
            with_cors(cors, req, move |req| {
                middleware::error_envelope(gateway, req, routes)
            })
        })
        .await
    }
}

impl Service<Request> for Edge {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        Box::pin(self.clone().handle(req).map(Ok))
    }
}

/// Runs `next` behind the CORS layer when one is configured: preflights are answered there,
/// and every answer gets its headers.
async fn with_cors<F, Fut>(cors: Option<Arc<CorsLayer>>, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut + Send,
    Fut: Future<Output = Response> + Send,
{
    let Some(cors) = cors else {
        return next(req).await;
    };
    // The CORS service calls what is behind it at most once per request.
    let mut next = Some(next);
    let behind = tower::service_fn(move |req: Request| {
        let next = next.take();
        async move {
            Ok::<_, Infallible>(match next {
                Some(next) => next(req).await,
                None => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            })
        }
    });
    let Ok(response) = cors.layer(behind).oneshot(req).await;
    response
}

/// The route layer: records the matched route template on the request's span (for its log
/// lines and trace), runs the timeout, authentication and rate limit (the audit log names
/// the template), and hands the template to the edge on the response (for the metrics' route
/// label), whatever answered, a timeout or a refusal included.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    gateway: Arc<Gateway>,
    timeout: Duration,
    inner: S,
}

impl<S> Guard<S> {
    /// The guard around one route's service.
    pub(crate) fn new(gateway: Arc<Gateway>, timeout: Duration, inner: S) -> Guard<S> {
        Guard {
            gateway,
            timeout,
            inner,
        }
    }
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        if let Some(route) = &route {
            middleware::record_route(&tracing::Span::current(), req.method(), route.as_str());
        }
        // The service that was made ready answers; a fresh clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (gateway, timeout) = (self.gateway.clone(), self.timeout);
        Box::pin(async move {
            let route_service = move |req: Request| async move {
                let Ok(response) = inner.oneshot(req).await;
                response
            };
            let gateway = &gateway;
            let mut response = middleware::timeout_unless_relayed(timeout, req, move |req| {
                middleware::authenticate_and_limit(gateway, req, route_service)
            })
            .await;
            if let Some(route) = route {
                response.extensions_mut().insert(route);
            }
            Ok(response)
        })
    }
}
