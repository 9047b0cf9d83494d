//! Sign-in and sign-up by SMS code, and binding a phone number to an account.
//!
//! A code is 6 digits, stored only as an HMAC digest, works once, for `sms.code_ttl_secs` and
//! `sms.code_attempts` wrong tries; a new code voids the number's older ones. Sending is
//! limited per number (`limits.sms_codes_per_phone_per_hour`, and one per
//! `sms.resend_after_secs`) and per address (`limits.sms_codes_per_ip_per_hour`). Asking for a
//! sign-in code answers the same whether or not an account has the number.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use skein_core::api::{RegistrationMode, SettingsSource};
use skein_core::auth::{AuthUser, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::ids::{new_id, now_ms};
use skein_core::limit::Quota;
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::TokenResponse;
use crate::errors;
use crate::model::Profile;
use crate::model::UserStatus;
use crate::sms::Phone;
use crate::store::phone::{self as phone_store, CodeRow, NewCode};
use crate::store::{self, oauth as oauth_store};
use crate::{UserService, conflict_or_internal, throttle, validate};

/// A number to send a code to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCodeRequest {
    /// With its country code: `+8613800138000` (spaces and dashes are ignored).
    pub phone: String,
}

/// A code is on its way.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    /// Always true.
    pub sent: bool,
    /// The number as understood, masked (`+86*******8000`).
    pub phone: String,
    /// Seconds the code works.
    pub expires_in: u64,
    /// Seconds before another code may be asked for this number.
    pub resend_after: u64,
}

/// A code typed back, to sign in (or sign up).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneLoginRequest {
    /// The number the code went to.
    pub phone: String,
    /// The 6-digit code.
    pub code: String,
    /// Needed when the number has no account yet and the server requires invitations.
    pub invite_code: Option<String>,
    /// Shown name for a new account (defaults to "User" and the number's last 4 digits).
    pub display_name: Option<String>,
    /// UI language of a new account, `en` or `zh-CN` (defaults from `Accept-Language`).
    pub language: Option<String>,
}

/// A code typed back, to bind the number to the signed-in account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindPhoneRequest {
    /// The number the code went to.
    pub phone: String,
    /// The 6-digit code.
    pub code: String,
}

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    SignIn,
    Bind,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "sign_in",
            Purpose::Bind => "bind",
        }
    }
}

/// Whether this server signs people in by SMS code (public: the sign-in page asks).
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneSignInState {
    /// True when `[sms]` names a provider.
    pub enabled: bool,
    /// Seconds before another code may be asked for the same number.
    pub resend_after: u64,
    /// Seconds a code works.
    pub code_ttl: u64,
}

/// Whether sign-in by SMS code is available.
#[utoipa::path(get, path = "/auth/phone", tag = "auth",
    responses((status = 200, body = PhoneSignInState)))]
pub async fn phone_state(State(svc): State<Arc<UserService>>) -> ApiJson<PhoneSignInState> {
    ApiJson(PhoneSignInState {
        enabled: svc.sms_provider().is_some(),
        resend_after: svc.settings.sms.resend_after_secs,
        code_ttl: svc.settings.sms.code_ttl_secs,
    })
}

/// Send a sign-in code by SMS. The same code signs up a number that has no account yet (under
/// the registration policy). The answer does not say whether an account has the number. The
/// code is queued and the answer comes before the vendor's: a vendor that is slow or down is
/// retried in the background, and a code that cannot be delivered is void.
#[utoipa::path(post, path = "/auth/phone/code", tag = "auth", request_body = SendCodeRequest,
    responses(
        (status = 202, description = "A code is on its way", body = CodeSent),
        (status = 422, description = "Not an E.164 phone number", body = ErrorEnvelope),
        (status = 429, description = "A code was sent to this number moments ago, or too many codes for this number or from this address", body = ErrorEnvelope),
        (status = 503, description = "Phone sign-in is not configured (`sms_unavailable`), or too many codes wait for the vendor (`sms_busy`)", body = ErrorEnvelope),
    ))]
pub async fn send_sign_in_code(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    lang: Lang,
    ApiJson(req): ApiJson<SendCodeRequest>,
) -> ApiResult<(StatusCode, ApiJson<CodeSent>)> {
    let phone = Phone::parse(&req.phone, "phone")?;
    let sent = svc
        .send_phone_code(&phone, Purpose::SignIn, None, ip, lang)
        .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(sent)))
}

/// Sign in with a code sent to a phone number. A number without an account gets one (201),
/// when registration is open (with `invite_code` when invitations are required). With
/// two-factor sign-in on, the answer is the challenge for `POST /auth/login/2fa`.
#[utoipa::path(post, path = "/auth/phone/login", tag = "auth", request_body = PhoneLoginRequest,
    responses(
        (status = 200, description = "Signed in (tokens), or the two-factor challenge", body = super::auth::LoginAnswer),
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 403, description = "Account disabled, registration closed, or the server has no account yet", body = ErrorEnvelope),
        (status = 422, description = "Wrong, used or expired code (`invalid_code`), a bad number, or an invite code required or invalid", body = ErrorEnvelope),
        (status = 503, description = "Phone sign-in is not configured", body = ErrorEnvelope),
    ))]
pub async fn phone_login(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    lang: Lang,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PhoneLoginRequest>,
) -> ApiResult<Response> {
    svc.require_sms()?;
    let phone = Phone::parse(&req.phone, "phone")?;
    let code = svc
        .check_phone_code(&phone, Purpose::SignIn, &req.code)
        .await?;
    let existing = phone_store::user_by_phone(svc.db.pool(), phone.e164()).await?;
    let Some(user) = existing else {
        return svc
            .register_by_phone(&phone, &code, &req, lang, &headers, ip)
            .await;
    };
    if !phone_store::use_code(svc.db.pool(), &code.id, now_ms()).await? {
        return Err(errors::invalid_code());
    }
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    // The same rule as a password sign-in: a code proves the number, not the address.
    if svc.sign_in().methods.verified_email_for_login
        && user.role == Role::User
        && user.email_verified_at.is_none()
    {
        return Err(errors::email_not_verified());
    }
    tracing::info!(user_id = %user.id, "signed in with an SMS code");
    if user.has_second_factor() {
        return svc.open_challenge(&user.id).await;
    }
    svc.finish_login(user, &headers, ip).await
}

/// Send a code to bind a number to the signed-in account.
#[utoipa::path(post, path = "/user/phone/code", tag = "account", security(("bearer" = [])), request_body = SendCodeRequest,
    responses(
        (status = 202, description = "A code is on its way", body = CodeSent),
        (status = 409, description = "This is the account's number already", body = ErrorEnvelope),
        (status = 422, description = "Not an E.164 phone number", body = ErrorEnvelope),
        (status = 429, description = "Too many codes", body = ErrorEnvelope),
        (status = 503, description = "Phone sign-in is not configured (`sms_unavailable`), or too many codes wait for the vendor (`sms_busy`)", body = ErrorEnvelope),
    ))]
pub async fn send_bind_code(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ClientIp(ip): ClientIp,
    lang: Lang,
    ApiJson(req): ApiJson<SendCodeRequest>,
) -> ApiResult<(StatusCode, ApiJson<CodeSent>)> {
    let phone = Phone::parse(&req.phone, "phone")?;
    let row = svc.user_row(&user.user_id).await?;
    if row.phone.as_deref() == Some(phone.e164()) {
        return Err(ApiError::conflict(
            "phone_unchanged",
            "This is your account's number already.",
            "该号码已绑定到您的账号。",
        ));
    }
    let sent = svc
        .send_phone_code(&phone, Purpose::Bind, Some(&user.user_id), ip, lang)
        .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(sent)))
}

/// Bind a number to the signed-in account with the code sent to it (replacing the account's
/// number, if it had one). From then on the account may sign in with codes sent there.
#[utoipa::path(put, path = "/user/phone", tag = "account", security(("bearer" = [])), request_body = BindPhoneRequest,
    responses(
        (status = 200, body = Profile),
        (status = 409, description = "Another account has this number (`phone_taken`)", body = ErrorEnvelope),
        (status = 422, description = "Wrong, used or expired code", body = ErrorEnvelope),
        (status = 503, description = "Phone sign-in is not configured", body = ErrorEnvelope),
    ))]
pub async fn bind_phone(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<BindPhoneRequest>,
) -> ApiResult<ApiJson<Profile>> {
    svc.require_sms()?;
    let phone = Phone::parse(&req.phone, "phone")?;
    let code = svc
        .check_phone_code(&phone, Purpose::Bind, &req.code)
        .await?;
    // A code asked for by another account binds nothing here.
    if code.user_id.as_deref() != Some(user.user_id.as_str()) {
        return Err(errors::invalid_code());
    }
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    if !phone_store::use_code(&mut *tx, &code.id, now).await? {
        return Err(errors::invalid_code());
    }
    // The person proved they hold the number, so saying it is taken reveals nothing new.
    if let Some(other) = phone_store::user_by_phone(&mut *tx, phone.e164()).await?
        && other.id != user.user_id
    {
        return Err(errors::phone_taken());
    }
    phone_store::set_phone(&mut *tx, &user.user_id, Some(phone.e164()), now)
        .await
        .map_err(|e| {
            if store::is_conflict(&e) {
                errors::phone_taken()
            } else {
                e.into()
            }
        })?;
    tx.commit().await.map_err(DbError::from)?;
    tracing::info!(user_id = %user.user_id, phone = %phone.masked(), "phone number bound");
    Ok(ApiJson(svc.profile_of(&user.user_id).await?))
}

/// Remove the signed-in account's number. Refused when it is the account's only way to sign
/// in (no password and no linked provider).
#[utoipa::path(delete, path = "/user/phone", tag = "account", security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The account has no number", body = ErrorEnvelope),
        (status = 409, description = "It is the account's last way to sign in (`last_sign_in_method`)", body = ErrorEnvelope),
    ))]
pub async fn unbind_phone(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<StatusCode> {
    let mut tx = svc.db.begin_write().await?;
    let row = store::user_by_id(&mut *tx, &user.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("User", "用户"))?;
    if row.phone.is_none() {
        return Err(ApiError::not_found("Phone number", "手机号"));
    }
    let has_password = oauth_store::password_login(&mut *tx, &user.user_id).await?;
    let providers = oauth_store::identities_of(&mut *tx, &user.user_id).await?;
    if !has_password && providers.is_empty() {
        return Err(ApiError::conflict(
            "last_sign_in_method",
            "This number is the only way to sign in to this account. Set a password (\"Forgot password\" mails a link) or link a provider first.",
            "该手机号是该账号唯一的登录方式。请先设置密码（可通过“忘记密码”邮件设置）或关联第三方登录。",
        ));
    }
    phone_store::set_phone(&mut *tx, &user.user_id, None, now_ms()).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

impl UserService {
    /// 503 when no SMS provider is configured.
    fn require_sms(&self) -> ApiResult<Arc<dyn crate::sms::SmsProvider>> {
        self.sms_provider().ok_or_else(errors::sms_unavailable)
    }

    /// Checks the limits, stores a new code and sends it.
    async fn send_phone_code(
        &self,
        phone: &Phone,
        purpose: Purpose,
        user_id: Option<&str>,
        ip: std::net::IpAddr,
        lang: Lang,
    ) -> ApiResult<CodeSent> {
        let provider = self.require_sms()?;
        let config = &self.settings.sms;
        let limits = &self.settings.limits;
        // One code per number per `resend_after_secs`: probed first (free), charged last, so a
        // refused request does not push the number's next code further away.
        let gap_key = format!("sms:gap:{}", phone.e164());
        let gap = Quota {
            limit: 1,
            period: Duration::from_secs(config.resend_after_secs.max(1)),
        };
        if let Ok(probe) = self.limiter.check(&gap_key, gap, 0).await
            && !probe.allowed
        {
            let wait = probe.retry_after.unwrap_or(Duration::from_secs(1));
            return Err(errors::code_sent_recently(wait));
        }
        self.limit_ip("sms", ip, limits.sms_codes_per_ip_per_hour)
            .await?;
        throttle::charge(
            self.limiter.as_ref(),
            &format!("sms:phone:{}", phone.e164()),
            throttle::per_hour(limits.sms_codes_per_phone_per_hour),
        )
        .await
        .map_err(|wait| {
            tracing::warn!(phone = %phone.masked(), client_ip = %ip, "SMS codes per number used up");
            errors::too_many_codes(wait)
        })?;
        let _ = throttle::charge(self.limiter.as_ref(), &gap_key, gap).await;

        let code = new_code();
        let id = new_id();
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        phone_store::insert_code(
            &mut tx,
            &NewCode {
                id: &id,
                phone: phone.e164(),
                purpose: purpose.as_str(),
                user_id,
                code_hash: &self.code_digest(&id, phone, &code),
                attempts: i64::from(config.code_attempts),
                now,
                expires_at: now + i64::try_from(config.code_ttl_secs).unwrap_or(300) * 1000,
            },
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        let expires_at = now + i64::try_from(config.code_ttl_secs).unwrap_or(300) * 1000;
        let queued = self.sms_queue.push(crate::sms::queue::Outgoing {
            code_id: id.clone(),
            phone: phone.clone(),
            code,
            lang,
            expires_at,
            provider: provider.clone(),
        });
        if queued.is_err() {
            phone_store::void_code(self.db.pool(), &id, now_ms()).await?;
            tracing::error!(provider = provider.name(), phone = %phone.masked(), "SMS queue full; code not queued");
            return Err(errors::sms_busy());
        }
        tracing::info!(provider = provider.name(), phone = %phone.masked(), purpose = purpose.as_str(), "SMS code queued");
        Ok(CodeSent {
            sent: true,
            phone: phone.masked(),
            expires_in: config.code_ttl_secs,
            resend_after: config.resend_after_secs,
        })
    }

    /// The number's live code for `purpose` if `typed` is it. Each try is taken from the code
    /// before comparing, so a code cannot be guessed past `sms.code_attempts` tries, however
    /// many requests run at once. Does not use the code up (the caller does, in its own step).
    async fn check_phone_code(
        &self,
        phone: &Phone,
        purpose: Purpose,
        typed: &str,
    ) -> ApiResult<CodeRow> {
        let typed = typed.trim();
        if typed.len() != 6 || !typed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(errors::invalid_code());
        }
        let now = now_ms();
        let Some(code) =
            phone_store::live_code(self.db.pool(), phone.e164(), purpose.as_str(), now).await?
        else {
            return Err(errors::invalid_code());
        };
        if !phone_store::take_attempt(self.db.pool(), &code.id, now).await? {
            return Err(errors::invalid_code());
        }
        let digest = self.code_digest(&code.id, phone, typed);
        if !bool::from(digest.as_bytes().ct_eq(code.code_hash.as_bytes())) {
            tracing::warn!(phone = %phone.masked(), "wrong SMS code");
            return Err(errors::invalid_code());
        }
        Ok(code)
    }

    /// The stored form of a code: keyed, and bound to its row and number.
    fn code_digest(&self, id: &str, phone: &Phone, code: &str) -> String {
        self.sealer()
            .digest(&format!("sms code\0{id}\0{}\0{code}", phone.e164()))
    }

    /// Creates an account for a number that has none, under the registration policy, uses
    /// the code in the same transaction and signs the new account in (201).
    async fn register_by_phone(
        &self,
        phone: &Phone,
        code: &CodeRow,
        req: &PhoneLoginRequest,
        lang: Lang,
        headers: &HeaderMap,
        ip: std::net::IpAddr,
    ) -> ApiResult<Response> {
        if self.needs_setup().await? {
            return Err(errors::setup_required_for_phone());
        }
        // The live registration mode (Admin → System), as for password and provider sign-up.
        let mode = self.system.current().registration_mode;
        if mode == RegistrationMode::Closed {
            return Err(errors::registration_closed_for_phone());
        }
        if self.sign_in().methods.verified_email_for_login {
            return Err(errors::email_not_verified_for_phone());
        }
        let invite_code = req
            .invite_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if invite_code.is_none() && mode == RegistrationMode::InviteOnly {
            return Err(errors::invite_code_required());
        }
        let tail = &phone.e164()[phone.e164().len().saturating_sub(4)..];
        let display_name = match req.display_name.as_deref().filter(|n| !n.trim().is_empty()) {
            Some(name) => validate::display_name(name)?,
            None => format!("User {tail}"),
        };
        let language = match req.language.as_deref() {
            Some(l) => validate::language(l)?,
            None => if lang == Lang::Zh { "zh-CN" } else { "en" }.to_string(),
        };
        // A password nobody knows (`password_login = 0`), like a provider sign-in's account.
        let hash = self.passwords.hash(crate::oauth::random_token()).await?;
        let now = now_ms();
        let id = new_id();
        let mut tx = self.db.begin_write().await?;
        if !phone_store::use_code(&mut *tx, &code.id, now).await? {
            return Err(errors::invalid_code());
        }
        let invite = match invite_code {
            Some(code) => Some(
                store::use_invite_code(&mut *tx, code, now)
                    .await?
                    .ok_or_else(errors::invalid_invite_code)?,
            ),
            None => None,
        };
        let new = store::NewUser {
            id: &id,
            username: None,
            email: None,
            password_hash: &hash,
            display_name: &display_name,
            language: &language,
            role: Role::User,
            invited_by: invite.as_ref().map(|(_, owner)| owner.as_str()),
            now,
        };
        store::insert_user(&mut *tx, &new)
            .await
            .map_err(conflict_or_internal)?;
        oauth_store::mark_provider_account(&mut *tx, &id, None).await?;
        phone_store::set_phone(&mut *tx, &id, Some(phone.e164()), now)
            .await
            .map_err(|e| {
                if store::is_conflict(&e) {
                    errors::phone_taken()
                } else {
                    e.into()
                }
            })?;
        if let Some((code_id, inviter)) = &invite {
            store::insert_invitation(&mut *tx, &id, inviter, code_id, now).await?;
        }
        let tokens = self
            .open_session(&mut tx, &id, Role::User, headers, ip, now)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(user_id = %id, phone = %phone.masked(), "account created by an SMS code");
        self.announce_registration(&id, invite.as_ref().map(|(_, inviter)| inviter.as_str()))
            .await;
        let user = self.profile_of(&id).await?;
        let (cookie, tokens) = self.hand_out(headers, tokens);
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
}

/// A uniformly random 6-digit code.
fn new_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}
