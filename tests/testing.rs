//! The test kit (`validate_jwt::testing`) against the real layer: its tokens are accepted by the
//! layer its `layer_builder()` configures, each bad token gets the answer documented for it,
//! rotation is picked up on first use, and each fault gives the documented provider behaviour
//! (stale keys while keys are loaded, 503 at cold start).
//!
//! Time: the issuer's server keeps real time on its own thread. Fetches are real HTTP, so the
//! test clock runs normally whenever one may be in flight and is paused only inside the kit's
//! `skip_time`, to pass a refresh interval or a retry's backoff without waiting. Hangs are cut
//! by a short fetch timeout, in real time. Nothing sleeps.
#![cfg(feature = "test-util")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use tower::ServiceExt;
use validate_jwt::testing::{BadToken, Fault, SigningKey, TestIssuer, skip_time};
use validate_jwt::{
    Algorithm, AzureAd, Claims, JwtError, JwtErrorKind, KeyErrorKind, KeySource, RemoteJwks,
    Requirement, StaticKeys, ValidateJwtLayer,
};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT: &str = "22222222-2222-2222-2222-222222222222";
const API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";

/// What the layer answered a `GET /` with this bearer token.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    retry_after: bool,
    kind: Option<JwtErrorKind>,
    /// The handler's answer: the token's subject.
    body: String,
}

async fn call(layer: &ValidateJwtLayer, token: &str) -> Answer {
    let app = Router::new()
        .route(
            "/",
            get(|claims: axum::Extension<Claims>| async move {
                claims.subject().unwrap_or_default().to_owned()
            }),
        )
        .layer(layer.clone());
    let request = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (www_authenticate, retry_after) = (
        header(http::header::WWW_AUTHENTICATE),
        header(http::header::RETRY_AFTER).is_some(),
    );
    let status = response.status();
    let kind = response.extensions().get::<JwtError>().map(JwtError::kind);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    Answer {
        status,
        www_authenticate,
        retry_after,
        kind,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[track_caller]
fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

#[track_caller]
fn assert_refused(answer: &Answer, kind: JwtErrorKind) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(answer.kind, Some(kind), "{answer:?}");
    let challenge = answer.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{answer:?}"
    );
}

// ---- tokens the layer accepts ------------------------------------------------------------------

#[tokio::test]
async fn its_tokens_of_every_algorithm_pass_the_layer_it_configures() {
    let issuer = TestIssuer::builder().with_hs256().start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
        Algorithm::HS256,
    ] {
        let answer = call(&layer, &issuer.token().alg(alg).subject("alice").sign()).await;
        assert_ok(&answer);
        assert_eq!(answer.body, "alice", "{alg}");
    }
    // One discovery and one key set fetch served them all.
    assert_eq!(
        (issuer.discovery_requests(), issuer.jwks_requests()),
        (1, 1)
    );
}

#[tokio::test]
async fn the_default_token_carries_the_issuer_the_audience_and_an_hour() {
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    let claims = layer.validate_token(&issuer.token().sign()).await.unwrap();
    assert_eq!(claims.issuer(), Some(issuer.url()));
    assert_eq!(claims.audiences().collect::<Vec<_>>(), [issuer.audience()]);
    assert_eq!(claims.client_id(), Some(issuer.client_app()));
    let lifetime = claims.expires_at().unwrap() - claims.issued_at().unwrap();
    assert_eq!(lifetime, 3600.0);
    assert_eq!(claims.scopes().count(), 0);
}

#[tokio::test]
async fn scopes_roles_and_claims_reach_the_requirements() {
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer
        .layer_builder()
        .require_all_scopes(["Files.Read"])
        .require_all_roles(["Reader"])
        .require(Requirement::claim("department").any_of(["R&D"]))
        .build()
        .unwrap();
    let full = issuer
        .token()
        .scopes(["Files.Read", "Files.Write"])
        .roles(["Reader"])
        .claim("department", "R&D");
    assert_ok(&call(&layer, &full.sign()).await);
    for lacking in [
        full.clone().scopes(["Files.Write"]),
        full.clone().roles(["Writer"]),
        full.clone().without_claim("department"),
    ] {
        let answer = call(&layer, &lacking.sign()).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
        assert_eq!(answer.kind, Some(JwtErrorKind::InsufficientScope));
    }
}

#[tokio::test]
async fn header_and_time_settings_are_what_the_layer_sees() {
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    let token = issuer.token();
    assert_ok(&call(&layer, &token.clone().typ("JWT").sign()).await);
    assert_ok(
        &call(
            &layer,
            &token.clone().expires_in(Duration::from_secs(5)).sign(),
        )
        .await,
    );
    let answer = call(&layer, &token.clone().typ("id_token+jwt").sign()).await;
    assert_refused(&answer, JwtErrorKind::InvalidHeader);
    let answer = call(&layer, &token.clone().kid("no-such-key").sign()).await;
    assert_refused(&answer, JwtErrorKind::UnknownKey);
    let later = token.clone().not_before(Duration::from_secs(600)).sign();
    assert_refused(&call(&layer, &later).await, JwtErrorKind::NotYetValid);
    let endless = token.clone().without_claim("exp").sign();
    assert_refused(&call(&layer, &endless).await, JwtErrorKind::InvalidClaims);
    // An algorithm the issuer publishes no key for is signed by a key nobody knows.
    let rs384 = token.clone().alg(Algorithm::RS384).sign();
    assert_refused(&call(&layer, &rs384).await, JwtErrorKind::UnknownKey);
    // HS256 without `with_hs256`: the layer has no secret, so it allows no HMAC algorithm.
    let hs256 = token.alg(Algorithm::HS256).sign();
    assert_refused(
        &call(&layer, &hs256).await,
        JwtErrorKind::UnsupportedAlgorithm,
    );
}

#[tokio::test]
async fn fewer_algorithms_mean_fewer_published_keys() {
    let issuer = TestIssuer::builder()
        .with_algorithms([Algorithm::ES256])
        .with_audience("api://files")
        .start()
        .unwrap();
    assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 1);
    assert!(issuer.signing_key(Algorithm::RS256).is_none());
    let layer = issuer.layer_builder().build().unwrap();
    // Tokens default to the issuer's first algorithm, for its audience.
    let token = issuer.token().sign();
    assert_eq!(header(&token)["alg"], "ES256");
    assert_ok(&call(&layer, &token).await);
}

/// A token's header.
fn header(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let segment = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn a_signing_key_on_its_own_works_with_static_keys() {
    let key = SigningKey::generate(Algorithm::PS256).with_kid("static");
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwk(key.jwk().to_string())
                .add_issuer("https://issuer.example"),
        )
        .add_audience("api://files")
        .build()
        .unwrap();
    let claims = serde_json::json!({"iss": "https://issuer.example", "aud": "api://files",
        "sub": "alice", "exp": 4_102_444_800u64});
    let token = key
        .sign(
            &serde_json::json!({"alg": "PS256", "kid": "static"}),
            &claims,
        )
        .unwrap();
    assert_eq!(
        layer.validate_token(&token).await.unwrap().subject(),
        Some("alice")
    );
    // A key signs only the algorithms of its type.
    assert!(
        key.sign(&serde_json::json!({"alg": "ES256"}), &claims)
            .is_none()
    );
    assert!(
        key.sign(&serde_json::json!({"alg": "none"}), &claims)
            .is_none()
    );
}

#[test]
fn an_issuer_works_outside_any_runtime_and_stops_when_dropped() {
    let issuer = TestIssuer::start().unwrap();
    let url = issuer.discovery_url();
    assert!(issuer.token().sign().split('.').all(|s| !s.is_empty()));
    drop(issuer);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(reqwest::get(&url))
        .expect_err("the server stopped");
    assert!(err.is_connect(), "{err}");
}

// ---- bad tokens --------------------------------------------------------------------------------

#[tokio::test]
async fn each_bad_token_gets_its_documented_answer() {
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer
        .layer_builder()
        .require_all_scopes(["Files.Read"])
        .build()
        .unwrap();
    let token = issuer.token().scopes(["Files.Read"]);
    // Whatever the subject (a tampered payload changes it).
    for token in [token.clone(), token.subject("admin")] {
        assert_ok(&call(&layer, &token.sign()).await);
        for &bad in BadToken::ALL {
            let answer = call(&layer, &token.sign_bad(bad)).await;
            assert_eq!(answer.status, bad.status(), "{bad:?}: {answer:?}");
            assert_refused(&answer, bad.kind());
        }
    }
}

#[tokio::test]
async fn bad_tokens_of_every_algorithm_and_shape_are_refused_alike() {
    let issuer = TestIssuer::builder().with_hs256().start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::HS256] {
        for &bad in BadToken::ALL {
            let answer = call(&layer, &issuer.token().alg(alg).sign_bad(bad)).await;
            assert_refused(&answer, bad.kind());
        }
    }
    let azure = TestIssuer::azure_ad(TENANT, API).start().unwrap();
    let layer = azure.layer_builder().build().unwrap();
    for v1 in [false, true] {
        for &bad in BadToken::ALL {
            let mut token = azure.token();
            if v1 {
                token = token.azure_v1();
            }
            assert_refused(&call(&layer, &token.sign_bad(bad)).await, bad.kind());
        }
    }
}

// ---- Azure AD ----------------------------------------------------------------------------------

#[tokio::test]
async fn azure_tokens_of_both_versions_pass_a_single_tenant_configuration() {
    let issuer = TestIssuer::azure_ad(TENANT, API).start().unwrap();
    // Delegated tokens need the scope, application tokens the role.
    let rule = Requirement::scope_or_app_role(["Files.Read"], ["Files.Read.All"]);
    let ad = AzureAd::tenant(TENANT)
        .api(API)
        .authority_host(issuer.url());
    let ad = ad.allow_client_apps([issuer.client_app()]);
    let layer = ad.builder().require(rule).build().unwrap();
    let v2 = issuer.token().scopes(["Files.Read", "User.Read"]).sign();
    let claims = layer.validate_token(&v2).await.unwrap();
    assert_eq!(
        claims.issuer(),
        Some(format!("{}/{TENANT}/v2.0", issuer.url()).as_str())
    );
    assert_eq!(claims.tenant_id(), Some(TENANT));
    assert_eq!(claims.client_id(), Some(issuer.client_app()));
    assert_eq!(
        claims.get("scp"),
        Some(&serde_json::json!("Files.Read User.Read"))
    );
    assert_eq!(claims.get("ver"), Some(&serde_json::json!("2.0")));

    let v1 = issuer.token().azure_v1().roles(["Files.Read.All"]).sign();
    let claims = layer.validate_token(&v1).await.unwrap();
    assert_eq!(
        claims.issuer(),
        Some(format!("{}/{TENANT}/", issuer.url()).as_str())
    );
    assert_eq!(
        claims.get("appid"),
        Some(&serde_json::json!(issuer.client_app()))
    );
    assert_eq!(
        claims.audiences().collect::<Vec<_>>(),
        [format!("api://{API}")]
    );
    assert_eq!(claims.roles().collect::<Vec<_>>(), ["Files.Read.All"]);

    // Another client application, another tenant: refused.
    let stranger = issuer
        .token()
        .scopes(["Files.Read"])
        .client_app(OTHER_TENANT);
    let answer = call(&layer, &stranger.sign()).await;
    assert_eq!(answer.kind, Some(JwtErrorKind::InsufficientScope));
    let elsewhere = issuer.token().scopes(["Files.Read"]).tenant(OTHER_TENANT);
    assert_refused(
        &call(&layer, &elsewhere.sign()).await,
        JwtErrorKind::InvalidIssuer,
    );
}

#[tokio::test]
async fn a_v2_only_configuration_refuses_the_v1_form() {
    let issuer = TestIssuer::azure_ad(TENANT, API).start().unwrap();
    let layer = AzureAd::tenant(TENANT)
        .api(API)
        .authority_host(issuer.url())
        .v2_only()
        .builder()
        .build()
        .unwrap();
    assert_ok(&call(&layer, &issuer.token().sign()).await);
    let answer = call(&layer, &issuer.token().azure_v1().sign()).await;
    assert_refused(&answer, JwtErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn a_multi_tenant_issuer_serves_the_tenantid_template() {
    let issuer = TestIssuer::azure_ad_multi_tenant(TENANT, API)
        .start()
        .unwrap();
    assert!(issuer.discovery_url().contains("/organizations/"));
    let layer = issuer.layer_builder().build().unwrap();
    for tenant in [TENANT, OTHER_TENANT] {
        for v1 in [false, true] {
            let mut token = issuer.token().tenant(tenant);
            if v1 {
                token = token.azure_v1();
            }
            let claims = layer.validate_token(&token.sign()).await.unwrap();
            assert_eq!(claims.tenant_id(), Some(tenant));
        }
    }
    // The template is resolved with the token's own `tid`, and matched exactly.
    let mismatched = issuer.token().tenant(OTHER_TENANT).claim("tid", TENANT);
    assert_refused(
        &call(&layer, &mismatched.sign()).await,
        JwtErrorKind::InvalidIssuer,
    );

    // The same authority, through an allow-list and the `common` endpoint.
    let allowed = AzureAd::common()
        .api(API)
        .authority_host(issuer.url())
        .allow_tenants([TENANT])
        .builder()
        .build()
        .unwrap();
    assert_ok(&call(&allowed, &issuer.token().sign()).await);
    let other = issuer.token().tenant(OTHER_TENANT).sign();
    assert_refused(&call(&allowed, &other).await, JwtErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn an_azure_issuer_accepts_a_custom_audience_and_hs256() {
    let issuer = TestIssuer::azure_ad(TENANT, API)
        .with_audience("https://contoso.example/files")
        .with_hs256()
        .start()
        .unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    assert_ok(&call(&layer, &issuer.token().sign()).await);
    assert_ok(&call(&layer, &issuer.token().alg(Algorithm::HS256).sign()).await);
    assert_ok(&call(&layer, &issuer.token().audience(API).sign()).await);
}

// ---- rotation ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_use() {
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    layer.ready().await.unwrap();
    let before = issuer.token().sign();
    assert_ok(&call(&layer, &before).await);
    assert_eq!(issuer.jwks_requests(), 1);

    issuer.rotate();
    assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 10);
    let after = issuer.token().sign();
    assert_ok(&call(&layer, &after).await);
    assert_eq!(issuer.jwks_requests(), 2, "one refresh, on the first token");
    assert_ok(&call(&layer, &after).await);
    assert_ok(&call(&layer, &before).await);
    assert_eq!(issuer.jwks_requests(), 2);

    // Withdrawn keys stop verifying once the layer fetches the set again (here for the next
    // rotation's key, after the on-demand refresh interval).
    issuer.withdraw_old_keys();
    issuer.rotate();
    skip_time(Duration::from_secs(31)).await;
    assert_ok(&call(&layer, &issuer.token().sign()).await);
    assert_eq!(issuer.jwks_requests(), 3);
    assert_refused(&call(&layer, &before).await, JwtErrorKind::UnknownKey);
    assert_ok(&call(&layer, &after).await);
}

// ---- faults ------------------------------------------------------------------------------------

/// A layer on the issuer's discovery URL whose fetches give up after 500 ms (a hang is then
/// cut in real time), and its key source.
fn impatient_layer(issuer: &TestIssuer) -> (ValidateJwtLayer, RemoteJwks) {
    let keys = issuer
        .remote_jwks()
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(keys.clone())
        .add_audience(issuer.audience())
        .build()
        .unwrap();
    (layer, keys)
}

const FAULTS: [(Fault, KeyErrorKind); 4] = [
    (
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
        KeyErrorKind::Status,
    ),
    (Fault::Hang, KeyErrorKind::Timeout),
    (Fault::InvalidJson, KeyErrorKind::InvalidJson),
    (Fault::Down, KeyErrorKind::Connect),
];

#[tokio::test]
async fn while_a_fault_lasts_the_keys_already_loaded_keep_serving() {
    for (fault, expected) in FAULTS {
        let issuer = TestIssuer::start().unwrap();
        let (layer, keys) = impatient_layer(&issuer);
        layer.ready().await.unwrap();
        let old = issuer.token().sign();

        issuer.set_fault(fault);
        assert_eq!(issuer.fault(), Some(fault));
        issuer.rotate();
        let new = issuer.token().sign();
        // The refresh for the new key fails: the new key is unknown, the old ones still verify.
        let answer = call(&layer, &new).await;
        assert_refused(&answer, JwtErrorKind::UnknownKey);
        assert_ok(&call(&layer, &old).await);
        let status = keys.status();
        assert_eq!(
            status.last_error().map(|e| e.kind()),
            Some(expected),
            "{fault:?}"
        );
        assert_eq!(status.key_count(), 5, "{fault:?}");

        // Once the fault is cleared, the next refresh (a backoff retry, or the new key's after
        // the refresh interval) brings the new key.
        issuer.clear_fault();
        skip_time(Duration::from_secs(31)).await;
        assert_ok(&call(&layer, &new).await);
        assert_eq!(keys.status().consecutive_failures(), 0, "{fault:?}");
    }
}

#[tokio::test]
async fn a_fault_at_cold_start_answers_503_until_it_clears() {
    for (fault, expected) in FAULTS {
        let issuer = TestIssuer::start().unwrap();
        issuer.set_fault(fault);
        let (layer, keys) = impatient_layer(&issuer);
        let token = issuer.token().sign();

        let answer = call(&layer, &token).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {answer:?}"
        );
        assert_eq!(answer.kind, Some(JwtErrorKind::KeysUnavailable));
        assert!(answer.retry_after, "{answer:?}");
        assert_eq!(keys.status().last_error().map(|e| e.kind()), Some(expected));
        assert!(keys.current().is_none());

        // The first retry after the fault clears (1 s of backoff, at most) serves.
        issuer.clear_fault();
        skip_time(Duration::from_secs(2)).await;
        keys.ready().await.unwrap(); // the key source's own `ready` waits for that retry
        assert_eq!(keys.status().fetches(), 2);
        assert_ok(&call(&layer, &token).await);
    }
}

#[tokio::test]
async fn a_layer_from_layer_builder_answers_503_while_the_issuer_is_down() {
    let issuer = TestIssuer::start().unwrap();
    issuer.set_fault(Fault::Down);
    let layer = issuer.layer_builder().build().unwrap();
    let answer = call(&layer, &issuer.token().sign()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert!(
        issuer.discovery_requests() == 0,
        "a down issuer answers nothing"
    );
}
