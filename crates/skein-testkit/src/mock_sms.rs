//! Fakes of Aliyun SMS and Tencent Cloud SMS that check every request's signature the way the
//! vendors document it, recomputed here independently of Skein's signer, and keep the codes
//! they were asked to send so tests can type them back.
//!
//! Aliyun (Dysmsapi 2017-05-25 `SendSms`, V3 signature ACS3-HMAC-SHA256): the canonical request
//! is rebuilt from the sent query string (decoded, sorted, RFC 3986-encoded again) and the
//! headers named in `SignedHeaders`; `x-acs-content-sha256` must be the body's hash, `host`
//! and every `x-acs-*` header must be signed, `x-acs-date` within 15 minutes and the nonce new.
//! Errors are HTTP 400/403 `{"Code","Message","RequestId"}`.
//!
//! Tencent (SMS 2021-01-11 `SendSms`, TC3-HMAC-SHA256): the canonical headers are those named
//! in `SignedHeaders`, keys and values lower-cased; the credential's date must be the UTC day of
//! `X-TC-Timestamp`, which must be within 5 minutes. Errors are HTTP 200 with
//! `{"Response":{"Error":{"Code","Message"},"RequestId"}}`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The number as the vendor received it.
    pub phone: String,
    /// The code (template parameter).
    pub code: String,
}

#[derive(Default)]
struct Inner {
    sent: Vec<SentSms>,
    nonces: HashSet<String>,
    refused: Vec<String>,
    fail_next: Option<String>,
}

#[derive(Clone)]
struct Shared {
    key_id: String,
    secret: String,
    inner: Arc<Mutex<Inner>>,
}

/// A running fake SMS vendor.
pub struct MockSms {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockSms {
    /// A fake Aliyun SMS for this AccessKey.
    pub async fn aliyun(access_key_id: &str, access_key_secret: &str) -> MockSms {
        Self::serve(access_key_id, access_key_secret, post(aliyun_send)).await
    }

    /// A fake Tencent Cloud SMS for this API key.
    pub async fn tencent(secret_id: &str, secret_key: &str) -> MockSms {
        Self::serve(secret_id, secret_key, post(tencent_send)).await
    }

    async fn serve(
        key_id: &str,
        secret: &str,
        route: axum::routing::MethodRouter<Shared>,
    ) -> MockSms {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = Shared {
            key_id: key_id.into(),
            secret: secret.into(),
            inner: inner.clone(),
        };
        let router = Router::new().route("/", route).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake SMS vendor");
        let address: SocketAddr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockSms {
            base: format!("http://{address}"),
            inner,
        }
    }

    /// Every message accepted so far.
    pub fn sent(&self) -> Vec<SentSms> {
        self.inner.lock().expect("lock").sent.clone()
    }

    /// The code of the last message to `phone` (as the vendor received the number).
    pub fn last_code_to(&self, phone: &str) -> Option<String> {
        self.sent()
            .into_iter()
            .rev()
            .find(|m| m.phone == phone)
            .map(|m| m.code)
    }

    /// Why requests were refused so far (signature mismatches and the like).
    pub fn refused(&self) -> Vec<String> {
        self.inner.lock().expect("lock").refused.clone()
    }

    /// Refuses the next request with this vendor error code (a well-signed one included).
    pub fn fail_next(&self, code: &str) {
        self.inner.lock().expect("lock").fail_next = Some(code.into());
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`), so the fake needs no date library.
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2024-05-01T08:00:00Z` to Unix seconds.
fn parse_acs_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if s.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Search the day: fine for a fake.
    let approx = (y - 1970) * 365 + (y - 1969) / 4;
    let day = (approx - 3..approx + 400).find(|&n| civil(n) == (y, mo, d))?;
    Some(day * 86_400 + h * 3600 + mi * 60 + se)
}

fn refuse(s: &Shared, why: String) {
    s.inner.lock().expect("lock").refused.push(why);
}

async fn aliyun_send(
    State(s): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let error = |status: StatusCode, code: &str, message: String| {
        refuse(&s, format!("{code}: {message}"));
        (
            status,
            axum::Json(json!({ "Code": code, "Message": message, "RequestId": "fake" })),
        )
            .into_response()
    };
    let auth = header(&headers, "authorization");
    let Some(rest) = auth.strip_prefix("ACS3-HMAC-SHA256 ") else {
        return error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            format!("bad Authorization: {auth}"),
        );
    };
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = v,
            Some(("SignedHeaders", v)) => signed_headers = v,
            Some(("Signature", v)) => signature = v,
            _ => {}
        }
    }
    if credential != s.key_id {
        return error(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            format!("unknown AccessKeyId {credential}"),
        );
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    if names != sorted {
        return error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "SignedHeaders are not sorted".into(),
        );
    }
    for name in headers.keys() {
        let n = name.as_str();
        if (n == "host" || n.starts_with("x-acs-")) && !names.contains(&n) {
            return error(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                format!("{n} is not signed"),
            );
        }
    }
    for required in [
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ] {
        if !names.contains(&required) {
            return error(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                format!("{required} is not signed"),
            );
        }
    }
    if header(&headers, "x-acs-content-sha256") != sha256_hex(&body) {
        return error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "x-acs-content-sha256 is not the body's".into(),
        );
    }
    let date = header(&headers, "x-acs-date");
    match parse_acs_date(&date) {
        Some(t) if (now_secs() - t).abs() <= 900 => {}
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Expired",
                format!("x-acs-date {date}"),
            );
        }
    }
    let nonce = header(&headers, "x-acs-signature-nonce");
    if !s.inner.lock().expect("lock").nonces.insert(nonce.clone()) {
        return error(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            format!("nonce {nonce} used"),
        );
    }
    let mut params: Vec<(String, String)> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_headers: String = names
        .iter()
        .map(|n| format!("{n}:{}\n", header(&headers, n).trim()))
        .collect();
    let canonical_request = format!(
        "POST\n/\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(&body)
    );
    let string_to_sign = format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let expected = hex::encode(hmac(s.secret.as_bytes(), string_to_sign.as_bytes()));
    if expected != signature {
        return error(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!("expected {expected}, canonical request {canonical_request:?}"),
        );
    }
    if header(&headers, "x-acs-action") != "SendSms"
        || header(&headers, "x-acs-version") != "2017-05-25"
    {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidAction.NotFound",
            "not SendSms 2017-05-25".into(),
        );
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(code) = s.inner.lock().expect("lock").fail_next.take() {
        return (
            StatusCode::OK,
            axum::Json(
                json!({ "Code": code, "Message": "refused by the fake", "RequestId": "fake" }),
            ),
        )
            .into_response();
    }
    let (Some(phone), Some(_), Some(_), Some(param)) = (
        get("PhoneNumbers"),
        get("SignName"),
        get("TemplateCode"),
        get("TemplateParam"),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "PhoneNumbers, SignName, TemplateCode and TemplateParam are required".into(),
        );
    };
    let code = serde_json::from_str::<Value>(&param)
        .ok()
        .and_then(|v| v["code"].as_str().map(String::from))
        .unwrap_or_default();
    s.inner
        .lock()
        .expect("lock")
        .sent
        .push(SentSms { phone, code });
    axum::Json(json!({ "Code": "OK", "Message": "OK", "BizId": "900000000000000000^0", "RequestId": "fake" })).into_response()
}

async fn tencent_send(State(s): State<Shared>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let error = |code: &str, message: String| {
        refuse(&s, format!("{code}: {message}"));
        axum::Json(json!({ "Response": { "Error": { "Code": code, "Message": message }, "RequestId": "fake" } })).into_response()
    };
    let auth = header(&headers, "authorization");
    let Some(rest) = auth.strip_prefix("TC3-HMAC-SHA256 ") else {
        return error(
            "AuthFailure.InvalidAuthorization",
            format!("bad Authorization: {auth}"),
        );
    };
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = v,
            Some(("SignedHeaders", v)) => signed_headers = v,
            Some(("Signature", v)) => signature = v,
            _ => {}
        }
    }
    let Some((id, scope)) = credential.split_once('/') else {
        return error(
            "AuthFailure.InvalidAuthorization",
            "no credential scope".into(),
        );
    };
    if id != s.key_id {
        return error(
            "AuthFailure.SecretIdNotFound",
            format!("unknown SecretId {id}"),
        );
    }
    let timestamp: i64 = header(&headers, "x-tc-timestamp").parse().unwrap_or(0);
    if (now_secs() - timestamp).abs() > 300 {
        return error(
            "AuthFailure.SignatureExpire",
            format!("timestamp {timestamp}"),
        );
    }
    let (y, m, d) = civil(timestamp.div_euclid(86_400));
    let date = format!("{y:04}-{m:02}-{d:02}");
    if scope != format!("{date}/sms/tc3_request") {
        return error(
            "AuthFailure.InvalidAuthorization",
            format!("scope {scope} is not {date}/sms/tc3_request"),
        );
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    if !names.contains(&"content-type") || !names.contains(&"host") {
        return error(
            "AuthFailure.InvalidAuthorization",
            "content-type and host must be signed".into(),
        );
    }
    let canonical_headers: String = names
        .iter()
        .map(|n| format!("{n}:{}\n", header(&headers, n).trim().to_lowercase()))
        .collect();
    let canonical_request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(&body)
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("TC3{}", s.secret).as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, b"sms");
    let k_signing = hmac(&k_service, b"tc3_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if expected != signature {
        return error(
            "AuthFailure.SignatureFailure",
            format!("expected {expected}, canonical request {canonical_request:?}"),
        );
    }
    if header(&headers, "x-tc-action") != "SendSms"
        || header(&headers, "x-tc-version") != "2021-01-11"
    {
        return error("InvalidAction", "not SendSms 2021-01-11".into());
    }
    if let Some(code) = s.inner.lock().expect("lock").fail_next.take() {
        return axum::Json(json!({ "Response": { "SendStatusSet": [{ "Code": code, "Message": "refused by the fake" }], "RequestId": "fake" } })).into_response();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error("InvalidParameter", "body is not JSON".into());
    };
    let phone = req["PhoneNumberSet"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let code = req["TemplateParamSet"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if phone.is_empty()
        || req["SmsSdkAppId"].as_str().is_none()
        || req["TemplateId"].as_str().is_none()
    {
        return error(
            "MissingParameter",
            "PhoneNumberSet, SmsSdkAppId and TemplateId are required".into(),
        );
    }
    s.inner.lock().expect("lock").sent.push(SentSms {
        phone: phone.clone(),
        code,
    });
    axum::Json(json!({ "Response": { "SendStatusSet": [{ "SerialNo": "fake", "PhoneNumber": phone, "Fee": 1, "SessionContext": "", "Code": "Ok", "Message": "send success", "IsoCode": "CN" }], "RequestId": "fake" } })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_675), (2023, 11, 14));
        assert_eq!(parse_acs_date("1970-01-02T00:00:01Z"), Some(86_401));
        assert_eq!(parse_acs_date("2023-11-14T22:13:20Z"), Some(1_700_000_000));
    }
}
