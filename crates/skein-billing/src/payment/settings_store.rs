//! The `payment_settings` table: the payment settings an admin stored. Portable across SQLite
//! and PostgreSQL, like the rest of the crate's SQL.

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

/// Every stored setting: `(name, JSON value)`, by name.
pub(crate) async fn all<'e>(
    db: impl Executor<'e, Database = Any>,
) -> DbResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT name, value FROM payment_settings ORDER BY name")
            .fetch_all(db)
            .await?,
    )
}

/// Writes one setting (insert or replace).
pub(crate) async fn put<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    value: &str,
    by: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO payment_settings (name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
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
pub(crate) async fn replace<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    let done = sqlx::query("UPDATE payment_settings SET value = $3 WHERE name = $1 AND value = $2")
        .bind(name)
        .bind(old)
        .bind(new)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets one setting: the file's value applies again.
pub(crate) async fn delete<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM payment_settings WHERE name = $1")
        .bind(name)
        .execute(db)
        .await?;
    Ok(())
}
