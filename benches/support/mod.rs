//! Benchmark support shared by the benchmarks (`benches/*.rs`, `benches/tools/`) and the HTTP
//! benchmark's helper (`benches/http/bench_idp.rs`): signing keys for every algorithm, their
//! public JWKs, realistic Azure AD (Entra ID) v2 access-token claims (~1.5 KB RS256 tokens), the
//! floor's inputs (`signed_parts`) and bearer header values.
#![allow(dead_code, unreachable_pub, clippy::panic)]

use serde_json::{Value, json};

// The keys and signatures are the test suite's own (`tests/common`).
#[path = "../../tests/common/mod.rs"]
mod common;

pub use common::{TestKey, b64, now};

/// Each token's signing input and decoded signature: what the bare signature check (the floor)
/// is given.
pub fn signed_parts(tokens: &[String]) -> Vec<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').expect("a compact JWS");
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(sig)
                .expect("base64url");
            (input.as_bytes().to_vec(), sig)
        })
        .collect()
}

/// `Authorization: Bearer <token>`'s value.
pub fn bearer(token: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value")
}

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

/// Every algorithm the benchmarks cover.
pub const ALGORITHMS: [&str; 6] = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"];

/// A fresh key for `alg` (RSA keys are 2048 bits), with a `kid` shaped like Azure AD's (27
/// characters of base64url).
pub fn signer(alg: &'static str) -> TestKey {
    let kid = format!("{}{}", alg, &b64(alg.repeat(4))[..22]);
    match alg {
        "RS256" | "PS256" => TestKey::rsa(&kid, alg),
        "ES256" => TestKey::es256(&kid),
        "ES384" => TestKey::es384(&kid),
        "EdDSA" => TestKey::ed25519(&kid),
        "HS256" => TestKey::hmac(
            &kid,
            alg,
            b"a benchmark secret of at least 32 bytes, really",
        ),
        other => panic!("no such algorithm {other}"),
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

/// The inner service of the in-process benchmarks: an empty 200, at once.
pub type Inner = tower::util::ServiceFn<
    fn(
        http::Request<()>,
    ) -> std::future::Ready<Result<http::Response<()>, std::convert::Infallible>>,
>;

/// [`Inner`].
pub fn inner() -> Inner {
    fn ok(
        _: http::Request<()>,
    ) -> std::future::Ready<Result<http::Response<()>, std::convert::Infallible>> {
        std::future::ready(Ok(http::Response::new(())))
    }
    tower::service_fn(ok as fn(_) -> _)
}

/// Calls the service and polls its future once: the layer answers at once when it has keys
/// (and, for DPoP, the in-memory replay store answers at once too).
pub fn call<S, B>(svc: &mut S, request: http::Request<()>) -> http::Response<B>
where
    S: tower::Service<http::Request<()>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
{
    use std::future::Future as _;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match svc.poll_ready(&mut cx) {
        std::task::Poll::Ready(Ok(())) => {}
        _ => panic!("not ready"),
    }
    let fut = std::pin::pin!(svc.call(request));
    match fut.poll(&mut cx) {
        std::task::Poll::Ready(Ok(response)) => response,
        _ => panic!("the layer did not answer at once"),
    }
}
