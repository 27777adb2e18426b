//! Validation cost, against its floor (the signature check alone) and `jsonwebtoken::decode`.
//!
//! ```text
//! cargo bench --bench validation                 # everything (about 3 minutes on 2 cores)
//! cargo bench --bench validation -- RS256        # one algorithm
//! ```
//!
//! Groups (every token is an Azure AD v2 access token, 1.48 KB with RS256, see
//! `support/mod.rs`):
//! * `floor/ALG`: the bare signature check with a key parsed once (aws-lc-rs
//!   `ParsedPublicKey::verify_sig`, `hmac::verify`), over pre-decoded bytes;
//! * `jsonwebtoken/ALG`: `jsonwebtoken::decode` with a prebuilt `DecodingKey` and `Validation`
//!   (issuer, audience, exp), claims into a small struct, plus the scope check;
//! * `layer/ALG`: the whole middleware on a trivial inner service (`poll_ready`, `call`, the
//!   future polled once: what `ServiceExt::oneshot` does, without cloning the service): extraction, header, key lookup, signature, time, issuer, audience, one scope
//!   requirement, `Claims` into the request's extensions; 1,000 distinct tokens in turn;
//! * `layer_cache_hit/ALG`: the same with the token cache on and one repeated token;
//! * `layer_cache_miss/ALG`: cache on, 1,000 distinct tokens through a 100-entry cache;
//! * `key_lookup/N`: HS256 through the layer with N keys in the key set;
//! * `requirements/N`: HS256 through the layer with N requirements (all met);
//! * `parts/*`: base64url and JSON costs on their own, to read the overhead by.
//!
//! After a full run it prints a Markdown table of medians and ratios to the floor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use criterion::{BatchSize, Criterion};
use http::{HeaderValue, Request, header::AUTHORIZATION};
use serde_json::{Value, json};
use support::{ALGORITHMS, AUDIENCE, SCOPE, TestKey, azure_claims, call, inner, issuer, now};
use tower::Layer as _;
use validate_jwt::{Requirement, StaticKeys, ValidateJwtLayer};

/// Distinct tokens per algorithm, used in turn.
const DISTINCT: usize = 1_000;

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// One algorithm's key and tokens.
struct Case {
    signer: TestKey,
    tokens: Vec<String>,
    headers: Vec<HeaderValue>,
}

impl Case {
    fn new(alg: &'static str) -> Case {
        let signer = support::signer(alg);
        let now = now();
        let tokens: Vec<String> = (0..DISTINCT)
            .map(|i| signer.token(&azure_claims(now, i)))
            .collect();
        let headers = tokens.iter().map(|t| support::bearer(t)).collect();
        Case {
            signer,
            tokens,
            headers,
        }
    }
}

/// A layer like a real Azure AD API's: its keys bound to the tenant's issuer, its audience,
/// one required scope.
fn layer(cases: &[Case], cache: usize) -> ValidateJwtLayer {
    builder(cases, cache).build().unwrap()
}

fn builder(cases: &[Case], cache: usize) -> validate_jwt::ValidateJwtBuilder {
    let jwks = json!({"keys": cases.iter().map(|c| c.signer.jwk(true)).collect::<Vec<_>>()});
    let keys = StaticKeys::new().add_jwks(jwks.to_string());
    ValidateJwtLayer::builder()
        .add_keys(keys.add_issuer(issuer()))
        .add_audience(AUDIENCE)
        .require_all_scopes([SCOPE])
        .with_token_cache(cache)
}

fn request(header: &HeaderValue) -> Request<()> {
    let mut request = Request::new(());
    request.headers_mut().insert(AUTHORIZATION, header.clone());
    request
}

/// Benchmarks requests cycling through `headers` (setup excluded from the timing).
fn bench_layer(c: &mut Criterion, id: &str, layer: &ValidateJwtLayer, headers: &[HeaderValue]) {
    let mut svc = layer.layer(inner());
    for h in headers.iter().take(3) {
        let status = call(&mut svc, request(h)).status();
        assert_eq!(status, 200, "{id}");
    }
    let mut i = 0;
    c.bench_function(id, |b| {
        b.iter_batched(
            || {
                i = (i + 1) % headers.len();
                request(&headers[i])
            },
            |req| call(&mut svc, req),
            BatchSize::SmallInput,
        )
    });
}

fn floor(c: &mut Criterion, case: &Case) {
    let parts = support::signed_parts(&case.tokens);
    let pk = case.signer.public_key_bytes();
    let id = format!("floor/{}", case.signer.alg);
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % parts.len();
        let (m, s) = &parts[i];
        (&m[..], &s[..])
    };
    if case.signer.alg == "HS256" {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &pk);
        c.bench_function(&id, |b| {
            b.iter(|| {
                let (m, s) = next();
                assert!(hmac::verify(&key, black_box(m), black_box(s)).is_ok());
            })
        });
        return;
    }
    let alg: &'static dyn signature::VerificationAlgorithm = match case.signer.alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
        "EdDSA" => &signature::ED25519,
        other => panic!("{other}"),
    };
    let key = ParsedPublicKey::new(alg, &pk).unwrap();
    c.bench_function(&id, |b| {
        b.iter(|| {
            let (m, s) = next();
            assert!(key.verify_sig(black_box(m), black_box(s)).is_ok());
        })
    });
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct AzureClaims {
    sub: String,
    oid: String,
    tid: String,
    scp: String,
}

fn jsonwebtoken_decode(c: &mut Criterion, case: &Case) {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    // The crate's features enable jsonwebtoken's aws_lc_rs backend; with `--all-features` its
    // rust_crypto backend is on too, so choose the provider explicitly.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let jwk = case.signer.jwk(true);
    let s = |k: &str| jwk[k].as_str().unwrap().to_owned();
    let (alg, key) = match case.signer.alg {
        "RS256" => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(&s("n"), &s("e")).unwrap(),
        ),
        "PS256" => (
            Algorithm::PS256,
            DecodingKey::from_rsa_components(&s("n"), &s("e")).unwrap(),
        ),
        "ES256" => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(&s("x"), &s("y")).unwrap(),
        ),
        "ES384" => (
            Algorithm::ES384,
            DecodingKey::from_ec_components(&s("x"), &s("y")).unwrap(),
        ),
        "EdDSA" => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(&s("x")).unwrap(),
        ),
        "HS256" => (Algorithm::HS256, DecodingKey::from_secret(&unb64(&s("k")))),
        other => panic!("{other}"),
    };
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[issuer()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    let check = |token: &str| {
        let data = decode::<AzureClaims>(token, &key, &validation).unwrap();
        assert!(data.claims.scp.split(' ').any(|s| s == SCOPE));
        data
    };
    check(&case.tokens[0]);
    let mut i = 0;
    c.bench_function(&format!("jsonwebtoken/{}", case.signer.alg), |b| {
        b.iter(|| {
            i = (i + 1) % case.tokens.len();
            check(black_box(&case.tokens[i]))
        })
    });
}

/// What the steps around the signature cost on their own (to read the overhead by): base64url
/// of the payload with the `base64` crate and with `base64-simd` (the layer's), serde_json
/// skimming the payload, and the layer's own payload parse (`Claims::from_unverified_json`:
/// a copy, the one-pass scan, the registered claims).
fn parts(c: &mut Criterion, case: &Case) {
    let token = &case.tokens[0];
    let payload_b64 = token.split('.').nth(1).unwrap().as_bytes().to_vec();
    let payload = unb64(token.split('.').nth(1).unwrap());
    c.bench_function("parts/base64_payload", |b| {
        b.iter(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(black_box(&payload_b64))
                .unwrap()
        })
    });
    // What the layer uses.
    c.bench_function("parts/base64_simd_payload", |b| {
        b.iter(|| {
            base64_simd::URL_SAFE_NO_PAD
                .decode_to_vec(black_box(&payload_b64))
                .unwrap()
        })
    });
    c.bench_function("parts/json_skim_payload", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&payload)).unwrap())
    });
    c.bench_function("parts/claims_from_json", |b| {
        b.iter(|| validate_jwt::Claims::from_unverified_json(black_box(&payload)).unwrap())
    });
}

/// HS256 tokens for a key set of `n` keys, signed by the last.
fn hmac_layer(n: usize, requirements: Vec<Requirement>) -> (ValidateJwtLayer, Vec<HeaderValue>) {
    let secret = |i: usize| format!("secret number {i:04} of at least thirty-two bytes");
    let mut keys = StaticKeys::new();
    for i in 0..n {
        keys = keys.add_hmac_secret(Some(&format!("key-{i:04}")), secret(i));
    }
    let kid = format!("key-{:04}", n - 1);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret(n - 1).as_bytes());
    let now = now();
    let headers = (0..DISTINCT)
        .map(|i| {
            let header = json!({"typ": "JWT", "alg": "HS256", "kid": kid});
            let input = format!(
                "{}.{}",
                support::b64(header.to_string()),
                support::b64(azure_claims(now, i).to_string())
            );
            let sig = hmac::sign(&key, input.as_bytes());
            support::bearer(&format!("{input}.{}", support::b64(sig)))
        })
        .collect();
    let mut builder = ValidateJwtLayer::builder()
        .add_keys(keys.add_issuer(issuer()))
        .add_audience(AUDIENCE);
    for r in requirements {
        builder = builder.require(r);
    }
    (builder.build().unwrap(), headers)
}

/// `n` requirements the sample tokens all meet.
fn requirements(n: usize) -> Vec<Requirement> {
    let all: Vec<Requirement> = vec![
        Requirement::all_scopes([SCOPE]),
        Requirement::all_scopes(["User.Read"]),
        Requirement::any_scope(["User.ReadWrite", "User.Read"]),
        Requirement::all_roles(["Files.Read.All"]),
        Requirement::any_role(["Reports.Write", "Files.Read.All"]),
        Requirement::claim("tid").any_of([support::TENANT]),
        Requirement::claim("ver").any_of(["2.0"]),
        Requirement::claim("azpacr").any_of(["0", "1"]),
        Requirement::claim("oid").any_of(["690222be-ff1a-4d56-abd1-7e4f7d38e474"]),
        Requirement::claim("groups").any_of(["4fe90ae7-065a-478b-9400-e0a0e1cbd540"]),
        Requirement::claim("azp").any_of(["c44b4083-3bb0-49c1-b47d-974e53cbdf3c"]),
        Requirement::claim("preferred_username").any_of(["abeli@microsoft.com"]),
        Requirement::claim("name").any_of(["Abe Lincoln"]),
        Requirement::claim("rh").any_of(["0.AXEAv4j5cvGGr0GRqy180BHbR-ZfXW2xxbVMslRzN1BdxrtxAFc."]),
        Requirement::claim("sub").any_of(["HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ"]),
        Requirement::claim("aud").any_of([AUDIENCE]),
        Requirement::any([
            Requirement::all_scopes(["Files.ReadWrite"]),
            Requirement::all_roles(["Files.Read.All"]),
        ]),
        Requirement::claim("scp")
            .separator(" ")
            .all_of([SCOPE, "User.Read"]),
        Requirement::claim_path(["roles"]).all_of(["Files.Read.All"]),
        Requirement::predicate("a v2 token", |c| {
            if c.get("ver").and_then(Value::as_str) == Some("2.0") {
                Ok(())
            } else {
                Err(validate_jwt::Denied::new("not a v2 token"))
            }
        }),
    ];
    assert!(n <= all.len());
    all.into_iter().take(n).collect()
}

fn benches(c: &mut Criterion) {
    let cases: Vec<Case> = ALGORITHMS.iter().map(|a| Case::new(a)).collect();
    eprintln!(
        "token sizes: {}",
        cases
            .iter()
            .map(|c| format!("{} {} B", c.signer.alg, c.tokens[0].len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let off = layer(&cases, 0);
    for case in &cases {
        let alg = case.signer.alg;
        floor(c, case);
        jsonwebtoken_decode(c, case);
        bench_layer(c, &format!("layer/{alg}"), &off, &case.headers);
        let hit = layer(&cases, 10_000);
        bench_layer(
            c,
            &format!("layer_cache_hit/{alg}"),
            &hit,
            &case.headers[..1],
        );
        if matches!(alg, "RS256" | "ES256") {
            let small = layer(&cases, 100);
            bench_layer(c, &format!("layer_cache_miss/{alg}"), &small, &case.headers);
        }
    }
    parts(c, &cases[0]);
    for n in [1, 10, 100] {
        let (layer, headers) = hmac_layer(n, vec![]);
        bench_layer(c, &format!("key_lookup/{n}"), &layer, &headers);
    }
    for n in [0, 1, 20] {
        let (layer, headers) = hmac_layer(1, requirements(n));
        bench_layer(c, &format!("requirements/{n}"), &layer, &headers);
    }
    // With `--features metrics`: the same requests with a Prometheus recorder installed (for
    // this thread only, so the figures above stay the no-recorder ones): the per-request cost
    // of recording the outcome (and the cache lookup).
    #[cfg(feature = "metrics")]
    if let Some(case) = cases.iter().find(|c| c.signer.alg == "ES256") {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let hit = layer(&cases, 10_000);
        let by_issuer = builder(&cases, 10_000)
            .label_metrics_by_issuer()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            bench_layer(c, "layer_prometheus/ES256", &off, &case.headers);
            bench_layer(
                c,
                "layer_cache_hit_prometheus/ES256",
                &hit,
                &case.headers[..1],
            );
            // The opt-in `issuer` label: the request counter's key is built per request.
            bench_layer(
                c,
                "layer_cache_hit_prometheus_by_issuer/ES256",
                &by_issuer,
                &case.headers[..1],
            );
        });
    }
}

/// Where criterion keeps its results (as criterion itself decides).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

fn median_ns(id: &str) -> Option<f64> {
    // Criterion names a benchmark's directory after its id, with `/` as `_`.
    let path = criterion_dir()
        .join(id.replace('/', "_"))
        .join("new")
        .join("estimates.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) => {
            let s = format!("{:.0}", ns);
            // Thousands separators.
            let mut out = String::new();
            for (i, ch) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(ch);
            }
            out
        }
        None => "–".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

/// The README table, from criterion's saved medians.
fn print_table() {
    println!(
        "\n| alg | floor (ns) | jsonwebtoken::decode | ratio | layer, cache off | ratio | layer, cache hit | ratio | off / jsonwebtoken | hit speed-up |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for alg in ALGORITHMS {
        let floor = median_ns(&format!("floor/{alg}"));
        let jwt = median_ns(&format!("jsonwebtoken/{alg}"));
        let off = median_ns(&format!("layer/{alg}"));
        let hit = median_ns(&format!("layer_cache_hit/{alg}"));
        let speedup = match (off, hit) {
            (Some(o), Some(h)) => format!("{:.0}×", o / h),
            _ => "–".into(),
        };
        println!(
            "| {alg} | {} | {} | {} | {} | {} | {} | {} | {} | {speedup} |",
            fmt_ns(floor),
            fmt_ns(jwt),
            ratio(jwt, floor),
            fmt_ns(off),
            ratio(off, floor),
            fmt_ns(hit),
            ratio(hit, floor),
            ratio(off, jwt),
        );
    }
    println!("\n| benchmark | median (ns) |\n|---|---:|");
    for id in [
        "layer_cache_miss/RS256",
        "layer_cache_miss/ES256",
        "key_lookup/1",
        "key_lookup/10",
        "key_lookup/100",
        "requirements/0",
        "requirements/1",
        "requirements/20",
    ] {
        println!("| {id} | {} |", fmt_ns(median_ns(id)));
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        print_table();
    }
}
