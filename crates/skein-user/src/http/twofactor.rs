//! Two-factor sign-in with TOTP: set-up, confirmation, recovery codes, turning it off, and
//! the sign-in step after the password.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use skein_core::auth::{AuthUser, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::limit::Quota;
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use utoipa::ToSchema;

use super::TokenResponse;
use crate::errors;
use crate::model::UserStatus;
use crate::model::{Profile, UserRow};
use crate::store::{self, accounts};
use crate::tokens::hash_token;
use crate::{UserService, totp};

/// Code attempts per account per 15 minutes before codes are refused for a while (a right
/// code forgives the earlier ones).
const WRONG_CODES_PER_WINDOW: u32 = 5;
/// How long the step between password and code may take.
const CHALLENGE_TTL_SECS: i64 = 300;

/// The password, to start or change two-factor settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirm {
    /// The account's password.
    pub password: String,
}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeConfirm {
    /// 6 digits.
    pub code: String,
}

/// Password and a code (or a recovery code), to turn two-factor sign-in off.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    /// The account's password.
    pub password: String,
    /// A current code, or an unused recovery code.
    pub code: String,
}

/// A set-up waiting for its first code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    /// The shared secret, base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_uri: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Each works once in place of a code. Stored hashed: this is the only time they are shown.
    pub recovery_codes: Vec<String>,
}

/// Two-factor state of the signed-in account.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorStatus {
    /// Whether sign-in asks for a code.
    pub enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Whether this server requires it of this account (admins, when configured).
    pub required: bool,
}

/// The answer to a right password when the account has two-factor sign-in on.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorChallenge {
    /// Always true: send `challenge` and a code to `POST /auth/login/2fa`, or a passkey's
    /// answer to `POST /auth/login/2fa/passkey`.
    pub two_factor_required: bool,
    /// Works once, for `expires_in` seconds.
    pub challenge: String,
    /// Seconds.
    pub expires_in: i64,
    /// What answers the step: `totp` (a code or a recovery code), `passkey`.
    pub methods: Vec<&'static str>,
}

/// The second sign-in step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginSecondFactor {
    /// From the login answer.
    pub challenge: String,
    /// A current code, or an unused recovery code.
    pub code: String,
}

/// Two-factor state of the signed-in account.
#[utoipa::path(get, path = "/user/2fa", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = TwoFactorStatus), (status = 401, body = ErrorEnvelope)))]
pub async fn status(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<TwoFactorStatus>> {
    let row = svc.user_row(&user.user_id).await?;
    let left = accounts::recovery_codes_left(svc.db.pool(), &row.id).await?;
    Ok(ApiJson(TwoFactorStatus {
        enabled: row.totp_enabled > 0,
        recovery_codes_left: left,
        required: svc.settings.auth.two_factor_required_for_admins && row.role != Role::User,
    }))
}

/// Start setting up TOTP: answers a new secret and its `otpauth://` URI. Nothing changes at
/// sign-in until a first code confirms it (`POST /user/2fa/totp/enable`).
#[utoipa::path(post, path = "/user/2fa/totp/setup", tag = "account", security(("bearer" = [])), request_body = PasswordConfirm,
    responses(
        (status = 200, body = TotpSetup),
        (status = 401, description = "Wrong password", body = ErrorEnvelope),
        (status = 409, description = "Already on", body = ErrorEnvelope),
    ))]
pub async fn setup(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<PasswordConfirm>,
) -> ApiResult<ApiJson<TotpSetup>> {
    let row = svc.user_row(&user.user_id).await?;
    svc.check_password(&row, req.password).await?;
    let secret = totp::new_secret();
    let sealed = svc.seal_totp_secret(&row.id, &secret)?;
    let mut tx = svc.db.begin_write().await?;
    if !accounts::begin_totp(&mut tx, &row.id, &sealed, now_ms()).await? {
        return Err(errors::already_on());
    }
    tx.commit().await.map_err(DbError::from)?;
    let account = row
        .email
        .clone()
        .or(row.username.clone())
        .unwrap_or(row.id.clone());
    Ok(ApiJson(TotpSetup {
        otpauth_uri: totp::otpauth_uri("Skein", &account, &secret),
        secret,
    }))
}

/// Confirm the set-up with a first code: two-factor sign-in is on from now, and the answer
/// holds the recovery codes (shown this once).
#[utoipa::path(post, path = "/user/2fa/totp/enable", tag = "account", security(("bearer" = [])), request_body = CodeConfirm,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 404, description = "No set-up started", body = ErrorEnvelope),
        (status = 409, description = "Already on", body = ErrorEnvelope),
        (status = 422, description = "Wrong code", body = ErrorEnvelope),
        (status = 429, description = "Too many wrong codes", body = ErrorEnvelope),
    ))]
pub async fn enable(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<CodeConfirm>,
) -> ApiResult<ApiJson<RecoveryCodes>> {
    let Some(row) = svc.totp_row(&user.user_id).await? else {
        return Err(ApiError::not_found("Two-factor set-up", "两步验证设置"));
    };
    if row.enabled_at.is_some() {
        return Err(errors::already_on());
    }
    svc.charge_code_attempt(&user.user_id).await?;
    let now = now_ms();
    let step = totp::verify(&row.secret, &req.code, now / 1000, row.last_step);
    let Some(step) = step else {
        return Err(errors::wrong_code());
    };
    svc.forgive_code_attempts(&user.user_id).await;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_hash(c)).collect();
    let mut tx = svc.db.begin_write().await?;
    if !accounts::accept_totp_step(&mut *tx, &user.user_id, step, Some(now)).await? {
        return Err(errors::wrong_code());
    }
    accounts::replace_recovery_codes(&mut tx, &user.user_id, &hashes).await?;
    tx.commit().await.map_err(DbError::from)?;
    // An admin held back to a plain user's rights by the 2FA requirement gets them back.
    svc.forget_user_sessions(&user.user_id);
    tracing::info!(user_id = %user.user_id, "two-factor sign-in turned on");
    Ok(ApiJson(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turn two-factor sign-in off, with the password and a code (or a recovery code).
#[utoipa::path(post, path = "/user/2fa/totp/disable", tag = "account", security(("bearer" = [])), request_body = DisableTotp,
    responses(
        (status = 204),
        (status = 401, description = "Wrong password", body = ErrorEnvelope),
        (status = 404, description = "Not on", body = ErrorEnvelope),
        (status = 422, description = "Wrong code", body = ErrorEnvelope),
        (status = 429, description = "Too many wrong codes", body = ErrorEnvelope),
    ))]
pub async fn disable(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<DisableTotp>,
) -> ApiResult<StatusCode> {
    let row = svc.user_row(&user.user_id).await?;
    if row.totp_enabled == 0 {
        return Err(ApiError::not_found("Two-factor sign-in", "两步验证"));
    }
    svc.check_password(&row, req.password).await?;
    if !svc.second_factor(&row.id, &req.code).await? {
        return Err(errors::wrong_code());
    }
    let mut tx = svc.db.begin_write().await?;
    accounts::delete_totp(&mut tx, &row.id).await?;
    tx.commit().await.map_err(DbError::from)?;
    svc.forget_user_sessions(&row.id);
    tracing::info!(user_id = %row.id, "two-factor sign-in turned off");
    Ok(StatusCode::NO_CONTENT)
}

/// The second sign-in step: the challenge from the login answer and a code (or a recovery
/// code). Wrong codes are limited per account (429) and per challenge (5, then it is void).
#[utoipa::path(post, path = "/auth/login/2fa", tag = "auth", request_body = LoginSecondFactor,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Unknown, used or expired challenge", body = ErrorEnvelope),
        (status = 422, description = "Wrong code", body = ErrorEnvelope),
        (status = 429, description = "Too many wrong codes", body = ErrorEnvelope),
    ))]
pub async fn login_second_factor(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginSecondFactor>,
) -> ApiResult<Response> {
    let challenge_hash = hash_token(req.challenge.trim());
    let now = now_ms();
    // Each attempt is counted against the challenge before its code is looked at, in the
    // same statement that checks the count: parallel guesses cannot all slip under it.
    let Some(user_id) =
        accounts::claim_challenge_attempt(svc.db.pool(), &challenge_hash, now, 5).await?
    else {
        return Err(errors::invalid_challenge());
    };
    if !svc.second_factor(&user_id, &req.code).await? {
        return Err(errors::wrong_code());
    }
    if !accounts::use_challenge(svc.db.pool(), &challenge_hash, now_ms()).await? {
        return Err(errors::invalid_challenge());
    }
    let user = svc.user_row(&user_id).await?;
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    svc.finish_login(user, &headers, ip).await
}

impl UserService {
    /// 401 unless `password` is the account's.
    pub(crate) async fn check_password(&self, row: &UserRow, password: String) -> ApiResult<()> {
        let ok = self
            .passwords
            .verify(password, Some(row.password_hash.clone()))
            .await?;
        if ok {
            Ok(())
        } else {
            Err(errors::wrong_password())
        }
    }

    /// Whether `code` is a right TOTP code (not used before) or an unused recovery code of
    /// the account; a wrong one counts against the account's budget.
    pub(crate) async fn second_factor(&self, user_id: &str, code: &str) -> ApiResult<bool> {
        self.charge_code_attempt(user_id).await?;
        let ok = if totp::looks_like_recovery(code) {
            accounts::use_recovery_code(
                self.db.pool(),
                user_id,
                &totp::recovery_hash(code),
                now_ms(),
            )
            .await?
        } else {
            match self.totp_row(user_id).await? {
                Some(row) if row.enabled_at.is_some() => {
                    match totp::verify(&row.secret, code, now_ms() / 1000, row.last_step) {
                        Some(step) => {
                            accounts::accept_totp_step(self.db.pool(), user_id, step, None).await?
                        }
                        None => false,
                    }
                }
                _ => false,
            }
        };
        if ok {
            self.forgive_code_attempts(user_id).await;
        }
        Ok(ok)
    }

    fn wrong_code_quota() -> Quota {
        Quota {
            limit: WRONG_CODES_PER_WINDOW,
            period: Duration::from_secs(15 * 60),
        }
    }

    /// Counts one code attempt against the account, before the code is checked, or 429 when
    /// its attempts are used up. Charging first (one atomic step in the limiter) is what
    /// keeps parallel guesses from all passing a check made before any of them was counted;
    /// a right code then forgives the account's attempts.
    async fn charge_code_attempt(&self, user_id: &str) -> ApiResult<()> {
        let key = format!("totp:wrong:{user_id}");
        match self.limiter.check(&key, Self::wrong_code_quota(), 1).await {
            Ok(decision) if !decision.allowed => {
                let wait = decision.retry_after.unwrap_or(Duration::from_secs(60));
                let secs = wait.as_secs().max(1);
                tracing::warn!(%user_id, "two-factor codes refused after repeated wrong codes");
                Err(errors::too_many_wrong_codes(secs))
            }
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, "two-factor limiter unavailable");
                Ok(())
            }
        }
    }

    /// A right code: the account's earlier attempts no longer count.
    async fn forgive_code_attempts(&self, user_id: &str) {
        if let Err(error) = self.limiter.reset(&format!("totp:wrong:{user_id}")).await {
            tracing::warn!(%error, "two-factor limiter unavailable");
        }
    }

    /// After every factor was checked: records the sign-in and opens a session.
    pub(crate) async fn finish_login(
        &self,
        user: UserRow,
        headers: &HeaderMap,
        ip: std::net::IpAddr,
    ) -> ApiResult<Response> {
        let now = now_ms();
        let role = user.role;
        let mut tx = self.db.begin_write().await?;
        store::set_last_login(&mut *tx, &user.id, now).await?;
        let tokens = self
            .open_session(&mut tx, &user.id, role, headers, ip, now)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        let mut profile = Profile::from(user);
        profile.last_login_at = Some(skein_core::ids::ms_to_rfc3339(now));
        let (cookie, tokens) = self.hand_out(headers, tokens);
        Ok((
            cookie,
            ApiJson(TokenResponse {
                user: Some(profile),
                ..tokens
            }),
        )
            .into_response())
    }

    /// Answers the challenge a right password earns when two-factor sign-in is on.
    pub(crate) async fn open_challenge(&self, user_id: &str) -> ApiResult<Response> {
        let token = format!("skc_{}", &crate::tokens::new_link_token()[4..]);
        let now = now_ms();
        accounts::insert_challenge(
            self.db.pool(),
            &hash_token(&token),
            user_id,
            now,
            now + CHALLENGE_TTL_SECS * 1000,
        )
        .await?;
        let user = self.user_row(user_id).await?;
        let mut methods = Vec::new();
        if user.totp_enabled > 0 {
            methods.push("totp");
        }
        if user.passkeys > 0 {
            methods.push("passkey");
        }
        Ok(ApiJson(TwoFactorChallenge {
            two_factor_required: true,
            challenge: token,
            expires_in: CHALLENGE_TTL_SECS,
            methods,
        })
        .into_response())
    }
}
