//! SQL of the account features: one-time mail links, the mail queue, the session list and
//! two-factor sign-in. Portable across SQLite and PostgreSQL, like the rest of `store`.

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

/// What a one-time link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves an address (at registration, on a resend, or a new address on change).
    VerifyEmail,
    /// Sets a new password.
    ResetPassword,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }
}

/// Stores a one-time link's hash. Earlier links of the same purpose stop working: only the
/// newest mail's link does.
pub async fn insert_account_token(
    tx: &mut sqlx::Transaction<'_, Any>,
    token_hash: &str,
    user_id: &str,
    purpose: TokenPurpose,
    email: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(email)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Uses a link once: answers `(user id, email)` if it exists, has this purpose, is unused and
/// unexpired. One statement, so two clicks racing cannot both succeed.
pub async fn consume_account_token<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> DbResult<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "UPDATE account_tokens SET used_at = $3 \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
         RETURNING user_id, email",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(e)
    .await?)
}

/// Voids the account's unused password-reset links: all of them (the password changed), or
/// those mailed to another address than `email` (the address changed), so a link in a
/// mailbox the account no longer names stops working.
pub async fn void_reset_links<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    email: Option<&str>,
    now: i64,
) -> DbResult<()> {
    let query = match email {
        Some(_) => {
            "UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'reset_password' AND used_at IS NULL AND email <> $3"
        }
        None => {
            "UPDATE account_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'reset_password' AND used_at IS NULL"
        }
    };
    let mut q = sqlx::query(query).bind(user_id).bind(now);
    if let Some(email) = email {
        q = q.bind(email);
    }
    q.execute(e).await?;
    Ok(())
}

/// Sets the account's email to a proved address.
pub async fn set_verified_email<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    email: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET email = $2, email_verified_at = $3, updated_at = $3 WHERE id = $1",
    )
    .bind(user_id)
    .bind(email)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A message for the queue.
pub struct NewMail<'a> {
    /// Id (time-ordered).
    pub id: &'a str,
    /// Recipient.
    pub to: &'a str,
    /// Subject line.
    pub subject: &'a str,
    /// Plain-text part.
    pub text: &'a str,
    /// HTML part.
    pub html: &'a str,
    /// Template name, for logs.
    pub kind: &'a str,
    /// Now, ms.
    pub now: i64,
}

/// Queues a message, due at once.
pub async fn insert_mail<'c, E: Executor<'c, Database = Any>>(
    e: E,
    m: &NewMail<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, to_address, subject, text_body, html_body, kind, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(m.id)
    .bind(m.to)
    .bind(m.subject)
    .bind(m.text)
    .bind(m.html)
    .bind(m.kind)
    .bind(m.now)
    .execute(e)
    .await?;
    Ok(())
}

/// A queued message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailRow {
    /// Id.
    pub id: String,
    /// Recipient.
    pub to_address: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// Template name.
    pub kind: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it is due, ms.
    pub next_attempt_at: i64,
}

/// Pending messages that are due, oldest first.
pub async fn due_mail<'c, E: Executor<'c, Database = Any>>(
    e: E,
    now: i64,
    limit: i64,
) -> DbResult<Vec<MailRow>> {
    Ok(sqlx::query_as(
        "SELECT id, to_address, subject, text_body, html_body, kind, attempts, next_attempt_at \
         FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(e)
    .await?)
}

/// Takes a message for one sending attempt until `lease_until`; false when another instance
/// took it first (its `next_attempt_at` moved).
pub async fn claim_mail<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    seen_next_attempt_at: i64,
    lease_until: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE mail_outbox SET next_attempt_at = $3 \
         WHERE id = $1 AND status = 'pending' AND next_attempt_at = $2",
    )
    .bind(id)
    .bind(seen_next_attempt_at)
    .bind(lease_until)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a message sent and drops its bodies (they hold one-time links).
pub async fn mail_sent<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE mail_outbox SET status = 'sent', sent_at = $2, attempts = attempts + 1, \
         text_body = '', html_body = '', last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(e)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again at `next_attempt_at`, or given up (`failed`).
pub async fn mail_failed<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    give_up: bool,
    next_attempt_at: i64,
    error: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4, \
         status = CASE WHEN $2 = 1 THEN 'failed' ELSE status END, \
         text_body = CASE WHEN $2 = 1 THEN '' ELSE text_body END, \
         html_body = CASE WHEN $2 = 1 THEN '' ELSE html_body END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(i64::from(give_up))
    .bind(next_attempt_at)
    .bind(error)
    .execute(e)
    .await?;
    Ok(())
}

/// One of a user's active sessions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionListRow {
    /// Session id.
    pub id: String,
    /// Started, ms.
    pub created_at: i64,
    /// Last token refresh, ms.
    pub last_used_at: i64,
    /// The client's user agent at sign-in.
    pub user_agent: Option<String>,
    /// The client's address at sign-in.
    pub ip: Option<String>,
}

/// A user's sessions that are neither revoked nor expired, most recently used first.
pub async fn active_sessions<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    now: i64,
) -> DbResult<Vec<SessionListRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, last_used_at, user_agent, ip FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
         ORDER BY last_used_at DESC, id DESC LIMIT 200",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(e)
    .await?)
}

/// Revokes one of the user's own sessions; false when no such active session is theirs.
pub async fn revoke_own_session<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    session_id: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoke_reason = 'revoked_by_user' \
         WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(session_id)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A user's TOTP row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRow {
    /// Base32 secret: sealed as stored, plain once the service opened it.
    pub secret: String,
    /// Set once confirmed with a first code.
    pub enabled_at: Option<i64>,
    /// The last time step a code was accepted for.
    pub last_step: i64,
}

/// The user's TOTP state.
pub async fn totp_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<Option<TotpRow>> {
    Ok(
        sqlx::query_as("SELECT secret, enabled_at, last_step FROM user_totp WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(e)
            .await?,
    )
}

/// Starts (or restarts) a set-up that is not confirmed yet; never replaces an enabled one.
pub async fn begin_totp(
    tx: &mut sqlx::Transaction<'_, Any>,
    user_id: &str,
    secret: &str,
    now: i64,
) -> DbResult<bool> {
    sqlx::query("DELETE FROM user_totp WHERE user_id = $1 AND enabled_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query(
        "INSERT INTO user_totp (user_id, secret, last_step, created_at) VALUES ($1, $2, 0, $3) \
         ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(secret)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Accepts a code's time step: only a step later than the last accepted one, so one code
/// cannot be used twice. Enables the set-up when `enable` is given.
pub async fn accept_totp_step<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    step: i64,
    enable_at: Option<i64>,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE user_totp SET last_step = $2, enabled_at = COALESCE(enabled_at, $3) \
         WHERE user_id = $1 AND last_step < $2",
    )
    .bind(user_id)
    .bind(step)
    .bind(enable_at)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every stored TOTP secret as stored, by user.
pub async fn totp_secrets<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> DbResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT user_id, secret FROM user_totp ORDER BY user_id")
            .fetch_all(e)
            .await?,
    )
}

/// Replaces a user's stored TOTP secret if it is still `old`; answers whether it was.
pub async fn replace_totp_secret<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    let done = sqlx::query("UPDATE user_totp SET secret = $3 WHERE user_id = $1 AND secret = $2")
        .bind(user_id)
        .bind(old)
        .bind(new)
        .execute(e)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns two-factor sign-in off: the secret and the recovery codes go.
pub async fn delete_totp(tx: &mut sqlx::Transaction<'_, Any>, user_id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Replaces the user's recovery codes with these hashes.
pub async fn replace_recovery_codes(
    tx: &mut sqlx::Transaction<'_, Any>,
    user_id: &str,
    hashes: &[String],
) -> DbResult<()> {
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for hash in hashes {
        sqlx::query("INSERT INTO totp_recovery_codes (code_hash, user_id) VALUES ($1, $2)")
            .bind(hash)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Uses a recovery code once; false when it is unknown, someone else's or used.
pub async fn use_recovery_code<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    code_hash: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE totp_recovery_codes SET used_at = $3 WHERE code_hash = $2 AND user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(code_hash)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many recovery codes the user has left.
pub async fn recovery_codes_left<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM totp_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(e)
    .await?;
    Ok(n)
}

/// Stores a sign-in challenge (the step after a right password).
pub async fn insert_challenge<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO login_challenges (token_hash, user_id, created_at, expires_at, failures) VALUES ($1, $2, $3, $4, 0)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(e)
    .await?;
    Ok(())
}

/// Counts one attempt against a live challenge (unused, unexpired, under `max_attempts`)
/// and answers its user; `None` when the challenge is gone or its attempts are used up. The
/// check and the count are one statement, so parallel attempts cannot exceed the limit.
pub async fn claim_challenge_attempt<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    now: i64,
    max_attempts: i64,
) -> DbResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE login_challenges SET failures = failures + 1 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND failures < $3 \
         RETURNING user_id",
    )
    .bind(token_hash)
    .bind(now)
    .bind(max_attempts)
    .fetch_optional(e)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Uses a challenge once; false when it was used meanwhile.
pub async fn use_challenge<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE login_challenges SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets (or clears) the uploaded avatar and points `avatar_url` at it; answers the previous
/// avatar file id.
pub async fn set_avatar_file(
    pool: &sqlx::AnyPool,
    user_id: &str,
    file_id: Option<&str>,
    now: i64,
) -> DbResult<Option<String>> {
    let previous = avatar_file(pool, user_id).await?;
    // The query string changes with the picture, so caches fetch the new one.
    let url = file_id.map(|id| {
        format!(
            "/api/v1/users/{user_id}/avatar?v={}",
            &id[id.len().saturating_sub(8)..]
        )
    });
    sqlx::query(
        "UPDATE users SET avatar_file_id = $2, avatar_url = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(user_id)
    .bind(file_id)
    .bind(url)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(previous)
}

/// The user's uploaded avatar file, if any.
pub async fn avatar_file<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<Option<String>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT avatar_file_id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(e)
            .await?;
    Ok(row.and_then(|(id,)| id))
}
