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
//!
//! Twilio (REST 2010-04-01, `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`): HTTP Basic
//! with the Account SID and Auth Token (or an API key's SID and secret), a form body with `To`
//! in E.164, `From` or `MessagingServiceSid`, and `Body`. Errors are Twilio's JSON
//! `{"code","message","more_info","status"}` with the HTTP status (401 code 20003 for bad
//! credentials, 400 21211 / 21603 / 21602 for a bad number, no sender, no body).
//!
//! Every fake can also hold requests until released ([`MockSms::hold`]) and answer a number
//! of requests with the vendor's "try later" ([`MockSms::fail_transiently`]), for the send
//! queue's tests.

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
    transient_failures: u32,
    requests: usize,
}

#[derive(Clone)]
struct Shared {
    key_id: String,
    secret: String,
    /// Twilio: the Account SID the URL must name.
    account: String,
    inner: Arc<Mutex<Inner>>,
    /// Requests wait while this is false.
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A running fake SMS vendor.
pub struct MockSms {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl MockSms {
    /// A fake Aliyun SMS for this AccessKey.
    pub async fn aliyun(access_key_id: &str, access_key_secret: &str) -> MockSms {
        Self::serve(access_key_id, access_key_secret, "", "/", post(aliyun_send)).await
    }

    /// A fake Tencent Cloud SMS for this API key.
    pub async fn tencent(secret_id: &str, secret_key: &str) -> MockSms {
        Self::serve(secret_id, secret_key, "", "/", post(tencent_send)).await
    }

    /// A fake Twilio for `account_sid`, accepting HTTP Basic `user:secret` (the Account SID
    /// and Auth Token, or an API key's SID and secret).
    pub async fn twilio(account_sid: &str, user: &str, secret: &str) -> MockSms {
        Self::serve(
            user,
            secret,
            account_sid,
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(twilio_send),
        )
        .await
    }

    async fn serve(
        key_id: &str,
        secret: &str,
        account: &str,
        path: &str,
        route: axum::routing::MethodRouter<Shared>,
    ) -> MockSms {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let open = Arc::new(tokio::sync::watch::Sender::new(true));
        let shared = Shared {
            key_id: key_id.into(),
            secret: secret.into(),
            account: account.into(),
            inner: inner.clone(),
            open: open.clone(),
        };
        let router = Router::new().route(path, route).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake SMS vendor");
        let address: SocketAddr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockSms {
            base: format!("http://{address}"),
            inner,
            open,
        }
    }

    /// From now on requests wait (unanswered) until [`MockSms::release`]: a vendor that is
    /// slower than anyone would wait for.
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Answers the held requests and stops holding.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Requests that reached the fake so far (answered, refused or held).
    pub fn requests(&self) -> usize {
        self.inner.lock().expect("lock").requests
    }

    /// Answers the next `n` well-formed requests with the vendor's "try later" (HTTP 503).
    pub fn fail_transiently(&self, n: u32) {
        self.inner.lock().expect("lock").transient_failures = n;
    }

    /// Waits until `phone` received a message, polling (a test's safety limit, not a timing
    /// assertion: a healthy run answers in milliseconds).
    pub async fn wait_for_code_to(&self, phone: &str) -> String {
        for _ in 0..600 {
            if let Some(code) = self.last_code_to(phone) {
                return code;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "no SMS reached {phone} within 30 s; refused: {:?}",
            self.refused()
        );
    }

    /// Waits until the fake accepted at least `n` messages in all (see
    /// [`MockSms::wait_for_code_to`]).
    pub async fn wait_for_messages(&self, n: usize) {
        for _ in 0..600 {
            if self.sent().len() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {n} messages reached the fake SMS vendor within 30 s; refused: {:?}",
            self.refused()
        );
    }

    /// Waits until at least `n` requests reached the fake (see [`MockSms::wait_for_code_to`]).
    pub async fn wait_for_requests(&self, n: usize) {
        for _ in 0..600 {
            if self.requests() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} requests reached the fake SMS vendor within 30 s");
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

/// Counts the request, then waits while the fake holds requests.
async fn arrive(s: &Shared) {
    s.inner.lock().expect("lock").requests += 1;
    let mut open = s.open.subscribe();
    let _ = open.wait_for(|open| *open).await;
}

/// Takes one of the "try later" answers still owed, if any.
fn take_transient(s: &Shared) -> bool {
    let mut inner = s.inner.lock().expect("lock");
    if inner.transient_failures > 0 {
        inner.transient_failures -= 1;
        true
    } else {
        false
    }
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
    arrive(&s).await;
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
    if take_transient(&s) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "Code": "ServiceUnavailable", "Message": "try later (the fake)", "RequestId": "fake" })),
        )
            .into_response();
    }
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
    arrive(&s).await;
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
    if take_transient(&s) {
        return axum::Json(json!({ "Response": { "Error": { "Code": "InternalError.Timeout", "Message": "try later (the fake)" }, "RequestId": "fake" } })).into_response();
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

async fn twilio_send(
    State(s): State<Shared>,
    axum::extract::Path(sid): axum::extract::Path<String>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    arrive(&s).await;
    let error = |status: StatusCode, code: u32, message: String| {
        refuse(&s, format!("{code}: {message}"));
        (
            status,
            axum::Json(json!({
                "code": code,
                "message": message,
                "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                "status": status.as_u16(),
            })),
        )
            .into_response()
    };
    use base64::Engine as _;
    let auth = header(&headers, "authorization");
    let credentials = auth
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    if credentials != format!("{}:{}", s.key_id, s.secret) {
        return error(
            StatusCode::UNAUTHORIZED,
            20003,
            format!(
                "Authenticate (got {:?})",
                auth.split(' ').next().unwrap_or("")
            ),
        );
    }
    if sid != s.account {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            format!(
                "The requested resource /2010-04-01/Accounts/{sid}/Messages.json was not found"
            ),
        );
    }
    if !header(&headers, "content-type").starts_with("application/x-www-form-urlencoded") {
        return error(
            StatusCode::BAD_REQUEST,
            21602,
            "the body must be form-encoded".into(),
        );
    }
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let to = get("To").unwrap_or_default();
    let e164 = to.len() > 8 && to.starts_with('+') && to[1..].bytes().all(|b| b.is_ascii_digit());
    if !e164 {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if get("From").is_none() && get("MessagingServiceSid").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message".into(),
        );
    }
    let Some(text) = get("Body").filter(|b| !b.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            21602,
            "Message body is required.".into(),
        );
    };
    if take_transient(&s) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "code": 20503, "message": "Service unavailable (the fake)", "status": 503 })),
        )
            .into_response();
    }
    if let Some(code) = s.inner.lock().expect("lock").fail_next.take() {
        let code: u32 = code.parse().unwrap_or(21610);
        return error(StatusCode::BAD_REQUEST, code, "refused by the fake".into());
    }
    // The code is the body's first run of 6 digits.
    let digits: Vec<char> = text.chars().collect();
    let code = digits
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect::<String>())
        .unwrap_or_default();
    s.inner.lock().expect("lock").sent.push(SentSms {
        phone: to.clone(),
        code,
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "sid": "SM00000000000000000000000000000000",
            "account_sid": s.account,
            "to": to,
            "from": get("From"),
            "messaging_service_sid": get("MessagingServiceSid"),
            "body": text,
            "status": "queued",
            "num_segments": "1",
            "api_version": "2010-04-01",
        })),
    )
        .into_response()
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
