//! Tencent Cloud SMS (version 2021-01-11, action `SendSms`), signed with TC3-HMAC-SHA256 as
//! Tencent Cloud's "Signature v3" documents it:
//!
//! ```text
//! CanonicalRequest = POST \n / \n (empty query) \n CanonicalHeaders \n SignedHeaders \n
//!                    HexEncode(SHA256(body))
//! StringToSign     = "TC3-HMAC-SHA256" \n Timestamp \n Date/sms/tc3_request \n
//!                    HexEncode(SHA256(CanonicalRequest))
//! SecretSigning    = HMAC(HMAC(HMAC("TC3" + SecretKey, Date), "sms"), "tc3_request")
//! Signature        = HexEncode(HMAC(SecretSigning, StringToSign))
//! ```
//! The signed headers are `content-type`, `host` and `x-tc-action` (its value in lower case,
//! as the documentation's example does); Date is the UTC day of Timestamp.

use async_trait::async_trait;
use serde::Deserialize;
use skein_core::i18n::Lang;
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Phone, SmsError, SmsProvider, TencentSmsConfig, hmac_sha256, host_header, sha256_hex};

const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const ALGORITHM: &str = "TC3-HMAC-SHA256";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Tencent Cloud SMS.
pub struct TencentSms {
    config: TencentSmsConfig,
    url: reqwest::Url,
    host: String,
    http: reqwest::Client,
}

/// A request ready to send.
#[derive(Debug)]
pub struct TencentSigned {
    /// The JSON body (signed as these exact bytes).
    pub body: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentEnvelope {
    response: TencentAnswer,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentAnswer {
    error: Option<TencentError>,
    #[serde(default)]
    send_status_set: Vec<TencentStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentError {
    code: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TencentStatus {
    code: String,
    message: String,
}

impl TencentSms {
    /// The provider over `config`.
    pub fn new(config: TencentSmsConfig, http: reqwest::Client) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| format!("sms.tencent.endpoint: {e}"))?;
        let host = host_header(&url)?;
        Ok(TencentSms {
            config,
            url,
            host,
            http,
        })
    }

    /// Signs a `SendSms` of `code` to `phone` at `now`.
    pub fn sign(&self, phone: &Phone, code: &str, now: OffsetDateTime) -> TencentSigned {
        let body = serde_json::json!({
            "PhoneNumberSet": [phone.e164()],
            "SmsSdkAppId": self.config.sdk_app_id,
            "SignName": self.config.sign_name,
            "TemplateId": self.config.template_id,
            "TemplateParamSet": [code],
        })
        .to_string();
        let timestamp = now.unix_timestamp();
        let date = now
            .format(format_description!("[year]-[month]-[day]"))
            .unwrap_or_default();
        let canonical_headers = format!(
            "content-type:{CONTENT_TYPE}\nhost:{}\nx-tc-action:{}\n",
            self.host,
            ACTION.to_lowercase()
        );
        let signed_headers = "content-type;host;x-tc-action";
        let canonical_request = format!(
            "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
            sha256_hex(body.as_bytes())
        );
        let scope = format!("{date}/{SERVICE}/tc3_request");
        let string_to_sign = format!(
            "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
            sha256_hex(canonical_request.as_bytes())
        );
        let secret_date = hmac_sha256(
            format!("TC3{}", self.config.secret_key.expose()).as_bytes(),
            date.as_bytes(),
        );
        let secret_service = hmac_sha256(&secret_date, SERVICE.as_bytes());
        let secret_signing = hmac_sha256(&secret_service, b"tc3_request");
        let signature = hex::encode(hmac_sha256(&secret_signing, string_to_sign.as_bytes()));
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.config.secret_id
        );
        TencentSigned {
            body,
            headers: vec![
                ("authorization".into(), authorization),
                ("content-type".into(), CONTENT_TYPE.into()),
                ("x-tc-action".into(), ACTION.into()),
                ("x-tc-timestamp".into(), timestamp.to_string()),
                ("x-tc-version".into(), VERSION.into()),
                ("x-tc-region".into(), self.config.region.clone()),
            ],
        }
    }
}

#[async_trait]
impl SmsProvider for TencentSms {
    fn name(&self) -> &'static str {
        "tencent"
    }

    async fn send_code(&self, phone: &Phone, code: &str, _lang: Lang) -> Result<(), SmsError> {
        let signed = self.sign(phone, code, OffsetDateTime::now_utc());
        let mut req = self.http.post(self.url.clone()).body(signed.body);
        for (name, value) in &signed.headers {
            req = req.header(name, value);
        }
        let res = req
            .send()
            .await
            .map_err(|e| SmsError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let envelope: TencentEnvelope = res
            .json()
            .await
            .map_err(|e| SmsError::Transport(format!("HTTP {status}: {e}")))?;
        let answer = envelope.response;
        if let Some(error) = answer.error {
            let text = format!("{}: {}", error.code, error.message);
            // Tencent's "try later" answers: its own failures and API throttling.
            return Err(
                if error.code.starts_with("InternalError")
                    || error.code.starts_with("RequestLimitExceeded")
                {
                    SmsError::Unavailable(text)
                } else {
                    SmsError::Refused(text)
                },
            );
        }
        // One number per request, so one status: "Ok" means accepted.
        match answer.send_status_set.first() {
            Some(s) if s.code == "Ok" => Ok(()),
            Some(s) => Err(SmsError::Refused(format!("{}: {}", s.code, s.message))),
            None => Err(SmsError::Transport("no SendStatusSet in the answer".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_core::secret::Secret;

    #[test]
    fn signs_the_documented_shape() {
        let sms = TencentSms::new(
            TencentSmsConfig {
                secret_id: "AKID-test".into(),
                secret_key: Secret::new("key"),
                sdk_app_id: "1400000000".into(),
                sign_name: "Skein".into(),
                template_id: "100".into(),
                region: "ap-guangzhou".into(),
                endpoint: "https://sms.tencentcloudapi.com".into(),
            },
            reqwest::Client::new(),
        )
        .unwrap();
        let phone = Phone::parse("+8613800138000", "phone").unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let signed = sms.sign(&phone, "123456", at);
        assert!(
            signed
                .body
                .contains("\"PhoneNumberSet\":[\"+8613800138000\"]")
        );
        let auth = &signed.headers[0].1;
        assert!(auth.starts_with("TC3-HMAC-SHA256 Credential=AKID-test/2023-11-14/sms/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature="), "{auth}");
    }
}
