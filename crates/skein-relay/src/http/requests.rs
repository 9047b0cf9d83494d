//! `/api/v1/admin/requests` (admin): the request log across every user — each relayed
//! request with its routing decisions and upstream attempts — and per-channel statistics
//! built from the attempts. See [`crate::journal`] for what is kept and for how long.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, ms_to_rfc3339, now_ms, rfc3339_to_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::RelayService;
use crate::journal::Routing;
use crate::journal::store::{self, DAY_MS, Filter, LATENCY_BUCKETS, StatCell};

/// Filters of the request log; every one is optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// Only this user's requests.
    pub user_id: Option<String>,
    /// Only requests made with this API key.
    pub key_id: Option<String>,
    /// Only this model (as the client named it).
    pub model: Option<String>,
    /// Only requests that tried this channel (served, failed or refused there).
    pub channel_id: Option<String>,
    /// `ok`, `error` (every channel failed, or the answer broke off) or `refused` (the
    /// upstream's 4xx, or no balance for the hold).
    pub status: Option<String>,
    /// Started at or after (RFC 3339).
    pub from: Option<String>,
    /// Started before (RFC 3339).
    pub to: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One request in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedRequest {
    /// Log row id (for the detail).
    pub id: String,
    /// The request id the client got (`x-request-id`), to find it in the server's log.
    pub request_id: String,
    /// Whose request.
    pub user_id: String,
    /// The API key, absent for a request a service made for the user (chat).
    pub key_id: Option<String>,
    /// The model as the client named it.
    pub model: String,
    /// Whether it streamed.
    pub stream: bool,
    /// The channel that served it, or the last one tried.
    pub channel_id: Option<String>,
    /// That channel's name when the request ran.
    pub channel_name: Option<String>,
    /// `ok`, `error` or `refused`.
    pub status: String,
    /// More about the outcome: the settle's status (`partial`, `client_closed`, ...) or the
    /// error code the client got (`upstream_unavailable`, `upstream_refused`, ...).
    pub detail: Option<String>,
    /// The HTTP status the client got.
    pub http_status: i64,
    /// Quota charged.
    pub cost: i64,
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
    /// From the hold to the end of the answer.
    pub duration_ms: i64,
    /// From the hold to the answer's first byte.
    pub ttfb_ms: Option<i64>,
    /// How many channels were tried.
    pub attempt_count: i64,
    /// RFC 3339 of the start.
    pub created_at: String,
}

/// A page of the request log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedRequestPage {
    /// The requests.
    pub items: Vec<LoggedRequest>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One upstream attempt of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedAttempt {
    /// Order, from 0.
    pub seq: i64,
    /// Channel id (the channel may since have been deleted).
    pub channel_id: String,
    /// Its name when the request ran.
    pub channel_name: String,
    /// `ok`, `retry` (failed over: timeout, unreachable, 429, 5xx), `dead` (the channel's key
    /// was rejected or its account is out of quota), `refused` (the upstream's 4xx, passed to
    /// the client) or `unsupported` (its format cannot carry the request; nothing was sent).
    pub outcome: String,
    /// The upstream's HTTP status, when it answered.
    pub http_status: Option<i64>,
    /// What went wrong (an upstream refusal is kept as its error type and code only).
    pub error: Option<String>,
    /// From sending to the end of the answer or the failure.
    pub latency_ms: i64,
    /// From sending to the answer's headers.
    pub ttfb_ms: Option<i64>,
    /// Quota charged through this attempt.
    pub cost: i64,
}

/// A request with its routing decisions and every upstream attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedRequestDetail {
    /// The request.
    pub request: LoggedRequest,
    /// Which channels the plan chose, in order, and which it left out and why.
    pub routing: Routing,
    /// Every attempt, in order.
    pub attempts: Vec<LoggedAttempt>,
}

/// The request log across every user, newest first, with cursor pagination (admin).
#[utoipa::path(get, path = "/admin/requests", tag = "admin-requests", security(("bearer" = [])), params(RequestQuery),
    responses((status = 200, body = LoggedRequestPage), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn list_requests(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<ApiJson<LoggedRequestPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be 1 to 200.",
            "limit 必须在 1 到 200 之间。",
        ));
    }
    let status = q.status.clone().unwrap_or_default();
    if !["", "ok", "error", "refused"].contains(&status.as_str()) {
        return Err(ApiError::invalid_field(
            "status",
            "status must be ok, error or refused.",
            "status 必须是 ok、error 或 refused。",
        ));
    }
    let before_id = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) if looks_like_id(c) => c.to_string(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "cursor",
                "Unknown cursor.",
                "无效的分页游标。",
            ));
        }
        None => String::new(),
    };
    let filter = Filter {
        user_id: text_filter("user_id", q.user_id)?,
        key_id: text_filter("key_id", q.key_id)?,
        model: text_filter("model", q.model)?,
        channel_id: text_filter("channel_id", q.channel_id)?,
        status,
        from_ms: time_filter("from", q.from.as_deref())?.unwrap_or(0),
        to_ms: time_filter("to", q.to.as_deref())?.unwrap_or(i64::MAX),
        before_id,
    };
    let mut rows = store::list(&svc.db, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(50));
    let next_cursor = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
    Ok(ApiJson(LoggedRequestPage {
        items: rows.into_iter().map(request_view).collect(),
        next_cursor,
    }))
}

/// One request with its routing decisions and upstream attempts (admin).
#[utoipa::path(get, path = "/admin/requests/{id}", tag = "admin-requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "Log row id")),
    responses((status = 200, body = LoggedRequestDetail), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_request(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<LoggedRequestDetail>> {
    let not_found = || ApiError::not_found("Request", "请求记录");
    if !looks_like_id(&id) {
        return Err(not_found());
    }
    let (row, attempts) = store::get(&svc.db, &id).await?.ok_or_else(not_found)?;
    let routing = row.routing();
    Ok(ApiJson(LoggedRequestDetail {
        request: request_view(row),
        routing,
        attempts: attempts
            .into_iter()
            .map(|a| LoggedAttempt {
                seq: a.seq,
                channel_id: a.channel_id,
                channel_name: a.channel_name,
                outcome: a.outcome,
                http_status: a.http_status,
                error: a.error,
                latency_ms: a.latency_ms,
                ttfb_ms: a.ttfb_ms,
                cost: a.cost,
            })
            .collect(),
    }))
}

/// Which requests to remove now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequests {
    /// Remove requests that started more than this many days ago (0: every request so far).
    pub older_than_days: u32,
}

/// How many requests were removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PruneResult {
    /// Requests removed, with their attempts.
    pub removed: u64,
}

/// Remove old requests from the log now (admin); the background task does the same every
/// `relay.request_log_prune_every_secs` with `relay.request_log_retention_days`.
#[utoipa::path(post, path = "/admin/requests/prune", tag = "admin-requests", security(("bearer" = [])), request_body = PruneRequests,
    responses((status = 200, body = PruneResult), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn prune_requests(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<PruneRequests>,
) -> ApiResult<ApiJson<PruneResult>> {
    if req.older_than_days > 3650 {
        return Err(ApiError::invalid_field(
            "older_than_days",
            "older_than_days must be 0 to 3650.",
            "older_than_days 必须在 0 到 3650 之间。",
        ));
    }
    // What is still buffered counts too: "everything so far" must include the last second.
    svc.request_log.flush(&svc.db).await;
    let cutoff = now_ms() + 1 - i64::from(req.older_than_days) * DAY_MS;
    let removed = store::prune(&svc.db, cutoff).await?;
    tracing::info!(actor = %admin.user_id, removed, "request log pruned by an admin");
    Ok(ApiJson(PruneResult { removed }))
}

/// The range of the channel statistics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start (RFC 3339; default seven days before `to`, at 00:00 UTC).
    pub from: Option<String>,
    /// End (RFC 3339; default now). At most 92 days after `from`.
    pub to: Option<String>,
}

/// Numbers of one channel over a day or a range. Latency and time to first byte are over
/// answered attempts; the median is the average latency inside the latency bucket that holds
/// the middle attempt.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct ChannelNumbers {
    /// Attempts sent to the channel.
    pub requests: i64,
    /// Attempts that failed (failed over, dead, refused).
    pub errors: i64,
    /// Average latency of answered attempts, ms.
    pub latency_avg_ms: Option<i64>,
    /// Median latency of answered attempts, ms.
    pub latency_p50_ms: Option<i64>,
    /// Average time to the answer's headers, ms.
    pub ttfb_avg_ms: Option<i64>,
    /// Quota charged through the channel.
    pub cost: i64,
}

/// One UTC day of a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelDayStat {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// That day's numbers.
    #[serde(flatten)]
    pub numbers: ChannelNumbers,
}

/// One channel's statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelStat {
    /// Channel id (possibly deleted since).
    pub channel_id: String,
    /// Its latest name in the range.
    pub channel_name: String,
    /// The whole range.
    pub totals: ChannelNumbers,
    /// Each day with traffic, oldest first.
    pub days: Vec<ChannelDayStat>,
}

/// Per-channel statistics over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelStats {
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    /// Channels with traffic in the range, busiest first.
    pub channels: Vec<ChannelStat>,
}

/// Requests, errors, latency (average and median), time to first byte and cost per channel
/// and UTC day, from the request log (admin).
#[utoipa::path(get, path = "/admin/requests/channel-stats", tag = "admin-requests", security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, body = ChannelStats), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn channel_stats(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<ApiJson<ChannelStats>> {
    let to = time_filter("to", q.to.as_deref())?.unwrap_or_else(now_ms);
    let from =
        time_filter("from", q.from.as_deref())?.unwrap_or_else(|| (to / DAY_MS - 6) * DAY_MS);
    if from >= to || to - from > 92 * DAY_MS {
        return Err(ApiError::invalid_field(
            "from",
            "from must be before to, and at most 92 days before it.",
            "from 必须早于 to，且相差不超过 92 天。",
        ));
    }
    let cells = store::stat_cells(&svc.db, from, to).await?;
    Ok(ApiJson(ChannelStats {
        from: ms_to_rfc3339(from),
        to: ms_to_rfc3339(to),
        channels: aggregate(cells),
    }))
}

/// Sums of a set of cells, with the latency histogram of answered attempts.
#[derive(Default)]
struct Acc {
    requests: i64,
    errors: i64,
    ok: i64,
    latency_sum: i64,
    ttfb_sum: i64,
    ttfb_count: i64,
    cost: i64,
    /// Answered attempts per latency bucket, and the sum of their latencies.
    histogram: [(i64, i64); LATENCY_BUCKETS.len()],
}

impl Acc {
    fn add(&mut self, c: &StatCell) {
        self.requests += c.attempts;
        self.cost += c.cost;
        if c.ok == 1 {
            self.ok += c.attempts;
            self.latency_sum += c.latency_sum;
            self.ttfb_sum += c.ttfb_sum;
            self.ttfb_count += c.ttfb_count;
            if let Some(slot) = usize::try_from(c.latency_bucket)
                .ok()
                .and_then(|i| self.histogram.get_mut(i))
            {
                slot.0 += c.attempts;
                slot.1 += c.latency_sum;
            }
        } else {
            self.errors += c.attempts;
        }
    }

    fn numbers(&self) -> ChannelNumbers {
        ChannelNumbers {
            requests: self.requests,
            errors: self.errors,
            latency_avg_ms: (self.ok > 0).then(|| self.latency_sum / self.ok),
            latency_p50_ms: median(&self.histogram),
            ttfb_avg_ms: (self.ttfb_count > 0).then(|| self.ttfb_sum / self.ttfb_count),
            cost: self.cost,
        }
    }
}

/// The median of a latency histogram: the bucket holding the middle attempt is found by
/// count, and the average latency inside that bucket stands for it (always within the
/// bucket's bounds, and exact when the bucket holds one latency).
fn median(histogram: &[(i64, i64); LATENCY_BUCKETS.len()]) -> Option<i64> {
    let total: i64 = histogram.iter().map(|(count, _)| count).sum();
    if total == 0 {
        return None;
    }
    let half = (total + 1) / 2;
    let mut seen = 0;
    for &(count, sum) in histogram {
        if count > 0 && seen + count >= half {
            return Some(sum / count);
        }
        seen += count;
    }
    None
}

fn aggregate(cells: Vec<StatCell>) -> Vec<ChannelStat> {
    // channel id → (name, totals, day → sums)
    let mut by_channel: BTreeMap<String, (String, Acc, BTreeMap<i64, Acc>)> = BTreeMap::new();
    for c in &cells {
        let entry = by_channel
            .entry(c.channel_id.clone())
            .or_insert_with(|| (c.channel_name.clone(), Acc::default(), BTreeMap::new()));
        entry.1.add(c);
        entry.2.entry(c.day).or_default().add(c);
    }
    let mut out: Vec<ChannelStat> = by_channel
        .into_iter()
        .map(|(channel_id, (channel_name, totals, days))| ChannelStat {
            channel_id,
            channel_name,
            totals: totals.numbers(),
            days: days
                .into_iter()
                .map(|(day, acc)| ChannelDayStat {
                    day: ms_to_rfc3339(day * DAY_MS).chars().take(10).collect(),
                    numbers: acc.numbers(),
                })
                .collect(),
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.totals.requests));
    out
}

fn request_view(r: store::RequestRow) -> LoggedRequest {
    LoggedRequest {
        id: r.id,
        request_id: r.request_id,
        user_id: r.user_id,
        key_id: r.key_id,
        model: r.model,
        stream: r.stream != 0,
        channel_id: r.channel_id,
        channel_name: r.channel_name,
        status: r.status,
        detail: r.detail,
        http_status: r.http_status,
        cost: r.cost,
        prompt_tokens: r.prompt_tokens,
        completion_tokens: r.completion_tokens,
        duration_ms: r.duration_ms,
        ttfb_ms: r.ttfb_ms,
        attempt_count: r.attempt_count,
        created_at: ms_to_rfc3339(r.created_at),
    }
}

/// A text filter: trimmed, at most 128 characters.
fn text_filter(field: &str, value: Option<String>) -> ApiResult<String> {
    let value = value.unwrap_or_default().trim().to_string();
    if value.chars().count() > 128 || value.contains('\0') {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} is too long."),
            format!("{field} 过长。"),
        ));
    }
    Ok(value)
}

/// An optional RFC 3339 time.
fn time_filter(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => rfc3339_to_ms(text).map(Some).ok_or_else(|| {
            ApiError::invalid_field(
                field,
                format!("{field} must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z."),
                format!("{field} 必须是 RFC 3339 时间，例如 2026-01-31T00:00:00Z。"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_read_from_buckets() {
        let mut h = [(0, 0); LATENCY_BUCKETS.len()];
        assert_eq!(median(&h), None);
        h[2] = (1, 150); // one at 150 ms
        assert_eq!(median(&h), Some(150));
        h[0] = (10, 300); // ten averaging 30 ms
        assert_eq!(median(&h), Some(30));
        h[9] = (30, 30 * 2_500); // thirty around 2.5 s: the middle is among them
        assert_eq!(median(&h), Some(2_500));
    }
}
