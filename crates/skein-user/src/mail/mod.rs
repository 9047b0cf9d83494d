//! Outgoing mail: messages are queued in `mail_outbox` inside the request's own transaction
//! and sent by a background task, so a slow or unreachable SMTP server never slows a request
//! and a message is not lost when the server is down (it is retried with backoff).

pub mod templates;

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use skein_core::ids::{new_id, now_ms};
use skein_db::sqlx::{self, Any};
use skein_db::{Db, DbResult};

use crate::config::{MailConfig, SmtpSecurity};
use crate::store::accounts::{self as store, MailRow, NewMail};
pub use templates::{Lang, Template};

/// Messages one tick looks at.
const BATCH: i64 = 20;
/// Retries are never further apart than this.
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// The SMTP side: a transport built once from `[mail]`.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_attempts: u32,
    first_retry_ms: i64,
    timeout: Duration,
}

impl Mailer {
    /// A sender for `config`, or `None` when no SMTP server is configured.
    pub fn from_config(config: &MailConfig) -> Result<Option<Mailer>, String> {
        let Some(host) = config.smtp_host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("mail.from is not an address: {e}"))?;
        let builder = match config.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("mail.smtp_host: {e}"))?,
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("mail.smtp_host: {e}"))?,
            SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let timeout = Duration::from_secs(config.timeout_secs);
        let mut builder = builder.port(config.smtp_port).timeout(Some(timeout));
        if let Some(user) = config.smtp_username.as_deref().filter(|u| !u.is_empty()) {
            let password = config
                .smtp_password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.to_string(), password));
        }
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            max_attempts: config.max_attempts,
            first_retry_ms: i64::try_from(config.first_retry_ms).unwrap_or(i64::MAX),
            timeout,
        }))
    }

    /// Sends one queued message now.
    async fn send(&self, row: &MailRow) -> Result<(), String> {
        let to: Mailbox = row
            .to_address
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                row.text_body.clone(),
                row.html_body.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        // lettre's own timeout covers each read and write; this bounds the whole conversation.
        match tokio::time::timeout(self.timeout * 2, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the SMTP conversation timed out".into()),
        }
    }

    /// Sends what is due: each message is claimed first (so two instances never send one
    /// twice in the same lease), then marked sent or rescheduled with backoff.
    pub async fn tick(&self, db: &Db) -> DbResult<usize> {
        let now = now_ms();
        let due = store::due_mail(db.pool(), now, BATCH).await?;
        let mut sent = 0;
        for row in due {
            // The lease outlives one conversation; a crash mid-send retries after it.
            let lease = now + (self.timeout.as_millis() as i64) * 3;
            if !store::claim_mail(db.pool(), &row.id, row.next_attempt_at, lease).await? {
                continue;
            }
            match self.send(&row).await {
                Ok(()) => {
                    store::mail_sent(db.pool(), &row.id, now_ms()).await?;
                    tracing::info!(mail_id = %row.id, kind = %row.kind, attempts = row.attempts + 1, "mail sent");
                    sent += 1;
                }
                Err(error) => {
                    let attempts = row.attempts + 1;
                    let give_up = attempts >= i64::from(self.max_attempts);
                    let next = now_ms() + backoff_ms(self.first_retry_ms, attempts);
                    let error: String = error.chars().take(500).collect();
                    store::mail_failed(db.pool(), &row.id, give_up, next, &error).await?;
                    if give_up {
                        tracing::error!(mail_id = %row.id, kind = %row.kind, attempts, %error, "mail given up");
                    } else {
                        tracing::warn!(mail_id = %row.id, kind = %row.kind, attempts, %error, retry_in_ms = next - now_ms(), "mail not sent; will retry");
                    }
                }
            }
        }
        Ok(sent)
    }
}

/// How long to wait after the `attempts`-th failure: `first`, twice that, four times, ... at
/// most an hour.
pub fn backoff_ms(first: i64, attempts: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 20) as u32;
    first.saturating_mul(1i64 << doublings).min(MAX_BACKOFF_MS)
}

/// Queues `template` for `to` inside the caller's transaction: the mail goes out only if the
/// change that asked for it commits.
pub async fn enqueue(
    tx: &mut sqlx::Transaction<'_, Any>,
    to: &str,
    template: &Template,
    lang: Lang,
) -> DbResult<()> {
    let rendered = template.render(lang);
    let id = new_id();
    store::insert_mail(
        &mut **tx,
        &NewMail {
            id: &id,
            to,
            subject: &rendered.subject,
            text: &rendered.text,
            html: &rendered.html,
            kind: template.kind(),
            now: now_ms(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_an_hour() {
        assert_eq!(backoff_ms(10_000, 1), 10_000);
        assert_eq!(backoff_ms(10_000, 2), 20_000);
        assert_eq!(backoff_ms(10_000, 3), 40_000);
        assert_eq!(backoff_ms(10_000, 30), MAX_BACKOFF_MS);
    }

    #[test]
    fn no_smtp_host_means_no_mailer() {
        assert!(matches!(
            Mailer::from_config(&MailConfig::default()),
            Ok(None)
        ));
    }
}
