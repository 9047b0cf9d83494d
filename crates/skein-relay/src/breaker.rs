//! Per-channel circuit breakers: after repeated failures a channel gets no traffic for a while,
//! then one trial request decides whether it is back. Kept in memory per instance: each
//! instance protects itself, and a failing upstream is left alone within seconds everywhere.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within [`WINDOW`] that open a breaker.
pub const FAILURES_TO_OPEN: u32 = 5;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(30);
/// How long an open breaker keeps traffic away before a trial request.
pub const OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
        since: Instant,
    },
    Open {
        until: Instant,
    },
    /// One trial request is in flight (since then; a trial that never reports back is
    /// forgotten after [`OPEN_FOR`]).
    HalfOpen {
        since: Instant,
    },
}

/// What a breaker says of a request to its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: the channel takes requests.
    Yes,
    /// Open past its time: this request is the one trial (see [`Breakers::admit_in_order`],
    /// which puts it first).
    Trial,
    /// Open, or its trial still running: the channel is left out.
    No,
}

/// The breakers of every channel.
#[derive(Default)]
pub struct Breakers {
    states: Mutex<HashMap<String, State>>,
    /// When each breaker that is not closed last changed state (ms), for the admin view.
    since: Mutex<HashMap<String, i64>>,
    /// Each channel's last failure (ms, reason), kept after the breaker closes so an admin
    /// sees what last went wrong. Bounded by the number of channels.
    last_error: Mutex<HashMap<String, (i64, String)>>,
}

/// A channel's breaker and failure state, for the admin view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Closed, open or half-open.
    pub status: Status,
    /// When it became open or half-open (ms); `None` when closed.
    pub since_ms: Option<i64>,
    /// The last failure on this instance: when (ms) and why.
    pub last_error: Option<(i64, String)>,
}

/// What a breaker says about a channel, for the admin view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Traffic flows.
    Closed,
    /// Traffic is kept away.
    Open,
    /// A trial request decides.
    HalfOpen,
}

/// What a breaker in `state` says of a request now (see [`Breakers::admit`]).
fn decide(state: Option<State>, now: Instant) -> Admit {
    match state {
        None | Some(State::Closed { .. }) => Admit::Yes,
        Some(State::Open { until }) if now >= until => Admit::Trial,
        Some(State::HalfOpen { since }) if now.duration_since(since) >= OPEN_FOR => Admit::Trial,
        Some(State::Open { .. } | State::HalfOpen { .. }) => Admit::No,
    }
}

impl Breakers {
    /// Channels with a breaker that is not plainly closed (for the runtime report).
    pub fn len(&self) -> usize {
        self.states.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Whether every breaker is closed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a request may go to `channel` now; an open breaker past its time lets exactly
    /// one trial request through.
    pub fn allow(&self, channel: &str, now: Instant) -> bool {
        self.admit(channel, now) != Admit::No
    }

    /// What the breaker says of a request to `channel` now: closed, the one trial of an open
    /// breaker past its time (half-open), or no.
    pub fn admit(&self, channel: &str, now: Instant) -> Admit {
        let Ok(mut states) = self.states.lock() else {
            return Admit::Yes;
        };
        let state = states.get(channel).copied();
        let admit = decide(state, now);
        if admit == Admit::Trial {
            // The trial is this request's: the next one finds it running.
            states.insert(channel.to_string(), State::HalfOpen { since: now });
            if matches!(state, Some(State::Open { .. })) {
                self.mark(channel, true);
            }
        }
        admit
    }

    /// `routed` (in the strategy's order) as one request tries them: at most `limit`, those
    /// whose breaker is open left out, and a breaker's trial first — a trial spent on a request
    /// another channel answered would tell nothing, and the channel would stay out. Answers
    /// the channels to try and those left out with why (`attempt_limit`, `circuit_open`).
    pub fn admit_in_order<T>(
        &self,
        routed: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
        limit: usize,
        now: Instant,
    ) -> (Vec<T>, Vec<(T, &'static str)>) {
        self.in_order(routed, id, limit, now, true)
    }

    /// [`Breakers::admit_in_order`] without taking any trial: for channels that may never be
    /// tried (a fallback model's, tried only if every channel before fails), which take their
    /// trial with [`Breakers::admit`] when they are. Taken here, a trial would be spent on
    /// every request that never reached the fallback, and the channel would stay out of its
    /// own model's traffic too.
    pub fn peek_in_order<T>(
        &self,
        routed: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
        limit: usize,
        now: Instant,
    ) -> (Vec<T>, Vec<(T, &'static str)>) {
        self.in_order(routed, id, limit, now, false)
    }

    /// What [`Breakers::admit`] would answer now, changing nothing.
    pub fn peek(&self, channel: &str, now: Instant) -> Admit {
        match self.states.lock() {
            Ok(states) => decide(states.get(channel).copied(), now),
            Err(_) => Admit::Yes,
        }
    }

    fn in_order<T>(
        &self,
        routed: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
        limit: usize,
        now: Instant,
        claim: bool,
    ) -> (Vec<T>, Vec<(T, &'static str)>) {
        let (mut tried, mut left) = (Vec::new(), Vec::new());
        let mut trials = 0;
        for item in routed {
            if tried.len() >= limit {
                left.push((item, "attempt_limit"));
                continue;
            }
            let admitted = if claim {
                self.admit(id(&item), now)
            } else {
                self.peek(id(&item), now)
            };
            match admitted {
                Admit::Yes => tried.push(item),
                Admit::Trial => {
                    tried.insert(trials, item);
                    trials += 1;
                }
                Admit::No => left.push((item, "circuit_open")),
            }
        }
        (tried, left)
    }

    /// The channel answered: close its breaker.
    pub fn success(&self, channel: &str) {
        if let Ok(mut states) = self.states.lock() {
            states.remove(channel);
        }
        self.mark(channel, false);
    }

    /// Remembers why `channel` last failed (any failure, including a dead key).
    pub fn note_error(&self, channel: &str, reason: &str) {
        if let Ok(mut errors) = self.last_error.lock() {
            errors.insert(
                channel.to_string(),
                (
                    skein_core::ids::now_ms(),
                    reason.chars().take(300).collect(),
                ),
            );
        }
    }

    /// The breaker's state, since when, and the last failure.
    pub fn detail(&self, channel: &str) -> Detail {
        let status = self.status(channel);
        let since_ms = if status == Status::Closed {
            None
        } else {
            self.since.lock().ok().and_then(|s| s.get(channel).copied())
        };
        let last_error = self
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.get(channel).cloned());
        Detail {
            status,
            since_ms,
            last_error,
        }
    }

    /// Records (or, once closed, forgets) when `channel`'s breaker changed state.
    fn mark(&self, channel: &str, changed: bool) {
        if let Ok(mut since) = self.since.lock() {
            if changed {
                since.insert(channel.to_string(), skein_core::ids::now_ms());
            } else {
                since.remove(channel);
            }
        }
    }

    /// The channel failed (connect error, timeout, 429, 5xx). Answers true when this failure
    /// opened the breaker.
    pub fn failure(&self, channel: &str, now: Instant) -> bool {
        let Ok(mut states) = self.states.lock() else {
            return false;
        };
        let next = match states.get(channel).copied() {
            Some(State::HalfOpen { .. }) => State::Open {
                until: now + OPEN_FOR,
            },
            Some(State::Closed { failures, since }) if now.duration_since(since) <= WINDOW => {
                if failures + 1 >= FAILURES_TO_OPEN {
                    State::Open {
                        until: now + OPEN_FOR,
                    }
                } else {
                    State::Closed {
                        failures: failures + 1,
                        since,
                    }
                }
            }
            Some(State::Open { until }) => State::Open { until },
            None | Some(State::Closed { .. }) => State::Closed {
                failures: 1,
                since: now,
            },
        };
        let opened = matches!(next, State::Open { .. })
            && !matches!(states.get(channel), Some(State::Open { .. }));
        states.insert(channel.to_string(), next);
        drop(states);
        if opened {
            self.mark(channel, true);
        }
        opened
    }

    /// The breaker's state for display.
    pub fn status(&self, channel: &str) -> Status {
        match self
            .states
            .lock()
            .ok()
            .and_then(|s| s.get(channel).copied())
        {
            Some(State::Open { .. }) => Status::Open,
            Some(State::HalfOpen { .. }) => Status::HalfOpen,
            _ => Status::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_repeated_failures_then_trials_one_request() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for i in 0..FAILURES_TO_OPEN - 1 {
            assert!(!b.failure("c", t0), "opened early at {i}");
            assert!(b.allow("c", t0));
        }
        assert!(b.failure("c", t0), "the fifth failure opens it");
        assert!(!b.allow("c", t0 + Duration::from_secs(1)));
        assert_eq!(b.status("c"), Status::Open);
        let later = t0 + OPEN_FOR;
        assert_eq!(
            b.admit("c", later),
            Admit::Trial,
            "one trial after the open period, said to be one (the plan tries it first)"
        );
        assert_eq!(b.admit("c", later), Admit::No, "but only one");
        assert_eq!(b.admit("other", later), Admit::Yes);
        b.failure("c", later);
        assert!(
            !b.allow("c", later + Duration::from_secs(1)),
            "a failed trial opens it again"
        );
        assert!(b.allow("c", later + OPEN_FOR));
        b.success("c");
        assert!(b.allow("c", later + OPEN_FOR) && b.status("c") == Status::Closed);
    }

    #[test]
    fn a_trial_goes_first_and_an_open_breaker_stays_out() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            b.failure("b", t0);
        }
        let order = |now| b.admit_in_order(["a", "b", "c"], |c| c, 5, now);
        assert_eq!(order(t0), (vec!["a", "c"], vec![("b", "circuit_open")]));
        // Past the open period b is the trial, tried before the channels ranked above it.
        assert_eq!(order(t0 + OPEN_FOR), (vec!["b", "a", "c"], vec![]));
        // One trial only: the next request leaves it out again.
        assert_eq!(order(t0 + OPEN_FOR).1, vec![("b", "circuit_open")]);
        // The limit leaves the rest out, and spends no trial on them.
        let (tried, left) = b.admit_in_order(["a", "c", "b"], |c| c, 2, t0 + OPEN_FOR * 3);
        assert_eq!(
            (tried, left),
            (vec!["a", "c"], vec![("b", "attempt_limit")])
        );
        assert_eq!(b.admit("b", t0 + OPEN_FOR * 3), Admit::Trial);
    }

    #[test]
    fn a_fallback_stage_looks_without_taking_the_trial() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            b.failure("x", t0);
        }
        let later = t0 + OPEN_FOR;
        // Planned as a fallback on many requests that never reach it: the trial stays.
        for _ in 0..3 {
            let (tried, left) = b.peek_in_order(["a", "x"], |c| c, 5, later);
            assert_eq!((tried, left), (vec!["x", "a"], vec![]));
        }
        assert_eq!(b.status("x"), Status::Open);
        // The first request that does try it takes the trial; the next finds it taken.
        assert_eq!(b.admit("x", later), Admit::Trial);
        assert_eq!(b.peek("x", later), Admit::No);
        assert_eq!(
            b.peek_in_order(["x"], |c| c, 5, later).1,
            vec![("x", "circuit_open")]
        );
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let b = Breakers::default();
        let t0 = Instant::now();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            b.failure("c", t0);
        }
        assert!(
            !b.failure("c", t0 + WINDOW + Duration::from_secs(1)),
            "a fresh window starts"
        );
        assert!(b.allow("c", t0 + WINDOW + Duration::from_secs(1)));
    }
}
