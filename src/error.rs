//! Errors: [`ConfigError`] from the builder, [`JwtError`] for a refused request and
//! [`KeyError`] from key providers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::issuer::IssuerLabel;

/// A mistake in the configuration, reported by [`ValidateJwtBuilder::build`](crate::ValidateJwtBuilder::build)
/// rather than at the first request.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither an audience nor the explicit opt-out `danger_accept_any_audience` was configured.
    #[error(
        "no audience decision: call `add_audience` (the API's Application ID URI or client id) or, if you really mean it, `danger_accept_any_audience`"
    )]
    NoAudienceDecision,
    /// No key source (static keys, JWKS URL, discovery URL or provider) was configured.
    #[error(
        "no key source: call `add_discovery_url`, `add_jwks_url`, `add_keys` or `add_key_source`"
    )]
    NoKeySource,
    /// A key source with no issuer of its own (a bare JWKS URL or static keys) was left
    /// without one: no `add_issuer` for it (with several sources, the listed issuers all
    /// belong to other sources), and no opt-out `danger_accept_any_issuer`.
    #[error(
        "no issuer decision: a key source (a JWKS URL, static keys or a provider) names no issuer; bind it where it is configured (`StaticKeys::add_issuer`, `RemoteJwksBuilder::add_issuer`) or call the builder's `add_issuer`, or, if you really mean it, `danger_accept_any_issuer`"
    )]
    NoIssuerDecision,
    /// An issuer given to `add_issuer` that no key source could ever accept: the sources all
    /// name issuers of their own, and none of them is this one.
    #[error("issuer {issuer:?} can never be accepted: {reason}")]
    UnreachableIssuer {
        /// The issuer as given.
        issuer: String,
        /// Why, and what to call instead.
        reason: String,
    },
    /// The algorithm allow-list ended up empty, or it names no algorithm the configured keys support.
    #[error("no usable algorithm: {0}")]
    NoAlgorithm(String),
    /// An HMAC algorithm was allowed but no shared secret is configured (asymmetric keys never
    /// become HMAC secrets).
    #[error(
        "algorithm {0} needs a shared secret (`StaticKeys::add_hmac_secret`); asymmetric keys never verify HMAC tokens"
    )]
    HmacWithoutSecret(&'static str),
    /// A URL could not be parsed or is not acceptable (for example plain `http` to a
    /// non-loopback host without `danger_allow_http`).
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A static key could not be parsed (the cause is the key's [`KeyError`]).
    #[error("invalid key: {0}")]
    InvalidKey(#[source] KeyError),
    /// A header name, scheme, cookie or query parameter name is not valid.
    #[error("invalid token location: {0}")]
    InvalidTokenLocation(String),
    /// The failure status is not a 4xx status or the message is not a valid header value.
    #[error("invalid failure answer: {0}")]
    InvalidFailureAnswer(String),
    /// A requirement can never be met (for example an empty list of scopes).
    #[error("invalid requirement: {0}")]
    InvalidRequirement(String),
    /// A setting is out of range, or contradicts another.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The method that set it (`with_leeway`, `RemoteJwksBuilder::with_timeout`, …).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The default HTTP client for key endpoints could not be built (the cause is kept as the
    /// error's source).
    #[error("the HTTP client for key endpoints could not be built: {0}")]
    HttpClient(#[source] KeyError),
}

/// What went wrong with a request's token. Each kind maps to one answer — status, RFC 6750
/// `error` code, JSON body `error`, gRPC status and default description — kept in one table in
/// the code and printed in the [crate docs' answers table](crate#answers); each variant notes
/// its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// The request carries no token. Answer: 401, `WWW-Authenticate: Bearer` without `error`.
    Missing,
    /// The request carries a token in more than one place, an empty bearer value, or an
    /// unreadable `Authorization` header. Answer: 400 `invalid_request`.
    InvalidRequest,
    /// The token is larger than the configured limit. Answer: 401 `invalid_token`.
    TooLarge,
    /// The token is not three segments of canonical base64url carrying JSON. Answer: 401 `invalid_token`.
    Malformed,
    /// The token is an encrypted JWE (five segments); only signed tokens are accepted.
    /// Answer: 401 `invalid_token`.
    Encrypted,
    /// The token's `alg` is `none`, unknown, or not on the allow-list. Answer: 401 `invalid_token`.
    UnsupportedAlgorithm,
    /// The header's `typ` is not acceptable, or `crit` names an extension this crate does not
    /// understand. Answer: 401 `invalid_token`.
    InvalidHeader,
    /// No configured key matches the token's `kid` and algorithm (even after a refresh).
    /// Answer: 401 `invalid_token`.
    UnknownKey,
    /// The signature does not verify. Answer: 401 `invalid_token`.
    InvalidSignature,
    /// The token has expired (`exp` plus leeway is in the past). Answer: 401 `invalid_token`.
    Expired,
    /// The token is not valid yet (`nbf` minus leeway is in the future). Answer: 401 `invalid_token`.
    NotYetValid,
    /// A registered claim is missing or has the wrong type (`exp` missing, `exp` a string, …).
    /// Answer: 401 `invalid_token`.
    InvalidClaims,
    /// The issuer is not accepted (or not the issuer of the key that signed the token).
    /// Answer: 401 `invalid_token`.
    InvalidIssuer,
    /// None of the token's audiences is accepted. Answer: 401 `invalid_token`.
    InvalidAudience,
    /// The token is authentic but lacks a required scope, role or claim.
    /// Answer: 403 `insufficient_scope`.
    InsufficientScope,
    /// No key set is available (the key endpoint has failed since start).
    /// Answer: 503 with `Retry-After`.
    KeysUnavailable,
    /// The server is set up wrongly, not the request: a [`RequireClaimsLayer`](crate::RequireClaimsLayer)
    /// reached with no claims verified by the [`ValidateJwtLayer`](crate::ValidateJwtLayer) it was
    /// made from (that layer is missing outside it, or another layer verified the claims). The
    /// detail names the fix. Answer: 500 (gRPC `INTERNAL`), no `WWW-Authenticate`, logged as an error.
    Misconfigured,
    /// The DPoP proof is missing, repeated, malformed, signed badly, for another method or
    /// URL, too old or too new, for another token (`ath`), or replayed (RFC 9449 §4.3).
    /// Answer: 401, `WWW-Authenticate: DPoP error="invalid_dpop_proof"`.
    InvalidDpopProof,
    /// The DPoP proof lacks the server's current nonce (RFC 9449 §8). Answer: 401,
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a fresh `DPoP-Nonce`.
    UseDpopNonce,
    /// The token's sender binding is not proven: a DPoP-bound token under `Bearer`, a proof
    /// by another key than `cnf.jkt`, an unbound token under `DPoP` (or under `Bearer` where
    /// DPoP is required), another client certificate than `cnf["x5t#S256"]`.
    /// Answer: 401 `invalid_token`.
    InvalidBinding,
    /// The DPoP replay store failed (and the layer fails closed). Answer: 503 with `Retry-After`.
    ReplayStoreUnavailable,
}

impl JwtErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: &'static [JwtErrorKind] = &[
        Self::Missing,
        Self::InvalidRequest,
        Self::TooLarge,
        Self::Malformed,
        Self::Encrypted,
        Self::UnsupportedAlgorithm,
        Self::InvalidHeader,
        Self::UnknownKey,
        Self::InvalidSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::InvalidClaims,
        Self::InvalidIssuer,
        Self::InvalidAudience,
        Self::InsufficientScope,
        Self::KeysUnavailable,
        Self::Misconfigured,
        Self::InvalidDpopProof,
        Self::UseDpopNonce,
        Self::InvalidBinding,
        Self::ReplayStoreUnavailable,
    ];

    /// A short, stable, lowercase name (`"expired"`, `"invalid_signature"`, …) for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::InvalidRequest => "invalid_request",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Encrypted => "encrypted",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::InvalidHeader => "invalid_header",
            Self::UnknownKey => "unknown_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InvalidClaims => "invalid_claims",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::InsufficientScope => "insufficient_scope",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Misconfigured => "misconfigured",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidBinding => "invalid_binding",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
        }
    }

    /// The default `error_description` (from the answers table, [`answer_of`]).
    pub(crate) fn description(self) -> &'static str {
        answer_of(self).description
    }
}

/// How one [`JwtErrorKind`] is answered, before the builder's overrides.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindAnswer {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The RFC 6750 `error` code of the challenge, when the kind has one.
    pub(crate) code: Option<&'static str>,
    /// The JSON body's `error`.
    pub(crate) body_error: &'static str,
    /// The gRPC status code of a gRPC request's answer.
    pub(crate) grpc: u8,
    /// The default `error_description`: short, safe, never derived from the token.
    pub(crate) description: &'static str,
}

/// **The answers table**: every kind's status, RFC 6750 code, body `error`, gRPC code and
/// description, in one place, beside the kinds (`response.rs` builds the answers from it; the
/// crate docs' "Answers" section prints it).
pub(crate) const fn answer_of(kind: JwtErrorKind) -> KindAnswer {
    use JwtErrorKind as K;
    const fn invalid_token(description: &'static str) -> KindAnswer {
        KindAnswer {
            status: StatusCode::UNAUTHORIZED,
            code: Some("invalid_token"),
            body_error: "invalid_token",
            grpc: 16,
            description,
        }
    }
    match kind {
        K::Missing => KindAnswer {
            status: StatusCode::UNAUTHORIZED,
            code: None,
            body_error: "unauthorized",
            grpc: 16,
            description: "no access token",
        },
        K::InvalidRequest => KindAnswer {
            status: StatusCode::BAD_REQUEST,
            code: Some("invalid_request"),
            body_error: "invalid_request",
            grpc: 3,
            description: "the request carries a malformed or repeated access token",
        },
        K::TooLarge => invalid_token("the token is too large"),
        K::Malformed => invalid_token("the token is malformed"),
        K::Encrypted => invalid_token("encrypted tokens are not accepted"),
        K::UnsupportedAlgorithm => invalid_token("the token's algorithm is not accepted"),
        K::InvalidHeader => invalid_token("the token's header is not accepted"),
        K::UnknownKey => invalid_token("the token's signing key is unknown"),
        K::InvalidSignature => invalid_token("the token's signature is invalid"),
        K::Expired => invalid_token("the token has expired"),
        K::NotYetValid => invalid_token("the token is not valid yet"),
        K::InvalidClaims => invalid_token("the token's claims are invalid"),
        K::InvalidIssuer => invalid_token("the token's issuer is not accepted"),
        K::InvalidAudience => invalid_token("the token's audience is not accepted"),
        K::InsufficientScope => KindAnswer {
            status: StatusCode::FORBIDDEN,
            code: Some("insufficient_scope"),
            body_error: "insufficient_scope",
            grpc: 7,
            description: "the token lacks a required scope or claim",
        },
        K::KeysUnavailable => KindAnswer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: None,
            body_error: "temporarily_unavailable",
            grpc: 14,
            description: "signing keys are unavailable; try again later",
        },
        K::Misconfigured => KindAnswer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            body_error: "server_error",
            grpc: 13,
            description: "the server's token validation is misconfigured",
        },
        K::InvalidDpopProof => KindAnswer {
            status: StatusCode::UNAUTHORIZED,
            code: Some("invalid_dpop_proof"),
            body_error: "invalid_dpop_proof",
            grpc: 16,
            description: "the proof of possession is invalid",
        },
        K::UseDpopNonce => KindAnswer {
            status: StatusCode::UNAUTHORIZED,
            code: Some("use_dpop_nonce"),
            body_error: "use_dpop_nonce",
            grpc: 16,
            description: "the proof of possession must carry the server's nonce",
        },
        K::InvalidBinding => invalid_token("the token's sender binding is not proven"),
        K::ReplayStoreUnavailable => KindAnswer {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: None,
            body_error: "temporarily_unavailable",
            grpc: 14,
            description: "replay protection is unavailable; try again later",
        },
    }
}

impl fmt::Display for JwtErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused. Opaque: read [`kind`](Self::kind); `Display` is lowercase, for logs,
/// and never contains the token or key material.
///
/// The error is attached to the rejection response's extensions, so logging middleware
/// outside the layer can read it:
///
/// ```
/// # use validate_jwt::{JwtError, JwtErrorKind};
/// # fn log(response: &http::Response<()>) {
/// if let Some(err) = response.extensions().get::<JwtError>() {
///     eprintln!("refused: {err} ({})", err.kind());
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JwtError {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    kind: JwtErrorKind,
    detail: Option<Cow<'static, str>>,
    required_scopes: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    /// Refused under the `DPoP` scheme: answered with the DPoP challenge.
    dpop: bool,
    /// The issuer the token was verified for, when the refusal came after the issuer check and
    /// the layer labels its metrics by issuer.
    issuer: Option<IssuerLabel>,
}

impl JwtError {
    // The constructors are cold and out of line: a refusal is the rare path, and keeping their
    // code out of the request path keeps that path small in the instruction cache.
    #[cold]
    #[inline(never)]
    pub(crate) fn new(kind: JwtErrorKind) -> Self {
        JwtError {
            inner: Arc::new(Inner {
                kind,
                detail: None,
                required_scopes: None,
                source: None,
                dpop: false,
                issuer: None,
            }),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn with_detail(kind: JwtErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        JwtError {
            inner: Arc::new(Inner {
                kind,
                detail: Some(detail.into()),
                required_scopes: None,
                source: None,
                dpop: false,
                issuer: None,
            }),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn insufficient(detail: String, required_scopes: Option<String>) -> Self {
        JwtError {
            inner: Arc::new(Inner {
                kind: JwtErrorKind::InsufficientScope,
                detail: Some(detail.into()),
                required_scopes,
                source: None,
                dpop: false,
                issuer: None,
            }),
        }
    }

    pub(crate) fn keys_unavailable(source: KeyError) -> Self {
        JwtError {
            inner: Arc::new(Inner {
                kind: JwtErrorKind::KeysUnavailable,
                detail: None,
                required_scopes: None,
                source: Some(Arc::new(source)),
                dpop: false,
                issuer: None,
            }),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn replay_store_unavailable(source: crate::sender::ReplayStoreError) -> Self {
        JwtError {
            inner: Arc::new(Inner {
                kind: JwtErrorKind::ReplayStoreUnavailable,
                detail: Some(source.to_string().into()),
                required_scopes: None,
                source: Some(Arc::new(source)),
                dpop: true,
                issuer: None,
            }),
        }
    }

    /// The same refusal, answered with the DPoP challenge (the request used the `DPoP` scheme).
    #[cold]
    #[inline(never)]
    pub(crate) fn under_dpop(self) -> Self {
        if self.inner.dpop {
            return self;
        }
        let mut inner = Inner::clone(&self.inner);
        inner.dpop = true;
        JwtError {
            inner: Arc::new(inner),
        }
    }

    /// The same refusal, of a token verified for `issuer` (the metrics' `issuer` label; `None`
    /// leaves it as it is).
    #[cold]
    #[inline(never)]
    pub(crate) fn for_issuer(self, issuer: Option<IssuerLabel>) -> Self {
        let Some(issuer) = issuer else {
            return self;
        };
        let mut inner = Inner::clone(&self.inner);
        inner.issuer = Some(issuer);
        JwtError {
            inner: Arc::new(inner),
        }
    }

    /// The issuer the refused token was verified for (see [`for_issuer`](Self::for_issuer)).
    pub(crate) fn issuer_label(&self) -> Option<&IssuerLabel> {
        self.inner.issuer.as_ref()
    }

    /// Whether the refusal is answered with the DPoP challenge.
    pub(crate) fn is_under_dpop(&self) -> bool {
        self.inner.dpop
            || matches!(
                self.inner.kind,
                JwtErrorKind::InvalidDpopProof | JwtErrorKind::UseDpopNonce
            )
    }

    /// What went wrong.
    pub fn kind(&self) -> JwtErrorKind {
        self.inner.kind
    }

    /// A more specific, safe explanation for logs (for example which claim is missing or which
    /// audience was expected); `None` when the kind says it all.
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// For [`JwtErrorKind::InsufficientScope`]: the space-separated scopes the route requires,
    /// as sent in the `scope` attribute of `WWW-Authenticate`.
    pub fn required_scopes(&self) -> Option<&str> {
        self.inner.required_scopes.as_deref()
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.description())?;
        if let Some(detail) = &self.inner.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JwtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What went wrong while getting keys, from a key source.
///
/// Two errors are equal when their kind and message are (the source is not compared).
#[derive(Debug, Clone)]
pub struct KeyError {
    kind: KeyErrorKind,
    message: Cow<'static, str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for KeyError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for KeyError {}

/// The category of a [`KeyError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyErrorKind {
    /// The request to the key or discovery endpoint timed out.
    Timeout,
    /// The connection failed (refused, reset, TLS, DNS, too many redirects).
    Connect,
    /// The endpoint answered with a non-success status.
    Status,
    /// The response body is larger than the configured cap.
    TooLarge,
    /// The document is not valid JSON or lacks a required member.
    InvalidJson,
    /// The discovery document's `issuer` is not the issuer its URL was derived from.
    IssuerMismatch,
    /// The key set contains no usable key.
    NoUsableKeys,
    /// A refresh was not attempted because one happened too recently (rate limit).
    RateLimited,
    /// A key could not be parsed.
    InvalidKey,
    /// The URL is not acceptable (plain http to a non-loopback host, bad syntax).
    InvalidUrl,
    /// A user-provided key source failed.
    Other,
}

impl KeyError {
    /// A new error of `kind` with a message.
    ///
    /// ```
    /// use validate_jwt::{KeyError, KeyErrorKind};
    /// let err = KeyError::new(KeyErrorKind::Other, "vault sealed");
    /// assert_eq!(err.kind(), KeyErrorKind::Other);
    /// assert_eq!(err.to_string(), "vault sealed");
    /// ```
    pub fn new(kind: KeyErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        KeyError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attach the underlying error, reachable through [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The category of the failure.
    pub fn kind(&self) -> KeyErrorKind {
        self.kind
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
