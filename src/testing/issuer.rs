//! [`TestIssuer`]: the keys, the documents it serves, rotation and faults.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::StatusCode;
use serde_json::{Value, json};

use super::keys::SigningKey;
use super::server::{Reply, Server, Site};
use super::token::TokenBuilder;
use crate::algorithm::{Algorithm, KeyFamily};
use crate::azure::AzureAd;
use crate::config::ValidateJwtBuilder;
use crate::keys::{RemoteJwks, RemoteJwksBuilder, StaticKeys};

/// The audience of an OpenID issuer's tokens unless [`with_audience`](TestIssuerBuilder::with_audience)
/// says otherwise.
pub const DEFAULT_AUDIENCE: &str = "api://test";

/// The client application (`azp`, `appid`, `client_id`) of the tokens unless
/// [`with_client_app`](TestIssuerBuilder::with_client_app) says otherwise: a GUID, as Azure AD's
/// application ids are.
pub const DEFAULT_CLIENT_APP: &str = "0f3c2b1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9";

/// The algorithms an issuer has keys for unless
/// [`with_algorithms`](TestIssuerBuilder::with_algorithms) says otherwise.
pub const DEFAULT_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Azure AD's tenant-independent endpoint names: their documents name the `{tenantid}` template.
const AZURE_MULTI_TENANT: [&str; 3] = ["organizations", "common", "consumers"];

/// A way for the identity provider to misbehave, switched on with
/// [`TestIssuer::set_fault`]: it applies to the discovery document and the key set alike.
///
/// What a layer does about it (the layer's key source is a [`RemoteJwks`](crate::RemoteJwks)):
/// - **keys already loaded**: it keeps validating with them (stale-if-error). A token signed with
///   a key published while the fault lasts (after [`rotate`](TestIssuer::rotate)) gets 401
///   `invalid_token` ([`UnknownKey`](crate::JwtErrorKind::UnknownKey)) until a refresh succeeds;
/// - **cold start** (no key set fetched yet): every request gets 503 `temporarily_unavailable`
///   with `Retry-After` ([`KeysUnavailable`](crate::JwtErrorKind::KeysUnavailable)); retries back
///   off from 1 s to 30 s, and the first one after the fault is cleared serves again.
///
/// The source's [`status`](crate::RemoteJwks::status) names the failure: `KeyErrorKind::Status`,
/// `Timeout` (after the source's timeout, 10 s by default), `InvalidJson` or `Connect`.
///
/// ```
/// use validate_jwt::testing::{Fault, TestIssuer};
/// use validate_jwt::JwtErrorKind;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// issuer.set_fault(Fault::Down);
/// let layer = issuer.layer_builder().build()?;
/// let err = layer.validate_token(&issuer.token().sign()).await.unwrap_err();
/// assert_eq!(err.kind(), JwtErrorKind::KeysUnavailable); // 503 at cold start
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Every request is answered with this status and no body (`Fault::Status(StatusCode::INTERNAL_SERVER_ERROR)`).
    Status(StatusCode),
    /// Every request is accepted and never answered.
    Hang,
    /// Every request is answered 200 with a JSON document cut short.
    InvalidJson,
    /// The issuer is unreachable: open connections fail and new ones are closed as soon as
    /// they are accepted. The port stays the issuer's, so it comes back at the same URL.
    Down,
}

/// The documents an issuer serves and the tokens it makes.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// `/.well-known/openid-configuration` and `/jwks`; the issuer is the base URL.
    OpenId,
    /// Azure AD's paths, for every tenant: `/{tenant}/v2.0/.well-known/openid-configuration` and
    /// `/{tenant}/discovery/v2.0/keys`.
    AzureAd {
        tenant: String,
        api: String,
        multi_tenant: bool,
    },
}

/// The published keys: the current ones sign, the old ones stay in the key set until withdrawn.
struct Keys {
    current: Vec<SigningKey>,
    old: Vec<SigningKey>,
}

/// What the server and the token builder share.
pub(super) struct Shared {
    pub(super) base: String,
    pub(super) shape: Shape,
    /// `aud` of OpenID and Azure AD v2 tokens.
    pub(super) audience: String,
    /// `aud` of Azure AD v1 tokens.
    pub(super) v1_audience: String,
    pub(super) client_app: String,
    algorithms: Vec<Algorithm>,
    keys: Mutex<Keys>,
    hmac: Option<SigningKey>,
    /// Keys of algorithms the issuer does not publish, made on first use.
    strangers: Mutex<Vec<SigningKey>>,
    fault: Mutex<Option<Fault>>,
    discovery_requests: AtomicUsize,
    jwks_requests: AtomicUsize,
    serial: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The issuer of tokens for `tenant` (Azure AD) in the v2 or v1 form.
    pub(super) fn issuer_for(&self, tenant: &str, v1: bool) -> String {
        match (&self.shape, v1) {
            (Shape::OpenId, _) => self.base.clone(),
            (Shape::AzureAd { .. }, false) => format!("{}/{tenant}/v2.0", self.base),
            (Shape::AzureAd { .. }, true) => format!("{}/{tenant}/", self.base),
        }
    }

    /// The tenant of tokens that name none.
    pub(super) fn home_tenant(&self) -> Option<&str> {
        match &self.shape {
            Shape::OpenId => None,
            Shape::AzureAd { tenant, .. } => Some(tenant),
        }
    }

    pub(super) fn is_azure(&self) -> bool {
        matches!(self.shape, Shape::AzureAd { .. })
    }

    /// RS256 when the issuer has that key, else its first algorithm.
    pub(super) fn default_algorithm(&self) -> Algorithm {
        match self.algorithms.first() {
            Some(first) if !self.algorithms.contains(&Algorithm::RS256) => *first,
            _ => Algorithm::RS256,
        }
    }

    /// The current published key for `alg` (the Ed25519 key for either name; the HMAC secret
    /// for HS*), if the issuer has one.
    pub(super) fn published_key(&self, alg: Algorithm) -> Option<SigningKey> {
        if alg.family() == KeyFamily::Hmac {
            return self.hmac.clone();
        }
        let wanted = match alg {
            Algorithm::Ed25519 => Algorithm::EdDSA,
            alg => alg,
        };
        let keys = lock(&self.keys);
        keys.current
            .iter()
            .find(|k| k.algorithm() == wanted)
            .cloned()
    }

    /// The key that signs `alg` tokens: the published one, or else a key the issuer does not
    /// publish.
    pub(super) fn signing_key(&self, alg: Algorithm) -> SigningKey {
        self.published_key(alg)
            .unwrap_or_else(|| self.stranger(alg))
    }

    /// A key of `alg` that no key set of this issuer holds.
    pub(super) fn stranger(&self, alg: Algorithm) -> SigningKey {
        let mut strangers = lock(&self.strangers);
        if let Some(key) = strangers.iter().find(|k| k.algorithm() == alg) {
            return key.clone();
        }
        let key = SigningKey::generate(alg);
        strangers.push(key.clone());
        key
    }

    pub(super) fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed)
    }

    fn jwk(&self, key: &SigningKey) -> Value {
        let mut jwk = key.jwk();
        if self.is_azure() {
            // As Azure AD publishes its keys: `x5t` beside `kid`, no `alg`, and the
            // tenant-independent issuer the key signs for.
            jwk["x5t"] = json!(key.kid());
            if let Some(members) = jwk.as_object_mut() {
                members.remove("alg");
            }
            jwk["issuer"] = json!(format!("{}/{{tenantid}}/v2.0", self.base));
        }
        jwk
    }

    fn jwks(&self) -> Value {
        let keys = lock(&self.keys);
        let published = keys.current.iter().chain(&keys.old);
        json!({ "keys": published.map(|k| self.jwk(k)).collect::<Vec<_>>() })
    }

    fn discovery(&self, tenant: Option<&str>) -> Value {
        let algorithms: Vec<&str> = self.algorithms.iter().map(|a| a.as_str()).collect();
        let base = &self.base;
        let (issuer, jwks_uri, endpoints, subjects) = match tenant {
            None => (base.clone(), format!("{base}/jwks"), base.clone(), "public"),
            Some(tenant) => {
                let issuer_tenant = match AZURE_MULTI_TENANT.contains(&tenant) {
                    true => "{tenantid}",
                    false => tenant,
                };
                (
                    self.issuer_for(issuer_tenant, false),
                    format!("{base}/{tenant}/discovery/v2.0/keys"),
                    format!("{base}/{tenant}/oauth2/v2.0"),
                    "pairwise",
                )
            }
        };
        // The members OpenID Connect Discovery requires; only `jwks_uri` is served.
        json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "authorization_endpoint": format!("{endpoints}/authorize"),
            "token_endpoint": format!("{endpoints}/token"),
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": [subjects],
            "id_token_signing_alg_values_supported": algorithms,
        })
    }
}

/// Which document a path names.
enum Document<'a> {
    Discovery(Option<&'a str>),
    Jwks,
}

impl Shared {
    fn document<'a>(&self, path: &'a str) -> Option<Document<'a>> {
        match self.shape {
            Shape::OpenId => match path {
                "/.well-known/openid-configuration" => Some(Document::Discovery(None)),
                "/jwks" => Some(Document::Jwks),
                _ => None,
            },
            Shape::AzureAd { .. } => {
                let (tenant, rest) = path.strip_prefix('/')?.split_once('/')?;
                match rest {
                    _ if tenant.is_empty() => None,
                    "v2.0/.well-known/openid-configuration" => {
                        Some(Document::Discovery(Some(tenant)))
                    }
                    "discovery/v2.0/keys" => Some(Document::Jwks),
                    _ => None,
                }
            }
        }
    }

    fn fault(&self) -> Option<Fault> {
        *lock(&self.fault)
    }
}

impl Site for Shared {
    fn reply(&self, path: &str) -> Reply {
        let Some(document) = self.document(path) else {
            return Reply::NotFound;
        };
        let counter = match document {
            Document::Discovery(_) => &self.discovery_requests,
            Document::Jwks => &self.jwks_requests,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if let Some(fault) = self.fault() {
            return Reply::Fault(fault);
        }
        let body = match document {
            Document::Discovery(tenant) => self.discovery(tenant),
            Document::Jwks => self.jwks(),
        };
        Reply::Json(body.to_string())
    }

    fn is_down(&self) -> bool {
        self.fault() == Some(Fault::Down)
    }
}

/// A local identity provider for tests: fresh keys, OpenID Connect discovery and the JWKS
/// served over real HTTP on `127.0.0.1`, and tokens signed with its keys. **Not for
/// production** (the `test-util` feature belongs in `[dev-dependencies]`).
///
/// The server runs on its own thread and Tokio runtime, so it works in any test (async or
/// not) and keeps real time while a test pauses its own clock. It stops when dropped.
///
/// ```
/// use tower::ServiceExt;
/// use validate_jwt::testing::TestIssuer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// let layer = issuer.layer_builder().require_all_scopes(["Files.Read"]).build()?;
/// let app = axum::Router::new()
///     .route("/files", axum::routing::get(|| async { "files" }))
///     .layer(layer);
///
/// let request = |token: String| {
///     http::Request::get("/files")
///         .header("authorization", format!("Bearer {token}"))
///         .body(axum::body::Body::empty())
///         .unwrap()
/// };
/// let ok = app.clone().oneshot(request(issuer.token().scopes(["Files.Read"]).sign())).await?;
/// assert_eq!(ok.status(), 200);
/// let forbidden = app.oneshot(request(issuer.token().sign())).await?;
/// assert_eq!(forbidden.status(), 403);
/// # Ok(())
/// # }
/// ```
///
/// Shapes: [`start`](Self::start) and [`builder`](Self::builder) make an OpenID Connect issuer
/// (the issuer is [`url`](Self::url); discovery at `/.well-known/openid-configuration`, keys at
/// `/jwks`); [`azure_ad`](Self::azure_ad) and [`azure_ad_multi_tenant`](Self::azure_ad_multi_tenant)
/// an Azure AD authority to point [`AzureAd::authority_host`] at.
pub struct TestIssuer {
    shared: Arc<Shared>,
    _server: Server,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("url", &self.shared.base)
            .field("shape", &self.shared.shape)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TestIssuer`]; from [`TestIssuer::builder`], [`TestIssuer::azure_ad`] or
/// [`TestIssuer::azure_ad_multi_tenant`].
///
/// ```
/// use validate_jwt::Algorithm;
/// use validate_jwt::testing::TestIssuer;
///
/// let issuer = TestIssuer::builder()
///     .with_audience("api://files")
///     .with_algorithms([Algorithm::ES256]) // one key: a quicker start than five
///     .with_hs256()
///     .start()
///     .unwrap();
/// assert_eq!(issuer.audience(), "api://files");
/// assert!(issuer.hs256_secret().is_some());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TestIssuerBuilder {
    shape: Shape,
    audience: Option<String>,
    client_app: Option<String>,
    algorithms: Vec<Algorithm>,
    hmac: bool,
    listen: SocketAddr,
}

impl TestIssuerBuilder {
    fn new(shape: Shape) -> Self {
        TestIssuerBuilder {
            shape,
            audience: None,
            client_app: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            hmac: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The audience tokens carry, which [`TestIssuer::layer_builder`] accepts. Default:
    /// [`DEFAULT_AUDIENCE`]; for Azure AD the API's client id (v2 tokens) and `api://{client id}`
    /// (v1 tokens), and this value is then accepted as an Application ID URI.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The client application tokens name (`azp`, and `appid` in Azure AD v1 tokens; `client_id`
    /// too in OpenID ones). Default: [`DEFAULT_CLIENT_APP`].
    pub fn with_client_app(mut self, client_id: impl Into<String>) -> Self {
        self.client_app = Some(client_id.into());
        self
    }

    /// The algorithms the issuer has keys for, one key each, replacing [`DEFAULT_ALGORITHMS`].
    /// Tokens are RS256 when it is one of them, else of the first. An HMAC algorithm in the
    /// list is [`with_hs256`](Self::with_hs256): secrets are never published.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms.clear();
        for alg in algorithms {
            let alg = match alg {
                Algorithm::Ed25519 => Algorithm::EdDSA,
                alg => alg,
            };
            if alg.family() == KeyFamily::Hmac {
                self.hmac = true;
            } else if !self.algorithms.contains(&alg) {
                self.algorithms.push(alg);
            }
        }
        self
    }

    /// A random HS256 secret too, which [`TestIssuer::layer_builder`] configures as a static
    /// key ([`TestIssuer::hs256_secret`] for your own configuration). It is not in the JWKS:
    /// tokens ask for it with `.alg(Algorithm::HS256)`.
    pub fn with_hs256(mut self) -> Self {
        self.hmac = true;
        self
    }

    /// The address to listen on. Default: `127.0.0.1:0` (a free port).
    pub fn with_listen_addr(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Makes the keys, binds the address and starts serving. Fails only when the address
    /// cannot be bound or the server's thread cannot start.
    pub fn start(self) -> io::Result<TestIssuer> {
        let listener = std::net::TcpListener::bind(self.listen)?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let (audience, v1_audience) = match (&self.shape, self.audience) {
            (_, Some(audience)) => (audience.clone(), audience),
            (Shape::OpenId, None) => (DEFAULT_AUDIENCE.to_owned(), DEFAULT_AUDIENCE.to_owned()),
            (Shape::AzureAd { api, .. }, None) => (api.clone(), format!("api://{api}")),
        };
        let current = self
            .algorithms
            .iter()
            .map(|&alg| SigningKey::generate(alg))
            .collect();
        let shared = Arc::new(Shared {
            base,
            shape: self.shape,
            audience,
            v1_audience,
            client_app: self
                .client_app
                .unwrap_or_else(|| DEFAULT_CLIENT_APP.to_owned()),
            algorithms: self.algorithms,
            keys: Mutex::new(Keys {
                current,
                old: Vec::new(),
            }),
            hmac: self.hmac.then(|| SigningKey::generate(Algorithm::HS256)),
            strangers: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
            discovery_requests: AtomicUsize::new(0),
            jwks_requests: AtomicUsize::new(0),
            serial: AtomicU64::new(1),
        });
        let server = Server::spawn(listener, shared.clone())?;
        Ok(TestIssuer {
            shared,
            _server: server,
        })
    }
}

impl TestIssuer {
    /// An OpenID Connect issuer with the defaults, started: the one-liner of most tests.
    pub fn start() -> io::Result<TestIssuer> {
        Self::builder().start()
    }

    /// Configures an OpenID Connect issuer.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder::new(Shape::OpenId)
    }

    /// Configures an Azure AD (Entra ID) authority whose tokens are issued by `tenant_id` for
    /// the API whose client id is `api_client_id`, in Azure AD's shapes: v2 tokens by default
    /// (issuer `{url}/{tid}/v2.0`, `tid`, `azp`, `scp` as one string, `roles` as an array,
    /// `ver`), v1 ones on request (issuer `{url}/{tid}/`, `appid`). It serves every tenant's
    /// documents at Azure AD's paths, and the tenant-independent `organizations`, `common` and
    /// `consumers` documents with the `{tenantid}` template issuer, so any [`AzureAd`]
    /// configuration works against it through `.authority_host(issuer.url())`;
    /// [`layer_builder`](Self::layer_builder) is the single-tenant one.
    ///
    /// ```
    /// use validate_jwt::AzureAd;
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    /// const API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    /// let issuer = TestIssuer::azure_ad(TENANT, API).start()?;
    /// // Your production configuration, pointed at the test authority:
    /// let layer = AzureAd::tenant(TENANT)
    ///     .api(API)
    ///     .allow_client_apps([issuer.client_app()])
    ///     .authority_host(issuer.url())
    ///     .builder()
    ///     .build()?;
    /// assert!(layer.validate_token(&issuer.token().sign()).await.is_ok());
    /// assert!(layer.validate_token(&issuer.token().azure_v1().sign()).await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn azure_ad(
        tenant_id: impl Into<String>,
        api_client_id: impl Into<String>,
    ) -> TestIssuerBuilder {
        Self::azure(tenant_id.into(), api_client_id.into(), false)
    }

    /// [`azure_ad`](Self::azure_ad) for a multi-tenant API: the same authority, and
    /// [`layer_builder`](Self::layer_builder) is [`AzureAd::multi_tenant`] (the `organizations`
    /// endpoint, whose `{tenantid}` template is resolved from each token's `tid`). Tokens are
    /// issued by `tenant_id` unless [`TokenBuilder::tenant`] names another.
    ///
    /// ```
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::azure_ad_multi_tenant(
    ///     "11111111-1111-1111-1111-111111111111",
    ///     "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    /// )
    /// .start()?;
    /// let layer = issuer.layer_builder().build()?;
    /// let other_tenant = issuer.token().tenant("22222222-2222-2222-2222-222222222222").sign();
    /// assert!(layer.validate_token(&other_tenant).await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn azure_ad_multi_tenant(
        tenant_id: impl Into<String>,
        api_client_id: impl Into<String>,
    ) -> TestIssuerBuilder {
        Self::azure(tenant_id.into(), api_client_id.into(), true)
    }

    fn azure(tenant: String, api: String, multi_tenant: bool) -> TestIssuerBuilder {
        TestIssuerBuilder::new(Shape::AzureAd {
            tenant,
            api,
            multi_tenant,
        })
    }

    /// The base URL, `http://127.0.0.1:{port}`: the issuer of an OpenID issuer's tokens, the
    /// authority host of an Azure AD one.
    pub fn url(&self) -> &str {
        &self.shared.base
    }

    /// The `iss` of the tokens [`token`](Self::token) makes by default: [`url`](Self::url), or
    /// for Azure AD the v2 issuer of its tenant, `{url}/{tenant}/v2.0`.
    pub fn issuer(&self) -> String {
        let tenant = self.shared.home_tenant().unwrap_or_default();
        self.shared.issuer_for(tenant, false)
    }

    /// The audience of the tokens [`token`](Self::token) makes by default (v2 tokens for Azure AD).
    pub fn audience(&self) -> &str {
        &self.shared.audience
    }

    /// The client application the tokens name by default.
    pub fn client_app(&self) -> &str {
        &self.shared.client_app
    }

    /// The discovery document's URL, which [`layer_builder`](Self::layer_builder) uses (for Azure
    /// AD, its tenant's, or `organizations`' for a multi-tenant issuer).
    pub fn discovery_url(&self) -> String {
        self.at(
            "/.well-known/openid-configuration",
            "v2.0/.well-known/openid-configuration",
        )
    }

    /// The key set's URL (the discovery document's `jwks_uri`).
    pub fn jwks_url(&self) -> String {
        self.at("/jwks", "discovery/v2.0/keys")
    }

    /// The URL of an OpenID issuer's `path`, or of an Azure AD tenant's (the issuer's own, or
    /// `organizations` for a multi-tenant one) `azure_path`.
    fn at(&self, path: &str, azure_path: &str) -> String {
        let base = &self.shared.base;
        match &self.shared.shape {
            Shape::OpenId => format!("{base}{path}"),
            Shape::AzureAd {
                multi_tenant: true, ..
            } => format!("{base}/organizations/{azure_path}"),
            Shape::AzureAd { tenant, .. } => format!("{base}/{tenant}/{azure_path}"),
        }
    }

    /// The key set as served now: the current keys, then the old ones not yet withdrawn.
    pub fn jwks(&self) -> Value {
        self.shared.jwks()
    }

    /// The current key for `alg` (the Ed25519 key for `EdDSA` and `Ed25519`, the secret for
    /// HS*), for tests that build tokens byte by byte; `None` when the issuer has none.
    pub fn signing_key(&self, alg: Algorithm) -> Option<SigningKey> {
        self.shared.published_key(alg)
    }

    /// The HS256 secret, with [`with_hs256`](TestIssuerBuilder::with_hs256).
    pub fn hs256_secret(&self) -> Option<Vec<u8>> {
        self.shared.hmac.as_ref().map(SigningKey::public_key_bytes)
    }

    /// A token for the layer [`layer_builder`](Self::layer_builder) configures, to be adjusted
    /// and [signed](TokenBuilder::sign): valid for an hour, for [`audience`](Self::audience),
    /// signed RS256 with the current key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// let issuer = TestIssuer::start().unwrap();
    /// let token = issuer
    ///     .token()
    ///     .subject("alice")
    ///     .scopes(["Files.Read", "Files.Write"])
    ///     .claim("department", "R&D")
    ///     .expires_in(Duration::from_secs(300))
    ///     .sign();
    /// assert_eq!(token.split('.').count(), 3);
    /// ```
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(self.shared.clone())
    }

    /// A [`ValidateJwtBuilder`] that accepts this issuer's tokens: its discovery URL as the key
    /// source, its issuer and audience (and its HS256 secret as a static key, with
    /// [`with_hs256`](TestIssuerBuilder::with_hs256)). For Azure AD,
    /// `AzureAd::tenant(..)` (or `multi_tenant()`) `.api(..).authority_host(url)`. Add your
    /// requirements and build.
    ///
    /// ```
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start()?;
    /// let layer = issuer.layer_builder().require_all_roles(["Admin"]).build()?;
    /// let admin = issuer.token().roles(["Admin"]).sign();
    /// assert_eq!(layer.validate_token(&admin).await?.roles().collect::<Vec<_>>(), ["Admin"]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn layer_builder(&self) -> ValidateJwtBuilder {
        let shared = &self.shared;
        let mut builder = match &shared.shape {
            Shape::OpenId => {
                let builder = ValidateJwtBuilder::new()
                    .add_issuer(self.issuer())
                    .add_audience(&shared.audience);
                match self.remote_jwks().build() {
                    Ok(remote) => builder.add_key_source(remote),
                    Err(e) => builder.fail(e),
                }
            }
            Shape::AzureAd {
                tenant,
                api,
                multi_tenant,
            } => {
                let ad = match multi_tenant {
                    true => AzureAd::multi_tenant(),
                    false => AzureAd::tenant(tenant),
                };
                let mut ad = ad.api(api).authority_host(&shared.base);
                if shared.audience != *api {
                    ad = ad.app_id_uri(&shared.audience);
                }
                ad.builder()
            }
        };
        if let Some(hmac) = &shared.hmac {
            builder = builder.add_keys(
                StaticKeys::new()
                    .add_hmac_secret(Some(hmac.kid()), hmac.public_key_bytes())
                    .add_issuer(self.issuer()),
            );
        }
        builder
    }

    /// The discovery URL as a [`RemoteJwksBuilder`], for a key source with other settings
    /// (shorter timeouts, cache lifetimes) than [`layer_builder`](Self::layer_builder)'s
    /// defaults; add it with [`ValidateJwtBuilder::add_key_source`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use validate_jwt::ValidateJwtLayer;
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// let issuer = TestIssuer::start().unwrap();
    /// let keys = issuer.remote_jwks().with_timeout(Duration::from_millis(500)).build().unwrap();
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_key_source(keys)
    ///     .add_audience(issuer.audience())
    ///     .build()
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    pub fn remote_jwks(&self) -> RemoteJwksBuilder {
        RemoteJwks::discovery_url(&self.discovery_url())
    }

    /// Publishes a new key for every algorithm and signs with it from now on. The old keys stay
    /// in the key set until [`withdraw_old_keys`](Self::withdraw_old_keys), as identity
    /// providers rotate. A layer picks the new key up on the first token that names it (one
    /// refresh, at once). The HS256 secret is not rotated.
    ///
    /// ```
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start()?;
    /// let layer = issuer.layer_builder().build()?;
    /// layer.ready().await?;
    /// let before = issuer.token().sign();
    /// issuer.rotate();
    /// assert!(layer.validate_token(&issuer.token().sign()).await.is_ok()); // the new key
    /// assert!(layer.validate_token(&before).await.is_ok()); // the old one, still published
    /// # Ok(())
    /// # }
    /// ```
    pub fn rotate(&self) {
        let fresh: Vec<SigningKey> = self
            .shared
            .algorithms
            .iter()
            .map(|&alg| SigningKey::generate(alg))
            .collect();
        let mut keys = lock(&self.shared.keys);
        let retired = std::mem::replace(&mut keys.current, fresh);
        keys.old.extend(retired);
    }

    /// Removes the old keys from the key set: tokens they signed are refused once a layer has
    /// fetched the set again (401 `invalid_token`, unknown key).
    pub fn withdraw_old_keys(&self) {
        lock(&self.shared.keys).old.clear();
    }

    /// Makes the issuer misbehave from now on, until [`clear_fault`](Self::clear_fault); see
    /// [`Fault`] for what a layer then does.
    pub fn set_fault(&self, fault: Fault) {
        *lock(&self.shared.fault) = Some(fault);
    }

    /// Serves normally again.
    pub fn clear_fault(&self) {
        *lock(&self.shared.fault) = None;
    }

    /// The fault in effect, if any.
    pub fn fault(&self) -> Option<Fault> {
        self.shared.fault()
    }

    /// Requests for a discovery document so far, whatever the answer.
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::SeqCst)
    }

    /// Requests for the key set so far, whatever the answer.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }
}
