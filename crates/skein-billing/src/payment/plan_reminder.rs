//! Expiry reminders: `billing.payment.plan_reminder_days` days before a subscription's paid
//! time ends its owner gets a mail ("renew to keep it"), and another once it has ended, sent
//! by the subscription tick through the User service's mail queue (their verified address,
//! their language; Billing never sees the address), as monthly statements are.
//!
//! Exactly once per subscription period: a row keyed by (subscription, paid periods, kind)
//! is inserted (`ON CONFLICT DO NOTHING`) before the mail is queued, so a second instance or
//! a run after a restart finds it and moves on. A renewal raises the paid periods, so the
//! next period's end is reminded of again. A claim whose mail could not be handed over is
//! removed, so the next tick tries again.

use serde::Serialize;
use skein_core::api::{MailText, UserMail};
use skein_core::ids::ms_to_rfc3339;
use skein_core::{ApiError, ApiResult};
use skein_db::sqlx;
use utoipa::ToSchema;

use super::plan::{Plan, SubscriptionStatus, get_plan, period_start};

const DAY_MS: i64 = 86_400_000;

/// Ended subscriptions are reminded of only this long after the tick ended them: older ones
/// (those that ended before reminders existed) are left alone.
const EXPIRED_WINDOW_MS: i64 = 7 * DAY_MS;

/// Which reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderKind {
    /// The paid time ends within the configured days.
    Expiring,
    /// The paid time ended.
    Expired,
}

impl ReminderKind {
    fn as_str(self) -> &'static str {
        match self {
            ReminderKind::Expiring => "expiring",
            ReminderKind::Expired => "expired",
        }
    }
}

/// What one reminder run did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ReminderRun {
    /// Reminders handed to the mail queue.
    pub queued: usize,
    /// Reminders for users without a verified address (or mail is off): not tried again.
    pub no_address: usize,
}

/// The mail of one reminder, in both languages.
pub(crate) fn mail_of(kind: ReminderKind, plan: &Plan, ends_at: i64) -> UserMail {
    let date = &ms_to_rfc3339(ends_at)[..10];
    let link = "/billing/plans".to_string();
    let (en, zh) = match kind {
        ReminderKind::Expiring => (
            MailText {
                subject: format!("Your Skein plan {} ends on {date}", plan.name_en),
                lines: vec![
                    format!("Your subscription to {} is paid until {date} (UTC).", plan.name_en),
                    "Renew it before then to keep its quota and models; nothing is charged unless you renew.".into(),
                ],
                link: Some(("Renew my plan".into(), link.clone())),
            },
            MailText {
                subject: format!("您的 Skein 套餐 {} 将于 {date} 到期", plan.name_zh),
                lines: vec![
                    format!("您订阅的 {} 已付费至 {date}（UTC）。", plan.name_zh),
                    "如需继续使用其额度和模型，请在此之前续订；不续订不会扣费。".into(),
                ],
                link: Some(("续订套餐".into(), link)),
            },
        ),
        ReminderKind::Expired => (
            MailText {
                subject: format!("Your Skein plan {} has ended", plan.name_en),
                lines: vec![
                    format!("Your subscription to {} ended on {date} (UTC).", plan.name_en),
                    "Buy it again on the Plans page whenever you like.".into(),
                ],
                link: Some(("Open plans".into(), link.clone())),
            },
            MailText {
                subject: format!("您的 Skein 套餐 {} 已到期", plan.name_zh),
                lines: vec![
                    format!("您订阅的 {} 已于 {date}（UTC）到期。", plan.name_zh),
                    "您可以随时在套餐页面重新购买。".into(),
                ],
                link: Some(("查看套餐".into(), link)),
            },
        ),
    };
    UserMail {
        kind: format!("plan_{}", kind.as_str()),
        en,
        zh,
    }
}

fn db_err(e: sqlx::Error) -> ApiError {
    skein_db::DbError::from(e).into()
}

impl crate::BillingService {
    /// Sends the reminders that are due at `now`, each once per subscription period (see the
    /// module's note).
    pub(crate) async fn send_plan_reminders(&self, now: i64) -> ApiResult<ReminderRun> {
        let mut run = ReminderRun::default();
        let Ok(payments) = self.payments() else {
            return Ok(run);
        };
        let days = payments.config.plan_reminder_days;
        if days <= 0 {
            return Ok(run);
        }
        type Row = (String, String, String, String, i64, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, user_id, plan_id, status, started_at, paid_periods, cancel_at_period_end FROM subscriptions \
             WHERE status = 'active' OR (status IN ('expired', 'canceled') AND updated_at >= $1) ORDER BY created_at",
        )
        .bind(now - EXPIRED_WINDOW_MS)
        .fetch_all(self.db.pool())
        .await
        .map_err(db_err)?;
        let mut conn = self.db.pool().acquire().await.map_err(db_err)?;
        let mut due = Vec::new();
        let mut plans: std::collections::HashMap<String, Option<Plan>> = Default::default();
        for (id, user_id, plan_id, status, started_at, paid, cancel) in rows {
            if !plans.contains_key(&plan_id) {
                let found = get_plan(&mut conn, &plan_id).await?;
                plans.insert(plan_id.clone(), found);
            }
            let Some(Some(plan)) = plans.get(&plan_id) else {
                continue;
            };
            let ends_at = period_start(started_at, plan.period, paid);
            let kind = if SubscriptionStatus::from(status) == SubscriptionStatus::Active {
                // Canceled by its owner: they know it ends.
                if cancel != 0 || ends_at <= now || ends_at > now + days * DAY_MS {
                    continue;
                }
                ReminderKind::Expiring
            } else {
                if ends_at > now {
                    continue;
                }
                ReminderKind::Expired
            };
            // Someone who already holds a subscription that runs past this end (bought again,
            // or the plan of a scheduled downgrade) needs no reminder.
            let later: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT plan_id, started_at, paid_periods FROM subscriptions WHERE user_id = $1 AND status = 'active' AND id <> $2",
            )
            .bind(&user_id)
            .bind(&id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
            let mut covered = false;
            for (other_plan, other_start, other_paid) in later {
                if let Some(other) = get_plan(&mut conn, &other_plan).await? {
                    covered |= period_start(other_start, other.period, other_paid) > ends_at;
                }
            }
            if covered {
                continue;
            }
            due.push((id, user_id, paid, kind, plan.clone(), ends_at));
        }
        // The connection goes back before mailing: each claim takes one of its own, and a run
        // holding two at once could starve the pool when several runs meet.
        drop(conn);
        for (id, user_id, paid, kind, plan, ends_at) in due {
            self.remind(&mut run, &id, &user_id, paid, kind, &plan, ends_at, now)
                .await?;
        }
        if run.queued > 0 {
            tracing::info!(
                queued = run.queued,
                no_address = run.no_address,
                "plan reminders mailed"
            );
        }
        Ok(run)
    }

    /// Claims and sends one reminder.
    #[allow(clippy::too_many_arguments)]
    async fn remind(
        &self,
        run: &mut ReminderRun,
        id: &str,
        user_id: &str,
        paid: i64,
        kind: ReminderKind,
        plan: &Plan,
        ends_at: i64,
        now: i64,
    ) -> ApiResult<()> {
        let claimed = sqlx::query(
            "INSERT INTO subscription_reminders (subscription_id, paid_periods, kind, status, created_at) \
             VALUES ($1, $2, $3, 'claimed', $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(paid)
        .bind(kind.as_str())
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        if claimed.rows_affected() != 1 {
            return Ok(());
        }
        let status = match self
            .users
            .mail_user(user_id, &mail_of(kind, plan, ends_at))
            .await
        {
            Ok(true) => {
                run.queued += 1;
                "queued"
            }
            Ok(false) => {
                run.no_address += 1;
                "no_address"
            }
            Err(error) => {
                // Not handed over: the claim goes, and the next tick tries again.
                tracing::warn!(subscription_id = id, %error, "plan reminder failed; tried again next tick");
                sqlx::query(
                    "DELETE FROM subscription_reminders WHERE subscription_id = $1 AND paid_periods = $2 AND kind = $3",
                )
                .bind(id)
                .bind(paid)
                .bind(kind.as_str())
                .execute(self.db.pool())
                .await
                .map_err(db_err)?;
                return Ok(());
            }
        };
        sqlx::query(
            "UPDATE subscription_reminders SET status = $4 WHERE subscription_id = $1 AND paid_periods = $2 AND kind = $3",
        )
        .bind(id)
        .bind(paid)
        .bind(kind.as_str())
        .bind(status)
        .execute(self.db.pool())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
