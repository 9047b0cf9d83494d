//! Changing plans: a subscriber moves to a dearer plan at once (an upgrade, prorated) or to
//! a cheaper one at the end of what they paid for (a downgrade, scheduled and cancellable).
//!
//! Which is which: plans are compared by their price over the same time, exactly in
//! integers — `to` is an upgrade when `to.price × from.months > from.price × to.months`
//! (a yearly plan counts as twelve months); anything else, an equal price included, is a
//! downgrade.
//!
//! **The proration rule** (an upgrade). Let the current period run from `s` to `e` (ms) and
//! the change happen at `now`; `remaining = e − now`, `length = e − s`.
//! - `credit_minor = ⌊paid × remaining / length⌋`, where `paid` is what the order that paid
//!   the current period was worth: its amount (after its coupon) plus any credit it had
//!   itself, less what was refunded of it. The credit comes off the new plan's price before
//!   a coupon; what is left is paid, but never less than one minor unit (a provider cannot
//!   take a payment of nothing): the credit above the price less one minor unit is shown as
//!   `forfeited_minor`.
//! - `quota_offset = ⌊grant × remaining / length⌋`, where `grant` is the ledger entry that
//!   granted the current period (key `subscription:<id>:<n>`). That quota stays in the
//!   balance, so the new subscription's first grant is `quota_per_period − quota_offset`
//!   (never below 0): over the period the user holds exactly one period of the new plan's
//!   quota, and a change never grants the unused part twice.
//!
//! Both are rounded down, in integers (minor units and quota units), with 128-bit
//! intermediates: the same inputs always give the same amounts.
//!
//! The upgrade is an order like any plan order (coupons apply); when it is paid, the old
//! subscription ends as `upgraded` in the same transaction and a new one starts at once, its
//! first period granted then under its own key. A subscription renewed ahead (a paid period
//! not begun) cannot be upgraded: that period would be lost.
//!
//! A downgrade changes nothing now: the subscription keeps its plan until its paid periods
//! end, and `scheduled_plan_id` remembers the choice; renewing then buys the cheaper plan,
//! whose subscription starts when the current one's paid time ends (and renewing the current
//! plan is refused until the downgrade is cancelled).

use serde::{Deserialize, Serialize};
use skein_core::ids::{ms_to_rfc3339, now_ms};
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use super::plan::{Plan, SubscriptionView, get_plan, one_subscription, period_start};
use super::{Order, format_minor};
use crate::ledger::Tx;

/// An upgrade order's proration, as stored on the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proration {
    /// The subscription it replaces.
    pub from: String,
    /// What the unused part of its current period was worth, in minor units (as applied:
    /// at most the new price less one minor unit).
    pub credit_minor: i64,
    /// The unused part of that period's grant, in quota units.
    pub quota_offset: i64,
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// To a dearer plan: now, prorated, paid through an order.
    Upgrade,
    /// To a cheaper (or equally priced) plan: at the end of the paid periods.
    Downgrade,
}

/// What a change of plan would do, before it is made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangePreview {
    /// `upgrade` or `downgrade`.
    pub kind: ChangeKind,
    /// The subscription changed.
    pub subscription_id: String,
    /// Its plan now.
    pub from_plan_id: String,
    /// The plan it changes to.
    pub to_plan_id: String,
    /// When the new plan takes effect (RFC 3339): now for an upgrade, the end of the paid
    /// periods for a downgrade.
    pub effective_at: String,
    /// The new plan's price of one period, in minor units.
    pub price_minor: i64,
    /// The credit for the unused part of the current period, in minor units (0 for a
    /// downgrade).
    pub credit_minor: i64,
    /// Credit beyond the new price less one minor unit, which is not used.
    pub forfeited_minor: i64,
    /// What is paid now, before a coupon, in minor units (0 for a downgrade: the new plan's
    /// price is paid when renewing).
    pub pay_minor: i64,
    /// The same as text (`"12.34"`).
    pub pay: String,
    /// The unused quota of the current period, which stays and is taken off the new
    /// subscription's first grant.
    pub quota_offset: i64,
    /// The quota the new subscription's first period grants.
    pub first_grant: i64,
}

/// `⌊value × remaining / length⌋` in integers, for `0 ≤ remaining ≤ length`.
pub(crate) fn prorate(value: i64, remaining: i64, length: i64) -> i64 {
    if length <= 0 || value <= 0 || remaining <= 0 {
        return 0;
    }
    let remaining = remaining.min(length);
    let share = i128::from(value) * i128::from(remaining) / i128::from(length);
    i64::try_from(share).unwrap_or(0)
}

/// Whether moving from `from` to `to` is an upgrade (see the module's note).
pub(crate) fn is_upgrade(from: &Plan, to: &Plan) -> bool {
    i128::from(to.price_minor) * i128::from(from.period.months())
        > i128::from(from.price_minor) * i128::from(to.period.months())
}

/// The refusal to renew a plan the user is leaving.
pub(crate) fn downgrade_scheduled() -> ApiError {
    ApiError::conflict(
        "downgrade_scheduled",
        "A downgrade from this plan is scheduled; cancel it to renew this plan.",
        "已安排从该套餐降级；如需续订该套餐，请先取消降级。",
    )
}

fn no_subscription() -> ApiError {
    ApiError::not_found("subscription", "订阅")
}

/// A subscription as a change reads it.
struct Current {
    id: String,
    plan: Plan,
    started_at: i64,
    paid: i64,
}

/// The caller's active, begun subscription `id` and its plan.
async fn current(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    id: &str,
    now: i64,
) -> ApiResult<Current> {
    let found: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT plan_id, started_at, paid_periods FROM subscriptions WHERE id = $1 AND user_id = $2 AND status = 'active'",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(skein_db::DbError::from)?;
    let Some((plan_id, started_at, paid)) = found else {
        return Err(no_subscription());
    };
    let plan = get_plan(conn, &plan_id)
        .await?
        .ok_or_else(no_subscription)?;
    // Paid time over (the tick has not marked it yet), or not begun: nothing to change.
    if period_start(started_at, plan.period, paid) <= now || started_at > now {
        return Err(no_subscription());
    }
    Ok(Current {
        id: id.to_string(),
        plan,
        started_at,
        paid,
    })
}

/// What changing subscription `id` of `user_id` to plan `to` would do at `now`, with the
/// upgrade's proration; `Err` for a change that cannot be made.
pub(crate) async fn preview(
    db: &Db,
    user_id: &str,
    id: &str,
    to: &str,
    now: i64,
) -> ApiResult<(ChangePreview, Plan, Option<Proration>)> {
    let mut conn = db.pool().acquire().await.map_err(skein_db::DbError::from)?;
    let cur = current(&mut conn, user_id, id, now).await?;
    let target = get_plan(&mut conn, to)
        .await?
        .filter(|p| p.active)
        .ok_or_else(|| ApiError::not_found("plan", "套餐"))?;
    if target.id == cur.plan.id {
        return Err(ApiError::conflict(
            "same_plan",
            "This subscription is already on that plan; renew it instead.",
            "该订阅已是此套餐；请直接续订。",
        ));
    }
    let base = ChangePreview {
        kind: ChangeKind::Downgrade,
        subscription_id: cur.id.clone(),
        from_plan_id: cur.plan.id.clone(),
        to_plan_id: target.id.clone(),
        effective_at: ms_to_rfc3339(period_start(cur.started_at, cur.plan.period, cur.paid)),
        price_minor: target.price_minor,
        credit_minor: 0,
        forfeited_minor: 0,
        pay_minor: 0,
        pay: format_minor(0),
        quota_offset: 0,
        first_grant: target.quota_per_period,
    };
    if !is_upgrade(&cur.plan, &target) {
        return Ok((base, target, None));
    }
    // The period in progress.
    let mut n = 0;
    while n + 1 < cur.paid && period_start(cur.started_at, cur.plan.period, n + 1) <= now {
        n += 1;
    }
    if cur.paid > n + 1 {
        return Err(ApiError::conflict(
            "renewed_ahead",
            "This subscription is renewed ahead; upgrade once the renewed period has begun.",
            "该订阅已提前续订；请在续订的周期开始后再升级。",
        ));
    }
    let start = period_start(cur.started_at, cur.plan.period, n);
    let end = period_start(cur.started_at, cur.plan.period, n + 1);
    let (remaining, length) = (end - now, end - start);
    let worth: Option<(i64,)> = sqlx::query_as(
        "SELECT amount_minor + credit_minor - (SELECT CAST(COALESCE(SUM(r.amount_minor), 0) AS BIGINT) FROM payment_refunds r \
           WHERE r.order_id = payment_orders.id AND r.status <> 'failed') \
         FROM payment_orders WHERE subscription_id = $1 AND status IN ('paid', 'partially_refunded') \
         ORDER BY paid_at DESC, id DESC LIMIT 1",
    )
    .bind(&cur.id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(skein_db::DbError::from)?;
    let (grant,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE idempotency_key = $1",
    )
    .bind(format!("subscription:{}:{n}", cur.id))
    .fetch_one(&mut *conn)
    .await
    .map_err(skein_db::DbError::from)?;
    let credit = prorate(worth.map_or(0, |(w,)| w), remaining, length);
    let quota_offset = prorate(grant, remaining, length);
    let applied = credit.min(target.price_minor - 1).max(0);
    let pay = target.price_minor - applied;
    let preview = ChangePreview {
        kind: ChangeKind::Upgrade,
        effective_at: ms_to_rfc3339(now),
        credit_minor: applied,
        forfeited_minor: credit - applied,
        pay_minor: pay,
        pay: format_minor(pay),
        quota_offset,
        first_grant: (target.quota_per_period - quota_offset).max(0),
        ..base
    };
    let proration = Proration {
        from: cur.id,
        credit_minor: applied,
        quota_offset,
    };
    Ok((preview, target, Some(proration)))
}

/// Ends the subscription an upgrade replaces, in the transaction that pays the upgrade. A
/// subscription renewed since the order was made (a paid period not begun) is left running
/// rather than lose that period.
pub(crate) async fn end_replaced(tx: &mut Tx, id: &str, user_id: &str, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE subscriptions SET status = 'upgraded', scheduled_plan_id = NULL, updated_at = $3 \
         WHERE id = $1 AND user_id = $2 AND status = 'active' AND paid_periods <= granted_periods",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// When a new subscription to `plan_id` starts for `user_id`: at the end of the paid
/// periods of their active subscription that scheduled a downgrade to it, if any.
pub(crate) async fn downgrade_start(
    tx: &mut Tx,
    user_id: &str,
    plan_id: &str,
    now: i64,
) -> DbResult<Option<i64>> {
    let found: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT plan_id, started_at, paid_periods FROM subscriptions \
         WHERE user_id = $1 AND scheduled_plan_id = $2 AND status = 'active' ORDER BY created_at DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(plan_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((from, started_at, paid)) = found else {
        return Ok(None);
    };
    let Some(plan) = get_plan(tx, &from).await? else {
        return Ok(None);
    };
    let end = period_start(started_at, plan.period, paid);
    Ok((end > now).then_some(end))
}

/// What applying a change did.
pub enum Applied {
    /// An upgrade: the order to pay and where to pay it.
    Upgrade(Box<Order>, String),
    /// A downgrade, scheduled.
    Downgrade(Box<SubscriptionView>),
}

impl crate::BillingService {
    /// Changes the caller's subscription `id` to plan `to`: an upgrade makes an order (with
    /// `coupon`, through `provider`), a downgrade is scheduled.
    pub(crate) async fn change_plan(
        &self,
        user_id: &str,
        id: &str,
        to: &str,
        provider: Option<&str>,
        method: Option<&str>,
        coupon: Option<&str>,
    ) -> ApiResult<(ChangePreview, Applied)> {
        let now = now_ms();
        let (preview, target, proration) = preview(&self.db, user_id, id, to, now).await?;
        match proration {
            Some(proration) => {
                let provider = provider.filter(|p| !p.is_empty()).ok_or_else(|| {
                    ApiError::invalid_field(
                        "provider",
                        "An upgrade is paid: name the payment provider.",
                        "升级需要付款：请选择支付方式。",
                    )
                })?;
                let upgrade = super::plan_orders::Upgrade {
                    proration,
                    pay_minor: preview.pay_minor,
                    quota: preview.first_grant,
                };
                let (order, pay_url) = self
                    .create_plan_order(user_id, &target.id, provider, method, coupon, Some(upgrade))
                    .await?;
                tracing::info!(order_id = %order.id, user_id, subscription_id = id, to, credit_minor = preview.credit_minor, "plan upgrade ordered");
                Ok((preview, Applied::Upgrade(Box::new(order), pay_url)))
            }
            None => {
                let done = sqlx::query(
                    "UPDATE subscriptions SET scheduled_plan_id = $3, cancel_at_period_end = 0, updated_at = $4 \
                     WHERE id = $1 AND user_id = $2 AND status = 'active'",
                )
                .bind(id)
                .bind(user_id)
                .bind(&target.id)
                .bind(now)
                .execute(self.db.pool())
                .await
                .map_err(skein_db::DbError::from)?;
                if done.rows_affected() != 1 {
                    return Err(no_subscription());
                }
                tracing::info!(
                    user_id,
                    subscription_id = id,
                    to,
                    "plan downgrade scheduled"
                );
                let view = one_subscription(&self.db, id)
                    .await?
                    .ok_or_else(no_subscription)?;
                Ok((preview, Applied::Downgrade(Box::new(view))))
            }
        }
    }

    /// Cancels the downgrade scheduled on the caller's subscription `id`. Refused once the
    /// cheaper plan was paid for (its subscription is waiting to start): that is a refund.
    pub(crate) async fn cancel_downgrade(
        &self,
        user_id: &str,
        id: &str,
    ) -> ApiResult<SubscriptionView> {
        let found: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT scheduled_plan_id FROM subscriptions WHERE id = $1 AND user_id = $2 AND status = 'active'",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        let Some((Some(next),)) = found else {
            return Err(ApiError::not_found("scheduled downgrade", "已安排的降级"));
        };
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM subscriptions WHERE user_id = $1 AND plan_id = $2 AND status = 'active' AND started_at > $3",
        )
        .bind(user_id)
        .bind(&next)
        .bind(now_ms())
        .fetch_one(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        if waiting > 0 {
            return Err(ApiError::conflict(
                "downgrade_paid",
                "The plan you are moving to is paid for already; ask an administrator for a refund of it instead.",
                "降级后的套餐已付款；如需撤销，请联系管理员退款。",
            ));
        }
        sqlx::query(
            "UPDATE subscriptions SET scheduled_plan_id = NULL, updated_at = $3 WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .bind(now_ms())
        .execute(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        tracing::info!(
            user_id,
            subscription_id = id,
            "scheduled plan downgrade cancelled"
        );
        one_subscription(&self.db, id)
            .await?
            .ok_or_else(no_subscription)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::Currency;
    use crate::payment::plan::Period;

    fn plan(price: i64, period: Period) -> Plan {
        Plan {
            id: String::new(),
            name_en: String::new(),
            name_zh: String::new(),
            currency: Currency::Cny,
            price_minor: price,
            period,
            quota_per_period: 0,
            group_name: None,
            models: Vec::new(),
            active: true,
            created_at: 0,
        }
    }

    #[test]
    fn proration_rounds_down_exactly_and_stays_in_bounds() {
        // A third of a 29.00 period left: 966.66… → 966.
        assert_eq!(prorate(2900, 1, 3), 966);
        assert_eq!(prorate(2900, 3, 3), 2900);
        assert_eq!(prorate(2900, 0, 3), 0);
        assert_eq!(prorate(2900, 5, 3), 2900, "never more than the whole");
        assert_eq!(prorate(2900, -1, 3), 0);
        // No overflow with large quota and month-long lengths.
        let month = 30 * 86_400_000;
        assert_eq!(prorate(i64::MAX / 2, month / 2, month), i64::MAX / 4);
    }

    #[test]
    fn plans_compare_by_price_over_the_same_time() {
        let monthly = plan(2900, Period::Month);
        assert!(is_upgrade(&monthly, &plan(4900, Period::Month)));
        assert!(!is_upgrade(&monthly, &plan(990, Period::Month)));
        assert!(
            !is_upgrade(&monthly, &plan(2900, Period::Month)),
            "equal is a downgrade"
        );
        // 29,000 a year is less than 2,900 × 12 = 34,800.
        assert!(!is_upgrade(&monthly, &plan(29_000, Period::Year)));
        assert!(is_upgrade(&monthly, &plan(34_801, Period::Year)));
        assert!(is_upgrade(&plan(29_000, Period::Year), &monthly));
    }
}
