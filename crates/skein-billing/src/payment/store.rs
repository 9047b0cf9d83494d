//! The `payment_orders` table: orders are written here directly, except the move to `paid`,
//! which the writer makes in the same transaction as the ledger credit ([`pay`]).

use skein_core::ApiResult;
use skein_db::{Db, DbResult, sqlx};

use super::config::Currency;
use super::plan_change::Proration;
use super::{Applied, Order, OrderStatus, Paid, ProviderName, coupon};
use crate::ledger::{self, Credit, Rules, Tx};

const COLUMNS: &str = "id, user_id, provider, method, currency, amount_minor, quota, status, provider_ref, note, created_at, paid_at, coupon_id, discount_minor, plan_id, \
     (SELECT CAST(COALESCE(SUM(r.amount_minor), 0) AS BIGINT) FROM payment_refunds r WHERE r.order_id = payment_orders.id AND r.status <> 'failed'), \
     change_from, credit_minor, quota_offset";

/// One row of [`COLUMNS`], read by position (past the 16 columns a tuple reads); `None`
/// (logged) for a row with an unknown provider, currency or status.
fn order(row: &sqlx::any::AnyRow) -> Result<Option<Order>, sqlx::Error> {
    use sqlx::Row;
    let id: String = row.try_get(0)?;
    let provider: String = row.try_get(2)?;
    let currency: String = row.try_get(4)?;
    let status: String = row.try_get(7)?;
    let Some((provider, currency, status)) = ProviderName::parse(&provider)
        .zip(Currency::parse(&currency))
        .zip(OrderStatus::parse(&status))
        .map(|((p, c), s)| (p, c, s))
    else {
        tracing::warn!(order_id = %id, "an order row with an unknown provider, currency or status is skipped");
        return Ok(None);
    };
    let change_from: Option<String> = row.try_get(16)?;
    let change = match change_from {
        Some(from) => Some(Proration {
            from,
            credit_minor: row.try_get(17)?,
            quota_offset: row.try_get(18)?,
        }),
        None => None,
    };
    Ok(Some(Order {
        id,
        user_id: row.try_get(1)?,
        provider,
        method: row.try_get(3)?,
        currency,
        amount_minor: row.try_get(5)?,
        quota: row.try_get(6)?,
        status,
        provider_ref: row.try_get(8)?,
        note: row.try_get(9)?,
        created_at: row.try_get(10)?,
        paid_at: row.try_get(11)?,
        coupon_id: row.try_get(12)?,
        discount_minor: row.try_get(13)?,
        plan_id: row.try_get(14)?,
        refunded_minor: row.try_get(15)?,
        change,
    }))
}

fn orders(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Order>, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(o) = order(row)? {
            out.push(o);
        }
    }
    Ok(out)
}

/// Records a new order (on the pool, or in a transaction).
pub(crate) async fn insert<'e, E>(executor: E, o: &Order) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO payment_orders (id, user_id, provider, method, currency, amount_minor, quota, status, provider_ref, created_at, updated_at, coupon_id, discount_minor, plan_id, change_from, credit_minor, quota_offset) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&o.id)
    .bind(&o.user_id)
    .bind(o.provider.as_str())
    .bind(&o.method)
    .bind(o.currency.code())
    .bind(o.amount_minor)
    .bind(o.quota)
    .bind(o.status.as_str())
    .bind(&o.provider_ref)
    .bind(o.created_at)
    .bind(&o.coupon_id)
    .bind(o.discount_minor)
    .bind(&o.plan_id)
    .bind(o.change.as_ref().map(|c| c.from.clone()))
    .bind(o.change.as_ref().map_or(0, |c| c.credit_minor))
    .bind(o.change.as_ref().map_or(0, |c| c.quota_offset))
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts an order in the writer's transaction. The user's account row is locked first
/// (PostgreSQL's row lock until commit; the writer holds SQLite), so the count of their
/// pending orders cannot change before the insert commits: nobody holds more than
/// `max_pending` unpaid orders (0: no cap), and so nobody can park a limited coupon's uses
/// in orders they never pay. With a coupon, the coupon is locked, checked against its limits
/// and claimed together with the order, so it is never taken more often than it allows.
/// `order.amount_minor` comes in as the amount before the discount and leaves as what is paid.
pub(crate) async fn place(
    tx: &mut Tx,
    order: &Order,
    code: Option<&str>,
    max_pending: i64,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<Order>> {
    ledger::open_account(tx, &order.user_id, rules, now).await?;
    sqlx::query("UPDATE billing_accounts SET updated_at = updated_at WHERE user_id = $1")
        .bind(&order.user_id)
        .execute(&mut **tx)
        .await?;
    if max_pending > 0 {
        let (pending,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM payment_orders WHERE user_id = $1 AND status = 'pending'",
        )
        .bind(&order.user_id)
        .fetch_one(&mut **tx)
        .await?;
        if pending >= max_pending {
            return Ok(Err(too_many_pending(max_pending)));
        }
    }
    let Some(code) = code else {
        insert(&mut **tx, order).await?;
        return Ok(Ok(order.clone()));
    };
    let code = coupon::normalize(code);
    if !coupon::lock(tx, &code).await? {
        return Ok(Err(coupon::Refusal::Unknown.error()));
    }
    let Some(found) = coupon::by_code(tx, &code).await? else {
        return Ok(Err(coupon::Refusal::Unknown.error()));
    };
    let discount = match coupon::check(
        tx,
        &found,
        &order.user_id,
        order.amount_minor,
        order.currency,
        order.plan_id.as_deref(),
        now,
    )
    .await?
    {
        Ok(discount) => discount,
        Err(refusal) => return Ok(Err(refusal.error())),
    };
    let mut placed = order.clone();
    placed.amount_minor -= discount;
    placed.discount_minor = discount;
    placed.coupon_id = Some(found.id.clone());
    insert(&mut **tx, &placed).await?;
    coupon::claim(tx, &found.id, &order.user_id, &order.id, discount, now).await?;
    Ok(Ok(placed))
}

/// The refusal of an order past the cap of unpaid ones.
fn too_many_pending(max: i64) -> skein_core::ApiError {
    skein_core::ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "too_many_pending_orders",
        format!(
            "You have {max} unpaid orders; pay one or wait until they expire before making another."
        ),
        format!("你有 {max} 笔未支付的订单；请先支付或等待其过期后再下单。"),
    )
    .with_details(serde_json::json!({"max_pending_orders": max}))
}

/// Fails an order whose checkout could not start (the provider was unreachable) and gives
/// back its coupon.
pub(crate) async fn abandon(db: &Db, id: &str, note: &str, now: i64) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE payment_orders SET status = 'failed', note = $2, updated_at = $3 WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(note)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    coupon::release_dead(&mut tx, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Remembers the provider's id for an order (a Stripe session).
pub(crate) async fn set_reference(db: &Db, id: &str, reference: &str) -> DbResult<()> {
    sqlx::query("UPDATE payment_orders SET provider_ref = $2 WHERE id = $1")
        .bind(id)
        .bind(reference)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// One order; with `user_id`, only if it is theirs.
pub(crate) async fn get(db: &Db, id: &str, user_id: Option<&str>) -> DbResult<Option<Order>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payment_orders WHERE id = $1 AND ($2 = '' OR user_id = $2)"
    ))
    .bind(id)
    .bind(user_id.unwrap_or(""))
    .fetch_optional(db.pool())
    .await?;
    Ok(match row {
        Some(row) => order(&row)?,
        None => None,
    })
}

/// A page of orders, newest first, optionally of one user and one status; and the total.
pub(crate) async fn list(
    db: &Db,
    user_id: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<Order>, i64)> {
    let filter = "($1 = '' OR user_id = $1) AND ($2 = '' OR status = $2)";
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payment_orders WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(user_id)
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM payment_orders WHERE {filter}"
    ))
    .bind(user_id)
    .bind(status)
    .fetch_one(db.pool())
    .await?;
    Ok((orders(&rows)?, total))
}

/// Pending orders made before `before` (ms), oldest first.
pub(crate) async fn pending_before(db: &Db, before: i64, limit: i64) -> DbResult<Vec<Order>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM payment_orders WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT $2"
    ))
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(orders(&rows)?)
}

/// Expires pending orders made before `before`, and gives back the coupons of expired and
/// failed orders; how many orders expired.
pub(crate) async fn expire(db: &Db, before: i64, now: i64) -> DbResult<u64> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE payment_orders SET status = 'expired', updated_at = $2 WHERE status = 'pending' AND created_at < $1",
    )
    .bind(before)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    coupon::release_dead(&mut tx, now).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Moves an order to `paid` and credits its quota in the writer's transaction: the order's
/// state change and its ledger entry commit together or not at all. Answers who was
/// credited (to refresh cached balances).
pub(crate) async fn pay(
    tx: &mut Tx,
    paid: &Paid,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<(Applied, Option<String>)>> {
    type Found = (
        String,
        String,
        i64,
        i64,
        String,
        Option<String>,
        Option<String>,
        i64,
    );
    let found: Option<Found> = sqlx::query_as(
        "SELECT user_id, currency, amount_minor, quota, status, plan_id, change_from, quota_offset FROM payment_orders WHERE id = $1",
    )
    .bind(&paid.order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((user_id, currency, amount_minor, quota, status, plan_id, change_from, quota_offset)) =
        found
    else {
        return Ok(Ok((Applied::Unknown, None)));
    };
    // Only a pending or expired order can still be paid: a paid (or refunded) one was
    // credited before, and a failed one never will be.
    if !matches!(
        OrderStatus::parse(&status),
        Some(OrderStatus::Pending | OrderStatus::Expired)
    ) {
        return Ok(Ok((Applied::Already, None)));
    }
    if currency != paid.currency.code() || amount_minor != paid.amount_minor {
        sqlx::query(
            "UPDATE payment_orders SET status = 'failed', note = $2, updated_at = $3 \
             WHERE id = $1 AND status IN ('pending', 'expired')",
        )
        .bind(&paid.order_id)
        .bind(format!(
            "paid {} {} for an order of {} {}",
            paid.amount_minor,
            paid.currency.code(),
            amount_minor,
            currency
        ))
        .bind(now)
        .execute(&mut **tx)
        .await?;
        coupon::release_dead(tx, now).await?;
        return Ok(Ok((Applied::Mismatch, None)));
    }
    let moved = sqlx::query(
        "UPDATE payment_orders SET status = 'paid', provider_ref = COALESCE($2, provider_ref), paid_at = $3, updated_at = $3 \
         WHERE id = $1 AND status IN ('pending', 'expired')",
    )
    .bind(&paid.order_id)
    .bind(&paid.provider_ref)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() != 1 {
        return Ok(Ok((Applied::Already, None)));
    }
    // A late payment for an expired order whose coupon was given back takes it again: the
    // payer paid the discounted amount.
    coupon::mark_used(tx, &paid.order_id, now).await?;
    // A plan order starts or renews a subscription, whose periods are granted by their own
    // keys instead of the order's.
    if let Some(plan_id) = plan_id {
        return Ok(
            match super::plan::activate(
                tx,
                &paid.order_id,
                &user_id,
                &plan_id,
                change_from.as_deref().map(|from| (from, quota_offset)),
                rules,
                now,
            )
            .await?
            {
                Ok((_, balance)) => Ok((Applied::Credited(balance), Some(user_id))),
                Err(e) => Err(e),
            },
        );
    }
    let credit = Credit {
        user_id: user_id.clone(),
        kind: "topup",
        amount: quota,
        reference: Some(paid.order_id.clone()),
        actor_id: None,
        memo: None,
        idempotency_key: Some(format!("payment:{}", paid.order_id)),
    };
    Ok(match ledger::credit(tx, &credit, rules, now).await? {
        Ok(Some(balance)) => Ok((Applied::Credited(balance), Some(user_id))),
        // The key was used: the order was credited by an earlier transaction.
        Ok(None) => Ok((Applied::Already, Some(user_id))),
        Err(e) => Err(e),
    })
}
