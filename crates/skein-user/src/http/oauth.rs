//! Sign-in with other services: the buttons, the start and the callback of a sign-in, linked
//! identities in the personal centre, and the admin's provider list.
//!
//! A sign-in is two calls from the web app. `start` stores a random `state`, nonce and PKCE
//! verifier, sets the `skein_oauth` cookie (the browser binding) and answers the provider's
//! URL. The provider sends the browser to `<public_url>/oauth/callback/<slug>`; that page
//! posts `code` and `state` to `callback`, which claims the state once (same browser, same
//! provider, not expired), asks the provider who signed in, and then signs in, answers the
//! two-factor challenge, creates the account, or links the identity.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use skein_core::api::{RegistrationMode, SettingsSource};
use skein_core::auth::{AdminUser, AuthState, AuthUser, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::ids::{ms_to_rfc3339, new_id, now_ms};
use skein_core::request::ClientIp;
use skein_core::secret::Secret;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use utoipa::ToSchema;

use crate::errors;
use crate::model::UserRow;
use crate::model::UserStatus;
use crate::oauth::{
    Attempt, ExternalIdentity, Provider, ProviderConfig, ProviderKind, random_token, valid_slug,
};
use crate::store::oauth::{self as oauth_store, IdentityRow, NewState};
use crate::tokens::hash_token;
use crate::{UserService, conflict_or_internal, store, validate};

/// The browser-binding cookie.
pub const STATE_COOKIE: &str = "skein_oauth";
const STATE_COOKIE_PATH: &str = "/api/v1/auth/oauth";

/// A provider as the sign-in page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProvider {
    /// Slug, for the start and callback URLs.
    pub slug: String,
    /// `oidc`, `google`, `microsoft`, `github` or `wechat`.
    pub kind: ProviderKind,
    /// The button's name.
    pub name: String,
}

/// The enabled providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProviderList {
    /// In slug order.
    pub items: Vec<PublicProvider>,
}

/// Starting a sign-in (or, signed in, a link).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// An invite code, used if this sign-in creates an account on a server that requires one.
    pub invite_code: Option<String>,
    /// Link the provider to the signed-in account instead of signing in (needs a bearer token).
    #[serde(default)]
    pub link: bool,
}

/// Where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartAnswer {
    /// The provider's authorization page.
    pub authorize_url: String,
    /// Where the provider sends the browser back (register it with the provider).
    pub redirect_uri: String,
    /// Seconds the sign-in may take.
    pub expires_in: i64,
}

/// What the provider appended to the callback URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// `state`, as sent.
    pub state: String,
    /// The authorization code.
    pub code: Option<String>,
    /// The provider's error (the person declined, for example).
    pub error: Option<String>,
}

/// An identity linked to the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// Id (for unlinking).
    pub id: String,
    /// Provider slug.
    pub provider: String,
    /// The provider's name (the slug when the provider was removed).
    pub provider_name: String,
    /// Provider kind, when the provider still exists.
    pub kind: Option<ProviderKind>,
    /// The address the provider gave at linking.
    pub email: Option<String>,
    /// The name the provider gave at linking.
    pub display_name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: last sign-in with it.
    pub last_used_at: Option<String>,
}

/// The account's linked identities.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityList {
    /// Oldest first.
    pub items: Vec<IdentityView>,
    /// Whether the account can also sign in with a password.
    pub password_login: bool,
}

/// The answer to a callback that linked an identity.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkAnswer {
    /// The identity now linked.
    pub linked: IdentityView,
}

/// A provider as the admin sees it: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminProviderView {
    /// Slug.
    pub slug: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Button name.
    pub name: String,
    /// `config` (the file; read-only here) or `admin`.
    pub source: String,
    /// Client id (WeChat AppID).
    pub client_id: String,
    /// Always true: a secret is set (it is never shown again).
    pub has_client_secret: bool,
    /// OIDC issuer (presets filled in by the server when empty).
    pub issuer: Option<String>,
    /// Microsoft tenant.
    pub tenant: Option<String>,
    /// Scopes (empty: the kind's defaults).
    pub scopes: Vec<String>,
    /// Authorization page override.
    pub authorize_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// API base override.
    pub api_url: Option<String>,
    /// Whether a first sign-in may join an existing account with the same verified address.
    pub link_by_email: bool,
    /// Whether sign-in works.
    pub enabled: bool,
    /// The redirect URI to register with the provider.
    pub redirect_uri: String,
}

/// The providers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminProviderList {
    /// In slug order.
    pub items: Vec<AdminProviderView>,
}

/// A new provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    /// 1–32 of `a-z`, `0-9`, `-`.
    pub slug: String,
    /// Kind.
    pub kind: ProviderKind,
    /// Button name.
    pub name: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client secret; stored, never answered.
    #[schema(value_type = String)]
    pub client_secret: Secret,
    /// OIDC issuer (required for `oidc`).
    pub issuer: Option<String>,
    /// Microsoft tenant.
    pub tenant: Option<String>,
    /// Scopes.
    pub scopes: Option<Vec<String>>,
    /// Authorization page override.
    pub authorize_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// API base override.
    pub api_url: Option<String>,
    /// See [`AdminProviderView::link_by_email`].
    #[serde(default)]
    pub link_by_email: bool,
    /// Defaults to true.
    pub enabled: Option<bool>,
}

/// Changes to a provider; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderPatch {
    /// Button name.
    pub name: Option<String>,
    /// Client id.
    pub client_id: Option<String>,
    /// A new client secret.
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<Secret>,
    /// OIDC issuer.
    pub issuer: Option<String>,
    /// Microsoft tenant.
    pub tenant: Option<String>,
    /// Scopes.
    pub scopes: Option<Vec<String>>,
    /// Authorization page override.
    pub authorize_url: Option<String>,
    /// Token endpoint override.
    pub token_url: Option<String>,
    /// API base override.
    pub api_url: Option<String>,
    /// Link by verified address.
    pub link_by_email: Option<bool>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// The providers whose buttons the sign-in page shows.
#[utoipa::path(get, path = "/auth/oauth/providers", tag = "auth",
    responses((status = 200, body = PublicProviderList)))]
pub async fn list_public_providers(
    State(svc): State<Arc<UserService>>,
) -> ApiResult<ApiJson<PublicProviderList>> {
    let items = svc
        .oauth_providers()
        .await?
        .into_iter()
        .filter(|p| p.config.enabled)
        .map(|p| PublicProvider {
            name: p.name(),
            kind: p.config.kind,
            slug: p.slug,
        })
        .collect();
    Ok(ApiJson(PublicProviderList { items }))
}

/// Start signing in with a provider (or, with `link` and a bearer token, linking it). Sets the
/// `skein_oauth` cookie that the callback must come back with.
#[utoipa::path(post, path = "/auth/oauth/{slug}/start", tag = "auth", request_body = StartRequest,
    params(("slug" = String, Path, description = "Provider slug")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Send the browser to `authorize_url`", body = StartAnswer),
        (status = 401, description = "`link` without a signed-in user", body = ErrorEnvelope),
        (status = 404, description = "No such enabled provider", body = ErrorEnvelope),
        (status = 429, description = "Too many sign-ins started from this address (`limits.oauth_starts_per_ip_per_hour`)", body = ErrorEnvelope),
        (status = 502, description = "The provider's discovery document could not be read", body = ErrorEnvelope),
    ))]
pub async fn start(
    State(svc): State<Arc<UserService>>,
    Path(slug): Path<String>,
    auth: Option<axum::Extension<AuthState>>,
    skein_core::request::ClientIp(ip): skein_core::request::ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<StartRequest>,
) -> ApiResult<(HeaderMap, ApiJson<StartAnswer>)> {
    // Each start stores a state row and may fetch discovery: counted per address first.
    svc.limit_ip(
        "oauth_start",
        ip,
        svc.settings.limits.oauth_starts_per_ip_per_hour,
    )
    .await?;
    let provider = svc.enabled_provider(&slug).await?;
    let link_user = if req.link {
        match auth {
            Some(axum::Extension(AuthState::User(user))) => Some(user.user_id),
            _ => return Err(ApiError::unauthorized()),
        }
    } else {
        None
    };
    let invite = req
        .invite_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.len() <= 64);
    let state = random_token();
    let nonce = random_token();
    let code_verifier = random_token();
    let redirect_uri = svc.redirect_uri(&slug);
    let attempt = Attempt {
        state: &state,
        nonce: &nonce,
        code_verifier: &code_verifier,
        redirect_uri: &redirect_uri,
    };
    let authorize_url = svc.oauth.authorize_url(&provider, &attempt).await?;
    // One browser value per browser, kept across sign-ins, so two tabs do not undo each other.
    let browser = browser_cookie(&headers).unwrap_or_else(random_token);
    let now = now_ms();
    let ttl = svc.settings.oauth.state_ttl_secs;
    let mut tx = svc.db.begin_write().await?;
    oauth_store::insert_state(
        &mut tx,
        &NewState {
            state_hash: &hash_token(&state),
            browser_hash: &hash_token(&browser),
            provider: &slug,
            code_verifier: &code_verifier,
            nonce: &nonce,
            link_user_id: link_user.as_deref(),
            invite_code: invite,
            now,
            expires_at: now + ttl * 1000,
        },
    )
    .await?;
    tx.commit().await.map_err(DbError::from)?;
    let mut out = HeaderMap::new();
    let secure = if super::cookie::is_https(&headers) {
        "; Secure"
    } else {
        ""
    };
    // Lax, not Strict: the callback page is reached by a redirect from the provider's site.
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={browser}; HttpOnly; SameSite=Lax; Path={STATE_COOKIE_PATH}; Max-Age={}{secure}",
        ttl.max(60) * 6
    )) {
        out.insert(header::SET_COOKIE, value);
    }
    Ok((
        out,
        ApiJson(StartAnswer {
            authorize_url,
            redirect_uri,
            expires_in: ttl,
        }),
    ))
}

/// Finish a sign-in (or link) with what the provider sent back. Answers like `POST
/// /auth/login` (tokens, or the two-factor challenge), or `{"linked": ...}` for a link.
#[utoipa::path(post, path = "/auth/oauth/{slug}/callback", tag = "auth", request_body = CallbackRequest,
    params(("slug" = String, Path, description = "Provider slug")),
    responses(
        (status = 200, description = "Signed in, the two-factor challenge, or the linked identity", body = super::auth::LoginAnswer),
        (status = 400, description = "Unknown, used, expired or other-browser `state` (`oauth_state_invalid`), or the person declined (`oauth_denied`)", body = ErrorEnvelope),
        (status = 401, description = "The ID token failed validation (`oauth_token_invalid`)", body = ErrorEnvelope),
        (status = 403, description = "Registration closed, account disabled, or email not verified", body = ErrorEnvelope),
        (status = 409, description = "The identity belongs to another account, or the address to an account it may not join", body = ErrorEnvelope),
        (status = 422, description = "An invite code is required or invalid", body = ErrorEnvelope),
        (status = 502, description = "The provider did not answer as expected", body = ErrorEnvelope),
    ))]
pub async fn callback(
    State(svc): State<Arc<UserService>>,
    Path(slug): Path<String>,
    ClientIp(ip): ClientIp,
    lang: Lang,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CallbackRequest>,
) -> ApiResult<Response> {
    let provider = svc.enabled_provider(&slug).await?;
    let Some(browser) = browser_cookie(&headers) else {
        return Err(errors::state_invalid());
    };
    let now = now_ms();
    let Some(started) = oauth_store::claim_state(
        svc.db.pool(),
        &hash_token(req.state.trim()),
        &hash_token(&browser),
        &slug,
        now,
    )
    .await?
    else {
        tracing::warn!(provider = %slug, client_ip = %ip, "OAuth callback with an unknown, used, expired or other-browser state");
        return Err(errors::state_invalid());
    };
    if req.error.is_some() || req.code.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "oauth_denied",
            "The sign-in was cancelled or refused at the provider.",
            "已在第三方登录服务处取消或拒绝了登录。",
        ));
    }
    let code = req.code.unwrap_or_default();
    let redirect_uri = svc.redirect_uri(&slug);
    let attempt = Attempt {
        state: &req.state,
        nonce: &started.nonce,
        code_verifier: &started.code_verifier,
        redirect_uri: &redirect_uri,
    };
    let identity = svc.oauth.identify(&provider, &attempt, &code).await?;
    if identity.subject.is_empty() {
        return Err(errors::token_rejected("no subject"));
    }
    if let Some(user_id) = started.link_user_id {
        let linked = svc.link_identity(&provider, &user_id, &identity).await?;
        return Ok(ApiJson(LinkAnswer { linked }).into_response());
    }
    let user = match oauth_store::identity(svc.db.pool(), &slug, &identity.subject).await? {
        Some(found) => {
            oauth_store::touch_identity(svc.db.pool(), &found.id, now).await?;
            store::user_by_id(svc.db.pool(), &found.user_id)
                .await?
                .ok_or_else(|| ApiError::not_found("User", "用户"))?
        }
        None => match svc.join_by_email(&provider, &identity).await? {
            Some(user) => user,
            None => {
                svc.register_with_provider(
                    &provider,
                    &identity,
                    started.invite_code.as_deref(),
                    lang,
                )
                .await?
            }
        },
    };
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    if svc.sign_in().methods.verified_email_for_login
        && user.role == Role::User
        && user.email_verified_at.is_none()
    {
        return Err(errors::email_not_verified());
    }
    tracing::info!(user_id = %user.id, provider = %slug, "signed in with a provider");
    // The provider proves who the person is there; a second factor set up here still applies.
    if user.has_second_factor() {
        return svc.open_challenge(&user.id).await;
    }
    svc.finish_login(user, &headers, ip).await
}

/// The providers linked to the signed-in account.
#[utoipa::path(get, path = "/user/oauth/identities", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = IdentityList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_identities(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<IdentityList>> {
    let providers = svc.oauth_providers().await?;
    let rows = oauth_store::identities_of(svc.db.pool(), &user.user_id).await?;
    let items = rows
        .into_iter()
        .map(|r| identity_view(r, &providers))
        .collect();
    let password_login = oauth_store::password_login(svc.db.pool(), &user.user_id).await?;
    Ok(ApiJson(IdentityList {
        items,
        password_login,
    }))
}

/// Unlink a provider. The last way to sign in cannot be unlinked (an account without a
/// password keeps at least one provider).
#[utoipa::path(delete, path = "/user/oauth/identities/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Identity id")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, description = "Not one of this account's identities", body = ErrorEnvelope),
        (status = 409, description = "It is the account's last way to sign in (`last_sign_in_method`)", body = ErrorEnvelope),
    ))]
pub async fn unlink_identity(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = svc.db.begin_write().await?;
    let mine = oauth_store::identities_of(&mut *tx, &user.user_id).await?;
    if !mine.iter().any(|i| i.id == id) {
        return Err(ApiError::not_found("Linked provider", "已关联的登录方式"));
    }
    let has_password = oauth_store::password_login(&mut *tx, &user.user_id).await?;
    let has_phone = store::user_by_id(&mut *tx, &user.user_id)
        .await?
        .is_some_and(|u| u.phone.is_some());
    if !has_password && !has_phone && mine.len() <= 1 {
        return Err(ApiError::conflict(
            "last_sign_in_method",
            "This is the only way to sign in to this account. Set a password (\"Forgot password\" mails a link) or link another provider first.",
            "这是该账号唯一的登录方式。请先设置密码（可通过“忘记密码”邮件设置）或关联其他登录方式。",
        ));
    }
    oauth_store::delete_identity(&mut *tx, &user.user_id, &id).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every provider, from the file and from this API (secrets are never shown).
#[utoipa::path(get, path = "/admin/oauth/providers", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AdminProviderList), (status = 403, body = ErrorEnvelope)))]
pub async fn admin_list_providers(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<AdminProviderList>> {
    let items = svc
        .oauth_providers()
        .await?
        .into_iter()
        .map(|p| svc.admin_view(p))
        .collect();
    Ok(ApiJson(AdminProviderList { items }))
}

/// Add a provider. Its client secret is stored and never answered again.
#[utoipa::path(post, path = "/admin/oauth/providers", tag = "admin", security(("bearer" = [])),
    request_body = NewProvider,
    responses(
        (status = 201, body = AdminProviderView),
        (status = 409, description = "The slug is taken", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid", body = ErrorEnvelope),
    ))]
pub async fn admin_create_provider(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    ApiJson(req): ApiJson<NewProvider>,
) -> ApiResult<(StatusCode, ApiJson<AdminProviderView>)> {
    valid_slug(&req.slug)?;
    let config = ProviderConfig {
        kind: req.kind,
        display_name: req
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        client_id: req.client_id.trim().to_string(),
        client_secret: req.client_secret,
        issuer: trimmed(req.issuer),
        tenant: trimmed(req.tenant),
        scopes: req.scopes,
        authorize_url: trimmed(req.authorize_url),
        token_url: trimmed(req.token_url),
        api_url: trimmed(req.api_url),
        link_by_email: req.link_by_email,
        enabled: req.enabled.unwrap_or(true),
    };
    check_provider(&config)?;
    let taken = svc.settings.oauth.providers.contains_key(&req.slug)
        || oauth_store::provider(svc.db.pool(), &req.slug)
            .await?
            .is_some();
    if taken {
        return Err(ApiError::conflict(
            "provider_exists",
            "A provider with this slug exists already.",
            "该标识的登录方式已存在。",
        ));
    }
    let sealed = svc.seal_provider_secret(&req.slug, config.client_secret.expose())?;
    oauth_store::upsert_provider(svc.db.pool(), &req.slug, &config, &sealed, now_ms()).await?;
    let view = svc.admin_view(Provider {
        slug: req.slug,
        source: "admin",
        config,
    });
    Ok((StatusCode::CREATED, ApiJson(view)))
}

/// Change a provider added through this API.
#[utoipa::path(patch, path = "/admin/oauth/providers/{slug}", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Provider slug")),
    request_body = ProviderPatch,
    responses(
        (status = 200, body = AdminProviderView),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Defined in the configuration file (`provider_in_config`)", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn admin_update_provider(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<ProviderPatch>,
) -> ApiResult<ApiJson<AdminProviderView>> {
    refuse_config_provider(&svc, &slug)?;
    let row = oauth_store::provider(svc.db.pool(), &slug)
        .await?
        .ok_or_else(|| ApiError::not_found("Provider", "登录方式"))?;
    let (_, mut config) = svc
        .open_provider(row)?
        .ok_or_else(|| ApiError::not_found("Provider", "登录方式"))?;
    if let Some(name) = req.name {
        config.display_name = Some(name.trim().to_string()).filter(|n| !n.is_empty());
    }
    if let Some(id) = req.client_id {
        config.client_id = id.trim().to_string();
    }
    if let Some(secret) = req.client_secret {
        config.client_secret = secret;
    }
    // An empty string clears an optional field.
    let set = |field: &mut Option<String>, value: Option<String>| {
        if let Some(value) = value {
            *field = trimmed(Some(value));
        }
    };
    set(&mut config.issuer, req.issuer);
    set(&mut config.tenant, req.tenant);
    set(&mut config.authorize_url, req.authorize_url);
    set(&mut config.token_url, req.token_url);
    set(&mut config.api_url, req.api_url);
    if let Some(scopes) = req.scopes {
        config.scopes = Some(scopes).filter(|s| !s.is_empty());
    }
    if let Some(link) = req.link_by_email {
        config.link_by_email = link;
    }
    if let Some(enabled) = req.enabled {
        config.enabled = enabled;
    }
    check_provider(&config)?;
    let sealed = svc.seal_provider_secret(&slug, config.client_secret.expose())?;
    oauth_store::upsert_provider(svc.db.pool(), &slug, &config, &sealed, now_ms()).await?;
    Ok(ApiJson(svc.admin_view(Provider {
        slug,
        source: "admin",
        config,
    })))
}

/// Remove a provider added through this API. Identities linked to it stay (and come back to
/// life if a provider with the same slug is added again) but cannot be used meanwhile.
#[utoipa::path(delete, path = "/admin/oauth/providers/{slug}", tag = "admin", security(("bearer" = [])),
    params(("slug" = String, Path, description = "Provider slug")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Defined in the configuration file", body = ErrorEnvelope),
    ))]
pub async fn admin_delete_provider(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    Path(slug): Path<String>,
) -> ApiResult<StatusCode> {
    refuse_config_provider(&svc, &slug)?;
    if oauth_store::delete_provider(svc.db.pool(), &slug).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Provider", "登录方式"))
    }
}

impl UserService {
    /// Every provider: the file's, then the database's (a slug in both is the file's).
    pub(crate) async fn oauth_providers(&self) -> ApiResult<Vec<Provider>> {
        let mut all: Vec<Provider> = self
            .settings
            .oauth
            .providers
            .iter()
            .map(|(slug, config)| Provider {
                slug: slug.clone(),
                source: "config",
                config: config.clone(),
            })
            .collect();
        for row in oauth_store::providers(self.db.pool()).await? {
            let slug = row.slug.clone();
            // One provider whose secret cannot be opened (a lost key) is left out, logged,
            // rather than taking every other sign-in button down with it.
            let opened = self.open_provider(row).unwrap_or_else(|error| {
                tracing::error!(%slug, %error, "sign-in provider left out: its client secret cannot be opened");
                None
            });
            if let Some((slug, config)) = opened
                && !self.settings.oauth.providers.contains_key(&slug)
            {
                all.push(Provider {
                    slug,
                    source: "admin",
                    config,
                });
            }
        }
        all.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(all)
    }

    async fn enabled_provider(&self, slug: &str) -> ApiResult<Provider> {
        self.oauth_providers()
            .await?
            .into_iter()
            .find(|p| p.slug == slug && p.config.enabled)
            .ok_or_else(|| ApiError::not_found("Sign-in provider", "第三方登录方式"))
    }

    /// `<public_url>/oauth/callback/<slug>`: the only place a provider may send a browser.
    fn redirect_uri(&self, slug: &str) -> String {
        let base = self
            .settings
            .oauth
            .public_url
            .as_deref()
            .unwrap_or(&self.settings.mail.public_url);
        format!("{}/oauth/callback/{slug}", base.trim_end_matches('/'))
    }

    fn admin_view(&self, p: Provider) -> AdminProviderView {
        AdminProviderView {
            redirect_uri: self.redirect_uri(&p.slug),
            name: p.name(),
            slug: p.slug,
            kind: p.config.kind,
            source: p.source.to_string(),
            client_id: p.config.client_id,
            has_client_secret: !p.config.client_secret.expose().is_empty(),
            issuer: p.config.issuer,
            tenant: p.config.tenant,
            scopes: p.config.scopes.unwrap_or_default(),
            authorize_url: p.config.authorize_url,
            token_url: p.config.token_url,
            api_url: p.config.api_url,
            link_by_email: p.config.link_by_email,
            enabled: p.config.enabled,
        }
    }

    /// Links `identity` to `user_id`; refused if another account has it.
    async fn link_identity(
        &self,
        provider: &Provider,
        user_id: &str,
        identity: &ExternalIdentity,
    ) -> ApiResult<IdentityView> {
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let row = match oauth_store::identity(&mut *tx, &provider.slug, &identity.subject).await? {
            Some(found) if found.user_id == user_id => found,
            Some(_) => return Err(errors::identity_taken()),
            None => {
                let row = IdentityRow {
                    id: new_id(),
                    user_id: user_id.to_string(),
                    provider: provider.slug.clone(),
                    subject: identity.subject.clone(),
                    email: identity.email.clone(),
                    display_name: identity.name.clone(),
                    created_at: now,
                    last_used_at: None,
                };
                oauth_store::insert_identity(&mut *tx, &row)
                    .await
                    .map_err(|e| {
                        if store::is_conflict(&e) {
                            errors::identity_taken()
                        } else {
                            e.into()
                        }
                    })?;
                row
            }
        };
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(%user_id, provider = %provider.slug, "provider linked");
        Ok(identity_view(row, std::slice::from_ref(provider)))
    }

    /// The existing account a first-time identity joins by address: only when the admin
    /// allowed it for this provider, the provider says the address is verified, AND the
    /// account proved the address too (otherwise whoever registered an address they do not
    /// own could wait for its owner to sign in with a provider and share the account).
    async fn join_by_email(
        &self,
        provider: &Provider,
        identity: &ExternalIdentity,
    ) -> ApiResult<Option<UserRow>> {
        let Some(email) = identity.email.as_deref() else {
            return Ok(None);
        };
        if !provider.config.link_by_email || !identity.email_verified {
            return Ok(None);
        }
        let Some(user) = store::user_by_login(self.db.pool(), email).await? else {
            return Ok(None);
        };
        // An administrator's account is never joined by address: whoever controls an
        // address at a provider the admin trusts would hold the keys to the server.
        if user.email_verified_at.is_none() || user.role != Role::User {
            return Ok(None);
        }
        self.link_identity(provider, &user.id, identity).await?;
        Ok(Some(user))
    }

    /// Creates the account for a first sign-in with a provider, under the registration policy.
    async fn register_with_provider(
        &self,
        provider: &Provider,
        identity: &ExternalIdentity,
        invite_code: Option<&str>,
        lang: Lang,
    ) -> ApiResult<UserRow> {
        if self.needs_setup().await? {
            return Err(errors::setup_required_for_provider());
        }
        // The mode an administrator set last, on any instance (see `settings.rs`).
        let mode = self.system.current().registration_mode;
        if mode == RegistrationMode::Closed {
            return Err(errors::registration_closed_for_provider());
        }
        // Only an address the provider verified is taken over into the new account.
        let email = identity
            .email
            .as_deref()
            .filter(|_| identity.email_verified)
            .and_then(|e| validate::email(e).ok());
        if self.sign_in().methods.verified_email_for_login && email.is_none() {
            return Err(errors::email_not_verified_for_provider());
        }
        // A password nobody knows: the hash keeps every password path uniform, and
        // `password_login = 0` tells the account has no usable password.
        let hash = self.passwords.hash(random_token()).await?;
        let now = now_ms();
        let id = new_id();
        let mut tx = self.db.begin_write().await?;
        if let Some(email) = email.as_deref() {
            let (taken, _) = store::taken(&mut *tx, Some(email), None).await?;
            if taken {
                return Err(ApiError::conflict(
                    "oauth_email_taken",
                    format!(
                        "An account with this email address exists already. Sign in to it, then link {} in your personal centre.",
                        provider.name()
                    ),
                    format!(
                        "已有账号使用该邮箱。请先登录该账号，再在个人中心关联 {}。",
                        provider.name()
                    ),
                ));
            }
        }
        let invite = match invite_code {
            Some(code) => Some(
                store::use_invite_code(&mut *tx, code, now)
                    .await?
                    .ok_or_else(errors::invalid_invite_code)?,
            ),
            None if mode == RegistrationMode::InviteOnly => {
                return Err(errors::invite_code_required_for_provider());
            }
            None => None,
        };
        let username = self.free_username(&mut tx, provider, identity).await?;
        let display_name = identity
            .name
            .as_deref()
            .and_then(|n| validate::display_name(n).ok())
            .unwrap_or_else(|| username.clone());
        let language = if lang == Lang::Zh { "zh-CN" } else { "en" };
        let new = store::NewUser {
            id: &id,
            username: Some(&username),
            email: email.as_deref(),
            password_hash: &hash,
            display_name: &display_name,
            language,
            role: Role::User,
            invited_by: invite.as_ref().map(|(_, owner)| owner.as_str()),
            now,
        };
        store::insert_user(&mut *tx, &new)
            .await
            .map_err(conflict_or_internal)?;
        oauth_store::mark_provider_account(&mut *tx, &id, email.as_ref().map(|_| now)).await?;
        if let Some((code_id, inviter)) = &invite {
            store::insert_invitation(&mut *tx, &id, inviter, code_id, now).await?;
        }
        let row = IdentityRow {
            id: new_id(),
            user_id: id.clone(),
            provider: provider.slug.clone(),
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            display_name: identity.name.clone(),
            created_at: now,
            last_used_at: Some(now),
        };
        oauth_store::insert_identity(&mut *tx, &row)
            .await
            .map_err(|e| {
                if store::is_conflict(&e) {
                    errors::identity_taken()
                } else {
                    e.into()
                }
            })?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(user_id = %id, provider = %provider.slug, "account created by a provider sign-in");
        self.announce_registration(&id, invite.as_ref().map(|(_, inviter)| inviter.as_str()))
            .await;
        store::user_by_id(self.db.pool(), &id)
            .await?
            .ok_or_else(|| ApiError::not_found("User", "用户"))
    }

    /// The provider's username when it is valid and free here, else `<kind>_<random>`.
    async fn free_username(
        &self,
        tx: &mut skein_db::sqlx::Transaction<'static, skein_db::sqlx::Any>,
        provider: &Provider,
        identity: &ExternalIdentity,
    ) -> ApiResult<String> {
        if let Some(hint) = identity
            .username
            .as_deref()
            .and_then(|u| validate::username(u).ok())
        {
            let (_, taken) = store::taken(&mut **tx, None, Some(&hint)).await?;
            if !taken {
                return Ok(hint);
            }
        }
        Ok(format!(
            "{}_{}",
            provider.config.kind.as_str(),
            &random_token()[..10].to_lowercase().replace(['-', '_'], "0")
        ))
    }
}

fn identity_view(row: IdentityRow, providers: &[Provider]) -> IdentityView {
    let provider = providers.iter().find(|p| p.slug == row.provider);
    IdentityView {
        provider_name: provider
            .map(|p| p.name())
            .unwrap_or_else(|| row.provider.clone()),
        kind: provider.map(|p| p.config.kind),
        id: row.id,
        provider: row.provider,
        email: row.email,
        display_name: row.display_name,
        created_at: ms_to_rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(ms_to_rfc3339),
    }
}

/// The browser-binding cookie's value, if it looks like one of ours.
fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| {
            (32..=64).contains(&v.len())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn trimmed(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn check_provider(config: &ProviderConfig) -> ApiResult<()> {
    config.check().map_err(errors::invalid_provider)
}

fn refuse_config_provider(svc: &UserService, slug: &str) -> ApiResult<()> {
    if svc.settings.oauth.providers.contains_key(slug) {
        return Err(ApiError::conflict(
            "provider_in_config",
            "This provider is defined in the configuration file; change it there.",
            "该登录方式定义在配置文件中，请在配置文件中修改。",
        ));
    }
    Ok(())
}
