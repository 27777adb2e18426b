//! A test kit for the APIs the layer protects: a local identity provider on `127.0.0.1` with
//! fresh keys, serving OpenID Connect discovery and its JWKS over real HTTP, and the tokens it
//! signs. Feature `test-util`. **Not for production**: the kit makes keys nobody else knows
//! about and serves them over plain http; enable it for tests only.
//!
//! ```toml
//! [dev-dependencies]
//! validate-jwt = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! A test is three lines: start the issuer, build the app with the layer from
//! [`layer_builder`](TestIssuer::layer_builder), send requests with its tokens.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//! use validate_jwt::Claims;
//! use validate_jwt::testing::{BadToken, TestIssuer};
//!
//! // The application under test.
//! fn app(jwt: validate_jwt::ValidateJwtLayer) -> Router {
//!     Router::new()
//!         .route("/files", get(|claims: axum::Extension<Claims>| async move {
//!             format!("files of {}", claims.subject().unwrap_or("?"))
//!         }))
//!         .layer(jwt)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::start()?;
//! let app = app(issuer.layer_builder().require_all_scopes(["Files.Read"]).build()?);
//! let get = |token: &str| {
//!     http::Request::get("/files")
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(axum::body::Body::empty())
//!         .unwrap()
//! };
//!
//! let token = issuer.token().subject("alice").scopes(["Files.Read"]).sign();
//! assert_eq!(app.clone().oneshot(get(&token)).await?.status(), 200);
//! let no_scope = issuer.token().sign();
//! assert_eq!(app.clone().oneshot(get(&no_scope)).await?.status(), 403);
//! let expired = issuer.token().scopes(["Files.Read"]).sign_bad(BadToken::Expired);
//! assert_eq!(app.oneshot(get(&expired)).await?.status(), 401);
//! # Ok(())
//! # }
//! ```
//!
//! What is in the kit:
//!
//! - [`TestIssuer`]: keys for RS256, PS256, ES256, ES384 and EdDSA (HS256 on request), the
//!   discovery document and the key set, a [`ValidateJwtBuilder`](crate::ValidateJwtBuilder)
//!   pointed at them, [rotation](TestIssuer::rotate) and [faults](Fault) (500, hang, invalid
//!   JSON, down) to see what your service does when the identity provider misbehaves;
//! - Azure AD: [`TestIssuer::azure_ad`] and [`TestIssuer::azure_ad_multi_tenant`], an authority
//!   with Azure's paths and token shapes (v1 and v2 issuers, `tid`, `scp`, `roles`,
//!   `azp`/`appid`, the `{tenantid}` template) for [`AzureAd`](crate::AzureAd) configurations,
//!   through [`AzureAd::authority_host`](crate::AzureAd::authority_host);
//! - [`TokenBuilder`]: the token, claim by claim, header member by header member;
//! - [`BadToken`]: one token per way a token can fail validation (expired, not yet valid, wrong
//!   audience, wrong issuer, unknown key, `alg: none`, tampered payload), each with the answer
//!   it gets;
//! - [`SigningKey`]: a key on its own, for static key configurations and tokens built by hand.
//!
//! The issuer's server runs on its own thread and runtime: it keeps real time while a test
//! moves Tokio's clock over a key set's lifetime, a refresh interval or a retry's backoff with
//! [`skip_time`], so a test never sleeps.

use std::time::Duration;

mod issuer;
mod keys;
mod server;
mod token;

pub use issuer::{
    DEFAULT_ALGORITHMS, DEFAULT_AUDIENCE, DEFAULT_CLIENT_APP, Fault, TestIssuer, TestIssuerBuilder,
};
pub use keys::SigningKey;
pub use token::{BadToken, TokenBuilder};

/// Moves the test's Tokio clock `by` at once, firing the timers that fall due (a layer's key
/// refresh, the end of a refresh interval, a retry's backoff), then lets it run again.
///
/// The clock is paused only for the jump: a paused runtime with nothing to do moves to its next
/// timer, which while a fetch is in flight is the fetch's timeout, so a test that kept the clock
/// paused would see healthy fetches time out. Like `tokio::time::pause`, it needs a
/// current-thread runtime (`#[tokio::test]`'s) whose clock is running (not `start_paused`).
///
/// ```
/// use std::time::Duration;
/// use validate_jwt::JwtErrorKind;
/// use validate_jwt::testing::{TestIssuer, skip_time};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// let layer = issuer.layer_builder().build()?;
/// layer.ready().await?;
/// issuer.rotate();
/// layer.validate_token(&issuer.token().sign()).await?; // a new key: fetched at once
///
/// // Another new key within the 30 s refresh interval is not fetched for...
/// issuer.rotate();
/// let token = issuer.token().sign();
/// let err = layer.validate_token(&token).await.unwrap_err();
/// assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
/// // ...until the interval has passed.
/// skip_time(Duration::from_secs(30)).await;
/// layer.validate_token(&token).await?;
/// # Ok(())
/// # }
/// ```
pub async fn skip_time(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}
