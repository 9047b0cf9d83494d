//! SQL of passkeys: registered credentials (`passkeys`) and ceremony challenges
//! (`passkey_challenges`). Portable across SQLite and PostgreSQL, like the rest of `store`.

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

/// A stored passkey.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    /// Our id.
    pub id: String,
    /// The account.
    pub user_id: String,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The COSE public key, base64url.
    pub public_key: String,
    /// COSE algorithm.
    pub algorithm: i64,
    /// The last signature counter seen.
    pub sign_count: i64,
    /// The name its owner gave it.
    pub name: String,
    /// Added, ms.
    pub created_at: i64,
    /// Last sign-in, ms.
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, credential_id, public_key, algorithm, sign_count, name, created_at, last_used_at";

/// A new passkey.
pub struct NewPasskey<'a> {
    /// Our id.
    pub id: &'a str,
    /// The account.
    pub user_id: &'a str,
    /// The credential id, base64url.
    pub credential_id: &'a str,
    /// The COSE public key, base64url.
    pub public_key: &'a str,
    /// COSE algorithm.
    pub algorithm: i64,
    /// The counter at registration.
    pub sign_count: i64,
    /// Its name.
    pub name: &'a str,
    /// Now, ms.
    pub now: i64,
}

/// Stores a passkey (a credential id already registered is a unique violation).
pub async fn insert<'c, E: Executor<'c, Database = Any>>(e: E, p: &NewPasskey<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, sign_count, name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(p.id)
    .bind(p.user_id)
    .bind(p.credential_id)
    .bind(p.public_key)
    .bind(p.algorithm)
    .bind(p.sign_count)
    .bind(p.name)
    .bind(p.now)
    .execute(e)
    .await?;
    Ok(())
}

/// The account's passkeys, oldest first.
pub async fn of_user<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<Vec<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id"
    ))
    .bind(user_id)
    .fetch_all(e)
    .await?)
}

/// The passkey with this credential id.
pub async fn by_credential<'c, E: Executor<'c, Database = Any>>(
    e: E,
    credential_id: &str,
) -> DbResult<Option<PasskeyRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"
    ))
    .bind(credential_id)
    .fetch_optional(e)
    .await?)
}

/// Moves the counter on, only from the value the check saw (two sign-ins racing with one
/// counter value cannot both pass); answers whether it did.
pub async fn advance<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    seen: i64,
    next: i64,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE passkeys SET sign_count = $3, last_used_at = $4 WHERE id = $1 AND sign_count = $2",
    )
    .bind(id)
    .bind(seen)
    .bind(next)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the account's passkey `id`; false when the account has none with that id.
pub async fn delete<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    id: &str,
) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM passkeys WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(e)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores a challenge.
pub async fn insert_challenge<'c, E: Executor<'c, Database = Any>>(
    e: E,
    challenge_hash: &str,
    purpose: &str,
    user_id: Option<&str>,
    login_challenge: Option<&str>,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO passkey_challenges (challenge_hash, purpose, user_id, login_challenge, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(challenge_hash)
    .bind(purpose)
    .bind(user_id)
    .bind(login_challenge)
    .bind(now)
    .bind(expires_at)
    .execute(e)
    .await?;
    Ok(())
}

/// A claimed challenge: whom it was for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedChallenge {
    /// The account (register, second factor).
    pub user_id: Option<String>,
    /// The password step's challenge hash (second factor).
    pub login_challenge: Option<String>,
}

/// Uses the live challenge with this hash and purpose once, in one statement: answers whom
/// it was for, or `None` when it is unknown, used, expired or for another ceremony.
pub async fn claim_challenge<'c, E: Executor<'c, Database = Any>>(
    e: E,
    challenge_hash: &str,
    purpose: &str,
    now: i64,
) -> DbResult<Option<ClaimedChallenge>> {
    Ok(sqlx::query_as(
        "UPDATE passkey_challenges SET used_at = $3 \
         WHERE challenge_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
         RETURNING user_id, login_challenge",
    )
    .bind(challenge_hash)
    .bind(purpose)
    .bind(now)
    .fetch_optional(e)
    .await?)
}

/// Deletes challenges that expired before `before`.
pub async fn sweep_challenges<'c, E: Executor<'c, Database = Any>>(
    e: E,
    before: i64,
) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM passkey_challenges WHERE expires_at < $1")
        .bind(before)
        .execute(e)
        .await?;
    Ok(done.rows_affected())
}
