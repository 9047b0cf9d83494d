//! Skein's Billing service: integer quota balances kept equal to an immutable ledger,
//! reservations (reserve before billable work, settle the exact cost after, release when
//! nothing was delivered), one usage record per billable request, grants, admin adjustments
//! and redemption codes; top-up through payment providers with coupons, monthly
//! statements, and invoices for paid orders.
//!
//! **Architecture Invariant:** only this crate touches `billing_accounts`, `ledger_entries`,
//! `reservations`, `key_quotas`, `usage_records`, `redemption_codes`, `payment_orders`,
//! `coupons`, `coupon_redemptions`, `invoices`, `invoice_orders` and `payment_settings`; every change of a balance (and every coupon claim) goes
//! through the [`writer`] task, and every balance change inserts its ledger entry in the same
//! transaction.

pub mod config;
mod http;
pub mod invoice;
pub mod ledger;
mod memory;
pub mod payment;
pub mod query;
pub mod remote;
mod service;
pub mod statement;
pub mod statement_mail;
pub mod statement_pdf;
mod writer;

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
pub use config::BillingConfig;
use skein_core::api::{
    AccountEvents, BillingApi, EntitlementWatcher, Entitlements, Reservation, ReserveRequest,
    Settlement, Usage, UserDirectory,
};
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

pub use ledger::Credit;
use writer::{Done, Op, Writer};

/// The Billing service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::Billing,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// The Billing service.
pub struct BillingService {
    db: Db,
    writer: Writer,
    config: BillingConfig,
    users: Arc<dyn UserDirectory>,
    /// In-memory holds on SQLite (one writer process); `None` on PostgreSQL.
    holds: Option<memory::Holds>,
    /// Top-up through payment providers: the set in effect, replaced whole when an admin
    /// changes the payment settings (off while no provider is configured).
    payments: std::sync::RwLock<Arc<payment::Payments>>,
    /// The payment settings: the file's with an admin's stored values over them.
    payment_settings: payment::settings::Live,
    /// The sweeper and the payment reconciliation.
    tasks: BackgroundTasks,
    /// The File service, for invoice PDFs (set once at composition, when files run).
    files: std::sync::OnceLock<Arc<dyn skein_core::api::FileApi>>,
    /// The system settings (grants, exchange rate), when the User service runs here.
    settings: std::sync::OnceLock<Arc<dyn skein_core::api::SettingsSource>>,
    /// Who caches entitlements in this process (the Relay), told when a user's change.
    watchers: std::sync::RwLock<Vec<Arc<dyn EntitlementWatcher>>>,
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
        let every = Duration::from_secs(
            u64::try_from(config.reservation_ttl_secs / 4)
                .unwrap_or(30)
                .clamp(1, 60),
        );
        let service = Arc::new(BillingService {
            holds: (db.backend() == skein_db::Backend::Sqlite)
                .then(|| memory::Holds::new(config.reservation_ttl_secs.saturating_mul(1000))),
            payments: std::sync::RwLock::new(Arc::new(payment::Payments::new(
                config.payment.clone(),
                config.quota_per_usd,
                config.cny_per_usd,
            ))),
            payment_settings: payment::settings::Live::new(&config.payment),
            db,
            writer,
            config,
            users,
            tasks: BackgroundTasks::new(),
            files: std::sync::OnceLock::new(),
            settings: std::sync::OnceLock::new(),
            watchers: std::sync::RwLock::new(Vec::new()),
        });
        // Holds of a crashed caller (or a previous process) are released at once, then
        // every quarter of their lifetime.
        service.tasks.every(
            "billing.sweep",
            every,
            FirstRun::Now,
            &service,
            |service| async move { service.sweep().await },
        );
        if service.config.verify_every_secs > 0 {
            service.tasks.every(
                "billing.verify",
                Duration::from_secs(service.config.verify_every_secs),
                FirstRun::AfterPeriod,
                &service,
                |service| async move { service.verify_and_publish().await },
            );
        }
        if service.config.statement_mail {
            // Last month's statements, once per user and month (see statement_mail.rs);
            // hourly, so a month's mail goes out within an hour of its end.
            service.tasks.every(
                "billing.statement_mail",
                Duration::from_secs(3600),
                FirstRun::AfterPeriod,
                &service,
                |service| async move { service.mail_last_month().await },
            );
        }
        // These run whether top-up is on or not: an admin may turn it on (or off) at run time,
        // and orders and subscriptions made before it was turned off still need them.
        let payment = &service.config.payment;
        // Notifications can be lost (a provider that gave up, a restart mid-request):
        // pending orders are asked about regularly.
        service.tasks.every(
            "billing.reconcile_payments",
            Duration::from_secs(payment.reconcile_every_secs),
            FirstRun::AfterPeriod,
            &service,
            |service| async move { service.reconcile().await },
        );
        // Subscription periods begin on their own: each instance grants the due ones,
        // and the conditional move of granted_periods lets only one of them do each.
        service.tasks.every(
            "billing.subscriptions",
            Duration::from_secs(payment.subscription_every_secs),
            FirstRun::Now,
            &service,
            |service| async move {
                if let Err(error) = service.run_subscriptions().await {
                    tracing::warn!(%error, "subscription grants failed; tried again next tick");
                }
            },
        );
        // The safety net under the bus's notes: stored payment settings are read again
        // (rebuilt only when a row changed).
        service.tasks.every(
            "billing.payment_settings",
            Duration::from_secs(30),
            FirstRun::AfterPeriod,
            &service,
            |service| async move {
                if let Err(error) = service.load_payment_settings().await {
                    tracing::warn!(%error, "could not reload the payment settings");
                }
            },
        );
        service
    }

    /// Gives the service the File service, where issued invoices' PDFs are kept; without it
    /// invoices are issued by number only.
    pub fn set_files(&self, files: Option<Arc<dyn skein_core::api::FileApi>>) {
        if let Some(files) = files {
            let _ = self.files.set(files);
        }
    }

    /// Tells `watcher` (the Relay in this process) whenever a user's plan entitlements may
    /// have changed, so it never serves a stale copy here.
    pub fn watch_entitlements(&self, watcher: Arc<dyn EntitlementWatcher>) {
        if let Ok(mut watchers) = self.watchers.write() {
            watchers.push(watcher);
        }
    }

    /// Tells the watchers that `user_id`'s entitlements may have changed.
    pub(crate) fn entitlements_changed(&self, user_id: &str) {
        if let Ok(watchers) = self.watchers.read() {
            for watcher in watchers.iter() {
                watcher.entitlements_changed(user_id);
            }
        }
    }

    /// Reads the grants and the exchange rate from the system settings (composition time,
    /// when the User service runs in this process); without it, `[billing]` decides them.
    pub fn set_settings(&self, settings: Arc<dyn skein_core::api::SettingsSource>) {
        let _ = self.settings.set(settings);
    }

    /// The signup grant, the invitee's and the inviter's reward in effect.
    fn grants(&self) -> (i64, i64, i64) {
        match self.settings.get() {
            Some(source) => {
                let s = source.current();
                (
                    s.signup_grant,
                    s.invite_reward_invitee,
                    s.invite_reward_inviter,
                )
            }
            None => (
                self.config.signup_grant,
                self.config.invite_reward_invitee,
                self.config.invite_reward_inviter,
            ),
        }
    }

    /// Yuan per US dollar in effect (display only).
    fn cny_per_usd(&self) -> f64 {
        self.settings
            .get()
            .map_or(self.config.cny_per_usd, |s| s.current().cny_per_usd)
    }

    /// The scheduled ledger check: runs [`BillingService::verify`] and publishes the outcome
    /// (`skein_billing_ledger_verify_runs_total`, `skein_billing_ledger_drift_accounts`), so an
    /// alert fires on drift without anyone running the command.
    async fn verify_and_publish(&self) {
        match self.verify().await {
            Ok(drift) => {
                let outcome = if drift.is_empty() { "clean" } else { "drift" };
                if !drift.is_empty() {
                    tracing::error!(
                        accounts = drift.len(),
                        "ledger check: balances disagree with the ledger (run `skein billing verify` for details)"
                    );
                }
                VERIFY_RUNS.inc(&[outcome]);
                DRIFT_ACCOUNTS.set(&[], drift.len() as f64);
                VERIFY_LAST_RUN.set(&[], skein_core::ids::now_ms() as f64 / 1000.0);
            }
            Err(error) => {
                tracing::error!(%error, "ledger check could not run");
                VERIFY_RUNS.inc(&["error"]);
            }
        }
    }

    /// Releases expired holds (in memory and in the database); the sweeper's tick.
    async fn sweep(&self) {
        if let Some(holds) = &self.holds {
            let n = holds.expire(skein_core::ids::now_ms());
            if n > 0 {
                tracing::info!(released = n, "expired in-memory holds released");
            }
        }
        match self.writer.submit(Op::Expire).await {
            Ok(Done::Count(n)) if n > 0 => {
                tracing::info!(released = n, "expired reservations released")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reservation sweep failed"),
        }
    }

    /// The service's routes, relative to `/api/v1`.
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// Applies a credit or debit; `Ok(None)` when its idempotency key was used already.
    pub async fn credit(&self, credit: Credit) -> ApiResult<Option<i64>> {
        let user_id = credit.user_id.clone();
        let done = self.writer.submit(Op::Credit(credit)).await;
        self.forget_balance(&user_id);
        match done? {
            Done::Balance(balance) => Ok(balance),
            other => Err(unexpected(&other)),
        }
    }

    /// Drops this process's knowledge of a user's balance after something other than a settle
    /// changed it.
    pub(crate) fn forget_balance(&self, user_id: &str) {
        if let Some(holds) = &self.holds {
            holds.forget_balance(user_id);
        }
    }

    /// A user's balance view, with this process's in-memory holds counted as reserved.
    ///
    /// The holds are read before the balance: a settle that commits in between then shows
    /// as both charged and still held for a moment (less available, never more), where the
    /// other order could show neither — the hold gone and the charge not yet in the balance.
    pub async fn quota(&self, user_id: &str) -> ApiResult<query::QuotaView> {
        let held = self.holds.as_ref().map(|holds| holds.held(user_id));
        let mut view = query::quota(
            &self.db,
            user_id,
            self.config.quota_per_usd,
            self.cny_per_usd(),
        )
        .await?;
        if let Some(held) = held {
            view.reserved += held;
            view.available -= held;
        }
        Ok(view)
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

    /// The most an in-memory hold being settled may charge for `cost` (see
    /// [`memory::Holds::cover`]), loading the user's balance first if this process forgot it.
    async fn cover(
        &self,
        holds: &memory::Holds,
        id: &str,
        hold: &memory::MemHold,
        cost: i64,
    ) -> ApiResult<i64> {
        for _ in 0..3 {
            if let Some(cap) = holds.cover(id, cost, self.config.overdraft) {
                return Ok(cap);
            }
            let spendable = query::spendable(&self.db, &hold.user_id)
                .await?
                .unwrap_or(0);
            holds.set_spendable(&hold.user_id, spendable);
        }
        // Only a poisoned lock gets here: charge no more than the hold.
        Ok(cost.min(hold.amount))
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

/// Holds, settles and releases by outcome; labels are fixed words only.
static HOLDS: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_holds_total",
    "Holds asked of the ledger, by outcome (granted, refused: no quota or an error).",
    &["outcome"],
);
/// Settles by outcome.
static SETTLES: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_settles_total",
    "Settles of holds, by outcome (ok, error).",
    &["outcome"],
);
/// Settles whose cost went beyond the hold, and by how much.
static OVERRUNS: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_overruns_total",
    "Settles whose exact cost went beyond what was held (the estimate missed).",
    &[],
);
/// Quota charged beyond holds.
static OVERRUN_QUOTA: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_overrun_quota_total",
    "Quota units charged beyond what was held.",
    &[],
);
/// Quota that could not be charged (beyond the overdraft).
static UNCOLLECTED_QUOTA: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_uncollected_quota_total",
    "Quota units a settle could not charge because the balance would have passed the overdraft.",
    &[],
);
/// Releases by outcome.
static RELEASES: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_releases_total",
    "Holds released without a charge, by outcome (ok, error).",
    &["outcome"],
);

/// Scheduled ledger checks by outcome.
static VERIFY_RUNS: skein_core::metrics::Counter = skein_core::metrics::Counter::new(
    "skein_billing_ledger_verify_runs_total",
    "Scheduled ledger checks (billing.verify_every_secs) by outcome: clean, drift, error.",
    &["outcome"],
);
/// What the last check found.
static DRIFT_ACCOUNTS: skein_core::metrics::Gauge = skein_core::metrics::Gauge::new(
    "skein_billing_ledger_drift_accounts",
    "Accounts whose balance disagreed with the ledger at the last scheduled check.",
    &[],
);
/// When the last check finished.
static VERIFY_LAST_RUN: skein_core::metrics::Gauge = skein_core::metrics::Gauge::new(
    "skein_billing_ledger_verify_last_run_timestamp_seconds",
    "When the last scheduled ledger check that ran to completion finished (Unix seconds).",
    &[],
);

fn outcome<T>(result: &Result<T, ApiError>, ok: &'static str) -> &'static str {
    if result.is_ok() { ok } else { "error" }
}

/// The ledger's API, counted: every call goes through here whether the caller is in this
/// process or another (`/internal/billing`), so the Billing process's metrics see them all.
#[async_trait]
impl BillingApi for BillingService {
    async fn reserve(&self, request: ReserveRequest) -> Result<Reservation, ApiError> {
        let span = tracing::info_span!(
            "billing.hold",
            amount = request.amount,
            min_amount = request.min_amount,
            reservation_id = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = self
            .reserve_uncounted(request)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(reservation) => {
                span.record("reservation_id", reservation.id.as_str());
            }
            Err(error) if error.status().is_server_error() => {
                span.record("otel.status_code", "ERROR");
            }
            Err(_) => {}
        }
        HOLDS.inc(&[match &result {
            Ok(_) => "granted",
            Err(e) if e.status().is_client_error() => "refused",
            Err(_) => "error",
        }]);
        result
    }

    async fn settle(&self, reservation_id: &str, usage: Usage) -> Result<Settlement, ApiError> {
        let span = tracing::info_span!(
            "billing.settle",
            reservation_id,
            cost = usage.cost,
            otel.status_code = tracing::field::Empty,
        );
        let result = self
            .settle_uncounted(reservation_id, usage)
            .instrument(span.clone())
            .await;
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        SETTLES.inc(&[outcome(&result, "ok")]);
        if let Ok(s) = &result {
            if s.overrun > 0 {
                OVERRUNS.inc(&[]);
                OVERRUN_QUOTA.add(&[], s.overrun as f64);
            }
            if s.uncollected > 0 {
                UNCOLLECTED_QUOTA.add(&[], s.uncollected as f64);
            }
        }
        result
    }

    async fn renew(&self, reservation_id: &str) -> Result<(), ApiError> {
        self.renew_uncounted(reservation_id).await
    }

    async fn release(&self, reservation_id: &str) -> Result<(), ApiError> {
        let result = self
            .release_uncounted(reservation_id)
            .instrument(tracing::info_span!("billing.release", reservation_id))
            .await;
        RELEASES.inc(&[outcome(&result, "ok")]);
        result
    }

    async fn entitlements(&self, user_id: &str) -> Result<Entitlements, ApiError> {
        Ok(payment::plan::entitlements(&self.db, user_id, skein_core::ids::now_ms()).await?)
    }
}

/// The ledger's API itself.
impl BillingService {
    async fn reserve_uncounted(&self, request: ReserveRequest) -> Result<Reservation, ApiError> {
        let Some(holds) = &self.holds else {
            return match self.writer.submit(Op::Reserve(request)).await? {
                Done::Reservation(r) => Ok(r),
                other => Err(unexpected(&other)),
            };
        };
        ledger::check_reserve(&request)?;
        let id = skein_core::ids::new_id();
        let expires_at = skein_core::ids::now_ms() + self.config.reservation_ttl_secs * 1000;
        let hold = memory::MemHold {
            user_id: request.user_id.clone(),
            key: request.key.clone(),
            amount: request.amount,
            expires_at,
        };
        for _ in 0..4 {
            match holds.reserve(&id, hold.clone(), request.min_amount, self.config.overdraft) {
                memory::Reserved::Granted(amount) => {
                    return Ok(Reservation {
                        id,
                        amount,
                        expires_at: skein_core::ids::ms_to_rfc3339(expires_at),
                    });
                }
                memory::Reserved::NoQuota(left) => {
                    return Err(ledger::insufficient("user", request.min_amount, left));
                }
                memory::Reserved::KeyQuota(left) => {
                    return Err(ledger::insufficient("key", request.min_amount, left));
                }
                memory::Reserved::Load(memory::Need::Balance) => {
                    let spendable = match query::spendable(&self.db, &request.user_id).await? {
                        Some(s) => s,
                        None => {
                            self.writer
                                .submit(Op::Open(request.user_id.clone(), self.grants().0))
                                .await?;
                            query::spendable(&self.db, &request.user_id)
                                .await?
                                .unwrap_or(0)
                        }
                    };
                    holds.set_spendable(&request.user_id, spendable);
                }
                memory::Reserved::Load(memory::Need::KeyUsed) => {
                    if let Some(key) = &request.key {
                        holds.set_key_used(
                            &key.key_id,
                            query::key_used(&self.db, &key.key_id).await?,
                        );
                    }
                }
            }
        }
        Err(ApiError::internal("in-memory hold could not be decided"))
    }

    async fn settle_uncounted(
        &self,
        reservation_id: &str,
        usage: Usage,
    ) -> Result<Settlement, ApiError> {
        if !(0..=ledger::MAX_AMOUNT).contains(&usage.cost) {
            return Err(ApiError::invalid_field(
                "cost",
                format!("The cost must be between 0 and {}.", ledger::MAX_AMOUNT),
                format!("费用必须在 0 到 {} 之间。", ledger::MAX_AMOUNT),
            ));
        }
        if let Some(holds) = &self.holds {
            match holds.take_for_settle(reservation_id) {
                Err(Some(previous)) => return Ok(previous),
                Err(None) => {
                    return Err(ApiError::conflict(
                        "reservation_released",
                        "This reservation was released; nothing can be charged against it.",
                        "该预留额度已释放，无法再扣费。",
                    ));
                }
                Ok(Some(hold)) => {
                    let cap = match self.cover(holds, reservation_id, &hold, usage.cost).await {
                        Ok(cap) => cap,
                        Err(error) => {
                            holds.restore(reservation_id);
                            return Err(error);
                        }
                    };
                    let op = Op::Charge {
                        id: reservation_id.to_string(),
                        user_id: hold.user_id.clone(),
                        key_id: hold.key.as_ref().map(|k| k.key_id.clone()),
                        usage,
                        amount: hold.amount,
                        cap,
                    };
                    return match self.writer.submit(op).await {
                        Ok(Done::Settlement(s)) => {
                            holds.settled(reservation_id, &s);
                            Ok(s)
                        }
                        Ok(other) => {
                            holds.restore(reservation_id);
                            Err(unexpected(&other))
                        }
                        Err(error) => {
                            holds.restore(reservation_id);
                            Err(error)
                        }
                    };
                }
                Ok(None) => {}
            }
        }
        match self
            .writer
            .submit(Op::Settle(reservation_id.to_string(), usage))
            .await?
        {
            Done::Settlement(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    async fn renew_uncounted(&self, reservation_id: &str) -> Result<(), ApiError> {
        if let Some(holds) = &self.holds {
            let expires_at = skein_core::ids::now_ms() + self.config.reservation_ttl_secs * 1000;
            if holds.renew(reservation_id, expires_at).is_some() {
                return Ok(());
            }
        }
        match self
            .writer
            .submit(Op::Renew(reservation_id.to_string()))
            .await?
        {
            Done::Renewed => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn release_uncounted(&self, reservation_id: &str) -> Result<(), ApiError> {
        if let Some(holds) = &self.holds {
            match holds.release(reservation_id) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(()) => {
                    return Err(ApiError::conflict(
                        "reservation_settled",
                        "This reservation was already settled; there is nothing left to release.",
                        "该预留额度已结算，无可释放。",
                    ));
                }
            }
        }
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
        // The grants in effect now (an administrator may have changed them at run time).
        let (signup, invitee, inviter_reward) = self.grants();
        self.writer
            .submit(Op::Open(user_id.to_string(), signup))
            .await?;
        self.forget_balance(user_id);
        let Some(inviter) = inviter_id else {
            return Ok(());
        };
        let rewards = [
            (user_id, invitee, "invitee"),
            (inviter, inviter_reward, "inviter"),
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
/// Sizes for the runtime report: the in-memory holds' maps (SQLite only; see
/// `memory.rs` for their bounds).
impl skein_core::runtime::Gauges for BillingService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        use skein_core::runtime::count;
        let Some(holds) = &self.holds else {
            return Vec::new();
        };
        let sizes = holds.sizes();
        vec![
            ("billing.books", count(sizes.books)),
            ("billing.key_books", count(sizes.keys)),
            ("billing.open_holds", count(sizes.open)),
            ("billing.ended_holds", count(sizes.ended)),
        ]
    }
}
