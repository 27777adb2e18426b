//! A tower middleware that validates OAuth 2.0 / OpenID Connect JWT access tokens in front of
//! any HTTP or gRPC service (axum, tonic, hyper): Azure API Management's `validate-jwt` policy,
//! in process.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//! use validate_jwt::{Claims, StaticKeys, ValidateJwtLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let jwt = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .add_audience("api://echo")
//!     .require_all_scopes(["Echo.Read"])
//!     .build()
//!     .unwrap();
//! let app = Router::new()
//!     .route("/", get(|claims: axum::Extension<Claims>| async move {
//!         claims.subject().unwrap_or_default().to_owned()
//!     }))
//!     .layer(jwt);
//!
//! // No token: 401 with `WWW-Authenticate: Bearer`.
//! let response = app
//!     .oneshot(http::Request::get("/").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # }
//! ```
//!
//! The request path: token extraction → header checks (algorithm allow-list bound to key type,
//! `typ`, `crit`) → key lookup by `kid` in a ready key set → signature → time (`exp`/`nbf`/leeway)
//! → issuer / audience → claim [`Requirement`]s → [`Claims`] in the request's extensions →
//! inner service. Failures become RFC 6750 answers (gRPC statuses for gRPC requests).
//!
//! See the README for the answers table, the secure defaults and their opt-outs, and the
//! Azure AD walkthrough.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod algorithm;
#[cfg(feature = "axum")]
pub mod axum;
mod azure;
mod cache;
mod claims;
mod clock;
mod config;
mod error;
mod extract;
mod future;
pub mod grpc;
mod issuer;
mod json;
#[cfg(test)]
mod json_oracle;
mod keys;
mod layer;
mod require;
mod response;
mod token;
mod validate;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use azure::{AzureAd, PUBLIC_CLOUD};
/// The body type of rejections built with [`ValidateJwtBuilder::with_responder`] (re-exported from `bytes`).
pub use bytes::Bytes;
pub use cache::TokenCacheStats;
pub use claims::{ClaimRequirement, Claims, Denied, Requirement};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, ValidateJwtBuilder};
pub use error::{ConfigError, JwtError, JwtErrorKind, KeyError, KeyErrorKind};
pub use future::ResponseFuture;
pub use keys::{
    DEFAULT_MAX_KEYS, Key, KeySet, KeySource, RefreshFuture, RefreshReason, StaticKeys,
};
pub use keys::{KeySourceStatus, RemoteJwks, RemoteJwksBuilder};
pub use layer::{ValidateJwt, ValidateJwtLayer};
pub use require::{RequireClaims, RequireClaimsLayer};
pub use response::ResponseBody;
