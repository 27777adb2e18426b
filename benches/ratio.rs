//! The layer's cost over the bare signature check, as a ratio a reader can rely on: `floor`
//! (aws-lc-rs verifying RS256 signatures with a key parsed once) and `layer` (the whole layer,
//! cache off, on the same tokens) measured in interleaved pairs, so that a machine getting
//! faster or slower between the two halves cannot skew the ratio: each pair is ten short turns
//! of each half, alternating. Prints every pair's ratio, their median and their spread, by the
//! thread's CPU time (which leaves out a virtual machine's steal time; see `cpu_ns`) and by wall
//! time.
//!
//! `cargo bench --bench ratio` (or `-- --pairs 15`). Under `cargo test --bench ratio` it runs
//! one short pair, only to check that it works.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use tower::{Layer as _, Service};
use validate_jwt::{StaticKeys, ValidateJwtLayer};

use support::{AUDIENCE, SCOPE, azure_claims, issuer, now};

const DISTINCT: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let pairs = args
        .iter()
        .position(|a| a == "--pairs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 7 } else { 1 });
    // One turn of a half: SLICES of them per half and pair (below).
    let half = if benching {
        Duration::from_millis(200)
    } else {
        Duration::from_millis(2)
    };

    let signer = support::signer("RS256");
    let now = now();
    let tokens: Vec<String> = (0..DISTINCT)
        .map(|i| signer.token(&azure_claims(now, i)))
        .collect();
    let parts = support::signed_parts(&tokens);
    let headers: Vec<HeaderValue> = tokens.iter().map(|t| support::bearer(t)).collect();
    let key = ParsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        signer.public_key_bytes(),
    )
    .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwk(signer.jwk(true).to_string())
                .add_issuer(issuer()),
        )
        .add_audience(AUDIENCE)
        .require_all_scopes([SCOPE])
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let mut cx = Context::from_waker(Waker::noop());

    // Nanoseconds per call of `f`, called in a loop for about `half`: the thread's CPU time
    // (see `cpu_ns`) and the wall time.
    let time = |f: &mut dyn FnMut(usize)| {
        let cpu = cpu_ns();
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed() < half {
            for _ in 0..64 {
                f(n % DISTINCT);
                n += 1;
            }
        }
        let wall = start.elapsed().as_nanos() as f64;
        let cpu = match (cpu, cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64,
            _ => wall,
        };
        Turn {
            cpu: cpu / n as f64,
            wall: wall / n as f64,
        }
    };
    let mut floor = |i: usize| {
        let (m, s) = &parts[i];
        assert!(key.verify_sig(black_box(m), black_box(s)).is_ok());
    };
    let mut through_layer = |i: usize| {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(AUTHORIZATION, headers[i].clone());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let future = pin!(svc.call(request));
        match future.poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
            _ => panic!("the layer did not answer at once"),
        }
    };

    // Each pair: SLICES short turns of each half, alternating (which goes first alternates too),
    // so that whatever the machine does during the pair falls on both halves alike.
    const SLICES: u32 = 10;
    // A turn of each first, unrecorded: the first turns run cold.
    time(&mut floor);
    time(&mut through_layer);
    let (mut ratios, mut wall_ratios) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (mut f, mut l) = (Turn::default(), Turn::default());
        for slice in 0..SLICES {
            if (pair + slice) % 2 == 0 {
                f += time(&mut floor);
                l += time(&mut through_layer);
            } else {
                l += time(&mut through_layer);
                f += time(&mut floor);
            }
        }
        println!(
            "pair {pair}: CPU floor {:.0} ns, layer {:.0} ns, layer ÷ floor {:.3} \
             (wall: {:.0} ns, {:.0} ns, {:.3})",
            f.cpu / f64::from(SLICES),
            l.cpu / f64::from(SLICES),
            l.cpu / f.cpu,
            f.wall / f64::from(SLICES),
            l.wall / f64::from(SLICES),
            l.wall / f.wall,
        );
        ratios.push(l.cpu / f.cpu);
        wall_ratios.push(l.wall / f.wall);
    }
    let (median, low, high) = summary(&mut ratios);
    let (wall_median, wall_low, wall_high) = summary(&mut wall_ratios);
    println!(
        "RS256 layer ÷ floor over {pairs} interleaved pairs, CPU time: median {median:.3}, \
         spread {low:.3}–{high:.3} (wall time: median {wall_median:.3}, spread \
         {wall_low:.3}–{wall_high:.3})"
    );
}

/// One turn's nanoseconds per call: the thread's CPU time and the wall time.
#[derive(Default, Clone, Copy)]
struct Turn {
    cpu: f64,
    wall: f64,
}

impl std::ops::AddAssign for Turn {
    fn add_assign(&mut self, other: Turn) {
        self.cpu += other.cpu;
        self.wall += other.wall;
    }
}

/// The median and the extremes.
fn summary(ratios: &mut [f64]) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    (
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    )
}

/// This thread's CPU time in nanoseconds, from `/proc/thread-self/schedstat` (Linux). On a
/// virtual machine with steal-time accounting it leaves out the time the hypervisor gave the
/// core to someone else, which wall time counts and which made single runs here swing by ±10 %;
/// `None` (wall time only) elsewhere.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
