//! `ValidateJwtLayer::health` and `validate_jwt::axum::health_route` against real key servers
//! (the test kit's `TestIssuer` and its faults): ready → degraded → ready, unavailable at a cold
//! start, and the probe's status codes. Time is skipped with `skip_time`, never slept.
#![cfg(feature = "aws-lc-rs")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use http::StatusCode;
use validate_jwt::testing::{Fault, TestIssuer, skip_time};
use validate_jwt::{HealthStatus, JwtErrorKind, StaticKeys, ValidateJwtLayer};

/// Lets the runtime run until `condition` holds (a safety net fails the test after 10 s).
async fn until(what: &str, condition: impl Fn() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::task::yield_now().await;
    }
}

fn layer_for(issuer: &TestIssuer) -> ValidateJwtLayer {
    let keys = issuer
        .remote_jwks()
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    ValidateJwtLayer::builder()
        .add_key_source(keys)
        .add_audience(issuer.audience())
        .build()
        .unwrap()
}

#[tokio::test]
async fn health_goes_ready_then_degraded_while_the_endpoint_fails_then_ready_again() {
    let issuer = TestIssuer::start().unwrap();
    let layer = layer_for(&issuer);
    layer.ready().await.unwrap();
    let health = layer.health();
    assert_eq!(health.status(), HealthStatus::Ready);
    assert_eq!(health.http_status(), StatusCode::OK);
    assert_eq!(health.degraded_since(), None);
    let entry = &health.sources()[0];
    assert_eq!(entry.kind(), "remote");
    assert_eq!(entry.url(), Some(issuer.discovery_url().as_str()));
    assert!(entry.keys() > 0);
    let source = entry.remote().unwrap();
    assert!(source.last_success().is_some() && source.age().is_some());
    assert_eq!(source.consecutive_failures(), 0);
    assert!(source.last_error().is_none());
    assert!(source.next_attempt_in().is_some());

    // The endpoint fails; a token naming a new key makes the layer refetch, which fails.
    let failed_at = SystemTime::now();
    issuer.set_fault(Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let stranger = issuer.token().kid("new-key").sign();
    let err = layer.validate_token(&stranger).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
    let health = layer.health();
    assert_eq!(health.status(), HealthStatus::Degraded);
    assert_eq!(health.http_status(), StatusCode::OK);
    let since = health.degraded_since().unwrap();
    assert!(since >= failed_at - Duration::from_secs(1), "{since:?}");
    assert_eq!(health.sources()[0].status(), HealthStatus::Degraded);
    let source = health.sources()[0].remote().unwrap();
    assert_eq!(source.consecutive_failures(), 1);
    assert!(
        source.last_error().unwrap().to_string().contains("500"),
        "{:?}",
        source.last_error()
    );
    assert_eq!(source.failing_since(), Some(since));
    // A retry is planned within the first backoff step (1 s).
    assert!(source.next_attempt_in().unwrap() <= Duration::from_secs(1));
    // Stale keys still serve.
    layer.validate_token(&issuer.token().sign()).await.unwrap();
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["sources"][0]["consecutive_failures"], 1);
    assert!(json["degraded_since"].as_u64().unwrap() > 0);

    // It recovers: the backoff's retry succeeds.
    issuer.clear_fault();
    skip_time(Duration::from_secs(2)).await;
    until("the retry succeeds", || {
        layer.health().sources()[0]
            .remote()
            .unwrap()
            .consecutive_failures()
            == 0
    })
    .await;
    let health = layer.health();
    assert_eq!(health.status(), HealthStatus::Ready);
    assert_eq!(health.degraded_since(), None);
    assert_eq!(health.sources()[0].remote().unwrap().failing_since(), None);
    assert!(health.sources()[0].remote().unwrap().last_error().is_none());
}

#[tokio::test]
async fn health_is_unavailable_at_a_cold_start_with_the_endpoint_down() {
    let issuer = TestIssuer::start().unwrap();
    issuer.set_fault(Fault::Down);
    let layer = layer_for(&issuer);
    // Before the first attempt finished: no keys, no error yet.
    assert_eq!(layer.health().status(), HealthStatus::Unavailable);
    assert!(layer.ready().await.is_err());
    let health = layer.health();
    assert_eq!(health.status(), HealthStatus::Unavailable);
    assert_eq!(health.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.sources()[0].status(), HealthStatus::Unavailable);
    assert_eq!(health.sources()[0].keys(), 0);
    let source = health.sources()[0].remote().unwrap();
    assert!(source.last_success().is_none());
    assert!(source.consecutive_failures() >= 1);
    assert!(source.last_error().is_some());
    assert!(source.failing_since().is_some());
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "unavailable");
    assert_eq!(json["sources"][0]["keys"], 0);
    assert!(json["sources"][0]["last_success"].is_null());
}

#[tokio::test]
async fn one_source_without_keys_among_several_is_degraded() {
    let issuer = TestIssuer::start().unwrap();
    issuer.set_fault(Fault::Down);
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            issuer
                .remote_jwks()
                .with_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
        )
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(None, b"a shared secret of at least 32 bytes!")
                .add_issuer("https://static.example"),
        )
        .add_audience(issuer.audience())
        .build()
        .unwrap();
    assert!(layer.ready().await.is_err());
    let health = layer.health();
    assert_eq!(health.status(), HealthStatus::Degraded);
    let kinds: Vec<_> = health
        .sources()
        .iter()
        .map(|s| (s.kind(), s.status()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("remote", HealthStatus::Unavailable),
            ("static", HealthStatus::Ready)
        ]
    );
    assert!(health.degraded_since().is_some());
    assert!(health.sources()[1].remote().is_none());
    // Every source serialises with the same members (a static one's fetch state is null).
    let json = serde_json::to_value(&health).unwrap();
    let members = |i: usize| -> Vec<String> {
        let mut m: Vec<_> = json["sources"][i]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "url")
            .cloned()
            .collect();
        m.sort();
        m
    };
    assert_eq!(members(0), members(1));
    assert_eq!(
        members(1),
        [
            "age_seconds",
            "consecutive_failures",
            "failing_since",
            "keys",
            "kind",
            "last_error",
            "last_success",
            "next_attempt_in_seconds",
            "status"
        ]
    );
    assert!(json["sources"][1]["last_error"].is_null());
    assert!(json["sources"][0]["last_error"].is_string());
}

#[cfg(feature = "axum")]
mod axum_route {
    use axum::Router;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn probe(app: &Router) -> (StatusCode, serde_json::Value, http::HeaderMap) {
        let request = http::Request::get("/healthz").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap(), headers)
    }

    fn app(layer: ValidateJwtLayer) -> Router {
        Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .layer(layer.clone())
            .route("/healthz", validate_jwt::axum::health_route(layer))
    }

    #[tokio::test]
    async fn the_route_answers_200_when_ready_or_degraded_and_503_when_unavailable() {
        let issuer = TestIssuer::start().unwrap();
        issuer.set_fault(Fault::Down);
        let layer = layer_for(&issuer);
        let app = app(layer.clone());
        assert!(layer.ready().await.is_err());
        let (status, body, headers) = probe(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["cache-control"], "no-store");

        issuer.clear_fault();
        skip_time(Duration::from_secs(2)).await;
        until("the retry succeeds", || {
            layer.health().status() == HealthStatus::Ready
        })
        .await;
        let (status, body, _) = probe(&app).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
        assert!(body["sources"][0]["keys"].as_u64().unwrap() > 0);

        issuer.set_fault(Fault::InvalidJson);
        let err = layer
            .validate_token(&issuer.token().kid("new-key").sign())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
        let (status, body, _) = probe(&app).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "degraded");
        assert!(body["sources"][0]["last_error"].is_string());
    }
}
