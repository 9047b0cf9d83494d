//! Fetching remote images for upstreams that take images only inline (Gemini). The relay
//! fetches a URL the client chose, so it guards against server-side request forgery: the host
//! is resolved first and refused if any address is private, loopback, link-local or
//! unique-local; the connection goes to the address that was checked (so a second DNS answer
//! cannot swap it); redirects are followed by hand and checked the same way; the body is
//! size-limited and must be an image.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use serde_json::Value;
use skein_core::{ApiError, ApiResult};

use crate::errors;

/// How remote images may be fetched for upstreams that need them inline.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImagePolicy {
    /// Allow private, loopback and link-local addresses (tests and trusted networks only).
    pub allow_private: bool,
}

/// The largest image fetched (Gemini takes at most 20 MB of inline data per request).
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// The most remote images fetched for one request.
pub const MAX_IMAGES: usize = 16;
/// Redirects followed per image.
const MAX_REDIRECTS: usize = 3;

/// Whether an address is on the public internet (the only kind a client may make us fetch).
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
                // Shared address space (carrier-grade NAT) and benchmarking networks.
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
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
                // Addresses that carry an IPv4 one and reach it through a translator or a
                // tunnel: NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo
                // (2001::/32), and the deprecated IPv4-compatible ::a.b.c.d.
                || (first == 0x64 && second == 0xff9b)
                || (first == 0x64 && second == 0xff9b + 1)
                || first == 0x2002
                || (first == 0x2001 && second == 0)
                || v6.segments()[..6].iter().all(|s| *s == 0)
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0) // site-local (deprecated) fec0::/10
        }
    }
}

/// The address to connect to for `url`, after checking every address its host resolves to.
async fn checked_address(url: &reqwest::Url, policy: ImagePolicy) -> ApiResult<SocketAddr> {
    let raw = url.as_str();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(errors::image_url_not_allowed(
            raw,
            "only http and https URLs can be fetched",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| errors::image_url_not_allowed(raw, "it has no host"))?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| errors::image_url_unreachable(raw, "its host did not resolve in time"))?
        .map_err(|_| errors::image_url_unreachable(raw, "its host does not resolve"))?
        .collect(),
    };
    let first = *addresses
        .first()
        .ok_or_else(|| errors::image_url_unreachable(raw, "its host does not resolve"))?;
    if !policy.allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(errors::image_url_not_allowed(
            raw,
            "its host is a private, loopback or link-local address",
        ));
    }
    Ok(first)
}

/// Fetches one image as a `data:` URL.
pub async fn fetch_data_url(raw: &str, policy: ImagePolicy) -> ApiResult<String> {
    let mut url = reqwest::Url::parse(raw)
        .map_err(|_| errors::image_url_not_allowed(raw, "it is not a URL"))?;
    for _ in 0..=MAX_REDIRECTS {
        let address = checked_address(&url, policy).await?;
        let host = url.host_str().unwrap_or("").to_string();
        // No proxy from the environment: the address checked is the one connected to.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve(&host, address)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(ApiError::internal)?;
        let resp = client
            .get(url.clone())
            .send()
            .await
            .map_err(|_| errors::image_url_unreachable(raw, "the connection failed"))?;
        if resp.status().is_redirection() {
            let next = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| errors::image_url_unreachable(raw, "it redirects nowhere"))?;
            url = next;
            continue;
        }
        if !resp.status().is_success() {
            return Err(errors::image_url_unreachable(
                raw,
                &format!("it answered {}", resp.status().as_u16()),
            ));
        }
        let mime = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !mime.starts_with("image/") {
            return Err(errors::image_url_unreachable(raw, "it is not an image"));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_IMAGE_BYTES as u64)
        {
            return Err(errors::image_url_unreachable(
                raw,
                "it is larger than 10 MB",
            ));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| errors::image_url_unreachable(raw, "the download broke off"))?;
            if body.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(errors::image_url_unreachable(
                    raw,
                    "it is larger than 10 MB",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let data = base64::engine::general_purpose::STANDARD.encode(&body);
        return Ok(format!("data:{mime};base64,{data}"));
    }
    Err(errors::image_url_unreachable(
        raw,
        "it redirects too many times",
    ))
}

/// The request with every remote `image_url` replaced by the fetched image as a `data:` URL.
pub async fn inline_remote_images(request: &Value, policy: ImagePolicy) -> ApiResult<Value> {
    let mut out = request.clone();
    let mut fetched = 0;
    let Some(messages) = out["messages"].as_array_mut() else {
        return Ok(out);
    };
    for message in messages {
        let Some(parts) = message["content"].as_array_mut() else {
            continue;
        };
        for part in parts {
            if part["type"] != "image_url" {
                continue;
            }
            let Some(url) = part["image_url"]["url"].as_str().map(str::to_string) else {
                continue;
            };
            if url.starts_with("data:") {
                continue;
            }
            fetched += 1;
            if fetched > MAX_IMAGES {
                return Err(ApiError::bad_request(
                    "too_many_images",
                    format!("At most {MAX_IMAGES} image URLs can be sent to this model."),
                    format!("该模型最多接受 {MAX_IMAGES} 个图片地址。"),
                ));
            }
            part["image_url"]["url"] = Value::String(fetch_data_url(&url, policy).await?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            // 169.254.169.254 and 127.0.0.1 behind NAT64, 6to4, Teredo, IPv4-compatible.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(!is_public(ip), "{private} must be refused");
        }
        for public in ["8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            let ip: IpAddr = public.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(is_public(ip), "{public} is public");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let strict = ImagePolicy::default();
        let refused = fetch_data_url("http://127.0.0.1:9/cat.png", strict).await;
        assert_eq!(
            refused.err().map(|e| e.code().to_string()).as_deref(),
            Some("image_url_not_allowed")
        );
        let refused = fetch_data_url("http://localhost:9/cat.png", strict).await;
        assert_eq!(
            refused.err().map(|e| e.code().to_string()).as_deref(),
            Some("image_url_not_allowed")
        );
        let refused = fetch_data_url("file:///etc/passwd", strict).await;
        assert_eq!(
            refused.err().map(|e| e.code().to_string()).as_deref(),
            Some("image_url_not_allowed")
        );
        // Allowed, the same URL gets as far as connecting (nothing listens on port 9).
        let allowed = fetch_data_url(
            "http://127.0.0.1:9/cat.png",
            ImagePolicy {
                allow_private: true,
            },
        )
        .await;
        assert_eq!(
            allowed.err().map(|e| e.code().to_string()).as_deref(),
            Some("image_url_unreachable")
        );
    }

    /// A loopback server: `/big.png` one byte over the limit, `/loop` redirecting to itself,
    /// `/moved` redirecting to `/ok.png`.
    async fn server() -> String {
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/big.png",
                get(|| async {
                    (
                        [("content-type", "image/png")],
                        vec![0u8; MAX_IMAGE_BYTES + 1],
                    )
                }),
            )
            .route(
                "/ok.png",
                get(|| async { ([("content-type", "image/png")], vec![1u8, 2, 3]) }),
            )
            .route(
                "/loop",
                get(|| async { axum::response::Redirect::temporary("/loop") }),
            )
            .route(
                "/moved",
                get(|| async { axum::response::Redirect::temporary("/ok.png") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let base = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        base
    }

    #[tokio::test]
    async fn fetches_are_size_limited_and_redirects_bounded() {
        let base = server().await;
        let open = ImagePolicy {
            allow_private: true,
        };
        let code = |r: ApiResult<String>| {
            r.err()
                .map(|e| e.message(skein_core::i18n::Lang::En).to_string())
        };
        let big = code(fetch_data_url(&format!("{base}/big.png"), open).await);
        assert!(
            big.as_deref()
                .is_some_and(|m| m.contains("larger than 10 MB")),
            "{big:?}"
        );
        let looped = code(fetch_data_url(&format!("{base}/loop"), open).await);
        assert!(
            looped
                .as_deref()
                .is_some_and(|m| m.contains("redirects too many times")),
            "{looped:?}"
        );
        let moved = fetch_data_url(&format!("{base}/moved"), open).await;
        assert_eq!(moved.ok().as_deref(), Some("data:image/png;base64,AQID"));
    }
}
