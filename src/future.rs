//! [`ResponseFuture`]: the response future of [`ValidateJwt`](crate::ValidateJwt) and
//! [`RequireClaims`](crate::RequireClaims). Ready at once for a refusal or an accepted token;
//! a boxed check only on the slow path (a cold start, an unknown `kid`, an asynchronous
//! requirement).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;
use tracing::Span;

use crate::error::{JwtError, JwtErrorKind};
use crate::forward::Forward;
use crate::issuer::IssuerLabel;
use crate::metrics::{self, Outcome};
use crate::response::{Answers, ResponseBody, is_grpc};
use crate::span::{self, TokenFields};
use crate::validate::PendingCheck;

pin_project! {
    /// The response future of [`ValidateJwt`](crate::ValidateJwt) and [`RequireClaims`](crate::RequireClaims).
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
            answers: Arc<Answers>,
            forward: Option<Arc<Forward>>,
            // Whether the outcome is counted here (the layer's check, not a route's
            // requirement), and whether with the `issuer` label.
            metered: Option<Metered>,
            // The validation's span and the token's fields, while `debug` tracing is on.
            observed: Option<Box<Observed>>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: http::Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn pending(
        check: PendingCheck,
        request: Request<ReqBody>,
        inner: S,
        answers: Arc<Answers>,
    ) -> Self {
        ResponseFuture {
            state: State::Pending {
                check,
                request: Some(request),
                inner: Some(inner),
                answers,
                forward: None,
                metered: None,
                observed: None,
            },
        }
    }

    /// Claims to request headers once the pending check accepts the request.
    pub(crate) fn forwarding(mut self, forward: Option<Arc<Forward>>) -> Self {
        if let State::Pending { forward: slot, .. } = &mut self.state {
            *slot = forward;
        }
        self
    }

    /// Counts the pending check's outcome in the request metrics (see [`crate::metrics`]) and
    /// records it in the validation's span (entered while the check is polled).
    pub(crate) fn metered(
        mut self,
        span: Span,
        fields: Option<Box<TokenFields>>,
        by_issuer: bool,
    ) -> Self {
        if let State::Pending {
            metered, observed, ..
        } = &mut self.state
        {
            *metered = Some(Metered { by_issuer });
            if !span.is_disabled() {
                *observed = Some(Box::new(Observed { span, fields }));
            }
        }
        self
    }
}

/// How a pending check's outcome is counted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metered {
    by_issuer: bool,
}

/// What a pending check records in its validation's span.
pub(crate) struct Observed {
    span: Span,
    fields: Option<Box<TokenFields>>,
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
                    answers,
                    forward,
                    metered,
                    observed,
                } => {
                    let entered = observed.as_ref().map(|o| o.span.enter());
                    let result = ready!(check.as_mut().poll(cx));
                    drop(entered);
                    let metered = *metered;
                    let observed = observed.take();
                    // The answer's events belong to the validation too.
                    let _entered = observed.as_ref().map(|o| o.span.enter());
                    let count = |outcome, issuer: Option<&IssuerLabel>| {
                        if let Some(m) = metered {
                            metrics::request(outcome, m.by_issuer, issuer);
                        }
                        if let Some(o) = &observed {
                            span::outcome(&o.span, outcome, o.fields.as_deref());
                        }
                    };
                    let (Some(mut request), Some(mut inner)) = (request.take(), inner.take())
                    else {
                        let err = JwtError::new(JwtErrorKind::InvalidRequest);
                        let response = answers.respond(&err, false);
                        return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                    };
                    match result {
                        Ok(claims) => {
                            let forwarded = match (forward.as_deref(), &claims) {
                                (Some(f), Some(c)) => f.write(c, request.headers_mut()),
                                (Some(f), None) => {
                                    f.strip(request.headers_mut());
                                    Ok(())
                                }
                                (None, _) => Ok(()),
                            };
                            // `None` unless the layer labels its metrics by issuer.
                            let issuer = claims.as_ref().and_then(|c| c.issuer_label().cloned());
                            if let Some(claims) = claims {
                                request.extensions_mut().insert(claims);
                            }
                            match forwarded {
                                Ok(()) => {
                                    count(Outcome::Accepted, issuer.as_ref());
                                    State::Inner {
                                        future: inner.call(request),
                                    }
                                }
                                Err(err) => {
                                    count(Outcome::Refused(err.kind()), issuer.as_ref());
                                    let grpc = is_grpc(request.headers());
                                    State::Rejected {
                                        response: Some(answers.respond(&err, grpc)),
                                    }
                                }
                            }
                        }
                        Err(err) => {
                            count(Outcome::Refused(err.kind()), err.issuer_label());
                            let grpc = is_grpc(request.headers());
                            State::Rejected {
                                response: Some(answers.respond(&err, grpc)),
                            }
                        }
                    }
                }
            };
            this.state.set(next);
        }
    }
}
