//! Azure AD (Entra ID) against the test kit's Azure AD authority (`TestIssuer::azure_ad`:
//! tenant, `organizations` and `common` endpoints, keys carrying the `{tenantid}` template
//! issuer, `x5t` + `kid`), with tokens of both versions; and one crafted key set, for a key
//! bound to one tenant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/key_server.rs"]
mod key_server;

use axum::Router;
use axum::routing::get;
use common::*;
use key_server::KeyServer;
use serde_json::{Value, json};
use tower::ServiceExt;
use validate_jwt::testing::TestIssuer;
use validate_jwt::{AzureAd, JwtError, JwtErrorKind, KeySet, Requirement, ValidateJwtLayer};

const TENANT_A: &str = "11111111-1111-1111-1111-111111111111";
const TENANT_B: &str = "22222222-2222-2222-2222-222222222222";
const API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const CLIENT: &str = "9b7e2d4a-1c3f-4e5d-8a6b-0f1e2d3c4b5a";

/// An Azure AD authority whose tokens come from tenant A's `CLIENT`, for `API`.
fn authority() -> TestIssuer {
    TestIssuer::azure_ad(TENANT_A, API)
        .with_client_app(CLIENT)
        .start()
        .unwrap()
}

/// A delegated v2 token of `tid` (`scp` Files.Read).
fn v2(issuer: &TestIssuer, tid: &str) -> String {
    issuer.token().tenant(tid).scopes(["Files.Read"]).sign()
}

/// An application v1 token of `tid` (`roles` Files.Read.All).
fn v1(issuer: &TestIssuer, tid: &str) -> String {
    issuer
        .token()
        .tenant(tid)
        .azure_v1()
        .roles(["Files.Read.All"])
        .sign()
}

/// Calls a router behind `layer`: (status, the refusal's kind and detail).
async fn call(layer: &ValidateJwtLayer, token: &str) -> (u16, Option<(JwtErrorKind, String)>) {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone());
    let req = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let err = resp
        .extensions()
        .get::<JwtError>()
        .map(|e| (e.kind(), e.detail().unwrap_or_default().to_owned()));
    (resp.status().as_u16(), err)
}

async fn layer(ad: AzureAd) -> ValidateJwtLayer {
    let layer = ad.builder().build().unwrap();
    layer.ready().await.unwrap();
    layer
}

#[tokio::test]
async fn a_single_tenant_api_accepts_v1_and_v2_tokens_of_its_tenant() {
    let idp = authority();
    let l = layer(AzureAd::tenant(TENANT_A).api(API).authority_host(idp.url())).await;
    assert_eq!(call(&l, &v2(&idp, TENANT_A)).await.0, 200);
    assert_eq!(call(&l, &v1(&idp, TENANT_A)).await.0, 200);
    let (status, err) = call(&l, &v2(&idp, TENANT_B)).await;
    assert_eq!(status, 401);
    assert_eq!(err.unwrap().0, JwtErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn a_v2_only_api_refuses_v1_tokens_and_says_why() {
    let idp = authority();
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .authority_host(idp.url())
            .v2_only(),
    )
    .await;
    assert_eq!(call(&l, &v2(&idp, TENANT_A)).await.0, 200);
    let (status, err) = call(&l, &v1(&idp, TENANT_A)).await;
    assert_eq!(status, 401);
    let (kind, detail) = err.unwrap();
    assert_eq!(kind, JwtErrorKind::InvalidIssuer);
    assert!(detail.contains("accessTokenAcceptedVersion"), "{detail}");
}

#[tokio::test]
async fn the_tenantid_template_is_resolved_from_tid() {
    let idp = authority();
    let l = layer(AzureAd::multi_tenant().api(API).authority_host(idp.url())).await;
    assert_eq!(call(&l, &v2(&idp, TENANT_B)).await.0, 200);
    assert_eq!(call(&l, &v1(&idp, TENANT_B)).await.0, 200);
    // tid names another tenant than iss.
    let mismatched = idp.token().tenant(TENANT_B).claim("tid", TENANT_A).sign();
    let (status, err) = call(&l, &mismatched).await;
    assert_eq!((status, err.unwrap().0), (401, JwtErrorKind::InvalidIssuer));
    // tid is not a GUID.
    assert_eq!(call(&l, &v2(&idp, "evil")).await.0, 401);
    // no tid at all.
    let no_tid = idp.token().tenant(TENANT_B).without_claim("tid").sign();
    assert_eq!(call(&l, &no_tid).await.0, 401);
}

#[tokio::test]
async fn the_common_endpoint_works_like_organizations() {
    let idp = authority();
    let l = layer(AzureAd::common().api(API).authority_host(idp.url())).await;
    assert_eq!(call(&l, &v2(&idp, TENANT_B)).await.0, 200);
}

#[tokio::test]
async fn tenants_outside_the_allow_list_are_refused() {
    let idp = authority();
    let l = layer(
        AzureAd::multi_tenant()
            .api(API)
            .authority_host(idp.url())
            .allow_tenants([TENANT_A]),
    )
    .await;
    assert_eq!(call(&l, &v2(&idp, TENANT_A)).await.0, 200);
    let (status, err) = call(&l, &v2(&idp, TENANT_B)).await;
    assert_eq!(status, 401);
    assert!(err.unwrap().1.contains("tenant"));
}

fn claims_of(base: &str, tid: &str, v1: bool) -> Value {
    let iss = match v1 {
        true => format!("{base}/{tid}/"),
        false => format!("{base}/{tid}/v2.0"),
    };
    json!({"iss": iss, "aud": API, "tid": tid, "sub": "s", "exp": now() + 600, "iat": now()})
}

/// The kit's keys all sign for the template; this one key set, crafted, names one tenant.
#[tokio::test]
async fn a_key_bound_to_one_tenant_signs_for_that_tenant_only() {
    let key = TestKey::rsa("tenant-a-key", "RS256");
    let server = KeyServer::start();
    let base = server.origin();
    server.serve_discovery(
        "/organizations/v2.0/.well-known/openid-configuration",
        &format!("{base}/{{tenantid}}/v2.0"),
        "/organizations/discovery/v2.0/keys",
    );
    let mut jwk = key.jwk(false);
    jwk["issuer"] = json!(format!("{base}/{TENANT_A}/v2.0"));
    server.serve_json(
        "/organizations/discovery/v2.0/keys",
        &json!({ "keys": [jwk] }),
    );
    let l = layer(AzureAd::multi_tenant().api(API).authority_host(&base)).await;
    assert_eq!(
        call(&l, &key.token(&claims_of(&base, TENANT_A, false)))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&l, &key.token(&claims_of(&base, TENANT_A, true)))
            .await
            .0,
        200
    );
    let (status, err) = call(&l, &key.token(&claims_of(&base, TENANT_B, false))).await;
    assert_eq!(status, 401);
    let (kind, detail) = err.unwrap();
    assert_eq!(kind, JwtErrorKind::InvalidIssuer);
    assert!(detail.contains("signing key belongs to"), "{detail}");
    assert_eq!(
        call(&l, &key.token(&claims_of(&base, TENANT_B, true)))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn client_applications_are_checked_through_azp_and_appid() {
    let idp = authority();
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .authority_host(idp.url())
            .allow_client_apps([CLIENT]),
    )
    .await;
    assert_eq!(call(&l, &v2(&idp, TENANT_A)).await.0, 200);
    assert_eq!(call(&l, &v1(&idp, TENANT_A)).await.0, 200);
    let other = idp
        .token()
        .client_app("00000000-0000-0000-0000-000000000000")
        .sign();
    let (status, err) = call(&l, &other).await;
    assert_eq!(
        (status, err.unwrap().0),
        (403, JwtErrorKind::InsufficientScope)
    );
}

#[tokio::test]
async fn delegated_tokens_need_a_scope_and_application_tokens_a_role() {
    let idp = authority();
    let l = AzureAd::tenant(TENANT_A)
        .api(API)
        .authority_host(idp.url())
        .builder()
        .require(Requirement::scope_or_app_role(
            ["Files.Read"],
            ["Files.Read.All"],
        ))
        .build()
        .unwrap();
    assert_eq!(call(&l, &v2(&idp, TENANT_A)).await.0, 200);
    assert_eq!(call(&l, &v1(&idp, TENANT_A)).await.0, 200);
    assert_eq!(call(&l, &idp.token().sign()).await.0, 403, "neither");
    let wrong = idp.token().scopes(["Files.ReadWrite"]).sign();
    assert_eq!(call(&l, &wrong).await.0, 403);
}

#[tokio::test]
async fn audiences_are_the_client_id_and_the_app_id_uri() {
    let idp = authority();
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .app_id_uri("https://contoso.example/files")
            .authority_host(idp.url()),
    )
    .await;
    for aud in [
        API.to_owned(),
        format!("api://{API}"),
        "https://contoso.example/files".to_owned(),
    ] {
        assert_eq!(
            call(&l, &idp.token().audience(&aud).sign()).await.0,
            200,
            "{aud}"
        );
    }
    let graph = idp
        .token()
        .audience("00000003-0000-0000-c000-000000000000")
        .sign();
    let (status, err) = call(&l, &graph).await;
    assert_eq!(
        (status, err.unwrap().0),
        (401, JwtErrorKind::InvalidAudience)
    );
}

#[test]
fn the_issuer_forms_follow_the_cloud() {
    let ad = AzureAd::tenant(TENANT_A);
    assert_eq!(
        ad.v2_issuer(),
        format!("https://login.microsoftonline.com/{TENANT_A}/v2.0")
    );
    assert_eq!(
        ad.v1_issuer(),
        format!("https://sts.windows.net/{TENANT_A}/")
    );
    assert_eq!(
        ad.discovery_url(),
        format!(
            "https://login.microsoftonline.com/{TENANT_A}/v2.0/.well-known/openid-configuration"
        )
    );
    let us = AzureAd::multi_tenant().authority_host("login.microsoftonline.us");
    assert_eq!(
        us.v2_issuer(),
        "https://login.microsoftonline.us/{tenantid}/v2.0"
    );
    assert_eq!(
        us.v1_issuer(),
        "https://login.microsoftonline.us/{tenantid}/"
    );
}

#[test]
fn the_public_entra_snapshots_parse() {
    for name in ["entra-common.jwks.json", "entra-organizations.jwks.json"] {
        let path = format!("{}/tests/fixtures/entra/{name}", env!("CARGO_MANIFEST_DIR"));
        let set = KeySet::from_jwks(&std::fs::read(&path).unwrap()).unwrap();
        assert!(set.len() >= 6, "{name}: {}", set.len());
        assert!(
            set.keys().all(|k| k.algorithm().is_none()),
            "Azure's keys name no alg"
        );
    }
}
