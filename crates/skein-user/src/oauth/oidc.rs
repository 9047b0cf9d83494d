//! OpenID Connect: discovery, the authorization code flow with PKCE (S256), and ID-token
//! validation (signature by the issuer's JWKS, RS256 or ES256; `iss`, `aud`, `azp`, `exp`,
//! `nonce`).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use skein_core::ApiError;
use subtle::ConstantTimeEq;

use super::{Attempt, ExternalIdentity, OAuthClient, Provider, ProviderKind, with_query};
use crate::errors;

/// The parts of `/.well-known/openid-configuration` we use.
#[derive(Debug, Deserialize)]
pub(super) struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The claims of an ID token we read.
#[derive(Debug, Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: serde_json::Value,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    /// Microsoft: the tenant that signed the person in.
    #[serde(default)]
    tid: Option<String>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// What the userinfo endpoint says (asked only when the ID token has no address).
#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
}

fn trim_slash(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

impl OAuthClient {
    /// The issuer's discovery document, cached for an hour. Its `issuer` must be the one
    /// configured (OpenID Connect Discovery 1.0, section 4.3).
    pub(super) async fn discover(&self, provider: &Provider) -> Result<Arc<Discovery>, ApiError> {
        let issuer = provider
            .issuer()
            .ok_or_else(|| errors::provider_error("discovery", "no issuer configured"))?;
        if let Some(found) = self.discovery.get(&issuer) {
            return Ok(found);
        }
        let url = format!("{}/.well-known/openid-configuration", trim_slash(&issuer));
        let doc: Discovery = self.json(self.http.get(&url), "discovery").await?;
        let same_issuer = trim_slash(&doc.issuer) == trim_slash(&issuer)
            // Microsoft's multi-tenant documents name a template issuer.
            || (provider.config.kind == ProviderKind::Microsoft && doc.issuer.contains("{tenantid}"));
        if !same_issuer {
            return Err(errors::provider_error(
                "discovery",
                "the discovery document names another issuer",
            ));
        }
        for endpoint in [
            &doc.authorization_endpoint,
            &doc.token_endpoint,
            &doc.jwks_uri,
        ] {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(errors::provider_error(
                    "discovery",
                    "an endpoint is not an http(s) URL",
                ));
            }
        }
        let doc = Arc::new(doc);
        self.discovery.insert(issuer, doc.clone());
        Ok(doc)
    }

    /// The issuer's keys; fetched again once when a token names a key we have not seen (keys
    /// rotate).
    async fn key_for(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, ApiError> {
        for fresh in [false, true] {
            let set = match self.jwks.get(jwks_uri) {
                Some(set) if !fresh => set,
                _ => {
                    let set: JwkSet = self.json(self.http.get(jwks_uri), "jwks").await?;
                    let set = Arc::new(set);
                    self.jwks.insert(jwks_uri.to_string(), set.clone());
                    set
                }
            };
            let found = match kid {
                Some(kid) => set.find(kid),
                // Without a kid, only an unambiguous set will do.
                None if set.keys.len() == 1 => set.keys.first(),
                None => None,
            };
            if let Some(jwk) = found {
                let key_alg_ok = jwk
                    .common
                    .key_algorithm
                    .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
                if !key_alg_ok {
                    return Err(errors::token_rejected("the key is for another algorithm"));
                }
                return DecodingKey::from_jwk(jwk)
                    .map_err(|_| errors::token_rejected("the issuer's key cannot be read"));
            }
        }
        Err(errors::token_rejected(
            "the token's signing key is not in the issuer's key set",
        ))
    }
}

pub(super) fn authorize_url(
    provider: &Provider,
    discovery: &Discovery,
    attempt: &Attempt<'_>,
    challenge: &str,
) -> Result<String, ApiError> {
    let scopes = provider.scopes("openid email profile");
    let url = with_query(
        &discovery.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", &provider.config.client_id),
            ("redirect_uri", attempt.redirect_uri),
            ("scope", &scopes),
            ("state", attempt.state),
            ("nonce", attempt.nonce),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )?;
    Ok(url.into())
}

pub(super) async fn identify(
    client: &OAuthClient,
    provider: &Provider,
    attempt: &Attempt<'_>,
    code: &str,
) -> Result<ExternalIdentity, ApiError> {
    let discovery = client.discover(provider).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", attempt.redirect_uri),
        ("code_verifier", attempt.code_verifier),
    ];
    let id = provider.config.client_id.as_str();
    let secret = provider.secret().expose();
    // client_secret_basic is the default method (RFC 6749 2.3.1; OIDC Core 9); post is used
    // only when the issuer lists it and not basic.
    let post_only = discovery
        .token_endpoint_auth_methods_supported
        .as_ref()
        .is_some_and(|m| {
            m.iter().any(|x| x == "client_secret_post")
                && !m.iter().any(|x| x == "client_secret_basic")
        });
    let request = client.http.post(&discovery.token_endpoint);
    let request = if post_only {
        let mut form = form.to_vec();
        form.push(("client_id", id));
        form.push(("client_secret", secret));
        request.form(&form)
    } else {
        let basic = STANDARD.encode(format!("{}:{}", form_encode(id), form_encode(secret)));
        request
            .header("authorization", format!("Basic {basic}"))
            .form(&form)
    };
    let answer: TokenAnswer = client.json(request, "token").await?;
    let id_token = answer
        .id_token
        .ok_or_else(|| errors::token_rejected("the token endpoint gave no ID token"))?;
    let claims = validate_id_token(client, provider, &discovery, &id_token, attempt.nonce).await?;
    let verified = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::Bool(b)) => *b,
        // Some issuers send the flag as a string.
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    };
    let mut identity = ExternalIdentity {
        subject: claims.sub.clone(),
        email: claims.email.clone(),
        // Microsoft gives no proof that an address is its owner's, so its addresses count
        // as unverified here.
        email_verified: provider.config.kind != ProviderKind::Microsoft
            && verified(&claims.email_verified),
        name: claims.name.clone(),
        username: claims.preferred_username.clone(),
    };
    if identity.email.is_none()
        && let (Some(endpoint), Some(access)) = (&discovery.userinfo_endpoint, &answer.access_token)
    {
        let info: UserInfo = client
            .json(client.http.get(endpoint).bearer_auth(access), "userinfo")
            .await?;
        // OIDC Core 5.3.2: a userinfo answer for another subject must not be used.
        if info.sub == claims.sub {
            identity.email = info.email;
            identity.email_verified =
                provider.config.kind != ProviderKind::Microsoft && verified(&info.email_verified);
        }
    }
    identity.email = identity
        .email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'));
    Ok(identity)
}

async fn validate_id_token(
    client: &OAuthClient,
    provider: &Provider,
    discovery: &Discovery,
    id_token: &str,
    nonce: &str,
) -> Result<IdClaims, ApiError> {
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| errors::token_rejected("the ID token is not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(errors::token_rejected(
            "the ID token is signed with an algorithm we do not accept",
        ));
    }
    let key = client
        .key_for(&discovery.jwks_uri, header.kid.as_deref(), header.alg)
        .await?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&provider.config.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 60;
    let data = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        errors::token_rejected(match e.kind() {
            ErrorKind::InvalidAudience => "the ID token is for another audience",
            ErrorKind::ExpiredSignature => "the ID token has expired",
            ErrorKind::InvalidSignature => "the ID token's signature is wrong",
            ErrorKind::MissingRequiredClaim(_) => "the ID token lacks a required claim",
            _ => "the ID token is invalid",
        })
    })?;
    let claims = data.claims;
    let expected_issuer = match &claims.tid {
        Some(tid) if discovery.issuer.contains("{tenantid}") => {
            discovery.issuer.replace("{tenantid}", tid)
        }
        _ => discovery.issuer.clone(),
    };
    if trim_slash(&claims.iss) != trim_slash(&expected_issuer) {
        return Err(errors::token_rejected(
            "the ID token is from another issuer",
        ));
    }
    // With several audiences, the token must say it was issued to us (OIDC Core 3.1.3.7).
    if claims.aud.as_array().is_some_and(|a| a.len() > 1)
        && claims.azp.as_deref() != Some(provider.config.client_id.as_str())
    {
        return Err(errors::token_rejected(
            "the ID token is for another audience",
        ));
    }
    let nonce_ok = claims
        .nonce
        .as_deref()
        .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
    if !nonce_ok {
        return Err(errors::token_rejected(
            "the ID token's nonce is not this sign-in's",
        ));
    }
    Ok(claims)
}

/// `application/x-www-form-urlencoded` encoding of one value, as RFC 6749 2.3.1 asks for the
/// client id and secret before they go into the Basic header.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c/d~é"), "a+b%3Ac%2Fd%7E%C3%A9");
        assert_eq!(form_encode("plain-id_1.x"), "plain-id_1.x");
    }
}
