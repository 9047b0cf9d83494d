//! The `[oauth]` section: where redirect URIs point, and providers defined in the file
//! (`[oauth.providers.<slug>]`). Admins add more through `/api/v1/admin/oauth/providers`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skein_core::secret::Secret;
use utoipa::ToSchema;

/// Sign-in with other services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Where people open Skein, e.g. `https://skein.example.com`. Redirect URIs are always
    /// `<public_url>/oauth/callback/<slug>`, never taken from a request. Unset: `mail.public_url`.
    pub public_url: Option<String>,
    /// How long a started sign-in may take, seconds.
    pub state_ttl_secs: i64,
    /// The longest any call to a provider may take, seconds.
    pub http_timeout_secs: u64,
    /// Providers defined in this file, by slug (shown in URLs: letters, digits, `-`).
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            public_url: None,
            state_ttl_secs: 600,
            http_timeout_secs: 10,
            providers: BTreeMap::new(),
        }
    }
}

impl OAuthConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("oauth.public_url must start with http:// or https://".into());
        }
        if self.state_ttl_secs < 30 || self.http_timeout_secs == 0 {
            return Err(
                "oauth.state_ttl_secs must be at least 30 and http_timeout_secs at least 1".into(),
            );
        }
        for (slug, provider) in &self.providers {
            super::valid_slug(slug).map_err(|_| {
                format!("oauth.providers.{slug}: the slug must be 1-32 of a-z, 0-9, -")
            })?;
            provider
                .check()
                .map_err(|e| format!("oauth.providers.{slug}: {e}"))?;
        }
        Ok(())
    }
}

/// What kind of service a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenID Connect issuer, found through its discovery document.
    Oidc,
    /// Google (OIDC, issuer `https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (OIDC, issuer per tenant; `common` accepts any).
    Microsoft,
    /// GitHub (OAuth 2.0 and its REST API: `/user`, `/user/emails`).
    Github,
    /// WeChat website QR login (`snsapi_login`).
    Wechat,
}

impl ProviderKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Github => "github",
            ProviderKind::Wechat => "wechat",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oidc" => ProviderKind::Oidc,
            "google" => ProviderKind::Google,
            "microsoft" => ProviderKind::Microsoft,
            "github" => ProviderKind::Github,
            "wechat" => ProviderKind::Wechat,
            _ => return None,
        })
    }

    /// Whether sign-in goes through OpenID Connect (discovery, ID token).
    pub fn is_oidc(self) -> bool {
        matches!(
            self,
            ProviderKind::Oidc | ProviderKind::Google | ProviderKind::Microsoft
        )
    }

    /// The name shown when the admin gives none.
    pub fn default_name(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "OpenID Connect",
            ProviderKind::Google => "Google",
            ProviderKind::Microsoft => "Microsoft",
            ProviderKind::Github => "GitHub",
            ProviderKind::Wechat => "WeChat",
        }
    }
}

/// One provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which kind.
    pub kind: ProviderKind,
    /// The button's name (defaults from the kind).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The client id (WeChat: the AppID).
    pub client_id: String,
    /// The client secret (WeChat: the AppSecret).
    pub client_secret: Secret,
    /// OIDC: the issuer URL (Google's and Microsoft's are filled in).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Microsoft: the tenant (`common`, `organizations`, `consumers` or a tenant id).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Scopes to ask for (defaults per kind).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// GitHub / WeChat: the authorization page (GitHub Enterprise, tests).
    #[serde(default)]
    pub authorize_url: Option<String>,
    /// GitHub / WeChat: the token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// GitHub / WeChat: the API base (`https://api.github.com`, `https://api.weixin.qq.com`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Sign a first-time visitor into the existing account with the same address, when the
    /// provider says the address is verified and the account's address is verified too.
    #[serde(default)]
    pub link_by_email: bool,
    /// Whether the button is shown and sign-in works.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl ProviderConfig {
    /// Checks the fields the kind needs.
    pub fn check(&self) -> Result<(), String> {
        if self.client_id.trim().is_empty() || self.client_secret.expose().trim().is_empty() {
            return Err("client_id and client_secret are required".into());
        }
        if self.kind == ProviderKind::Oidc && self.issuer.as_deref().is_none_or(str::is_empty) {
            return Err("an OIDC provider needs its issuer URL".into());
        }
        for url in [
            &self.issuer,
            &self.authorize_url,
            &self.token_url,
            &self.api_url,
        ]
        .into_iter()
        .flatten()
        {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("{url} is not an http(s) URL"));
            }
        }
        if let Some(tenant) = &self.tenant
            && !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err("tenant must be a tenant id or name".into());
        }
        Ok(())
    }
}
