//! [`ValidateJwtLayer`] → [`ValidateJwt`] → [`ResponseFuture`](crate::ResponseFuture).
//!
//! The request path is one line, in [`ValidateJwt::call`](tower::Service::call): the gate
//! (skipped or anonymous requests) → token extraction → [`Validator::check`] (the token's bytes)
//! → claims into the request → the inner service, or an answer for a refusal.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Layer;
use tower::Service;

use crate::cache::TokenCacheStats;
use crate::claims::{Claims, Requirement};
use crate::error::{JwtError, JwtErrorKind, KeyError};
use crate::extract::TokenLocations;
use crate::forward::Forward;
use crate::future::ResponseFuture;
use crate::health::{Health, Probe};
use crate::issuer::IssuerLabel;
use crate::metrics::{self, Outcome};
use crate::require::{PassedAnonymously, RequireClaimsLayer};
use crate::resource::ResourceMetadata;
use crate::response::{Answers, ResponseBody, is_grpc};
use crate::span::{self, TokenFields};
use crate::validate::{Validator, Verdict};

/// A skip predicate: requests it matches pass without a token (and without claims).
pub(crate) type Skip = dyn Fn(&http::Method, &http::Uri, &http::HeaderMap) -> bool + Send + Sync;

/// The HTTP side of a layer: where tokens are read, which requests pass without one, and how
/// refusals are answered.
pub(crate) struct Http {
    pub(crate) locations: TokenLocations,
    pub(crate) skip: Option<Arc<Skip>>,
    pub(crate) allow_anonymous: bool,
    pub(crate) answers: Arc<Answers>,
    /// Claims to request headers (`None`: nothing forwarded, nothing stripped).
    pub(crate) forward: Option<Arc<Forward>>,
    /// What [`ValidateJwtLayer::health`] reads of each key source (same order as the providers).
    pub(crate) probes: Vec<Probe>,
    /// DPoP and certificate binding, checked after the token (`None`: off).
    pub(crate) sender: Option<Arc<crate::sender::Sender>>,
    /// RFC 9728 metadata, answered at its paths before any token is looked for.
    pub(crate) metadata: Option<ResourceMetadata>,
}

/// Validates the JWT access token of every request before it reaches the inner service.
///
/// Build it with [`ValidateJwtLayer::builder`]; clones share one configuration and one key
/// cache. See the crate documentation for a full example.
///
/// ```
/// use validate_jwt::{StaticKeys, ValidateJwtLayer};
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .add_audience("api://echo")
///     .build()
///     .unwrap();
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(layer);
/// # let _: axum::Router = app;
/// ```
#[derive(Clone)]
pub struct ValidateJwtLayer {
    validator: Arc<Validator>,
    http: Arc<Http>,
}

impl fmt::Debug for ValidateJwtLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJwtLayer").finish_non_exhaustive()
    }
}

impl ValidateJwtLayer {
    pub(crate) fn new(validator: Validator, http: Http) -> Self {
        ValidateJwtLayer {
            validator: Arc::new(validator),
            http: Arc::new(http),
        }
    }

    /// The verified-token cache's size and hit/miss counters; `None` when the cache is off
    /// (see [`ValidateJwtBuilder::with_token_cache`](crate::ValidateJwtBuilder::with_token_cache)).
    /// Clones of the layer share one cache.
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.validator.token_cache_stats()
    }

    /// The state of the layer's key sources, for a readiness probe: ready, degraded (stale
    /// keys, since when) or unavailable (no key set), with each source's last success, last
    /// error, age, consecutive failures and next attempt. Reads state only (no fetch); see
    /// [`Health`] for the JSON and the status to answer.
    ///
    /// ```
    /// use validate_jwt::HealthStatus;
    /// use validate_jwt::testing::{Fault, TestIssuer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start()?;
    /// let layer = issuer.layer_builder().build()?;
    /// assert_eq!(layer.health().status(), HealthStatus::Unavailable); // nothing fetched yet
    /// layer.ready().await?;
    /// let health = layer.health();
    /// assert_eq!(health.status(), HealthStatus::Ready);
    /// assert_eq!(health.sources()[0].kind(), "remote");
    /// assert!(health.sources()[0].keys() > 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        crate::health::health(self.validator.providers(), &self.http.probes)
    }

    /// Waits until every key source has a key set (starting the fetches if needed); returns the
    /// first source's error if one cannot get keys. Await it in `main` to warm up before serving.
    pub async fn ready(&self) -> Result<(), KeyError> {
        for provider in self.validator.providers() {
            provider.warm_up();
            if provider.current().is_none() {
                provider.refresh(crate::RefreshReason::NoKeys).await?;
            }
        }
        Ok(())
    }

    /// Validates a token that did not come in an HTTP request (a WebSocket message, a queue
    /// message), with exactly the rules of the layer. Pass the token alone: an empty string is
    /// [`JwtErrorKind::Missing`], and a value with its scheme still in front (`Bearer eyJ…`) is
    /// refused as malformed with a detail saying so. The sender-binding checks
    /// ([`crate::sender`]: DPoP proofs, client certificates) need a request and do not run
    /// here: a bound token is checked as a token alone.
    ///
    /// ```
    /// use validate_jwt::{JwtErrorKind, StaticKeys, ValidateJwtLayer};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://echo")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(layer.validate_token("").await.unwrap_err().kind(), JwtErrorKind::Missing);
    /// let err = layer.validate_token("Bearer eyJhbGciOi.e30.c2ln").await.unwrap_err();
    /// assert_eq!(err.kind(), JwtErrorKind::Malformed);
    /// assert!(err.detail().unwrap().contains("scheme"));
    /// # }
    /// ```
    pub async fn validate_token(&self, token: &str) -> Result<Claims, JwtError> {
        token_alone(token)?;
        let span = span::validation();
        let fields = TokenFields::peek(&span, token.as_bytes());
        let result = tracing::Instrument::instrument(
            self.validator.clone().validate_token(token.as_bytes()),
            span.clone(),
        )
        .await;
        let (outcome, issuer) = match &result {
            Ok(claims) => (Outcome::Accepted, claims.issuer_label()),
            Err(err) => (Outcome::Refused(err.kind()), err.issuer_label()),
        };
        metrics::request(outcome, self.validator.label_issuers(), issuer);
        span::outcome(&span, outcome, fields.as_deref());
        result
    }

    /// Runs every check of the layer on `token` and reports each one — what was expected, what
    /// the token holds — with the answer the layer would give ([`validate_token`](Self::validate_token)'s
    /// verdict, as an HTTP answer). Same configuration, keys and clock as the layer (a token
    /// naming an unknown `kid` makes it refresh its keys as the layer would); nothing is
    /// logged. A development tool, never on the request path: see [`explain`](crate::explain).
    ///
    /// ```
    /// use std::time::{SystemTime, UNIX_EPOCH};
    /// use validate_jwt::explain::{CheckName, Outcome};
    /// use validate_jwt::testing::TestIssuer;
    /// use validate_jwt::{JwtErrorKind, ValidateJwtLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let idp = TestIssuer::start().unwrap();
    /// let layer = ValidateJwtLayer::builder()
    ///     .add_discovery_url(idp.discovery_url())
    ///     .add_audience(idp.audience())
    ///     .require_all_scopes(["Files.Read"])
    ///     .build()
    ///     .unwrap();
    /// let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    /// // Expired an hour ago, and without the scope: both are reported.
    /// let token = idp.token().scopes(["Other"]).claim("exp", now - 3600).sign();
    /// let report = layer.explain(&token).await;
    /// assert_eq!(report.answer().status(), 401);
    /// assert_eq!(report.answer().kind(), Some(JwtErrorKind::Expired));
    /// let failed: Vec<CheckName> = report.failures().map(|c| c.name()).collect();
    /// assert_eq!(failed, [CheckName::Expiry, CheckName::Requirement]);
    /// assert_eq!(report.check(CheckName::Signature).unwrap().outcome(), Outcome::Pass);
    /// # }
    /// ```
    pub async fn explain(&self, token: &str) -> crate::explain::Explanation {
        let preamble = token_alone(token);
        crate::explain::run(
            &self.validator,
            &self.http.answers,
            self.http.sender.as_deref(),
            token,
            preamble,
        )
        .await
    }

    /// The RFC 9728 protected resource metadata the layer serves (its URL, paths, JSON, and a
    /// service answering it), when configured with
    /// [`with_resource`](crate::ValidateJwtBuilder::with_resource).
    ///
    /// ```
    /// use validate_jwt::{StaticKeys, ValidateJwtLayer};
    ///
    /// let jwt = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .with_resource_as_audience("https://mcp.example/mcp")
    ///     .build()
    ///     .unwrap();
    /// let metadata = jwt.resource_metadata().unwrap();
    /// assert_eq!(metadata.url(), "https://mcp.example/.well-known/oauth-protected-resource/mcp");
    /// ```
    pub fn resource_metadata(&self) -> Option<ResourceMetadata> {
        self.http.metadata.clone()
    }

    /// A layer for one route that adds `requirement` to what this layer checks, reusing the
    /// claims it already verified: no second signature check, no second key cache.
    ///
    /// ```
    /// use axum::routing::get;
    /// use validate_jwt::{Requirement, StaticKeys, ValidateJwtLayer};
    ///
    /// let jwt = ValidateJwtLayer::builder()
    ///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
    ///     .add_issuer("https://issuer.example")
    ///     .add_audience("api://files")
    ///     .build()
    ///     .unwrap();
    /// let app: axum::Router = axum::Router::new()
    ///     .route(
    ///         "/files",
    ///         get(|| async { "list" })
    ///             .route_layer(jwt.for_route(Requirement::all_scopes(["Files.Read"])).unwrap()),
    ///     )
    ///     .layer(jwt);
    /// ```
    pub fn for_route(
        &self,
        requirement: Requirement,
    ) -> Result<RequireClaimsLayer, crate::ConfigError> {
        RequireClaimsLayer::new(self.validator.id(), self.http.answers.clone(), requirement)
    }
}

/// What [`ValidateJwtLayer::validate_token`] refuses before reading a token: none at all, or
/// a value with its scheme still in front.
fn token_alone(token: &str) -> Result<(), JwtError> {
    if token.trim().is_empty() {
        return Err(JwtError::new(JwtErrorKind::Missing));
    }
    if token.trim_start().contains(' ') {
        return Err(JwtError::with_detail(
            JwtErrorKind::Malformed,
            "the value contains a space: pass the token without its authorization scheme \
             (`Bearer `)",
        ));
    }
    Ok(())
}

impl<S> Layer<S> for ValidateJwtLayer {
    type Service = ValidateJwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateJwt {
            inner,
            validator: self.validator.clone(),
            http: self.http.clone(),
        }
    }
}

/// The service made by [`ValidateJwtLayer`].
#[derive(Clone)]
pub struct ValidateJwt<S> {
    inner: S,
    validator: Arc<Validator>,
    http: Arc<Http>,
}

impl<S: fmt::Debug> fmt::Debug for ValidateJwt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJwt")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ValidateJwt<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ValidateJwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let http = &self.http;
        // RFC 9728 metadata: public, answered here.
        if let Some(metadata) = &http.metadata
            && metadata.serves(request.uri().path())
        {
            return ResponseFuture::rejected(metadata.answer(request.method(), request.headers()));
        }
        // One span per validation (`Span::none()` unless `debug` is on for the target).
        let span = span::validation();
        let entered = span.enter();
        let mut fields = None;
        let by_issuer = self.validator.label_issuers();
        let done = |outcome, fields: Option<&TokenFields>, issuer: Option<&IssuerLabel>| {
            metrics::request(outcome, by_issuer, issuer);
            span::outcome(&span, outcome, fields);
        };
        // The gate: requests that pass without a token.
        let skipped = http
            .skip
            .as_ref()
            .is_some_and(|skip| skip(request.method(), request.uri(), request.headers()));
        let extracted = match skipped {
            true => Ok(None),
            false => http.locations.extract(request.headers(), request.uri()),
        };
        // Extraction, then the token's bytes.
        let verdict = match extracted {
            Ok(Some(token)) => {
                fields = TokenFields::peek(&span, &token);
                self.validator.check(token)
            }
            Ok(None) if skipped || http.allow_anonymous => {
                let outcome = match skipped {
                    true => Outcome::Skipped,
                    false => Outcome::Anonymous,
                };
                done(outcome, None, None);
                drop(entered);
                if let Some(forward) = &http.forward {
                    forward.strip(request.headers_mut());
                }
                request
                    .extensions_mut()
                    .insert(PassedAnonymously(self.validator.id()));
                return ResponseFuture::inner(self.inner.call(request));
            }
            Ok(None) => Verdict::Invalid(JwtError::new(JwtErrorKind::Missing)),
            Err(e) => Verdict::Invalid(e),
        };
        // Sender-constrained tokens (DPoP, certificate binding): one branch when off.
        let verdict = match &http.sender {
            None => verdict,
            Some(sender) => sender.bind(verdict, &request),
        };
        // Claims into the request and on to the service (outside the span), or an answer.
        match verdict {
            Verdict::Valid(claims) => {
                if let Some(forward) = &http.forward
                    && let Err(err) = forward.write(&claims, request.headers_mut())
                {
                    let issuer = claims.issuer_label();
                    done(Outcome::Refused(err.kind()), fields.as_deref(), issuer);
                    let grpc = is_grpc(request.headers());
                    return ResponseFuture::rejected(http.answers.respond(&err, grpc));
                }
                done(Outcome::Accepted, None, claims.issuer_label());
                drop(entered);
                request.extensions_mut().insert(claims);
                ResponseFuture::inner(self.inner.call(request))
            }
            Verdict::Invalid(err) => {
                done(
                    Outcome::Refused(err.kind()),
                    fields.as_deref(),
                    err.issuer_label(),
                );
                let grpc = is_grpc(request.headers());
                ResponseFuture::rejected(http.answers.respond(&err, grpc))
            }
            Verdict::Pending(check) => {
                // The inner service was driven to readiness; move that one into the future
                // and keep a fresh clone here (tower's "be careful when cloning" rule).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::pending(check, request, inner, http.answers.clone())
                    .forwarding(http.forward.clone())
                    .metered(span.clone(), fields, by_issuer)
            }
        }
    }
}
