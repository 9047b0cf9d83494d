//! The SMS send queue: a request that asks for a code stores the code's digest, hands the
//! message to this queue and answers at once, so a slow or unreachable SMS vendor never slows
//! it. Each message is tried in its own tracked task; when the vendor is unreachable or busy it
//! is tried again with doubling waits (`sms.first_retry_ms`, at most `sms.max_attempts` tries),
//! and a message the vendor refuses, or that could not go out before its code expires, voids
//! its code.
//!
//! Unlike the mail queue, messages live in memory only: writing them to a table would put the
//! plain code next to its digest, and a code lives minutes, so a message lost in a crash costs
//! the person one "send again". The queue is bounded (`sms.queue_capacity` messages waiting);
//! past it a request is told "busy" at once rather than waiting or growing memory.

use std::sync::Arc;
use std::time::Duration;

use skein_core::i18n::Lang;
use skein_core::ids::now_ms;
use skein_core::service::BackgroundTasks;
use skein_db::Db;
use tokio::sync::Semaphore;

use super::{Phone, SmsConfig, SmsProvider};
use crate::mail::backoff_ms;
use crate::store::phone as phone_store;

/// One code to deliver.
pub struct Outgoing {
    /// The stored code's id (voided if the message cannot be sent).
    pub code_id: String,
    /// Where to.
    pub phone: Phone,
    /// The code itself (kept only here, in memory, until sent).
    pub code: String,
    /// The person's language.
    pub lang: Lang,
    /// When the code expires, ms since the epoch: no try starts after it.
    pub expires_at: i64,
    /// The vendor in effect when the code was asked for.
    pub provider: Arc<dyn SmsProvider>,
}

/// The queue is full: every slot holds a message waiting for the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The bounded queue of messages on their way to the vendor.
pub struct SmsQueue {
    slots: Arc<Semaphore>,
    capacity: usize,
    max_attempts: u32,
    first_retry_ms: i64,
    db: Db,
    background: BackgroundTasks,
}

impl SmsQueue {
    /// A queue with `[sms]`'s bounds; messages are sent by tasks tracked in `background`.
    pub fn new(config: &SmsConfig, db: Db, background: BackgroundTasks) -> Self {
        let capacity = config.queue_capacity.max(1);
        SmsQueue {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            max_attempts: config.max_attempts.max(1),
            first_retry_ms: i64::try_from(config.first_retry_ms).unwrap_or(i64::MAX),
            db,
            background,
        }
    }

    /// Messages waiting for (or being sent to) the vendor.
    pub fn len(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes `message` for delivery, or answers [`QueueFull`] at once.
    pub fn push(&self, message: Outgoing) -> Result<(), QueueFull> {
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| QueueFull)?;
        let db = self.db.clone();
        let max_attempts = self.max_attempts;
        let first_retry_ms = self.first_retry_ms;
        self.background.spawn(async move {
            deliver(&db, message, max_attempts, first_retry_ms).await;
            drop(slot);
        });
        Ok(())
    }
}

/// Tries `message` until it is sent, refused, out of tries or out of time.
async fn deliver(db: &Db, message: Outgoing, max_attempts: u32, first_retry_ms: i64) {
    let provider = message.provider.name();
    let mut attempt: u32 = 1;
    loop {
        let error = match message
            .provider
            .send_code(&message.phone, &message.code, message.lang)
            .await
        {
            Ok(()) => {
                tracing::info!(provider, phone = %message.phone.masked(), attempts = attempt, "SMS code sent");
                return;
            }
            Err(error) => error,
        };
        let wait = backoff_ms(first_retry_ms, i64::from(attempt));
        let in_time = now_ms().saturating_add(wait) < message.expires_at;
        if error.is_transient() && attempt < max_attempts && in_time {
            tracing::warn!(provider, phone = %message.phone.masked(), attempts = attempt, %error, retry_in_ms = wait, "SMS code not sent; will retry");
            tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
            attempt += 1;
            continue;
        }
        tracing::error!(provider, phone = %message.phone.masked(), attempts = attempt, %error, "SMS code given up");
        // Nobody received this code, so nobody may use it; the person asks again.
        if let Err(db_error) = phone_store::void_code(db.pool(), &message.code_id, now_ms()).await {
            tracing::error!(%db_error, code_id = %message.code_id, "could not void an unsent SMS code");
        }
        return;
    }
}
