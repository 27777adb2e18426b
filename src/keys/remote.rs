//! Keys fetched from a JWKS URL, directly or through discovery, cached and refreshed in the
//! background.
//!
//! One background task per provider does every fetch, so at most one is in flight; callers of
//! [`JwksProvider::refresh`] ask it for a fetch and wait for the outcome on a `watch` channel
//! carrying a generation counter. The request path reads the key set from an `ArcSwapOption`.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use reqwest::Url;
use reqwest::header::HeaderValue;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::discovery::{Discovery, Document};
use super::fetch::{self, Limits, display_url};
use super::{DEFAULT_MAX_KEYS, IssuerPattern, JwksProvider, KeySet, RefreshFuture, RefreshReason};
use crate::error::{ConfigError, KeyError, KeyErrorKind};

const TARGET: &str = "validate_jwt::keys";

/// Unknown `kid`s remembered between fetches, at most.
const MAX_REMEMBERED_KIDS: usize = 1024;
/// The first retry delay after a failed fetch; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest request timeout accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The longest cache lifetime (and least on-demand refresh interval) accepted.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A key source on the network: a JWKS URL, or the `jwks_uri` of an OpenID Connect discovery
/// document or RFC 8414 authorization server metadata.
///
/// * The request path reads the current key set with one atomic load ([`current`]); no lock,
///   no await.
/// * A background task refetches before the set expires (`Cache-Control: max-age`, clamped
///   to [`cache_ttl_bounds`], refreshed at 80–95 % of it), revalidating with `ETag`. Discovery
///   documents are refetched on the same schedule, so a moved `jwks_uri` is followed.
/// * A token naming an unknown `kid` triggers a refresh at once; further on-demand refreshes
///   happen at most once per [`min_refresh_interval`], and `kid`s still unknown after a fetch
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
/// use validate_jwt::{JwksProvider, KeyErrorKind, RemoteJwks};
///
/// let keys = RemoteJwks::discover(
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
/// assert!(RemoteJwks::builder("http://idp.example/keys").build().is_err());
/// assert!(RemoteJwks::builder("http://127.0.0.1:8080/keys").build().is_ok());
/// # Ok::<_, validate_jwt::ConfigError>(())
/// ```
///
/// Waiting for the keys at startup:
///
/// ```no_run
/// # use validate_jwt::RemoteJwks;
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = RemoteJwks::builder("https://idp.example/keys")
///     .also_accept_issuer("https://idp.example")
///     .build()?;
/// keys.ready().await?;
/// # Ok(())
/// # }
/// ```
///
/// [`current`]: JwksProvider::current
/// [`refresh`]: JwksProvider::refresh
/// [`warm_up`]: JwksProvider::warm_up
/// [`cache_ttl_bounds`]: RemoteJwksBuilder::cache_ttl_bounds
/// [`min_refresh_interval`]: RemoteJwksBuilder::min_refresh_interval
#[derive(Clone)]
pub struct RemoteJwks {
    shared: Arc<Shared>,
}

/// Configures a [`RemoteJwks`]; from [`RemoteJwks::builder`] or [`RemoteJwks::discover`].
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
    allow_http: bool,
}

/// A snapshot of a [`RemoteJwks`]'s state, for health checks and metrics.
///
/// ```
/// # use validate_jwt::RemoteJwks;
/// let keys = RemoteJwks::builder("https://idp.example/keys").build().unwrap();
/// let status = keys.status();
/// assert_eq!((status.key_count(), status.fetches(), status.consecutive_failures()), (0, 0, 0));
/// assert!(status.last_success().is_none() && status.age().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    last_success: Option<SystemTime>,
    age: Option<Duration>,
    consecutive_failures: u32,
    last_error: Option<KeyError>,
    key_count: usize,
    fetches: u64,
}

impl ProviderStatus {
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
}

impl RemoteJwks {
    /// A provider for a JWKS URL. The URL does not say which issuer its keys sign for:
    /// name it with [`also_accept_issuer`](RemoteJwksBuilder::also_accept_issuer) or
    /// configure it on the layer.
    pub fn builder(jwks_uri: &str) -> RemoteJwksBuilder {
        RemoteJwksBuilder::new(jwks_uri, false)
    }

    /// A provider that reads an OpenID Connect discovery document
    /// (`https://idp/.well-known/openid-configuration`) or RFC 8414 metadata
    /// (`https://idp/.well-known/oauth-authorization-server[/path]`), checks that its `issuer`
    /// is the one the URL was derived from (OIDC Discovery §4.3; Azure AD's `{tenantid}` template
    /// is accepted for the tenant segment of the URL), and fetches its `jwks_uri`. The keys are
    /// bound to that issuer.
    pub fn discover(metadata_url: &str) -> RemoteJwksBuilder {
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
    pub fn status(&self) -> ProviderStatus {
        let shared = &self.shared;
        let state = shared.lock();
        ProviderStatus {
            last_success: state.last_success.map(|(at, _)| at),
            age: state.last_success.map(|(_, at)| at.elapsed()),
            consecutive_failures: state.consecutive_failures,
            last_error: state.last_error.clone(),
            key_count: shared.keys.load().as_ref().map_or(0, |set| set.len()),
            fetches: state.completed,
        }
    }
}

impl RemoteJwks {
    /// Whether the issuers this source states are a discovery document's (which a single
    /// source's `add_issuer` list replaces) rather than given explicitly with `for_issuer`.
    pub(crate) fn issuer_is_discovered(&self) -> bool {
        let config = &self.shared.config;
        matches!(config.source, Source::Discovery(_)) && config.for_issuers.is_empty()
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

impl JwksProvider for RemoteJwks {
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

impl RemoteJwksBuilder {
    fn new(url: &str, discover: bool) -> Self {
        RemoteJwksBuilder {
            url: url.to_owned(),
            discover,
            client: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_keys: DEFAULT_MAX_KEYS,
            min_refresh_interval: Duration::from_secs(30),
            ttl_bounds: (
                Duration::from_secs(5 * 60),
                Duration::from_secs(24 * 60 * 60),
            ),
            default_ttl: Duration::from_secs(60 * 60),
            also_accept: Vec::new(),
            for_issuers: Vec::new(),
            tenant_template: false,
            allow_http: false,
        }
    }

    /// Uses this HTTP client instead of the default one (which has the connect timeout, at
    /// most three redirects that never leave https nor move from a public host to a loopback or
    /// private address, and a `validate-jwt/<version>` `User-Agent`).
    ///
    /// What the crate still enforces with your client: the total [`timeout`](Self::timeout) on
    /// every request, the body cap, and the redirect rule on the *final* URL of every answer (an
    /// answer that ended on plain http after https, or on a loopback or private address when the
    /// URL asked for was not one, is refused with `KeyErrorKind::InvalidUrl`). What your client's
    /// own policy decides: which redirects it follows on the way, proxies, TLS roots, and DNS.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The connect timeout of the default client. Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit for one request, body included. Default: 10 s. A refresh waits at most this
    /// long per request (a discovery document and a key set are two).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest document read; larger ones are refused (`KeyErrorKind::TooLarge`).
    /// Default: 1 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The most keys a key set may hold. Default: [`DEFAULT_MAX_KEYS`].
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// The least time between two on-demand refreshes (for unknown `kid`s); the first one
    /// always happens at once. Default: 30 s.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The window a server's `Cache-Control: max-age` is clamped to. Default: 5 min to 24 h.
    pub fn cache_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.ttl_bounds = (min, max);
        self
    }

    /// How long a key set is used when the server sends no `max-age` (clamped to the bounds).
    /// Default: 1 h.
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Another issuer the keys may sign for (repeatable), for example Azure AD's v1 issuer
    /// `https://sts.windows.net/{tid}/` beside the v2 issuer of the discovery document. A key
    /// whose JWK names an `issuer` of its own signs only for the issuers that match it too.
    pub fn also_accept_issuer(mut self, issuer: &str) -> Self {
        self.also_accept.push(issuer.to_owned());
        self
    }

    /// The issuers the keys sign for (repeatable, any-of), instead of a discovery document's
    /// `issuer` (the document is still checked against its URL). For a JWKS URL, which names
    /// no issuer, this is how the source is bound to one. `{tenantid}` in a value is resolved
    /// per token from its `tid`.
    ///
    /// ```
    /// use validate_jwt::{JwksProvider, RemoteJwks};
    ///
    /// let keys = RemoteJwks::builder("https://idp.example/keys")
    ///     .for_issuer("https://idp.example")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(keys.issuers(), Some(vec!["https://idp.example".to_owned()]));
    /// ```
    pub fn for_issuer(mut self, issuer: &str) -> Self {
        self.for_issuers.push(issuer.to_owned());
        self
    }

    /// Accept a discovery document whose `issuer` is Azure AD's `{tenantid}` template although
    /// the metadata URL is not one of Azure AD's multi-tenant URLs (`common`, `organizations`,
    /// `consumers`), such as a stand-in at another path. The keys then sign for every tenant
    /// whose `tid` a token carries: restrict the tenants on the layer.
    pub fn danger_accept_tenant_template(mut self) -> Self {
        self.tenant_template = true;
        self
    }

    /// Allows plain `http` to any host (for tests and internal networks); without it `http` is
    /// only allowed to loopback hosts (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn danger_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the URL and settings. Needs no runtime and makes no request.
    pub fn build(self) -> Result<RemoteJwks, ConfigError> {
        let url = fetch::parse_url(&self.url, self.allow_http)?;
        let setting = |what: &str| Err(ConfigError::InvalidSetting(what.to_owned()));
        let (ttl_min, ttl_max) = self.ttl_bounds;
        if ttl_min > ttl_max {
            return setting("cache_ttl_bounds: the minimum is above the maximum");
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return setting("timeouts must not be zero");
        }
        // Out-of-range durations are refused here rather than overflowing a deadline later.
        if self.timeout > MAX_TIMEOUT || self.connect_timeout > MAX_TIMEOUT {
            return setting("timeouts must be at most 5 minutes");
        }
        if self.min_refresh_interval > MAX_TTL {
            return setting("min_refresh_interval must be at most 7 days");
        }
        if ttl_max > MAX_TTL || self.default_ttl > MAX_TTL {
            return setting("cache lifetimes must be at most 7 days");
        }
        if self.max_body_bytes == 0 || self.max_keys == 0 {
            return setting("max_body_bytes and max_keys must not be zero");
        }
        if self.also_accept.iter().any(String::is_empty) {
            return setting("also_accept_issuer: the issuer is empty");
        }
        if self.for_issuers.iter().any(String::is_empty) {
            return setting("for_issuer: the issuer is empty");
        }
        let source = if self.discover {
            let discovery = Discovery::new(url, self.tenant_template).map_err(|reason| {
                ConfigError::InvalidUrl {
                    url: self.url.clone(),
                    reason: reason.to_owned(),
                }
            })?;
            Source::Discovery(discovery)
        } else {
            Source::Jwks(url)
        };
        let client = match self.client {
            Some(client) => client,
            None => fetch::default_client(self.connect_timeout, self.timeout, self.allow_http)
                .map_err(|e| ConfigError::InvalidSetting(format!("HTTP client: {e}")))?,
        };
        let config = Config {
            source,
            client,
            limits: Limits {
                timeout: self.timeout,
                max_body_bytes: self.max_body_bytes,
                allow_http: self.allow_http,
            },
            max_keys: self.max_keys,
            min_refresh_interval: self.min_refresh_interval,
            ttl_min,
            ttl_max,
            default_ttl: self.default_ttl,
            also_accept: self.also_accept,
            for_issuers: self.for_issuers,
            allow_http: self.allow_http,
        };
        Ok(RemoteJwks {
            shared: Arc::new(Shared {
                config,
                keys: ArcSwapOption::empty(),
                version: AtomicU64::new(0),
                started: AtomicBool::new(false),
                state: Mutex::new(State::default()),
                attempts: watch::Sender::new(Attempt::default()),
                wake: Arc::new(Notify::new()),
            }),
        })
    }
}

enum Source {
    Jwks(Url),
    Discovery(Discovery),
}

struct Config {
    source: Source,
    client: reqwest::Client,
    limits: Limits,
    max_keys: usize,
    min_refresh_interval: Duration,
    ttl_min: Duration,
    ttl_max: Duration,
    default_ttl: Duration,
    also_accept: Vec<String>,
    /// `for_issuer`: when set, the keys sign for these instead of the document's issuer.
    for_issuers: Vec<String>,
    allow_http: bool,
}

impl Config {
    /// How long a fetched set is used.
    fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.ttl_min, self.ttl_max)
    }

    /// How long one attempt can take: each request is bounded by the timeout.
    fn attempt_bound(&self) -> Duration {
        let requests = match self.source {
            Source::Jwks(_) => 1,
            Source::Discovery(_) => 2,
        };
        self.limits.timeout * requests + Duration::from_secs(1)
    }
}

struct Shared {
    config: Config,
    keys: ArcSwapOption<KeySet>,
    /// Bumped after every new key set is stored (see `JwksProvider::key_set_version`).
    version: AtomicU64,
    /// Whether the background task was spawned: the request path's only other check.
    started: AtomicBool,
    state: Mutex<State>,
    /// The outcome of the latest attempt, for waiting callers.
    attempts: watch::Sender<Attempt>,
    /// Wakes the background task for an on-demand fetch (or to notice the provider is gone).
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    worker: Option<tokio::task::JoinHandle<()>>,
    /// A fetch was asked for and the background task has not started it yet.
    requested: bool,
    in_flight: bool,
    /// Attempts completed: the generation of the latest [`Attempt`].
    completed: u64,
    consecutive_failures: u32,
    last_error: Option<KeyError>,
    last_success: Option<(SystemTime, Instant)>,
    last_on_demand: Option<Instant>,
    /// `kid`s not in the set after a fetch made for them; cleared when a fetch brings a new set.
    unknown_kids: HashSet<Box<str>>,
    /// The discovery document's issuer, once read.
    issuer: Option<String>,
}

#[derive(Clone, Default)]
struct Attempt {
    generation: u64,
    error: Option<KeyError>,
}

/// What [`Shared::admit`] decided about a refresh.
enum Admit {
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
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes sure the background task runs; `false` outside a Tokio runtime.
    fn start(self: &Arc<Self>) -> bool {
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

    /// Decides whether a refresh fetches, joins the fetch in flight, or is answered at once.
    fn admit(
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
            return Admit::Done(Ok(set));
        }
        tracing::info!(target: TARGET, ?reason, "refreshing keys on demand");
        state.last_on_demand = Some(now);
        self.request(&mut state);
        next
    }

    fn request(&self, state: &mut State) {
        state.requested = true;
        self.wake.notify_one();
    }

    /// The outcome of the attempt of generation `target` (or a later one).
    async fn next_attempt(&self, target: u64) -> Attempt {
        let mut outcomes = self.attempts.subscribe();
        let attempt = outcomes
            .wait_for(|a| a.generation >= target)
            .await
            .map(|a| a.clone());
        // The sender lives in `self`, so the channel cannot close while we wait.
        attempt.unwrap_or_default()
    }

    /// Waits (bounded) for the attempt a refresh joined, then answers it.
    async fn wait(
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
            if state.unknown_kids.len() < MAX_REMEMBERED_KIDS {
                state.unknown_kids.insert(kid.into());
            }
        }
        match (current, attempt.error) {
            (Some(set), _) => Ok(set),
            (None, Some(error)) => Err(error),
            (None, None) => Err(KeyError::new(KeyErrorKind::Other, "no key set was loaded")),
        }
    }

    /// Marks a fetch as started if one is due (`force`) or was asked for.
    fn begin(&self, force: bool) -> bool {
        let mut state = self.lock();
        if !(force || state.requested) {
            return false;
        }
        state.requested = false;
        state.in_flight = true;
        true
    }

    /// One attempt: the discovery document (if any), then the key set.
    async fn fetch(&self, cache: &mut Cache) -> Result<Outcome, KeyError> {
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
    fn finish(&self, result: Result<Outcome, KeyError>, started: Instant) -> Instant {
        let now = Instant::now();
        let mut state = self.lock();
        state.in_flight = false;
        state.completed += 1;
        let (next, error) = match result {
            Ok(outcome) => {
                let ttl = self.config.ttl(outcome.max_age);
                let url = display_url(&outcome.jwks_uri);
                let duration_ms = now.duration_since(started).as_millis();
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
                (now + jittered(ttl, 0.80, 0.95), None)
            }
            Err(error) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let failures = state.consecutive_failures;
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
        self.attempts.send_replace(Attempt {
            generation: state.completed,
            error,
        });
        next
    }
}

/// What the background task remembers between attempts.
#[derive(Default)]
struct Cache {
    /// The last discovery document read, with its `ETag`.
    document: Option<(Document, Option<HeaderValue>)>,
    /// The key set URL and `ETag` of the current key set.
    jwks: Option<(Url, HeaderValue)>,
}

impl Cache {
    /// Fetches (or revalidates) the discovery document.
    async fn document(
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

struct Outcome {
    jwks_uri: Url,
    /// The new key set; `None` when the server answered 304 Not Modified.
    set: Option<KeySet>,
    max_age: Option<Duration>,
    issuer: Option<String>,
}

/// The background task: fetches when a refresh is due or asked for, until the provider is
/// dropped.
async fn run(provider: Weak<Shared>, wake: Arc<Notify>) {
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

fn no_runtime() -> KeyError {
    KeyError::new(
        KeyErrorKind::Other,
        "no Tokio runtime: remote keys are fetched by a background task",
    )
}

/// `duration` scaled by a random factor between `low` and `high`.
fn jittered(duration: Duration, low: f64, high: f64) -> Duration {
    // Each `RandomState` is freshly keyed; hashing the clock adds variation between calls.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let bits = RandomState::new().hash_one(nanos) >> 11;
    let unit = bits as f64 / (1u64 << 53) as f64;
    duration.mul_f64(low + (high - low) * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let keys = RemoteJwks::builder("https://idp.example/keys")
            .cache_ttl_bounds(Duration::from_secs(60), Duration::from_secs(600))
            .default_cache_ttl(Duration::from_secs(120))
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
        let b = || RemoteJwks::builder("https://idp.example/keys");
        let s = Duration::from_secs;
        assert!(b().cache_ttl_bounds(s(10), s(5)).build().is_err());
        assert!(b().timeout(Duration::ZERO).build().is_err());
        assert!(b().max_body_bytes(0).build().is_err());
        assert!(b().max_keys(0).build().is_err());
        assert!(b().also_accept_issuer("").build().is_err());
        assert!(b().for_issuer("").build().is_err());
        // Out-of-range durations fail here, not as an overflow at the first refresh.
        assert!(b().timeout(Duration::MAX).build().is_err());
        assert!(
            b().connect_timeout(Duration::from_secs(301))
                .build()
                .is_err()
        );
        assert!(b().min_refresh_interval(Duration::MAX).build().is_err());
        assert!(
            b().cache_ttl_bounds(Duration::ZERO, Duration::MAX)
                .build()
                .is_err()
        );
        assert!(b().default_cache_ttl(Duration::MAX).build().is_err());
        assert!(b().timeout(Duration::from_secs(300)).build().is_ok());
        let err = RemoteJwks::discover("https://idp.example/keys")
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn building_and_reading_need_no_runtime() {
        let keys = RemoteJwks::builder("https://idp.example/keys")
            .also_accept_issuer("https://idp.example")
            .build()
            .unwrap();
        assert!(keys.current().is_none());
        keys.warm_up();
        assert_eq!(keys.issuers(), Some(vec!["https://idp.example".to_owned()]));
        assert!(!keys.shared.started.load(Ordering::Relaxed));
        let bare = RemoteJwks::builder("https://idp.example/keys")
            .build()
            .unwrap();
        assert_eq!(bare.issuers(), None);
    }

    #[test]
    fn provider_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<RemoteJwks>();
        check::<RemoteJwksBuilder>();
        check::<ProviderStatus>();
    }
}
