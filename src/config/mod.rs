//! [`ValidateJwtBuilder`]: every setting, checked once at [`build`](ValidateJwtBuilder::build)
//! (the checks, one function per concept, are in `checks.rs`). This file is long because every
//! setting carries its documentation and, for the major ones, a tested example.
//!
//! **Names.** Every builder of the crate (this one, [`RemoteJwksBuilder`](crate::RemoteJwksBuilder),
//! [`StaticKeys`], [`AzureAd`](crate::AzureAd)) follows one table:
//!
//! | form | meaning | examples |
//! |---|---|---|
//! | `with_*` | replaces one setting | `with_leeway`, `with_header_name`, `with_http_client`, `with_payload_header`, `RemoteJwksBuilder::with_issuers` |
//! | `add_*` | adds one more of a repeatable setting | `add_audience`, `add_issuer`, `add_keys`, `add_jwks_url`, `add_discovery_url`, `add_key_source`, `add_query_parameter`, `add_cookie`, `add_claim_header` |
//! | `require*` | adds a claim rule | `require`, `require_all_scopes`, `require_all_roles` |
//! | `danger_*` | loosens a secure default | `danger_accept_any_audience`, `danger_allow_http` |
//!
//! One word per concept: a *key source* ([`KeySource`]: static keys, a JWKS URL, a discovery
//! URL, your own); *discovery* for OpenID Connect / RFC 8414 metadata (`add_discovery_url`,
//! `RemoteJwks::discovery_url`, `AzureAd::discovery_url`); *issuer* for `iss` (`add_issuer`
//! everywhere); *route* for per-route rules (`ValidateJwtLayer::for_route`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};

use crate::algorithm::Algorithm;
use crate::claims::Requirement;
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, JwtError};
use crate::extract::TokenLocations;
use crate::forward::{ClaimHeaderEncoding, ForwardSettings};
use crate::health::Probe;
use crate::issuer::{self, AzureV1, IssuerRule};
use crate::keys::{KeySource, RemoteJwks, StaticKeys};
use crate::layer::{Http, Skip, ValidateJwtLayer};
use crate::resource::{self, Derived, ProtectedResource};
use crate::validate::{Rules, TypPolicy, Validator};

#[derive(Debug, Clone, Copy)]
enum RemoteKind {
    Discovery,
    Jwks,
}

/// The default leeway for `exp` and `nbf` (APIM's `clock-skew`): 60 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// The default largest token accepted: 16 KiB.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Configures a [`ValidateJwtLayer`]. Mistakes fail at [`build`](Self::build) with a specific
/// [`ConfigError`], never at the first request.
///
/// Secure by default: an audience decision and a key source are required; `none` is never
/// accepted; algorithms are bound to key types; `exp` is required; keys never come from the
/// token. Every loosening is a method whose name starts with `danger_`.
///
/// ```
/// use std::time::Duration;
/// use validate_jwt::{ConfigError, Requirement, StaticKeys, ValidateJwtLayer};
///
/// let keys = StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!");
/// // No audience decision: refused at build time.
/// let err = ValidateJwtLayer::builder()
///     .add_keys(keys.clone())
///     .add_issuer("https://issuer.example")
///     .build()
///     .unwrap_err();
/// assert_eq!(err, ConfigError::NoAudienceDecision);
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(keys)
///     .add_issuer("https://issuer.example")
///     .add_audience("api://echo")
///     .with_leeway(Duration::from_secs(30))
///     .require(Requirement::all_scopes(["Echo.Read"]))
///     .build()
///     .unwrap();
/// ```
#[must_use]
pub struct ValidateJwtBuilder {
    /// Each provider (see [`checks::SourceEntry`]).
    providers: Vec<checks::SourceEntry>,
    static_keys: Vec<StaticKeys>,
    remote: Vec<(RemoteKind, String)>,
    allow_http: bool,
    http_client: Option<reqwest::Client>,
    algorithms: Vec<Algorithm>,
    typ: TypPolicy,
    leeway: Duration,
    require_exp: bool,
    issuers: Vec<String>,
    any_issuer: bool,
    audiences: Vec<String>,
    any_audience: bool,
    max_token_bytes: usize,
    requirements: Vec<Requirement>,
    clock: Arc<dyn Clock>,
    allow_anonymous: bool,
    skip: Option<Arc<Skip>>,
    locations: TokenLocations,
    header_name: Option<String>,
    scheme: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
    realm: Option<String>,
    failed_status: Option<u16>,
    failed_message: Option<String>,
    responder: Option<Arc<crate::response::Responder>>,
    key_wait: Duration,
    allowed_tenants: Vec<String>,
    azure_v1: Option<AzureV1>,
    token_cache: usize,
    label_issuers: bool,
    accept_bound_as_bearer: bool,
    forward: ForwardSettings,
    dpop: Option<crate::sender::Dpop>,
    client_certificates: Option<crate::sender::ClientCertificates>,
    resource: Option<ProtectedResource>,
    resource_as_audience: bool,
    error: Option<ConfigError>,
}

impl fmt::Debug for ValidateJwtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJwtBuilder")
            .field("providers", &self.providers.len())
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl ValidateJwtLayer {
    /// Starts a configuration.
    pub fn builder() -> ValidateJwtBuilder {
        ValidateJwtBuilder::new()
    }
}

impl Default for ValidateJwtBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ValidateJwtBuilder {
    /// An empty configuration (see [`ValidateJwtLayer::builder`]).
    pub fn new() -> Self {
        ValidateJwtBuilder {
            providers: Vec::new(),
            static_keys: Vec::new(),
            remote: Vec::new(),
            allow_http: false,
            http_client: None,
            algorithms: Vec::new(),
            typ: TypPolicy::Default,
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            issuers: Vec::new(),
            any_issuer: false,
            audiences: Vec::new(),
            any_audience: false,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            requirements: Vec::new(),
            clock: Arc::new(SystemClock),
            allow_anonymous: false,
            skip: None,
            locations: TokenLocations::default(),
            header_name: None,
            scheme: None,
            query: None,
            cookie: None,
            realm: None,
            failed_status: None,
            failed_message: None,
            responder: None,
            key_wait: Duration::from_secs(15),
            allowed_tenants: Vec::new(),
            azure_v1: None,
            token_cache: 0,
            label_issuers: false,
            accept_bound_as_bearer: false,
            forward: ForwardSettings::default(),
            dpop: None,
            client_certificates: None,
            resource: None,
            resource_as_audience: false,
            error: None,
        }
    }

    // ---- keys -------------------------------------------------------------------------

    /// Keys given in configuration (PEM, JWK, JWKS, RSA `n`/`e`, HMAC secrets).
    pub fn add_keys(mut self, keys: StaticKeys) -> Self {
        self.static_keys.push(keys);
        self
    }

    /// Keys from OpenID Connect discovery (APIM's `openid-config`): the document at `url`
    /// (`…/.well-known/openid-configuration`, or RFC 8414 `…/.well-known/oauth-authorization-server`)
    /// names the issuer and the JWKS; the keys only sign for that issuer (or, when this is the
    /// only key source, for the issuers given to [`add_issuer`](Self::add_issuer) instead).
    /// Repeatable. For finer control, build a [`RemoteJwks`](crate::RemoteJwks) and use
    /// [`add_key_source`](Self::add_key_source).
    pub fn add_discovery_url(mut self, url: impl Into<String>) -> Self {
        self.remote.push((RemoteKind::Discovery, url.into()));
        self
    }

    /// Keys from a JWKS URL. A JWKS does not name its issuer: also call `add_issuer` (or build a
    /// [`RemoteJwks`](crate::RemoteJwks) with its own `add_issuer` and use `add_key_source`).
    pub fn add_jwks_url(mut self, url: impl Into<String>) -> Self {
        self.remote.push((RemoteKind::Jwks, url.into()));
        self
    }

    /// Allow plain-http key and discovery URLs to hosts other than loopback (for
    /// `add_discovery_url` / `add_jwks_url`). Anyone on the network path can then substitute keys.
    pub fn danger_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The HTTP client for `add_discovery_url` / `add_jwks_url` (proxies, custom roots). The
    /// default client has 5 s connect / 10 s total timeouts; with yours the crate still bounds
    /// each request by the total timeout and refuses answers whose final URL left https or moved
    /// inside (see [`RemoteJwksBuilder::with_http_client`](crate::RemoteJwksBuilder::with_http_client)).
    ///
    /// `reqwest::Client` is part of this crate's public API on purpose: proxies, TLS roots and
    /// DNS are what people configure it for, and a wrapper would have to mirror all of that. So
    /// the crate's `reqwest` major version is part of its semver promise (a `reqwest` major bump
    /// is a major bump here).
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// A key source of your own (or a shared [`RemoteJwks`](crate::RemoteJwks)). Its keys sign
    /// for the issuers its [`issuers`](KeySource::issuers) names, read once, here at build
    /// time (see [`add_issuer`](Self::add_issuer) for the whole rule).
    pub fn add_key_source<P: KeySource>(mut self, provider: P) -> Self {
        let any: &dyn std::any::Any = &provider;
        let remote = any
            .downcast_ref::<RemoteJwks>()
            .or_else(|| any.downcast_ref::<Arc<RemoteJwks>>().map(|r| &**r));
        let discovered = remote.is_some_and(RemoteJwks::issuer_is_discovered);
        let probe = match remote {
            Some(remote) => Probe::Remote(remote.clone()),
            None if any.is::<StaticKeys>() => Probe::Static,
            None => Probe::Custom,
        };
        let server = remote
            .and_then(RemoteJwks::discovery_issuer)
            .map(Into::into);
        self.providers
            .push((Arc::new(provider), discovered, probe, server));
        self
    }

    // ---- issuer, audience, algorithms, time -------------------------------------------

    /// An accepted issuer (`iss`, compared exactly; repeatable, any-of). A value containing
    /// `{tenantid}` is resolved per token from its `tid` claim (Azure AD multi-tenant).
    ///
    /// **The issuer rule.** Every key belongs to one key source, and every source has an issuer
    /// set. A token verified with a key is accepted only if its `iss` is in that key's source's
    /// set and, where the key's JWK names an `issuer`, matches that too; a key never signs for
    /// another source's issuer. A source's set is what it states (a discovery document's
    /// `issuer`, `StaticKeys::add_issuer`, `RemoteJwksBuilder::add_issuer` /
    /// `with_issuers`, a key source's `issuers()`), and this list:
    /// - with **one** key source, *is* its set: it replaces a discovery document's issuer
    ///   (APIM's `<issuers>` beside `<openid-config>`: custom domains, a proxy's URL), and narrows
    ///   issuers stated explicitly — listing one the source does not state is a `build()` error;
    /// - with **several** key sources, goes to the sources that state no issuer (bare JWKS URLs,
    ///   static keys without `add_issuer`), less any issuer another source names as its own. A
    ///   listed issuer no source can accept, or a source left without one, is a `build()` error.
    ///
    /// ```
    /// use validate_jwt::{ConfigError, StaticKeys, ValidateJwtLayer};
    ///
    /// let secret = b"a shared secret of at least 32 bytes!";
    /// // Keys bound to one issuer cannot be widened to another here.
    /// let err = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, secret).add_issuer("https://a.example"))
    ///     .add_issuer("https://b.example")
    ///     .add_audience("api://echo")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::UnreachableIssuer { .. }));
    /// ```
    pub fn add_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accept any issuer (and a token without `iss`) from the key sources that state no issuer
    /// of their own, when every issuer signing with those keys is trusted. Issuers other sources
    /// name as their own are still refused from these keys; sources that name issuers keep
    /// their rule. A `build()` error when no source is unbound, or together with `add_issuer`.
    pub fn danger_accept_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// An accepted audience (`aud`, one string or an array in the token; repeatable, any-of).
    pub fn add_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accept tokens for any audience (CVE-2020-26160 territory: a token issued for another
    /// API is then accepted here).
    pub fn danger_accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Allows an algorithm (repeatable). Without any, the asymmetric algorithms are allowed
    /// (RS*, PS*, ES256, ES384, EdDSA, Ed25519), plus HS* when an HMAC secret is configured.
    pub fn add_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithms.push(algorithm);
        self
    }

    /// The leeway for `exp` and `nbf` (default 60 s; at most 1 hour).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accept tokens without `exp` (APIM's `require-expiration-time="false"`).
    pub fn danger_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Require `typ: at+jwt` (RFC 9068 access tokens); by default `typ` may be absent, `JWT`,
    /// `at+jwt` or `application/at+jwt`.
    pub fn require_access_token_typ(mut self) -> Self {
        self.typ = TypPolicy::AccessTokenOnly;
        self
    }

    /// Accept exactly these `typ` values (case-insensitive, `application/` optional), and an
    /// absent `typ` when `allow_absent`.
    pub fn with_accepted_typ<I, S>(mut self, values: I, allow_absent: bool) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.typ = TypPolicy::List {
            values: values
                .into_iter()
                .map(|v| v.into().into_boxed_str())
                .collect(),
            allow_absent,
        };
        self
    }

    /// Accept any `typ` (ID tokens and other JWTs too).
    pub fn danger_accept_any_typ(mut self) -> Self {
        self.typ = TypPolicy::Any;
        self
    }

    /// The largest token accepted, in bytes (default 16 KiB); larger ones are refused before
    /// any decoding.
    pub fn with_max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Where time comes from (default: the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a request may wait for keys on a cold start or an unknown `kid` (default 15 s;
    /// above zero and at most 10 minutes). All key sources are waited for together.
    pub fn with_key_wait(mut self, wait: Duration) -> Self {
        self.key_wait = wait;
        self
    }

    /// Remember up to `capacity` validated tokens, so a token seen again (clients resend the
    /// same one until it expires) is accepted after a hash, a byte comparison and a time check
    /// instead of a signature verification. Off by default; `0` turns it off.
    ///
    /// A hit is exactly as strict as a full validation. It skips only what cannot change for the
    /// same bytes under the same keys: decoding, parsing, the signature, `typ`, issuer and
    /// audience. It repeats what can: `exp`/`nbf` against the clock, and every requirement,
    /// synchronous and asynchronous (predicates may read a revocation list or the clock). Any
    /// change of a key source's key set drops the entries checked with the old one, and only
    /// byte-identical tokens match. Memory is
    /// bounded by `capacity` (each entry holds the token and its decoded claims), plus a front
    /// cache of 8 entries per thread that keeps hits on different cores from sharing a lock or
    /// a reference count. Watch it with [`ValidateJwtLayer::token_cache_stats`].
    ///
    /// ```
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .with_token_cache(50_000)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(layer.token_cache_stats().unwrap().capacity, 50_000);
    /// ```
    pub fn with_token_cache(mut self, capacity: usize) -> Self {
        self.token_cache = capacity;
        self
    }

    /// Labels the request counter (`validate_jwt_requests_total`, feature `metrics`) by issuer
    /// too: `issuer` is the issuer the token was verified for, as configured or as its source's
    /// discovery document states it (an Azure AD `{tenantid}` template stays the template),
    /// `any` for a source under [`danger_accept_any_issuer`](Self::danger_accept_any_issuer),
    /// and `unverified` when the request ended before its issuer was established (no token,
    /// a bad signature, a foreign issuer, …). A refused token's own `iss` is never a label
    /// value: the values are bounded by the configuration, whatever tokens arrive.
    ///
    /// Off by default. On, each counted request builds its metric key (one small allocation)
    /// and an accepted token's claims hold the issuer.
    ///
    /// ```
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .label_metrics_by_issuer()
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "metrics")]
    pub fn label_metrics_by_issuer(mut self) -> Self {
        self.label_issuers = true;
        self
    }

    // ---- claims -----------------------------------------------------------------------

    /// A requirement every token must meet (repeatable: all must hold).
    pub fn require(mut self, requirement: Requirement) -> Self {
        self.requirements.push(requirement);
        self
    }

    /// All of these scopes (`scp` or `scope`).
    pub fn require_all_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(Requirement::all_scopes(scopes))
    }

    /// All of these roles (`roles`).
    pub fn require_all_roles<I, S>(self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(Requirement::all_roles(roles))
    }

    // ---- token location ---------------------------------------------------------------

    /// Read the raw token from this header instead of `Authorization: Bearer` (a leading
    /// `Bearer ` is tolerated). APIM's `header-name`.
    pub fn with_header_name(mut self, name: impl Into<String>) -> Self {
        self.header_name = Some(name.into());
        self
    }

    /// The authorization scheme the token header must use (default `Bearer`, compared
    /// case-insensitively; APIM's `require-scheme`). A header with another scheme counts as no token.
    pub fn with_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = Some(scheme.into());
        self
    }

    /// Also accept the token in this query parameter (APIM's `query-parameter-name`). A request
    /// carrying it in two places is refused.
    pub fn add_query_parameter(mut self, name: impl Into<String>) -> Self {
        self.query = Some(name.into());
        self
    }

    /// Also accept the token in this cookie.
    pub fn add_cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Also accept a token found by your own code.
    pub fn add_token_extractor<F>(mut self, f: F) -> Self
    where
        F: Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync + 'static,
    {
        self.locations.custom = Some(Arc::new(f));
        self
    }

    /// Let requests without a token through, without claims (tokens that are present are
    /// still validated, and invalid ones refused).
    pub fn allow_anonymous(mut self) -> Self {
        self.allow_anonymous = true;
        self
    }

    /// Let requests the predicate matches through without a token.
    pub fn skip_if<F>(mut self, f: F) -> Self
    where
        F: Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync + 'static,
    {
        self.skip = Some(Arc::new(f));
        self
    }

    /// Let CORS preflight requests (`OPTIONS` with `Access-Control-Request-Method`) through.
    pub fn skip_cors_preflight(self) -> Self {
        self.skip_if(|m, _, h| {
            m == Method::OPTIONS && h.contains_key("access-control-request-method")
        })
    }

    // ---- claims to the inner service --------------------------------------------------

    /// Forward a verified claim to the inner service in a request header (repeatable; envoy's
    /// `claim_to_headers`, APIM's `set-header` reading `output-token-variable-name`).
    ///
    /// **The incoming header of that name is always removed first**, from every request the
    /// layer lets through: accepted, anonymous ([`allow_anonymous`](Self::allow_anonymous)) or
    /// skipped ([`skip_if`](Self::skip_if)). A client can never pre-set it, so the backend may
    /// trust it (as long as the layer is the only way in).
    ///
    /// `claim` is a top-level claim name taken as it is (`oid`, `https://x.example/roles`), or,
    /// when it starts with `/`, a JSON Pointer (RFC 6901) into nested claims: `/realm_access/roles`,
    /// `/groups/0` (`~1` stands for `/` and `~0` for `~` inside a segment). The value:
    ///
    /// | claim | header value |
    /// |---|---|
    /// | string | the string |
    /// | number, boolean | its JSON text (`42`, `1.5`, `true`) |
    /// | array | the items joined with the [separator](Self::with_claim_header_separator) (default `,`); strings as they are, other items as JSON |
    /// | object | its compact JSON |
    /// | absent, `null`, `[]` | no header |
    ///
    /// A value with a control character (CR, LF, NUL, …) cannot be a header value: the request
    /// is refused with 401 `invalid_token`, unless the values are
    /// [percent-encoded](ClaimHeaderEncoding::Percent). Header names are checked at
    /// [`build`](Self::build): a valid name, used once, never the token's own header nor one of
    /// `host`, `content-length`, `transfer-encoding`, `connection`, `keep-alive`, `te`,
    /// `trailer`, `upgrade`, `proxy-connection`, `proxy-authorization`, `cookie`.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use tower::ServiceExt;
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let jwt = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .allow_anonymous()
    ///     .add_claim_header("sub", "x-user")
    ///     .add_claim_header("/realm_access/roles", "x-roles")
    ///     .build()
    ///     .unwrap();
    /// let app = Router::new()
    ///     .route("/", get(|headers: http::HeaderMap| async move {
    ///         format!("{:?}", headers.get("x-user"))
    ///     }))
    ///     .layer(jwt);
    ///
    /// // A forged header never reaches the service, not even without a token.
    /// let forged = http::Request::get("/").header("x-user", "admin").body(axum::body::Body::empty()).unwrap();
    /// let response = app.oneshot(forged).await.unwrap();
    /// let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
    /// assert_eq!(body, "None");
    /// # }
    /// ```
    pub fn add_claim_header(mut self, claim: impl Into<String>, header: impl Into<String>) -> Self {
        self.forward.claims.push((claim.into(), header.into()));
        self
    }

    /// The text between the items of an array claim forwarded by
    /// [`add_claim_header`](Self::add_claim_header) (default `,`, HTTP's list separator;
    /// visible ASCII or spaces). Items are joined as they are: choose a separator they cannot
    /// contain.
    pub fn with_claim_header_separator(mut self, separator: impl Into<String>) -> Self {
        self.forward.separator = separator.into();
        self
    }

    /// How forwarded claim values are written (default
    /// [`ClaimHeaderEncoding::Verbatim`]: as they are, and a control character refuses the
    /// request).
    pub fn with_claim_header_encoding(mut self, encoding: ClaimHeaderEncoding) -> Self {
        self.forward.encoding = encoding;
        self
    }

    /// Forward the whole verified payload to the inner service in this header, base64url
    /// without padding, exactly the bytes the token carried (envoy's `forward_payload_header`).
    /// Like claim headers, an incoming header of this name is always removed first.
    ///
    /// ```
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .with_payload_header("x-jwt-payload")
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn with_payload_header(mut self, header: impl Into<String>) -> Self {
        self.forward.payload = Some(header.into());
        self
    }

    // ---- answers ----------------------------------------------------------------------

    /// The `realm` of `WWW-Authenticate`.
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The status of every validation failure — no token, an invalid token, missing claims —
    /// instead of 401 / 403 (APIM's `failed-validation-httpcode`; a 4xx). Malformed requests
    /// (400), missing keys (503) and setup mistakes (500) keep theirs. RFC 6750 gives each
    /// `error` code its status, so an answer whose status was moved away from its code's
    /// carries a plain `Bearer` challenge; its JSON body still names the error.
    pub fn with_failed_status(mut self, status: u16) -> Self {
        self.failed_status = Some(status);
        self
    }

    /// The `error_description` of every validation failure, in the body and the challenge
    /// (APIM's `failed-validation-error-message`); the same answers as
    /// [`with_failed_status`](Self::with_failed_status).
    pub fn with_failed_message(mut self, message: impl Into<String>) -> Self {
        self.failed_message = Some(message.into());
        self
    }

    /// Shape every rejection yourself: `f` gets the error and the answer the layer would give
    /// (its status, `WWW-Authenticate` challenge, JSON body — or, for a gRPC request, its
    /// `grpc-status` trailers-only answer) and returns the answer to send. The [`JwtError`] is
    /// put in the returned answer's extensions.
    ///
    /// ```
    /// use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
    /// use validate_jwt::{Bytes, JwtErrorKind, StaticKeys, ValidateJwtLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .with_responder(|err, default| {
    ///         if default.headers().contains_key("grpc-status") {
    ///             return default; // gRPC clients read the status, not a body
    ///         }
    ///         // A problem+json body, keeping the default status and challenge.
    ///         let (mut parts, _) = default.into_parts();
    ///         parts.headers.insert(CONTENT_TYPE, "application/problem+json".parse().unwrap());
    ///         let body = format!(r#"{{"title":"{}","status":{}}}"#, err.kind(), parts.status.as_u16());
    ///         http::Response::from_parts(parts, Bytes::from(body))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "ok" }))
    ///     .layer(layer);
    /// let request = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
    /// let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
    /// assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    /// let err = response.extensions().get::<validate_jwt::JwtError>().unwrap();
    /// assert_eq!(err.kind(), JwtErrorKind::Missing);
    /// # }
    /// ```
    pub fn with_responder<F>(mut self, f: F) -> Self
    where
        F: Fn(&JwtError, Response<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.responder = Some(Arc::new(f));
        self
    }

    // ---- protected resource metadata (RFC 9728) ----------------------------------------

    /// The protected resource this layer guards (RFC 9728): the layer serves its metadata
    /// document — `resource`, `authorization_servers`, `scopes_supported`,
    /// `bearer_methods_supported`, derived from this builder's own settings (see
    /// [`ProtectedResource`] for each member's source) — at
    /// `/.well-known/oauth-protected-resource` plus the resource's path (and without it), to
    /// `GET`/`HEAD`/`OPTIONS` requests without a token, and every challenge it sends
    /// (`WWW-Authenticate` on 401 and 403, gRPC answers' metadata included) names it in
    /// `resource_metadata="…"`. A client that meets a 401 then finds the authorization server,
    /// the scopes and how to send the token on its own; MCP servers must do this.
    ///
    /// `resource` is a URL (`https`; plain `http` to a loopback host), or a
    /// [`ProtectedResource`] with optional members; a bad one is a `build()` error. The
    /// audience stays what `add_audience` says; for the resource to be the audience (RFC 8707,
    /// MCP), use [`with_resource_as_audience`](Self::with_resource_as_audience).
    ///
    /// ```
    /// use tower::ServiceExt;
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let jwt = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://files")
    ///     .with_resource("https://api.example/files")
    ///     .build()
    ///     .unwrap();
    /// let app = axum::Router::new()
    ///     .route("/files", axum::routing::get(|| async { "files" }))
    ///     .layer(jwt);
    /// let get = |path: &str| http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    ///
    /// let refused = app.clone().oneshot(get("/files")).await.unwrap();
    /// assert_eq!(refused.status(), 401);
    /// assert_eq!(
    ///     refused.headers()["www-authenticate"],
    ///     r#"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource/files""#
    /// );
    /// let metadata = app.oneshot(get("/.well-known/oauth-protected-resource/files")).await.unwrap();
    /// assert_eq!(metadata.status(), 200);
    /// # }
    /// ```
    pub fn with_resource(mut self, resource: impl Into<ProtectedResource>) -> Self {
        self.resource = Some(resource.into());
        self.resource_as_audience = false;
        self
    }

    /// [`with_resource`](Self::with_resource), and the resource identifier is an accepted
    /// audience (`aud`, exactly as given): RFC 8707 resource indicators, and the MCP
    /// authorization spec's rule that a token's audience is the server's canonical URI. A token
    /// for another audience is the usual 401 `invalid_token`. Further `add_audience` calls add
    /// more accepted audiences.
    ///
    /// ```
    /// use validate_jwt::{JwtErrorKind, ValidateJwtLayer};
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let idp = TestIssuer::start()?;
    /// let jwt = ValidateJwtLayer::builder()
    ///     .add_key_source(idp.remote_jwks().build()?)
    ///     .with_resource_as_audience("http://127.0.0.1:8080/mcp")
    ///     .build()?;
    /// let token = idp.token().audience("http://127.0.0.1:8080/mcp").sign();
    /// assert!(jwt.validate_token(&token).await.is_ok());
    /// let other = idp.token().audience("http://127.0.0.1:9090/mcp").sign();
    /// let err = jwt.validate_token(&other).await.unwrap_err();
    /// assert_eq!(err.kind(), JwtErrorKind::InvalidAudience);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_resource_as_audience(mut self, resource: impl Into<ProtectedResource>) -> Self {
        self.resource = Some(resource.into());
        self.resource_as_audience = true;
        self
    }

    pub(crate) fn allow_tenants(mut self, tenants: Vec<String>) -> Self {
        self.allowed_tenants.extend(tenants);
        self
    }

    pub(crate) fn azure_v1_equivalence(mut self, v1: Option<AzureV1>) -> Self {
        self.azure_v1 = v1;
        self
    }

    /// Records an error found while configuring, reported by `build`.
    pub(crate) fn fail(mut self, error: ConfigError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    // ---- sender-constrained tokens ------------------------------------------------------

    /// DPoP (RFC 9449): DPoP-bound tokens with their proofs, beside bearer tokens
    /// ([`Dpop::allowed`](crate::sender::Dpop::allowed)) or instead of them
    /// ([`Dpop::required`](crate::sender::Dpop::required)). Off by default. The token must be
    /// read from `Authorization` (the default location), which then also takes the `DPoP`
    /// scheme. See [`crate::sender`].
    ///
    /// ```
    /// use validate_jwt::sender::Dpop;
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .with_dpop(Dpop::required())
    ///     .build()
    ///     .unwrap();
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello" }))
    ///     .layer(layer);
    /// let response = tower::ServiceExt::oneshot(app, http::Request::get("/")
    ///     .header("host", "api.example").body(axum::body::Body::empty()).unwrap())
    ///     .await
    ///     .unwrap();
    /// assert_eq!(response.status(), 401);
    /// assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP algs="));
    /// # }
    /// ```
    pub fn with_dpop(mut self, dpop: crate::sender::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Certificate-bound tokens (RFC 8705 §3): a token whose `cnf` names `x5t#S256` is
    /// accepted only over a connection with that client certificate, found where
    /// `certificates` says. Off by default. See [`crate::sender`].
    pub fn with_client_certificates(
        mut self,
        certificates: crate::sender::ClientCertificates,
    ) -> Self {
        self.client_certificates = Some(certificates);
        self
    }

    /// Lets a token bound to a key the layer does not check pass as a bearer token: a
    /// DPoP-bound token (`cnf.jkt`) without [`with_dpop`](Self::with_dpop), a
    /// certificate-bound one (`cnf["x5t#S256"]`) without
    /// [`with_client_certificates`](Self::with_client_certificates).
    ///
    /// By default such tokens are refused (`invalid_binding`, 401): the authorization server
    /// bound them so that a stolen copy is useless, and a layer that ignores the binding
    /// would accept the stolen copy. Opt out only when another component checks the binding
    /// (a TLS terminator that verifies `x5t#S256` itself, say). A malformed `cnf`, and an
    /// unbound token under [`Dpop::required`](crate::sender::Dpop::required), are refused
    /// still.
    ///
    /// ```
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .danger_accept_bound_tokens_as_bearer()
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn danger_accept_bound_tokens_as_bearer(mut self) -> Self {
        self.accept_bound_as_bearer = true;
        self
    }

    // ---- build ------------------------------------------------------------------------

    /// Checks the configuration and builds the layer: one checked step per concept.
    pub fn build(self) -> Result<ValidateJwtLayer, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let sources = checks::KeySources::new(
            self.providers,
            &self.remote,
            self.allow_http,
            self.http_client.as_ref(),
            self.static_keys,
        )?;
        let mut audiences = self.audiences;
        if self.resource_as_audience
            && let Some(resource) = &self.resource
        {
            audiences.push(resource.resource().to_owned());
        }
        let audiences = checks::audiences(audiences, self.any_audience)?;
        let issuer_rule = IssuerRule {
            sources: issuer::assign(&sources.statements(), &self.issuers, self.any_issuer)?,
            allowed_tenants: self.allowed_tenants.into_iter().map(Into::into).collect(),
            azure_v1: self.azure_v1,
        };
        let algorithms = checks::algorithms(&self.algorithms, &sources)?;
        checks::limits(self.key_wait, self.leeway, self.max_token_bytes)?;
        let mut locations = checks::token_locations(
            self.locations,
            self.header_name,
            self.scheme,
            self.query,
            self.cookie,
        )?;
        let mut answers = checks::answers(
            self.realm,
            self.failed_status,
            self.failed_message,
            self.responder,
        )?;
        let requirement = checks::requirement(self.requirements)?;
        let sender = checks::sender(
            self.dpop,
            self.client_certificates,
            self.clock.clone(),
            &mut locations,
            &mut answers,
        )?;
        let metadata = match &self.resource {
            None => None,
            Some(protected) => {
                let mut scopes = Vec::new();
                if let Some(r) = &requirement {
                    r.scope_names(&mut scopes);
                }
                let derived = Derived {
                    authorization_servers: resource::authorization_servers(
                        &sources.discovery_issuers(),
                        &issuer_rule.sources,
                    ),
                    scopes: scopes.into_iter().map(Into::into).collect(),
                    bearer_methods: resource::bearer_methods(&locations),
                    sender: sender
                        .as_ref()
                        .map(|s| s.metadata_members())
                        .unwrap_or_default(),
                };
                Some(resource::build(protected, derived)?)
            }
        };
        answers.resource_metadata = metadata.as_ref().map(|m| m.url().into());
        let forward = self.forward.build(locations.header.as_ref())?;

        let (providers, probes) = sources.into_providers();
        if tokio::runtime::Handle::try_current().is_ok() {
            for p in &providers {
                p.warm_up();
            }
        }
        let validator = Validator::new(Rules {
            providers,
            algorithms,
            typ: self.typ,
            leeway: self.leeway.as_secs(),
            require_exp: self.require_exp,
            issuer_rule,
            audiences,
            any_audience: self.any_audience,
            max_token_bytes: self.max_token_bytes,
            requirement,
            clock: self.clock,
            key_wait: self.key_wait,
            token_cache: self.token_cache,
            label_issuers: self.label_issuers,
            binding: crate::sender::Sender::binding_rule(
                sender.as_ref(),
                self.accept_bound_as_bearer,
            ),
            also_read: forward
                .iter()
                .flat_map(|f| f.top_level_names())
                .map(Into::into)
                // The binding checks read `cnf`: captured in the one parse.
                .chain(sender.is_some().then(|| "cnf".into()))
                .collect(),
        });
        let http = Http {
            locations,
            skip: self.skip,
            allow_anonymous: self.allow_anonymous,
            answers: Arc::new(answers),
            forward: forward.map(Arc::new),
            probes,
            sender: sender.map(Arc::new),
            metadata,
        };
        Ok(ValidateJwtLayer::new(validator, http))
    }
}

mod checks;
