//! The background task of a [`RemoteJwks`](super::RemoteJwks): one attempt at a time (the
//! discovery document, then the key set), publishing each outcome and scheduling the next.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::HeaderValue;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::{Config, Source};
use super::coordinator::{Attempt, Shared};
use super::{BACKOFF_MAX, BACKOFF_START, TARGET};
use crate::error::{KeyError, KeyErrorKind};
use crate::keys::discovery::{Discovery, Document};
use crate::keys::fetch::{self, display_url};
use crate::keys::{IssuerPattern, KeySet};

impl Shared {
    /// Makes sure the background task runs; `false` outside a Tokio runtime.
    pub(super) fn start(self: &Arc<Self>) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut state = self.lock();
        // A task that finished was dropped with its runtime: start another in this one.
        if state.worker.as_ref().is_some_and(|w| !w.is_finished()) {
            return true;
        }
        state.requested = true;
        state.in_flight = false;
        let task = run(Arc::downgrade(self), self.wake.clone());
        state.worker = Some(runtime.spawn(task));
        self.started.store(true, Ordering::Relaxed);
        true
    }

    /// One attempt: the discovery document (if any), then the key set.
    pub(super) async fn fetch(&self, cache: &mut Cache) -> Result<Outcome, KeyError> {
        let config = &self.config;
        let (jwks_uri, issuer) = match &config.source {
            Source::Jwks(url) => (url.clone(), None),
            Source::Discovery(discovery) => {
                let document = cache.document(discovery, config).await?;
                (document.jwks_uri.clone(), Some(document.issuer.clone()))
            }
        };
        let etag = cache
            .jwks
            .as_ref()
            .filter(|(url, _)| *url == jwks_uri)
            .map(|(_, etag)| etag);
        tracing::debug!(target: TARGET, url = %display_url(&jwks_uri), "fetching key set");
        let fetched = fetch::get(&config.client, &jwks_uri, etag, &config.limits).await?;
        let set = match fetched.body {
            None => None,
            Some(body) => {
                let mut set = KeySet::from_jwks_limited(&body, config.max_keys)?;
                // The issuers this source publishes the set for (see src/issuer.rs).
                let patterns: Arc<[IssuerPattern]> = if config.for_issuers.is_empty() {
                    issuer
                        .iter()
                        .chain(&config.also_accept)
                        .map(|i| IssuerPattern::new(i))
                        .collect()
                } else {
                    config
                        .for_issuers
                        .iter()
                        .map(|i| IssuerPattern::new(i))
                        .collect()
                };
                if !patterns.is_empty() {
                    set = set.published_for(patterns);
                }
                cache.jwks = fetched.etag.map(|etag| (jwks_uri.clone(), etag));
                Some(set)
            }
        };
        Ok(Outcome {
            jwks_uri,
            set,
            max_age: fetched.max_age,
            issuer,
        })
    }

    /// Publishes an attempt's outcome and says when the next one is due.
    pub(super) fn finish(&self, result: Result<Outcome, KeyError>, started: Instant) -> Instant {
        let now = Instant::now();
        let mut state = self.lock();
        state.in_flight = false;
        state.completed += 1;
        let (next, error) = match result {
            Ok(outcome) => {
                let ttl = self.config.ttl(outcome.max_age);
                let url = display_url(&outcome.jwks_uri);
                let took = now.duration_since(started);
                let duration_ms = took.as_millis();
                let modified = outcome.set.is_some();
                if let Some(set) = outcome.set {
                    let old = self.keys.load_full();
                    let old_kids: HashSet<&str> = old.iter().flat_map(|s| s.kids()).collect();
                    let new_kids: HashSet<&str> = set.kids().collect();
                    let added: Vec<&str> = set.kids().filter(|k| !old_kids.contains(k)).collect();
                    let removed: Vec<&str> = old
                        .iter()
                        .flat_map(|s| s.kids())
                        .filter(|k| !new_kids.contains(k))
                        .collect();
                    tracing::info!(
                        target: TARGET,
                        url = %url,
                        duration_ms,
                        keys = set.len(),
                        ?added,
                        ?removed,
                        ttl_secs = ttl.as_secs(),
                        "key set fetched"
                    );
                    self.keys.store(Some(Arc::new(set)));
                    // After the store: a reader that sees the new version sees the new set.
                    self.version.fetch_add(1, Ordering::Release);
                    state.unknown_kids.clear();
                } else {
                    tracing::debug!(target: TARGET, url = %url, duration_ms, ttl_secs = ttl.as_secs(), "key set not modified");
                }
                if outcome.issuer.is_some() {
                    state.issuer = outcome.issuer;
                }
                state.consecutive_failures = 0;
                state.last_error = None;
                state.last_success = Some((SystemTime::now(), now));
                state.failing_since = None;
                let keys = self.keys.load().as_ref().map_or(0, |set| set.len());
                self.metrics.fetched(modified, keys, took);
                (now + jittered(ttl, 0.80, 0.95), None)
            }
            Err(error) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let failures = state.consecutive_failures;
                if state.failing_since.is_none() {
                    state.failing_since = Some(SystemTime::now());
                }
                self.metrics
                    .failed(error.kind(), failures, now.duration_since(started));
                let exponent = failures.saturating_sub(1).min(5);
                let retry_in =
                    jittered((BACKOFF_START * (1 << exponent)).min(BACKOFF_MAX), 0.8, 1.0);
                let cause = std::error::Error::source(&error).map(ToString::to_string);
                match state.last_success {
                    Some((_, at)) => tracing::warn!(
                        target: TARGET,
                        %error,
                        cause,
                        failures,
                        stale_secs = now.duration_since(at).as_secs(),
                        retry_in_ms = retry_in.as_millis(),
                        "key refresh failed; still using the last good key set"
                    ),
                    None => tracing::warn!(
                        target: TARGET,
                        %error,
                        cause,
                        failures,
                        retry_in_ms = retry_in.as_millis(),
                        "key fetch failed; no key set yet"
                    ),
                }
                state.last_error = Some(error.clone());
                (now + retry_in, Some(error))
            }
        };
        state.next_attempt = Some(next);
        self.attempts.send_replace(Attempt {
            generation: state.completed,
            error,
        });
        next
    }
}

/// What the background task remembers between attempts.
#[derive(Default)]
pub(super) struct Cache {
    /// The last discovery document read, with its `ETag`.
    pub(super) document: Option<(Document, Option<HeaderValue>)>,
    /// The key set URL and `ETag` of the current key set.
    pub(super) jwks: Option<(Url, HeaderValue)>,
}

impl Cache {
    /// Fetches (or revalidates) the discovery document.
    pub(super) async fn document(
        &mut self,
        discovery: &Discovery,
        config: &Config,
    ) -> Result<&Document, KeyError> {
        let etag = self.document.as_ref().and_then(|(_, etag)| etag.as_ref());
        let url = discovery.url();
        tracing::debug!(target: TARGET, url = %display_url(url), "fetching discovery document");
        let fetched = fetch::get(&config.client, url, etag, &config.limits).await?;
        if let Some(body) = fetched.body {
            let document = discovery.read(&body, config.allow_http)?;
            self.document = Some((document, fetched.etag));
        }
        match &self.document {
            Some((document, _)) => Ok(document),
            // `get` reports 304 only when revalidating a document we hold.
            None => Err(KeyError::new(
                KeyErrorKind::Status,
                "unexpected 304 Not Modified",
            )),
        }
    }
}

pub(super) struct Outcome {
    pub(super) jwks_uri: Url,
    /// The new key set; `None` when the server answered 304 Not Modified.
    pub(super) set: Option<KeySet>,
    pub(super) max_age: Option<Duration>,
    pub(super) issuer: Option<String>,
}

/// The background task: fetches when a refresh is due or asked for, until the provider is
/// dropped.
pub(super) async fn run(provider: Weak<Shared>, wake: Arc<Notify>) {
    let mut cache = Cache::default();
    let mut due = Instant::now();
    loop {
        loop {
            let Some(shared) = provider.upgrade() else {
                return;
            };
            if shared.begin(false) {
                break;
            }
            drop(shared);
            let asked = tokio::time::timeout_at(due, wake.notified()).await.is_ok();
            if !asked {
                match provider.upgrade() {
                    Some(shared) if shared.begin(true) => break,
                    _ => return,
                }
            }
        }
        let Some(shared) = provider.upgrade() else {
            return;
        };
        let started = Instant::now();
        let result = shared.fetch(&mut cache).await;
        due = shared.finish(result, started);
    }
}

/// `duration` scaled by a random factor between `low` and `high`.
pub(super) fn jittered(duration: Duration, low: f64, high: f64) -> Duration {
    // Each `RandomState` is freshly keyed; hashing the clock adds variation between calls.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let bits = RandomState::new().hash_one(nanos) >> 11;
    let unit = bits as f64 / (1u64 << 53) as f64;
    duration.mul_f64(low + (high - low) * unit)
}
