//! Claims to upstream headers: a real backend on 127.0.0.1 behind the layer sees the verified
//! claims as headers, and never a client-supplied header of those names — on accepted, refused,
//! anonymous, skipped and slow-path requests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use common::*;
use http::HeaderMap;
use serde_json::{Value, json};
use tower::ServiceExt;
use validate_jwt::{
    ClaimHeaderEncoding, ConfigError, JwtError, JwtErrorKind, Requirement, StaticKeys,
    ValidateJwtBuilder, ValidateJwtLayer,
};

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

/// Every header a client might try to forge.
const FORGED: &[(&str, &str)] = &[
    ("x-user", "admin"),
    ("x-roles", "Admin,Root"),
    ("x-realm-roles", "superuser"),
    ("x-tenant", "forged"),
    ("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9"),
];

fn key() -> TestKey {
    TestKey::hmac("k1", "HS256", SECRET)
}

fn builder() -> ValidateJwtBuilder {
    ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_hmac_secret(Some("k1"), SECRET))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .add_claim_header("sub", "x-user")
        .add_claim_header("roles", "x-roles")
        .add_claim_header("/realm_access/roles", "x-realm-roles")
        .add_claim_header("tid", "x-tenant")
        .with_payload_header("x-jwt-payload")
}

/// The backend: answers with every request header it received (name → values), counting calls.
struct Backend {
    url: String,
    hits: Arc<AtomicUsize>,
}

async fn backend(layer: ValidateJwtLayer) -> Backend {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(headers_json(&headers)) }
            }),
        )
        .route(
            "/health",
            get(|headers: HeaderMap| async move { axum::Json(headers_json(&headers)) }),
        )
        .layer(layer);
    Backend {
        url: format!("http://{}", serve(app).await),
        hits,
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|v| Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        out.insert(name.as_str().to_owned(), Value::from(values));
    }
    Value::Object(out)
}

/// A GET with the forged headers (each twice) and an optional bearer token.
async fn get_forged(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in FORGED {
        request = request.header(*name, *value).header(*name, *value);
    }
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_no_forged_header(seen: &Value) {
    for (name, value) in FORGED {
        let values = seen[*name].as_array().cloned().unwrap_or_default();
        assert!(
            !values.iter().any(|v| v == value),
            "forged {name}: {value} reached the backend: {seen}"
        );
    }
}

#[tokio::test]
async fn the_backend_sees_claims_as_headers_and_never_the_forged_ones() {
    let backend = backend(builder().build().unwrap()).await;
    let mut claims = claims();
    claims["roles"] = json!(["Files.Read", "Files.Write"]);
    claims["realm_access"] = json!({"roles": ["viewer", "editor"]});
    claims["tid"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let token = key().token(&claims);
    let (status, seen) = get_forged(&backend.url, Some(&token)).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["x-user"], json!(["alice"]));
    assert_eq!(seen["x-roles"], json!(["Files.Read,Files.Write"]));
    assert_eq!(seen["x-realm-roles"], json!(["viewer,editor"]));
    assert_eq!(
        seen["x-tenant"],
        json!(["72f988bf-86f1-41af-91ab-2d7cd011db47"])
    );
    // The whole payload, base64url, exactly the bytes the token carried.
    let payload_b64 = token.split('.').nth(1).unwrap();
    assert_eq!(seen["x-jwt-payload"], json!([payload_b64]));
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(seen["x-jwt-payload"][0].as_str().unwrap())
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&decoded).unwrap(), claims);
}

#[tokio::test]
async fn a_claim_the_token_lacks_leaves_its_header_absent_not_forged() {
    let backend = backend(builder().build().unwrap()).await;
    // No roles, no realm_access, no tid: those headers must be absent, forged ones removed.
    let (status, seen) = get_forged(&backend.url, Some(&key().token(&claims()))).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["x-user"], json!(["alice"]));
    for absent in ["x-roles", "x-realm-roles", "x-tenant"] {
        assert_eq!(seen[absent], Value::Null, "{absent}: {seen}");
    }
    assert_no_forged_header(&seen);
}

#[tokio::test]
async fn refused_requests_never_reach_the_backend() {
    let backend = backend(builder().build().unwrap()).await;
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    for token in [
        None,
        Some(key().token(&expired)),
        Some("not-a-token".to_owned()),
    ] {
        let (status, _) = get_forged(&backend.url, token.as_deref()).await;
        assert_eq!(status, 401, "{token:?}");
    }
    assert_eq!(backend.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn anonymous_requests_reach_the_backend_without_the_forged_headers() {
    let backend = backend(builder().allow_anonymous().build().unwrap()).await;
    let (status, seen) = get_forged(&backend.url, None).await;
    assert_eq!(status, 200, "{seen}");
    assert_no_forged_header(&seen);
    for (name, _) in FORGED {
        assert_eq!(seen[*name], Value::Null, "{name}: {seen}");
    }
    // A token that is present is still validated, and its claims forwarded.
    let (status, seen) = get_forged(&backend.url, Some(&key().token(&claims()))).await;
    assert_eq!(status, 200);
    assert_eq!(seen["x-user"], json!(["alice"]));
    assert_no_forged_header(&seen);
}

#[tokio::test]
async fn skipped_requests_reach_the_backend_without_the_forged_headers() {
    let layer = builder()
        .skip_if(|_, uri, _| uri.path() == "/health")
        .build()
        .unwrap();
    let backend = backend(layer).await;
    let (status, seen) = get_forged(&format!("{}/health", backend.url), None).await;
    assert_eq!(status, 200, "{seen}");
    for (name, _) in FORGED {
        assert_eq!(seen[*name], Value::Null, "{name}: {seen}");
    }
}

#[tokio::test]
async fn the_slow_path_forwards_and_strips_too() {
    // An asynchronous requirement sends every request through the pending check.
    let layer = builder()
        .require(Requirement::async_predicate("allowed", |_| async {
            Ok(())
        }))
        .build()
        .unwrap();
    let backend = backend(layer).await;
    let mut claims = claims();
    claims["roles"] = json!(["Files.Read"]);
    let (status, seen) = get_forged(&backend.url, Some(&key().token(&claims))).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["x-user"], json!(["alice"]));
    assert_eq!(seen["x-roles"], json!(["Files.Read"]));
    assert_eq!(seen["x-realm-roles"], Value::Null);
    assert_no_forged_header(&seen);
}

#[tokio::test]
async fn a_claim_with_a_control_character_is_refused_not_forwarded() {
    let backend = backend(builder().build().unwrap()).await;
    let mut claims = claims();
    claims["sub"] = json!("alice\r\nx-admin: true");
    let (status, body) = get_forged(&backend.url, Some(&key().token(&claims))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(backend.hits.load(Ordering::SeqCst), 0);

    // The same request through `oneshot`, to read the error's kind.
    let app = Router::new()
        .route("/", get(|| async { "unreachable" }))
        .layer(builder().build().unwrap());
    let request = http::Request::get("/")
        .header("authorization", format!("Bearer {}", key().token(&claims)))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let err = response.extensions().get::<JwtError>().unwrap();
    assert_eq!(err.kind(), JwtErrorKind::InvalidClaims);
    assert!(err.detail().unwrap().contains("x-user"), "{err}");
}

#[tokio::test]
async fn percent_encoding_and_the_separator_apply_to_every_claim() {
    let layer = builder()
        .with_claim_header_separator(" ")
        .with_claim_header_encoding(ClaimHeaderEncoding::Percent)
        .build()
        .unwrap();
    let backend = backend(layer).await;
    let mut claims = claims();
    claims["sub"] = json!("José\nDoe");
    claims["roles"] = json!(["a", "b"]);
    let (status, seen) = get_forged(&backend.url, Some(&key().token(&claims))).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["x-user"], json!(["Jos%C3%A9%0ADoe"]));
    assert_eq!(seen["x-roles"], json!(["a%20b"]));
}

#[tokio::test]
async fn header_names_are_checked_at_build() {
    for (claim, header) in [("sub", "not a header"), ("sub", "authorization")] {
        let err = builder()
            .add_claim_header(claim, header)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::InvalidSetting {
                    setting: "add_claim_header",
                    ..
                }
            ),
            "{header}: {err}"
        );
    }
    // The token's own header, when it is not `Authorization`, is refused too.
    let err = builder()
        .with_header_name("x-token")
        .add_claim_header("oid", "X-Token")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("X-Token"), "{err}");
    // Two claims into one header.
    let err = builder()
        .add_claim_header("oid", "x-user")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
}
