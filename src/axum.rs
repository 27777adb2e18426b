//! axum integration (feature `axum`): the [`Verified`] extractor, and [`health_route`] for a
//! readiness probe.
//!
//! ```
//! use axum::{Router, routing::get};
//! use validate_jwt::axum::Verified;
//!
//! #[derive(serde::Deserialize)]
//! struct AzureAd {
//!     oid: String,
//!     tid: String,
//! }
//!
//! // Typed: your own struct, deserialized from the already-verified payload.
//! async fn typed(Verified(claims): Verified<AzureAd>) -> String {
//!     format!("{} in {}", claims.oid, claims.tid)
//! }
//!
//! // Untyped: the verified claims with their accessors.
//! async fn untyped(Verified(claims): Verified) -> String {
//!     claims.subject().unwrap_or_default().to_owned()
//! }
//!
//! // Optional: `None` when the layer let an anonymous request through.
//! async fn maybe(claims: Option<Verified>) -> &'static str {
//!     if claims.is_some() { "signed in" } else { "anonymous" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/typed", get(typed))
//!     .route("/untyped", get(untyped))
//!     .route("/maybe", get(maybe));
//! ```

use std::convert::Infallible;
use std::fmt;

use ::axum::extract::{FromRequestParts, OptionalFromRequestParts};
use ::axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

/// The verified claims of the request, as `T`: [`crate::Claims`] itself (the default), or any
/// `DeserializeOwned` type of yours.
#[derive(Debug, Clone)]
#[allow(
    clippy::exhaustive_structs,
    reason = "an extractor is destructured in handler signatures: `Verified(claims): Verified<T>`"
)]
pub struct Verified<T = crate::Claims>(pub T);

/// How a [`Verified`] extractor builds its value from the verified claims.
pub trait FromClaims: Sized {
    /// Builds the value.
    fn from_claims(claims: &crate::Claims) -> Result<Self, serde_json::Error>;
}

impl FromClaims for crate::Claims {
    fn from_claims(claims: &crate::Claims) -> Result<Self, serde_json::Error> {
        Ok(claims.clone())
    }
}

impl<T: DeserializeOwned> FromClaims for T {
    fn from_claims(claims: &crate::Claims) -> Result<Self, serde_json::Error> {
        claims.deserialize()
    }
}

/// Why the [`Verified`] extractor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// No verified claims in the request: the route is not behind `ValidateJwtLayer` (a
    /// server-side mistake, answered 500), or the layer let an anonymous request through
    /// (use `Option<Verified>` on such routes).
    Missing,
    /// The claims do not deserialize into the requested type: answered 403, since the token is
    /// authentic but does not carry what the route needs.
    Invalid(serde_json::Error),
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimsRejection::Missing => f.write_str(
                "no verified claims in the request: put the route behind `ValidateJwtLayer` \
                 (`.layer(ValidateJwtLayer::builder()…build()?)`), or take `Option<Verified>` \
                 where the layer allows anonymous requests",
            ),
            ClaimsRejection::Invalid(e) => write!(f, "the token's claims do not fit: {e}"),
        }
    }
}

impl std::error::Error for ClaimsRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClaimsRejection::Missing => None,
            ClaimsRejection::Invalid(e) => Some(e),
        }
    }
}

impl IntoResponse for ClaimsRejection {
    /// Answered like the layer's own refusals (JSON body, RFC 6750 challenge, the
    /// [`JwtError`](crate::JwtError) in the extensions): `Missing` as
    /// [`Misconfigured`](crate::JwtErrorKind::Misconfigured) (500, naming the fix), `Invalid` as
    /// [`InsufficientScope`](crate::JwtErrorKind::InsufficientScope) (403). The layer's own
    /// `with_realm` / `with_failed_*` / `with_responder` settings are not known here.
    fn into_response(self) -> Response {
        tracing::error!(target: "validate_jwt::rejection", %self, "claims extractor failed");
        let err = match &self {
            ClaimsRejection::Missing => crate::JwtError::with_detail(
                crate::JwtErrorKind::Misconfigured,
                "no verified claims in the request: put the route behind ValidateJwtLayer \
                 (`.layer(jwt)`), or take `Option<Verified>` where the layer allows anonymous \
                 requests",
            ),
            // The serde message may quote the token's content; keep the answer terse.
            ClaimsRejection::Invalid(_) => crate::JwtError::insufficient(
                "the token's claims do not fit this route".to_owned(),
                None,
            ),
        };
        crate::response::Answers::default()
            .respond(&err, false)
            .map(axum::body::Body::from)
    }
}

impl<S: Send + Sync, T: FromClaims> FromRequestParts<S> for Verified<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = parts
            .extensions
            .get::<crate::Claims>()
            .ok_or(ClaimsRejection::Missing)?;
        T::from_claims(claims)
            .map(Verified)
            .map_err(ClaimsRejection::Invalid)
    }
}

impl<S: Send + Sync, T: FromClaims> OptionalFromRequestParts<S> for Verified<T> {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<crate::Claims>() {
            None => Ok(None),
            Some(claims) => T::from_claims(claims)
                .map(|t| Some(Verified(t)))
                .map_err(ClaimsRejection::Invalid),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for crate::Claims {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<crate::Claims>()
            .cloned()
            .ok_or(ClaimsRejection::Missing)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for crate::Claims {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<crate::Claims>().cloned())
    }
}

/// A `GET` route answering the layer's [`Health`](crate::Health) as JSON: 200 while tokens
/// can be validated (ready or degraded), 503 when no key set is available. Add it outside the
/// layer (after `.layer(jwt)`) so a probe needs no token.
///
/// ```
/// use axum::Router;
/// use tower::ServiceExt;
/// use validate_jwt::testing::{Fault, TestIssuer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// issuer.set_fault(Fault::Down);
/// let jwt = issuer.layer_builder().build()?;
/// let app: Router = Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(jwt.clone())
///     .route("/healthz", validate_jwt::axum::health_route(jwt));
/// let probe = http::Request::get("/healthz").body(axum::body::Body::empty())?;
/// let response = app.oneshot(probe).await?;
/// assert_eq!(response.status(), 503); // the key endpoint has been down since start
/// # Ok(())
/// # }
/// ```
pub fn health_route<S>(layer: crate::ValidateJwtLayer) -> ::axum::routing::MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    ::axum::routing::get(move || {
        let health = layer.health();
        async move { health.into_response() }
    })
}

/// The health as JSON, with [`Health::http_status`](crate::Health::http_status).
impl IntoResponse for crate::Health {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = Response::new(::axum::body::Body::from(body));
        *response.status_mut() = self.http_status();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::axum::Router;
    use ::axum::body::Body;
    use ::axum::routing::get;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    struct Tenant {
        tid: String,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/typed",
                get(|Verified(t): Verified<Tenant>| async move { t.tid }),
            )
            .route(
                "/plain",
                get(|Verified(c): Verified| async move { c.subject().unwrap_or("").to_owned() }),
            )
            .route(
                "/opt",
                get(|c: Option<Verified>| async move { if c.is_some() { "some" } else { "none" } }),
            )
    }

    async fn call(app: Router, path: &str, claims: Option<&str>) -> (u16, String) {
        let (status, _, body) = call_with_headers(app, path, claims).await;
        (status, body)
    }

    async fn call_with_headers(
        app: Router,
        path: &str,
        claims: Option<&str>,
    ) -> (u16, http::HeaderMap, String) {
        let mut req = http::Request::get(path).body(Body::empty()).unwrap();
        if let Some(json) = claims {
            req.extensions_mut()
                .insert(crate::Claims::from_unverified_json(json.as_bytes()).unwrap());
        }
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn typed_claims_deserialize_from_the_verified_payload() {
        assert_eq!(
            call(app(), "/typed", Some(r#"{"tid":"t1"}"#)).await,
            (200, "t1".into())
        );
        assert_eq!(
            call(app(), "/plain", Some(r#"{"sub":"alice"}"#)).await,
            (200, "alice".into())
        );
    }

    #[tokio::test]
    async fn claims_of_the_wrong_shape_are_403_like_the_layers() {
        let (status, headers, body) =
            call_with_headers(app(), "/typed", Some(r#"{"sub":"secret-subject"}"#)).await;
        assert_eq!(status, 403);
        assert!(!body.contains("secret-subject"));
        assert_eq!(headers["content-type"], "application/json");
        let www = headers["www-authenticate"].to_str().unwrap();
        assert!(
            www.starts_with(r#"Bearer error="insufficient_scope""#),
            "{www}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[tokio::test]
    async fn a_missing_layer_is_a_500_naming_the_fix() {
        let (status, headers, body) = call_with_headers(app(), "/typed", None).await;
        assert_eq!(status, 500);
        assert!(body.contains("ValidateJwtLayer"), "{body}");
        assert_eq!(headers["content-type"], "application/json");
        assert!(!headers.contains_key("www-authenticate"));
    }

    #[tokio::test]
    async fn optional_claims_are_none_without_a_token() {
        assert_eq!(call(app(), "/opt", None).await, (200, "none".into()));
        assert_eq!(call(app(), "/opt", Some("{}")).await, (200, "some".into()));
    }
}
