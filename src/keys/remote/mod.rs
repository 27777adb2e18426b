//! Keys fetched from a JWKS URL, directly or through discovery, cached and refreshed in the
//! background.
//!
//! One background task per provider does every fetch, so at most one is in flight; callers of
//! [`KeySource::refresh`] ask it for a fetch and wait for the outcome on a `watch` channel
//! carrying a generation counter. The request path reads the key set from an `ArcSwapOption`.
//!
//! The rooms: this file (the public types and the provider), `builder.rs` (settings, checked at
//! `build()`), `config.rs` (what was configured), `coordinator.rs` (the shared state: which
//! refreshes to admit, and waiting for them) and `worker.rs` (the background task that fetches,
//! and starts itself).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::fetch::display_url;
use super::{KeySet, KeySource, RefreshFuture, RefreshReason};
use crate::error::{KeyError, KeyErrorKind};

mod builder;
mod config;
mod coordinator;
mod worker;

use config::Source;
use coordinator::{Admit, Shared, no_runtime};

pub(super) const TARGET: &str = "validate_jwt::keys";

/// Unknown `kid`s remembered between fetches, at most.
pub(super) const MAX_REMEMBERED_KIDS: usize = 1024;
/// The first retry delay after a failed fetch; it doubles up to [`BACKOFF_MAX`].
pub(super) const BACKOFF_START: Duration = Duration::from_secs(1);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest request timeout accepted.
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The longest cache lifetime (and least on-demand refresh interval) accepted.
pub(super) const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A key source on the network: a JWKS URL, or the `jwks_uri` of an OpenID Connect discovery
/// document or RFC 8414 authorization server metadata.
///
/// * The request path reads the current key set with one atomic load ([`current`]); no lock,
///   no await.
/// * A background task refetches before the set expires (`Cache-Control: max-age`, clamped
///   to [`with_cache_ttl_bounds`], refreshed at 80–95 % of it), revalidating with `ETag`. Discovery
///   documents are refetched on the same schedule, so a moved `jwks_uri` is followed.
/// * A token naming an unknown `kid` triggers a refresh at once; further on-demand refreshes
///   happen at most once per [`with_min_refresh_interval`], and `kid`s still unknown after a fetch
///   cause none at all until the next fetch.
/// * Only one fetch is in flight per provider; concurrent [`refresh`] calls wait for it.
/// * When a fetch fails the last good key set stays in use; retries back off from 1 s to
///   30 s. [`status`](Self::status) tells a health check how old the keys are.
/// * Before any key set has loaded, a refresh waits for the fetch in flight; while a retry is
///   pending it fails at once with the last error (the layer answers 503).
///
/// The background task starts at first use inside a Tokio runtime (or at [`warm_up`] or
/// [`ready`](Self::ready)); building needs no runtime.
///
/// ```
/// use validate_jwt::{KeySource, KeyErrorKind, RemoteJwks};
///
/// let keys = RemoteJwks::discovery_url(
///     "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
/// )
/// .build()?;
/// // Azure AD's tenant-independent endpoints name a template issuer, resolved per token `tid`.
/// assert_eq!(
///     keys.issuers().unwrap()[0],
///     "https://login.microsoftonline.com/{tenantid}/v2.0"
/// );
/// assert_eq!(keys.status().key_count(), 0); // nothing is fetched before first use
///
/// // Plain http is refused except to loopback hosts.
/// assert!(RemoteJwks::jwks_url("http://idp.example/keys").build().is_err());
/// assert!(RemoteJwks::jwks_url("http://127.0.0.1:8080/keys").build().is_ok());
/// # Ok::<_, validate_jwt::ConfigError>(())
/// ```
///
/// Waiting for the keys at startup:
///
/// ```no_run
/// # use validate_jwt::RemoteJwks;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = RemoteJwks::jwks_url("https://idp.example/keys")
///     .add_issuer("https://idp.example")
///     .build()?;
/// keys.ready().await?;
/// # Ok(())
/// # }
/// ```
///
/// [`current`]: KeySource::current
/// [`refresh`]: KeySource::refresh
/// [`warm_up`]: KeySource::warm_up
/// [`with_cache_ttl_bounds`]: RemoteJwksBuilder::with_cache_ttl_bounds
/// [`with_min_refresh_interval`]: RemoteJwksBuilder::with_min_refresh_interval
#[derive(Clone)]
pub struct RemoteJwks {
    shared: Arc<Shared>,
}

/// Configures a [`RemoteJwks`]; from [`RemoteJwks::jwks_url`] or [`RemoteJwks::discovery_url`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteJwksBuilder {
    url: String,
    discover: bool,
    client: Option<reqwest::Client>,
    connect_timeout: Duration,
    timeout: Duration,
    max_body_bytes: usize,
    max_keys: usize,
    min_refresh_interval: Duration,
    ttl_bounds: (Duration, Duration),
    default_ttl: Duration,
    also_accept: Vec<String>,
    for_issuers: Vec<String>,
    tenant_template: bool,
    any_document_issuer: bool,
    allow_http: bool,
}

/// A snapshot of a [`RemoteJwks`]'s state, for health checks and metrics.
///
/// ```
/// # use validate_jwt::RemoteJwks;
/// let keys = RemoteJwks::jwks_url("https://idp.example/keys").build().unwrap();
/// let status = keys.status();
/// assert_eq!((status.key_count(), status.fetches(), status.consecutive_failures()), (0, 0, 0));
/// assert!(status.last_success().is_none() && status.age().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct KeySourceStatus {
    last_success: Option<SystemTime>,
    age: Option<Duration>,
    consecutive_failures: u32,
    last_error: Option<KeyError>,
    key_count: usize,
    fetches: u64,
    failing_since: Option<SystemTime>,
    next_attempt: Option<Duration>,
}

impl KeySourceStatus {
    /// When the key set was last fetched or revalidated successfully.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.last_success
    }

    /// How long ago that was: the age of the keys in use.
    pub fn age(&self) -> Option<Duration> {
        self.age
    }

    /// Fetches that failed since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<&KeyError> {
        self.last_error.as_ref()
    }

    /// Keys in the current set (0 before the first successful fetch).
    pub fn key_count(&self) -> usize {
        self.key_count
    }

    /// Fetch attempts completed, successful or not (each is a discovery document, if any, and
    /// a key set).
    pub fn fetches(&self) -> u64 {
        self.fetches
    }

    /// When the current run of failed fetches began (`None` while the last fetch succeeded):
    /// with a key set loaded, the source has served stale keys since then.
    pub fn failing_since(&self) -> Option<SystemTime> {
        self.failing_since
    }

    /// How soon the background task plans its next fetch (`None` before the first attempt
    /// finished; zero when it is due or under way). A token naming an unknown `kid` can make
    /// it sooner.
    pub fn next_attempt_in(&self) -> Option<Duration> {
        self.next_attempt
    }
}

impl RemoteJwks {
    /// A provider for a JWKS URL. The URL does not say which issuer its keys sign for:
    /// name it with [`add_issuer`](RemoteJwksBuilder::add_issuer) or
    /// configure it on the layer.
    pub fn jwks_url(jwks_uri: &str) -> RemoteJwksBuilder {
        RemoteJwksBuilder::new(jwks_uri, false)
    }

    /// A provider that reads an OpenID Connect discovery document
    /// (`https://idp/.well-known/openid-configuration`) or RFC 8414 metadata
    /// (`https://idp/.well-known/oauth-authorization-server[/path]`), checks that its `issuer`
    /// is the one the URL was derived from (OIDC Discovery §4.3; Azure AD's `{tenantid}` template
    /// is accepted for the tenant segment of the URL), and fetches its `jwks_uri`. The keys are
    /// bound to that issuer.
    pub fn discovery_url(metadata_url: &str) -> RemoteJwksBuilder {
        RemoteJwksBuilder::new(metadata_url, true)
    }

    /// Waits until a key set is loaded, starting the background task if needed. Resolves
    /// at once when keys are loaded; otherwise waits for the next fetch attempt and returns
    /// its error if it fails (retries continue in the background). Needs a Tokio runtime.
    pub async fn ready(&self) -> Result<(), KeyError> {
        let shared = &self.shared;
        if shared.keys.load().is_some() {
            return Ok(());
        }
        if !shared.start() {
            return Err(no_runtime());
        }
        let target = {
            let state = shared.lock();
            if shared.keys.load().is_some() {
                return Ok(());
            }
            state.completed + 1
        };
        let attempt = shared.next_attempt(target).await;
        match (shared.keys.load().is_some(), attempt.error) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error),
            (false, None) => Err(KeyError::new(KeyErrorKind::Other, "no key set was loaded")),
        }
    }

    /// The provider's state: last success, age, failures, key count.
    pub fn status(&self) -> KeySourceStatus {
        let shared = &self.shared;
        let state = shared.lock();
        KeySourceStatus {
            last_success: state.last_success.map(|(at, _)| at),
            age: state.last_success.map(|(_, at)| at.elapsed()),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.clone(),
            key_count: shared.keys.load().as_ref().map_or(0, |set| set.len()),
            fetches: state.completed,
            failing_since: state.failing_since,
            next_attempt: state
                .next_attempt
                .map(|at| at.saturating_duration_since(tokio::time::Instant::now())),
        }
    }
}

impl RemoteJwks {
    /// The URL it fetches from first (the discovery document's, or the key set's), without
    /// user name and password.
    pub(crate) fn display_url(&self) -> String {
        match &self.shared.config.source {
            Source::Jwks(url) => display_url(url),
            Source::Discovery(discovery) => display_url(discovery.url()),
        }
    }

    /// Whether the issuers this source states are a discovery document's (which a single
    /// source's `add_issuer` list replaces) rather than given explicitly with `with_issuers`.
    pub(crate) fn issuer_is_discovered(&self) -> bool {
        let config = &self.shared.config;
        matches!(config.source, Source::Discovery(_)) && config.for_issuers.is_empty()
    }

    /// The issuer a discovery URL was derived from: the authorization server a client asks
    /// for tokens (RFC 9728 `authorization_servers`); `None` for a JWKS URL.
    pub(crate) fn discovery_issuer(&self) -> Option<&str> {
        match &self.shared.config.source {
            Source::Discovery(discovery) => Some(discovery.issuer()),
            Source::Jwks(_) => None,
        }
    }
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match &self.shared.config.source {
            Source::Jwks(url) => url,
            Source::Discovery(discovery) => discovery.url(),
        };
        f.debug_struct("RemoteJwks")
            .field("url", &display_url(url))
            .field(
                "keys",
                &self.shared.keys.load().as_ref().map_or(0, |set| set.len()),
            )
            .finish_non_exhaustive()
    }
}

impl KeySource for RemoteJwks {
    #[inline]
    fn current(&self) -> Option<Arc<KeySet>> {
        if !self.shared.started.load(Ordering::Relaxed) {
            self.shared.start();
        }
        self.shared.keys.load_full()
    }

    #[inline]
    fn key_set_version(&self) -> Option<u64> {
        Some(self.shared.version.load(Ordering::Acquire))
    }

    fn refresh(&self, reason: RefreshReason) -> RefreshFuture {
        let shared = self.shared.clone();
        let current = shared.keys.load_full();
        if !shared.start() {
            return Box::pin(std::future::ready(current.ok_or_else(no_runtime)));
        }
        let kid = match &reason {
            RefreshReason::UnknownKid(kid) => Some(kid.clone()),
            _ => None,
        };
        let (target, fresh) = match shared.admit(current, &reason, kid.as_deref()) {
            Admit::Done(result) => return Box::pin(std::future::ready(result)),
            Admit::Wait { generation, fresh } => (generation, fresh),
        };
        // Only a fetch that started after this call can prove the kid unknown.
        let kid = kid.filter(|_| fresh);
        Box::pin(async move { shared.wait(target, kid).await })
    }

    fn issuers(&self) -> Option<Vec<String>> {
        let config = &self.shared.config;
        if !config.for_issuers.is_empty() {
            return Some(config.for_issuers.clone());
        }
        let mut issuers = match &config.source {
            Source::Jwks(_) if config.also_accept.is_empty() => return None,
            Source::Jwks(_) => Vec::new(),
            Source::Discovery(discovery) => match &self.shared.lock().issuer {
                Some(issuer) => vec![issuer.clone()],
                None => discovery.expected_issuers(),
            },
        };
        issuers.extend(config.also_accept.iter().cloned());
        Some(issuers)
    }

    fn warm_up(&self) {
        self.shared.start();
    }
}

#[cfg(test)]
mod tests {
    use super::worker::jittered;
    use super::*;
    use crate::ConfigError;

    #[test]
    fn jitter_stays_in_range() {
        let ttl = Duration::from_secs(1000);
        for _ in 0..1000 {
            let d = jittered(ttl, 0.8, 0.95);
            assert!(
                d >= Duration::from_secs(800) && d <= Duration::from_secs(950),
                "{d:?}"
            );
        }
    }

    #[test]
    fn ttl_is_clamped_to_the_bounds() {
        let keys = RemoteJwks::jwks_url("https://idp.example/keys")
            .with_cache_ttl_bounds(Duration::from_secs(60), Duration::from_secs(600))
            .with_default_cache_ttl(Duration::from_secs(120))
            .build()
            .unwrap();
        let config = &keys.shared.config;
        assert_eq!(config.ttl(None), Duration::from_secs(120));
        assert_eq!(config.ttl(Some(Duration::ZERO)), Duration::from_secs(60));
        assert_eq!(
            config.ttl(Some(Duration::from_secs(99_999))),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn settings_are_checked_at_build() {
        let b = || RemoteJwks::jwks_url("https://idp.example/keys");
        let s = Duration::from_secs;
        assert!(b().with_cache_ttl_bounds(s(10), s(5)).build().is_err());
        assert!(b().with_timeout(Duration::ZERO).build().is_err());
        assert!(b().with_max_body_bytes(0).build().is_err());
        assert!(b().with_max_keys(0).build().is_err());
        assert!(b().add_issuer("").build().is_err());
        assert!(b().add_issuer("").build().is_err());
        // Out-of-range durations fail here, not as an overflow at the first refresh.
        assert!(b().with_timeout(Duration::MAX).build().is_err());
        assert!(
            b().with_connect_timeout(Duration::from_secs(301))
                .build()
                .is_err()
        );
        assert!(
            b().with_min_refresh_interval(Duration::MAX)
                .build()
                .is_err()
        );
        assert!(
            b().with_cache_ttl_bounds(Duration::ZERO, Duration::MAX)
                .build()
                .is_err()
        );
        assert!(b().with_default_cache_ttl(Duration::MAX).build().is_err());
        assert!(b().with_timeout(Duration::from_secs(300)).build().is_ok());
        let err = RemoteJwks::discovery_url("https://idp.example/keys")
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn building_and_reading_need_no_runtime() {
        let keys = RemoteJwks::jwks_url("https://idp.example/keys")
            .add_issuer("https://idp.example")
            .build()
            .unwrap();
        assert!(keys.current().is_none());
        keys.warm_up();
        assert_eq!(keys.issuers(), Some(vec!["https://idp.example".to_owned()]));
        assert!(!keys.shared.started.load(Ordering::Relaxed));
        let bare = RemoteJwks::jwks_url("https://idp.example/keys")
            .build()
            .unwrap();
        assert_eq!(bare.issuers(), None);
    }

    #[test]
    fn provider_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<RemoteJwks>();
        check::<RemoteJwksBuilder>();
        check::<KeySourceStatus>();
    }
}
