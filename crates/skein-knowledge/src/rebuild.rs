//! Rebuilds of bases' in-memory copies (the lexical index, the vectors) off the request path.
//!
//! **Why:** reading a base of 100,000 chunks into memory took 4–21 s (debug build), and it
//! used to happen inside the first search after the base changed, so that search waited for
//! it. Now a search that finds no current copy starts a rebuild here and answers from the
//! database (or, for vectors, from the previous copy) without waiting; the next searches use
//! the new copy once it is in place.
//!
//! At most one rebuild per base runs at a time (a second request for the same base while one
//! runs is dropped), and one at a time in all (so two large bases never hold two transient
//! copies at once). A copy found larger than the memory budget at a stamp is remembered as
//! refused, so searches at that stamp go straight to the database instead of reading the whole
//! base again on every search; a new stamp (the base changed) tries again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use skein_core::service::BackgroundTasks;

/// What one rebuild came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built<S> {
    /// The copy at this stamp is in the cache.
    Kept,
    /// The copy at this stamp is larger than the budget: not kept, not tried again at it.
    TooLarge(S),
}

/// Rebuild counts, for the runtime report and tests.
#[derive(Debug, Default)]
pub struct Counts {
    /// Rebuilds started.
    pub started: AtomicU64,
    /// Rebuilds that put a copy in the cache.
    pub kept: AtomicU64,
    /// Rebuilds whose copy was over the budget.
    pub refused: AtomicU64,
    /// Rebuilds that failed (the database; retried at the next search).
    pub failed: AtomicU64,
}

struct State<S> {
    running: HashSet<String>,
    refused: HashMap<String, S>,
}

/// Background rebuilds of one kind of copy, keyed by base.
pub struct Rebuilds<S> {
    state: Arc<Mutex<State<S>>>,
    /// One rebuild at a time in all.
    one_at_a_time: Arc<tokio::sync::Mutex<()>>,
    tasks: BackgroundTasks,
    counts: Arc<Counts>,
}

impl<S> Clone for Rebuilds<S> {
    fn clone(&self) -> Self {
        Rebuilds {
            state: self.state.clone(),
            one_at_a_time: self.one_at_a_time.clone(),
            tasks: self.tasks.clone(),
            counts: self.counts.clone(),
        }
    }
}

impl<S: PartialEq + Clone + Send + 'static> Rebuilds<S> {
    /// Rebuilds run as tasks of `tasks` (the service's, so shutdown waits for them).
    pub fn new(tasks: BackgroundTasks) -> Self {
        Rebuilds {
            state: Arc::new(Mutex::new(State {
                running: HashSet::new(),
                refused: HashMap::new(),
            })),
            one_at_a_time: Arc::new(tokio::sync::Mutex::new(())),
            tasks,
            counts: Arc::new(Counts::default()),
        }
    }

    /// Whether the base's copy at `stamp` was found too large for the budget.
    pub fn refused(&self, base_id: &str, stamp: &S) -> bool {
        self.state
            .lock()
            .map(|s| s.refused.get(base_id) == Some(stamp))
            .unwrap_or(false)
    }

    /// Whether a rebuild of the base is running.
    pub fn running(&self, base_id: &str) -> bool {
        self.state
            .lock()
            .map(|s| s.running.contains(base_id))
            .unwrap_or(false)
    }

    /// Starts `build` for the base in the background unless one is already running for it.
    pub fn start<F, Fut, E>(&self, base_id: &str, build: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Built<S>, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if !state.running.insert(base_id.to_string()) {
            return;
        }
        drop(state);
        self.counts.started.fetch_add(1, Ordering::Relaxed);
        let (this, base_id) = (self.clone(), base_id.to_string());
        self.tasks.spawn(async move {
            let outcome = {
                let _one = this.one_at_a_time.lock().await;
                build().await
            };
            let Ok(mut state) = this.state.lock() else {
                return;
            };
            state.running.remove(&base_id);
            match outcome {
                Ok(Built::Kept) => {
                    state.refused.remove(&base_id);
                    this.counts.kept.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Built::TooLarge(stamp)) => {
                    tracing::info!(base_id = %base_id, "a base's in-memory copy is over the budget; it is searched in the database");
                    state.refused.insert(base_id, stamp);
                    this.counts.refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(base_id = %base_id, error = %e, "an in-memory copy of a base could not be rebuilt");
                    this.counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }

    /// Runs `build` now, on the caller's task (a benchmark or an evaluation warming a base
    /// before it measures), recording its outcome like a background rebuild.
    pub async fn run_now<Fut, E>(&self, base_id: &str, build: Fut) -> Result<Built<S>, E>
    where
        Fut: Future<Output = Result<Built<S>, E>>,
    {
        let outcome = {
            let _one = self.one_at_a_time.lock().await;
            build.await
        };
        if let Ok(mut state) = self.state.lock() {
            match &outcome {
                Ok(Built::Kept) => {
                    state.refused.remove(base_id);
                }
                Ok(Built::TooLarge(stamp)) => {
                    state.refused.insert(base_id.to_string(), stamp.clone());
                }
                Err(_) => {}
            }
        }
        outcome
    }

    /// Forgets what it knew of a base (deleted).
    pub fn forget(&self, base_id: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.refused.remove(base_id);
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settled(r: &Rebuilds<i64>, base: &str) {
        for _ in 0..200 {
            if !r.running(base) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the rebuild never ended");
    }

    #[tokio::test]
    async fn one_rebuild_per_base_and_a_refusal_is_kept_per_stamp() {
        let r: Rebuilds<i64> = Rebuilds::new(BackgroundTasks::new());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        r.start("b", move || async move {
            let _ = rx.await;
            Ok::<_, String>(Built::TooLarge(7))
        });
        // A second request while the first runs is dropped (its build would panic).
        r.start("b", || async {
            panic!("a second rebuild of the same base ran");
            #[allow(unreachable_code)]
            Ok::<_, String>(Built::Kept)
        });
        assert!(r.running("b"));
        assert!(!r.refused("b", &7));
        let _ = tx.send(());
        settled(&r, "b").await;
        assert!(r.refused("b", &7));
        assert!(!r.refused("b", &8));
        assert_eq!(r.counts().started.load(Ordering::Relaxed), 1);
        assert_eq!(r.counts().refused.load(Ordering::Relaxed), 1);
        // The base changed and now fits: the refusal is lifted.
        r.start("b", || async { Ok::<_, String>(Built::Kept) });
        settled(&r, "b").await;
        assert!(!r.refused("b", &7));
        assert_eq!(r.counts().kept.load(Ordering::Relaxed), 1);
        // A failure is counted and leaves nothing running.
        r.start("b", || async {
            Err::<Built<i64>, _>("database down".to_string())
        });
        settled(&r, "b").await;
        assert_eq!(r.counts().failed.load(Ordering::Relaxed), 1);
    }
}
