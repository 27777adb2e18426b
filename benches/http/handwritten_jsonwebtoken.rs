//! The HTTP benchmark's reference point: the Echo API behind a careful hand-written axum
//! middleware calling `jsonwebtoken::decode` with keys and `Validation`s built once at startup
//! (what you would write without this crate). Same echo as `echo_gateway`.
//!
//! ```text
//! cargo run --release --example handwritten_jsonwebtoken -- --jwks FILE --issuer ISS \
//!     --audience AUD --require-scope SCOPE [--listen 127.0.0.1:3001]
//! ```
//!
//! Per request: the bearer token from `Authorization`, `decode_header` for the `kid`, the
//! prebuilt key and `Validation` for it, `decode` (signature, `exp`, `nbf`, `iss`, `aud`; the
//! claims kept as raw JSON for the echo), the scope read from `scp`, 401/403 otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::value::RawValue;

type BoxError = Box<dyn Error + Send + Sync>;

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Validation)>,
    scope: String,
}

/// The verified claims, as the token carried them.
#[derive(Clone)]
struct RawClaims(Arc<RawValue>);

#[derive(serde::Deserialize)]
struct Scp<'a> {
    #[serde(borrow, default)]
    scp: Cow<'a, str>,
}

async fn authenticate(State(keys): State<Arc<Keys>>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some((key, validation)) = decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .and_then(|kid| keys.by_kid.get(&kid))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let claims = match decode::<Box<RawValue>>(token, key, validation) {
        Ok(data) => data.claims,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let scoped = serde_json::from_str::<Scp<'_>>(claims.get())
        .is_ok_and(|s| s.scp.split(' ').any(|s| s == keys.scope));
    if !scoped {
        return StatusCode::FORBIDDEN.into_response();
    }
    request.extensions_mut().insert(RawClaims(claims.into()));
    next.run(request).await
}

/// `{"claims":…,"method":…,"path":…}` with the claims' JSON as the token carried it.
async fn echo(request: Request) -> Response {
    let claims = request.extensions().get::<RawClaims>();
    let body = format!(
        r#"{{"claims":{},"method":{},"path":{}}}"#,
        claims.map_or("null", |c| c.0.get()),
        serde_json::to_string(request.method().as_str()).unwrap_or_default(),
        serde_json::to_string(request.uri().path()).unwrap_or_default(),
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // With `--all-features` jsonwebtoken has both backends; use aws-lc-rs, like the layer.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let (mut jwks, mut issuer, mut audience, mut scope) = (None, None, None, None);
    let mut listen = "127.0.0.1:3001".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--jwks" => jwks = Some(value()?),
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            "--require-scope" => scope = Some(value()?),
            "--listen" => listen = value()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let set: JwkSet = serde_json::from_slice(&std::fs::read(jwks.ok_or("--jwks FILE")?)?)?;
    let (issuer, audience) = (issuer.ok_or("--issuer")?, audience.ok_or("--audience")?);
    let mut by_kid = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
            continue;
        };
        let alg: jsonwebtoken::Algorithm = alg.to_string().parse()?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        by_kid.insert(kid.clone(), (DecodingKey::from_jwk(jwk)?, validation));
    }
    let keys = Arc::new(Keys {
        by_kid,
        scope: scope.ok_or("--require-scope")?,
    });
    let app = Router::new()
        .fallback(echo)
        .layer(axum::middleware::from_fn_with_state(keys, authenticate));
    let addr: SocketAddr = listen.parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
