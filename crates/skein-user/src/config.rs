//! The `[registration]` section of the configuration (the User service's own; it also reads
//! the shared `[auth]` and `[limits]`).

use serde::{Deserialize, Serialize};

/// Who may register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether anyone may register (the first account always may).
    pub enabled: bool,
    /// Whether registration needs an invite code.
    pub invite_required: bool,
    /// How many invite codes a user may create.
    pub user_invite_code_limit: u32,
    /// Uses of each code a user creates (0 = unlimited).
    pub user_invite_code_max_uses: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: true,
            invite_required: false,
            user_invite_code_limit: 5,
            user_invite_code_max_uses: 1,
        }
    }
}

impl RegistrationConfig {
    /// Checks values that parse but cannot work. Every value of this section can work today
    /// (0 uses means unlimited); the method is here so the binary treats every section alike.
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// How the SMTP conversation is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on loopback or a private network.
    Plain,
}

/// The `[mail]` section: the SMTP server mail goes out through, and the queue's pace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server; unset means no mail is sent.
    pub smtp_host: Option<String>,
    /// Its port.
    pub smtp_port: u16,
    /// STARTTLS, implicit TLS or plain.
    pub security: SmtpSecurity,
    /// SMTP user name, when the server wants one.
    pub smtp_username: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<skein_core::secret::Secret>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Where people open Skein; links in mail start with it.
    pub public_url: String,
    /// Seconds one SMTP conversation may take.
    pub timeout_secs: u64,
    /// How often the queue is looked at, ms.
    pub poll_interval_ms: u64,
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// The wait after the first failed attempt, ms; each further one doubles it (at most 1 h).
    pub first_retry_ms: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_host: None,
            smtp_port: 587,
            security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            from: "Skein <no-reply@localhost>".into(),
            public_url: "http://localhost:3000".into(),
            timeout_secs: 20,
            poll_interval_ms: 1000,
            max_attempts: 8,
            first_retry_ms: 10_000,
        }
    }
}

impl MailConfig {
    /// Whether mail can be sent at all.
    pub fn enabled(&self) -> bool {
        self.smtp_host.as_deref().is_some_and(|h| !h.is_empty())
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(
                "mail.from must be an address such as \"Skein <no-reply@example.com>\"".into(),
            );
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err("mail.public_url must start with http:// or https://".into());
        }
        if self.max_attempts == 0
            || self.timeout_secs == 0
            || self.poll_interval_ms == 0
            || self.first_retry_ms == 0
        {
            return Err("mail.max_attempts, timeout_secs, poll_interval_ms and first_retry_ms must be at least 1".into());
        }
        Ok(())
    }
}
