//! validate-jwt
#![deny(missing_docs)]

mod algorithm;
mod error;
pub mod keys;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use error::{ConfigError, JwtError, JwtErrorKind, KeyError, KeyErrorKind};
pub use keys::{JwksProvider, Key, KeySet, RefreshFuture, RefreshReason, StaticKeys};
