//! Authentication primitives shared by every service: roles, access-token claims, signing and
//! verification, and the [`AuthUser`] extractor handlers use.
//!
//! The gateway verifies credentials once per request and leaves an [`AuthState`] in the
//! request's extensions; handlers only read it. So no service besides the gateway (and the
//! User service, which issues tokens) touches JWTs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{self, ApiError};
pub use crate::principal::Role;

/// Issuer written into and required of every access token.
const ISSUER: &str = "skein";

/// The claims of a Skein access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session (refresh-token family) id: revoking the session revokes the token.
    pub sid: String,
    /// Role at issue time; the gateway re-reads the current role, this is informative.
    pub role: Role,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Always `skein`.
    pub iss: String,
}

/// Signs and verifies access tokens (HS256 only: `alg: none` and other algorithms are refused).
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Lifetime of a new access token, seconds.
    pub ttl_secs: i64,
}

impl JwtKeys {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Issues a token for a user's session; answers the token and its lifetime in seconds.
    pub fn issue(&self, user_id: &str, session_id: &str, role: Role) -> Result<String, ApiError> {
        let now = crate::ids::now_ms() / 1000;
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            role,
            iat: now,
            exp: now + self.ttl_secs,
            iss: ISSUER.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Verifies signature, algorithm, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::invalid_token())
    }
}

/// The WebSocket subprotocol prefix that carries an access token (`skein.bearer.<token>`):
/// browsers cannot set `Authorization` on a WebSocket, and a token in the URL would land in
/// access logs and history. The server never echoes it back (it picks [`CHAT_SOCKET_PROTOCOL`]).
pub const WS_TOKEN_PROTOCOL: &str = "skein.bearer.";

/// The chat socket's own subprotocol, offered beside the token and answered by the server.
pub const CHAT_SOCKET_PROTOCOL: &str = "skein.chat.v1";

/// When a request's access token expires, seconds since the epoch; the gateway leaves it in
/// the extensions beside [`AuthState::User`], so a connection that outlives the request (the
/// chat socket) ends when its token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExpiry(pub i64);

/// The signed-in caller of a request.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user's id.
    pub user_id: String,
    /// The session the access token belongs to.
    pub session_id: String,
    /// The user's current role.
    pub role: Role,
}

/// What the gateway found out about the caller; left in the request's extensions.
#[derive(Debug, Clone)]
pub enum AuthState {
    /// No credentials were sent.
    Anonymous,
    /// Valid credentials.
    User(AuthUser),
    /// A valid API key (the `/v1` routes).
    Key(crate::api::KeyInfo),
    /// Credentials were sent but are not acceptable; the error says why.
    Rejected(ApiError),
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::User(user)) => Ok(user.clone()),
            Some(AuthState::Rejected(error)) => Err(error.clone()),
            Some(AuthState::Anonymous | AuthState::Key(_)) | None => Err(ApiError::unauthorized()),
        }
    }
}

/// The API key of a `/v1` request.
#[derive(Debug, Clone)]
pub struct ApiKeyCaller(pub crate::api::KeyInfo);

impl<S: Send + Sync> FromRequestParts<S> for ApiKeyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Key(key)) => Ok(ApiKeyCaller(key.clone())),
            Some(AuthState::Rejected(error)) => Err(error.clone()),
            _ => Err(error::api_key_required()),
        }
    }
}

/// A caller who is an admin or root; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl<S: Send + Sync> FromRequestParts<S> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.role >= Role::Admin {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn round_trip_and_tamper() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let token = keys.issue("u1", "s1", Role::Admin).expect("issue");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(
            (claims.sub.as_str(), claims.sid.as_str(), claims.role),
            ("u1", "s1", Role::Admin)
        );

        let other = JwtKeys::new(b"another-secret-another-secret-xx", 900);
        assert!(other.verify(&token).is_err(), "foreign signature accepted");

        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"u2","sid":"s1","role":"root","iat":0,"exp":99999999999,"iss":"skein"}"#,
        );
        parts[1] = &forged;
        assert!(
            keys.verify(&parts.join(".")).is_err(),
            "tampered payload accepted"
        );
    }

    #[test]
    fn refuses_alg_none_and_expired() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 900);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"u1","sid":"s1","role":"root","iat":0,"exp":99999999999,"iss":"skein"}"#,
        );
        assert!(keys.verify(&format!("{header}.{body}.")).is_err());

        let expired = JwtKeys::new(b"0123456789abcdef0123456789abcdef", -60);
        let token = expired.issue("u1", "s1", Role::User).expect("issue");
        assert!(keys.verify(&token).is_err(), "expired token accepted");
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Root > Role::Admin && Role::Admin > Role::User);
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("superuser".parse::<Role>().is_err());
    }
}
