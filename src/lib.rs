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
//! # Answers
//!
//! | failure ([`JwtErrorKind`]) | status | `WWW-Authenticate` | body `error` | gRPC |
//! |---|---|---|---|---|
//! | no token (`Missing`) | 401 | `Bearer` (plus `realm`) | `unauthorized` | 16 |
//! | token in two places, repeated header, empty bearer (`InvalidRequest`) | 400 | `Bearer error="invalid_request", …` | `invalid_request` | 3 |
//! | malformed, too large, JWE, bad `alg`/`typ`/`crit`, unknown key, bad signature, expired, not yet valid, bad claims, issuer, audience | 401 | `Bearer error="invalid_token", error_description="…"` | `invalid_token` | 16 |
//! | authentic token lacking a required scope, role or claim (`InsufficientScope`) | 403 | `Bearer error="insufficient_scope", error_description="…", scope="…"` | `insufficient_scope` | 7 |
//! | no key set available (`KeysUnavailable`) | 503 + `Retry-After` | — | `temporarily_unavailable` | 14 |
//! | a [`RequireClaimsLayer`] without its layer's claims (`Misconfigured`) | 500 | — | `server_error` | 13 |
//! | DPoP on: a bad, repeated or replayed proof (`InvalidDpopProof`) | 401 | `DPoP error="invalid_dpop_proof", …, algs="…"` (+ `DPoP-Nonce` with nonces on) | `invalid_dpop_proof` | 16 |
//! | DPoP nonces on: no current `nonce` (`UseDpopNonce`) | 401 | `DPoP error="use_dpop_nonce", …` + `DPoP-Nonce` | `use_dpop_nonce` | 16 |
//! | sender binding not proven: bound token as bearer, other key or certificate (`InvalidBinding`) | 401 | `invalid_token` (on the `DPoP` challenge when DPoP is on) | `invalid_token` | 16 |
//! | the DPoP replay store failed, fail-closed (`ReplayStoreUnavailable`) | 503 + `Retry-After` | — | `temporarily_unavailable` | 14 |
//!
//! With DPoP on ([`sender`]), answers carry a `DPoP` challenge (with `algs`) beside the
//! `Bearer` one (DPoP allowed) or instead of it (DPoP required); a request under the `DPoP`
//! scheme gets its error on the `DPoP` challenge (RFC 9449 §7.1).
//!
//! [`with_failed_status`](ValidateJwtBuilder::with_failed_status) and
//! [`with_failed_message`](ValidateJwtBuilder::with_failed_message) (APIM's
//! `failed-validation-*`) apply to every validation failure;
//! [`with_responder`](ValidateJwtBuilder::with_responder) reshapes any answer. The rejected
//! response carries the [`JwtError`] in its extensions.
//!
//! With [`with_resource`](ValidateJwtBuilder::with_resource), every challenge also carries
//! `resource_metadata="…"` (RFC 9728 §5.1), last.
//!
//! # Protected resource metadata (RFC 9728) and MCP servers
//!
//! [`with_resource`](ValidateJwtBuilder::with_resource) (or
//! [`with_resource_as_audience`](ValidateJwtBuilder::with_resource_as_audience), which also makes
//! the resource the accepted audience, RFC 8707) turns the layer's rules into the metadata a
//! client meeting a 401 needs: which authorization servers issue tokens for this API
//! (`authorization_servers`, the key sources' issuers), for which scopes (`scopes_supported`,
//! the requirements'), sent how (`bearer_methods_supported`). The layer serves it at
//! `/.well-known/oauth-protected-resource[/path]` without a token and points every challenge at
//! it; the Model Context Protocol requires both of MCP servers (`examples/mcp_server.rs` puts
//! an `rmcp` server behind the layer). [`ProtectedResource`] sets the optional members;
//! [`ResourceMetadata`] is the built document.
//!
//! ```
//! use tower::ServiceExt;
//! use validate_jwt::{StaticKeys, ValidateJwtLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let jwt = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .with_resource_as_audience("https://mcp.example/mcp")
//!     .require_all_scopes(["mcp:tools"])
//!     .build()
//!     .unwrap();
//! let app = axum::Router::new()
//!     .route("/mcp", axum::routing::post(|| async { "an MCP server here" }))
//!     .layer(jwt);
//!
//! let refused = app.clone()
//!     .oneshot(http::Request::post("/mcp").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(refused.status(), 401);
//! assert_eq!(
//!     refused.headers()["www-authenticate"],
//!     r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#
//! );
//! let metadata = app
//!     .oneshot(
//!         http::Request::get("/.well-known/oauth-protected-resource/mcp")
//!             .body(axum::body::Body::empty())
//!             .unwrap(),
//!     )
//!     .await
//!     .unwrap();
//! let body = axum::body::to_bytes(metadata.into_body(), 4096).await.unwrap();
//! let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(document["authorization_servers"][0], "https://issuer.example");
//! assert_eq!(document["scopes_supported"][0], "mcp:tools");
//! # }
//! ```
//!
//! # Secure defaults
//!
//! `none` is never accepted; algorithms are bound to key types; `exp` is required; an audience
//! decision is required at build time; keys are never taken from the token (`jku`, `x5u`,
//! `jwk`, `x5c` are ignored); `crit`, `b64` and nested tokens are refused; key endpoints are
//! https (loopback excepted); payloads are I-JSON. **The issuer rule**: every key belongs to one
//! key source and every source has an issuer set; a token verified with a key is accepted only
//! if its `iss` is in that source's set and matches the key's own JWK `issuer` where it names
//! one (see [`add_issuer`](ValidateJwtBuilder::add_issuer)). Every loosening is a `danger_*`
//! method: `danger_accept_any_audience`, `danger_accept_any_issuer`, `danger_allow_missing_exp`,
//! `danger_accept_any_typ`, `danger_allow_http`, `RemoteJwksBuilder::danger_accept_tenant_template`,
//! `RemoteJwksBuilder::danger_accept_document_issuer`, and for DPoP
//! `Dpop::danger_trust_forwarded_headers`, `Dpop::danger_fail_open_on_store_errors`.
//!
//! # Sender-constrained tokens
//!
//! [`with_dpop`](ValidateJwtBuilder::with_dpop) (DPoP, RFC 9449) and
//! [`with_client_certificates`](ValidateJwtBuilder::with_client_certificates) (certificate-bound
//! tokens, RFC 8705) check, after the token, that the request proves possession of the key
//! the token's `cnf` names; [`Claims::binding`] says which. Both are off by default; see
//! [`sender`].
//!
//! # Claims to the inner service
//!
//! [`add_claim_header`](ValidateJwtBuilder::add_claim_header) and
//! [`with_payload_header`](ValidateJwtBuilder::with_payload_header) write verified claims (or
//! the whole payload) into request headers for a service that does not read tokens; any
//! incoming header of those names is removed from every request the layer lets through, so a
//! client cannot forge them.
//!
//! # Public routes
//!
//! Routes outside the layer need no token: add them to the router *after* `.layer(jwt)` (axum
//! applies a layer to the routes added before it), or let the layer skip them with
//! [`skip_if`](ValidateJwtBuilder::skip_if).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//! use validate_jwt::{StaticKeys, ValidateJwtLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let jwt = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .add_audience("api://echo")
//!     .build()
//!     .unwrap();
//! let app = Router::new()
//!     .route("/files", get(|| async { "protected" }))
//!     .layer(jwt)
//!     .route("/health", get(|| async { "ok" })); // after the layer: public
//!
//! let get = |path: &str| http::Request::get(path).body(axum::body::Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(get("/health")).await.unwrap().status(), 200);
//! assert_eq!(app.oneshot(get("/files")).await.unwrap().status(), 401);
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `aws-lc-rs` | yes | signatures with aws-lc-rs, keys parsed once (the fast backend) |
//! | `rust-crypto` | no | signatures with the pure-Rust RustCrypto crates; if both are on, aws-lc-rs is used |
//! | `axum` | no | the `validate_jwt::axum::Verified` extractor (typed or untyped claims) |
//! | `test-util` | no | `validate_jwt::testing`: a local identity provider and its tokens, for your tests (never in production) |
//! | `apim` | no | `validate_jwt::apim::Policy::parse`: an Azure API Management `<validate-jwt>` / `<validate-azure-ad-token>` policy as a builder (quick-xml) |
//! | `metrics` | no | `validate_jwt::metrics`: requests, key sources and the token cache through the `metrics` facade (any recorder: Prometheus, OpenTelemetry, …) |
//! | `redis` | no | `validate_jwt::sender::RedisReplayStore`: one DPoP replay view for every replica (redis-rs, tokio) |
//!
//! The README has the Azure AD walkthrough, the performance figures and how they were measured.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod algorithm;
#[cfg(feature = "apim")]
pub mod apim;
#[cfg(feature = "axum")]
pub mod axum;
mod azure;
mod cache;
mod claims;
mod clock;
mod config;
mod error;
pub mod explain;
mod extract;
mod forward;
mod future;
pub mod grpc;
mod health;
mod issuer;
mod json;
#[cfg(test)]
mod json_oracle;
mod keys;
mod layer;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
#[allow(dead_code, unreachable_pub)]
mod metrics;
mod require;
mod resource;
mod response;
pub mod sender;
mod span;
#[cfg(feature = "test-util")]
pub mod testing;
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
pub use explain::Explanation;
pub use forward::ClaimHeaderEncoding;
pub use future::ResponseFuture;
pub use health::{Health, HealthStatus, SourceHealth};
pub use keys::{
    DEFAULT_MAX_KEYS, Key, KeySet, KeySource, RefreshFuture, RefreshReason, StaticKeys,
};
pub use keys::{KeySourceStatus, RemoteJwks, RemoteJwksBuilder};
pub use layer::{ValidateJwt, ValidateJwtLayer};
pub use require::{RequireClaims, RequireClaimsLayer};
pub use resource::{DEFAULT_METADATA_MAX_AGE, ProtectedResource, ResourceMetadata};
pub use response::ResponseBody;
