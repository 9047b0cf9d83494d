//! Skein's Billing service: integer quota balances kept equal to an immutable ledger,
//! reservations (reserve before billable work, settle the exact cost after, release when
//! nothing was delivered), one usage record per billable request, grants, admin adjustments
//! and redemption codes.
//!
//! **Architecture Invariant:** only this crate touches `billing_accounts`, `ledger_entries`,
//! `reservations`, `key_quotas`, `usage_records` and `redemption_codes`; every write goes
//! through the [`writer`] task, and every balance change inserts its ledger entry in the same
//! transaction.

mod http;
pub mod ledger;
pub mod query;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use skein_core::api::{
    AccountEvents, BillingApi, Reservation, ReserveRequest, Settlement, Usage, UserDirectory,
};
use skein_core::config::BillingConfig;
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

pub use ledger::Credit;
use writer::{Done, Op, Writer};

/// The Billing service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: "billing",
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// The Billing service.
pub struct BillingService {
    db: Db,
    writer: Writer,
    config: BillingConfig,
    users: Arc<dyn UserDirectory>,
}

impl BillingService {
    /// Starts the service: its writer task and the sweeper that releases abandoned holds.
    pub fn start(db: Db, config: BillingConfig, users: Arc<dyn UserDirectory>) -> Arc<Self> {
        let rules = ledger::Rules {
            signup_grant: config.signup_grant,
            overdraft: config.overdraft,
            reservation_ttl_ms: config.reservation_ttl_secs * 1000,
        };
        let writer = Writer::start(db.clone(), rules);
        let sweeper = writer.clone();
        let every = Duration::from_secs(
            u64::try_from(config.reservation_ttl_secs / 4)
                .unwrap_or(30)
                .clamp(1, 60),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match sweeper.submit(Op::Expire).await {
                    Ok(Done::Count(n)) if n > 0 => {
                        tracing::info!(released = n, "expired reservations released")
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reservation sweep failed"),
                }
            }
        });
        Arc::new(BillingService {
            db,
            writer,
            config,
            users,
        })
    }

    /// The service's routes, relative to `/api/v1`.
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// The internal API other Skein processes call (`/internal/billing/*`), guarded by
    /// `billing.internal_token`; `None` when no token is configured.
    pub fn internal_routes(self: Arc<Self>) -> Option<axum::Router> {
        http::internal::routes(self)
    }

    /// Applies a credit or debit; `Ok(None)` when its idempotency key was used already.
    pub async fn credit(&self, credit: Credit) -> ApiResult<Option<i64>> {
        match self.writer.submit(Op::Credit(credit)).await? {
            Done::Balance(balance) => Ok(balance),
            other => Err(unexpected(&other)),
        }
    }

    /// Releases expired holds now (the sweeper does this periodically); answers how many.
    pub async fn expire_now(&self) -> ApiResult<u64> {
        match self.writer.submit(Op::Expire).await? {
            Done::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Checks every account against the ledger and the open holds.
    pub async fn verify(&self) -> ApiResult<Vec<query::Drift>> {
        Ok(query::verify(&self.db).await?)
    }

    async fn require_user(&self, user_id: &str) -> ApiResult<()> {
        if self.users.user_exists(user_id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("User", "用户"))
        }
    }
}

fn unexpected(done: &Done) -> ApiError {
    ApiError::internal(format!(
        "billing writer answered the wrong kind of result: {done:?}"
    ))
}

#[async_trait]
impl BillingApi for BillingService {
    async fn reserve(&self, request: ReserveRequest) -> Result<Reservation, ApiError> {
        match self.writer.submit(Op::Reserve(request)).await? {
            Done::Reservation(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    async fn settle(&self, reservation_id: &str, usage: Usage) -> Result<Settlement, ApiError> {
        match self
            .writer
            .submit(Op::Settle(reservation_id.to_string(), usage))
            .await?
        {
            Done::Settlement(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn release(&self, reservation_id: &str) -> Result<(), ApiError> {
        match self
            .writer
            .submit(Op::Release(reservation_id.to_string()))
            .await?
        {
            Done::Released => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

#[async_trait]
impl AccountEvents for BillingService {
    async fn user_registered(
        &self,
        user_id: &str,
        inviter_id: Option<&str>,
    ) -> Result<(), ApiError> {
        self.writer.submit(Op::Open(user_id.to_string())).await?;
        let Some(inviter) = inviter_id else {
            return Ok(());
        };
        let rewards = [
            (user_id, self.config.invite_reward_invitee, "invitee"),
            (inviter, self.config.invite_reward_inviter, "inviter"),
        ];
        for (who, amount, role) in rewards {
            if amount > 0 {
                self.credit(Credit {
                    user_id: who.to_string(),
                    kind: "invite_reward",
                    amount,
                    reference: Some(user_id.to_string()),
                    actor_id: None,
                    memo: None,
                    idempotency_key: Some(format!("invite:{user_id}:{role}")),
                })
                .await?;
            }
        }
        Ok(())
    }
}
