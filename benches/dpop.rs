//! The cost of a DPoP request (RFC 9449) over a bearer request, through the whole layer.
//!
//! ```text
//! cargo bench --bench dpop
//! cargo test --bench dpop        # each benchmark once, asserting every answer is 200 (CI)
//! ```
//!
//! Groups (ES256 access tokens with the Azure AD v2 claims of `support/mod.rs`, ES256 proofs):
//! * `floor/ES256`: the bare ES256 signature check (aws-lc-rs, key parsed once), as in
//!   `benches/validation.rs`: one proof verification costs about this much again;
//! * `layer/ES256`: a bearer token, DPoP off (the baseline);
//! * `bearer_dpop_allowed/ES256`: the same bearer token with `Dpop::allowed()` on (what DPoP
//!   costs requests that do not use it);
//! * `dpop/ES256`: a DPoP-bound token with a fresh proof per request (signed in the untimed
//!   setup): proof parsing, its `jwk`, its signature, `htm`/`htu`/`iat`/`ath`, the thumbprint
//!   against `cnf.jkt`, the in-memory replay store (sized for the whole run).
//!
//! No figures are stated here yet: they are measured on the benchmark machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use criterion::{BatchSize, Criterion};
use http::{HeaderValue, Request};
use serde_json::{Value, json};
use support::{AUDIENCE, SCOPE, TestKey, azure_claims, b64, call, inner, issuer, now};
use tower::Layer as _;
use validate_jwt::sender::{Dpop, InMemoryReplayStore};
use validate_jwt::{StaticKeys, ValidateJwtLayer};

const HTU: &str = "https://api.example/echo";

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn thumbprint(jwk: &Value) -> String {
    let canonical = json!({"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]});
    b64(sha256(canonical.to_string().as_bytes()))
}

fn layer(signer: &TestKey, dpop: Option<Dpop>) -> ValidateJwtLayer {
    let keys = StaticKeys::new()
        .add_jwks(json!({"keys": [signer.jwk(true)]}).to_string())
        .add_issuer(issuer());
    let mut builder = ValidateJwtLayer::builder()
        .add_keys(keys)
        .add_audience(AUDIENCE)
        .require_all_scopes([SCOPE]);
    if let Some(dpop) = dpop {
        builder = builder.with_dpop(dpop);
    }
    builder.build().unwrap()
}

fn request(authorization: &HeaderValue, proof: Option<HeaderValue>) -> Request<()> {
    let mut request = Request::get("/echo")
        .header("host", "api.example")
        .body(())
        .unwrap();
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, authorization.clone());
    if let Some(proof) = proof {
        request.headers_mut().insert("dpop", proof);
    }
    request
}

fn bench_bearer(c: &mut Criterion, id: &str, layer: &ValidateJwtLayer, token: &str) {
    let mut svc = layer.layer(inner());
    let header = support::bearer(token);
    assert_eq!(call(&mut svc, request(&header, None)).status(), 200, "{id}");
    c.bench_function(id, |b| {
        b.iter_batched(
            || request(&header, None),
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let signer = support::signer("ES256");
    let client = TestKey::es256("client");
    let jwk = client.jwk(false);
    let now = now();

    // The floor: one ES256 verification.
    let bearer_token = signer.token(&azure_claims(now, 0));
    let parts = support::signed_parts(std::slice::from_ref(&bearer_token));
    let key = ParsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        signer.public_key_bytes(),
    )
    .unwrap();
    c.bench_function("floor/ES256", |b| {
        b.iter(|| {
            let (m, s) = &parts[0];
            assert!(key.verify_sig(black_box(m), black_box(s)).is_ok());
        })
    });

    bench_bearer(&mut c, "layer/ES256", &layer(&signer, None), &bearer_token);
    bench_bearer(
        &mut c,
        "bearer_dpop_allowed/ES256",
        &layer(&signer, Some(Dpop::allowed())),
        &bearer_token,
    );

    // DPoP: a bound token, a fresh proof per request.
    let mut claims = azure_claims(now, 1);
    claims["cnf"] = json!({ "jkt": thumbprint(&jwk) });
    let token = signer.token(&claims);
    let authorization = HeaderValue::from_str(&format!("DPoP {token}")).unwrap();
    let ath = b64(sha256(token.as_bytes()));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let jti = AtomicUsize::new(0);
    let proof = || {
        let claims = json!({
            "jti": format!("bench-{}", jti.fetch_add(1, Ordering::Relaxed)),
            "htm": "GET",
            "htu": HTU,
            "iat": support::now(),
            "ath": ath,
        });
        HeaderValue::from_str(&client.sign(&header, &claims)).unwrap()
    };
    // Every proof of the run stays remembered for its window: room for all of them.
    let store = InMemoryReplayStore::with_capacity(10_000_000);
    let mut svc = layer(&signer, Some(Dpop::required().with_replay_store(store))).layer(inner());
    assert_eq!(
        call(&mut svc, request(&authorization, Some(proof()))).status(),
        200
    );
    c.bench_function("dpop/ES256", |b| {
        b.iter_batched(
            || request(&authorization, Some(proof())),
            |req| {
                let response = call(&mut svc, req);
                assert_eq!(response.status(), 200);
                response
            },
            BatchSize::SmallInput,
        )
    });
    c.final_summary();
}
