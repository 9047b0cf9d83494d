//! OAuth 2 client credentials (RFC 6749 §4.4) for OpenAPI and MCP plugins: the server asks
//! the plugin's token endpoint for an access token with the plugin's client id and sealed
//! secret (HTTP Basic, §2.3.1), sends it as a bearer token, and keeps it until shortly before
//! it expires. The token endpoint is reached through the same SSRF guard as the plugin's
//! calls; the secret and tokens never leave the server.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::net::{self, FetchPolicy, Outgoing};

/// The auth kind's name.
pub const KIND: &str = "oauth2_client_credentials";

/// A token is renewed this long before it expires.
const MARGIN: Duration = Duration::from_secs(30);

/// How long a token without `expires_in` is kept.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// The longest a token is kept, whatever the endpoint says (a user's own plugin names its
/// token endpoint, and a rotated secret must stop working within this).
const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// What a plugin stores of its OAuth client (in `auth_name`, JSON); the secret is sealed apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The scope asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Tokens kept per plugin and secret, each with the client it was issued for (a changed
/// client, or a caller with another secret, is not answered with an old token).
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (Client, String, Instant)>>,
}

impl TokenCache {
    /// A bearer token for `plugin_id`'s `client`: the kept one while it is fresh, else a new
    /// one from the token endpoint.
    pub async fn token(
        &self,
        plugin_id: &str,
        client: &Client,
        secret: &str,
        policy: FetchPolicy,
    ) -> Result<String, String> {
        let key = cache_key(plugin_id, secret);
        if let Ok(tokens) = self.tokens.lock()
            && let Some((kept_for, token, until)) = tokens.get(&key)
            && kept_for == client
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = fetch(client, secret, policy).await?;
        if let Ok(mut tokens) = self.tokens.lock() {
            let until = Instant::now() + lifetime.min(MAX_LIFETIME).saturating_sub(MARGIN);
            tokens.insert(key, (client.clone(), token.clone(), until));
        }
        Ok(token)
    }

    /// Forgets `plugin_id`'s tokens (its client changed, or the plugin is gone).
    pub fn forget(&self, plugin_id: &str) {
        let prefix = format!("{plugin_id}:");
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|key, _| !key.starts_with(&prefix));
        }
    }
}

/// Where a token is kept: the plugin and a digest of the secret it was got with.
fn cache_key(plugin_id: &str, secret: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{plugin_id}:{hex}")
}

/// Asks the token endpoint; the token and how long it lives.
async fn fetch(
    client: &Client,
    secret: &str,
    policy: FetchPolicy,
) -> Result<(String, Duration), String> {
    let url = reqwest::Url::parse(&client.token_url)
        .map_err(|_| "the token endpoint is not a URL".to_string())?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = client.scope.as_deref().filter(|s| !s.is_empty()) {
        form.push(("scope", scope));
    }
    let body = serde_urlencoded::to_string(&form).map_err(|e| e.to_string())?;
    // RFC 6749 §2.3.1: id and secret form-encoded, then joined for Basic.
    let encode = |s: &str| {
        let pair = serde_urlencoded::to_string([("", s)]).unwrap_or_default();
        pair.get(1..).unwrap_or_default().to_string()
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode(&client.client_id),
        encode(secret)
    ));
    let answer = net::send(
        Outgoing {
            method: reqwest::Method::POST,
            url,
            headers: vec![
                ("authorization".into(), format!("Basic {basic}")),
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(Value::String(body)),
        },
        FetchPolicy {
            max_bytes: 64 * 1024,
            ..policy
        },
    )
    .await
    .map_err(|e| format!("the token endpoint could not be reached: {e}"))?;
    let message: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if !(200..300).contains(&answer.status) {
        // The endpoint's error code (`invalid_client`) says what is wrong; nothing else of it
        // is repeated.
        let code = message["error"].as_str().unwrap_or("no error code");
        return Err(format!(
            "the token endpoint refused the client (HTTP {}, {code})",
            answer.status
        ));
    }
    let token = message["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the token endpoint answered no access_token")?;
    if message["token_type"]
        .as_str()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err("the token endpoint answered a token that is not a bearer token".into());
    }
    let lifetime = message["expires_in"]
        .as_u64()
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME);
    Ok((token.to_string(), lifetime))
}
