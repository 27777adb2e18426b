//! The attack suite: every published JWT validation failure, one named test each, through the
//! real layer (an axum `Router` driven with `oneshot`, real aws-lc-rs keys and signatures).
//!
//! Each test asserts the exact answer: the status, the `error` attribute of `WWW-Authenticate`,
//! the body's `error`, and the [`JwtErrorKind`] the layer put in the response's extensions, so
//! that removing a defence (or letting a later check catch what an earlier one should) fails it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use common::*;
use serde_json::{Value, json};
use validate_jwt::{
    Algorithm, JwtErrorKind, KeyError, KeyErrorKind, KeySet, RemoteJwks, StaticKeys,
    ValidateJwtLayer,
};

// ---- the identity provider and the layer ---------------------------------------------------

/// The legitimate issuer's keys. Their JWKs name their algorithm (`alg`), as Azure AD's do.
struct Idp {
    rs: TestKey,
    es: TestKey,
    es384: TestKey,
    ed: TestKey,
}

static IDP: LazyLock<Idp> = LazyLock::new(|| Idp {
    rs: TestKey::rsa("rs", "RS256"),
    es: TestKey::es256("es"),
    es384: TestKey::es384("es384"),
    ed: TestKey::ed25519("ed"),
});

/// A key the attacker controls (never configured anywhere).
static ATTACKER: LazyLock<TestKey> = LazyLock::new(|| TestKey::rsa("attacker", "RS256"));

const ATTACKER_CERT: &str = include_str!("fixtures/attacker/attacker.crt.pem");
const ATTACKER_KEY: &str = include_str!("fixtures/attacker/attacker.key.pem");

/// An unrelated HMAC secret: configuring it puts HS256 on the allow-list, so the HMAC cases
/// reach the key binding instead of stopping at the allow-list.
const SHARED_SECRET: &[u8] = b"an unrelated shared secret, 32+ bytes long";

fn idp_keys() -> StaticKeys {
    let k = &*IDP;
    StaticKeys::new()
        .add_jwks(jwks(&[&k.rs, &k.es, &k.es384, &k.ed]).to_string())
        .add_issuer(ISSUER)
}

fn default_layer() -> ValidateJwtLayer {
    ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_audience(AUDIENCE)
        .build()
        .unwrap()
}

/// The default layer plus an HMAC secret, so HS256/384/512 are allowed algorithms.
fn layer_with_hmac_allowed() -> ValidateJwtLayer {
    ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(Some("shared"), SHARED_SECRET)
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap()
}

// ---- token surgery ---------------------------------------------------------------------------

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// `header.payload.signature` from a header JSON, claims and raw signature bytes.
fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(signature)
    )
}

/// Replaces the signature segment with `signature` (raw bytes).
fn with_signature(token: &str, signature: &[u8]) -> String {
    let s = segments(token);
    format!("{}.{}.{}", s[0], s[1], b64(signature))
}

fn signature_of(token: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&segments(token)[2])
        .unwrap()
}

fn hmac(alg: &str, secret: &[u8], message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let alg = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        other => panic!("not an HMAC algorithm: {other}"),
    };
    hmac::sign(&hmac::Key::new(alg, secret), message)
        .as_ref()
        .to_vec()
}

/// A token signed with HMAC using `secret` (the "key confusion" forgery).
fn hmac_token(alg: &str, kid: Option<&str>, secret: &[u8]) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!("{}.{}", b64(header.to_string()), b64(claims().to_string()));
    let sig = hmac(alg, secret, input.as_bytes());
    format!("{input}.{}", b64(sig))
}

/// Claims with one member replaced.
fn claims_with(name: &str, value: Value) -> Value {
    let mut c = claims();
    c[name] = value;
    c
}

fn claims_without(name: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(name);
    c
}

/// The standard header of a key (`alg`, `kid`, `typ: JWT`).
fn header_of(key: &TestKey) -> Value {
    json!({"alg": key.alg, "kid": key.kid, "typ": "JWT"})
}

// ---- the baseline: the suite's tokens are otherwise valid -----------------------------------

#[tokio::test]
async fn the_untouched_tokens_of_the_suite_are_accepted() {
    let layer = default_layer();
    for key in [&IDP.rs, &IDP.es, &IDP.es384, &IDP.ed] {
        assert_accepted(&call(&layer, &key.token(&claims())).await);
    }
    assert_accepted(&call(&layer_with_hmac_allowed(), &IDP.rs.token(&claims())).await);
    let shared = hmac_token("HS256", Some("shared"), SHARED_SECRET);
    assert_accepted(&call(&layer_with_hmac_allowed(), &shared).await);
}

// ---- alg: none -------------------------------------------------------------------------------

const NONE_SPELLINGS: [&str; 4] = ["none", "None", "NONE", "nOnE"];

#[tokio::test]
async fn alg_none_with_an_empty_signature_is_refused() {
    let layer = default_layer();
    for alg in NONE_SPELLINGS {
        let token = assemble(&json!({"alg": alg, "typ": "JWT"}), &claims(), b"");
        assert!(token.ends_with('.'));
        assert_invalid_token(
            &call(&layer, &token).await,
            JwtErrorKind::UnsupportedAlgorithm,
        );
    }
}

#[tokio::test]
async fn alg_none_with_a_real_signature_segment_is_refused() {
    let layer = default_layer();
    for alg in NONE_SPELLINGS {
        // A genuine RS256 signature by the issuer's key over this very header and payload.
        let header = json!({"alg": alg, "kid": "rs"});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims().to_string()));
        let token = IDP.rs.sign_segments("RS256", &input);
        assert_invalid_token(
            &call(&layer, &token).await,
            JwtErrorKind::UnsupportedAlgorithm,
        );
    }
}

#[tokio::test]
async fn alg_none_without_a_signature_segment_is_refused() {
    let layer = default_layer();
    for alg in NONE_SPELLINGS {
        let token = format!(
            "{}.{}",
            b64(json!({"alg": alg}).to_string()),
            b64(claims().to_string())
        );
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

// ---- HMAC with a public key as the secret (RS/HS key confusion) -------------------------------

/// Sends the HS256/384/512 forgeries made with `secret` to a layer with HS* not allowed (refused
/// by the allow-list) and to one with HS* allowed (refused because an asymmetric key never
/// verifies HMAC: with the key's `kid` it is not a candidate, without a `kid` only the real
/// secret is tried).
async fn assert_hmac_with_public_key_is_refused(secret: &[u8], kid: &str) {
    let default = default_layer();
    let hmac_allowed = layer_with_hmac_allowed();
    for alg in ["HS256", "HS384", "HS512"] {
        let token = hmac_token(alg, Some(kid), secret);
        assert_invalid_token(
            &call(&default, &token).await,
            JwtErrorKind::UnsupportedAlgorithm,
        );
        assert_invalid_token(&call(&hmac_allowed, &token).await, JwtErrorKind::UnknownKey);
        let kidless = hmac_token(alg, None, secret);
        assert_invalid_token(
            &call(&hmac_allowed, &kidless).await,
            JwtErrorKind::InvalidSignature,
        );
    }
}

#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_as_pem_is_refused() {
    let pem = IDP.rs.public_pem();
    assert_hmac_with_public_key_is_refused(pem.as_bytes(), "rs").await;
    // Also the PKCS#1 PEM and the PEM without its final newline.
    let pkcs1 = common::pem("RSA PUBLIC KEY", &IDP.rs.rsa_public_pkcs1_der());
    assert_hmac_with_public_key_is_refused(pkcs1.as_bytes(), "rs").await;
    assert_hmac_with_public_key_is_refused(pem.trim_end().as_bytes(), "rs").await;
}

#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_as_der_is_refused() {
    assert_hmac_with_public_key_is_refused(&IDP.rs.public_spki_der(), "rs").await;
    assert_hmac_with_public_key_is_refused(&IDP.rs.rsa_public_pkcs1_der(), "rs").await;
}

#[tokio::test]
async fn hmac_signed_with_the_raw_rsa_modulus_is_refused() {
    let n = IDP.rs.rsa_modulus();
    assert_hmac_with_public_key_is_refused(&n, "rs").await;
    // The modulus as it appears in the JWKS (base64url text).
    assert_hmac_with_public_key_is_refused(b64(&n).as_bytes(), "rs").await;
}

#[tokio::test]
async fn hmac_signed_with_the_ec_public_key_is_refused() {
    let es = &IDP.es;
    assert_hmac_with_public_key_is_refused(&es.ec_point(), "es").await;
    assert_hmac_with_public_key_is_refused(&es.public_spki_der(), "es").await;
    assert_hmac_with_public_key_is_refused(es.public_pem().as_bytes(), "es").await;
}

// ---- algorithm / key mismatches ----------------------------------------------------------------

#[tokio::test]
async fn rs256_key_presented_as_ps256_is_refused() {
    let layer = default_layer();
    // A real PS256 signature by the RS256 key: the key's JWK binds it to RS256 only.
    let token = IDP
        .rs
        .sign(&json!({"alg": "PS256", "kid": "rs"}), &claims());
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::UnknownKey);
    // And the RS256 signature relabelled PS256.
    let rs = IDP.rs.token(&claims());
    let relabelled = format!(
        "{}.{}.{}",
        b64(json!({"alg": "PS256", "kid": "rs", "typ": "JWT"}).to_string()),
        segments(&rs)[1],
        segments(&rs)[2]
    );
    assert_invalid_token(&call(&layer, &relabelled).await, JwtErrorKind::UnknownKey);
}

#[tokio::test]
async fn p256_key_presented_as_es384_is_refused() {
    // The key's JWK without `alg`: the curve alone binds it to ES256.
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwk(IDP.es.jwk(false).to_string())
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    assert_accepted(&call(&layer, &IDP.es.token(&claims())).await);
    let token = IDP
        .es
        .sign(&json!({"alg": "ES384", "kid": "es"}), &claims());
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::UnknownKey);
    // Without a `kid`, the P-256 key is not even a candidate for ES384.
    let token = IDP.es.sign(&json!({"alg": "ES384"}), &claims());
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::UnknownKey);
}

#[test]
fn alg_outside_the_allow_list_is_refused_without_fetching_keys() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let jwks_body = jwks(&[&IDP.es]).to_string();
    let (url, hits) = runtime.block_on(counting_server("application/json", jwks_body));
    // Built outside the runtime, so nothing warms the provider up: every fetch would be the
    // request's doing.
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::jwks_url(&format!("{url}/jwks"))
                .add_issuer(ISSUER)
                .build()
                .unwrap(),
        )
        .add_algorithm(Algorithm::ES256)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    runtime.block_on(async {
        let unknown = TestKey::rsa("unknown-kid", "RS256");
        for token in [
            // Allowed elsewhere, not here; an unknown `kid` would trigger a refresh.
            unknown.token(&claims()),
            IDP.rs.token(&claims()),
            IDP.es384.token(&claims()),
            hmac_token("HS256", Some("unknown-kid"), SHARED_SECRET),
            // Not algorithms at all.
            assemble(&json!({"alg": "ES512", "kid": "es"}), &claims(), &[1; 132]),
            assemble(
                &json!({"alg": "RSA-OAEP", "kid": "x"}),
                &claims(),
                &[1; 256],
            ),
            assemble(&json!({"alg": "es256", "kid": "es"}), &claims(), &[1; 64]),
        ] {
            assert_invalid_token(
                &call(&layer, &token).await,
                JwtErrorKind::UnsupportedAlgorithm,
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "a key fetch happened");
        // The provider works: an allowed algorithm does fetch.
        assert_accepted(&call(&layer, &IDP.es.token(&claims())).await);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    });
}

// ---- ECDSA signatures -------------------------------------------------------------------------

/// The order of P-256.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];
/// The order of P-384.
const P384_N: [u8; 48] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF,
    0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
];

/// `x + 1` as a big-endian number of the same width (no overflow for the orders above).
fn plus_one(x: &[u8]) -> Vec<u8> {
    let mut out = x.to_vec();
    for byte in out.iter_mut().rev() {
        let (v, carry) = byte.overflowing_add(1);
        *byte = v;
        if !carry {
            break;
        }
    }
    out
}

#[tokio::test]
async fn ecdsa_signature_of_zeros_is_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0.
    let layer = default_layer();
    for (key, width) in [(&IDP.es, 32), (&IDP.es384, 48)] {
        let token = with_signature(&key.token(&claims()), &vec![0; 2 * width]);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidSignature);
        // r = 0 or s = 0 alone, the other half genuine.
        let genuine = signature_of(&key.token(&claims()));
        let mut r_zero = genuine.clone();
        r_zero[..width].fill(0);
        let mut s_zero = genuine;
        s_zero[width..].fill(0);
        for sig in [r_zero, s_zero] {
            let token = with_signature(&key.token(&claims()), &sig);
            assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidSignature);
        }
    }
}

#[tokio::test]
async fn ecdsa_signature_with_r_or_s_not_below_the_order_is_refused() {
    let layer = default_layer();
    let cases: [(&TestKey, &[u8]); 2] = [(&IDP.es, &P256_N), (&IDP.es384, &P384_N)];
    for (key, n) in cases {
        let token = key.token(&claims());
        let genuine = signature_of(&token);
        let (r, s) = genuine.split_at(n.len());
        let big = [n.to_vec(), plus_one(n), vec![0xFF; n.len()]];
        for v in &big {
            for sig in [
                [v.as_slice(), s].concat(),
                [r, v.as_slice()].concat(),
                [v.as_slice(), v.as_slice()].concat(),
            ] {
                let forged = with_signature(&token, &sig);
                assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::InvalidSignature);
            }
        }
    }
}

fn der_integer(x: &[u8]) -> Vec<u8> {
    let start = x.iter().position(|b| *b != 0).unwrap_or(x.len() - 1);
    let mut v = x[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

/// An ECDSA signature (`r || s`) as the ASN.1 DER `Ecdsa-Sig-Value` other formats use.
fn to_der(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [der_integer(r), der_integer(s)].concat();
    let mut out = vec![0x30];
    if body.len() >= 0x80 {
        out.push(0x81);
    }
    out.push(body.len() as u8);
    out.extend(body);
    out
}

#[tokio::test]
async fn ecdsa_signature_in_der_instead_of_raw_is_refused() {
    let layer = default_layer();
    for key in [&IDP.es, &IDP.es384] {
        // The genuine signature, only re-encoded: a verifier that accepts DER would pass it.
        let token = key.token(&claims());
        let der = to_der(&signature_of(&token));
        assert_eq!(der[0], 0x30);
        let forged = with_signature(&token, &der);
        assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::InvalidSignature);
    }
}

#[tokio::test]
async fn truncated_or_extended_signatures_are_refused() {
    let layer = default_layer();
    for key in [&IDP.rs, &IDP.es, &IDP.es384, &IDP.ed] {
        let token = key.token(&claims());
        let sig = signature_of(&token);
        let variants = [
            sig[..sig.len() - 1].to_vec(),
            sig[1..].to_vec(),
            sig[..sig.len() / 2].to_vec(),
            [sig.as_slice(), &[0]].concat(),
            [&[0], sig.as_slice()].concat(),
            [sig.as_slice(), sig.as_slice()].concat(),
        ];
        for forged_sig in variants {
            let forged = with_signature(&token, &forged_sig);
            assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::InvalidSignature);
        }
        // No signature at all.
        let s = segments(&token);
        let unsigned = format!("{}.{}.", s[0], s[1]);
        assert_invalid_token(
            &call(&layer, &unsigned).await,
            JwtErrorKind::InvalidSignature,
        );
    }
}

// ---- keys carried by the token ----------------------------------------------------------------

#[tokio::test]
async fn embedded_jwk_signed_by_the_attackers_key_is_refused() {
    // CVE-2018-0114: the token brings its own key.
    let layer = default_layer();
    let attacker = &*ATTACKER;
    let jwk = attacker.jwk(true);
    for (header, kind) in [
        (
            json!({"alg": "RS256", "kid": "attacker", "jwk": jwk}),
            JwtErrorKind::UnknownKey,
        ),
        (
            json!({"alg": "RS256", "kid": "rs", "jwk": jwk}),
            JwtErrorKind::InvalidSignature,
        ),
        (
            json!({"alg": "RS256", "jwk": jwk}),
            JwtErrorKind::InvalidSignature,
        ),
    ] {
        let token = attacker.sign(&header, &claims());
        assert_invalid_token(&call(&layer, &token).await, kind);
    }
}

#[tokio::test]
async fn jku_pointing_at_a_local_server_is_refused_and_never_fetched() {
    let attacker = &*ATTACKER;
    let (attacker_url, attacker_hits) =
        counting_server("application/json", jwks(&[attacker]).to_string()).await;
    // The legitimate keys come from a JWKS URL too, so an unknown `kid` triggers a real refresh.
    let (idp_url, idp_hits) =
        counting_server("application/json", jwks(&[&IDP.rs]).to_string()).await;
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::jwks_url(&format!("{idp_url}/jwks"))
                .add_issuer(ISSUER)
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let jku = format!("{attacker_url}/jwks.json");
    for (header, kind) in [
        (
            json!({"alg": "RS256", "kid": "attacker", "jku": jku}),
            JwtErrorKind::UnknownKey,
        ),
        (
            json!({"alg": "RS256", "kid": "rs", "jku": jku}),
            JwtErrorKind::InvalidSignature,
        ),
    ] {
        let token = attacker.sign(&header, &claims());
        assert_invalid_token(&call(&layer, &token).await, kind);
    }
    assert_eq!(
        attacker_hits.load(Ordering::SeqCst),
        0,
        "the jku was fetched"
    );
    assert!(idp_hits.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn x5u_pointing_at_a_local_server_is_refused_and_never_fetched() {
    let attacker = TestKey::es256_from_pkcs8("attacker", &pem_to_der(ATTACKER_KEY));
    let (url, hits) = counting_server(
        "application/pem-certificate-chain",
        ATTACKER_CERT.to_owned(),
    )
    .await;
    let layer = default_layer();
    let x5u = format!("{url}/attacker.crt.pem");
    for (header, kind) in [
        (
            json!({"alg": "ES256", "kid": "attacker", "x5u": x5u}),
            JwtErrorKind::UnknownKey,
        ),
        (
            json!({"alg": "ES256", "kid": "es", "x5u": x5u}),
            JwtErrorKind::InvalidSignature,
        ),
        (
            json!({"alg": "ES256", "x5u": x5u}),
            JwtErrorKind::InvalidSignature,
        ),
    ] {
        let token = attacker.sign(&header, &claims());
        assert_invalid_token(&call(&layer, &token).await, kind);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the x5u was fetched");
}

#[tokio::test]
async fn x5c_with_the_attackers_certificate_is_refused() {
    let attacker = TestKey::es256_from_pkcs8("attacker", &pem_to_der(ATTACKER_KEY));
    let cert = STANDARD.encode(pem_to_der(ATTACKER_CERT));
    let layer = default_layer();
    for (header, kind) in [
        (
            json!({"alg": "ES256", "kid": "attacker", "x5c": [cert]}),
            JwtErrorKind::UnknownKey,
        ),
        (
            json!({"alg": "ES256", "kid": "es", "x5c": [cert]}),
            JwtErrorKind::InvalidSignature,
        ),
        (
            json!({"alg": "ES256", "x5c": [cert], "x5t#S256": "AAAA"}),
            JwtErrorKind::InvalidSignature,
        ),
    ] {
        let token = attacker.sign(&header, &claims());
        assert_invalid_token(&call(&layer, &token).await, kind);
    }
}

// ---- hostile kid -------------------------------------------------------------------------------

/// Tokens signed by the issuer's own RSA key whose `kid` is `kid`.
fn rs_token_with_kid(kid: Value) -> String {
    IDP.rs.sign(
        &json!({"alg": "RS256", "kid": kid, "typ": "JWT"}),
        &claims(),
    )
}

#[tokio::test]
async fn kid_with_path_traversal_is_an_unknown_key() {
    let layer = default_layer();
    for kid in [
        "../../../../../../etc/passwd",
        "../rs",
        "./rs",
        "rs/../rs",
        "..\\..\\windows\\win.ini",
        "/dev/null",
        "file:///dev/null",
        "%2e%2e%2frs",
    ] {
        let token = rs_token_with_kid(json!(kid));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::UnknownKey);
    }
}

#[tokio::test]
async fn kid_with_sql_metacharacters_is_an_unknown_key() {
    let layer = default_layer();
    for kid in [
        "' OR '1'='1",
        "rs' --",
        "rs'; DROP TABLE keys; --",
        "\" OR \"\"=\"",
        "rs\u{0}",
        "rs ",
        "RS",
        "*",
        "%",
    ] {
        let token = rs_token_with_kid(json!(kid));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::UnknownKey);
    }
}

#[tokio::test]
async fn kid_of_ten_kilobytes_is_refused() {
    let layer = default_layer();
    let token = rs_token_with_kid(json!("k".repeat(10 * 1024)));
    assert!(token.len() < validate_jwt::DEFAULT_MAX_TOKEN_BYTES);
    // Read like any other `kid` (only the token limit bounds a header), and unknown.
    let answer = call(&layer, &token).await;
    assert_invalid_token(&answer, JwtErrorKind::UnknownKey);
}

#[tokio::test]
async fn kid_that_is_not_a_string_is_refused() {
    let layer = default_layer();
    for kid in [
        json!(5),
        json!(-1.5),
        json!({"kid": "rs"}),
        json!(["rs"]),
        json!(true),
        json!(null),
    ] {
        let token = rs_token_with_kid(kid.clone());
        let answer = call(&layer, &token).await;
        assert_invalid_token(&answer, JwtErrorKind::Malformed);
    }
}

// ---- header extensions and serializations -------------------------------------------------------

#[tokio::test]
async fn crit_with_unknown_names_is_refused() {
    let layer = default_layer();
    for crit in [
        json!(["x-unknown"]),
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!("x-unknown"),
    ] {
        let token = IDP.rs.sign(
            &json!({"alg": "RS256", "kid": "rs", "crit": crit, "x-unknown": true}),
            &claims(),
        );
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidHeader);
    }
}

#[tokio::test]
async fn unencoded_payload_b64_false_is_refused() {
    let layer = default_layer();
    // RFC 7797: the payload travels unencoded; a validator ignoring `b64` would verify a
    // different signing input than the signer meant.
    // (An unencoded payload without dots, so that it still splits into three segments.)
    let payload = json!({"sub": "alice", "aud": AUDIENCE}).to_string();
    assert!(!payload.contains('.'));
    let header = json!({"alg": "RS256", "kid": "rs", "b64": false, "crit": ["b64"]});
    let input = format!("{}.{payload}", b64(header.to_string()));
    let token = IDP.rs.sign_segments("RS256", &input);
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidHeader);
    // `b64` alone, without `crit`.
    let token = IDP.rs.sign(
        &json!({"alg": "RS256", "kid": "rs", "b64": false}),
        &claims(),
    );
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidHeader);
}

#[tokio::test]
async fn nested_token_with_cty_jwt_is_refused() {
    let layer = default_layer();
    let inner = ATTACKER.token(&claims());
    for cty in ["JWT", "jwt", "Jwt"] {
        // The outer token is genuinely signed; its payload is another (attacker's) token.
        let header = json!({"alg": "RS256", "kid": "rs", "cty": cty});
        let token = IDP
            .rs
            .sign_bytes("RS256", header.to_string().as_bytes(), inner.as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidHeader);
        // Nested with claims as the outer payload too.
        let token = IDP.rs.sign(&header, &claims());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidHeader);
    }
}

#[tokio::test]
async fn jws_json_serialization_is_refused() {
    let layer = default_layer();
    let token = IDP.rs.token(&claims());
    let s = segments(&token);
    let flattened = json!({"protected": s[0], "payload": s[1], "signature": s[2]}).to_string();
    let general = json!({"payload": s[1], "signatures": [{"protected": s[0], "signature": s[2]}]})
        .to_string();
    for text in [flattened, general] {
        assert_invalid_token(&call(&layer, &text).await, JwtErrorKind::Malformed);
        // And through validate_token.
        let err = layer.validate_token(&text).await.unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn polyglot_token_mixing_compact_and_json_is_refused() {
    // CVE-2022-39227 (python-jwt): a JSON document whose first member name is a compact token
    // with forged claims, carrying the genuine protected header, payload and signature.
    let layer = default_layer();
    let genuine = IDP.rs.token(&claims());
    let s = segments(&genuine);
    let forged_claims = b64(claims_with("sub", json!("mallory")).to_string());
    let polyglot = format!(
        r#"{{"  {}.{forged_claims}.":"","protected":"{}", "payload":"{}","signature":"{}"}}"#,
        s[0], s[0], s[1], s[2]
    );
    assert_eq!(polyglot.matches('.').count(), 2);
    assert_invalid_token(&call(&layer, &polyglot).await, JwtErrorKind::Malformed);
    // The compact form with the forged claims and the genuine signature.
    let spliced = format!("{}.{forged_claims}.{}", s[0], s[2]);
    assert_invalid_token(
        &call(&layer, &spliced).await,
        JwtErrorKind::InvalidSignature,
    );
}

#[tokio::test]
async fn header_that_is_a_json_array_is_refused() {
    // A derived serde struct also reads a JSON array as its fields in order; the JOSE header
    // is a JSON object (RFC 7515 §4), and other parsers refuse this one.
    let layer = default_layer();
    for header in [
        r#"["RS256","rs"]"#,
        r#"["RS256","rs","JWT"]"#,
        r#" ["RS256"]"#,
    ] {
        let token = IDP
            .rs
            .sign_bytes("RS256", header.as_bytes(), claims().to_string().as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn two_segments_are_refused() {
    let layer = default_layer();
    let s = segments(&IDP.rs.token(&claims()));
    for token in [format!("{}.{}", s[0], s[1]), format!("{}.{}", s[0], s[2])] {
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn four_segments_are_refused() {
    let layer = default_layer();
    let token = IDP.rs.token(&claims());
    let s = segments(&token);
    for forged in [
        format!("{token}.{}", s[2]),
        format!("{}.{}.{}.{}", s[0], s[1], s[1], s[2]),
        format!("{token}."),
    ] {
        assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn five_segments_are_refused_as_encrypted() {
    let layer = default_layer();
    let header = b64(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rs"}).to_string());
    let jwe = format!(
        "{header}.{}.{}.{}.{}",
        b64([1; 256]),
        b64([2; 12]),
        b64([3; 64]),
        b64([4; 16])
    );
    assert_invalid_token(&call(&layer, &jwe).await, JwtErrorKind::Encrypted);
    // A signed token with two more segments is no better.
    let token = IDP.rs.token(&claims());
    assert_invalid_token(
        &call(&layer, &format!("{token}.a.b")).await,
        JwtErrorKind::Encrypted,
    );
}

#[tokio::test]
async fn padded_base64url_is_refused() {
    let layer = default_layer();
    // Each segment padded, and each time re-signed by the issuer's key, so that only the
    // encoding is wrong: a lenient decoder would accept these tokens.
    let header = json!({"alg": "RS256", "kid": "rs", "typ": "JWT"}).to_string();
    let mut payload = claims().to_string();
    while payload.len().is_multiple_of(3) {
        payload.push(' ');
    }
    let padded = |bytes: &[u8]| URL_SAFE.encode(bytes);
    let mut h = header.clone();
    while h.len().is_multiple_of(3) {
        h.push(' ');
    }
    for input in [
        format!("{}.{}", padded(h.as_bytes()), b64(&payload)),
        format!("{}.{}", b64(&header), padded(payload.as_bytes())),
    ] {
        assert!(input.contains('='));
        let token = IDP.rs.sign_segments("RS256", &input);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
    // A padded signature (RSA-2048 signatures are 256 bytes: `==` padding).
    let token = IDP.rs.token(&claims());
    let s = segments(&token);
    let padded_sig = format!(
        "{}.{}.{}",
        s[0],
        s[1],
        URL_SAFE.encode(signature_of(&token))
    );
    assert!(padded_sig.ends_with("=="));
    assert_invalid_token(&call(&layer, &padded_sig).await, JwtErrorKind::Malformed);
}

/// Changes the unused low bits of the last character of a segment whose length is 2 or 3
/// (mod 4): the same bytes, in a non-canonical spelling.
fn non_canonical(segment: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match segment.len() % 4 {
        2 => 4,
        3 => 2,
        _ => panic!("segment has no unused bits"),
    };
    let last = *segment.as_bytes().last().unwrap();
    let index = ALPHABET.iter().position(|c| *c == last).unwrap();
    let changed = index | 1; // set the lowest unused bit
    assert!(unused_bits >= 1 && changed != index);
    format!(
        "{}{}",
        &segment[..segment.len() - 1],
        ALPHABET[changed] as char
    )
}

#[tokio::test]
async fn non_canonical_base64url_is_refused() {
    let layer = default_layer();
    let header = json!({"alg": "RS256", "kid": "rs", "typ": "JWT"}).to_string();
    let mut h = header.clone();
    while h.len().is_multiple_of(3) {
        h.push(' ');
    }
    let mut payload = claims().to_string();
    while payload.len().is_multiple_of(3) {
        payload.push(' ');
    }
    // Non-zero trailing bits in the header or the payload, re-signed so that only the
    // encoding is wrong.
    for input in [
        format!("{}.{}", non_canonical(&b64(&h)), b64(&payload)),
        format!("{}.{}", b64(&header), non_canonical(&b64(&payload))),
    ] {
        let token = IDP.rs.sign_segments("RS256", &input);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
    // Non-zero trailing bits in the signature (256 bytes: the last character has 4 spare bits).
    let token = IDP.rs.token(&claims());
    let s = segments(&token);
    let forged = format!("{}.{}.{}", s[0], s[1], non_canonical(&s[2]));
    assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::Malformed);

    // The standard alphabet (`+`, `/`) instead of the URL-safe one, re-signed. ASCII text
    // encodes to `+` or `/` only where a `>`, `?` or `~` ends a 3-byte group: three `?` in a
    // row guarantee it.
    let c = claims_with("pad", json!("???"));
    let std_payload = STANDARD_NO_PAD.encode(c.to_string());
    assert!(std_payload.contains('/'));
    let token = IDP
        .rs
        .sign_segments("RS256", &format!("{}.{std_payload}", b64(&header)));
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    // A signature in the standard alphabet.
    let token = IDP.rs.token(&claims());
    let s = segments(&token);
    let std_sig = STANDARD_NO_PAD.encode(signature_of(&token));
    if std_sig != s[2] {
        let forged = format!("{}.{}.{std_sig}", s[0], s[1]);
        assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn whitespace_inside_the_token_is_refused() {
    let layer = default_layer();
    let header = b64(header_of(&IDP.rs).to_string());
    let payload = b64(claims().to_string());
    let mid = payload.len() / 2;
    for ws in [" ", "\t", "  "] {
        // Whitespace in the header or the payload, re-signed so that only the encoding is wrong.
        for input in [
            format!("{header}{ws}.{payload}"),
            format!("{}{ws}{}.{payload}", &header[..4], &header[4..]),
            format!("{header}.{ws}{payload}"),
            format!("{header}.{}{ws}{}", &payload[..mid], &payload[mid..]),
        ] {
            let token = IDP.rs.sign_segments("RS256", &input);
            assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
        }
        // Whitespace in the signature.
        let token = IDP.rs.token(&claims());
        let s = segments(&token);
        let forged = format!("{}.{}.{ws}{}", s[0], s[1], s[2]);
        assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::Malformed);
        let forged = format!("{}.{}.{}{ws}{}", s[0], s[1], &s[2][..10], &s[2][10..]);
        assert_invalid_token(&call(&layer, &forged).await, JwtErrorKind::Malformed);
    }
    // Line breaks cannot travel in a header; through validate_token.
    for ws in ["\n", "\r\n", "\u{a0}"] {
        let input = format!("{header}.{}{ws}{}", &payload[..mid], &payload[mid..]);
        let token = IDP.rs.sign_segments("RS256", &input);
        let err = layer.validate_token(&token).await.unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::Malformed, "{ws:?}");
    }
}

// ---- claims ---------------------------------------------------------------------------------------

#[tokio::test]
async fn time_claims_as_strings_are_refused() {
    let layer = default_layer();
    let later = (now() + 3600).to_string();
    for name in ["exp", "nbf", "iat"] {
        for value in [
            json!(later),
            json!(""),
            json!("soon"),
            json!(true),
            json!([1]),
            json!({}),
        ] {
            let token = IDP.rs.token(&claims_with(name, value));
            assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
        }
    }
}

#[tokio::test]
async fn time_claims_as_floats_are_numeric_dates() {
    let layer = default_layer();
    let now = now() as f64;
    // NumericDate allows fractions: a fractional past `exp` is expired, a future one valid.
    let token = IDP.rs.token(&claims_with("exp", json!(now + 3600.5)));
    assert_accepted(&call(&layer, &token).await);
    let token = IDP.rs.token(&claims_with("exp", json!(now - 120.5)));
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Expired);
    let token = IDP.rs.token(&claims_with("nbf", json!(now + 600.25)));
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::NotYetValid);
    let token = IDP.rs.token(&claims_with("iat", json!(now - 0.75)));
    assert_accepted(&call(&layer, &token).await);
}

#[tokio::test]
async fn negative_exp_is_expired() {
    // A validator that casts to an unsigned integer would wrap these to the far future.
    let layer = default_layer();
    for exp in [
        json!(-1),
        json!(-1.5),
        json!(-9.0e18),
        json!(-1.0e308),
        json!(0),
    ] {
        let token = IDP.rs.token(&claims_with("exp", exp));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Expired);
    }
}

#[tokio::test]
async fn huge_nbf_is_not_yet_valid() {
    // A validator that casts to a signed integer would wrap these to the past.
    let layer = default_layer();
    for nbf in [
        json!(9_223_372_036_854_775_808u64),
        json!(u64::MAX),
        json!(1.0e300),
        json!(f64::MAX),
    ] {
        let token = IDP.rs.token(&claims_with("nbf", nbf));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::NotYetValid);
    }
}

#[tokio::test]
async fn time_claims_beyond_f64_are_refused() {
    let layer = default_layer();
    for name in ["exp", "nbf", "iat"] {
        let header = header_of(&IDP.rs).to_string();
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        let mut payload = c.to_string();
        payload.pop();
        payload.push_str(&format!(r#","{name}":1e400}}"#));
        let token = IDP
            .rs
            .sign_bytes("RS256", header.as_bytes(), payload.as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
    }
}

#[tokio::test]
async fn huge_negative_nbf_and_iat_do_not_break_validation() {
    let layer = default_layer();
    for (name, value) in [
        ("nbf", json!(-1.0e308)),
        ("iat", json!(-1.0e308)),
        ("iat", json!(1.0e308)),
        ("nbf", json!(i64::MIN)),
    ] {
        let token = IDP.rs.token(&claims_with(name, value));
        assert_accepted(&call(&layer, &token).await);
    }
}

#[tokio::test]
async fn missing_empty_or_null_aud_is_refused() {
    // CVE-2020-26160: a token without an audience must not pass an audience check.
    let layer = default_layer();
    let tokens = [
        IDP.rs.token(&claims_without("aud")),
        IDP.rs.token(&claims_with("aud", json!(""))),
        IDP.rs.token(&claims_with("aud", json!([]))),
        IDP.rs.token(&claims_with("aud", json!(null))),
        IDP.rs.token(&claims_with("aud", json!([""]))),
    ];
    for token in tokens {
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidAudience);
    }
    // An `aud` of the wrong type is an invalid claim.
    for aud in [
        json!(1),
        json!([AUDIENCE, 1]),
        json!([[AUDIENCE]]),
        json!({"aud": AUDIENCE}),
    ] {
        let token = IDP.rs.token(&claims_with("aud", aud));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
    }
}

#[tokio::test]
async fn aud_array_with_the_right_audience_among_wrong_ones_is_accepted() {
    let layer = default_layer();
    for aud in [
        json!([
            "api://other",
            AUDIENCE,
            "00000003-0000-0000-c000-000000000000"
        ]),
        json!([AUDIENCE]),
        json!(["", AUDIENCE]),
    ] {
        let token = IDP.rs.token(&claims_with("aud", aud));
        assert_accepted(&call(&layer, &token).await);
    }
}

#[tokio::test]
async fn aud_array_without_the_right_audience_is_refused() {
    let layer = default_layer();
    for aud in [
        json!(["api://other", "api://another"]),
        json!(["API://ECHO"]),
        json!([format!("{AUDIENCE}/")]),
        json!([format!(" {AUDIENCE}")]),
        json!(["api://ech"]),
        json!([format!("{AUDIENCE}\u{0}")]),
    ] {
        let token = IDP.rs.token(&claims_with("aud", aud));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidAudience);
    }
}

#[tokio::test]
async fn iss_differing_only_by_case_is_refused() {
    let layer = default_layer();
    for iss in [
        ISSUER.to_uppercase(),
        "https://Issuer.test".to_owned(),
        "HTTPS://issuer.test".to_owned(),
    ] {
        let token = IDP.rs.token(&claims_with("iss", json!(iss)));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidIssuer);
    }
}

#[tokio::test]
async fn iss_with_a_trailing_slash_is_refused() {
    let layer = default_layer();
    for iss in [
        format!("{ISSUER}/"),
        format!("{ISSUER}//"),
        format!("{ISSUER} "),
        format!("{ISSUER}/."),
    ] {
        let token = IDP.rs.token(&claims_with("iss", json!(iss)));
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidIssuer);
    }
    // Missing and non-string issuers too.
    let token = IDP.rs.token(&claims_without("iss"));
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidIssuer);
    let token = IDP.rs.token(&claims_with("iss", json!([ISSUER])));
    assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
}

#[tokio::test]
async fn duplicate_alg_in_the_header_is_refused() {
    let layer = default_layer();
    for header in [
        r#"{"alg":"RS256","kid":"rs","alg":"none"}"#,
        r#"{"alg":"none","kid":"rs","alg":"RS256"}"#,
        r#"{"alg":"RS256","kid":"rs","alg":"RS256"}"#,
        r#"{"alg":"RS256","kid":"rs","\u0061lg":"HS256"}"#,
        r#"{"alg":"RS256","kid":"rs","kid":"es"}"#,
    ] {
        let token = IDP
            .rs
            .sign_bytes("RS256", header.as_bytes(), claims().to_string().as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn duplicate_aud_in_the_payload_is_refused() {
    let layer = default_layer();
    let header = header_of(&IDP.rs).to_string();
    for extra in [
        r#""aud":"api://other""#.to_owned(),
        format!(r#""aud":"{AUDIENCE}""#),
        r#""a\u0075d":"api://other""#.to_owned(),
    ] {
        let token = IDP
            .rs
            .sign_bytes("RS256", header.as_bytes(), payload_with(&extra).as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
    }
}

#[tokio::test]
async fn duplicate_exp_in_the_payload_is_refused() {
    let layer = default_layer();
    let header = header_of(&IDP.rs).to_string();
    let later = now() + 365 * 24 * 3600;
    for extra in [
        format!(r#""exp":{later}"#),
        r#""exp":1"#.to_owned(),
        format!(r#""\u0065xp":{later}"#),
        format!(r#""nbf":1,"nbf":{later}"#),
        format!(r#""iss":"{ISSUER}""#),
    ] {
        let token = IDP
            .rs
            .sign_bytes("RS256", header.as_bytes(), payload_with(&extra).as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidClaims);
    }
}

#[tokio::test]
async fn invalid_utf8_in_the_header_is_refused() {
    let layer = default_layer();
    let payload = claims().to_string();
    for header in [
        &b"{\"alg\":\"RS256\",\"kid\":\"rs\",\"x\":\"\xff\"}"[..],
        b"{\"alg\":\"RS256\",\"kid\":\"r\xc3\"}",
        b"{\"alg\":\"RS256\",\"kid\":\"rs\",\"\xfe\":1}",
        b"{\"alg\":\"RS256\",\"kid\":\"rs\",\"x\":\"\xed\xa0\x80\"}",
    ] {
        let token = IDP.rs.sign_bytes("RS256", header, payload.as_bytes());
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

#[tokio::test]
async fn invalid_utf8_in_the_payload_is_refused() {
    let layer = default_layer();
    let header = header_of(&IDP.rs).to_string();
    let base = payload_with(r#""x":"PLACEHOLDER""#);
    let (before, after) = base.split_once("PLACEHOLDER").unwrap();
    for bad in [
        &b"\xff"[..],
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
    ] {
        let payload = [before.as_bytes(), bad, after.as_bytes()].concat();
        let token = IDP.rs.sign_bytes("RS256", header.as_bytes(), &payload);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
    // In a registered claim and in a member name too.
    for (marker, bad) in [("alice", &b"al\xffce"[..]), ("sub", b"s\xffb")] {
        let text = claims().to_string();
        let (before, after) = text.split_once(marker).unwrap();
        let payload = [before.as_bytes(), bad, after.as_bytes()].concat();
        let token = IDP.rs.sign_bytes("RS256", header.as_bytes(), &payload);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::Malformed);
    }
}

// ---- cross-token confusion ------------------------------------------------------------------------

#[tokio::test]
async fn id_token_for_the_client_is_refused() {
    let layer = default_layer();
    let client_id = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    // What an OpenID provider issues to the client: aud = the client id, nonce, at_hash.
    let id_token_claims = json!({
        "iss": ISSUER, "aud": client_id, "sub": "alice", "exp": now() + 3600, "iat": now(),
        "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "auth_time": now(),
        "name": "Alice", "preferred_username": "alice@example.test",
    });
    for header in [
        json!({"alg": "RS256", "kid": "rs", "typ": "JWT"}),
        json!({"alg": "RS256", "kid": "rs"}),
    ] {
        let token = IDP.rs.sign(&header, &id_token_claims);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidAudience);
    }
    // With the access-token `typ` required, the ID token's `typ` is refused first.
    let strict = ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_audience(AUDIENCE)
        .add_audience(client_id)
        .require_access_token_typ()
        .build()
        .unwrap();
    let token = IDP.rs.sign(
        &json!({"alg": "RS256", "kid": "rs", "typ": "JWT"}),
        &id_token_claims,
    );
    assert_invalid_token(&call(&strict, &token).await, JwtErrorKind::InvalidHeader);
}

#[tokio::test]
async fn token_for_microsoft_graph_is_refused() {
    let layer = default_layer();
    for aud in [
        json!("00000003-0000-0000-c000-000000000000"),
        json!("https://graph.microsoft.com"),
        json!([
            "https://graph.microsoft.com",
            "00000003-0000-0000-c000-000000000000"
        ]),
    ] {
        let mut c = claims_with("aud", aud);
        c["scp"] = json!("User.Read Mail.Read");
        c["appid"] = json!("de8bc8b5-d9f9-48b1-a8ad-b748da725064");
        let token = IDP.rs.token(&c);
        assert_invalid_token(&call(&layer, &token).await, JwtErrorKind::InvalidAudience);
    }
}

// ---- size ------------------------------------------------------------------------------------------

#[tokio::test]
async fn one_megabyte_token_is_refused_before_decoding() {
    let layer = default_layer();
    // Not even base64url: decoding it would answer `Malformed`; the size check comes first.
    let token = format!("!!!!.{}.!!!!", "!".repeat(1024 * 1024));
    let answer = call(&layer, &token).await;
    assert_invalid_token(&answer, JwtErrorKind::TooLarge);
    let err = layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::TooLarge);
}

#[tokio::test]
async fn a_large_header_is_bounded_by_the_token_limit_only() {
    let big = json!({"alg": "RS256", "kid": "rs", "typ": "JWT", "x": "A".repeat(64 * 1024)});
    let token = IDP.rs.sign(&big, &claims());
    // With the default 16 KiB limit, by the token size, before anything is decoded.
    let answer = call(&default_layer(), &token).await;
    assert_invalid_token(&answer, JwtErrorKind::TooLarge);
    // With a larger token limit, the 64 KiB header is decoded (on the heap) and the authentic
    // token accepted.
    let roomy = ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_audience(AUDIENCE)
        .with_max_token_size(1024 * 1024)
        .build()
        .unwrap();
    assert_accepted(&call(&roomy, &token).await);
}

/// Three certificates' worth of `x5c` (about 1.3 KB each, base64) beside `jwk`, `jku` and
/// `x5u`: a ~4.5 KB header, as some identity providers and signing platforms send.
fn header_with_key_members() -> Value {
    let der: String = ATTACKER_CERT
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    // The attacker's certificate, padded to the size of an RSA-2048 certificate (~1 KB DER).
    let mut bytes = STANDARD.decode(der).unwrap();
    bytes.resize(1000, 0x30);
    let cert = STANDARD.encode(bytes);
    json!({
        "alg": "RS256", "kid": "rs", "typ": "JWT",
        "jku": "https://attacker.test/jwks", "x5u": "https://attacker.test/cert.pem",
        "jwk": ATTACKER.jwk(false),
        "x5c": [cert.clone(), cert.clone(), cert],
    })
}

#[tokio::test]
async fn a_header_carrying_jwk_jku_x5u_and_an_x5c_chain_is_read_and_its_keys_ignored() {
    let header = header_with_key_members();
    assert!(
        header.to_string().len() > 4000,
        "{}",
        header.to_string().len()
    );
    // Signed by the issuer: accepted, within the default token limit.
    assert_accepted(&call(&default_layer(), &IDP.rs.sign(&header, &claims())).await);
    // Signed by the key the header carries: that key is never used.
    let mut forged = header.clone();
    forged["kid"] = json!("attacker");
    let answer = call(&default_layer(), &ATTACKER.sign(&forged, &claims())).await;
    assert_invalid_token(&answer, JwtErrorKind::UnknownKey);
}

// ---- nothing leaks ------------------------------------------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn error_bodies_and_logs_never_contain_the_token_or_key_material() {
    // A global subscriber (the only one in this test binary): a thread-local one races with
    // the callsite interest cache when tests run in parallel. Every event of the crate, from
    // every test of the binary, lands in the buffer.
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new("validate_jwt=trace"))
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let secret_text = "the log-leak test's HMAC secret, 32+ bytes";
    // One unusable JWK, so that key parsing logs too.
    let mut set = jwks(&[&IDP.rs, &IDP.es]);
    set["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kty": "RSA", "kid": "short", "n": b64([0xAB; 64]), "e": "AQAB"}));
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(set.to_string())
                .add_issuer(ISSUER),
        )
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(Some("shared"), secret_text)
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .require_all_scopes(["Echo.Write"])
        .build()
        .unwrap();

    let tokens = [
        IDP.rs.token(&claims_with("exp", json!(now() - 3600))),
        IDP.rs.token(&claims_with("aud", json!("api://other"))),
        IDP.rs
            .token(&claims_with("iss", json!("https://evil.test"))),
        IDP.rs.token(&claims()), // authentic, lacking the scope: 403
        ATTACKER.token(&claims()),
        with_signature(&IDP.es.token(&claims()), &[0; 64]),
        hmac_token(
            "HS256",
            Some("shared"),
            b"a guessed secret that is not the one",
        ),
        assemble(&json!({"alg": "none"}), &claims(), b""),
        format!("{}.{}", b64("{}"), "x".repeat(100)),
        format!("{}.{}.{}.{}.{}", b64("{}"), "a".repeat(40), "b", "c", "d"),
        "x".repeat(20_000),
    ];
    let mut bodies = String::new();
    for token in &tokens {
        let answer = call(&layer, token).await;
        assert_ne!(answer.status, 200);
        bodies.push_str(&answer.body.to_string());
        bodies.push_str(answer.www_authenticate.as_deref().unwrap_or(""));
        let err = layer.validate_token(token).await.unwrap_err();
        bodies.push_str(&format!("{err} {err:?}"));
    }
    let logs = logs.text();
    assert!(
        logs.contains("request refused"),
        "nothing was logged: {logs}"
    );
    for token in &tokens {
        let parts: Vec<&str> = token.split('.').filter(|p| p.len() >= 16).collect();
        for text in [&logs, &bodies] {
            assert!(!text.contains(token.as_str()), "a token leaked");
            for part in &parts {
                assert!(!text.contains(part), "a token segment leaked: {part}");
            }
        }
    }
    let secret_forms = [
        secret_text.to_owned(),
        b64(secret_text),
        STANDARD.encode(secret_text),
        b64(IDP.rs.rsa_modulus())[..32].to_owned(),
        b64(&IDP.es.ec_point()[1..33]),
    ];
    for text in [&logs, &bodies] {
        for secret in &secret_forms {
            assert!(
                !text.contains(secret.as_str()),
                "key material leaked: {secret}"
            );
        }
    }
}

// ---- resource limits ----------------------------------------------------------------------------

#[tokio::test]
async fn jwks_body_above_the_cap_answers_503_with_the_cap_as_cause() {
    // (The provider-level cap, with and without `Content-Length`, is in tests/keys_remote.rs;
    // this is what a request sees.) A valid key set, padded beyond the provider's cap.
    let body = format!("{}{}", jwks(&[&IDP.rs]), " ".repeat(4096));
    let (url, hits) = counting_server("application/json", body).await;
    let capped = RemoteJwks::jwks_url(&format!("{url}/jwks"))
        .add_issuer(ISSUER)
        .with_max_body_bytes(4096)
        .build()
        .unwrap();
    let layer = ValidateJwtLayer::builder()
        .add_key_source(capped)
        .add_audience(AUDIENCE)
        .with_key_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let answer = call(&layer, &IDP.rs.token(&claims())).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["error"], "temporarily_unavailable");
    let err = answer.error.unwrap();
    assert_eq!(err.kind(), JwtErrorKind::KeysUnavailable);
    let cause = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<KeyError>())
        .expect("the key error is the source");
    assert_eq!(cause.kind(), KeyErrorKind::TooLarge);
    assert!(hits.load(Ordering::SeqCst) >= 1);
    // The same document under a cap it fits is fine.
    let roomy = RemoteJwks::jwks_url(&format!("{url}/jwks"))
        .with_max_body_bytes(16 * 1024)
        .build()
        .unwrap();
    roomy.ready().await.unwrap();
}

#[test]
fn key_set_with_more_than_100_keys_is_refused() {
    assert_eq!(validate_jwt::DEFAULT_MAX_KEYS, 100);
    let jwk = IDP.ed.jwk(true);
    let set = |n: usize| json!({ "keys": vec![jwk.clone(); n] }).to_string();
    let at_limit = KeySet::from_jwks(set(100).as_bytes()).unwrap();
    assert_eq!(at_limit.len(), 100);
    let err = KeySet::from_jwks(set(101).as_bytes()).unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::TooLarge);
    // Counted before any key is parsed: 100 000 junk entries fail the same way.
    let junk = format!("{{\"keys\":[{}0]}}", "0,".repeat(100_000));
    let err = KeySet::from_jwks(junk.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), KeyErrorKind::TooLarge);
}

#[tokio::test]
async fn token_above_the_configured_maximum_is_refused() {
    let token = IDP.rs.token(&claims());
    let at_limit = ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_audience(AUDIENCE)
        .with_max_token_size(token.len())
        .build()
        .unwrap();
    assert_accepted(&call(&at_limit, &token).await);
    let below = ValidateJwtLayer::builder()
        .add_keys(idp_keys())
        .add_audience(AUDIENCE)
        .with_max_token_size(token.len() - 1)
        .build()
        .unwrap();
    assert_invalid_token(&call(&below, &token).await, JwtErrorKind::TooLarge);
    // The default limit is 16 KiB.
    let padded = IDP
        .rs
        .token(&claims_with("pad", json!("p".repeat(16 * 1024))));
    assert!(padded.len() > validate_jwt::DEFAULT_MAX_TOKEN_BYTES);
    assert_invalid_token(
        &call(&default_layer(), &padded).await,
        JwtErrorKind::TooLarge,
    );
}

#[tokio::test]
async fn request_waiting_on_a_hanging_key_endpoint_completes_with_503() {
    let url = hanging_server().await;
    let layer = ValidateJwtLayer::builder()
        .add_key_source(
            RemoteJwks::jwks_url(&format!("{url}/jwks"))
                .add_issuer(ISSUER)
                .build()
                .unwrap(),
        )
        .add_audience(AUDIENCE)
        .with_key_wait(Duration::from_millis(300))
        .build()
        .unwrap();
    let token = IDP.rs.token(&claims());
    // The hang detector: far above the key wait, far below the provider's own 10 s timeout.
    let answer = tokio::time::timeout(Duration::from_secs(5), call(&layer, &token))
        .await
        .expect("the request did not complete while the key endpoint hangs");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.body["error"], "temporarily_unavailable");
    assert_eq!(answer.kind(), Some(JwtErrorKind::KeysUnavailable));
    // And so does validate_token.
    let err = tokio::time::timeout(Duration::from_secs(5), layer.validate_token(&token))
        .await
        .expect("validate_token did not complete while the key endpoint hangs")
        .unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::KeysUnavailable);
}
