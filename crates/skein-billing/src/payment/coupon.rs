//! Coupons: a percentage or a fixed amount off a top-up or a plan at checkout, with a
//! minimum spend, a validity window, total and per-user limits, a first-purchase-only option
//! and a scope (top-ups, plans or both; optionally only some plans).
//!
//! Exactness: a coupon is claimed in the writer's transaction that inserts its order, after
//! the coupon row is locked (a no-op `UPDATE` takes PostgreSQL's row lock until commit; on
//! SQLite the writer holds the database), so the limit counts it reads cannot change before
//! the claim commits: two checkouts racing for the last use get one order and one refusal,
//! on one instance or many. A claim is `held` while its order is pending, `used` once paid,
//! and `released` when the order fails, or 16 days after it expired, which gives the use back.

use axum::http::StatusCode;
use serde::Serialize;
use skein_core::ids::ms_to_rfc3339;
use skein_core::{ApiError, ApiResult};
use skein_db::{DbResult, sqlx};
use utoipa::ToSchema;

use super::config::Currency;
use super::format_minor;

/// How a coupon takes money off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponKind {
    /// `percent_off` percent of the amount, rounded down to the minor unit.
    Percent,
    /// `amount_off` minor units.
    Fixed,
}

impl CouponKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::Percent => "percent",
            CouponKind::Fixed => "fixed",
        }
    }
}

/// What a coupon may be used on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CouponScope {
    /// Top-ups only.
    Topup,
    /// Plan purchases (renewals and upgrades included) only.
    Plan,
    /// Both.
    All,
}

impl CouponScope {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponScope::Topup => "topup",
            CouponScope::Plan => "plan",
            CouponScope::All => "all",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Option<CouponScope> {
        match text {
            "topup" => Some(CouponScope::Topup),
            "plan" => Some(CouponScope::Plan),
            "all" => Some(CouponScope::All),
            _ => None,
        }
    }
}

/// A coupon as stored, with how many uses are taken.
#[derive(Debug, Clone)]
pub(crate) struct Coupon {
    pub id: String,
    pub code: String,
    pub name: String,
    pub kind: CouponKind,
    pub percent_off: i64,
    pub amount_off: i64,
    pub currency: String,
    pub min_spend: i64,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub total_limit: Option<i64>,
    pub per_user_limit: Option<i64>,
    pub first_purchase_only: bool,
    pub disabled: bool,
    pub created_at: i64,
    /// Uses held by pending orders or taken by paid ones.
    pub taken: i64,
    pub scope: CouponScope,
    /// The plans it is limited to (empty = every plan), for `plan` and `all`.
    pub plan_ids: Vec<String>,
}

/// A coupon as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponView {
    /// Its id.
    pub id: String,
    /// What users type (upper case).
    pub code: String,
    /// The admin's name for it.
    pub name: String,
    /// `percent` or `fixed`.
    pub kind: CouponKind,
    /// Percent off (1–100), for `percent`.
    pub percent_off: i64,
    /// Minor units off, for `fixed`.
    pub amount_off: i64,
    /// The currency of `amount_off` and `min_spend`.
    pub currency: String,
    /// Smallest order (before the discount) it applies to, in minor units.
    pub min_spend: i64,
    /// Valid from (RFC 3339); none = at once.
    pub starts_at: Option<String>,
    /// Valid until (RFC 3339); none = no end.
    pub ends_at: Option<String>,
    /// Most uses in all; none = no limit.
    pub total_limit: Option<i64>,
    /// Most uses per user; none = no limit.
    pub per_user_limit: Option<i64>,
    /// Only for users without a paid or pending order.
    pub first_purchase_only: bool,
    /// Switched off by an admin.
    pub disabled: bool,
    /// Uses held by pending orders or taken by paid ones.
    pub taken: i64,
    /// `topup`, `plan` or `all`.
    pub scope: CouponScope,
    /// The only plans it applies to (for `plan` and `all`); empty = every plan.
    pub plan_ids: Vec<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

impl Coupon {
    /// The admin API's view of it.
    pub(crate) fn into_view(self) -> CouponView {
        let c = self;
        CouponView {
            id: c.id,
            code: c.code,
            name: c.name,
            kind: c.kind,
            percent_off: c.percent_off,
            amount_off: c.amount_off,
            currency: c.currency,
            min_spend: c.min_spend,
            starts_at: c.starts_at.map(ms_to_rfc3339),
            ends_at: c.ends_at.map(ms_to_rfc3339),
            total_limit: c.total_limit,
            per_user_limit: c.per_user_limit,
            first_purchase_only: c.first_purchase_only,
            disabled: c.disabled,
            taken: c.taken,
            scope: c.scope,
            plan_ids: c.plan_ids,
            created_at: ms_to_rfc3339(c.created_at),
        }
    }
}

impl Coupon {
    /// What it takes off `amount` (minor units): never all of it, since a provider cannot
    /// take a payment of nothing.
    pub(crate) fn discount(&self, amount: i64) -> i64 {
        let off = match self.kind {
            CouponKind::Percent => {
                let off = i128::from(amount) * i128::from(self.percent_off) / 100;
                i64::try_from(off).unwrap_or(i64::MAX)
            }
            CouponKind::Fixed => self.amount_off,
        };
        off.clamp(0, (amount - 1).max(0))
    }
}

/// Why a coupon cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Unknown,
    NotStarted,
    Ended,
    Currency,
    MinSpend(i64),
    UsedUp,
    UsedByYou,
    FirstPurchase,
    /// Not for this kind of purchase (or not for this plan).
    Scope,
}

impl Refusal {
    /// The error users see: 422 `coupon_unavailable`, with the reason in `details`.
    pub(crate) fn error(self) -> ApiError {
        let (reason, en, zh) = match self {
            Refusal::Unknown => (
                "unknown",
                "This coupon does not exist or was switched off.".to_string(),
                "优惠券不存在或已停用。".to_string(),
            ),
            Refusal::NotStarted => (
                "not_started",
                "This coupon cannot be used yet.".to_string(),
                "该优惠券尚未生效。".to_string(),
            ),
            Refusal::Ended => (
                "ended",
                "This coupon has expired.".to_string(),
                "该优惠券已过期。".to_string(),
            ),
            Refusal::Currency => (
                "currency",
                "This coupon is for another currency.".to_string(),
                "该优惠券不适用于此币种。".to_string(),
            ),
            Refusal::MinSpend(min) => (
                "min_spend",
                format!(
                    "This coupon needs an order of at least {}.",
                    format_minor(min)
                ),
                format!("该优惠券需订单金额至少 {}。", format_minor(min)),
            ),
            Refusal::UsedUp => (
                "used_up",
                "This coupon has been used up.".to_string(),
                "该优惠券已被领完。".to_string(),
            ),
            Refusal::UsedByYou => (
                "per_user_limit",
                "You have already used this coupon as often as it allows.".to_string(),
                "你使用该优惠券的次数已达上限。".to_string(),
            ),
            Refusal::FirstPurchase => (
                "first_purchase_only",
                "This coupon is only for a first purchase; an unpaid order counts as one until it expires.".to_string(),
                "该优惠券仅限首次充值使用；未支付的订单在过期前也算作一次购买。".to_string(),
            ),
            Refusal::Scope => (
                "scope",
                "This coupon cannot be used on this purchase.".to_string(),
                "该优惠券不适用于此次购买。".to_string(),
            ),
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "coupon_unavailable",
            en,
            zh,
        )
        .with_details(serde_json::json!({ "field": "coupon", "reason": reason }))
    }
}

/// A code as users type it, as stored: trimmed, upper case.
pub(crate) fn normalize(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

const COLUMNS: &str = "c.id, c.code, c.name, c.kind, c.percent_off, c.amount_off, c.currency, c.min_spend, c.starts_at, c.ends_at, \
     c.total_limit, c.per_user_limit, c.first_purchase_only, c.disabled, c.created_at, \
     (SELECT COUNT(*) FROM coupon_redemptions r WHERE r.coupon_id = c.id AND r.status IN ('held', 'used')), c.applies_to, c.plan_ids";

/// One row of [`COLUMNS`], read by position (past the 16 columns a tuple reads).
fn coupon(r: &sqlx::any::AnyRow) -> Result<Coupon, sqlx::Error> {
    use sqlx::Row;
    let kind: String = r.try_get(3)?;
    let scope: String = r.try_get(16)?;
    let plan_ids: Option<String> = r.try_get(17)?;
    Ok(Coupon {
        id: r.try_get(0)?,
        code: r.try_get(1)?,
        name: r.try_get(2)?,
        kind: if kind == "fixed" {
            CouponKind::Fixed
        } else {
            CouponKind::Percent
        },
        percent_off: r.try_get(4)?,
        amount_off: r.try_get(5)?,
        currency: r.try_get(6)?,
        min_spend: r.try_get(7)?,
        starts_at: r.try_get(8)?,
        ends_at: r.try_get(9)?,
        total_limit: r.try_get(10)?,
        per_user_limit: r.try_get(11)?,
        first_purchase_only: r.try_get::<i64, _>(12)? != 0,
        disabled: r.try_get::<i64, _>(13)? != 0,
        created_at: r.try_get(14)?,
        taken: r.try_get(15)?,
        // An unknown scope is read as the narrowest (rows before scopes were top-up only).
        scope: CouponScope::parse(&scope).unwrap_or(CouponScope::Topup),
        plan_ids: plan_ids
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
    })
}

/// The coupon with this (normalized) code.
pub(crate) async fn by_code(
    conn: &mut sqlx::AnyConnection,
    code: &str,
) -> DbResult<Option<Coupon>> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM coupons c WHERE c.code = $1"
    ))
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(coupon).transpose()?)
}

/// The coupon with this id.
pub(crate) async fn by_id(db: &skein_db::Db, id: &str) -> DbResult<Option<Coupon>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM coupons c WHERE c.id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.as_ref().map(coupon).transpose()?)
}

/// A page of coupons, newest first, and the total.
pub(crate) async fn list(
    db: &skein_db::Db,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<Coupon>, i64)> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM coupons c ORDER BY c.created_at DESC, c.id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM coupons")
        .fetch_one(db.pool())
        .await?;
    let coupons = rows.iter().map(coupon).collect::<Result<Vec<_>, _>>()?;
    Ok((coupons, total))
}

/// A new coupon, as an admin asked for it (already checked).
pub(crate) struct NewCoupon {
    pub id: String,
    pub code: String,
    pub name: String,
    pub kind: CouponKind,
    pub percent_off: i64,
    pub amount_off: i64,
    pub currency: Currency,
    pub min_spend: i64,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub total_limit: Option<i64>,
    pub per_user_limit: Option<i64>,
    pub first_purchase_only: bool,
    pub scope: CouponScope,
    pub plan_ids: Vec<String>,
    pub created_by: String,
}

/// Stores a new coupon; `Ok(false)` when its code is taken.
pub(crate) async fn insert(db: &skein_db::Db, c: &NewCoupon, now: i64) -> DbResult<bool> {
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM coupons WHERE code = $1")
        .bind(&c.code)
        .fetch_optional(db.pool())
        .await?;
    if taken.is_some() {
        return Ok(false);
    }
    let done = sqlx::query(
        "INSERT INTO coupons (id, code, name, kind, percent_off, amount_off, currency, min_spend, applies_to, starts_at, ends_at, \
         total_limit, per_user_limit, first_purchase_only, disabled, created_by, created_at, updated_at, plan_ids) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $16, $9, $10, $11, $12, $13, 0, $14, $15, $15, $17)",
    )
    .bind(&c.id)
    .bind(&c.code)
    .bind(&c.name)
    .bind(c.kind.as_str())
    .bind(c.percent_off)
    .bind(c.amount_off)
    .bind(c.currency.code())
    .bind(c.min_spend)
    .bind(c.starts_at)
    .bind(c.ends_at)
    .bind(c.total_limit)
    .bind(c.per_user_limit)
    .bind(i64::from(c.first_purchase_only))
    .bind(&c.created_by)
    .bind(now)
    .bind(c.scope.as_str())
    .bind((!c.plan_ids.is_empty()).then(|| serde_json::to_string(&c.plan_ids).unwrap_or_default()))
    .execute(db.pool())
    .await;
    match done {
        Ok(_) => Ok(true),
        // Two admins racing for one code: the unique index decides.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Switches a coupon on or off and moves its end; `false` when there is no such coupon.
pub(crate) async fn update(
    db: &skein_db::Db,
    id: &str,
    disabled: Option<bool>,
    ends_at: Option<Option<i64>>,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE coupons SET disabled = COALESCE($2, disabled), \
         ends_at = CASE WHEN $3 = 1 THEN $4 ELSE ends_at END, updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(disabled.map(i64::from))
    .bind(i64::from(ends_at.is_some()))
    .bind(ends_at.flatten())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a coupon may be used on a purchase: a top-up (`plan` = `None`) or the plan
/// with this id.
pub(crate) fn covers(coupon: &Coupon, plan: Option<&str>) -> bool {
    match (coupon.scope, plan) {
        (CouponScope::Topup, None) | (CouponScope::All, None) => true,
        (CouponScope::Plan, None) | (CouponScope::Topup, Some(_)) => false,
        (CouponScope::Plan | CouponScope::All, Some(plan)) => {
            coupon.plan_ids.is_empty() || coupon.plan_ids.iter().any(|p| p == plan)
        }
    }
}

/// What a coupon takes off an order of `amount` (for the plan `plan`, or a top-up) for
/// `user_id` now, or why it cannot be used. Exact only inside the claiming transaction,
/// after [`lock`].
#[allow(clippy::too_many_arguments)]
pub(crate) async fn check(
    conn: &mut sqlx::AnyConnection,
    coupon: &Coupon,
    user_id: &str,
    amount: i64,
    currency: Currency,
    plan: Option<&str>,
    now: i64,
) -> DbResult<Result<i64, Refusal>> {
    if coupon.disabled {
        return Ok(Err(Refusal::Unknown));
    }
    if !covers(coupon, plan) {
        return Ok(Err(Refusal::Scope));
    }
    if coupon.starts_at.is_some_and(|at| now < at) {
        return Ok(Err(Refusal::NotStarted));
    }
    if coupon.ends_at.is_some_and(|at| now >= at) {
        return Ok(Err(Refusal::Ended));
    }
    if coupon.currency != currency.code() {
        return Ok(Err(Refusal::Currency));
    }
    if amount < coupon.min_spend {
        return Ok(Err(Refusal::MinSpend(coupon.min_spend)));
    }
    if coupon
        .total_limit
        .is_some_and(|limit| coupon.taken >= limit)
    {
        return Ok(Err(Refusal::UsedUp));
    }
    if let Some(limit) = coupon.per_user_limit {
        let (mine,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM coupon_redemptions WHERE coupon_id = $1 AND user_id = $2 AND status IN ('held', 'used')",
        )
        .bind(&coupon.id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        if mine >= limit {
            return Ok(Err(Refusal::UsedByYou));
        }
    }
    // A pending order counts as a purchase: otherwise a user could open several orders with
    // "first purchase" coupons before paying any, and pay them all.
    if coupon.first_purchase_only {
        let (paid,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM payment_orders WHERE user_id = $1 AND status IN ('paid', 'pending', 'partially_refunded', 'refunded')",
        )
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        if paid > 0 {
            return Ok(Err(Refusal::FirstPurchase));
        }
    }
    Ok(Ok(coupon.discount(amount)))
}

/// Locks the coupon with this code until the transaction ends (a no-op update); `false`
/// when there is none.
pub(crate) async fn lock(conn: &mut sqlx::AnyConnection, code: &str) -> DbResult<bool> {
    let done = sqlx::query("UPDATE coupons SET updated_at = updated_at WHERE code = $1")
        .bind(code)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a held claim of a coupon by an order.
pub(crate) async fn claim(
    conn: &mut sqlx::AnyConnection,
    coupon_id: &str,
    user_id: &str,
    order_id: &str,
    discount: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO coupon_redemptions (id, coupon_id, user_id, order_id, discount, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'held', $6, $6)",
    )
    .bind(skein_core::ids::new_id())
    .bind(coupon_id)
    .bind(user_id)
    .bind(order_id)
    .bind(discount)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks an order's claim used (its order was paid, late ones included).
pub(crate) async fn mark_used(
    conn: &mut sqlx::AnyConnection,
    order_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE coupon_redemptions SET status = 'used', updated_at = $2 WHERE order_id = $1 AND status <> 'used'",
    )
    .bind(order_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How long after its order expired a coupon use comes back. A provider's payment page can
/// outlive the order (no expiry is sent to them; Alipay's default is 15 days), and a payment
/// that still arrives is credited: a use given back sooner could be claimed by a second
/// order and both paid, past the coupon's limits.
const EXPIRED_RELEASE_GRACE_MS: i64 = 16 * 86_400_000;

/// Gives back the uses held by orders that failed, or expired long enough ago that no
/// payment page of theirs can still be paid.
pub(crate) async fn release_dead(conn: &mut sqlx::AnyConnection, now: i64) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE coupon_redemptions SET status = 'released', updated_at = $1 WHERE status = 'held' \
         AND order_id IN (SELECT id FROM payment_orders WHERE status = 'failed' \
         OR (status = 'expired' AND updated_at < $2))",
    )
    .bind(now)
    .bind(now - EXPIRED_RELEASE_GRACE_MS)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Checks a coupon for a quote (no claim): what it takes off, or the refusal as an error.
pub(crate) async fn quote(
    db: &skein_db::Db,
    code: &str,
    user_id: &str,
    amount: i64,
    currency: Currency,
    plan: Option<&str>,
    now: i64,
) -> ApiResult<(Coupon, i64)> {
    let mut conn = db.pool().acquire().await.map_err(skein_db::DbError::from)?;
    let Some(coupon) = by_code(&mut conn, &normalize(code)).await? else {
        return Err(Refusal::Unknown.error());
    };
    match check(&mut conn, &coupon, user_id, amount, currency, plan, now).await? {
        Ok(discount) => Ok((coupon, discount)),
        Err(refusal) => Err(refusal.error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coupon(kind: CouponKind, percent_off: i64, amount_off: i64) -> Coupon {
        Coupon {
            id: String::new(),
            code: String::new(),
            name: String::new(),
            kind,
            percent_off,
            amount_off,
            currency: "CNY".into(),
            min_spend: 0,
            starts_at: None,
            ends_at: None,
            total_limit: None,
            per_user_limit: None,
            first_purchase_only: false,
            disabled: false,
            created_at: 0,
            taken: 0,
            scope: CouponScope::All,
            plan_ids: Vec::new(),
        }
    }

    #[test]
    fn discounts_round_down_and_never_take_the_whole_amount() {
        assert_eq!(coupon(CouponKind::Percent, 15, 0).discount(999), 149);
        assert_eq!(coupon(CouponKind::Percent, 100, 0).discount(1000), 999);
        assert_eq!(coupon(CouponKind::Fixed, 0, 500).discount(1000), 500);
        assert_eq!(coupon(CouponKind::Fixed, 0, 5000).discount(1000), 999);
        assert_eq!(coupon(CouponKind::Fixed, 0, 5).discount(1), 0);
        assert_eq!(normalize("  welcome10 "), "WELCOME10");
    }

    #[test]
    fn scopes_decide_top_ups_plans_and_listed_plans() {
        let mut c = coupon(CouponKind::Percent, 10, 0);
        assert!(covers(&c, None) && covers(&c, Some("p1")));
        c.scope = CouponScope::Topup;
        assert!(covers(&c, None) && !covers(&c, Some("p1")));
        c.scope = CouponScope::Plan;
        assert!(!covers(&c, None) && covers(&c, Some("p1")));
        c.plan_ids = vec!["p2".into()];
        assert!(!covers(&c, Some("p1")) && covers(&c, Some("p2")));
    }
}
