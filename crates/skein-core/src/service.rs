//! What a service is to the binary that composes it: a name, routes by audience, gauges,
//! background tasks and a drain on shutdown.
//!
//! The binary (`crates/skein`) builds only the services a process runs and then treats them
//! all alike through [`Service`]: it nests their routes, gathers their OpenAPI tags, registers
//! their gauges and drains them on shutdown. A service never learns which other services run
//! beside it; it reaches them through the API traits in [`crate::api`].

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::openapi::tag::Tag;
use utoipa_axum::router::OpenApiRouter;

use crate::runtime::Gauges;

/// A service of the platform, by name. The names are what `--services` and `SKEIN_SERVICES`
/// accept and what logs and migrations say.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// The edge: authentication, limits, request ids. Every process runs it.
    Gateway,
    /// Accounts, sessions, invites, the audit log.
    User,
    /// Balances, the ledger, reservations.
    Billing,
    /// API keys, channels, prices, the vendor API.
    Relay,
    /// Conversations and their answers.
    Chat,
    /// Uploaded files: storage, downloads, previews, share links.
    File,
    /// Knowledge bases and retrieval.
    Knowledge,
    /// Plugins and the tools models call.
    Plugin,
    /// Assistants: versions, the market.
    Agent,
}

impl ServiceName {
    /// Every service this build contains, in the order they are built (a service comes after
    /// those whose APIs it calls).
    pub const BUILT: &'static [ServiceName] = &[
        ServiceName::Gateway,
        ServiceName::File,
        ServiceName::User,
        ServiceName::Billing,
        ServiceName::Relay,
        ServiceName::Chat,
        ServiceName::Knowledge,
        ServiceName::Plugin,
        ServiceName::Agent,
    ];

    /// The wire name (`"billing"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceName::Gateway => "gateway",
            ServiceName::User => "user",
            ServiceName::Billing => "billing",
            ServiceName::Relay => "relay",
            ServiceName::Chat => "chat",
            ServiceName::File => "file",
            ServiceName::Knowledge => "knowledge",
            ServiceName::Plugin => "plugin",
            ServiceName::Agent => "agent",
        }
    }

    /// Whether this build contains the service.
    pub fn is_built(self) -> bool {
        Self::BUILT.contains(&self)
    }

    const ALL: &'static [ServiceName] = &[
        ServiceName::Gateway,
        ServiceName::User,
        ServiceName::Billing,
        ServiceName::Relay,
        ServiceName::Chat,
        ServiceName::File,
        ServiceName::Knowledge,
        ServiceName::Plugin,
        ServiceName::Agent,
    ];
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service name that is unknown or not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceNameError {
    /// A service of the platform that this build does not contain yet.
    #[error("service `{0}` is not part of this build yet")]
    NotBuilt(ServiceName),
    /// No service has this name.
    #[error("unknown service `{name}` (available: {available})")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The names this build accepts, comma-separated.
        available: String,
    },
}

impl FromStr for ServiceName {
    type Err = ServiceNameError;

    /// Parses a built service's name; a planned one is refused as "not part of this build yet".
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match Self::ALL.iter().find(|name| name.as_str() == text) {
            Some(&name) if name.is_built() => Ok(name),
            Some(&name) => Err(ServiceNameError::NotBuilt(name)),
            None => Err(ServiceNameError::Unknown {
                name: text.to_string(),
                available: Self::BUILT
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// A running service, as the binary composes it. Every method but [`Service::name`] has a
/// default, so a service states only the audiences it serves.
///
/// Routes come in three audiences, each mounted by the binary where it belongs:
/// - [`Service::api_routes`]: the user and admin REST API, relative to `/api/v1`, documented
///   by utoipa (tags from [`Service::api_tags`]);
/// - [`Service::vendor_routes`]: vendor-compatible routes at their full paths (`/v1/...`),
///   outside the OpenAPI document;
/// - [`Service::internal_routes`]: service-to-service routes at their full paths
///   (`/internal/<service>/...`), served only on the internal listener and guarded by the
///   internal token.
#[async_trait]
pub trait Service: Gauges + Send + Sync + 'static {
    /// Which service this is.
    fn name(&self) -> ServiceName;

    /// The user and admin API, relative to `/api/v1`.
    fn api_routes(self: Arc<Self>) -> OpenApiRouter {
        OpenApiRouter::new()
    }

    /// The OpenAPI tags its API routes use, with their descriptions.
    fn api_tags(&self) -> Vec<Tag> {
        Vec::new()
    }

    /// Vendor-compatible routes (`/v1/...`), at full paths.
    fn vendor_routes(self: Arc<Self>) -> Router {
        Router::new()
    }

    /// Service-to-service routes (`/internal/...`), at full paths; the caller guards them.
    fn internal_routes(self: Arc<Self>) -> Router {
        Router::new()
    }

    /// Its periodic tasks, which the binary stops after [`Service::drain`].
    fn background(&self) -> Option<&BackgroundTasks> {
        None
    }

    /// Lets work already accepted finish (up to `grace`) once the listeners stopped taking
    /// requests: settles, answers being written.
    async fn drain(&self, grace: Duration) {
        let _ = grace;
    }
}

/// An OpenAPI tag with its description, for [`Service::api_tags`].
pub fn tag(name: &str, description: &str) -> Tag {
    let mut tag = Tag::new(name);
    tag.description = Some(description.to_string());
    tag
}

/// A service's periodic tasks (sweepers, reloads, probes), tracked so shutdown can stop them
/// and wait for a tick in progress instead of cutting it off mid-write.
///
/// Each task holds only a weak reference to its service, so dropping the service (tests build
/// many) ends its tasks too.
#[derive(Debug, Clone, Default)]
pub struct BackgroundTasks {
    // Crate-visible so `bus` can add its subscriber loop (`on_notes`) without `service`
    // depending on `bus`.
    pub(crate) tracker: TaskTracker,
    pub(crate) stop: CancellationToken,
}

/// When a periodic task first runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRun {
    /// At once, then every period (sweepers that clean up after a previous process).
    Now,
    /// After one period (reloads of what the service just loaded).
    AfterPeriod,
}

impl BackgroundTasks {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `tick(service)` every `period` until the service is dropped or [`Self::stop`] is
    /// called. A tick that overruns delays the next one rather than bunching them up.
    pub fn every<S, F, Fut>(
        &self,
        name: &'static str,
        period: Duration,
        first: FirstRun,
        service: &Arc<S>,
        tick: F,
    ) where
        S: Send + Sync + 'static,
        F: Fn(Arc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let weak: Weak<S> = Arc::downgrade(service);
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            let start = match first {
                FirstRun::Now => tokio::time::Instant::now(),
                FirstRun::AfterPeriod => tokio::time::Instant::now() + period,
            };
            let mut interval =
                tokio::time::interval_at(start, period.max(Duration::from_millis(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let Some(service) = weak.upgrade() else { break };
                tracing::trace!(task = name, "background tick");
                tick(service).await;
            }
        });
    }

    /// Runs `task` once, tracked so shutdown waits for it (a note being published, say).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// How many tasks are running (for gauges).
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Stops every task: no new tick starts, and a tick in progress may finish within `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tracker.len(),
                "background tasks still running at shutdown"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn every_service_name_parses_and_unknown_ones_are_explained() {
        assert_eq!("relay".parse::<ServiceName>(), Ok(ServiceName::Relay));
        for name in ServiceName::BUILT {
            assert_eq!(name.as_str().parse::<ServiceName>(), Ok(*name));
        }
        // Every service of the platform is built now: none is refused as planned.
        assert_eq!(ServiceName::ALL.len(), ServiceName::BUILT.len());
        let unknown = "usr".parse::<ServiceName>().map_err(|e| e.to_string());
        assert!(
            unknown
                .as_ref()
                .is_err_and(|e| e.contains("available: gateway, file, user")),
            "{unknown:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_tasks_tick_and_stop() {
        let counter = Arc::new(AtomicU32::new(0));
        let tasks = BackgroundTasks::new();
        tasks.every(
            "count",
            Duration::from_secs(10),
            FirstRun::AfterPeriod,
            &counter,
            |c| async move {
                c.fetch_add(1, Ordering::SeqCst);
            },
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(counter.load(Ordering::SeqCst), 0, "waits one period first");
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(counter.load(Ordering::SeqCst), 2);
        assert_eq!(tasks.len(), 1);
        tasks.stop(Duration::from_secs(1)).await;
        assert!(tasks.is_empty());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(counter.load(Ordering::SeqCst), 2, "no tick after stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_service_ends_its_tasks() {
        let service = Arc::new(AtomicU32::new(0));
        let tasks = BackgroundTasks::new();
        tasks.every(
            "x",
            Duration::from_secs(1),
            FirstRun::Now,
            &service,
            |_| async {},
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(service);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(tasks.is_empty());
    }
}
