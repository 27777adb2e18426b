//! The layer through a real axum server on 127.0.0.1, with real RSA, EC and Ed25519 signatures.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::json;
use validate_jwt::{
    ConfigError, KeySet, KeySource, RefreshFuture, RefreshReason, Requirement, StaticKeys,
    ValidateJwtLayer,
};

struct Keys {
    rs: TestKey,
    ps: TestKey,
    es256: TestKey,
    es384: TestKey,
    ed: TestKey,
}

fn keys() -> Keys {
    Keys {
        rs: TestKey::rsa("rs", "RS256"),
        ps: TestKey::rsa("ps", "PS256"),
        es256: TestKey::es256("es256"),
        es384: TestKey::es384("es384"),
        ed: TestKey::ed25519("ed"),
    }
}

fn static_keys(k: &Keys) -> StaticKeys {
    StaticKeys::new()
        .add_jwks(jwks(&[&k.rs, &k.ps, &k.es256, &k.es384, &k.ed]).to_string())
        .add_issuer(ISSUER)
}

async fn server(layer: ValidateJwtLayer) -> String {
    let app = Router::new()
        .route("/echo", get(echo).post(echo))
        .layer(layer);
    format!("http://{}/echo", serve(app).await)
}

async fn default_server(k: &Keys) -> String {
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(k))
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    server(layer).await
}

#[tokio::test]
async fn every_asymmetric_algorithm_validates_end_to_end() {
    let k = keys();
    let url = default_server(&k).await;
    for key in [&k.rs, &k.ps, &k.es256, &k.es384, &k.ed] {
        let (status, _, body) = fetch(&url, Some(&key.token(&claims()))).await;
        assert_eq!(status, 200, "{}", key.alg);
        assert_eq!(body["claims"]["sub"], "alice");
    }
}

#[tokio::test]
async fn no_token_is_401_without_error_code() {
    let k = keys();
    let url = default_server(&k).await;
    let (status, www, body) = fetch(&url, None).await;
    assert_eq!(status, 401);
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn authenticity_failures_are_invalid_token() {
    let k = keys();
    let url = default_server(&k).await;
    let mut expired = claims();
    expired["exp"] = json!(now() - 120);
    let mut future = claims();
    future["nbf"] = json!(now() + 600);
    let mut other_aud = claims();
    other_aud["aud"] = json!("00000003-0000-0000-c000-000000000000");
    let mut other_iss = claims();
    other_iss["iss"] = json!("https://issuer.test/");
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    let unknown_kid = TestKey::rsa("nobody", "RS256");
    let tampered = {
        let t = k.rs.token(&claims());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c["sub"] = json!("mallory");
        parts[1] = b64(c.to_string());
        parts.join(".")
    };
    let cases = [
        ("expired", k.rs.token(&expired), "the token has expired"),
        (
            "not yet valid",
            k.es256.token(&future),
            "the token is not valid yet",
        ),
        (
            "wrong audience",
            k.ed.token(&other_aud),
            "the token's audience is not accepted",
        ),
        (
            "wrong issuer",
            k.rs.token(&other_iss),
            "the token's issuer is not accepted",
        ),
        (
            "no exp",
            k.rs.token(&no_exp),
            "the token's claims are invalid",
        ),
        (
            "no aud",
            k.rs.token(&no_aud),
            "the token's audience is not accepted",
        ),
        (
            "unknown kid",
            unknown_kid.token(&claims()),
            "the token's signing key is unknown",
        ),
        ("tampered", tampered, "the token's signature is invalid"),
        (
            "garbage",
            "not-a-token".to_owned(),
            "the token is malformed",
        ),
    ];
    for (name, token, desc) in cases {
        let (status, www, body) = fetch(&url, Some(&token)).await;
        assert_eq!(status, 401, "{name}");
        assert_eq!(
            www.unwrap(),
            format!(r#"Bearer error="invalid_token", error_description="{desc}""#),
            "{name}"
        );
        assert_eq!(body["error"], "invalid_token", "{name}");
        assert!(
            !body.to_string().contains(&token),
            "{name}: the body echoes the token"
        );
    }
}

#[tokio::test]
async fn keys_are_bound_to_their_algorithm() {
    let k = keys();
    let url = default_server(&k).await;
    // The RS256 key presented as PS256 (its JWK names RS256).
    let t = k.rs.sign(&json!({"alg":"PS256","kid":"rs"}), &claims());
    let (status, _, _) = fetch(&url, Some(&t)).await;
    assert_eq!(status, 401);
    // HS256 is not allowed without a configured secret.
    let t = k.rs.sign(&json!({"alg":"RS256","kid":"rs"}), &claims());
    let hs = t.replacen(
        &b64(json!({"alg":"RS256","kid":"rs"}).to_string()),
        &b64(json!({"alg":"HS256","kid":"rs"}).to_string()),
        1,
    );
    let (status, www, _) = fetch(&url, Some(&hs)).await;
    assert_eq!(status, 401);
    assert!(www.unwrap().contains("algorithm is not accepted"));
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .require_all_scopes(["Echo.Write"])
        .with_realm("echo")
        .build()
        .unwrap();
    let url = server(layer).await;
    let (status, www, body) = fetch(&url, Some(&k.rs.token(&claims()))).await;
    assert_eq!(status, 403);
    assert_eq!(
        www.unwrap(),
        r#"Bearer realm="echo", error="insufficient_scope", error_description="missing scope Echo.Write", scope="Echo.Write""#
    );
    assert_eq!(body["error"], "insufficient_scope");
    let mut c = claims();
    c["scp"] = json!("Echo.Read Echo.Write");
    let (status, _, _) = fetch(&url, Some(&k.rs.token(&c))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn anonymous_mode_passes_requests_without_tokens_but_not_bad_tokens() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .allow_anonymous()
        .build()
        .unwrap();
    let url = server(layer).await;
    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["claims"], serde_json::Value::Null);
    let (status, _, _) = fetch(&url, Some("a.b.c")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn cors_preflight_can_skip_validation() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .skip_cors_preflight()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/echo", get(echo).options(|| async { "preflight" }))
        .layer(layer);
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let r = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/echo"))
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .request(reqwest::Method::OPTIONS, format!("http://{addr}/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn token_in_two_places_is_invalid_request() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .add_query_parameter("access_token")
        .build()
        .unwrap();
    let url = server(layer).await;
    let t = k.rs.token(&claims());
    let (status, _, body) = fetch(&format!("{url}?access_token={t}"), Some(&t)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    let (status, _, _) = fetch(&format!("{url}?access_token={t}"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn apim_failure_overrides_change_401_answers() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .with_failed_status(403)
        .with_failed_message("Unauthorized. Access token is missing or invalid.")
        .build()
        .unwrap();
    let url = server(layer).await;
    let (status, _, body) = fetch(&url, Some("a.b.c")).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error_description"],
        "Unauthorized. Access token is missing or invalid."
    );
}

/// Counts `current()` calls: one per signature verification attempt.
struct Counting(Arc<KeySet>, Arc<AtomicUsize>);

impl KeySource for Counting {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        Some(self.0.clone())
    }
    fn refresh(&self, _: RefreshReason) -> RefreshFuture {
        let s = self.0.clone();
        Box::pin(async move { Ok(s) })
    }
    fn issuers(&self) -> Option<Vec<String>> {
        Some(vec![ISSUER.into()])
    }
}

#[tokio::test]
async fn per_route_requirements_reuse_the_verified_claims() {
    let k = keys();
    let lookups = Arc::new(AtomicUsize::new(0));
    let set = static_keys(&k).key_set().unwrap();
    let jwt = ValidateJwtLayer::builder()
        .add_key_source(Counting(set, lookups.clone()))
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/files",
            get(echo)
                .route_layer(
                    jwt.for_route(Requirement::all_scopes(["Files.Read"]))
                        .unwrap(),
                )
                .merge(
                    axum::routing::post(echo).route_layer(
                        jwt.for_route(Requirement::all_scopes(["Files.Write"]))
                            .unwrap(),
                    ),
                ),
        )
        .layer(jwt);
    let addr = serve(app).await;
    let url = format!("http://{addr}/files");
    let mut c = claims();
    c["scp"] = json!("Files.Read");
    let token = k.es256.token(&c);
    let (status, _, _) = fetch(&url, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        1,
        "one verification for GET"
    );
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"scope="Files.Write""#)
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        2,
        "one verification for POST"
    );
}

#[test]
fn builder_refuses_incomplete_configurations() {
    let k = keys();
    let e = ValidateJwtLayer::builder()
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::NoKeySource);
    let e = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::NoAudienceDecision);
    let e = ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_jwk(k.rs.jwk(true).to_string()))
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::NoIssuerDecision);
    let e = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .add_algorithm(validate_jwt::Algorithm::HS256)
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::HmacWithoutSecret("HS256"));
    let e = ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_pem(None, "junk").add_issuer(ISSUER))
        .add_audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::InvalidKey(_)));
    let e = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .require(Requirement::all_scopes(Vec::<String>::new()))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::InvalidRequirement(_)));
    let e = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .with_failed_status(500)
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::InvalidFailureAnswer(_)));
}

#[test]
fn services_are_clone_send_sync() {
    fn assert_all<T: Clone + Send + Sync + 'static>() {}
    assert_all::<ValidateJwtLayer>();
    assert_all::<validate_jwt::ValidateJwt<Router>>();
    assert_all::<validate_jwt::Claims>();
    assert_all::<validate_jwt::JwtError>();
}

#[tokio::test]
async fn a_key_from_issuer_a_never_validates_a_token_claiming_issuer_b() {
    let a = TestKey::es256("a");
    let b = TestKey::es256("b");
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwk(a.jwk(true).to_string())
                .add_issuer("https://a.test"),
        )
        .add_keys(
            StaticKeys::new()
                .add_jwk(b.jwk(true).to_string())
                .add_issuer("https://b.test"),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let url = server(layer).await;
    let mut claims_a = claims();
    claims_a["iss"] = json!("https://a.test");
    let mut claims_b = claims();
    claims_b["iss"] = json!("https://b.test");
    assert_eq!(fetch(&url, Some(&a.token(&claims_a))).await.0, 200);
    assert_eq!(fetch(&url, Some(&b.token(&claims_b))).await.0, 200);
    let (status, www, _) = fetch(&url, Some(&a.token(&claims_b))).await;
    assert_eq!(status, 401);
    assert!(www.unwrap().contains("issuer is not accepted"));
}

#[tokio::test]
async fn a_custom_scheme_replaces_bearer() {
    let k = keys();
    let layer = ValidateJwtLayer::builder()
        .add_keys(static_keys(&k))
        .add_audience(AUDIENCE)
        .with_scheme("JWT")
        .build()
        .unwrap();
    let url = server(layer).await;
    let token = k.rs.token(&claims());
    let r = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("jwt {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        fetch(&url, Some(&token)).await.0,
        401,
        "Bearer is now another scheme"
    );
}
