//! The HTTP benchmark's ceiling for validated traffic: the Echo API behind a middleware that
//! does only what no validator can skip, on the same axum stack as `echo_gateway`.
//!
//! ```text
//! cargo run --release --example signature_only -- --jwks FILE [--listen 127.0.0.1:3002]
//! ```
//!
//! Per request, `benches/support/signature_only.rs` (shared with the in-process ratio,
//! `benches/ratio.rs`): the bearer token from `Authorization`; its header decoded and its `kid`
//! read; the key for that `kid` among keys parsed once at startup (aws-lc-rs, as the layer); the
//! signature decoded and verified; the payload decoded and handed to the echo in the request's
//! extensions, which echoes its bytes. No time, issuer, audience, `typ` or scope check, no
//! I-JSON check of the payload: a server that did less would not know the token is authentic.
//! Anything else is a bare 401.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{StatusCode, header};
use serde_json::Value;
use tower::{Layer, Service};

#[path = "../support/signature_only.rs"]
mod ceiling;

use ceiling::Payload;

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone)]
struct SignatureOnly<S> {
    inner: S,
    keys: Arc<HashMap<String, ParsedPublicKey>>,
}

#[derive(Clone)]
struct SignatureOnlyLayer(Arc<HashMap<String, ParsedPublicKey>>);

impl<S> Layer<S> for SignatureOnlyLayer {
    type Service = SignatureOnly<S>;
    fn layer(&self, inner: S) -> SignatureOnly<S> {
        SignatureOnly {
            inner,
            keys: self.0.clone(),
        }
    }
}

impl<S> Service<Request> for SignatureOnly<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match ceiling::verify(request.headers(), &self.keys) {
            Some(payload) => {
                request.extensions_mut().insert(payload);
                Answer::Inner {
                    future: self.inner.call(request),
                }
            }
            None => Answer::Refused {
                response: Some(StatusCode::UNAUTHORIZED.into_response()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, or a 401 (no box, as the layer's `ResponseFuture`).
    #[project = AnswerProj]
    enum Answer<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Answer<F> {
    type Output = Result<Response, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProj::Inner { future } => future.poll(cx),
            AnswerProj::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
        }
    }
}

/// `{"claims":…,"method":…,"path":…}`, the payload's own bytes as `echo_gateway` echoes them.
async fn echo(request: Request) -> Response {
    let claims = request.extensions().get::<Payload>();
    let body = format!(
        r#"{{"claims":{},"method":{},"path":{}}}"#,
        claims.map_or("null", |c| &c.0),
        Value::from(request.method().as_str()),
        Value::from(request.uri().path()),
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn parse_key(jwk: &Value) -> Result<ParsedPublicKey, BoxError> {
    let field = |name: &str| -> Result<Vec<u8>, BoxError> {
        let text = jwk[name].as_str().ok_or(format!("JWK without {name}"))?;
        Ok(URL_SAFE_NO_PAD.decode(text)?)
    };
    let key = match (jwk["kty"].as_str(), jwk["alg"].as_str()) {
        (Some("RSA"), Some("RS256")) => RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)?,
        (Some("EC"), Some("ES256")) => {
            let mut point = vec![4];
            point.extend(field("x")?);
            point.extend(field("y")?);
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)?
        }
        other => return Err(format!("unsupported JWK {other:?}").into()),
    };
    Ok(key)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (mut jwks, mut listen) = (None, "127.0.0.1:3002".to_owned());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--jwks" => jwks = Some(value()?),
            "--listen" => listen = value()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let set: Value = serde_json::from_slice(&std::fs::read(jwks.ok_or("--jwks FILE")?)?)?;
    let mut keys = HashMap::new();
    for jwk in set["keys"].as_array().ok_or("a JWKS without keys")? {
        let kid = jwk["kid"].as_str().ok_or("a JWK without kid")?;
        keys.insert(kid.to_owned(), parse_key(jwk)?);
    }
    let layer = SignatureOnlyLayer(Arc::new(keys));
    let app: Router<()> = Router::new().fallback(echo).layer(layer);
    let listen: SocketAddr = listen.parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "listening on http://{} (signature only)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
