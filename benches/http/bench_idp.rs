//! The identity provider of the HTTP load benchmark (`scripts/http_bench.sh`): the test kit's
//! issuer (`validate_jwt::testing::TestIssuer`) with an RS256 and an ES256 key, which writes
//! 10,000 distinct Azure AD-shaped access tokens for each (valid for two hours) and the JWKS to
//! a directory, then serves the JWKS and OpenID discovery on loopback until stopped.
//!
//! ```text
//! cargo run --release --example bench_idp -- --out DIR [--listen 127.0.0.1:0] [--tokens 10000]
//! ```
//!
//! Files written: `jwks.json`, `rs256.txt`, `es256.txt` (one token per line), `env` (shell
//! variables: `ISSUER`, `AUDIENCE`, `SCOPE`, `JWKS_URI`, `OPENID_CONFIG`), and last `ready`.
//! The tokens' issuer is the Azure AD one of the benchmarks' claims (`ISSUER`), so with
//! `OPENID_CONFIG` a layer also needs `--issuer "$ISSUER"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::error::Error;
use std::io::Write as _;
use std::net::ToSocketAddrs as _;
use std::path::PathBuf;

use serde_json::json;
use support::{AUDIENCE, SCOPE, azure_claims, issuer, now};
use validate_jwt::Algorithm;
use validate_jwt::testing::TestIssuer;

type BoxError = Box<dyn Error + Send + Sync>;

fn write_tokens(
    path: &PathBuf,
    idp: &TestIssuer,
    alg: Algorithm,
    n: usize,
    now: u64,
) -> Result<(), BoxError> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let mut claims = azure_claims(now, i);
        claims["exp"] = json!(now + 7200);
        // Exactly these claims and `{alg, kid, typ: JWT}`, as the Criterion benchmarks' tokens.
        let token = idp
            .token()
            .alg(alg)
            .typ("JWT")
            .claims(claims)
            .without_claim("client_id")
            .without_claim("jti")
            .sign();
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let mut out: Option<PathBuf> = None;
    let mut listen = "127.0.0.1:0".to_owned();
    let mut tokens = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = Some(value()?.into()),
            "--listen" => listen = value()?,
            "--tokens" => tokens = value()?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    std::fs::create_dir_all(&out)?;

    let listen = listen
        .to_socket_addrs()?
        .next()
        .ok_or("--listen names no address")?;
    let idp = TestIssuer::builder()
        .with_algorithms([Algorithm::RS256, Algorithm::ES256])
        .with_audience(AUDIENCE)
        .with_listen_addr(listen)
        .start()?;
    let now = now();
    write_tokens(&out.join("rs256.txt"), &idp, Algorithm::RS256, tokens, now)?;
    write_tokens(&out.join("es256.txt"), &idp, Algorithm::ES256, tokens, now)?;
    std::fs::write(out.join("jwks.json"), idp.jwks().to_string())?;
    std::fs::write(
        out.join("env"),
        format!(
            "ISSUER='{}'\nAUDIENCE='{AUDIENCE}'\nSCOPE='{SCOPE}'\nJWKS_URI='{}'\nOPENID_CONFIG='{}'\n",
            issuer(),
            idp.jwks_url(),
            idp.discovery_url(),
        ),
    )?;
    std::fs::write(out.join("ready"), b"")?;
    eprintln!(
        "bench_idp: {tokens} RS256 and ES256 tokens in {}, keys at {}",
        out.display(),
        idp.jwks_url()
    );
    // The issuer serves on its own thread until the process is stopped.
    loop {
        std::thread::park();
    }
}
