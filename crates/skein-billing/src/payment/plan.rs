//! Subscription plans: an admin defines a plan (names in English and Chinese, a price, a
//! period of a month or a year, the quota granted each period, optionally a key group and
//! the models it is limited to); a user buys it through the same order and payment path as
//! a top-up, and renews it by paying again (no stored cards).
//!
//! Entitlements: while a subscription's paid time runs, its plan's group is granted to the
//! user (first among their groups) and, when the plan names models, the user may use only
//! those (the union over their active plans; one plan for all models lifts the limit). The
//! Relay reads them through `BillingApi::entitlements` and caches them; this service tells
//! a Relay in its process when they change (`EntitlementWatcher`).
//!
//! Exactness: period `n` of a subscription starts `n` months (or years) after it started,
//! on the same day of the month (the last day in shorter months). Its quota is granted by one
//! ledger entry with the key `subscription:<id>:<n>`, in the transaction that moves
//! `granted_periods` from `n` to `n + 1` with a conditional `UPDATE`: on PostgreSQL a second
//! instance granting the same period waits on that row and then finds it granted, and the
//! key would refuse a second entry anyway, so restarts and several instances never grant a
//! period twice.

use serde::Serialize;
use skein_core::ids::{ms_to_rfc3339, new_id};
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use super::{Currency, format_minor};
use crate::ledger::{self, Credit, Rules, Tx};
use crate::statement::days_from_civil;

/// How long a plan's period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
}

impl Period {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Option<Period> {
        match text {
            "month" => Some(Period::Month),
            "year" => Some(Period::Year),
            _ => None,
        }
    }

    /// Months in one period.
    pub(crate) fn months(self) -> i64 {
        match self {
            Period::Month => 1,
            Period::Year => 12,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(ny, nm, 1) - days_from_civil(year, month, 1)
}

/// When period `n` of a subscription that started at `started_at` (ms, UTC) begins: the same
/// day and time `n` periods later, or the month's last day when it is shorter.
pub(crate) fn period_start(started_at: i64, period: Period, n: i64) -> i64 {
    let (y, m, d) = civil_from_days(started_at.div_euclid(DAY_MS));
    let time = started_at.rem_euclid(DAY_MS);
    let total = y * 12 + (m - 1) + period.months() * n;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * DAY_MS + time
}

/// A plan as stored.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub id: String,
    pub name_en: String,
    pub name_zh: String,
    pub currency: Currency,
    pub price_minor: i64,
    pub period: Period,
    pub quota_per_period: i64,
    pub group_name: Option<String>,
    pub models: Vec<String>,
    pub active: bool,
    pub created_at: i64,
}

/// A plan as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    /// Its id.
    pub id: String,
    /// English name.
    pub name_en: String,
    /// Chinese name.
    pub name_zh: String,
    /// `CNY` or `USD` (the payment currency).
    pub currency: Currency,
    /// Price of one period, in minor units.
    pub price_minor: i64,
    /// The same as text (`"29.00"`).
    pub price: String,
    /// `month` or `year`.
    pub period: Period,
    /// Quota units granted at the start of each period.
    pub quota_per_period: i64,
    /// A key group the plan grants while it is active (one of `relay.groups`; another name
    /// grants nothing): keys may be put in it, and the subscriber's chat and new keys
    /// route in it.
    pub group_name: Option<String>,
    /// The only models a subscriber may use while the plan is active (403
    /// `model_not_in_plan` for others, on every relay route); empty = all.
    pub models: Vec<String>,
    /// Offered to users (an inactive plan keeps its subscribers until they end).
    pub active: bool,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        PlanView {
            price: format_minor(p.price_minor),
            id: p.id,
            name_en: p.name_en,
            name_zh: p.name_zh,
            currency: p.currency,
            price_minor: p.price_minor,
            period: p.period,
            quota_per_period: p.quota_per_period,
            group_name: p.group_name,
            models: p.models,
            active: p.active,
            created_at: ms_to_rfc3339(p.created_at),
        }
    }
}

const PLAN_COLUMNS: &str = "id, name_en, name_zh, currency, price_minor, period, quota_per_period, group_name, models, active, created_at";

type PlanRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn plan(row: PlanRow) -> Option<Plan> {
    let (
        id,
        name_en,
        name_zh,
        currency,
        price_minor,
        period,
        quota_per_period,
        group_name,
        models,
        active,
        created_at,
    ) = row;
    let (Some(currency), Some(period)) = (Currency::parse(&currency), Period::parse(&period))
    else {
        tracing::warn!(plan_id = %id, "a plan row with an unknown currency or period is skipped");
        return None;
    };
    Some(Plan {
        id,
        name_en,
        name_zh,
        currency,
        price_minor,
        period,
        quota_per_period,
        group_name,
        models: models
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        active: active != 0,
        created_at,
    })
}

/// One plan.
pub(crate) async fn get_plan(conn: &mut sqlx::AnyConnection, id: &str) -> DbResult<Option<Plan>> {
    let row: Option<PlanRow> = sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM subscription_plans WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.and_then(plan))
}

/// Every plan (or only the active ones), cheapest first.
pub(crate) async fn list_plans(db: &Db, active_only: bool) -> DbResult<Vec<Plan>> {
    let rows: Vec<PlanRow> = sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM subscription_plans WHERE ($1 = 0 OR active = 1) ORDER BY price_minor, created_at"
    ))
    .bind(i64::from(active_only))
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().filter_map(plan).collect())
}

/// Stores a new plan (already checked).
pub(crate) async fn insert_plan(db: &Db, p: &Plan, created_by: &str) -> DbResult<()> {
    let models =
        (!p.models.is_empty()).then(|| serde_json::to_string(&p.models).unwrap_or_default());
    sqlx::query(
        "INSERT INTO subscription_plans (id, name_en, name_zh, currency, price_minor, period, quota_per_period, group_name, models, active, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(&p.id)
    .bind(&p.name_en)
    .bind(&p.name_zh)
    .bind(p.currency.code())
    .bind(p.price_minor)
    .bind(p.period.as_str())
    .bind(p.quota_per_period)
    .bind(&p.group_name)
    .bind(models)
    .bind(i64::from(p.active))
    .bind(created_by)
    .bind(p.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Changes a plan's names, price, quota or whether it is offered; `false` when there is no
/// such plan. A new price or quota applies to periods bought from then on.
pub(crate) async fn update_plan(db: &Db, p: &Plan, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE subscription_plans SET name_en = $2, name_zh = $3, price_minor = $4, quota_per_period = $5, active = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(&p.id)
    .bind(&p.name_en)
    .bind(&p.name_zh)
    .bind(p.price_minor)
    .bind(p.quota_per_period)
    .bind(i64::from(p.active))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A subscription's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Inside a paid period.
    Active,
    /// Its paid periods ran out.
    Expired,
    /// Its paid periods ran out after the user canceled it.
    Canceled,
    /// A refund took back the period in progress and ended it.
    Refunded,
    /// An upgrade replaced it with a subscription of a dearer plan.
    Upgraded,
}

impl SubscriptionStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Expired => "expired",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Refunded => "refunded",
            SubscriptionStatus::Upgraded => "upgraded",
        }
    }
}

/// Decoding a stored status. A name this build does not know (written by a newer version)
/// reads as `Expired`: no quota is granted on a state this build cannot follow.
impl From<String> for SubscriptionStatus {
    fn from(name: String) -> Self {
        [
            SubscriptionStatus::Active,
            SubscriptionStatus::Expired,
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Refunded,
            SubscriptionStatus::Upgraded,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
        .unwrap_or(SubscriptionStatus::Expired)
    }
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// Its id.
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// The plan.
    pub plan: PlanView,
    /// `active`, `expired`, `canceled` or `refunded`.
    pub status: SubscriptionStatus,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Periods paid for (the first purchase and each renewal), less those refunded.
    pub paid_periods: i64,
    /// Periods whose quota was granted.
    pub granted_periods: i64,
    /// The start of the current (or last) period (RFC 3339).
    pub current_period_start: String,
    /// When the paid periods end (RFC 3339): renew before then to keep it.
    pub paid_until: String,
    /// The user chose to let it end at `paid_until`.
    pub cancel_at_period_end: bool,
    /// A downgrade the user scheduled: renewing buys this plan, whose subscription starts
    /// at `paid_until`.
    pub scheduled_plan: Option<PlanView>,
    /// It was bought ahead (a scheduled downgrade) and starts at `started_at`.
    pub upcoming: bool,
}

const SUB_COLUMNS: &str = "s.id, s.user_id, s.plan_id, s.status, s.started_at, s.paid_periods, s.granted_periods, s.cancel_at_period_end, s.scheduled_plan_id";

type SubRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
);

async fn view(conn: &mut sqlx::AnyConnection, row: SubRow) -> DbResult<Option<SubscriptionView>> {
    let (id, user_id, plan_id, status, started_at, paid, granted, cancel, scheduled) = row;
    let Some(plan) = get_plan(conn, &plan_id).await? else {
        return Ok(None);
    };
    let scheduled_plan = match scheduled {
        Some(next) => get_plan(conn, &next).await?.map(PlanView::from),
        None => None,
    };
    let status = SubscriptionStatus::from(status);
    let now = skein_core::ids::now_ms();
    let mut current = 0;
    while current + 1 < paid && period_start(started_at, plan.period, current + 1) <= now {
        current += 1;
    }
    Ok(Some(SubscriptionView {
        id,
        user_id,
        status,
        started_at: ms_to_rfc3339(started_at),
        paid_periods: paid,
        granted_periods: granted,
        current_period_start: ms_to_rfc3339(period_start(started_at, plan.period, current)),
        paid_until: ms_to_rfc3339(period_start(started_at, plan.period, paid)),
        cancel_at_period_end: cancel != 0,
        scheduled_plan,
        upcoming: started_at > now,
        plan: plan.into(),
    }))
}

/// Subscriptions, newest first: of one user, or everyone's for `""`.
pub(crate) async fn list_subscriptions(db: &Db, user_id: &str) -> DbResult<Vec<SubscriptionView>> {
    let mut conn = db.pool().acquire().await?;
    let rows: Vec<SubRow> = sqlx::query_as(&format!(
        "SELECT {SUB_COLUMNS} FROM subscriptions s WHERE ($1 = '' OR s.user_id = $1) ORDER BY s.created_at DESC LIMIT 500"
    ))
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(v) = view(&mut conn, row).await? {
            out.push(v);
        }
    }
    Ok(out)
}

/// Sets or clears "cancel at period end" on one of the user's active subscriptions; the
/// subscription after, `None` when there is no such active subscription of theirs.
pub(crate) async fn set_cancel(
    db: &Db,
    user_id: &str,
    id: &str,
    cancel: bool,
    now: i64,
) -> DbResult<Option<SubscriptionView>> {
    let done = sqlx::query(
        "UPDATE subscriptions SET cancel_at_period_end = $3, updated_at = $4 WHERE id = $1 AND user_id = $2 AND status = 'active'",
    )
    .bind(id)
    .bind(user_id)
    .bind(i64::from(cancel))
    .bind(now)
    .execute(db.pool())
    .await?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    one_subscription(db, id).await
}

/// One subscription as the API shows it.
pub(crate) async fn one_subscription(db: &Db, id: &str) -> DbResult<Option<SubscriptionView>> {
    let mut conn = db.pool().acquire().await?;
    let row: Option<SubRow> = sqlx::query_as(&format!(
        "SELECT {SUB_COLUMNS} FROM subscriptions s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => view(&mut conn, row).await,
        None => Ok(None),
    }
}

/// What `user_id`'s active subscriptions entitle them to at `now`: the groups of their
/// plans, and the union of their model lists (`None` when none is active, or one of them is
/// for every model). A subscription counts while its paid time runs, even before the
/// scheduler's tick marks it ended.
pub(crate) async fn entitlements(
    db: &Db,
    user_id: &str,
    now: i64,
) -> DbResult<skein_core::api::Entitlements> {
    let mut conn = db.pool().acquire().await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT plan_id, started_at, paid_periods FROM subscriptions WHERE user_id = $1 AND status = 'active' ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = skein_core::api::Entitlements::default();
    let mut models: Option<Vec<String>> = None;
    let mut any = false;
    let mut unrestricted = false;
    for (plan_id, started_at, paid) in rows {
        let Some(plan) = get_plan(&mut conn, &plan_id).await? else {
            continue;
        };
        // Ended, or bought ahead of a scheduled downgrade and not begun.
        if period_start(started_at, plan.period, paid) <= now || started_at > now {
            continue;
        }
        any = true;
        if let Some(group) = plan.group_name.as_ref().filter(|g| !g.is_empty())
            && !out.groups.contains(group)
        {
            out.groups.push(group.clone());
        }
        if plan.models.is_empty() {
            unrestricted = true;
        } else {
            let list = models.get_or_insert_with(Vec::new);
            for m in &plan.models {
                if !list.contains(m) {
                    list.push(m.clone());
                }
            }
        }
        out.plans.push((plan.name_en, plan.name_zh));
    }
    out.models = if any && !unrestricted { models } else { None };
    Ok(out)
}

/// Grants the periods of one subscription that have begun and are paid; the balance after
/// the last grant, if any.
#[allow(clippy::too_many_arguments)]
async fn grant_started(
    tx: &mut Tx,
    id: &str,
    user_id: &str,
    plan: &Plan,
    started_at: i64,
    paid: i64,
    mut granted: i64,
    first_grant_offset: i64,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<Option<i64>>> {
    let mut balance = None;
    while granted < paid && period_start(started_at, plan.period, granted) <= now {
        // The conditional move decides who grants period `granted`: another instance that
        // got here first leaves no row to move (on PostgreSQL this waits for its commit),
        // and so does a refund that took the period off (or ended the subscription) since
        // this tick read the row: the condition is checked again on the row as it is now.
        let moved = sqlx::query(
            "UPDATE subscriptions SET granted_periods = $2 + 1, updated_at = $3 \
             WHERE id = $1 AND granted_periods = $2 AND paid_periods > $2 AND status = 'active'",
        )
        .bind(id)
        .bind(granted)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(Ok(balance));
        }
        // An upgrade's first period is short by the unused quota of the period it replaced,
        // which stays in the balance (see `plan_change`).
        let amount = if granted == 0 {
            (plan.quota_per_period - first_grant_offset).max(0)
        } else {
            plan.quota_per_period
        };
        if amount > 0 {
            let credit = Credit {
                user_id: user_id.to_string(),
                kind: "subscription",
                amount,
                reference: Some(id.to_string()),
                actor_id: None,
                memo: Some(format!("{} #{}", plan.name_en, granted + 1)),
                idempotency_key: Some(format!("subscription:{id}:{granted}")),
            };
            match ledger::credit(tx, &credit, rules, now).await? {
                Ok(Some(after)) => balance = Some(after),
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        granted += 1;
    }
    Ok(Ok(balance))
}

/// A paid plan order starts a subscription, or renews the user's active one of the same plan
/// by one period; the period that has begun is granted at once. An upgrade order (`change`:
/// the subscription it replaces and the quota offset) ends the replaced one and starts a new
/// one now; buying the plan of a scheduled downgrade starts its subscription when the
/// current one's paid periods end. Runs in the transaction that marks the order paid.
/// Answers the subscription's id and the balance after.
pub(crate) async fn activate(
    tx: &mut Tx,
    order_id: &str,
    user_id: &str,
    plan_id: &str,
    change: Option<(&str, i64)>,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<(String, i64)>> {
    let Some(plan) = get_plan(tx, plan_id).await? else {
        return Ok(Err(ApiError::internal("a paid order's plan is missing")));
    };
    // The account row serializes this user's activations across instances.
    ledger::open_account(tx, user_id, rules, now).await?;
    sqlx::query("UPDATE billing_accounts SET updated_at = updated_at WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let current: Option<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, started_at, paid_periods, granted_periods FROM subscriptions \
         WHERE user_id = $1 AND plan_id = $2 AND status = 'active' ORDER BY created_at DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(plan_id)
    .fetch_optional(&mut **tx)
    .await?;
    let current = if change.is_some() { None } else { current };
    let mut first_grant_offset = 0;
    let mut start = now;
    if let Some((from, offset)) = change {
        super::plan_change::end_replaced(tx, from, user_id, now).await?;
        first_grant_offset = offset;
    } else if current.is_none() {
        // The plan of a scheduled downgrade begins when the current paid periods end.
        if let Some(end) = super::plan_change::downgrade_start(tx, user_id, plan_id, now).await? {
            start = end;
        }
    }
    let (id, started_at, paid, granted) = match current
        .filter(|(_, started, paid, _)| period_start(*started, plan.period, *paid) > now)
    {
        Some((id, started, paid, granted)) => {
            sqlx::query(
                "UPDATE subscriptions SET paid_periods = paid_periods + 1, cancel_at_period_end = 0, updated_at = $2 WHERE id = $1",
            )
            .bind(&id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            (id, started, paid + 1, granted)
        }
        None => {
            let id = new_id();
            sqlx::query(
                "INSERT INTO subscriptions (id, user_id, plan_id, status, started_at, paid_periods, granted_periods, cancel_at_period_end, created_at, updated_at, first_grant_offset) \
                 VALUES ($1, $2, $3, 'active', $4, 1, 0, 0, $5, $5, $6)",
            )
            .bind(&id)
            .bind(user_id)
            .bind(plan_id)
            .bind(start)
            .bind(now)
            .bind(first_grant_offset)
            .execute(&mut **tx)
            .await?;
            (id, start, 1, 0)
        }
    };
    sqlx::query("UPDATE payment_orders SET subscription_id = $2 WHERE id = $1")
        .bind(order_id)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
    let (offset,): (i64,) =
        sqlx::query_as("SELECT first_grant_offset FROM subscriptions WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut **tx)
            .await?;
    if let Err(e) = grant_started(
        tx, &id, user_id, &plan, started_at, paid, granted, offset, rules, now,
    )
    .await?
    {
        return Ok(Err(e));
    }
    let (balance,): (i64,) =
        sqlx::query_as("SELECT balance FROM billing_accounts WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Ok((id, balance)))
}

/// The scheduler's tick, in the writer's transaction: grants every paid period that has
/// begun, and ends subscriptions whose paid periods ran out. Answers the users whose
/// balance changed, and those whose subscription ended.
pub(crate) async fn grant_due(
    tx: &mut Tx,
    rules: Rules,
    now: i64,
) -> DbResult<ApiResult<(Vec<String>, Vec<String>)>> {
    type Row = (String, String, String, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, user_id, plan_id, started_at, paid_periods, granted_periods, cancel_at_period_end, first_grant_offset FROM subscriptions WHERE status = 'active'",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut plans: std::collections::HashMap<String, Option<Plan>> = Default::default();
    let mut changed = Vec::new();
    let mut ended = Vec::new();
    for (id, user_id, plan_id, started_at, paid, granted, cancel, offset) in rows {
        if !plans.contains_key(&plan_id) {
            let found = get_plan(tx, &plan_id).await?;
            plans.insert(plan_id.clone(), found);
        }
        let Some(Some(plan)) = plans.get(&plan_id) else {
            continue;
        };
        if granted < paid {
            match grant_started(
                tx, &id, &user_id, plan, started_at, paid, granted, offset, rules, now,
            )
            .await?
            {
                Ok(Some(_)) => changed.push(user_id.clone()),
                Ok(None) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        if period_start(started_at, plan.period, paid) <= now {
            let done = sqlx::query(
                "UPDATE subscriptions SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'active' AND paid_periods = $4",
            )
            .bind(&id)
            .bind(if cancel != 0 { "canceled" } else { "expired" })
            .bind(now)
            .bind(paid)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 1 {
                ended.push(user_id);
            }
        }
    }
    Ok(Ok((changed, ended)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_statuses_round_trip_and_an_unknown_one_grants_nothing() {
        for status in [
            SubscriptionStatus::Active,
            SubscriptionStatus::Expired,
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Refunded,
            SubscriptionStatus::Upgraded,
        ] {
            assert_eq!(
                SubscriptionStatus::from(status.as_str().to_string()),
                status
            );
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(
            SubscriptionStatus::from("paused".to_string()),
            SubscriptionStatus::Expired
        );
    }

    #[test]
    fn periods_keep_the_day_and_clamp_to_short_months() {
        // 2026-01-31 10:00 UTC.
        let start = days_from_civil(2026, 1, 31) * DAY_MS + 10 * 3_600_000;
        assert_eq!(civil_from_days(days_from_civil(2026, 1, 31)), (2026, 1, 31));
        let feb = period_start(start, Period::Month, 1);
        assert_eq!(civil_from_days(feb.div_euclid(DAY_MS)), (2026, 2, 28));
        assert_eq!(feb.rem_euclid(DAY_MS), 10 * 3_600_000);
        // Not chained: March is the 31st again.
        let mar = period_start(start, Period::Month, 2);
        assert_eq!(civil_from_days(mar.div_euclid(DAY_MS)), (2026, 3, 31));
        let next_year = period_start(start, Period::Year, 1);
        assert_eq!(civil_from_days(next_year.div_euclid(DAY_MS)), (2027, 1, 31));
        let leap = days_from_civil(2028, 2, 29) * DAY_MS;
        assert_eq!(
            civil_from_days(period_start(leap, Period::Year, 1).div_euclid(DAY_MS)),
            (2029, 2, 28)
        );
        assert_eq!(period_start(start, Period::Month, 0), start);
    }
}
