//! The read side of Billing: balances, the ledger, usage records and their daily totals,
//! redemption codes, and the ledger audit behind `skein billing verify`.

use futures::TryStreamExt;
use serde::Serialize;
use skein_core::ids::ms_to_rfc3339;
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

/// A user's balance.
#[derive(Debug, Serialize, ToSchema, Default)]
pub struct QuotaView {
    /// Quota units held (the sum of the ledger).
    pub balance: i64,
    /// Held by requests in progress.
    pub reserved: i64,
    /// What can be spent now: balance minus reserved.
    pub available: i64,
    /// Consumed in all.
    pub used: i64,
    /// Quota units per US dollar, to show money.
    pub quota_per_usd: i64,
    /// The balance in US dollars (display only).
    pub balance_usd: f64,
    /// The balance in yuan (display only).
    pub balance_cny: f64,
}

/// The balance of a user; zero for a user without an account yet.
pub async fn quota(
    db: &Db,
    user_id: &str,
    quota_per_usd: i64,
    cny_per_usd: f64,
) -> DbResult<QuotaView> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT balance, reserved, used FROM billing_accounts WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    let (balance, reserved, used) = row.unwrap_or((0, 0, 0));
    let usd = balance as f64 / quota_per_usd as f64;
    Ok(QuotaView {
        balance,
        reserved,
        available: balance - reserved,
        used,
        quota_per_usd,
        balance_usd: (usd * 10_000.0).round() / 10_000.0,
        balance_cny: (usd * cny_per_usd * 10_000.0).round() / 10_000.0,
    })
}

/// What a user can spend before this process's own holds: balance minus database holds.
pub async fn spendable(db: &Db, user_id: &str) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT balance - reserved FROM billing_accounts WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|r| r.0))
}

/// What a key has used and holds in the database.
pub async fn key_used(db: &Db, key_id: &str) -> DbResult<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT used + reserved FROM key_quotas WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|r| r.0).unwrap_or(0))
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct LedgerEntry {
    /// Id (opaque; order by `seq`).
    pub id: String,
    /// Position in the user's ledger, 1, 2, 3, ... in the order the balance moved (the
    /// same on every instance); a pagination cursor.
    pub seq: i64,
    /// `signup_grant`, `consume`, `redeem`, `invite_reward`, `admin_adjust`, `topup`, ...
    pub kind: String,
    /// Signed change.
    pub amount: i64,
    /// Balance right after this entry.
    pub balance_after: i64,
    /// What caused it (request id, code id, invitee id).
    pub reference: Option<String>,
    /// The admin who made it, for adjustments.
    pub actor_id: Option<String>,
    /// Why.
    pub memo: Option<String>,
    /// Stored time, ms; see `created_at`.
    #[serde(skip)]
    pub created_ms: i64,
    /// RFC 3339.
    #[sqlx(skip)]
    pub created_at: String,
}

/// A page of a user's ledger, newest first (by `seq`, the order the balance moved), only
/// entries before the `before` seq when it is given (a cursor that stays put while new
/// entries arrive).
pub async fn ledger(
    db: &Db,
    user_id: &str,
    kind: &str,
    before: Option<i64>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<LedgerEntry>, i64)> {
    let mut rows: Vec<LedgerEntry> = sqlx::query_as(
        "SELECT id, seq, kind, amount, balance_after, reference, actor_id, memo, created_at AS created_ms \
         FROM ledger_entries WHERE user_id = $1 AND ($2 = '' OR kind = $2) AND seq < $5 \
         ORDER BY seq DESC LIMIT $3 OFFSET $4",
    )
    .bind(user_id)
    .bind(kind)
    .bind(limit)
    .bind(offset)
    .bind(before.unwrap_or(i64::MAX))
    .fetch_all(db.pool())
    .await?;
    for row in &mut rows {
        row.created_at = ms_to_rfc3339(row.created_ms);
    }
    let (total,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM ledger_entries WHERE user_id = $1 AND ($2 = '' OR kind = $2)",
    )
    .bind(user_id)
    .bind(kind)
    .fetch_one(db.pool())
    .await?;
    Ok((rows, total))
}

/// One billable request.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct UsageRecord {
    /// Id.
    pub id: String,
    /// Who paid.
    pub user_id: String,
    /// API key used.
    pub key_id: Option<String>,
    /// Model.
    pub model: String,
    /// Upstream channel.
    pub channel_id: Option<String>,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Cached prompt tokens.
    pub cached_tokens: i64,
    /// Prompt tokens written to the upstream's cache.
    pub cache_write_tokens: i64,
    /// Quota charged.
    pub cost: i64,
    /// How far the cost went beyond the hold (0 when the hold covered it).
    pub overrun: i64,
    /// What the overdraft limit kept from being charged (0 almost always).
    pub uncollected: i64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Time to first token, ms.
    pub ttft_ms: Option<i64>,
    /// Streamed (1) or not (0).
    pub stream: i64,
    /// `ok`, `partial`, `error`.
    pub status: String,
    /// Client request id.
    pub request_id: String,
    /// Chat conversation, if any.
    pub conversation_id: Option<String>,
    /// The prices the cost was computed with (JSON).
    pub pricing: Option<String>,
    /// Stored time, ms.
    #[serde(skip)]
    pub created_ms: i64,
    /// RFC 3339.
    #[sqlx(skip)]
    pub created_at: String,
}

/// Filters of usage lists. Empty strings and `None` mean "any".
#[derive(Debug, Default, Clone)]
pub struct UsageFilter {
    /// One user (always set for a user's own view).
    pub user_id: String,
    /// Model.
    pub model: String,
    /// API key.
    pub key_id: String,
    /// From, ms inclusive.
    pub from_ms: Option<i64>,
    /// To, ms exclusive.
    pub to_ms: Option<i64>,
}

const USAGE_WHERE: &str = "($1 = '' OR user_id = $1) AND ($2 = '' OR model = $2) AND ($3 = '' OR key_id = $3) \
     AND created_at >= $4 AND created_at < $5";
const USAGE_COLUMNS: &str = "id, user_id, key_id, model, channel_id, prompt_tokens, completion_tokens, cached_tokens, \
     cache_write_tokens, cost, overrun, uncollected, duration_ms, ttft_ms, stream, status, request_id, conversation_id, pricing, created_at AS created_ms";

/// A page of usage records, newest first.
pub async fn usage(
    db: &Db,
    f: &UsageFilter,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<UsageRecord>, i64)> {
    let sql = format!(
        "SELECT {USAGE_COLUMNS} FROM usage_records WHERE {USAGE_WHERE} ORDER BY created_at DESC, id DESC LIMIT $6 OFFSET $7"
    );
    let mut rows: Vec<UsageRecord> = bind_usage(sqlx::query_as(&sql), f)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    for row in &mut rows {
        row.created_at = ms_to_rfc3339(row.created_ms);
    }
    let count_sql = format!("SELECT COUNT(*) FROM usage_records WHERE {USAGE_WHERE}");
    let (total,): (i64,) = bind_usage(sqlx::query_as(&count_sql), f)
        .fetch_one(db.pool())
        .await?;
    Ok((rows, total))
}

fn bind_usage<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    f: &'q UsageFilter,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
    q.bind(f.user_id.as_str())
        .bind(f.model.as_str())
        .bind(f.key_id.as_str())
        .bind(f.from_ms.unwrap_or(0))
        .bind(f.to_ms.unwrap_or(i64::MAX))
}

/// Totals of one day (UTC) for one model or one user.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The model or user the row totals.
    pub key: String,
    /// Requests.
    pub requests: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Quota charged.
    pub cost: i64,
    /// Requests whose cost went beyond their hold (the estimate was short).
    pub overrun_requests: i64,
    /// Sum of how far those costs went beyond their holds.
    pub overrun: i64,
    /// Sum of what the overdraft limit kept from being charged.
    pub uncollected: i64,
}

/// Daily totals grouped by `model` or by `user_id`.
pub async fn daily(db: &Db, f: &UsageFilter, by_user: bool) -> DbResult<Vec<DailyUsage>> {
    let group = if by_user { "user_id" } else { "model" };
    let sql = format!(
        "SELECT created_at / 86400000 AS day, {group} AS grp, COUNT(*), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(cost) AS BIGINT), \
         CAST(SUM(CASE WHEN overrun > 0 THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(overrun) AS BIGINT), CAST(SUM(uncollected) AS BIGINT) \
         FROM usage_records WHERE {USAGE_WHERE} GROUP BY created_at / 86400000, {group} ORDER BY day DESC, grp LIMIT 5000"
    );
    type Row = (i64, String, i64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = bind_usage(sqlx::query_as(&sql), f)
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                day,
                key,
                requests,
                prompt_tokens,
                completion_tokens,
                cost,
                overrun_requests,
                overrun,
                uncollected,
            )| DailyUsage {
                day: ms_to_rfc3339(day * 86_400_000).chars().take(10).collect(),
                key,
                requests,
                prompt_tokens,
                completion_tokens,
                cost,
                overrun_requests,
                overrun,
                uncollected,
            },
        )
        .collect())
}

/// A redemption code.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct RedemptionCode {
    /// Id.
    pub id: String,
    /// The code people type.
    pub code: String,
    /// The batch's name.
    pub batch_name: String,
    /// Quota it grants.
    pub amount: i64,
    /// `active`, `disabled` or `redeemed`.
    pub status: String,
    /// Expiry, ms.
    #[serde(skip)]
    pub expires_ms: Option<i64>,
    /// RFC 3339, if it expires.
    #[sqlx(skip)]
    pub expires_at: Option<String>,
    /// Who redeemed it.
    pub redeemed_by: Option<String>,
    /// When, ms.
    #[serde(skip)]
    pub redeemed_ms: Option<i64>,
    /// RFC 3339.
    #[sqlx(skip)]
    pub redeemed_at: Option<String>,
    /// Stored time, ms.
    #[serde(skip)]
    pub created_ms: i64,
    /// RFC 3339.
    #[sqlx(skip)]
    pub created_at: String,
}

impl RedemptionCode {
    fn dress(mut self) -> Self {
        self.expires_at = self.expires_ms.map(ms_to_rfc3339);
        self.redeemed_at = self.redeemed_ms.map(ms_to_rfc3339);
        self.created_at = ms_to_rfc3339(self.created_ms);
        self
    }
}

const CODE_COLUMNS: &str = "id, code, batch_name, amount, status, expires_at AS expires_ms, redeemed_by, \
     redeemed_at AS redeemed_ms, created_at AS created_ms";

/// Codes filtered by batch name and status, newest first.
pub async fn codes(
    db: &Db,
    batch: &str,
    status: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<RedemptionCode>, i64)> {
    let sql = format!(
        "SELECT {CODE_COLUMNS} FROM redemption_codes WHERE ($1 = '' OR batch_name = $1) AND ($2 = '' OR status = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    );
    let rows: Vec<RedemptionCode> = sqlx::query_as(&sql)
        .bind(batch)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM redemption_codes WHERE ($1 = '' OR batch_name = $1) AND ($2 = '' OR status = $2)")
            .bind(batch)
            .bind(status)
            .fetch_one(db.pool())
            .await?;
    Ok((rows.into_iter().map(RedemptionCode::dress).collect(), total))
}

/// Inserts a batch of codes in one transaction.
pub async fn insert_codes(
    db: &Db,
    codes: &[(String, String)],
    batch: &str,
    amount: i64,
    expires_at: Option<i64>,
    admin: &str,
    now: i64,
) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    for (id, code) in codes {
        sqlx::query(
            "INSERT INTO redemption_codes (id, code, batch_name, amount, status, expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)",
        )
        .bind(id)
        .bind(code)
        .bind(batch)
        .bind(amount)
        .bind(expires_at)
        .bind(admin)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Enables or disables an unredeemed code; answers the code after the change.
pub async fn set_code_disabled(
    db: &Db,
    id: &str,
    disabled: bool,
) -> DbResult<Option<RedemptionCode>> {
    let (from, to) = if disabled {
        ("active", "disabled")
    } else {
        ("disabled", "active")
    };
    sqlx::query("UPDATE redemption_codes SET status = $3 WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(from)
        .bind(to)
        .execute(db.pool())
        .await?;
    let sql = format!("SELECT {CODE_COLUMNS} FROM redemption_codes WHERE id = $1");
    let row: Option<RedemptionCode> = sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(RedemptionCode::dress))
}

/// A disagreement between an account and its ledger or holds.
#[derive(Debug, Serialize)]
pub struct Drift {
    /// The user.
    pub user_id: String,
    /// What disagrees.
    pub problem: String,
}

/// Audits every account: balance = SUM(ledger), used = -SUM(consume), reserved = SUM(open
/// holds); in seq order each user's entries are numbered 1..n without gaps (and the account's
/// seq is n), every balance_after is the running sum and the newest equals the balance; and no
/// ledger entry is without an account.
pub async fn verify(db: &Db) -> DbResult<Vec<Drift>> {
    let mut drift = Vec::new();
    let sums: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT a.user_id, a.balance, a.used, a.reserved, \
           COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger_entries l WHERE l.user_id = a.user_id), 0), \
           COALESCE((SELECT CAST(-SUM(l.amount) AS BIGINT) FROM ledger_entries l WHERE l.user_id = a.user_id AND l.kind = 'consume'), 0) \
         FROM billing_accounts a",
    )
    .fetch_all(db.pool())
    .await?;
    for (user_id, balance, used, _reserved, ledger_sum, consumed) in &sums {
        if balance != ledger_sum {
            drift.push(Drift {
                user_id: user_id.clone(),
                problem: format!("balance {balance} but ledger sums to {ledger_sum}"),
            });
        }
        if used != consumed {
            drift.push(Drift {
                user_id: user_id.clone(),
                problem: format!("used {used} but consumption entries sum to {consumed}"),
            });
        }
    }
    let holds: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT a.user_id, a.reserved, COALESCE((SELECT CAST(SUM(r.amount) AS BIGINT) FROM reservations r WHERE r.user_id = a.user_id AND r.status = 'open'), 0) \
         FROM billing_accounts a",
    )
    .fetch_all(db.pool())
    .await?;
    for (user_id, reserved, open) in holds {
        if reserved != open {
            drift.push(Drift {
                user_id,
                problem: format!("reserved {reserved} but open holds sum to {open}"),
            });
        }
    }
    // The account's sequence counter must equal its number of entries, and the newest entry
    // (by seq) must say the current balance.
    let last: Vec<(String, i64, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT a.user_id, a.balance, a.seq, \
           (SELECT COUNT(*) FROM ledger_entries c WHERE c.user_id = a.user_id), \
           (SELECT l.balance_after FROM ledger_entries l WHERE l.user_id = a.user_id ORDER BY l.seq DESC LIMIT 1) \
         FROM billing_accounts a",
    )
    .fetch_all(db.pool())
    .await?;
    for (user_id, balance, seq, count, after) in last {
        if seq != count {
            drift.push(Drift {
                user_id: user_id.clone(),
                problem: format!("account seq {seq} but it has {count} entries"),
            });
        }
        if let Some(after) = after
            && balance != after
        {
            drift.push(Drift {
                user_id,
                problem: format!("balance {balance} but the newest entry says {after}"),
            });
        }
    }
    // In seq order, each user's entries must be numbered 1, 2, 3, ... without gaps, and each
    // entry's balance_after must be the running sum of the user's entries so far.
    let mut entries = sqlx::query_as::<_, (String, String, i64, i64, i64)>(
        "SELECT user_id, id, seq, amount, balance_after FROM ledger_entries ORDER BY user_id, seq",
    )
    .fetch(db.pool());
    // (user, running sum, last seq, order reported, sum reported)
    let mut current: Option<(String, i64, i64, bool, bool)> = None;
    while let Some((user_id, id, seq, amount, after)) = entries.try_next().await? {
        let (running, last_seq, order_reported, sum_reported) = match &current {
            Some((user, sum, last, o, r)) if *user == user_id => (sum + amount, *last, *o, *r),
            _ => (amount, 0, false, false),
        };
        let out_of_order = seq != last_seq + 1;
        if out_of_order && !order_reported {
            drift.push(Drift {
                user_id: user_id.clone(),
                problem: format!("entry {id} has seq {seq} where {} was due", last_seq + 1),
            });
        }
        let broken = running != after;
        if broken && !sum_reported {
            drift.push(Drift {
                user_id: user_id.clone(),
                problem: format!(
                    "entry {id} says balance {after} but the entries sum to {running}"
                ),
            });
        }
        current = Some((
            user_id,
            running,
            seq,
            order_reported || out_of_order,
            sum_reported || broken,
        ));
    }
    drop(entries);
    let orphans: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT user_id FROM ledger_entries WHERE user_id NOT IN (SELECT user_id FROM billing_accounts)")
            .fetch_all(db.pool())
            .await?;
    for (user_id,) in orphans {
        drift.push(Drift {
            user_id,
            problem: "ledger entries without an account".into(),
        });
    }
    // Every refund that took quota has exactly its debit, and a failed one its credit back.
    let refunds: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT r.id, r.user_id, r.status, r.quota, \
           COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger_entries l WHERE l.idempotency_key = 'refund:' || r.id), 0), \
           COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM ledger_entries l WHERE l.idempotency_key = 'refund_reversal:' || r.id), 0) \
         FROM payment_refunds r WHERE r.quota > 0",
    )
    .fetch_all(db.pool())
    .await?;
    for (id, user_id, status, quota, debit, reversal) in refunds {
        let expected_reversal = if status == "failed" { quota } else { 0 };
        if debit != -quota || reversal != expected_reversal {
            drift.push(Drift {
                user_id,
                problem: format!(
                    "refund {id} ({status}) took {quota} but its entries say {debit} and {reversal} back"
                ),
            });
        }
    }
    // Every granted subscription period has exactly one entry.
    let subscriptions: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.id, s.user_id, s.granted_periods, \
           (SELECT COUNT(*) FROM ledger_entries l WHERE l.kind = 'subscription' AND l.reference = s.id) \
         FROM subscriptions s",
    )
    .fetch_all(db.pool())
    .await?;
    for (id, user_id, granted, entries) in subscriptions {
        if granted != entries {
            drift.push(Drift {
                user_id,
                problem: format!(
                    "subscription {id} granted {granted} periods but has {entries} entries"
                ),
            });
        }
    }
    Ok(drift)
}

pub use skein_core::csv::field as csv_field;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("gpt-4o"), "gpt-4o");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-42"), "-42");
    }
}
