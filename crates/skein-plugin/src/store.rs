//! The Plugin service's tables: `plugins`, `plugin_enablements`, `plugin_conversation_tools`,
//! `plugin_settings` and `plugin_tool_charges`. Every query that reads a plugin for a user
//! also takes the user's id, so another user's private plugin reads as missing.

use skein_db::{Db, DbResult};
use sqlx::FromRow;

/// A plugin row.
#[derive(Debug, Clone, FromRow)]
pub struct PluginRow {
    /// Id.
    pub id: String,
    /// Its owner, for a private plugin; `None` for one an admin published.
    pub owner_id: Option<String>,
    /// Display name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// An icon name or URL.
    pub icon: String,
    /// Its market category.
    pub category: String,
    /// `builtin`, `openapi` or `mcp`.
    pub kind: String,
    /// Which built-in (`web_search`, `image_generation`).
    pub builtin: Option<String>,
    /// The server its calls go to.
    pub base_url: String,
    /// Its tools, JSON.
    pub tools: String,
    /// `none`, `api_key_header`, `api_key_query`, `bearer`.
    pub auth_kind: String,
    /// The header or query parameter an API key goes in.
    pub auth_name: String,
    /// The sealed key, if the plugin has its own.
    pub auth_secret: Option<String>,
    /// JSON Schema of a user's settings.
    pub settings_schema: String,
    /// Names of the secrets a user must supply, JSON array.
    pub required_secrets: String,
    /// Calls made, by everyone.
    pub calls: i64,
    /// Quota one call costs (0: free), unless `tool_prices` names the tool.
    pub price_per_call: i64,
    /// Prices of single tools over `price_per_call`, JSON object of name → quota.
    pub tool_prices: String,
    /// 1 when every call waits for the user's approval before it runs.
    pub requires_approval: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, owner_id, name, description, icon, category, kind, builtin, base_url, tools, \
     auth_kind, auth_name, auth_secret, settings_schema, required_secrets, calls, price_per_call, tool_prices, \
     requires_approval, created_at, updated_at";

/// A user's choice for a plugin.
#[derive(Debug, Clone, FromRow)]
pub struct EnablementRow {
    /// The plugin.
    pub plugin_id: String,
    /// 1 when enabled.
    pub enabled: i64,
    /// Their settings, JSON.
    pub settings: String,
    /// Their sealed secrets.
    pub secrets: Option<String>,
    /// Their calls.
    pub calls: i64,
}

/// The plugins `user_id` sees: every published one and their own, published first.
pub async fn visible(db: &Db, user_id: &str) -> DbResult<Vec<PluginRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugins WHERE owner_id IS NULL OR owner_id = $1 \
         ORDER BY CASE WHEN owner_id IS NULL THEN 0 ELSE 1 END, created_at, id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Every plugin (the admin's list).
pub async fn all(db: &Db) -> DbResult<Vec<PluginRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugins ORDER BY created_at, id"
    ))
    .fetch_all(db.pool())
    .await?)
}

/// Plugin `id` if `user_id` may see it.
pub async fn visible_one(db: &Db, user_id: &str, id: &str) -> DbResult<Option<PluginRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plugins WHERE id = $1 AND (owner_id IS NULL OR owner_id = $2)"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Plugin `id`, whoever owns it (admins).
pub async fn one(db: &Db, id: &str) -> DbResult<Option<PluginRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM plugins WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Stores a new plugin.
pub async fn insert(db: &Db, row: &PluginRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO plugins (id, owner_id, name, description, icon, category, kind, builtin, base_url, tools, \
         auth_kind, auth_name, auth_secret, settings_schema, required_secrets, calls, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16, $16)",
    )
    .bind(&row.id)
    .bind(&row.owner_id)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.icon)
    .bind(&row.category)
    .bind(&row.kind)
    .bind(&row.builtin)
    .bind(&row.base_url)
    .bind(&row.tools)
    .bind(&row.auth_kind)
    .bind(&row.auth_name)
    .bind(&row.auth_secret)
    .bind(&row.settings_schema)
    .bind(&row.required_secrets)
    .bind(row.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// What an admin changes of a plugin; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct PluginPatch {
    /// Display name.
    pub name: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// Icon.
    pub icon: Option<String>,
    /// Market category.
    pub category: Option<String>,
    /// JSON Schema of users' settings.
    pub settings_schema: Option<String>,
    /// Quota per call.
    pub price_per_call: Option<i64>,
    /// Per-tool prices, JSON.
    pub tool_prices: Option<String>,
    /// Whether calls wait for approval.
    pub requires_approval: Option<bool>,
}

/// Changes plugin `id` (any owner: admins); whether it existed.
pub async fn update(db: &Db, id: &str, patch: &PluginPatch, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE plugins SET name = COALESCE($2, name), description = COALESCE($3, description), \
         icon = COALESCE($4, icon), category = COALESCE($5, category), \
         settings_schema = COALESCE($6, settings_schema), price_per_call = COALESCE($7, price_per_call), \
         tool_prices = COALESCE($8, tool_prices), requires_approval = COALESCE($9, requires_approval), \
         updated_at = $10 WHERE id = $1",
    )
    .bind(id)
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(&patch.icon)
    .bind(&patch.category)
    .bind(&patch.settings_schema)
    .bind(patch.price_per_call)
    .bind(&patch.tool_prices)
    .bind(patch.requires_approval.map(i64::from))
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Claims `call_key` for a paid call; false when it was claimed before (the call was
/// already charged, or is being, under that key).
pub async fn claim_charge(
    db: &Db,
    call_key: &str,
    user_id: &str,
    plugin_id: &str,
    tool: &str,
    price: i64,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO plugin_tool_charges (call_key, user_id, plugin_id, tool, price, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'held', $6) ON CONFLICT (call_key) DO NOTHING",
    )
    .bind(call_key)
    .bind(user_id)
    .bind(plugin_id)
    .bind(tool)
    .bind(price)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records how a claimed paid call ended (`charged`, `released`), with its hold.
pub async fn finish_charge(
    db: &Db,
    call_key: &str,
    reservation_id: Option<&str>,
    status: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE plugin_tool_charges SET reservation_id = COALESCE($2, reservation_id), status = $3 WHERE call_key = $1",
    )
    .bind(call_key)
    .bind(reservation_id)
    .bind(status)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Forgets a claim whose hold was refused, so nothing says it was paid.
pub async fn drop_charge(db: &Db, call_key: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM plugin_tool_charges WHERE call_key = $1 AND status = 'held'")
        .bind(call_key)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Rows removed per statement when pruning, so one prune never holds the table for long.
const PRUNE_BATCH: i64 = 1000;

/// Removes the records of paid calls that were charged or released before `before` (ms);
/// answers how many. Records still `held` stay: their call's end was never written.
pub async fn prune_charges(db: &Db, before: i64) -> DbResult<u64> {
    let mut removed = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM plugin_tool_charges WHERE call_key IN (SELECT call_key FROM plugin_tool_charges \
             WHERE created_at < $1 AND status IN ('charged', 'released') LIMIT $2)",
        )
        .bind(before)
        .bind(PRUNE_BATCH)
        .execute(db.pool())
        .await?
        .rows_affected();
        removed += done;
        if done < PRUNE_BATCH as u64 {
            return Ok(removed);
        }
    }
}

/// Deletes plugin `id` with everyone's choices for it; whether it existed.
pub async fn delete(db: &Db, id: &str) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM plugin_enablements WHERE plugin_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM plugin_conversation_tools WHERE plugin_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let gone = sqlx::query("DELETE FROM plugins WHERE id = $1 AND builtin IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(gone > 0)
}

/// `user_id`'s choices, for every plugin they touched.
pub async fn enablements(db: &Db, user_id: &str) -> DbResult<Vec<EnablementRow>> {
    Ok(sqlx::query_as(
        "SELECT plugin_id, enabled, settings, secrets, calls FROM plugin_enablements WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// Writes `user_id`'s choice for `plugin_id`; `secrets` `None` keeps the stored ones.
pub async fn set_enablement(
    db: &Db,
    user_id: &str,
    plugin_id: &str,
    enabled: bool,
    settings: &str,
    secrets: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO plugin_enablements (user_id, plugin_id, enabled, settings, secrets, calls, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6) \
         ON CONFLICT (user_id, plugin_id) DO UPDATE SET enabled = excluded.enabled, settings = excluded.settings, \
         secrets = COALESCE(excluded.secrets, plugin_enablements.secrets), updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(plugin_id)
    .bind(i64::from(enabled))
    .bind(settings)
    .bind(secrets)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The toggles `user_id` set in `conversation_id`: plugin id → enabled.
pub async fn conversation_toggles(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
) -> DbResult<Vec<(String, bool)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT plugin_id, enabled FROM plugin_conversation_tools WHERE user_id = $1 AND conversation_id = $2",
    )
    .bind(user_id)
    .bind(conversation_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(id, on)| (id, on != 0)).collect())
}

/// Sets (`Some`) or clears (`None`, back to the user's choice) a conversation's toggle.
pub async fn set_conversation_toggle(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
    plugin_id: &str,
    enabled: Option<bool>,
) -> DbResult<()> {
    match enabled {
        Some(on) => {
            sqlx::query(
                "INSERT INTO plugin_conversation_tools (user_id, conversation_id, plugin_id, enabled) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, conversation_id, plugin_id) DO UPDATE SET enabled = excluded.enabled",
            )
            .bind(user_id)
            .bind(conversation_id)
            .bind(plugin_id)
            .bind(i64::from(on))
            .execute(db.pool())
            .await?;
        }
        None => {
            sqlx::query(
                "DELETE FROM plugin_conversation_tools WHERE user_id = $1 AND conversation_id = $2 AND plugin_id = $3",
            )
            .bind(user_id)
            .bind(conversation_id)
            .bind(plugin_id)
            .execute(db.pool())
            .await?;
        }
    }
    Ok(())
}

/// Counts one call of `plugin_id` by `user_id`.
pub async fn count_call(db: &Db, plugin_id: &str, user_id: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE plugins SET calls = calls + 1 WHERE id = $1")
        .bind(plugin_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE plugin_enablements SET calls = calls + 1 WHERE user_id = $1 AND plugin_id = $2",
    )
    .bind(user_id)
    .bind(plugin_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The admin setting `name`, JSON.
pub async fn setting(db: &Db, name: &str) -> DbResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT value FROM plugin_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|r| r.0))
}

/// Writes the admin setting `name`.
pub async fn set_setting(db: &Db, name: &str, value: &str) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO plugin_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(db.pool())
    .await?;
    Ok(())
}
