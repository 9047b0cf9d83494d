//! SQL of the system settings and of each user's display preferences. Portable across SQLite
//! and PostgreSQL, like the rest of `store`.

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

/// Every stored setting: `(name, JSON value)`.
pub async fn settings<'e>(
    db: impl Executor<'e, Database = Any>,
) -> DbResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT name, value FROM system_settings ORDER BY name")
            .fetch_all(db)
            .await?,
    )
}

/// Writes one setting (insert or replace).
pub async fn put_setting<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    value: &str,
    by: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO system_settings (name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces one setting's value only if it is still `old` (start-up re-sealing, which two
/// instances may run at once); answers whether it did.
pub async fn replace_setting<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    let done = sqlx::query("UPDATE system_settings SET value = $3 WHERE name = $1 AND value = $2")
        .bind(name)
        .bind(old)
        .bind(new)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets one setting: the configuration file's value applies again.
pub async fn delete_setting<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM system_settings WHERE name = $1")
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
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
