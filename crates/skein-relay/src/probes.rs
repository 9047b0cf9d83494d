//! Probes of every model of a channel: a one-token chat per model, on demand from the admin
//! console and, when `relay.model_probe_interval_secs` is set, on a schedule. A channel that
//! answers one of its models and fails another (an account without access to the newer
//! model, a mapping to a retired name) shows it per model before a user finds out.
//!
//! Results are stored per channel and model (`relay_model_probes`), so the admin view on any
//! instance shows the last probe. The instance that probes also feeds each result to its
//! routing measurements of that model on that channel (a failure counts as an error, an
//! answer as a latency sample); the other instances keep measuring their own traffic. The
//! scheduled round runs on one instance at a time, under a lease in `relay_leases`, so a
//! deployment of several instances pays for one probe per model per period. Probes are the
//! vendor's tokens, not a user's: they are not billed to anyone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use skein_core::ids::{ms_to_rfc3339, now_ms};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use crate::RelayService;
use crate::channels::{self, ChannelRow, ChannelStatus};

/// Probes in flight at once within a round (each is one small upstream request).
const CONCURRENCY: usize = 4;

/// Most models of one channel probed at once: a channel listing hundreds (an aggregator's
/// whole catalogue) is probed on its first ones, and the view says how many were left.
pub const MAX_MODELS: usize = 100;

/// How long a probe's failure message may be, in characters.
const MESSAGE_CHARS: usize = 300;

/// The last probe of one model on one channel.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelProbe {
    /// The model as requests name it (the channel's mapping applied when sent).
    pub model: String,
    /// Whether the upstream answered it with a choice.
    pub ok: bool,
    /// Time to the whole (one-token) answer, ms.
    pub latency_ms: i64,
    /// `ok`, or why it failed (the upstream's status and error, cut short).
    pub message: String,
    /// When it ran (RFC 3339).
    pub at: String,
}

/// A channel's probes, one per model it lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelProbes {
    /// The channel.
    pub channel_id: String,
    /// The last probe of each model the channel lists now, in the channel's order; models
    /// never probed are left out.
    pub items: Vec<ModelProbe>,
    /// Models the channel lists beyond [`MAX_MODELS`], not probed.
    pub models_left_out: usize,
}

/// Probes every model `row` lists (up to [`MAX_MODELS`]), stores and answers the results.
pub async fn probe_channel(svc: &RelayService, row: &ChannelRow) -> DbResult<ChannelProbes> {
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let left_out = models.len().saturating_sub(MAX_MODELS);
    let Some(channel) = channels::live(row, &svc.vault) else {
        return Ok(ChannelProbes {
            channel_id: row.id.clone(),
            items: Vec::new(),
            models_left_out: left_out,
        });
    };
    let results: Vec<(ModelProbe, i64)> =
        futures::stream::iter(models.into_iter().take(MAX_MODELS))
            .map(|model| {
                let channel = channel.clone();
                async move {
                    let started = Instant::now();
                    let outcome = crate::upstream::probe(&svc.http, &channel, &model).await;
                    let took = started.elapsed();
                    match &outcome {
                        Ok(()) => {
                            svc.routing_stats
                                .success(&channel.id, &model, took, Instant::now())
                        }
                        Err(_) => svc
                            .routing_stats
                            .failure(&channel.id, &model, Instant::now()),
                    }
                    let at = now_ms();
                    let probe = ModelProbe {
                        model,
                        ok: outcome.is_ok(),
                        latency_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
                        message: match outcome {
                            Ok(()) => "ok".into(),
                            Err(reason) => reason.chars().take(MESSAGE_CHARS).collect(),
                        },
                        at: ms_to_rfc3339(at),
                    };
                    (probe, at)
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
    for (probe, at) in &results {
        store(&svc.db, &row.id, probe, *at).await?;
    }
    Ok(ChannelProbes {
        channel_id: row.id.clone(),
        items: results.into_iter().map(|(probe, _)| probe).collect(),
        models_left_out: left_out,
    })
}

/// The stored probes of `row`'s models, in the channel's order.
pub async fn stored(db: &Db, row: &ChannelRow) -> DbResult<ChannelProbes> {
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let rows: Vec<(String, i64, i64, String, i64)> = sqlx::query_as(
        "SELECT model, ok, latency_ms, message, at_ms FROM relay_model_probes WHERE channel_id = $1",
    )
    .bind(&row.id)
    .fetch_all(db.pool())
    .await?;
    let items = models
        .iter()
        .filter_map(|m| rows.iter().find(|r| &r.0 == m))
        .map(|(model, ok, latency_ms, message, at)| ModelProbe {
            model: model.clone(),
            ok: *ok != 0,
            latency_ms: *latency_ms,
            message: message.clone(),
            at: ms_to_rfc3339(*at),
        })
        .collect();
    Ok(ChannelProbes {
        channel_id: row.id.clone(),
        items,
        models_left_out: models.len().saturating_sub(MAX_MODELS),
    })
}

async fn store(db: &Db, channel_id: &str, probe: &ModelProbe, at_ms: i64) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO relay_model_probes (channel_id, model, ok, latency_ms, message, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (channel_id, model) DO UPDATE SET ok = $3, latency_ms = $4, message = $5, at_ms = $6",
    )
    .bind(channel_id)
    .bind(&probe.model)
    .bind(i64::from(probe.ok))
    .bind(probe.latency_ms)
    .bind(&probe.message)
    .bind(at_ms)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The scheduled round: every model of every enabled channel, on the instance that takes the
/// lease for the period (`every`); the others skip this period.
pub async fn scheduled_round(svc: &Arc<RelayService>, every: Duration) {
    let holder = crate::channels_file::holder(svc);
    // Held for most of the period and not given back: another instance whose timer fires a
    // moment later finds it taken and does not probe the same models again.
    let hold = i64::try_from(every.as_millis()).unwrap_or(i64::MAX) * 9 / 10;
    match crate::channels_file::take_lease(&svc.db, "model_probes", &holder, hold).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "could not take the model probe lease");
            return;
        }
    }
    let rows = match channels::all(&svc.db).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "could not read the channels to probe");
            return;
        }
    };
    let (mut ok, mut failed) = (0usize, 0usize);
    for row in rows.iter().filter(|r| r.status == ChannelStatus::Enabled) {
        match probe_channel(svc, row).await {
            Ok(probes) => {
                for p in &probes.items {
                    if p.ok {
                        ok += 1;
                    } else {
                        failed += 1;
                        tracing::warn!(channel = %row.id, model = %p.model, reason = %p.message, "a model failed its probe");
                    }
                }
            }
            Err(error) => tracing::warn!(channel = %row.id, %error, "could not store model probes"),
        }
    }
    tracing::info!(ok, failed, "model probes done");
}
