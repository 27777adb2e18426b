//! The ready path's heap allocations, counted by a global allocator: a fixed few (the claims
//! handed to the service and the request's extensions map), however large the token's payload,
//! and, for a token the verified-token cache already holds, nothing beyond the extensions.
#![allow(clippy::unwrap_used, clippy::panic)]
// A counting global allocator is the one place that needs `unsafe` (forwarding to `System`).
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::*;
use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use serde_json::{Value, json};
use tower::{Layer as _, Service};
use validate_jwt::{Claims, StaticKeys, ValidateJwtLayer};

/// Counts this thread's allocations (tests run on several threads at once).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// The inner service: checks the claims arrived, allocates nothing.
fn inner(request: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    assert!(request.extensions().get::<Claims>().is_some());
    std::future::ready(Ok(Response::new(())))
}

/// Allocations made by one request through `svc` (built, polled once, answered 200). The
/// request itself is made before counting, the response dropped after.
fn allocations_for<S, B>(svc: &mut S, header: &HeaderValue) -> usize
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut request = Request::new(());
    request.headers_mut().insert(AUTHORIZATION, header.clone());
    let mut cx = Context::from_waker(Waker::noop());
    let before = allocations();
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let response = match pin!(svc.call(request)).poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("the ready path answers at once"),
    };
    let made = allocations() - before;
    assert_eq!(response.status(), 200);
    made
}

fn claims_with(extra: usize) -> Value {
    let mut claims = claims();
    for i in 0..extra {
        claims[format!("claim_{i:03}")] = json!(format!("a value for claim number {i}"));
    }
    claims["scp"] = json!("files.read files.write");
    claims
}

fn layer(key: &TestKey, cache: usize) -> ValidateJwtLayer {
    ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_jwks(jwks(&[key]).to_string()))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .require_all_scopes(["files.read"])
        .with_token_cache(cache)
        .build()
        .unwrap()
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

#[test]
fn the_ready_path_allocates_a_fixed_few_whatever_the_payload() {
    let key = TestKey::es256("k1");
    let mut svc = layer(&key, 0).layer(tower::service_fn(inner));
    let small = bearer(&key.token(&claims_with(0)));
    let large = bearer(&key.token(&claims_with(60)));
    // Warm up (lazily initialised statics, thread locals).
    allocations_for(&mut svc, &small);

    let for_small = allocations_for(&mut svc, &small);
    let for_large = allocations_for(&mut svc, &large);
    assert_eq!(
        for_small, for_large,
        "allocations must not grow with the payload"
    );
    // The claims (payload text, shared record, the captured `scp`) and the request's
    // extensions map with the claims in it.
    assert!(
        for_small <= 7,
        "{for_small} allocations on the ready path (budget: 7)"
    );
}

#[test]
fn a_cache_hit_allocates_only_the_extensions() {
    let key = TestKey::es256("k1");
    let mut svc = layer(&key, 100).layer(tower::service_fn(inner));
    let token = bearer(&key.token(&claims_with(10)));
    let miss = allocations_for(&mut svc, &token);
    // Looked up again at once: the hit copies the entry into this thread's front cache.
    let promotion = allocations_for(&mut svc, &token);
    let front_hit = allocations_for(&mut svc, &token);
    assert!(
        front_hit < miss && front_hit < promotion,
        "a hit ({front_hit}) allocates less than a miss ({miss}) or a promotion ({promotion})"
    );
    // The claims are shared (an `Arc`); what is left is the request's extensions map and the
    // boxed claims in it.
    assert_eq!(front_hit, 3, "allocations on a front-cache hit");

    // A token seen now and then is served from the shared cache, without a copy either.
    let mut svc = layer(&key, 1000).layer(tower::service_fn(inner));
    let tokens: Vec<HeaderValue> = (0..20)
        .map(|i| bearer(&key.token(&claims_with(i % 3))))
        .collect();
    for token in &tokens {
        allocations_for(&mut svc, token);
    }
    let shared_hit = allocations_for(&mut svc, &tokens[0]);
    assert_eq!(shared_hit, 3, "allocations on a shared-cache hit");
}
