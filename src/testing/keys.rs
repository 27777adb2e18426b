//! [`SigningKey`]: a fresh key pair (or HMAC secret) of one algorithm, its JWK, and signatures
//! made with aws-lc-rs.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaEncoding,
    RsaKeyPair,
};
use serde_json::{Map, Value, json};

use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::{KeyError, KeyErrorKind};

/// base64url without padding, as JOSE writes every binary value.
pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// `len` random bytes.
pub(super) fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    made(aws_lc_rs::rand::fill(&mut bytes));
    bytes
}

/// The value of an aws-lc-rs call that only fails when the machine cannot make keys or
/// signatures at all (no entropy): a test cannot go on, so it stops with a clear message.
#[allow(
    clippy::expect_used,
    reason = "test-util only: aws-lc-rs refusing a key or a signature for a key it generated \
              itself means the machine cannot do cryptography, and a test cannot go on"
)]
pub(super) fn made<T, E: fmt::Debug>(result: Result<T, E>) -> T {
    result.expect("aws-lc-rs could not make a key or a signature")
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A signing key of one [`Algorithm`], with a `kid`: an RSA-2048, P-256, P-384 or Ed25519 key
/// pair made with aws-lc-rs, or a random HMAC secret. Clones share the key.
///
/// [`TestIssuer`](super::TestIssuer) signs with these; use one directly for tests that need a
/// key outside any issuer (static keys, a JWKS of your own, tokens built byte by byte).
///
/// ```
/// use validate_jwt::testing::SigningKey;
/// use validate_jwt::{Algorithm, StaticKeys, ValidateJwtLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let key = SigningKey::generate(Algorithm::ES256).with_kid("k1");
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_jwk(key.jwk().to_string()))
///     .add_issuer("https://issuer.example")
///     .add_audience("api://files")
///     .build()
///     .unwrap();
/// let claims = serde_json::json!({
///     "iss": "https://issuer.example", "aud": "api://files", "sub": "alice",
///     "exp": 4_102_444_800u64, // 2100-01-01
/// });
/// let token = key.sign(&serde_json::json!({"alg": "ES256", "kid": "k1"}), &claims).unwrap();
/// assert!(layer.validate_token(&token).await.is_ok());
/// # }
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: Arc<str>,
    alg: Algorithm,
    pair: Arc<Pair>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn ecdsa(alg: Algorithm) -> Option<&'static EcdsaSigningAlgorithm> {
    match alg {
        Algorithm::ES256 => Some(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

impl SigningKey {
    /// A fresh key for `alg` (RSA keys are 2048 bits; HMAC secrets as long as the hash), with a
    /// random 27-character `kid` (the length of Azure AD's).
    ///
    /// # Panics
    ///
    /// Only if aws-lc-rs cannot generate keys on this machine.
    pub fn generate(alg: Algorithm) -> SigningKey {
        let pair = match alg.family() {
            KeyFamily::Rsa => Pair::Rsa(made(RsaKeyPair::generate(KeySize::Rsa2048))),
            KeyFamily::EcP256 => Pair::Ec(made(EcdsaKeyPair::generate(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            ))),
            KeyFamily::EcP384 => Pair::Ec(made(EcdsaKeyPair::generate(
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            ))),
            KeyFamily::Ed25519 => Pair::Ed(made(Ed25519KeyPair::generate())),
            KeyFamily::Hmac => Pair::Hmac(random(match alg {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            })),
        };
        SigningKey::new(alg, pair)
    }

    /// A key for an HMAC algorithm (`HS256`, `HS384`, `HS512`) with this shared secret; `None`
    /// for any other algorithm.
    ///
    /// ```
    /// use validate_jwt::Algorithm;
    /// use validate_jwt::testing::SigningKey;
    ///
    /// let key = SigningKey::hmac(Algorithm::HS256, b"a shared secret of at least 32 bytes!").unwrap();
    /// assert_eq!(key.jwk()["kty"], "oct");
    /// assert!(SigningKey::hmac(Algorithm::RS256, b"secret").is_none());
    /// ```
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Option<SigningKey> {
        (alg.family() == KeyFamily::Hmac)
            .then(|| SigningKey::new(alg, Pair::Hmac(secret.as_ref().to_vec())))
    }

    /// A key for `alg` from a PKCS#8 private key (DER), such as a certificate's key from a
    /// fixture. RSA, P-256, P-384 and Ed25519 keys; an `InvalidKey` error when the document is
    /// not a key of `alg`'s type.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<SigningKey, KeyError> {
        let invalid = |e: &dyn fmt::Display| {
            KeyError::new(
                KeyErrorKind::InvalidKey,
                format!("not a PKCS#8 {alg} key: {e}"),
            )
        };
        let pair = match alg.family() {
            KeyFamily::Rsa => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| invalid(&e))?),
            KeyFamily::EcP256 | KeyFamily::EcP384 => {
                let curve = ecdsa(alg).ok_or_else(|| invalid(&"no curve"))?;
                Pair::Ec(EcdsaKeyPair::from_pkcs8(curve, der).map_err(|e| invalid(&e))?)
            }
            KeyFamily::Ed25519 => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(|e| invalid(&e))?)
            }
            KeyFamily::Hmac => return Err(invalid(&"an HMAC secret has no PKCS#8 form")),
        };
        Ok(SigningKey::new(alg, pair))
    }

    fn new(alg: Algorithm, pair: Pair) -> SigningKey {
        SigningKey {
            kid: b64(random(20)).into(),
            alg,
            pair: Arc::new(pair),
        }
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> SigningKey {
        self.kid = kid.into().into();
        self
    }

    /// The key's id: the JWK's `kid`, and the one tokens name.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the key is for (its JWK's `alg`).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The JWK a verifier needs, with `kid`, `use: sig` and `alg`: the public key, or for an HMAC
    /// key an `oct` JWK holding the secret itself (never publish that one).
    ///
    /// ```
    /// use validate_jwt::Algorithm;
    /// use validate_jwt::testing::SigningKey;
    ///
    /// let jwk = SigningKey::generate(Algorithm::EdDSA).with_kid("ed").jwk();
    /// assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    /// assert_eq!((jwk["kid"].as_str(), jwk["alg"].as_str()), (Some("ed"), Some("EdDSA")));
    /// ```
    pub fn jwk(&self) -> Value {
        let mut jwk = Map::new();
        let mut put = |name: &str, value: Value| {
            jwk.insert(name.to_owned(), value);
        };
        match &*self.pair {
            Pair::Rsa(p) => {
                let public = p.public_key();
                put("kty", json!("RSA"));
                put(
                    "n",
                    json!(b64(public.modulus().big_endian_without_leading_zero())),
                );
                put(
                    "e",
                    json!(b64(public.exponent().big_endian_without_leading_zero())),
                );
            }
            Pair::Ec(p) => {
                let point = p.public_key().as_ref();
                let n = point.len().saturating_sub(1) / 2;
                let (x, y) = point.get(1..).unwrap_or_default().split_at(n);
                let crv = if n == 32 { "P-256" } else { "P-384" };
                put("kty", json!("EC"));
                put("crv", json!(crv));
                put("x", json!(b64(x)));
                put("y", json!(b64(y)));
            }
            Pair::Ed(p) => {
                put("kty", json!("OKP"));
                put("crv", json!("Ed25519"));
                put("x", json!(b64(p.public_key().as_ref())));
            }
            Pair::Hmac(secret) => {
                put("kty", json!("oct"));
                put("k", json!(b64(secret)));
            }
        }
        put("kid", json!(&*self.kid));
        put("use", json!("sig"));
        put("alg", json!(self.alg.as_str()));
        Value::Object(jwk)
    }

    /// The public key as X.509 `SubjectPublicKeyInfo` DER (what a `PUBLIC KEY` PEM holds); `None`
    /// for an HMAC key.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        let der: Result<PublicKeyX509Der<'static>, _> = match &*self.pair {
            Pair::Rsa(p) => p.public_key().as_der(),
            Pair::Ec(p) => p.public_key().as_der(),
            Pair::Ed(p) => p.public_key().as_der(),
            Pair::Hmac(_) => return None,
        };
        der.ok().map(|der| der.as_ref().to_vec())
    }

    /// The key in its raw form: an RSA key as PKCS#1 `RSAPublicKey` DER, an EC key as its
    /// uncompressed point, an Ed25519 key as its 32 bytes, an HMAC key as its secret (what
    /// aws-lc-rs's and ring's `UnparsedPublicKey` take).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &*self.pair {
            Pair::Rsa(p) => p.public_key().as_ref().to_vec(),
            Pair::Ec(p) => p.public_key().as_ref().to_vec(),
            Pair::Ed(p) => p.public_key().as_ref().to_vec(),
            Pair::Hmac(secret) => secret.clone(),
        }
    }

    /// The signature of `message` with `alg`: any RS*/PS* algorithm for an RSA key, HS* for an
    /// HMAC key, `EdDSA` or `Ed25519` for an Ed25519 key, the curve's algorithm for an EC key.
    /// `None` when this key cannot make `alg` signatures (test how a verifier treats a key used
    /// with another algorithm of its type by asking for one).
    pub fn signature(&self, alg: Algorithm, message: &[u8]) -> Option<Vec<u8>> {
        match &*self.pair {
            Pair::Rsa(p) => {
                let encoding: &'static dyn RsaEncoding = match alg {
                    Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => return None,
                };
                let mut sig = vec![0; p.public_modulus_len()];
                made(p.sign(encoding, &SystemRandom::new(), message, &mut sig));
                Some(sig)
            }
            Pair::Ec(p) => {
                let curve_alg = if p.public_key().as_ref().len() == 65 {
                    Algorithm::ES256
                } else {
                    Algorithm::ES384
                };
                (alg == curve_alg).then(|| {
                    made(p.sign(&SystemRandom::new(), message))
                        .as_ref()
                        .to_vec()
                })
            }
            Pair::Ed(p) => matches!(alg, Algorithm::EdDSA | Algorithm::Ed25519)
                .then(|| p.sign(message).as_ref().to_vec()),
            Pair::Hmac(secret) => {
                let hmac = match alg {
                    Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => return None,
                };
                let key = aws_lc_rs::hmac::Key::new(hmac, secret);
                Some(aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec())
            }
        }
    }

    /// A compact JWS of `header` and `claims` (any JSON values, written as they are), signed
    /// with the algorithm the header's `alg` names, or the key's own when it names none. `None`
    /// when this key cannot make signatures of the named algorithm (`none` included).
    pub fn sign(&self, header: &Value, claims: &Value) -> Option<String> {
        let alg = match header.get("alg") {
            None => self.alg,
            Some(named) => named.as_str()?.parse().ok()?,
        };
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = self.signature(alg, input.as_bytes())?;
        Some(format!("{input}.{}", b64(signature)))
    }
}
