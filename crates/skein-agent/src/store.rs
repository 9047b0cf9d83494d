//! The Agent service's tables (`agents`, `agent_versions`, `agent_conversations`,
//! `agent_likes`, `agent_favourites`, `agent_usage`, `agent_categories`, `agent_reports`).
//! Every query that takes an assistant id from a client for a change also takes the owner's
//! id, so another user's assistant reads as missing.

use skein_db::{Db, DbResult};
use sqlx::FromRow;

/// An `agents` row.
#[derive(Debug, Clone, FromRow)]
pub struct AgentRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub owner_id: String,
    /// `private`, `link`, `public`.
    pub visibility: String,
    /// The draft, JSON.
    pub draft: String,
    /// The version new conversations use.
    pub current_version: Option<i64>,
    /// The highest version number given out.
    pub latest_version: i64,
    /// Current version's name.
    pub card_name: String,
    /// Current version's avatar.
    pub card_avatar: String,
    /// Current version's description.
    pub card_description: String,
    /// Current version's tags, newline-separated.
    pub card_tags: String,
    /// Current version's category.
    pub card_category: Option<String>,
    /// Listed in the market (1) or unlisted by an admin (0).
    pub listed: i64,
    /// Featured by an admin.
    pub featured: i64,
    /// Likes.
    pub likes: i64,
    /// Favourites.
    pub favourites: i64,
    /// Conversations started.
    pub conversations: i64,
    /// Messages sent.
    pub messages: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
    /// First published, ms.
    pub published_at: Option<i64>,
}

const AGENT_COLUMNS: &str = "a.id, a.owner_id, a.visibility, a.draft, a.current_version, a.latest_version, \
     a.card_name, a.card_avatar, a.card_description, a.card_tags, a.card_category, a.listed, a.featured, \
     a.likes, a.favourites, a.conversations, a.messages, a.created_at, a.updated_at, a.published_at";

/// An `agent_versions` row.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    /// Assistant.
    pub agent_id: String,
    /// Number, from 1.
    pub version: i64,
    /// The spec, JSON.
    pub spec: String,
    /// What changed.
    pub changelog: String,
    /// Who published it.
    pub author_id: String,
    /// The version it republished (rollback).
    pub source_version: Option<i64>,
    /// Published, ms.
    pub created_at: i64,
}

/// A conversation's pin (`agent_conversations`).
#[derive(Debug, Clone, FromRow)]
pub struct BindingRow {
    /// The chat conversation.
    pub conversation_id: String,
    /// The assistant.
    pub agent_id: String,
    /// The version.
    pub version: i64,
    /// Who chats.
    pub user_id: String,
    /// The model the user picked, when the assistant allows it.
    pub model: Option<String>,
    /// Started, ms.
    pub created_at: i64,
}

/// A market category.
#[derive(Debug, Clone, FromRow)]
pub struct CategoryRow {
    /// Id (a slug).
    pub id: String,
    /// English name.
    pub name_en: String,
    /// Chinese name.
    pub name_zh: String,
    /// Order in lists.
    pub sort: i64,
    /// Created, ms.
    pub created_at: i64,
}

/// A report.
#[derive(Debug, Clone, FromRow)]
pub struct ReportRow {
    /// Id.
    pub id: String,
    /// Reported assistant.
    pub agent_id: String,
    /// Reporter.
    pub user_id: String,
    /// Why.
    pub reason: String,
    /// Filed, ms.
    pub created_at: i64,
    /// Resolved, ms.
    pub resolved_at: Option<i64>,
}

/// A new assistant.
pub async fn insert_agent(
    db: &Db,
    id: &str,
    owner_id: &str,
    visibility: &str,
    draft: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO agents (id, owner_id, visibility, draft, latest_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $5)",
    )
    .bind(id)
    .bind(owner_id)
    .bind(visibility)
    .bind(draft)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Assistant `id` unless deleted.
pub async fn agent(db: &Db, id: &str) -> DbResult<Option<AgentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1 AND a.deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// Replaces the draft and visibility of `owner_id`'s assistant; whether it exists.
pub async fn update_draft(
    db: &Db,
    id: &str,
    owner_id: &str,
    draft: &str,
    visibility: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE agents SET draft = $1, visibility = $2, updated_at = $3 \
         WHERE id = $4 AND owner_id = $5 AND deleted_at IS NULL",
    )
    .bind(draft)
    .bind(visibility)
    .bind(now)
    .bind(id)
    .bind(owner_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks `owner_id`'s assistant deleted; its versions and pins stay, so its conversations go
/// on. Whether it existed.
pub async fn delete_agent(db: &Db, id: &str, owner_id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE agents SET deleted_at = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(owner_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `owner_id`'s assistants, newest change first, and how many there are.
pub async fn owned(
    db: &Db,
    owner_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AgentRow>, i64)> {
    let rows = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.owner_id = $1 AND a.deleted_at IS NULL \
         ORDER BY a.updated_at DESC, a.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(owner_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM agents WHERE owner_id = $1 AND deleted_at IS NULL")
            .bind(owner_id)
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// What a publish writes besides the spec.
pub struct Publish<'a> {
    /// Assistant.
    pub agent_id: &'a str,
    /// Its owner (who publishes).
    pub owner_id: &'a str,
    /// The spec, JSON.
    pub spec: &'a str,
    /// Card name.
    pub name: &'a str,
    /// Card avatar.
    pub avatar: &'a str,
    /// Card description.
    pub description: &'a str,
    /// Card tags, newline-separated.
    pub tags: &'a str,
    /// Card category.
    pub category: Option<&'a str>,
    /// Search text.
    pub search_text: &'a str,
    /// What changed.
    pub changelog: &'a str,
    /// Republished version (rollback).
    pub source_version: Option<i64>,
    /// Also make this spec the draft (rollback).
    pub reset_draft: bool,
    /// Now, ms.
    pub now: i64,
}

/// Publishes a new version in one transaction: the number is taken by incrementing the row's
/// counter first (which locks the row), so concurrent publishes get distinct numbers. `None`
/// when the assistant is not the owner's.
pub async fn publish(db: &Db, p: &Publish<'_>) -> DbResult<Option<i64>> {
    let mut tx = db.begin_write().await?;
    let number: Option<(i64,)> = sqlx::query_as(
        "UPDATE agents SET latest_version = latest_version + 1 \
         WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL RETURNING latest_version",
    )
    .bind(p.agent_id)
    .bind(p.owner_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((number,)) = number else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO agent_versions (agent_id, version, spec, changelog, author_id, source_version, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(p.agent_id)
    .bind(number)
    .bind(p.spec)
    .bind(p.changelog)
    .bind(p.owner_id)
    .bind(p.source_version)
    .bind(p.now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE agents SET current_version = $1, card_name = $2, card_avatar = $3, card_description = $4, \
         card_tags = $5, card_category = $6, search_text = $7, updated_at = $8, \
         published_at = COALESCE(published_at, $8), draft = CASE WHEN $9 = 1 THEN $10 ELSE draft END \
         WHERE id = $11",
    )
    .bind(number)
    .bind(p.name)
    .bind(p.avatar)
    .bind(p.description)
    .bind(p.tags)
    .bind(p.category)
    .bind(p.search_text)
    .bind(p.now)
    .bind(i64::from(p.reset_draft))
    .bind(p.spec)
    .bind(p.agent_id)
    .execute(&mut *tx)
    .await?;
    index_terms(&mut tx, p.agent_id, p.search_text).await?;
    refresh_trend(&mut tx, p.agent_id, p.now).await?;
    tx.commit().await?;
    Ok(Some(number))
}

/// The trending score in SQL, with `now` as parameter `$now_param`: reactions and use, divided
/// by the days since publish plus two, so new and active assistants rise and old ones sink.
/// Integer arithmetic, the same on both databases.
fn trend_expr(now_param: usize) -> String {
    format!(
        "((likes * 3 + favourites * 3 + conversations) * 1000) \
         / ((${now_param} - COALESCE(published_at, ${now_param})) / 86400000 + 2)"
    )
}

/// Works out one assistant's trending score again after its counters moved.
async fn refresh_trend(conn: &mut sqlx::AnyConnection, agent_id: &str, now: i64) -> DbResult<()> {
    sqlx::query(&format!(
        "UPDATE agents SET trend_score = {} WHERE id = $2",
        trend_expr(1)
    ))
    .bind(now)
    .bind(agent_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Works out every listed assistant's trending score again, as days pass (hourly). How many.
pub async fn refresh_trends(db: &Db, now: i64) -> DbResult<u64> {
    Ok(sqlx::query(&format!(
        "UPDATE agents SET trend_score = {} \
         WHERE current_version IS NOT NULL AND deleted_at IS NULL AND trend_score <> {}",
        trend_expr(1),
        trend_expr(1)
    ))
    .bind(now)
    .execute(db.pool())
    .await?
    .rows_affected())
}

/// Rows of `agent_terms` written per statement.
const TERMS_PER_INSERT: usize = 200;

/// Replaces an assistant's search terms with those of `search_text`.
pub async fn index_terms(
    conn: &mut sqlx::AnyConnection,
    agent_id: &str,
    search_text: &str,
) -> DbResult<()> {
    sqlx::query("DELETE FROM agent_terms WHERE agent_id = $1")
        .bind(agent_id)
        .execute(&mut *conn)
        .await?;
    let terms: Vec<String> = crate::search::terms_of(search_text).into_iter().collect();
    for chunk in terms.chunks(TERMS_PER_INSERT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, $1)", i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO agent_terms (term, agent_id) VALUES {}",
            values.join(", ")
        );
        // Each size of batch would be a statement of its own: not worth keeping prepared.
        let mut q = sqlx::query(&sql).persistent(false).bind(agent_id);
        for term in chunk {
            q = q.bind(term);
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE agents SET terms_version = $1 WHERE id = $2")
        .bind(crate::search::TERMS_VERSION)
        .bind(agent_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Indexes up to `limit` published assistants whose terms are missing or older than
/// [`crate::search::TERMS_VERSION`] (after an upgrade); how many it did.
pub async fn reindex_stale(db: &Db, limit: i64) -> DbResult<usize> {
    let stale: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, search_text FROM agents \
         WHERE current_version IS NOT NULL AND terms_version < $1 ORDER BY id LIMIT $2",
    )
    .bind(crate::search::TERMS_VERSION)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    for (id, text) in &stale {
        let mut tx = db.begin_write().await?;
        index_terms(&mut tx, id, text).await?;
        tx.commit().await?;
    }
    Ok(stale.len())
}

/// Every version of an assistant, newest first.
pub async fn versions(db: &Db, agent_id: &str) -> DbResult<Vec<VersionRow>> {
    Ok(sqlx::query_as(
        "SELECT agent_id, version, spec, changelog, author_id, source_version, created_at \
         FROM agent_versions WHERE agent_id = $1 ORDER BY version DESC",
    )
    .bind(agent_id)
    .fetch_all(db.pool())
    .await?)
}

/// One version.
pub async fn version(db: &Db, agent_id: &str, version: i64) -> DbResult<Option<VersionRow>> {
    Ok(sqlx::query_as(
        "SELECT agent_id, version, spec, changelog, author_id, source_version, created_at \
         FROM agent_versions WHERE agent_id = $1 AND version = $2",
    )
    .bind(agent_id)
    .bind(version)
    .fetch_optional(db.pool())
    .await?)
}

/// Pins a new conversation to a version and counts it, in one transaction.
pub async fn bind(db: &Db, b: &BindingRow, day: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO agent_conversations (conversation_id, agent_id, version, user_id, model, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&b.conversation_id)
    .bind(&b.agent_id)
    .bind(b.version)
    .bind(&b.user_id)
    .bind(&b.model)
    .bind(b.created_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE agents SET conversations = conversations + 1 WHERE id = $1")
        .bind(&b.agent_id)
        .execute(&mut *tx)
        .await?;
    refresh_trend(&mut tx, &b.agent_id, b.created_at).await?;
    sqlx::query(
        "INSERT INTO agent_usage (agent_id, day, user_id, conversations, messages) VALUES ($1, $2, $3, 1, 0) \
         ON CONFLICT (agent_id, day, user_id) DO UPDATE SET conversations = agent_usage.conversations + 1",
    )
    .bind(&b.agent_id)
    .bind(day)
    .bind(&b.user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Pins a preview conversation to the draft ([`DRAFT`]): counted nowhere, since the owner
/// trying their own draft is not use of the assistant.
pub async fn bind_preview(db: &Db, b: &BindingRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO agent_conversations (conversation_id, agent_id, version, user_id, model, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&b.conversation_id)
    .bind(&b.agent_id)
    .bind(DRAFT)
    .bind(&b.user_id)
    .bind(&b.model)
    .bind(b.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The version number of a preview pin: the draft as it is at each answer, not a version.
pub const DRAFT: i64 = 0;

/// The pin of `user_id`'s conversation.
pub async fn binding(
    db: &Db,
    conversation_id: &str,
    user_id: &str,
) -> DbResult<Option<BindingRow>> {
    Ok(sqlx::query_as(
        "SELECT conversation_id, agent_id, version, user_id, model, created_at FROM agent_conversations \
         WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation_id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Counts a message of a pinned conversation.
pub async fn count_message(db: &Db, agent_id: &str, user_id: &str, day: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE agents SET messages = messages + 1 WHERE id = $1")
        .bind(agent_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO agent_usage (agent_id, day, user_id, conversations, messages) VALUES ($1, $2, $3, 0, 1) \
         ON CONFLICT (agent_id, day, user_id) DO UPDATE SET messages = agent_usage.messages + 1",
    )
    .bind(agent_id)
    .bind(day)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Which reaction table a mark goes to.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    /// `agent_likes`, counted in `agents.likes`.
    Like,
    /// `agent_favourites`, counted in `agents.favourites`.
    Favourite,
}

impl Mark {
    fn table(self) -> &'static str {
        match self {
            Mark::Like => "agent_likes",
            Mark::Favourite => "agent_favourites",
        }
    }
    fn counter(self) -> &'static str {
        match self {
            Mark::Like => "likes",
            Mark::Favourite => "favourites",
        }
    }
}

/// Sets or clears `user_id`'s mark on an assistant. The row's unique key decides whether
/// anything changed, and the counter moves by one only then, in the same transaction, so
/// the count stays exact under any number of concurrent clicks. The count after.
pub async fn set_mark(
    db: &Db,
    mark: Mark,
    agent_id: &str,
    user_id: &str,
    on: bool,
    now: i64,
) -> DbResult<i64> {
    let (table, counter) = (mark.table(), mark.counter());
    let mut tx = db.begin_write().await?;
    let changed = if on {
        sqlx::query(&format!(
            "INSERT INTO {table} (agent_id, user_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (agent_id, user_id) DO NOTHING"
        ))
        .bind(agent_id)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE agent_id = $1 AND user_id = $2"
        ))
        .bind(agent_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    let delta: i64 = match (changed, on) {
        (0, _) => 0,
        (_, true) => 1,
        (_, false) => -1,
    };
    let (count,): (i64,) = sqlx::query_as(&format!(
        "UPDATE agents SET {counter} = {counter} + $1 WHERE id = $2 RETURNING {counter}"
    ))
    .bind(delta)
    .bind(agent_id)
    .fetch_one(&mut *tx)
    .await?;
    if delta != 0 {
        refresh_trend(&mut tx, agent_id, now).await?;
    }
    tx.commit().await?;
    Ok(count)
}

/// Whether `user_id` liked and favourited an assistant.
pub async fn marks(db: &Db, agent_id: &str, user_id: &str) -> DbResult<(bool, bool)> {
    let (liked, favourite): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM agent_likes WHERE agent_id = $1 AND user_id = $2), \
                (SELECT COUNT(*) FROM agent_favourites WHERE agent_id = $1 AND user_id = $2)",
    )
    .bind(agent_id)
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok((liked > 0, favourite > 0))
}

/// `user_id`'s favourites that are still visible to them, newest first.
pub async fn favourites(
    db: &Db,
    user_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<AgentRow>, i64)> {
    let visible = "a.deleted_at IS NULL AND a.current_version IS NOT NULL \
                   AND (a.owner_id = $1 OR a.visibility <> 'private')";
    let rows = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agent_favourites f JOIN agents a ON a.id = f.agent_id \
         WHERE f.user_id = $1 AND {visible} ORDER BY f.created_at DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM agent_favourites f JOIN agents a ON a.id = f.agent_id \
         WHERE f.user_id = $1 AND {visible}"
    ))
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok((rows, total))
}

/// How market results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Reactions and use, decaying with age since publish.
    Trending,
    /// Most recently first published.
    Newest,
    /// Most conversations.
    MostUsed,
    /// Most likes.
    MostLiked,
}

/// A market query.
pub struct MarketQuery<'a> {
    /// Search terms, already lower-cased; each must occur (AND).
    pub terms: &'a [String],
    /// Only this category.
    pub category: Option<&'a str>,
    /// Only featured ones.
    pub featured: bool,
    /// Order.
    pub sort: Sort,
    /// Page size.
    pub limit: i64,
    /// Skip.
    pub offset: i64,
}

/// Escapes `\`, `%` and `_` so a term matches itself only (used with `ESCAPE '\'`).
pub fn like_pattern(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Above this many cards with its rarest word, a search walks the market in its order and
/// checks each card's words, instead of starting from the cards with that word and sorting.
const DENSE: i64 = 5_000;

/// Positional parameters of a query being built, all text.
#[derive(Default)]
struct Params(Vec<String>);

impl Params {
    /// Adds `value`; its placeholder.
    fn push(&mut self, value: String) -> String {
        self.0.push(value);
        format!("${}", self.0.len())
    }
}

/// How many cards have a term `lookup` matches, counting no further than `cap`.
async fn frequency(db: &Db, lookup: &crate::search::Lookup, cap: i64) -> DbResult<i64> {
    let mut params = Params::default();
    let condition = lookup.condition(|v| params.push(v));
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM agent_terms t WHERE {condition} LIMIT {cap}) f"
    );
    let mut q = sqlx::query_as::<_, (i64,)>(&sql);
    for v in &params.0 {
        q = q.bind(v);
    }
    Ok(q.fetch_one(db.pool()).await?.0)
}

/// Published, public, listed assistants matching `q`, and how many match.
///
/// Each search word is looked up in `agent_terms` (see [`crate::search`]). When the rarest
/// is on few cards, those cards are the starting set (joined first, then sorted); when every
/// word is common, the market is read in the order of the sort's index and each card's words
/// are checked until the page is full. Either way each term's `LIKE` then checks the card's
/// exact text, so punctuation and `%`/`_` match as typed.
pub async fn market(db: &Db, q: &MarketQuery<'_>) -> DbResult<(Vec<AgentRow>, i64)> {
    market_counted(db, q, None).await
}

/// [`market`], with the total already known (counted in memory), so a page read in index
/// order does not count the whole market again.
pub async fn market_counted(
    db: &Db,
    q: &MarketQuery<'_>,
    known_total: Option<i64>,
) -> DbResult<(Vec<AgentRow>, i64)> {
    let mut lookups: Vec<crate::search::Lookup> = Vec::new();
    for term in q.terms {
        for lookup in crate::search::lookups(term) {
            if !lookups.contains(&lookup) {
                lookups.push(lookup);
            }
        }
    }
    let mut rarest: Option<(usize, i64)> = None;
    for (i, lookup) in lookups.iter().enumerate() {
        let n = frequency(db, lookup, DENSE + 1).await?;
        if n == 0 {
            return Ok((Vec::new(), 0));
        }
        if rarest.is_none_or(|(_, m)| n < m) {
            rarest = Some((i, n));
        }
    }
    let driver = rarest.filter(|(_, n)| *n <= DENSE).map(|(i, _)| i);

    let mut params = Params::default();
    let mut from = String::from("agents a");
    let mut filter = String::from(
        // The market indexes' own condition, word for word (migration 90002), so both
        // databases use them. `published_at` is set by the first publish, never cleared.
        "a.visibility = 'public' AND a.listed = 1 AND a.deleted_at IS NULL AND a.published_at IS NOT NULL",
    );
    for (i, lookup) in lookups.iter().enumerate() {
        let condition = lookup.condition(|v| params.push(v));
        if Some(i) == driver {
            // CROSS JOIN keeps SQLite from reading the market's index first (PostgreSQL
            // plans it as any join).
            from = format!(
                "(SELECT DISTINCT t.agent_id FROM agent_terms t WHERE {condition}) c CROSS JOIN agents a"
            );
            filter.push_str(" AND a.id = c.agent_id");
        } else {
            filter.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM agent_terms t WHERE t.agent_id = a.id AND {condition})"
            ));
        }
    }
    for term in q
        .terms
        .iter()
        .filter(|t| !crate::search::lookups_suffice(t))
    {
        let p = params.push(like_pattern(term));
        filter.push_str(&format!(" AND a.search_text LIKE {p} ESCAPE '\\'"));
    }
    if let Some(c) = q.category {
        let p = params.push(c.to_string());
        filter.push_str(&format!(" AND a.card_category = {p}"));
    }
    if q.featured {
        filter.push_str(" AND a.featured = 1");
    }
    let order = match q.sort {
        Sort::Trending => "a.featured DESC, a.trend_score DESC, a.published_at DESC",
        Sort::Newest => "a.published_at DESC",
        Sort::MostUsed => "a.conversations DESC, a.published_at DESC",
        Sort::MostLiked => "a.likes DESC, a.published_at DESC",
    };
    let n = params.0.len();
    // The page's ids first, from the indexes alone; from a few candidates the total comes
    // in the same pass, while reading the market in index order a count of its own lets
    // the page stop once it is full.
    let total_column = if driver.is_some() {
        "COUNT(*) OVER ()"
    } else {
        "CAST(0 AS BIGINT)"
    };
    let sql = format!(
        "SELECT a.id, {total_column} AS total FROM {from} WHERE {filter} \
         ORDER BY {order}, a.id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page = sqlx::query_as::<_, (String, i64)>(&sql);
    for v in &params.0 {
        page = page.bind(v);
    }
    let page = page
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(db.pool())
        .await?;
    let total = match (driver, page.first(), known_total) {
        (_, _, Some(total)) => total,
        (Some(_), Some((_, total)), None) => *total,
        _ => {
            let count_sql = format!("SELECT COUNT(*) FROM {from} WHERE {filter}");
            let mut count = sqlx::query_as::<_, (i64,)>(&count_sql);
            for v in &params.0 {
                count = count.bind(v);
            }
            count.fetch_one(db.pool()).await?.0
        }
    };
    let ids: Vec<String> = page.into_iter().map(|(id, _)| id).collect();
    Ok((rows_in_order(db, &ids, "").await?, total))
}

/// The rows of `ids` still in the market, in that order: a page found in memory, where a
/// card another instance took out since is left out.
pub async fn market_rows(db: &Db, ids: &[String]) -> DbResult<Vec<AgentRow>> {
    rows_in_order(
        db,
        ids,
        " AND a.visibility = 'public' AND a.listed = 1 AND a.deleted_at IS NULL",
    )
    .await
}

/// The rows of `ids` that meet `condition` (an `AND …` on `a`), in that order (one missing
/// since is left out).
async fn rows_in_order(db: &Db, ids: &[String], condition: &str) -> DbResult<Vec<AgentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id IN ({}){condition}",
        placeholders.join(", ")
    );
    // One statement per page size, at most 100: not worth keeping prepared.
    let mut q = sqlx::query_as::<_, AgentRow>(&sql).persistent(false);
    for id in ids {
        q = q.bind(id);
    }
    let mut rows = q.fetch_all(db.pool()).await?;
    rows.sort_by_key(|r| ids.iter().position(|id| *id == r.id));
    Ok(rows)
}

/// Usage of one day.
#[derive(Debug, Clone, FromRow)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Conversations started.
    pub conversations: i64,
    /// Messages sent.
    pub messages: i64,
    /// Distinct users.
    pub users: i64,
}

/// Per-day usage since `from_day` (inclusive), oldest first, and all-time unique users.
/// (PostgreSQL sums BIGINT to NUMERIC, hence the casts.)
pub async fn usage(db: &Db, agent_id: &str, from_day: &str) -> DbResult<(Vec<DayUsage>, i64)> {
    let days = sqlx::query_as(
        "SELECT day, CAST(SUM(conversations) AS BIGINT) AS conversations, CAST(SUM(messages) AS BIGINT) AS messages, COUNT(*) AS users \
         FROM agent_usage WHERE agent_id = $1 AND day >= $2 GROUP BY day ORDER BY day",
    )
    .bind(agent_id)
    .bind(from_day)
    .fetch_all(db.pool())
    .await?;
    let (users,): (i64,) =
        sqlx::query_as("SELECT COUNT(DISTINCT user_id) FROM agent_usage WHERE agent_id = $1")
            .bind(agent_id)
            .fetch_one(db.pool())
            .await?;
    Ok((days, users))
}

/// Every category, in order.
pub async fn categories(db: &Db) -> DbResult<Vec<CategoryRow>> {
    Ok(sqlx::query_as(
        "SELECT id, name_en, name_zh, sort, created_at FROM agent_categories ORDER BY sort, id",
    )
    .fetch_all(db.pool())
    .await?)
}

/// Adds or replaces a category.
pub async fn upsert_category(db: &Db, c: &CategoryRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO agent_categories (id, name_en, name_zh, sort, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET name_en = $2, name_zh = $3, sort = $4",
    )
    .bind(&c.id)
    .bind(&c.name_en)
    .bind(&c.name_zh)
    .bind(c.sort)
    .bind(c.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Removes a category; whether it existed.
pub async fn delete_category(db: &Db, id: &str) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM agent_categories WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets an assistant's moderation flags; whether it exists.
pub async fn moderate(
    db: &Db,
    id: &str,
    listed: Option<bool>,
    featured: Option<bool>,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE agents SET listed = COALESCE($1, listed), featured = COALESCE($2, featured) \
         WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(listed.map(i64::from))
    .bind(featured.map(i64::from))
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Files a report.
pub async fn insert_report(db: &Db, r: &ReportRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO agent_reports (id, agent_id, user_id, reason, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&r.id)
    .bind(&r.agent_id)
    .bind(&r.user_id)
    .bind(&r.reason)
    .bind(r.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Open reports, oldest first.
pub async fn open_reports(db: &Db, limit: i64, offset: i64) -> DbResult<(Vec<ReportRow>, i64)> {
    let rows = sqlx::query_as(
        "SELECT id, agent_id, user_id, reason, created_at, resolved_at FROM agent_reports \
         WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM agent_reports WHERE resolved_at IS NULL")
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// Resolves a report; whether it was open.
pub async fn resolve_report(db: &Db, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE agent_reports SET resolved_at = $1 WHERE id = $2 AND resolved_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
