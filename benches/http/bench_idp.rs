//! The identity provider of the HTTP load benchmark (`scripts/http_bench.sh`): makes an RS256
//! and an ES256 key, writes 10,000 distinct Azure AD-shaped access tokens for each (valid for
//! two hours) and the JWKS to a directory, then serves the JWKS and OpenID discovery on
//! loopback until stopped.
//!
//! ```text
//! cargo run --release --example bench_idp -- --out DIR [--listen 127.0.0.1:0] [--tokens 10000]
//! ```
//!
//! Files written: `jwks.json`, `rs256.txt`, `es256.txt` (one token per line), `env` (shell
//! variables: `ISSUER`, `AUDIENCE`, `SCOPE`, `JWKS_URI`, `OPENID_CONFIG`), and last `ready`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use std::error::Error;
use std::io::Write as _;
use std::path::PathBuf;

use axum::Router;
use axum::response::Json;
use serde_json::json;
use support::{AUDIENCE, SCOPE, TestKey, azure_claims, issuer, now};

type BoxError = Box<dyn Error + Send + Sync>;

fn write_tokens(path: &PathBuf, signer: &TestKey, n: usize, now: u64) -> Result<(), BoxError> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let mut claims = azure_claims(now, i);
        claims["exp"] = json!(now + 7200);
        writeln!(out, "{}", signer.token(&claims))?;
    }
    out.flush()?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
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

    let rs = support::signer("RS256");
    let es = support::signer("ES256");
    let now = now();
    write_tokens(&out.join("rs256.txt"), &rs, tokens, now)?;
    write_tokens(&out.join("es256.txt"), &es, tokens, now)?;
    let jwks = json!({"keys": [rs.jwk(true), es.jwk(true)]});
    std::fs::write(out.join("jwks.json"), jwks.to_string())?;

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let discovery = json!({"issuer": issuer(), "jwks_uri": format!("{base}/jwks"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"]});
    std::fs::write(
        out.join("env"),
        format!(
            "ISSUER='{}'\nAUDIENCE='{AUDIENCE}'\nSCOPE='{SCOPE}'\nJWKS_URI='{base}/jwks'\nOPENID_CONFIG='{base}/.well-known/openid-configuration'\n",
            issuer()
        ),
    )?;
    let app = Router::new()
        .route(
            "/jwks",
            axum::routing::get(move || async move { Json(jwks) }),
        )
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { Json(discovery) }),
        );
    std::fs::write(out.join("ready"), b"")?;
    eprintln!(
        "bench_idp: {tokens} RS256 and ES256 tokens in {}, keys at {base}/jwks",
        out.display()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
