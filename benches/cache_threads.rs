//! Verified-token cache hits from several threads at once: one hot token (the same client
//! hammering a service), each thread with its own clone of the layer, as a multi-threaded
//! server has.
//!
//! ```text
//! cargo bench --bench cache_threads            # 1 and 2 threads (one per core here)
//! THREADS=1,2,4,8 cargo bench --bench cache_threads
//! ```
//!
//! Prints hits per second for each thread count and the scaling against one thread. With
//! `cargo test --benches` it runs a few iterations only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use serde_json::json;
use support::{AUDIENCE, SCOPE, azure_claims, issuer, now, signer};
use tower::{Layer as _, Service};
use validate_jwt::{StaticKeys, ValidateJwtLayer};

fn ok(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

/// `n` requests with `header` through a fresh service of `layer`, each polled once.
fn hammer(layer: &ValidateJwtLayer, header: &HeaderValue, n: u64) {
    let mut svc = layer.layer(tower::service_fn(ok));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        let mut request = Request::new(());
        request.headers_mut().insert(AUTHORIZATION, header.clone());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        match pin!(svc.call(request)).poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
            _ => panic!("the ready path answers at once"),
        }
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let per_thread: u64 = if measuring { 2_000_000 } else { 1_000 };
    let threads: Vec<usize> = std::env::var("THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|t| t.trim().parse().expect("THREADS: a list of numbers"))
        .collect();

    let key = signer("RS256");
    let header = support::bearer(&key.token(&azure_claims(now(), 0)));
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(json!({"keys": [key.jwk(true)]}).to_string())
                .add_issuer(issuer()),
        )
        .add_audience(AUDIENCE)
        .require_all_scopes([SCOPE])
        .with_token_cache(10_000)
        .build()
        .unwrap();
    hammer(&layer, &header, 2);

    let mut single = None;
    println!("| threads | hits per second | vs the first row |\n|---:|---:|---:|");
    for n in threads {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..n {
                scope.spawn(|| hammer(&layer, &header, per_thread));
            }
        });
        let rate = (per_thread * n as u64) as f64 / start.elapsed().as_secs_f64();
        let base = *single.get_or_insert(rate);
        println!("| {n} | {rate:.0} | {:.2}× |", rate / base);
    }
}
