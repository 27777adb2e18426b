//! The single-flight coordinator: the state every caller of a [`RemoteJwks`](super::RemoteJwks)
//! shares, which refreshes to admit (rate limit, remembered unknown `kid`s), and waiting for the
//! attempt that answers them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::config::Config;
use super::{MAX_REMEMBERED_KIDS, TARGET};
use crate::error::{KeyError, KeyErrorKind};
use crate::keys::{KeySet, RefreshReason};
use crate::metrics::{Refresh, SourceMetrics};

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) keys: ArcSwapOption<KeySet>,
    /// Bumped after every new key set is stored (see `KeySource::key_set_version`).
    pub(super) version: AtomicU64,
    /// Whether the background task was spawned: the request path's only other check.
    pub(super) started: AtomicBool,
    pub(super) state: Mutex<State>,
    /// The outcome of the latest attempt, for waiting callers.
    pub(super) attempts: watch::Sender<Attempt>,
    /// Wakes the background task for an on-demand fetch (or to notice the provider is gone).
    pub(super) wake: Arc<Notify>,
    /// This source's metric keys (see [`crate::metrics`]).
    pub(super) metrics: SourceMetrics,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) worker: Option<tokio::task::JoinHandle<()>>,
    /// A fetch was asked for and the background task has not started it yet.
    pub(super) requested: bool,
    pub(super) in_flight: bool,
    /// Attempts completed: the generation of the latest [`Attempt`].
    pub(super) completed: u64,
    pub(super) consecutive_failures: u32,
    pub(super) last_error: Option<KeyError>,
    pub(super) last_success: Option<(SystemTime, Instant)>,
    /// When the current run of failures began (the first failure after a success, or ever).
    pub(super) failing_since: Option<SystemTime>,
    /// When the background task plans its next attempt (unless asked for one sooner).
    pub(super) next_attempt: Option<Instant>,
    pub(super) last_on_demand: Option<Instant>,
    /// `kid`s not in the set after a fetch made for them; cleared when a fetch brings a new set.
    pub(super) unknown_kids: HashSet<Box<str>>,
    /// The discovery document's issuer, once read.
    pub(super) issuer: Option<String>,
}

#[derive(Clone, Default)]
pub(super) struct Attempt {
    pub(super) generation: u64,
    pub(super) error: Option<KeyError>,
}

/// What [`Shared::admit`] decided about a refresh.
pub(super) enum Admit {
    /// Answer now.
    Done(Result<Arc<KeySet>, KeyError>),
    /// Wait for the attempt of this generation; `fresh` when it starts after the call (rather
    /// than being in flight already).
    Wait { generation: u64, fresh: bool },
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The background task holds only a weak reference; wake it so it exits now.
        self.wake.notify_one();
    }
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared state of a new provider with this configuration (no task started yet).
    pub(super) fn new(config: Config) -> Self {
        let metrics = SourceMetrics::new(&config.metrics_label());
        Shared {
            metrics,
            config,
            keys: ArcSwapOption::empty(),
            version: AtomicU64::new(0),
            started: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            attempts: watch::Sender::new(Attempt::default()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Decides whether a refresh fetches, joins the fetch in flight, or is answered at once.
    pub(super) fn admit(
        &self,
        current: Option<Arc<KeySet>>,
        reason: &RefreshReason,
        kid: Option<&str>,
    ) -> Admit {
        let mut state = self.lock();
        let pending = state.requested || state.in_flight;
        let next = Admit::Wait {
            generation: state.completed + 1,
            fresh: !state.in_flight,
        };
        let Some(set) = current else {
            if pending {
                return next;
            }
            if let Some(error) = &state.last_error {
                // Cold start, endpoint down: the background task retries with backoff.
                return Admit::Done(Err(error.clone()));
            }
            self.request(&mut state);
            return next;
        };
        if *reason == RefreshReason::NoKeys || kid.is_some_and(|kid| set.contains_kid(kid)) {
            return Admit::Done(Ok(set));
        }
        if pending {
            return next;
        }
        if let Some(kid) = kid.filter(|kid| state.unknown_kids.contains(*kid)) {
            tracing::trace!(target: TARGET, kid, "kid still unknown since the last fetch; not refreshing");
            self.metrics.refresh(Refresh::UnknownKid);
            return Admit::Done(Ok(set));
        }
        let now = Instant::now();
        let interval = self.config.min_refresh_interval;
        if let Some(last) = state
            .last_on_demand
            .filter(|at| now.duration_since(*at) < interval)
        {
            tracing::debug!(
                target: TARGET,
                ?reason,
                retry_in_ms = (interval - now.duration_since(last)).as_millis(),
                "on-demand key refresh declined (rate limit)"
            );
            self.metrics.refresh(Refresh::RateLimited);
            return Admit::Done(Ok(set));
        }
        tracing::info!(target: TARGET, ?reason, "refreshing keys on demand");
        self.metrics.refresh(Refresh::Started);
        state.last_on_demand = Some(now);
        self.request(&mut state);
        next
    }

    pub(super) fn request(&self, state: &mut State) {
        state.requested = true;
        self.wake.notify_one();
    }

    /// The outcome of the attempt of generation `target` (or a later one).
    pub(super) async fn next_attempt(&self, target: u64) -> Attempt {
        let mut outcomes = self.attempts.subscribe();
        let attempt = outcomes
            .wait_for(|a| a.generation >= target)
            .await
            .map(|a| a.clone());
        // The sender lives in `self`, so the channel cannot close while we wait.
        attempt.unwrap_or_default()
    }

    /// Waits (bounded) for the attempt a refresh joined, then answers it.
    pub(super) async fn wait(
        self: Arc<Self>,
        target: u64,
        kid: Option<String>,
    ) -> Result<Arc<KeySet>, KeyError> {
        let bound = self.config.attempt_bound();
        let attempt = match tokio::time::timeout(bound, self.next_attempt(target)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt {
                generation: target,
                error: Some(KeyError::new(
                    KeyErrorKind::Timeout,
                    format!("key refresh did not finish within {bound:?}"),
                )),
            },
        };
        let current = self.keys.load_full();
        if let (None, Some(kid), Some(set)) = (&attempt.error, kid, &current)
            && !set.contains_kid(&kid)
        {
            let mut state = self.lock();
            if state.unknown_kids.len() < MAX_REMEMBERED_KIDS
                && state.unknown_kids.insert(kid.into())
            {
                self.metrics.unknown_kid_remembered();
            }
        }
        match (current, attempt.error) {
            (Some(set), _) => Ok(set),
            (None, Some(error)) => Err(error),
            (None, None) => Err(KeyError::new(KeyErrorKind::Other, "no key set was loaded")),
        }
    }

    /// Marks a fetch as started if one is due (`force`) or was asked for.
    pub(super) fn begin(&self, force: bool) -> bool {
        let mut state = self.lock();
        if !(force || state.requested) {
            return false;
        }
        state.requested = false;
        state.in_flight = true;
        true
    }
}

pub(super) fn no_runtime() -> KeyError {
    KeyError::new(
        KeyErrorKind::Other,
        "no Tokio runtime: remote keys are fetched by a background task",
    )
}
