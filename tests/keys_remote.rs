//! `RemoteJwks` against a real HTTP key server, through the `KeySource` API.
//!
//! # Time
//!
//! Fetches are real HTTP over loopback, while TTLs, the rate-limit window and retry backoff
//! last seconds to hours. Tokio's paused clock lets a test jump over those, but it has a trap:
//! a paused runtime with nothing to run auto-advances to its next timer, and while a real
//! socket read is pending that timer is the fetch timeout, which then fires at once. So:
//!
//! * the key server runs on its own OS thread and runtime (see `common/key_server.rs`), in
//!   real time, unaffected by the tests' clocks;
//! * a test's clock runs normally whenever a fetch may be in flight. It is paused only inside
//!   the test kit's `skip_time` (here `jump`), which advances it over a TTL or window and
//!   resumes it before anything waits on I/O; a fetch a jump makes due then runs in real time;
//! * tests wait for background fetches by polling the provider's status between
//!   `yield_now`s ([`until`]), never by sleeping;
//! * hangs and slow drips are cut by a short configured timeout (500 ms), in real time.
//!
//! Nothing asserts on elapsed time.
#![cfg(feature = "aws-lc-rs")]
#![allow(clippy::unwrap_used)]

#[path = "common/key_server.rs"]
mod key_server;

use std::sync::Arc;
use std::time::Duration;

use key_server::{Fault, KeyServer, jwks, rsa_jwk};
use serde_json::json;
use validate_jwt::testing::skip_time as jump;
use validate_jwt::{ConfigError, KeyErrorKind, KeySet, KeySource, RefreshReason, RemoteJwks};

const DISCOVERY: &str = "/.well-known/openid-configuration";
const KEYS: &str = "/keys";

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

fn kids(set: &KeySet) -> Vec<&str> {
    set.kids().collect()
}

fn unknown(kid: &str) -> RefreshReason {
    RefreshReason::UnknownKid(kid.to_owned())
}

/// A server with a discovery document at the root naming its own origin, and keys `k1`.
fn discovery_server() -> KeyServer {
    let server = KeyServer::start();
    server.serve_discovery(DISCOVERY, &server.origin(), KEYS);
    server.serve_json(KEYS, &jwks(&["k1"]));
    server
}

fn discover(server: &KeyServer) -> RemoteJwks {
    RemoteJwks::discovery_url(&server.url(DISCOVERY))
        .build()
        .unwrap()
}

/// A server with a key set at `/keys` holding `k1`.
fn jwks_server() -> KeyServer {
    let server = KeyServer::start();
    server.serve_json(KEYS, &jwks(&["k1"]));
    server
}

fn jwks_provider(server: &KeyServer) -> RemoteJwks {
    RemoteJwks::jwks_url(&server.url(KEYS))
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_cold_stampede_makes_one_discovery_and_one_jwks_fetch() {
    let server = discovery_server();
    let provider = discover(&server);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        calls.spawn(provider.refresh(RefreshReason::NoKeys));
    }
    let sets: Vec<Arc<KeySet>> = calls
        .join_all()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(sets.iter().all(|set| Arc::ptr_eq(set, &sets[0])));
    assert_eq!(kids(&sets[0]), ["k1"]);
    assert_eq!((server.hits(DISCOVERY), server.hits(KEYS)), (1, 1));
    assert_eq!(provider.status().fetches(), 1);
    assert_eq!(provider.issuers(), Some(vec![server.origin()]));
}

#[tokio::test]
async fn refresh_makes_progress_without_being_polled() {
    let server = jwks_server();
    let provider = jwks_provider(&server);
    let refresh = provider.refresh(RefreshReason::NoKeys);
    until("the fetch finished", || provider.status().key_count() == 1).await;
    assert_eq!(server.hits(KEYS), 1);
    assert_eq!(kids(&refresh.await.unwrap()), ["k1"]);
    assert!(provider.current().is_some());
}

#[tokio::test]
async fn a_rotation_is_picked_up_on_the_first_unknown_kid() {
    let server = jwks_server();
    let provider = jwks_provider(&server);
    provider.ready().await.unwrap();

    server.serve_json(KEYS, &jwks(&["k1", "k2"]));
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert_eq!(kids(&set), ["k1", "k2"]);
    assert_eq!(server.hits(KEYS), 2);

    // A key removed from the set stops being used after the next successful fetch.
    server.serve_json(KEYS, &jwks(&["k2", "k3"]));
    jump(Duration::from_secs(30)).await;
    let set = provider.refresh(unknown("k3")).await.unwrap();
    assert_eq!(kids(&set), ["k2", "k3"]);
    assert_eq!(kids(&provider.current().unwrap()), ["k2", "k3"]);
}

#[tokio::test]
async fn an_unknown_kid_flood_is_bounded_by_the_rate_limit() {
    let server = jwks_server();
    let provider = jwks_provider(&server);
    provider.ready().await.unwrap();

    // The first on-demand refresh happens at once.
    let set = provider.refresh(unknown("random-0")).await.unwrap();
    assert_eq!(kids(&set), ["k1"]);
    assert_eq!(server.hits(KEYS), 2);

    // Within the window every refresh is declined and answered with the current set at once.
    for i in 1..=1000 {
        let set = provider
            .refresh(unknown(&format!("random-{i}")))
            .await
            .unwrap();
        assert_eq!(kids(&set), ["k1"]);
    }
    assert_eq!(server.hits(KEYS), 2);

    // After the window a kid already found unknown still costs nothing; a new one refreshes once.
    jump(Duration::from_secs(30)).await;
    provider.refresh(unknown("random-0")).await.unwrap();
    assert_eq!(server.hits(KEYS), 2);
    provider.refresh(unknown("random-1001")).await.unwrap();
    assert_eq!(server.hits(KEYS), 3);
    for i in 1002..=2000 {
        provider
            .refresh(unknown(&format!("random-{i}")))
            .await
            .unwrap();
    }
    assert_eq!(server.hits(KEYS), 3);
}

#[tokio::test]
async fn a_fetch_already_in_flight_does_not_prove_a_kid_unknown() {
    let server = jwks_server();
    server.cache_control(KEYS, Some("max-age=300"));
    let provider = jwks_provider(&server);
    provider.ready().await.unwrap();

    // A background refresh is in flight (the server holds it for 300 ms) when the key set
    // rotates and a token with the new kid arrives: the refresh joins that fetch, which
    // started too early to know the kid.
    server.fault(KEYS, Some(Fault::Delay(300)));
    jump(Duration::from_secs(300)).await;
    until("the background fetch reached the server", || {
        server.hits(KEYS) == 2
    })
    .await;
    server.fault(KEYS, None);
    server.serve_json(KEYS, &jwks(&["k1", "k2"]));
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert_eq!(kids(&set), ["k1"]);

    // So the kid is not remembered as unknown: the next request refreshes at once.
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert_eq!(kids(&set), ["k1", "k2"]);
    assert_eq!(server.hits(KEYS), 3);
}

/// Loads `k1`, breaks the key set endpoint with `fault`, and asks for a refresh.
async fn stale_keys_are_served_through(fault: Fault, expected: KeyErrorKind) {
    let server = jwks_server();
    let provider = RemoteJwks::jwks_url(&server.url(KEYS))
        .with_timeout(Duration::from_millis(500))
        .with_max_body_bytes(16 * 1024)
        .build()
        .unwrap();
    provider.ready().await.unwrap();
    let good = provider.current().unwrap();

    server.fault(KEYS, Some(fault));
    // Bounded by the timeout, and answered with the last good set.
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert!(Arc::ptr_eq(&set, &good), "{fault:?}");
    assert!(Arc::ptr_eq(&provider.current().unwrap(), &good));
    assert_eq!(server.hits(KEYS), 2, "{fault:?}");

    let status = provider.status();
    assert!(status.consecutive_failures() >= 1, "{fault:?}");
    assert_eq!(status.last_error().unwrap().kind(), expected, "{fault:?}");
    assert_eq!(status.key_count(), 1);
    assert!(status.age().is_some() && status.last_success().is_some());

    // Recovery: the next fetch (a backoff retry, or this refresh once the window has passed)
    // succeeds and clears the failure count.
    server.fault(KEYS, None);
    server.serve_json(KEYS, &jwks(&["k2"]));
    jump(Duration::from_secs(30)).await;
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert_eq!(kids(&set), ["k2"]);
    assert_eq!(provider.status().consecutive_failures(), 0);
    assert!(provider.status().last_error().is_none());
}

#[tokio::test]
async fn stale_keys_are_served_through_http_500() {
    stale_keys_are_served_through(Fault::Status(500), KeyErrorKind::Status).await;
}

#[tokio::test]
async fn stale_keys_are_served_through_a_hang() {
    stale_keys_are_served_through(Fault::Hang, KeyErrorKind::Timeout).await;
}

#[tokio::test]
async fn stale_keys_are_served_through_a_slow_drip() {
    stale_keys_are_served_through(Fault::SlowDrip, KeyErrorKind::Timeout).await;
}

#[tokio::test]
async fn stale_keys_are_served_through_a_closed_connection() {
    stale_keys_are_served_through(Fault::CloseConnection, KeyErrorKind::Connect).await;
}

#[tokio::test]
async fn stale_keys_are_served_through_invalid_json() {
    stale_keys_are_served_through(Fault::InvalidJson, KeyErrorKind::InvalidJson).await;
}

#[tokio::test]
async fn stale_keys_are_served_through_an_oversized_body() {
    stale_keys_are_served_through(Fault::Oversized(64 * 1024), KeyErrorKind::TooLarge).await;
    stale_keys_are_served_through(Fault::OversizedChunked(64 * 1024), KeyErrorKind::TooLarge).await;
}

#[tokio::test]
async fn a_cold_start_with_the_endpoint_down_fails_then_recovers_with_backoff() {
    let server = jwks_server();
    server.fault(KEYS, Some(Fault::Status(503)));
    let provider = jwks_provider(&server);

    let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::Status);
    assert!(provider.current().is_none());
    // While the retry is pending, requests are answered at once without another fetch.
    let err = provider.refresh(unknown("k1")).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::Status);
    assert_eq!(server.hits(KEYS), 1);

    // Retries back off from 1 s, doubling up to 30 s, jittered down by at most 20 %.
    for (attempt, delay) in [1u64, 2, 4, 8, 16, 30, 30].into_iter().enumerate() {
        let done = attempt as u64 + 1;
        assert_eq!(provider.status().fetches(), done);
        let delay = Duration::from_secs(delay);
        jump(delay.mul_f64(0.79)).await;
        assert_eq!(server.hits(KEYS) as u64, done, "retry {done} came early");
        jump(delay.mul_f64(0.21) + Duration::from_millis(10)).await;
        until("the retry", || provider.status().fetches() == done + 1).await;
        assert_eq!(server.hits(KEYS) as u64, done + 1);
    }
    assert_eq!(provider.status().consecutive_failures(), 8);

    // Serving starts with the first fetch that succeeds.
    server.fault(KEYS, None);
    jump(Duration::from_secs(30)).await;
    provider.ready().await.unwrap();
    assert_eq!(
        kids(&provider.refresh(RefreshReason::NoKeys).await.unwrap()),
        ["k1"]
    );
    assert_eq!(provider.status().consecutive_failures(), 0);
}

#[tokio::test]
async fn ready_reports_the_first_failure() {
    let server = jwks_server();
    server.fault(KEYS, Some(Fault::InvalidJson));
    let provider = jwks_provider(&server);
    let err = provider.ready().await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::InvalidJson);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_and_clamped() {
    let server = jwks_server();
    server.cache_control(KEYS, Some("public, max-age=600"));
    let provider = jwks_provider(&server);
    provider.ready().await.unwrap();

    // Refreshed at 80–95 % of the lifetime: not before…
    jump(Duration::from_secs(474)).await;
    assert_eq!(server.hits(KEYS), 1);
    // …and by then.
    server.cache_control(KEYS, Some("max-age=10"));
    jump(Duration::from_secs(97)).await;
    until("the refetch", || provider.status().fetches() == 2).await;
    assert_eq!(server.hits(KEYS), 2);

    // max-age=10 is clamped to the 5 minute minimum.
    jump(Duration::from_secs(100)).await;
    assert_eq!(server.hits(KEYS), 2);
    jump(Duration::from_secs(200)).await;
    until("the clamped refetch", || provider.status().fetches() == 3).await;
    assert_eq!(server.hits(KEYS), 3);
}

#[tokio::test]
async fn without_max_age_the_default_lifetime_applies() {
    let server = jwks_server();
    let provider = RemoteJwks::jwks_url(&server.url(KEYS))
        .with_default_cache_ttl(Duration::from_secs(1000))
        .build()
        .unwrap();
    provider.ready().await.unwrap();
    jump(Duration::from_secs(790)).await;
    assert_eq!(server.hits(KEYS), 1);
    jump(Duration::from_secs(170)).await;
    until("the refetch", || provider.status().fetches() == 2).await;
}

#[tokio::test]
async fn etag_revalidation_keeps_the_set_and_resets_its_age() {
    let server = discovery_server();
    for path in [DISCOVERY, KEYS] {
        server.cache_control(path, Some("max-age=300"));
        server.etag(path, Some("\"v1\""));
    }
    let provider = discover(&server);
    provider.ready().await.unwrap();
    let first = provider.current().unwrap();

    jump(Duration::from_secs(300)).await;
    until("the revalidation", || provider.status().fetches() == 2).await;
    assert_eq!(
        (server.not_modified(DISCOVERY), server.not_modified(KEYS)),
        (1, 1)
    );
    assert!(Arc::ptr_eq(&first, &provider.current().unwrap()));
    assert!(provider.status().age().unwrap() < Duration::from_secs(60));

    // A changed set is fetched in full.
    server.serve_json(KEYS, &jwks(&["k2"]));
    server.etag(KEYS, Some("\"v2\""));
    jump(Duration::from_secs(300)).await;
    until("the refetch", || provider.status().fetches() == 3).await;
    assert_eq!(server.not_modified(KEYS), 1);
    assert_eq!(kids(&provider.current().unwrap()), ["k2"]);
}

#[tokio::test]
async fn a_moved_jwks_uri_is_followed() {
    let server = discovery_server();
    let provider = discover(&server);
    provider.ready().await.unwrap();

    server.serve_json("/keys-2", &jwks(&["k2"]));
    server.serve_discovery(DISCOVERY, &server.origin(), "/keys-2");
    let set = provider.refresh(unknown("k2")).await.unwrap();
    assert_eq!(kids(&set), ["k2"]);
    assert_eq!(
        (
            server.hits(DISCOVERY),
            server.hits(KEYS),
            server.hits("/keys-2")
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn a_discovery_issuer_mismatch_is_refused() {
    let server = discovery_server();
    server.serve_discovery(DISCOVERY, "https://evil.example", KEYS);
    let provider = discover(&server);
    let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::IssuerMismatch);
    assert_eq!(server.hits(KEYS), 0);
}

#[tokio::test]
async fn azure_template_issuer_is_accepted_for_the_common_endpoint() {
    const COMMON: &str = "/common/v2.0/.well-known/openid-configuration";
    const COMMON_KEYS: &str = "/common/discovery/v2.0/keys";
    let server = KeyServer::start();
    let template = format!("{}/{{tenantid}}/v2.0", server.origin());
    server.serve_discovery(COMMON, &template, COMMON_KEYS);
    server.serve(
        COMMON_KEYS,
        include_str!("fixtures/entra/entra-common.jwks.json"),
    );
    let provider = RemoteJwks::discovery_url(&server.url(COMMON))
        .build()
        .unwrap();
    // Before the document is read: the issuer expected from the URL, in both forms OIDC
    // Discovery allows (with and without a terminating slash).
    assert_eq!(
        provider.issuers(),
        Some(vec![template.clone(), format!("{template}/")])
    );
    let set = provider.refresh(RefreshReason::NoKeys).await.unwrap();
    assert_eq!(set.len(), 7);
    assert!(
        set.keys()
            .all(|key| key.kid().is_some() && !key.is_symmetric())
    );
    assert_eq!(provider.issuers(), Some(vec![template]));

    // The template is only accepted in the tenant segment of the URL.
    let server = KeyServer::start();
    let wrong = format!("{}/{{tenantid}}/v1.0", server.origin());
    server.serve_discovery(COMMON, &wrong, COMMON_KEYS);
    let provider = RemoteJwks::discovery_url(&server.url(COMMON))
        .build()
        .unwrap();
    let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::IssuerMismatch);
}

#[tokio::test]
async fn oversized_documents_are_refused() {
    for fault in [Fault::Oversized(20_000), Fault::OversizedChunked(20_000)] {
        let server = jwks_server();
        server.fault(KEYS, Some(fault));
        let provider = RemoteJwks::jwks_url(&server.url(KEYS))
            .with_max_body_bytes(10_000)
            .build()
            .unwrap();
        let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
        assert_eq!(err.kind(), KeyErrorKind::TooLarge, "{fault:?}");
    }
}

#[tokio::test]
async fn key_sets_above_max_keys_are_refused() {
    let server = KeyServer::start();
    let kids: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    let kids: Vec<&str> = kids.iter().map(String::as_str).collect();
    server.serve_json(KEYS, &jwks(&kids));
    let provider = RemoteJwks::jwks_url(&server.url(KEYS))
        .with_max_keys(4)
        .build()
        .unwrap();
    let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::TooLarge);
}

#[tokio::test]
async fn rsa_and_ed25519_keys_are_loaded() {
    let server = KeyServer::start();
    let mut doc = jwks(&["ed"]);
    doc["keys"].as_array_mut().unwrap().push(rsa_jwk("rsa"));
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "kid": "tiny", "n": "AQAB", "e": "AQAB"}));
    server.serve_json(KEYS, &doc);
    let provider = RemoteJwks::jwks_url(&server.url(KEYS))
        .add_issuer("https://issuer.example")
        .build()
        .unwrap();
    let set = provider.refresh(RefreshReason::NoKeys).await.unwrap();
    assert_eq!(kids(&set), ["ed", "rsa"]);
    assert_eq!(
        provider.issuers(),
        Some(vec!["https://issuer.example".to_owned()])
    );
}

#[tokio::test]
async fn jwks_uri_from_a_document_must_be_https_for_remote_hosts() {
    let server = KeyServer::start();
    server.serve_json(
        DISCOVERY,
        &json!({"issuer": server.origin(), "jwks_uri": "http://idp.example/keys"}),
    );
    let provider = discover(&server);
    let err = provider.refresh(RefreshReason::NoKeys).await.unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::InvalidUrl);
}

#[test]
fn https_is_required_for_non_loopback_hosts_at_build() {
    for url in ["http://idp.example/keys", "ftp://idp.example/keys", "keys"] {
        let err = RemoteJwks::jwks_url(url).build().unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidUrl { .. }),
            "{url}: {err}"
        );
    }
    let err = RemoteJwks::discovery_url("http://idp.example/.well-known/openid-configuration")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{err}");
    for url in [
        "https://idp.example/keys",
        "http://127.0.0.1:1/keys",
        "http://[::1]:1/keys",
        "http://localhost:1/keys",
    ] {
        assert!(RemoteJwks::jwks_url(url).build().is_ok(), "{url}");
    }
    assert!(
        RemoteJwks::jwks_url("http://idp.example/keys")
            .danger_allow_http()
            .build()
            .is_ok()
    );
}

#[test]
fn real_entra_key_sets_parse() {
    for (json, count) in [
        (include_str!("fixtures/entra/entra-common.jwks.json"), 7),
        (
            include_str!("fixtures/entra/entra-organizations.jwks.json"),
            6,
        ),
    ] {
        let set = KeySet::from_jwks(json.as_bytes()).unwrap();
        assert_eq!(set.len(), count);
        assert!(set.kids().any(|kid| kid == "Mc7l3Iz93g7uwgNeEmmw_WYGPko"));
    }
}
