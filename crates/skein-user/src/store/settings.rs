//! SQL of the system settings and of each user's display preferences. Portable across SQLite
//! and PostgreSQL, like the rest of `store`.

use skein_db::DbResult;
use skein_db::settings::SettingsTable;
use skein_db::sqlx::{self, Any, Executor};

/// The table, written once in `skein_db`.
const TABLE: SettingsTable = SettingsTable("system_settings");

/// Every stored setting: `(name, JSON value)`, by name.
pub async fn settings<'e>(
    db: impl Executor<'e, Database = Any>,
) -> DbResult<Vec<(String, String)>> {
    TABLE.all(db).await
}

/// Writes one setting (insert or replace).
pub async fn put_setting<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    value: &str,
    by: &str,
    now: i64,
) -> DbResult<()> {
    TABLE.put(db, name, value, by, now).await
}

/// Replaces one setting's value only if it is still `old` (start-up re-sealing, which two
/// instances may run at once); answers whether it did.
pub async fn replace_setting<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    TABLE.replace(db, name, old, new).await
}

/// Forgets one setting: the configuration file's value applies again.
pub async fn delete_setting<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> DbResult<()> {
    TABLE.delete(db, name).await
}

/// A user's own currency choice, if they made one.
pub async fn user_currency<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: &str,
) -> DbResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT currency FROM user_preferences WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(c,)| c))
}

/// Sets (or clears, with `None`) a user's own currency choice.
pub async fn set_user_currency<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: &str,
    currency: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO user_preferences (user_id, currency, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET currency = excluded.currency, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(currency)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
