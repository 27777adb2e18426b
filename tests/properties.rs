//! Property tests: random input and random damage to valid tokens never validate and never
//! panic; a token re-signed with any key but the configured one is refused.
//!
//! Entry is through the public API, `ValidateJwtLayer::validate_token` and the layer itself. The
//! case count is bounded (256 per property) so the suite runs in seconds in debug builds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::*;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use validate_jwt::{JwtErrorKind, StaticKeys, ValidateJwtLayer};

const CASES: u32 = 256;
const SECRET: &[u8] = b"the properties' shared HMAC secret (32+ bytes)";
const OTHER_SECRET: &[u8] = b"another HMAC secret, also 32+ bytes long!";

/// Something that signs: a key pair, or an HMAC secret.
enum Signer {
    Key(TestKey),
    Hmac {
        kid: &'static str,
        secret: &'static [u8],
    },
}

impl Signer {
    fn kid(&self) -> &str {
        match self {
            Signer::Key(k) => &k.kid,
            Signer::Hmac { kid, .. } => kid,
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Key(k) => k.alg,
            Signer::Hmac { .. } => "HS256",
        }
    }

    /// Signs `header.claims` with `alg` (this signer's own algorithm unless told otherwise).
    fn sign_with(&self, alg: &str, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = match self {
            Signer::Key(k) => k.sign_raw(alg, input.as_bytes()),
            Signer::Hmac { secret, .. } => {
                use aws_lc_rs::hmac;
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
            }
        };
        format!("{input}.{}", b64(sig))
    }

    fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg(), "kid": self.kid(), "typ": "JWT"});
        self.sign_with(self.alg(), &header, claims)
    }
}

/// The configured keys, one per algorithm family.
static TRUSTED: LazyLock<Vec<Signer>> = LazyLock::new(|| {
    vec![
        Signer::Key(TestKey::rsa("rs", "RS256")),
        Signer::Key(TestKey::rsa("ps", "PS256")),
        Signer::Key(TestKey::es256("es256")),
        Signer::Key(TestKey::es384("es384")),
        Signer::Key(TestKey::ed25519("ed")),
        Signer::Hmac {
            kid: "hs",
            secret: SECRET,
        },
    ]
});

/// Keys nobody configured: same kinds (and `kid`s) as the trusted ones.
static OTHERS: LazyLock<Vec<Signer>> = LazyLock::new(|| {
    vec![
        Signer::Key(TestKey::rsa("rs", "RS256")),
        Signer::Key(TestKey::rsa("ps", "PS256")),
        Signer::Key(TestKey::es256("es256")),
        Signer::Key(TestKey::es384("es384")),
        Signer::Key(TestKey::ed25519("ed")),
        Signer::Hmac {
            kid: "hs",
            secret: OTHER_SECRET,
        },
    ]
});

static LAYER: LazyLock<ValidateJwtLayer> = LazyLock::new(|| {
    let keys: Vec<&TestKey> = TRUSTED
        .iter()
        .filter_map(|s| match s {
            Signer::Key(k) => Some(k),
            Signer::Hmac { .. } => None,
        })
        .collect();
    ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_jwks(jwks(&keys).to_string())
                .add_hmac_secret(Some("hs"), SECRET)
                .add_issuer(ISSUER),
        )
        .add_audience(AUDIENCE)
        .build()
        .unwrap()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn validate(token: &str) -> Result<validate_jwt::Claims, validate_jwt::JwtError> {
    RUNTIME.block_on(LAYER.validate_token(token))
}

/// Sends the bytes as the `Authorization` header through the layer; `None` when they cannot be
/// a header value at all.
fn status_through_the_layer(authorization: &[u8]) -> Option<u16> {
    let value = http::HeaderValue::from_bytes(authorization).ok()?;
    let request = http::Request::get("/")
        .header(http::header::AUTHORIZATION, value)
        .body(axum::body::Body::empty())
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "reached" }))
        .layer(LAYER.clone());
    let response = RUNTIME.block_on(app.oneshot(request)).unwrap();
    Some(response.status().as_u16())
}

fn claims_for(subject: &str) -> Value {
    let mut c = claims();
    c["sub"] = json!(subject);
    c
}

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---- random input ------------------------------------------------------------------------------

/// Text that looks like a compact token: base64url characters and dots.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,400}",
        "[A-Za-z0-9_.=+/ -]{0,600}",
        // A real header with junk after it, so parsing reaches key lookup and signatures.
        (0..6usize, "[A-Za-z0-9_-]{0,300}", "[A-Za-z0-9_-]{0,400}").prop_map(|(i, p, s)| {
            let signer = &TRUSTED[i];
            let header = json!({"alg": signer.alg(), "kid": signer.kid()});
            format!("{}.{p}.{s}", b64(header.to_string()))
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_validate(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(validate(&text).is_err());
        let mut header = b"Bearer ".to_vec();
        header.extend_from_slice(&bytes);
        if let Some(status) = status_through_the_layer(&header) {
            prop_assert_ne!(status, 200);
        }
    }

    #[test]
    fn random_token_shaped_text_never_validates(text in token_like()) {
        prop_assert!(validate(&text).is_err());
        if let Some(status) = status_through_the_layer(format!("Bearer {text}").as_bytes()) {
            prop_assert_ne!(status, 200);
        }
    }
}

// ---- mutations of valid tokens ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    /// Flip one bit of one byte (positions taken modulo the length).
    BitFlip { at: usize, bit: u8 },
    /// Swap two of the three segments.
    SwapSegments(usize, usize),
    /// Re-encode one segment: padded, or in the standard alphabet, or both.
    ReEncode {
        segment: usize,
        padded: bool,
        standard: bool,
    },
    /// Replace one byte.
    Replace { at: usize, with: u8 },
    /// Insert one byte.
    Insert { at: usize, byte: u8 },
    /// Delete one byte.
    Delete { at: usize },
    /// Keep only a prefix.
    Truncate { len: usize },
    /// Flip the ASCII case of one character.
    FlipCase { at: usize },
    /// Duplicate one segment in place (four segments).
    DuplicateSegment(usize),
    /// Replace a segment with the same segment of another valid token (another subject).
    Splice { segment: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::BitFlip { at, bit }),
        1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapSegments(a, b)),
        2 => (0usize..3, any::<bool>(), any::<bool>())
            .prop_map(|(segment, padded, standard)| Mutation::ReEncode { segment, padded, standard }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, with)| Mutation::Replace { at, with }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => any::<usize>().prop_map(|at| Mutation::FlipCase { at }),
        1 => (0usize..3).prop_map(Mutation::DuplicateSegment),
        1 => (0usize..3).prop_map(|segment| Mutation::Splice { segment }),
    ]
}

fn apply(token: &str, other: &str, m: &Mutation) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let n = bytes.len();
    let segs: Vec<&str> = token.split('.').collect();
    match *m {
        Mutation::BitFlip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::SwapSegments(a, b) => {
            let mut s = segs.clone();
            s.swap(a, b);
            bytes = s.join(".").into_bytes();
        }
        Mutation::ReEncode {
            segment,
            padded,
            standard,
        } => {
            let Ok(raw) = URL_SAFE_NO_PAD.decode(segs[segment]) else {
                return bytes;
            };
            let text = match (padded, standard) {
                (false, false) => URL_SAFE_NO_PAD.encode(&raw),
                (true, false) => URL_SAFE.encode(&raw),
                (false, true) => STANDARD_NO_PAD.encode(&raw),
                (true, true) => STANDARD.encode(&raw),
            };
            let mut s: Vec<String> = segs.iter().map(|s| (*s).to_owned()).collect();
            s[segment] = text;
            bytes = s.join(".").into_bytes();
        }
        Mutation::Replace { at, with } => bytes[at % n] = with,
        Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), byte),
        Mutation::Delete { at } => {
            bytes.remove(at % n);
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::FlipCase { at } => {
            let b = &mut bytes[at % n];
            if b.is_ascii_alphabetic() {
                *b ^= 0x20;
            }
        }
        Mutation::DuplicateSegment(i) => {
            let mut s = segs.clone();
            s.insert(i, segs[i]);
            bytes = s.join(".").into_bytes();
        }
        Mutation::Splice { segment } => {
            let o: Vec<&str> = other.split('.').collect();
            let mut s = segs.clone();
            s[segment] = o[segment];
            bytes = s.join(".").into_bytes();
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutations_of_valid_tokens_never_validate(
        signer in 0..6usize,
        subject in "[a-z]{1,12}",
        other_subject in "[A-Z]{1,12}",
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let signer = &TRUSTED[signer];
        let token = signer.token(&claims_for(&subject));
        let claims = validate(&token).unwrap();
        prop_assert_eq!(claims.subject(), Some(subject.as_str()));
        let other = signer.token(&claims_for(&other_subject));
        let mut mutated = token.as_bytes().to_vec();
        for m in &mutations {
            let current = String::from_utf8_lossy(&mutated).into_owned();
            if current.split('.').count() != 3 || current.is_empty() {
                break;
            }
            mutated = apply(&current, &other, m);
        }
        let text = String::from_utf8_lossy(&mutated);
        let result = validate(&text);
        if mutated == token.as_bytes() {
            // The identity mutation (a swap of a segment with itself, a re-encoding that
            // changes nothing, a case flip of a non-letter...).
            prop_assert!(result.is_ok());
        } else if mutated == other.as_bytes() {
            // Splicing in every differing segment of the other genuine token rebuilds it.
            let claims = result.unwrap();
            prop_assert_eq!(claims.subject(), Some(other_subject.as_str()));
        } else {
            prop_assert!(result.is_err(), "a mutated token validated: {:?}", mutations);
            let mut header = b"Bearer ".to_vec();
            header.extend_from_slice(&mutated);
            if let Some(status) = status_through_the_layer(&header) {
                // Only surrounding whitespace, which the header extraction trims, can differ.
                let trimmed = text.trim_matches(|c| c == ' ' || c == '\t');
                if trimmed != token && trimmed != other {
                    prop_assert_ne!(status, 200, "a mutated token passed the layer");
                }
            }
        }
    }
}

// ---- re-signed tokens ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tokens_re_signed_with_any_other_key_are_refused(
        trusted in 0..6usize,
        other in 0..6usize,
        subject in "[a-z]{1,12}",
        keep_kid in any::<bool>(),
    ) {
        let trusted = &TRUSTED[trusted];
        let other = &OTHERS[other];
        let claims = claims_for(&subject);
        prop_assert!(validate(&trusted.token(&claims)).is_ok());

        // The trusted key's exact header, signed by another key of the same algorithm when there
        // is one: the signature is the only difference.
        let header = if keep_kid {
            json!({"alg": trusted.alg(), "kid": trusted.kid(), "typ": "JWT"})
        } else {
            json!({"alg": trusted.alg(), "typ": "JWT"})
        };
        if other.alg() == trusted.alg()
            || (other.alg().starts_with("RS") && trusted.alg().starts_with("PS"))
            || (other.alg().starts_with("PS") && trusted.alg().starts_with("RS"))
        {
            let forged = other.sign_with(trusted.alg(), &header, &claims);
            let err = validate(&forged).unwrap_err();
            prop_assert!(
                matches!(err.kind(), JwtErrorKind::InvalidSignature | JwtErrorKind::UnknownKey),
                "{:?}", err.kind()
            );
        }
        // The other key's own algorithm, under the trusted key's kid or none.
        let header = if keep_kid {
            json!({"alg": other.alg(), "kid": trusted.kid(), "typ": "JWT"})
        } else {
            json!({"alg": other.alg(), "typ": "JWT"})
        };
        let forged = other.sign_with(other.alg(), &header, &claims);
        prop_assert!(validate(&forged).is_err());
        // And under its own kid (which a trusted key shares).
        prop_assert!(validate(&other.token(&claims)).is_err());
    }
}
