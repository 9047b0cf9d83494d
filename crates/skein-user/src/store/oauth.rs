//! SQL of sign-in with other services: admin-defined providers, linked identities, and
//! started sign-ins (`oauth_states`).

use skein_db::DbResult;
use skein_db::sqlx::{self, Any, Executor};

use crate::oauth::{ProviderConfig, ProviderKind};
use skein_core::secret::Secret;

/// A provider row.
#[derive(Debug, sqlx::FromRow)]
pub struct ProviderRow {
    /// Slug.
    pub slug: String,
    /// Kind (`oidc`, `google`, ...).
    pub kind: String,
    /// Button name.
    pub display_name: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (never answered by the API).
    pub client_secret: String,
    /// OIDC issuer.
    pub issuer: Option<String>,
    /// Microsoft tenant.
    pub tenant: Option<String>,
    /// Space-separated scopes.
    pub scopes: Option<String>,
    /// Authorization page override.
    pub authorize_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// API base override.
    pub api_url: Option<String>,
    /// 0/1.
    pub link_by_email: i64,
    /// 0/1.
    pub enabled: i64,
}

impl ProviderRow {
    /// The row as settings; `None` for a kind this build does not know.
    pub fn into_config(self) -> Option<(String, ProviderConfig)> {
        let kind = ProviderKind::parse(&self.kind)?;
        Some((
            self.slug,
            ProviderConfig {
                kind,
                display_name: Some(self.display_name),
                client_id: self.client_id,
                client_secret: Secret::new(self.client_secret),
                issuer: self.issuer,
                tenant: self.tenant,
                scopes: self
                    .scopes
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.split_whitespace().map(String::from).collect()),
                authorize_url: self.authorize_url,
                token_url: self.token_url,
                api_url: self.api_url,
                link_by_email: self.link_by_email != 0,
                enabled: self.enabled != 0,
            },
        ))
    }
}

const PROVIDER_COLUMNS: &str = "slug, kind, display_name, client_id, client_secret, issuer, tenant, scopes, \
     authorize_url, token_url, api_url, link_by_email, enabled";

/// Every admin-defined provider, by slug.
pub async fn providers<'c, E: Executor<'c, Database = Any>>(e: E) -> DbResult<Vec<ProviderRow>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM oauth_providers ORDER BY slug");
    Ok(sqlx::query_as(&sql).fetch_all(e).await?)
}

/// One admin-defined provider.
pub async fn provider<'c, E: Executor<'c, Database = Any>>(
    e: E,
    slug: &str,
) -> DbResult<Option<ProviderRow>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM oauth_providers WHERE slug = $1");
    Ok(sqlx::query_as(&sql).bind(slug).fetch_optional(e).await?)
}

/// Inserts or replaces an admin-defined provider.
pub async fn upsert_provider<'c, E: Executor<'c, Database = Any>>(
    e: E,
    slug: &str,
    p: &ProviderConfig,
    sealed_secret: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO oauth_providers (slug, kind, display_name, client_id, client_secret, issuer, tenant, scopes, \
           authorize_url, token_url, api_url, link_by_email, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
         ON CONFLICT (slug) DO UPDATE SET kind = $2, display_name = $3, client_id = $4, client_secret = $5, \
           issuer = $6, tenant = $7, scopes = $8, authorize_url = $9, token_url = $10, api_url = $11, \
           link_by_email = $12, enabled = $13, updated_at = $14",
    )
    .bind(slug)
    .bind(p.kind.as_str())
    .bind(p.display_name.clone().unwrap_or_else(|| p.kind.default_name().to_string()))
    .bind(&p.client_id)
    .bind(sealed_secret)
    .bind(p.issuer.as_deref())
    .bind(p.tenant.as_deref())
    .bind(p.scopes.as_ref().map(|s| s.join(" ")))
    .bind(p.authorize_url.as_deref())
    .bind(p.token_url.as_deref())
    .bind(p.api_url.as_deref())
    .bind(i64::from(p.link_by_email))
    .bind(i64::from(p.enabled))
    .bind(now)
    .execute(e)
    .await?;
    Ok(())
}

/// Every admin-defined provider's client secret as stored, by slug.
pub async fn provider_secrets<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> DbResult<Vec<(String, String)>> {
    Ok(
        sqlx::query_as("SELECT slug, client_secret FROM oauth_providers ORDER BY slug")
            .fetch_all(e)
            .await?,
    )
}

/// Replaces a provider's stored client secret if it is still `old`; answers whether it was.
pub async fn replace_provider_secret<'c, E: Executor<'c, Database = Any>>(
    e: E,
    slug: &str,
    old: &str,
    new: &str,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE oauth_providers SET client_secret = $3 WHERE slug = $1 AND client_secret = $2",
    )
    .bind(slug)
    .bind(old)
    .bind(new)
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes an admin-defined provider; answers whether it existed.
pub async fn delete_provider<'c, E: Executor<'c, Database = Any>>(
    e: E,
    slug: &str,
) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM oauth_providers WHERE slug = $1")
        .bind(slug)
        .execute(e)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A started sign-in.
pub struct NewState<'a> {
    /// SHA-256 of `state`.
    pub state_hash: &'a str,
    /// SHA-256 of the browser's `skein_oauth` cookie.
    pub browser_hash: &'a str,
    /// Provider slug.
    pub provider: &'a str,
    /// PKCE verifier.
    pub code_verifier: &'a str,
    /// OIDC nonce.
    pub nonce: &'a str,
    /// The account to link to, for a link (not a sign-in).
    pub link_user_id: Option<&'a str>,
    /// The invite code to register with.
    pub invite_code: Option<&'a str>,
    /// Now, ms.
    pub now: i64,
    /// Until when, ms.
    pub expires_at: i64,
}

/// Stores a started sign-in, and forgets those that ended over an hour ago.
pub async fn insert_state(tx: &mut sqlx::Transaction<'_, Any>, s: &NewState<'_>) -> DbResult<()> {
    sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
        .bind(s.now - 3_600_000)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO oauth_states (state_hash, browser_hash, provider, code_verifier, nonce, link_user_id, \
           invite_code, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.state_hash)
    .bind(s.browser_hash)
    .bind(s.provider)
    .bind(s.code_verifier)
    .bind(s.nonce)
    .bind(s.link_user_id)
    .bind(s.invite_code)
    .bind(s.now)
    .bind(s.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A started sign-in, claimed for its callback.
#[derive(Debug, sqlx::FromRow)]
pub struct StateRow {
    /// PKCE verifier.
    pub code_verifier: String,
    /// OIDC nonce.
    pub nonce: String,
    /// The account to link to.
    pub link_user_id: Option<String>,
    /// The invite code to register with.
    pub invite_code: Option<String>,
}

/// Claims a started sign-in: only once, only from the browser that started it, only for its
/// provider and only before it expires. One statement, so two callbacks cannot both win.
pub async fn claim_state<'c, E: Executor<'c, Database = Any>>(
    e: E,
    state_hash: &str,
    browser_hash: &str,
    provider: &str,
    now: i64,
) -> DbResult<Option<StateRow>> {
    Ok(sqlx::query_as(
        "UPDATE oauth_states SET used_at = $4 \
         WHERE state_hash = $1 AND browser_hash = $2 AND provider = $3 AND used_at IS NULL AND expires_at > $4 \
         RETURNING code_verifier, nonce, link_user_id, invite_code",
    )
    .bind(state_hash)
    .bind(browser_hash)
    .bind(provider)
    .bind(now)
    .fetch_optional(e)
    .await?)
}

/// A linked identity.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRow {
    /// Id.
    pub id: String,
    /// The account.
    pub user_id: String,
    /// Provider slug.
    pub provider: String,
    /// The provider's subject.
    pub subject: String,
    /// The address the provider gave at linking.
    pub email: Option<String>,
    /// The name the provider gave at linking.
    pub display_name: Option<String>,
    /// Linked at, ms.
    pub created_at: i64,
    /// Last sign-in with it, ms.
    pub last_used_at: Option<i64>,
}

const IDENTITY_COLUMNS: &str =
    "id, user_id, provider, subject, email, display_name, created_at, last_used_at";

/// The identity `subject` at `provider`, if linked.
pub async fn identity<'c, E: Executor<'c, Database = Any>>(
    e: E,
    provider: &str,
    subject: &str,
) -> DbResult<Option<IdentityRow>> {
    let sql = format!(
        "SELECT {IDENTITY_COLUMNS} FROM oauth_identities WHERE provider = $1 AND subject = $2"
    );
    Ok(sqlx::query_as(&sql)
        .bind(provider)
        .bind(subject)
        .fetch_optional(e)
        .await?)
}

/// An account's identities, oldest first.
pub async fn identities_of<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<Vec<IdentityRow>> {
    let sql = format!(
        "SELECT {IDENTITY_COLUMNS} FROM oauth_identities WHERE user_id = $1 ORDER BY created_at, id"
    );
    Ok(sqlx::query_as(&sql).bind(user_id).fetch_all(e).await?)
}

/// Links an identity.
pub async fn insert_identity<'c, E: Executor<'c, Database = Any>>(
    e: E,
    row: &IdentityRow,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO oauth_identities (id, user_id, provider, subject, email, display_name, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&row.id)
    .bind(&row.user_id)
    .bind(&row.provider)
    .bind(&row.subject)
    .bind(row.email.as_deref())
    .bind(row.display_name.as_deref())
    .bind(row.created_at)
    .bind(row.last_used_at)
    .execute(e)
    .await?;
    Ok(())
}

/// Notes a sign-in with an identity.
pub async fn touch_identity<'c, E: Executor<'c, Database = Any>>(
    e: E,
    id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE oauth_identities SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(e)
        .await?;
    Ok(())
}

/// Unlinks one of the account's identities; answers whether it was theirs.
pub async fn delete_identity<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    id: &str,
) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM oauth_identities WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(e)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether the account can sign in with a password (0 for one made by a provider sign-in).
pub async fn password_login<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
) -> DbResult<bool> {
    let (flag,): (i64,) = sqlx::query_as("SELECT password_login FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(e)
        .await?;
    Ok(flag != 0)
}

/// Marks an account made by a provider sign-in: no password, an address the provider verified.
pub async fn mark_provider_account<'c, E: Executor<'c, Database = Any>>(
    e: E,
    user_id: &str,
    email_verified_at: Option<i64>,
) -> DbResult<()> {
    sqlx::query("UPDATE users SET password_login = 0, email_verified_at = $2 WHERE id = $1")
        .bind(user_id)
        .bind(email_verified_at)
        .execute(e)
        .await?;
    Ok(())
}
