//! A document server for the key-fetching protocol tests: axum on `127.0.0.1:0` serving any
//! body at any path (hostile and malformed discovery documents and key sets included), with
//! byte-level faults (slow drips, cut connections, oversized bodies, delays), `Cache-Control`,
//! `ETag`, and per-path hit counters. This is what the test kit's issuer
//! (`validate_jwt::testing::TestIssuer`, a well-behaved identity provider with its own keys and
//! the faults a user tests against) deliberately cannot do; tests that need a real issuer use
//! the kit.
//!
//! The server runs on its own OS thread with its own multi-threaded Tokio runtime. Tests may
//! therefore pause and advance *their* runtime's clock without touching the server: it always
//! runs in real time, so a hang really hangs and a drip really drips.
//!
//! Include it with `#[path = "common/key_server.rs"] mod key_server;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use validate_jwt::Algorithm;
use validate_jwt::testing::SigningKey;

/// Something going wrong at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// Send 200 and its headers, then one byte every 50 ms, forever.
    SlowDrip,
    /// Send 200, its headers and part of the body, then drop the connection.
    CloseConnection,
    /// Send 200 with a body that is not JSON.
    InvalidJson,
    /// Send 200 with this many bytes and a `Content-Length`.
    Oversized(usize),
    /// Send 200 with this many bytes, chunked (no `Content-Length`).
    OversizedChunked(usize),
    /// Answer normally after this many milliseconds.
    Delay(u64),
}

#[derive(Debug, Clone, Default)]
struct Route {
    body: Bytes,
    cache_control: Option<String>,
    etag: Option<String>,
    fault: Option<Fault>,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
    not_modified: Mutex<HashMap<String, usize>>,
}

/// The running server; stopped when dropped.
pub(crate) struct KeyServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeyServer {
    pub(crate) fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = axum::serve(listener, app);
                tokio::select! {
                    result = serve => result.unwrap(),
                    _ = stopped => {}
                }
            });
            // Hanging handlers are dropped, not awaited.
            runtime.shutdown_background();
        });
        KeyServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`: the issuer of a document served at the root.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn route(&self, path: &str, change: impl FnOnce(&mut Route)) {
        let mut routes = self.shared.routes.lock().unwrap();
        change(routes.entry(path.to_owned()).or_default());
    }

    /// Serves `body` at `path` (headers and fault stay as they are).
    pub(crate) fn serve(&self, path: &str, body: impl Into<Bytes>) {
        let body = body.into();
        self.route(path, |r| r.body = body);
    }

    pub(crate) fn serve_json(&self, path: &str, value: &Value) {
        self.serve(path, value.to_string());
    }

    /// Serves a discovery document naming `issuer` and a key set at `jwks_path` on this server.
    pub(crate) fn serve_discovery(&self, path: &str, issuer: &str, jwks_path: &str) {
        let doc = json!({
            "issuer": issuer,
            "jwks_uri": self.url(jwks_path),
            "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        });
        self.serve_json(path, &doc);
    }

    pub(crate) fn fault(&self, path: &str, fault: Option<Fault>) {
        self.route(path, |r| r.fault = fault);
    }

    pub(crate) fn cache_control(&self, path: &str, value: Option<&str>) {
        self.route(path, |r| r.cache_control = value.map(str::to_owned));
    }

    /// Sends this (quoted) `ETag`, and answers 304 to a matching `If-None-Match`.
    pub(crate) fn etag(&self, path: &str, value: Option<&str>) {
        self.route(path, |r| r.etag = value.map(str::to_owned));
    }

    /// Requests received for `path`, whatever the answer.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.shared
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests for `path` answered 304 Not Modified.
    pub(crate) fn not_modified(&self, path: &str) -> usize {
        let counts = self.shared.not_modified.lock().unwrap();
        counts.get(path).copied().unwrap_or(0)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_owned();
    *shared.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let Some(route) = shared.routes.lock().unwrap().get(&path).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let fault = match route.fault {
        Some(Fault::Delay(millis)) => {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            None
        }
        fault => fault,
    };
    let body = match fault {
        Some(Fault::Delay(_)) => unreachable!(),
        Some(Fault::Status(code)) => {
            return StatusCode::from_u16(code).unwrap().into_response();
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::SlowDrip) => Body::new(Chunks::new(b" ", usize::MAX).every(50)),
        Some(Fault::CloseConnection) => Body::new(Chunks::new(b"{\"keys\":[", 1).then_fail()),
        Some(Fault::InvalidJson) => Body::from("{\"keys\": [ this is not json"),
        Some(Fault::Oversized(len)) => Body::from(vec![b' '; len]),
        Some(Fault::OversizedChunked(len)) => Body::new(Chunks::new(&[b' '; 1024], len / 1024 + 1)),
        None => {
            let etag = route.etag.as_deref();
            let matches = headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| Some(v.as_bytes()) == etag.map(str::as_bytes));
            if matches {
                *shared.not_modified.lock().unwrap().entry(path).or_default() += 1;
                let mut response = StatusCode::NOT_MODIFIED.into_response();
                set_cache_headers(&mut response, &route);
                return response;
            }
            Body::from(route.body.clone())
        }
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    set_cache_headers(&mut response, &route);
    response
}

fn set_cache_headers(response: &mut Response, route: &Route) {
    let headers = response.headers_mut();
    if let Some(value) = &route.cache_control {
        headers.insert(header::CACHE_CONTROL, value.parse().unwrap());
    }
    if let Some(value) = &route.etag {
        headers.insert(header::ETAG, value.parse().unwrap());
    }
}

/// A streamed body without a known length: `count` copies of `chunk`, optionally one every few
/// milliseconds, optionally ending in an error (which makes the server drop the connection).
struct Chunks {
    chunk: Bytes,
    remaining: usize,
    every: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    then_fail: bool,
}

impl Chunks {
    fn new(chunk: &[u8], count: usize) -> Self {
        Chunks {
            chunk: Bytes::copy_from_slice(chunk),
            remaining: count,
            every: None,
            sleep: None,
            then_fail: false,
        }
    }

    fn every(mut self, millis: u64) -> Self {
        self.every = Some(Duration::from_millis(millis));
        self
    }

    fn then_fail(mut self) -> Self {
        self.then_fail = true;
        self
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            let end = this
                .then_fail
                .then(|| Err(std::io::Error::other("connection cut by the test server")));
            return Poll::Ready(end);
        }
        if let Some(every) = this.every {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        this.remaining -= 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(this.chunk.clone()))))
    }
}

/// A fresh Ed25519 public key as a JWK (without `alg`).
pub(crate) fn ed25519_jwk(kid: &str) -> Value {
    let mut jwk = SigningKey::generate(Algorithm::EdDSA).with_kid(kid).jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    jwk
}

/// A fresh 2048-bit RSA public key as a JWK.
pub(crate) fn rsa_jwk(kid: &str) -> Value {
    SigningKey::generate(Algorithm::RS256).with_kid(kid).jwk()
}

/// A JWKS document of fresh Ed25519 keys with these `kid`s.
pub(crate) fn jwks(kids: &[&str]) -> Value {
    json!({ "keys": kids.iter().map(|kid| ed25519_jwk(kid)).collect::<Vec<_>>() })
}
