//! gRPC (tonic) services: the same [`ValidateJwtLayer`](crate::ValidateJwtLayer) protects them,
//! and [`ClaimsExt`] reads the verified claims in a handler.
//!
//! Requests with `content-type: application/grpc[+…]` are refused with gRPC statuses (HTTP 200,
//! `grpc-status` `UNAUTHENTICATED`, `PERMISSION_DENIED`, `UNAVAILABLE` or `INVALID_ARGUMENT`,
//! a `grpc-message`, and the `www-authenticate` header as metadata). Apply the layer to a whole
//! server with `tonic::transport::Server::builder().layer(jwt)`, or to one service with
//! `tonic::service::LayerExt::named_layer(&jwt, service)`, which keeps the service's name.
//! tonic's `Request::extensions()` is an [`http::Extensions`], where the layer put the
//! [`Claims`].

use serde::de::DeserializeOwned;

use crate::claims::Claims;

mod sealed {
    pub trait Sealed {}
    impl Sealed for http::Extensions {}
}

/// Reads the verified [`Claims`] from a request's extensions: `request.extensions().claims()`
/// in a tonic handler or interceptor.
///
/// ```
/// use tonic::{Request, Response, Status};
/// use validate_jwt::Claims;
/// use validate_jwt::grpc::ClaimsExt;
///
/// #[derive(serde::Deserialize)]
/// struct Caller {
///     sub: String,
///     tid: String,
/// }
///
/// async fn whoami(request: Request<()>) -> Result<Response<String>, Status> {
///     let claims = request
///         .extensions()
///         .claims()
///         .ok_or_else(|| Status::unauthenticated("no verified token"))?;
///     let caller: Caller = request
///         .extensions()
///         .claims_as()
///         .ok_or_else(|| Status::permission_denied("unexpected claims"))?;
///     assert_eq!(claims.subject(), Some(caller.sub.as_str()));
///     Ok(Response::new(format!("{} in {}", caller.sub, caller.tid)))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // What ValidateJwtLayer does for a valid token:
/// let mut request = Request::new(());
/// let claims = Claims::from_unverified_json(br#"{"sub":"alice","tid":"contoso"}"#).unwrap();
/// request.extensions_mut().insert(claims);
/// let response = whoami(request).await.unwrap();
/// assert_eq!(response.get_ref(), "alice in contoso");
///
/// let status = whoami(Request::new(())).await.unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unauthenticated);
/// # }
/// ```
pub trait ClaimsExt: sealed::Sealed {
    /// The verified claims; `None` when the layer let the request through without a token
    /// (`allow_anonymous`, `skip_if`) or is not in front of this service.
    fn claims(&self) -> Option<&Claims>;

    /// The verified claims deserialized into your own type; `None` when there are none or they
    /// do not fit `T` (use [`Claims::deserialize`] to see why).
    fn claims_as<T: DeserializeOwned>(&self) -> Option<T>;
}

impl ClaimsExt for http::Extensions {
    fn claims(&self) -> Option<&Claims> {
        self.get::<Claims>()
    }

    fn claims_as<T: DeserializeOwned>(&self) -> Option<T> {
        self.claims()?.deserialize().ok()
    }
}
