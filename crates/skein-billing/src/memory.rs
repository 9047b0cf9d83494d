//! Holds kept in memory, for a deployment with one writer process (SQLite): a reserve is a
//! check against the balance this process already knows plus its own open holds, and costs no
//! database round trip. Only settles (which move money) are written, through the writer.
//!
//! Why this is safe on SQLite and not used on PostgreSQL: with SQLite exactly one process
//! writes balances, so its view of them cannot go stale behind its back. Several instances on
//! one PostgreSQL cannot see each other's memory, so there holds stay conditional `UPDATE`s.
//! A crash loses open holds, which is what releasing them means: nothing was charged.
//!
//! Bounds: open holds and holds being settled are bounded by running requests. What is
//! remembered after a hold ends is kept for one retention period (a hold's lifetime) and at
//! most a fixed number of entries, the oldest forgotten first: expired holds up to
//! [`EXPIRED_MEMORY`] (a late settle still charges what was delivered; holds expire only when
//! their caller vanished, so there are few), settled and released ones up to [`ENDED_MEMORY`]
//! each (they answer a retried settle or release; at 3,000 settles a second that is the last
//! seven seconds, and a retry comes within the caller's request). Forgetting a settled hold
//! never charges it twice: the ledger's unique `settle:<id>` key refuses a second charge, and a
//! settle of a hold this process does not know is refused as unknown. A user's or key's book
//! is dropped once it holds nothing and has not been used for a retention period (the next
//! reserve reloads it). [`Holds::expire`] prunes all of these.

use std::collections::HashMap;
use std::sync::Mutex;

use skein_core::api::{KeyLimit, Settlement};

/// The ledger's in-memory tables, keyed by ids Skein made (users, keys, reservations): hashed
/// with foldhash, seeded per process, as callers cannot choose the keys; SipHash's cost showed
/// in the relay's profile, several lookups per request.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

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
    /// When a reserve last used it (ms), so idle books can be forgotten.
    touched: i64,
}

#[derive(Default)]
struct KeyBook {
    /// Quota the key has used (and held in the database), `None` to reload.
    used: Option<i64>,
    held: i64,
    /// When a reserve last used it (ms).
    touched: i64,
}

#[derive(Default)]
struct Inner {
    books: Map<Book>,
    keys: Map<KeyBook>,
    holds: Map<MemHold>,
    /// Holds that expired: a late settle still charges what was delivered.
    expired: Map<MemHold>,
    /// Settled holds (with when, ms), so a retried settle answers the first settlement.
    settled: Map<(i64, Settled)>,
    /// Holds whose settle is being committed: still counted as held, so neither the balance
    /// view nor a concurrent reserve sees the money in neither place.
    settling: Map<Settling>,
    /// Released holds (with when, ms), so releasing again is a no-op and settling after it
    /// is refused.
    released: Map<i64>,
}

/// What a settle answered, without the id (the map's key): 40 bytes an entry.
#[derive(Clone, Copy)]
struct Settled {
    charged: i64,
    balance_after: i64,
    overrun: i64,
    uncollected: i64,
}

impl Settled {
    fn of(s: &Settlement) -> Self {
        Settled {
            charged: s.charged,
            balance_after: s.balance_after,
            overrun: s.overrun,
            uncollected: s.uncollected,
        }
    }

    fn answer(self, id: &str) -> Settlement {
        Settlement {
            reservation_id: id.to_string(),
            charged: self.charged,
            balance_after: self.balance_after,
            overrun: self.overrun,
            uncollected: self.uncollected,
        }
    }
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
pub(crate) struct Holds {
    inner: Mutex<Inner>,
    /// How long ended holds and idle books are remembered (ms).
    retention_ms: i64,
}

impl Default for Holds {
    fn default() -> Self {
        Holds::new(900_000)
    }
}

/// Expired holds remembered at most, however young (the oldest are forgotten first).
const EXPIRED_MEMORY: usize = 100_000;

/// Settled holds, and released holds, remembered at most each, however young (the oldest are
/// forgotten first). About 100 bytes an entry with its table: 2 MiB each when full. Before
/// issue #22's third round this was 100,000 each with a 900 s window, which a relay at 1,000
/// requests a second filled in under two minutes (about 20 MiB of settled holds).
pub(crate) const ENDED_MEMORY: usize = 20_000;

/// Entry counts of the holds' maps, for the runtime report.
pub(crate) struct Sizes {
    pub books: usize,
    pub keys: usize,
    pub open: usize,
    pub ended: usize,
}

impl Holds {
    /// Holds that remember ended holds and idle books for `retention_ms` (the reservation
    /// lifetime).
    pub fn new(retention_ms: i64) -> Self {
        Holds {
            inner: Mutex::new(Inner::default()),
            retention_ms: retention_ms.max(1_000),
        }
    }

    /// How many entries each map holds now.
    pub fn sizes(&self) -> Sizes {
        match self.inner.lock() {
            Ok(inner) => Sizes {
                books: inner.books.len(),
                keys: inner.keys.len(),
                open: inner.holds.len() + inner.settling.len(),
                ended: inner.expired.len() + inner.settled.len() + inner.released.len(),
            },
            Err(_) => Sizes {
                books: 0,
                keys: 0,
                open: 0,
                ended: 0,
            },
        }
    }

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
        let now = skein_core::ids::now_ms();
        let book = inner.books.entry(hold.user_id.clone()).or_default();
        book.held += granted;
        book.touched = now;
        if let Some(key) = &hold.key {
            let book = inner.keys.entry(key.key_id.clone()).or_default();
            book.held += granted;
            book.touched = now;
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
            || inner.released.contains_key(id)
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
        if let Some((_, done)) = inner.settled.get(id) {
            return Err(Some(done.answer(id)));
        }
        if inner.released.contains_key(id) {
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
        trim_oldest(&mut inner.settled, ENDED_MEMORY, |(at, _)| *at);
        let now = skein_core::ids::now_ms();
        inner
            .settled
            .insert(id.to_string(), (now, Settled::of(settlement)));
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
        if inner.released.contains_key(id) {
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

    /// Releases holds past their expiry (their caller never came back), and forgets ended
    /// holds and idle books older than the retention; answers how many holds it released.
    pub fn expire(&self, now_ms: i64) -> u64 {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        let horizon = now_ms - self.retention_ms;
        inner.expired.retain(|_, h| h.expires_at > horizon);
        inner.settled.retain(|_, (at, _)| *at > horizon);
        inner.released.retain(|_, at| *at > horizon);
        inner
            .books
            .retain(|_, b| b.held != 0 || b.touched > horizon);
        inner.keys.retain(|_, k| k.held != 0 || k.touched > horizon);
        shrink(&mut inner.expired);
        shrink(&mut inner.settled);
        shrink(&mut inner.released);
        shrink(&mut inner.books);
        shrink(&mut inner.keys);
        shrink(&mut inner.holds);
        let due: Vec<String> = inner
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at < now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        if inner.expired.len() + due.len() > EXPIRED_MEMORY {
            // The oldest go first; `expires_at` orders them.
            let keep = EXPIRED_MEMORY.saturating_sub(due.len());
            trim_to(&mut inner.expired, keep, |h| h.expires_at);
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

fn remember(set: &mut Map<i64>, id: &str) {
    trim_oldest(set, ENDED_MEMORY, |at| *at);
    set.insert(id.to_string(), skein_core::ids::now_ms());
}

/// Makes room for one more entry in a map bounded to `bound`: when it is full, forgets its
/// oldest quarter (by `at`), so the work is done once every `bound / 4` inserts, not on each.
fn trim_oldest<V>(map: &mut Map<V>, bound: usize, at: impl Fn(&V) -> i64) {
    if map.len() >= bound {
        trim_to(map, bound - bound / 4 - 1, at);
    }
}

/// Forgets the oldest entries (by `at`) until at most `keep` remain.
fn trim_to<V>(map: &mut Map<V>, keep: usize, at: impl Fn(&V) -> i64) {
    if map.len() <= keep {
        return;
    }
    if keep == 0 {
        map.clear();
        return;
    }
    let mut times: Vec<i64> = map.values().map(&at).collect();
    // The time of the newest entry that goes: everything at or before it is forgotten (ties
    // may forget a few more, never keep more).
    let cut = times.len() - keep - 1;
    let (_, &mut oldest_kept_bound, _) = times.select_nth_unstable(cut);
    map.retain(|_, v| at(v) > oldest_kept_bound);
}

/// Gives back the memory of a table left mostly empty by a passed burst (a cleared or pruned
/// map keeps its capacity otherwise, which is what kept RSS at its peak).
fn shrink<V>(map: &mut Map<V>) {
    if map.capacity() > 4 * map.len().max(16) {
        map.shrink_to(2 * map.len());
    }
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

    #[test]
    fn ended_holds_and_idle_books_are_forgotten_after_the_retention() {
        let holds = Holds::new(60_000);
        for i in 0..1_000 {
            let user = format!("u{i}");
            holds.set_spendable(&user, 1_000);
            let id = format!("h{i}");
            // A third are settled, a third released, a third abandoned (they expire).
            let h = hold_for(&user, if i % 3 == 2 { 0 } else { i64::MAX });
            granted(holds.reserve(&id, h, 1, 0));
            match i % 3 {
                0 => {
                    holds.take_for_settle(&id).unwrap();
                    holds.settled(&id, &settlement(10));
                }
                1 => assert_eq!(holds.release(&id), Ok(true)),
                _ => {}
            }
        }
        // One hold stays open for good: its user's book must stay.
        holds.set_spendable("busy", 1_000);
        granted(holds.reserve("open", hold_for("busy", i64::MAX), 1, 0));
        let before = holds.sizes();
        assert_eq!(before.books, 1_001);
        assert_eq!(before.ended, 667);

        // Within the retention nothing ended is forgotten: a retried settle still answers.
        holds.expire(skein_core::ids::now_ms());
        assert!(matches!(holds.take_for_settle("h0"), Err(Some(_))));

        // One retention later only what is still open remains.
        holds.expire(skein_core::ids::now_ms() + 60_000 + 1);
        let after = holds.sizes();
        assert_eq!(
            after.ended, 0,
            "settled, released and expired holds are forgotten"
        );
        assert_eq!(after.books, 1, "only the book with an open hold stays");
        assert_eq!(after.open, 1);
        assert_eq!(holds.held("busy"), 10);
        let inner = holds.inner.lock().unwrap();
        assert!(
            inner.books.capacity() < 64,
            "the book table gave its memory back"
        );
        assert!(inner.settled.capacity() < 64);
    }

    #[test]
    fn settled_and_released_holds_are_bounded_and_the_newest_are_kept() {
        let holds = Holds::default();
        holds.set_spendable("u", i64::MAX / 4);
        let total = ENDED_MEMORY + ENDED_MEMORY / 2;
        for i in 0..total {
            let id = format!("s{i}");
            granted(holds.reserve(&id, hold(10), 1, 0));
            holds.take_for_settle(&id).unwrap();
            let mut done = settlement(7);
            done.reservation_id = id.clone();
            holds.settled(&id, &done);
            let id = format!("r{i}");
            granted(holds.reserve(&id, hold(10), 1, 0));
            assert_eq!(holds.release(&id), Ok(true));
        }
        let inner = holds.inner.lock().unwrap();
        assert!(
            inner.settled.len() <= ENDED_MEMORY,
            "{}",
            inner.settled.len()
        );
        assert!(
            inner.released.len() <= ENDED_MEMORY,
            "{}",
            inner.released.len()
        );
        // A quarter goes at a time, not everything: most of the bound stays remembered.
        assert!(
            inner.settled.len() >= ENDED_MEMORY / 2,
            "{}",
            inner.settled.len()
        );
        drop(inner);
        // Nothing is held any more: every hold ended, and the money is exact.
        assert_eq!(holds.held("u"), 0);
        // The newest are remembered: a retried settle answers the first settlement, a
        // retried release is a no-op, a settle after release is refused.
        let last = total - 1;
        match holds.take_for_settle(&format!("s{last}")) {
            Err(Some(previous)) => {
                assert_eq!(previous.charged, 7);
                assert_eq!(previous.reservation_id, format!("s{last}"));
            }
            _ => panic!("the newest settlement is forgotten"),
        }
        assert_eq!(holds.release(&format!("r{last}")), Ok(true));
        assert!(matches!(
            holds.take_for_settle(&format!("r{last}")),
            Err(None)
        ));
        // The oldest are forgotten: the caller falls through to the ledger, whose unique
        // `settle:<id>` key refuses a second charge.
        assert!(matches!(holds.take_for_settle("s0"), Ok(None)));
        assert!(matches!(holds.take_for_settle("r0"), Ok(None)));
    }

    #[test]
    fn trimming_forgets_the_oldest_first() {
        let mut map: Map<i64> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        trim_to(&mut map, 30, |at| *at);
        assert_eq!(map.len(), 30);
        assert!((70..100).all(|i| map.contains_key(&format!("k{i}"))));
        trim_oldest(&mut map, 31, |at| *at);
        assert_eq!(map.len(), 30, "below its bound nothing is forgotten");
        trim_oldest(&mut map, 30, |at| *at);
        assert_eq!(map.len(), 22, "a full map loses its oldest quarter");
        assert!(map.contains_key("k99"));
        trim_to(&mut map, 0, |at| *at);
        assert!(map.is_empty());
    }

    fn hold_for(user: &str, expires_at: i64) -> MemHold {
        MemHold {
            user_id: user.into(),
            key: None,
            amount: 10,
            expires_at,
        }
    }
}
