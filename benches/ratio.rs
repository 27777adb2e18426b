//! The layer's cost over the bare signature check, as a ratio a reader can rely on. Three
//! things measured on the same 1,000 RS256 tokens, interleaved so that a machine getting faster
//! or slower during the run cannot skew their ratios:
//!
//! * `floor`: aws-lc-rs verifying the signatures with a key parsed once, over pre-decoded bytes
//!   (the signature check alone);
//! * `signature only`: the HTTP benchmark's ceiling (`benches/support/signature_only.rs`) on a
//!   request — what no validator can skip: the token from the header, its header decoded and the
//!   `kid` read, the key looked up, the signature decoded and verified, the payload decoded and
//!   put in the request's extensions;
//! * `layer`: the whole layer, cache off, on the same requests.
//!
//! Each pair is ten short turns of each, in turn. Prints every pair's ratios, then their medians
//! and spreads, by the thread's CPU time (which leaves out a virtual machine's steal time; see
//! `cpu_ns`) and, for layer ÷ floor, by wall time.
//!
//! `cargo bench --bench ratio` (or `-- --pairs 15`). Under `cargo test --bench ratio` it runs
//! one short pair, only to check that it works.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/signature_only.rs"]
mod ceiling;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
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
    // The key, parsed once, for the floor and the signature-only check alike.
    let by_kid: HashMap<String, ParsedPublicKey> = [(
        signer.kid.clone(),
        ParsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signer.public_key_bytes(),
        )
        .unwrap(),
    )]
    .into_iter()
    .collect();
    let key = &by_kid[&signer.kid];
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
    // The signature-only server's check (the HTTP benchmark's ceiling), on the same requests,
    // its payload into the request's extensions as there.
    let mut signature_only = |i: usize| {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(AUTHORIZATION, headers[i].clone());
        let payload = ceiling::verify(request.headers(), &by_kid).expect("a verified token");
        request.extensions_mut().insert(payload);
        black_box(request);
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

    // Each pair: SLICES short turns of each of the three, in turn (the order reverses every
    // other slice), so that whatever the machine does during the pair falls on all alike.
    const SLICES: u32 = 10;
    // A turn of each first, unrecorded: the first turns run cold.
    time(&mut floor);
    time(&mut signature_only);
    time(&mut through_layer);
    let (mut by_floor, mut wall_by_floor) = (Vec::new(), Vec::new());
    let (mut by_ceiling, mut ceiling_by_floor) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (mut f, mut o, mut l) = (Turn::default(), Turn::default(), Turn::default());
        for slice in 0..SLICES {
            if (pair + slice) % 2 == 0 {
                f += time(&mut floor);
                o += time(&mut signature_only);
                l += time(&mut through_layer);
            } else {
                l += time(&mut through_layer);
                o += time(&mut signature_only);
                f += time(&mut floor);
            }
        }
        let n = f64::from(SLICES);
        println!(
            "pair {pair}: CPU floor {:.0} ns, signature only {:.0} ns, layer {:.0} ns; \
             layer ÷ floor {:.3}, layer ÷ signature only {:.3}, signature only ÷ floor {:.3} \
             (wall: layer ÷ floor {:.3})",
            f.cpu / n,
            o.cpu / n,
            l.cpu / n,
            l.cpu / f.cpu,
            l.cpu / o.cpu,
            o.cpu / f.cpu,
            l.wall / f.wall,
        );
        by_floor.push(l.cpu / f.cpu);
        wall_by_floor.push(l.wall / f.wall);
        by_ceiling.push(l.cpu / o.cpu);
        ceiling_by_floor.push(o.cpu / f.cpu);
    }
    let line = |what: &str, ratios: &mut Vec<f64>| {
        let (median, low, high) = summary(ratios);
        println!("{what}: median {median:.3}, spread {low:.3}–{high:.3}");
    };
    println!("RS256 over {pairs} interleaved pairs, by CPU time:");
    line("  layer ÷ floor", &mut by_floor);
    line("  layer ÷ signature only", &mut by_ceiling);
    line("  signature only ÷ floor", &mut ceiling_by_floor);
    line("  layer ÷ floor by wall time", &mut wall_by_floor);
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
