//! Sign-in against a company directory over LDAP (`[ldap]`, or Admin → Sign-in): bind with a
//! service account (or anonymously), search the person by the login they typed, bind as them
//! with their password, read their groups, and map groups to a role. Plain LDAP, LDAPS or
//! StartTLS, on rustls (no OpenSSL); the server's certificate is checked against the system's
//! roots, or only against the CA an administrator gave (`ca_pem`). A TLS failure is an error
//! of its own, never a fall back to plain text.
//!
//! **Security invariants.** The typed login is escaped (RFC 4515) before it enters a filter; an
//! empty password is refused before any bind (an LDAP "unauthenticated bind" would succeed);
//! the search must find exactly one person; and what the directory says is never cached: every
//! sign-in binds again, so a disabled directory account stops at once.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use serde::{Deserialize, Serialize};
use skein_core::auth::Role;
use skein_core::secret::Secret;

/// The `[ldap]` section. Without `url`, LDAP sign-in is off (its route answers 503).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`; unset: off.
    pub url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS (required, not opportunistic).
    pub starttls: bool,
    /// The CA certificate(s) the server's certificate must chain to (PEM text, inline in the
    /// file as a multi-line string); unset: the system's roots.
    pub ca_pem: Option<String>,
    /// The service account that searches (`cn=skein,ou=services,dc=example,dc=com`); unset:
    /// search anonymously.
    pub bind_dn: Option<String>,
    /// Its password.
    pub bind_password: Option<Secret>,
    /// Where people are searched (subtree).
    pub base_dn: String,
    /// The search filter; `{login}` is replaced by the typed login, escaped.
    pub user_filter: String,
    /// The attribute holding the address (stored as verified: the directory vouches for it).
    pub email_attribute: String,
    /// The attribute holding the shown name.
    pub name_attribute: String,
    /// The attribute holding the username.
    pub username_attribute: String,
    /// Where groups are searched (subtree); unset: only the person's `memberOf` is read.
    pub group_base_dn: Option<String>,
    /// The group filter; `{dn}` is replaced by the person's DN, escaped.
    pub group_filter: String,
    /// Members of any of these groups (DNs) sign in as admins.
    pub admin_groups: Vec<String>,
    /// When not empty, only members of one of these groups (DNs) may sign in.
    pub allowed_groups: Vec<String>,
    /// Seconds any step may take.
    pub timeout_secs: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: None,
            starttls: false,
            ca_pem: None,
            bind_dn: None,
            bind_password: None,
            base_dn: String::new(),
            user_filter: "(&(objectClass=inetOrgPerson)(|(uid={login})(mail={login})))".into(),
            email_attribute: "mail".into(),
            name_attribute: "cn".into(),
            username_attribute: "uid".into(),
            group_base_dn: None,
            group_filter: "(&(objectClass=groupOfNames)(member={dn}))".into(),
            admin_groups: Vec::new(),
            allowed_groups: Vec::new(),
            timeout_secs: 10,
        }
    }
}

impl LdapConfig {
    /// Whether LDAP sign-in is on.
    pub fn enabled(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.is_empty())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let Some(url) = self.url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err("ldap.url must start with ldap:// or ldaps://".into());
        }
        if self.starttls && url.starts_with("ldaps://") {
            return Err("ldap.starttls is for ldap:// URLs (ldaps:// is TLS already)".into());
        }
        if self.base_dn.trim().is_empty() {
            return Err("ldap.base_dn is required".into());
        }
        if !self.user_filter.contains("{login}") {
            return Err("ldap.user_filter must contain {login}".into());
        }
        if self.group_base_dn.is_some() && !self.group_filter.contains("{dn}") {
            return Err("ldap.group_filter must contain {dn}".into());
        }
        if self.bind_dn.is_some() != self.bind_password.is_some() {
            return Err("ldap.bind_dn and ldap.bind_password go together".into());
        }
        if self.timeout_secs == 0 {
            return Err("ldap.timeout_secs must be at least 1".into());
        }
        if let Some(pem) = self.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
            tls_config(pem).map_err(|e| format!("ldap.ca_pem: {e}"))?;
        }
        Ok(())
    }
}

/// A TLS client configuration that trusts only the certificates in `pem` (one or more
/// `BEGIN CERTIFICATE` blocks).
pub fn tls_config(pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("not a PEM certificate ({e})"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate ({e})"))?;
    }
    if roots.is_empty() {
        return Err("no certificate found (expected -----BEGIN CERTIFICATE-----)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A person the directory signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPerson {
    /// Their DN (the stable subject of the linked identity, lower-cased).
    pub dn: String,
    /// Username attribute, if present.
    pub username: Option<String>,
    /// Address, if present.
    pub email: Option<String>,
    /// Shown name.
    pub display_name: Option<String>,
    /// The groups they are in (DNs, lower-cased).
    pub groups: Vec<String>,
    /// The role their groups give.
    pub role: Role,
}

/// Why the directory did not sign someone in.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Unknown person, several matches, or a wrong password: all look the same outside.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The person is in none of `allowed_groups`.
    #[error("not in an allowed group")]
    NotAllowed,
    /// The directory could not be reached or refused the service account.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The TLS handshake failed (most often: a certificate not signed by a trusted CA).
    #[error("TLS with the directory failed: {0}")]
    Tls(String),
}

impl LdapError {
    /// `error` sorted: a TLS failure (the rustls error inside the I/O error, read from the
    /// error's structure rather than its text) or an unavailable directory, with `context`.
    fn from_ldap(context: &str, error: ldap3::LdapError) -> LdapError {
        if let ldap3::LdapError::Io { source } = &error
            && let Some(tls) = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return LdapError::Tls(tls.to_string());
        }
        LdapError::Unavailable(format!("{context}{error}"))
    }
}

/// What a connection test found: the person the login names, or where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Exactly one person, with the groups and role they would sign in with; `allowed` is
    /// false when they are in none of `allowed_groups` (sign-in would refuse them).
    Found {
        /// What the directory says of them.
        person: DirectoryPerson,
        /// Whether their groups let them sign in.
        allowed: bool,
    },
    /// The search found nobody.
    NotFound,
    /// The search found more than one person (sign-in refuses them all).
    Ambiguous(usize),
}

/// Checks `login` and `password` against the directory.
pub async fn authenticate(
    config: &LdapConfig,
    login: &str,
    password: &str,
) -> Result<DirectoryPerson, LdapError> {
    let login = login.trim();
    // An empty password is an "unauthenticated bind", which many servers accept.
    if login.is_empty() || password.is_empty() || login.len() > 256 {
        return Err(LdapError::InvalidCredentials);
    }
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let mut ldap = connect(config, timeout).await?;
    let result = find_and_bind(config, &mut ldap, login, password, timeout).await;
    let _ = ldap.unbind().await;
    result
}

async fn connect(config: &LdapConfig, timeout: Duration) -> Result<Ldap, LdapError> {
    let url = config.url.as_deref().unwrap_or_default();
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(config.starttls);
    if let Some(pem) = config.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
        settings = settings.set_config(tls_config(pem).map_err(LdapError::Tls)?);
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| LdapError::from_ldap("", e))?;
    // The connection's driver ends when `ldap` is unbound or dropped.
    tokio::spawn(async move {
        if let Err(error) = conn.drive().await {
            tracing::debug!(%error, "LDAP connection ended");
        }
    });
    Ok(ldap)
}

/// Connects with `config`, binds as the service account and looks up `login` without
/// binding as the person (Admin → Sign-in → Test connection). Errors say exactly what the
/// directory answered; none carries the service account's password.
pub async fn probe(config: &LdapConfig, login: &str) -> Result<ProbeOutcome, LdapError> {
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let mut ldap = connect(config, timeout).await?;
    let result = look_up(config, &mut ldap, login.trim(), timeout).await;
    let _ = ldap.unbind().await;
    result
}

async fn look_up(
    config: &LdapConfig,
    ldap: &mut Ldap,
    login: &str,
    timeout: Duration,
) -> Result<ProbeOutcome, LdapError> {
    service_bind(config, ldap, timeout).await?;
    let mut entries = search_people(config, ldap, login, timeout).await?;
    match entries.len() {
        0 => Ok(ProbeOutcome::NotFound),
        1 => {
            let entry = entries.remove(0);
            let groups = groups_of(config, ldap, &entry, timeout).await?;
            // Outside the allowed groups is still a finding: shown as such, not an error.
            let role = role_of(config, &groups);
            let allowed = role.is_ok();
            let person = person(config, &entry, groups, role.unwrap_or(Role::User));
            Ok(ProbeOutcome::Found { person, allowed })
        }
        n => Ok(ProbeOutcome::Ambiguous(n)),
    }
}

async fn service_bind(
    config: &LdapConfig,
    ldap: &mut Ldap,
    timeout: Duration,
) -> Result<(), LdapError> {
    if let (Some(dn), Some(pw)) = (&config.bind_dn, &config.bind_password) {
        ldap.with_timeout(timeout)
            .simple_bind(dn, pw.expose())
            .await
            .and_then(|r| r.success())
            .map_err(|e| LdapError::from_ldap("service account bind: ", e))?;
    }
    Ok(())
}

async fn search_people(
    config: &LdapConfig,
    ldap: &mut Ldap,
    login: &str,
    timeout: Duration,
) -> Result<Vec<SearchEntry>, LdapError> {
    let filter = config.user_filter.replace("{login}", &ldap_escape(login));
    let attrs = vec![
        config.username_attribute.as_str(),
        config.email_attribute.as_str(),
        config.name_attribute.as_str(),
        "memberOf",
    ];
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(&config.base_dn, Scope::Subtree, &filter, attrs)
        .await
        .and_then(|r| r.success())
        .map_err(|e| LdapError::from_ldap("search: ", e))?;
    Ok(entries.into_iter().map(SearchEntry::construct).collect())
}

async fn groups_of(
    config: &LdapConfig,
    ldap: &mut Ldap,
    entry: &SearchEntry,
    timeout: Duration,
) -> Result<Vec<String>, LdapError> {
    let mut groups: Vec<String> = entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
        .map(|(_, v)| v.iter().map(|g| normalize_dn(g)).collect())
        .unwrap_or_default();
    if let Some(base) = &config.group_base_dn {
        let filter = config.group_filter.replace("{dn}", &ldap_escape(&entry.dn));
        let (found, _) = ldap
            .with_timeout(timeout)
            .search(base, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .and_then(|r| r.success())
            .map_err(|e| LdapError::from_ldap("group search: ", e))?;
        groups.extend(
            found
                .into_iter()
                .map(|g| normalize_dn(&SearchEntry::construct(g).dn)),
        );
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

fn person(
    config: &LdapConfig,
    entry: &SearchEntry,
    groups: Vec<String>,
    role: Role,
) -> DirectoryPerson {
    let first = |name: &str| {
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first().cloned())
            .filter(|v| !v.trim().is_empty())
    };
    DirectoryPerson {
        dn: normalize_dn(&entry.dn),
        username: first(&config.username_attribute),
        email: first(&config.email_attribute),
        display_name: first(&config.name_attribute),
        groups,
        role,
    }
}

async fn find_and_bind(
    config: &LdapConfig,
    ldap: &mut Ldap,
    login: &str,
    password: &str,
    timeout: Duration,
) -> Result<DirectoryPerson, LdapError> {
    service_bind(config, ldap, timeout).await?;
    let entries = search_people(config, ldap, login, timeout).await?;
    // Exactly one: zero is unknown, two is ambiguous (never guess whose password this is).
    let [entry] = <[_; 1]>::try_from(entries).map_err(|_| LdapError::InvalidCredentials)?;
    let bound = ldap
        .with_timeout(timeout)
        .simple_bind(&entry.dn, password)
        .await
        .map_err(|e| LdapError::from_ldap("", e))?;
    // 49: invalidCredentials; anything else non-zero is refused the same way.
    if bound.rc != 0 {
        return Err(LdapError::InvalidCredentials);
    }
    let groups = groups_of(config, ldap, &entry, timeout).await?;
    let role = role_of(config, &groups)?;
    Ok(person(config, &entry, groups, role))
}

/// The role `groups` give: admin for an admin group; refused outside `allowed_groups`.
pub fn role_of(config: &LdapConfig, groups: &[String]) -> Result<Role, LdapError> {
    let member = |list: &[String]| list.iter().any(|g| groups.contains(&normalize_dn(g)));
    if member(&config.admin_groups) {
        return Ok(Role::Admin);
    }
    if !config.allowed_groups.is_empty() && !member(&config.allowed_groups) {
        return Err(LdapError::NotAllowed);
    }
    Ok(Role::User)
}

/// A DN compared the way directories do for these purposes: case and spaces after commas
/// do not matter.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_roles() {
        let config = LdapConfig {
            admin_groups: vec!["CN=Admins, OU=Groups,DC=x".into()],
            allowed_groups: vec!["cn=staff,ou=groups,dc=x".into()],
            ..LdapConfig::default()
        };
        let admins = vec![normalize_dn("cn=admins,ou=groups,dc=x")];
        assert_eq!(role_of(&config, &admins).unwrap(), Role::Admin);
        let staff = vec![normalize_dn("cn=Staff,ou=groups,dc=x")];
        assert_eq!(role_of(&config, &staff).unwrap(), Role::User);
        assert!(matches!(role_of(&config, &[]), Err(LdapError::NotAllowed)));
        let open = LdapConfig::default();
        assert_eq!(role_of(&open, &[]).unwrap(), Role::User);
    }

    #[test]
    fn the_section_is_checked() {
        let mut c = LdapConfig {
            url: Some("ldap://127.0.0.1:389".into()),
            base_dn: "dc=x".into(),
            ..LdapConfig::default()
        };
        assert!(c.validate().is_ok());
        c.user_filter = "(uid=x)".into();
        assert!(c.validate().is_err());
        c.user_filter = LdapConfig::default().user_filter;
        c.url = Some("http://x".into());
        assert!(c.validate().is_err());
        c.url = Some("ldaps://x".into());
        c.starttls = true;
        assert!(c.validate().is_err());
        assert!(LdapConfig::default().validate().is_ok());
    }
}
