//! Verification keys and where they come from.
//!
//! A [`KeySet`] is an immutable snapshot of ready-parsed keys, indexed by `kid`. A
//! [`JwksProvider`] hands the request path the current snapshot without locks or awaits and is
//! asked for a refresh when a token names a key it does not know. This crate ships three
//! providers: [`StaticKeys`], [`RemoteJwks`] (a JWKS URL) and discovery through
//! [`RemoteJwks::discover`] (OpenID Connect discovery or RFC 8414 metadata).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use crate::error::{KeyError, KeyErrorKind};

pub(crate) mod crypto;
mod discovery;
mod fetch;
pub(crate) mod jwk;
mod remote;
mod static_keys;

pub use remote::{ProviderStatus, RemoteJwks, RemoteJwksBuilder};
pub use static_keys::StaticKeys;

use crypto::{KeyMaterial, Verifier};

/// The default cap on the number of keys read from one key set.
pub const DEFAULT_MAX_KEYS: usize = 100;

/// An issuer a key vouches for: exact text, or an Azure AD template containing `{tenantid}`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IssuerPattern {
    text: Box<str>,
    template: bool,
}

impl fmt::Debug for IssuerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// The placeholder Azure AD's multi-tenant metadata puts where the tenant id goes.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

impl IssuerPattern {
    pub(crate) fn new(text: &str) -> Self {
        IssuerPattern {
            template: text.contains(TENANT_PLACEHOLDER),
            text: text.into(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `iss` is this issuer; a template is resolved with the token's `tid`, which must
    /// be a GUID.
    pub(crate) fn matches(&self, iss: &str, tid: Option<&str>) -> bool {
        if !self.template {
            return *self.text == *iss;
        }
        let Some(tid) = tid.filter(|t| is_guid(t)) else {
            return false;
        };
        let Some((prefix, suffix)) = self.text.split_once(TENANT_PLACEHOLDER) else {
            return false;
        };
        iss.len() == prefix.len() + tid.len() + suffix.len()
            && iss.starts_with(prefix)
            && iss.ends_with(suffix)
            && &iss[prefix.len()..prefix.len() + tid.len()] == tid
    }
}

/// Whether `s` is a GUID in its canonical textual form (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// One verification key, parsed once and bound to its algorithm(s) and issuer(s).
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
    /// The issuers the key may sign for; `None` when the source does not say.
    pub(crate) issuers: Option<Arc<[IssuerPattern]>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .field("issuers", &self.issuers)
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
            Some(alg) => AlgorithmSet::of([alg]),
            None => AlgorithmSet::of(Algorithm::ALL.into_iter().filter(|a| a.family() == family)),
        };
        let verifier = Verifier::new(&material, algorithms)
            .map_err(|e| KeyError::new(KeyErrorKind::InvalidKey, e))?;
        Ok(Key {
            kid: None,
            family,
            alg,
            algorithms,
            verifier,
            issuers: None,
        })
    }

    /// The key's id (`kid`), if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm the key is bound to, when its JWK (or configuration) named one.
    /// Without it the key verifies the algorithms of its type: RSA keys RS*/PS*, P-256 keys ES256,
    /// P-384 keys ES384, Ed25519 keys EdDSA, HMAC secrets HS*.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether the key is a shared HMAC secret.
    pub fn is_symmetric(&self) -> bool {
        self.family == KeyFamily::Hmac
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

/// How many keys a token without `kid` is tried against, at most.
pub(crate) const MAX_KIDLESS_CANDIDATES: usize = 4;

/// An immutable, ready snapshot of verification keys, indexed by `kid`.
///
/// Duplicate `kid`s are kept deliberately: identity providers publish the same `kid` for keys
/// of different types during migrations, so every key with the `kid` whose algorithm fits the
/// token is a candidate (in document order, at most four of them).
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<Key>>,
    by_kid: HashMap<Box<str>, Vec<usize>>,
}

impl KeySet {
    /// A key set from keys.
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Self {
        let keys: Vec<Arc<Key>> = keys.into_iter().map(Arc::new).collect();
        let mut by_kid: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = &key.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        KeySet { keys, by_kid }
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

    /// Binds every key that does not name its own issuer to `issuers`.
    pub(crate) fn bind_issuers(mut self, issuers: &Arc<[IssuerPattern]>) -> Self {
        for key in &mut self.keys {
            if key.issuers.is_none()
                && let Some(key) = Arc::get_mut(key)
            {
                key.issuers = Some(issuers.clone());
            }
        }
        self
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

    /// The keys a token with this `kid` (or without one) and `alg` may be verified with.
    #[inline]
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        let indices: &[usize] = match kid {
            Some(kid) => self.by_kid.get(kid).map(Vec::as_slice).unwrap_or(&[]),
            None => &[],
        };
        let by_kid = indices.iter().map(|i| &*self.keys[*i]);
        let kidless = self
            .keys
            .iter()
            .map(|k| &**k)
            .filter(move |_| kid.is_none());
        by_kid
            .chain(kidless)
            .filter(move |k| k.supports(alg))
            .take(MAX_KIDLESS_CANDIDATES)
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
    /// A token has no `kid` and no current key verified it.
    NoMatchingKey,
}

/// The future a [`JwksProvider`] returns from [`refresh`](JwksProvider::refresh).
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
/// use validate_jwt::{JwksProvider, KeySet, RefreshFuture, RefreshReason, StaticKeys};
///
/// struct FromVault(Arc<KeySet>);
///
/// impl JwksProvider for FromVault {
///     fn current(&self) -> Option<Arc<KeySet>> {
///         Some(self.0.clone())
///     }
///     fn refresh(&self, _why: RefreshReason) -> RefreshFuture {
///         let set = self.0.clone();
///         Box::pin(async move { Ok(set) })
///     }
/// }
/// ```
pub trait JwksProvider: Send + Sync + 'static {
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

impl<P: JwksProvider + ?Sized> JwksProvider for Arc<P> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_issuers_need_a_guid_tid() {
        let p = IssuerPattern::new("https://login.microsoftonline.com/{tenantid}/v2.0");
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let iss = format!("https://login.microsoftonline.com/{tid}/v2.0");
        assert!(p.matches(&iss, Some(tid)));
        assert!(!p.matches(&iss, None));
        assert!(!p.matches(&iss, Some("72f988bf-86f1-41af-91ab-2d7cd011db48")));
        let odd = "https://login.microsoftonline.com/evil/v2.0";
        assert!(!p.matches(odd, Some("evil")));
    }

    #[test]
    fn exact_issuers_compare_exactly() {
        let p = IssuerPattern::new("https://issuer.example/");
        assert!(p.matches("https://issuer.example/", None));
        assert!(!p.matches("https://issuer.example", None));
        assert!(!p.matches("https://ISSUER.example/", None));
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4g"));
        assert!(!is_guid(""));
    }
}
