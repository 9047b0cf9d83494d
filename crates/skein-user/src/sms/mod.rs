//! Sign-in by SMS code: the [`SmsProvider`] trait, one module per vendor (Aliyun SMS, Tencent
//! Cloud SMS, Twilio, and a log-only provider for development), the `[sms]` configuration, the
//! send queue, and [`Phone`], a number parsed once into E.164.
//!
//! Each vendor signs its requests exactly as its documentation says (Aliyun: ACS3-HMAC-SHA256,
//! Tencent: TC3-HMAC-SHA256, Twilio: HTTP Basic); the test kit's fakes check them
//! independently.

mod aliyun;
mod log;
pub mod queue;
mod tencent;
mod twilio;

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skein_core::i18n::Lang;
use skein_core::secret::Secret;
use skein_core::{ApiError, ApiResult};

pub use aliyun::AliyunSms;
pub use log::LogSms;
pub use queue::SmsQueue;
pub use tencent::TencentSms;
pub use twilio::TwilioSms;

/// Sends one-time codes by SMS.
#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// The vendor, for logs (`aliyun`, `tencent`, `twilio`, `log`).
    fn name(&self) -> &'static str;

    /// Sends `code` to `phone` with the configured template; `lang` picks the template where
    /// the vendor has one per language.
    async fn send_code(&self, phone: &Phone, code: &str, lang: Lang) -> Result<(), SmsError>;
}

/// Why a message was not sent. The text is the vendor's code and message (never a secret).
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The vendor could not be reached or answered something unreadable.
    #[error("SMS vendor unreachable: {0}")]
    Transport(String),
    /// The vendor is there but said "later" (HTTP 429 or 5xx, throttling, an internal error).
    #[error("SMS vendor unavailable: {0}")]
    Unavailable(String),
    /// The vendor refused the message (bad signature, template, number, quota...).
    #[error("SMS vendor refused: {0}")]
    Refused(String),
}

impl SmsError {
    /// Whether the same message may go through if sent again a little later (the queue
    /// retries these, and gives up at once on a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, SmsError::Transport(_) | SmsError::Unavailable(_))
    }
}

/// Which vendor sends codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmsProviderKind {
    /// Writes codes to the log: development only.
    Log,
    /// Aliyun SMS (Dysmsapi 2017-05-25 `SendSms`).
    Aliyun,
    /// Tencent Cloud SMS (2021-01-11 `SendSms`).
    Tencent,
    /// Twilio Programmable Messaging (2010-04-01 `Messages`).
    Twilio,
}

impl SmsProviderKind {
    /// The name in the configuration and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsProviderKind::Log => "log",
            SmsProviderKind::Aliyun => "aliyun",
            SmsProviderKind::Tencent => "tencent",
            SmsProviderKind::Twilio => "twilio",
        }
    }
}

/// `[sms.aliyun]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunSmsConfig {
    /// The RAM user's AccessKey id.
    pub access_key_id: String,
    /// Its AccessKey secret.
    pub access_key_secret: Secret,
    /// The approved signature (签名名称).
    pub sign_name: String,
    /// The approved template (`SMS_...`) with a `${code}` variable.
    pub template_code: String,
    /// The API endpoint.
    #[serde(default = "aliyun_endpoint")]
    pub endpoint: String,
}

fn aliyun_endpoint() -> String {
    "https://dysmsapi.aliyuncs.com".into()
}

/// `[sms.tencent]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentSmsConfig {
    /// The API key's SecretId.
    pub secret_id: String,
    /// Its SecretKey.
    pub secret_key: Secret,
    /// The SMS application's SdkAppId.
    pub sdk_app_id: String,
    /// The approved signature (签名内容).
    pub sign_name: String,
    /// The approved template id whose first parameter is the code.
    pub template_id: String,
    /// The region the request names.
    #[serde(default = "tencent_region")]
    pub region: String,
    /// The API endpoint.
    #[serde(default = "tencent_endpoint")]
    pub endpoint: String,
}

/// `[sms.twilio]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSmsConfig {
    /// The Account SID (`AC` and 32 hex digits), part of every URL.
    pub account_sid: String,
    /// An API key's SID (`SK...`), to authenticate with an API key instead of the Auth Token.
    #[serde(default)]
    pub api_key_sid: Option<String>,
    /// The Auth Token, or the API key's secret when `api_key_sid` is set.
    pub auth_token: Secret,
    /// The sending number (E.164) or alphanumeric sender id; or use `messaging_service_sid`.
    #[serde(default)]
    pub from: Option<String>,
    /// A Messaging Service (`MG...`) that picks the sender; wins over `from`.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The name the message starts with.
    #[serde(default = "twilio_brand")]
    pub brand: String,
    /// The API base.
    #[serde(default = "twilio_endpoint")]
    pub endpoint: String,
}

fn twilio_brand() -> String {
    "Skein".into()
}

fn twilio_endpoint() -> String {
    "https://api.twilio.com".into()
}

impl TwilioSmsConfig {
    /// Checks the SIDs and that a sender is named.
    pub fn check(&self) -> Result<(), String> {
        if !twilio::valid_sid(&self.account_sid, "AC") {
            return Err(
                "sms.twilio.account_sid must be an Account SID (AC and 32 hex digits)".into(),
            );
        }
        if let Some(key) = &self.api_key_sid
            && !twilio::valid_sid(key, "SK")
        {
            return Err(
                "sms.twilio.api_key_sid must be an API key SID (SK and 32 hex digits)".into(),
            );
        }
        if self.auth_token.expose().trim().is_empty() {
            return Err("sms.twilio.auth_token is required".into());
        }
        match (&self.messaging_service_sid, &self.from) {
            (Some(sid), _) if !twilio::valid_sid(sid, "MG") => Err(
                "sms.twilio.messaging_service_sid must be a Messaging Service SID (MG and 32 hex digits)".into(),
            ),
            (Some(_), _) => Ok(()),
            (None, Some(from)) if !from.trim().is_empty() => Ok(()),
            (None, _) => Err("sms.twilio needs `from` or `messaging_service_sid`".into()),
        }
    }
}

fn tencent_region() -> String {
    "ap-guangzhou".into()
}

fn tencent_endpoint() -> String {
    "https://sms.tencentcloudapi.com".into()
}

/// The `[sms]` section: who sends codes, and how codes live. Without `provider`, phone
/// sign-in is off (its routes answer 503). An admin may choose another provider at run time
/// (Admin → Sign-in); that choice then wins over this section's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// `log`, `aliyun`, `tencent` or `twilio`.
    pub provider: Option<SmsProviderKind>,
    /// Seconds a code works.
    pub code_ttl_secs: u64,
    /// Wrong tries before a code is void.
    pub code_attempts: u32,
    /// Seconds before another code may be sent to the same number.
    pub resend_after_secs: u64,
    /// Seconds a call to the vendor may take.
    pub timeout_secs: u64,
    /// Messages waiting for the vendor at most; past it, asking for a code answers 503 at
    /// once instead of queueing without end.
    pub queue_capacity: usize,
    /// Tries per message (the first included) when the vendor is unreachable or busy.
    pub max_attempts: u32,
    /// The wait after the first failed try, ms; each further one doubles it (never past the
    /// code's expiry: a code nobody can use any more is not sent).
    pub first_retry_ms: u64,
    /// Aliyun's settings, when `provider = "aliyun"`.
    pub aliyun: Option<AliyunSmsConfig>,
    /// Tencent's settings, when `provider = "tencent"`.
    pub tencent: Option<TencentSmsConfig>,
    /// Twilio's settings, when `provider = "twilio"`.
    pub twilio: Option<TwilioSmsConfig>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: None,
            code_ttl_secs: 300,
            code_attempts: 5,
            resend_after_secs: 60,
            timeout_secs: 10,
            queue_capacity: 1000,
            max_attempts: 5,
            first_retry_ms: 2000,
            aliyun: None,
            tencent: None,
            twilio: None,
        }
    }
}

impl SmsConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        match self.provider {
            Some(SmsProviderKind::Aliyun) if self.aliyun.is_none() => {
                return Err("sms.provider = \"aliyun\" needs an [sms.aliyun] section".into());
            }
            Some(SmsProviderKind::Tencent) if self.tencent.is_none() => {
                return Err("sms.provider = \"tencent\" needs an [sms.tencent] section".into());
            }
            Some(SmsProviderKind::Twilio) if self.twilio.is_none() => {
                return Err("sms.provider = \"twilio\" needs an [sms.twilio] section".into());
            }
            _ => {}
        }
        if let Some(twilio) = &self.twilio {
            twilio.check()?;
        }
        if self.code_ttl_secs == 0
            || self.code_attempts == 0
            || self.timeout_secs == 0
            || self.queue_capacity == 0
            || self.max_attempts == 0
            || self.first_retry_ms == 0
        {
            return Err(
                "sms.code_ttl_secs, code_attempts, timeout_secs, queue_capacity, max_attempts and first_retry_ms must be at least 1".into(),
            );
        }
        for endpoint in [
            self.aliyun.as_ref().map(|a| &a.endpoint),
            self.tencent.as_ref().map(|t| &t.endpoint),
            self.twilio.as_ref().map(|t| &t.endpoint),
        ]
        .into_iter()
        .flatten()
        {
            if !reqwest::Url::parse(endpoint).is_ok_and(|u| u.host_str().is_some()) {
                return Err(format!("sms endpoint {endpoint:?} is not an http(s) URL"));
            }
        }
        Ok(())
    }

    /// The configured provider; `None` when phone sign-in is off.
    pub fn build(&self) -> Result<Option<std::sync::Arc<dyn SmsProvider>>, String> {
        self.validate()?;
        let http = || {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(self.timeout_secs))
                .build()
                .map_err(|e| format!("cannot build the SMS HTTP client: {e}"))
        };
        let provider: std::sync::Arc<dyn SmsProvider> = match self.provider {
            None => return Ok(None),
            Some(SmsProviderKind::Log) => std::sync::Arc::new(LogSms),
            Some(SmsProviderKind::Aliyun) => match &self.aliyun {
                Some(config) => std::sync::Arc::new(AliyunSms::new(config.clone(), http()?)?),
                None => return Ok(None),
            },
            Some(SmsProviderKind::Tencent) => match &self.tencent {
                Some(config) => std::sync::Arc::new(TencentSms::new(config.clone(), http()?)?),
                None => return Ok(None),
            },
            Some(SmsProviderKind::Twilio) => match &self.twilio {
                Some(config) => std::sync::Arc::new(TwilioSms::new(config.clone(), http()?)?),
                None => return Ok(None),
            },
        };
        Ok(Some(provider))
    }
}

/// A phone number in E.164 form (`+8613800138000`): `+`, a country code, at most 15 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses what a person typed: spaces, dashes, dots and brackets are ignored, a leading
    /// `00` means `+`. Anything else that is not E.164 is refused (422, en and zh).
    pub fn parse(input: &str, field: &str) -> ApiResult<Phone> {
        let cleaned: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = cleaned
            .strip_prefix('+')
            .or_else(|| cleaned.strip_prefix("00"))
            .unwrap_or("");
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
            // Mainland China: +86 then an 11-digit mobile number starting with 1.
            && (!digits.starts_with("86") || (digits.len() == 13 && digits[2..].starts_with('1')));
        if !valid {
            return Err(ApiError::invalid_field(
                field,
                "Enter the phone number with its country code, such as +86 138 0013 8000.",
                "请输入带国家/地区区号的手机号，例如 +86 138 0013 8000。",
            ));
        }
        Ok(Phone(format!("+{digits}")))
    }

    /// `+` and the digits.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The digits without `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// For logs and lists: the country code, then only the last 4 digits.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// `+86*******8000`: enough to recognise one's own number, not to call it.
pub fn mask(e164: &str) -> String {
    let keep = e164.len().saturating_sub(4);
    let cc = e164.len().min(3);
    e164.char_indices()
        .map(|(i, c)| if i < cc || i >= keep { c } else { '*' })
        .collect()
}

/// HMAC-SHA256.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// SHA-256, hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 percent-encoding (everything but `A-Z a-z 0-9 - _ . ~`), as both vendors'
/// canonical query strings want it.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Host` header a request to `url` carries: the host, and the port when it is not the
/// scheme's default (as HTTP clients send it, so the signed value is the sent one).
pub(crate) fn host_header(url: &reqwest::Url) -> Result<String, String> {
    let host = url
        .host_str()
        .ok_or_else(|| format!("SMS endpoint {url} has no host"))?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// A random nonce, hex.
pub(crate) fn nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_e164_and_refuses_the_rest() {
        let p = Phone::parse(" +86 138-0013-8000 ", "phone").unwrap();
        assert_eq!(p.e164(), "+8613800138000");
        assert_eq!(p.digits(), "8613800138000");
        assert_eq!(p.masked(), "+86*******8000");
        assert_eq!(
            Phone::parse("0044 20 7946 0958", "phone").unwrap().e164(),
            "+442079460958"
        );
        for bad in [
            "13800138000",
            "+86 1380013800",
            "+0123456789",
            "+1 234",
            "+1234567890123456",
            "+44 20 ABC",
            "",
        ] {
            assert!(Phone::parse(bad, "phone").is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_encoding_follows_rfc_3986() {
        assert_eq!(percent_encode("a b*~/+"), "a%20b%2A~%2F%2B");
        assert_eq!(percent_encode("阿"), "%E9%98%BF");
    }
}
