//! Exact instruction, instruction-cache and branch counts of the request path, for before/after
//! comparisons that a noisy machine cannot blur: `layer_all` sends N distinct Azure-shaped tokens
//! (RS256 by default) through the layer, `floor_all` verifies their signatures with a bare
//! aws-lc-rs key, each in its own function so that callgrind can count one of them alone.
//!
//! ```text
//! cargo build --release --example callgrind_layer
//! valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes \
//!     --toggle-collect='callgrind_layer::layer_all' --callgrind-out-file=layer.out \
//!     target/release/examples/callgrind_layer RS256 1000
//! callgrind_annotate --show=Ir,I1mr,Bcm layer.out | grep 'PROGRAM TOTALS'   # ÷ 1000 = per request
//! ```
//!
//! With `--toggle-collect='callgrind_layer::floor_all'` it counts the bare check instead (RS256
//! and ES256 only). Figures in the README's micro-benchmarks section.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use tower::{Layer as _, Service};
use validate_jwt::{StaticKeys, ValidateJwtLayer};

use support::{AUDIENCE, SCOPE, azure_claims, issuer, now};

#[inline(never)]
fn floor_all(key: &ParsedPublicKey, parts: &[(Vec<u8>, Vec<u8>)]) {
    for (message, sig) in parts {
        assert!(key.verify_sig(black_box(message), black_box(sig)).is_ok());
    }
}

#[inline(never)]
fn layer_all<S, B>(svc: &mut S, headers: &[HeaderValue])
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for header in headers {
        let mut request = Request::new(());
        request.headers_mut().insert(AUTHORIZATION, header.clone());
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        match pin!(svc.call(request)).poll(&mut cx) {
            Poll::Ready(Ok(response)) => assert_eq!(response.status(), 200),
            _ => panic!("the layer did not answer at once"),
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let alg: &'static str = match args.next().as_deref() {
        None | Some("RS256") => "RS256",
        Some("ES256") => "ES256",
        Some("EdDSA") => "EdDSA",
        Some("HS256") => "HS256",
        Some(other) => panic!("RS256, ES256, EdDSA or HS256, not {other}"),
    };
    let n: usize = args.next().map_or(1000, |n| n.parse().unwrap());
    let signer = support::signer(alg);
    let now = now();
    let tokens: Vec<String> = (0..n)
        .map(|i| signer.token(&azure_claims(now, i)))
        .collect();
    let headers: Vec<HeaderValue> = tokens.iter().map(|t| support::bearer(t)).collect();
    let keys = match alg {
        "HS256" => StaticKeys::new().add_hmac_secret(
            Some(&signer.kid),
            b"a benchmark secret of at least 32 bytes, really",
        ),
        _ => StaticKeys::new().add_jwk(signer.jwk(true).to_string()),
    };
    let layer = ValidateJwtLayer::builder()
        .add_keys(keys.add_issuer(issuer()))
        .add_audience(AUDIENCE)
        .require_all_scopes([SCOPE])
        .build()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let floor: Option<&'static dyn signature::VerificationAlgorithm> = match alg {
        "RS256" => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        "ES256" => Some(&signature::ECDSA_P256_SHA256_FIXED),
        _ => None,
    };
    if let Some(floor) = floor {
        let parts = support::signed_parts(&tokens);
        let key = ParsedPublicKey::new(floor, signer.public_key_bytes()).unwrap();
        floor_all(&key, &parts);
    }
    layer_all(&mut svc, &headers);
}
