//! Admin → Sign-in → Company directory: the LDAP settings in effect (never the service
//! account's password: only whether it is set), their change (stored as the `sign_in.ldap`
//! row, the password sealed; a password left out keeps the one in effect), and "Test
//! connection", which binds as the service account and looks a login up without storing
//! anything.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::secret::Secret;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::UserService;
use crate::ldap::{self, LdapConfig, LdapError, ProbeOutcome};
use crate::signin::{self, SignInEffective, SmsSource};

/// The directory settings as an admin sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct LdapView {
    /// `config` (skein.toml's `[ldap]`) or `admin` (stored here).
    pub source: SmsSource,
    /// Whether directory sign-in is on (a URL is set).
    pub enabled: bool,
    /// `ldap://host:389` or `ldaps://host:636`; empty: off.
    pub url: String,
    /// StartTLS on an `ldap://` URL.
    pub starttls: bool,
    /// The CA certificate(s) the server's must chain to (PEM); `null`: the system's roots.
    pub ca_pem: Option<String>,
    /// The service account that searches; `null`: anonymous.
    pub bind_dn: Option<String>,
    /// Whether the service account's password is set (it is never shown).
    pub bind_password_set: bool,
    /// Where people are searched.
    pub base_dn: String,
    /// The search filter, with `{login}`.
    pub user_filter: String,
    /// The attribute holding the username (the login).
    pub username_attribute: String,
    /// The attribute holding the address.
    pub email_attribute: String,
    /// The attribute holding the shown name.
    pub name_attribute: String,
    /// Where groups are searched; `null`: only `memberOf`.
    pub group_base_dn: Option<String>,
    /// The group filter, with `{dn}`.
    pub group_filter: String,
    /// Members of these groups are admins.
    pub admin_groups: Vec<String>,
    /// When not empty, only members of these groups may sign in.
    pub allowed_groups: Vec<String>,
    /// Seconds each step may take.
    pub timeout_secs: u64,
}

/// Directory settings to use from now on (all of them; fields left out take the usual
/// defaults). An empty `url` turns directory sign-in off.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapUpdate {
    /// `ldap://host:389` or `ldaps://host:636`; empty: off.
    #[serde(default)]
    pub url: String,
    /// StartTLS on an `ldap://` URL (required, never a fall back to plain text).
    #[serde(default)]
    pub starttls: bool,
    /// The CA certificate(s) in PEM; empty or `null`: the system's roots.
    pub ca_pem: Option<String>,
    /// The service account's DN; empty or `null`: search anonymously.
    pub bind_dn: Option<String>,
    /// Its password. Left out or empty: the one in effect is kept.
    pub bind_password: Option<String>,
    /// Where people are searched (subtree).
    #[serde(default)]
    pub base_dn: String,
    /// The search filter with `{login}`; default
    /// `(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))`.
    pub user_filter: Option<String>,
    /// The username attribute; default `uid`.
    pub username_attribute: Option<String>,
    /// The address attribute; default `mail`.
    pub email_attribute: Option<String>,
    /// The shown-name attribute; default `cn`.
    pub name_attribute: Option<String>,
    /// Where groups are searched; empty or `null`: only `memberOf` is read.
    pub group_base_dn: Option<String>,
    /// The group filter with `{dn}`; default `(&(objectClass=groupOfNames)(member={dn}))`.
    pub group_filter: Option<String>,
    /// Group DNs whose members are admins.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Group DNs whose members may sign in (empty: everyone the search finds).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Seconds each step may take (1 to 60); default 10.
    pub timeout_secs: Option<u64>,
}

/// A connection test.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapTestRequest {
    /// The login to look up, as a person would type it.
    pub login: String,
    /// Settings to test instead of those in effect (the form before saving; nothing is
    /// stored). A password left out is the one in effect.
    pub settings: Option<LdapUpdate>,
}

/// What a connection test found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LdapTestResult {
    /// Connected, bound and found exactly one person.
    Found,
    /// Connected and bound; the search found nobody.
    NotFound,
    /// The search found more than one person (sign-in refuses the login).
    Ambiguous,
    /// The TLS handshake failed (most often an untrusted certificate).
    TlsError,
    /// The connection, the service account's bind or the search failed.
    Error,
}

/// The person a test found (nothing is created).
#[derive(Debug, Serialize, ToSchema)]
pub struct LdapFoundPerson {
    /// Their DN.
    pub dn: String,
    /// The username attribute's value.
    pub username: Option<String>,
    /// The address attribute's value.
    pub email: Option<String>,
    /// The shown-name attribute's value.
    pub display_name: Option<String>,
    /// Their groups (DNs, lower-cased).
    pub groups: Vec<String>,
    /// `admin` or `user`: the role their groups give.
    pub role: String,
    /// False when they are in none of the allowed groups (sign-in would refuse them).
    pub allowed: bool,
}

/// The answer of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub struct LdapTestAnswer {
    /// What happened.
    pub result: LdapTestResult,
    /// The person found (`found` only).
    pub person: Option<LdapFoundPerson>,
    /// How many people the search found (`ambiguous` only).
    pub matches: Option<usize>,
    /// The directory's or the TLS library's own words (`tls_error`, `error`); never the
    /// password.
    pub error: Option<String>,
}

/// The directory part of Admin → Sign-in.
pub(super) fn view(effective: &SignInEffective) -> LdapView {
    let c = &effective.ldap;
    LdapView {
        source: effective.ldap_source,
        enabled: c.enabled(),
        url: c.url.clone().unwrap_or_default(),
        starttls: c.starttls,
        ca_pem: c.ca_pem.clone(),
        bind_dn: c.bind_dn.clone(),
        bind_password_set: c
            .bind_password
            .as_ref()
            .is_some_and(|p| !p.expose().is_empty()),
        base_dn: c.base_dn.clone(),
        user_filter: c.user_filter.clone(),
        username_attribute: c.username_attribute.clone(),
        email_attribute: c.email_attribute.clone(),
        name_attribute: c.name_attribute.clone(),
        group_base_dn: c.group_base_dn.clone(),
        group_filter: c.group_filter.clone(),
        admin_groups: c.admin_groups.clone(),
        allowed_groups: c.allowed_groups.clone(),
        timeout_secs: c.timeout_secs,
    }
}

/// The `sign_in.ldap` row for `update`, checked, the password kept from the settings in
/// effect when left out, then sealed.
pub(super) fn parse(svc: &UserService, update: LdapUpdate) -> ApiResult<String> {
    let config = build(svc, update)?;
    signin::ldap_row(&config, |plain| svc.seal_ldap_password(plain)).map_err(ApiError::internal)
}

/// The directory settings `update` describes, checked.
fn build(svc: &UserService, update: LdapUpdate) -> ApiResult<LdapConfig> {
    let invalid = |en: String, zh: String| ApiError::invalid_field("ldap", en, zh);
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let defaults = LdapConfig::default();
    let bind_dn = text(update.bind_dn);
    let typed_password = update.bind_password.filter(|p| !p.is_empty());
    let bind_password = match (&bind_dn, typed_password) {
        (None, _) => None,
        (Some(_), Some(typed)) => Some(Secret::new(typed)),
        (Some(_), None) => match svc.sign_in().ldap.bind_password.clone() {
            Some(kept) => Some(kept),
            None => {
                return Err(ApiError::invalid_field(
                    "ldap.bind_password",
                    "Enter the service account's password.",
                    "请填写服务账号的密码。",
                ));
            }
        },
    };
    let list = |groups: Vec<String>| -> Vec<String> {
        groups
            .into_iter()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect()
    };
    let timeout_secs = update.timeout_secs.unwrap_or(defaults.timeout_secs);
    if !(1..=60).contains(&timeout_secs) {
        return Err(ApiError::invalid_field(
            "ldap.timeout_secs",
            "The timeout must be from 1 to 60 seconds.",
            "超时时间必须在 1 到 60 秒之间。",
        ));
    }
    let config = LdapConfig {
        url: text(Some(update.url)),
        starttls: update.starttls,
        ca_pem: text(update.ca_pem),
        bind_dn,
        bind_password,
        base_dn: update.base_dn.trim().to_string(),
        user_filter: text(update.user_filter).unwrap_or(defaults.user_filter),
        email_attribute: text(update.email_attribute).unwrap_or(defaults.email_attribute),
        name_attribute: text(update.name_attribute).unwrap_or(defaults.name_attribute),
        username_attribute: text(update.username_attribute).unwrap_or(defaults.username_attribute),
        group_base_dn: text(update.group_base_dn),
        group_filter: text(update.group_filter).unwrap_or(defaults.group_filter),
        admin_groups: list(update.admin_groups),
        allowed_groups: list(update.allowed_groups),
        timeout_secs,
    };
    if let Err(why) = config.validate() {
        return Err(invalid(
            format!("These directory settings cannot work: {why}"),
            format!("目录（LDAP）设置无法使用：{why}"),
        ));
    }
    Ok(config)
}

/// Test the company directory: connect (with TLS as set), bind as the service account and
/// search for `login`, with the settings in effect or those given. Answers what was found, or
/// the directory's exact error; never the password, and nothing is stored or signed in.
#[utoipa::path(post, path = "/admin/sign-in/ldap/test", tag = "settings", security(("bearer" = [])),
    request_body = LdapTestRequest,
    responses(
        (status = 200, description = "The test ran: what it found or where it failed", body = LdapTestAnswer),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 422, description = "Settings that cannot work, no URL, or no login", body = ErrorEnvelope),
    ))]
pub async fn admin_test_ldap(
    State(svc): State<Arc<UserService>>,
    admin: AdminUser,
    ApiJson(req): ApiJson<LdapTestRequest>,
) -> ApiResult<ApiJson<LdapTestAnswer>> {
    let login = req.login.trim();
    if login.is_empty() || login.chars().count() > 256 {
        return Err(ApiError::invalid_field(
            "login",
            "Enter the login to look up (at most 256 characters).",
            "请输入要查找的登录名（最多 256 个字符）。",
        ));
    }
    let config = match req.settings {
        Some(update) => Arc::new(build(&svc, update)?),
        None => svc.sign_in().ldap.clone(),
    };
    if !config.enabled() {
        return Err(ApiError::invalid_field(
            "ldap.url",
            "Enter the directory's URL (ldap:// or ldaps://) first.",
            "请先填写目录服务器地址（ldap:// 或 ldaps://）。",
        ));
    }
    let outcome = ldap::probe(&config, login).await;
    let scrub = |text: String| match config.bind_password.as_ref().map(Secret::expose) {
        // The directory's words never echo a password, but make sure.
        Some(password) if !password.is_empty() => text.replace(password, "********"),
        _ => text,
    };
    let answer = match outcome {
        Ok(ProbeOutcome::Found { person, allowed }) => LdapTestAnswer {
            result: LdapTestResult::Found,
            person: Some(LdapFoundPerson {
                dn: person.dn,
                username: person.username,
                email: person.email,
                display_name: person.display_name,
                groups: person.groups,
                role: person.role.as_str().to_string(),
                allowed,
            }),
            matches: Some(1),
            error: None,
        },
        Ok(ProbeOutcome::NotFound) => LdapTestAnswer {
            result: LdapTestResult::NotFound,
            person: None,
            matches: Some(0),
            error: None,
        },
        Ok(ProbeOutcome::Ambiguous(n)) => LdapTestAnswer {
            result: LdapTestResult::Ambiguous,
            person: None,
            matches: Some(n),
            error: None,
        },
        Err(LdapError::Tls(e)) => LdapTestAnswer {
            result: LdapTestResult::TlsError,
            person: None,
            matches: None,
            error: Some(scrub(format!("TLS: {e}"))),
        },
        Err(e) => LdapTestAnswer {
            result: LdapTestResult::Error,
            person: None,
            matches: None,
            error: Some(scrub(e.to_string())),
        },
    };
    tracing::info!(admin = %admin.0.user_id, result = ?answer.result, "LDAP connection tested");
    Ok(ApiJson(answer))
}
