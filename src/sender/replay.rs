//! Replay protection for DPoP proofs: each proof is accepted once within its validity window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

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

    /// Checks the store's own settings, once, when a layer is built with it
    /// ([`ValidateJwtBuilder::build`](crate::ValidateJwtBuilder::build)): a setting out of
    /// range is a [`ConfigError`] there rather than a failure of every request. The default
    /// accepts every store.
    fn check_settings(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        (**self).check_and_insert(key, ttl)
    }

    fn check_settings(&self) -> Result<(), ConfigError> {
        (**self).check_settings()
    }
}

/// The default number of proofs an [`InMemoryReplayStore`] remembers at once.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The longest an [`InMemoryReplayStore`] remembers a key: one day. A longer `ttl` (up to
/// `Duration::MAX`) is shortened to this; the layer asks for at most twice its proof window
/// and a second (about 20 minutes).
pub const MAX_REPLAY_TTL: Duration = Duration::from_secs(86_400);

/// A replay store in this process's memory: bounded, expired entries dropped. Right for one
/// replica; behind a load balancer, each replica would accept a proof replayed to another
/// (use `RedisReplayStore`, feature `redis`).
///
/// When it holds `capacity` live entries it refuses to record more (an error, answered as
/// the store's failure mode says), rather than forget a live one and let its replay through.
/// Entries are dropped as they expire, soonest first (`O(log n)` each, whatever order their
/// TTLs come in), so a full store costs no more per request than an empty one. Each key is
/// remembered for its `ttl`, at most [`MAX_REPLAY_TTL`].
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
    /// Each live key and when it expires.
    seen: HashMap<Arc<str>, Instant>,
    /// The same entries by expiry, soonest first (TTLs vary with each proof's `iat`, so
    /// insertion order is not expiry order).
    by_expiry: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
}

impl Memory {
    /// Drops every entry expired at `now`: amortised `O(log n)` per entry ever inserted.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((expires, _))) = self.by_expiry.peek()
            && *expires <= now
        {
            let Some(Reverse((expires, key))) = self.by_expiry.pop() else {
                break;
            };
            // Only the entry this heap item stands for (never a later one of the same key).
            if self.seen.get(&key) == Some(&expires) {
                self.seen.remove(&key);
            }
        }
    }
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

impl InMemoryReplayStore {
    /// A store of [`DEFAULT_REPLAY_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store of at most `capacity` live entries: 1 or more. A layer built with a store
    /// of capacity 0 is a [`ConfigError::InvalidSetting`] at `build()` (a store of capacity 0
    /// used on its own refuses every key as full).
    pub fn with_capacity(capacity: usize) -> Self {
        InMemoryReplayStore {
            inner: Arc::new(Mutex::new(Memory {
                seen: HashMap::new(),
                by_expiry: BinaryHeap::new(),
            })),
            capacity,
        }
    }

    /// How many live entries it holds.
    pub fn len(&self) -> usize {
        let mut memory = self.lock();
        memory.expire(Instant::now());
        memory.seen.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // A panic elsewhere while holding the lock leaves the store usable: an entry is
        // removed from the map only for its own heap item, and the map is consulted first
        // (at worst an entry is never dropped, or a heap item stands for nothing): keep it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self, key: &str, ttl: Duration) -> Result<ReplayOutcome, ReplayStoreError> {
        let now = Instant::now();
        let expires = now
            .checked_add(ttl.min(MAX_REPLAY_TTL))
            .ok_or_else(|| ReplayStoreError::new("the replay store's clock is out of range"))?;
        let mut memory = self.lock();
        // Every entry left is live.
        memory.expire(now);
        if memory.seen.contains_key(key) {
            return Ok(ReplayOutcome::Replayed);
        }
        if memory.seen.len() >= self.capacity {
            return Err(ReplayStoreError::new(format!(
                "the in-memory replay store is full ({} live proofs)",
                self.capacity
            )));
        }
        let key: Arc<str> = key.into();
        memory.seen.insert(key.clone(), expires);
        memory.by_expiry.push(Reverse((expires, key)));
        Ok(ReplayOutcome::Fresh)
    }
}

impl ReplayStore for InMemoryReplayStore {
    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        let outcome = self.check(key, ttl);
        Box::pin(std::future::ready(outcome))
    }

    fn check_settings(&self) -> Result<(), ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::InvalidSetting {
                setting: "InMemoryReplayStore::with_capacity",
                reason: "0 entries; at least 1 is needed".into(),
            });
        }
        Ok(())
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

    #[tokio::test(start_paused = true)]
    async fn entries_expire_in_expiry_order_not_insertion_order() {
        let store = InMemoryReplayStore::with_capacity(3);
        let secs = Duration::from_secs;
        store.check("long", secs(30)).unwrap();
        store.check("short", secs(10)).unwrap();
        store.check("middle", secs(20)).unwrap();
        assert_eq!(store.len(), 3);
        // Full: a fourth key is refused, and no live key is forgotten for it.
        assert!(store.check("d", secs(5)).is_err());
        tokio::time::advance(secs(10)).await;
        // "short" expired behind a longer-lived key inserted before it: dropped all the same.
        assert_eq!(store.len(), 2);
        assert_eq!(
            store.check("long", secs(30)).unwrap(),
            ReplayOutcome::Replayed
        );
        assert_eq!(
            store.check("middle", secs(30)).unwrap(),
            ReplayOutcome::Replayed
        );
        assert_eq!(store.check("d", secs(5)).unwrap(), ReplayOutcome::Fresh);
        assert!(store.check("e", secs(5)).is_err());
        tokio::time::advance(secs(10)).await;
        // "d" and "middle" (its first TTL: a replay never extends an entry) are gone.
        assert_eq!(store.len(), 1);
        assert_eq!(store.check("short", secs(5)).unwrap(), ReplayOutcome::Fresh);
        assert_eq!(
            store.check("middle", secs(5)).unwrap(),
            ReplayOutcome::Fresh
        );
        assert!(store.check("e", secs(5)).is_err());
        tokio::time::advance(secs(10)).await;
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_reinserted_after_expiry_keeps_its_new_ttl() {
        let store = InMemoryReplayStore::with_capacity(1);
        let secs = Duration::from_secs;
        store.check("a", secs(1)).unwrap();
        tokio::time::advance(secs(1)).await;
        assert_eq!(store.check("a", secs(100)).unwrap(), ReplayOutcome::Fresh);
        tokio::time::advance(secs(50)).await;
        assert_eq!(store.check("a", secs(1)).unwrap(), ReplayOutcome::Replayed);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ttl_of_duration_max_is_remembered_for_the_maximum_and_never_panics() {
        let store = InMemoryReplayStore::new();
        assert_eq!(
            store.check("k", Duration::MAX).unwrap(),
            ReplayOutcome::Fresh
        );
        assert_eq!(
            store.check("k", Duration::MAX).unwrap(),
            ReplayOutcome::Replayed
        );
        tokio::time::advance(MAX_REPLAY_TTL - Duration::from_secs(1)).await;
        assert_eq!(
            store.check("k", Duration::MAX).unwrap(),
            ReplayOutcome::Replayed
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            store.check("k", Duration::MAX).unwrap(),
            ReplayOutcome::Fresh
        );
        // Through the trait too.
        assert_eq!(
            store.check_and_insert("j", Duration::MAX).await.unwrap(),
            ReplayOutcome::Fresh
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_capacity_of_zero_is_a_settings_error_and_refuses_every_key_on_its_own() {
        let store = InMemoryReplayStore::with_capacity(0);
        assert!(matches!(
            store.check_settings(),
            Err(ConfigError::InvalidSetting {
                setting: "InMemoryReplayStore::with_capacity",
                ..
            })
        ));
        assert!(Arc::new(store.clone()).check_settings().is_err());
        assert!(store.check("a", Duration::from_secs(1)).is_err());
        assert!(
            InMemoryReplayStore::with_capacity(1)
                .check_settings()
                .is_ok()
        );
        assert!(InMemoryReplayStore::new().check_settings().is_ok());
    }
}
