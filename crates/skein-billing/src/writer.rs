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
use skein_db::{Db, DbError, DbResult};
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
    Credit(Credit),
    Redeem {
        user_id: String,
        code: String,
    },
    Open(String),
    Expire,
    /// Charge a hold that lived in memory.
    Charge {
        id: String,
        user_id: String,
        key_id: Option<String>,
        usage: Usage,
    },
}

/// What an operation produced.
#[derive(Debug)]
pub(crate) enum Done {
    Reservation(Reservation),
    Settlement(Settlement),
    Released,
    Balance(Option<i64>),
    Redeemed { amount: i64, balance: i64 },
    Count(u64),
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

async fn run(db: Db, rules: Rules, mut rx: mpsc::Receiver<Job>) {
    let mut hints: HashMap<String, HoldHint> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let ops: Vec<Op> = jobs.iter().map(|j| j.op.clone()).collect();
        match apply_all(&db, rules, &ops, &mut hints).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(Failed::BeforeCommit(error)) if ops.len() > 1 => {
                tracing::warn!(%error, batch = ops.len(), "billing batch failed; retrying one by one");
                for job in jobs {
                    let result = match apply_all(
                        &db,
                        rules,
                        std::slice::from_ref(&job.op),
                        &mut hints,
                    )
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
            Failed::BeforeCommit(error) => error.into(),
            Failed::Commit(error) => {
                tracing::error!(%error, "billing commit failed; outcome unknown, not retried");
                ApiError::unavailable("billing")
            }
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
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Reserve(req)
                if req.key.is_none()
                    && (1..=ledger::MAX_AMOUNT).contains(&req.amount)
                    && users_seen.insert(req.user_id.as_str()) =>
            {
                fast_reserves.push(ledger::FastReserve { index, req });
            }
            Op::Settle(id, usage)
                if (0..=ledger::MAX_AMOUNT).contains(&usage.cost)
                    && ids_seen.insert(id.as_str()) =>
            {
                if let Some(hint) = hints.get(id).filter(|h| h.key_id.is_none()) {
                    fast_settles.push(ledger::FastSettle {
                        index,
                        id,
                        usage,
                        hint,
                    });
                }
            }
            _ => {}
        }
    }
    for (index, settlement) in
        ledger::settle_many(&mut tx, &mut pending, &fast_settles, now).await?
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
    pending
        .flush(&mut tx, db.backend() == skein_db::Backend::Sqlite)
        .await?;
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
        Op::Settle(id, usage) => ledger::settle(tx, pending, hints.get(id), id, usage, now)
            .await?
            .map(Done::Settlement),
        Op::Release(id) => ledger::release(tx, id, "released", now)
            .await?
            .map(|_| Done::Released),
        Op::Credit(credit) => ledger::credit(tx, credit, rules, now)
            .await?
            .map(Done::Balance),
        Op::Redeem { user_id, code } => ledger::redeem(tx, user_id, code, rules, now)
            .await?
            .map(|(amount, balance)| Done::Redeemed { amount, balance }),
        Op::Open(user_id) => {
            ledger::open_account(tx, user_id, rules, now).await?;
            Ok(Done::Balance(None))
        }
        Op::Expire => Ok(Done::Count(ledger::expire(tx, now).await?)),
        Op::Charge {
            id,
            user_id,
            key_id,
            usage,
        } => ledger::charge_direct(tx, pending, id, user_id, key_id.as_deref(), usage, now)
            .await?
            .map(Done::Settlement),
    })
}
