//! SQL of sign-in by SMS code: one-time codes (`phone_codes`) and accounts' numbers.

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

use crate::model::{USER_COLUMNS, UserRow};

/// A stored code.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    /// Id (part of what the digest covers).
    pub id: String,
    /// The account binding the number (`bind` codes).
    pub user_id: Option<String>,
    /// HMAC digest of the code.
    pub code_hash: String,
    /// Wrong tries left.
    pub attempts_left: i64,
}

/// A new code.
pub struct NewCode<'a> {
    /// Id.
    pub id: &'a str,
    /// E.164 number.
    pub phone: &'a str,
    /// `sign_in` or `bind`.
    pub purpose: &'a str,
    /// The binding account.
    pub user_id: Option<&'a str>,
    /// Digest.
    pub code_hash: &'a str,
    /// Wrong tries allowed.
    pub attempts: i64,
    /// Now, ms.
    pub now: i64,
    /// Expiry, ms.
    pub expires_at: i64,
}

/// Stores a code and voids the number's older unused codes of the same purpose, so only the
/// latest one sent works. Also drops codes that expired a day ago (the table stays small).
pub async fn insert_code(tx: &mut sqlx::Transaction<'_, Any>, c: &NewCode<'_>) -> DbResult<()> {
    sqlx::query(
        "UPDATE phone_codes SET used_at = $3 WHERE phone = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(c.phone)
    .bind(c.purpose)
    .bind(c.now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM phone_codes WHERE expires_at < $1")
        .bind(c.now - 24 * 3600 * 1000)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO phone_codes (id, phone, purpose, user_id, code_hash, attempts_left, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.id)
    .bind(c.phone)
    .bind(c.purpose)
    .bind(c.user_id)
    .bind(c.code_hash)
    .bind(c.attempts)
    .bind(c.now)
    .bind(c.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Voids a code (the SMS could not be sent).
pub async fn void_code<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE phone_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(e)
        .await?;
    Ok(())
}

/// The number's live code for `purpose`: unused, unexpired, with tries left.
pub async fn live_code<'c, E: Executor<'c, Database = Any>>(
    e: E,
    phone: &str,
    purpose: &str,
    now: i64,
) -> DbResult<Option<CodeRow>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, code_hash, attempts_left FROM phone_codes \
         WHERE phone = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 AND attempts_left > 0 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(phone)
    .bind(purpose)
    .bind(now)
    .fetch_optional(e)
    .await?)
}

/// Takes one try from a code before it is compared; answers whether one was left. One atomic
/// step, so parallel guesses cannot share a try.
pub async fn take_attempt<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE phone_codes SET attempts_left = attempts_left - 1 \
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 AND attempts_left > 0",
    )
    .bind(id)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a right code used; answers whether this call did (a code works once).
pub async fn use_code<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query("UPDATE phone_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(e)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The account with this number.
pub async fn user_by_phone<'c, E: Executor<'c, Database = Any>>(
    e: E,
    phone: &str,
) -> DbResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE phone = $1");
    Ok(sqlx::query_as(&sql).bind(phone).fetch_optional(e).await?)
}

/// Sets (or, with `None`, removes) an account's number.
pub async fn set_phone<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    phone: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE users SET phone = $2, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(phone)
        .bind(now)
        .execute(e)
        .await?;
    Ok(())
}
