//! Verification keys and where they come from.
//!
//! A [`KeySet`] is an immutable snapshot of ready-parsed keys, indexed by `kid`. A
//! [`KeySource`] hands the request path the current snapshot without locks or awaits and is
//! asked for a refresh when a token names a key it does not know. This crate ships three
//! providers: [`StaticKeys`], [`RemoteJwks`] (a JWKS URL) and discovery through
//! [`RemoteJwks::discovery_url`] (OpenID Connect discovery or RFC 8414 metadata).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::error::{KeyError, KeyErrorKind};
pub(crate) use crate::issuer::{IssuerPattern, TENANT_PLACEHOLDER};

pub(crate) mod crypto;
mod discovery;
mod fetch;
pub(crate) mod jwk;
mod remote;
mod static_keys;

pub(crate) use fetch::is_loopback;
pub use remote::{KeySourceStatus, RemoteJwks, RemoteJwksBuilder};
pub use static_keys::StaticKeys;

use crypto::{KeyMaterial, Verifier};

/// The default cap on the number of keys read from one key set.
pub const DEFAULT_MAX_KEYS: usize = 100;

/// One verification key, parsed once and bound to its algorithm(s) (and, when its JWK names
/// one, its own `issuer`).
///
/// Build keys with [`StaticKeys`]; key sets fetched from the network are parsed by the providers.
#[derive(Clone)]
pub struct Key {
    pub(crate) kid: Option<Box<str>>,
    family: KeyFamily,
    /// The JWK's `alg`, when it named one: then the key verifies exactly that algorithm.
    alg: Option<Algorithm>,
    algorithms: AlgorithmSet,
    verifier: Verifier,
    /// The JWK's own `issuer` member: it narrows the key's source's issuers, never widens them.
    pub(crate) jwk_issuer: Option<IssuerPattern>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .field("jwk_issuer", &self.jwk_issuer)
            .finish_non_exhaustive()
    }
}

impl Key {
    pub(crate) fn from_material(
        material: KeyMaterial,
        alg: Option<Algorithm>,
    ) -> Result<Key, KeyError> {
        crypto::check_material(&material)
            .map_err(|e| KeyError::new(KeyErrorKind::InvalidKey, e))?;
        let family = material.family();
        let algorithms = match alg {
            Some(alg) if alg.family() != family => {
                return Err(KeyError::new(
                    KeyErrorKind::InvalidKey,
                    format!("algorithm {alg} does not fit this key"),
                ));
            }
            // An Ed25519 key named `EdDSA` or `Ed25519` verifies both names of its algorithm.
            Some(_) if family == KeyFamily::Ed25519 => {
                AlgorithmSet::of([Algorithm::EdDSA, Algorithm::Ed25519])
            }
            Some(alg) => AlgorithmSet::of([alg]),
            None => AlgorithmSet::of(
                Algorithm::ALL
                    .iter()
                    .copied()
                    .filter(|a| a.family() == family),
            ),
        };
        let verifier = Verifier::new(&material, algorithms)
            .map_err(|e| KeyError::new(KeyErrorKind::InvalidKey, e))?;
        Ok(Key {
            kid: None,
            family,
            alg,
            algorithms,
            verifier,
            jwk_issuer: None,
        })
    }

    /// The key's id (`kid`), if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm the key is bound to, when its JWK (or configuration) named one.
    /// Without it the key verifies the algorithms of its type: RSA keys RS*/PS*, P-256 keys ES256,
    /// P-384 keys ES384, Ed25519 keys EdDSA and Ed25519 (RFC 9864), HMAC secrets HS*.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether the key is a shared HMAC secret.
    pub fn is_symmetric(&self) -> bool {
        self.family == KeyFamily::Hmac
    }

    /// The JWK's own `issuer`, if it named one.
    pub(crate) fn jwk_issuer(&self) -> Option<&IssuerPattern> {
        self.jwk_issuer.as_ref()
    }

    pub(crate) fn supports(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(alg)
    }

    pub(crate) fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    #[inline]
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.supports(alg) && self.verifier.verify(alg, message, signature)
    }
}

/// The hash of the `kid` index: a multiply-rotate over eight bytes at a time, unkeyed. Seeding
/// (SipHash's defence) is not needed here: the table's entries are the key set's own, at most
/// [`DEFAULT_MAX_KEYS`] of them, so a token's `kid` can only probe them, never lengthen a chain.
#[derive(Debug, Default, Clone, Copy)]
struct KidHash;

impl std::hash::BuildHasher for KidHash {
    type Hasher = KidHasher;
    fn build_hasher(&self) -> KidHasher {
        KidHasher(0)
    }
}

struct KidHasher(u64);

impl std::hash::Hasher for KidHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ (rest.len() as u64) << 59);
    }

    fn finish(&self) -> u64 {
        // The table takes its index from the low bits: fold the well-mixed high ones in.
        self.0 ^ self.0 >> 29
    }
}

impl KidHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// How many keys one token is tried against, at most, over all of a layer's key sets (a token
/// without `kid` is tried against the keys of its algorithm; one with a `kid` against the keys
/// sharing it).
pub(crate) const MAX_CANDIDATES: usize = 4;

/// An immutable, ready snapshot of verification keys, indexed by `kid`.
///
/// Duplicate `kid`s are kept deliberately: identity providers publish the same `kid` for keys
/// of different types during migrations, so every key with the `kid` whose algorithm fits the
/// token is a candidate (in document order, at most four of them per token).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<Key>>,
    by_kid: HashMap<Box<str>, Vec<usize>, KidHash>,
    /// The issuers the source published this set for (a discovery document's issuer, a
    /// source's `add_issuer`), when it says.
    issuers: Option<Arc<[IssuerPattern]>>,
}

impl KeySet {
    /// A key set from keys.
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Self {
        let keys: Vec<Arc<Key>> = keys.into_iter().map(Arc::new).collect();
        let mut by_kid: HashMap<Box<str>, Vec<usize>, KidHash> = HashMap::default();
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = &key.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        KeySet {
            keys,
            by_kid,
            issuers: None,
        }
    }

    /// Parses a JWKS document (`{"keys": [...]}`): keys that are not for signatures, of unknown
    /// types, malformed, or RSA below 2048 bits are skipped (and logged); symmetric (`oct`)
    /// keys are refused. Fails when the document is not JSON, has more than
    /// [`DEFAULT_MAX_KEYS`] keys, or holds no usable key.
    ///
    /// ```
    /// use validate_jwt::KeySet;
    /// let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    /// let set = KeySet::from_jwks(jwks.as_bytes()).unwrap();
    /// assert_eq!(set.len(), 1);
    /// assert_eq!(set.kids().collect::<Vec<_>>(), ["k1"]);
    /// ```
    pub fn from_jwks(json: &[u8]) -> Result<Self, KeyError> {
        Self::from_jwks_limited(json, DEFAULT_MAX_KEYS)
    }

    pub(crate) fn from_jwks_limited(json: &[u8], max_keys: usize) -> Result<Self, KeyError> {
        let (keys, _skipped) = jwk::parse_jwks(json, false, max_keys)?;
        Ok(KeySet::new(keys))
    }

    /// Records the issuers the source publishes this set for.
    pub(crate) fn published_for(mut self, issuers: Arc<[IssuerPattern]>) -> Self {
        self.issuers = Some(issuers);
        self
    }

    /// The issuers the source published this set for, when it said.
    pub(crate) fn issuers(&self) -> Option<&[IssuerPattern]> {
        self.issuers.as_deref()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s in the set, in document order (duplicates once per key).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid())
    }

    /// The keys in the set.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|k| &**k)
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Verifies `signature` with the keys the token may name, at most `budget` of them (the
    /// budget is shared by all of a layer's key sets, [`MAX_CANDIDATES`] per token); the index
    /// of the key that verified it (see [`key_at`](Self::key_at)). With a `kid`, the candidates
    /// are the keys with that `kid`; without, every key; in document order, and only keys whose
    /// type does `alg`.
    #[inline]
    pub(crate) fn verify(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
        budget: &mut usize,
    ) -> Option<usize> {
        let mut attempt = |i: usize| -> bool {
            let Some(key) = self.keys.get(i) else {
                return false;
            };
            if *budget == 0 || !key.supports(alg) {
                return false;
            }
            *budget -= 1;
            key.verify(alg, message, signature)
        };
        match kid {
            Some(kid) => self.by_kid.get(kid)?.iter().copied().find(|i| attempt(*i)),
            None => (0..self.keys.len()).find(|i| attempt(*i)),
        }
    }

    /// The key at `index`.
    pub(crate) fn key_at(&self, index: usize) -> Option<&Key> {
        self.keys.get(index).map(|k| &**k)
    }
}

/// Why a provider is asked for fresh keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshReason {
    /// No key set has been obtained yet (cold start).
    NoKeys,
    /// A token names a `kid` the current set does not hold.
    UnknownKid(String),
}

/// The future a [`KeySource`] returns from [`refresh`](KeySource::refresh).
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<Arc<KeySet>, KeyError>> + Send>>;

/// The seam between the layer and a source of keys.
///
/// The request path calls [`current`](Self::current) on every request; it must return the
/// current snapshot without blocking (an atomic load). When the snapshot does not hold the
/// token's key, the layer calls [`refresh`](Self::refresh) and waits for its future, which
/// resolves to the key set to retry with (the same one when the provider declined to refetch,
/// for example because of its rate limit) or an error when no key set is available at all.
///
/// Implement it to take keys from elsewhere (a vault, a file watched for changes):
///
/// ```
/// use std::sync::Arc;
/// use validate_jwt::{KeySource, KeySet, RefreshFuture, RefreshReason, StaticKeys};
///
/// struct FromVault(Arc<KeySet>);
///
/// impl KeySource for FromVault {
///     fn current(&self) -> Option<Arc<KeySet>> {
///         Some(self.0.clone())
///     }
///     fn refresh(&self, _why: RefreshReason) -> RefreshFuture {
///         let set = self.0.clone();
///         Box::pin(async move { Ok(set) })
///     }
/// }
/// ```
pub trait KeySource: Send + Sync + 'static {
    /// The current key set, or `None` while none has been obtained. Must not block.
    fn current(&self) -> Option<Arc<KeySet>>;

    /// Asks for a fresher key set. The returned future must not need to be polled for the
    /// refresh to make progress (spawn the work, or do none), and must finish in bounded time.
    fn refresh(&self, reason: RefreshReason) -> RefreshFuture;

    /// The issuers this source vouches for (the issuers of a discovery document). `None`, the
    /// default, means the source does not know its issuer, so the layer needs `add_issuer`.
    fn issuers(&self) -> Option<Vec<String>> {
        None
    }

    /// Starts fetching in the background now rather than at the first request. Called by the
    /// layer when it is built inside a Tokio runtime, and by [`ready`](crate::ValidateJwtLayer::ready).
    fn warm_up(&self) {}

    /// A number that changes whenever [`current`](Self::current) starts returning a different
    /// key set, read without touching the set's reference count. The verified-token cache
    /// checks it on every hit, from every thread, so answering it must be a plain load.
    /// `None`, the default, means "not tracked": the cache then compares `current()` itself,
    /// which is as correct and scales less well across cores.
    fn key_set_version(&self) -> Option<u64> {
        None
    }
}

impl<P: KeySource + ?Sized> KeySource for Arc<P> {
    fn current(&self) -> Option<Arc<KeySet>> {
        (**self).current()
    }
    fn refresh(&self, reason: RefreshReason) -> RefreshFuture {
        (**self).refresh(reason)
    }
    fn issuers(&self) -> Option<Vec<String>> {
        (**self).issuers()
    }
    fn warm_up(&self) {
        (**self).warm_up()
    }
    fn key_set_version(&self) -> Option<u64> {
        (**self).key_set_version()
    }
}
