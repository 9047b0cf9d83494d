//! The `payment_settings` table: the payment settings an admin stored. Portable across SQLite
//! and PostgreSQL, like the rest of the crate's SQL.

use skein_db::DbResult;
use skein_db::settings::SettingsTable;
use skein_db::sqlx::{Any, Executor};

/// The table, written once in `skein_db`.
const TABLE: SettingsTable = SettingsTable("payment_settings");

/// Every stored setting: `(name, JSON value)`, by name.
pub(crate) async fn all<'e>(
    db: impl Executor<'e, Database = Any>,
) -> DbResult<Vec<(String, String)>> {
    TABLE.all(db).await
}

/// Writes one setting (insert or replace).
pub(crate) async fn put<'e>(
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
pub(crate) async fn replace<'e>(
    db: impl Executor<'e, Database = Any>,
    name: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    TABLE.replace(db, name, old, new).await
}

/// Forgets one setting: the configuration file's value applies again.
pub(crate) async fn delete<'e>(db: impl Executor<'e, Database = Any>, name: &str) -> DbResult<()> {
    TABLE.delete(db, name).await
}
