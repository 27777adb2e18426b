//! The trust model: one issuer rule for every key (see the builder's `add_issuer` docs and
//! `src/issuer.rs`). Each test is one way a foreign token could pass as another issuer's, tried
//! through the real layer with real keys, signatures and (where the scenario needs one) a real
//! key server on 127.0.0.1, and asserts the exact answer as the attack suite does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/key_server.rs"]
mod key_server;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use key_server::KeyServer;
use serde_json::{Value, json};
use validate_jwt::testing::TestIssuer;
use validate_jwt::{
    AzureAd, ConfigError, JwtErrorKind, KeyErrorKind, KeySet, KeySource, RefreshFuture,
    RefreshReason, RemoteJwks, Requirement, StaticKeys, ValidateJwtLayer,
};

const EVIL: &str = "https://evil.test";
const TENANT_T: &str = "11111111-1111-1111-1111-111111111111";
const TENANT_U: &str = "22222222-2222-2222-2222-222222222222";

/// Valid claims, but for issuer `iss`.
fn claims_from(iss: &str) -> Value {
    let mut c = claims();
    c["iss"] = json!(iss);
    c
}

fn jwk_with_issuer(key: &TestKey, issuer: &str) -> Value {
    let mut jwk = key.jwk(true);
    jwk["issuer"] = json!(issuer);
    jwk
}

#[track_caller]
fn assert_wrong_issuer(answer: &Answer) {
    assert_invalid_token(answer, JwtErrorKind::InvalidIssuer);
}

// ---- a custom provider's issuers() ---------------------------------------------------------

/// A key source of the user's own that names its issuer, as the trait documents.
struct Vault {
    set: Arc<KeySet>,
}

impl KeySource for Vault {
    fn current(&self) -> Option<Arc<KeySet>> {
        Some(self.set.clone())
    }
    fn refresh(&self, _: RefreshReason) -> RefreshFuture {
        let set = self.set.clone();
        Box::pin(async move { Ok(set) })
    }
    fn issuers(&self) -> Option<Vec<String>> {
        Some(vec![ISSUER.to_owned()])
    }
}

#[tokio::test]
async fn a_custom_providers_issuers_are_enforced() {
    let key = TestKey::es256("vault");
    let set = KeySet::from_jwks(jwks(&[&key]).to_string().as_bytes()).unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(Vault { set: Arc::new(set) })
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    assert_accepted(&call(&layer, &key.token(&claims())).await);
    let answer = call(&layer, &key.token(&claims_from(EVIL))).await;
    assert_wrong_issuer(&answer);
    let detail = answer.error.unwrap().detail().unwrap().to_owned();
    assert!(detail.contains(ISSUER), "{detail}");
}

// ---- a JWK's own `issuer` narrows, never widens ----------------------------------------------

#[tokio::test]
async fn a_jwk_issuer_narrows_a_static_source_and_never_widens_it() {
    let key = TestKey::rsa("k", "RS256");
    let layer = |jwk_issuer: &str| {
        ValidateJwtLayer::builder()
            .add_keys(
                StaticKeys::new()
                    .add_jwk(jwk_with_issuer(&key, jwk_issuer).to_string())
                    .add_issuer(ISSUER),
            )
            .add_audience(AUDIENCE)
            .build()
            .unwrap()
    };
    // The key names a foreign issuer: a token claiming it is refused, and so is one claiming
    // the source's issuer (the key does not sign for it).
    let foreign = layer(EVIL);
    assert_wrong_issuer(&call(&foreign, &key.token(&claims_from(EVIL))).await);
    assert_wrong_issuer(&call(&foreign, &key.token(&claims())).await);
    // A key naming the source's own issuer signs for it.
    let own = layer(ISSUER);
    assert_accepted(&call(&own, &key.token(&claims())).await);
}

#[tokio::test]
async fn a_jwk_issuer_narrows_a_remote_source_and_never_widens_it() {
    let key = TestKey::es256("k");
    let server = KeyServer::start();
    server.serve_json("/jwks", &json!({ "keys": [jwk_with_issuer(&key, EVIL)] }));
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::jwks_url(&server.url("/jwks"))
                .add_issuer(ISSUER)
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    assert_wrong_issuer(&call(&layer, &key.token(&claims_from(EVIL))).await);
    assert_wrong_issuer(&call(&layer, &key.token(&claims())).await);
}

// ---- Entra: a tenant's source and the template on its keys ---------------------------------

fn entra_claims(base: &str, tid: &str, v1: bool) -> Value {
    let iss = if v1 {
        format!("{base}/{tid}/")
    } else {
        format!("{base}/{tid}/v2.0")
    };
    json!({"iss": iss, "aud": AUDIENCE, "tid": tid, "sub": "alice",
           "exp": now() + 600, "iat": now()})
}

/// The test kit's Azure AD authority serves tenant T's endpoint with keys carrying the
/// tenant-independent template issuer, as Entra's key sets do.
#[tokio::test]
async fn a_tenant_source_refuses_another_tenants_token_signed_with_a_template_key() {
    let entra = TestIssuer::azure_ad(TENANT_T, "6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .with_audience(AUDIENCE)
        .start()
        .unwrap();
    let token = |tid: &str, v1: bool| {
        let token = entra.token().tenant(tid).subject("alice");
        if v1 { token.azure_v1() } else { token }.sign()
    };

    // The README's quick start: discovery on the tenant's URL, no `add_issuer`.
    let plain = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::discovery_url(&entra.discovery_url())
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    plain.ready().await.unwrap();
    assert_accepted(&call(&plain, &token(TENANT_T, false)).await);
    assert_wrong_issuer(&call(&plain, &token(TENANT_U, false)).await);

    // The Azure AD entry point for tenant T: T's v1 and v2 tokens pass, U's of either never.
    let azure = AzureAd::tenant(TENANT_T)
        .app_id_uri(AUDIENCE)
        .authority_host(entra.url())
        .builder()
        .build()
        .unwrap();
    azure.ready().await.unwrap();
    for v1 in [false, true] {
        assert_accepted(&call(&azure, &token(TENANT_T, v1)).await);
        assert_wrong_issuer(&call(&azure, &token(TENANT_U, v1)).await);
    }
}

#[tokio::test]
async fn a_single_tenant_url_whose_document_names_the_template_is_refused() {
    let key = TestKey::rsa("entra", "RS256");
    let server = KeyServer::start();
    let base = server.origin();
    let path = format!("/{TENANT_T}/v2.0/.well-known/openid-configuration");
    server.serve_discovery(&path, &format!("{base}/{{tenantid}}/v2.0"), "/keys");
    server.serve_json("/keys", &jwks(&[&key]));
    let token = key.token(&entra_claims(&base, TENANT_U, false));

    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::discovery_url(&server.url(&path))
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    assert_eq!(
        layer.ready().await.unwrap_err().kind(),
        KeyErrorKind::IssuerMismatch
    );
    let answer = call(&layer, &token).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.kind(), Some(JwtErrorKind::KeysUnavailable));
    assert_eq!(server.hits("/keys"), 0);

    // The explicit opt-in takes the template (and with it every tenant).
    let opted = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::discovery_url(&server.url(&path))
                .danger_accept_tenant_template()
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    opted.ready().await.unwrap();
    assert_accepted(&call(&opted, &token).await);
    // Still refused with the opt-in: a token naming no tenant (`tid`), or a `tid` that is not
    // the one in its `iss`, and a token for another audience.
    let mut no_tid = entra_claims(&base, TENANT_U, false);
    no_tid.as_object_mut().unwrap().remove("tid");
    assert_wrong_issuer(&call(&opted, &key.token(&no_tid)).await);
    let mut other_tid = entra_claims(&base, TENANT_U, false);
    other_tid["tid"] = json!(TENANT_T);
    assert_wrong_issuer(&call(&opted, &key.token(&other_tid)).await);
    let mut elsewhere = entra_claims(&base, TENANT_U, false);
    elsewhere["aud"] = json!("api://other");
    assert_invalid_token(
        &call(&opted, &key.token(&elsewhere)).await,
        JwtErrorKind::InvalidAudience,
    );
}

// ---- several sources -----------------------------------------------------------------------

#[tokio::test]
async fn an_unbound_source_cannot_sign_for_a_bound_sources_issuer() {
    let a = TestKey::es256("a");
    let free = TestKey::es256("free");
    const OTHER: &str = "https://other.test";
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[&a]).to_string())
                .add_issuer(ISSUER),
        )
        .add_keys(StaticKeys::new().add_jwks(jwks(&[&free]).to_string()))
        .add_issuer(ISSUER)
        .add_issuer(OTHER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    assert_accepted(&call(&layer, &a.token(&claims())).await);
    assert_accepted(&call(&layer, &free.token(&claims_from(OTHER))).await);
    assert_wrong_issuer(&call(&layer, &free.token(&claims())).await);
    // And the bound keys do not sign for the unbound source's issuer either.
    assert_wrong_issuer(&call(&layer, &a.token(&claims_from(OTHER))).await);
}

#[tokio::test]
async fn two_bare_jwks_urls_both_sign_for_the_listed_issuer() {
    let (k1, k2) = (TestKey::es256("k1"), TestKey::es256("k2"));
    let server = KeyServer::start();
    server.serve_json("/one", &jwks(&[&k1]));
    server.serve_json("/two", &jwks(&[&k2]));
    let layer = ValidateJwtLayer::builder()
        .add_jwks_url(server.url("/one"))
        .add_jwks_url(server.url("/two"))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    assert_accepted(&call(&layer, &k1.token(&claims())).await);
    assert_accepted(&call(&layer, &k2.token(&claims())).await);
    assert_wrong_issuer(&call(&layer, &k2.token(&claims_from(EVIL))).await);
}

#[test]
fn a_listed_issuer_no_source_can_accept_is_a_build_error() {
    let secret = b"a shared secret of at least 32 bytes!";
    let bound = |iss: &str| {
        StaticKeys::new()
            .add_hmac_secret(None, secret)
            .add_issuer(iss)
    };
    let err = ValidateJwtLayer::builder()
        .add_keys(bound("https://a.test"))
        .add_keys(bound("https://b.test"))
        .add_issuer("https://c.test")
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnreachableIssuer { issuer, .. } if issuer == "https://c.test"),
        "{err}"
    );
    assert!(err.to_string().contains("StaticKeys::add_issuer"), "{err}");
    // A source left with no issuer names the per-source method to call.
    let err = ValidateJwtLayer::builder()
        .add_keys(bound(ISSUER))
        .add_keys(StaticKeys::new().add_hmac_secret(None, secret))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::NoIssuerDecision);
    assert!(err.to_string().contains("StaticKeys::add_issuer"), "{err}");
}

#[tokio::test]
async fn danger_accept_any_issuer_opens_unbound_sources_only() {
    let (bound_key, free) = (TestKey::es256("bound"), TestKey::es256("free"));
    let bound = StaticKeys::new()
        .add_jwks(jwks(&[&bound_key]).to_string())
        .add_issuer(ISSUER);
    let free_keys = StaticKeys::new().add_jwks(jwks(&[&free]).to_string());
    // The default refuses a key source without an issuer decision.
    assert_eq!(
        ValidateJwtLayer::builder()
            .add_keys(free_keys.clone())
            .add_audience(AUDIENCE)
            .build()
            .unwrap_err(),
        ConfigError::NoIssuerDecision
    );
    let layer = ValidateJwtLayer::builder()
        .add_keys(bound)
        .add_keys(free_keys)
        .danger_accept_any_issuer()
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    // Any issuer, or none, from the unbound keys.
    assert_accepted(&call(&layer, &free.token(&claims_from("https://anyone.test"))).await);
    let mut no_iss = claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_accepted(&call(&layer, &free.token(&no_iss)).await);
    // Still refused: the bound source's issuer from the unbound keys, and anything but its own
    // issuer from the bound keys; signatures and audiences are still checked.
    assert_wrong_issuer(&call(&layer, &free.token(&claims())).await);
    assert_wrong_issuer(
        &call(
            &layer,
            &bound_key.token(&claims_from("https://anyone.test")),
        )
        .await,
    );
    assert_wrong_issuer(&call(&layer, &bound_key.token(&no_iss)).await);
    let mut other_aud = claims_from("https://anyone.test");
    other_aud["aud"] = json!("api://other");
    assert_invalid_token(
        &call(&layer, &free.token(&other_aud)).await,
        JwtErrorKind::InvalidAudience,
    );
    // With no unbound source it is a configuration error.
    let err = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[&bound_key]).to_string())
                .add_issuer(ISSUER),
        )
        .danger_accept_any_issuer()
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
}

// ---- the issuer list and discovery ---------------------------------------------------------

#[tokio::test]
async fn the_issuer_list_replaces_the_discovery_default_of_a_single_source() {
    let key = TestKey::rsa("k", "RS256");
    let server = KeyServer::start();
    server.serve_discovery(
        "/.well-known/openid-configuration",
        &server.origin(),
        "/keys",
    );
    server.serve_json("/keys", &jwks(&[&key]));
    const FRONTEND: &str = "https://api.contoso.test";
    let url = server.url("/.well-known/openid-configuration");

    let layer = ValidateJwtLayer::builder()
        .add_discovery_url(&url)
        .add_issuer(FRONTEND)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    assert_accepted(&call(&layer, &key.token(&claims_from(FRONTEND))).await);
    // Replaced, not added to: the document's own issuer is no longer accepted.
    assert_wrong_issuer(&call(&layer, &key.token(&claims_from(&server.origin()))).await);

    // Without the list, the document's issuer is the source's.
    let default = ValidateJwtLayer::builder()
        .add_discovery_url(&url)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    default.ready().await.unwrap();
    assert_accepted(&call(&default, &key.token(&claims_from(&server.origin()))).await);
    assert_wrong_issuer(&call(&default, &key.token(&claims_from(FRONTEND))).await);
}

#[tokio::test]
async fn a_discovered_jwks_uri_pointing_at_loopback_is_refused() {
    let key = TestKey::rsa("k", "RS256");
    let server = KeyServer::start();
    let port = server.origin().rsplit(':').next().unwrap().to_owned();
    // The metadata host is a public name (resolved here to the test server); its document
    // points the key fetch at a loopback address.
    let issuer = format!("http://idp.test:{port}");
    server.serve_discovery("/.well-known/openid-configuration", &issuer, "/keys");
    server.serve_json("/keys", &jwks(&[&key]));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = reqwest::Client::builder()
        .resolve("idp.test", addr)
        .build()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_discovery_url(format!("{issuer}/.well-known/openid-configuration"))
        .with_http_client(client)
        .danger_allow_http()
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let err = layer.ready().await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::InvalidUrl, "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
    assert_eq!(server.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(server.hits("/keys"), 0);
    let answer = call(&layer, &key.token(&claims_from(&issuer))).await;
    assert_eq!(answer.status, 503, "{answer:?}");
}

// ---- claims remember their layer -----------------------------------------------------------

/// `GET /` through `route_layer(inner)` and then, when given, `.layer(outer)`:
/// (status, kind, body).
async fn through(
    outer: Option<&ValidateJwtLayer>,
    inner: validate_jwt::RequireClaimsLayer,
    token: Option<&str>,
) -> (u16, Option<JwtErrorKind>, Value) {
    let mut app = Router::new().route("/", get(echo).route_layer(inner));
    if let Some(outer) = outer {
        app = app.layer(outer.clone());
    }
    let mut request = http::Request::get("/");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    respond(app, request.body(Body::empty()).unwrap()).await
}

fn layer_for(key: &TestKey, audience: &str) -> ValidateJwtLayer {
    ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[key]).to_string())
                .add_issuer(ISSUER),
        )
        .add_audience(audience)
        .build()
        .unwrap()
}

#[tokio::test]
async fn require_refuses_claims_verified_by_another_layer() {
    let key = TestKey::es256("k");
    let jwt_a = layer_for(&key, AUDIENCE);
    let jwt_b = layer_for(&key, "api://b");
    let rule = Requirement::all_scopes(["Echo.Read"]);
    // A token for A's audience, which B's own rules would refuse.
    let token = key.token(&claims());
    let (status, kind, body) = through(
        Some(&jwt_a),
        jwt_b.for_route(rule.clone()).unwrap(),
        Some(&token),
    )
    .await;
    assert_eq!((status, kind), (500, Some(JwtErrorKind::Misconfigured)));
    assert_eq!(body["error"], "server_error");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another ValidateJwtLayer"),
        "{body}"
    );
    // Made from the right layer, the same route passes.
    let (status, _, _) = through(Some(&jwt_a), jwt_a.for_route(rule).unwrap(), Some(&token)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn require_without_its_layer_answers_500_naming_the_fix() {
    let key = TestKey::es256("k");
    let jwt = layer_for(&key, AUDIENCE);
    let token = key.token(&claims());
    let (status, kind, body) = through(
        None,
        jwt.for_route(Requirement::all_scopes(["Echo.Read"]))
            .unwrap(),
        Some(&token),
    )
    .await;
    assert_eq!((status, kind), (500, Some(JwtErrorKind::Misconfigured)));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains(".layer(jwt)"),
        "{body}"
    );
}

#[tokio::test]
async fn require_behind_an_anonymous_layer_answers_401_without_a_token() {
    let key = TestKey::es256("k");
    let jwt = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&[&key]).to_string())
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .allow_anonymous()
        .build()
        .unwrap();
    let rule = jwt
        .for_route(Requirement::all_scopes(["Echo.Read"]))
        .unwrap();
    let (status, kind, _) = through(Some(&jwt), rule.clone(), None).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    let (status, _, _) = through(Some(&jwt), rule, Some(&key.token(&claims()))).await;
    assert_eq!(status, 200);
}
