//! Monthly statements: a user's opening balance, what came in and went out by ledger kind,
//! consumption by model and by API key, the top-up orders paid, and the closing balance, for
//! one calendar month in a chosen UTC offset.
//!
//! A statement is computed from the ledger when asked, never stored: the ledger is
//! immutable, so a past month's statement is the same every time it is asked for, and there
//! is nothing to generate on a schedule or to fall out of step. Every figure reads the same
//! entries — those of the month up to the account's sequence number at the first read — so
//! `closing = opening + Σ by_kind` holds exactly even while new entries arrive, and
//! consumption by model and by key (plus `unattributed`, zero unless a charge lost its usage
//! record) each sum to the consumption exactly.

use serde::Serialize;
use skein_core::ids::ms_to_rfc3339;
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

/// Earliest and latest UTC offsets in use, in minutes (UTC−12 to UTC+14).
const OFFSETS: std::ops::RangeInclusive<i32> = -720..=840;

/// A user's statement for one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct Statement {
    /// Whose.
    pub user_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The UTC offset the month's bounds are in, in minutes (480 for China).
    pub utc_offset_minutes: i32,
    /// First instant of the month (RFC 3339, UTC).
    pub period_start: String,
    /// First instant after the month (RFC 3339, UTC).
    pub period_end: String,
    /// Balance before the month, in quota units.
    pub opening_balance: i64,
    /// Balance at the end of the month (or now, for the current month).
    pub closing_balance: i64,
    /// Credits of the month (top-ups, redemptions, grants, positive adjustments).
    pub credits: i64,
    /// Debits of the month as a positive number (consumption, negative adjustments).
    pub debits: i64,
    /// Top-ups paid through payment providers.
    pub top_ups: i64,
    /// Consumption (a positive number).
    pub consumption: i64,
    /// Quota refunds took back, less what refunds turned down gave back (a positive
    /// number when refunds took quota).
    pub refunds: i64,
    /// Every ledger kind of the month, signed; they sum to `closing - opening`.
    pub by_kind: Vec<KindLine>,
    /// Consumption per model; sums to `consumption`.
    pub by_model: Vec<ConsumptionLine>,
    /// Consumption per API key (`null` for web chat and other use without a key); with
    /// `unattributed`, sums to `consumption`.
    pub by_key: Vec<ConsumptionLine>,
    /// Consumption whose usage record is missing (0 on a healthy ledger).
    pub unattributed: i64,
    /// Top-up orders paid in the month.
    pub orders: Vec<PaidOrder>,
}

/// The entries of one ledger kind in a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct KindLine {
    /// `topup`, `consume`, `redeem`, `admin_adjust`, `signup_grant`, `invite_reward`, ...
    pub kind: String,
    /// How many entries.
    pub entries: i64,
    /// Their signed sum.
    pub amount: i64,
}

/// Consumption of one model or key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumptionLine {
    /// The model name or key id (`null`: no key, or no model named).
    pub name: Option<String>,
    /// Charged requests.
    pub requests: i64,
    /// Quota units charged.
    pub amount: i64,
}

/// A top-up order paid in the month.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaidOrder {
    /// Order id.
    pub id: String,
    /// The provider.
    pub provider: String,
    /// `CNY` or `USD`.
    pub currency: String,
    /// Paid, in minor units.
    pub amount_minor: i64,
    /// Taken off by a coupon, in minor units.
    pub discount_minor: i64,
    /// Quota units credited.
    pub quota: i64,
    /// When (RFC 3339).
    pub paid_at: String,
}

/// `YYYY-MM` and an offset as the month's bounds in ms since the epoch (UTC), or a 422.
pub fn month_bounds(month: &str, utc_offset_minutes: i32) -> ApiResult<(i64, i64)> {
    let bad = || {
        ApiError::invalid_field(
            "month",
            "Give the month as YYYY-MM, e.g. 2026-12.",
            "月份格式须为 YYYY-MM，例如 2026-12。",
        )
    };
    if !OFFSETS.contains(&utc_offset_minutes) {
        return Err(ApiError::invalid_field(
            "utc_offset_minutes",
            "utc_offset_minutes must be between -720 and 840.",
            "utc_offset_minutes 须在 -720 到 840 之间。",
        ));
    }
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i64 = y.parse().map_err(|_| bad())?;
    let mon: i64 = m.parse().map_err(|_| bad())?;
    if !(1970..=9998).contains(&year) || !(1..=12).contains(&mon) {
        return Err(bad());
    }
    let (next_year, next_mon) = if mon == 12 {
        (year + 1, 1)
    } else {
        (year, mon + 1)
    };
    let offset_ms = i64::from(utc_offset_minutes) * 60_000;
    Ok((
        days_from_civil(year, mon, 1) * 86_400_000 - offset_ms,
        days_from_civil(next_year, next_mon, 1) * 86_400_000 - offset_ms,
    ))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The statement of `user_id` for `month` (`YYYY-MM`) in `utc_offset_minutes`.
pub async fn statement(
    db: &Db,
    user_id: &str,
    month: &str,
    utc_offset_minutes: i32,
) -> ApiResult<Statement> {
    let (start, end) = month_bounds(month, utc_offset_minutes)?;
    Ok(read(db, user_id, month, utc_offset_minutes, start, end).await?)
}

async fn read(
    db: &Db,
    user_id: &str,
    month: &str,
    utc_offset_minutes: i32,
    start: i64,
    end: i64,
) -> DbResult<Statement> {
    // Every figure below reads entries up to this sequence number only.
    let (seq,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM ledger_entries WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
    let (opening,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(CAST(SUM(amount) AS BIGINT), 0) FROM ledger_entries WHERE user_id = $1 AND seq <= $2 AND created_at < $3",
    )
    .bind(user_id)
    .bind(seq)
    .bind(start)
    .fetch_one(db.pool())
    .await?;
    let kinds: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*), CAST(SUM(amount) AS BIGINT), \
           CAST(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END) AS BIGINT) \
         FROM ledger_entries WHERE user_id = $1 AND seq <= $2 AND created_at >= $3 AND created_at < $4 \
         GROUP BY kind ORDER BY kind",
    )
    .bind(user_id)
    .bind(seq)
    .bind(start)
    .bind(end)
    .fetch_all(db.pool())
    .await?;
    let models: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT memo, COUNT(*), CAST(-SUM(amount) AS BIGINT) FROM ledger_entries \
         WHERE user_id = $1 AND seq <= $2 AND created_at >= $3 AND created_at < $4 AND kind = 'consume' \
         GROUP BY memo ORDER BY 3 DESC, 1",
    )
    .bind(user_id)
    .bind(seq)
    .bind(start)
    .bind(end)
    .fetch_all(db.pool())
    .await?;
    // A charge's entry is keyed `settle:<reservation id>` and its usage record names the
    // reservation: the key comes from the record, the amount from the ledger.
    let keys: Vec<(Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT u.key_id, COUNT(*), CAST(-SUM(l.amount) AS BIGINT) FROM usage_records u \
         JOIN ledger_entries l ON l.idempotency_key = 'settle:' || u.reservation_id \
         WHERE u.user_id = $1 AND u.created_at >= $3 AND u.created_at < $4 \
           AND l.user_id = $1 AND l.seq <= $2 AND l.kind = 'consume' AND l.created_at >= $3 AND l.created_at < $4 \
         GROUP BY u.key_id ORDER BY 3 DESC, 1",
    )
    .bind(user_id)
    .bind(seq)
    .bind(start)
    .bind(end)
    .fetch_all(db.pool())
    .await?;
    let orders: Vec<(String, String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, provider, currency, amount_minor, discount_minor, quota, paid_at FROM payment_orders \
         WHERE user_id = $1 AND status IN ('paid', 'partially_refunded', 'refunded') AND paid_at >= $2 AND paid_at < $3 ORDER BY paid_at, id",
    )
    .bind(user_id)
    .bind(start)
    .bind(end)
    .fetch_all(db.pool())
    .await?;

    let by_kind: Vec<KindLine> = kinds
        .iter()
        .map(|(kind, entries, amount, _, _)| KindLine {
            kind: kind.clone(),
            entries: *entries,
            amount: *amount,
        })
        .collect();
    let net: i64 = by_kind.iter().map(|k| k.amount).sum();
    let credits = kinds.iter().map(|k| k.3).sum();
    let debits = kinds.iter().map(|k| k.4).sum();
    let of_kind = |name: &str| {
        by_kind
            .iter()
            .filter(|k| k.kind == name)
            .map(|k| k.amount)
            .sum::<i64>()
    };
    let consumption = -of_kind("consume");
    let line = |(name, requests, amount): (Option<String>, i64, i64)| ConsumptionLine {
        name,
        requests,
        amount,
    };
    let by_key: Vec<ConsumptionLine> = keys.into_iter().map(line).collect();
    let attributed: i64 = by_key.iter().map(|k| k.amount).sum();
    Ok(Statement {
        user_id: user_id.to_string(),
        month: month.to_string(),
        utc_offset_minutes,
        period_start: ms_to_rfc3339(start),
        period_end: ms_to_rfc3339(end),
        opening_balance: opening,
        closing_balance: opening + net,
        credits,
        debits,
        top_ups: of_kind("topup"),
        consumption,
        refunds: -(of_kind("refund") + of_kind("refund_reversal")),
        by_kind,
        by_model: models.into_iter().map(line).collect(),
        by_key,
        unattributed: consumption - attributed,
        orders: orders
            .into_iter()
            .map(
                |(id, provider, currency, amount_minor, discount_minor, quota, paid_at)| {
                    PaidOrder {
                        id,
                        provider,
                        currency,
                        amount_minor,
                        discount_minor,
                        quota,
                        paid_at: ms_to_rfc3339(paid_at),
                    }
                },
            )
            .collect(),
    })
}

/// The statement as CSV rows (`section,name,count,amount`), for a spreadsheet.
pub fn csv_rows(s: &Statement) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec![
            "summary".into(),
            "month".into(),
            String::new(),
            s.month.clone(),
        ],
        vec![
            "summary".into(),
            "period_start".into(),
            String::new(),
            s.period_start.clone(),
        ],
        vec![
            "summary".into(),
            "period_end".into(),
            String::new(),
            s.period_end.clone(),
        ],
        vec![
            "summary".into(),
            "opening_balance".into(),
            String::new(),
            s.opening_balance.to_string(),
        ],
        vec![
            "summary".into(),
            "credits".into(),
            String::new(),
            s.credits.to_string(),
        ],
        vec![
            "summary".into(),
            "debits".into(),
            String::new(),
            s.debits.to_string(),
        ],
        vec![
            "summary".into(),
            "top_ups".into(),
            String::new(),
            s.top_ups.to_string(),
        ],
        vec![
            "summary".into(),
            "consumption".into(),
            String::new(),
            s.consumption.to_string(),
        ],
        vec![
            "summary".into(),
            "refunds".into(),
            String::new(),
            s.refunds.to_string(),
        ],
        vec![
            "summary".into(),
            "closing_balance".into(),
            String::new(),
            s.closing_balance.to_string(),
        ],
    ];
    for k in &s.by_kind {
        rows.push(vec![
            "kind".into(),
            k.kind.clone(),
            k.entries.to_string(),
            k.amount.to_string(),
        ]);
    }
    for m in &s.by_model {
        rows.push(vec![
            "model".into(),
            m.name.clone().unwrap_or_default(),
            m.requests.to_string(),
            m.amount.to_string(),
        ]);
    }
    for k in &s.by_key {
        rows.push(vec![
            "key".into(),
            k.name.clone().unwrap_or_else(|| "(no key)".into()),
            k.requests.to_string(),
            k.amount.to_string(),
        ]);
    }
    if s.unattributed != 0 {
        rows.push(vec![
            "key".into(),
            "(unattributed)".into(),
            String::new(),
            s.unattributed.to_string(),
        ]);
    }
    for o in &s.orders {
        rows.push(vec![
            "order".into(),
            format!(
                "{} {} {} {} paid {}",
                o.id,
                o.provider,
                o.currency,
                crate::payment::format_minor(o.amount_minor),
                o.paid_at
            ),
            "1".into(),
            o.quota.to_string(),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn months_have_their_calendar_bounds_in_the_chosen_offset() {
        // 2026-12-01T00:00:00Z .. 2027-01-01T00:00:00Z
        assert_eq!(
            month_bounds("2026-12", 0).unwrap(),
            (1_796_083_200_000, 1_798_761_600_000)
        );
        // In China the month starts eight hours earlier in UTC.
        let (start, _) = month_bounds("2026-12", 480).unwrap();
        assert_eq!(ms_to_rfc3339(start), "2026-11-30T16:00:00Z");
        // February of a leap year.
        let (s, e) = month_bounds("2028-02", 0).unwrap();
        assert_eq!((e - s) / 86_400_000, 29);
        for bad in ["2026-13", "2026-1", "26-12", "2026/12", "", "abcd-ef"] {
            assert!(month_bounds(bad, 0).is_err(), "{bad}");
        }
        assert!(month_bounds("2026-12", 900).is_err());
    }
}
