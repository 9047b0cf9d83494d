//! The development provider: writes each code to the log instead of sending it. Never for a
//! real deployment (anyone who reads the log signs in as anyone), which start-up says loudly.

use async_trait::async_trait;
use skein_core::i18n::Lang;

use super::{Phone, SmsError, SmsProvider};

/// Logs codes (at `warn`, so they show under the default filter).
pub struct LogSms;

#[async_trait]
impl SmsProvider for LogSms {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send_code(&self, phone: &Phone, code: &str, _lang: Lang) -> Result<(), SmsError> {
        tracing::warn!(
            phone = phone.e164(),
            code,
            "sms.provider = \"log\": the code is written here instead of sent (development only)"
        );
        Ok(())
    }
}
