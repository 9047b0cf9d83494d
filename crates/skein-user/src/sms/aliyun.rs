//! Aliyun SMS (Dysmsapi, version 2017-05-25, action `SendSms`), signed with Aliyun's V3
//! signature, ACS3-HMAC-SHA256, as "V3 request structure and signature" documents it:
//!
//! ```text
//! CanonicalRequest = Method \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders \n
//!                    SignedHeaders \n HexEncode(SHA256(body))
//! StringToSign     = "ACS3-HMAC-SHA256" \n HexEncode(SHA256(CanonicalRequest))
//! Signature        = HexEncode(HMAC-SHA256(AccessKeySecret, StringToSign))
//! Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<...>,Signature=<...>
//! ```
//! The RPC-style parameters go in the query string (sorted, RFC 3986-encoded), the body is
//! empty, and the signed headers are `host` and every `x-acs-*` header.

use async_trait::async_trait;
use serde::Deserialize;
use skein_core::i18n::Lang;
use time::OffsetDateTime;
use time::macros::format_description;

use super::{
    AliyunSmsConfig, Phone, SmsError, SmsProvider, hmac_sha256, host_header, nonce, percent_encode,
    sha256_hex,
};

const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Aliyun SMS.
pub struct AliyunSms {
    config: AliyunSmsConfig,
    url: reqwest::Url,
    host: String,
    http: reqwest::Client,
}

/// A request ready to send: its query string and headers (Authorization included).
#[derive(Debug)]
pub struct AliyunSigned {
    /// The canonical query string, also the one sent.
    pub query: String,
    /// Headers to send, names in lower case.
    pub headers: Vec<(String, String)>,
}

/// What Aliyun answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliyunAnswer {
    code: Option<String>,
    message: Option<String>,
}

impl AliyunSms {
    /// The provider over `config`.
    pub fn new(config: AliyunSmsConfig, http: reqwest::Client) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| format!("sms.aliyun.endpoint: {e}"))?;
        let host = host_header(&url)?;
        Ok(AliyunSms {
            config,
            url,
            host,
            http,
        })
    }

    /// The number as Aliyun wants it: the national number for mainland China, else the
    /// country code and number without `+`.
    fn number(phone: &Phone) -> String {
        match phone.digits().strip_prefix("86") {
            Some(national) => national.to_string(),
            None => phone.digits().to_string(),
        }
    }

    /// Signs a `SendSms` of `code` to `phone` at `now` with `nonce`.
    pub fn sign(
        &self,
        phone: &Phone,
        code: &str,
        now: OffsetDateTime,
        nonce: &str,
    ) -> AliyunSigned {
        let template_param = serde_json::json!({ "code": code }).to_string();
        let mut params = [
            ("PhoneNumbers", Self::number(phone)),
            ("SignName", self.config.sign_name.clone()),
            ("TemplateCode", self.config.template_code.clone()),
            ("TemplateParam", template_param),
        ];
        params.sort_by(|a, b| a.0.cmp(b.0));
        let query = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let date = now
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .unwrap_or_default();
        let body_hash = sha256_hex(b"");
        // Sorted by name; all are signed.
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-acs-action".into(), ACTION.into()),
            ("x-acs-content-sha256".into(), body_hash.clone()),
            ("x-acs-date".into(), date),
            ("x-acs-signature-nonce".into(), nonce.to_string()),
            ("x-acs-version".into(), VERSION.into()),
        ];
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed_headers = headers
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical_request =
            format!("POST\n/\n{query}\n{canonical_headers}\n{signed_headers}\n{body_hash}");
        let string_to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
        let signature = hex::encode(hmac_sha256(
            self.config.access_key_secret.expose().as_bytes(),
            string_to_sign.as_bytes(),
        ));
        headers.push((
            "authorization".into(),
            format!(
                "{ALGORITHM} Credential={},SignedHeaders={signed_headers},Signature={signature}",
                self.config.access_key_id
            ),
        ));
        AliyunSigned { query, headers }
    }
}

#[async_trait]
impl SmsProvider for AliyunSms {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    async fn send_code(&self, phone: &Phone, code: &str, _lang: Lang) -> Result<(), SmsError> {
        let signed = self.sign(phone, code, OffsetDateTime::now_utc(), &nonce());
        let mut url = self.url.clone();
        url.set_path("/");
        url.set_query(Some(&signed.query));
        let mut req = self.http.post(url);
        for (name, value) in &signed.headers {
            // reqwest sets Host itself, from the same URL.
            if name != "host" {
                req = req.header(name, value);
            }
        }
        let res = req
            .send()
            .await
            .map_err(|e| SmsError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        let answer: AliyunAnswer = res
            .json()
            .await
            .map_err(|e| SmsError::Transport(format!("HTTP {status}: {e}")))?;
        let text = |code: Option<&str>| {
            format!(
                "HTTP {}: {}: {}",
                status.as_u16(),
                code.unwrap_or("?"),
                answer.message.as_deref().unwrap_or_default()
            )
        };
        match answer.code.as_deref() {
            Some("OK") => Ok(()),
            // Aliyun's "try later" answers: throttling, its own outages.
            code if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || code.is_some_and(|c| {
                    c.starts_with("Throttling")
                        || c == "ServiceUnavailable"
                        || c.starts_with("InternalError")
                }) =>
            {
                Err(SmsError::Unavailable(text(code)))
            }
            code => Err(SmsError::Refused(text(code))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_core::secret::Secret;

    #[test]
    fn signs_the_documented_shape() {
        let sms = AliyunSms::new(
            AliyunSmsConfig {
                access_key_id: "LTAI-test".into(),
                access_key_secret: Secret::new("secret"),
                sign_name: "Skein".into(),
                template_code: "SMS_1".into(),
                endpoint: "https://dysmsapi.aliyuncs.com".into(),
            },
            reqwest::Client::new(),
        )
        .unwrap();
        let phone = Phone::parse("+8613800138000", "phone").unwrap();
        let signed = sms.sign(&phone, "123456", OffsetDateTime::UNIX_EPOCH, "n1");
        assert_eq!(
            signed.query,
            "PhoneNumbers=13800138000&SignName=Skein&TemplateCode=SMS_1&TemplateParam=%7B%22code%22%3A%22123456%22%7D"
        );
        let auth = &signed.headers.last().unwrap().1;
        assert!(auth.starts_with("ACS3-HMAC-SHA256 Credential=LTAI-test,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="), "{auth}");
        assert!(
            signed
                .headers
                .contains(&("x-acs-date".into(), "1970-01-01T00:00:00Z".into()))
        );
    }
}
