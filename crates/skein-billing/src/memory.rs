//! Holds kept in memory, for a deployment with one writer process (SQLite): a reserve is a
//! check against the balance this process already knows plus its own open holds, and costs no
//! database round trip. Only settles (which move money) are written, through the writer.
//!
//! Why this is safe on SQLite and not used on PostgreSQL: with SQLite exactly one process
//! writes balances, so its view of them cannot go stale behind its back. Several instances on
//! one PostgreSQL cannot see each other's memory, so there holds stay conditional `UPDATE`s.
//! A crash loses open holds, which is what releasing them means: nothing was charged.

use std::collections::HashMap;
use std::sync::Mutex;

use skein_core::api::{KeyLimit, Settlement};

/// An open hold.
#[derive(Debug, Clone)]
pub(crate) struct MemHold {
    pub user_id: String,
    pub key: Option<KeyLimit>,
    pub amount: i64,
    pub expires_at: i64,
}

#[derive(Default)]
struct Book {
    /// Balance minus database-held amounts, as this process last knew it; `None` to reload.
    spendable: Option<i64>,
    /// Sum of this process's open holds.
    held: i64,
}

#[derive(Default)]
struct KeyBook {
    /// Quota the key has used (and held in the database), `None` to reload.
    used: Option<i64>,
    held: i64,
}

#[derive(Default)]
struct Inner {
    books: HashMap<String, Book>,
    keys: HashMap<String, KeyBook>,
    holds: HashMap<String, MemHold>,
    /// Holds that expired: a late settle still charges what was delivered.
    expired: HashMap<String, MemHold>,
    /// Settled holds, so a retried settle answers the first settlement.
    settled: HashMap<String, Settlement>,
    /// Holds whose settle is being committed: still counted as held, so neither the balance
    /// view nor a concurrent reserve sees the money in neither place.
    settling: HashMap<String, Settling>,
    /// Released holds, so releasing again is a no-op and settling after it is refused.
    released: std::collections::HashSet<String>,
}

/// A hold being settled.
struct Settling {
    hold: MemHold,
    /// Whether it was open (counted in `held`) rather than expired.
    open: bool,
    /// What the charge may take beyond the hold, also counted in `held` until the charge
    /// commits, so no reserve in between can promise the same units.
    extra: i64,
}

/// What a reserve needs loaded before it can decide.
pub(crate) enum Need {
    /// The user's spendable balance.
    Balance,
    /// The key's used quota.
    KeyUsed,
}

/// The outcome of a reserve attempt.
pub(crate) enum Reserved {
    /// Held this much.
    Granted(i64),
    /// The balance has only this much left.
    NoQuota(i64),
    /// The key's limit has only this much left.
    KeyQuota(i64),
    Load(Need),
}

/// In-memory holds and the balances they are checked against.
#[derive(Default)]
pub(crate) struct Holds {
    inner: Mutex<Inner>,
}

/// Entries kept in the expired and settled memories before the oldest are forgotten.
const MEMORY: usize = 100_000;

impl Holds {
    /// Tries to hold `hold.amount` for the user (and key) as `id`; when that does not fit,
    /// the most that does, if it is at least `min_amount`.
    pub fn reserve(
        &self,
        id: &str,
        mut hold: MemHold,
        min_amount: i64,
        overdraft: i64,
    ) -> Reserved {
        let Ok(mut inner) = self.inner.lock() else {
            return Reserved::Load(Need::Balance);
        };
        let Some(spendable) = inner.books.get(&hold.user_id).and_then(|b| b.spendable) else {
            return Reserved::Load(Need::Balance);
        };
        let held = inner.books.get(&hold.user_id).map(|b| b.held).unwrap_or(0);
        let available = spendable - held + overdraft;
        if available < min_amount {
            return Reserved::NoQuota(available);
        }
        let mut granted = hold.amount.min(available);
        if let Some(key) = &hold.key
            && let Some(limit) = key.limit
        {
            let Some(used) = inner.keys.get(&key.key_id).and_then(|k| k.used) else {
                return Reserved::Load(Need::KeyUsed);
            };
            let key_held = inner.keys.get(&key.key_id).map(|k| k.held).unwrap_or(0);
            let left = limit - used - key_held;
            if left < min_amount {
                return Reserved::KeyQuota(left);
            }
            granted = granted.min(left);
        }
        hold.amount = granted;
        inner.books.entry(hold.user_id.clone()).or_default().held += granted;
        if let Some(key) = &hold.key {
            inner.keys.entry(key.key_id.clone()).or_default().held += granted;
        }
        inner.holds.insert(id.to_string(), hold);
        Reserved::Granted(granted)
    }

    /// The most a hold being settled may charge for `cost`: all of it within the hold, and
    /// beyond it only what keeps the known balance less every other hold at or above
    /// `-overdraft`. What it takes beyond the hold is counted as held until the charge
    /// commits. `None` when the user's balance must be loaded first.
    pub fn cover(&self, id: &str, cost: i64, overdraft: i64) -> Option<i64> {
        let mut guard = self.inner.lock().ok()?;
        let inner = &mut *guard;
        let settling = inner.settling.get_mut(id)?;
        let held = if settling.open {
            settling.hold.amount
        } else {
            0
        };
        if cost <= held {
            return Some(cost);
        }
        let book = inner.books.get_mut(&settling.hold.user_id)?;
        let spendable = book.spendable?;
        // Everything held, this hold (and any extra taken before) included.
        let room = spendable - book.held + settling.extra;
        let cap = crate::ledger::collectable(cost, held, room, overdraft);
        let extra = cap - held;
        book.held += extra - settling.extra;
        settling.extra = extra;
        Some(cap)
    }

    /// Pushes an open hold's expiry to `expires_at`. `Some` when the hold is (or was) this
    /// process's: renewed if open, left as it is if settled, released or expired.
    pub fn renew(&self, id: &str, expires_at: i64) -> Option<()> {
        let mut inner = self.inner.lock().ok()?;
        if let Some(hold) = inner.holds.get_mut(id) {
            hold.expires_at = expires_at;
            return Some(());
        }
        let known = inner.settled.contains_key(id)
            || inner.settling.contains_key(id)
            || inner.released.contains(id)
            || inner.expired.contains_key(id);
        known.then_some(())
    }

    /// Records a loaded balance.
    pub fn set_spendable(&self, user_id: &str, spendable: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner
                .books
                .entry(user_id.to_string())
                .or_default()
                .spendable = Some(spendable);
        }
    }

    /// Records a loaded key usage.
    pub fn set_key_used(&self, key_id: &str, used: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.keys.entry(key_id.to_string()).or_default().used = Some(used);
        }
    }

    /// Forgets a user's balance (a credit, grant or redemption changed it): the next reserve
    /// reloads it.
    pub fn forget_balance(&self, user_id: &str) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(book) = inner.books.get_mut(user_id)
        {
            book.spendable = None;
        }
    }

    /// Takes an open (or expired) hold out for settling. `Err(Some(_))` carries a previous
    /// settlement, `Err(None)` says the hold was released.
    pub fn take_for_settle(&self, id: &str) -> Result<Option<MemHold>, Option<Settlement>> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(None);
        };
        if let Some(done) = inner.settled.get(id) {
            return Err(Some(done.clone()));
        }
        if inner.released.contains(id) {
            return Err(None);
        }
        if let Some(hold) = inner.holds.remove(id) {
            let settling = Settling {
                hold: hold.clone(),
                open: true,
                extra: 0,
            };
            inner.settling.insert(id.to_string(), settling);
            return Ok(Some(hold));
        }
        match inner.expired.remove(id) {
            Some(hold) => {
                let settling = Settling {
                    hold: hold.clone(),
                    open: false,
                    extra: 0,
                };
                inner.settling.insert(id.to_string(), settling);
                Ok(Some(hold))
            }
            None => Ok(None),
        }
    }

    /// Puts back a hold whose settle failed, so it can be settled again or expire.
    pub fn restore(&self, id: &str) {
        if let Ok(mut inner) = self.inner.lock()
            && let Some(Settling { hold, open, extra }) = inner.settling.remove(id)
        {
            if let Some(book) = inner.books.get_mut(&hold.user_id) {
                book.held -= extra;
            }
            if open {
                inner.holds.insert(id.to_string(), hold);
            } else {
                inner.expired.insert(id.to_string(), hold);
            }
        }
    }

    /// Records a committed settle: the hold ends and the charge leaves the known balance.
    pub fn settled(&self, id: &str, settlement: &Settlement) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(Settling { hold, open, extra }) = inner.settling.remove(id) else {
            return;
        };
        if let Some(book) = inner.books.get_mut(&hold.user_id) {
            book.held -= extra;
            if open {
                book.held -= hold.amount;
            }
            if let Some(spendable) = book.spendable.as_mut() {
                *spendable -= settlement.charged;
            }
        }
        if let Some(key) = &hold.key
            && let Some(k) = inner.keys.get_mut(&key.key_id)
        {
            if open {
                k.held -= hold.amount;
            }
            if let Some(used) = k.used.as_mut() {
                *used += settlement.charged;
            }
        }
        if inner.settled.len() >= MEMORY {
            inner.settled.clear();
        }
        inner.settled.insert(id.to_string(), settlement.clone());
    }

    /// Releases a hold; answers whether it was a hold of this process (open, expired or
    /// already released), or `Err` if it was settled.
    pub fn release(&self, id: &str) -> Result<bool, ()> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(false);
        };
        if inner.settled.contains_key(id) || inner.settling.contains_key(id) {
            return Err(());
        }
        if inner.released.contains(id) {
            return Ok(true);
        }
        let hold = match inner.holds.remove(id) {
            Some(hold) => hold,
            None => {
                if inner.expired.remove(id).is_none() {
                    return Ok(false);
                }
                remember(&mut inner.released, id);
                return Ok(true);
            }
        };
        if let Some(book) = inner.books.get_mut(&hold.user_id) {
            book.held -= hold.amount;
        }
        if let Some(key) = &hold.key
            && let Some(k) = inner.keys.get_mut(&key.key_id)
        {
            k.held -= hold.amount;
        }
        remember(&mut inner.released, id);
        Ok(true)
    }

    /// Releases holds past their expiry (their caller never came back); answers how many.
    pub fn expire(&self, now_ms: i64) -> u64 {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let due: Vec<String> = inner
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at < now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        if inner.expired.len() + due.len() > MEMORY {
            inner.expired.clear();
        }
        for id in &due {
            if let Some(hold) = inner.holds.remove(id) {
                if let Some(book) = inner.books.get_mut(&hold.user_id) {
                    book.held -= hold.amount;
                }
                if let Some(key) = &hold.key
                    && let Some(k) = inner.keys.get_mut(&key.key_id)
                {
                    k.held -= hold.amount;
                }
                inner.expired.insert(id.clone(), hold);
            }
        }
        due.len() as u64
    }

    /// The sum of a user's open holds here (including those being settled).
    pub fn held(&self, user_id: &str) -> i64 {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.books.get(user_id).map(|b| b.held))
            .unwrap_or(0)
    }
}

fn remember(set: &mut std::collections::HashSet<String>, id: &str) {
    if set.len() >= MEMORY {
        set.clear();
    }
    set.insert(id.to_string());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn hold(amount: i64) -> MemHold {
        MemHold {
            user_id: "u".into(),
            key: None,
            amount,
            expires_at: i64::MAX,
        }
    }

    fn granted(r: Reserved) -> i64 {
        match r {
            Reserved::Granted(n) => n,
            _ => panic!("not granted"),
        }
    }

    fn settlement(charged: i64) -> Settlement {
        Settlement {
            reservation_id: String::new(),
            charged,
            balance_after: 0,
            overrun: 0,
            uncollected: 0,
        }
    }

    #[test]
    fn a_partial_hold_takes_what_is_left_and_then_refuses_with_the_numbers() {
        let holds = Holds::default();
        holds.set_spendable("u", 1_000);
        assert_eq!(granted(holds.reserve("a", hold(5_000), 100, 0)), 1_000);
        assert!(matches!(
            holds.reserve("b", hold(10), 1, 0),
            Reserved::NoQuota(0)
        ));
        // With an overdraft of 50 there are 50 more to hold, not less than asked for.
        assert!(matches!(
            holds.reserve("c", hold(60), 60, 50),
            Reserved::NoQuota(50)
        ));
        assert_eq!(granted(holds.reserve("d", hold(60), 10, 50)), 50);
        let key = KeyLimit {
            key_id: "k".into(),
            limit: Some(30),
        };
        holds.set_spendable("v", 1_000);
        holds.set_key_used("k", 0);
        let keyed = MemHold {
            user_id: "v".into(),
            key: Some(key),
            amount: 100,
            expires_at: i64::MAX,
        };
        assert_eq!(granted(holds.reserve("e", keyed.clone(), 20, 0)), 30);
        assert!(matches!(
            holds.reserve("f", keyed, 20, 0),
            Reserved::KeyQuota(0)
        ));
        assert_eq!(holds.held("v"), 30);
    }

    #[test]
    fn what_a_charge_takes_beyond_its_hold_stays_held_until_it_commits() {
        let holds = Holds::default();
        holds.set_spendable("u", 1_000);
        granted(holds.reserve("a", hold(100), 100, 0));
        granted(holds.reserve("b", hold(300), 300, 0));
        holds.take_for_settle("a").unwrap();
        // The hold, plus the 600 no hold covers; never b's 300.
        assert_eq!(holds.cover("a", 5_000, 0), Some(700));
        assert_eq!(holds.held("u"), 1_000, "the extra 600 is counted as held");
        assert!(matches!(
            holds.reserve("c", hold(1), 1, 0),
            Reserved::NoQuota(0)
        ));
        // Asking again does not count the extra twice.
        assert_eq!(holds.cover("a", 5_000, 0), Some(700));
        assert_eq!(holds.held("u"), 1_000);
        // A failed commit gives the extra back with the hold.
        holds.restore("a");
        assert_eq!(holds.held("u"), 400);
        holds.take_for_settle("a").unwrap();
        assert_eq!(holds.cover("a", 5_000, 0), Some(700));
        holds.settled("a", &settlement(700));
        assert_eq!(holds.held("u"), 300);
        assert!(matches!(
            holds.reserve("c", hold(1), 1, 0),
            Reserved::NoQuota(0)
        ));
        // Within the hold the cost is charged whole and nothing extra is held.
        holds.take_for_settle("b").unwrap();
        assert_eq!(holds.cover("b", 250, 0), Some(250));
        assert_eq!(holds.held("u"), 300);
    }

    #[test]
    fn renew_moves_an_open_hold_and_leaves_closed_ones() {
        let holds = Holds::default();
        holds.set_spendable("u", 1_000);
        let mut short = hold(100);
        short.expires_at = 10;
        granted(holds.reserve("a", short.clone(), 1, 0));
        granted(holds.reserve("b", short, 1, 0));
        assert_eq!(holds.renew("a", 1_000), Some(()));
        assert_eq!(
            holds.expire(500),
            1,
            "only the hold that was not renewed expires"
        );
        assert_eq!(holds.held("u"), 100);
        assert_eq!(
            holds.renew("b", 2_000),
            Some(()),
            "an expired hold is left as it is"
        );
        assert_eq!(holds.held("u"), 100);
        assert_eq!(holds.renew("nope", 2_000), None);
    }
}
