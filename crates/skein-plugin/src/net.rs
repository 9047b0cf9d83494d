//! Calls the server makes for tools (OpenAPI operations, MCP servers), guarded against
//! server-side request forgery: the host is resolved first and refused when any address is
//! private, loopback, link-local or otherwise not public (unless the admin allowed private
//! addresses); the connection goes to the address that was checked, so a second DNS answer
//! cannot swap it; redirects are not followed; the answer is read up to a size limit and
//! within a timeout. The address rules and body limits are the core's (`skein_core::net`),
//! shared with every service that fetches.

use std::time::Duration;

use bytes::Bytes;

pub use skein_core::net::{FetchError, checked_address, is_public, read_limited, without_url};

/// How an outgoing call is made.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Allow private, loopback and link-local addresses (the admin's setting).
    pub allow_private: bool,
    /// The most bytes read from the answer.
    pub max_bytes: usize,
    /// The longest the whole call may take.
    pub timeout: Duration,
}

/// An outgoing request.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `GET`, `POST`, ...
    pub method: reqwest::Method,
    /// Where.
    pub url: reqwest::Url,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// A JSON body; with a `content-type: application/x-www-form-urlencoded` header, a
    /// string sent as the encoded form it is.
    pub body: Option<serde_json::Value>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its content type.
    pub content_type: String,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// Its body (at most the policy's limit).
    pub body: Bytes,
}

/// Sends `request` under `policy`: checked address, no redirects, no proxy, limited body.
pub async fn send(request: Outgoing, policy: FetchPolicy) -> Result<Answer, FetchError> {
    send_observed(request, policy, None).await
}

/// Sees each piece of an answer's body as it arrives (an MCP server's event stream, whose
/// progress notifications come before its answer).
pub type Observer<'a> = &'a (dyn Fn(&[u8]) + Send + Sync);

/// A client for calls to `url`'s host under `policy`: the host resolved and checked once,
/// and every connection made to that checked address; no redirects, no proxy. Calls made
/// through it must stay on that host (an MCP session's endpoint).
pub async fn guarded_client(
    url: &reqwest::Url,
    policy: FetchPolicy,
) -> Result<reqwest::Client, FetchError> {
    let address = checked_address(url, policy.allow_private).await?;
    let host = url.host_str().unwrap_or("").to_string();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve(&host, address)
        .connect_timeout(Duration::from_secs(5))
        // Every request ends soon after the deadline, also one made by a task the caller no
        // longer waits for (an MCP session's worker when the call timed out); a second later
        // than the caller's own deadline, whose message says which limit it was.
        .timeout(policy.timeout + Duration::from_secs(1))
        .build()
        .map_err(|e| FetchError::Unreachable(e.to_string()))
}

/// [`send`], showing `observer` each piece of the body as it arrives.
pub async fn send_observed(
    request: Outgoing,
    policy: FetchPolicy,
    observer: Option<Observer<'_>>,
) -> Result<Answer, FetchError> {
    let client = guarded_client(&request.url, policy).await?;
    let work = async {
        let mut builder = client.request(request.method, request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let form = request.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("content-type")
                && value.starts_with("application/x-www-form-urlencoded")
        });
        match &request.body {
            // A form (an OAuth token request) goes as the text it was encoded to.
            Some(serde_json::Value::String(text)) if form => builder = builder.body(text.clone()),
            Some(body) => builder = builder.json(body),
            None => {}
        }
        let response = builder
            .send()
            .await
            .map_err(|e| FetchError::Unreachable(without_url(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|n| n > policy.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(policy.max_bytes));
        }
        let body = match observer {
            None => read_limited(response, policy.max_bytes).await?,
            Some(observer) => {
                use futures::StreamExt;
                let mut body = bytes::BytesMut::new();
                let mut stream = response.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| FetchError::Unreachable(without_url(&e)))?;
                    if body.len() + chunk.len() > policy.max_bytes {
                        return Err(FetchError::TooLarge(policy.max_bytes));
                    }
                    observer(&chunk);
                    body.extend_from_slice(&chunk);
                }
                body.freeze()
            }
        };
        Ok(Answer {
            status,
            content_type,
            headers,
            body,
        })
    };
    tokio::time::timeout(policy.timeout, work)
        .await
        .map_err(|_| {
            FetchError::Unreachable(format!(
                "no answer within {} seconds",
                policy.timeout.as_secs()
            ))
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_addresses_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:9/",
        ] {
            let url = reqwest::Url::parse(raw).unwrap();
            assert!(
                matches!(
                    checked_address(&url, false).await,
                    Err(FetchError::NotAllowed(_))
                ),
                "{raw}"
            );
        }
        let url = reqwest::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(checked_address(&url, true).await.is_ok());
        let file = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(
            checked_address(&file, true).await,
            Err(FetchError::NotAllowed(_))
        ));
        assert!(is_public("93.184.216.34".parse().unwrap()));
    }
}
