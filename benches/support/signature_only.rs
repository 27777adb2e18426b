//! The signature-only check, the ceiling for validated traffic: what no validator can skip, and
//! nothing more. One definition for the HTTP benchmark's ceiling (`echo_gateway
//! --signature-only`, so that the ceiling and the layer run the same binary and the crypto sits
//! at the same addresses in both) and the in-process ratio (`benches/ratio.rs`).
//!
//! Per request: the bearer token from `Authorization`; its header decoded and its `kid` read
//! (serde_json); the key for that `kid` among keys parsed once (aws-lc-rs, as the layer); the
//! signature decoded and verified; the payload decoded, checked to be UTF-8 and put in the
//! request's extensions. No time, issuer, audience, `typ` or scope check, no JSON check of the
//! payload: a server that did less would not know the token is authentic. Anything else is a
//! bare 401. The base64url decoder is the layer's own (base64-simd), so the ceiling is not
//! slowed by a slower one.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64_simd::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use tower::{Layer, Service};

/// The verified payload, as the token carried it.
#[derive(Clone)]
pub struct Payload(pub Arc<str>);

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    kid: Option<&'a str>,
}

/// The keys, by `kid`.
pub type Keys = HashMap<String, ParsedPublicKey>;

/// The payload of the request's bearer token when its signature verifies with the key its
/// `kid` names; `None` for anything else.
pub fn verify(headers: &HeaderMap, keys: &Keys) -> Option<Payload> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let (input, sig) = token.rsplit_once('.')?;
    let (head, payload) = input.split_once('.')?;
    let head = URL_SAFE_NO_PAD.decode_to_vec(head).ok()?;
    let kid = serde_json::from_slice::<Header<'_>>(&head).ok()?.kid?;
    let key = keys.get(kid)?;
    let sig = URL_SAFE_NO_PAD.decode_to_vec(sig).ok()?;
    key.verify_sig(input.as_bytes(), &sig).ok()?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode_to_vec(payload).ok()?).ok()?;
    Some(Payload(payload.into()))
}

/// The RS256 and ES256 keys of a JWKS document, parsed once.
pub fn keys_from_jwks(jwks: &Value) -> Result<Keys, String> {
    let mut keys = HashMap::new();
    for jwk in jwks["keys"].as_array().ok_or("a JWKS without keys")? {
        let kid = jwk["kid"].as_str().ok_or("a JWK without kid")?;
        keys.insert(kid.to_owned(), parse_key(jwk)?);
    }
    Ok(keys)
}

fn parse_key(jwk: &Value) -> Result<ParsedPublicKey, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = jwk[name].as_str().ok_or(format!("JWK without {name}"))?;
        URL_SAFE_NO_PAD
            .decode_to_vec(text)
            .map_err(|e| format!("{name}: {e}"))
    };
    let parsed = match (jwk["kty"].as_str(), jwk["alg"].as_str()) {
        (Some("RSA"), Some("RS256")) => RsaPublicKeyComponents {
            n: field("n")?,
            e: field("e")?,
        }
        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256),
        (Some("EC"), Some("ES256")) => {
            let mut point = vec![4];
            point.extend(field("x")?);
            point.extend(field("y")?);
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        }
        other => return Err(format!("unsupported JWK {other:?}")),
    };
    parsed.map_err(|e| format!("a JWK aws-lc-rs refuses: {e}"))
}

/// The Echo API behind the signature-only middleware: `{"claims":…,"method":…,"path":…}` with
/// the payload's own bytes, as `echo_gateway` echoes them.
pub fn router(keys: Keys) -> Router {
    Router::new()
        .fallback(echo)
        .layer(SignatureOnlyLayer(Arc::new(keys)))
}

#[derive(Clone)]
struct SignatureOnlyLayer(Arc<Keys>);

impl<S> Layer<S> for SignatureOnlyLayer {
    type Service = SignatureOnly<S>;
    fn layer(&self, inner: S) -> SignatureOnly<S> {
        SignatureOnly {
            inner,
            keys: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct SignatureOnly<S> {
    inner: S,
    keys: Arc<Keys>,
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
        match verify(request.headers(), &self.keys) {
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
