//! [`ValidateJwtLayer`] → [`ValidateJwt`] → [`ResponseFuture`], and the per-route
//! [`RequireClaimsLayer`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Layer;
use tower::Service;

use crate::claims::{Claims, Requirement};
use crate::config::ValidateJwtBuilder;
use crate::error::{JwtError, JwtErrorKind, KeyError};
use crate::response::{ResponseBody, is_grpc};
use crate::validate::{Check, PendingCheck, Validator};

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
    pub(crate) validator: Arc<Validator>,
}

impl fmt::Debug for ValidateJwtLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateJwtLayer").finish_non_exhaustive()
    }
}

impl ValidateJwtLayer {
    /// Starts a configuration.
    pub fn builder() -> ValidateJwtBuilder {
        ValidateJwtBuilder::new()
    }

    /// Waits until every key source has a key set (starting the fetches if needed); returns the
    /// first source's error if one cannot get keys. Await it in `main` to warm up before serving.
    pub async fn ready(&self) -> Result<(), KeyError> {
        for provider in &self.validator.providers {
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
    /// refused as malformed with a detail saying so.
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
        self.validator
            .clone()
            .validate_token(token.as_bytes())
            .await
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
    ///             .route_layer(jwt.require(Requirement::scopes(["Files.Read"])).unwrap()),
    ///     )
    ///     .layer(jwt);
    /// ```
    pub fn require(
        &self,
        requirement: Requirement,
    ) -> Result<RequireClaimsLayer, crate::ConfigError> {
        requirement.validate()?;
        let mut scopes = Vec::new();
        requirement.scope_names(&mut scopes);
        Ok(RequireClaimsLayer {
            validator: self.validator.clone(),
            requirement: Arc::new(requirement),
            required_scopes: (!scopes.is_empty()).then(|| scopes.join(" ")),
        })
    }
}

impl<S> Layer<S> for ValidateJwtLayer {
    type Service = ValidateJwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ValidateJwt {
            inner,
            validator: self.validator.clone(),
        }
    }
}

/// The service made by [`ValidateJwtLayer`].
#[derive(Clone)]
pub struct ValidateJwt<S> {
    inner: S,
    validator: Arc<Validator>,
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

fn reject<B>(
    answers: &crate::response::Answers,
    err: &JwtError,
    grpc: bool,
) -> Response<ResponseBody<B>> {
    answers.respond(err, grpc).map(ResponseBody::rejection)
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
        match self.validator.check(&request) {
            Check::Valid(claims) => {
                request.extensions_mut().insert(claims);
                ResponseFuture::inner(self.inner.call(request))
            }
            Check::Anonymous => {
                request
                    .extensions_mut()
                    .insert(PassedAnonymously(self.validator.id));
                ResponseFuture::inner(self.inner.call(request))
            }
            Check::Invalid(err) => {
                let grpc = is_grpc(request.headers());
                ResponseFuture::rejected_bytes(self.validator.answers.respond(&err, grpc))
            }
            Check::Pending(check) => {
                // The inner service was driven to readiness; move that one into the future
                // and keep a fresh clone here (tower's "be careful when cloning" rule).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::pending(check, request, inner, self.validator.clone())
            }
        }
    }
}

pin_project! {
    /// The response future of [`ValidateJwt`] and [`RequireClaims`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Inner { #[pin] future: S::Future },
        Rejected { response: Option<http::Response<Bytes>> },
        Pending {
            check: PendingCheck,
            request: Option<Request<ReqBody>>,
            inner: Option<S>,
            validator: Arc<Validator>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn inner(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    fn rejected_bytes(response: http::Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    fn pending(
        check: PendingCheck,
        request: Request<ReqBody>,
        inner: S,
        validator: Arc<Validator>,
    ) -> Self {
        ResponseFuture {
            state: State::Pending {
                check,
                request: Some(request),
                inner: Some(inner),
                validator,
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.state.as_mut().project() {
                StateProj::Inner { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    // Polled again after it completed (a caller's bug): never a 2xx from here.
                    let response = response.take().unwrap_or_else(|| {
                        let mut r = http::Response::new(Bytes::new());
                        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        r
                    });
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Pending {
                    check,
                    request,
                    inner,
                    validator,
                } => {
                    let result = ready!(check.as_mut().poll(cx));
                    let (Some(mut request), Some(mut inner)) = (request.take(), inner.take())
                    else {
                        let err = JwtError::new(JwtErrorKind::InvalidRequest);
                        return Poll::Ready(Ok(reject(&validator.answers, &err, false)));
                    };
                    match result {
                        Ok(claims) => {
                            if let Some(claims) = claims {
                                request.extensions_mut().insert(claims);
                            }
                            State::Inner {
                                future: inner.call(request),
                            }
                        }
                        Err(err) => {
                            let grpc = is_grpc(request.headers());
                            State::Rejected {
                                response: Some(validator.answers.respond(&err, grpc)),
                            }
                        }
                    }
                }
            };
            this.state.set(next);
        }
    }
}

/// Put in a request's extensions by [`ValidateJwt`] when it lets a request through without a
/// token (`allow_anonymous`, `skip_if`): the layer's id, so that a [`RequireClaims`] made from
/// that layer answers "no token" rather than "misconfigured".
#[derive(Debug, Clone, Copy)]
struct PassedAnonymously(u64);

/// A per-route layer adding a [`Requirement`] to what [`ValidateJwtLayer`] checks; made by
/// [`ValidateJwtLayer::require`].
///
/// It reads the claims its own [`ValidateJwtLayer`] verified, and only those: claims verified by
/// another `ValidateJwtLayer` (whose issuer and audience rules are not this one's), or a request
/// that reached it without passing through its layer at all, get a 500
/// ([`JwtErrorKind::Misconfigured`]) whose description names the fix, and a `tracing` error. A
/// request its layer let through without a token (`allow_anonymous`) gets the usual 401.
#[derive(Clone)]
pub struct RequireClaimsLayer {
    validator: Arc<Validator>,
    requirement: Arc<Requirement>,
    required_scopes: Option<String>,
}

impl fmt::Debug for RequireClaimsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaimsLayer")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RequireClaimsLayer {
    type Service = RequireClaims<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireClaims {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RequireClaimsLayer`].
#[derive(Clone)]
pub struct RequireClaims<S> {
    inner: S,
    layer: RequireClaimsLayer,
}

impl<S: fmt::Debug> fmt::Debug for RequireClaims<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaims")
            .field("inner", &self.inner)
            .field("requirement", &self.layer.requirement)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireClaims<S>
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let validator = &self.layer.validator;
        let grpc = is_grpc(request.headers());
        let own = validator.id;
        let claims = match request.extensions().get::<Claims>() {
            Some(claims) if claims.layer() == own => claims.clone(),
            Some(_) => {
                let err = JwtError::with_detail(
                    JwtErrorKind::Misconfigured,
                    "the claims were verified by another ValidateJwtLayer than the one this                      RequireClaimsLayer was made from: make it with `require` on the layer                      that validates this route's requests",
                );
                return ResponseFuture::rejected_bytes(validator.answers.respond(&err, grpc));
            }
            None => {
                let anonymous = request
                    .extensions()
                    .get::<PassedAnonymously>()
                    .is_some_and(|p| p.0 == own);
                let err = if anonymous {
                    // Its own layer let the request through without a token.
                    JwtError::new(JwtErrorKind::Missing)
                } else {
                    JwtError::with_detail(
                        JwtErrorKind::Misconfigured,
                        "the request reached a RequireClaimsLayer without passing through the                          ValidateJwtLayer it was made from: add that layer outside this route                          (`.layer(jwt)` on the router)",
                    )
                };
                return ResponseFuture::rejected_bytes(validator.answers.respond(&err, grpc));
            }
        };
        let denied = |d: crate::Denied| {
            JwtError::insufficient(d.reason().to_owned(), self.layer.required_scopes.clone())
        };
        if let Err(d) = self.layer.requirement.check(&claims) {
            return ResponseFuture::rejected_bytes(validator.answers.respond(&denied(d), grpc));
        }
        if !self.layer.requirement.is_async() {
            return ResponseFuture::inner(self.inner.call(request));
        }
        let requirement = self.layer.requirement.clone();
        let scopes = self.layer.required_scopes.clone();
        let check: PendingCheck = Box::pin(async move {
            requirement
                .check_async(claims)
                .await
                .map(|()| None)
                .map_err(|d| JwtError::insufficient(d.reason().to_owned(), scopes))
        });
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::pending(check, request, inner, validator.clone())
    }
}
