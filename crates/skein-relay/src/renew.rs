//! Holds kept alive while their requests run. A hold expires after `billing.reservation_ttl_secs`
//! so a crashed caller cannot keep quota forever; a request that is still streaming must not
//! lose its hold that way (the same units could then be spent twice). Every running request
//! registers its hold here, and one task renews each hold a third of its lifetime after it
//! was last renewed, until the request drops its [`KeepAlive`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein_core::api::{BillingApi, Reservation};
use skein_core::ids::{now_ms, rfc3339_to_ms};

/// How often the renewer looks for holds due: well under the shortest lifetime allowed (1 s).
const TICK: Duration = Duration::from_millis(250);

/// A registered hold: when it is next due, and how often.
struct Due {
    at_ms: i64,
    every_ms: i64,
}

/// The holds of running requests.
#[derive(Clone, Default)]
pub struct Renewals {
    due: Arc<Mutex<HashMap<String, Due>>>,
}

impl Renewals {
    /// Starts the task that renews due holds through `billing`; it ends when the service (the
    /// last clone of these renewals outside the task) is gone.
    pub fn start(&self, billing: Arc<dyn BillingApi>) {
        let weak = Arc::downgrade(&self.due);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(due) = weak.upgrade() else { break };
                let now = now_ms();
                let ready: Vec<String> = match due.lock() {
                    Ok(mut map) => map
                        .iter_mut()
                        .filter(|(_, d)| d.at_ms <= now)
                        .map(|(id, d)| {
                            d.at_ms = now + d.every_ms;
                            id.clone()
                        })
                        .collect(),
                    Err(_) => break,
                };
                drop(due);
                for id in ready {
                    if let Err(error) = billing.renew(&id).await {
                        tracing::warn!(%error, reservation_id = %id, "could not renew a hold");
                    }
                }
            }
        });
    }

    /// Keeps `reservation` alive until the answer is dropped: renewed every third of the
    /// lifetime its `expires_at` gives it.
    pub fn keep(&self, reservation: &Reservation) -> KeepAlive {
        let now = now_ms();
        let lifetime = rfc3339_to_ms(&reservation.expires_at)
            .map(|at| at - now)
            .unwrap_or(900_000)
            .max(1_000);
        let every_ms = lifetime / 3;
        if let Ok(mut map) = self.due.lock() {
            map.insert(
                reservation.id.clone(),
                Due {
                    at_ms: now + every_ms,
                    every_ms,
                },
            );
        }
        KeepAlive {
            id: reservation.id.clone(),
            due: self.due.clone(),
        }
    }

    /// Holds being kept alive now (for the process's own accounting).
    pub fn len(&self) -> usize {
        self.due.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no hold is being kept alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A hold being kept alive; dropping it stops the renewals.
pub struct KeepAlive {
    id: String,
    due: Arc<Mutex<HashMap<String, Due>>>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Ok(mut map) = self.due.lock() {
            map.remove(&self.id);
        }
    }
}
