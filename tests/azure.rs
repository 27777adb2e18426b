//! Azure AD (Entra ID): a local stand-in serving Azure-shaped discovery documents and JWKS
//! (tenant, `organizations` and `common` endpoints; per-key `issuer`; `x5t` + `kid`), tokens of
//! both versions signed with our own keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;
use validate_jwt::{AzureAd, JwtError, JwtErrorKind, KeySet, Requirement, ValidateJwtLayer};

const TENANT_A: &str = "11111111-1111-1111-1111-111111111111";
const TENANT_B: &str = "22222222-2222-2222-2222-222222222222";
const API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const CLIENT: &str = "9b7e2d4a-1c3f-4e5d-8a6b-0f1e2d3c4b5a";

struct Idp {
    base: String,
    common_key: TestKey,
    tenant_a_key: TestKey,
}

async fn idp() -> Idp {
    let common_key = TestKey::rsa("common-key", "RS256");
    let tenant_a_key = TestKey::rsa("tenant-a-key", "RS256");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut k1 = common_key.jwk(false);
    k1["x5t"] = json!("x5t-common");
    k1["issuer"] = json!(format!("{base}/{{tenantid}}/v2.0"));
    let mut k2 = tenant_a_key.jwk(false);
    k2["x5t"] = json!("x5t-a");
    k2["issuer"] = json!(format!("{base}/{TENANT_A}/v2.0"));
    let jwks = json!({ "keys": [k1, k2] });
    let b = base.clone();
    let app = Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(move |Path(tenant): Path<String>| {
                let b = b.clone();
                async move {
                    let issuer_tenant = if tenant == "organizations" || tenant == "common" {
                        "{tenantid}".to_owned()
                    } else {
                        tenant.clone()
                    };
                    axum::Json(json!({
                        "issuer": format!("{b}/{issuer_tenant}/v2.0"),
                        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
                        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
                    }))
                }
            }),
        )
        .route(
            "/{tenant}/discovery/v2.0/keys",
            get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        base,
        common_key,
        tenant_a_key,
    }
}

fn v2_claims(base: &str, tid: &str) -> Value {
    json!({"iss": format!("{base}/{tid}/v2.0"), "aud": API, "tid": tid, "azp": CLIENT, "ver": "2.0",
           "scp": "Files.Read", "oid": "o", "sub": "s", "exp": now() + 600, "iat": now()})
}

fn v1_claims(base: &str, tid: &str) -> Value {
    json!({"iss": format!("{base}/{tid}/"), "aud": format!("api://{API}"), "tid": tid, "appid": CLIENT,
           "ver": "1.0", "roles": ["Files.Read.All"], "sub": "s", "exp": now() + 600, "iat": now()})
}

fn token(key: &TestKey, claims: &Value) -> String {
    key.sign(
        &json!({"alg": "RS256", "typ": "JWT", "kid": key.kid, "x5t": "x"}),
        claims,
    )
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
    let idp = idp().await;
    let l = layer(AzureAd::tenant(TENANT_A).api(API).authority_host(&idp.base)).await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&l, &token(&idp.common_key, &v1_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    let (status, err) = call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_B))).await;
    assert_eq!(status, 401);
    assert_eq!(err.unwrap().0, JwtErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn a_v2_only_api_refuses_v1_tokens_and_says_why() {
    let idp = idp().await;
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .authority_host(&idp.base)
            .v2_only(),
    )
    .await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    let (status, err) = call(&l, &token(&idp.common_key, &v1_claims(&idp.base, TENANT_A))).await;
    assert_eq!(status, 401);
    let (kind, detail) = err.unwrap();
    assert_eq!(kind, JwtErrorKind::InvalidIssuer);
    assert!(detail.contains("accessTokenAcceptedVersion"), "{detail}");
}

#[tokio::test]
async fn the_tenantid_template_is_resolved_from_tid() {
    let idp = idp().await;
    let l = layer(AzureAd::multi_tenant().api(API).authority_host(&idp.base)).await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_B)))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&l, &token(&idp.common_key, &v1_claims(&idp.base, TENANT_B)))
            .await
            .0,
        200
    );
    // tid names another tenant than iss.
    let mut c = v2_claims(&idp.base, TENANT_B);
    c["tid"] = json!(TENANT_A);
    let (status, err) = call(&l, &token(&idp.common_key, &c)).await;
    assert_eq!((status, err.unwrap().0), (401, JwtErrorKind::InvalidIssuer));
    // tid is not a GUID.
    let mut c = v2_claims(&idp.base, "evil");
    c["tid"] = json!("evil");
    assert_eq!(call(&l, &token(&idp.common_key, &c)).await.0, 401);
    // no tid at all.
    let mut c = v2_claims(&idp.base, TENANT_B);
    c.as_object_mut().unwrap().remove("tid");
    assert_eq!(call(&l, &token(&idp.common_key, &c)).await.0, 401);
}

#[tokio::test]
async fn the_common_endpoint_works_like_organizations() {
    let idp = idp().await;
    let l = layer(AzureAd::common().api(API).authority_host(&idp.base)).await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_B)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn tenants_outside_the_allow_list_are_refused() {
    let idp = idp().await;
    let l = layer(
        AzureAd::multi_tenant()
            .api(API)
            .authority_host(&idp.base)
            .allow_tenants([TENANT_A]),
    )
    .await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    let (status, err) = call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_B))).await;
    assert_eq!(status, 401);
    assert!(err.unwrap().1.contains("tenant"));
}

#[tokio::test]
async fn a_key_bound_to_one_tenant_signs_for_that_tenant_only() {
    let idp = idp().await;
    let l = layer(AzureAd::multi_tenant().api(API).authority_host(&idp.base)).await;
    assert_eq!(
        call(
            &l,
            &token(&idp.tenant_a_key, &v2_claims(&idp.base, TENANT_A))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &l,
            &token(&idp.tenant_a_key, &v1_claims(&idp.base, TENANT_A))
        )
        .await
        .0,
        200
    );
    let (status, err) = call(
        &l,
        &token(&idp.tenant_a_key, &v2_claims(&idp.base, TENANT_B)),
    )
    .await;
    assert_eq!(status, 401);
    let (kind, detail) = err.unwrap();
    assert_eq!(kind, JwtErrorKind::InvalidIssuer);
    assert!(detail.contains("signing key belongs to"), "{detail}");
    assert_eq!(
        call(
            &l,
            &token(&idp.tenant_a_key, &v1_claims(&idp.base, TENANT_B))
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn client_applications_are_checked_through_azp_and_appid() {
    let idp = idp().await;
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .authority_host(&idp.base)
            .allow_client_apps([CLIENT]),
    )
    .await;
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&l, &token(&idp.common_key, &v1_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    let mut c = v2_claims(&idp.base, TENANT_A);
    c["azp"] = json!("00000000-0000-0000-0000-000000000000");
    let (status, err) = call(&l, &token(&idp.common_key, &c)).await;
    assert_eq!(
        (status, err.unwrap().0),
        (403, JwtErrorKind::InsufficientScope)
    );
}

#[tokio::test]
async fn delegated_tokens_need_a_scope_and_application_tokens_a_role() {
    let idp = idp().await;
    let l = AzureAd::tenant(TENANT_A)
        .api(API)
        .authority_host(&idp.base)
        .builder()
        .require(Requirement::scope_or_app_role(
            ["Files.Read"],
            ["Files.Read.All"],
        ))
        .build()
        .unwrap();
    assert_eq!(
        call(&l, &token(&idp.common_key, &v2_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&l, &token(&idp.common_key, &v1_claims(&idp.base, TENANT_A)))
            .await
            .0,
        200
    );
    let mut neither = v2_claims(&idp.base, TENANT_A);
    neither.as_object_mut().unwrap().remove("scp");
    assert_eq!(call(&l, &token(&idp.common_key, &neither)).await.0, 403);
    let mut wrong = v2_claims(&idp.base, TENANT_A);
    wrong["scp"] = json!("Files.ReadWrite");
    assert_eq!(call(&l, &token(&idp.common_key, &wrong)).await.0, 403);
}

#[tokio::test]
async fn audiences_are_the_client_id_and_the_app_id_uri() {
    let idp = idp().await;
    let l = layer(
        AzureAd::tenant(TENANT_A)
            .api(API)
            .app_id_uri("https://contoso.example/files")
            .authority_host(&idp.base),
    )
    .await;
    for aud in [
        API.to_owned(),
        format!("api://{API}"),
        "https://contoso.example/files".to_owned(),
    ] {
        let mut c = v2_claims(&idp.base, TENANT_A);
        c["aud"] = json!(aud);
        assert_eq!(call(&l, &token(&idp.common_key, &c)).await.0, 200, "{aud}");
    }
    let mut graph = v2_claims(&idp.base, TENANT_A);
    graph["aud"] = json!("00000003-0000-0000-c000-000000000000");
    let (status, err) = call(&l, &token(&idp.common_key, &graph)).await;
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
