//! Twilio Programmable Messaging (REST API 2010-04-01, "Create a Message resource"):
//!
//! ```text
//! POST {endpoint}/2010-04-01/Accounts/{AccountSid}/Messages.json
//! Authorization: Basic base64(AccountSid:AuthToken)      (or ApiKeySid:ApiKeySecret)
//! Content-Type: application/x-www-form-urlencoded
//! To=+8613800138000&From=+15005550006&Body=...           (or MessagingServiceSid=MG...)
//! ```
//! Twilio answers 201 with the message resource; errors carry Twilio's JSON
//! `{"code","message","more_info","status"}` with the HTTP status. Twilio has no templates,
//! so the text is written here, in the person's language.

use async_trait::async_trait;
use serde::Deserialize;
use skein_core::i18n::Lang;

use super::{Phone, SmsError, SmsProvider, TwilioSmsConfig};

/// Twilio.
pub struct TwilioSms {
    config: TwilioSmsConfig,
    url: reqwest::Url,
    http: reqwest::Client,
}

/// Twilio's error body.
#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioSms {
    /// The provider over `config` (checked by [`super::SmsConfig::validate`]).
    pub fn new(config: TwilioSmsConfig, http: reqwest::Client) -> Result<Self, String> {
        let base = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| format!("sms.twilio.endpoint: {e}"))?;
        if !valid_sid(&config.account_sid, "AC") {
            return Err("sms.twilio.account_sid must be an Account SID (AC and 32 hex)".into());
        }
        let url = base
            .join(&format!(
                "/2010-04-01/Accounts/{}/Messages.json",
                config.account_sid
            ))
            .map_err(|e| format!("sms.twilio.endpoint: {e}"))?;
        Ok(TwilioSms { config, url, http })
    }

    /// The form fields of a message of `code` to `phone`: `To`, the sender (`From` or
    /// `MessagingServiceSid`) and `Body`.
    pub fn form(&self, phone: &Phone, code: &str, lang: Lang) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", phone.e164().to_string())];
        match (&self.config.messaging_service_sid, &self.config.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service.clone())),
            (None, Some(from)) => form.push(("From", from.clone())),
            // `validate` requires one of them.
            (None, None) => {}
        }
        form.push(("Body", message(&self.config.brand, code, lang)));
        form
    }

    /// The Basic credentials: an API key's SID and secret when set, else the Account SID and
    /// Auth Token (Twilio accepts either).
    fn user(&self) -> &str {
        self.config
            .api_key_sid
            .as_deref()
            .unwrap_or(&self.config.account_sid)
    }
}

/// The text of a code message.
pub fn message(brand: &str, code: &str, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("【{brand}】您的登录验证码是 {code}，请勿告诉他人。"),
        _ => format!("{brand}: your sign-in code is {code}. Do not share it with anyone."),
    }
}

/// `AC` or `SK` or `MG` followed by 32 hex digits.
pub(crate) fn valid_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34 && sid.starts_with(prefix) && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[async_trait]
impl SmsProvider for TwilioSms {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send_code(&self, phone: &Phone, code: &str, lang: Lang) -> Result<(), SmsError> {
        let res = self
            .http
            .post(self.url.clone())
            .basic_auth(self.user(), Some(self.config.auth_token.expose()))
            .form(&self.form(phone, code, lang))
            .send()
            .await
            .map_err(|e| SmsError::Transport(e.without_url().to_string()))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let error: Option<TwilioError> = res.json().await.ok();
        let text = match error {
            Some(TwilioError { code, message }) => format!(
                "HTTP {}: {}: {}",
                status.as_u16(),
                code.map_or_else(|| "?".into(), |c| c.to_string()),
                message.unwrap_or_default()
            ),
            None => format!("HTTP {}", status.as_u16()),
        };
        // 429 (Twilio's 20429) and 5xx pass; anything else is about this message or account.
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(SmsError::Unavailable(text))
        } else {
            Err(SmsError::Refused(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_core::secret::Secret;

    fn config() -> TwilioSmsConfig {
        TwilioSmsConfig {
            account_sid: format!("AC{}", "a".repeat(32)),
            api_key_sid: None,
            auth_token: Secret::new("token"),
            from: Some("+15005550006".into()),
            messaging_service_sid: None,
            brand: "Skein".into(),
            endpoint: "https://api.twilio.com".into(),
        }
    }

    #[test]
    fn posts_the_documented_form_to_the_accounts_messages() {
        let sms = TwilioSms::new(config(), reqwest::Client::new()).unwrap();
        assert_eq!(
            sms.url.as_str(),
            format!(
                "https://api.twilio.com/2010-04-01/Accounts/AC{}/Messages.json",
                "a".repeat(32)
            )
        );
        let phone = Phone::parse("+447700900123", "phone").unwrap();
        let form = sms.form(&phone, "123456", Lang::En);
        assert_eq!(form[0], ("To", "+447700900123".into()));
        assert_eq!(form[1], ("From", "+15005550006".into()));
        assert!(form[2].1.contains("123456"));
        assert!(
            sms.form(&phone, "123456", Lang::Zh)[2]
                .1
                .contains("验证码是 123456")
        );
        let mut c = config();
        c.messaging_service_sid = Some(format!("MG{}", "b".repeat(32)));
        let sms = TwilioSms::new(c, reqwest::Client::new()).unwrap();
        assert_eq!(sms.form(&phone, "1", Lang::En)[1].0, "MessagingServiceSid");
        let mut c = config();
        c.account_sid = "AC123".into();
        assert!(TwilioSms::new(c, reqwest::Client::new()).is_err());
    }
}
