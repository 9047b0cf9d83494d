//! The refresh token as a browser keeps it: an `HttpOnly` cookie scoped to the auth routes, so
//! no script on the page (an injected one included) can read it.
//!
//! The cookie is `SameSite=Strict`, and a request that relies on it must also carry
//! `X-Skein-CSRF: 1`: a cross-site form cannot set a custom header, and a cross-site `fetch`
//! with one needs a CORS preflight this server does not grant. A request that sends the same
//! header on sign-in gets its refresh token only in the cookie, never in the JSON body.
//! API clients that keep the token themselves send it in the body, as before.

use axum::http::{HeaderMap, HeaderValue, header};
use skein_core::ApiError;

use crate::errors;

/// The cookie's name.
pub const REFRESH_COOKIE: &str = "skein_refresh";
/// The header that proves the request was made by a script of this origin.
pub const CSRF_HEADER: &str = "x-skein-csrf";
/// Where the browser sends the cookie: the auth routes only.
const COOKIE_PATH: &str = "/api/v1/auth";

/// Whether the request carries the anti-CSRF header (the web app always sends it).
pub fn has_csrf_header(headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// The refresh token from the request's cookie, if any.
pub fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The refresh token of a request that relies on its cookie: refused without the CSRF header.
pub fn refresh_from_cookie(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match refresh_cookie(headers) {
        Some(_) if !has_csrf_header(headers) => Err(errors::csrf_header_required()),
        found => Ok(found),
    }
}

/// Whether the client reached us over HTTPS (through a proxy that says so), so the cookie
/// can be marked `Secure` without breaking plain-HTTP local use.
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new refresh token living `max_age_secs`.
pub fn set_refresh(headers: &HeaderMap, token: &str, max_age_secs: i64) -> Option<HeaderValue> {
    let secure = if is_https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// `Set-Cookie` that removes the refresh cookie (logout).
pub fn clear_refresh(headers: &HeaderMap) -> Option<HeaderValue> {
    set_refresh(headers, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; skein_refresh=skr_abc ; b=2"),
        );
        assert_eq!(refresh_cookie(&h).as_deref(), Some("skr_abc"));
        assert!(refresh_from_cookie(&h).is_err(), "no CSRF header");
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert_eq!(
            refresh_from_cookie(&h).ok().flatten().as_deref(),
            Some("skr_abc")
        );
    }
}
