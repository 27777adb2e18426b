//! The verified-token cache (off by default; see
//! [`ValidateJwtBuilder::with_token_cache`](crate::ValidateJwtBuilder::with_token_cache)).
//!
//! A client sends the same access token on every request for as long as it lives (an hour for
//! Azure AD), so most of a busy service's signature checks repeat one already made. With the
//! cache on, a token that passed every check of the layer (signature, `typ`, time, issuer,
//! audience, synchronous requirements) is remembered, and the next request carrying exactly
//! the same bytes gets the same [`Claims`] back after a byte comparison and a time check (and,
//! the first time on a thread, a hash and a lock): a quarter of a microsecond instead of 15–200.
//!
//! # Design
//!
//! * **Key.** The exact token bytes. A 64-bit hash picks the shard and the slot; a hit needs the
//!   stored token to be byte-for-byte equal to the presented one, so a hash collision is only a
//!   miss. The hash is std's SipHash-1-3 with a per-process random key ([`RandomState`]) over
//!   the token's length and its signature segment (its last segment, which no two distinct
//!   signed tokens share); see [`TokenCache::hash`]. An attacker who makes colliding tokens only
//!   makes lookups that miss: nothing is inserted before every check passed, and a slot holds
//!   one entry, so there are no chains to grow.
//! * **Time.** Every hit checks `exp` and `nbf` against the layer's [`Clock`](crate::Clock) with
//!   the layer's leeway, exactly as a fresh validation does. An entry that fails is dropped and
//!   the request is validated from scratch (which then reports the precise error). Expired
//!   entries are the first to be evicted.
//! * **Keys.** An entry remembers which key set every provider had when the token was checked:
//!   its [`key_set_version`](crate::KeySource::key_set_version) (static keys and JWKS URLs
//!   track one), or else the set itself as a [`Weak`] (so an old set's keys are not kept alive
//!   and its address cannot be reused). A hit compares them with the providers' current ones;
//!   any change — a rotation, a refresh, a key removed — drops the entry, and the token is
//!   verified again against the new keys.
//! * **Requirements.** They are part of the layer's configuration, so a cached token has met
//!   the synchronous ones. Asynchronous requirements
//!   ([`Requirement::async_predicate`](crate::Requirement::async_predicate), typically a
//!   revocation check) are run again on every request, cached or not.
//! * **Bounds.** At most `capacity` entries, split over up to 16 shards (of at least 64), each a
//!   [`Mutex`] held for a lookup or an insert only (never across a signature check or an await).
//!   Eviction is CLOCK (second chance): a slot hit since the hand last passed survives one more
//!   round, a token seen once does not, and an expired entry goes first. Each entry holds one
//!   copy of the token and the [`Claims`] (the decoded payload), so memory is bounded by
//!   `capacity × (2 × the largest accepted token + about 200 bytes)`.
//! * **Threads.** A token a thread looks up again soon after (within its last
//!   [`FRONT_SLOTS`] lookups) is also kept in a small front cache of that thread ([`FRONT_SLOTS`] entries per thread, shared by
//!   every cache, CLOCK again), with that thread's own copy of the claims. Its next hits on that thread take no
//!   lock and write nothing another thread reads: a byte comparison, a version load per
//!   provider, the time check, and a reference count only this thread touches. The same
//!   freshness checks run on every front hit. Hit counters are striped by thread. Without the
//!   front cache, one hot token on a multi-core server would make every core queue on one
//!   shard's lock and one reference count. It adds at most `FRONT_SLOTS ×` (2 × the largest
//!   accepted token + about 200 bytes) per thread.
//!
//! ```
//! use validate_jwt::{StaticKeys, ValidateJwtLayer};
//!
//! let layer = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .add_audience("api://echo")
//!     .with_token_cache(10_000)
//!     .build()
//!     .unwrap();
//! let stats = layer.token_cache_stats().unwrap();
//! assert_eq!((stats.len, stats.capacity, stats.hits, stats.misses), (0, 10_000, 0, 0));
//! ```
//!
//! (Long because the shared shards and the per-thread front cache keep one set of invariants
//! together; about a sixth of the file is its tests.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::claims::Claims;
use crate::keys::{KeySet, KeySource};
use crate::metrics;

/// The most shards a cache is split into.
const MAX_SHARDS: usize = 16;
/// The fewest entries a shard is made for (below that, CLOCK has too few slots to tell a hot
/// token from a one-off).
const MIN_SHARD_CAPACITY: usize = 64;

/// How many bytes at the end of the token are hashed when it has no `.` in its last
/// [`SIGNATURE_HASH_WINDOW`] bytes (never for a token that passed validation).
const SIGNATURE_HASH_WINDOW: usize = 1400;

/// The size and counters of a layer's verified-token cache, from
/// [`ValidateJwtLayer::token_cache_stats`](crate::ValidateJwtLayer::token_cache_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenCacheStats {
    /// Entries held now.
    pub len: usize,
    /// The most entries the cache holds.
    pub capacity: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not (and went on to a full validation).
    pub misses: u64,
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One remembered validation.
struct Entry {
    hash: u64,
    token: Box<[u8]>,
    claims: Claims,
    /// Each provider's key set when the token was checked.
    stamps: Stamps,
    /// `exp + leeway` in seconds since the epoch (infinite without `exp`): the entry is useless
    /// from then on.
    useless_at: f64,
    /// CLOCK's reference bit: hit since the hand last passed.
    referenced: bool,
}

/// Which key set each provider had when a token was checked: its version where the provider
/// tracks one ([`KeySource::key_set_version`], a plain load to compare), else the set itself,
/// held weakly (`None`: the provider had none).
#[derive(Clone)]
pub(crate) enum Stamp {
    Version(u64),
    Set(Option<Weak<KeySet>>),
}

pub(crate) type Stamps = Box<[Stamp]>;

/// The providers' stamps now, for [`TokenCache::remember`]. Taken *before* a validation, so a set replaced meanwhile makes
/// the entry stale rather than wrongly fresh.
pub(crate) fn stamps(providers: &[Arc<dyn KeySource>]) -> Stamps {
    providers
        .iter()
        .map(|p| match p.key_set_version() {
            Some(version) => Stamp::Version(version),
            None => Stamp::Set(p.current().as_ref().map(Arc::downgrade)),
        })
        .collect()
}

/// Whether every provider still has the key set it had when `stamps` were taken.
fn still_current(stamps: &[Stamp], providers: &[Arc<dyn KeySource>]) -> bool {
    stamps.len() == providers.len()
        && stamps
            .iter()
            .zip(providers)
            .all(|(stamp, provider)| match stamp {
                Stamp::Version(then) => provider.key_set_version() == Some(*then),
                Stamp::Set(then) => match (then, provider.current()) {
                    (None, None) => true,
                    (Some(then), Some(now)) => std::ptr::eq(then.as_ptr(), Arc::as_ptr(&now)),
                    _ => false,
                },
            })
}

struct Shard {
    /// Hash → slot.
    index: HashMap<u64, usize, BuildHasherDefault<PassThrough>>,
    slots: Vec<Option<Entry>>,
    capacity: usize,
    len: usize,
    /// CLOCK's hand: the next slot considered for eviction.
    hand: usize,
    hits: u64,
    misses: u64,
}

impl Shard {
    fn remove(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot).and_then(Option::take) {
            self.index.remove(&entry.hash);
            self.len -= 1;
            metrics::cache_entries(-1.0);
        }
    }

    /// A free slot, evicting if the shard is full.
    fn free_slot(&mut self, now: f64) -> usize {
        if self.slots.len() < self.capacity {
            self.slots.push(None);
            return self.slots.len() - 1;
        }
        // Two turns at most: the first clears every reference bit.
        for _ in 0..2 * self.capacity {
            let slot = self.hand;
            self.hand = (self.hand + 1) % self.capacity;
            match &mut self.slots[slot] {
                None => return slot,
                Some(e) if e.referenced && e.useless_at > now => e.referenced = false,
                Some(_) => {
                    self.remove(slot);
                    metrics::cache_eviction();
                    return slot;
                }
            }
        }
        // Unreachable (every bit is clear after one turn); evict under the hand anyway.
        let slot = self.hand;
        self.remove(slot);
        metrics::cache_eviction();
        slot
    }
}

/// A lookup that found nothing: what [`TokenCache::remember`] needs to file the token after a
/// full validation (its hash, computed once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Miss(u64);

/// The cache itself: a store of validated tokens, `lookup` and `remember`. What "still good"
/// means (the time rule) is the caller's, passed in; the cache only adds that the key sets the
/// token was checked with are still the current ones.
pub(crate) struct TokenCache {
    /// Tells this cache's entries apart in the threads' front caches.
    id: u64,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    capacity: usize,
    /// Front-cache hits, striped by thread.
    front_hits: Box<[Padded]>,
}

/// Locks a shard; a panic while it was held cannot leave it inconsistent in a way that matters
/// for a cache (every mutation keeps `index` and `slots` in step), so poisoning is ignored.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for TokenCache {
    fn drop(&mut self) {
        // Its entries leave the entries gauge with it.
        let len: usize = self.shards.iter().map(|shard| lock(shard).len).sum();
        if len > 0 {
            metrics::cache_entries(-(len as f64));
        }
    }
}

impl TokenCache {
    /// A cache of at most `capacity` entries; `None` for zero (off).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        // A power of two, each shard holding at least MIN_SHARD_CAPACITY entries (or all).
        let shards = 1usize << (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS).ilog2();
        let shards = (0..shards)
            .map(|i| {
                let capacity = capacity / shards + usize::from(i < capacity % shards);
                Mutex::new(Shard {
                    index: HashMap::default(),
                    slots: Vec::new(),
                    capacity,
                    len: 0,
                    hand: 0,
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Some(TokenCache {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            shards,
            hasher: RandomState::new(),
            capacity,
            front_hits: (0..STRIPES).map(|_| Padded::default()).collect(),
        })
    }

    /// The bucket hash of a token: keyed SipHash of its length and its signature segment.
    ///
    /// Hashing the whole 1–2 KB token would cost about a microsecond; the signature segment
    /// (43–342 characters) is what distinguishes signed tokens, and the comparison on a hit is
    /// over every byte anyway.
    fn hash(&self, token: &[u8]) -> u64 {
        let window = &token[token.len().saturating_sub(SIGNATURE_HASH_WINDOW)..];
        let tail = match window.iter().rposition(|b| *b == b'.') {
            Some(dot) => &window[dot..],
            None => window,
        };
        let mut h = self.hasher.build_hasher();
        h.write_usize(token.len());
        h.write(tail);
        h.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // The shard from high bits; the map's own buckets use the low ones.
        &self.shards[(hash >> 40) as usize & (self.shards.len() - 1)]
    }

    /// The claims of `token` if it was validated under the current key sets and is still
    /// within its time bounds, with the entry's stamps when `with_stamps` (for the front cache).
    fn get(
        &self,
        hash: u64,
        token: &[u8],
        providers: &[Arc<dyn KeySource>],
        fresh: &dyn Fn(&Claims) -> bool,
        with_stamps: bool,
    ) -> Option<(Claims, Option<Stamps>)> {
        let mut shard = lock(self.shard(hash));
        if let Some(&slot) = shard.index.get(&hash)
            && let Some(entry) = shard.slots[slot].as_mut()
            && *entry.token == *token
        {
            if still_current(&entry.stamps, providers) && fresh(&entry.claims) {
                entry.referenced = true;
                let stamps = with_stamps.then(|| entry.stamps.clone());
                let found = (entry.claims.clone(), stamps);
                shard.hits += 1;
                return Some(found);
            }
            // Stale: the keys changed or the token expired. Validate it afresh.
            shard.remove(slot);
        }
        shard.misses += 1;
        None
    }

    /// Remembers a validated token. `stamps` were taken *before* the validation; `useless_at`
    /// is when the token stops passing the time rule (`exp` + leeway), for eviction.
    pub(crate) fn remember(
        &self,
        miss: Miss,
        token: &[u8],
        claims: Claims,
        stamps: Stamps,
        useless_at: f64,
        now: u64,
    ) {
        let hash = miss.0;
        let entry = Entry {
            hash,
            token: token.into(),
            claims,
            stamps,
            useless_at,
            referenced: false,
        };
        let mut shard = lock(self.shard(hash));
        let slot = match shard.index.get(&hash) {
            // The same token validated twice concurrently, or a colliding one: replace.
            Some(&slot) => slot,
            None => {
                let slot = shard.free_slot(now as f64);
                shard.index.insert(hash, slot);
                shard.len += 1;
                metrics::cache_entries(1.0);
                slot
            }
        };
        shard.slots[slot] = Some(entry);
    }

    pub(crate) fn stats(&self) -> TokenCacheStats {
        let mut stats = TokenCacheStats {
            len: 0,
            capacity: self.capacity,
            hits: self
                .front_hits
                .iter()
                .map(|h| h.0.load(Ordering::Relaxed))
                .sum(),
            misses: 0,
        };
        for shard in self.shards.iter() {
            let shard = lock(shard);
            stats.len += shard.len;
            stats.hits += shard.hits;
            stats.misses += shard.misses;
        }
        stats
    }

    /// The remembered claims of exactly these token bytes, if they were validated under the
    /// current key sets of `providers` and `fresh` still holds for them (the caller's time
    /// rule); otherwise a [`Miss`] to [`remember`](Self::remember) the token with after a full
    /// validation. Hits are counted.
    pub(crate) fn lookup(
        &self,
        token: &[u8],
        providers: &[Arc<dyn KeySource>],
        fresh: &dyn Fn(&Claims) -> bool,
    ) -> Result<Claims, Miss> {
        if let Some(claims) = self.front_get(token, providers, fresh) {
            let stripe = STRIPE.try_with(|s| *s).unwrap_or(0) % self.front_hits.len();
            self.front_hits[stripe].0.fetch_add(1, Ordering::Relaxed);
            metrics::cache_hit(true);
            return Ok(claims);
        }
        let hash = self.hash(token);
        let hot = self.front_admits(hash);
        let found = self.get(hash, token, providers, fresh, hot);
        match &found {
            Some(_) => metrics::cache_hit(false),
            None => metrics::cache_miss(),
        }
        match found {
            Some((claims, None)) => Ok(claims),
            Some((claims, Some(stamps))) => {
                // Hot on this thread: it keeps its own copy, so that its next hits share
                // nothing with other threads (not even a reference count).
                let own = claims.deep_copy();
                self.front_put(token, own.clone(), stamps);
                Ok(own)
            }
            None => Err(Miss(hash)),
        }
    }

    /// A [`Miss`] for a token that was not looked up (validated on another path).
    pub(crate) fn miss(&self, token: &[u8]) -> Miss {
        Miss(self.hash(token))
    }

    /// This thread's front entry for `token`, if fresh; a stale one is dropped.
    fn front_get(
        &self,
        token: &[u8],
        providers: &[Arc<dyn KeySource>],
        fresh: &dyn Fn(&Claims) -> bool,
    ) -> Option<Claims> {
        FRONT
            .try_with(|front| {
                let mut front = front.try_borrow_mut().ok()?;
                let i = front
                    .slots
                    .iter()
                    .position(|e| e.cache == self.id && *e.token == *token)?;
                let entry = &mut front.slots[i];
                if still_current(&entry.stamps, providers) && fresh(&entry.claims) {
                    entry.referenced = true;
                    return Some(entry.claims.clone());
                }
                front.slots.swap_remove(i);
                front.hand = 0;
                None
            })
            .ok()
            .flatten()
    }

    /// Whether a token missing from this thread's front cache is hot enough to go in: this
    /// thread looked it up within its last [`FRONT_SLOTS`] lookups (so it would have stayed in
    /// a front cache that size), as told by a small direct-mapped record of recent lookups.
    /// Many distinct tokens each seen now and then (many clients) so never churn the front
    /// cache with copies; one token seen again and again gets in on its first shared-cache hit
    /// after it was validated.
    fn front_admits(&self, hash: u64) -> bool {
        let key = hash ^ self.id.rotate_left(32);
        FRONT
            .try_with(|front| {
                let Ok(mut front) = front.try_borrow_mut() else {
                    return false;
                };
                front.lookups = front.lookups.wrapping_add(1);
                let now = front.lookups;
                let slot = (key % RECENT as u64) as usize;
                let (seen, at) = front.recent[slot];
                if seen == key && now.wrapping_sub(at) <= FRONT_SLOTS as u32 {
                    front.recent[slot] = (0, 0);
                    true
                } else {
                    front.recent[slot] = (key, now);
                    false
                }
            })
            .unwrap_or(false)
    }

    /// Keeps a token this thread has seen at least twice in its front cache (CLOCK over
    /// [`FRONT_SLOTS`] slots, shared by every cache on the thread).
    fn front_put(&self, token: &[u8], claims: Claims, stamps: Stamps) {
        let entry = FrontEntry {
            cache: self.id,
            token: token.into(),
            claims,
            stamps,
            referenced: false,
        };
        let _ = FRONT.try_with(|front| {
            let Ok(mut front) = front.try_borrow_mut() else {
                return;
            };
            if front.slots.len() < FRONT_SLOTS {
                front.slots.push(entry);
                return;
            }
            // Two turns at most: the first clears every reference bit.
            for _ in 0..2 * FRONT_SLOTS {
                let slot = front.hand % FRONT_SLOTS;
                front.hand = (slot + 1) % FRONT_SLOTS;
                if let Some(e) = front.slots.get_mut(slot) {
                    if e.referenced {
                        e.referenced = false;
                    } else {
                        *e = entry;
                        return;
                    }
                }
            }
        });
    }
}

/// Entries per thread in the front cache.
const FRONT_SLOTS: usize = 8;

/// A token this thread has seen validated and then hit again, with its own copy of the
/// claims. Used without any lock or shared write: a front hit is a byte comparison, a version
/// load per provider, a time check, and a reference count only this thread touches.
struct FrontEntry {
    /// Which [`TokenCache`] it belongs to ([`TokenCache::id`], never reused).
    cache: u64,
    token: Box<[u8]>,
    claims: Claims,
    stamps: Stamps,
    referenced: bool,
}

struct Front {
    slots: Vec<FrontEntry>,
    hand: usize,
    /// Front-cache misses on this thread, and when each recent one was (see
    /// `TokenCache::front_admits`).
    lookups: u32,
    recent: [(u64, u32); RECENT],
}

/// How many recent lookups a thread remembers when deciding what is hot.
const RECENT: usize = 64;

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front {
            slots: Vec::new(),
            hand: 0,
            lookups: 0,
            recent: [(0, 0); RECENT],
        })
    };
    /// This thread's hit counter stripe.
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed);
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Hit-counter stripes (each on its own cache line, so threads do not share one).
const STRIPES: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims::from_unverified_json(format!(r#"{{"sub":"s","exp":{exp}}}"#).as_bytes()).unwrap()
    }

    fn cache(capacity: usize) -> TokenCache {
        TokenCache::new(capacity).unwrap()
    }

    fn put(c: &TokenCache, token: &[u8], exp: u64, now: u64) {
        c.remember(
            c.miss(token),
            token,
            claims(exp),
            Box::new([]),
            exp as f64,
            now,
        );
    }

    #[test]
    fn zero_capacity_is_off() {
        assert!(TokenCache::new(0).is_none());
    }

    #[test]
    fn shards_never_outnumber_the_capacity() {
        for capacity in [1, 2, 3, 5, 15, 16, 17, 128, 1000, 100_003] {
            let c = cache(capacity);
            let total: usize = c.shards.iter().map(|s| lock(s).capacity).sum();
            assert_eq!(total, capacity);
            assert!(c.shards.iter().all(|s| lock(s).capacity >= 1));
        }
    }

    #[test]
    fn the_capacity_bound_holds_under_many_inserts() {
        for capacity in [1, 7, 64] {
            let c = cache(capacity);
            for i in 0..10 * capacity + 3 {
                put(&c, format!("h.p.sig{i}").as_bytes(), 2_000, 1_000);
                assert!(c.stats().len <= capacity);
            }
            assert!(c.stats().len >= capacity / 2, "{capacity}: {:?}", c.stats());
        }
    }

    #[test]
    fn the_hash_covers_the_signature_and_the_length() {
        let c = cache(4);
        assert_eq!(c.hash(b"a.b.sig"), c.hash(b"a.b.sig"));
        assert_ne!(c.hash(b"a.b.sig"), c.hash(b"a.b.sih"));
        // Same signature, different payload length: different buckets.
        assert_ne!(c.hash(b"a.bb.sig"), c.hash(b"a.b.sig"));
    }

    #[test]
    fn referenced_entries_survive_an_eviction_round() {
        // One shard of two: the hit entry stays, the one-off goes.
        let c = cache(1);
        put(&c, b"a.b.one", 2_000, 1_000);
        {
            let mut s = lock(&c.shards[0]);
            s.slots[0].as_mut().unwrap().referenced = true;
            s.capacity = 2;
        }
        put(&c, b"a.b.two", 2_000, 1_000);
        put(&c, b"a.b.three", 2_000, 1_000);
        let s = lock(&c.shards[0]);
        let held: Vec<&[u8]> = s.slots.iter().flatten().map(|e| &*e.token).collect();
        assert!(held.contains(&&b"a.b.one"[..]), "{held:?}");
        assert!(held.contains(&&b"a.b.three"[..]), "{held:?}");
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let c = cache(1);
        lock(&c.shards[0]).capacity = 2;
        put(&c, b"a.b.old", 1_500, 1_000);
        put(&c, b"a.b.live", 9_000, 1_000);
        for e in lock(&c.shards[0]).slots.iter_mut().flatten() {
            e.referenced = true;
        }
        put(&c, b"a.b.new", 9_000, 2_000);
        let s = lock(&c.shards[0]);
        let held: Vec<&[u8]> = s.slots.iter().flatten().map(|e| &*e.token).collect();
        assert!(!held.contains(&&b"a.b.old"[..]), "{held:?}");
        assert_eq!(s.len, 2);
        assert_eq!(s.index.len(), 2);
    }
}
