//! The instances' bus over PostgreSQL `LISTEN/NOTIFY` (see [`skein_core::bus`]): for a
//! deployment on PostgreSQL without Redis, so several instances need nothing but their
//! database to stay in step.
//!
//! Every note goes on one channel ([`CHANNEL`]); notifications reach only listeners of the same
//! database, so two deployments on one server never hear each other. A notification's payload
//! must stay under 8,000 bytes: a larger note is sent in hex-encoded parts, in order, which the
//! receivers put back together. The listener has its own connection (application name
//! `skein-bus`); when it is lost the bus reconnects with backoff and tells every subscriber to
//! resync, since notes sent meanwhile are gone.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_core::bus::{Bus, BusError, Envelope, Note, Topics};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::broadcast;

use crate::Db;

/// The channel every note travels on.
pub const CHANNEL: &str = "skein_bus";

/// The application name of the listening connection (so an operator can find it).
pub const APPLICATION_NAME: &str = "skein-bus";

/// Largest notification sent whole; PostgreSQL refuses 8,000 bytes and more.
const MAX_WHOLE: usize = 7_500;

/// Bytes of payload per part of a large note (hex doubles them).
const PART_BYTES: usize = 3_500;

/// Parts of large notes being put back together, at most this many notes at once.
const MAX_ASSEMBLING: usize = 256;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A notification: a whole envelope, or one part of a large one.
#[derive(Debug, Serialize, Deserialize)]
struct Frame {
    #[serde(flatten)]
    envelope: Envelope,
    /// For a part: the note's number at its sender, the part's index and the count of parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<(u64, u32, u32)>,
}

/// The PostgreSQL bus.
pub struct PgBus {
    db: Db,
    me: String,
    topics: Arc<Topics>,
    next_note: AtomicU64,
    listener: tokio::task::JoinHandle<()>,
}

impl PgBus {
    /// Listens on the database at `url` (its first connection must succeed, so a bad
    /// configuration fails at start-up) and publishes through `db`'s pool.
    pub async fn start(url: &str, db: Db) -> Result<Arc<PgBus>, BusError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| BusError(e.to_string()))?
            .application_name(APPLICATION_NAME);
        let first = listen(&options)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let me = skein_core::bus::instance_id();
        let topics = Arc::new(Topics::default());
        let listener = tokio::spawn(run(options, first, topics.clone(), me.clone()));
        Ok(Arc::new(PgBus {
            db,
            me,
            topics,
            next_note: AtomicU64::new(0),
            listener,
        }))
    }

    async fn notify(&self, frame: &Frame) -> Result<(), BusError> {
        let text = serde_json::to_string(frame).map_err(|e| BusError(e.to_string()))?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(text)
            .execute(self.db.pool())
            .await
            .map_err(|e| BusError(e.to_string()))?;
        Ok(())
    }
}

impl Drop for PgBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl Bus for PgBus {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError> {
        let envelope = Envelope {
            origin: self.me.clone(),
            topic: topic.to_string(),
            payload: payload.to_string(),
        };
        let whole = Frame {
            envelope,
            part: None,
        };
        let size = serde_json::to_string(&whole)
            .map_err(|e| BusError(e.to_string()))?
            .len();
        if size <= MAX_WHOLE {
            return self.notify(&whole).await;
        }
        // Parts go out one after another from this task, so they arrive in order.
        let number = self.next_note.fetch_add(1, Ordering::Relaxed);
        let chunks: Vec<&[u8]> = payload.as_bytes().chunks(PART_BYTES).collect();
        let count = u32::try_from(chunks.len()).map_err(|e| BusError(e.to_string()))?;
        for (index, chunk) in (0u32..).zip(chunks) {
            let frame = Frame {
                envelope: Envelope {
                    origin: self.me.clone(),
                    topic: topic.to_string(),
                    payload: hex::encode(chunk),
                },
                part: Some((number, index, count)),
            };
            self.notify(&frame).await?;
        }
        Ok(())
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Note> {
        self.topics.subscribe(topic)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

async fn listen(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The listener's loop: hands notes out, and after a lost connection reconnects and has
/// every subscriber resync.
async fn run(options: PgConnectOptions, first: PgListener, topics: Arc<Topics>, me: String) {
    let mut assembling = Assembler::default();
    let mut listener = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut current = match listener.take() {
            Some(current) => current,
            None => match listen(&options).await {
                Ok(current) => {
                    tracing::info!("bus listener reconnected to PostgreSQL; resyncing");
                    backoff = Duration::from_millis(50);
                    topics.resync_all();
                    current
                }
                Err(error) => {
                    tracing::warn!(%error, "bus listener cannot reconnect to PostgreSQL");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        loop {
            match current.try_recv().await {
                Ok(Some(notification)) => {
                    match serde_json::from_str::<Frame>(notification.payload()) {
                        Ok(frame) => {
                            if let Some(envelope) = assembling.take(frame) {
                                envelope.deliver_to(&topics, &me);
                            }
                        }
                        Err(error) => tracing::warn!(%error, "unreadable bus note"),
                    }
                }
                Ok(None) => {
                    tracing::warn!("bus listener lost its PostgreSQL connection");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "bus listener failed");
                    break;
                }
            }
        }
    }
}

/// Puts large notes back together from their parts.
#[derive(Default)]
struct Assembler {
    notes: HashMap<(String, u64), Vec<String>>,
}

impl Assembler {
    /// The whole envelope once `frame` completes one (at once for a whole note).
    fn take(&mut self, frame: Frame) -> Option<Envelope> {
        let Some((number, index, count)) = frame.part else {
            return Some(frame.envelope);
        };
        let key = (frame.envelope.origin.clone(), number);
        if index == 0 {
            if self.notes.len() >= MAX_ASSEMBLING {
                // Parts of a note whose rest never came (a lost connection): dropped.
                self.notes.clear();
            }
            self.notes.insert(key.clone(), Vec::new());
        }
        let parts = self.notes.get_mut(&key)?;
        if usize::try_from(index).ok()? != parts.len() {
            // A part went missing: the note is lost, as a dropped notification would be.
            self.notes.remove(&key);
            return None;
        }
        parts.push(frame.envelope.payload);
        if parts.len() < usize::try_from(count).ok()? {
            return None;
        }
        let parts = self.notes.remove(&key)?;
        let mut bytes = Vec::new();
        for part in parts {
            bytes.extend(hex::decode(part).ok()?);
        }
        Some(Envelope {
            payload: String::from_utf8(bytes).ok()?,
            ..frame.envelope
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_note_comes_back_whole_from_its_parts() {
        let payload = "十".repeat(5_000) + "end";
        let chunks: Vec<&[u8]> = payload.as_bytes().chunks(PART_BYTES).collect();
        let count = chunks.len() as u32;
        let mut assembler = Assembler::default();
        let mut whole = None;
        for (index, chunk) in (0u32..).zip(chunks) {
            let frame = Frame {
                envelope: Envelope {
                    origin: "a".into(),
                    topic: "t".into(),
                    payload: hex::encode(chunk),
                },
                part: Some((7, index, count)),
            };
            assert!(serde_json::to_string(&frame).unwrap().len() < 8_000);
            whole = assembler.take(frame);
        }
        assert_eq!(whole.map(|e| e.payload), Some(payload));
        assert!(assembler.notes.is_empty());
    }

    #[test]
    fn a_note_missing_a_part_is_dropped() {
        let mut assembler = Assembler::default();
        let part = |index| Frame {
            envelope: Envelope {
                origin: "a".into(),
                topic: "t".into(),
                payload: hex::encode("x"),
            },
            part: Some((1, index, 3)),
        };
        assert!(assembler.take(part(0)).is_none());
        assert!(assembler.take(part(2)).is_none());
        assert!(assembler.notes.is_empty());
    }
}
