//! Requests the server makes on a user's behalf (tools calling APIs, knowledge bases fetching
//! web pages), guarded against server-side request forgery: the host is resolved first and
//! refused when any address is private, loopback, link-local or otherwise not public (unless
//! the admin allowed private addresses); callers connect to the address that was checked, so a
//! second DNS answer cannot swap it; bodies are read up to a limit. One set of address rules
//! for every service that fetches, so a range added here guards them all.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// Why an outgoing request failed, in words a model (and a user) can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The address is not one the server may reach.
    NotAllowed(String),
    /// It could not be reached or did not answer in time.
    Unreachable(String),
    /// It answered more than the limit.
    TooLarge(usize),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotAllowed(why) => write!(f, "the address is not allowed: {why}"),
            FetchError::Unreachable(why) => write!(f, "it could not be reached: {why}"),
            FetchError::TooLarge(limit) => write!(f, "it answered more than {limit} bytes"),
        }
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 192 && b == 88 && v4.octets()[2] == 99)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first == 0x64 && second == 0xff9b)
                || (first == 0x64 && second == 0xff9b + 1)
                || first == 0x2002
                || (first == 0x2001 && second == 0)
                || (first == 0x2001 && second == 0x0db8)
                || (first == 0x0100 && v6.segments()[1..4].iter().all(|s| *s == 0))
                || v6.segments()[..6].iter().all(|s| *s == 0)
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0)
        }
    }
}

/// The address to connect to for `url`, after checking every address its host resolves to.
pub async fn checked_address(
    url: &reqwest::Url,
    allow_private: bool,
) -> Result<SocketAddr, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::NotAllowed(
            "only http and https URLs are allowed".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::NotAllowed("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| FetchError::Unreachable(format!("{host} did not resolve in time")))?
        .map_err(|_| FetchError::Unreachable(format!("{host} does not resolve")))?
        .collect(),
    };
    let first = *addresses
        .first()
        .ok_or_else(|| FetchError::Unreachable(format!("{host} does not resolve")))?;
    if !allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(FetchError::NotAllowed(format!(
            "{host} is a private, loopback or link-local address"
        )));
    }
    Ok(first)
}

/// Reads a body, stopping (and failing) past `limit` bytes.
pub async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Bytes, FetchError> {
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Unreachable(without_url(&e)))?;
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A reqwest error without its URL (which may carry a key in its query).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the address");
    }
    if e.is_timeout() {
        return "it did not answer in time".into();
    }
    if e.is_connect() {
        return "the connection failed".into();
    }
    text
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
            "192.0.0.8",
            "192.88.99.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn other_schemes_and_private_hosts_are_refused_before_any_connection() {
        let file = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(
            checked_address(&file, true).await,
            Err(FetchError::NotAllowed(_))
        ));
        let local = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(matches!(
            checked_address(&local, false).await,
            Err(FetchError::NotAllowed(_))
        ));
        assert!(checked_address(&local, true).await.is_ok());
    }
}
