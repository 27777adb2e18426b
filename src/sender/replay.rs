//! Replay protection for DPoP proofs: each proof is accepted once within its validity window.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What [`ReplayStore::check_and_insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::exhaustive_enums,
    reason = "a key is either new or seen before: there is no third answer to add"
)]
pub enum ReplayOutcome {
    /// The key was not seen within its window; it is now recorded.
    Fresh,
    /// The key was already recorded: the proof is a replay.
    Replayed,
}

/// A replay store could not answer (unreachable, timed out, full).
///
/// ```
/// use validate_jwt::sender::ReplayStoreError;
/// let err = ReplayStoreError::new("redis timed out");
/// assert_eq!(err.to_string(), "redis timed out");
/// ```
#[derive(Debug, Clone)]
pub struct ReplayStoreError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ReplayStoreError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ReplayStoreError {
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying error, reachable through [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

impl fmt::Display for ReplayStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReplayStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The future of [`ReplayStore::check_and_insert`].
pub type ReplayFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ReplayOutcome, ReplayStoreError>> + Send + 'a>>;

/// Remembers DPoP proofs seen within their validity window, so each is accepted once.
///
/// The layer calls [`check_and_insert`](Self::check_and_insert) once per accepted proof, with
/// a key derived from the proof's key and `jti` (43 base64url characters) and the time the
/// proof stays acceptable. Check and insert must be one atomic step (Redis `SET NX`), so two
/// replicas racing with one proof cannot both see it as fresh. The crate ships
/// [`InMemoryReplayStore`] (the default; one process) and, with the `redis` feature,
/// `RedisReplayStore` (every replica behind a load balancer shares one view).
///
/// ```
/// use std::time::Duration;
/// use validate_jwt::sender::{InMemoryReplayStore, ReplayOutcome, ReplayStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = InMemoryReplayStore::new();
/// let ttl = Duration::from_secs(120);
/// assert_eq!(store.check_and_insert("k", ttl).await.unwrap(), ReplayOutcome::Fresh);
/// assert_eq!(store.check_and_insert("k", ttl).await.unwrap(), ReplayOutcome::Replayed);
/// # }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for `ttl` unless it is recorded already, atomically; says which.
    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a>;
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        (**self).check_and_insert(key, ttl)
    }
}

/// The default number of proofs an [`InMemoryReplayStore`] remembers at once.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// A replay store in this process's memory: bounded, expired entries dropped. Right for one
/// replica; behind a load balancer, each replica would accept a proof replayed to another
/// (use `RedisReplayStore`, feature `redis`).
///
/// When it holds `capacity` live entries it refuses to record more (an error, answered as
/// the store's failure mode says), rather than forget a live one and let its replay through.
///
/// ```
/// use validate_jwt::sender::{Dpop, InMemoryReplayStore};
/// let dpop = Dpop::allowed().with_replay_store(InMemoryReplayStore::with_capacity(10_000));
/// # let _ = dpop;
/// ```
#[derive(Clone)]
pub struct InMemoryReplayStore {
    inner: Arc<Mutex<Memory>>,
    capacity: usize,
}

struct Memory {
    seen: HashMap<Box<str>, Instant>,
    next_sweep: Option<Instant>,
}

impl fmt::Debug for InMemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for InMemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

/// How often expired entries are dropped when the store is not full.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl InMemoryReplayStore {
    /// A store of [`DEFAULT_REPLAY_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store of at most `capacity` live entries (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryReplayStore {
            inner: Arc::new(Mutex::new(Memory {
                seen: HashMap::new(),
                next_sweep: None,
            })),
            capacity: capacity.max(1),
        }
    }

    /// How many entries it holds (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic elsewhere while holding the lock leaves the map consistent (every operation
        // is a single insert or retain): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, key: &str, ttl: Duration) -> Result<ReplayOutcome, ReplayStoreError> {
        let now = Instant::now();
        let mut memory = self.lock();
        let sweep_due = memory.next_sweep.is_none_or(|at| now >= at);
        if sweep_due || memory.seen.len() >= self.capacity {
            memory.seen.retain(|_, expires| *expires > now);
            memory.next_sweep = Some(now + SWEEP_EVERY);
        }
        if let Some(expires) = memory.seen.get(key)
            && *expires > now
        {
            return Ok(ReplayOutcome::Replayed);
        }
        if memory.seen.len() >= self.capacity && !memory.seen.contains_key(key) {
            return Err(ReplayStoreError::new(format!(
                "the in-memory replay store is full ({} live proofs)",
                self.capacity
            )));
        }
        memory.seen.insert(key.into(), now + ttl);
        Ok(ReplayOutcome::Fresh)
    }
}

impl ReplayStore for InMemoryReplayStore {
    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        let outcome = self.check(key, ttl);
        Box::pin(std::future::ready(outcome))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_fresh_once_within_its_ttl_and_again_after_it() {
        let store = InMemoryReplayStore::new();
        let ttl = Duration::from_secs(10);
        assert_eq!(store.check("a", ttl).unwrap(), ReplayOutcome::Fresh);
        assert_eq!(store.check("a", ttl).unwrap(), ReplayOutcome::Replayed);
        assert_eq!(store.check("b", ttl).unwrap(), ReplayOutcome::Fresh);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(store.check("a", ttl).unwrap(), ReplayOutcome::Fresh);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_drops_expired_entries_and_refuses_rather_than_forget_live_ones() {
        let store = InMemoryReplayStore::with_capacity(2);
        let ttl = Duration::from_secs(10);
        store.check("a", ttl).unwrap();
        store.check("b", ttl).unwrap();
        assert!(store.check("c", ttl).is_err());
        // "a" is still remembered: never evicted to make room.
        assert_eq!(store.check("a", ttl).unwrap(), ReplayOutcome::Replayed);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(store.check("c", ttl).unwrap(), ReplayOutcome::Fresh);
        assert_eq!(store.len(), 1);
    }
}
