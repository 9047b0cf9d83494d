//! The Chat service's tables: `chat_conversations` and `chat_messages`. Every query that
//! takes an id from a client also takes the caller's user id, so another user's id reads as
//! missing.

use skein_db::{Db, DbResult};
use sqlx::FromRow;

/// How long a deleted conversation can be restored.
pub const RESTORE_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// A row of `chat_conversations`.
#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Title (empty until one is generated or given).
    pub title: String,
    /// 1 when pinned.
    pub pinned: i64,
    /// 1 when archived.
    pub archived: i64,
    /// Model setting.
    pub model: Option<String>,
    /// System prompt setting.
    pub system_prompt: Option<String>,
    /// Temperature setting.
    pub temperature: Option<f64>,
    /// top_p setting.
    pub top_p: Option<f64>,
    /// Answer length setting.
    pub max_tokens: Option<i64>,
    /// Most earlier messages sent with a new one.
    pub history_limit: Option<i64>,
    /// The leaf of the branch on screen.
    pub active_leaf_id: Option<String>,
    /// Summary of turns too old to fit the window.
    pub summary: Option<String>,
    /// The last message the summary covers.
    pub summary_upto: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last activity, ms.
    pub updated_at: i64,
    /// Deleted (restorable for 30 days), ms.
    pub deleted_at: Option<i64>,
}

impl ConversationRow {
    /// A new conversation of `user_id` titled `title`, created at `now`: no settings of its
    /// own, not pinned, archived or deleted, no message yet. Callers set what differs with
    /// struct update syntax (`ConversationRow { model, ..ConversationRow::new(..) }`).
    pub fn new(
        id: impl Into<String>,
        user_id: impl Into<String>,
        title: impl Into<String>,
        now: i64,
    ) -> ConversationRow {
        ConversationRow {
            id: id.into(),
            user_id: user_id.into(),
            title: title.into(),
            pinned: 0,
            archived: 0,
            model: None,
            system_prompt: None,
            temperature: None,
            top_p: None,
            max_tokens: None,
            history_limit: None,
            active_leaf_id: None,
            summary: None,
            summary_upto: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }
}

/// Where a message is: user messages are `Done` at once; an answer is `Streaming` while it is
/// written and ends `Done`, `Stopped` (by the user, keeping what was written) or `Failed`.
/// Stored and sent as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Being written.
    Streaming,
    /// Finished.
    Done,
    /// Stopped by the user; what was written is kept.
    Stopped,
    /// Ended by an error (see the message's `error`).
    Failed,
}

impl MessageStatus {
    /// The stored and sent name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Done => "done",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Failed => "failed",
        }
    }
}

/// Decoding a stored status (`#[sqlx(try_from = "String")]`). Only this service writes
/// messages, so a name it does not know is a damaged row: an error, not a guess.
impl TryFrom<String> for MessageStatus {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        [
            MessageStatus::Streaming,
            MessageStatus::Done,
            MessageStatus::Stopped,
            MessageStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or_else(|| format!("unknown message status {name:?}"))
    }
}

/// A row of `chat_messages` (without the stored context, which only the inspector reads).
#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    /// Id (UUIDv7: ordered by creation).
    pub id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Owner.
    pub user_id: String,
    /// Parent message.
    pub parent_id: Option<String>,
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Text.
    pub content: String,
    /// Reasoning text (assistant).
    pub reasoning: Option<String>,
    /// JSON array of image URLs (user).
    pub images: Option<String>,
    /// Where the message is.
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    /// Model that answered (assistant).
    pub model: Option<String>,
    /// Error code and message of a failed answer (JSON).
    pub error: Option<String>,
    /// Prompt tokens billed.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens billed.
    pub completion_tokens: Option<i64>,
    /// Quota units charged.
    pub cost: Option<i64>,
    /// JSON array of the citations an answer drew on (see [`crate::sources::Citation`]).
    pub sources: Option<String>,
    /// JSON array of the tools the answer called and their results (see
    /// [`crate::tools::ToolRecord`]); written when the answer ends.
    pub tool_calls: Option<String>,
    /// Why the model stopped (`stop`, `length`, `tool_calls`, ...); written when the answer
    /// ends, `None` for user messages and answers that ended without a reason.
    pub finish_reason: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last written, ms.
    pub updated_at: i64,
}

impl crate::tree::Node for MessageRow {
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }
}

const CONVERSATION_COLUMNS: &str = "id, user_id, title, pinned, archived, model, system_prompt, temperature, top_p, \
     max_tokens, history_limit, active_leaf_id, summary, summary_upto, created_at, updated_at, deleted_at";

const MESSAGE_COLUMNS: &str = "id, conversation_id, user_id, parent_id, role, content, reasoning, images, status, \
     model, error, prompt_tokens, completion_tokens, cost, sources, tool_calls, created_at, updated_at, finish_reason";

/// Inserts a conversation.
pub async fn insert_conversation<'e, E>(db: E, c: &ConversationRow) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO chat_conversations ({CONVERSATION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULLIF($8, -1.0), NULLIF($9, -1.0), $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(&c.id)
    .bind(&c.user_id)
    .bind(&c.title)
    .bind(c.pinned)
    .bind(c.archived)
    .bind(&c.model)
    .bind(&c.system_prompt)
    .bind(skein_db::float_or_null(c.temperature))
    .bind(skein_db::float_or_null(c.top_p))
    .bind(c.max_tokens)
    .bind(c.history_limit)
    .bind(&c.active_leaf_id)
    .bind(&c.summary)
    .bind(&c.summary_upto)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.deleted_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The caller's conversation, deleted or not.
pub async fn conversation(db: &Db, user_id: &str, id: &str) -> DbResult<Option<ConversationRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM chat_conversations WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// What a conversation list shows.
pub struct ListFilter<'a> {
    /// Whose.
    pub user_id: &'a str,
    /// Archived ones instead of the others.
    pub archived: bool,
    /// Deleted (restorable) ones instead of the others.
    pub deleted: bool,
    /// Words to find in titles or message text.
    pub query: Option<&'a str>,
}

/// Escapes `%`, `_` and `!` (the escape character: unlike a backslash, it means the same in
/// every SQL dialect) so user text matches literally inside a LIKE pattern.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// The caller's conversations, pinned first, then by latest activity.
pub async fn list_conversations(
    db: &Db,
    filter: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> DbResult<Vec<ConversationRow>> {
    let mut sql =
        format!("SELECT {CONVERSATION_COLUMNS} FROM chat_conversations WHERE user_id = $1");
    if filter.deleted {
        // Deleted conversations are listed whether or not they were archived.
        // Positive only: an import being written is hidden under a negative marker.
        sql.push_str(" AND deleted_at > 0");
    } else if filter.archived {
        sql.push_str(" AND deleted_at IS NULL AND archived = 1");
    } else {
        sql.push_str(" AND deleted_at IS NULL AND archived = 0");
    }
    if filter.query.is_some() {
        // Substring search rather than a word index: it finds Chinese, which has no spaces
        // for a tokenizer to split on, and one user's history is small enough to scan.
        sql.push_str(
            " AND (LOWER(title) LIKE $3 ESCAPE '!' OR EXISTS (SELECT 1 FROM chat_messages m \
             WHERE m.conversation_id = chat_conversations.id AND LOWER(m.content) LIKE $3 ESCAPE '!'))",
        );
    }
    sql.push_str(&format!(
        " ORDER BY pinned DESC, updated_at DESC, id DESC LIMIT $2 OFFSET {}",
        offset.max(0)
    ));
    let mut query = sqlx::query_as(&sql).bind(filter.user_id).bind(limit);
    if let Some(q) = filter.query {
        query = query.bind(like_pattern(q));
    }
    Ok(query.fetch_all(db.pool()).await?)
}

/// For each of `conversation_ids`, the text of its first message that contains `query` (as
/// the search matched it: lower-cased, literally), to cut a snippet from. Conversations found
/// by their title alone have none.
pub async fn first_matches(
    db: &Db,
    user_id: &str,
    conversation_ids: &[&str],
    query: &str,
) -> DbResult<Vec<(String, String)>> {
    if conversation_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..conversation_ids.len())
        .map(|i| format!("${}", i + 3))
        .collect();
    // One row per conversation, however many of its messages match: the window keeps the
    // first, so a long history sends one text back rather than all of them. A question and
    // its answer may share a millisecond: the question counts as first.
    let sql = format!(
        "SELECT conversation_id, content FROM (SELECT conversation_id, content, \
         ROW_NUMBER() OVER (PARTITION BY conversation_id \
         ORDER BY created_at, CASE role WHEN 'user' THEN 0 ELSE 1 END, id) AS n \
         FROM chat_messages WHERE user_id = $1 AND LOWER(content) LIKE $2 ESCAPE '!' \
         AND conversation_id IN ({})) ranked WHERE n = 1",
        placeholders.join(", ")
    );
    let mut q = sqlx::query_as(&sql).bind(user_id).bind(like_pattern(query));
    for id in conversation_ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(db.pool()).await?)
}

/// Characters of context a search snippet keeps before the match.
const SNIPPET_BEFORE: usize = 40;
/// Characters a search snippet keeps from the match on.
const SNIPPET_AFTER: usize = 120;

/// A short piece of `text` around the first place `query` occurs (compared lower-cased, as
/// the search does), whitespace collapsed, with `…` where it was cut; the start of the text
/// when the query is not found as typed.
pub fn snippet(text: &str, query: &str) -> String {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let chars: Vec<char> = text.chars().collect();
    let lower: Vec<char> = chars.iter().map(|c| fold(*c)).collect();
    let needle: Vec<char> = query.chars().map(fold).collect();
    let at = if needle.is_empty() {
        None
    } else {
        lower
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
    };
    let (start, end) = match at {
        Some(at) => (
            at.saturating_sub(SNIPPET_BEFORE),
            (at + SNIPPET_AFTER).min(chars.len()),
        ),
        None => (
            0,
            SNIPPET_BEFORE
                .saturating_add(SNIPPET_AFTER)
                .min(chars.len()),
        ),
    };
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut space = false;
    for c in &chars[start..end] {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() && out != "…" {
            out.push(' ');
        }
        space = false;
        out.push(*c);
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

/// A new value for one column of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Text or NULL.
    Text(Option<String>),
    /// A number or NULL.
    Float(Option<f64>),
    /// An integer or NULL.
    Int(Option<i64>),
}

/// Writes only the columns given, to a conversation that is not deleted; false when there is
/// no such conversation. Writing only what changed keeps a concurrent title, pin or delete.
pub async fn update_fields(
    db: &Db,
    user_id: &str,
    id: &str,
    fields: &[(&'static str, Field)],
) -> DbResult<bool> {
    if fields.is_empty() {
        return Ok(true);
    }
    let sets: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, (column, value))| match value {
            // See skein_db::NULL_FLOAT: a NULL float is bound as a value and made NULL here.
            Field::Float(_) => format!("{column} = NULLIF(${}, -1.0)", i + 1),
            _ => format!("{column} = ${}", i + 1),
        })
        .collect();
    let n = fields.len();
    let sql = format!(
        "UPDATE chat_conversations SET {} WHERE id = ${} AND user_id = ${} AND deleted_at IS NULL",
        sets.join(", "),
        n + 1,
        n + 2
    );
    let mut query = sqlx::query(&sql);
    for (_, value) in fields {
        query = match value {
            Field::Text(v) => query.bind(v.clone()),
            Field::Float(v) => query.bind(skein_db::float_or_null(*v)),
            Field::Int(v) => query.bind(*v),
        };
    }
    let done = query.bind(id).bind(user_id).execute(db.pool()).await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes a conversation (restorable); false when there was none to delete.
pub async fn soft_delete(db: &Db, user_id: &str, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE chat_conversations SET deleted_at = $1 WHERE id = $2 AND user_id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Restores a conversation deleted less than the restore window ago; false otherwise.
pub async fn restore(db: &Db, user_id: &str, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE chat_conversations SET deleted_at = NULL \
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(now - RESTORE_WINDOW_MS)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Points the conversation at another leaf.
pub async fn set_active_leaf<'e, E>(
    db: E,
    conversation_id: &str,
    leaf: &str,
    now: i64,
) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE chat_conversations SET active_leaf_id = $1, updated_at = $2 WHERE id = $3")
        .bind(leaf)
        .bind(now)
        .bind(conversation_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Sets a title the user has not set (an empty one).
pub async fn set_generated_title(db: &Db, conversation_id: &str, title: &str) -> DbResult<bool> {
    let done = sqlx::query("UPDATE chat_conversations SET title = $1 WHERE id = $2 AND title = ''")
        .bind(title)
        .bind(conversation_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Stores a summary of the turns up to `upto`.
pub async fn set_summary(
    db: &Db,
    conversation_id: &str,
    summary: &str,
    upto: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE chat_conversations SET summary = $1, summary_upto = $2 WHERE id = $3")
        .bind(summary)
        .bind(upto)
        .bind(conversation_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Every message of the caller's conversation, oldest first.
pub async fn messages(db: &Db, user_id: &str, conversation_id: &str) -> DbResult<Vec<MessageRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE conversation_id = $1 AND user_id = $2 ORDER BY created_at, id"
    ))
    .bind(conversation_id)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Messages after `after_id` (by id) whose images are stored inline (`data:` URLs), as
/// `(id, user_id, images)`: what `skein migrate` moves into files, a batch at a time.
pub async fn inline_image_messages(
    db: &Db,
    after_id: &str,
    limit: i64,
) -> DbResult<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, images FROM chat_messages \
         WHERE id > $1 AND images LIKE '%\"data:%' ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Replaces a message's images when they are still `old` (a compare-and-set, so a run that
/// races another changes nothing twice).
pub async fn set_message_images(db: &Db, id: &str, old: &str, new: &str) -> DbResult<bool> {
    let done = sqlx::query("UPDATE chat_messages SET images = $1 WHERE id = $2 AND images = $3")
        .bind(new)
        .bind(id)
        .bind(old)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The caller's message.
pub async fn message(db: &Db, user_id: &str, id: &str) -> DbResult<Option<MessageRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// What was sent upstream for the caller's message (JSON), if it was recorded.
pub async fn context(db: &Db, user_id: &str, id: &str) -> DbResult<Option<Option<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT context FROM chat_messages WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|r| r.0))
}

/// Inserts a message.
pub async fn insert_message<'e, E>(db: E, m: &MessageRow) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO chat_messages ({MESSAGE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(&m.id)
    .bind(&m.conversation_id)
    .bind(&m.user_id)
    .bind(&m.parent_id)
    .bind(&m.role)
    .bind(&m.content)
    .bind(&m.reasoning)
    .bind(&m.images)
    .bind(m.status.as_str())
    .bind(&m.model)
    .bind(&m.error)
    .bind(m.prompt_tokens)
    .bind(m.completion_tokens)
    .bind(m.cost)
    .bind(&m.sources)
    .bind(&m.tool_calls)
    .bind(m.created_at)
    .bind(m.updated_at)
    .bind(&m.finish_reason)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts several messages in one statement. `anonymous` (SQLite) writes plain `?`
/// placeholders: SQLite finds a named one (`$7`) by a linear scan, so a statement of n named
/// parameters costs O(n²) before it runs (see billing's batches).
pub async fn insert_messages<'e, E>(db: E, rows: &[&MessageRow], anonymous: bool) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if rows.is_empty() {
        return Ok(());
    }
    const COLS: usize = 19;
    let mut values = String::with_capacity(rows.len() * COLS * 5);
    for r in 0..rows.len() {
        if r > 0 {
            values.push(',');
        }
        values.push('(');
        for c in 0..COLS {
            if c > 0 {
                values.push_str(", ");
            }
            if anonymous {
                values.push('?');
            } else {
                values.push_str(&format!("${}", r * COLS + c + 1));
            }
        }
        values.push(')');
    }
    let sql = format!("INSERT INTO chat_messages ({MESSAGE_COLUMNS}) VALUES {values}");
    let mut query = sqlx::query(&sql);
    for m in rows {
        query = query
            .bind(&m.id)
            .bind(&m.conversation_id)
            .bind(&m.user_id)
            .bind(&m.parent_id)
            .bind(&m.role)
            .bind(&m.content)
            .bind(&m.reasoning)
            .bind(&m.images)
            .bind(m.status.as_str())
            .bind(&m.model)
            .bind(&m.error)
            .bind(m.prompt_tokens)
            .bind(m.completion_tokens)
            .bind(m.cost)
            .bind(&m.sources)
            .bind(&m.tool_calls)
            .bind(m.created_at)
            .bind(m.updated_at)
            .bind(&m.finish_reason);
    }
    query.execute(db).await?;
    Ok(())
}

/// Opens a finished answer again to continue writing it (its status back to `streaming`,
/// its error cleared): false when it is no longer finished (another request got there).
pub async fn reopen_answer<'e, E>(db: E, id: &str, now: i64) -> DbResult<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE chat_messages SET status = 'streaming', error = NULL, finish_reason = NULL, \
         updated_at = $1 WHERE id = $2 AND role = 'assistant' AND status IN ('done', 'stopped', 'failed')",
    )
    .bind(now)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Saves the text of an answer still being written, so a crash loses little.
pub async fn save_progress(
    db: &Db,
    id: &str,
    content: &str,
    reasoning: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE chat_messages SET content = $1, reasoning = $2, updated_at = $3 WHERE id = $4 AND status = 'streaming'",
    )
    .bind(content)
    .bind(reasoning)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records the context sent upstream for an answer.
pub async fn save_context(db: &Db, id: &str, context: &str) -> DbResult<()> {
    sqlx::query("UPDATE chat_messages SET context = $1 WHERE id = $2")
        .bind(context)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// How an answer ended.
pub struct Finish<'a> {
    /// The whole text.
    pub content: &'a str,
    /// The whole reasoning.
    pub reasoning: &'a str,
    /// `Done`, `Stopped` or `Failed`.
    pub status: MessageStatus,
    /// Error (JSON) when failed.
    pub error: Option<String>,
    /// Prompt tokens, completion tokens and cost, when the upstream reported usage.
    pub usage: Option<(i64, i64, i64)>,
    /// The tools called and their results (JSON), when any were.
    pub tool_calls: Option<String>,
    /// Why the model stopped, when the upstream said.
    pub finish_reason: Option<String>,
}

/// Writes the end of an answer.
pub async fn finish(db: &Db, id: &str, f: &Finish<'_>, now: i64) -> DbResult<()> {
    let (prompt, completion, cost) = match f.usage {
        Some((p, c, cost)) => (Some(p), Some(c), Some(cost)),
        None => (None, None, None),
    };
    sqlx::query(
        "UPDATE chat_messages SET content = $1, reasoning = $2, status = $3, error = $4, \
         prompt_tokens = $5, completion_tokens = $6, cost = $7, updated_at = $8, tool_calls = $10, \
         finish_reason = $11 WHERE id = $9",
    )
    .bind(f.content)
    .bind((!f.reasoning.is_empty()).then_some(f.reasoning))
    .bind(f.status.as_str())
    .bind(&f.error)
    .bind(prompt)
    .bind(completion)
    .bind(cost)
    .bind(now)
    .bind(id)
    .bind(&f.tool_calls)
    .bind(&f.finish_reason)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Marks answers still `streaming` but not written since `before` as failed: the process
/// writing them is gone (a writer saves at least every [`crate::generate::HEARTBEAT_EVERY`]).
pub async fn fail_interrupted(db: &Db, before: i64, now: i64) -> DbResult<u64> {
    let error = r#"{"code":"interrupted","message":"The server stopped while this answer was being written."}"#;
    let done = sqlx::query(
        "UPDATE chat_messages SET status = 'failed', error = $1, updated_at = $2 \
         WHERE status = 'streaming' AND updated_at < $3",
    )
    .bind(error)
    .bind(now)
    .bind(before)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Takes `conversation_id`'s answer lock for `message_id` until `expires_at`, unless another
/// answer holds it unexpired; true when taken. One statement, so two instances racing for
/// the same conversation cannot both win.
pub async fn lock_answer(
    db: &Db,
    conversation_id: &str,
    message_id: &str,
    owner: &str,
    expires_at: i64,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO chat_answer_locks (conversation_id, message_id, owner, expires_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (conversation_id) DO UPDATE SET message_id = excluded.message_id, \
         owner = excluded.owner, expires_at = excluded.expires_at \
         WHERE chat_answer_locks.expires_at < $5",
    )
    .bind(conversation_id)
    .bind(message_id)
    .bind(owner)
    .bind(expires_at)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Extends the lock `message_id` holds; false when it no longer holds it.
pub async fn renew_answer_lock(
    db: &Db,
    conversation_id: &str,
    message_id: &str,
    expires_at: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE chat_answer_locks SET expires_at = $1 \
         WHERE conversation_id = $2 AND message_id = $3",
    )
    .bind(expires_at)
    .bind(conversation_id)
    .bind(message_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Frees the lock `message_id` holds (a newer answer's lock is left alone).
pub async fn unlock_answer(db: &Db, conversation_id: &str, message_id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM chat_answer_locks WHERE conversation_id = $1 AND message_id = $2")
        .bind(conversation_id)
        .bind(message_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The instance writing `message_id` now, if an unexpired lock says one is.
pub async fn answer_writer(db: &Db, message_id: &str, now: i64) -> DbResult<Option<String>> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT owner FROM chat_answer_locks WHERE message_id = $1 AND expires_at > $2",
    )
    .bind(message_id)
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    Ok(owner)
}

/// Drops every answer lock: at start-up on SQLite, where this process is the only writer,
/// so whatever it finds was left by one that stopped.
pub async fn clear_answer_locks(db: &Db) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM chat_answer_locks")
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// An import left hidden this long is taken for dead (its process stopped half way).
pub const ABANDONED_IMPORT_MS: i64 = 3600 * 1000;

/// The `deleted_at` that hides the conversations of an import started at `started_ms` until
/// it is shown: negative (so no restore or listing takes it for a deletion), with the start
/// time in it (so a dead import can be purged) and `nonce` (0–1023) to tell imports started
/// in the same millisecond apart.
pub fn import_marker(started_ms: i64, nonce: u16) -> i64 {
    -(started_ms.max(0).saturating_mul(1024) + i64::from(nonce % 1024)) - 1
}

/// Deletes for good the conversations deleted more than the restore window ago, and those of
/// imports that died hidden more than [`ABANDONED_IMPORT_MS`] ago (never one still running).
pub async fn purge_deleted(db: &Db, now: i64) -> DbResult<u64> {
    let before = now - RESTORE_WINDOW_MS;
    // Markers of imports started before this are at or above it (they are negative).
    let abandoned = import_marker(now - ABANDONED_IMPORT_MS, 0);
    let doomed = "(deleted_at > 0 AND deleted_at < $1) OR (deleted_at < 0 AND deleted_at >= $2)";
    let mut tx = db.begin_write().await?;
    for table in ["chat_messages", "chat_feedback", "chat_shares"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE conversation_id IN \
             (SELECT id FROM chat_conversations WHERE {doomed})"
        ))
        .bind(before)
        .bind(abandoned)
        .execute(&mut *tx)
        .await?;
    }
    let done = sqlx::query(&format!("DELETE FROM chat_conversations WHERE {doomed}"))
        .bind(before)
        .bind(abandoned)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Deletes the caller's messages `ids` (a branch: a message and everything under it) and
/// their feedback, and points the conversation at `active_leaf`, in one transaction.
pub async fn delete_branch(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
    ids: &[&str],
    active_leaf: Option<&str>,
    now: i64,
) -> DbResult<u64> {
    let mut tx = db.begin_write().await?;
    let mut deleted = 0;
    for id in ids {
        deleted += sqlx::query(
            "DELETE FROM chat_messages WHERE id = $1 AND user_id = $2 AND conversation_id = $3",
        )
        .bind(id)
        .bind(user_id)
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM chat_feedback WHERE message_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE chat_conversations SET active_leaf_id = $1, updated_at = $2 WHERE id = $3 AND user_id = $4")
        .bind(active_leaf)
        .bind(now)
        .bind(conversation_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    // A summary of turns that are gone would still carry their words into new answers.
    sqlx::query(
        "UPDATE chat_conversations SET summary = NULL, summary_upto = NULL \
         WHERE id = $1 AND summary_upto IS NOT NULL \
         AND summary_upto NOT IN (SELECT id FROM chat_messages WHERE conversation_id = $1)",
    )
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Records (or replaces) the caller's verdict on an answer.
pub async fn set_feedback(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
    message_id: &str,
    rating: &str,
    comment: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO chat_feedback (message_id, conversation_id, user_id, rating, comment, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (message_id) DO UPDATE SET rating = excluded.rating, comment = excluded.comment, created_at = excluded.created_at",
    )
    .bind(message_id)
    .bind(conversation_id)
    .bind(user_id)
    .bind(rating)
    .bind(comment)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Takes back the caller's verdict on an answer.
pub async fn clear_feedback(db: &Db, user_id: &str, message_id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM chat_feedback WHERE message_id = $1 AND user_id = $2")
        .bind(message_id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The caller's verdicts in a conversation, as `(message_id, rating)`.
pub async fn feedback_of(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
) -> DbResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT message_id, rating FROM chat_feedback WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation_id)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// A row of `chat_shares`.
#[derive(Debug, Clone, FromRow)]
pub struct ShareRow {
    /// Id.
    pub id: String,
    /// The link's secret.
    pub token: String,
    /// The conversation shared.
    pub conversation_id: String,
    /// Its owner.
    pub user_id: String,
    /// The last message shown.
    pub leaf_id: String,
    /// Created, ms.
    pub created_at: i64,
    /// Revoked, ms.
    pub revoked_at: Option<i64>,
}

const SHARE_COLUMNS: &str = "id, token, conversation_id, user_id, leaf_id, created_at, revoked_at";

/// Inserts a share link.
pub async fn insert_share(db: &Db, s: &ShareRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO chat_shares ({SHARE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&s.id)
    .bind(&s.token)
    .bind(&s.conversation_id)
    .bind(&s.user_id)
    .bind(&s.leaf_id)
    .bind(s.created_at)
    .bind(s.revoked_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The caller's live (unrevoked) links to a conversation, newest first.
pub async fn shares_of(db: &Db, user_id: &str, conversation_id: &str) -> DbResult<Vec<ShareRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SHARE_COLUMNS} FROM chat_shares WHERE conversation_id = $1 AND user_id = $2 AND revoked_at IS NULL ORDER BY created_at DESC, id DESC"
    ))
    .bind(conversation_id)
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Revokes the caller's link; false when it is not theirs or already revoked.
pub async fn revoke_share(db: &Db, user_id: &str, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query("UPDATE chat_shares SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The live link with this token.
pub async fn share_by_token(db: &Db, token: &str) -> DbResult<Option<ShareRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SHARE_COLUMNS} FROM chat_shares WHERE token = $1 AND revoked_at IS NULL"
    ))
    .bind(token)
    .fetch_optional(db.pool())
    .await?)
}

/// A user's chat preferences (see the `chat_preferences` table).
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct PreferencesRow {
    /// The model a new chat starts with (`None`: the server's default).
    pub default_model: Option<String>,
    /// `enter` or `mod_enter`.
    pub send_key: String,
    /// `small`, `medium` or `large`.
    pub font_size: String,
}

impl Default for PreferencesRow {
    fn default() -> Self {
        PreferencesRow {
            default_model: None,
            send_key: "enter".into(),
            font_size: "medium".into(),
        }
    }
}

/// The caller's chat preferences, if they ever set any.
pub async fn preferences(db: &Db, user_id: &str) -> DbResult<Option<PreferencesRow>> {
    Ok(sqlx::query_as(
        "SELECT default_model, send_key, font_size FROM chat_preferences WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Stores the caller's chat preferences (all of them, replacing what was there).
pub async fn put_preferences(db: &Db, user_id: &str, p: &PreferencesRow, now: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO chat_preferences (user_id, default_model, send_key, font_size, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id) DO UPDATE SET default_model = excluded.default_model, send_key = excluded.send_key, \
         font_size = excluded.font_size, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(&p.default_model)
    .bind(&p.send_key)
    .bind(&p.font_size)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A row of `chat_prompts`.
#[derive(Debug, Clone, FromRow)]
pub struct PromptRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// What follows `/` in the composer.
    pub command: String,
    /// A short name.
    pub title: String,
    /// The text inserted.
    pub content: String,
    /// 1 when every user sees it.
    pub shared: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
}

const PROMPT_COLUMNS: &str = "id, user_id, command, title, content, shared, created_at, updated_at";

/// The caller's prompts and every shared one, by command.
pub async fn prompts(db: &Db, user_id: &str) -> DbResult<Vec<PromptRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PROMPT_COLUMNS} FROM chat_prompts WHERE user_id = $1 OR shared = 1 ORDER BY command, id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// The caller's own prompt.
pub async fn own_prompt(db: &Db, user_id: &str, id: &str) -> DbResult<Option<PromptRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {PROMPT_COLUMNS} FROM chat_prompts WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Whether the caller already has a prompt with this command (other than `except`).
pub async fn command_taken(db: &Db, user_id: &str, command: &str, except: &str) -> DbResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM chat_prompts WHERE user_id = $1 AND command = $2 AND id <> $3",
    )
    .bind(user_id)
    .bind(command)
    .bind(except)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.is_some())
}

/// Inserts or replaces a prompt (by id).
pub async fn put_prompt(db: &Db, p: &PromptRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO chat_prompts ({PROMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET command = excluded.command, title = excluded.title, content = excluded.content, \
         shared = excluded.shared, updated_at = excluded.updated_at"
    ))
    .bind(&p.id)
    .bind(&p.user_id)
    .bind(&p.command)
    .bind(&p.title)
    .bind(&p.content)
    .bind(p.shared)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes the caller's prompt; false when it is not theirs.
pub async fn delete_prompt(db: &Db, user_id: &str, id: &str) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM chat_prompts WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_statuses_keep_their_names_and_an_unknown_one_is_refused() {
        for status in [
            MessageStatus::Streaming,
            MessageStatus::Done,
            MessageStatus::Stopped,
            MessageStatus::Failed,
        ] {
            assert_eq!(
                MessageStatus::try_from(status.as_str().to_string()),
                Ok(status)
            );
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert!(MessageStatus::try_from("queued".to_string()).is_err());
    }

    #[test]
    fn import_markers_are_negative_unique_and_ordered_by_start() {
        let a = import_marker(1_700_000_000_000, 0);
        assert!(a < 0);
        assert_ne!(a, import_marker(1_700_000_000_000, 1));
        // Older imports have markers closer to zero, so one comparison finds the stale ones.
        assert!(import_marker(1_600_000_000_000, 1023) > a);
        assert!(import_marker(0, 0) < 0);
    }

    /// A hidden import is never purged while it may still be running, and is once it is old.
    #[tokio::test]
    async fn purging_takes_dead_imports_and_old_deletions_only() {
        let db = Db::connect("sqlite::memory:", 1).await.unwrap();
        db.migrate(&[&crate::MIGRATIONS]).await.unwrap();
        let now = 10 * RESTORE_WINDOW_MS;
        let conversation = |id: &str, deleted_at: Option<i64>| ConversationRow {
            deleted_at,
            ..ConversationRow::new(id, "u", "", 0)
        };
        for (id, deleted_at) in [
            ("running", Some(import_marker(now - 60_000, 7))),
            (
                "dead",
                Some(import_marker(now - ABANDONED_IMPORT_MS - 1, 7)),
            ),
            ("recently-deleted", Some(now - 1_000)),
            ("long-deleted", Some(now - RESTORE_WINDOW_MS - 1)),
            ("live", None),
        ] {
            insert_conversation(db.pool(), &conversation(id, deleted_at))
                .await
                .unwrap();
        }
        assert_eq!(purge_deleted(&db, now).await.unwrap(), 2);
        let left: Vec<(String,)> = sqlx::query_as("SELECT id FROM chat_conversations ORDER BY id")
            .fetch_all(db.pool())
            .await
            .unwrap();
        let left: Vec<&str> = left.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(left, ["live", "recently-deleted", "running"]);
    }

    #[test]
    fn a_snippet_is_cut_around_the_match() {
        assert_eq!(snippet("short  text\nhere", "TEXT"), "short text here");
        let long = format!(
            "{} the NEEDLE is here {}",
            "a ".repeat(100),
            "b ".repeat(100)
        );
        let cut = snippet(&long, "needle");
        assert!(cut.starts_with('…') && cut.ends_with('…'), "{cut}");
        assert!(cut.contains("the NEEDLE is here"), "{cut}");
        assert!(
            cut.chars().count() <= SNIPPET_BEFORE + SNIPPET_AFTER + 2,
            "{cut}"
        );
        // Chinese is cut by characters, never inside one.
        let zh = format!("{}解析器{}", "很".repeat(60), "好".repeat(200));
        let cut = snippet(&zh, "解析器");
        assert!(cut.starts_with("…很") && cut.contains("解析器"), "{cut}");
        assert_eq!(snippet("no match at all", "zebra"), "no match at all");
    }

    #[test]
    fn search_text_matches_literally() {
        assert_eq!(like_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_pattern("你好 World"), "%你好 world%");
    }
}
