//! JWS signature algorithms (RFC 7518 §3, RFC 8037, RFC 9864).

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm this crate can verify. `none` is not one of them, on purpose.
///
/// ```
/// use validate_jwt::Algorithm;
/// assert_eq!("RS256".parse::<Algorithm>().unwrap(), Algorithm::RS256);
/// assert!("none".parse::<Algorithm>().is_err());
/// assert!("rs256".parse::<Algorithm>().is_err()); // names are case-sensitive
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519 (`EdDSA` with an OKP key on curve `Ed25519`; RFC 8037, deprecated by RFC 9864
    /// in favour of [`Ed25519`](Self::Ed25519), and still what most issuers send).
    EdDSA,
    /// HMAC with SHA-256 (needs an explicitly configured shared secret).
    HS256,
    /// HMAC with SHA-384 (needs an explicitly configured shared secret).
    HS384,
    /// HMAC with SHA-512 (needs an explicitly configured shared secret).
    HS512,
    /// Ed25519, by its fully-specified name (RFC 9864). Verified by the same Ed25519 keys as
    /// `EdDSA`, and never by a key of another curve.
    Ed25519,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl Algorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: &'static [Algorithm] = &[
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::Ed25519,
    ];

    /// The asymmetric algorithms, allowed by default when keys of their type are configured.
    pub const ASYMMETRIC: &'static [Algorithm] = &[
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::Ed25519,
    ];

    /// The name used in a JWS header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::Ed25519 => "Ed25519",
        }
    }

    /// Whether this is one of the HMAC (shared secret) algorithms.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    pub(crate) fn family(self) -> KeyFamily {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA | Algorithm::Ed25519 => KeyFamily::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
        }
    }

    /// The algorithm the signature is computed with: `Ed25519` is `EdDSA` on an Ed25519 key.
    /// (Only the aws-lc-rs backend asks; the rust-crypto one maps both names to `EdDSA`.)
    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    pub(crate) fn canonical(self) -> Algorithm {
        match self {
            Algorithm::Ed25519 => Algorithm::EdDSA,
            other => other,
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Parses a header's `alg` bytes without allocating.
    pub(crate) fn from_bytes(name: &[u8]) -> Option<Algorithm> {
        Some(match name {
            b"RS256" => Algorithm::RS256,
            b"RS384" => Algorithm::RS384,
            b"RS512" => Algorithm::RS512,
            b"PS256" => Algorithm::PS256,
            b"PS384" => Algorithm::PS384,
            b"PS512" => Algorithm::PS512,
            b"ES256" => Algorithm::ES256,
            b"ES384" => Algorithm::ES384,
            b"EdDSA" => Algorithm::EdDSA,
            b"HS256" => Algorithm::HS256,
            b"HS384" => Algorithm::HS384,
            b"HS512" => Algorithm::HS512,
            b"Ed25519" => Algorithm::Ed25519,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error from parsing an unknown algorithm name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported algorithm {0:?}")]
pub struct UnknownAlgorithm(String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_bytes(s.as_bytes()).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// A small set of algorithms (a bit set), cheap to copy and test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub(crate) const fn empty() -> Self {
        AlgorithmSet(0)
    }

    pub(crate) fn of(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        let mut set = AlgorithmSet::empty();
        for alg in algs {
            set.insert(alg);
        }
        set
    }

    pub(crate) fn insert(&mut self, alg: Algorithm) {
        self.0 |= alg.bit();
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn union(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 | other.0)
    }

    pub(crate) fn intersect(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .iter()
            .copied()
            .filter(move |a| self.contains(*a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_its_name() {
        for &alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
    }

    #[test]
    fn none_and_case_variants_are_not_algorithms() {
        for name in [
            "none", "None", "NONE", "nOnE", "rs256", "HS256 ", "", "ES512", "RSA1_5",
        ] {
            assert!(name.parse::<Algorithm>().is_err(), "{name}");
        }
    }

    #[test]
    fn algorithm_set_holds_what_was_inserted() {
        let set = AlgorithmSet::of([Algorithm::RS256, Algorithm::EdDSA]);
        assert!(set.contains(Algorithm::RS256));
        assert!(set.contains(Algorithm::EdDSA));
        assert!(!set.contains(Algorithm::HS256));
        assert_eq!(set.iter().count(), 2);
    }
}
