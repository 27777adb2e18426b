//! Keys given in configuration (APIM's `issuer-signing-keys`).

use std::sync::Arc;

use super::crypto::KeyMaterial;
use super::{IssuerPattern, Key, KeySet, KeySource, RefreshFuture, RefreshReason, jwk};
use crate::algorithm::KeyFamily;
use crate::error::{KeyError, KeyErrorKind};

/// Keys known at configuration time: PEM (SPKI, PKCS#1 or a certificate), JWK and JWKS JSON,
/// RSA `n`/`e`, and HMAC secrets.
///
/// Methods chain; the first malformed key is reported by
/// [`ValidateJwtBuilder::build`](crate::ValidateJwtBuilder::build) (or [`key_set`](Self::key_set)).
///
/// ```
/// use validate_jwt::StaticKeys;
///
/// let keys = StaticKeys::new()
///     .add_jwk(r#"{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
///     .add_hmac_secret(Some("shared"), b"a shared secret of at least 32 bytes!")
///     .add_issuer("https://issuer.example");
/// assert_eq!(keys.key_set().unwrap().len(), 2);
///
/// let bad = StaticKeys::new().add_pem(None, "not a pem");
/// assert!(bad.key_set().is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticKeys {
    keys: Vec<Arc<Key>>,
    error: Option<KeyError>,
    issuers: Option<Vec<String>>,
}

fn invalid(what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::new(KeyErrorKind::InvalidKey, format!("{what}: {e}"))
}

impl StaticKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, kid: Option<&str>, key: Result<Key, KeyError>) -> Self {
        match key {
            Ok(mut key) => {
                if let Some(kid) = kid {
                    key.kid = Some(kid.into());
                }
                self.keys.push(Arc::new(key));
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// A PEM public key: RSA (`PUBLIC KEY` SPKI, `RSA PUBLIC KEY` PKCS#1), EC P-256/P-384,
    /// Ed25519, or a `CERTIFICATE` whose public key is one of those.
    #[must_use]
    pub fn add_pem(self, kid: Option<&str>, pem: impl AsRef<[u8]>) -> Self {
        let key = parse_pem(pem.as_ref());
        self.push(kid, key)
    }

    /// An RSA public key from its base64url modulus and exponent (a JWK's `n` and `e`).
    #[must_use]
    pub fn add_rsa_components(self, kid: Option<&str>, n: &str, e: &str) -> Self {
        let decode = |s: &str| {
            crate::token::b64url_lenient_padding(s)
                .ok_or_else(|| invalid("RSA component", "not base64url"))
        };
        let key = decode(n).and_then(|n| {
            decode(e).and_then(|e| Key::from_material(KeyMaterial::Rsa { n, e }, None))
        });
        self.push(kid, key)
    }

    /// One JWK (JSON object). Symmetric `oct` keys are accepted here, as configuration.
    #[must_use]
    pub fn add_jwk(self, json: impl AsRef<[u8]>) -> Self {
        let key =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json.as_ref())
                .map_err(|e| invalid("JWK is not a JSON object", e))
                .and_then(|obj| jwk::parse_jwk(&obj, true).map_err(|e| invalid("JWK", e)));
        self.push(None, key)
    }

    /// Every usable key of a JWKS document (`{"keys": [...]}`); unusable keys are skipped as
    /// for a fetched set, and a set with no usable key is an error.
    #[must_use]
    pub fn add_jwks(mut self, json: impl AsRef<[u8]>) -> Self {
        match jwk::parse_jwks(json.as_ref(), true, super::DEFAULT_MAX_KEYS) {
            Ok((keys, _)) => self.keys.extend(keys.into_iter().map(Arc::new)),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// A shared HMAC secret (at least 32 bytes). Only with a secret configured may HS256,
    /// HS384 or HS512 be allowed.
    #[must_use]
    pub fn add_hmac_secret(self, kid: Option<&str>, secret: impl AsRef<[u8]>) -> Self {
        let key = Key::from_material(KeyMaterial::Hmac(secret.as_ref().to_vec()), None);
        self.push(kid, key)
    }

    /// A shared HMAC secret given in standard base64 (as in APIM's `issuer-signing-keys`).
    #[must_use]
    pub fn add_hmac_secret_base64(self, kid: Option<&str>, secret: &str) -> Self {
        let key = crate::token::b64_standard(secret)
            .ok_or_else(|| invalid("HMAC secret", "not standard base64"))
            .and_then(|s| Key::from_material(KeyMaterial::Hmac(s), None));
        self.push(kid, key)
    }

    /// Binds these keys to an issuer (repeatable, any-of): a token they verify must carry one of
    /// these `iss` values, and the layer needs no separate `add_issuer`. A JWK that names an
    /// `issuer` of its own narrows this further for that key (its tokens must match both).
    #[must_use]
    pub fn add_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers
            .get_or_insert_with(Vec::new)
            .push(issuer.into());
        self
    }

    /// Whether an HMAC secret is among the keys.
    pub(crate) fn has_hmac(&self) -> bool {
        self.keys.iter().any(|k| k.is_symmetric())
    }

    /// The first configuration error, if any.
    pub(crate) fn error(&self) -> Option<&KeyError> {
        self.error.as_ref()
    }

    /// The keys as a ready key set, or the first error met while adding them.
    pub fn key_set(&self) -> Result<Arc<KeySet>, KeyError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.keys.is_empty() {
            return Err(KeyError::new(KeyErrorKind::NoUsableKeys, "no static keys"));
        }
        let mut keys: Vec<Key> = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            keys.push((**key).clone());
        }
        let mut set = KeySet::new(keys);
        if let Some(issuers) = &self.issuers {
            let patterns: Arc<[IssuerPattern]> =
                issuers.iter().map(|i| IssuerPattern::new(i)).collect();
            set = set.published_for(patterns);
        }
        Ok(Arc::new(set))
    }

    /// Freezes the keys into a key source, with the key set built once.
    pub(crate) fn into_source(self) -> Result<(StaticProvider, Arc<KeySet>), KeyError> {
        let set = self.key_set()?;
        let source = StaticProvider {
            set: set.clone(),
            issuers: self.issuers,
        };
        Ok((source, set))
    }
}

fn parse_pem(pem: &[u8]) -> Result<Key, KeyError> {
    use jsonwebtoken::{DecodingKey, DecodingKeyKind};
    let bytes = |k: &DecodingKey| match k.kind() {
        DecodingKeyKind::SecretOrDer(b) => b.clone(),
        DecodingKeyKind::RsaModulusExponent { n, .. } => n.clone(),
    };
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Key::from_material(KeyMaterial::RsaPkcs1Der(bytes(&k)), None);
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let point = bytes(&k);
        let family = match point.len() {
            65 => KeyFamily::EcP256,
            97 => KeyFamily::EcP384,
            _ => return Err(invalid("PEM", "unsupported EC curve")),
        };
        return Key::from_material(KeyMaterial::EcPoint { family, point }, None);
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Key::from_material(KeyMaterial::Ed25519(bytes(&k)), None);
    }
    Err(invalid(
        "PEM",
        "not an RSA, EC (P-256/P-384) or Ed25519 public key or certificate",
    ))
}

/// The provider made from [`StaticKeys`]: the key set never changes.
#[derive(Debug)]
pub(crate) struct StaticProvider {
    set: Arc<KeySet>,
    issuers: Option<Vec<String>>,
}

impl KeySource for StaticProvider {
    fn current(&self) -> Option<Arc<KeySet>> {
        Some(self.set.clone())
    }

    fn refresh(&self, _reason: RefreshReason) -> RefreshFuture {
        let set = self.set.clone();
        Box::pin(std::future::ready(Ok(set)))
    }

    fn issuers(&self) -> Option<Vec<String>> {
        self.issuers.clone()
    }

    fn key_set_version(&self) -> Option<u64> {
        Some(0)
    }
}
