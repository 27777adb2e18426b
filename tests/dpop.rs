//! DPoP (RFC 9449) through the real layer: one test per check of RFC 9449 §4.3 and per
//! attack, with real ES256/RSA/Ed25519 signatures for the access tokens and the proofs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use validate_jwt::sender::{
    Dpop, InMemoryReplayStore, ReplayFuture, ReplayOutcome, ReplayStore, ReplayStoreError,
};
use validate_jwt::{
    Algorithm, Claims, Clock, ConfigError, JwtError, JwtErrorKind, ManualClock, StaticKeys,
    ValidateJwtLayer,
};

const HOST: &str = "api.example";
const HTU: &str = "https://api.example/echo";

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// RFC 7638, written out here independently of the crate's own.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str().unwrap() {
        "EC" => json!({"crv": jwk["crv"], "kty": "EC", "x": jwk["x"], "y": jwk["y"]}),
        "RSA" => json!({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}),
        "OKP" => json!({"crv": jwk["crv"], "kty": "OKP", "x": jwk["x"]}),
        other => panic!("kty {other}"),
    };
    // serde_json's maps are sorted (no preserve_order): the members come out in order.
    b64(sha256(canonical.to_string().as_bytes()))
}

fn ath(token: &str) -> String {
    b64(sha256(token.as_bytes()))
}

static JTI: AtomicUsize = AtomicUsize::new(0);

fn fresh_jti() -> String {
    format!(
        "jti-{}-{}",
        std::process::id(),
        JTI.fetch_add(1, Ordering::Relaxed)
    )
}

/// The authorization server's signing key and a client's proof key.
struct World {
    issuer: TestKey,
    client: TestKey,
}

impl World {
    fn new() -> Self {
        World {
            issuer: TestKey::es256("as"),
            client: TestKey::es256("client"),
        }
    }

    fn jkt(&self) -> String {
        thumbprint(&self.client.jwk(false))
    }

    fn keys(&self) -> StaticKeys {
        StaticKeys::new()
            .add_jwks(jwks(&[&self.issuer]).to_string())
            .add_issuer(ISSUER)
    }

    fn layer(&self, dpop: Dpop) -> ValidateJwtLayer {
        ValidateJwtLayer::builder()
            .add_keys(self.keys())
            .add_audience(AUDIENCE)
            .with_dpop(dpop)
            .build()
            .unwrap()
    }

    /// An access token bound to the client's key.
    fn bound_token(&self) -> String {
        let mut c = claims();
        c["cnf"] = json!({ "jkt": self.jkt() });
        self.issuer.token(&c)
    }

    /// An unbound (bearer) access token.
    fn bearer_token(&self) -> String {
        self.issuer.token(&claims())
    }

    /// The proof claims for `GET https://api.example/echo` with `token`.
    fn proof_claims(&self, token: &str) -> Value {
        json!({"jti": fresh_jti(), "htm": "GET", "htu": HTU, "iat": now(), "ath": ath(token)})
    }

    fn proof_header(&self, key: &TestKey) -> Value {
        json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.jwk(false)})
    }

    /// A proof by the client's key, with `change` applied to its claims.
    fn proof(&self, token: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut c = self.proof_claims(token);
        change(&mut c);
        self.client.sign(&self.proof_header(&self.client), &c)
    }

    /// A proof with `change` applied to its header (signed by the client's key).
    fn proof_with_header(&self, token: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut h = self.proof_header(&self.client);
        change(&mut h);
        self.client.sign(&h, &self.proof_claims(token))
    }
}

/// What the layer answered.
#[derive(Debug)]
struct Reply {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    error: Option<JwtError>,
    body: Value,
    grpc_status: Option<String>,
}

impl Reply {
    fn kind(&self) -> Option<JwtErrorKind> {
        self.error.as_ref().map(JwtError::kind)
    }

    fn detail(&self) -> &str {
        self.error.as_ref().and_then(JwtError::detail).unwrap_or("")
    }

    fn dpop_challenge(&self) -> Option<&str> {
        self.challenges
            .iter()
            .find(|c| c.starts_with("DPoP"))
            .map(String::as_str)
    }
}

async fn bound_echo(claims: axum::Extension<Claims>) -> axum::Json<Value> {
    axum::Json(json!({
        "sub": claims.subject(),
        "jkt": claims.binding().and_then(|b| b.jkt()),
    }))
}

fn app(layer: &ValidateJwtLayer) -> Router {
    Router::new()
        .route("/echo", get(bound_echo).post(bound_echo))
        .layer(layer.clone())
}

/// Sends `request` through `layer` in front of an echo of the verified claims and binding.
async fn send(layer: &ValidateJwtLayer, request: http::Request<axum::body::Body>) -> Reply {
    let response = tower::ServiceExt::oneshot(app(layer), request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let nonce = header("dpop-nonce");
    let grpc_status = header("grpc-status");
    let error = response.extensions().get::<JwtError>().cloned();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    Reply {
        status,
        challenges,
        nonce,
        error,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        grpc_status,
    }
}

/// `GET https://api.example/echo` with `Authorization: <scheme> <token>` and these proofs.
fn request(scheme: &str, token: &str, proofs: &[&str]) -> http::Request<axum::body::Body> {
    let mut builder = http::Request::get("/echo")
        .header("host", HOST)
        .header("authorization", format!("{scheme} {token}"));
    for proof in proofs {
        builder = builder.header("dpop", *proof);
    }
    builder.body(axum::body::Body::empty()).unwrap()
}

async fn dpop_call(layer: &ValidateJwtLayer, token: &str, proof: &str) -> Reply {
    send(layer, request("DPoP", token, &[proof])).await
}

#[track_caller]
fn assert_proof_refused(reply: &Reply, detail: &str) {
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        reply.kind(),
        Some(JwtErrorKind::InvalidDpopProof),
        "{reply:?}"
    );
    assert!(reply.detail().contains(detail), "{reply:?}");
    let challenge = reply.dpop_challenge().expect("a DPoP challenge");
    assert_eq!(
        error_attribute(challenge).as_deref(),
        Some("invalid_dpop_proof"),
        "{reply:?}"
    );
    assert_eq!(reply.body["error"], "invalid_dpop_proof");
}

#[track_caller]
fn assert_binding_refused(reply: &Reply, detail: &str) {
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        reply.kind(),
        Some(JwtErrorKind::InvalidBinding),
        "{reply:?}"
    );
    assert!(reply.detail().contains(detail), "{reply:?}");
    let challenge = reply.dpop_challenge().expect("a DPoP challenge");
    assert_eq!(
        error_attribute(challenge).as_deref(),
        Some("invalid_token"),
        "{reply:?}"
    );
}

#[track_caller]
fn assert_accepted(reply: &Reply, world: &World) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["sub"], "alice");
    assert_eq!(
        reply.body["jkt"],
        world.jkt(),
        "the verified binding is on the claims"
    );
}

// ---- acceptance ---------------------------------------------------------------------------

#[tokio::test]
async fn a_dpop_bound_token_with_a_valid_proof_is_accepted_and_its_binding_is_on_the_claims() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
    assert_accepted(&reply, &w);
}

#[tokio::test]
async fn every_asymmetric_proof_algorithm_is_accepted() {
    let w = World::new();
    let layer = w.layer(Dpop::required());
    for client in [
        TestKey::rsa("rs", "RS256"),
        TestKey::rsa("ps", "PS256"),
        TestKey::es384("es384"),
        TestKey::ed25519("ed"),
    ] {
        let mut c = claims();
        c["cnf"] = json!({ "jkt": thumbprint(&client.jwk(false)) });
        let token = w.issuer.token(&c);
        let header = json!({"typ": "dpop+jwt", "alg": client.alg, "jwk": client.jwk(false)});
        let proof = client.sign(&header, &w.proof_claims(&token));
        let reply = dpop_call(&layer, &token, &proof).await;
        assert_eq!(reply.status, 200, "{}: {reply:?}", client.alg);
    }
}

#[tokio::test]
async fn over_real_http_a_proof_for_the_public_url_is_accepted_and_its_replay_refused() {
    let w = World::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let layer = w.layer(Dpop::required().with_public_url(&base));
    let app = app(&layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let token = w.bound_token();
    let proof = w.proof(&token, |c| c["htu"] = json!(format!("{base}/echo")));
    let client = reqwest::Client::new();
    let send = || {
        client
            .get(format!("{base}/echo?page=2"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 401);
    let challenge = replay.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
}

// ---- the proof's checks (RFC 9449 §4.3), one test each -------------------------------------

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let proof = w.proof(&token, |_| {});
    assert_accepted(&dpop_call(&layer, &token, &proof).await, &w);
    let replay = dpop_call(&layer, &token, &proof).await;
    assert_proof_refused(&replay, "replayed");
    // Clones of the layer share one replay store.
    let replay = dpop_call(&layer.clone(), &token, &proof).await;
    assert_proof_refused(&replay, "replayed");
}

#[tokio::test]
async fn a_dpop_token_without_a_proof_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let reply = send(&layer, request("DPoP", &w.bound_token(), &[])).await;
    assert_proof_refused(&reply, "no DPoP proof");
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let (a, b) = (w.proof(&token, |_| {}), w.proof(&token, |_| {}));
    let reply = send(&layer, request("DPoP", &token, &[&a, &b])).await;
    assert_proof_refused(&reply, "more than one");
}

#[tokio::test]
async fn a_proof_that_is_not_a_jws_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for junk in ["x", "a.b", "a.b.c.d", "!!.??.**"] {
        let reply = dpop_call(&layer, &token, junk).await;
        assert_eq!(reply.kind(), Some(JwtErrorKind::InvalidDpopProof), "{junk}");
    }
}

#[tokio::test]
async fn a_proof_without_typ_dpop_jwt_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
        let proof = w.proof_with_header(&token, |h| h["typ"] = typ.clone());
        assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`typ`");
    }
}

#[tokio::test]
async fn an_alg_none_proof_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let mut header = w.proof_header(&w.client);
    header["alg"] = json!("none");
    let proof = format!(
        "{}.{}.",
        b64(header.to_string()),
        b64(w.proof_claims(&token).to_string())
    );
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`alg`");
}

#[tokio::test]
async fn an_hs256_proof_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    // An HMAC "proof" keyed with the public `x` of the key it names: what an attacker who
    // knows only the public key could make.
    let secret = TestKey::hmac("h", "HS256", b"0123456789abcdef0123456789abcdef");
    let mut header = w.proof_header(&w.client);
    header["alg"] = json!("HS256");
    let proof = secret.sign(&header, &w.proof_claims(&token));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`alg`");
}

#[tokio::test]
async fn a_proof_algorithm_off_the_allow_list_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed().with_algorithms([Algorithm::EdDSA]));
    let token = w.bound_token();
    let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
    assert_proof_refused(&reply, "`alg`");
    assert!(
        reply.dpop_challenge().unwrap().contains(r#"algs="EdDSA""#),
        "{reply:?}"
    );
}

#[tokio::test]
async fn private_key_material_in_the_proof_jwk_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let proof = w.proof_with_header(&token, |h| h["jwk"]["d"] = json!("c2VjcmV0"));
    assert_proof_refused(
        &dpop_call(&layer, &token, &proof).await,
        "private key material",
    );
}

#[tokio::test]
async fn a_proof_without_a_jwk_or_with_a_symmetric_one_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let proof = w.proof_with_header(&token, |h| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "no `jwk`");
    let proof = w.proof_with_header(&token, |h| h["jwk"] = json!({"kty": "oct", "kid": "x"}));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`jwk`");
}

#[tokio::test]
async fn a_proof_whose_signature_does_not_verify_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    // Signed by another key than the `jwk` it carries.
    let other = TestKey::es256("other");
    let proof = other.sign(&w.proof_header(&w.client), &w.proof_claims(&token));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "signature");
}

#[tokio::test]
async fn a_proof_signed_by_another_key_than_cnf_jkt_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    // A valid proof by the attacker's own key, with the stolen token.
    let attacker = TestKey::es256("attacker");
    let proof = attacker.sign(&w.proof_header(&attacker), &w.proof_claims(&token));
    let reply = dpop_call(&layer, &token, &proof).await;
    assert_binding_refused(&reply, "another key than the token's `cnf.jkt`");
}

#[tokio::test]
async fn an_htm_mismatch_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for htm in ["POST", "get"] {
        let proof = w.proof(&token, |c| c["htm"] = json!(htm));
        assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`htm`");
    }
}

#[tokio::test]
async fn an_htu_mismatch_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for htu in [
        "https://api.example/other",
        "https://evil.example/echo",
        "http://api.example/echo",
        "https://api.example:8443/echo",
        "https://api.example/Echo",
        "not a url",
    ] {
        let proof = w.proof(&token, |c| c["htu"] = json!(htu));
        assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`htu`");
    }
}

#[tokio::test]
async fn the_htu_is_compared_without_query_and_fragment() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for htu in [HTU, "https://api.example/echo?page=1#top"] {
        let proof = w.proof(&token, |c| c["htu"] = json!(htu));
        let request = http::Request::get("/echo?page=2&sort=name")
            .header("host", HOST)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(axum::body::Body::empty())
            .unwrap();
        assert_accepted(&send(&layer, request).await, &w);
    }
}

#[tokio::test]
async fn the_htu_is_compared_after_case_port_and_percent_normalisation() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for htu in [
        "HTTPS://API.Example:443/echo",
        "https://api.example:/%65cho",
        "https://api.example/./x/../echo",
    ] {
        let proof = w.proof(&token, |c| c["htu"] = json!(htu));
        // The request's own Host is normalised too.
        let request = http::Request::get("/echo")
            .header("host", "API.EXAMPLE:443")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(axum::body::Body::empty())
            .unwrap();
        assert_accepted(&send(&layer, request).await, &w);
    }
}

#[tokio::test]
async fn forwarded_headers_are_ignored_unless_trusted() {
    let w = World::new();
    let token = w.bound_token();
    let forwarded = |proof: String| {
        http::Request::get("/echo")
            .header("host", "internal:8080")
            .header("x-forwarded-host", HOST)
            .header("x-forwarded-proto", "https")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let untrusting = w.layer(Dpop::allowed());
    let reply = send(&untrusting, forwarded(w.proof(&token, |_| {}))).await;
    assert_proof_refused(&reply, "`htu`");
    let trusting = w.layer(Dpop::allowed().danger_trust_forwarded_headers());
    assert_accepted(
        &send(&trusting, forwarded(w.proof(&token, |_| {}))).await,
        &w,
    );
    let public = w.layer(Dpop::allowed().with_public_url("https://api.example"));
    assert_accepted(&send(&public, forwarded(w.proof(&token, |_| {}))).await, &w);
}

/// `GET /echo` with these extra headers (a `Host` among them), under `DPoP`.
fn request_with(
    token: &str,
    proof: String,
    headers: &[(&str, &str)],
) -> http::Request<axum::body::Body> {
    let mut builder = http::Request::get("/echo")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(axum::body::Body::empty()).unwrap()
}

/// Hosts that smuggle a path, query, fragment or user info into the URL `htu` is compared
/// with, and the URL each would have made by plain concatenation with `/echo` (cut at `?` or
/// `#`): the proof an attacker would make for another resource.
const SMUGGLING_HOSTS: &[(&str, &str)] = &[
    ("api.example/admin/x?", "https://api.example/admin/x"),
    ("api.example/admin/x#", "https://api.example/admin/x"),
    ("api.example/admin", "https://api.example/admin/echo"),
    ("api.example?", "https://api.example/"),
    ("api.example/a@b", "https://api.example/a@b/echo"),
    ("user@api.example", "https://user@api.example/echo"),
];

#[tokio::test]
async fn a_host_header_that_is_not_host_and_port_refuses_the_proof() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    for (host, smuggled) in SMUGGLING_HOSTS {
        // The proof for the URL the host would have smuggled in, and the honest one.
        for htu in [*smuggled, HTU] {
            let proof = w.proof(&token, |c| c["htu"] = json!(htu));
            let reply = send(&layer, request_with(&token, proof, &[("host", host)])).await;
            assert_proof_refused(&reply, "the request's Host is not a host[:port]");
        }
    }
    // A host with a port still works, and its proof is checked against that port.
    let host = [("host", "api.example:8443")];
    let proof = w.proof(&token, |c| {
        c["htu"] = json!("https://api.example:8443/echo")
    });
    assert_accepted(&send(&layer, request_with(&token, proof, &host)).await, &w);
    let proof = w.proof(&token, |_| {});
    let reply = send(&layer, request_with(&token, proof, &host)).await;
    assert_proof_refused(&reply, "`htu`");
}

/// Two `Host` lines: a proxy routing by one and the layer checking `htu` against the other
/// would accept a proof made for another host. Refused whichever host the proof names.
#[tokio::test]
async fn a_request_with_two_host_lines_refuses_the_proof() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let hosts = [("host", HOST), ("host", "admin.example")];
    for htu in [HTU, "https://admin.example/echo"] {
        let proof = w.proof(&token, |c| c["htu"] = json!(htu));
        let reply = send(&layer, request_with(&token, proof, &hosts)).await;
        assert_proof_refused(&reply, "the request has more than one Host");
    }
    // One line of either is fine.
    let proof = w.proof(&token, |_| {});
    assert_accepted(
        &send(&layer, request_with(&token, proof, &[("host", HOST)])).await,
        &w,
    );
}

#[tokio::test]
async fn trusted_forwarded_headers_that_smuggle_a_url_refuse_the_proof() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed().danger_trust_forwarded_headers());
    let token = w.bound_token();
    for (host, smuggled) in SMUGGLING_HOSTS {
        for htu in [*smuggled, HTU] {
            let proof = w.proof(&token, |c| c["htu"] = json!(htu));
            let headers = [("host", HOST), ("x-forwarded-host", host)];
            let reply = send(&layer, request_with(&token, proof, &headers)).await;
            assert_proof_refused(
                &reply,
                "the request's X-Forwarded-Host is not a host[:port]",
            );
        }
    }
    for (proto, smuggled) in [
        ("https://api.example/admin?", "https://api.example/admin"),
        ("https://api.example/admin#", "https://api.example/admin"),
        ("ftp", "ftp://api.example/echo"),
    ] {
        for htu in [smuggled, HTU] {
            let proof = w.proof(&token, |c| c["htu"] = json!(htu));
            let headers = [("host", HOST), ("x-forwarded-proto", proto)];
            let reply = send(&layer, request_with(&token, proof, &headers)).await;
            assert_proof_refused(
                &reply,
                "the request's X-Forwarded-Proto is not http or https",
            );
        }
    }
    // Honest forwarded headers still work.
    let proof = w.proof(&token, |c| c["htu"] = json!("http://api.example:8080/echo"));
    let headers = [
        ("host", "internal"),
        ("x-forwarded-host", "api.example:8080, proxy.internal"),
        ("x-forwarded-proto", "HTTP"),
    ];
    assert_accepted(
        &send(&layer, request_with(&token, proof, &headers)).await,
        &w,
    );
}

#[tokio::test]
async fn a_stale_iat_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed().with_proof_window(Duration::from_secs(30)));
    let token = w.bound_token();
    let proof = w.proof(&token, |c| c["iat"] = json!(now() - 31));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "too old");
    let proof = w.proof(&token, |c| c["iat"] = json!(now() - 25));
    assert_accepted(&dpop_call(&layer, &token, &proof).await, &w);
}

#[tokio::test]
async fn a_future_iat_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let proof = w.proof(&token, |c| c["iat"] = json!(now() + 120));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "in the future");
    let proof = w.proof(&token, |c| c["iat"] = json!("now"));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`iat`");
}

#[tokio::test]
async fn a_wrong_ath_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    // A proof made for another token of the same client.
    let mut c = claims();
    c["cnf"] = json!({ "jkt": w.jkt() });
    c["sub"] = json!("bob");
    let other_token = w.issuer.token(&c);
    let proof = w.proof(&token, |c| c["ath"] = json!(ath(&other_token)));
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`ath`");
    let proof = w.proof(&token, |c| {
        c.as_object_mut().unwrap().remove("ath");
    });
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`ath`");
}

#[tokio::test]
async fn a_proof_without_jti_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    let proof = w.proof(&token, |c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "`jti`");
}

// ---- the token's binding -------------------------------------------------------------------

#[tokio::test]
async fn a_bound_token_presented_as_bearer_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bound_token();
    // With or without a proof beside it.
    for proofs in [vec![], vec![w.proof(&token, |_| {})]] {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let reply = send(&layer, request("Bearer", &token, &proofs)).await;
        assert_binding_refused(&reply, "presented as a bearer token");
    }
}

#[tokio::test]
async fn an_unbound_token_under_the_dpop_scheme_is_refused() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let token = w.bearer_token();
    let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
    assert_binding_refused(&reply, "not DPoP-bound");
}

#[tokio::test]
async fn allowed_mode_accepts_plain_bearer_tokens_and_offers_both_challenges() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let reply = send(&layer, request("Bearer", &w.bearer_token(), &[])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["jkt"], Value::Null);
    let no_token = http::Request::get("/echo")
        .header("host", HOST)
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = send(&layer, no_token).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.challenges.len(), 2, "{reply:?}");
    assert_eq!(reply.challenges[0], "Bearer");
    assert!(
        reply.challenges[1].starts_with("DPoP algs=\"RS256 "),
        "{reply:?}"
    );
    // A bearer request's refusal names its error on the Bearer challenge.
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let reply = send(&layer, request("Bearer", &w.issuer.token(&expired), &[])).await;
    assert_eq!(
        error_attribute(&reply.challenges[0]).as_deref(),
        Some("invalid_token")
    );
    assert_eq!(error_attribute(&reply.challenges[1]), None);
}

#[tokio::test]
async fn an_invalid_dpop_bound_token_is_answered_on_the_dpop_challenge() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed());
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    expired["cnf"] = json!({ "jkt": w.jkt() });
    let token = w.issuer.token(&expired);
    let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
    assert_eq!(reply.kind(), Some(JwtErrorKind::Expired));
    assert_eq!(reply.challenges[0], "Bearer");
    assert_eq!(
        error_attribute(reply.dpop_challenge().unwrap()).as_deref(),
        Some("invalid_token")
    );
}

#[tokio::test]
async fn required_mode_refuses_bearer_tokens_with_only_the_dpop_challenge() {
    let w = World::new();
    let layer = w.layer(Dpop::required());
    let reply = send(&layer, request("Bearer", &w.bearer_token(), &[])).await;
    assert_binding_refused(&reply, "requires DPoP");
    assert_eq!(reply.challenges.len(), 1, "{reply:?}");
    let token = w.bound_token();
    assert_accepted(
        &dpop_call(&layer, &token, &w.proof(&token, |_| {})).await,
        &w,
    );
}

#[tokio::test]
async fn with_dpop_off_the_dpop_scheme_is_no_token_and_a_bound_token_is_refused() {
    let w = World::new();
    let builder = || {
        ValidateJwtLayer::builder()
            .add_keys(w.keys())
            .add_audience(AUDIENCE)
    };
    let layer = builder().build().unwrap();
    let token = w.bound_token();
    let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
    assert_eq!(reply.kind(), Some(JwtErrorKind::Missing));
    assert_eq!(reply.challenges, ["Bearer"]);
    // A DPoP-bound token under Bearer, at a layer that cannot check its proof: whoever holds
    // a copy could use it, so it is refused.
    let reply = send(&layer, request("Bearer", &token, &[])).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.kind(), Some(JwtErrorKind::InvalidBinding));
    assert!(reply.detail().contains("with_dpop"), "{reply:?}");
    let err = layer.validate_token(&token).await.unwrap_err();
    assert_eq!(err.kind(), JwtErrorKind::InvalidBinding);
    // An unbound token is the bearer token it always was.
    assert_eq!(
        send(&layer, request("Bearer", &w.bearer_token(), &[]))
            .await
            .status,
        200
    );

    // The opt-out: the bound token passes as a bearer token, and no binding is claimed.
    let lax = builder()
        .danger_accept_bound_tokens_as_bearer()
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/echo",
            get(|c: axum::Extension<Claims>| async move { format!("{:?}", c.binding()) }),
        )
        .layer(lax);
    let response = tower::ServiceExt::oneshot(app, request("Bearer", &token, &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"None");
}

#[tokio::test]
async fn a_malformed_cnf_is_refused_with_or_without_dpop() {
    let w = World::new();
    let plain = ValidateJwtLayer::builder()
        .add_keys(w.keys())
        .add_audience(AUDIENCE)
        .danger_accept_bound_tokens_as_bearer()
        .build()
        .unwrap();
    let dpop = w.layer(Dpop::allowed());
    for cnf in [
        json!("jkt"),
        json!([]),
        json!({"jkt": 7}),
        json!({"x5t#S256": null}),
    ] {
        let mut c = claims();
        c["cnf"] = cnf.clone();
        let token = w.issuer.token(&c);
        for layer in [&plain, &dpop] {
            let reply = send(layer, request("Bearer", &token, &[])).await;
            assert_eq!(
                reply.kind(),
                Some(JwtErrorKind::InvalidBinding),
                "{cnf}: {reply:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_binding_is_checked_on_the_slow_path_too_after_a_key_refresh() {
    // A token signed with a key the layer learns only by refreshing: the validator's
    // asynchronous path, which the binding checks must follow.
    let issuer = validate_jwt::testing::TestIssuer::start().unwrap();
    let layer = issuer
        .layer_builder()
        .with_dpop(Dpop::required())
        .build()
        .unwrap();
    layer.ready().await.unwrap();
    issuer.rotate();
    let w = World::new();
    let token = issuer
        .token()
        .subject("alice")
        .claim("cnf", json!({ "jkt": w.jkt() }))
        .sign();
    let proof = w.proof(&token, |_| {});
    assert_accepted(&dpop_call(&layer, &token, &proof).await, &w);
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "replayed");
    // Past the refresh rate limit, another new key: a refusal on the slow path.
    validate_jwt::testing::skip_time(Duration::from_secs(600)).await;
    issuer.rotate();
    let token = issuer
        .token()
        .subject("alice")
        .claim("cnf", json!({ "jkt": w.jkt() }))
        .sign();
    let wrong_method = w.proof(&token, |c| c["htm"] = json!("DELETE"));
    assert_proof_refused(&dpop_call(&layer, &token, &wrong_method).await, "`htm`");
}

// ---- server nonces --------------------------------------------------------------------------

#[tokio::test]
async fn the_nonce_flow_asks_for_a_nonce_then_accepts_it_and_refuses_an_old_one() {
    let w = World::new();
    let clock = ManualClock::new(now());
    let layer = ValidateJwtLayer::builder()
        .add_keys(w.keys())
        .add_audience(AUDIENCE)
        .with_clock(clock.clone())
        .with_dpop(
            Dpop::required()
                .with_nonces()
                .with_nonce_lifetime(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let token = w.bound_token();
    // 1. No nonce: use_dpop_nonce, with a nonce to use.
    let reply = dpop_call(
        &layer,
        &token,
        &w.proof(&token, |c| c["iat"] = json!(clock.now())),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.kind(), Some(JwtErrorKind::UseDpopNonce), "{reply:?}");
    assert_eq!(
        error_attribute(reply.dpop_challenge().unwrap()).as_deref(),
        Some("use_dpop_nonce")
    );
    let nonce = reply.nonce.expect("a DPoP-Nonce header");
    // 2. With it: accepted.
    let with_nonce = |nonce: &str, iat: u64| {
        let nonce = nonce.to_owned();
        w.proof(&token, move |c| {
            c["nonce"] = json!(nonce);
            c["iat"] = json!(iat);
        })
    };
    let reply = dpop_call(&layer, &token, &with_nonce(&nonce, clock.now())).await;
    assert_accepted(&reply, &w);
    // 3. A made-up nonce, and the same nonce two lifetimes later: a fresh one is offered.
    let reply = dpop_call(&layer, &token, &with_nonce("bm9uY2U", clock.now())).await;
    assert_eq!(reply.kind(), Some(JwtErrorKind::UseDpopNonce));
    clock.advance(121);
    let reply = dpop_call(&layer, &token, &with_nonce(&nonce, clock.now())).await;
    assert_eq!(reply.kind(), Some(JwtErrorKind::UseDpopNonce));
    assert_ne!(reply.nonce.as_deref(), Some(nonce.as_str()));
}

#[tokio::test]
async fn replicas_sharing_a_nonce_secret_accept_each_others_nonces() {
    let w = World::new();
    let secret = [9u8; 32];
    let replica = || w.layer(Dpop::allowed().with_nonce_secret(secret));
    let (a, b) = (replica(), replica());
    let token = w.bound_token();
    let nonce = dpop_call(&a, &token, &w.proof(&token, |_| {}))
        .await
        .nonce
        .unwrap();
    let proof = w.proof(&token, |c| c["nonce"] = json!(nonce));
    assert_accepted(&dpop_call(&b, &token, &proof).await, &w);
}

// ---- gRPC ----------------------------------------------------------------------------------

#[tokio::test]
async fn grpc_requests_get_grpc_statuses_with_the_dpop_challenge() {
    let w = World::new();
    let layer = w.layer(Dpop::allowed().with_nonces());
    let token = w.bound_token();
    let request = http::Request::post("/echo")
        .header("host", HOST)
        .header("content-type", "application/grpc")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", w.proof(&token, |c| c["htm"] = json!("POST")))
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = send(&layer, request).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.grpc_status.as_deref(), Some("16"));
    assert_eq!(reply.kind(), Some(JwtErrorKind::UseDpopNonce));
    assert!(reply.nonce.is_some());
    assert!(reply.dpop_challenge().unwrap().contains("use_dpop_nonce"));
}

// ---- the replay store's failure modes ------------------------------------------------------

/// A store that is down.
struct Down(Arc<AtomicUsize>);

impl ReplayStore for Down {
    fn check_and_insert<'a>(&'a self, _key: &'a str, _ttl: Duration) -> ReplayFuture<'a> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Err(ReplayStoreError::new("the store is down")) })
    }
}

#[tokio::test]
async fn a_failing_replay_store_fails_closed_with_503_and_retry_after() {
    let w = World::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = w.layer(Dpop::allowed().with_replay_store(Down(calls.clone())));
    let token = w.bound_token();
    let request = request("DPoP", &token, &[&w.proof(&token, |_| {})]);
    let response = tower::ServiceExt::oneshot(app(&layer), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let err = response.extensions().get::<JwtError>().unwrap();
    assert_eq!(err.kind(), JwtErrorKind::ReplayStoreUnavailable);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_failing_replay_store_can_fail_open() {
    let w = World::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = w.layer(
        Dpop::allowed()
            .with_replay_store(Down(calls.clone()))
            .danger_fail_open_on_store_errors(),
    );
    let token = w.bound_token();
    assert_accepted(
        &dpop_call(&layer, &token, &w.proof(&token, |_| {})).await,
        &w,
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// The replay checks' counter (feature `metrics`), by result, read from a real recorder.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn replay_checks_are_counted_by_result() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let w = World::new();
    let token = w.bound_token();
    let layer = w.layer(Dpop::allowed());
    let proof = w.proof(&token, |_| {});
    assert_accepted(&dpop_call(&layer, &token, &proof).await, &w);
    assert_proof_refused(&dpop_call(&layer, &token, &proof).await, "replayed");
    // A proof refused before the replay check is not a replay check.
    let wrong_method = w.proof(&token, |c| c["htm"] = json!("PUT"));
    assert_proof_refused(&dpop_call(&layer, &token, &wrong_method).await, "htm");
    let closed = w.layer(Dpop::allowed().with_replay_store(Down(Arc::default())));
    let reply = dpop_call(&closed, &token, &w.proof(&token, |_| {})).await;
    assert_eq!(reply.kind(), Some(JwtErrorKind::ReplayStoreUnavailable));
    let open = w.layer(
        Dpop::allowed()
            .with_replay_store(Down(Arc::default()))
            .danger_fail_open_on_store_errors(),
    );
    assert_accepted(
        &dpop_call(&open, &token, &w.proof(&token, |_| {})).await,
        &w,
    );
    assert_accepted(
        &dpop_call(&open, &token, &w.proof(&token, |_| {})).await,
        &w,
    );

    let mut counted = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if key.name() != "validate_jwt_dpop_replay_checks_total" {
            continue;
        }
        let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
        let [("result", result)] = labels[..] else {
            panic!("labels {labels:?}");
        };
        let DebugValue::Counter(n) = value else {
            panic!("not a counter");
        };
        counted.insert(result.to_owned(), n);
    }
    let expected = [
        ("fresh", 1),
        ("replayed", 1),
        ("store_error_accepted", 2),
        ("store_error_refused", 1),
    ]
    .map(|(r, n)| (r.to_owned(), n))
    .into();
    assert_eq!(counted, expected);
}

#[tokio::test]
async fn a_custom_replay_store_is_consulted_once_per_accepted_proof() {
    let w = World::new();
    let store = Arc::new(InMemoryReplayStore::new());
    let layer = w.layer(Dpop::allowed().with_replay_store(store.clone()));
    let token = w.bound_token();
    // A refused proof is never recorded.
    dpop_call(
        &layer,
        &token,
        &w.proof(&token, |c| c["htm"] = json!("PUT")),
    )
    .await;
    assert!(store.is_empty());
    assert_accepted(
        &dpop_call(&layer, &token, &w.proof(&token, |_| {})).await,
        &w,
    );
    assert_eq!(store.len(), 1);
    assert_eq!(
        store
            .check_and_insert("k", Duration::from_secs(1))
            .await
            .unwrap(),
        ReplayOutcome::Fresh
    );
}

// ---- configuration -------------------------------------------------------------------------

#[test]
fn out_of_range_dpop_and_replay_store_settings_are_build_errors() {
    let w = World::new();
    let build = |dpop: Dpop| {
        ValidateJwtLayer::builder()
            .add_keys(w.keys())
            .add_audience(AUDIENCE)
            .with_dpop(dpop)
            .build()
    };
    let setting = |result: Result<ValidateJwtLayer, ConfigError>| match result {
        Err(ConfigError::InvalidSetting { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        setting(build(Dpop::allowed().with_algorithms([Algorithm::HS256]))),
        "Dpop::with_algorithms"
    );
    assert_eq!(
        setting(build(Dpop::allowed().with_algorithms([]))),
        "Dpop::with_algorithms"
    );
    assert_eq!(
        setting(build(Dpop::allowed().with_proof_window(Duration::ZERO))),
        "Dpop::with_proof_window"
    );
    assert_eq!(
        setting(build(Dpop::allowed().with_nonce_secret(b"short".to_vec()))),
        "Dpop::with_nonce_secret"
    );
    assert_eq!(
        setting(build(
            Dpop::allowed()
                .with_nonces()
                .with_nonce_lifetime(Duration::from_secs(1))
        )),
        "Dpop::with_nonce_lifetime"
    );
    assert!(matches!(
        build(Dpop::allowed().with_public_url("https://api.example/?q")),
        Err(ConfigError::InvalidUrl { .. })
    ));
    let err = ValidateJwtLayer::builder()
        .add_keys(w.keys())
        .add_audience(AUDIENCE)
        .with_header_name("x-token")
        .with_dpop(Dpop::allowed())
        .build();
    assert_eq!(setting(err), "with_dpop");

    // The replay store's own settings, checked at build() too.
    let store = InMemoryReplayStore::with_capacity(0);
    assert_eq!(
        setting(build(Dpop::allowed().with_replay_store(store.clone()))),
        "InMemoryReplayStore::with_capacity"
    );
    // Shared behind an `Arc` too.
    assert_eq!(
        setting(build(Dpop::required().with_replay_store(Arc::new(store)))),
        "InMemoryReplayStore::with_capacity"
    );
    assert!(
        build(Dpop::allowed().with_replay_store(InMemoryReplayStore::with_capacity(1))).is_ok()
    );
    #[cfg(feature = "redis")]
    {
        use validate_jwt::sender::RedisReplayStore;
        let redis = |timeout| {
            let store = RedisReplayStore::new("redis://127.0.0.1:6379/")
                .unwrap()
                .with_timeout(timeout);
            build(Dpop::required().with_replay_store(store))
        };
        for bad in [Duration::ZERO, Duration::from_secs(61), Duration::MAX] {
            assert_eq!(
                setting(redis(bad)),
                "RedisReplayStore::with_timeout",
                "{bad:?}"
            );
        }
        for good in [Duration::from_millis(1), Duration::from_secs(60)] {
            assert!(redis(good).is_ok(), "{good:?}");
        }
        let breaker = |failures, open_for| {
            let store = RedisReplayStore::new("redis://127.0.0.1:6379/")
                .unwrap()
                .with_circuit_breaker(failures, open_for);
            build(Dpop::required().with_replay_store(store))
        };
        let second = Duration::from_secs(1);
        for (failures, open_for) in [(0, second), (3, Duration::ZERO), (3, Duration::MAX)] {
            assert_eq!(
                setting(breaker(failures, open_for)),
                "RedisReplayStore::with_circuit_breaker",
                "{failures} {open_for:?}"
            );
        }
        assert!(breaker(3, second).is_ok());
    }
}

// ---- certificate-bound tokens (RFC 8705 §3) -------------------------------------------------

mod certificates {
    use super::*;
    use validate_jwt::sender::{CertificateHeader, ClientCertificate, ClientCertificates};

    const CLIENT_A: &str = include_str!("fixtures/mtls/client-a.crt.pem");
    const CLIENT_B: &str = include_str!("fixtures/mtls/client-b.crt.pem");

    fn x5t(pem: &str) -> String {
        b64(sha256(&pem_to_der(pem)))
    }

    fn layer(w: &World, certificates: ClientCertificates) -> ValidateJwtLayer {
        ValidateJwtLayer::builder()
            .add_keys(w.keys())
            .add_audience(AUDIENCE)
            .with_client_certificates(certificates)
            .build()
            .unwrap()
    }

    fn bound_to(w: &World, pem: &str) -> String {
        let mut c = claims();
        c["cnf"] = json!({ "x5t#S256": x5t(pem) });
        w.issuer.token(&c)
    }

    async fn call_with(
        layer: &ValidateJwtLayer,
        token: &str,
        cert: Option<&str>,
        headers: &[(&str, String)],
    ) -> (u16, Option<JwtError>, Option<String>) {
        let app = Router::new()
            .route(
                "/echo",
                get(|c: axum::Extension<Claims>| async move {
                    c.binding()
                        .and_then(|b| b.certificate_thumbprint())
                        .unwrap_or("none")
                        .to_owned()
                }),
            )
            .layer(layer.clone());
        let mut builder = http::Request::get("/echo")
            .header("host", HOST)
            .header("authorization", format!("Bearer {token}"));
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut request = builder.body(axum::body::Body::empty()).unwrap();
        if let Some(pem) = cert {
            request
                .extensions_mut()
                .insert(ClientCertificate::from_der(pem_to_der(pem)));
        }
        let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
        let status = response.status().as_u16();
        let err = response.extensions().get::<JwtError>().cloned();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = (status == 200).then(|| String::from_utf8(bytes.to_vec()).unwrap());
        (status, err, body)
    }

    #[track_caller]
    fn assert_unbound((status, err, _): &(u16, Option<JwtError>, Option<String>), detail: &str) {
        assert_eq!(*status, 401);
        let err = err.as_ref().unwrap();
        assert_eq!(err.kind(), JwtErrorKind::InvalidBinding);
        assert!(err.detail().unwrap().contains(detail), "{err:?}");
    }

    #[tokio::test]
    async fn a_certificate_bound_token_is_accepted_over_its_certificate_only() {
        let w = World::new();
        let layer = layer(&w, ClientCertificates::from_extensions());
        let token = bound_to(&w, CLIENT_A);
        let (status, _, body) = call_with(&layer, &token, Some(CLIENT_A), &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            body.unwrap(),
            x5t(CLIENT_A),
            "the verified binding is on the claims"
        );
        let other = call_with(&layer, &token, Some(CLIENT_B), &[]).await;
        assert_unbound(&other, "another client certificate");
        let none = call_with(&layer, &token, None, &[]).await;
        assert_unbound(&none, "no client certificate");
    }

    #[tokio::test]
    async fn tokens_without_x5t_are_unaffected_by_certificate_binding() {
        let w = World::new();
        let layer = layer(&w, ClientCertificates::from_extensions());
        let (status, _, body) = call_with(&layer, &w.bearer_token(), None, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body.unwrap(), "none");
    }

    #[tokio::test]
    async fn a_trusted_proxys_pem_header_carries_the_certificate() {
        let w = World::new();
        let layer = layer(
            &w,
            ClientCertificates::from_trusted_header("x-ssl-client-cert", CertificateHeader::Pem),
        );
        let token = bound_to(&w, CLIENT_A);
        // nginx's $ssl_client_escaped_cert: the PEM, URL-encoded.
        let escaped: String = CLIENT_A
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let header = [("x-ssl-client-cert", escaped.clone())];
        assert_eq!(call_with(&layer, &token, None, &header).await.0, 200);
        // The certificate in the extensions is not this source's: ignored.
        let reply = call_with(&layer, &token, Some(CLIENT_A), &[]).await;
        assert_unbound(&reply, "no client certificate");
        // Another proxy's certificate, and a repeated header, are refused.
        let other = [("x-ssl-client-cert", CLIENT_B.replace('\n', " "))];
        assert_unbound(&call_with(&layer, &token, None, &other).await, "another");
        let twice = [
            ("x-ssl-client-cert", escaped.clone()),
            ("x-ssl-client-cert", escaped),
        ];
        assert_unbound(&call_with(&layer, &token, None, &twice).await, "repeated");
    }

    #[tokio::test]
    async fn envoys_xfcc_header_carries_the_certificate_hash() {
        let w = World::new();
        let layer = layer(
            &w,
            ClientCertificates::from_trusted_header(
                "x-forwarded-client-cert",
                CertificateHeader::EnvoyXfcc,
            ),
        );
        let token = bound_to(&w, CLIENT_A);
        let hex: String = sha256(&pem_to_der(CLIENT_A))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let xfcc =
            format!("By=spiffe://api.example/sa/echo;Hash={hex};Subject=\"CN=client-a.test\"");
        let header = [("x-forwarded-client-cert", xfcc)];
        assert_eq!(call_with(&layer, &token, None, &header).await.0, 200);
    }

    #[tokio::test]
    async fn certificate_binding_and_dpop_are_checked_together() {
        let w = World::new();
        let layer = ValidateJwtLayer::builder()
            .add_keys(w.keys())
            .add_audience(AUDIENCE)
            .with_dpop(Dpop::allowed())
            .with_client_certificates(ClientCertificates::from_extensions())
            .build()
            .unwrap();
        let mut c = claims();
        c["cnf"] = json!({ "jkt": w.jkt(), "x5t#S256": x5t(CLIENT_A) });
        let token = w.issuer.token(&c);
        let with_cert = |cert: &str| {
            let mut r = request("DPoP", &token, &[&w.proof(&token, |_| {})]);
            r.extensions_mut()
                .insert(ClientCertificate::from_der(pem_to_der(cert)));
            r
        };
        assert_accepted(&send(&layer, with_cert(CLIENT_A)).await, &w);
        let reply = send(&layer, with_cert(CLIENT_B)).await;
        assert_eq!(
            reply.kind(),
            Some(JwtErrorKind::InvalidBinding),
            "{reply:?}"
        );
    }
}

// ---- the Redis replay store, against a real redis-server -----------------------------------

#[cfg(feature = "redis")]
mod redis_store {
    use super::*;
    use validate_jwt::sender::{DEFAULT_BREAKER_OPEN_FOR, RedisReplayStore};

    /// A `redis-server` of this test on a free 127.0.0.1 port, stopped on drop.
    struct RedisServer {
        child: std::process::Child,
        url: String,
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn in_ci() -> bool {
        !matches!(
            std::env::var("CI").as_deref(),
            Err(_) | Ok("" | "false" | "0")
        )
    }

    /// A 127.0.0.1 port nothing listens on (at the time of asking).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts one, or `None` (with the reason printed) outside CI when the binary is missing.
    async fn redis_server() -> Option<RedisServer> {
        let port = free_port();
        redis_server_on(port).await
    }

    async fn redis_server_on(port: u16) -> Option<RedisServer> {
        let spawned = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if !in_ci() && e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "redis-server not found: skipping the Redis replay store test (.ci/run installs it)"
                );
                return None;
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        // Wait until it accepts connections (a real process: its start-up takes real time).
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    #[tokio::test]
    async fn the_redis_store_records_a_key_once() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let store = RedisReplayStore::new(&redis.url).unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            store.check_and_insert("a", ttl).await.unwrap(),
            ReplayOutcome::Fresh
        );
        assert_eq!(
            store.check_and_insert("a", ttl).await.unwrap(),
            ReplayOutcome::Replayed
        );
        assert_eq!(
            store.check_and_insert("b", ttl).await.unwrap(),
            ReplayOutcome::Fresh
        );
        // Another prefix is another namespace.
        let other = RedisReplayStore::new(&redis.url)
            .unwrap()
            .with_key_prefix("tenant-2:");
        assert_eq!(
            other.check_and_insert("a", ttl).await.unwrap(),
            ReplayOutcome::Fresh
        );
    }

    #[tokio::test]
    async fn a_key_is_fresh_again_once_its_ttl_has_passed_in_redis() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let store = RedisReplayStore::new(&redis.url).unwrap();
        let short = Duration::from_millis(50);
        assert_eq!(
            store.check_and_insert("k", short).await.unwrap(),
            ReplayOutcome::Fresh
        );
        // Redis expires keys on its own clock: real time must pass.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            store.check_and_insert("k", short).await.unwrap(),
            ReplayOutcome::Fresh
        );
    }

    #[tokio::test]
    async fn two_layers_sharing_one_redis_refuse_a_replay_across_them() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let w = World::new();
        let replica = || {
            let store = RedisReplayStore::new(&redis.url).unwrap();
            w.layer(Dpop::required().with_replay_store(store))
        };
        let (a, b) = (replica(), replica());
        let token = w.bound_token();
        let proof = w.proof(&token, |_| {});
        assert_accepted(&dpop_call(&a, &token, &proof).await, &w);
        assert_proof_refused(&dpop_call(&b, &token, &proof).await, "replayed");
        // Each replica accepts a fresh proof.
        assert_accepted(&dpop_call(&b, &token, &w.proof(&token, |_| {})).await, &w);
    }

    #[tokio::test]
    async fn redis_going_down_fails_closed_with_503_and_retry_after() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let w = World::new();
        let store = Arc::new(
            RedisReplayStore::new(&redis.url)
                .unwrap()
                .with_timeout(Duration::from_millis(300)),
        );
        let layer = w.layer(Dpop::required().with_replay_store(store.clone()));
        let token = w.bound_token();
        assert_accepted(
            &dpop_call(&layer, &token, &w.proof(&token, |_| {})).await,
            &w,
        );
        drop(redis);
        let request = request("DPoP", &token, &[&w.proof(&token, |_| {})]);
        let response = tower::ServiceExt::oneshot(app(&layer), request)
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(
            response.extensions().get::<JwtError>().unwrap().kind(),
            JwtErrorKind::ReplayStoreUnavailable
        );
    }

    #[tokio::test]
    async fn the_redis_store_reconnects_when_redis_is_back() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let port = port_of(&redis.url);
        let store = RedisReplayStore::new(&redis.url)
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let ttl = Duration::from_secs(60);
        assert_eq!(
            store.check_and_insert("a", ttl).await.unwrap(),
            ReplayOutcome::Fresh
        );
        drop(redis);
        assert!(store.check_and_insert("b", ttl).await.is_err());
        let _back = redis_server_on(port).await.unwrap();
        // The connection is re-made on a later check: a bounded number of attempts, each
        // failure followed by the breaker's open time (on tokio's clock, not waited for).
        let mut outcome = store.check_and_insert("c", ttl).await;
        for _ in 0..20 {
            if outcome.is_ok() {
                break;
            }
            skip(DEFAULT_BREAKER_OPEN_FOR).await;
            outcome = store.check_and_insert("c", ttl).await;
        }
        assert_eq!(outcome.unwrap(), ReplayOutcome::Fresh);
        assert_eq!(
            store.check_and_insert("c", ttl).await.unwrap(),
            ReplayOutcome::Replayed
        );
    }

    /// The port of a `redis://127.0.0.1:PORT/` URL.
    fn port_of(url: &str) -> u16 {
        url.rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .parse()
            .unwrap()
    }

    /// Moves tokio's clock on by `by` (the test's runtime is current-thread), without waiting.
    async fn skip(by: Duration) {
        tokio::time::pause();
        tokio::time::advance(by).await;
        tokio::time::resume();
    }

    /// A Redis that is down is not asked again while the breaker is open, even once it is back:
    /// checks fail at once, saying why; after the open time a check reaches it again.
    #[tokio::test]
    async fn a_redis_that_went_down_is_not_asked_while_the_breaker_is_open() {
        let Some(redis) = redis_server().await else {
            return;
        };
        let port = port_of(&redis.url);
        let open_for = Duration::from_secs(30);
        let store = RedisReplayStore::new(&redis.url)
            .unwrap()
            .with_timeout(Duration::from_millis(300))
            .with_circuit_breaker(2, open_for);
        let ttl = Duration::from_secs(60);
        assert_eq!(
            store.check_and_insert("a", ttl).await.unwrap(),
            ReplayOutcome::Fresh
        );
        drop(redis);
        for key in ["b", "c"] {
            let err = store.check_and_insert(key, ttl).await.unwrap_err();
            assert!(!err.to_string().contains("circuit open"), "{err}");
        }
        let err = store.check_and_insert("d", ttl).await.unwrap_err();
        assert!(
            err.to_string().contains("failed 2 checks in a row"),
            "{err}"
        );
        // Back, but not asked while open: "e" is not recorded.
        let _back = redis_server_on(port).await.unwrap();
        let err = store.check_and_insert("e", ttl).await.unwrap_err();
        assert!(err.to_string().contains("circuit open"), "{err}");
        let mut outcome = Err(err);
        for _ in 0..20 {
            skip(open_for).await;
            outcome = store.check_and_insert("e", ttl).await;
            if outcome.is_ok() {
                break;
            }
        }
        assert_eq!(outcome.unwrap(), ReplayOutcome::Fresh);
        assert_eq!(
            store.check_and_insert("e", ttl).await.unwrap(),
            ReplayOutcome::Replayed
        );
    }

    /// Through the layer: once open, a DPoP request is answered 503 without asking Redis (the
    /// answer is the same; the wait for the store is what the breaker saves).
    #[tokio::test]
    async fn an_open_breaker_answers_503_through_the_layer() {
        let port = free_port();
        let store = RedisReplayStore::new(&format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .with_circuit_breaker(1, Duration::from_secs(60));
        let w = World::new();
        let token = w.bound_token();
        let layer = w.layer(Dpop::required().with_replay_store(store));
        for open in [false, true] {
            let reply = dpop_call(&layer, &token, &w.proof(&token, |_| {})).await;
            assert_eq!(reply.status, 503, "{reply:?}");
            assert_eq!(reply.kind(), Some(JwtErrorKind::ReplayStoreUnavailable));
            assert_eq!(reply.detail().contains("circuit open"), open, "{reply:?}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_closed_or_open_as_configured() {
        // A port nothing listens on.
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}/");
        let w = World::new();
        let token = w.bound_token();
        let store = || {
            RedisReplayStore::new(&url)
                .unwrap()
                .with_timeout(Duration::from_millis(300))
        };
        let closed = w.layer(Dpop::required().with_replay_store(store()));
        let reply = dpop_call(&closed, &token, &w.proof(&token, |_| {})).await;
        assert_eq!(reply.status, 503, "{reply:?}");
        assert_eq!(reply.kind(), Some(JwtErrorKind::ReplayStoreUnavailable));
        let open = w.layer(
            Dpop::required()
                .with_replay_store(store())
                .danger_fail_open_on_store_errors(),
        );
        assert_accepted(
            &dpop_call(&open, &token, &w.proof(&token, |_| {})).await,
            &w,
        );
        assert!(RedisReplayStore::new("not a url").is_err());
    }
}
