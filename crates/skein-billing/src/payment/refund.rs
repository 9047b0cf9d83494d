//! Refunds of paid orders, started by an admin: full or partial, through the provider's
//! refund API (Stripe, Alipay, WeChat Pay) or recorded by hand (EPay, whose protocol has no
//! refund call, or money returned outside Skein).
//!
//! Exactness: [`start`] runs in the writer's transaction with the order row locked (a no-op
//! `UPDATE`, PostgreSQL's row lock until commit; the writer holds SQLite), reads what was
//! refunded already, and inserts the refund together with its ledger debit (key
//! `refund:<id>`): concurrent clicks, on one instance or many, can never refund more than
//! was paid, and each refund debits the balance once. The provider is called after that
//! commit, with the refund id as its idempotency key (Stripe's `Idempotency-Key`, Alipay's
//! `out_request_no`, WeChat Pay's `out_refund_no`), so asking again after a lost answer
//! refunds nothing twice. A refund the provider turns down is credited back once
//! (`refund_reversal:<id>`).
//!
//! The order's state follows its refunds that did not fail (pending or succeeded):
//! `partially_refunded` while they cover part of it, `refunded` once they cover all of it,
//! and back (to `paid` when none is left) when the provider turns one down.
//!
//! A plan order pays for one period of its subscription, so refunding it takes that period
//! off, in whole periods: only the refund that completes the order's refund does; parts
//! before it give money back and change neither the subscription nor the balance (a
//! goodwill refund). The period taken off is, in this order:
//! 1. a paid period that has not begun (renewed ahead): `paid_periods` drops by one and
//!    nothing is debited, since its quota was never granted — so it never will be;
//! 2. else, while the subscription is active, the period in progress: its grant is debited
//!    (the amount of its ledger entry) and the subscription ends now as `refunded`;
//! 3. else (the subscription already ended, the period was used): the order's quota is
//!    debited, as for a top-up.
//!
//! The subscription's row is locked before it is read, and the scheduler's grant moves a
//! period only while `paid_periods` is still above it, so a refund racing a period grant on
//! another instance either removes the period before it is granted, or finds it granted and
//! takes the grant back: never both, never neither. A refund the provider turns down puts
//! the period back (and the subscription back to `active`; the scheduler grants what is
//! due and ends it if its time ran out).

use serde::Serialize;
use skein_core::ids::ms_to_rfc3339;
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use super::plan::SubscriptionStatus;
use super::{OrderStatus, ProviderName, format_minor};
use crate::ledger::{self, Credit, Rules, Tx};

/// A refund's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Sent to (or being sent to) the provider; the quota is already taken off.
    Pending,
    /// The money went back.
    Succeeded,
    /// The provider turned it down; the quota was credited back.
    Failed,
}

impl RefundStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<RefundStatus> {
        match text {
            "pending" => Some(RefundStatus::Pending),
            "succeeded" => Some(RefundStatus::Succeeded),
            "failed" => Some(RefundStatus::Failed),
            _ => None,
        }
    }
}

/// A refund as stored.
#[derive(Debug, Clone)]
pub(crate) struct Refund {
    pub id: String,
    pub order_id: String,
    pub user_id: String,
    pub provider: ProviderName,
    pub amount_minor: i64,
    pub quota: i64,
    pub status: RefundStatus,
    pub manual: bool,
    pub forced: bool,
    pub provider_ref: Option<String>,
    pub reason: String,
    pub note: Option<String>,
    pub actor_id: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub subscription_id: Option<String>,
    pub periods: i64,
    pub ended_subscription: bool,
}

/// A refund as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    /// Its id (the provider's `out_refund_no` / `out_request_no`, without dashes there).
    pub id: String,
    /// The order refunded.
    pub order_id: String,
    /// Whose order.
    pub user_id: String,
    /// The order's provider.
    pub provider: ProviderName,
    /// Money going back, in minor units.
    pub amount_minor: i64,
    /// The same as text (`"3.00"`).
    pub amount: String,
    /// Quota units taken off the balance for it.
    pub quota: i64,
    /// `pending`, `succeeded` or `failed`.
    pub status: RefundStatus,
    /// Recorded by an admin who returned the money outside Skein (no provider call).
    pub manual: bool,
    /// The admin let the debit take the balance below zero.
    pub forced: bool,
    /// The provider's refund id, once known.
    pub provider_ref: Option<String>,
    /// The admin's reason.
    pub reason: String,
    /// Why it failed, or what the provider said.
    pub note: Option<String>,
    /// The admin who made it.
    pub actor_id: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it succeeded or failed (RFC 3339).
    pub finished_at: Option<String>,
    /// For a plan order: the subscription it paid for.
    pub subscription_id: Option<String>,
    /// Paid periods the refund took off that subscription (0 or 1).
    pub periods: i64,
    /// The refund took back the period in progress and ended the subscription.
    pub ended_subscription: bool,
}

impl From<Refund> for RefundView {
    fn from(r: Refund) -> Self {
        RefundView {
            amount: format_minor(r.amount_minor),
            id: r.id,
            order_id: r.order_id,
            user_id: r.user_id,
            provider: r.provider,
            amount_minor: r.amount_minor,
            quota: r.quota,
            status: r.status,
            manual: r.manual,
            forced: r.forced,
            provider_ref: r.provider_ref,
            reason: r.reason,
            note: r.note,
            actor_id: r.actor_id,
            created_at: ms_to_rfc3339(r.created_at),
            finished_at: r.finished_at.map(ms_to_rfc3339),
            subscription_id: r.subscription_id,
            periods: r.periods,
            ended_subscription: r.ended_subscription,
        }
    }
}

/// What a provider says about a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefundOutcome {
    /// The money went back.
    Succeeded { provider_ref: Option<String> },
    /// Accepted, not finished yet (a notification or the reconciliation will tell).
    Pending { provider_ref: Option<String> },
    /// Turned down; the quota is credited back.
    Failed { reason: String },
}

/// A provider's notification about one of our refunds.
#[derive(Debug, Clone)]
pub(crate) struct RefundUpdate {
    /// Our refund id.
    pub refund_id: String,
    /// What it says.
    pub outcome: RefundOutcome,
}

/// A refund an admin asks for (checked for shape, not yet against the order).
#[derive(Debug, Clone)]
pub(crate) struct NewRefund {
    pub id: String,
    pub order_id: String,
    /// `None`: everything not refunded yet.
    pub amount_minor: Option<i64>,
    pub reason: String,
    pub force: bool,
    pub manual: bool,
    pub actor_id: String,
    pub request_key: Option<String>,
}

const COLUMNS: &str = "id, order_id, user_id, provider, amount_minor, quota, status, manual, forced, provider_ref, reason, note, actor_id, created_at, finished_at, subscription_id, periods, ended_subscription";

/// A row of `payment_refunds` as [`COLUMNS`] reads it.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    order_id: String,
    user_id: String,
    provider: String,
    amount_minor: i64,
    quota: i64,
    status: String,
    manual: i64,
    forced: i64,
    provider_ref: Option<String>,
    reason: String,
    note: Option<String>,
    actor_id: String,
    created_at: i64,
    finished_at: Option<i64>,
    subscription_id: Option<String>,
    periods: i64,
    ended_subscription: i64,
}

fn refund(row: Row) -> Option<Refund> {
    let (Some(provider), Some(status)) = (
        ProviderName::parse(&row.provider),
        RefundStatus::parse(&row.status),
    ) else {
        tracing::warn!(refund_id = %row.id, "a refund row with an unknown provider or status is skipped");
        return None;
    };
    Some(Refund {
        id: row.id,
        order_id: row.order_id,
        user_id: row.user_id,
        provider,
        amount_minor: row.amount_minor,
        quota: row.quota,
        status,
        manual: row.manual != 0,
        forced: row.forced != 0,
        provider_ref: row.provider_ref,
        reason: row.reason,
        note: row.note,
        actor_id: row.actor_id,
        created_at: row.created_at,
        finished_at: row.finished_at,
        subscription_id: row.subscription_id,
        periods: row.periods,
        ended_subscription: row.ended_subscription != 0,
    })
}

async fn by_id(conn: &mut sqlx::AnyConnection, id: &str) -> DbResult<Option<Refund>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_refunds WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(refund))
}

/// One refund.
pub(crate) async fn get(db: &Db, id: &str) -> DbResult<Option<Refund>> {
    let mut conn = db.pool().acquire().await?;
    by_id(&mut conn, id).await
}

/// A page of refunds, newest first, optionally of one order and one status; and the total.
pub(crate) async fn list(
    db: &Db,
    order_id: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<Refund>, i64)> {
    let filter = "($1 = '' OR order_id = $1) AND ($2 = '' OR status = $2)";
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_refunds WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(order_id)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM payment_refunds WHERE {filter}"
    ))
    .bind(order_id)
    .bind(status)
    .fetch_one(db.pool())
    .await?;
    Ok((rows.into_iter().filter_map(refund).collect(), total))
}

/// Pending refunds made before `before` (ms), oldest first: the reconciliation asks their
/// providers again.
pub(crate) async fn pending_before(db: &Db, before: i64, limit: i64) -> DbResult<Vec<Refund>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payment_refunds WHERE status = 'pending' AND manual = 0 AND created_at < $1 ORDER BY created_at LIMIT $2"
    ))
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().filter_map(refund).collect())
}

fn not_refundable(status: &str) -> ApiError {
    ApiError::conflict(
        "order_not_refundable",
        format!("Only a paid order can be refunded; this one is {status}."),
        format!("只有已支付的订单可以退款；该订单状态为 {status}。"),
    )
}

fn fully_refunded() -> ApiError {
    ApiError::conflict(
        "already_refunded",
        "This order has been refunded in full already.",
        "该订单已全额退款。",
    )
}

/// What refunding a plan order did to its subscription.
#[derive(Debug, Default)]
struct PlanEffect {
    /// Quota to debit.
    quota: i64,
    /// Paid periods taken off.
    periods: i64,
    /// The subscription ended now (`refunded`).
    ended: bool,
}

/// Which period refunding a plan order whose quota was `order_quota` takes off subscription
/// `id`, and what it debits (the cases are in the module's note), with the subscription's
/// row locked until commit. Writes nothing: [`take_period`] does, once the debit is in (a
/// refused debit must leave the subscription as it was, and the writer commits its batch
/// with the refusal in it).
async fn plan_effect(tx: &mut Tx, id: &str, order_quota: i64) -> DbResult<PlanEffect> {
    sqlx::query("UPDATE subscriptions SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let found: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT status, paid_periods, granted_periods FROM subscriptions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((_, paid, granted)) = found.filter(|(status, paid, _)| {
        SubscriptionStatus::from(status.clone()) == SubscriptionStatus::Active && *paid > 0
    }) else {
        // Ended already: the period was had in full, so the quota goes as for a top-up.
        return Ok(PlanEffect {
            quota: order_quota,
            ..PlanEffect::default()
        });
    };
    if paid > granted {
        // A period paid ahead and not begun: it goes, and its quota was never granted.
        return Ok(PlanEffect {
            quota: 0,
            periods: 1,
            ended: false,
        });
    }
    // Every paid period was granted: the one in progress goes, with its grant.
    let (grant,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE idempotency_key = $1",
    )
    .bind(format!("subscription:{id}:{}", granted - 1))
    .fetch_one(&mut **tx)
    .await?;
    Ok(PlanEffect {
        quota: grant.max(0),
        periods: 1,
        ended: true,
    })
}

/// Takes the period [`plan_effect`] chose off subscription `id`.
async fn take_period(tx: &mut Tx, id: &str, effect: &PlanEffect, now: i64) -> DbResult<()> {
    if effect.periods == 0 {
        return Ok(());
    }
    let status = if effect.ended {
        SubscriptionStatus::Refunded
    } else {
        SubscriptionStatus::Active
    };
    sqlx::query(
        "UPDATE subscriptions SET paid_periods = paid_periods - $2, status = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(effect.periods)
    .bind(status.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets an order's state from its refunds that did not fail: `paid`, `partially_refunded`
/// or `refunded`. Only a paid order moves.
async fn set_order_state(tx: &mut Tx, order_id: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE payment_orders SET status = CASE \
           WHEN (SELECT COALESCE(SUM(r.amount_minor), 0) FROM payment_refunds r WHERE r.order_id = payment_orders.id AND r.status <> 'failed') >= amount_minor THEN 'refunded' \
           WHEN (SELECT COUNT(*) FROM payment_refunds r WHERE r.order_id = payment_orders.id AND r.status <> 'failed') > 0 THEN 'partially_refunded' \
           ELSE 'paid' END, updated_at = $2 \
         WHERE id = $1 AND status IN ('paid', 'partially_refunded', 'refunded')",
    )
    .bind(order_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a refund and takes its quota off the balance, in the writer's transaction (see
/// the module's note); answers the refund and whether it was made now (`false`: the admin's
/// Idempotency-Key named an earlier one).
pub(crate) async fn start(
    tx: &mut Tx,
    new: &NewRefund,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<(Refund, bool)>> {
    if let Some(key) = &new.request_key {
        let earlier: Option<(String,)> =
            sqlx::query_as("SELECT id FROM payment_refunds WHERE request_key = $1")
                .bind(key)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some((id,)) = earlier {
            return Ok(match by_id(tx, &id).await? {
                Some(found) if found.order_id == new.order_id => Ok((found, false)),
                _ => Err(ApiError::conflict(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for another refund.",
                    "该 Idempotency-Key 已用于另一笔退款。",
                )),
            });
        }
    }
    // Lock the order until commit: concurrent refunds of it queue here.
    let locked = sqlx::query("UPDATE payment_orders SET updated_at = updated_at WHERE id = $1")
        .bind(&new.order_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() != 1 {
        return Ok(Err(ApiError::not_found("order", "订单")));
    }
    let (user_id, provider, status, amount_minor, quota, plan_id, subscription_id): (
        String,
        String,
        String,
        i64,
        i64,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT user_id, provider, status, amount_minor, quota, plan_id, subscription_id FROM payment_orders WHERE id = $1",
    )
    .bind(&new.order_id)
    .fetch_one(&mut **tx)
    .await?;
    match OrderStatus::parse(&status) {
        Some(OrderStatus::Paid | OrderStatus::PartiallyRefunded) => {}
        Some(OrderStatus::Refunded) => return Ok(Err(fully_refunded())),
        _ => return Ok(Err(not_refundable(&status))),
    }
    let (refunded, refunded_quota): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT), CAST(COALESCE(SUM(quota), 0) AS BIGINT) \
         FROM payment_refunds WHERE order_id = $1 AND status <> 'failed'",
    )
    .bind(&new.order_id)
    .fetch_one(&mut **tx)
    .await?;
    let remaining = amount_minor - refunded;
    if remaining <= 0 {
        return Ok(Err(fully_refunded()));
    }
    let amount = new.amount_minor.unwrap_or(remaining);
    if amount > remaining {
        return Ok(Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "refund_exceeds_order",
            format!(
                "At most {} of this order is left to refund.",
                format_minor(remaining)
            ),
            format!("该订单最多还可退款 {}。", format_minor(remaining)),
        )
        .with_details(
            serde_json::json!({"field": "amount", "remaining": remaining}),
        )));
    }
    let completes = amount == remaining;
    let mut effect = PlanEffect::default();
    let refund_quota = match (&plan_id, &subscription_id) {
        // A plan order: whole periods only (see the module's note).
        (Some(_), Some(sub)) if completes => {
            effect = plan_effect(tx, sub, quota).await?;
            effect.quota
        }
        (Some(_), _) => 0,
        // A top-up: the quota goes back in proportion, rounded down; the refund that
        // empties the order takes the rest, so the refunds of an order always sum to
        // exactly its quota.
        (None, _) if completes => quota - refunded_quota,
        (None, _) => {
            let share = i128::from(quota) * i128::from(amount) / i128::from(amount_minor.max(1));
            i64::try_from(share).unwrap_or(0)
        }
    };
    let Some(provider) = ProviderName::parse(&provider) else {
        return Ok(Err(ApiError::internal("an order of an unknown provider")));
    };
    if refund_quota > 0 {
        let key = format!("refund:{}", new.id);
        match ledger::debit_refund(
            tx,
            &user_id,
            refund_quota,
            &new.id,
            Some(&new.actor_id),
            Some(&new.reason),
            &key,
            new.force,
            rules,
            now,
        )
        .await?
        {
            Ok(_) => {}
            // The transaction is rolled back with the refusal, the period change included.
            Err(refused) => return Ok(Err(refused)),
        }
    }
    if let Some(sub) = subscription_id.as_deref().filter(|_| plan_id.is_some()) {
        take_period(tx, sub, &effect, now).await?;
    }
    let status = if new.manual {
        RefundStatus::Succeeded
    } else {
        RefundStatus::Pending
    };
    sqlx::query(
        "INSERT INTO payment_refunds (id, order_id, user_id, provider, amount_minor, quota, status, manual, forced, reason, actor_id, request_key, created_at, updated_at, finished_at, subscription_id, periods, ended_subscription) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17)",
    )
    .bind(&new.id)
    .bind(&new.order_id)
    .bind(&user_id)
    .bind(provider.as_str())
    .bind(amount)
    .bind(refund_quota)
    .bind(status.as_str())
    .bind(i64::from(new.manual))
    .bind(i64::from(new.force))
    .bind(&new.reason)
    .bind(&new.actor_id)
    .bind(&new.request_key)
    .bind(now)
    .bind(new.manual.then_some(now))
    .bind(plan_id.as_ref().and(subscription_id.as_ref()))
    .bind(effect.periods)
    .bind(i64::from(effect.ended))
    .execute(&mut **tx)
    .await?;
    set_order_state(tx, &new.order_id, now).await?;
    Ok(match by_id(tx, &new.id).await? {
        Some(made) => Ok((made, true)),
        None => Err(ApiError::internal("a refund just inserted is missing")),
    })
}

/// Applies what the provider said about a refund, in the writer's transaction: succeeded
/// and failed are final (a refund Stripe reports failed after it succeeded is failed too),
/// and a failure credits the quota back exactly once. Answers the refund after, `None` for
/// an unknown id.
pub(crate) async fn finish(
    tx: &mut Tx,
    id: &str,
    outcome: &RefundOutcome,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<Option<Refund>>> {
    match outcome {
        RefundOutcome::Pending { provider_ref } => {
            sqlx::query(
                "UPDATE payment_refunds SET provider_ref = COALESCE($2, provider_ref), updated_at = $3 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(provider_ref)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        RefundOutcome::Succeeded { provider_ref } => {
            sqlx::query(
                "UPDATE payment_refunds SET status = 'succeeded', provider_ref = COALESCE($2, provider_ref), finished_at = $3, updated_at = $3 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(provider_ref)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        RefundOutcome::Failed { reason } => {
            let moved: Option<(String, i64, String, Option<String>, i64)> = sqlx::query_as(
                "UPDATE payment_refunds SET status = 'failed', note = $2, finished_at = $3, updated_at = $3 \
                 WHERE id = $1 AND status IN ('pending', 'succeeded') AND manual = 0 \
                 RETURNING user_id, quota, order_id, subscription_id, periods",
            )
            .bind(id)
            .bind(reason)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
            let Some((user_id, quota, order_id, subscription_id, periods)) = moved else {
                return Ok(Ok(by_id(tx, id).await?));
            };
            set_order_state(tx, &order_id, now).await?;
            // The money stayed with us, so the period it paid for comes back.
            if let Some(sub) = subscription_id.filter(|_| periods > 0) {
                sqlx::query(
                    "UPDATE subscriptions SET paid_periods = paid_periods + $2, status = 'active', updated_at = $3 WHERE id = $1",
                )
                .bind(&sub)
                .bind(periods)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            if quota > 0 {
                let credit = Credit {
                    user_id,
                    kind: "refund_reversal",
                    amount: quota,
                    reference: Some(id.to_string()),
                    actor_id: None,
                    memo: Some(reason.clone()),
                    idempotency_key: Some(format!("refund_reversal:{id}")),
                };
                if let Err(e) = ledger::credit(tx, &credit, rules, now).await? {
                    return Ok(Err(e));
                }
            }
        }
    }
    Ok(Ok(by_id(tx, id).await?))
}

impl crate::BillingService {
    /// Refunds a paid order (admin): records the refund and debits the balance once, then
    /// asks the provider (unless `manual`). Answers the refund and whether it was made now.
    pub(crate) async fn refund_order(&self, new: NewRefund) -> ApiResult<(Refund, bool)> {
        let payments = self.payments()?;
        let order = super::store::get(&self.db, &new.order_id, None)
            .await?
            .ok_or_else(|| ApiError::not_found("order", "订单"))?;
        let provider = payments.provider(order.provider);
        if !new.manual && !provider.is_some_and(|p| p.refunds()) {
            return Err(super::manual_only());
        }
        let (made, created) = match self
            .writer
            .submit(crate::writer::Op::StartRefund(new))
            .await?
        {
            crate::writer::Done::RefundStarted(made, created) => (*made, created),
            other => return Err(crate::unexpected(&other)),
        };
        self.forget_balance(&made.user_id);
        if made.ended_subscription {
            self.entitlements_changed(&made.user_id);
        }
        if !created || made.manual || made.status != RefundStatus::Pending {
            return Ok((made, created));
        }
        tracing::info!(refund_id = %made.id, order_id = %made.order_id, amount_minor = made.amount_minor, quota = made.quota, "refund recorded; asking the provider");
        let Some(provider) = provider else {
            return Ok((made, created));
        };
        let notify_url = payments.notify_url(order.provider);
        match provider.refund(&order, &made, &notify_url).await {
            Ok(outcome) => {
                let after = self.apply_refund(&made.id, outcome).await?;
                Ok((after.unwrap_or(made), created))
            }
            Err(error) => {
                // The debit stands and the refund stays pending: the reconciliation asks
                // the provider again with the same refund id.
                tracing::warn!(refund_id = %made.id, %error, "the provider could not be asked to refund now");
                Ok((made, created))
            }
        }
    }

    /// Applies what a provider said about a refund, through the writer; the refund after.
    pub(crate) async fn apply_refund(
        &self,
        id: &str,
        outcome: RefundOutcome,
    ) -> ApiResult<Option<Refund>> {
        match self
            .writer
            .submit(crate::writer::Op::FinishRefund {
                id: id.to_string(),
                outcome: outcome.clone(),
            })
            .await?
        {
            crate::writer::Done::RefundFinished(after) => {
                if let Some(refund) = after.as_ref() {
                    self.forget_balance(&refund.user_id);
                    // A failed refund may have given a subscription back.
                    self.entitlements_changed(&refund.user_id);
                    tracing::info!(refund_id = %id, status = refund.status.as_str(), "refund updated");
                }
                Ok(*after)
            }
            other => Err(crate::unexpected(&other)),
        }
    }

    /// Asks the provider about one pending refund and applies the answer.
    pub(crate) async fn reconcile_refund(&self, refund: &Refund) -> ApiResult<()> {
        let payments = self.payments()?;
        let Some(provider) = payments.provider(refund.provider) else {
            return Ok(());
        };
        let Some(order) = super::store::get(&self.db, &refund.order_id, None).await? else {
            return Ok(());
        };
        let outcome = provider
            .query_refund(&order, refund, &payments.notify_url(order.provider))
            .await?;
        self.apply_refund(&refund.id, outcome).await?;
        Ok(())
    }

    /// The reconciliation of refunds: pending ones older than `before` are asked about.
    pub(crate) async fn reconcile_refunds(&self, before: i64) {
        let refunds = match pending_before(&self.db, before, 100).await {
            Ok(refunds) => refunds,
            Err(error) => {
                tracing::warn!(%error, "reconciliation could not read pending refunds");
                return;
            }
        };
        for refund in refunds {
            if let Err(error) = self.reconcile_refund(&refund).await {
                tracing::warn!(refund_id = %refund.id, %error, "refund reconciliation failed");
            }
        }
    }
}
