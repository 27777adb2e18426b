//! Interop: tokens issued by software we did not write.
//!
//! * A real OpenID Provider, `oidc-provider` (certified, Node.js; `tests/interop/provider/`),
//!   started on 127.0.0.1 by these tests, issuing RFC 9068 JWT access tokens (`typ: at+jwt`)
//!   through the `client_credentials` grant with resource indicators, signed with RS256, PS256,
//!   ES256, ES384 and EdDSA keys. The layer knows nothing but its discovery URL and our
//!   audience.
//!   With its `dPoP` and `mTLS` features on, it also issues DPoP-bound tokens (proofs made by
//!   panva's `dpop` package, `dpop-client.mjs`) and certificate-bound tokens.
//! * Committed fixtures minted by PyJWT + cryptography, jwcrypto and `jose`
//!   (`tests/interop/fixtures/`, made by `tests/interop/minters/regenerate.sh`), positive and
//!   negative (wrong key, expired, wrong audience) for each algorithm.
//!
//! The provider tests need `node` and `npm ci` in `tests/interop/provider` (`.ci/run` does it).
//! With `CI` set they fail when either is missing; locally they skip with a printed reason.
//!
//! No sleeps: the tests wait for the provider's "ready" line and, during a cold start, for the
//! key source's next fetch attempt ([`RemoteJwks::ready`]), with bounded attempts. Nothing
//! asserts on elapsed time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use http::{Request, header};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tower::ServiceExt as _;
use validate_jwt::sender::{CertificateHeader, ClientCertificates, Dpop};
use validate_jwt::{
    JwtError, JwtErrorKind, RemoteJwks, StaticKeys, ValidateJwtBuilder, ValidateJwtLayer,
};

/// The algorithms every source must cover.
const ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
/// Our API, as the provider's resource servers and the fixtures name it.
const AUDIENCE: &str = "api://interop";
/// Another API the provider issues tokens for, with the same keys.
const OTHER_RESOURCE: &str = "api://other";
const CLIENT_ID: &str = "interop-client";
const CLIENT_SECRET: &str = "interop-secret";
/// The longest the provider may take to say it is listening.
const STARTUP_BOUND: Duration = Duration::from_secs(30);

// ---- environment ------------------------------------------------------------------------

/// Whether we run in CI, where a missing tool is a failure rather than a skip.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The provider harness's directory, or `None` when the test must skip (locally only).
fn provider_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/provider");
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let problem = if !node.is_ok_and(|s| s.success()) {
        "`node` is not on PATH"
    } else if !dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        "oidc-provider is not installed: run `npm ci` in tests/interop/provider"
    } else {
        return Some(dir);
    };
    assert!(
        !in_ci(),
        "CI is set, and interop tests cannot run: {problem}"
    );
    eprintln!("skipping the OpenID Provider interop test: {problem}");
    None
}

// ---- the provider -------------------------------------------------------------------------

/// A private JWKS with one key per algorithm, `kid`s `<prefix>-<alg>`.
async fn keygen(dir: &Path, prefix: &str) -> String {
    let out = Command::new("node")
        .args(["provider.mjs", "keygen", prefix])
        .current_dir(dir)
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `oidc-provider`; killed when stopped or dropped.
struct Provider {
    child: Child,
    /// Closing it makes the harness exit on its own.
    stdin: Option<ChildStdin>,
    url: String,
    port: u16,
}

impl Provider {
    /// Starts the harness on `port` (0: a free one) with a private JWKS and waits for its URL.
    async fn start(dir: &Path, jwks: &str, port: u16) -> Provider {
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir)
            .env("INTEROP_JWKS", jwks)
            .env("INTEROP_PORT", port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        // Keep stderr (oidc-provider's notices) for the failure message, and keep draining it.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(STARTUP_BOUND, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("INTEROP_PROVIDER_URL=") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(url)) = url else {
            let _ = child.kill().await;
            panic!(
                "the provider did not start on port {port}:\n{}",
                stderr.lock().unwrap()
            );
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Provider {
            stdin: child.stdin.take(),
            child,
            url,
            port,
        }
    }

    /// Stops the provider and waits until it has exited (its port is free again).
    async fn stop(mut self) -> u16 {
        drop(self.stdin.take());
        self.child.kill().await.expect("kill the provider");
        self.port
    }

    fn discovery_url(&self) -> String {
        discovery_url(self.port)
    }

    /// A `client_credentials` access token for `resource` with the scopes asked for.
    async fn token(&self, resource: &str, scope: &str) -> String {
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("resource", resource),
            ("scope", scope),
        ]);
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.url))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("POST /token");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "POST /token: {status} {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["token_type"], "Bearer", "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// A token for our API signed with `alg` (the harness maps `api://interop/<alg>` to a
    /// resource server with audience `api://interop` signing with `alg`).
    async fn token_for(&self, alg: &str) -> String {
        self.token(&format!("{AUDIENCE}/{alg}"), "echo:read").await
    }
}

fn discovery_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/.well-known/openid-configuration")
}

/// `application/x-www-form-urlencoded`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A token's decoded header.
fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---- the layer ----------------------------------------------------------------------------

/// The echo service behind `layer`.
fn app(layer: ValidateJwtLayer) -> Router {
    Router::new().route("/echo", get(common::echo)).layer(layer)
}

/// The layer configured with nothing but the provider's discovery URL and our audience (plus
/// `extra`), and a handle on the same key source.
fn layer_for(
    discovery: &str,
    extra: impl FnOnce(ValidateJwtBuilder) -> ValidateJwtBuilder,
) -> (Router, RemoteJwks) {
    let keys = RemoteJwks::discovery_url(discovery).build().unwrap();
    let builder = ValidateJwtLayer::builder()
        .add_key_source(keys.clone())
        .add_audience(AUDIENCE);
    (app(extra(builder).build().unwrap()), keys)
}

#[derive(Debug)]
struct Answer {
    status: u16,
    kind: Option<JwtErrorKind>,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    body: Value,
}

/// One request through the layer, with a bearer token.
async fn call(app: &Router, token: &str) -> Answer {
    let request = Request::get("/echo")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let text = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (www_authenticate, retry_after) =
        (text(header::WWW_AUTHENTICATE), text(header::RETRY_AFTER));
    let status = response.status().as_u16();
    let kind = response.extensions().get::<JwtError>().map(JwtError::kind);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        kind,
        www_authenticate,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

// ---- the OpenID Provider ----------------------------------------------------------------

#[tokio::test]
async fn provider_tokens_of_every_algorithm_are_accepted_with_only_discovery_and_audience() {
    let Some(dir) = provider_dir() else { return };
    let provider = Provider::start(&dir, &keygen(&dir, "a").await, 0).await;
    let (app, keys) = layer_for(&provider.discovery_url(), |b| b);
    for alg in ALGORITHMS {
        let token = provider.token_for(alg).await;
        let header = header_of(&token);
        assert_eq!(header["alg"], alg, "{header}");
        assert_eq!(header["typ"], "at+jwt", "{header}");
        assert_eq!(
            header["kid"],
            format!("a-{}", alg.to_lowercase()),
            "{header}"
        );
        let answer = call(&app, &token).await;
        assert_eq!(answer.status, 200, "{alg}: {answer:?}");
        let claims = &answer.body["claims"];
        assert_eq!(claims["iss"], provider.url, "{alg}");
        assert_eq!(claims["aud"], AUDIENCE, "{alg}");
        assert_eq!(claims["client_id"], CLIENT_ID, "{alg}");
    }
    assert_eq!(keys.status().key_count(), ALGORITHMS.len());
}

#[tokio::test]
async fn provider_scopes_are_enforced() {
    let Some(dir) = provider_dir() else { return };
    let provider = Provider::start(&dir, &keygen(&dir, "s").await, 0).await;
    let discovery = provider.discovery_url();
    let read_only = provider.token_for("ES256").await;
    let read_write = provider
        .token(&format!("{AUDIENCE}/ES256"), "echo:read echo:write")
        .await;

    let (needs_read, _) = layer_for(&discovery, |b| b.require_all_scopes(["echo:read"]));
    assert_eq!(call(&needs_read, &read_only).await.status, 200);

    let (needs_write, _) = layer_for(&discovery, |b| b.require_all_scopes(["echo:write"]));
    let answer = call(&needs_write, &read_only).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.kind, Some(JwtErrorKind::InsufficientScope));
    let challenge = answer.www_authenticate.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="echo:write""#),
        "{challenge}"
    );
    let answer = call(&needs_write, &read_write).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["claims"]["scope"], "echo:read echo:write");
}

#[tokio::test]
async fn provider_tokens_for_another_resource_are_refused() {
    let Some(dir) = provider_dir() else { return };
    let provider = Provider::start(&dir, &keygen(&dir, "o").await, 0).await;
    let (app, _) = layer_for(&provider.discovery_url(), |b| b);
    // Same issuer, same keys, same client: only the audience differs.
    let other = provider.token(OTHER_RESOURCE, "echo:read").await;
    assert_eq!(header_of(&other)["kid"], "o-rs256");
    let answer = call(&app, &other).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.kind, Some(JwtErrorKind::InvalidAudience));
    assert!(
        answer
            .www_authenticate
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#)
    );
    // The same request for our resource passes.
    let ours = provider.token_for("RS256").await;
    assert_eq!(call(&app, &ours).await.status, 200);
}

#[tokio::test]
async fn provider_key_rotation_new_kid_is_accepted_on_first_use_and_removed_kid_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let (old_keys, new_keys) = tokio::join!(keygen(&dir, "old"), keygen(&dir, "new"));
    let provider = Provider::start(&dir, &old_keys, 0).await;
    let (app, keys) = layer_for(&provider.discovery_url(), |b| b);
    let mut old_tokens = Vec::new();
    for alg in ALGORITHMS {
        let token = provider.token_for(alg).await;
        assert_eq!(
            call(&app, &token).await.status,
            200,
            "{alg} before rotation"
        );
        old_tokens.push((alg, token));
    }
    let fetches_before = keys.status().fetches();

    // Restart the provider, at the same issuer URL, with a rotated key set.
    let port = provider.stop().await;
    let provider = Provider::start(&dir, &new_keys, port).await;
    assert_eq!(provider.port, port);

    // The same layer, the same RemoteJwks: the first token with a new kid is accepted.
    let first = provider.token_for("PS256").await;
    assert_eq!(header_of(&first)["kid"], "new-ps256");
    let answer = call(&app, &first).await;
    assert_eq!(answer.status, 200, "new kid on first use: {answer:?}");
    assert!(
        keys.status().fetches() > fetches_before,
        "no refresh happened"
    );
    for alg in ALGORITHMS {
        let token = provider.token_for(alg).await;
        assert_eq!(call(&app, &token).await.status, 200, "{alg} after rotation");
    }

    // Tokens signed with the removed keys are refused now that the set was refreshed.
    for (alg, token) in &old_tokens {
        let answer = call(&app, token).await;
        assert_eq!(answer.status, 401, "{alg} old kid: {answer:?}");
        assert_eq!(answer.kind, Some(JwtErrorKind::UnknownKey), "{alg}");
    }
}

#[tokio::test]
async fn provider_down_at_cold_start_answers_503_then_recovers() {
    let Some(dir) = provider_dir() else { return };
    let jwks = keygen(&dir, "cold").await;
    // Mint a token, then stop the provider before the layer exists.
    let provider = Provider::start(&dir, &jwks, 0).await;
    let token = provider.token_for("EdDSA").await;
    let port = provider.stop().await;

    let (app, keys) = layer_for(&discovery_url(port), |b| b);
    let answer = call(&app, &token).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.kind, Some(JwtErrorKind::KeysUnavailable));
    assert_eq!(answer.body["error"], "temporarily_unavailable");
    assert!(answer.retry_after.is_some(), "{answer:?}");
    assert!(keys.status().consecutive_failures() >= 1);

    let _provider = Provider::start(&dir, &jwks, port).await;
    // The key source retries with backoff; wait for its next attempt, a bounded number of times.
    let mut answer = call(&app, &token).await;
    for _ in 0..8 {
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "while recovering: {answer:?}");
        let _ = tokio::time::timeout(Duration::from_secs(60), keys.ready()).await;
        answer = call(&app, &token).await;
    }
    assert_eq!(
        answer.status,
        200,
        "no recovery: {answer:?} {:?}",
        keys.status()
    );
    assert_eq!(
        answer.body["claims"]["iss"],
        format!("http://127.0.0.1:{port}")
    );
}

// ---- sender-constrained tokens: DPoP with panva's `dpop`, certificate binding ---------------

/// The URL our API is published at, as the DPoP client puts it in `htu`.
const PUBLIC_URL: &str = "https://api.interop.example";

/// What `dpop-client.mjs` prints: the provider's token response and proofs for our API.
#[derive(Deserialize)]
struct DpopClient {
    access_token: String,
    token_type: String,
    proofs: Vec<String>,
}

/// A DPoP-bound token for our API from the provider and three proofs for `GET /echo`, made by
/// panva's `dpop` package with a fresh `alg` key.
async fn dpop_client(dir: &Path, provider: &Provider, alg: &str) -> DpopClient {
    let out = Command::new("node")
        .args([
            "dpop-client.mjs",
            &provider.url,
            &format!("{AUDIENCE}/ES256"),
        ])
        .arg(format!("{PUBLIC_URL}/echo"))
        .arg(alg)
        .current_dir(dir)
        .output()
        .await
        .expect("run node");
    assert!(
        out.status.success(),
        "dpop-client.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// One request through the layer, as built.
async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let text = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (www_authenticate, retry_after) =
        (text(header::WWW_AUTHENTICATE), text(header::RETRY_AFTER));
    let status = response.status().as_u16();
    let kind = response.extensions().get::<JwtError>().map(JwtError::kind);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        kind,
        www_authenticate,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn dpop_request(scheme: &str, token: &str, proof: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/echo")
        .header(header::HOST, "api.interop.example")
        .header(header::AUTHORIZATION, format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn provider_dpop_bound_tokens_with_dpop_library_proofs_are_accepted_once_and_only_with_a_proof()
 {
    let Some(dir) = provider_dir() else { return };
    let provider = Provider::start(&dir, &keygen(&dir, "dpop").await, 0).await;
    // A cold key source: the first request also takes the slow path, then the proof checks.
    let (app, _keys) = layer_for(&provider.discovery_url(), |b| {
        b.with_dpop(Dpop::required().with_public_url(PUBLIC_URL))
    });
    // The provider accepts ES256 and Ed25519 proofs (its `dPoPSigningAlgValues`).
    for alg in ["ES256", "Ed25519"] {
        let client = dpop_client(&dir, &provider, alg).await;
        assert_eq!(client.token_type, "DPoP", "{alg}");
        let token = &client.access_token;
        let cnf = &payload_of(token)["cnf"];
        assert!(
            cnf["jkt"].is_string(),
            "{alg}: the provider bound the token: {cnf}"
        );

        let answer = send(&app, dpop_request("DPoP", token, Some(&client.proofs[0]))).await;
        assert_eq!(answer.status, 200, "{alg}: {answer:?}");
        assert_eq!(answer.body["claims"]["client_id"], CLIENT_ID);
        // The same proof again: a replay.
        let replay = send(&app, dpop_request("DPoP", token, Some(&client.proofs[0]))).await;
        assert_eq!(
            replay.kind,
            Some(JwtErrorKind::InvalidDpopProof),
            "{alg}: {replay:?}"
        );
        // The token without a proof, and as a bearer token.
        let bare = send(&app, dpop_request("DPoP", token, None)).await;
        assert_eq!(
            bare.kind,
            Some(JwtErrorKind::InvalidDpopProof),
            "{alg}: {bare:?}"
        );
        let bearer = send(&app, dpop_request("Bearer", token, Some(&client.proofs[1]))).await;
        assert_eq!(
            bearer.kind,
            Some(JwtErrorKind::InvalidBinding),
            "{alg}: {bearer:?}"
        );
        let www = bearer.www_authenticate.unwrap();
        assert!(www.starts_with("DPoP error=\"invalid_token\""), "{www}");
        // A fresh proof of the same client passes.
        let again = send(&app, dpop_request("DPoP", token, Some(&client.proofs[2]))).await;
        assert_eq!(again.status, 200, "{alg}: {again:?}");
    }
}

#[tokio::test]
async fn provider_certificate_bound_tokens_are_accepted_over_their_certificate_only() {
    let Some(dir) = provider_dir() else { return };
    let provider = Provider::start(&dir, &keygen(&dir, "mtls").await, 0).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mtls");
    let client_a = std::fs::read_to_string(root.join("client-a.crt.pem")).unwrap();
    let client_b = std::fs::read_to_string(root.join("client-b.crt.pem")).unwrap();
    let escape = |pem: &str| form(&[("x", pem)])[2..].replace('+', "%20");
    // The token request, over "mutual TLS" as a terminating proxy reports it.
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "interop-mtls-client"),
        ("client_secret", CLIENT_SECRET),
        ("resource", &format!("{AUDIENCE}/RS256")),
        ("scope", "echo:read"),
    ]);
    let response = reqwest::Client::new()
        .post(format!("{}/token", provider.url))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-client-cert", escape(&client_a))
        .body(body)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{text}"));
    assert!(payload_of(token)["cnf"]["x5t#S256"].is_string(), "{text}");

    let (app, _keys) = layer_for(&provider.discovery_url(), |b| {
        b.with_client_certificates(ClientCertificates::from_trusted_header(
            "x-ssl-client-cert",
            CertificateHeader::Pem,
        ))
    });
    let over = |pem: Option<&str>| {
        let mut request =
            Request::get("/echo").header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(pem) = pem {
            request = request.header("x-ssl-client-cert", escape(pem));
        }
        request.body(Body::empty()).unwrap()
    };
    let answer = send(&app, over(Some(&client_a))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let other = send(&app, over(Some(&client_b))).await;
    assert_eq!(other.kind, Some(JwtErrorKind::InvalidBinding), "{other:?}");
    let none = send(&app, over(None)).await;
    assert_eq!(none.kind, Some(JwtErrorKind::InvalidBinding), "{none:?}");
}

// ---- independent minters ------------------------------------------------------------------

#[derive(Deserialize)]
struct Fixture {
    library: String,
    issuer: String,
    audience: String,
    jwks: Value,
    tokens: Vec<FixtureToken>,
}

#[derive(Deserialize)]
struct FixtureToken {
    name: String,
    alg: String,
    /// `valid`, or the `JwtErrorKind::as_str()` expected.
    expect: String,
    token: String,
}

/// The expectations every fixture must cover, for every algorithm.
const EXPECTATIONS: [&str; 4] = ["valid", "invalid_signature", "expired", "invalid_audience"];

async fn check_fixture(json: &str) {
    let fixture: Fixture = serde_json::from_str(json).unwrap();
    let library = &fixture.library;
    assert_eq!(fixture.audience, AUDIENCE);
    for alg in ALGORITHMS {
        for expect in EXPECTATIONS {
            assert!(
                fixture
                    .tokens
                    .iter()
                    .any(|t| t.alg == alg && t.expect == expect),
                "{library}: no {alg} token expecting {expect}"
            );
        }
    }
    let layer = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(fixture.jwks.to_string())
                .add_issuer(&fixture.issuer),
        )
        .add_audience(AUDIENCE)
        .require_all_scopes(["echo:read"])
        .build()
        .unwrap();
    let app = app(layer);
    for t in &fixture.tokens {
        let what = format!("{library}, {} {}", t.alg, t.name);
        assert_eq!(header_of(&t.token)["alg"], t.alg.as_str(), "{what}");
        let answer = call(&app, &t.token).await;
        if t.expect == "valid" {
            assert_eq!(answer.status, 200, "{what}: {answer:?}");
            assert_eq!(answer.body["claims"]["iss"], fixture.issuer, "{what}");
        } else {
            assert_eq!(answer.status, 401, "{what}: {answer:?}");
            assert_eq!(
                answer.kind.map(JwtErrorKind::as_str),
                Some(t.expect.as_str()),
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn pyjwt_tokens_are_validated() {
    check_fixture(include_str!("interop/fixtures/python-pyjwt.json")).await;
}

#[tokio::test]
async fn jwcrypto_tokens_are_validated() {
    check_fixture(include_str!("interop/fixtures/python-jwcrypto.json")).await;
}

#[tokio::test]
async fn node_jose_tokens_are_validated() {
    check_fixture(include_str!("interop/fixtures/node-jose.json")).await;
}
