//! Answers across instances. The instance writing an answer holds its conversation's lock in
//! the database (`chat_answer_locks`, see [`crate::generate::Registry::begin`]); a stop or a
//! re-attach that reaches another instance finds the writer there and goes to it over the
//! deployment's bus:
//!
//! - a stop is a note on [`CONTROL_TOPIC`]; the writer stops the answer as if asked itself;
//! - a re-attach asks the writer to *watch* the answer: from then on the writer forwards the
//!   answer's events on [`LIVE_TOPIC`], starting with a snapshot of the text so far taken under
//!   the same lock as the text, so snapshot plus what follows is exactly the whole answer.
//!   Every instance with clients attached hands the forwarded events to them.
//!
//! In one process (SQLite, no bus) none of this runs: the answer is always local.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use skein_core::bus::{Bus, Note};
use skein_core::ids;
use tokio::sync::broadcast;

use crate::ChatService;
pub use crate::event::Live;
use crate::event::sse;

/// Stops and watch requests.
pub const CONTROL_TOPIC: &str = "chat";

/// Forwarded events of watched answers.
pub const LIVE_TOPIC: &str = "chat.live";

/// How long a re-attach waits for the writer's snapshot before it answers with what is saved.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// How long an attached stream goes quiet before it sends a keep-alive and checks that the
/// writer still holds the answer's lock.
const QUIET: Duration = Duration::from_secs(15);

/// A request to the instance writing an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", content = "id", rename_all = "snake_case")]
pub enum Control {
    /// Stop the answer writing this message.
    Stop(String),
    /// Stop the answer being written in this conversation (it was deleted).
    StopConversation(String),
    /// Forward this message's events (a client attached elsewhere).
    Watch(String),
    /// Approve tool call `<message id>/<call id>` waiting in that answer.
    Approve(String),
    /// Deny tool call `<message id>/<call id>` waiting in that answer.
    Deny(String),
}

/// Hands a decision that came over the bus (`<message id>/<call id>`) to the answer here.
fn decide(svc: &ChatService, both: &str, approve: bool) {
    if let Some((message_id, call_id)) = both.split_once('/')
        && let Some(generation) = svc.running.by_message(message_id)
    {
        generation.decide(call_id, approve);
    }
}

/// A forwarded event with the message it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LiveNote {
    #[serde(rename = "m")]
    message_id: String,
    #[serde(rename = "e")]
    live: Live,
}

/// Clients on this instance attached to answers written elsewhere, by message.
#[derive(Default)]
pub struct Watches {
    watching: Mutex<HashMap<String, broadcast::Sender<Live>>>,
}

impl Watches {
    /// A receiver of `message_id`'s forwarded events from now on.
    fn watch(&self, message_id: &str) -> broadcast::Receiver<Live> {
        match self.watching.lock() {
            Ok(mut watching) => {
                watching.retain(|_, sender| sender.receiver_count() > 0);
                watching
                    .entry(message_id.to_string())
                    .or_insert_with(|| broadcast::channel(4096).0)
                    .subscribe()
            }
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Hands a forwarded event to the clients watching its message; forgets a message once
    /// its answer ended or nobody watches it any more.
    fn deliver(&self, note: LiveNote) {
        let Ok(mut watching) = self.watching.lock() else {
            return;
        };
        let Some(sender) = watching.get(&note.message_id) else {
            return;
        };
        let ended = matches!(note.live, Live::Event { frame: None });
        if sender.send(note.live).is_err() || ended {
            watching.remove(&note.message_id);
        }
    }

    /// Drops watches nobody reads any more.
    fn prune(&self) {
        if let Ok(mut watching) = self.watching.lock() {
            watching.retain(|_, sender| sender.receiver_count() > 0);
        }
    }

    /// How many answers written elsewhere are watched here (for the runtime report).
    pub fn len(&self) -> usize {
        self.watching.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ChatService {
    /// Joins the deployment's bus: stops and re-attaches that reach another instance find the
    /// answer here, and this instance's clients can attach to answers written elsewhere.
    pub fn join_bus(self: &Arc<Self>, bus: Arc<dyn Bus>) {
        self.background.on_notes(
            "chat.bus",
            &bus,
            CONTROL_TOPIC,
            self,
            |svc, note| async move {
                let Note::Message(text) = note else { return };
                match serde_json::from_str(&text) {
                    Ok(Control::Stop(message_id)) => {
                        if let Some(generation) = svc.running.by_message(&message_id) {
                            generation.stop();
                        }
                    }
                    Ok(Control::StopConversation(conversation_id)) => {
                        if let Some(generation) = svc.running.by_conversation(&conversation_id) {
                            generation.stop();
                        }
                    }
                    Ok(Control::Watch(message_id)) => svc.forward(&message_id),
                    Ok(Control::Approve(both)) => decide(&svc, &both, true),
                    Ok(Control::Deny(both)) => decide(&svc, &both, false),
                    Err(error) => tracing::warn!(%error, "unreadable chat note"),
                }
            },
        );
        self.background.on_notes(
            "chat.bus.live",
            &bus,
            LIVE_TOPIC,
            self,
            |svc, note| async move {
                match note {
                    Note::Message(text) => match serde_json::from_str::<LiveNote>(&text) {
                        Ok(note) => svc.watches.deliver(note),
                        Err(error) => tracing::warn!(%error, "unreadable chat live note"),
                    },
                    // Forwarded events may be lost: watching clients notice through their
                    // quiet-time check; nothing is cached to reload.
                    Note::Resync => svc.watches.prune(),
                }
            },
        );
        let _ = self.bus.set(bus);
    }

    /// Forwards the answer writing `message_id`, if it is written here, to the bus.
    fn forward(self: &Arc<Self>, message_id: &str) {
        let (Some(generation), Some(bus)) = (self.running.by_message(message_id), self.bus.get())
        else {
            return;
        };
        let bus = bus.clone();
        let message_id = message_id.to_string();
        let tasks = self.tasks.clone();
        generation.forward(move || {
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Live>();
            // One task publishes them in order; it ends once the answer's end went out.
            tasks.spawn(async move {
                while let Some(live) = receiver.recv().await {
                    let end = matches!(live, Live::Event { frame: None });
                    let note = LiveNote {
                        message_id: message_id.clone(),
                        live,
                    };
                    match serde_json::to_string(&note) {
                        Ok(text) => {
                            if let Err(error) = bus.publish(LIVE_TOPIC, &text).await {
                                tracing::warn!(%error, "could not forward an answer's event");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "could not encode an answer's event"),
                    }
                    if end {
                        return;
                    }
                }
            });
            sender
        });
    }

    /// Tells the other instances about `control` (a stop or a watch).
    pub(crate) async fn tell(&self, control: &Control) -> bool {
        let Some(bus) = self.bus.get() else {
            return false;
        };
        let Ok(text) = serde_json::to_string(control) else {
            return false;
        };
        match bus.publish(CONTROL_TOPIC, &text).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "could not reach the other instances");
                false
            }
        }
    }

    /// Whether another instance is writing `message_id` now (its lock in the database).
    pub(crate) async fn written_elsewhere(
        &self,
        message_id: &str,
    ) -> Result<bool, skein_core::ApiError> {
        let writer = crate::store::answer_writer(&self.db, message_id, ids::now_ms()).await?;
        Ok(writer.is_some_and(|owner| owner != self.instance))
    }

    /// Attaches to an answer another instance writes: asks it for a snapshot and its events,
    /// and streams them after `start`. `None` when the writer sent nothing in time or the
    /// answer is finished (the caller answers with the saved message).
    pub(crate) async fn attach_remote(
        self: &Arc<Self>,
        message_id: &str,
        start: Bytes,
    ) -> Option<Response> {
        let mut receiver = self.watches.watch(message_id);
        if !self.tell(&Control::Watch(message_id.to_string())).await {
            return None;
        }
        let snapshot = tokio::time::timeout(SNAPSHOT_WAIT, async {
            loop {
                match receiver.recv().await {
                    Ok(Live::Snapshot {
                        content,
                        reasoning,
                        finished,
                        tools,
                    }) => return Some((content, reasoning, finished, tools)),
                    // Events forwarded for another client before our snapshot: in it already.
                    Ok(Live::Event { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        let (content, reasoning, finished, tools) = snapshot?;
        if finished {
            return None;
        }
        let mut first = vec![start];
        if !reasoning.is_empty() {
            first.push(sse("reasoning", &json!({ "content": reasoning })));
        }
        if !content.is_empty() {
            first.push(sse("delta", &json!({ "content": content })));
        }
        first.extend(tools.iter().map(|(name, data)| sse(name, data)));
        let head = futures::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
        let svc = self.clone();
        let message_id = message_id.to_string();
        let tail = futures::stream::unfold(Some(receiver), move |state| {
            let svc = svc.clone();
            let message_id = message_id.clone();
            async move {
                let mut receiver = state?;
                loop {
                    let frame = match tokio::time::timeout(QUIET, receiver.recv()).await {
                        Err(_) => {
                            // Quiet: is the writer still there? If its lock lapsed (it
                            // crashed), the stream ends rather than waiting forever.
                            if matches!(svc.written_elsewhere(&message_id).await, Ok(false)) {
                                return None;
                            }
                            Bytes::from_static(b": keep-alive\n\n")
                        }
                        Ok(Ok(Live::Event { frame: None })) => return None,
                        Ok(Ok(Live::Event {
                            frame: Some((name, data)),
                        })) => sse(&name, &data),
                        // A later client's snapshot: this stream has all of it already.
                        Ok(Ok(Live::Snapshot { .. })) => continue,
                        Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                            tracing::warn!(missed, "a remote chat stream reader fell behind");
                            continue;
                        }
                        Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                    };
                    return Some((Ok(frame), Some(receiver)));
                }
            }
        });
        let mut response = Response::new(Body::from_stream(futures::StreamExt::chain(head, tail)));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn controls_and_events_travel_as_json() {
        let stop: Control = serde_json::from_str(r#"{"what":"stop","id":"m1"}"#).unwrap();
        assert_eq!(stop, Control::Stop("m1".into()));
        let live = Live::from(&Event::Delta("hi".into()));
        let text = serde_json::to_string(&LiveNote {
            message_id: "m1".into(),
            live,
        })
        .unwrap();
        let back: LiveNote = serde_json::from_str(&text).unwrap();
        match back.live {
            Live::Event {
                frame: Some((name, data)),
            } => assert_eq!(
                (name.as_str(), data["content"].as_str()),
                ("delta", Some("hi"))
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn watchers_get_their_message_only_and_are_forgotten_at_the_end() {
        let watches = Watches::default();
        let mut one = watches.watch("m1");
        let _two = watches.watch("m2");
        let note = |m: &str, live| LiveNote {
            message_id: m.into(),
            live,
        };
        watches.deliver(note("m1", Live::from(&Event::Delta("a".into()))));
        watches.deliver(note("m1", Live::from(&Event::End)));
        assert!(matches!(
            one.recv().await,
            Ok(Live::Event { frame: Some(_) })
        ));
        assert!(matches!(one.recv().await, Ok(Live::Event { frame: None })));
        assert_eq!(watches.len(), 1);
    }
}
