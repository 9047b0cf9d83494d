//! Rendering the pipeline's [`Reply`] as an HTTP response.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use skein_core::ApiResult;

use crate::pipeline::{Reply, ReplyBody};

/// The response for a reply: a whole body with its content type, or a stream that proxies
/// and browsers must not buffer.
pub(crate) fn render(reply: Reply) -> Response {
    match reply.body {
        ReplyBody::Whole(bytes) => (
            reply.status,
            [(header::CONTENT_TYPE, reply.content_type)],
            bytes,
        )
            .into_response(),
        ReplyBody::Stream(mut receiver) => {
            let stream = futures::stream::poll_fn(move |cx| {
                receiver
                    .poll_recv(cx)
                    .map(|o| o.map(Ok::<_, std::io::Error>))
            });
            let mut response = Response::new(Body::from_stream(stream));
            *response.status_mut() = reply.status;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, reply.content_type);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

/// Renders a pipeline call's answer for an OpenAI client.
pub(crate) fn answer(answer: ApiResult<crate::pipeline::calls::Answer>) -> ApiResult<Response> {
    answer.map(|a| render(a.for_client()))
}
