//! Kept responses of the OpenAI Responses API (`relay_responses`, migration 30086): what
//! `previous_response_id`, `GET /v1/responses/{id}` and background mode read.
//!
//! A row holds the input items its request added and the response object the client got; the
//! conversation before it is its previous response's, so continuing a conversation walks the
//! chain back. Every read and write names the owner: another user's id reads as unknown.
//! A background response is `queued`, then `in_progress` while an instance runs it (which
//! touches `updated_at` as a heartbeat), then final; only a row still open takes its final
//! state, so a cancel is never overwritten. Rows left open by an instance that stopped are
//! failed once their heartbeat is old.

use serde_json::{Value, json};
use skein_core::ids::now_ms;
use skein_db::sqlx;
use skein_db::{Db, DbResult};

/// Most earlier responses a conversation may reach back through.
pub const MAX_CHAIN: usize = 256;

/// How often a running background response touches its row (and reads whether it was
/// cancelled).
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// An open background response whose heartbeat is older than this was left by an instance
/// that stopped: it is failed.
pub const ABANDONED_AFTER_MS: i64 = 60_000;

/// A new kept response.
pub struct NewResponse<'a> {
    /// The response id (`resp_…`).
    pub id: &'a str,
    /// Whose it is.
    pub user_id: &'a str,
    /// The API key that asked.
    pub key_id: &'a str,
    /// The response it continues.
    pub previous_id: Option<&'a str>,
    /// Whether it runs in the background.
    pub background: bool,
    /// The input items the request added.
    pub input: &'a [Value],
    /// The response object.
    pub response: &'a Value,
}

/// A kept response as read back.
pub struct Kept {
    /// Whether it runs (or ran) in the background.
    pub background: bool,
    /// Its status (`queued`, `in_progress`, `completed`, `incomplete`, `failed`,
    /// `cancelled`).
    pub status: String,
    /// The input items its request added.
    pub input: Vec<Value>,
    /// The response object.
    pub response: Value,
}

/// Whether a status is still open (a background response being run).
pub fn is_open(status: &str) -> bool {
    matches!(status, "queued" | "in_progress")
}

/// Keeps a response.
pub async fn insert(db: &Db, new: NewResponse<'_>) -> DbResult<()> {
    let now = now_ms();
    let status = new.response["status"].as_str().unwrap_or("completed");
    sqlx::query(
        "INSERT INTO relay_responses (id, user_id, key_id, previous_id, status, background, input, response, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.key_id)
    .bind(new.previous_id)
    .bind(status)
    .bind(i64::from(new.background))
    .bind(Value::Array(new.input.to_vec()).to_string())
    .bind(new.response.to_string())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A user's kept response, if there is one.
pub async fn get(db: &Db, user_id: &str, id: &str) -> DbResult<Option<Kept>> {
    Ok(read(db, user_id, id).await?.map(|(kept, _)| kept))
}

/// A row's columns, as read.
type RowColumns = (i64, String, String, String, Option<String>);

/// A user's kept response and the id of the response it continues.
async fn read(db: &Db, user_id: &str, id: &str) -> DbResult<Option<(Kept, Option<String>)>> {
    let row: Option<RowColumns> = sqlx::query_as(
        "SELECT background, status, input, response, previous_id FROM relay_responses WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(background, status, input, response, previous)| {
        let input = match serde_json::from_str::<Value>(&input) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        (
            Kept {
                background: background != 0,
                status,
                input,
                response: serde_json::from_str(&response).unwrap_or(Value::Null),
            },
            previous,
        )
    }))
}

/// Why a conversation cannot be continued from a response.
pub enum ChainError {
    /// The response (or one before it) is not the user's or not kept.
    NotFound(String),
    /// The response is still being made (a background response not yet final).
    Open(String),
    /// More than [`MAX_CHAIN`] responses back.
    TooLong,
    /// The database failed.
    Db(skein_db::DbError),
}

impl From<skein_db::DbError> for ChainError {
    fn from(error: skein_db::DbError) -> Self {
        ChainError::Db(error)
    }
}

/// The conversation up to and including response `id`, as input items, oldest first: each
/// response's input items, then its output.
pub async fn history(db: &Db, user_id: &str, id: &str) -> Result<Vec<Value>, ChainError> {
    let mut turns = Vec::new();
    let mut next = Some(id.to_string());
    while let Some(current) = next {
        if turns.len() == MAX_CHAIN {
            return Err(ChainError::TooLong);
        }
        let Some((turn, previous)) = read(db, user_id, &current).await? else {
            return Err(ChainError::NotFound(current));
        };
        if is_open(&turn.status) {
            return Err(ChainError::Open(current));
        }
        turns.push(turn);
        next = previous;
    }
    let mut items = Vec::new();
    for mut turn in turns.into_iter().rev() {
        items.extend(turn.input);
        if let Value::Array(output) = turn.response["output"].take() {
            items.extend(output);
        }
    }
    Ok(items)
}

/// Deletes a user's kept response; false when there was none.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM relay_responses WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Moves an open background response to `status` with its `response` object; false when it
/// was no longer open (cancelled, or already final).
pub async fn settle_open(db: &Db, id: &str, response: &Value) -> DbResult<bool> {
    let status = response["status"].as_str().unwrap_or("failed");
    let done = sqlx::query(
        "UPDATE relay_responses SET status = $1, response = $2, updated_at = $3 \
         WHERE id = $4 AND status IN ('queued', 'in_progress')",
    )
    .bind(status)
    .bind(response.to_string())
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Touches a running background response's heartbeat; returns its status (`None` when the
/// row is gone).
pub async fn heartbeat(db: &Db, id: &str) -> DbResult<Option<String>> {
    sqlx::query(
        "UPDATE relay_responses SET updated_at = $1 WHERE id = $2 AND status IN ('queued', 'in_progress')",
    )
    .bind(now_ms())
    .bind(id)
    .execute(db.pool())
    .await?;
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM relay_responses WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    Ok(status.map(|(status,)| status))
}

/// Cancels a user's open background response: its object becomes `cancelled`. Returns the
/// response as it now stands, `None` when the user has no such response.
pub async fn cancel(db: &Db, user_id: &str, id: &str) -> DbResult<Option<Kept>> {
    let Some(mut current) = get(db, user_id, id).await? else {
        return Ok(None);
    };
    if !current.background || !is_open(&current.status) {
        return Ok(Some(current));
    }
    current.response["status"] = json!("cancelled");
    if settle_open(db, id, &current.response).await? {
        current.status = "cancelled".into();
        return Ok(Some(current));
    }
    // It ended meanwhile: what it ended as.
    get(db, user_id, id).await
}

/// Removes responses kept longer than `retention_days`, and fails open background responses
/// whose instance stopped. Returns the rows removed.
pub async fn prune(db: &Db, retention_days: u32) -> DbResult<u64> {
    let now = now_ms();
    let stale: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, response FROM relay_responses WHERE status IN ('queued', 'in_progress') AND updated_at < $1",
    )
    .bind(now - ABANDONED_AFTER_MS)
    .fetch_all(db.pool())
    .await?;
    for (id, response) in stale {
        let mut response = serde_json::from_str::<Value>(&response)
            .unwrap_or_else(|_| json!({"id": id, "object": "response"}));
        response["status"] = json!("failed");
        response["error"] = json!({"code": "server_error",
            "message": "The server running this response stopped before it finished."});
        settle_open(db, &id, &response).await?;
    }
    let cutoff = now - i64::from(retention_days) * 86_400_000;
    let done = sqlx::query("DELETE FROM relay_responses WHERE created_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}
