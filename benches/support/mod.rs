//! Benchmark support shared by `benches/validation.rs` and the HTTP benchmark's helper
//! (`examples/bench_idp.rs`): signing keys for every algorithm, their public JWKs, and
//! realistic Azure AD (Entra ID) v2 access-token claims (~1.5 KB RS256 tokens).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use serde_json::{Value, json};

/// The tenant of the sample tokens.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The API's client id, the tokens' audience.
pub const AUDIENCE: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
/// The delegated scope every sample token carries.
pub const SCOPE: &str = "access_as_user";

/// The v2 issuer of [`TENANT`].
pub fn issuer() -> String {
    format!("https://login.microsoftonline.com/{TENANT}/v2.0")
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

enum Kind {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A signing key for one algorithm, with its `kid`.
pub struct Signer {
    pub alg: &'static str,
    pub kid: String,
    kind: Kind,
}

/// Every algorithm the benchmarks cover.
pub const ALGORITHMS: [&str; 6] = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"];

impl Signer {
    /// A fresh key for `alg` (RSA keys are 2048 bits).
    pub fn new(alg: &'static str) -> Signer {
        let kind = match alg {
            "RS256" => Kind::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                &signature::RSA_PKCS1_SHA256,
            ),
            "PS256" => Kind::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                &signature::RSA_PSS_SHA256,
            ),
            "ES256" => Kind::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
            "ES384" => Kind::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap(),
            ),
            "EdDSA" => Kind::Ed(Ed25519KeyPair::generate().unwrap()),
            "HS256" => Kind::Hmac(b"a benchmark secret of at least 32 bytes, really".to_vec()),
            other => panic!("no such algorithm {other}"),
        };
        // Azure AD's kids look like this (27 characters of base64url).
        let kid = format!("{}{}", alg, &b64(alg.repeat(4))[..22]);
        Signer { alg, kid, kind }
    }

    /// The public JWK (for HS256, the `oct` secret).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.kind {
            Kind::Rsa(p, _) => {
                let pk = p.public_key();
                json!({"kty":"RSA","n": b64(pk.modulus().big_endian_without_leading_zero()),
                       "e": b64(pk.exponent().big_endian_without_leading_zero())})
            }
            Kind::Ec(p) => {
                let point = p.public_key().as_ref();
                let n = (point.len() - 1) / 2;
                let crv = if n == 32 { "P-256" } else { "P-384" };
                json!({"kty":"EC","crv":crv,"x": b64(&point[1..1 + n]),"y": b64(&point[1 + n..])})
            }
            Kind::Ed(p) => json!({"kty":"OKP","crv":"Ed25519","x": b64(p.public_key().as_ref())}),
            Kind::Hmac(secret) => json!({"kty":"oct","k": b64(secret)}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The raw public key as aws-lc-rs parses it (RSA: PKCS#1 DER; EC: the uncompressed point;
    /// Ed25519: 32 bytes; HMAC: the secret).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.kind {
            Kind::Rsa(p, _) => p.public_key().as_ref().to_vec(),
            Kind::Ec(p) => p.public_key().as_ref().to_vec(),
            Kind::Ed(p) => p.public_key().as_ref().to_vec(),
            Kind::Hmac(secret) => secret.clone(),
        }
    }

    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.kind {
            Kind::Rsa(p, enc) => {
                let mut sig = vec![0; p.public_modulus_len()];
                p.sign(*enc, &rng, input, &mut sig).unwrap();
                sig
            }
            Kind::Ec(p) => p.sign(&rng, input).unwrap().as_ref().to_vec(),
            Kind::Ed(p) => p.sign(input).as_ref().to_vec(),
            Kind::Hmac(secret) => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::sign(&key, input).as_ref().to_vec()
            }
        }
    }

    /// A compact JWS with Azure AD's header shape (`typ`, `alg`, `kid`).
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": self.alg, "kid": self.kid});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }
}

/// Azure AD v2 access-token claims, as Entra ID issues them for a signed-in user calling an
/// API (delegated `scp`, app `roles`, `groups`), about 790 bytes of JSON (a 1.48 KB RS256
/// token); `i` makes `uti` (the token id) unique.
pub fn azure_claims(now: u64, i: usize) -> Value {
    json!({
        "aud": AUDIENCE,
        "iss": issuer(),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "aio": "AWQAm/8TAAAAr6nW4A3ODgrMH3xCj3pKwm5hlOMdRg7iSZgRyOyXWEYF1rtc0B3MmFvr5fFNFm7q0ZXqFUBl2FWEQX2g7gGq4yQ5F2YHbqk4T+kX0OQ+Xmzpo",
        "azp": "c44b4083-3bb0-49c1-b47d-974e53cbdf3c",
        "azpacr": "0",
        "groups": ["4fe90ae7-065a-478b-9400-e0a0e1cbd540"],
        "name": "Abe Lincoln",
        "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
        "preferred_username": "abeli@microsoft.com",
        "rh": "0.AXEAv4j5cvGGr0GRqy180BHbR-ZfXW2xxbVMslRzN1BdxrtxAFc.",
        "roles": ["Files.Read.All"],
        "scp": format!("{SCOPE} User.Read"),
        "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
        "tid": TENANT,
        "uti": format!("fqiBqXLPj0eQa82S-{i:06}"),
        "ver": "2.0",
    })
}
