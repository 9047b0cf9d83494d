//! Notes between the instances of one deployment: "this changed, drop what you cached",
//! "stop that answer", "here are the live deltas of that answer".
//!
//! A note goes to every *other* instance; the instance that publishes one has already acted on
//! its own memory, so it never hears its own notes back. Delivery is at most once: a listener
//! that loses its connection may miss notes, so every bus tells its subscribers
//! [`Note::Resync`] after it reconnects, and they reload everything that notes keep fresh. The
//! periodic reloads stay as a safety net for a note lost any other way.
//!
//! Implementations: [`LocalBus`] (one process: publishing is a no-op, nothing ever arrives),
//! PostgreSQL `LISTEN/NOTIFY` (`skein_db::bus`) and Redis pub/sub (`skein_gateway::bus`); the
//! binary picks one (see `ARCHITECTURE.md`, "Many instances").

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::service::BackgroundTasks;

/// What a subscriber of a topic receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A note published by another instance.
    Message(String),
    /// The bus lost its connection and has it again: notes may have been missed meanwhile,
    /// so reload whatever notes keep fresh.
    Resync,
}

/// Why a note could not be published.
#[derive(Debug, thiserror::Error)]
#[error("bus: {0}")]
pub struct BusError(pub String);

/// A publish/subscribe channel between the instances of one deployment.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Sends `payload` on `topic` to every other instance.
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError>;
    /// Notes on `topic` from now on.
    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Note>;
    /// `memory`, `postgres` or `redis`, for logs and the readiness report.
    fn kind(&self) -> &'static str;
}

/// The bus of a single process: nothing to tell, nothing to hear.
#[derive(Default)]
pub struct LocalBus {
    topics: Topics,
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, _topic: &str, _payload: &str) -> Result<(), BusError> {
        Ok(())
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Note> {
        self.topics.subscribe(topic)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// How many notes a slow subscriber may fall behind before it misses some (and is told to
/// resync, see [`Topics::deliver`]).
const TOPIC_BUFFER: usize = 4096;

/// The local side of a bus: one broadcast channel per topic, fed by the bus's listener.
#[derive(Default)]
pub struct Topics {
    senders: Mutex<HashMap<String, broadcast::Sender<Note>>>,
}

impl Topics {
    /// A receiver of `topic`'s notes from now on.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Note> {
        match self.senders.lock() {
            Ok(mut senders) => senders
                .entry(topic.to_string())
                .or_insert_with(|| broadcast::channel(TOPIC_BUFFER).0)
                .subscribe(),
            // A poisoned map: a receiver that never hears anything; the periodic reloads
            // still run.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Hands `note` to the subscribers of `topic` (none is fine).
    pub fn deliver(&self, topic: &str, note: Note) {
        if let Ok(senders) = self.senders.lock()
            && let Some(sender) = senders.get(topic)
        {
            let _ = sender.send(note);
        }
    }

    /// Tells every subscriber of every topic to resync.
    pub fn resync_all(&self) {
        if let Ok(senders) = self.senders.lock() {
            for sender in senders.values() {
                let _ = sender.send(Note::Resync);
            }
        }
    }
}

/// A note as it travels between instances: who sent it (so the sender can skip its own),
/// its topic and payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending instance.
    #[serde(rename = "o")]
    pub origin: String,
    /// The topic.
    #[serde(rename = "t")]
    pub topic: String,
    /// The payload.
    #[serde(rename = "p")]
    pub payload: String,
}

impl Envelope {
    /// Hands a received envelope to `topics`, unless `me` sent it.
    pub fn deliver_to(self, topics: &Topics, me: &str) {
        if self.origin != me {
            topics.deliver(&self.topic, Note::Message(self.payload));
        }
    }
}

/// The topic of account changes: `{"what":"user","id":USER_ID}` (anything about the user
/// changed: status, role, sessions, second factor) and `{"what":"session","id":SESSION_ID}`
/// (one session was revoked). The User service and every cache of users listen to it.
pub const USER_TOPIC: &str = "user";

/// The topic of system settings: any note means "the settings changed, read them again"
/// (the User service, which owns them, listens).
pub const SETTINGS_TOPIC: &str = "settings";

/// A change on [`USER_TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", content = "id", rename_all = "snake_case")]
pub enum UserChange {
    /// Anything about this user changed.
    User(String),
    /// This session was revoked.
    Session(String),
}

// A subscriber loop is a background task like the periodic ones; it is written here, beside
// the bus it reads, so that `service` does not depend on `bus` (which uses `service`'s tasks).
impl BackgroundTasks {
    /// Runs `on_note(service, note)` for every note of `topic` on `bus`, until the service is
    /// dropped or [`BackgroundTasks::stop`] is called. A subscriber that fell behind and missed notes is
    /// handed [`Note::Resync`], as after a reconnection.
    pub fn on_notes<S, F, Fut>(
        &self,
        name: &'static str,
        bus: &Arc<dyn Bus>,
        topic: &str,
        service: &Arc<S>,
        on_note: F,
    ) where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>, Note) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        use tokio::sync::broadcast::error::RecvError;
        let weak: Weak<S> = Arc::downgrade(service);
        let stop = self.stop.clone();
        let mut receiver = bus.subscribe(topic);
        self.tracker.spawn(async move {
            loop {
                let note = tokio::select! {
                    () = stop.cancelled() => break,
                    note = receiver.recv() => match note {
                        Ok(note) => note,
                        Err(RecvError::Lagged(_)) => Note::Resync,
                        Err(RecvError::Closed) => break,
                    },
                };
                let Some(service) = weak.upgrade() else { break };
                tracing::trace!(task = name, "bus note");
                on_note(service, note).await;
            }
        });
    }
}

/// Publishes `note` on `topic` from a tracked task, logging a failure: the publisher already
/// acted on its own memory, and the others' periodic reloads and expiries are the safety net.
pub fn tell(
    bus: Option<&std::sync::Arc<dyn Bus>>,
    tasks: &BackgroundTasks,
    topic: &'static str,
    note: &impl Serialize,
) {
    let Some(bus) = bus.cloned() else { return };
    let Ok(payload) = serde_json::to_string(note) else {
        return;
    };
    tasks.spawn(async move {
        if let Err(error) = bus.publish(topic, &payload).await {
            tracing::warn!(%error, topic, "could not tell the other instances");
        }
    });
}

/// An instance's identity on the bus: random per process, so a restarted instance is a new
/// one.
pub fn instance_id() -> String {
    crate::ids::new_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn topics_deliver_to_their_subscribers_only() {
        let topics = Topics::default();
        let mut a = topics.subscribe("a");
        let mut b = topics.subscribe("b");
        topics.deliver("a", Note::Message("one".into()));
        topics.resync_all();
        assert_eq!(a.recv().await.ok(), Some(Note::Message("one".into())));
        assert_eq!(a.recv().await.ok(), Some(Note::Resync));
        assert_eq!(b.recv().await.ok(), Some(Note::Resync));
        assert!(b.try_recv().is_err());
    }
}
