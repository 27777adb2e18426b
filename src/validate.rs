//! The request path: header, key, signature, time, issuer, audience, requirements.
//!
//! When every key source has a key set, [`Validator::check`] runs synchronously: no lock, no
//! await; the header and signature are decoded on the stack. Only a cold start or an unknown
//! `kid` (or an asynchronous requirement) takes the boxed, asynchronous path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::AlgorithmSet;
use crate::cache::TokenCache;
use crate::claims::{Claims, Requirement};
use crate::clock::Clock;
use crate::error::{JwtError, JwtErrorKind, KeyError, KeyErrorKind};
use crate::extract::TokenLocations;
use crate::issuer::IssuerRule;
use crate::keys::{JwksProvider, KeySet, MAX_CANDIDATES, RefreshReason};
use crate::response::Answers;
use crate::token::{self, MAX_HEADER_B64, MAX_SIGNATURE_B64};

/// Which `typ` header values are accepted.
#[derive(Debug, Clone)]
pub(crate) enum TypPolicy {
    /// Absent, `JWT`, `at+jwt` or `application/at+jwt` (case-insensitive).
    Default,
    /// `at+jwt` or `application/at+jwt` only (RFC 9068).
    AccessTokenOnly,
    /// These values (case-insensitive; `application/` prefix optional), and absent if `allow_absent`.
    List {
        values: Vec<Box<str>>,
        allow_absent: bool,
    },
    /// Anything.
    Any,
}

impl TypPolicy {
    fn accepts(&self, typ: Option<&str>) -> bool {
        let strip = |t: &str| -> String {
            let lower = t.to_ascii_lowercase();
            lower
                .strip_prefix("application/")
                .map(str::to_owned)
                .unwrap_or(lower)
        };
        match (self, typ) {
            (TypPolicy::Any, _) => true,
            (TypPolicy::Default, None) => true,
            (TypPolicy::Default, Some(t)) => {
                t.eq_ignore_ascii_case("JWT")
                    || t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt")
            }
            (TypPolicy::AccessTokenOnly, Some(t)) => {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            }
            (TypPolicy::AccessTokenOnly, None) => false,
            (TypPolicy::List { allow_absent, .. }, None) => *allow_absent,
            (TypPolicy::List { values, .. }, Some(t)) => {
                let t = strip(t);
                values.iter().any(|v| strip(v) == t)
            }
        }
    }
}

/// A skip predicate: requests it matches pass without a token (and without claims).
pub(crate) type Skip = dyn Fn(&http::Method, &http::Uri, &http::HeaderMap) -> bool + Send + Sync;

/// The validated configuration, shared by every clone of the layer and service.
pub(crate) struct Validator {
    pub(crate) locations: TokenLocations,
    pub(crate) providers: Vec<Arc<dyn JwksProvider>>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) typ: TypPolicy,
    pub(crate) leeway: u64,
    pub(crate) require_exp: bool,
    /// Which issuers each source (same index as `providers`) signs for: the one issuer rule.
    pub(crate) issuer_rule: IssuerRule,
    pub(crate) audiences: Vec<Box<str>>,
    pub(crate) any_audience: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) requirement: Option<Requirement>,
    pub(crate) requirement_is_async: bool,
    pub(crate) wanted: token::Wanted,
    pub(crate) required_scopes: Option<String>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) allow_anonymous: bool,
    pub(crate) skip: Option<Arc<Skip>>,
    pub(crate) answers: Answers,
    pub(crate) key_wait: Duration,
    /// Tells this layer's claims from another's (see [`Claims`]'s layer id).
    pub(crate) id: u64,
    /// The verified-token cache, when turned on.
    pub(crate) token_cache: Option<TokenCache>,
}

/// What the synchronous path found.
pub(crate) enum Check {
    /// Valid: hand these claims to the service.
    Valid(Claims),
    /// No token, and none needed (optional auth or a skipped request).
    Anonymous,
    /// Refused.
    Invalid(JwtError),
    /// Needs keys or an asynchronous requirement: finish on the slow path.
    Pending(PendingCheck),
}

/// The boxed slow path.
pub(crate) type PendingCheck =
    Pin<Box<dyn Future<Output = Result<Option<Claims>, JwtError>> + Send>>;

pub(crate) enum Step {
    Done(Claims),
    Refresh(RefreshReason),
}

impl Validator {
    /// Checks a request's token. Synchronous unless keys or an async requirement are needed.
    pub(crate) fn check<B>(self: &Arc<Self>, request: &http::Request<B>) -> Check {
        if let Some(skip) = &self.skip
            && skip(request.method(), request.uri(), request.headers())
        {
            return Check::Anonymous;
        }
        let token = match self.locations.extract(request.headers(), request.uri()) {
            Ok(Some(token)) => token,
            Ok(None) if self.allow_anonymous => return Check::Anonymous,
            Ok(None) => return Check::Invalid(JwtError::new(JwtErrorKind::Missing)),
            Err(e) => return Check::Invalid(e),
        };
        match self.verify_maybe_cached(&token) {
            Ok(Step::Done(claims)) if !self.requirement_is_async => Check::Valid(claims),
            Ok(Step::Done(claims)) => {
                let this = self.clone();
                Check::Pending(Box::pin(async move {
                    this.finish_async(claims).await.map(Some)
                }))
            }
            Ok(Step::Refresh(reason)) => {
                let this = self.clone();
                let token = token.into_owned();
                Check::Pending(Box::pin(async move {
                    this.validate_after_refresh(token, reason).await.map(Some)
                }))
            }
            Err(e) => Check::Invalid(e),
        }
    }

    /// Validates a token from anywhere (not only a request), waiting for keys if needed.
    pub(crate) async fn validate_token(self: Arc<Self>, token: &[u8]) -> Result<Claims, JwtError> {
        match self.verify_maybe_cached(token)? {
            Step::Done(claims) => self.finish_async(claims).await,
            Step::Refresh(reason) => self.validate_after_refresh(token.to_vec(), reason).await,
        }
    }

    async fn finish_async(&self, claims: Claims) -> Result<Claims, JwtError> {
        if let Some(req) = self
            .requirement
            .as_ref()
            .filter(|_| self.requirement_is_async)
        {
            req.check_async(claims.clone()).await.map_err(|d| {
                JwtError::insufficient(d.reason().to_owned(), self.required_scopes.clone())
            })?;
        }
        Ok(claims)
    }

    async fn validate_after_refresh(
        self: Arc<Self>,
        token: Vec<u8>,
        reason: RefreshReason,
    ) -> Result<Claims, JwtError> {
        let mut last_error: Option<KeyError> = None;
        let refreshes: Vec<_> = self
            .providers
            .iter()
            .map(|p| p.refresh(reason.clone()))
            .collect();
        // Every refresh progresses on its own (the trait's contract), so waiting for them in turn
        // against one deadline waits for them together: at most `key_wait` in all.
        let deadline = tokio::time::Instant::now() + self.key_wait;
        for refresh in refreshes {
            match tokio::time::timeout_at(deadline, refresh).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => last_error = Some(e),
                Err(_) => {
                    last_error = Some(KeyError::new(
                        KeyErrorKind::Timeout,
                        "timed out waiting for the key set",
                    ))
                }
            }
        }
        let retried = match &self.token_cache {
            Some(cache) => cache.verify_after_refresh(&self, &token),
            None => self.verify(&token, false),
        };
        match retried {
            Ok(Step::Done(claims)) => self.finish_async(claims).await,
            Ok(Step::Refresh(_)) => Err(match last_error {
                Some(e) => JwtError::keys_unavailable(e),
                None => JwtError::new(JwtErrorKind::UnknownKey),
            }),
            Err(e) => Err(e),
        }
    }

    /// [`verify`](Self::verify) through the verified-token cache when it is on.
    #[inline]
    fn verify_maybe_cached(&self, token: &[u8]) -> Result<Step, JwtError> {
        match &self.token_cache {
            Some(cache) => cache.verify(self, token),
            None => self.verify(token, true),
        }
    }

    /// The synchronous core. `may_refresh` is false on the retry after a refresh.
    pub(crate) fn verify(&self, token: &[u8], may_refresh: bool) -> Result<Step, JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(JwtError::new(JwtErrorKind::TooLarge));
        }
        let seg = token::split(token)?;

        // Header, decoded on the stack when it fits (nearly always), on the heap beyond: only
        // the token limit above bounds it (an `x5c` chain makes headers of several KiB).
        let mut header_buf = token::stack_buffer();
        let header_heap: Vec<u8>;
        let header_json: &[u8] = if seg.header.len() <= MAX_HEADER_B64 {
            token::b64_stack(seg.header, &mut header_buf)
                .ok_or_else(|| token::malformed("the header is not canonical base64url"))?
        } else {
            header_heap = token::b64_vec(seg.header)
                .ok_or_else(|| token::malformed("the header is not canonical base64url"))?;
            &header_heap
        };
        let (header, alg) = token::parse_header(header_json)?;
        if !self.algorithms.contains(alg) {
            return Err(JwtError::with_detail(
                JwtErrorKind::UnsupportedAlgorithm,
                "`alg` is not on the allow-list",
            ));
        }
        if !self.typ.accepts(header.typ.as_deref()) {
            return Err(JwtError::with_detail(
                JwtErrorKind::InvalidHeader,
                "`typ` is not accepted",
            ));
        }

        // Signature, decoded on the stack.
        if seg.signature.is_empty() {
            return Err(JwtError::with_detail(
                JwtErrorKind::InvalidSignature,
                "no signature",
            ));
        }
        if seg.signature.len() > MAX_SIGNATURE_B64 {
            return Err(token::malformed("the signature is too large"));
        }
        let mut sig_buf = token::stack_buffer();
        let signature = token::b64_stack(seg.signature, &mut sig_buf)
            .ok_or_else(|| token::malformed("the signature is not canonical base64url"))?;

        // Key lookup and signature: at most `MAX_CANDIDATES` keys are tried, over all sources.
        let kid = header.kid.as_deref();
        let mut cold = false;
        let mut budget = MAX_CANDIDATES;
        // The source, key set and key that verified the signature.
        let mut verified: Option<(usize, Arc<KeySet>, usize)> = None;
        for (source, provider) in self.providers.iter().enumerate() {
            let Some(set) = provider.current() else {
                cold = true;
                continue;
            };
            if let Some(key) = set.verify(kid, alg, seg.signing_input, signature, &mut budget) {
                verified = Some((source, set, key));
                break;
            }
        }
        let tried = budget < MAX_CANDIDATES;
        let Some((source, set, key)) = verified else {
            // A source without keys yet may hold the token's key: wait for it (unless a key
            // with the token's own `kid` already refused the signature).
            if cold && !(tried && kid.is_some()) {
                return Ok(Step::Refresh(RefreshReason::NoKeys));
            }
            if tried {
                return Err(JwtError::new(JwtErrorKind::InvalidSignature));
            }
            // Only a `kid` the sets do not hold asks for fresh keys (rate-limited, and
            // remembered by the provider); a token without `kid` never does: it can name no
            // key to look for, so any client could otherwise make every request a refetch.
            return match kid {
                Some(kid) if may_refresh => {
                    Ok(Step::Refresh(RefreshReason::UnknownKid(kid.to_owned())))
                }
                _ => Err(JwtError::new(JwtErrorKind::UnknownKey)),
            };
        };

        // Claims.
        let payload = token::b64_vec(seg.payload)
            .ok_or_else(|| token::malformed("the payload is not canonical base64url"))?;
        let registered = token::parse_claims(payload, &self.wanted)?;
        self.check_time(&registered)?;
        // The one issuer rule (src/issuer.rs), for the key that verified the signature.
        let key = set
            .key_at(key)
            .ok_or_else(|| JwtError::new(JwtErrorKind::InvalidSignature))?;
        self.issuer_rule.check(source, &set, key, &registered)?;
        self.check_audience(&registered)?;
        let claims = Claims::new(registered, self.id);
        self.check_requirement(&claims)?;
        Ok(Step::Done(claims))
    }

    /// The layer's synchronous requirements (the asynchronous ones run in `finish_async`).
    #[inline]
    pub(crate) fn check_requirement(&self, claims: &Claims) -> Result<(), JwtError> {
        match &self.requirement {
            Some(req) => req.check(claims).map_err(|d| {
                JwtError::insufficient(d.reason().to_owned(), self.required_scopes.clone())
            }),
            None => Ok(()),
        }
    }

    fn check_time(&self, r: &token::Registered) -> Result<(), JwtError> {
        self.check_times_at(self.clock.now(), r.exp, r.nbf)
    }

    /// `exp` and `nbf` at `now`, with the leeway.
    pub(crate) fn check_times_at(
        &self,
        now: u64,
        exp: Option<f64>,
        nbf: Option<f64>,
    ) -> Result<(), JwtError> {
        let now = now as f64;
        let leeway = self.leeway as f64;
        match exp {
            Some(exp) if now - leeway >= exp => return Err(JwtError::new(JwtErrorKind::Expired)),
            Some(_) => {}
            None if self.require_exp => {
                return Err(JwtError::with_detail(
                    JwtErrorKind::InvalidClaims,
                    "`exp` is missing",
                ));
            }
            None => {}
        }
        if let Some(nbf) = nbf
            && now + leeway < nbf
        {
            return Err(JwtError::new(JwtErrorKind::NotYetValid));
        }
        Ok(())
    }

    fn check_audience(&self, r: &token::Registered) -> Result<(), JwtError> {
        if self.any_audience {
            return Ok(());
        }
        if r.audiences().next().is_none() {
            return Err(JwtError::with_detail(
                JwtErrorKind::InvalidAudience,
                "`aud` is missing or empty",
            ));
        }
        if r.audiences()
            .any(|a| self.audiences.iter().any(|w| **w == *a))
        {
            return Ok(());
        }
        Err(JwtError::with_detail(
            JwtErrorKind::InvalidAudience,
            format!(
                "expected audience {}, found {}",
                self.audiences.join(" or "),
                r.audiences()
                    .map(|a| a.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}
