//! The Relay as a process that does not run it reaches it: [`RemoteRelay`], an HTTP client of
//! `/internal/relay/*` (served by `http/internal.rs`) implementing [`RelayApi`], and the
//! bodies both sides share.
//!
//! A chat answer streams as NDJSON: one [`ChatEvent`] per line, with an empty line now and
//! then while the answer is silent (a reasoning model thinking), so either side notices a
//! dead peer. Dropping the stream closes the connection; the relay then reads its upstream
//! on to the vendor's usage and bills that, exactly as when an in-process caller drops its
//! stream. Cancelling the caller's token asks the relay to stop the answer
//! (`/internal/relay/chat/stop`), and the stream goes on to the relay's `Done` with what the
//! stopped answer was charged, as in process. Refusals come back as the error the relay
//! raised, whole ([`skein_core::internal`]).

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_core::ApiError;
use skein_core::api::{
    AudioUpload, ChatEvent, ChatStream, EmbedRequest, Embeddings, ImageRequest, Images,
    PricedModel, RelayApi, RelayCaller, RerankRequest, Reranking, Speech, SpeechRequest,
    StreamError, Transcript,
};
use skein_core::internal::InternalClient;
use skein_core::service::ServiceName;
use tokio_util::sync::CancellationToken;

/// How often the relay writes an empty line into a silent answer.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// Silence after which a remote answer is taken for lost: several missed heartbeats.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// Longest line a remote answer may send (one event); a longer one is not the relay's.
const LINE_LIMIT: usize = 16 * 1024 * 1024;

/// The `RelayApi` of a Relay service in another process.
#[derive(Debug, Clone)]
pub struct RemoteRelay(pub InternalClient);

/// Who a call is for, on the wire ([`RelayCaller`] without its cancellation token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireCaller {
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) group: Option<String>,
    pub(crate) request_id: String,
    #[serde(default)]
    pub(crate) conversation_id: Option<String>,
}

impl WireCaller {
    fn of(caller: &RelayCaller) -> Self {
        WireCaller {
            user_id: caller.user_id.clone(),
            group: caller.group.clone(),
            request_id: caller.request_id.clone(),
            conversation_id: caller.conversation_id.clone(),
        }
    }

    /// The caller again, cancelled by `cancel`.
    pub(crate) fn caller(self, cancel: Option<CancellationToken>) -> RelayCaller {
        RelayCaller {
            user_id: self.user_id,
            group: self.group,
            request_id: self.request_id,
            conversation_id: self.conversation_id,
            cancel,
        }
    }
}

/// One typed call: who it is for and what is asked.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Call<T> {
    pub(crate) caller: WireCaller,
    pub(crate) request: T,
}

/// A chat call: the OpenAI body, and the id a stop names it by.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatCall {
    pub(crate) caller: WireCaller,
    pub(crate) call_id: String,
    pub(crate) request: Value,
}

/// Which running chat call to stop.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopCall {
    pub(crate) call_id: String,
}

/// Whose models, at which group's prices.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PricedModelsQuery {
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) group: Option<String>,
}

/// A transcription's fields besides the recording (sent as the body, not in JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TranscribeQuery {
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) group: Option<String>,
    pub(crate) request_id: String,
    #[serde(default)]
    pub(crate) conversation_id: Option<String>,
    pub(crate) model: String,
    pub(crate) file_name: String,
    pub(crate) content_type: String,
    #[serde(default)]
    pub(crate) language: Option<String>,
}

/// One event as a line of the wire.
pub(crate) fn line_of(event: &ChatEvent) -> Bytes {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// What the remote stream is reading, between polls.
struct Reading {
    body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: BytesMut,
    /// Asks the relay to stop, once; `None` after it was asked (or without a token).
    cancel: Option<CancellationToken>,
    client: InternalClient,
    call_id: String,
    /// An unreadable stream was reported: nothing follows.
    ended: bool,
}

impl Reading {
    /// The next event: complete lines first, then more bytes; `None` at the end.
    async fn next(&mut self) -> Option<ChatEvent> {
        loop {
            if self.ended {
                return None;
            }
            while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(end + 1);
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue; // a heartbeat
                }
                return match serde_json::from_slice::<ChatEvent>(line) {
                    Ok(event) => Some(event),
                    Err(error) => Some(self.broken(&format!("unreadable event: {error}"))),
                };
            }
            if self.buffer.len() > LINE_LIMIT {
                return Some(self.broken("an event past the line limit"));
            }
            let cancel = self.cancel.clone();
            let cancelled = async move {
                match cancel {
                    Some(cancel) => cancel.cancelled_owned().await,
                    None => std::future::pending().await,
                }
            };
            let chunk = tokio::select! {
                biased;
                () = cancelled => {
                    self.cancel = None;
                    self.stop().await;
                    continue;
                }
                chunk = tokio::time::timeout(SILENCE_LIMIT, self.body.next()) => chunk,
            };
            match chunk {
                Ok(Some(Ok(bytes))) => self.buffer.extend_from_slice(&bytes),
                // The end: a stream without `Done` was not settled, as in process.
                Ok(None) => return None,
                Ok(Some(Err(error))) => {
                    return Some(self.broken(&format!("connection lost: {error}")));
                }
                Err(_) => return Some(self.broken("the relay went silent")),
            }
        }
    }

    /// Asks the relay to stop the answer; it then bills what was delivered and sends `Done`.
    /// If it cannot be asked, the connection is closed instead, and the relay bills the answer
    /// as one whose caller left.
    async fn stop(&mut self) {
        let stop = StopCall {
            call_id: self.call_id.clone(),
        };
        if let Err(error) = self.client.notify("/internal/relay/chat/stop", &stop).await {
            tracing::warn!(%error, call_id = %self.call_id, "could not stop a remote answer; closing its connection");
            self.ended = true;
        }
    }

    /// The error event of a stream that cannot be read on; nothing follows it.
    fn broken(&mut self, why: &str) -> ChatEvent {
        tracing::warn!(call_id = %self.call_id, why, "a remote relay stream broke off");
        self.ended = true;
        ChatEvent::Error(StreamError {
            code: "upstream_error".into(),
            message: "The relay's stream broke off.".into(),
        })
    }
}

impl RemoteRelay {
    /// A typed call and its JSON answer. No overall deadline, unlike other internal calls: an
    /// image or a long transcription may take minutes, and the relay bounds the upstream.
    async fn call<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let response = self.0.open(path, body).await?;
        response.json::<T>().await.map_err(|error| {
            tracing::error!(path, %error, "unreadable answer from the relay");
            ApiError::unavailable(ServiceName::Relay.as_str())
        })
    }
}

#[async_trait]
impl RelayApi for RemoteRelay {
    async fn chat(&self, caller: RelayCaller, request: Value) -> Result<ChatStream, ApiError> {
        let call = ChatCall {
            caller: WireCaller::of(&caller),
            call_id: skein_core::ids::new_id(),
            request,
        };
        let response = self.0.open("/internal/relay/chat", &call).await?;
        let reading = Reading {
            body: response.bytes_stream().boxed(),
            buffer: BytesMut::new(),
            cancel: caller.cancel,
            client: self.0.clone(),
            call_id: call.call_id,
            ended: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            reading,
            |mut reading| async move { reading.next().await.map(|event| (event, reading)) },
        )))
    }

    async fn priced_models(
        &self,
        user_id: &str,
        group: Option<&str>,
    ) -> Result<Vec<PricedModel>, ApiError> {
        let query = PricedModelsQuery {
            user_id: user_id.to_string(),
            group: group.map(str::to_string),
        };
        self.0.call("/internal/relay/priced-models", &query).await
    }

    async fn embed(
        &self,
        caller: RelayCaller,
        request: EmbedRequest,
    ) -> Result<Embeddings, ApiError> {
        let call = Call {
            caller: WireCaller::of(&caller),
            request,
        };
        self.call("/internal/relay/embed", &call).await
    }

    async fn rerank(
        &self,
        caller: RelayCaller,
        request: RerankRequest,
    ) -> Result<Reranking, ApiError> {
        let call = Call {
            caller: WireCaller::of(&caller),
            request,
        };
        self.call("/internal/relay/rerank", &call).await
    }

    async fn transcribe(
        &self,
        caller: RelayCaller,
        audio: AudioUpload,
    ) -> Result<Transcript, ApiError> {
        let query = TranscribeQuery {
            user_id: caller.user_id,
            group: caller.group,
            request_id: caller.request_id,
            conversation_id: caller.conversation_id,
            model: audio.model,
            file_name: audio.file_name,
            content_type: audio.content_type,
            language: audio.language,
        };
        self.0
            .call_bytes(
                "/internal/relay/transcribe",
                &query,
                "application/octet-stream",
                audio.bytes,
            )
            .await
    }

    async fn image(&self, caller: RelayCaller, request: ImageRequest) -> Result<Images, ApiError> {
        let call = Call {
            caller: WireCaller::of(&caller),
            request,
        };
        self.call("/internal/relay/image", &call).await
    }

    async fn speak(&self, caller: RelayCaller, request: SpeechRequest) -> Result<Speech, ApiError> {
        let call = Call {
            caller: WireCaller::of(&caller),
            request,
        };
        self.call("/internal/relay/speak", &call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_core::api::{RelayCharge, TokenUsage, ToolCallDelta};

    #[test]
    fn every_event_survives_the_wire() {
        let events = vec![
            ChatEvent::Delta("Hi \"there\"\n".into()),
            ChatEvent::Reasoning("hm".into()),
            ChatEvent::ToolCallDelta(ToolCallDelta {
                index: 1,
                id: Some("call_1".into()),
                name: Some("now".into()),
                arguments: "{\"a".into(),
            }),
            ChatEvent::Finish("tool_calls".into()),
            ChatEvent::Usage(TokenUsage {
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 1,
            }),
            ChatEvent::Error(StreamError {
                code: "upstream_error".into(),
                message: "gone".into(),
            }),
            ChatEvent::Done(RelayCharge {
                prompt_tokens: 3,
                completion_tokens: 4,
                cost: 11,
                status: "ok".into(),
            }),
        ];
        for event in events {
            let line = line_of(&event);
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
            let back: ChatEvent = serde_json::from_slice(&line).unwrap();
            assert_eq!(back, event);
        }
    }
}
