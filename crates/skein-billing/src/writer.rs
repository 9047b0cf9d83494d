//! Group commit: every money-changing operation of this process goes through one task that
//! runs whatever is queued (up to [`MAX_BATCH`]) in a single transaction and answers each
//! caller only after that transaction commits.
//!
//! Why: a settled charge must be durable before its caller hears "settled" (nothing settled
//! is ever lost), and one commit per request would cap throughput at the disk's commit rate;
//! one commit per batch keeps both. On SQLite it also keeps all writers off the busy-wait
//! path. If a batch hits a database error it is rolled back and its operations are retried
//! one by one, so one bad operation cannot fail its neighbours.

use std::collections::HashMap;

use skein_core::api::{Reservation, ReserveRequest, Settlement, Usage};
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbError, DbResult, sqlx};
use tokio::sync::{mpsc, oneshot};

use crate::ledger::{self, Credit, HoldHint, Pending, Rules, Tx};

/// Most holds remembered for fast settles; past this the memory starts over (settles then
/// read the reservation back, which is only slower).
const MAX_HINTS: usize = 200_000;

/// Most operations in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// A money-changing operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Reserve(ReserveRequest),
    Settle(String, Usage),
    Release(String),
    /// Push an open hold's expiry a full TTL from now.
    Renew(String),
    Credit(Credit),
    Redeem {
        user_id: String,
        code: String,
    },
    /// With the signup grant in effect when the user registered (a system setting).
    Open(String, i64),
    Expire,
    /// Mark a top-up order paid and credit it, in one transaction.
    PayOrder(crate::payment::Paid),
    /// Insert an order (under the user's cap of pending orders), claiming its coupon, if
    /// any, in the same transaction.
    PlaceOrder {
        order: crate::payment::Order,
        coupon: Option<String>,
        max_pending: i64,
    },
    /// Record a refund and debit its quota, with the order locked.
    StartRefund(crate::payment::refund::NewRefund),
    /// Apply a provider's word about a refund (a failure credits the quota back).
    FinishRefund {
        id: String,
        outcome: crate::payment::refund::RefundOutcome,
    },
    /// Grant the subscription periods that have begun, and expire the ones that ended.
    GrantSubscriptions,
    /// Charge a hold that lived in memory: `amount` is what it held, `cap` the most the
    /// memory allows charging (the hold, and beyond it down to the overdraft).
    Charge {
        id: String,
        user_id: String,
        key_id: Option<String>,
        usage: Usage,
        amount: i64,
        cap: i64,
    },
}

/// What an operation produced.
#[derive(Debug)]
pub(crate) enum Done {
    Reservation(Reservation),
    Settlement(Settlement),
    Released,
    Renewed,
    Balance(Option<i64>),
    Redeemed {
        amount: i64,
        balance: i64,
    },
    Count(u64),
    Paid {
        applied: crate::payment::Applied,
        user_id: Option<String>,
    },
    Placed(Box<crate::payment::Order>),
    RefundStarted(Box<crate::payment::refund::Refund>, bool),
    RefundFinished(Box<Option<crate::payment::refund::Refund>>),
    /// The users a subscription tick granted quota to, and those whose subscription ended.
    Granted(Vec<String>, Vec<String>),
}

pub(crate) struct Job {
    pub op: Op,
    pub reply: oneshot::Sender<ApiResult<Done>>,
}

/// The handle callers use; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task over `db`.
    pub fn start(db: Db, rules: Rules) -> Writer {
        let (jobs, rx) = mpsc::channel(8192);
        tokio::spawn(run(db, rules, rx));
        Writer { jobs }
    }

    /// Queues an operation and waits until it is committed (or refused).
    pub async fn submit(&self, op: Op) -> ApiResult<Done> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| ApiError::unavailable("billing writer"))?;
        answer
            .await
            .map_err(|_| ApiError::unavailable("billing writer"))?
    }
}

/// Operations per committed batch: how well the writer groups its commits under load.
static BATCH_SIZE: skein_core::metrics::Histogram = skein_core::metrics::Histogram::new(
    "skein_billing_batch_operations",
    "Operations the billing writer ran in one transaction.",
    &[],
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
);

/// How long a batch of settles may wait for more to join it while settles keep coming (see
/// [`gather`]).
const GATHER: std::time::Duration = std::time::Duration::from_millis(2);

impl Op {
    /// Whether nobody waits on this operation to answer a client: a settle or charge runs
    /// after its answer was sent, so it may wait a moment for others to share its commit.
    fn can_wait(&self) -> bool {
        matches!(self, Op::Settle(..) | Op::Charge { .. })
    }
}

/// Moves whatever is queued into `jobs`, up to [`MAX_BATCH`].
fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Lets a batch of settles wait up to [`GATHER`] for more to join it. Every commit writes
/// the pages it touched (the accounts, the ledger's and usage records' last pages and their
/// indexes) however few rows changed, and each batch costs a fixed round of statements: at
/// thousands of settles a second the batches were a handful each, and the writes per request
/// showed in the profile. Only when the last batch had company (settles are arriving
/// faster than they commit), and only while every job in it is one no client waits on; an
/// operation someone waits on (a hold, a top-up) ends the wait at once.
async fn gather(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    if !jobs.iter().all(|job| job.op.can_wait()) {
        return;
    }
    let deadline = tokio::time::Instant::now() + GATHER;
    while jobs.len() < MAX_BATCH {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(job)) => {
                let urgent = !job.op.can_wait();
                jobs.push(job);
                drain(rx, jobs);
                if urgent {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// The next batch: the first job to arrive and whatever is queued behind it, gathered for up
/// to [`GATHER`] when the previous batch had company (`busy`); `None` once every sender is gone.
async fn next_batch(rx: &mut mpsc::Receiver<Job>, busy: bool) -> Option<Vec<Job>> {
    let mut jobs = vec![rx.recv().await?];
    drain(rx, &mut jobs);
    if busy {
        gather(rx, &mut jobs).await;
    }
    Some(jobs)
}

async fn run(db: Db, rules: Rules, mut rx: mpsc::Receiver<Job>) {
    let mut hints: HashMap<String, HoldHint> = HashMap::new();
    let mut busy = false;
    while let Some(jobs) = next_batch(&mut rx, busy).await {
        busy = jobs.len() > 1;
        BATCH_SIZE.observe(&[], jobs.len() as f64);
        let ops: Vec<Op> = jobs.iter().map(|j| j.op.clone()).collect();
        match apply_retrying(&db, rules, &ops, &mut hints).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            // A bad operation fails its batch: run them one by one so it fails alone. A
            // database that stayed busy through every retry would fail each of them too (and
            // take as long again per operation), so that is answered at once below.
            Err(Failed::BeforeCommit(error)) if ops.len() > 1 && !is_transient(&error) => {
                tracing::warn!(%error, batch = ops.len(), "billing batch failed; retrying one by one");
                for job in jobs {
                    let result =
                        match apply_retrying(&db, rules, std::slice::from_ref(&job.op), &mut hints)
                            .await
                        {
                            Ok(mut results) => results
                                .pop()
                                .unwrap_or_else(|| Err(ApiError::internal("empty batch"))),
                            Err(failed) => Err(failed.into()),
                        };
                    let _ = job.reply.send(result);
                }
            }
            Err(failed) => {
                let error = ApiError::from(failed);
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
    tracing::debug!("billing writer stopped");
}

/// Why a batch did not commit. A failure before `COMMIT` rolled everything back, so the
/// operations may safely run again; a failed `COMMIT` has an unknown outcome (the database
/// may have applied it), so running them again could charge or credit twice.
enum Failed {
    BeforeCommit(DbError),
    Commit(DbError),
}

impl From<DbError> for Failed {
    fn from(error: DbError) -> Self {
        Failed::BeforeCommit(error)
    }
}

impl From<Failed> for ApiError {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::BeforeCommit(error) if is_transient(&error) => {
                tracing::error!(%error, "billing database busy or unreachable through every retry");
                ApiError::unavailable("billing")
            }
            Failed::BeforeCommit(error) => error.into(),
            Failed::Commit(error) => {
                tracing::error!(%error, "billing commit failed; outcome unknown, not retried");
                ApiError::unavailable("billing")
            }
        }
    }
}

/// Most tries of one batch that meets a busy or unreachable database: with [`retry_delay`]
/// about half a minute in all, long enough to ride out a lock held by an import or a
/// PostgreSQL restart, short enough that callers hear an answer.
const MAX_TRIES: u32 = 20;

/// How long to wait before try `attempt` + 1 (`attempt` counts from 1), or `None` to give up:
/// doubling from 10 ms to at most 2 s.
pub(crate) fn retry_delay(attempt: u32) -> Option<std::time::Duration> {
    (attempt < MAX_TRIES).then(|| {
        let ms = 10u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
        std::time::Duration::from_millis(ms.min(2_000))
    })
}

/// Whether a database error says "try again later" rather than "this operation is wrong":
/// SQLite busy or locked, a PostgreSQL serialization failure or deadlock, a lost or refused
/// connection, an exhausted pool. Such a batch rolled back whole, so running it again is safe.
pub(crate) fn is_transient(error: &DbError) -> bool {
    let DbError::Sqlx(error) = error else {
        return false;
    };
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let message = db.message().to_ascii_lowercase();
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED and their extended codes (x + 256 n).
            let sqlite_busy = code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            // PostgreSQL: 40001 serialization_failure, 40P01 deadlock, class 08 connection
            // exceptions, 57P01..03 shutdown / cannot connect now, 53300 too many connections.
            let pg_transient = code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300");
            sqlite_busy
                || pg_transient
                || message.contains("database is locked")
                || message.contains("database is busy")
        }
        _ => false,
    }
}

/// [`apply_all`], tried again with backoff while the database is busy or unreachable, so a
/// settle or credit that meets a lock waits instead of being lost.
async fn apply_retrying(
    db: &Db,
    rules: Rules,
    ops: &[Op],
    hints: &mut HashMap<String, HoldHint>,
) -> Result<Vec<ApiResult<Done>>, Failed> {
    let mut attempt = 1;
    loop {
        match apply_all(db, rules, ops, hints).await {
            Err(Failed::BeforeCommit(error)) if is_transient(&error) => {
                let Some(delay) = retry_delay(attempt) else {
                    return Err(Failed::BeforeCommit(error));
                };
                tracing::warn!(%error, attempt, batch = ops.len(), "billing database busy; trying the batch again");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn apply_all(
    db: &Db,
    rules: Rules,
    ops: &[Op],
    hints: &mut HashMap<String, HoldHint>,
) -> Result<Vec<ApiResult<Done>>, Failed> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let mut pending = Pending::default();
    let mut results: Vec<Option<ApiResult<Done>>> = ops.iter().map(|_| None).collect();

    // Plain reserves and settles (no key, distinct users / ids, a remembered hold) share a
    // few multi-row statements; everything else runs one by one below, in batch order.
    let mut users_seen = std::collections::HashSet::new();
    // A settle whose reservation is also released in this batch runs in batch order.
    let mut ids_seen: std::collections::HashSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Release(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let mut fast_reserves = Vec::new();
    let mut fast_settles = Vec::new();
    // In-memory holds are SQLite's; their charges share three statements (`charge_many`).
    let sqlite = db.backend() == skein_db::Backend::Sqlite;
    let mut fast_charges = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Reserve(req)
                if req.key.is_none()
                    && ledger::check_reserve(req).is_ok()
                    && users_seen.insert(req.user_id.as_str()) =>
            {
                fast_reserves.push(ledger::FastReserve { index, req });
            }
            Op::Settle(id, usage)
                if (0..=ledger::MAX_AMOUNT).contains(&usage.cost)
                    && ids_seen.insert(id.as_str()) =>
            {
                // A cost beyond its hold may be capped by the overdraft, which the batched
                // sums do not do; it runs one by one.
                if let Some(hint) = hints
                    .get(id)
                    .filter(|h| h.key_id.is_none() && usage.cost <= h.amount)
                {
                    fast_settles.push(ledger::FastSettle {
                        index,
                        id,
                        usage,
                        hint,
                    });
                }
            }
            Op::Charge {
                id,
                user_id,
                key_id,
                usage,
                amount,
                cap,
            } if sqlite
                && (0..=ledger::MAX_AMOUNT).contains(&usage.cost)
                && ids_seen.insert(id.as_str()) =>
            {
                fast_charges.push(ledger::FastCharge {
                    index,
                    id,
                    user_id,
                    key_id: key_id.as_deref(),
                    usage,
                    amount: *amount,
                    cap: *cap,
                });
            }
            _ => {}
        }
    }
    for (index, settlement) in
        ledger::settle_many(&mut tx, &mut pending, &fast_settles, now).await?
    {
        results[index] = Some(Ok(Done::Settlement(settlement)));
    }
    for (index, settlement) in
        ledger::charge_many(&mut tx, &mut pending, &fast_charges, now).await?
    {
        results[index] = Some(Ok(Done::Settlement(settlement)));
    }
    for (index, reservation) in
        ledger::reserve_many(&mut tx, &mut pending, &fast_reserves, rules, now).await?
    {
        results[index] = Some(Ok(Done::Reservation(reservation)));
    }
    for (op, slot) in ops.iter().zip(results.iter_mut()) {
        if slot.is_none() {
            *slot = Some(apply(&mut tx, &mut pending, hints, op, rules, now).await?);
        }
    }
    let results: Vec<ApiResult<Done>> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::internal("operation left unanswered"))))
        .collect();
    pending.flush(&mut tx, db.backend()).await?;
    tx.commit()
        .await
        .map_err(|e| Failed::Commit(DbError::from(e)))?;
    // Remember new holds only once they are committed.
    if hints.len() > MAX_HINTS {
        hints.clear();
    }
    for (op, result) in ops.iter().zip(&results) {
        match (op, result) {
            (Op::Reserve(req), Ok(Done::Reservation(r))) => {
                let hint = HoldHint {
                    user_id: req.user_id.clone(),
                    key_id: req.key.as_ref().map(|k| k.key_id.clone()),
                    amount: r.amount,
                };
                hints.insert(r.id.clone(), hint);
            }
            (Op::Settle(id, _) | Op::Release(id), _) => {
                hints.remove(id);
            }
            _ => {}
        }
    }
    Ok(results)
}

async fn apply(
    tx: &mut Tx,
    pending: &mut Pending,
    hints: &HashMap<String, HoldHint>,
    op: &Op,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<Done>> {
    Ok(match op {
        Op::Reserve(req) => ledger::reserve(tx, pending, req, rules, now)
            .await?
            .map(Done::Reservation),
        Op::Settle(id, usage) => ledger::settle(tx, pending, hints.get(id), id, usage, rules, now)
            .await?
            .map(Done::Settlement),
        Op::Renew(id) => ledger::renew(tx, id, rules, now)
            .await?
            .map(|()| Done::Renewed),
        Op::Release(id) => ledger::release(tx, id, ledger::HoldStatus::Released, now)
            .await?
            .map(|_| Done::Released),
        Op::Credit(credit) => ledger::credit(tx, credit, rules, now)
            .await?
            .map(Done::Balance),
        Op::Redeem { user_id, code } => ledger::redeem(tx, user_id, code, rules, now)
            .await?
            .map(|(amount, balance)| Done::Redeemed { amount, balance }),
        Op::Open(user_id, signup_grant) => {
            let rules = Rules {
                signup_grant: *signup_grant,
                ..rules
            };
            ledger::open_account(tx, user_id, rules, now).await?;
            Ok(Done::Balance(None))
        }
        Op::Expire => Ok(Done::Count(ledger::expire(tx, now).await?)),
        Op::PayOrder(paid) => crate::payment::store::pay(tx, paid, rules, now)
            .await?
            .map(|(applied, user_id)| Done::Paid { applied, user_id }),
        Op::PlaceOrder {
            order,
            coupon,
            max_pending,
        } => crate::payment::store::place(tx, order, coupon.as_deref(), *max_pending, rules, now)
            .await?
            .map(|placed| Done::Placed(Box::new(placed))),
        Op::StartRefund(new) => crate::payment::refund::start(tx, new, rules, now)
            .await?
            .map(|(refund, created)| Done::RefundStarted(Box::new(refund), created)),
        Op::FinishRefund { id, outcome } => {
            crate::payment::refund::finish(tx, id, outcome, rules, now)
                .await?
                .map(|after| Done::RefundFinished(Box::new(after)))
        }
        Op::GrantSubscriptions => crate::payment::plan::grant_due(tx, rules, now)
            .await?
            .map(|(granted, ended)| Done::Granted(granted, ended)),
        Op::Charge {
            id,
            user_id,
            key_id,
            usage,
            amount,
            cap,
        } => ledger::charge_direct(
            tx,
            pending,
            id,
            user_id,
            key_id.as_deref(),
            usage,
            *amount,
            *cap,
            rules,
            now,
        )
        .await?
        .map(Done::Settlement),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use skein_db::sqlx::{Connection, Executor};

    use super::*;

    /// A job for the batching tests: its answer is never read.
    fn job(op: Op) -> Job {
        Job {
            op,
            reply: oneshot::channel().0,
        }
    }

    fn settle(id: &str) -> Job {
        job(Op::Settle(id.into(), Usage::default()))
    }

    /// Sends each job at its offset (ms) from now, on tokio's clock.
    fn send_at(tx: mpsc::Sender<Job>, plan: Vec<(u64, Job)>) {
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (ms, job) in plan {
                tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
                let _ = tx.send(job).await;
            }
        });
    }

    fn ids(jobs: &[Job]) -> Vec<String> {
        jobs.iter()
            .map(|j| match &j.op {
                Op::Settle(id, _) | Op::Release(id) => id.clone(),
                _ => String::new(),
            })
            .collect()
    }

    // Offsets are whole milliseconds: tokio's timers tick by the millisecond (GATHER is 2).

    #[tokio::test(start_paused = true)]
    async fn a_quiet_writer_commits_a_lone_settle_at_once() {
        let (tx, mut rx) = mpsc::channel(16);
        send_at(tx, vec![(0, settle("a")), (1, settle("b"))]);
        let start = tokio::time::Instant::now();
        let batch = next_batch(&mut rx, false).await.unwrap();
        assert_eq!(ids(&batch), ["a"]);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no wait when the last batch was alone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_writer_gathers_settles_for_two_milliseconds() {
        let (tx, mut rx) = mpsc::channel(16);
        send_at(
            tx,
            vec![(0, settle("a")), (1, settle("b")), (3, settle("c"))],
        );
        let start = tokio::time::Instant::now();
        let batch = next_batch(&mut rx, true).await.unwrap();
        assert_eq!(ids(&batch), ["a", "b"], "c came after the window");
        assert_eq!(start.elapsed(), GATHER);
        let next = next_batch(&mut rx, true).await.unwrap();
        assert_eq!(ids(&next), ["c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_operation_someone_waits_on_ends_the_gathering_at_once() {
        let (tx, mut rx) = mpsc::channel(16);
        send_at(
            tx,
            vec![
                (0, settle("a")),
                (1, job(Op::Release("r".into()))),
                (2, settle("b")),
            ],
        );
        let start = tokio::time::Instant::now();
        let batch = next_batch(&mut rx, true).await.unwrap();
        assert_eq!(ids(&batch), ["a", "r"]);
        assert_eq!(start.elapsed(), Duration::from_millis(1));
        // And a batch that starts with one is never held back.
        let (tx, mut rx) = mpsc::channel(16);
        send_at(
            tx,
            vec![(0, job(Op::Release("r".into()))), (1, settle("b"))],
        );
        let start = tokio::time::Instant::now();
        let batch = next_batch(&mut rx, true).await.unwrap();
        assert_eq!(ids(&batch), ["r"]);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    fn sqlite_url(dir: &tempfile::TempDir) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("billing.db").display()
        )
    }

    #[test]
    fn backoff_doubles_to_a_ceiling_and_gives_up() {
        assert_eq!(retry_delay(1), Some(Duration::from_millis(10)));
        assert_eq!(retry_delay(2), Some(Duration::from_millis(20)));
        assert_eq!(retry_delay(5), Some(Duration::from_millis(160)));
        assert_eq!(retry_delay(12), Some(Duration::from_millis(2_000)));
        assert_eq!(retry_delay(MAX_TRIES), None);
        let total: Duration = (1..MAX_TRIES).filter_map(retry_delay).sum();
        assert!(
            (Duration::from_secs(20)..Duration::from_secs(60)).contains(&total),
            "{total:?}"
        );
    }

    #[tokio::test]
    async fn busy_and_unreachable_databases_are_retried_but_bad_operations_are_not() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        other
            .execute("PRAGMA busy_timeout = 0; CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let busy = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
        assert!(is_transient(&DbError::from(busy)), "SQLite busy");
        holder.execute("ROLLBACK").await.unwrap();

        other
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap();
        let duplicate = other
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap_err();
        assert!(
            !is_transient(&DbError::from(duplicate)),
            "a constraint violation is the operation's fault"
        );
        assert!(is_transient(&DbError::from(sqlx::Error::PoolTimedOut)));
        assert!(is_transient(&DbError::from(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset)
        ))));
        assert!(!is_transient(&DbError::from(sqlx::Error::RowNotFound)));
    }

    /// A credit that meets a database locked by someone else for longer than SQLite's busy
    /// timeout (10 s) is not lost: the writer tries again until the lock goes, then commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_credit_that_meets_a_locked_database_waits_and_lands() {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        let rules = Rules {
            signup_grant: 0,
            overdraft: 0,
            reservation_ttl_ms: 60_000,
        };
        let writer = Writer::start(db.clone(), rules);
        let credit = |key: &str| {
            Op::Credit(Credit {
                user_id: "u1".into(),
                kind: "topup",
                amount: 100,
                reference: None,
                actor_id: None,
                memo: None,
                idempotency_key: Some(key.to_string()),
            })
        };
        assert!(matches!(
            writer.submit(credit("first")).await,
            Ok(Done::Balance(Some(100)))
        ));

        // Someone else (an import, a backup) holds the write lock for 11 s.
        let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let started = Instant::now();
        let pending = tokio::spawn({
            let writer = writer.clone();
            async move { writer.submit(credit("second")).await }
        });
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(!pending.is_finished(), "answered while the lock was held");
        holder.execute("ROLLBACK").await.unwrap();
        let done = pending.await.unwrap();
        assert!(
            matches!(done, Ok(Done::Balance(Some(200)))),
            "after {:?}: {done:?}",
            started.elapsed()
        );
        let drift = crate::query::verify(&db).await.unwrap();
        assert!(drift.is_empty(), "{drift:?}");
    }

    /// Charges of in-memory holds that arrive together share a batch: every one is charged
    /// exactly once, capped where the memory said so, each ledger entry's balance and number
    /// follow from the ones before it, and the keys' use adds up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn charges_batched_together_keep_the_ledger_exact() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(&dir), 2).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        let rules = Rules {
            signup_grant: 0,
            overdraft: 0,
            reservation_ttl_ms: 60_000,
        };
        let writer = Writer::start(db.clone(), rules);
        for user in ["u1", "u2"] {
            let credit = Op::Credit(Credit {
                user_id: user.into(),
                kind: "topup",
                amount: 1_000_000,
                reference: None,
                actor_id: None,
                memo: None,
                idempotency_key: Some(format!("grant:{user}")),
            });
            assert!(matches!(
                writer.submit(credit).await,
                Ok(Done::Balance(Some(1_000_000)))
            ));
        }
        // 200 charges at once over two users and three keys (one with no key); every tenth
        // costs more than its hold and the memory capped it; one costs nothing.
        let charges: Vec<(String, &str, Option<&str>, i64, i64)> = (0..200)
            .map(|i| {
                let user = if i % 2 == 0 { "u1" } else { "u2" };
                let key = match i % 3 {
                    0 => None,
                    1 => Some(if user == "u1" { "k1" } else { "k2" }),
                    _ => Some(if user == "u1" { "k3" } else { "k4" }),
                };
                let cost = if i == 7 { 0 } else { 100 + i };
                let cap = if i % 10 == 0 { 50 } else { cost };
                (format!("hold-{i}"), user, key, cost, cap)
            })
            .collect();
        let answers =
            futures::future::join_all(charges.iter().map(|(id, user, key, cost, cap)| {
                writer.submit(Op::Charge {
                    id: id.clone(),
                    user_id: (*user).to_string(),
                    key_id: key.map(str::to_string),
                    usage: Usage {
                        cost: *cost,
                        model: "m".into(),
                        ..Usage::default()
                    },
                    amount: 100,
                    cap: *cap,
                })
            }))
            .await;
        let mut charged_by_user: HashMap<&str, i64> = HashMap::new();
        let mut charged_by_key: HashMap<&str, i64> = HashMap::new();
        for ((_, user, key, cost, cap), answer) in charges.iter().zip(answers) {
            let Ok(Done::Settlement(s)) = answer else {
                panic!("{answer:?}")
            };
            let expected = (*cost).min(*cap);
            assert_eq!(
                (s.charged, s.uncollected, s.overrun),
                (expected, cost - expected, (cost - 100).max(0))
            );
            *charged_by_user.entry(user).or_default() += expected;
            if let Some(key) = key {
                *charged_by_key.entry(key).or_default() += expected;
            }
        }
        for (user, charged) in &charged_by_user {
            let (balance, used, seq): (i64, i64, i64) = sqlx::query_as(
                "SELECT balance, used, seq FROM billing_accounts WHERE user_id = $1",
            )
            .bind(*user)
            .fetch_one(db.pool())
            .await
            .unwrap();
            // One entry for the grant and one per charge of more than nothing.
            let entries = 1 + charges.iter().filter(|c| c.1 == *user && c.3 > 0).count() as i64;
            assert_eq!(
                (balance, used, seq),
                (1_000_000 - charged, *charged, entries),
                "{user}"
            );
        }
        for (key, charged) in &charged_by_key {
            let (used,): (i64,) = sqlx::query_as("SELECT used FROM key_quotas WHERE key_id = $1")
                .bind(*key)
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(used, *charged, "{key}");
        }
        let (records,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM usage_records")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(records, 200);
        // The chain of balances and numbers, per user, as `skein billing verify` checks it.
        let drift = crate::query::verify(&db).await.unwrap();
        assert!(drift.is_empty(), "{drift:?}");
        // A second charge of a hold already charged fails alone, charging nothing more.
        let again = writer
            .submit(Op::Charge {
                id: "hold-1".into(),
                user_id: "u2".into(),
                key_id: None,
                usage: Usage {
                    cost: 5,
                    ..Usage::default()
                },
                amount: 100,
                cap: 5,
            })
            .await;
        assert!(again.is_err(), "{again:?}");
        assert!(crate::query::verify(&db).await.unwrap().is_empty());
    }
}
