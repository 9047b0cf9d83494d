//! Passkeys: adding and removing them in the personal centre, signing in with one (no
//! password), and answering the second sign-in step with one instead of a TOTP code.
//!
//! Each ceremony is two calls: `.../options` stores a random challenge (its hash, with its
//! purpose and account, for 5 minutes) and answers the options for
//! `navigator.credentials.create()` / `.get()`; the second call claims that challenge once and
//! checks the browser's answer (`crate::passkey`). Credentials are discoverable, so a
//! passwordless sign-in needs no username.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AuthUser, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{ms_to_rfc3339, new_id, now_ms};
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::UserService;
use crate::errors;
use crate::model::UserStatus;
use crate::passkey::{self, PasskeyError, RelyingParty, b64, unb64};
use crate::store::accounts;
use crate::store::passkeys::{self as passkey_store, NewPasskey, PasskeyRow};
use crate::tokens::hash_token;

/// How long a ceremony may take.
const CHALLENGE_TTL_MS: i64 = 300_000;
/// Passkeys one account may have.
const MAX_PASSKEYS: usize = 20;

/// `navigator.credentials.create()`'s options (WebAuthn's JSON form: binary as base64url).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreationOptions {
    /// `PublicKeyCredentialCreationOptions`.
    #[serde(rename = "publicKey")]
    pub public_key: CreationPublicKey,
}

/// `PublicKeyCredentialCreationOptions`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreationPublicKey {
    /// 32 random bytes, base64url; works once, for `timeout` ms.
    pub challenge: String,
    /// This server.
    pub rp: RpEntity,
    /// The account.
    pub user: UserEntity,
    /// ES256, then RS256.
    pub pub_key_cred_params: Vec<CredParam>,
    /// Milliseconds.
    pub timeout: i64,
    /// Always `none`: no authenticator model is asked for or kept.
    pub attestation: &'static str,
    /// The account's passkeys, so the same authenticator is not added twice.
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Discoverable credential required (passwordless sign-in), user verification preferred.
    pub authenticator_selection: AuthenticatorSelection,
}

/// The relying party.
#[derive(Debug, Serialize, ToSchema)]
pub struct RpEntity {
    /// The RP ID: the public URL's host.
    pub id: String,
    /// Shown by the authenticator.
    pub name: String,
}

/// The account as the authenticator stores it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// The account id's bytes, base64url (the `userHandle` of later sign-ins).
    pub id: String,
    /// Username, email or phone.
    pub name: String,
    /// Shown name.
    pub display_name: String,
}

/// An algorithm the server accepts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredParam {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// COSE algorithm: -7 (ES256), -257 (RS256).
    pub alg: i64,
}

/// A credential named in options.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialDescriptor {
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Credential id, base64url.
    pub id: String,
}

/// `AuthenticatorSelectionCriteria`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `required`.
    pub resident_key: &'static str,
    /// True (older browsers read this).
    pub require_resident_key: bool,
    /// `preferred`.
    pub user_verification: &'static str,
}

/// `navigator.credentials.get()`'s options.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOptions {
    /// `PublicKeyCredentialRequestOptions`.
    #[serde(rename = "publicKey")]
    pub public_key: RequestPublicKey,
}

/// `PublicKeyCredentialRequestOptions`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestPublicKey {
    /// 32 random bytes, base64url; works once, for `timeout` ms.
    pub challenge: String,
    /// The RP ID.
    pub rp_id: String,
    /// Milliseconds.
    pub timeout: i64,
    /// `preferred`.
    pub user_verification: &'static str,
    /// Empty for a passwordless sign-in (any of this site's passkeys); the account's for the
    /// second step.
    pub allow_credentials: Vec<CredentialDescriptor>,
}

/// `PublicKeyCredential.toJSON()` of a `create()`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationCredential {
    /// Credential id, base64url.
    pub id: String,
    /// The same, base64url.
    pub raw_id: String,
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's answer.
    pub response: AttestationResponse,
}

/// `AuthenticatorAttestationResponse` (JSON form).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AttestationResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url CBOR.
    #[serde(rename = "attestationObject")]
    pub attestation_object: String,
}

/// `PublicKeyCredential.toJSON()` of a `get()`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionCredential {
    /// Credential id, base64url.
    pub id: String,
    /// The same, base64url.
    pub raw_id: String,
    /// `public-key`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The authenticator's answer.
    pub response: AssertionResponse,
}

/// `AuthenticatorAssertionResponse` (JSON form).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    /// base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url.
    pub authenticator_data: String,
    /// base64url (DER for ES256).
    pub signature: String,
    /// The account id's bytes, base64url, when the authenticator sends it.
    pub user_handle: Option<String>,
}

/// Adding a passkey.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPasskey {
    /// A name to recognise it by (1–64 characters; default "Passkey").
    pub name: Option<String>,
    /// What `navigator.credentials.create()` answered.
    pub credential: RegistrationCredential,
}

/// A passwordless sign-in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLogin {
    /// What `navigator.credentials.get()` answered.
    pub credential: AssertionCredential,
}

/// The second sign-in step's challenge (from the login answer).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorOptionsRequest {
    /// From the login answer.
    pub challenge: String,
}

/// The second sign-in step, answered with a passkey.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorPasskey {
    /// From the login answer.
    pub challenge: String,
    /// What `navigator.credentials.get()` answered.
    pub credential: AssertionCredential,
}

/// A passkey as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// Id (for removing).
    pub id: String,
    /// Its name.
    pub name: String,
    /// `ES256` or `RS256`.
    pub algorithm: &'static str,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: last sign-in with it.
    pub last_used_at: Option<String>,
}

/// The account's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    pub items: Vec<PasskeyView>,
    /// Whether this server lets people sign in with passkeys (Admin → Sign-in).
    pub enabled: bool,
}

/// The account's passkeys.
#[utoipa::path(get, path = "/user/passkeys", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = PasskeyList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_passkeys(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<PasskeyList>> {
    let rows = passkey_store::of_user(svc.db.pool(), &user.user_id).await?;
    Ok(ApiJson(PasskeyList {
        items: rows.into_iter().map(view).collect(),
        enabled: svc.sign_in().methods.passkeys,
    }))
}

/// Start adding a passkey: the options for `navigator.credentials.create()`.
#[utoipa::path(post, path = "/user/passkeys/options", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, body = CreationOptions),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Passkeys are off on this server (`passkeys_disabled`)", body = ErrorEnvelope),
        (status = 409, description = "The account has the most passkeys allowed (20)", body = ErrorEnvelope),
    ))]
pub async fn registration_options(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<CreationOptions>> {
    svc.require_passkeys()?;
    let rp = svc.relying_party()?;
    let row = svc.user_row(&user.user_id).await?;
    let existing = passkey_store::of_user(svc.db.pool(), &row.id).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(ApiError::conflict(
            "too_many_passkeys",
            format!("An account may have at most {MAX_PASSKEYS} passkeys. Remove one first."),
            format!("每个账号最多 {MAX_PASSKEYS} 个通行密钥，请先删除一个。"),
        ));
    }
    let challenge = svc
        .new_passkey_challenge("register", Some(&row.id), None)
        .await?;
    let name = row
        .username
        .clone()
        .or_else(|| row.email.clone())
        .or_else(|| row.phone.clone())
        .unwrap_or_else(|| row.id.clone());
    Ok(ApiJson(CreationOptions {
        public_key: CreationPublicKey {
            challenge,
            rp: RpEntity {
                id: rp.id,
                name: rp.name,
            },
            user: UserEntity {
                id: b64(row.id.as_bytes()),
                name,
                display_name: row.display_name.clone(),
            },
            pub_key_cred_params: vec![
                CredParam {
                    kind: "public-key",
                    alg: passkey::ES256,
                },
                CredParam {
                    kind: "public-key",
                    alg: passkey::RS256,
                },
            ],
            timeout: CHALLENGE_TTL_MS,
            attestation: "none",
            exclude_credentials: existing.iter().map(descriptor).collect(),
            authenticator_selection: AuthenticatorSelection {
                resident_key: "required",
                require_resident_key: true,
                user_verification: "preferred",
            },
        },
    }))
}

/// Add a passkey: what `navigator.credentials.create()` answered to the options. From then on
/// the account signs in with it, and a password sign-in asks for it (or a TOTP code) next.
#[utoipa::path(post, path = "/user/passkeys", tag = "account", security(("bearer" = [])), request_body = AddPasskey,
    responses(
        (status = 201, body = PasskeyView),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Passkeys are off on this server", body = ErrorEnvelope),
        (status = 409, description = "This passkey is registered already (`passkey_exists`)", body = ErrorEnvelope),
        (status = 422, description = "The answer does not check out: wrong origin or site, unknown, used or expired challenge, attestation other than none, unsupported key (`passkey_invalid`, reason in details)", body = ErrorEnvelope),
    ))]
pub async fn add_passkey(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<AddPasskey>,
) -> ApiResult<(StatusCode, ApiJson<PasskeyView>)> {
    svc.require_passkeys()?;
    let rp = svc.relying_party()?;
    let invalid = |e: PasskeyError| {
        tracing::warn!(user_id = %user.user_id, reason = e.0, "passkey registration refused");
        errors::passkey_invalid(StatusCode::UNPROCESSABLE_ENTITY, e)
    };
    let name = match req.name.as_deref().map(str::trim) {
        None | Some("") => "Passkey".to_string(),
        Some(n) if n.chars().count() <= 64 && !n.chars().any(char::is_control) => n.to_string(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "name",
                "A passkey's name has 1 to 64 characters.",
                "通行密钥名称为 1 到 64 个字符。",
            ));
        }
    };
    let cred = &req.credential;
    if cred.kind != "public-key" {
        return Err(invalid(PasskeyError("not a public-key credential")));
    }
    let client_data = unb64(&cred.response.client_data_json).map_err(invalid)?;
    let attestation = unb64(&cred.response.attestation_object).map_err(invalid)?;
    let raw_id = unb64(&cred.raw_id).map_err(invalid)?;
    if unb64(&cred.id).map_err(invalid)? != raw_id {
        return Err(invalid(PasskeyError("id and rawId differ")));
    }
    let checked =
        passkey::check_client_data(&client_data, "webauthn.create", &rp).map_err(invalid)?;
    let now = now_ms();
    // Used at once, whatever follows: each challenge is tried once.
    let claimed = passkey_store::claim_challenge(
        svc.db.pool(),
        &hash_token(&checked.challenge),
        "register",
        now,
    )
    .await?;
    if claimed.and_then(|c| c.user_id).as_deref() != Some(user.user_id.as_str()) {
        return Err(invalid(PasskeyError(
            "the challenge is unknown, used, expired or another account's",
        )));
    }
    let made = passkey::check_registration(&attestation, &raw_id, &rp).map_err(invalid)?;
    let id = new_id();
    let inserted = passkey_store::insert(
        svc.db.pool(),
        &NewPasskey {
            id: &id,
            user_id: &user.user_id,
            credential_id: &b64(&made.id),
            public_key: &b64(&made.cose_key),
            algorithm: made.public_key.algorithm(),
            sign_count: i64::from(made.sign_count),
            name: &name,
            now,
        },
    )
    .await;
    if let Err(e) = inserted {
        return Err(if crate::store::is_conflict(&e) {
            ApiError::conflict(
                "passkey_exists",
                "This passkey is registered already.",
                "该通行密钥已注册。",
            )
        } else {
            e.into()
        });
    }
    // A passkey is a second factor: cached sessions re-read the account's state.
    svc.forget_user_sessions(&user.user_id);
    tracing::info!(user_id = %user.user_id, passkey_id = %id, algorithm = made.public_key.algorithm(), "passkey added");
    let row = passkey_store::by_credential(svc.db.pool(), &b64(&made.id))
        .await?
        .ok_or_else(|| ApiError::internal("the passkey just stored is gone"))?;
    Ok((StatusCode::CREATED, ApiJson(view(row))))
}

/// Remove one of the account's passkeys.
#[utoipa::path(delete, path = "/user/passkeys/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, description = "The account has no passkey with this id", body = ErrorEnvelope),
    ))]
pub async fn delete_passkey(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !passkey_store::delete(svc.db.pool(), &user.user_id, &id).await? {
        return Err(ApiError::not_found("Passkey", "通行密钥"));
    }
    svc.forget_user_sessions(&user.user_id);
    tracing::info!(user_id = %user.user_id, passkey_id = %id, "passkey removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Start a passwordless sign-in: the options for `navigator.credentials.get()` (any of this
/// site's passkeys).
#[utoipa::path(post, path = "/auth/passkey/options", tag = "auth",
    responses(
        (status = 200, body = RequestOptions),
        (status = 403, description = "Passkeys are off on this server", body = ErrorEnvelope),
        (status = 429, description = "Too many sign-ins started from this address", body = ErrorEnvelope),
    ))]
pub async fn sign_in_options(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
) -> ApiResult<ApiJson<RequestOptions>> {
    svc.require_passkeys()?;
    // Each start stores a row: limited per address like the other sign-in starts.
    svc.limit_ip(
        "passkey_start",
        ip,
        svc.settings.limits.oauth_starts_per_ip_per_hour,
    )
    .await?;
    let rp = svc.relying_party()?;
    let challenge = svc.new_passkey_challenge("sign_in", None, None).await?;
    Ok(ApiJson(request_options(challenge, rp, Vec::new())))
}

/// Sign in with a passkey (no password). A passkey that verified its user (PIN, biometrics)
/// is both factors; one that did not is followed by the TOTP step when the account has TOTP.
#[utoipa::path(post, path = "/auth/passkey/login", tag = "auth", request_body = PasskeyLogin,
    responses(
        (status = 200, description = "Signed in (tokens), or the two-factor challenge", body = super::auth::LoginAnswer),
        (status = 401, description = "Unknown passkey, wrong signature or site, unknown, used or expired challenge, or a counter that went back (`passkey_invalid`)", body = ErrorEnvelope),
        (status = 403, description = "Passkeys are off, the account is disabled, or its address is not verified", body = ErrorEnvelope),
    ))]
pub async fn passkey_login(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PasskeyLogin>,
) -> ApiResult<Response> {
    svc.require_passkeys()?;
    let (row, assertion) = svc
        .check_assertion(&req.credential, "sign_in", None)
        .await?;
    let user = svc.user_row(&row.user_id).await?;
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    if svc.sign_in().methods.verified_email_for_login
        && user.role == Role::User
        && user.email_verified_at.is_none()
    {
        return Err(errors::email_not_verified());
    }
    tracing::info!(user_id = %user.id, passkey_id = %row.id, user_verified = assertion.user_verified, client_ip = %ip, "signed in with a passkey");
    if !assertion.user_verified && user.totp_enabled > 0 {
        return svc.open_challenge(&user.id).await;
    }
    svc.finish_login(user, &headers, ip).await
}

/// The options for answering the second sign-in step with a passkey (the account's).
#[utoipa::path(post, path = "/auth/login/2fa/passkey/options", tag = "auth", request_body = SecondFactorOptionsRequest,
    responses(
        (status = 200, body = RequestOptions),
        (status = 401, description = "Unknown, used or expired challenge", body = ErrorEnvelope),
        (status = 409, description = "The account has no passkey (`no_passkey`)", body = ErrorEnvelope),
    ))]
pub async fn second_factor_options(
    State(svc): State<Arc<UserService>>,
    ApiJson(req): ApiJson<SecondFactorOptionsRequest>,
) -> ApiResult<ApiJson<RequestOptions>> {
    let rp = svc.relying_party()?;
    let login_hash = hash_token(req.challenge.trim());
    // Counted as one of the step's attempts: options cannot be fetched without end.
    let Some(user_id) =
        accounts::claim_challenge_attempt(svc.db.pool(), &login_hash, now_ms(), 5).await?
    else {
        return Err(errors::invalid_challenge());
    };
    let keys = passkey_store::of_user(svc.db.pool(), &user_id).await?;
    if keys.is_empty() {
        return Err(ApiError::conflict(
            "no_passkey",
            "This account has no passkey. Enter the code from your authenticator app.",
            "该账号没有通行密钥，请输入验证器应用中的验证码。",
        ));
    }
    let challenge = svc
        .new_passkey_challenge("second_factor", Some(&user_id), Some(&login_hash))
        .await?;
    Ok(ApiJson(request_options(
        challenge,
        rp,
        keys.iter().map(descriptor).collect(),
    )))
}

/// Answer the second sign-in step with one of the account's passkeys.
#[utoipa::path(post, path = "/auth/login/2fa/passkey", tag = "auth", request_body = SecondFactorPasskey,
    responses(
        (status = 200, description = "Signed in", body = super::TokenResponse),
        (status = 401, description = "Unknown, used or expired challenge, or a passkey answer that does not check out (`passkey_invalid`)", body = ErrorEnvelope),
    ))]
pub async fn second_factor_passkey(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SecondFactorPasskey>,
) -> ApiResult<Response> {
    let login_hash = hash_token(req.challenge.trim());
    let (row, _) = svc
        .check_assertion(&req.credential, "second_factor", Some(&login_hash))
        .await?;
    if !accounts::use_challenge(svc.db.pool(), &login_hash, now_ms()).await? {
        return Err(errors::invalid_challenge());
    }
    let user = svc.user_row(&row.user_id).await?;
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    svc.finish_login(user, &headers, ip).await
}

impl UserService {
    /// 403 when an admin turned passkeys off.
    fn require_passkeys(&self) -> ApiResult<()> {
        if self.sign_in().methods.passkeys {
            Ok(())
        } else {
            Err(errors::passkeys_disabled())
        }
    }

    /// The relying party: the public URL's host and origin.
    fn relying_party(&self) -> ApiResult<RelyingParty> {
        let url = self
            .settings
            .oauth
            .public_url
            .as_deref()
            .unwrap_or(&self.settings.mail.public_url);
        RelyingParty::from_public_url(url, "Skein").map_err(ApiError::internal)
    }

    /// Stores a new challenge for `purpose` and answers it (base64url). Expired ones are
    /// swept on the way.
    async fn new_passkey_challenge(
        &self,
        purpose: &str,
        user_id: Option<&str>,
        login_challenge: Option<&str>,
    ) -> ApiResult<String> {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let challenge = b64(&bytes);
        let now = now_ms();
        passkey_store::sweep_challenges(self.db.pool(), now).await?;
        passkey_store::insert_challenge(
            self.db.pool(),
            &hash_token(&challenge),
            purpose,
            user_id,
            login_challenge,
            now,
            now + CHALLENGE_TTL_MS,
        )
        .await?;
        Ok(challenge)
    }

    /// Checks an assertion for `purpose` (`sign_in`, or `second_factor` of the login step
    /// `login_hash`): client data, the challenge claimed once, the stored key's signature, the
    /// user handle and a counter that moved on (stored in the same transaction).
    async fn check_assertion(
        &self,
        cred: &AssertionCredential,
        purpose: &str,
        login_hash: Option<&str>,
    ) -> ApiResult<(PasskeyRow, passkey::Assertion)> {
        let rp = self.relying_party()?;
        let invalid = |e: PasskeyError| {
            tracing::warn!(reason = e.0, purpose, "passkey sign-in refused");
            errors::passkey_invalid(StatusCode::UNAUTHORIZED, e)
        };
        if cred.kind != "public-key" {
            return Err(invalid(PasskeyError("not a public-key credential")));
        }
        let client_data = unb64(&cred.response.client_data_json).map_err(invalid)?;
        let auth_data = unb64(&cred.response.authenticator_data).map_err(invalid)?;
        let signature = unb64(&cred.response.signature).map_err(invalid)?;
        let raw_id = unb64(&cred.raw_id).map_err(invalid)?;
        if unb64(&cred.id).map_err(invalid)? != raw_id {
            return Err(invalid(PasskeyError("id and rawId differ")));
        }
        let checked =
            passkey::check_client_data(&client_data, "webauthn.get", &rp).map_err(invalid)?;
        let now = now_ms();
        // Claimed (used) before anything else is checked, and for good: a failed answer burns
        // its challenge too, so each challenge is tried once.
        let Some(claimed) = passkey_store::claim_challenge(
            self.db.pool(),
            &hash_token(&checked.challenge),
            purpose,
            now,
        )
        .await?
        else {
            return Err(invalid(PasskeyError(
                "the challenge is unknown, used or expired",
            )));
        };
        if purpose == "second_factor" && claimed.login_challenge.as_deref() != login_hash {
            return Err(invalid(PasskeyError(
                "the challenge belongs to another sign-in",
            )));
        }
        let Some(row) = passkey_store::by_credential(self.db.pool(), &b64(&raw_id)).await? else {
            return Err(invalid(PasskeyError("the passkey is not registered here")));
        };
        if let Some(owner) = claimed.user_id.as_deref()
            && owner != row.user_id
        {
            return Err(invalid(PasskeyError("the passkey is another account's")));
        }
        let key = unb64(&row.public_key).map_err(invalid)?;
        let stored = u32::try_from(row.sign_count).unwrap_or(u32::MAX);
        let assertion =
            passkey::check_assertion(&auth_data, &client_data, &signature, &key, stored, &rp)
                .map_err(|e| {
                    tracing::warn!(passkey_id = %row.id, user_id = %row.user_id, reason = e.0, "passkey assertion refused");
                    errors::passkey_invalid(StatusCode::UNAUTHORIZED, e)
                })?;
        if let Some(handle) = &cred.response.user_handle
            && !handle.is_empty()
            && unb64(handle).map_err(invalid)? != row.user_id.as_bytes()
        {
            return Err(invalid(PasskeyError(
                "the user handle is another account's",
            )));
        }
        if !passkey_store::advance(
            self.db.pool(),
            &row.id,
            row.sign_count,
            i64::from(assertion.sign_count),
            now,
        )
        .await?
        {
            return Err(invalid(PasskeyError(
                "the passkey was used at the same moment",
            )));
        }
        Ok((row, assertion))
    }
}

fn view(row: PasskeyRow) -> PasskeyView {
    PasskeyView {
        id: row.id,
        name: row.name,
        algorithm: if row.algorithm == passkey::RS256 {
            "RS256"
        } else {
            "ES256"
        },
        created_at: ms_to_rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(ms_to_rfc3339),
    }
}

fn descriptor(row: &PasskeyRow) -> CredentialDescriptor {
    CredentialDescriptor {
        kind: "public-key",
        id: row.credential_id.clone(),
    }
}

fn request_options(
    challenge: String,
    rp: RelyingParty,
    allow: Vec<CredentialDescriptor>,
) -> RequestOptions {
    RequestOptions {
        public_key: RequestPublicKey {
            challenge,
            rp_id: rp.id,
            timeout: CHALLENGE_TTL_MS,
            user_verification: "preferred",
            allow_credentials: allow,
        },
    }
}
