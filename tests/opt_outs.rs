//! Every loosening, tried both ways: a token (or request) the default refuses, with the
//! `JwtErrorKind` it is refused for, that the opt-out accepts — and one the opt-out *still*
//! refuses, so that an opt-out never switches off more than it says. (The issuer opt-outs'
//! interplay with several key sources is in `trust.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/key_server.rs"]
mod key_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http_body_util::BodyExt as _;
use key_server::KeyServer;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use validate_jwt::testing::TestIssuer;
use validate_jwt::{
    AzureAd, Bytes, ConfigError, JwtError, JwtErrorKind, RemoteJwks, StaticKeys,
    ValidateJwtBuilder, ValidateJwtLayer,
};

fn keys(key: &TestKey) -> StaticKeys {
    StaticKeys::new()
        .add_jwks(jwks(&[key]).to_string())
        .add_issuer(ISSUER)
}

fn base(key: &TestKey) -> ValidateJwtBuilder {
    ValidateJwtLayer::builder()
        .add_keys(keys(key))
        .add_audience(AUDIENCE)
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// A request through `layer` to the echo handler: (status, kind, body).
async fn send(
    layer: &ValidateJwtLayer,
    request: http::request::Builder,
) -> (u16, Option<JwtErrorKind>, Value) {
    let app = Router::new()
        .route("/", get(echo).options(echo))
        .route("/health", get(echo))
        .layer(layer.clone());
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response.extensions().get::<JwtError>().map(JwtError::kind);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        kind,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get_with_bearer(token: &str) -> http::request::Builder {
    http::Request::get("/").header("authorization", format!("Bearer {token}"))
}

// ---- claims ----------------------------------------------------------------------------------

#[tokio::test]
async fn danger_accept_any_audience() {
    let key = TestKey::es256("k");
    let other = key.token(&with(claims(), "aud", json!("api://someone-else")));
    let default = base(&key).build().unwrap();
    assert_invalid_token(&call(&default, &other).await, JwtErrorKind::InvalidAudience);
    let open = ValidateJwtLayer::builder()
        .add_keys(keys(&key))
        .danger_accept_any_audience()
        .build()
        .unwrap();
    assert_accepted(&call(&open, &other).await);
    assert_accepted(&call(&open, &key.token(&without(claims(), "aud"))).await);
    // Still refused: another issuer, and a signature by another key.
    let foreign = key.token(&with(claims(), "iss", json!("https://evil.test")));
    assert_invalid_token(&call(&open, &foreign).await, JwtErrorKind::InvalidIssuer);
    let forged = TestKey::es256("k").token(&claims());
    assert_invalid_token(&call(&open, &forged).await, JwtErrorKind::InvalidSignature);
}

#[tokio::test]
async fn danger_accept_any_issuer() {
    let key = TestKey::es256("k");
    let unbound = StaticKeys::new().add_jwks(jwks(&[&key]).to_string());
    let err = ValidateJwtLayer::builder()
        .add_keys(unbound.clone())
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::NoIssuerDecision);
    let open = ValidateJwtLayer::builder()
        .add_keys(unbound)
        .add_audience(AUDIENCE)
        .danger_accept_any_issuer()
        .build()
        .unwrap();
    let anyone = key.token(&with(claims(), "iss", json!("https://anyone.test")));
    assert_accepted(&call(&open, &anyone).await);
    // Still refused: another audience, and a signature by another key.
    let elsewhere = key.token(&with(claims(), "aud", json!("api://other")));
    assert_invalid_token(
        &call(&open, &elsewhere).await,
        JwtErrorKind::InvalidAudience,
    );
    let forged = TestKey::es256("k").token(&claims());
    assert_invalid_token(&call(&open, &forged).await, JwtErrorKind::InvalidSignature);
}

#[tokio::test]
async fn danger_allow_missing_exp() {
    let key = TestKey::es256("k");
    let no_exp = key.token(&without(claims(), "exp"));
    let default = base(&key).build().unwrap();
    assert_invalid_token(&call(&default, &no_exp).await, JwtErrorKind::InvalidClaims);
    let open = base(&key).danger_allow_missing_exp().build().unwrap();
    assert_accepted(&call(&open, &no_exp).await);
    // Still refused: a token that has an `exp` in the past, or an `nbf` in the future.
    let expired = key.token(&with(claims(), "exp", json!(now() - 3600)));
    assert_invalid_token(&call(&open, &expired).await, JwtErrorKind::Expired);
    let early = key.token(&with(without(claims(), "exp"), "nbf", json!(now() + 3600)));
    assert_invalid_token(&call(&open, &early).await, JwtErrorKind::NotYetValid);
}

// ---- bound tokens --------------------------------------------------------------------------------

#[tokio::test]
async fn danger_accept_bound_tokens_as_bearer() {
    let key = TestKey::es256("k");
    let jkt = key.token(&with(
        claims(),
        "cnf",
        json!({"jkt": "a-dpop-key-thumbprint"}),
    ));
    let x5t = key.token(&with(
        claims(),
        "cnf",
        json!({"x5t#S256": "a-cert-thumbprint"}),
    ));
    let default = base(&key).build().unwrap();
    for bound in [&jkt, &x5t] {
        let reply = call(&default, bound).await;
        assert_eq!(reply.status, 401, "{reply:?}");
        assert_eq!(
            reply.kind(),
            Some(JwtErrorKind::InvalidBinding),
            "{reply:?}"
        );
    }
    let open = base(&key)
        .danger_accept_bound_tokens_as_bearer()
        .build()
        .unwrap();
    assert_accepted(&call(&open, &jkt).await);
    assert_accepted(&call(&open, &x5t).await);
    // Still refused: a `cnf` that is not an object, or whose binding is not a string.
    for cnf in [json!("jkt"), json!({"jkt": 1})] {
        let malformed = key.token(&with(claims(), "cnf", cnf));
        let reply = call(&open, &malformed).await;
        assert_eq!(
            reply.kind(),
            Some(JwtErrorKind::InvalidBinding),
            "{reply:?}"
        );
    }
}

// ---- typ ---------------------------------------------------------------------------------------

fn typed(key: &TestKey, typ: Option<&str>) -> String {
    let mut header = json!({"alg": key.alg, "kid": key.kid});
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    key.sign(&header, &claims())
}

#[tokio::test]
async fn danger_accept_any_typ() {
    let key = TestKey::es256("k");
    let dpop = typed(&key, Some("dpop+jwt"));
    let default = base(&key).build().unwrap();
    assert_invalid_token(&call(&default, &dpop).await, JwtErrorKind::InvalidHeader);
    let open = base(&key).danger_accept_any_typ().build().unwrap();
    assert_accepted(&call(&open, &dpop).await);
    // Still refused: `alg: none`, and `crit`.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "dpop+jwt"}).to_string()),
        b64(claims().to_string())
    );
    assert_invalid_token(
        &call(&open, &none).await,
        JwtErrorKind::UnsupportedAlgorithm,
    );
    let crit = key.sign(
        &json!({"alg": "ES256", "kid": "k", "typ": "x", "crit": ["exp"], "exp": 1}),
        &claims(),
    );
    assert_invalid_token(&call(&open, &crit).await, JwtErrorKind::InvalidHeader);
}

#[tokio::test]
async fn with_accepted_typ() {
    let key = TestKey::es256("k");
    let event = typed(&key, Some("application/secevent+jwt"));
    let default = base(&key).build().unwrap();
    assert_invalid_token(&call(&default, &event).await, JwtErrorKind::InvalidHeader);
    let listed = base(&key)
        .with_accepted_typ(["secevent+jwt"], false)
        .build()
        .unwrap();
    assert_accepted(&call(&listed, &event).await);
    assert_accepted(&call(&listed, &typed(&key, Some("SECEVENT+JWT"))).await);
    // Still refused: what the list does not name, and (here) an absent `typ`.
    for other in [Some("JWT"), Some("at+jwt"), None] {
        let answer = call(&listed, &typed(&key, other)).await;
        assert_invalid_token(&answer, JwtErrorKind::InvalidHeader);
    }
    let absent_ok = base(&key)
        .with_accepted_typ(["secevent+jwt"], true)
        .build()
        .unwrap();
    assert_accepted(&call(&absent_ok, &typed(&key, None)).await);
}

// ---- answers -----------------------------------------------------------------------------------

#[tokio::test]
async fn with_responder() {
    let key = TestKey::es256("k");
    let reached = Arc::new(AtomicUsize::new(0));
    let layer = base(&key)
        .with_responder(|err, default| {
            let (parts, _) = default.into_parts();
            let body = json!({"problem": err.kind().as_str()}).to_string();
            http::Response::from_parts(parts, Bytes::from(body))
        })
        .build()
        .unwrap();
    let counter = reached.clone();
    let app = Router::new()
        .route(
            "/",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "inner" }
            }),
        )
        .layer(layer.clone());
    let expired = key.token(&with(claims(), "exp", json!(now() - 3600)));
    let response = app
        .clone()
        .oneshot(get_with_bearer(&expired).body(Body::empty()).unwrap())
        .await
        .unwrap();
    // The default status and challenge, the responder's body, the error in the extensions.
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        response.extensions().get::<JwtError>().map(JwtError::kind),
        Some(JwtErrorKind::Expired)
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"problem":"expired"}"#);
    // Still refused: the refused request never reaches the service; a valid one does.
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    let ok = app
        .oneshot(
            get_with_bearer(&key.token(&claims()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

// ---- token locations ---------------------------------------------------------------------------

#[tokio::test]
async fn with_header_name() {
    let key = TestKey::es256("k");
    let token = key.token(&claims());
    let in_header = || http::Request::get("/").header("x-token", &token);
    let (status, kind, _) = send(&base(&key).build().unwrap(), in_header()).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key).with_header_name("X-Token").build().unwrap();
    assert_eq!(send(&layer, in_header()).await.0, 200);
    // A leading `Bearer ` is tolerated there.
    let bearer = http::Request::get("/").header("x-token", format!("Bearer {token}"));
    assert_eq!(send(&layer, bearer).await.0, 200);
    // Still refused: `Authorization` is no longer read, and a bad token is still bad.
    let (status, kind, _) = send(&layer, get_with_bearer(&token)).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let forged = http::Request::get("/").header("x-token", TestKey::es256("k").token(&claims()));
    assert_eq!(
        send(&layer, forged).await.1,
        Some(JwtErrorKind::InvalidSignature)
    );
}

#[tokio::test]
async fn with_scheme() {
    let key = TestKey::es256("k");
    let token = key.token(&claims());
    let jwt_scheme = || http::Request::get("/").header("authorization", format!("JWT {token}"));
    let (status, kind, _) = send(&base(&key).build().unwrap(), jwt_scheme()).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key).with_scheme("JWT").build().unwrap();
    assert_eq!(send(&layer, jwt_scheme()).await.0, 200);
    // Still refused: another scheme counts as no token.
    let (status, kind, _) = send(&layer, get_with_bearer(&token)).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
}

#[tokio::test]
async fn add_query_parameter() {
    let key = TestKey::es256("k");
    let token = key.token(&claims());
    let in_query = || http::Request::get(format!("/?access_token={token}"));
    let (status, kind, _) = send(&base(&key).build().unwrap(), in_query()).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key)
        .add_query_parameter("access_token")
        .build()
        .unwrap();
    assert_eq!(send(&layer, in_query()).await.0, 200);
    // Still refused: a token in two places.
    let twice = in_query().header("authorization", format!("Bearer {token}"));
    let (status, kind, _) = send(&layer, twice).await;
    assert_eq!((status, kind), (400, Some(JwtErrorKind::InvalidRequest)));
}

#[tokio::test]
async fn add_cookie() {
    let key = TestKey::es256("k");
    let token = key.token(&claims());
    let in_cookie = || http::Request::get("/").header("cookie", format!("theme=dark; jwt={token}"));
    let (status, kind, _) = send(&base(&key).build().unwrap(), in_cookie()).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key).add_cookie("jwt").build().unwrap();
    assert_eq!(send(&layer, in_cookie()).await.0, 200);
    // Still refused: an expired token in the cookie, and a token in two places.
    let expired = key.token(&with(claims(), "exp", json!(now() - 3600)));
    let stale = http::Request::get("/").header("cookie", format!("jwt={expired}"));
    assert_eq!(send(&layer, stale).await.1, Some(JwtErrorKind::Expired));
    let twice = in_cookie().header("authorization", format!("Bearer {token}"));
    assert_eq!(send(&layer, twice).await.0, 400);
}

#[tokio::test]
async fn add_token_extractor() {
    let key = TestKey::es256("k");
    let token = key.token(&claims());
    let custom = || http::Request::get("/").header("x-api-session", format!("v1:{token}"));
    let (status, kind, _) = send(&base(&key).build().unwrap(), custom()).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key)
        .add_token_extractor(|headers, _| {
            let value = headers.get("x-api-session")?.to_str().ok()?;
            value.strip_prefix("v1:").map(str::to_owned)
        })
        .build()
        .unwrap();
    assert_eq!(send(&layer, custom()).await.0, 200);
    // Still refused: what the extractor finds is validated like any token.
    let forged = TestKey::es256("k").token(&claims());
    let bad = http::Request::get("/").header("x-api-session", format!("v1:{forged}"));
    assert_eq!(
        send(&layer, bad).await.1,
        Some(JwtErrorKind::InvalidSignature)
    );
}

// ---- requests without a token ------------------------------------------------------------------

#[tokio::test]
async fn allow_anonymous() {
    let key = TestKey::es256("k");
    let (status, kind, _) = send(&base(&key).build().unwrap(), http::Request::get("/")).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let layer = base(&key).allow_anonymous().build().unwrap();
    let (status, _, body) = send(&layer, http::Request::get("/")).await;
    assert_eq!(status, 200);
    assert_eq!(body["claims"], Value::Null);
    // Still refused: a token that is present and invalid.
    let expired = key.token(&with(claims(), "exp", json!(now() - 3600)));
    assert_eq!(
        send(&layer, get_with_bearer(&expired)).await.1,
        Some(JwtErrorKind::Expired)
    );
}

#[tokio::test]
async fn skip_if_and_skip_cors_preflight() {
    let key = TestKey::es256("k");
    let default = base(&key).build().unwrap();
    let preflight = || {
        http::Request::options("/")
            .header("origin", "https://app.test")
            .header("access-control-request-method", "GET")
    };
    assert_eq!(
        send(&default, preflight()).await.1,
        Some(JwtErrorKind::Missing)
    );
    assert_eq!(send(&default, http::Request::get("/health")).await.0, 401);
    let layer = base(&key).skip_cors_preflight().build().unwrap();
    assert_eq!(send(&layer, preflight()).await.0, 200);
    // Still refused: an OPTIONS request that is no preflight.
    assert_eq!(
        send(&layer, http::Request::options("/")).await.1,
        Some(JwtErrorKind::Missing)
    );
    let health = base(&key)
        .skip_if(|_, uri, _| uri.path() == "/health")
        .build()
        .unwrap();
    assert_eq!(send(&health, http::Request::get("/health")).await.0, 200);
    assert_eq!(
        send(&health, http::Request::get("/")).await.1,
        Some(JwtErrorKind::Missing)
    );
}

// ---- key endpoints -----------------------------------------------------------------------------

#[test]
fn danger_allow_http() {
    let err = RemoteJwks::jwks_url("http://idp.example/keys")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
    assert!(
        RemoteJwks::jwks_url("http://idp.example/keys")
            .danger_allow_http()
            .build()
            .is_ok()
    );
    // Still refused: other schemes. (A discovered URL pointing inside is refused even with the
    // opt-out: `trust.rs`.)
    assert!(
        RemoteJwks::jwks_url("ftp://idp.example/keys")
            .danger_allow_http()
            .build()
            .is_err()
    );
    let err = ValidateJwtLayer::builder()
        .add_jwks_url("http://idp.example/keys")
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
}

// ---- Azure AD token versions -------------------------------------------------------------------

const TENANT: &str = "11111111-1111-1111-1111-111111111111";

/// The test kit's Azure AD authority for `TENANT`, its tokens for `AUDIENCE` and `alice`.
fn azure_authority() -> TestIssuer {
    TestIssuer::azure_ad(TENANT, "6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .with_audience(AUDIENCE)
        .start()
        .unwrap()
}

fn azure_token(issuer: &TestIssuer, v1: bool) -> String {
    let token = issuer.token().subject("alice");
    match v1 {
        true => token.azure_v1().sign(),
        false => token.sign(),
    }
}

async fn azure_layer(ad: AzureAd) -> ValidateJwtLayer {
    let layer = ad.app_id_uri(AUDIENCE).builder().build().unwrap();
    layer.ready().await.unwrap();
    layer
}

#[tokio::test]
async fn azure_v2_only_and_v1_only() {
    let issuer = azure_authority();
    let base = issuer.url();
    let (v1, v2) = (azure_token(&issuer, true), azure_token(&issuer, false));
    let both = azure_layer(AzureAd::tenant(TENANT).authority_host(base)).await;
    assert_accepted(&call(&both, &v1).await);
    assert_accepted(&call(&both, &v2).await);

    let v2_only = azure_layer(AzureAd::tenant(TENANT).authority_host(base).v2_only()).await;
    assert_accepted(&call(&v2_only, &v2).await);
    let answer = call(&v2_only, &v1).await;
    assert_invalid_token(&answer, JwtErrorKind::InvalidIssuer);
    let detail = answer.error.unwrap().detail().unwrap().to_owned();
    assert!(detail.contains("accessTokenAcceptedVersion"), "{detail}");

    let v1_only = azure_layer(AzureAd::tenant(TENANT).authority_host(base).v1_only()).await;
    assert_accepted(&call(&v1_only, &v1).await);
    assert_invalid_token(&call(&v1_only, &v2).await, JwtErrorKind::InvalidIssuer);
}

// ---- discovery documents naming another issuer ---------------------------------------------------

#[tokio::test]
async fn danger_accept_document_issuer() {
    // Azure AD's v1 metadata URL names the sts.windows.net issuer, not the URL's.
    let key = TestKey::rsa("k", "RS256");
    let server = KeyServer::start();
    let v1_issuer = format!("https://sts.windows.net/{TENANT}/");
    server.serve_json(
        &format!("/{TENANT}/.well-known/openid-configuration"),
        &json!({"issuer": v1_issuer, "jwks_uri": server.url("/keys")}),
    );
    server.serve_json("/keys", &jwks(&[&key]));
    let url = server.url(&format!("/{TENANT}/.well-known/openid-configuration"));
    let token = key.token(&json!({"iss": v1_issuer, "aud": AUDIENCE, "sub": "alice",
        "exp": now() + 600}));
    let layer = |remote: validate_jwt::RemoteJwksBuilder| {
        ValidateJwtLayer::builder()
            .add_key_source(remote.build().unwrap())
            .add_audience(AUDIENCE)
            .build()
            .unwrap()
    };

    let strict = layer(RemoteJwks::discovery_url(&url));
    let err = strict.ready().await.unwrap_err();
    assert_eq!(err.kind(), validate_jwt::KeyErrorKind::IssuerMismatch);
    assert_eq!(call(&strict, &token).await.status, 503);

    let loose = layer(RemoteJwks::discovery_url(&url).danger_accept_document_issuer());
    loose.ready().await.unwrap();
    assert_accepted(&call(&loose, &token).await);
    // Still refused: an issuer other than the document's, and the `{tenantid}` template at a
    // single-tenant URL.
    let other = key.token(&json!({"iss": format!("{}/{TENANT}", server.origin()),
        "aud": AUDIENCE, "sub": "alice", "exp": now() + 600}));
    assert_invalid_token(&call(&loose, &other).await, JwtErrorKind::InvalidIssuer);
    server.serve_json(
        &format!("/{TENANT}/.well-known/openid-configuration"),
        &json!({"issuer": "https://sts.windows.net/{tenantid}/", "jwks_uri": server.url("/keys")}),
    );
    let templated = layer(RemoteJwks::discovery_url(&url).danger_accept_document_issuer());
    let err = templated.ready().await.unwrap_err();
    assert_eq!(err.kind(), validate_jwt::KeyErrorKind::IssuerMismatch);
}
