//! Monthly statements by mail: the summary of a [`Statement`] as a message the User
//! service sends (through its mail queue, to the user's verified address, in their
//! language; Billing never sees the address), on demand and, with `billing.statement_mail`,
//! once a month for the month that just ended.
//!
//! Exactly once per (user, month) for the scheduled run: a row in `statement_mails` is
//! inserted (`ON CONFLICT DO NOTHING`) before the mail is queued, so a second instance or a
//! rerun after a restart finds it and moves on; a claim whose mail could not be handed over
//! is removed again, so the next run tries that user again.

use skein_core::api::{MailText, UserMail};
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};
use skein_db::sqlx;

use crate::statement::{self, Statement};
use crate::statement_pdf::group;

/// `amount` quota units as dollars (`$1.23`), rounded down to the cent.
fn usd(amount: i64, quota_per_usd: i64) -> String {
    let cents = i128::from(amount) * 100 / i128::from(quota_per_usd.max(1));
    let cents = i64::try_from(cents).unwrap_or(i64::MAX);
    format!("${}", crate::payment::format_minor(cents))
}

/// The mail of statement `s`, in both languages.
pub fn mail_of(s: &Statement, quota_per_usd: i64) -> UserMail {
    let v = |amount: i64| format!("{} ({})", group(amount), usd(amount, quota_per_usd));
    let top: Vec<String> = s
        .by_model
        .iter()
        .take(3)
        .map(|m| format!("{} {}", m.name.as_deref().unwrap_or("-"), group(m.amount)))
        .collect();
    let link_path = format!("/billing/statements?month={}", s.month);
    let mut en = vec![
        format!("Here is your statement for {}.", s.month),
        format!("Opening balance: {}", v(s.opening_balance)),
        format!("Top-ups: {}", v(s.top_ups)),
        format!("Consumption: {}", v(s.consumption)),
        format!("Refunds: {}", v(s.refunds)),
        format!("Closing balance: {}", v(s.closing_balance)),
    ];
    let mut zh = vec![
        format!("这是您 {} 的月度账单。", s.month),
        format!("期初余额：{}", v(s.opening_balance)),
        format!("充值：{}", v(s.top_ups)),
        format!("消费：{}", v(s.consumption)),
        format!("退款：{}", v(s.refunds)),
        format!("期末余额：{}", v(s.closing_balance)),
    ];
    if !top.is_empty() {
        en.push(format!("Most used: {}", top.join("; ")));
        zh.push(format!("用量最多：{}", top.join("；")));
    }
    en.push(
        "Amounts are quota units. The Bills page has the whole statement, as CSV and PDF.".into(),
    );
    zh.push("金额单位为额度。账单页面有完整账单，可下载 CSV 和 PDF。".into());
    UserMail {
        kind: "statement".into(),
        en: MailText {
            subject: format!("Your Skein statement for {}", s.month),
            lines: en,
            link: Some(("Open my bills".into(), link_path.clone())),
        },
        zh: MailText {
            subject: format!("您的 Skein {} 月度账单", s.month),
            lines: zh,
            link: Some(("查看我的账单".into(), link_path)),
        },
    }
}

/// `YYYY-MM` of the month before the one `now_ms` falls in, at `offset_minutes` from UTC.
pub fn previous_month(now_ms: i64, offset_minutes: i32) -> String {
    let local = now_ms + i64::from(offset_minutes) * 60_000;
    let (y, m, _) = crate::payment::plan::civil_from_days(local.div_euclid(86_400_000));
    let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    format!("{y:04}-{m:02}")
}

/// What a scheduled run did.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct MailRun {
    /// `YYYY-MM`.
    pub month: String,
    /// Statements handed to the mail queue.
    pub queued: usize,
    /// Users without a verified address (or mail is off): nothing sent, not tried again.
    pub no_address: usize,
    /// Users mailed for this month before (by this run's predecessors).
    pub already: usize,
}

impl crate::BillingService {
    /// Mails `user_id` their statement of `month` now; whether it was queued (`false`: no
    /// verified address, or mail is off).
    pub async fn mail_statement(
        &self,
        user_id: &str,
        month: &str,
        offset_minutes: i32,
    ) -> ApiResult<bool> {
        let s = statement::statement(&self.db, user_id, month, offset_minutes).await?;
        let mail = mail_of(&s, self.config.quota_per_usd);
        self.users.mail_user(user_id, &mail).await
    }

    /// Mails every user with a ledger before the end of `month` their statement of it, once
    /// each (see the module's note).
    pub async fn mail_statements(&self, month: &str, offset_minutes: i32) -> ApiResult<MailRun> {
        let (_, end) = statement::month_bounds(month, offset_minutes)?;
        let users: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT user_id FROM ledger_entries WHERE created_at < $1 ORDER BY user_id",
        )
        .bind(end)
        .fetch_all(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        let mut run = MailRun {
            month: month.to_string(),
            ..MailRun::default()
        };
        for (user_id,) in users {
            let claimed = sqlx::query(
                "INSERT INTO statement_mails (user_id, month, status, created_at) VALUES ($1, $2, 'claimed', $3) ON CONFLICT DO NOTHING",
            )
            .bind(&user_id)
            .bind(month)
            .bind(now_ms())
            .execute(self.db.pool())
            .await
            .map_err(skein_db::DbError::from)?;
            if claimed.rows_affected() != 1 {
                run.already += 1;
                continue;
            }
            let status = match self.mail_statement(&user_id, month, offset_minutes).await {
                Ok(true) => {
                    run.queued += 1;
                    "queued"
                }
                Ok(false) => {
                    run.no_address += 1;
                    "no_address"
                }
                Err(error) => {
                    // Not handed over: the claim goes, and the next run tries again.
                    tracing::warn!(%user_id, month, %error, "statement mail failed; tried again next run");
                    sqlx::query("DELETE FROM statement_mails WHERE user_id = $1 AND month = $2")
                        .bind(&user_id)
                        .bind(month)
                        .execute(self.db.pool())
                        .await
                        .map_err(skein_db::DbError::from)?;
                    continue;
                }
            };
            sqlx::query("UPDATE statement_mails SET status = $3 WHERE user_id = $1 AND month = $2")
                .bind(&user_id)
                .bind(month)
                .bind(status)
                .execute(self.db.pool())
                .await
                .map_err(skein_db::DbError::from)?;
        }
        if run.queued > 0 {
            tracing::info!(
                month,
                queued = run.queued,
                no_address = run.no_address,
                "monthly statements mailed"
            );
        }
        Ok(run)
    }

    /// The scheduler's run: last month's statements, in the configured offset.
    pub(crate) async fn mail_last_month(&self) {
        let offset = self.config.statement_utc_offset_minutes;
        let month = previous_month(now_ms(), offset);
        if let Err(error) = self.mail_statements(&month, offset).await {
            tracing::warn!(%error, month, "monthly statement mail failed; tried again next run");
        }
    }
}

/// 422 for a month that has not ended: a scheduled statement covers a finished month.
pub(crate) fn month_not_over() -> ApiError {
    ApiError::invalid_field("month", "That month is not over yet.", "该月份尚未结束。")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_month_is_taken_in_the_offset() {
        // 2026-12-01T00:00:00Z is still November 30th in New York, already December 1st in China.
        let dec_first = 1_796_083_200_000;
        assert_eq!(previous_month(dec_first, 0), "2026-11");
        assert_eq!(previous_month(dec_first, -300), "2026-10");
        assert_eq!(previous_month(dec_first, 480), "2026-11");
        // January goes back to December of the year before.
        assert_eq!(previous_month(1_798_761_600_000, 0), "2026-12");
        assert_eq!(usd(1_250_000, 500_000), "$2.50");
        assert_eq!(group(-1_234_567), "-1,234,567");
    }
}
