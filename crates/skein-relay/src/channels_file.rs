//! Channels as code, kept in step with a file (`relay.channels_file`): the document is applied
//! at start and again whenever its content changes (GitOps: a ConfigMap or a checkout mounted
//! into the pod), with keys read from the environment variables it names.
//!
//! Every instance watches the file; one at a time applies it, under a lease row in the
//! database (`relay_leases`), so two instances starting together cannot both create the same
//! new channel. An instance that did not get the lease tries again on its next check; applying
//! what another instance already applied changes nothing. A file that cannot be read or
//! applied leaves the stored state as it was, and the error is kept for the admin console.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use skein_core::i18n::Lang;
use skein_core::ids::{ms_to_rfc3339, new_id, now_ms};
use skein_db::{Db, DbResult, sqlx};
use utoipa::ToSchema;

use crate::RelayService;
use crate::declared;

/// How long an instance holds the lease while it applies the file.
const LEASE_MS: i64 = 60_000;

/// The file's settings, from `relay.channels_file*`.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// The document.
    pub path: PathBuf,
    /// Whether what the file leaves out is removed.
    pub prune: bool,
    /// How often the file is read for changes.
    pub every: Duration,
}

/// What this instance last did with the file.
#[derive(Debug, Default)]
pub struct FileState {
    /// This instance's name in the lease.
    holder: String,
    /// The content last applied (its hash). A refused one is tried again on every check (a
    /// database fault passes), and its error logged only when it changes.
    applied: Option<u64>,
    status: FileStatus,
}

impl FileState {
    /// A state for a new instance.
    pub fn new() -> Mutex<FileState> {
        Mutex::new(FileState {
            holder: new_id(),
            ..FileState::default()
        })
    }
}

/// The file as the admin console shows it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct FileStatus {
    /// The file (`null` when no file is set).
    pub path: Option<String>,
    /// Whether what the file leaves out is removed.
    pub prune: bool,
    /// When this instance last read it (RFC 3339).
    pub checked_at: Option<String>,
    /// When its current content was last applied here (RFC 3339).
    pub applied_at: Option<String>,
    /// What that apply changed (`+ channel x`, `~ price y (input_per_mtok)`); empty when it
    /// already matched.
    pub changes: Vec<String>,
    /// Why the current content could not be read or applied (`null` when it was).
    pub error: Option<String>,
}

/// A hash of the file's content (not for security: only to notice a change).
fn content_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Reads the file and applies it if its content changed since it was last settled here.
pub async fn reconcile(svc: &RelayService, settings: &FileSettings) {
    let now = now_ms();
    let text = match tokio::fs::read_to_string(&settings.path).await {
        Ok(text) => text,
        Err(error) => {
            let message = format!("cannot read {}: {error}", settings.path.display());
            record(svc, settings, now, Err(message));
            return;
        }
    };
    let hash = content_hash(&text);
    let applied = svc.channels_file.lock().ok().and_then(|s| s.applied);
    if applied == Some(hash) {
        if let Ok(mut state) = svc.channels_file.lock() {
            state.status.checked_at = Some(ms_to_rfc3339(now));
        }
        return;
    }
    let declared = match declared::from_file_text(&settings.path, &text) {
        Ok(declared) => declared,
        Err(error) => {
            record(svc, settings, now, Err(error.message(Lang::En).to_string()));
            return;
        }
    };
    let holder = holder(svc);
    match take_lease(&svc.db, "channels_file", &holder, LEASE_MS).await {
        Ok(true) => {}
        // Another instance is applying it: try again on the next check.
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "could not take the channels file lease");
            return;
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let applied = declared::apply(svc, &declared, &env, false, settings.prune).await;
    if let Err(error) = release_lease(&svc.db, "channels_file", &holder).await {
        tracing::warn!(%error, "could not release the channels file lease; it lapses on its own");
    }
    match applied {
        Ok(plan) => {
            let changes: Vec<String> = plan
                .changes
                .iter()
                .zip(plan.lines())
                .filter(|(c, _)| c.action != "keep")
                .map(|(_, line)| line)
                .collect();
            if !changes.is_empty() {
                tracing::info!(file = %settings.path.display(), changes = changes.len(), "channels file applied");
            }
            record(svc, settings, now, Ok((hash, changes)));
        }
        Err(error) => record(svc, settings, now, Err(error.message(Lang::En).to_string())),
    }
}

/// Notes what a check did: applied the content of this hash (with its changes), or refused
/// it (why; logged when the reason changes).
fn record(
    svc: &RelayService,
    settings: &FileSettings,
    now: i64,
    outcome: Result<(u64, Vec<String>), String>,
) {
    let Ok(mut state) = svc.channels_file.lock() else {
        return;
    };
    state.status.checked_at = Some(ms_to_rfc3339(now));
    match outcome {
        Ok((hash, changes)) => {
            state.applied = Some(hash);
            state.status.applied_at = Some(ms_to_rfc3339(now));
            state.status.changes = changes;
            state.status.error = None;
        }
        Err(error) => {
            if state.status.error.as_deref() != Some(error.as_str()) {
                tracing::warn!(file = %settings.path.display(), %error, "channels file not applied; the stored channels are kept");
            }
            state.status.error = Some(error);
        }
    }
}

/// The file's status on this instance.
pub fn status(svc: &RelayService, settings: Option<&FileSettings>) -> FileStatus {
    let mut status = svc
        .channels_file
        .lock()
        .map(|s| s.status.clone())
        .unwrap_or_default();
    status.path = settings.map(|s| s.path.display().to_string());
    status.prune = settings.is_some_and(|s| s.prune);
    status
}

/// This instance's name in the deployment's leases.
pub(crate) fn holder(svc: &RelayService) -> String {
    svc.channels_file
        .lock()
        .map(|s| s.holder.clone())
        .unwrap_or_default()
}

/// Takes the deployment-wide lease `name` for `ms` (false while another holder has it).
pub(crate) async fn take_lease(db: &Db, name: &str, holder: &str, ms: i64) -> DbResult<bool> {
    let now = now_ms();
    let done = sqlx::query(
        "INSERT INTO relay_leases (name, holder, until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = $2, until_ms = $3 \
         WHERE relay_leases.until_ms < $4 OR relay_leases.holder = $2",
    )
    .bind(name)
    .bind(holder)
    .bind(now + ms)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease back at once.
async fn release_lease(db: &Db, name: &str, holder: &str) -> DbResult<()> {
    sqlx::query("UPDATE relay_leases SET until_ms = 0 WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(db.pool())
        .await?;
    Ok(())
}
