//! A table of settings an admin stored over the configuration file, one JSON value per name
//! (`name`, `value`, `updated_at`, `updated_by`): the shape of the system settings and the
//! payment settings, written once. Portable across SQLite and PostgreSQL.

use sqlx::{Any, Executor};

use crate::DbResult;

/// One settings table, named by the service that owns it.
#[derive(Debug, Clone, Copy)]
pub struct SettingsTable(pub &'static str);

impl SettingsTable {
    /// Every stored setting: `(name, JSON value)`, by name.
    pub async fn all<'e>(
        self,
        db: impl Executor<'e, Database = Any>,
    ) -> DbResult<Vec<(String, String)>> {
        let sql = format!("SELECT name, value FROM {} ORDER BY name", self.0);
        Ok(sqlx::query_as(&sql).fetch_all(db).await?)
    }

    /// Writes one setting (insert or replace).
    pub async fn put<'e>(
        self,
        db: impl Executor<'e, Database = Any>,
        name: &str,
        value: &str,
        by: &str,
        now: i64,
    ) -> DbResult<()> {
        let sql = format!(
            "INSERT INTO {} (name, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            self.0
        );
        sqlx::query(&sql)
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
    pub async fn replace<'e>(
        self,
        db: impl Executor<'e, Database = Any>,
        name: &str,
        old: &str,
        new: &str,
    ) -> DbResult<bool> {
        let sql = format!(
            "UPDATE {} SET value = $3 WHERE name = $1 AND value = $2",
            self.0
        );
        let done = sqlx::query(&sql)
            .bind(name)
            .bind(old)
            .bind(new)
            .execute(db)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets one setting: the configuration file's value applies again.
    pub async fn delete<'e>(
        self,
        db: impl Executor<'e, Database = Any>,
        name: &str,
    ) -> DbResult<()> {
        let sql = format!("DELETE FROM {} WHERE name = $1", self.0);
        sqlx::query(&sql).bind(name).execute(db).await?;
        Ok(())
    }
}
