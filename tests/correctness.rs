//! Correctness under real tokens and configurations: one regression test per defect found by
//! trying the layer with tokens and settings no one here wrote. (Large headers are in the attack
//! suite, `a_header_carrying_jwk_jku_x5u_and_an_x5c_chain_is_read_and_its_keys_ignored`; cache
//! hits rerunning predicates in `token_cache.rs`, `a_hit_reruns_synchronous_predicates`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::{Layer as _, Service as _, ServiceExt as _};
use validate_jwt::testing::{Fault, TestIssuer};
use validate_jwt::{
    Algorithm, AzureAd, ConfigError, JwtError, JwtErrorKind, Requirement, StaticKeys,
    ValidateJwtLayer,
};

fn keys_for(key: &TestKey) -> StaticKeys {
    StaticKeys::new()
        .add_jwks(jwks(&[key]).to_string())
        .add_issuer(ISSUER)
}

fn layer(key: &TestKey) -> validate_jwt::ValidateJwtBuilder {
    ValidateJwtLayer::builder()
        .add_keys(keys_for(key))
        .add_audience(AUDIENCE)
}

/// Signs a payload given as text (for JSON serde_json would not write).
fn token_with_payload(key: &TestKey, payload: &str) -> String {
    let header = json!({"alg": key.alg, "kid": key.kid, "typ": "JWT"}).to_string();
    key.sign_bytes(key.alg, header.as_bytes(), payload.as_bytes())
}

// ---- failure answers -------------------------------------------------------------------------

#[tokio::test]
async fn the_failed_message_replaces_the_description_of_403_answers_too() {
    let key = TestKey::es256("k");
    let message = "Unauthorized. Access token is missing or invalid.";
    let layer = layer(&key)
        .require_all_scopes(["Files.Write"])
        .with_failed_message(message)
        .build()
        .unwrap();
    let answer = call(&layer, &key.token(&claims())).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.body["error"], "insufficient_scope");
    assert_eq!(answer.body["error_description"], message);
    assert!(
        answer
            .www_authenticate
            .as_deref()
            .unwrap()
            .contains(message),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_failed_status_of_403_applies_to_every_validation_failure_coherently() {
    let key = TestKey::es256("k");
    let layer = layer(&key)
        .require_all_scopes(["Files.Write"])
        .with_failed_status(403)
        .with_failed_message("denied")
        .build()
        .unwrap();
    // No token: 403 with the message, and a plain challenge (no error code of a 401).
    let app = Router::new().route("/", get(echo)).layer(layer.clone());
    let response = app
        .oneshot(http::Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error_description"], "denied");
    // An invalid token: 403, never `error="invalid_token"` on a 403.
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let answer = call(&layer, &key.token(&expired)).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    assert_eq!(answer.body["error"], "invalid_token");
    assert_eq!(answer.kind(), Some(JwtErrorKind::Expired));
    // Missing scope: a 403's own code stays in the challenge.
    let answer = call(&layer, &key.token(&claims())).await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.error_attribute.as_deref(),
        Some("insufficient_scope")
    );
}

// ---- one view of the payload -----------------------------------------------------------------

#[tokio::test]
async fn a_lone_surrogate_anywhere_refuses_the_payload_instead_of_hiding_its_claims() {
    let key = TestKey::es256("k");
    // "Deny if revoked": before, the surrogate made `jti` vanish and the rule failed open.
    let layer = layer(&key)
        .require(Requirement::predicate("not revoked", |claims| match claims
            .get("jti")
            .and_then(Value::as_str)
        {
            Some("revoked-id") => Err(validate_jwt::Denied::new("revoked")),
            _ => Ok(()),
        }))
        .build()
        .unwrap();
    let payload = payload_with(r#""jti":"revoked-id","name":"\ud800""#);
    let answer = call(&layer, &token_with_payload(&key, &payload)).await;
    assert_invalid_token(&answer, JwtErrorKind::Malformed);
    // A surrogate pair is a character, and the claims are all there.
    let payload = payload_with(r#""jti":"revoked-id","name":"\ud83d\ude00""#);
    let answer = call(&layer, &token_with_payload(&key, &payload)).await;
    assert_eq!(answer.status, 403, "{answer:?}");
}

#[tokio::test]
async fn an_out_of_range_number_anywhere_refuses_the_payload() {
    let key = TestKey::es256("k");
    let layer = layer(&key).build().unwrap();
    let payload = payload_with(r#""jti":"j","n":1e400"#);
    let answer = call(&layer, &token_with_payload(&key, &payload)).await;
    assert_invalid_token(&answer, JwtErrorKind::InvalidClaims);
    // Claims::from_unverified_json reads payloads the same way.
    assert!(validate_jwt::Claims::from_unverified_json(payload.as_bytes()).is_err());
}

#[tokio::test]
async fn per_route_requirements_never_see_a_repeated_member() {
    let key = TestKey::es256("k");
    let jwt = layer(&key).build().unwrap();
    let admin = jwt.for_route(Requirement::all_roles(["admin"])).unwrap();
    let app = Router::new()
        .route("/", get(echo).route_layer(admin))
        .layer(jwt.clone());
    let payload = payload_with(r#""roles":["user"],"roles":["admin"]"#);
    let token = token_with_payload(&key, &payload);
    let response = app
        .oneshot(
            http::Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let kind = response.extensions().get::<JwtError>().map(JwtError::kind);
    assert_eq!(kind, Some(JwtErrorKind::InvalidClaims));
    // Nested objects too (claim paths read them).
    let payload = payload_with(r#""realm_access":{"roles":["user"],"roles":["admin"]}"#);
    let err = jwt
        .validate_token(&token_with_payload(&key, &payload))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::InvalidClaims);
}

// ---- keys ------------------------------------------------------------------------------------

#[test]
fn remote_settings_out_of_range_are_build_errors() {
    let b = || validate_jwt::RemoteJwks::jwks_url("https://idp.example/keys");
    for err in [
        b().with_timeout(Duration::MAX).build().unwrap_err(),
        b().with_min_refresh_interval(Duration::MAX)
            .build()
            .unwrap_err(),
        b().with_default_cache_ttl(Duration::MAX)
            .build()
            .unwrap_err(),
    ] {
        assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
    }
    let key = TestKey::es256("k");
    let err = layer(&key)
        .with_key_wait(Duration::MAX)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
}

#[tokio::test]
async fn a_kidless_token_with_a_bad_signature_never_refetches_the_keys() {
    let issuer = TestIssuer::builder()
        .with_algorithms([Algorithm::ES256])
        .start()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_jwks_url(issuer.jwks_url())
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    let fetched = issuer.jwks_requests();
    let forger = TestKey::es256("k");
    for _ in 0..5 {
        let token = forger.sign(&json!({"alg": "ES256"}), &claims());
        let answer = call(&layer, &token).await;
        assert_invalid_token(&answer, JwtErrorKind::InvalidSignature);
    }
    assert_eq!(issuer.jwks_requests(), fetched);
    // The issuer's own kid-less token still verifies.
    let key = issuer.signing_key(Algorithm::ES256).unwrap();
    let kidless = key.sign(&json!({"alg": "ES256"}), &claims()).unwrap();
    assert_accepted(&call(&layer, &kidless).await);
}

#[tokio::test]
async fn a_kidless_token_is_tried_against_four_keys_in_all() {
    let keys: Vec<TestKey> = (0..6).map(|i| TestKey::es256(&format!("k{i}"))).collect();
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[&keys[0], &keys[1], &keys[2]]).to_string())
                .add_issuer(ISSUER),
        )
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[&keys[3], &keys[4], &keys[5]]).to_string())
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let kidless = |k: &TestKey| k.sign(&json!({"alg": "ES256"}), &claims());
    // The first source's three keys and one of the second's are tried...
    assert_accepted(&call(&layer, &kidless(&keys[3])).await);
    // ...and no more: a fifth candidate is never reached.
    let answer = call(&layer, &kidless(&keys[4])).await;
    assert_invalid_token(&answer, JwtErrorKind::InvalidSignature);
    // Tokens that name their key are not limited by it.
    assert_accepted(&call(&layer, &keys[5].token(&claims())).await);
}

#[tokio::test(start_paused = true)]
async fn several_key_sources_are_waited_for_together() {
    let hanging = || {
        let issuer = TestIssuer::start().unwrap();
        issuer.set_fault(Fault::Hang);
        issuer
    };
    let (a, b) = (hanging(), hanging());
    let remote = |issuer: &TestIssuer| {
        validate_jwt::RemoteJwks::jwks_url(&issuer.jwks_url())
            .add_issuer(ISSUER)
            .with_timeout(Duration::from_secs(120))
            .with_connect_timeout(Duration::from_secs(120))
            .build()
            .unwrap()
    };
    let wait = Duration::from_secs(4);
    let layer = ValidateJwtLayer::builder()
        .add_key_source(remote(&a))
        .add_key_source(remote(&b))
        .add_audience(AUDIENCE)
        .with_key_wait(wait)
        .build()
        .unwrap();
    let key = TestKey::es256("k");
    // Virtual time: the clock moves only to the next timer, so the wait is exact.
    let start = tokio::time::Instant::now();
    let err = layer
        .validate_token(&key.token(&claims()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::KeysUnavailable);
    let waited = start.elapsed();
    assert!(
        waited >= wait && waited < 2 * wait,
        "waited {waited:?} for two sources with a {wait:?} key wait"
    );
}

// ---- the response future -----------------------------------------------------------------------

#[tokio::test]
async fn a_rejection_polled_after_completion_is_never_a_success() {
    let key = TestKey::es256("k");
    let mut svc =
        layer(&key)
            .build()
            .unwrap()
            .layer(tower::service_fn(|_: http::Request<()>| async {
                Ok::<_, Infallible>(http::Response::new(Body::empty()))
            }));
    svc.ready().await.unwrap();
    let mut future = Box::pin(svc.call(http::Request::get("/").body(()).unwrap()));
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(first)) = future.as_mut().poll(&mut cx) else {
        panic!("a rejection is ready at once");
    };
    assert_eq!(first.status(), 401);
    let Poll::Ready(Ok(again)) = Pin::new(&mut future).poll(&mut cx) else {
        panic!("polled again, the future still answers");
    };
    assert!(!again.status().is_success(), "{}", again.status());
}

// ---- algorithms --------------------------------------------------------------------------------

#[tokio::test]
async fn the_fully_specified_ed25519_algorithm_is_accepted_for_ed25519_keys_only() {
    let ed = TestKey::ed25519("ed");
    for jwk_alg in [Some("EdDSA"), Some("Ed25519"), None] {
        let mut jwk = ed.jwk(false);
        if let Some(alg) = jwk_alg {
            jwk["alg"] = json!(alg);
        }
        let layer = ValidateJwtLayer::builder()
            .add_keys(
                StaticKeys::new()
                    .add_jwk(jwk.to_string())
                    .add_issuer(ISSUER),
            )
            .add_audience(AUDIENCE)
            .build()
            .unwrap();
        for alg in ["Ed25519", "EdDSA"] {
            let token = ed.sign(&json!({"alg": alg, "kid": "ed"}), &claims());
            assert_accepted(&call(&layer, &token).await);
        }
    }
    // Never for another curve's key: an ES256 key named `ed`.
    let es = TestKey::es256("ed");
    let layer = layer(&es).build().unwrap();
    let forged = ed.sign(&json!({"alg": "Ed25519", "kid": "ed"}), &claims());
    let answer = call(&layer, &forged).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(
        matches!(
            answer.kind(),
            Some(JwtErrorKind::UnknownKey | JwtErrorKind::InvalidSignature)
        ),
        "{answer:?}"
    );
}

// ---- Azure AD and inputs -----------------------------------------------------------------------

#[test]
fn azure_tenants_must_be_guids() {
    let err = AzureAd::tenant("contoso.onmicrosoft.com")
        .api("6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .builder()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidSetting { setting: "AzureAd::tenant", reason } if reason.contains("GUID")),
        "{err}"
    );
    let err = AzureAd::multi_tenant()
        .api("6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .allow_tenants(["not-a-guid"])
        .builder()
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::InvalidSetting { setting: "AzureAd::allow_tenants", reason } if reason.contains("not-a-guid")),
        "{err}"
    );
}

#[tokio::test]
async fn validate_token_says_what_is_wrong_with_its_input() {
    let key = TestKey::es256("k");
    let layer = layer(&key).build().unwrap();
    let token = key.token(&claims());
    let err = layer
        .validate_token(&format!("Bearer {token}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::Malformed);
    assert!(err.detail().unwrap().contains("scheme"), "{err}");
    for empty in ["", "   "] {
        let err = layer.validate_token(empty).await.unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::Missing);
    }
    assert!(layer.validate_token(&token).await.is_ok());
}
