//! The instances' bus over Redis pub/sub (see [`skein_core::bus`]), used whenever Redis is
//! configured: no size limit on a note and no load on the database for chat's live deltas.
//!
//! Every note goes on one channel, `<redis.key_prefix>bus`, so deployments sharing a Redis
//! with different prefixes never hear each other. The subscription has its own connection;
//! when it is lost the bus reconnects with backoff and tells every subscriber to resync,
//! since notes published meanwhile are gone.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use skein_core::bus::{Bus, BusError, Envelope, Note, Topics};
use tokio::sync::broadcast;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The Redis bus.
pub struct RedisBus {
    conn: ConnectionManager,
    channel: String,
    me: String,
    topics: Arc<Topics>,
    listener: tokio::task::JoinHandle<()>,
}

impl RedisBus {
    /// Subscribes at `url` (the first subscription must succeed, so a bad configuration fails
    /// at start-up); `prefix` names the channel.
    pub async fn start(url: &str, prefix: &str) -> Result<Arc<RedisBus>, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError(e.to_string()))?;
        let conn = ConnectionManager::new(client.clone())
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let channel = format!("{prefix}bus");
        let first = subscribe(&client, &channel)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        let me = skein_core::bus::instance_id();
        let topics = Arc::new(Topics::default());
        let listener = tokio::spawn(run(
            client,
            channel.clone(),
            first,
            topics.clone(),
            me.clone(),
        ));
        Ok(Arc::new(RedisBus {
            conn,
            channel,
            me,
            topics,
            listener,
        }))
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, topic: &str, payload: &str) -> Result<(), BusError> {
        let envelope = Envelope {
            origin: self.me.clone(),
            topic: topic.to_string(),
            payload: payload.to_string(),
        };
        let text = serde_json::to_string(&envelope).map_err(|e| BusError(e.to_string()))?;
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(text)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| BusError(e.to_string()))?;
        Ok(())
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<Note> {
        self.topics.subscribe(topic)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// The subscription's loop: hands notes out, and after a lost connection subscribes again
/// and has every subscriber resync.
async fn run(
    client: redis::Client,
    channel: String,
    first: redis::aio::PubSub,
    topics: Arc<Topics>,
    me: String,
) {
    let mut pubsub = Some(first);
    let mut backoff = Duration::from_millis(50);
    loop {
        let current = match pubsub.take() {
            Some(current) => current,
            None => match subscribe(&client, &channel).await {
                Ok(current) => {
                    tracing::info!("bus subscription reconnected to Redis; resyncing");
                    backoff = Duration::from_millis(50);
                    topics.resync_all();
                    current
                }
                Err(error) => {
                    tracing::warn!(%error, "bus subscription cannot reconnect to Redis");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(message) = messages.next().await {
            match message.get_payload::<String>() {
                Ok(text) => match serde_json::from_str::<Envelope>(&text) {
                    Ok(envelope) => envelope.deliver_to(&topics, &me),
                    Err(error) => tracing::warn!(%error, "unreadable bus note"),
                },
                Err(error) => tracing::warn!(%error, "unreadable bus note"),
            }
        }
        tracing::warn!("bus subscription lost its Redis connection");
    }
}
