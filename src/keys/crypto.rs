//! The signature backend: public keys parsed once into ready verifiers.
//!
//! With the `aws-lc-rs` feature (the default) keys become `aws_lc_rs::signature::ParsedPublicKey`
//! values, parsed when the key set is built and never again. With only `rust-crypto`, they are
//! `jsonwebtoken::DecodingKey`s verified through jsonwebtoken's RustCrypto provider. When both
//! features are on (Cargo feature unification), aws-lc-rs is used and jsonwebtoken's global
//! provider is never consulted, so the two never collide.

use crate::algorithm::{Algorithm, AlgorithmSet, KeyFamily};

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "validate-jwt needs a signature backend: enable the `aws-lc-rs` feature (default) or `rust-crypto`"
);

/// Key material as found in a JWK, a PEM file or given in code, before parsing.
pub(crate) enum KeyMaterial {
    /// RSA modulus and public exponent, big-endian, leading zeros allowed.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// RSA public key as PKCS#1 `RSAPublicKey` DER.
    RsaPkcs1Der(Vec<u8>),
    /// An uncompressed EC point (`0x04 || x || y`).
    EcPoint { family: KeyFamily, point: Vec<u8> },
    /// A raw 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
    /// An HMAC secret.
    Hmac(Vec<u8>),
}

impl KeyMaterial {
    pub(crate) fn family(&self) -> KeyFamily {
        match self {
            KeyMaterial::Rsa { .. } | KeyMaterial::RsaPkcs1Der(_) => KeyFamily::Rsa,
            KeyMaterial::EcPoint { family, .. } => *family,
            KeyMaterial::Ed25519(_) => KeyFamily::Ed25519,
            KeyMaterial::Hmac(_) => KeyFamily::Hmac,
        }
    }
}

/// The smallest RSA modulus accepted, in bytes (2048 bits).
pub(crate) const MIN_RSA_MODULUS_BYTES: usize = 256;
/// The largest RSA modulus accepted, in bytes (8192 bits).
pub(crate) const MAX_RSA_MODULUS_BYTES: usize = 1024;
/// The smallest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash size; we
/// require 256 bits for every HS algorithm).
pub(crate) const MIN_HMAC_SECRET_BYTES: usize = 32;

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(feature = "aws-lc-rs")]
mod backend {
    use super::*;
    use aws_lc_rs::hmac;
    use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};

    /// A key parsed once, ready to verify one or more algorithms of its family.
    #[derive(Clone)]
    pub(crate) enum Verifier {
        /// One parsed key per RSA algorithm the key may verify.
        Rsa(Vec<(Algorithm, ParsedPublicKey)>),
        /// An EC or Ed25519 key: exactly one algorithm.
        Single(Algorithm, ParsedPublicKey),
        /// One HMAC key per HS algorithm.
        Hmac(Vec<(Algorithm, hmac::Key)>),
    }

    fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
        Some(match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    impl Verifier {
        /// Parses `material` for every algorithm in `algorithms` (all of the material's family).
        pub(crate) fn new(
            material: &KeyMaterial,
            algorithms: AlgorithmSet,
        ) -> Result<Self, String> {
            match material {
                KeyMaterial::Rsa { n, e } => {
                    let components = RsaPublicKeyComponents {
                        n: strip_leading_zeros(n),
                        e: strip_leading_zeros(e),
                    };
                    let mut keys = Vec::new();
                    for alg in algorithms.iter() {
                        let Some(params) = rsa_params(alg) else {
                            continue;
                        };
                        let key = components
                            .to_parsed_public_key(params)
                            .map_err(|e| format!("RSA key rejected: {e}"))?;
                        keys.push((alg, key));
                    }
                    Ok(Verifier::Rsa(keys))
                }
                KeyMaterial::RsaPkcs1Der(der) => {
                    let mut keys = Vec::new();
                    for alg in algorithms.iter() {
                        let Some(params) = rsa_params(alg) else {
                            continue;
                        };
                        let key = ParsedPublicKey::new(params, der)
                            .map_err(|e| format!("RSA key rejected: {e}"))?;
                        keys.push((alg, key));
                    }
                    Ok(Verifier::Rsa(keys))
                }
                KeyMaterial::EcPoint { family, point } => {
                    let (alg, params): (_, &'static dyn signature::VerificationAlgorithm) =
                        match family {
                            KeyFamily::EcP256 => {
                                (Algorithm::ES256, &signature::ECDSA_P256_SHA256_FIXED)
                            }
                            KeyFamily::EcP384 => {
                                (Algorithm::ES384, &signature::ECDSA_P384_SHA384_FIXED)
                            }
                            _ => return Err("not an EC curve".into()),
                        };
                    let key = ParsedPublicKey::new(params, point)
                        .map_err(|e| format!("EC key rejected: {e}"))?;
                    Ok(Verifier::Single(alg, key))
                }
                KeyMaterial::Ed25519(raw) => {
                    let key = ParsedPublicKey::new(&signature::ED25519, raw)
                        .map_err(|e| format!("Ed25519 key rejected: {e}"))?;
                    Ok(Verifier::Single(Algorithm::EdDSA, key))
                }
                KeyMaterial::Hmac(secret) => {
                    let mut keys = Vec::new();
                    for alg in algorithms.iter() {
                        let hmac_alg = match alg {
                            Algorithm::HS256 => hmac::HMAC_SHA256,
                            Algorithm::HS384 => hmac::HMAC_SHA384,
                            Algorithm::HS512 => hmac::HMAC_SHA512,
                            _ => continue,
                        };
                        keys.push((alg, hmac::Key::new(hmac_alg, secret)));
                    }
                    Ok(Verifier::Hmac(keys))
                }
            }
        }

        /// Verifies `signature` over `message` with `alg`; false when the key does not do `alg`.
        #[inline]
        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
            match self {
                Verifier::Rsa(keys) => keys
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .is_some_and(|(_, key)| key.verify_sig(message, sig).is_ok()),
                Verifier::Single(a, key) => {
                    *a == alg.canonical() && key.verify_sig(message, sig).is_ok()
                }
                Verifier::Hmac(keys) => keys
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .is_some_and(|(_, key)| hmac::verify(key, message, sig).is_ok()),
            }
        }
    }
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
mod backend {
    use super::*;
    use jsonwebtoken::DecodingKey;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;

    /// A key ready for jsonwebtoken's RustCrypto provider.
    #[derive(Clone)]
    pub(crate) struct Verifier {
        key: DecodingKey,
        algorithms: AlgorithmSet,
    }

    fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
        match alg {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA | Algorithm::Ed25519 => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        }
    }

    impl Verifier {
        pub(crate) fn new(
            material: &KeyMaterial,
            algorithms: AlgorithmSet,
        ) -> Result<Self, String> {
            let key = match material {
                KeyMaterial::Rsa { n, e } => DecodingKey::from_rsa_raw_components(
                    strip_leading_zeros(n),
                    strip_leading_zeros(e),
                ),
                KeyMaterial::RsaPkcs1Der(der) => DecodingKey::from_rsa_der(der),
                KeyMaterial::EcPoint { point, .. } => DecodingKey::from_ec_der(point),
                KeyMaterial::Ed25519(raw) => DecodingKey::from_ed_der(raw),
                KeyMaterial::Hmac(secret) => DecodingKey::from_secret(secret),
            };
            // Check once that the key is usable, so a bad key fails when the set is built.
            for alg in algorithms.iter() {
                (DEFAULT_PROVIDER.verifier_factory)(&jwt_alg(alg), &key)
                    .map_err(|e| format!("key rejected for {alg}: {e}"))?;
            }
            Ok(Verifier { key, algorithms })
        }

        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
            if !self.algorithms.contains(alg) {
                return false;
            }
            let Ok(verifier) = (DEFAULT_PROVIDER.verifier_factory)(&jwt_alg(alg), &self.key) else {
                return false;
            };
            verifier.verify(message, &sig.to_vec()).is_ok()
        }
    }
}

pub(crate) use backend::Verifier;

/// Checks sizes that every backend must enforce, before parsing.
pub(crate) fn check_material(material: &KeyMaterial) -> Result<(), String> {
    match material {
        KeyMaterial::Rsa { n, e } => {
            let n = strip_leading_zeros(n);
            if n.len() < MIN_RSA_MODULUS_BYTES {
                return Err(format!(
                    "RSA modulus of {} bits is below the 2048-bit minimum",
                    n.len() * 8
                ));
            }
            if n.len() > MAX_RSA_MODULUS_BYTES {
                return Err("RSA modulus above 8192 bits".into());
            }
            if strip_leading_zeros(e).is_empty() {
                return Err("RSA exponent is zero".into());
            }
            Ok(())
        }
        KeyMaterial::RsaPkcs1Der(der) => {
            // The DER holds the modulus plus a few bytes of framing and the exponent.
            if der.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key below the 2048-bit minimum".into());
            }
            Ok(())
        }
        KeyMaterial::EcPoint { family, point } => {
            let want = match family {
                KeyFamily::EcP256 => 65,
                KeyFamily::EcP384 => 97,
                _ => 0,
            };
            if point.len() != want || point.first() != Some(&4) {
                return Err("EC point has the wrong length for its curve".into());
            }
            Ok(())
        }
        KeyMaterial::Ed25519(raw) => {
            if raw.len() != 32 {
                return Err("Ed25519 key must be 32 bytes".into());
            }
            Ok(())
        }
        KeyMaterial::Hmac(secret) => {
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(format!(
                    "HMAC secret of {} bytes is below the 32-byte minimum",
                    secret.len()
                ));
            }
            Ok(())
        }
    }
}
