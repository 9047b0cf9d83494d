//! `/internal/relay/*`: the [`RelayApi`] over HTTP, for Skein processes that run Chat (or any
//! other caller of the Relay) apart from it; [`crate::remote::RemoteRelay`] is the client.
//! The binary serves these only on the internal listener, behind the internal token
//! (`skein_core::internal::guard`). Each route calls [`InProcessRelay`], so a remote call goes
//! through the same pipeline, holds and bills as a call in process.
//!
//! A chat answer is NDJSON, one [`ChatEvent`] per line (see [`crate::remote`]). Each running
//! answer is registered under the caller's `call_id` so `/internal/relay/chat/stop` can stop
//! it the way an in-process caller's cancellation token does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use futures::StreamExt;
use skein_core::api::{
    AudioUpload, ChatStream, EmbedRequest, Embeddings, ImageRequest, Images, PricedModel, RelayApi,
    RerankRequest, Reranking, Speech, SpeechRequest, Transcript,
};
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::{ApiError, ApiResult};
use tokio_util::sync::CancellationToken;

use crate::remote::{
    Call, ChatCall, HEARTBEAT_EVERY, PricedModelsQuery, StopCall, TranscribeQuery, line_of,
};
use crate::{InProcessRelay, RelayService};

/// Largest chat request another process may send.
const CHAT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// What the internal routes share: the relay, and the chat answers running for remote callers.
struct Internal {
    relay: InProcessRelay,
    calls: Mutex<HashMap<String, CancellationToken>>,
}

/// A running remote chat answer's entry in [`Internal::calls`]; dropped with the answer's
/// body (finished, or its caller gone), it takes the entry out.
struct Registered {
    internal: Arc<Internal>,
    call_id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.internal.calls.lock() {
            calls.remove(&self.call_id);
        }
    }
}

pub(crate) fn routes(service: Arc<RelayService>) -> Router {
    let internal = Arc::new(Internal {
        relay: InProcessRelay(service),
        calls: Mutex::new(HashMap::new()),
    });
    Router::new()
        // A conversation's history may carry several images inline: more than the server's
        // body limit for a user's request, and only another Skein process may send it.
        .route(
            "/internal/relay/chat",
            post(chat).layer(DefaultBodyLimit::max(CHAT_BODY_LIMIT)),
        )
        .route("/internal/relay/chat/stop", post(stop))
        .route("/internal/relay/priced-models", post(priced_models))
        .route("/internal/relay/embed", post(embed))
        .route("/internal/relay/rerank", post(rerank))
        .route(
            "/internal/relay/transcribe",
            post(transcribe).layer(DefaultBodyLimit::max(super::media::AUDIO_BODY_LIMIT)),
        )
        .route("/internal/relay/image", post(image))
        .route("/internal/relay/speak", post(speak))
        .with_state(internal)
}

/// Streams a chat answer as NDJSON. A refusal before the answer began is the error, whole.
async fn chat(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<ChatCall>,
) -> ApiResult<Response> {
    let cancel = CancellationToken::new();
    // Registered before the relay is called: a stop may come while it waits on the upstream.
    let registered = {
        let mut calls = internal
            .calls
            .lock()
            .map_err(|_| ApiError::internal("relay call registry poisoned"))?;
        if calls.contains_key(&call.call_id) {
            return Err(ApiError::conflict(
                "call_in_progress",
                "A call with this id is already running.",
                "该调用 ID 已在运行。",
            ));
        }
        calls.insert(call.call_id.clone(), cancel.clone());
        Registered {
            internal: internal.clone(),
            call_id: call.call_id,
        }
    };
    let events = internal
        .relay
        .chat(call.caller.caller(Some(cancel)), call.request)
        .await?;
    let mut response = Response::new(Body::from_stream(ndjson(events, registered)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// The events as lines, with an empty line after each silent [`HEARTBEAT_EVERY`]: writing it
/// is how a connection whose caller died is noticed (the body is then dropped, and the relay
/// reads on and bills as for any caller that left).
fn ndjson(
    events: ChatStream,
    registered: Registered,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    let beat = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_EVERY,
        HEARTBEAT_EVERY,
    );
    futures::stream::unfold(
        (events, beat, registered),
        |(mut events, mut beat, registered)| async move {
            let line = tokio::select! {
                event = events.next() => line_of(&event?),
                _ = beat.tick() => Bytes::from_static(b"\n"),
            };
            beat.reset();
            Some((Ok(line), (events, beat, registered)))
        },
    )
}

/// Stops a running chat answer, as cancelling an in-process caller's token does: the relay
/// closes its upstream, bills what was delivered and ends the stream with `Done`. 404 when no
/// such answer runs on this instance.
async fn stop(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<StopCall>,
) -> ApiResult<StatusCode> {
    let token = internal
        .calls
        .lock()
        .map_err(|_| ApiError::internal("relay call registry poisoned"))?
        .get(&call.call_id)
        .cloned();
    match token {
        Some(token) => {
            token.cancel();
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found("Call", "调用")),
    }
}

async fn priced_models(
    State(internal): State<Arc<Internal>>,
    ApiJson(query): ApiJson<PricedModelsQuery>,
) -> ApiResult<ApiJson<Vec<PricedModel>>> {
    let models = internal
        .relay
        .priced_models(&query.user_id, query.group.as_deref())
        .await?;
    Ok(ApiJson(models))
}

async fn embed(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<Call<EmbedRequest>>,
) -> ApiResult<ApiJson<Embeddings>> {
    let answer = internal
        .relay
        .embed(call.caller.caller(None), call.request)
        .await?;
    Ok(ApiJson(answer))
}

async fn rerank(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<Call<RerankRequest>>,
) -> ApiResult<ApiJson<Reranking>> {
    let answer = internal
        .relay
        .rerank(call.caller.caller(None), call.request)
        .await?;
    Ok(ApiJson(answer))
}

/// The recording is the body; everything else is in the query.
async fn transcribe(
    State(internal): State<Arc<Internal>>,
    ApiQuery(query): ApiQuery<TranscribeQuery>,
    audio: Bytes,
) -> ApiResult<ApiJson<Transcript>> {
    let caller = crate::remote::WireCaller {
        user_id: query.user_id,
        group: query.group,
        request_id: query.request_id,
        conversation_id: query.conversation_id,
    }
    .caller(None);
    let upload = AudioUpload {
        model: query.model,
        file_name: query.file_name,
        content_type: query.content_type,
        bytes: audio,
        language: query.language,
    };
    Ok(ApiJson(internal.relay.transcribe(caller, upload).await?))
}

async fn speak(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<Call<SpeechRequest>>,
) -> ApiResult<ApiJson<Speech>> {
    let answer = internal
        .relay
        .speak(call.caller.caller(None), call.request)
        .await?;
    Ok(ApiJson(answer))
}

async fn image(
    State(internal): State<Arc<Internal>>,
    ApiJson(call): ApiJson<Call<ImageRequest>>,
) -> ApiResult<ApiJson<Images>> {
    let answer = internal
        .relay
        .image(call.caller.caller(None), call.request)
        .await?;
    Ok(ApiJson(answer))
}
