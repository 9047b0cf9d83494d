//! The User service's SQL. Portable across SQLite and PostgreSQL; nothing outside this crate
//! touches these tables.

pub mod accounts;
pub mod oauth;
pub mod passkeys;
pub mod phone;
pub mod settings;

pub use accounts::{avatar_file, set_avatar_file};

use skein_core::auth::Role;
use skein_db::sqlx::{self, Any, Executor};
use skein_db::{DbError, DbResult};

use crate::model::{INVITE_COLUMNS, InviteRow, USER_COLUMNS, UserRow, UserStatus};

/// Fields of a new account.
pub struct NewUser<'a> {
    /// Id.
    pub id: &'a str,
    /// Username.
    pub username: Option<&'a str>,
    /// Lower-cased email.
    pub email: Option<&'a str>,
    /// Argon2id hash.
    pub password_hash: &'a str,
    /// Shown name.
    pub display_name: &'a str,
    /// UI language.
    pub language: &'a str,
    /// Role.
    pub role: Role,
    /// Inviter.
    pub invited_by: Option<&'a str>,
    /// Now, ms.
    pub now: i64,
}

/// Inserts an account.
pub async fn insert_user<'c, E: Executor<'c, Database = Any>>(
    e: E,
    u: &NewUser<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO users (id, username, username_key, email, password_hash, display_name, language, theme, role, \
         status, invited_by, created_at, updated_at, password_changed_at) \
         VALUES ($1, $2, $10, $3, $4, $5, $6, 'system', $7, 'active', $8, $9, $9, $9)",
    )
    .bind(u.id)
    .bind(u.username)
    .bind(u.email)
    .bind(u.password_hash)
    .bind(u.display_name)
    .bind(u.language)
    .bind(u.role.as_str())
    .bind(u.invited_by)
    .bind(u.now)
    .bind(u.username.map(str::to_lowercase))
    .execute(e)
    .await?;
    Ok(())
}

/// A user by id.
pub async fn user_by_id<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> DbResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(e).await?)
}

/// A user by email (when `login` contains `@`) or by case-insensitive username.
pub async fn user_by_login<'c, E: Executor<'c, Database = Any>>(
    e: E,
    login: &str,
) -> DbResult<Option<UserRow>> {
    // Lower-cased here, not with SQL lower(): SQLite's only folds ASCII.
    let login = login.trim().to_lowercase();
    let sql = if login.contains('@') {
        format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")
    } else {
        format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1")
    };
    Ok(sqlx::query_as(&sql).bind(login).fetch_optional(e).await?)
}

/// Which of an email and a username are taken already.
pub async fn taken<'c, E: Executor<'c, Database = Any>>(
    e: E,
    email: Option<&str>,
    username: Option<&str>,
) -> DbResult<(bool, bool)> {
    let (email_taken, username_taken): (i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM users WHERE email = $1), \
           (SELECT COUNT(*) FROM users WHERE username_key = $2)",
    )
    .bind(email.unwrap_or(""))
    .bind(username.map(str::to_lowercase).unwrap_or_default())
    .fetch_one(e)
    .await?;
    Ok((email_taken > 0, username_taken > 0))
}

/// Marks a one-time fact; answers true for the caller that set it first.
pub async fn claim_flag<'c, E: Executor<'c, Database = Any>>(
    e: E,
    name: &str,
    value: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO user_flags (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the flag `name` was ever claimed.
pub async fn flag_exists<'c, E: Executor<'c, Database = Any>>(e: E, name: &str) -> DbResult<bool> {
    let row = sqlx::query("SELECT 1 FROM user_flags WHERE name = $1")
        .bind(name)
        .fetch_optional(e)
        .await?;
    Ok(row.is_some())
}

/// Counts one use of an invite code if it can still be used; answers `(code id, owner id)`.
/// One statement, so two people racing for a code's last use cannot both win.
pub async fn use_invite_code<'c, E: Executor<'c, Database = Any>>(
    e: E,
    code: &str,
    now: i64,
) -> DbResult<Option<(String, String)>> {
    Ok(sqlx::query_as(
        "UPDATE invite_codes SET used_count = used_count + 1 \
         WHERE code = $1 AND disabled = 0 AND (expires_at IS NULL OR expires_at > $2) \
           AND (max_uses = 0 OR used_count < max_uses) \
         RETURNING id, owner_id",
    )
    .bind(code.trim().to_uppercase())
    .bind(now)
    .fetch_optional(e)
    .await?)
}

/// Records who invited whom.
pub async fn insert_invitation<'c, E: Executor<'c, Database = Any>>(
    e: E,
    invitee: &str,
    inviter: &str,
    code_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("INSERT INTO invitations (invitee_id, inviter_id, code_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(invitee)
        .bind(inviter)
        .bind(code_id)
        .bind(now)
        .execute(e)
        .await?;
    Ok(())
}

/// Fields of a new session.
pub struct NewSession<'a> {
    /// Session id.
    pub id: &'a str,
    /// Its user.
    pub user_id: &'a str,
    /// Hash of its first refresh token.
    pub token_hash: &'a str,
    /// Expiry, ms.
    pub expires_at: i64,
    /// Client's user agent (truncated).
    pub user_agent: Option<&'a str>,
    /// Client's address.
    pub ip: &'a str,
    /// Now, ms.
    pub now: i64,
}

/// Inserts a session and its first refresh token.
pub async fn insert_session(
    tx: &mut sqlx::Transaction<'_, Any>,
    s: &NewSession<'_>,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip) \
         VALUES ($1, $2, $3, $3, $4, $5, $6)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.user_agent)
    .bind(s.ip)
    .execute(&mut **tx)
    .await?;
    insert_refresh_token(tx, s.token_hash, s.id, s.now).await
}

/// Inserts a refresh token of a session.
pub async fn insert_refresh_token(
    tx: &mut sqlx::Transaction<'_, Any>,
    token_hash: &str,
    session_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A refresh token with the state of its session and user.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshLookup {
    /// The session.
    pub session_id: String,
    /// Set when this token was already rotated away.
    pub used_at: Option<i64>,
    /// The user.
    pub user_id: String,
    /// Set when the session was revoked.
    pub revoked_at: Option<i64>,
    /// Session expiry, ms.
    pub expires_at: i64,
    /// The user's role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The user's status.
    #[sqlx(try_from = "String")]
    pub status: UserStatus,
}

/// Looks up a refresh token by hash.
pub async fn refresh_lookup<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
) -> DbResult<Option<RefreshLookup>> {
    Ok(sqlx::query_as(
        "SELECT rt.session_id, rt.used_at, s.user_id, s.revoked_at, s.expires_at, u.role, u.status \
         FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
         WHERE rt.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(e)
    .await?)
}

/// Marks a token used; false when someone else used it first.
pub async fn mark_token_used<'c, E: Executor<'c, Database = Any>>(
    e: E,
    token_hash: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
    )
    .bind(token_hash)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends a session after a refresh.
pub async fn touch_session<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE id = $1")
        .bind(id)
        .bind(now)
        .bind(expires_at)
        .execute(e)
        .await?;
    Ok(())
}

/// Revokes one session.
pub async fn revoke_session<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    reason: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(reason)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live session of a user except `keep`; answers how many.
pub async fn revoke_user_sessions<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoke_reason = $4 \
         WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .bind(now)
    .bind(reason)
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// The gateway's view of a session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// The user.
    pub user_id: String,
    /// The user's role.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The user's status.
    #[sqlx(try_from = "String")]
    pub status: UserStatus,
    /// Set when revoked.
    pub revoked_at: Option<i64>,
    /// Expiry, ms.
    pub expires_at: i64,
    /// Non-zero when the user has a second factor (TOTP on, or a passkey).
    pub totp_enabled: i64,
}

/// A session with its user's role and status.
pub async fn session_row<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
) -> DbResult<Option<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT s.user_id, u.role, u.status, s.revoked_at, s.expires_at, \
           ((SELECT COUNT(*) FROM user_totp t WHERE t.user_id = s.user_id AND t.enabled_at IS NOT NULL) \
            + (SELECT COUNT(*) FROM passkeys p WHERE p.user_id = s.user_id)) AS totp_enabled \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await?)
}

/// Sets a new password hash (which also lets an account made by a provider sign-in use it).
pub async fn set_password<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    hash: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, password_changed_at = $3, updated_at = $3, password_login = 1 WHERE id = $1",
    )
    .bind(user_id)
    .bind(hash)
    .bind(now)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a sign-in.
pub async fn set_last_login<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
        .bind(user_id)
        .bind(now)
        .execute(e)
        .await?;
    Ok(())
}

/// Profile fields to change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Default)]
pub struct ProfileChange {
    /// Shown name.
    pub display_name: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<Option<String>>,
    /// UI language.
    pub language: Option<String>,
    /// UI theme.
    pub theme: Option<String>,
}

/// Applies a profile change.
pub async fn update_profile<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    c: &ProfileChange,
    now: i64,
) -> DbResult<()> {
    // CASE keeps one statement for any subset of fields: $n_set says whether to write.
    sqlx::query(
        "UPDATE users SET \
           display_name = CASE WHEN $2 = 1 THEN $3 ELSE display_name END, \
           avatar_url   = CASE WHEN $4 = 1 THEN $5 ELSE avatar_url END, \
           language     = CASE WHEN $6 = 1 THEN $7 ELSE language END, \
           theme        = CASE WHEN $8 = 1 THEN $9 ELSE theme END, \
           updated_at   = $10 \
         WHERE id = $1",
    )
    .bind(user_id)
    .bind(i64::from(c.display_name.is_some()))
    .bind(c.display_name.clone().unwrap_or_default())
    .bind(i64::from(c.avatar_url.is_some()))
    .bind(c.avatar_url.clone().flatten())
    .bind(i64::from(c.language.is_some()))
    .bind(c.language.clone().unwrap_or_default())
    .bind(i64::from(c.theme.is_some()))
    .bind(c.theme.clone().unwrap_or_default())
    .bind(now)
    .execute(e)
    .await?;
    Ok(())
}

/// Sets role and/or status.
pub async fn set_role_status<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    role: Option<Role>,
    status: Option<UserStatus>,
    expected_role: Option<Role>,
    now: i64,
) -> DbResult<bool> {
    // `expected_role` makes the permission check and the write one step: if someone changed
    // the target's role since it was read, nothing is written.
    let done = sqlx::query(
        "UPDATE users SET role = COALESCE($2, role), status = COALESCE($3, status), updated_at = $4 \
         WHERE id = $1 AND ($5 = '' OR role = $5)",
    )
    .bind(user_id)
    .bind(role.map(Role::as_str))
    .bind(status.map(UserStatus::as_str))
    .bind(now)
    .bind(expected_role.map_or("", Role::as_str))
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Filters of the admin user list.
pub struct UserFilter<'a> {
    /// Substring of username, email or display name.
    pub q: &'a str,
    /// Exact role, if filtered.
    pub role: Option<Role>,
    /// Exact status, if filtered.
    pub status: Option<UserStatus>,
}

const USER_FILTER: &str = "($1 = '' OR COALESCE(username_key, '') LIKE $2 ESCAPE '\\' \
     OR COALESCE(email, '') LIKE $2 ESCAPE '\\' OR lower(display_name) LIKE $2 ESCAPE '\\') \
     AND ($3 = '' OR role = $3) AND ($4 = '' OR status = $4)";

/// A page of users, newest first, and the total matching.
pub async fn list_users(
    pool: &sqlx::AnyPool,
    f: &UserFilter<'_>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<UserRow>, i64)> {
    let pattern = format!("%{}%", escape_like(&f.q.to_lowercase()));
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {USER_FILTER} ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    );
    let rows = sqlx::query_as(&sql)
        .bind(f.q)
        .bind(&pattern)
        .bind(f.role.map_or("", Role::as_str))
        .bind(f.status.map_or("", UserStatus::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM users WHERE {USER_FILTER}"))
            .bind(f.q)
            .bind(&pattern)
            .bind(f.role.map_or("", Role::as_str))
            .bind(f.status.map_or("", UserStatus::as_str))
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}

/// Escapes `%`, `_` and `\` so user text matches literally in `LIKE ... ESCAPE '\'`.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Inserts an invite code.
pub async fn insert_invite<'c, E: Executor<'c, Database = Any>>(
    e: E,
    row: &InviteRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO invite_codes (id, code, owner_id, by_admin, max_uses, used_count, expires_at, disabled, note, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, $8)",
    )
    .bind(&row.id)
    .bind(&row.code)
    .bind(&row.owner_id)
    .bind(row.by_admin)
    .bind(row.max_uses)
    .bind(row.expires_at)
    .bind(&row.note)
    .bind(row.created_at)
    .execute(e)
    .await?;
    Ok(())
}

/// A user's own invite codes, newest first.
pub async fn invites_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    owner: &str,
) -> DbResult<Vec<InviteRow>> {
    let sql = format!(
        "SELECT {INVITE_COLUMNS} FROM invite_codes WHERE owner_id = $1 ORDER BY created_at DESC, id DESC"
    );
    Ok(sqlx::query_as(&sql).bind(owner).fetch_all(e).await?)
}

/// How many codes a user made themselves (admin-made codes do not count).
pub async fn count_own_invites<'c, E: Executor<'c, Database = Any>>(
    e: E,
    owner: &str,
) -> DbResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM invite_codes WHERE owner_id = $1 AND by_admin = 0")
            .bind(owner)
            .fetch_one(e)
            .await?;
    Ok(n)
}

/// A page of all invite codes, newest first.
pub async fn list_invites(
    pool: &sqlx::AnyPool,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<InviteRow>, i64)> {
    let sql = format!(
        "SELECT {INVITE_COLUMNS} FROM invite_codes ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    );
    let rows = sqlx::query_as(&sql)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invite_codes")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// Enables or disables a code; answers the row after the change.
pub async fn set_invite_disabled(
    pool: &sqlx::AnyPool,
    id: &str,
    disabled: bool,
) -> DbResult<Option<InviteRow>> {
    sqlx::query("UPDATE invite_codes SET disabled = $2 WHERE id = $1")
        .bind(id)
        .bind(i64::from(disabled))
        .execute(pool)
        .await?;
    let sql = format!("SELECT {INVITE_COLUMNS} FROM invite_codes WHERE id = $1");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

/// People a user invited.
#[derive(Debug, sqlx::FromRow)]
pub struct InviteeRow {
    /// Their id.
    pub id: String,
    /// Their shown name.
    pub display_name: String,
    /// When they joined, ms.
    pub created_at: i64,
}

/// The people a user invited, newest first.
pub async fn invitees_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    inviter: &str,
) -> DbResult<Vec<InviteeRow>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.display_name, i.created_at FROM invitations i JOIN users u ON u.id = i.invitee_id \
         WHERE i.inviter_id = $1 ORDER BY i.created_at DESC",
    )
    .bind(inviter)
    .fetch_all(e)
    .await?)
}

/// Whether a storage error says a unique key is taken.
pub fn is_conflict(e: &DbError) -> bool {
    skein_db::is_unique_violation(e)
}
