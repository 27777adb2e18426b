//! The verified-token cache: hits skip verification, and are never less strict than a miss.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tower::{Layer as _, ServiceExt as _};
use validate_jwt::testing::TestIssuer;
use validate_jwt::{
    Algorithm, Claims, JwtErrorKind, KeySet, KeySource, ManualClock, RefreshFuture, RefreshReason,
    Requirement, StaticKeys, ValidateJwtLayer,
};

const NOW: u64 = 1_700_000_000;

/// A provider whose key set can be swapped, counting `current()` calls.
#[derive(Clone)]
struct Swappable {
    set: Arc<Mutex<Arc<KeySet>>>,
    lookups: Arc<AtomicUsize>,
}

impl Swappable {
    fn new(set: Arc<KeySet>) -> Self {
        Swappable {
            set: Arc::new(Mutex::new(set)),
            lookups: Arc::default(),
        }
    }
    fn swap(&self, set: Arc<KeySet>) {
        *self.set.lock().unwrap() = set;
    }
    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl KeySource for Swappable {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Some(self.set.lock().unwrap().clone())
    }
    fn refresh(&self, _: RefreshReason) -> RefreshFuture {
        let set = self.set.lock().unwrap().clone();
        Box::pin(async move { Ok(set) })
    }
    fn issuers(&self) -> Option<Vec<String>> {
        Some(vec![ISSUER.into()])
    }
}

fn key_set(keys: &[&TestKey]) -> Arc<KeySet> {
    StaticKeys::new()
        .add_jwks(jwks(keys).to_string())
        .key_set()
        .unwrap()
}

fn claims_at(now: u64, exp_in: u64) -> serde_json::Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + exp_in,
           "scp": "Echo.Read", "jti": format!("{now}-{exp_in}")})
}

struct Setup {
    layer: ValidateJwtLayer,
    provider: Swappable,
    clock: ManualClock,
    /// How many times the synchronous requirement ran: on every validation, hits included.
    checks: Arc<AtomicUsize>,
}

fn setup(key: &TestKey, capacity: usize) -> Setup {
    let provider = Swappable::new(key_set(&[key]));
    let clock = ManualClock::new(NOW);
    let checks = Arc::new(AtomicUsize::new(0));
    let counter = checks.clone();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(provider.clone())
        .add_audience(AUDIENCE)
        .with_clock(clock.clone())
        .with_leeway(Duration::from_secs(30))
        .require_all_scopes(["Echo.Read"])
        .require(Requirement::predicate("counted", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }))
        .with_token_cache(capacity)
        .build()
        .unwrap();
    Setup {
        layer,
        provider,
        clock,
        checks,
    }
}

fn stats(layer: &ValidateJwtLayer) -> (usize, u64, u64) {
    let s = layer.token_cache_stats().unwrap();
    (s.len, s.hits, s.misses)
}

#[tokio::test]
async fn the_cache_is_off_by_default() {
    let key = TestKey::es256("k1");
    let layer = ValidateJwtLayer::builder()
        .add_key_source(Swappable::new(key_set(&[&key])))
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    assert!(layer.token_cache_stats().is_none());
    let off = ValidateJwtLayer::builder()
        .add_key_source(Swappable::new(key_set(&[&key])))
        .add_audience(AUDIENCE)
        .with_token_cache(0)
        .build()
        .unwrap();
    assert!(off.token_cache_stats().is_none());
}

#[tokio::test]
async fn a_hit_returns_the_same_claims_without_verifying() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 3600));

    let first = s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 0, 1));
    assert_eq!(s.checks.load(Ordering::SeqCst), 1);
    // A miss reads the key sets twice: the snapshot kept with the entry, and the validation.
    assert_eq!(s.provider.lookups(), 2);

    let second = s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 1));
    assert_eq!(
        s.checks.load(Ordering::SeqCst),
        2,
        "requirements run again on a hit"
    );
    // A hit reads them once, to compare with the snapshot; it verifies nothing.
    assert_eq!(s.provider.lookups(), 3);
    assert_eq!(second.subject(), Some("alice"));
    assert_eq!(first.raw(), second.raw());

    // Looked up again soon on this thread: the token went into the thread's front cache, with
    // the thread's own copy of the claims, and the next hits hand out that very copy.
    assert!(!std::ptr::eq(first.raw().as_ptr(), second.raw().as_ptr()));
    let third = s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 2, 1));
    assert_eq!(s.checks.load(Ordering::SeqCst), 3);
    assert!(std::ptr::eq(second.raw().as_ptr(), third.raw().as_ptr()));
}

#[tokio::test]
async fn tokens_seen_now_and_then_are_served_from_the_shared_cache() {
    let key = TestKey::ed25519("k1");
    let s = setup(&key, 1000);
    // Many clients, each token seen once per round: too many for a thread's recent lookups.
    let tokens: Vec<String> = (0..200)
        .map(|i| key.token(&claims_at(NOW, 3600 + i)))
        .collect();
    let mut first_round = Vec::new();
    for token in &tokens {
        first_round.push(s.layer.validate_token(token).await.unwrap());
    }
    for (token, first) in tokens.iter().zip(&first_round) {
        let again = s.layer.validate_token(token).await.unwrap();
        assert!(
            std::ptr::eq(first.raw().as_ptr(), again.raw().as_ptr()),
            "the shared cache's claims, not a per-thread copy"
        );
    }
    assert_eq!(stats(&s.layer), (200, 200, 200));
}

#[test]
fn front_cache_hits_on_other_threads_are_counted_and_checked() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 3600));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(s.layer.validate_token(&token)).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for _ in 0..5 {
                    runtime.block_on(s.layer.validate_token(&token)).unwrap();
                }
            });
        }
    });
    // One miss, then 10 hits: each thread's first from the shared cache, the rest its own.
    assert_eq!(stats(&s.layer), (1, 10, 1));
    assert_eq!(s.checks.load(Ordering::SeqCst), 11);
    // A rotation reaches every thread's copy.
    s.provider.swap(key_set(&[&TestKey::es256("k2")]));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let err = runtime
                .block_on(s.layer.validate_token(&token))
                .unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
        });
    });
    assert_eq!(stats(&s.layer), (0, 10, 2));
}

#[tokio::test]
async fn hits_go_through_the_http_service_too() {
    let key = TestKey::ed25519("k1");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 3600));
    let svc = s
        .layer
        .layer(tower::service_fn(|req: http::Request<()>| async move {
            let sub = req
                .extensions()
                .get::<Claims>()
                .and_then(|c| c.subject().map(str::to_owned));
            Ok::<_, Infallible>(http::Response::new(sub.unwrap_or_default()))
        }));
    for _ in 0..3 {
        let req = http::Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(stats(&s.layer), (1, 2, 1));
    assert_eq!(s.checks.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn expiry_is_checked_again_on_every_hit() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 100));
    s.layer.validate_token(&token).await.unwrap();
    s.clock.advance(100 + 29);
    s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 1), "within the leeway: a hit");

    s.clock.advance(1);
    let err = s.layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::Expired);
    assert_eq!(stats(&s.layer), (0, 1, 2), "the stale entry is dropped");
    // And it is not cached again.
    let err = s.layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::Expired);
    assert_eq!(stats(&s.layer).0, 0);
}

#[tokio::test]
async fn not_before_is_checked_again_on_every_hit() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let mut claims = claims_at(NOW, 3600);
    claims["nbf"] = json!(NOW);
    let token = key.token(&claims);
    s.layer.validate_token(&token).await.unwrap();
    // The clock is set back (a test clock, or a corrected system clock).
    s.clock.set(NOW - 31);
    let err = s.layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::NotYetValid);
}

#[tokio::test]
async fn a_key_set_change_drops_the_entries() {
    let key = TestKey::es256("k1");
    let other = TestKey::es256("k2");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 3600));
    s.layer.validate_token(&token).await.unwrap();
    s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 1));

    // A refresh with the same key: the entry is dropped and the token verified again.
    s.provider.swap(key_set(&[&key, &other]));
    s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 2));
    assert_eq!(s.checks.load(Ordering::SeqCst), 3);
    s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 2, 2));

    // The key is rotated out: the cached token is refused at once.
    s.provider.swap(key_set(&[&other]));
    let err = s.layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
    assert_eq!(stats(&s.layer), (0, 2, 3));
}

#[tokio::test]
async fn a_token_differing_in_one_byte_misses() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let token = key.token(&claims_at(NOW, 3600));
    s.layer.validate_token(&token).await.unwrap();

    let dot = token.rfind('.').unwrap();
    for i in [5, dot - 3, dot + 5, token.len() - 2] {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        assert!(s.layer.validate_token(&forged).await.is_err(), "byte {i}");
    }
    assert_eq!(stats(&s.layer), (1, 0, 5));
    s.layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 5));
}

#[tokio::test]
async fn refused_tokens_are_not_cached() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 100);
    let mut wrong_audience = claims_at(NOW, 3600);
    wrong_audience["aud"] = json!("api://other");
    let mut no_scope = claims_at(NOW, 3600);
    no_scope["scp"] = json!("Other");
    for claims in [wrong_audience, no_scope] {
        let token = key.token(&claims);
        for _ in 0..2 {
            assert!(s.layer.validate_token(&token).await.is_err());
        }
    }
    assert_eq!(stats(&s.layer), (0, 0, 4));
}

#[tokio::test]
async fn the_capacity_bounds_the_entries() {
    let key = TestKey::ed25519("k1");
    let s = setup(&key, 8);
    let tokens: Vec<String> = (0..50)
        .map(|i| key.token(&claims_at(NOW, 3600 + i)))
        .collect();
    for token in &tokens {
        s.layer.validate_token(token).await.unwrap();
        assert!(stats(&s.layer).0 <= 8);
    }
    assert_eq!(s.layer.token_cache_stats().unwrap().capacity, 8);
    // Every token is still accepted, cached or not.
    for token in &tokens {
        s.layer.validate_token(token).await.unwrap();
    }
    assert!(stats(&s.layer).0 <= 8);
}

#[tokio::test]
async fn a_frequently_used_token_survives_a_flood_of_one_off_tokens() {
    let key = TestKey::ed25519("k1");
    let s = setup(&key, 16);
    let hot = key.token(&claims_at(NOW, 7200));
    s.layer.validate_token(&hot).await.unwrap();
    for i in 0..64 {
        s.layer.validate_token(&hot).await.unwrap();
        let once = key.token(&claims_at(NOW, 3600 + i));
        s.layer.validate_token(&once).await.unwrap();
    }
    let before = stats(&s.layer).1;
    s.layer.validate_token(&hot).await.unwrap();
    assert_eq!(
        stats(&s.layer).1,
        before + 1,
        "the hot token is still cached"
    );
}

#[tokio::test]
async fn asynchronous_requirements_run_on_every_hit() {
    let key = TestKey::es256("k1");
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(Swappable::new(key_set(&[&key])))
        .add_audience(AUDIENCE)
        .with_clock(ManualClock::new(NOW))
        .require(Requirement::async_predicate("not revoked", move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }))
        .with_token_cache(10)
        .build()
        .unwrap();
    let token = key.token(&claims_at(NOW, 3600));
    for _ in 0..3 {
        layer.validate_token(&token).await.unwrap();
    }
    assert_eq!(stats(&layer), (1, 2, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn clones_of_the_layer_share_one_cache() {
    let key = TestKey::es256("k1");
    let s = setup(&key, 10);
    let token = key.token(&claims_at(NOW, 3600));
    s.layer.validate_token(&token).await.unwrap();
    let clone = s.layer.clone();
    clone.validate_token(&token).await.unwrap();
    assert_eq!(stats(&s.layer), (1, 1, 1));
}

/// With a JWKS URL (which tracks a key-set version), a new key set fetched for another token
/// makes every cached token be checked against it again, in the shared cache and this
/// thread's front cache alike.
#[tokio::test]
async fn a_remote_key_set_change_reaches_cached_tokens() {
    let issuer = TestIssuer::builder()
        .with_algorithms([Algorithm::ES256])
        .start()
        .unwrap();
    let provider = validate_jwt::RemoteJwks::jwks_url(&issuer.jwks_url())
        .add_issuer(ISSUER)
        .build()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(provider.clone())
        .add_audience(AUDIENCE)
        .with_token_cache(10)
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    let first_version = provider.key_set_version();
    let token = issuer.token().claims(claims()).sign();
    for _ in 0..3 {
        layer.validate_token(&token).await.unwrap();
    }
    assert_eq!(
        stats(&layer),
        (1, 2, 1),
        "a miss, a shared hit, a front hit"
    );

    // The old key is rotated out; a token signed by the new one makes the layer fetch the set.
    issuer.rotate();
    issuer.withdraw_old_keys();
    let new = issuer.token().claims(claims()).sign();
    layer.validate_token(&new).await.unwrap();
    assert_ne!(provider.key_set_version(), first_version);
    let err = layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::UnknownKey);
}

/// A token validated after a cold start (the layer waited for the key set) is cached too.
#[tokio::test]
async fn a_token_validated_after_a_cold_start_is_cached() {
    let issuer = TestIssuer::builder()
        .with_algorithms([Algorithm::ES256])
        .start()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            validate_jwt::RemoteJwks::jwks_url(&issuer.jwks_url())
                .add_issuer(ISSUER)
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .with_token_cache(10)
        .build()
        .unwrap();
    let token = issuer.token().claims(claims()).sign();
    // No key set yet: the first request waits for it, and its token is remembered.
    layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&layer), (1, 0, 1));
    layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&layer), (1, 1, 1));
}

/// A synchronous predicate that reads changing state (a revocation list) decides on every hit,
/// not only on the validation that filled the cache.
#[tokio::test]
async fn a_hit_reruns_synchronous_predicates() {
    let key = TestKey::es256("k1");
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    let list = revoked.clone();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(Swappable::new(key_set(&[&key])))
        .add_audience(AUDIENCE)
        .with_clock(ManualClock::new(NOW))
        .require(Requirement::predicate("not revoked", move |claims| {
            let jti = claims.get("jti").and_then(|j| j.as_str()).unwrap_or("");
            match list.lock().unwrap().iter().any(|r| r == jti) {
                true => Err(validate_jwt::Denied::new("the token was revoked")),
                false => Ok(()),
            }
        }))
        .with_token_cache(10)
        .build()
        .unwrap();
    let mut claims = claims_at(NOW, 3600);
    claims["jti"] = json!("t-1");
    let token = key.token(&claims);
    layer.validate_token(&token).await.unwrap();
    layer.validate_token(&token).await.unwrap();
    assert_eq!(stats(&layer), (1, 1, 1));
    revoked.lock().unwrap().push("t-1".into());
    for _ in 0..3 {
        let err = layer.validate_token(&token).await.unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::InsufficientScope);
        assert!(err.detail().unwrap().contains("revoked"), "{err}");
    }
}
