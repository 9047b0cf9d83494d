//! Sign-in with other services: OpenID Connect issuers (Google and Microsoft as presets),
//! GitHub and WeChat. This module speaks to the providers; `http/oauth.rs` runs the flow
//! (state, accounts, sessions) and `store/oauth.rs` keeps its rows.
//!
//! **Security invariants.** Redirect URIs are built from `oauth.public_url` only. Every call to
//! a provider has a timeout, follows no redirect and reads at most [`MAX_BODY_BYTES`]. Access
//! tokens, codes and ID tokens are never logged: errors carry the provider's error code and
//! our reason, nothing it handed us.

pub mod config;
mod github;
mod oidc;
mod wechat;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt;
use moka::sync::Cache;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use skein_core::ApiError;
use skein_core::secret::Secret;

use crate::errors;

pub use config::{OAuthConfig, ProviderConfig, ProviderKind};

/// The most a provider's answer (discovery, JWKS, token, user) may weigh.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A provider ready to use: its slug, where it was defined, and its settings.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The slug in URLs.
    pub slug: String,
    /// `config` (the file; read-only through the API) or `admin` (the database).
    pub source: &'static str,
    /// Its settings.
    pub config: ProviderConfig,
}

impl Provider {
    /// The name on the button.
    pub fn name(&self) -> String {
        self.config
            .display_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| self.config.kind.default_name().to_string())
    }

    /// The OIDC issuer, with the presets filled in.
    fn issuer(&self) -> Option<String> {
        match self.config.kind {
            ProviderKind::Google => Some(
                self.config
                    .issuer
                    .clone()
                    .unwrap_or_else(|| "https://accounts.google.com".into()),
            ),
            ProviderKind::Microsoft => Some(self.config.issuer.clone().unwrap_or_else(|| {
                let tenant = self.config.tenant.as_deref().unwrap_or("common");
                format!("https://login.microsoftonline.com/{tenant}/v2.0")
            })),
            ProviderKind::Oidc => self.config.issuer.clone(),
            ProviderKind::Github | ProviderKind::Wechat => None,
        }
    }

    fn scopes(&self, default: &str) -> String {
        match &self.config.scopes {
            Some(scopes) if !scopes.is_empty() => scopes.join(" "),
            _ => default.to_string(),
        }
    }

    fn secret(&self) -> &Secret {
        &self.config.client_secret
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone, Default)]
pub struct ExternalIdentity {
    /// The provider's stable id for the person.
    pub subject: String,
    /// Their address, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider says it verified that address.
    pub email_verified: bool,
    /// Their name.
    pub name: Option<String>,
    /// A username they use there (GitHub login, `preferred_username`), a hint for ours.
    pub username: Option<String>,
}

/// The secrets of one started sign-in.
pub struct Attempt<'a> {
    /// `state`.
    pub state: &'a str,
    /// The OIDC nonce.
    pub nonce: &'a str,
    /// The PKCE code verifier (the challenge is its SHA-256).
    pub code_verifier: &'a str,
    /// Our callback URL.
    pub redirect_uri: &'a str,
}

/// The client side of the protocols, with cached discovery documents and key sets.
pub struct OAuthClient {
    http: reqwest::Client,
    discovery: Cache<String, Arc<oidc::Discovery>>,
    jwks: Cache<String, Arc<jsonwebtoken::jwk::JwkSet>>,
}

impl OAuthClient {
    /// A client whose every call ends after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A provider's endpoints are configured or discovered; following a redirect would
            // let an answer send us to an address nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Skein/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        // Keys and endpoints change rarely; an hour bounds how long a rotated-out key works.
        let hour = Duration::from_secs(3600);
        Ok(OAuthClient {
            http,
            discovery: Cache::builder().max_capacity(64).time_to_live(hour).build(),
            jwks: Cache::builder().max_capacity(64).time_to_live(hour).build(),
        })
    }

    /// The provider's authorization URL for this attempt.
    pub async fn authorize_url(
        &self,
        provider: &Provider,
        attempt: &Attempt<'_>,
    ) -> Result<String, ApiError> {
        let challenge = pkce_challenge(attempt.code_verifier);
        match provider.config.kind {
            kind if kind.is_oidc() => {
                let discovery = self.discover(provider).await?;
                oidc::authorize_url(provider, &discovery, attempt, &challenge)
            }
            ProviderKind::Github => github::authorize_url(provider, attempt, &challenge),
            _ => wechat::authorize_url(provider, attempt),
        }
    }

    /// Trades the code for who signed in, checking everything the protocol lets us check.
    pub async fn identify(
        &self,
        provider: &Provider,
        attempt: &Attempt<'_>,
        code: &str,
    ) -> Result<ExternalIdentity, ApiError> {
        match provider.config.kind {
            kind if kind.is_oidc() => oidc::identify(self, provider, attempt, code).await,
            ProviderKind::Github => github::identify(self, provider, attempt, code).await,
            _ => wechat::identify(self, provider, code).await,
        }
    }

    /// Reads a JSON answer of at most [`MAX_BODY_BYTES`]; any other status than 2xx is an
    /// error naming `what` (never the body, which may echo a token).
    async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ApiError> {
        let (status, body) = self.fetch(request, what).await?;
        if !status.is_success() {
            // An OAuth error answer names its error code; that much is safe to show.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from));
            return Err(errors::provider_error(
                what,
                &format!(
                    "HTTP {}{}",
                    status.as_u16(),
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| errors::provider_error(what, &format!("unexpected answer: {e}")))
    }

    async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ApiError> {
        let response = request
            .send()
            .await
            .map_err(|e| errors::provider_error(what, &describe(&e)))?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(errors::provider_error(what, "answer too large"));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| errors::provider_error(what, &describe(&e)))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(errors::provider_error(what, "answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// A reqwest error without its URL (which may carry a code or token in the query).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_body() || e.is_decode() {
        "broken answer".into()
    } else {
        "request failed".into()
    }
}

/// `BASE64URL(SHA256(verifier))`, PKCE's S256 method.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random URL-safe secret of 32 bytes.
pub fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Checks a provider slug: 1–32 of `a-z`, `0-9`, `-`.
pub fn valid_slug(slug: &str) -> Result<(), ApiError> {
    let ok = !slug.is_empty()
        && slug.len() <= 32
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "slug",
            "Use 1 to 32 lower-case letters, digits or '-'.",
            "请使用 1 到 32 个小写字母、数字或“-”。",
        ))
    }
}

/// Adds query parameters to a configured URL.
fn with_query(base: &str, params: &[(&str, &str)]) -> Result<reqwest::Url, ApiError> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|_| errors::provider_error("configuration", "an endpoint is not a valid URL"))?;
    url.query_pairs_mut().extend_pairs(params);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_unpadded_base64url_of_sha256() {
        // Computed independently: base64.urlsafe_b64encode(sha256(v)).rstrip("=") in Python.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ92IZJTplD-Md6Uoc5X7q-R7Y4ePGJfM"),
            "rmETnet_MRtOHfajFkq9YxzOltD_LwmcofCbKSVJiVk"
        );
    }

    #[test]
    fn slugs() {
        assert!(valid_slug("github").is_ok());
        assert!(valid_slug("corp-sso-2").is_ok());
        assert!(valid_slug("").is_err());
        assert!(valid_slug("Git Hub").is_err());
        assert!(valid_slug("../x").is_err());
    }
}
