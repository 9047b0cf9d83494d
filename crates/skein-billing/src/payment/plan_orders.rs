//! Buying plans and the subscription tick, as the service runs them: a plan order (a new
//! subscription, a renewal or an upgrade, with a coupon) placed through the same path as a
//! top-up, and the tick that grants, ends and reminds.

use skein_core::ids::new_id;
use skein_core::{ApiError, ApiResult};
use skein_db::sqlx;

use super::plan::get_plan;

/// An upgrade's order terms (see `plan_change`).
pub(crate) struct Upgrade {
    pub proration: super::plan_change::Proration,
    /// The plan's price less the credit, before a coupon.
    pub pay_minor: i64,
    /// The new subscription's first grant.
    pub quota: i64,
}

impl crate::BillingService {
    /// Runs the subscription tick now (the scheduler, or an admin): grants, ends, then the
    /// expiry reminders that are due; how many users were granted quota, and the reminders.
    pub(crate) async fn run_subscriptions(
        &self,
    ) -> ApiResult<(usize, super::plan_reminder::ReminderRun)> {
        let granted = self.grant_subscriptions().await?;
        let reminders = self.send_plan_reminders(skein_core::ids::now_ms()).await?;
        Ok((granted, reminders))
    }

    /// Grants the periods that have begun and ends the finished subscriptions; how many
    /// users were granted quota.
    async fn grant_subscriptions(&self) -> ApiResult<usize> {
        match self
            .writer
            .submit(crate::writer::Op::GrantSubscriptions)
            .await?
        {
            crate::writer::Done::Granted(users, ended) => {
                for user in &users {
                    self.forget_balance(user);
                }
                for user in &ended {
                    self.entitlements_changed(user);
                }
                if !users.is_empty() {
                    tracing::info!(users = users.len(), "subscription periods granted");
                }
                Ok(users.len())
            }
            other => Err(crate::unexpected(&other)),
        }
    }

    /// Makes an order that buys (or renews) a plan, and where to pay it.
    pub(crate) async fn create_plan_order(
        &self,
        user_id: &str,
        plan_id: &str,
        provider: &str,
        method: Option<&str>,
        coupon: Option<&str>,
        upgrade: Option<Upgrade>,
    ) -> ApiResult<(super::Order, String)> {
        let payments = self.payments()?;
        let mut conn = self
            .db
            .pool()
            .acquire()
            .await
            .map_err(skein_db::DbError::from)?;
        let plan = get_plan(&mut conn, plan_id)
            .await?
            .filter(|p| p.active)
            .ok_or_else(|| ApiError::not_found("plan", "套餐"))?;
        // Renewing a plan the user chose to leave would pay for a period the downgrade
        // then cuts off: they cancel the downgrade first.
        let leaving: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM subscriptions WHERE user_id = $1 AND plan_id = $2 AND status = 'active' AND scheduled_plan_id IS NOT NULL",
        )
        .bind(user_id)
        .bind(plan_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(skein_db::DbError::from)?;
        drop(conn);
        if leaving.is_some() && upgrade.is_none() {
            return Err(super::plan_change::downgrade_scheduled());
        }
        if plan.currency != payments.config.currency {
            return Err(ApiError::conflict(
                "plan_currency",
                "This plan is priced in another currency than this server takes payments in.",
                "该套餐的币种与本站收款币种不同。",
            ));
        }
        let name = super::ProviderName::parse(provider).ok_or_else(super::no_provider)?;
        let provider = payments.provider(name).ok_or_else(super::no_provider)?;
        let methods = provider.methods();
        let method = match method {
            Some(m) if methods.iter().any(|x| x == m) => m.to_string(),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "method",
                    "This payment method is not offered.",
                    "不支持该付款方式。",
                ));
            }
            None => methods.first().cloned().unwrap_or_default(),
        };
        let (amount_minor, quota, change) = match upgrade {
            Some(u) => (u.pay_minor, u.quota, Some(u.proration)),
            None => (plan.price_minor, plan.quota_per_period, None),
        };
        let order = super::Order {
            id: new_id(),
            user_id: user_id.to_string(),
            provider: name,
            method: Some(method),
            currency: plan.currency,
            amount_minor,
            quota,
            change,
            status: super::OrderStatus::Pending,
            provider_ref: None,
            note: None,
            created_at: skein_core::ids::now_ms(),
            paid_at: None,
            coupon_id: None,
            discount_minor: 0,
            plan_id: Some(plan.id.clone()),
            refunded_minor: 0,
        };
        let (order, pay_url) = self
            .place_and_checkout(order, coupon.map(str::trim).filter(|c| !c.is_empty()))
            .await?;
        tracing::info!(order_id = %order.id, user_id, plan_id, discount_minor = order.discount_minor, "subscription order created");
        Ok((order, pay_url))
    }
}
