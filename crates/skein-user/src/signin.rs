//! Sign-in methods an administrator turns on and off at run time (Admin → Sign-in): password
//! sign-in, whether a verified address is required, passkeys, which SMS vendor sends codes
//! with which credentials, and the company directory (LDAP). Sign-in providers (OAuth/OIDC)
//! have their own table and API.
//!
//! Like the system settings, each value is the configuration file's until an admin stores one
//! (a `sign_in.*` row of `system_settings`, JSON); a change is applied on this instance at once
//! and told to the others on the bus, which read the table again. The SMS vendor's secret is
//! sealed inside its row ([`skein_core::seal::Sealer`], bound to the row's name and vendor), so
//! a copy of the database alone sends no message, and no answer ever carries it; the LDAP
//! service account's password likewise.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::sms::{
    AliyunSmsConfig, SmsConfig, SmsProvider, SmsProviderKind, TencentSmsConfig, TwilioSmsConfig,
};

/// Password sign-in (and registration) for plain users.
pub const PASSWORD: &str = "sign_in.password";
/// A verified address before signing in.
pub const VERIFIED_EMAIL_FOR_LOGIN: &str = "sign_in.verified_email_for_login";
/// A verified address before API keys work.
pub const VERIFIED_EMAIL_FOR_RELAY: &str = "sign_in.verified_email_for_relay";
/// Passkey sign-in and registration.
pub const PASSKEYS: &str = "sign_in.passkeys";
/// The SMS vendor and its credentials.
pub const SMS: &str = "sign_in.sms";
/// The company directory (`[ldap]` as an admin stored it).
pub const LDAP: &str = "sign_in.ldap";
/// The owner the LDAP service account's password is sealed for.
pub const LDAP_SECRET_OWNER: &str = "sign_in.ldap:bind_password";

/// The names of the sign-in settings, as stored and as `reset` takes them.
pub const NAMES: [&str; 6] = [
    PASSWORD,
    VERIFIED_EMAIL_FOR_LOGIN,
    VERIFIED_EMAIL_FOR_RELAY,
    PASSKEYS,
    SMS,
    LDAP,
];

/// Which sign-in methods are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignInMethods {
    /// Plain users sign in and register with a password. Off, only admins and root still
    /// may (so nobody locks the server), everyone else uses a code, a provider or a passkey.
    pub password: bool,
    /// Plain users sign in only once their address is verified (needs mail).
    pub verified_email_for_login: bool,
    /// Plain users' API keys work only once their address is verified (needs mail). The
    /// relay may keep a key's previous answer for its cache's lifetime (seconds).
    pub verified_email_for_relay: bool,
    /// People sign in with passkeys (WebAuthn) and add them in the personal centre. Off: no
    /// passwordless sign-in and no new passkeys; those already added still answer the second
    /// sign-in step (so turning this off never makes a password alone enough).
    pub passkeys: bool,
}

/// Where the SMS or LDAP settings in effect come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmsSource {
    /// The `[sms]` section of the configuration file.
    Config,
    /// Stored by an administrator.
    Admin,
}

/// The sign-in settings in effect on this instance.
#[derive(Clone)]
pub struct SignInEffective {
    /// The methods.
    pub methods: SignInMethods,
    /// The names of the settings an admin stored.
    pub overridden: Vec<String>,
    /// The `[sms]` settings in effect: the file's timings and limits with the vendor an admin
    /// chose, if any (secrets opened, in memory only).
    pub sms: SmsConfig,
    /// Where the vendor comes from.
    pub sms_source: SmsSource,
    /// The vendor built from `sms`.
    pub sms_provider: Option<Arc<dyn SmsProvider>>,
    /// The company directory in effect (the service account's password opened, in memory
    /// only).
    pub ldap: Arc<crate::ldap::LdapConfig>,
    /// Where the directory settings come from.
    pub ldap_source: SmsSource,
}

/// The `sign_in.ldap` row for `config`: its JSON with the service account's password sealed
/// by `seal` (`Secret` alone serializes as a mask).
pub fn ldap_row(
    config: &crate::ldap::LdapConfig,
    seal: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut value = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let sealed = match &config.bind_password {
        Some(password) => Value::String(seal(password.expose())?),
        None => Value::Null,
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("bind_password".into(), sealed);
    }
    Ok(value.to_string())
}

/// The directory settings of a `sign_in.ldap` row, the password opened by `open`, checked.
pub fn ldap_from_row(
    value: Value,
    open: impl Fn(&str) -> Result<String, String>,
) -> Result<crate::ldap::LdapConfig, String> {
    let mut value = value;
    if let Some(map) = value.as_object_mut()
        && let Some(Value::String(sealed)) = map.get("bind_password")
    {
        let plain = open(sealed)?;
        map.insert("bind_password".into(), Value::String(plain));
    }
    let config: crate::ldap::LdapConfig =
        serde_json::from_value(value).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

/// An SMS vendor's settings as an admin stores them: which vendor (none: phone sign-in off)
/// and its settings, as the `[sms.<vendor>]` section spells them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSms {
    /// The vendor; `null` turns phone sign-in off.
    pub provider: Option<SmsProviderKind>,
    /// The vendor's section, its secret sealed (in storage) or plain (in memory).
    #[serde(default)]
    pub settings: Value,
}

/// The field of each vendor's section that holds its secret.
pub fn secret_field(kind: SmsProviderKind) -> Option<&'static str> {
    match kind {
        SmsProviderKind::Log => None,
        SmsProviderKind::Aliyun => Some("access_key_secret"),
        SmsProviderKind::Tencent => Some("secret_key"),
        SmsProviderKind::Twilio => Some("auth_token"),
    }
}

/// The owner an SMS vendor's secret is sealed for.
pub fn sms_owner(kind: SmsProviderKind) -> String {
    format!("{SMS}:{}", kind.as_str())
}

/// `[sms]` with `stored`'s vendor in place of the file's (the secret already opened).
pub fn overlay_sms(file: &SmsConfig, stored: &StoredSms) -> Result<SmsConfig, String> {
    fn de<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<Option<T>, String> {
        serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| e.to_string())
    }
    let mut config = file.clone();
    config.provider = stored.provider;
    match stored.provider {
        None | Some(SmsProviderKind::Log) => {}
        Some(SmsProviderKind::Aliyun) => {
            config.aliyun = de::<AliyunSmsConfig>(&stored.settings)?;
        }
        Some(SmsProviderKind::Tencent) => {
            config.tencent = de::<TencentSmsConfig>(&stored.settings)?;
        }
        Some(SmsProviderKind::Twilio) => {
            config.twilio = de::<TwilioSmsConfig>(&stored.settings)?;
        }
    }
    config.validate()?;
    Ok(config)
}

/// The vendor section of `config` for `kind`, as JSON with its secret in plain text (to seal
/// and store), or `None` when that section is missing.
pub fn vendor_section(config: &SmsConfig, kind: SmsProviderKind) -> Option<Value> {
    let (mut value, secret) = match kind {
        SmsProviderKind::Log => return Some(Value::Object(Default::default())),
        SmsProviderKind::Aliyun => {
            let c = config.aliyun.as_ref()?;
            (
                serde_json::to_value(c).ok()?,
                c.access_key_secret.expose().to_string(),
            )
        }
        SmsProviderKind::Tencent => {
            let c = config.tencent.as_ref()?;
            (
                serde_json::to_value(c).ok()?,
                c.secret_key.expose().to_string(),
            )
        }
        SmsProviderKind::Twilio => {
            let c = config.twilio.as_ref()?;
            (
                serde_json::to_value(c).ok()?,
                c.auth_token.expose().to_string(),
            )
        }
    };
    // `Secret` serializes as a mask; put the real value back for sealing.
    if let (Some(field), Some(map)) = (secret_field(kind), value.as_object_mut()) {
        map.insert(field.into(), Value::String(secret));
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_core::secret::Secret;

    #[test]
    fn an_ldap_row_keeps_its_password_only_sealed() {
        let config = crate::ldap::LdapConfig {
            url: Some("ldaps://dir.example.com".into()),
            base_dn: "dc=example,dc=com".into(),
            bind_dn: Some("cn=svc".into()),
            bind_password: Some(Secret::new("hunter2")),
            ..Default::default()
        };
        let row = ldap_row(&config, |p| Ok(format!("sealed[{}]", p.len()))).unwrap();
        assert!(!row.contains("hunter2"), "{row}");
        assert!(row.contains("sealed[7]"), "{row}");
        let back = ldap_from_row(serde_json::from_str(&row).unwrap(), |s| {
            assert_eq!(s, "sealed[7]");
            Ok("hunter2".into())
        })
        .unwrap();
        assert_eq!(back.bind_password, Some(Secret::new("hunter2")));
        assert_eq!(back.url, config.url);
        // A row that opens but cannot work is refused.
        let broken = serde_json::json!({ "url": "http://x", "base_dn": "dc=x" });
        assert!(ldap_from_row(broken, |s| Ok(s.into())).is_err());
    }

    #[test]
    fn a_stored_vendor_overlays_the_file_and_keeps_its_timings() {
        let mut file = SmsConfig {
            code_ttl_secs: 120,
            ..SmsConfig::default()
        };
        file.provider = Some(SmsProviderKind::Log);
        let stored = StoredSms {
            provider: Some(SmsProviderKind::Twilio),
            settings: serde_json::json!({
                "account_sid": format!("AC{}", "1".repeat(32)),
                "auth_token": "t0k",
                "from": "+15005550006",
            }),
        };
        let config = overlay_sms(&file, &stored).unwrap();
        assert_eq!(config.provider, Some(SmsProviderKind::Twilio));
        assert_eq!(config.code_ttl_secs, 120);
        let twilio = config.twilio.as_ref().unwrap();
        assert_eq!(twilio.auth_token, Secret::new("t0k"));
        assert_eq!(twilio.endpoint, "https://api.twilio.com");
        // The section comes back with its secret, ready to seal.
        let section = vendor_section(&config, SmsProviderKind::Twilio).unwrap();
        assert_eq!(section["auth_token"], "t0k");
        // A section that cannot work is refused, naming what is missing.
        let bad = StoredSms {
            provider: Some(SmsProviderKind::Twilio),
            settings: serde_json::json!({ "account_sid": "AC1", "auth_token": "x", "from": "+1" }),
        };
        assert!(
            overlay_sms(&file, &bad)
                .unwrap_err()
                .contains("account_sid")
        );
        let off = StoredSms {
            provider: None,
            settings: Value::Null,
        };
        assert_eq!(overlay_sms(&file, &off).unwrap().provider, None);
    }
}
