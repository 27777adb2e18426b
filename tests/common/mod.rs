//! Test support: real keys and signatures (the test kit's, `validate_jwt::testing`), the
//! byte-level token surgery the attack suite needs beyond the kit, and calling a layer.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};
use validate_jwt::Algorithm;
use validate_jwt::testing::SigningKey;

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "api://echo";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key with its `kid` and algorithm: the kit's [`SigningKey`], named as the tests
/// name it, signing whatever bytes a test hands it.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    key: SigningKey,
}

impl TestKey {
    fn new(kid: &str, alg: &'static str, key: SigningKey) -> Self {
        TestKey {
            kid: kid.into(),
            alg,
            key: key.with_kid(kid),
        }
    }

    fn generate(kid: &str, alg: &'static str) -> Self {
        Self::new(kid, alg, SigningKey::generate(alg.parse().unwrap()))
    }

    /// An RSA-2048 key for `alg` (RS* or PS*).
    pub fn rsa(kid: &str, alg: &'static str) -> Self {
        Self::generate(kid, alg)
    }
    pub fn es256(kid: &str) -> Self {
        Self::generate(kid, "ES256")
    }
    pub fn es384(kid: &str) -> Self {
        Self::generate(kid, "ES384")
    }
    pub fn ed25519(kid: &str) -> Self {
        Self::generate(kid, "EdDSA")
    }
    /// A shared HMAC secret; `alg` is HS256, HS384 or HS512.
    pub fn hmac(kid: &str, alg: &'static str, secret: &[u8]) -> Self {
        let key = SigningKey::hmac(alg.parse().unwrap(), secret).unwrap();
        Self::new(kid, alg, key)
    }

    /// The public JWK, with `alg` unless `with_alg` is false.
    pub fn jwk(&self, with_alg: bool) -> Value {
        let mut jwk = self.key.jwk();
        if !with_alg {
            jwk.as_object_mut().unwrap().remove("alg");
        }
        jwk
    }

    /// Signs `signing_input` with `alg` when this key can (an RSA key any RS*/PS*, an HMAC
    /// secret any HS*), and with its own algorithm otherwise (whatever `alg` names).
    pub fn sign_raw(&self, alg: &str, signing_input: &[u8]) -> Vec<u8> {
        let own = || {
            let own = self.key.algorithm();
            self.key.signature(own, signing_input).unwrap()
        };
        match alg.parse::<Algorithm>() {
            Ok(alg) => self.key.signature(alg, signing_input).unwrap_or_else(own),
            Err(_) => own(),
        }
    }

    /// A compact JWS over any header and claims.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let alg = header["alg"].as_str().unwrap_or(self.alg);
        let sig = self.sign_raw(alg, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// A token with the standard header (`alg`, `kid`, `typ: JWT`).
    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

/// Valid claims for [`ISSUER`] and [`AUDIENCE`], expiring in an hour.
pub fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 3600, "iat": now(), "scp": "Echo.Read"})
}

/// [`claims`] as JSON text with `extra` appended as further members (for JSON that serde_json
/// would not write, such as repeated members).
pub fn payload_with(extra: &str) -> String {
    let mut payload = claims().to_string();
    payload.pop();
    format!("{payload},{extra}}}")
}

/// Sends `request` to `app`: (status, the refusal's kind, the JSON body or `Null`).
pub async fn respond(
    app: axum::Router,
    request: http::Request<axum::body::Body>,
) -> (u16, Option<validate_jwt::JwtErrorKind>, Value) {
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .extensions()
        .get::<validate_jwt::JwtError>()
        .map(validate_jwt::JwtError::kind);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        kind,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk(true)).collect::<Vec<_>>() })
}

/// Serves `app` on 127.0.0.1:0 and returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The echo handler used by the tests: answers with the verified claims.
pub async fn echo(claims: Option<axum::Extension<validate_jwt::Claims>>) -> axum::Json<Value> {
    let claims = claims.map(|c| serde_json::from_str::<Value>(c.raw()).unwrap());
    axum::Json(json!({ "claims": claims }))
}

/// A GET with an optional bearer token: (status, www-authenticate, body).
pub async fn fetch(url: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    (
        status,
        www,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

// ---- Additions for the attack suite and the property tests ----------------------------------

impl TestKey {
    /// A P-256 (ES256) key from PKCS#8 DER, for fixtures such as a certificate's private key.
    pub fn es256_from_pkcs8(kid: &str, der: &[u8]) -> Self {
        let key = SigningKey::from_pkcs8(Algorithm::ES256, der).unwrap();
        Self::new(kid, "ES256", key)
    }

    /// The RSA modulus, big-endian without leading zeros (a JWK's `n`, decoded).
    pub fn rsa_modulus(&self) -> Vec<u8> {
        let jwk = self.key.jwk();
        assert_eq!(jwk["kty"], "RSA", "not an RSA key");
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap()
    }

    /// The RSA public key as PKCS#1 `RSAPublicKey` DER.
    pub fn rsa_public_pkcs1_der(&self) -> Vec<u8> {
        assert_eq!(self.key.jwk()["kty"], "RSA", "not an RSA key");
        self.key.public_key_bytes()
    }

    /// The uncompressed EC point (`0x04 || x || y`).
    pub fn ec_point(&self) -> Vec<u8> {
        assert_eq!(self.key.jwk()["kty"], "EC", "not an EC key");
        self.key.public_key_bytes()
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_spki_der(&self) -> Vec<u8> {
        self.key.public_key_der().expect("not an HMAC secret")
    }

    /// The key as aws-lc-rs parses it for verification: RSA as PKCS#1 DER, EC as the
    /// uncompressed point, Ed25519's 32 bytes, an HMAC secret as it is.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.key.public_key_bytes()
    }

    /// The public key as a `PUBLIC KEY` PEM document.
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.public_spki_der())
    }

    /// A compact JWS over raw header and payload bytes (neither needs to be JSON or UTF-8),
    /// signed with `alg` (which need not be the one the header names).
    pub fn sign_bytes(&self, alg: &str, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_raw(alg, input.as_bytes());
        format!("{input}.{}", b64(sig))
    }

    /// Signs an already encoded signing input (`header.payload`, as given) and appends the
    /// signature: for tokens whose segments are deliberately not canonical base64url.
    pub fn sign_segments(&self, alg: &str, signing_input: &str) -> String {
        let sig = self.sign_raw(alg, signing_input.as_bytes());
        format!("{signing_input}.{}", b64(sig))
    }
}

/// `der` as a PEM document with the given label (64-column standard base64).
pub fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block of `text`.
pub fn pem_to_der(text: &str) -> Vec<u8> {
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A server on 127.0.0.1 answering every GET, on any path, with `body` (and `content_type`),
/// counting the requests it receives. Returns its base URL (`http://127.0.0.1:port`) and the
/// counter.
pub async fn counting_server(
    content_type: &'static str,
    body: String,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        let body = body.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            ([(http::header::CONTENT_TYPE, content_type)], body)
        }
    });
    (format!("http://{}", serve(app).await), hits)
}

/// A server on 127.0.0.1 that accepts every request and never answers. Returns its base URL.
pub async fn hanging_server() -> String {
    let app = axum::Router::new().fallback(|| async {
        std::future::pending::<()>().await;
        ""
    });
    format!("http://{}", serve(app).await)
}

// ---- calling a layer as the attack suite does --------------------------------------------

/// What the layer answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `error` attribute of `WWW-Authenticate`.
    pub error_attribute: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: Value,
    pub error: Option<validate_jwt::JwtError>,
}

impl Answer {
    pub fn kind(&self) -> Option<validate_jwt::JwtErrorKind> {
        self.error.as_ref().map(validate_jwt::JwtError::kind)
    }
}

pub fn error_attribute(challenge: &str) -> Option<String> {
    let start = challenge.find("error=\"")? + "error=\"".len();
    let end = challenge[start..].find('"')?;
    Some(challenge[start..start + end].to_owned())
}

/// Sends `GET /` with `Authorization: Bearer <token>` through `layer` in front of the echo handler.
pub async fn call(layer: &validate_jwt::ValidateJwtLayer, token: &str) -> Answer {
    let app = axum::Router::new()
        .route("/", axum::routing::get(echo))
        .layer(layer.clone());
    let request = http::Request::get("/")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let error = response
        .extensions()
        .get::<validate_jwt::JwtError>()
        .cloned();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    // No answer ever echoes the token (checked for every call of the suite).
    if token.len() > 16 && status != 200 {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(token), "the body echoes the token");
        assert!(
            !www_authenticate.as_deref().unwrap_or("").contains(token),
            "the challenge echoes the token"
        );
    }
    let answer = Answer {
        status,
        error_attribute: www_authenticate.as_deref().and_then(error_attribute),
        www_authenticate,
        body,
        error,
    };
    assert_explained(layer, token, &answer).await;
    answer
}

/// The layer's `explain` report agrees with what the layer answered (checked for every call
/// of the suites that use [`call`]): the same status and kind, the first failing check names
/// that kind, with the same detail.
pub async fn assert_explained(
    layer: &validate_jwt::ValidateJwtLayer,
    token: &str,
    answer: &Answer,
) {
    // The layer read the token from `Authorization: Bearer …`, which trims spaces and tabs.
    let token = token.trim_matches([' ', '\t']);
    if token.is_empty() {
        return; // an empty bearer value is the request's fault (400), not a token's
    }
    let report = layer.explain(token).await;
    let context = || format!("{answer:?}\nexplained as:\n{report}");
    assert_eq!(report.answer().status(), answer.status, "{}", context());
    assert_eq!(report.answer().kind(), answer.kind(), "{}", context());
    assert_eq!(
        report.is_accepted(),
        answer.error.is_none(),
        "{}",
        context()
    );
    if let Some(err) = &answer.error {
        let first = report.failures().next();
        assert_eq!(
            first.and_then(|c| c.refusal()),
            Some(err.kind()),
            "the first failed check names the layer's refusal: {}",
            context()
        );
        // A space inside the token is refused before reading by `validate_token` (and so by
        // `explain`), with its own detail.
        if !token.contains(' ') {
            assert_eq!(
                report.error().and_then(|e| e.detail()),
                err.detail(),
                "{}",
                context()
            );
        }
    }
}

/// Asserts a 401 `invalid_token` answer caused by `kind`.
#[track_caller]
pub fn assert_invalid_token(answer: &Answer, kind: validate_jwt::JwtErrorKind) {
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(
        answer.error_attribute.as_deref(),
        Some("invalid_token"),
        "{answer:?}"
    );
    assert_eq!(answer.body["error"], "invalid_token", "{answer:?}");
    assert_eq!(answer.kind(), Some(kind), "{answer:?}");
}

#[track_caller]
pub fn assert_accepted(answer: &Answer) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["claims"]["sub"], "alice", "{answer:?}");
}
