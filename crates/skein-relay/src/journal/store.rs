//! The request log's SQL: `relay_requests` and `relay_request_attempts` (migration 30070).

use skein_db::sqlx;
use skein_db::{Db, DbResult};

use super::{AttemptRecord, RequestRecord, Routing};

/// A day in milliseconds: statistics group by UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// Upper bounds (ms) of the latency buckets an attempt is counted in, so a median can be
/// read from grouped counts on both databases (neither SQLite nor the portable SQL we use has
/// a percentile function) without fetching every attempt.
pub const LATENCY_BUCKETS: [i64; 19] = [
    50,
    100,
    200,
    300,
    500,
    750,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    60_000,
    120_000,
    i64::MAX,
];

/// The bucket index of a latency.
pub fn bucket(latency_ms: i64) -> i64 {
    LATENCY_BUCKETS
        .iter()
        .position(|&bound| latency_ms <= bound)
        .map_or(LATENCY_BUCKETS.len() as i64 - 1, |i| i as i64)
}

/// Rows per multi-row insert on PostgreSQL (SQLite takes fixed smaller sizes): 17 parameters
/// each stays far below its 65,535, attempts (12 each, usually one per request) too.
const ROWS_PER_INSERT: usize = 500;

/// Writes finished requests and their attempts in one transaction, many rows per statement
/// ([`skein_db::Backend::statements`]: a few fixed sizes kept prepared on SQLite, a few
/// hundred rows on PostgreSQL): the log is written four times a second, and at thousands of
/// requests a second two statements per request held SQLite's write lock (which every settle
/// also needs) for tens of milliseconds.
pub async fn insert(db: &Db, records: &[RequestRecord]) -> DbResult<()> {
    let backend = db.backend();
    let mut tx = db.begin_write().await?;
    for (chunk, keep) in backend.statements(records, ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO relay_requests (id, request_id, user_id, key_id, model, stream, channel_id, status, detail, http_status, \
             cost, prompt_tokens, completion_tokens, duration_ms, ttfb_ms, routing, created_at) VALUES {}",
            backend.value_rows(chunk.len(), 17)
        );
        let mut q = sqlx::query(&sql).persistent(keep);
        for r in chunk {
            let routing = serde_json::to_string(&r.routing).unwrap_or_else(|_| "{}".into());
            q = q
                .bind(&r.id)
                .bind(&r.request_id)
                .bind(&r.user_id)
                .bind(r.key_id.as_deref())
                .bind(&r.model)
                .bind(i64::from(r.stream))
                .bind(r.channel_id.as_deref())
                .bind(r.status)
                .bind(r.detail.as_deref())
                .bind(r.http_status)
                .bind(r.cost)
                .bind(r.prompt_tokens)
                .bind(r.completion_tokens)
                .bind(r.duration_ms)
                .bind(r.ttfb_ms)
                .bind(routing)
                .bind(r.created_at);
        }
        q.execute(&mut *tx).await?;
    }
    let attempts: Vec<(&RequestRecord, usize, &AttemptRecord)> = records
        .iter()
        .flat_map(|r| {
            r.attempts
                .iter()
                .enumerate()
                .map(move |(seq, a)| (r, seq, a))
        })
        .collect();
    for (part, keep) in backend.statements(&attempts, ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO relay_request_attempts (request_id, seq, channel_id, channel_name, outcome, http_status, error, \
                 latency_ms, ttfb_ms, latency_bucket, cost, created_at) VALUES {}",
            backend.value_rows(part.len(), 12)
        );
        let mut q = sqlx::query(&sql).persistent(keep);
        for (r, seq, a) in part {
            q = q
                .bind(&r.id)
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(&a.channel_id)
                .bind(&a.channel_name)
                .bind(a.outcome)
                .bind(a.http_status)
                .bind(a.error.as_deref())
                .bind(a.latency_ms)
                .bind(a.ttfb_ms)
                .bind(bucket(a.latency_ms))
                .bind(a.cost)
                .bind(r.created_at);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes requests that started before `cutoff` (ms) with their attempts, a batch at a time
/// so SQLite's write lock is never held for long; answers how many requests went.
pub async fn prune(db: &Db, cutoff: i64) -> DbResult<u64> {
    const BATCH: i64 = 2_000;
    let mut removed = 0;
    loop {
        let mut tx = db.begin_write().await?;
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM relay_requests WHERE created_at < $1 LIMIT $2")
                .bind(cutoff)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
        for (id,) in &ids {
            sqlx::query("DELETE FROM relay_request_attempts WHERE request_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM relay_requests WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        removed += ids.len() as u64;
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    // Attempts whose request row is gone (none are written that way; this keeps the two
    // tables in step whatever happened).
    sqlx::query("DELETE FROM relay_request_attempts WHERE created_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(removed)
}

/// What the admin list filters on; empty strings match everything.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only this user.
    pub user_id: String,
    /// Only this API key.
    pub key_id: String,
    /// Only this model.
    pub model: String,
    /// Only requests that tried this channel.
    pub channel_id: String,
    /// `ok`, `error` or `refused`.
    pub status: String,
    /// Started at or after, ms.
    pub from_ms: i64,
    /// Started before, ms.
    pub to_ms: i64,
    /// Older than this row id (the previous page's last).
    pub before_id: String,
}

/// A stored request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    /// Id.
    pub id: String,
    /// The client's request id.
    pub request_id: String,
    /// Whose.
    pub user_id: String,
    /// Key.
    pub key_id: Option<String>,
    /// Model.
    pub model: String,
    /// 1 when streamed.
    pub stream: i64,
    /// Serving or last channel.
    pub channel_id: Option<String>,
    /// `ok`, `error`, `refused`.
    pub status: String,
    /// Detail.
    pub detail: Option<String>,
    /// What the client got.
    pub http_status: i64,
    /// Charged.
    pub cost: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// Start to end.
    pub duration_ms: i64,
    /// Start to first byte.
    pub ttfb_ms: Option<i64>,
    /// JSON [`Routing`].
    pub routing: String,
    /// Start, ms.
    pub created_at: i64,
    /// How many channels were tried.
    pub attempt_count: i64,
    /// The serving or last channel's name then.
    pub channel_name: Option<String>,
}

impl RequestRow {
    /// The routing decisions.
    pub fn routing(&self) -> Routing {
        serde_json::from_str(&self.routing).unwrap_or_default()
    }
}

/// A stored attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Order, from 0.
    pub seq: i64,
    /// Channel id.
    pub channel_id: String,
    /// Its name then.
    pub channel_name: String,
    /// Outcome.
    pub outcome: String,
    /// Upstream status.
    pub http_status: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// Latency.
    pub latency_ms: i64,
    /// Time to headers.
    pub ttfb_ms: Option<i64>,
    /// Charged.
    pub cost: i64,
}

const REQUEST_COLUMNS: &str = "r.id, r.request_id, r.user_id, r.key_id, r.model, r.stream, r.channel_id, r.status, r.detail, \
     r.http_status, r.cost, r.prompt_tokens, r.completion_tokens, r.duration_ms, r.ttfb_ms, r.routing, r.created_at, \
     (SELECT COUNT(*) FROM relay_request_attempts a WHERE a.request_id = r.id) AS attempt_count, \
     (SELECT MAX(a.channel_name) FROM relay_request_attempts a WHERE a.request_id = r.id AND a.channel_id = r.channel_id) AS channel_name";

/// Up to `limit` requests matching `f`, newest first.
pub async fn list(db: &Db, f: &Filter, limit: i64) -> DbResult<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM relay_requests r \
         WHERE ($1 = '' OR r.user_id = $1) AND ($2 = '' OR r.key_id = $2) AND ($3 = '' OR r.model = $3) \
           AND ($4 = '' OR EXISTS (SELECT 1 FROM relay_request_attempts t WHERE t.request_id = r.id AND t.channel_id = $4)) \
           AND ($5 = '' OR r.status = $5) AND r.created_at >= $6 AND r.created_at < $7 AND ($8 = '' OR r.id < $8) \
         ORDER BY r.id DESC LIMIT $9"
    );
    Ok(sqlx::query_as(&sql)
        .bind(f.user_id.as_str())
        .bind(f.key_id.as_str())
        .bind(f.model.as_str())
        .bind(f.channel_id.as_str())
        .bind(f.status.as_str())
        .bind(f.from_ms)
        .bind(f.to_ms)
        .bind(f.before_id.as_str())
        .bind(limit)
        .fetch_all(db.pool())
        .await?)
}

/// One request and its attempts in order.
pub async fn get(db: &Db, id: &str) -> DbResult<Option<(RequestRow, Vec<AttemptRow>)>> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM relay_requests r WHERE r.id = $1");
    let Some(row) = sqlx::query_as::<_, RequestRow>(&sql)
        .bind(id)
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let attempts = sqlx::query_as(
        "SELECT seq, channel_id, channel_name, outcome, http_status, error, latency_ms, ttfb_ms, cost \
         FROM relay_request_attempts WHERE request_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    Ok(Some((row, attempts)))
}

/// Attempts of one channel on one UTC day in one latency bucket, split by success.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatCell {
    /// Channel id.
    pub channel_id: String,
    /// Its latest name in the range.
    pub channel_name: String,
    /// Days since the epoch, UTC.
    pub day: i64,
    /// 1 for answered attempts.
    pub ok: i64,
    /// The latency bucket ([`LATENCY_BUCKETS`]).
    pub latency_bucket: i64,
    /// Attempts.
    pub attempts: i64,
    /// Sum of latencies.
    pub latency_sum: i64,
    /// Sum of times to headers.
    pub ttfb_sum: i64,
    /// Attempts with a time to headers.
    pub ttfb_count: i64,
    /// Charged.
    pub cost: i64,
}

/// Every channel's attempts from `from_ms` to `to_ms`, grouped for statistics.
pub async fn stat_cells(db: &Db, from_ms: i64, to_ms: i64) -> DbResult<Vec<StatCell>> {
    Ok(sqlx::query_as(
        "SELECT channel_id, MAX(channel_name) AS channel_name, created_at / 86400000 AS day, \
           CAST(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END AS BIGINT) AS ok, latency_bucket, COUNT(*) AS attempts, \
           CAST(SUM(latency_ms) AS BIGINT) AS latency_sum, CAST(SUM(COALESCE(ttfb_ms, 0)) AS BIGINT) AS ttfb_sum, \
           CAST(SUM(CASE WHEN ttfb_ms IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS ttfb_count, CAST(SUM(cost) AS BIGINT) AS cost \
         FROM relay_request_attempts \
         WHERE created_at >= $1 AND created_at < $2 AND outcome <> 'unsupported' \
         GROUP BY channel_id, created_at / 86400000, CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END, latency_bucket",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(db.pool())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(50), 0);
        assert_eq!(bucket(51), 1);
        assert_eq!(bucket(999), 6);
        assert_eq!(bucket(i64::MAX), LATENCY_BUCKETS.len() as i64 - 1);
    }

    /// More requests than one statement takes, each with two attempts: every row is written
    /// once, with its own values, and the attempts stay with their request in order.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_flush_larger_than_one_statement_writes_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
        let db = Db::connect(&url, 2).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        let attempt = |name: &str, latency_ms| AttemptRecord {
            channel_id: format!("c-{name}"),
            channel_name: name.to_string(),
            outcome: "ok",
            http_status: Some(200),
            error: None,
            latency_ms,
            ttfb_ms: None,
            cost: 0,
            started: std::time::Instant::now(),
        };
        let records: Vec<RequestRecord> = (0..ROWS_PER_INSERT as i64 * 2 + 3)
            .map(|i| RequestRecord {
                id: format!("r{i:05}"),
                request_id: format!("req-{i}"),
                user_id: "u".into(),
                key_id: (i % 2 == 0).then(|| "k".to_string()),
                model: "m".into(),
                stream: i % 3 == 0,
                channel_id: Some("c-second".into()),
                status: "ok",
                detail: None,
                http_status: 200,
                cost: i,
                prompt_tokens: i,
                completion_tokens: 2 * i,
                duration_ms: i,
                ttfb_ms: Some(1),
                routing: Routing::default(),
                attempts: vec![attempt("first", i), attempt("second", 1000 + i)],
                created_at: 1_000 + i,
            })
            .collect();
        insert(&db, &records).await.unwrap();
        let rows: Vec<(String, i64, i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, cost, completion_tokens, key_id, stream FROM relay_requests ORDER BY id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), records.len());
        for (row, r) in rows.iter().zip(&records) {
            let key = r.key_id.clone();
            assert_eq!(
                row,
                &(
                    r.id.clone(),
                    r.cost,
                    r.completion_tokens,
                    key,
                    i64::from(r.stream)
                )
            );
        }
        let attempts: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT request_id, seq, channel_name, latency_ms FROM relay_request_attempts ORDER BY request_id, seq",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        assert_eq!(attempts.len(), 2 * records.len());
        for (pair, r) in attempts.chunks(2).zip(&records) {
            assert_eq!(pair[0], (r.id.clone(), 0, "first".to_string(), r.cost));
            assert_eq!(
                pair[1],
                (r.id.clone(), 1, "second".to_string(), 1000 + r.cost)
            );
        }
    }
}
