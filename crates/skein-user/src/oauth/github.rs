//! GitHub: OAuth 2.0 web application flow (with PKCE, which GitHub accepts), then the REST API
//! for who signed in (`GET /user`) and their addresses (`GET /user/emails`, scope `user:email`).
//! <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>

use serde::Deserialize;
use skein_core::ApiError;

use super::{Attempt, ExternalIdentity, OAuthClient, Provider, with_query};
use crate::errors;

const AUTHORIZE_URL: &str = "https://github.com/login/oauth/authorize";
const TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
const API_URL: &str = "https://api.github.com";

/// The token endpoint answers 200 even for errors, with `error` set.
#[derive(Deserialize)]
struct GithubToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

pub(super) fn authorize_url(
    provider: &Provider,
    attempt: &Attempt<'_>,
    challenge: &str,
) -> Result<String, ApiError> {
    let scopes = provider.scopes("read:user user:email");
    let base = provider
        .config
        .authorize_url
        .as_deref()
        .unwrap_or(AUTHORIZE_URL);
    let url = with_query(
        base,
        &[
            ("client_id", provider.config.client_id.as_str()),
            ("redirect_uri", attempt.redirect_uri),
            ("scope", &scopes),
            ("state", attempt.state),
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
    let token_url = provider.config.token_url.as_deref().unwrap_or(TOKEN_URL);
    let token: GithubToken = client
        .json(
            client
                .http
                .post(token_url)
                .header("accept", "application/json")
                .form(&[
                    ("client_id", provider.config.client_id.as_str()),
                    ("client_secret", provider.secret().expose()),
                    ("code", code),
                    ("redirect_uri", attempt.redirect_uri),
                    ("code_verifier", attempt.code_verifier),
                ]),
            "token",
        )
        .await?;
    let access = match (token.access_token, token.error) {
        (Some(access), None) => access,
        (_, error) => {
            return Err(errors::provider_error(
                "token",
                &format!("GitHub refused the code ({})", error.unwrap_or_default()),
            ));
        }
    };
    let api = provider
        .config
        .api_url
        .as_deref()
        .unwrap_or(API_URL)
        .trim_end_matches('/');
    let get = |path: &str| {
        client
            .http
            .get(format!("{api}{path}"))
            .bearer_auth(&access)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    };
    let user: GithubUser = client.json(get("/user"), "user").await?;
    // Without the user:email scope GitHub answers 404 here; the account then has no address.
    let emails: Vec<GithubEmail> = client
        .json(get("/user/emails"), "emails")
        .await
        .unwrap_or_default();
    let primary = emails.into_iter().find(|e| e.primary && e.verified);
    Ok(ExternalIdentity {
        subject: user.id.to_string(),
        email: primary.map(|e| e.email.trim().to_lowercase()),
        email_verified: true,
        name: user.name.filter(|n| !n.trim().is_empty()),
        username: Some(user.login),
    })
}
