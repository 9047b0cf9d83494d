//! Register, log in, refresh, log out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skein_core::api::{RegistrationMode, SettingsSource};
use skein_core::auth::{AuthState, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::ids::{new_id, now_ms};
use skein_core::limit::Quota;
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use utoipa::ToSchema;

use super::{TokenResponse, cookie};
use crate::errors;
use crate::model::Profile;
use crate::model::UserStatus;
use crate::throttle::LoginThrottle;
use crate::tokens::{hash_token, new_refresh_token};
use crate::{UserService, conflict_or_internal, email_name, store, taken_error, validate};

/// A new account: a username, an email, or both, and a password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 letters, digits, `_`, `.`, `-`.
    pub username: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// 8–128 characters.
    pub password: String,
    /// Shown name (defaults to the username or the email's local part).
    pub display_name: Option<String>,
    /// Required when the server requires invitations.
    pub invite_code: Option<String>,
    /// UI language, `en` or `zh-CN` (defaults from `Accept-Language`).
    pub language: Option<String>,
    /// The one-time token `skein serve` printed; needed for the first (root) account only,
    /// ignored afterwards (so scripts may always send it).
    pub setup_token: Option<String>,
}

/// Whether the server is waiting for its first account.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SetupState {
    /// True while no account exists: registering then needs `setup_token`.
    pub needs_setup: bool,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email.
    #[serde(alias = "username", alias = "email")]
    pub login: String,
    /// Password.
    pub password: String,
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh. Leave it out to use the
    /// `skein_refresh` cookie (then the header `X-Skein-CSRF: 1` is required).
    pub refresh_token: Option<String>,
}

/// Which session to end: the bearer token's, or the one a refresh token belongs to.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Ends this token's session (when no access token is sent).
    pub refresh_token: Option<String>,
}

/// Whether the server still waits for its first account (public; the web app asks before it
/// shows the register form).
#[utoipa::path(get, path = "/auth/setup", tag = "auth",
    responses((status = 200, description = "Set-up state", body = SetupState)))]
pub async fn setup_state(State(svc): State<Arc<UserService>>) -> ApiResult<ApiJson<SetupState>> {
    Ok(ApiJson(SetupState {
        needs_setup: svc.needs_setup().await?,
    }))
}

/// Create an account. The first account on a fresh server becomes `root`, and needs the
/// setup token `skein serve` printed to its log.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 202, description = "Account created; sign-in waits for the address to be verified (`auth.verified_email_for_login`)", body = VerificationPending),
        (status = 403, description = "Registration is closed, password registration is off (`password_sign_in_disabled`), or the first account lacks the setup token", body = ErrorEnvelope),
        (status = 409, description = "Email or username taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid field or invite code", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this address", body = ErrorEnvelope),
    ))]
pub async fn register(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    lang: Lang,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Response> {
    // Every field is checked before answering, so a form shows all its errors at once.
    let mut invalid = Vec::new();
    let mut check = |result: ApiResult<String>| result.map_err(|e| invalid.push(e)).ok();
    let password_ok = validate::password(&req.password, "password");
    let username = req
        .username
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|u| check(validate::username(u)));
    let email = req
        .email
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|e| check(validate::email(e)));
    let display_name = req
        .display_name
        .as_deref()
        .and_then(|name| check(validate::display_name(name)));
    let language = req
        .language
        .as_deref()
        .and_then(|l| check(validate::language(l)));
    let no_name = req.username.as_deref().is_none_or(|s| s.trim().is_empty())
        && req.email.as_deref().is_none_or(|s| s.trim().is_empty());
    if no_name {
        invalid.insert(
            0,
            ApiError::invalid_field(
                "username",
                "Give a username or an email.",
                "请提供用户名或邮箱。",
            ),
        );
    }
    if let Err(e) = password_ok {
        invalid.push(e);
    }
    validate::all(invalid, lang)?;
    let display_name = display_name.unwrap_or_else(|| {
        username
            .clone()
            .or_else(|| email.as_deref().map(email_name))
            .unwrap_or_default()
    });
    let language =
        language.unwrap_or_else(|| if lang == Lang::Zh { "zh-CN" } else { "en" }.to_string());
    let invite_code = req
        .invite_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());

    // Hash before taking the write lock: argon2 takes tens of milliseconds on purpose.
    let hash = svc.passwords.hash(req.password).await?;
    let now = now_ms();
    let id = new_id();
    let mut tx = svc.db.begin_write().await?;
    let (email_taken, username_taken) =
        store::taken(&mut *tx, email.as_deref(), username.as_deref()).await?;
    if email_taken || username_taken {
        return Err(taken_error(email_taken));
    }
    let first = store::claim_flag(&mut *tx, "root_claimed", &id, now).await?;
    if !first && !svc.sign_in().methods.password {
        return Err(errors::password_sign_in_off());
    }
    if first && !svc.setup.accepts(req.setup_token.as_deref()) {
        // Dropping the transaction un-claims the flag: set-up stays open for the real owner.
        tracing::warn!(client_ip = %ip, "first registration refused: missing or wrong setup token");
        return Err(errors::setup_token_required());
    }
    // The mode an administrator set last, on any instance (see `settings.rs`).
    let mode = svc.system.current().registration_mode;
    if !first && mode == RegistrationMode::Closed {
        return Err(errors::registration_closed());
    }
    let invite = match invite_code {
        Some(code) => Some(
            store::use_invite_code(&mut *tx, code, now)
                .await?
                .ok_or_else(errors::invalid_invite_code)?,
        ),
        None if mode == RegistrationMode::InviteOnly && !first => {
            return Err(errors::invite_code_required());
        }
        None => None,
    };
    let role = if first { Role::Root } else { Role::User };
    // With verification required for sign-in, a plain account signs in only after its
    // address is proved, so it must have one. The first (root) account is vouched for by the
    // setup token.
    let must_verify = svc.sign_in().methods.verified_email_for_login && !first;
    if must_verify && email.is_none() {
        return Err(ApiError::invalid_field(
            "email",
            "An email address is required: this server verifies it before you sign in.",
            "需要填写邮箱地址：本服务器在登录前会验证邮箱。",
        ));
    }
    let new = store::NewUser {
        id: &id,
        username: username.as_deref(),
        email: email.as_deref(),
        password_hash: &hash,
        display_name: &display_name,
        language: &language,
        role,
        invited_by: invite.as_ref().map(|(_, owner)| owner.as_str()),
        now,
    };
    store::insert_user(&mut *tx, &new)
        .await
        .map_err(conflict_or_internal)?;
    if let Some((code_id, inviter)) = &invite {
        store::insert_invitation(&mut *tx, &id, inviter, code_id, now).await?;
    }
    if let Some(email) = email.as_deref()
        && svc.mail_enabled()
    {
        svc.queue_verification(&mut tx, &id, &display_name, &language, email)
            .await?;
    }
    let tokens = if must_verify {
        None
    } else {
        Some(
            svc.open_session(&mut tx, &id, role, &headers, ip, now)
                .await?,
        )
    };
    tx.commit().await.map_err(DbError::from)?;
    if first {
        svc.setup.finish();
        tracing::info!(user_id = %id, "first account registered as root");
    }
    svc.announce_registration(&id, invite.as_ref().map(|(_, inviter)| inviter.as_str()))
        .await;
    let user = svc.profile_of(&id).await?;
    let Some(tokens) = tokens else {
        return Ok((
            StatusCode::ACCEPTED,
            ApiJson(VerificationPending {
                verification_required: true,
                user,
            }),
        )
            .into_response());
    };
    let (cookie, tokens) = svc.hand_out(&headers, tokens);
    Ok((
        StatusCode::CREATED,
        cookie,
        ApiJson(TokenResponse {
            user: Some(user),
            ..tokens
        }),
    )
        .into_response())
}

/// The answer to registering when the server verifies addresses before sign-in.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct VerificationPending {
    /// Always true: open the link mailed to the address, then sign in.
    pub verification_required: bool,
    /// The new account.
    pub user: Profile,
}

/// What a right password answers. Only its schema is used (the handler answers either shape
/// itself), so the variants are never built.
#[allow(dead_code)]
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    /// Signed in.
    Tokens(Box<TokenResponse>),
    /// Two-factor sign-in is on: the code step comes next.
    SecondFactor(super::twofactor::TwoFactorChallenge),
}

/// Sign in with a username or email and a password.
///
/// After a few failures of one account from one address, that pair waits (5 s, doubling up
/// to `limits.login_lockout_secs`); other addresses are not slowed. Many failures from one
/// address across accounts lock the address. Either way the answer is 429 with `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in (tokens), or, with two-factor sign-in on, the challenge for `POST /auth/login/2fa`", body = LoginAnswer),
        (status = 401, description = "Wrong credentials", body = ErrorEnvelope),
        (status = 403, description = "Account disabled, its email is not verified (`email_not_verified`), or password sign-in is off for plain users (`password_sign_in_disabled`)", body = ErrorEnvelope),
        (status = 429, description = "Too many failed attempts", body = ErrorEnvelope),
    ))]
pub async fn login(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let user = if req.login.len() <= 254 {
        store::user_by_login(svc.db.pool(), &req.login).await?
    } else {
        None
    };
    // Failures count per (account, address): the account by id, so its username and email
    // share one budget; the address by its /64 for IPv6. A stranger's guesses slow only the
    // stranger's own address, never the owner signing in from elsewhere. Separately, failures
    // per address across accounts stop password spraying.
    let limits = &svc.settings.limits;
    let window = std::time::Duration::from_secs(limits.login_lockout_secs);
    let bucket = skein_core::request::ip_bucket(ip);
    let account = match &user {
        Some(user) => user.id.clone(),
        // Hashed: the typed login can be long, and should not sit in the limiter's store.
        None => format!("unknown:{}", hash_token(&req.login.trim().to_lowercase())),
    };
    let throttle = LoginThrottle::new(
        svc.limiter.as_ref(),
        &account,
        &bucket,
        limits.login_failures_per_account,
        window,
    );
    let ip_key = format!("login:ip:{bucket}");
    let ip_quota = Quota {
        limit: limits.login_failures_per_ip,
        period: window,
    };
    if let Some(wait) = throttle.wait_left().await {
        tracing::warn!(client_ip = %ip, "login delayed after repeated failures");
        return Err(errors::login_locked(wait));
    }
    // The address is only probed here and charged on failure, so busy offices behind one NAT
    // are not locked out by their own successful logins.
    match svc.limiter.check(&ip_key, ip_quota, 0).await {
        Ok(probe) if !probe.allowed => {
            tracing::warn!(client_ip = %ip, "login locked after repeated failures from one address");
            return Err(errors::login_locked(
                probe
                    .retry_after
                    .unwrap_or(std::time::Duration::from_secs(1)),
            ));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "login limiter unavailable"),
    }
    throttle.count_attempt().await;

    let password_ok = svc
        .passwords
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let Some(user) = user.filter(|_| password_ok) else {
        if let Err(error) = svc.limiter.check(&ip_key, ip_quota, 1).await {
            tracing::warn!(%error, "login limiter unavailable");
        }
        return Err(errors::invalid_credentials());
    };
    throttle.clear().await;
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    // Admin → Sign-in may turn passwords off for plain users; admins keep them, so no change
    // of settings locks everyone out.
    if !svc.sign_in().methods.password && user.role == Role::User {
        return Err(errors::password_sign_in_off());
    }
    if svc.sign_in().methods.verified_email_for_login
        && user.role == Role::User
        && user.email_verified_at.is_none()
    {
        return Err(errors::email_not_verified());
    }
    if user.has_second_factor() {
        return svc.open_challenge(&user.id).await;
    }
    svc.finish_login(user, &headers, ip).await
}

/// Exchange a refresh token for new tokens. Each refresh token works once: presenting a used
/// one again ends its whole session (it was probably stolen).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = ErrorEnvelope),
        (status = 403, description = "The cookie was used without the X-Skein-CSRF header", body = ErrorEnvelope),
    ))]
pub async fn refresh(
    State(svc): State<Arc<UserService>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<(HeaderMap, ApiJson<TokenResponse>)> {
    let presented = match req.refresh_token {
        Some(token) => token,
        None => cookie::refresh_from_cookie(&headers)?.ok_or_else(errors::invalid_refresh)?,
    };
    let token_hash = hash_token(presented.trim());
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    let Some(found) = store::refresh_lookup(&mut *tx, &token_hash).await? else {
        return Err(errors::invalid_refresh());
    };
    let reused =
        found.used_at.is_some() || !store::mark_token_used(&mut *tx, &token_hash, now).await?;
    if reused {
        store::revoke_session(&mut *tx, &found.session_id, "refresh_token_reused", now).await?;
        tx.commit().await.map_err(DbError::from)?;
        svc.forget_session(&found.session_id);
        tracing::warn!(user_id = %found.user_id, session_id = %found.session_id, "refresh token reused; session revoked");
        return Err(errors::refresh_token_reused());
    }
    if found.revoked_at.is_some() || found.expires_at <= now {
        return Err(errors::invalid_refresh());
    }
    if found.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    let refresh_token = new_refresh_token();
    store::insert_refresh_token(&mut tx, &hash_token(&refresh_token), &found.session_id, now)
        .await?;
    let expires_at = now + svc.settings.auth.refresh_token_ttl_secs * 1000;
    store::touch_session(&mut *tx, &found.session_id, now, expires_at).await?;
    tx.commit().await.map_err(DbError::from)?;
    let role = found.role;
    let access_token = svc.jwt.issue(&found.user_id, &found.session_id, role)?;
    let (cookie, tokens) = svc.hand_out(
        &headers,
        TokenResponse {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: svc.jwt.ttl_secs,
            user: None,
        },
    );
    Ok((cookie, ApiJson(tokens)))
}

/// End a session: the access token's, or the one the given refresh token belongs to.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body(content = LogoutRequest, content_type = "application/json"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Neither a valid access token nor a refresh token", body = ErrorEnvelope),
        (status = 403, description = "The cookie was used without the X-Skein-CSRF header", body = ErrorEnvelope),
    ))]
pub async fn logout(
    State(svc): State<Arc<UserService>>,
    auth: Option<axum::Extension<AuthState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let now = now_ms();
    let mut cleared = HeaderMap::new();
    if let Some(value) = cookie::clear_refresh(&headers) {
        cleared.insert(header::SET_COOKIE, value);
    }
    if let Some(axum::Extension(AuthState::User(user))) = auth {
        store::revoke_session(svc.db.pool(), &user.session_id, "logout", now).await?;
        svc.forget_session(&user.session_id);
        return Ok((StatusCode::NO_CONTENT, cleared));
    }
    let has_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let req: LogoutRequest = if body.is_empty() || !has_json {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                "The request body is not valid JSON.",
                "请求体不是合法的 JSON。",
            )
            .with_details(serde_json::json!({ "reason": e.to_string() }))
        })?
    };
    let token = match req.refresh_token {
        Some(token) => token,
        None => cookie::refresh_from_cookie(&headers)?.ok_or_else(ApiError::unauthorized)?,
    };
    let Some(found) = store::refresh_lookup(svc.db.pool(), &hash_token(token.trim())).await? else {
        return Err(errors::invalid_refresh());
    };
    store::revoke_session(svc.db.pool(), &found.session_id, "logout", now).await?;
    svc.forget_session(&found.session_id);
    Ok((StatusCode::NO_CONTENT, cleared))
}

impl UserService {
    /// Puts the refresh token into its cookie, and leaves it out of the body for a browser
    /// (a request with `X-Skein-CSRF: 1`), where page scripts could read it.
    pub(crate) fn hand_out(
        &self,
        headers: &HeaderMap,
        mut tokens: TokenResponse,
    ) -> (HeaderMap, TokenResponse) {
        let mut out = HeaderMap::new();
        let ttl = self.settings.auth.refresh_token_ttl_secs;
        if let Some(value) = cookie::set_refresh(headers, &tokens.refresh_token, ttl) {
            out.insert(header::SET_COOKIE, value);
        }
        if cookie::has_csrf_header(headers) {
            tokens.refresh_token = String::new();
        }
        (out, tokens)
    }

    /// Starts a session inside `tx` and answers its first tokens.
    pub(crate) async fn open_session(
        &self,
        tx: &mut skein_db::sqlx::Transaction<'static, skein_db::sqlx::Any>,
        user_id: &str,
        role: Role,
        headers: &HeaderMap,
        ip: std::net::IpAddr,
        now: i64,
    ) -> ApiResult<TokenResponse> {
        let session_id = new_id();
        let refresh_token = new_refresh_token();
        let user_agent: Option<String> = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        let ip = ip.to_string();
        let token_hash = hash_token(&refresh_token);
        let session = store::NewSession {
            id: &session_id,
            user_id,
            token_hash: &token_hash,
            expires_at: now + self.settings.auth.refresh_token_ttl_secs * 1000,
            user_agent: user_agent.as_deref(),
            ip: &ip,
            now,
        };
        store::insert_session(tx, &session).await?;
        let access_token = self.jwt.issue(user_id, &session_id, role)?;
        Ok(TokenResponse {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: self.jwt.ttl_secs,
            user: None,
        })
    }
}
