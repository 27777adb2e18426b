//! The `metrics` feature, read back from a real recorder (`metrics-util`'s debugging recorder),
//! after driving layers over real HTTP key servers (the test kit's `TestIssuer`, with its faults).
//!
//! Each test installs its own recorder for its thread (`set_default_local_recorder`) and runs on
//! a current-thread runtime, so the key sources' background tasks record into it too, and tests
//! running in parallel do not see each other's metrics.
#![cfg(all(feature = "metrics", feature = "aws-lc-rs"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::ServiceExt;
use validate_jwt::testing::{BadToken, Fault, TestIssuer, skip_time};
use validate_jwt::{JwtErrorKind, KeySource, Requirement, ValidateJwtLayer};

/// What the recorder holds, summed over snapshots (a snapshot resets its counters), by
/// `name{label="value",…}` with the labels in recording order.
#[derive(Default)]
struct Recorded {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl Recorded {
    /// Adds what was recorded since the last read. A snapshot resets what it reads, a gauge
    /// to 0 too: gauges are the last snapshot's (exact for those set since the read before),
    /// except the cache's entries, changed by increments and so summed.
    fn read(&mut self, snapshotter: &Snapshotter) -> &mut Self {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={:?}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            match value {
                DebugValue::Counter(n) => *self.counters.entry(name).or_default() += n,
                DebugValue::Gauge(v) if key.name() == "validate_jwt_token_cache_entries" => {
                    *self.gauges.entry(name).or_default() += v.into_inner();
                }
                DebugValue::Gauge(v) => {
                    self.gauges.insert(name, v.into_inner());
                }
                DebugValue::Histogram(vs) => self
                    .histograms
                    .entry(name)
                    .or_default()
                    .extend(vs.into_iter().map(|v| v.into_inner())),
            }
        }
        self
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.get(name).copied()
    }

    /// The counters of one metric, by their labels.
    fn counters_of(&self, metric: &str) -> HashMap<String, u64> {
        self.counters
            .iter()
            .filter_map(|(k, v)| {
                let labels = k
                    .strip_prefix(metric)?
                    .strip_prefix('{')?
                    .strip_suffix('}')?;
                Some((labels.to_owned(), *v))
            })
            .filter(|(_, v)| *v > 0)
            .collect()
    }
}

fn requests(outcome: &str, reason: &str) -> String {
    format!("validate_jwt_requests_total{{outcome={outcome:?},reason={reason:?}}}")
}

fn with_source(metric: &str, source: &str, result: Option<&str>) -> String {
    match result {
        Some(result) => format!("{metric}{{source={source:?},result={result:?}}}"),
        None => format!("{metric}{{source={source:?}}}"),
    }
}

fn app(layer: ValidateJwtLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

async fn status(app: &Router, path: &str, token: Option<&str>) -> StatusCode {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

/// Lets the runtime run until `condition` holds (a safety net fails the test after 10 s).
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn requests_are_counted_by_outcome_and_refusal_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let issuer = TestIssuer::start().unwrap();
    let layer = issuer
        .layer_builder()
        .skip_if(|_, uri, _| uri.path() == "/health")
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    let app = app(layer.clone());
    let good = issuer.token().sign();
    assert_eq!(status(&app, "/", Some(&good)).await, StatusCode::OK);
    assert_eq!(status(&app, "/", Some(&good)).await, StatusCode::OK);
    let expired = issuer.token().sign_bad(BadToken::Expired);
    assert_eq!(status(&app, "/", Some(&expired)).await, 401);
    let audience = issuer.token().audience("api://other").sign();
    assert_eq!(status(&app, "/", Some(&audience)).await, 401);
    let signature = issuer.token().sign_bad(BadToken::TamperedPayload);
    assert_eq!(status(&app, "/", Some(&signature)).await, 401);
    assert_eq!(status(&app, "/", Some("not-a-jwt")).await, 401);
    assert_eq!(status(&app, "/", None).await, 401);
    assert_eq!(status(&app, "/health", None).await, StatusCode::OK);
    // Outside HTTP too.
    let err = layer.validate_token(&expired).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::Expired);

    let anonymous = issuer.layer_builder().allow_anonymous().build().unwrap();
    assert_eq!(status(&self::app(anonymous), "/", None).await, 200);

    let recorded = Recorded::default()
        .read(&snapshotter)
        .counters_of("validate_jwt_requests_total");
    let expected: HashMap<String, u64> = [
        ("accepted", "none", 2),
        ("refused", "expired", 2),
        ("refused", "invalid_audience", 1),
        ("refused", "invalid_signature", 1),
        ("refused", "malformed", 1),
        ("refused", "missing", 1),
        ("skipped", "none", 1),
        ("anonymous", "none", 1),
    ]
    .into_iter()
    .map(|(o, r, n)| (format!("outcome={o:?},reason={r:?}"), n))
    .collect();
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn the_slow_path_counts_its_outcome_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    // No `ready()`: the first request waits for the cold-start fetch (the pending future).
    // A route requirement made from the layer does not count the request again.
    let issuer = TestIssuer::start().unwrap();
    let layer = issuer.layer_builder().build().unwrap();
    let read = layer
        .for_route(Requirement::all_scopes(["Files.Read"]))
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }).route_layer(read))
        .layer(layer);
    let token = issuer.token().scopes(["Files.Read"]).sign();
    assert_eq!(status(&app, "/", Some(&token)).await, 200);
    let mut recorded = Recorded::default();
    recorded.read(&snapshotter);
    assert_eq!(recorded.counter(&requests("accepted", "none")), 1);
    assert_eq!(recorded.counters_of("validate_jwt_requests_total").len(), 1);

    // Cold start with the endpoint down: keys_unavailable (503), counted by the future.
    let down = TestIssuer::start().unwrap();
    down.set_fault(Fault::Down);
    let app = self::app(down.layer_builder().build().unwrap());
    let answer = status(&app, "/", Some(&down.token().sign())).await;
    assert_eq!(answer, StatusCode::SERVICE_UNAVAILABLE);
    recorded.read(&snapshotter);
    assert_eq!(
        recorded.counter(&requests("refused", "keys_unavailable")),
        1
    );
}

#[tokio::test]
async fn key_sources_report_fetches_refreshes_and_failures() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let issuer = TestIssuer::start().unwrap();
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
    // The source label: the discovery URL.
    let source = issuer.discovery_url();
    let fetches = |recorded: &Recorded, result: &str| {
        recorded.counter(&with_source(
            "validate_jwt_key_fetches_total",
            &source,
            Some(result),
        ))
    };
    let refreshes = |recorded: &Recorded, result: &str| {
        recorded.counter(&with_source(
            "validate_jwt_key_refreshes_total",
            &source,
            Some(result),
        ))
    };

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    layer.ready().await.unwrap();
    let mut recorded = Recorded::default();
    recorded.read(&snapshotter);
    assert_eq!(fetches(&recorded, "ok"), 1);
    let published = keys.current().unwrap().len();
    assert!(published > 0);
    let gauge = |recorded: &Recorded, metric: &str| {
        recorded
            .gauge(&with_source(metric, &source, None))
            .unwrap_or_else(|| panic!("no {metric}"))
    };
    assert_eq!(gauge(&recorded, "validate_jwt_keys"), published as f64);
    assert_eq!(
        gauge(&recorded, "validate_jwt_key_consecutive_failures"),
        0.0
    );
    assert!(gauge(&recorded, "validate_jwt_key_set_updated_timestamp_seconds") >= before.floor());
    let durations = &recorded.histograms
        [&with_source("validate_jwt_key_fetch_duration_seconds", &source, None)];
    assert_eq!(durations.len(), 1);
    assert!(durations[0] >= 0.0);

    // A kid the set does not hold: one on-demand fetch, then the kid is remembered…
    let stranger = issuer.token().kid("stranger").sign();
    let err = layer.validate_token(&stranger).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
    recorded.read(&snapshotter);
    assert_eq!(refreshes(&recorded, "started"), 1);
    assert_eq!(
        fetches(&recorded, "ok") + fetches(&recorded, "not_modified"),
        2
    );
    let remembered = with_source("validate_jwt_unknown_kids_remembered_total", &source, None);
    assert_eq!(recorded.counter(&remembered), 1);
    // …so asking again fetches nothing.
    layer.validate_token(&stranger).await.unwrap_err();
    recorded.read(&snapshotter);
    assert_eq!(refreshes(&recorded, "unknown_kid"), 1);
    assert_eq!(refreshes(&recorded, "started"), 1);

    // A rotation within the refresh interval: declined by the rate limit.
    issuer.rotate();
    let rotated = issuer.token().sign();
    layer.validate_token(&rotated).await.unwrap_err();
    recorded.read(&snapshotter);
    assert_eq!(refreshes(&recorded, "rate_limited"), 1);

    // After it, with the endpoint failing: the fetch fails, the old keys stay.
    issuer.set_fault(Fault::Status(StatusCode::INTERNAL_SERVER_ERROR));
    skip_time(Duration::from_secs(31)).await;
    layer.validate_token(&rotated).await.unwrap_err();
    recorded.read(&snapshotter);
    assert_eq!(refreshes(&recorded, "started"), 2);
    assert_eq!(fetches(&recorded, "status"), 1);
    assert_eq!(
        gauge(&recorded, "validate_jwt_key_consecutive_failures"),
        1.0
    );

    // The endpoint recovers: the next on-demand fetch brings the new key.
    issuer.clear_fault();
    skip_time(Duration::from_secs(31)).await;
    layer.validate_token(&rotated).await.unwrap();
    recorded.read(&snapshotter);
    assert_eq!(refreshes(&recorded, "started"), 3);
    assert_eq!(
        gauge(&recorded, "validate_jwt_key_consecutive_failures"),
        0.0
    );
    assert!(gauge(&recorded, "validate_jwt_keys") > published as f64);
    // Every fetch attempt is timed.
    let attempts: u64 = recorded
        .counters_of("validate_jwt_key_fetches_total")
        .values()
        .sum();
    let durations = &recorded.histograms
        [&with_source("validate_jwt_key_fetch_duration_seconds", &source, None)];
    assert_eq!(durations.len() as u64, attempts);
}

#[tokio::test]
async fn a_hanging_endpoint_counts_as_a_timeout() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let issuer = TestIssuer::start().unwrap();
    issuer.set_fault(Fault::Hang);
    let keys = issuer
        .remote_jwks()
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(keys.ready().await.is_err());
    let source = issuer.discovery_url();
    let mut recorded = Recorded::default();
    until("the failure is counted", || {
        recorded.read(&snapshotter);
        recorded.counter(&with_source(
            "validate_jwt_key_fetches_total",
            &source,
            Some("timeout"),
        )) == 1
    })
    .await;
    let failures = with_source("validate_jwt_key_consecutive_failures", &source, None);
    assert_eq!(recorded.gauge(&failures), Some(1.0));
}

#[tokio::test]
async fn the_token_cache_reports_hits_misses_evictions_and_entries() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let issuer = TestIssuer::start().unwrap();
    // One slot: a second token evicts the first.
    let layer = issuer.layer_builder().with_token_cache(1).build().unwrap();
    layer.ready().await.unwrap();
    let token = issuer.token().sign();
    for _ in 0..3 {
        layer.validate_token(&token).await.unwrap();
    }
    let mut recorded = Recorded::default();
    recorded.read(&snapshotter);
    // Validated (a miss), then found in the shared cache and copied to this thread's front
    // cache, then found there.
    assert_eq!(
        recorded.counter("validate_jwt_token_cache_misses_total{}"),
        1
    );
    assert_eq!(
        recorded.counter("validate_jwt_token_cache_hits_total{tier=\"shared\"}"),
        1
    );
    assert_eq!(
        recorded.counter("validate_jwt_token_cache_hits_total{tier=\"front\"}"),
        1
    );
    assert_eq!(
        recorded.gauge("validate_jwt_token_cache_entries{}"),
        Some(1.0)
    );
    assert_eq!(layer.token_cache_stats().unwrap().hits, 2);

    let other = issuer.token().subject("bob").sign();
    layer.validate_token(&other).await.unwrap();
    recorded.read(&snapshotter);
    assert_eq!(
        recorded.counter("validate_jwt_token_cache_misses_total{}"),
        2
    );
    assert_eq!(
        recorded.counter("validate_jwt_token_cache_evictions_total{}"),
        1
    );
    assert_eq!(
        recorded.gauge("validate_jwt_token_cache_entries{}"),
        Some(1.0)
    );

    // A dropped layer takes its entries with it.
    drop(layer);
    recorded.read(&snapshotter);
    assert_eq!(
        recorded.gauge("validate_jwt_token_cache_entries{}"),
        Some(0.0)
    );
}

#[test]
fn describe_registers_every_metric_with_its_help() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        validate_jwt::metrics::describe();
        // Descriptions show only for metrics that were recorded.
        metrics::counter!("validate_jwt_requests_total").increment(1);
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let (_, _, help, _) = snapshot
        .iter()
        .find(|(k, ..)| k.key().name() == "validate_jwt_requests_total")
        .unwrap();
    let help = help.as_ref().unwrap();
    assert!(help.contains("by outcome"), "{help}");
}

/// With `label_metrics_by_issuer`: the issuer each token was verified for, a template for an
/// Azure AD multi-tenant API, `any` under `danger_accept_any_issuer`, and `unverified` (never
/// the token's own `iss`) for a request that ended before its issuer was established.
#[tokio::test]
async fn requests_are_labelled_by_the_issuer_they_were_verified_for_when_asked() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    // Two key sources, each bound to its own issuer by its discovery document.
    let a = TestIssuer::start().unwrap();
    let b = TestIssuer::start().unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(a.remote_jwks().build().unwrap())
        .add_key_source(b.remote_jwks().build().unwrap())
        .add_audience(a.audience())
        .require_all_scopes(["read"])
        .label_metrics_by_issuer()
        .build()
        .unwrap();
    let app = app(layer.clone());
    let good = |idp: &TestIssuer| idp.token().scopes(["read"]).sign();
    // The first request waits for the keys (the pending future counts it).
    assert_eq!(status(&app, "/", Some(&good(&a))).await, 200);
    assert_eq!(status(&app, "/", Some(&good(&b))).await, 200);
    assert_eq!(status(&app, "/", Some(&good(&b))).await, 200);
    // Refused after the issuer check: labelled with the issuer.
    let audience = b.token().scopes(["read"]).audience("api://other").sign();
    assert_eq!(status(&app, "/", Some(&audience)).await, 401);
    assert_eq!(status(&app, "/", Some(&a.token().sign())).await, 403);
    // Refused before it (or by it): `unverified`, whatever the token says.
    let foreign = a
        .token()
        .scopes(["read"])
        .claim("iss", "https://attacker.example")
        .sign();
    assert_eq!(status(&app, "/", Some(&foreign)).await, 401);
    let expired = a.token().sign_bad(BadToken::Expired);
    assert_eq!(status(&app, "/", Some(&expired)).await, 401);
    assert_eq!(status(&app, "/", None).await, 401);
    // Outside HTTP too.
    layer.validate_token(&good(&a)).await.unwrap();

    // An Azure AD multi-tenant API: every tenant's tokens under the one template.
    let azure = TestIssuer::azure_ad_multi_tenant(
        "11111111-1111-1111-1111-111111111111",
        "6e74172b-be56-4843-9ff4-e66a39bb12e3",
    )
    .start()
    .unwrap();
    let multi = azure
        .layer_builder()
        .label_metrics_by_issuer()
        .build()
        .unwrap();
    for tenant in [
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
    ] {
        multi
            .validate_token(&azure.token().tenant(tenant).sign())
            .await
            .unwrap();
    }

    // Keys that name no issuer, under `danger_accept_any_issuer`.
    let any = ValidateJwtLayer::builder()
        .add_keys(validate_jwt::StaticKeys::new().add_jwks(a.jwks().to_string()))
        .danger_accept_any_issuer()
        .add_audience(a.audience())
        .label_metrics_by_issuer()
        .build()
        .unwrap();
    any.validate_token(&a.token().sign()).await.unwrap();

    let recorded = Recorded::default()
        .read(&snapshotter)
        .counters_of("validate_jwt_requests_total");
    let label = |outcome: &str, reason: &str, issuer: &str| {
        format!("outcome={outcome:?},reason={reason:?},issuer={issuer:?}")
    };
    let template = format!("{}/{{tenantid}}/v2.0", azure.url());
    let expected: HashMap<String, u64> = [
        (label("accepted", "none", &a.issuer()), 2),
        (label("accepted", "none", &b.issuer()), 2),
        (label("refused", "invalid_audience", &b.issuer()), 1),
        (label("refused", "insufficient_scope", &a.issuer()), 1),
        (label("refused", "invalid_issuer", "unverified"), 1),
        (label("refused", "expired", "unverified"), 1),
        (label("refused", "missing", "unverified"), 1),
        (label("accepted", "none", &template), 2),
        (label("accepted", "none", "any"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(recorded, expected);
}
