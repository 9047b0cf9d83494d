//! Fetching a web page to index, guarded against server-side request forgery by the core's
//! rules (`skein_core::net`, shared with the Plugin service's tools): the host is resolved first and refused
//! when any address is private, loopback, link-local or otherwise not public (unless the admin
//! allowed private addresses, `knowledge.allow_private_urls`); the connection goes to the
//! address that was checked, so a second DNS answer cannot swap it; redirects are not followed;
//! the body is read up to a size limit within a timeout.

use std::time::Duration;

use bytes::Bytes;

pub use skein_core::net::{FetchError, checked_address, is_public, read_limited, without_url};

/// A fetched page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Its content type (without parameters), lower-cased.
    pub content_type: String,
    /// Its body.
    pub body: Bytes,
}

/// GETs `url` under the guard: at most `max_bytes`, within `timeout`; a status other than
/// 2xx (a redirect included) is an error naming it.
pub async fn fetch(
    url: &reqwest::Url,
    allow_private: bool,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Page, FetchError> {
    let address = checked_address(url, allow_private).await?;
    let host = url.host_str().unwrap_or("").to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&host, address)
        .connect_timeout(Duration::from_secs(5))
        .user_agent("Skein knowledge fetcher")
        .build()
        .map_err(|e| FetchError::Unreachable(e.to_string()))?;
    let work = async {
        let response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| FetchError::Unreachable(without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Unreachable(format!(
                "it answered HTTP {}",
                status.as_u16()
            )));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if response
            .content_length()
            .is_some_and(|n| n > max_bytes as u64)
        {
            return Err(FetchError::TooLarge(max_bytes));
        }
        let body = read_limited(response, max_bytes).await?;
        Ok(Page { content_type, body })
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        FetchError::Unreachable(format!("no answer within {} seconds", timeout.as_secs()))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_and_other_schemes_are_refused_before_any_connection() {
        let url = reqwest::Url::parse("http://127.0.0.1:9/page").unwrap();
        let e = fetch(&url, false, 1024, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::NotAllowed(_)), "{e}");
        let url = reqwest::Url::parse("file:///etc/passwd").unwrap();
        let e = fetch(&url, true, 1024, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::NotAllowed(_)), "{e}");
    }
}
