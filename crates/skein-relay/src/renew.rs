//! Holds kept alive while their requests run. A hold expires after `billing.reservation_ttl_secs`
//! so a crashed caller cannot keep quota forever; a request that is still streaming must not
//! lose its hold that way (the same units could then be spent twice). Every running request
//! registers its hold here, and a background task of the service renews each hold a third of its lifetime after it
//! was last renewed, until the request drops its [`KeepAlive`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein_core::api::{BillingApi, Reservation};
use skein_core::ids::{now_ms, rfc3339_to_ms};

/// How often the renewer looks for holds due: well under the shortest lifetime allowed (1 s).
pub const TICK: Duration = Duration::from_millis(250);

/// Running requests' holds by reservation id (made by Skein, so foldhash's seeded hash is
/// enough; a keep and a drop on every request).
type DueMap = HashMap<String, Due, foldhash::fast::RandomState>;

/// A registered hold: when it is next due, and how often.
struct Due {
    at_ms: i64,
    every_ms: i64,
}

/// The holds of running requests.
#[derive(Clone, Default)]
pub struct Renewals {
    due: Arc<Mutex<DueMap>>,
}

impl Renewals {
    /// Renews, through `billing`, every hold that is due. The service runs this every
    /// [`TICK`] as one of its background tasks, so shutdown stops it after the requests that
    /// hold quota are drained, and waits for a renewal in progress.
    pub async fn renew_due(&self, billing: &dyn BillingApi) {
        for id in self.take_due(now_ms()) {
            if let Err(error) = billing.renew(&id).await {
                tracing::warn!(%error, reservation_id = %id, "could not renew a hold");
            }
        }
    }

    /// The holds due at `now`, each rescheduled one period later.
    fn take_due(&self, now: i64) -> Vec<String> {
        let Ok(mut map) = self.due.lock() else {
            return Vec::new();
        };
        map.iter_mut()
            .filter(|(_, d)| d.at_ms <= now)
            .map(|(id, d)| {
                d.at_ms = now + d.every_ms;
                id.clone()
            })
            .collect()
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
    due: Arc<Mutex<DueMap>>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Ok(mut map) = self.due.lock() {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(id: &str, lifetime_ms: i64) -> Reservation {
        Reservation {
            id: id.to_string(),
            amount: 1,
            expires_at: skein_core::ids::ms_to_rfc3339(now_ms() + lifetime_ms),
        }
    }

    #[test]
    fn a_hold_is_due_a_third_of_its_lifetime_on_and_only_while_kept() {
        let renewals = Renewals::default();
        let keep = renewals.keep(&hold("r1", 30_000));
        let now = now_ms();
        assert!(renewals.take_due(now).is_empty(), "not due at once");
        // A third of 30 s is 10 s (less the few ms `keep` ran after `hold`).
        assert_eq!(renewals.take_due(now + 10_000), vec!["r1".to_string()]);
        assert!(
            renewals.take_due(now + 10_001).is_empty(),
            "rescheduled one period on"
        );
        assert_eq!(renewals.take_due(now + 20_000), vec!["r1".to_string()]);
        drop(keep);
        assert!(renewals.is_empty());
        assert!(renewals.take_due(now + 60_000).is_empty());
    }
}
