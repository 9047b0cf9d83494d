//! Many instances, one truth: the bus that tells every instance of a deployment what another
//! changed (see `skein_core::bus` and ARCHITECTURE.md, "Many instances").
//!
//! Which bus: Redis pub/sub when `redis.url` is set (no size limit on a note, and chat's live
//! deltas stay off the database); else PostgreSQL `LISTEN/NOTIFY` on PostgreSQL (the one
//! thing every instance of a deployment shares anyway); else none — one process on SQLite has
//! no one to tell.

use std::sync::Arc;

use anyhow::Context;
use skein_core::bus::{Bus, LocalBus};
use skein_db::{Backend, Db};

use crate::compose::Wiring;
use crate::config::Config;

/// The deployment's bus, as configured.
pub async fn connect_bus(config: &Config, db: &Db) -> anyhow::Result<Arc<dyn Bus>> {
    let bus: Arc<dyn Bus> = match (&config.redis.url, db.backend(), &config.database.url) {
        (Some(url), _, _) => skein_gateway::bus::RedisBus::start(url, &config.redis.key_prefix)
            .await
            .context("cannot subscribe to Redis for the instances' bus")?,
        (None, Backend::Postgres, Some(url)) => skein_db::bus::PgBus::start(url, db.clone())
            .await
            .context("cannot listen on PostgreSQL for the instances' bus")?,
        _ => Arc::new(LocalBus::default()),
    };
    tracing::info!(bus = bus.kind(), "instances share changes over this bus");
    Ok(bus)
}

/// Has every service and cache built in `wiring` join `bus`.
pub fn join(wiring: &Wiring, bus: &Arc<dyn Bus>) {
    if let Some(users) = &wiring.user_service {
        users.join_bus(bus.clone());
    }
    if let Some(users) = &wiring.remote_users {
        users.join_bus(bus.clone());
    }
    if let Some(settings) = &wiring.remote_settings {
        settings.join_bus(bus.clone());
    }
    if let Some(billing) = &wiring.billing_service {
        billing.join_bus(bus.clone());
    }
    if let Some(relay) = &wiring.relay_service {
        relay.join_bus(bus.clone());
    }
    if let Some(chat) = &wiring.chat_service {
        chat.join_bus(bus.clone());
    }
}
