//! Email verification, address change and password reset by mail.
//!
//! Links in mail open web pages (`/verify-email`, `/reset-password`) that POST the token:
//! a GET never changes anything, because mail scanners open links before people do.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::limit::Quota;
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use utoipa::ToSchema;

use crate::errors;
use crate::mail::{self, Lang, Template};
use crate::model::UserRow;
use crate::model::UserStatus;
use crate::store::accounts::{self as accounts, TokenPurpose};
use crate::tokens::hash_token;
use crate::{UserService, store, validate};

/// A token from a link in a mail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` parameter of the link.
    pub token: String,
}

/// The address that is now verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailVerified {
    /// The account's email, now verified.
    pub email: String,
}

/// Who forgot a password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's email.
    pub email: String,
}

/// A new password, with the token from the reset mail.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The `token` parameter of the link.
    pub token: String,
    /// 8–128 characters.
    pub new_password: String,
}

/// What a password reset did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetDone {
    /// How many sessions were signed out (all of them).
    pub revoked_sessions: u64,
}

/// A new address for the signed-in account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address; it replaces the current one when its link is opened.
    pub email: String,
    /// The account's password.
    pub current_password: String,
}

/// A mail was queued (or, where saying so would reveal an account, might have been).
#[derive(Debug, Serialize, ToSchema)]
pub struct MailQueued {
    /// Always true.
    pub accepted: bool,
}

/// Verify an email address with the token from the verification mail. The token works once
/// and expires after `auth.email_verification_ttl_secs`; for an address change, the new address
/// becomes the account's now.
#[utoipa::path(post, path = "/auth/verify-email", tag = "account", request_body = VerifyEmailRequest,
    responses(
        (status = 200, body = EmailVerified),
        (status = 400, description = "Unknown, used or expired link", body = ErrorEnvelope),
        (status = 409, description = "The address was taken by another account meanwhile", body = ErrorEnvelope),
        (status = 429, description = "Too many links from this address (`limits.account_links_per_ip_per_hour`)", body = ErrorEnvelope),
    ))]
pub async fn verify_email(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> ApiResult<ApiJson<EmailVerified>> {
    svc.limit_ip(
        "account_link",
        ip,
        svc.settings.limits.account_links_per_ip_per_hour,
    )
    .await?;
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    let Some((user_id, email)) = accounts::consume_account_token(
        &mut *tx,
        &hash_token(req.token.trim()),
        TokenPurpose::VerifyEmail,
        now,
    )
    .await?
    else {
        return Err(errors::invalid_link());
    };
    accounts::set_verified_email(&mut *tx, &user_id, &email, now)
        .await
        .map_err(|e| {
            if store::is_conflict(&e) {
                crate::taken_error(true)
            } else {
                e.into()
            }
        })?;
    accounts::void_reset_links(&mut *tx, &user_id, Some(&email), now).await?;
    tx.commit().await.map_err(DbError::from)?;
    svc.forget_user_sessions(&user_id);
    // The relay may be holding this user's keys back until the address is verified.
    svc.announce_status_change(&user_id).await;
    tracing::info!(%user_id, "email verified");
    Ok(ApiJson(EmailVerified { email }))
}

/// Ask for a password reset mail. The answer is the same whether or not an account has this
/// address, so it tells nobody who has an account here.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "account", request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "If an account has this address, a mail is on its way", body = MailQueued),
        (status = 422, description = "Not an email address", body = ErrorEnvelope),
        (status = 429, description = "Too many resets asked for from this address (`limits.password_resets_per_ip_per_hour`)", body = ErrorEnvelope),
        (status = 503, description = "This server sends no mail", body = ErrorEnvelope),
    ))]
pub async fn forgot_password(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ForgotPasswordRequest>,
) -> ApiResult<(StatusCode, ApiJson<MailQueued>)> {
    svc.require_mail()?;
    // Counted whether or not an account has the address, so the answer stays the same.
    svc.limit_ip(
        "password_forgot",
        ip,
        svc.settings.limits.password_resets_per_ip_per_hour,
    )
    .await?;
    let email = validate::email(&req.email)?;
    if let Some(user) = store::user_by_login(svc.db.pool(), &email).await?
        && user.status == UserStatus::Active
        && user.email.as_deref() == Some(email.as_str())
        // At most a few mails an hour per account, however many strangers ask: over that,
        // nothing is sent and the answer stays the same.
        && svc.mail_allowed(&format!("mail:reset:{}", user.id)).await
    {
        let ttl = svc.settings.auth.password_reset_ttl_secs;
        let (token, mut tx) = svc
            .new_link(&user, TokenPurpose::ResetPassword, &email, ttl)
            .await?;
        let template = Template::PasswordReset {
            name: user.display_name.clone(),
            link: svc.link("reset-password", &token),
            minutes: (ttl / 60).max(1),
        };
        mail::enqueue(
            &mut tx,
            &email,
            &template,
            Lang::from_profile(&user.language),
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(user_id = %user.id, "password reset mail queued");
    }
    Ok((StatusCode::ACCEPTED, ApiJson(MailQueued { accepted: true })))
}

/// Set a new password with the token from the reset mail. Every session of the account is
/// signed out; the token works once.
#[utoipa::path(post, path = "/auth/password/reset", tag = "account", request_body = ResetPasswordRequest,
    responses(
        (status = 200, body = PasswordResetDone),
        (status = 400, description = "Unknown, used or expired link", body = ErrorEnvelope),
        (status = 422, description = "The new password is not acceptable", body = ErrorEnvelope),
        (status = 429, description = "Too many links from this address (`limits.account_links_per_ip_per_hour`)", body = ErrorEnvelope),
    ))]
pub async fn reset_password(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> ApiResult<ApiJson<PasswordResetDone>> {
    svc.limit_ip(
        "account_link",
        ip,
        svc.settings.limits.account_links_per_ip_per_hour,
    )
    .await?;
    // The password is checked first, so a too-short one does not use up the link.
    validate::password(&req.new_password, "new_password")?;
    let hash = svc.passwords.hash(req.new_password).await?;
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    let Some((user_id, email)) = accounts::consume_account_token(
        &mut *tx,
        &hash_token(req.token.trim()),
        TokenPurpose::ResetPassword,
        now,
    )
    .await?
    else {
        return Err(errors::invalid_link());
    };
    store::set_password(&mut *tx, &user_id, &hash, now).await?;
    let revoked =
        store::revoke_user_sessions(&mut *tx, &user_id, None, "password_reset", now).await?;
    // Opening the mail proved the address, if it is still the account's.
    if let Some(user) = store::user_by_id(&mut *tx, &user_id).await?
        && user.email.as_deref() == Some(email.as_str())
        && user.email_verified_at.is_none()
    {
        accounts::set_verified_email(&mut *tx, &user_id, &email, now).await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    svc.forget_user_sessions(&user_id);
    svc.announce_status_change(&user_id).await;
    tracing::info!(%user_id, revoked, "password reset by mail");
    Ok(ApiJson(PasswordResetDone {
        revoked_sessions: revoked,
    }))
}

/// Send the verification mail again to the signed-in account's address.
#[utoipa::path(post, path = "/user/email/verification", tag = "account", security(("bearer" = [])),
    responses(
        (status = 202, body = MailQueued),
        (status = 409, description = "Already verified", body = ErrorEnvelope),
        (status = 422, description = "The account has no email", body = ErrorEnvelope),
        (status = 429, description = "Too many mails asked for", body = ErrorEnvelope),
        (status = 503, description = "This server sends no mail", body = ErrorEnvelope),
    ))]
pub async fn resend_verification(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<(StatusCode, ApiJson<MailQueued>)> {
    svc.require_mail()?;
    let row = svc.user_row(&user.user_id).await?;
    let Some(email) = row.email.clone() else {
        return Err(errors::no_email());
    };
    if row.email_verified_at.is_some() {
        return Err(ApiError::conflict(
            "email_already_verified",
            "This address is verified already.",
            "该邮箱已验证。",
        ));
    }
    if !svc.mail_allowed(&format!("mail:verify:{}", row.id)).await {
        return Err(errors::too_many_mails());
    }
    svc.send_verification(&row, &email).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(MailQueued { accepted: true })))
}

/// Change the signed-in account's email. A link goes to the new address; the address changes
/// when it is opened. If another account has the address, that address is told so instead,
/// and this answer is the same, so it reveals nobody's account.
#[utoipa::path(put, path = "/user/email", tag = "account", security(("bearer" = [])), request_body = ChangeEmailRequest,
    responses(
        (status = 202, body = MailQueued),
        (status = 401, description = "Wrong password", body = ErrorEnvelope),
        (status = 422, description = "Not an email address, or the current one", body = ErrorEnvelope),
        (status = 429, description = "Too many attempts", body = ErrorEnvelope),
        (status = 503, description = "This server sends no mail", body = ErrorEnvelope),
    ))]
pub async fn change_email(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> ApiResult<(StatusCode, ApiJson<MailQueued>)> {
    svc.require_mail()?;
    let email = validate::email(&req.email)?;
    let row = svc.user_row(&user.user_id).await?;
    if row.email.as_deref() == Some(email.as_str()) {
        return Err(ApiError::invalid_field(
            "email",
            "This is the account's address already.",
            "这已经是该账号的邮箱地址。",
        ));
    }
    if !svc.mail_allowed(&format!("mail:change:{}", row.id)).await {
        return Err(errors::too_many_mails());
    }
    let ok = svc
        .passwords
        .verify(req.current_password, Some(row.password_hash.clone()))
        .await?;
    if !ok {
        return Err(errors::wrong_current_password());
    }
    let (taken, _) = store::taken(svc.db.pool(), Some(&email), None).await?;
    if taken {
        let mut tx = svc.db.begin_write().await?;
        let template = Template::AddressInUse {
            sign_in_link: svc.link("login", ""),
        };
        mail::enqueue(
            &mut tx,
            &email,
            &template,
            Lang::from_profile(&row.language),
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
    } else {
        svc.send_verification(&row, &email).await?;
    }
    Ok((StatusCode::ACCEPTED, ApiJson(MailQueued { accepted: true })))
}

impl UserService {
    /// 503 when no SMTP server is configured.
    pub(crate) fn require_mail(&self) -> ApiResult<()> {
        if self.mail_enabled() {
            Ok(())
        } else {
            Err(errors::mail_unavailable())
        }
    }

    /// Whether one more mail of this kind may go to this account now (5 an hour).
    pub(crate) async fn mail_allowed(&self, key: &str) -> bool {
        let quota = Quota {
            limit: 5,
            period: std::time::Duration::from_secs(3600),
        };
        match self.limiter.check(key, quota, 1).await {
            Ok(decision) => decision.allowed,
            Err(error) => {
                tracing::warn!(%error, "mail limiter unavailable");
                true
            }
        }
    }

    pub(crate) async fn user_row(&self, user_id: &str) -> ApiResult<UserRow> {
        store::user_by_id(self.db.pool(), user_id)
            .await?
            .ok_or_else(|| ApiError::not_found("User", "用户"))
    }

    /// A new one-time link's token, stored, in an open transaction the caller commits.
    pub(crate) async fn new_link(
        &self,
        user: &UserRow,
        purpose: TokenPurpose,
        email: &str,
        ttl_secs: i64,
    ) -> ApiResult<(
        String,
        skein_db::sqlx::Transaction<'static, skein_db::sqlx::Any>,
    )> {
        let token = crate::tokens::new_link_token();
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        accounts::insert_account_token(
            &mut tx,
            &hash_token(&token),
            &user.id,
            purpose,
            email,
            now,
            now + ttl_secs * 1000,
        )
        .await?;
        Ok((token, tx))
    }

    /// Queues a verification mail for `email` (the account's, or the one it moves to).
    pub(crate) async fn send_verification(&self, user: &UserRow, email: &str) -> ApiResult<()> {
        let mut tx = self.db.begin_write().await?;
        self.queue_verification(&mut tx, &user.id, &user.display_name, &user.language, email)
            .await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// Stores a verification link and queues its mail inside `tx` (registration's own
    /// transaction: the mail exists only if the account does).
    pub(crate) async fn queue_verification(
        &self,
        tx: &mut skein_db::sqlx::Transaction<'static, skein_db::sqlx::Any>,
        user_id: &str,
        name: &str,
        language: &str,
        email: &str,
    ) -> ApiResult<()> {
        let ttl = self.settings.auth.email_verification_ttl_secs;
        let token = crate::tokens::new_link_token();
        let now = now_ms();
        accounts::insert_account_token(
            tx,
            &hash_token(&token),
            user_id,
            TokenPurpose::VerifyEmail,
            email,
            now,
            now + ttl * 1000,
        )
        .await?;
        let template = Template::VerifyEmail {
            name: name.to_string(),
            link: self.link("verify-email", &token),
            hours: (ttl / 3600).max(1),
        };
        mail::enqueue(tx, email, &template, Lang::from_profile(language)).await?;
        Ok(())
    }

    /// `public_url/page?token=...` (or just the page when `token` is empty).
    pub(crate) fn link(&self, page: &str, token: &str) -> String {
        let base = self.settings.mail.public_url.trim_end_matches('/');
        if token.is_empty() {
            format!("{base}/{page}")
        } else {
            format!("{base}/{page}?token={token}")
        }
    }
}
