//! [`RequireClaimsLayer`] → [`RequireClaims`]: a per-route requirement on the claims a
//! [`ValidateJwtLayer`](crate::ValidateJwtLayer) already verified.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Layer;
use tower::Service;

use crate::claims::{Claims, Requirement};
use crate::error::{JwtError, JwtErrorKind};
use crate::future::ResponseFuture;
use crate::response::{Answers, ResponseBody, is_grpc};
use crate::validate::PendingCheck;

/// Put in a request's extensions by [`ValidateJwt`](crate::ValidateJwt) when it lets a request through without a
/// token (`allow_anonymous`, `skip_if`): the layer's id, so that a [`RequireClaims`] made from
/// that layer answers "no token" rather than "misconfigured".
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassedAnonymously(pub(crate) u64);

/// A per-route layer adding a [`Requirement`] to what [`ValidateJwtLayer`](crate::ValidateJwtLayer) checks; made by
/// [`ValidateJwtLayer::for_route`](crate::ValidateJwtLayer::for_route).
///
/// It reads the claims its own [`ValidateJwtLayer`](crate::ValidateJwtLayer) verified, and only those: claims verified by
/// another `ValidateJwtLayer` (whose issuer and audience rules are not this one's), or a request
/// that reached it without passing through its layer at all, get a 500
/// ([`JwtErrorKind::Misconfigured`](crate::JwtErrorKind::Misconfigured)) whose description names the fix, and a `tracing` error. A
/// request its layer let through without a token (`allow_anonymous`) gets the usual 401.
#[derive(Clone)]
pub struct RequireClaimsLayer {
    /// The id of the layer it was made from: only that layer's claims are read.
    layer_id: u64,
    answers: Arc<Answers>,
    requirement: Arc<Requirement>,
    required_scopes: Option<String>,
}

impl RequireClaimsLayer {
    /// `requirement` on the claims verified by the layer `layer_id`, answering like it.
    pub(crate) fn new(
        layer_id: u64,
        answers: Arc<Answers>,
        requirement: Requirement,
    ) -> Result<Self, crate::ConfigError> {
        requirement.validate()?;
        let mut scopes = Vec::new();
        requirement.scope_names(&mut scopes);
        Ok(RequireClaimsLayer {
            layer_id,
            answers,
            requirement: Arc::new(requirement),
            required_scopes: (!scopes.is_empty()).then(|| scopes.join(" ")),
        })
    }
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
        let answers = &self.layer.answers;
        let grpc = is_grpc(request.headers());
        let own = self.layer.layer_id;
        let claims = match request.extensions().get::<Claims>() {
            Some(claims) if claims.layer() == own => claims.clone(),
            Some(_) => {
                let err = JwtError::with_detail(
                    JwtErrorKind::Misconfigured,
                    "the claims were verified by another ValidateJwtLayer than the one this                      RequireClaimsLayer was made from: make it with `require` on the layer                      that validates this route's requests",
                );
                return ResponseFuture::rejected(answers.respond(&err, grpc));
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
                return ResponseFuture::rejected(answers.respond(&err, grpc));
            }
        };
        let denied = |d: crate::Denied| {
            JwtError::insufficient(d.reason().to_owned(), self.layer.required_scopes.clone())
        };
        if let Err(d) = self.layer.requirement.check(&claims) {
            return ResponseFuture::rejected(answers.respond(&denied(d), grpc));
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
        ResponseFuture::pending(check, request, inner, answers.clone())
    }
}
