//! The request path: header, key, signature, time, issuer, audience, requirements.
//!
//! [`Validator`] verifies token bytes and knows nothing of HTTP (the layer extracts the token
//! and answers). When every key source has a key set, [`Validator::check`] runs synchronously:
//! no lock, no await; the header and signature are decoded on the stack. Only a cold start or
//! an unknown `kid` (or an asynchronous requirement) takes the boxed, asynchronous path.
//!
//! (Long because it is the request path's verification in the order it runs, read top to
//! bottom; splitting it would scatter one sequence.)

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::AlgorithmSet;
use crate::cache::{Miss, TokenCache, TokenCacheStats};
use crate::claims::{Claims, Registered, Requirement, Wanted, parse_claims};
use crate::clock::Clock;
use crate::error::{JwtError, JwtErrorKind, KeyError, KeyErrorKind};
use crate::issuer::{IssuerLabel, IssuerPattern, IssuerRule};
use crate::keys::{KeySet, KeySource, MAX_CANDIDATES, RefreshReason};
use crate::sender::BindingRule;
use crate::token::{self, MAX_HEADER_B64, MAX_SIGNATURE_B64, Segments};

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
    #[inline]
    fn accepts(&self, typ: Option<&str>) -> bool {
        match (self, typ) {
            (TypPolicy::Default, None) | (TypPolicy::Any, _) => true,
            (TypPolicy::Default, Some(t)) => {
                t.eq_ignore_ascii_case("JWT")
                    || t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt")
            }
            _ => self.accepts_otherwise(typ),
        }
    }

    /// What [`accepts`](Self::accepts) accepts, in words (for `explain`).
    pub(crate) fn describe(&self) -> String {
        match self {
            TypPolicy::Default => "absent, JWT, at+jwt or application/at+jwt".to_owned(),
            TypPolicy::AccessTokenOnly => {
                "at+jwt or application/at+jwt (require_access_token_typ)".to_owned()
            }
            TypPolicy::List {
                values,
                allow_absent,
            } => format!(
                "{}{}",
                values.join(", "),
                match allow_absent {
                    true => ", or absent",
                    false => "",
                }
            ),
            TypPolicy::Any => "any (danger_accept_any_typ)".to_owned(),
        }
    }

    #[inline(never)]
    fn accepts_otherwise(&self, typ: Option<&str>) -> bool {
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

/// What a [`Validator`] is built from: every verification rule, checked by the builder.
pub(crate) struct Rules {
    pub(crate) providers: Vec<Arc<dyn KeySource>>,
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
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key_wait: Duration,
    /// The verified-token cache's capacity (0: off).
    pub(crate) token_cache: usize,
    /// Whether verified claims and later refusals carry the issuer they were verified for
    /// (the metrics' `issuer` label).
    pub(crate) label_issuers: bool,
    /// What a token's `cnf` may say under this configuration.
    pub(crate) binding: BindingRule,
    /// Top-level claims read after validation (forwarded to headers), captured in the one parse.
    pub(crate) also_read: Vec<Box<str>>,
}

/// Verifies token bytes: header, key, signature, time, issuer, audience, requirements. Knows
/// nothing of HTTP; shared by every clone of the layer and service.
pub(crate) struct Validator {
    providers: Vec<Arc<dyn KeySource>>,
    algorithms: AlgorithmSet,
    typ: TypPolicy,
    leeway: u64,
    require_exp: bool,
    issuer_rule: IssuerRule,
    audiences: Vec<Box<str>>,
    any_audience: bool,
    max_token_bytes: usize,
    requirement: Option<Requirement>,
    requirement_is_async: bool,
    /// The top-level members the requirements read, captured during the one payload parse.
    wanted: Wanted,
    required_scopes: Option<String>,
    clock: Arc<dyn Clock>,
    key_wait: Duration,
    /// Tells this layer's claims from another's (see [`Claims`]'s layer id).
    id: u64,
    token_cache: Option<TokenCache>,
    label_issuers: bool,
    binding: BindingRule,
}

/// What the synchronous path found.
pub(crate) enum Verdict {
    /// Valid: hand these claims to the service.
    Valid(Claims),
    /// Refused.
    Invalid(JwtError),
    /// Needs keys or an asynchronous requirement: finish on the slow path.
    Pending(PendingCheck),
}

/// Which key verified the signature, or why none did ([`Validator::lookup`]).
pub(crate) struct Lookup {
    /// The source, key set and key (its index in the set) that verified the signature.
    pub(crate) verified: Option<(usize, Arc<KeySet>, usize)>,
    /// A source had no key set yet.
    pub(crate) cold: bool,
    /// At least one key was tried.
    pub(crate) tried: bool,
}

/// The boxed slow path.
pub(crate) type PendingCheck =
    Pin<Box<dyn Future<Output = Result<Option<Claims>, JwtError>> + Send>>;

pub(crate) enum Step {
    Done(Claims),
    Refresh(RefreshReason),
}

/// A fresh layer id (never 0, the id of claims no layer verified).
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Validator {
    /// A validator for these rules; the requirement's names are gathered here, once.
    pub(crate) fn new(rules: Rules) -> Self {
        let mut wanted = Vec::new();
        let mut scopes = Vec::new();
        if let Some(r) = &rules.requirement {
            r.claim_names(&mut wanted);
            r.scope_names(&mut scopes);
        }
        for name in rules.also_read {
            if !wanted.contains(&name) {
                wanted.push(name);
            }
        }
        Validator {
            providers: rules.providers,
            algorithms: rules.algorithms,
            typ: rules.typ,
            leeway: rules.leeway,
            require_exp: rules.require_exp,
            issuer_rule: rules.issuer_rule,
            audiences: rules.audiences,
            any_audience: rules.any_audience,
            max_token_bytes: rules.max_token_bytes,
            requirement_is_async: rules
                .requirement
                .as_ref()
                .is_some_and(Requirement::is_async),
            requirement: rules.requirement,
            wanted: wanted.into(),
            required_scopes: (!scopes.is_empty()).then(|| scopes.join(" ")),
            clock: rules.clock,
            key_wait: rules.key_wait,
            id: next_id(),
            token_cache: TokenCache::new(rules.token_cache),
            label_issuers: rules.label_issuers,
            binding: rules.binding,
        }
    }

    /// The key sources, in configuration order.
    pub(crate) fn providers(&self) -> &[Arc<dyn KeySource>] {
        &self.providers
    }

    /// The binding rule of the token alone (shared with `explain`).
    pub(crate) fn binding_rule(&self) -> &BindingRule {
        &self.binding
    }

    /// Whether the request metrics carry the `issuer` label.
    pub(crate) fn label_issuers(&self) -> bool {
        self.label_issuers
    }

    /// This validator's id, carried by the claims it verifies.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The verified-token cache's counters, when it is on.
    pub(crate) fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.token_cache.as_ref().map(TokenCache::stats)
    }

    /// Checks a token. Synchronous unless keys or an asynchronous requirement are needed.
    pub(crate) fn check(self: &Arc<Self>, token: Cow<'_, [u8]>) -> Verdict {
        match self.verify_maybe_cached(&token) {
            Ok(Step::Done(claims)) if !self.requirement_is_async => Verdict::Valid(claims),
            Ok(Step::Done(claims)) => {
                let this = self.clone();
                Verdict::Pending(Box::pin(async move {
                    this.finish_async(claims).await.map(Some)
                }))
            }
            Ok(Step::Refresh(reason)) => {
                let this = self.clone();
                let token = token.into_owned();
                Verdict::Pending(Box::pin(async move {
                    this.validate_after_refresh(token, reason).await.map(Some)
                }))
            }
            Err(e) => Verdict::Invalid(e),
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
                    .for_issuer(claims.issuer_label().cloned())
            })?;
        }
        Ok(claims)
    }

    async fn validate_after_refresh(
        self: Arc<Self>,
        token: Vec<u8>,
        reason: RefreshReason,
    ) -> Result<Claims, JwtError> {
        let last_error = self.refresh_keys(reason).await;
        let retried = match &self.token_cache {
            Some(cache) => {
                let now = self.clock.now();
                self.verify_and_remember(cache, cache.miss(&token), &token, false, now)
            }
            None => self.verify(&token, false),
        };
        match retried {
            Ok(Step::Done(claims)) => self.finish_async(claims).await,
            Ok(Step::Refresh(_)) => Err(still_no_key(last_error)),
            Err(e) => Err(e),
        }
    }

    /// Asks every key source for fresh keys and waits for them together (at most `key_wait`);
    /// the last error, if a source failed or timed out. (Shared with `explain`.)
    pub(crate) async fn refresh_keys(&self, reason: RefreshReason) -> Option<KeyError> {
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
        last_error
    }

    /// [`verify`](Self::verify) through the verified-token cache when it is on. A hit skips
    /// only what cannot change for the same bytes under the same keys; the time rule and every
    /// requirement run again.
    #[inline]
    fn verify_maybe_cached(&self, token: &[u8]) -> Result<Step, JwtError> {
        let Some(cache) = &self.token_cache else {
            return self.verify(token, true);
        };
        if token.len() > self.max_token_bytes {
            return self.verify(token, true);
        }
        let now = self.clock.now();
        let fresh = |c: &Claims| {
            self.check_times_at(now, c.expires_at(), c.not_before())
                .is_ok()
        };
        match cache.lookup(token, &self.providers, &fresh) {
            Ok(claims) => {
                self.check_requirement(&claims)?;
                Ok(Step::Done(claims))
            }
            Err(miss) => self.verify_and_remember(cache, miss, token, true, now),
        }
    }

    /// [`verify`](Self::verify), remembering a success in `cache` (after a lookup missed, or on
    /// the retry after a refresh).
    fn verify_and_remember(
        &self,
        cache: &TokenCache,
        miss: Miss,
        token: &[u8],
        may_refresh: bool,
        now: u64,
    ) -> Result<Step, JwtError> {
        // Taken before the validation: a key set replaced meanwhile makes the entry stale.
        let stamps = crate::cache::stamps(&self.providers);
        let step = self.verify(token, may_refresh)?;
        if let Step::Done(claims) = &step
            && token.len() <= self.max_token_bytes
        {
            let useless_at = self.useless_at(claims);
            cache.remember(miss, token, claims.clone(), stamps, useless_at, now);
        }
        Ok(step)
    }

    /// When a token with these claims stops passing the time rule.
    fn useless_at(&self, claims: &Claims) -> f64 {
        claims
            .expires_at()
            .map_or(f64::INFINITY, |exp| exp + self.leeway as f64)
    }

    /// The synchronous core. `may_refresh` is false on the retry after a refresh.
    fn verify(&self, token: &[u8], may_refresh: bool) -> Result<Step, JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(JwtError::new(JwtErrorKind::TooLarge));
        }
        let seg = token::split(token)?;
        match self.verify_segments(&seg, may_refresh) {
            Ok(Step::Done(claims)) => Ok(Step::Done(claims)),
            // A payload with a dot never decodes, so a token with more than three segments
            // ends here, whatever failed first: say so.
            other => match token::extra_segments(&seg) {
                Some(refusal) => Err(refusal),
                None => other,
            },
        }
    }

    fn verify_segments(&self, seg: &Segments<'_>, may_refresh: bool) -> Result<Step, JwtError> {
        // Header, decoded on the stack when it fits (nearly always), on the heap beyond: only
        // the token limit above bounds it (an `x5c` chain makes headers of several KiB).
        let mut header_buf = token::stack_buffer();
        let header_heap: Vec<u8>;
        let header_json: &[u8] = if seg.header.len() <= MAX_HEADER_B64 {
            token::b64_stack(seg.header, &mut header_buf).ok_or_else(header_not_base64)?
        } else {
            header_heap = token::b64_vec(seg.header).ok_or_else(header_not_base64)?;
            &header_heap
        };
        let (header, alg) = token::parse_header(header_json)?;
        self.allow_listed(alg)?;
        self.typ_rule(header.typ.as_deref())?;

        // Signature, decoded on the stack.
        signature_segment(seg)?;
        let mut sig_buf = token::stack_buffer();
        let signature =
            token::b64_stack(seg.signature, &mut sig_buf).ok_or_else(signature_not_base64)?;

        // Key lookup and signature.
        let kid = header.kid.as_deref();
        let found = self.lookup(kid, alg, seg.signing_input, signature);
        let Some((source, set, key)) = found.verified else {
            return no_key(kid, found.cold, found.tried, may_refresh);
        };
        crate::span::answered_by(source);

        // Claims.
        let payload = token::b64_vec(seg.payload).ok_or_else(payload_not_base64)?;
        let registered = parse_claims(payload, &self.wanted)?;
        self.check_time(&registered)?;
        // The one issuer rule (src/issuer.rs), for the key that verified the signature.
        let key = set
            .key_at(key)
            .ok_or_else(|| JwtError::new(JwtErrorKind::InvalidSignature))?;
        let matched = self.issuer_rule.check(source, &set, key, &registered)?;
        // The metrics' `issuer` label, only when asked for (an `Arc` count otherwise spent).
        let issuer = match self.label_issuers {
            true => Some(matched.map_or(IssuerLabel::Any, IssuerPattern::label)),
            false => None,
        };
        if let Err(err) = self.check_audience(&registered) {
            return Err(err.for_issuer(issuer));
        }
        // The binding rule of the token alone (`cnf`, src/sender/binding.rs).
        if let Err(err) = self.binding.check(registered.cnf()) {
            return Err(err.for_issuer(issuer));
        }
        let claims = Claims::verified(registered, self.id, issuer);
        self.check_requirement(&claims)?;
        Ok(Step::Done(claims))
    }

    /// The key lookup and signature check (the request path's; `explain` runs it too): the
    /// sources in order, at most `MAX_CANDIDATES` keys tried over all of them.
    #[inline]
    pub(crate) fn lookup(
        &self,
        kid: Option<&str>,
        alg: crate::Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Lookup {
        let mut cold = false;
        let mut budget = MAX_CANDIDATES;
        let mut verified = None;
        for (source, provider) in self.providers.iter().enumerate() {
            let Some(set) = provider.current() else {
                cold = true;
                continue;
            };
            if let Some(key) = set.verify(kid, alg, signing_input, signature, &mut budget) {
                verified = Some((source, set, key));
                break;
            }
        }
        Lookup {
            verified,
            cold,
            tried: budget < MAX_CANDIDATES,
        }
    }

    /// The `alg` allow-list (the request path's rule; `explain` runs it too).
    #[inline]
    pub(crate) fn allow_listed(&self, alg: crate::Algorithm) -> Result<(), JwtError> {
        match self.algorithms.contains(alg) {
            true => Ok(()),
            false => Err(refusal(
                JwtErrorKind::UnsupportedAlgorithm,
                "`alg` is not on the allow-list",
            )),
        }
    }

    /// The `typ` rule in words (for `explain`).
    pub(crate) fn typ_accepted(&self) -> String {
        self.typ.describe()
    }

    /// The `typ` rule (the request path's rule; `explain` runs it too).
    #[inline]
    pub(crate) fn typ_rule(&self, typ: Option<&str>) -> Result<(), JwtError> {
        match self.typ.accepts(typ) {
            true => Ok(()),
            false => Err(refusal(
                JwtErrorKind::InvalidHeader,
                "`typ` is not accepted",
            )),
        }
    }

    /// The layer's synchronous requirements (the asynchronous ones run in `finish_async`).
    #[inline]
    fn check_requirement(&self, claims: &Claims) -> Result<(), JwtError> {
        match &self.requirement {
            Some(req) => req.check(claims).map_err(|d| {
                JwtError::insufficient(d.reason().to_owned(), self.required_scopes.clone())
                    .for_issuer(claims.issuer_label().cloned())
            }),
            None => Ok(()),
        }
    }

    fn check_time(&self, r: &Registered) -> Result<(), JwtError> {
        self.check_times_at(self.clock.now(), r.exp, r.nbf)
    }

    /// `exp` and `nbf` at `now`, with the leeway.
    fn check_times_at(&self, now: u64, exp: Option<f64>, nbf: Option<f64>) -> Result<(), JwtError> {
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

    fn check_audience(&self, r: &Registered) -> Result<(), JwtError> {
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
        Err(self.audience_refusal(r))
    }

    #[cold]
    #[inline(never)]
    fn audience_refusal(&self, r: &Registered) -> JwtError {
        JwtError::with_detail(
            JwtErrorKind::InvalidAudience,
            format!(
                "expected audience {}, found {}",
                self.audiences.join(" or "),
                r.audiences()
                    .map(|a| a.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }
}

/// A refusal with its detail, built out of line.
#[cold]
#[inline(never)]
fn refusal(kind: JwtErrorKind, detail: &'static str) -> JwtError {
    JwtError::with_detail(kind, detail)
}

/// The signature segment's shape: present, and not beyond the largest signature (the request
/// path's rule; `explain` runs it too).
#[inline]
fn signature_segment(seg: &Segments<'_>) -> Result<(), JwtError> {
    if seg.signature.is_empty() {
        return Err(refusal(JwtErrorKind::InvalidSignature, "no signature"));
    }
    if seg.signature.len() > MAX_SIGNATURE_B64 {
        return Err(token::malformed("the signature is too large"));
    }
    Ok(())
}

#[cold]
fn signature_not_base64() -> JwtError {
    token::malformed("the signature is not canonical base64url")
}

/// The refusal of a header that is not canonical base64url (`explain` shares it).
#[cold]
pub(crate) fn header_not_base64() -> JwtError {
    token::malformed("the header is not canonical base64url")
}

/// The refusal of a payload that is not canonical base64url (`explain` shares it).
#[cold]
pub(crate) fn payload_not_base64() -> JwtError {
    token::malformed("the payload is not canonical base64url")
}

/// What follows when no key verified the signature: a refresh, or the refusal.
#[cold]
#[inline(never)]
fn no_key(kid: Option<&str>, cold: bool, tried: bool, may_refresh: bool) -> Result<Step, JwtError> {
    // A source without keys yet may hold the token's key: wait for it (unless a key with the
    // token's own `kid` already refused the signature).
    if cold && !(tried && kid.is_some()) {
        return Ok(Step::Refresh(RefreshReason::NoKeys));
    }
    if tried {
        return Err(JwtError::new(JwtErrorKind::InvalidSignature));
    }
    // Only a `kid` the sets do not hold asks for fresh keys (rate-limited, and remembered by
    // the provider); a token without `kid` never does: it can name no key to look for, so any
    // client could otherwise make every request a refetch.
    match kid {
        Some(kid) if may_refresh => Ok(Step::Refresh(RefreshReason::UnknownKid(kid.to_owned()))),
        _ => Err(JwtError::new(JwtErrorKind::UnknownKey)),
    }
}

// ---- The layer's own rules, for `explain` (src/explain.rs) ----------------------------------
// Read-only views and the checks above under names of their own, so the report runs exactly
// the request path's rules. Never called on the request path.
impl Validator {
    pub(crate) fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    pub(crate) fn leeway(&self) -> u64 {
        self.leeway
    }

    pub(crate) fn requires_exp(&self) -> bool {
        self.require_exp
    }

    pub(crate) fn issuer_rule(&self) -> &IssuerRule {
        &self.issuer_rule
    }

    /// The accepted audiences; `None` with `danger_accept_any_audience`.
    pub(crate) fn accepted_audiences(&self) -> Option<&[Box<str>]> {
        (!self.any_audience).then_some(&self.audiences[..])
    }

    pub(crate) fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    pub(crate) fn requirement(&self) -> Option<&Requirement> {
        self.requirement.as_ref()
    }

    pub(crate) fn wanted(&self) -> &Wanted {
        &self.wanted
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// `exp` and `nbf` at `now`, with the leeway: the request path's time rule.
    pub(crate) fn times_at(
        &self,
        now: u64,
        exp: Option<f64>,
        nbf: Option<f64>,
    ) -> Result<(), JwtError> {
        self.check_times_at(now, exp, nbf)
    }

    /// The request path's audience rule.
    pub(crate) fn audience(&self, r: &Registered) -> Result<(), JwtError> {
        self.check_audience(r)
    }

    /// The signature segment decoded, refused as the request path refuses it.
    pub(crate) fn signature_bytes(seg: &Segments<'_>) -> Result<Vec<u8>, JwtError> {
        signature_segment(seg)?;
        token::b64_vec(seg.signature).ok_or_else(signature_not_base64)
    }

    /// The refusal of an unmet requirement, as the request path words it.
    pub(crate) fn requirement_refusal(&self, denied: &crate::Denied) -> JwtError {
        JwtError::insufficient(denied.reason().to_owned(), self.required_scopes.clone())
    }
}

/// What follows when no key verified the signature (the request path's rule, for `explain`).
pub(crate) fn after_no_key(
    kid: Option<&str>,
    cold: bool,
    tried: bool,
    may_refresh: bool,
) -> Result<Step, JwtError> {
    no_key(kid, cold, tried, may_refresh)
}

/// The refusal when a refresh still left no key for the token (`explain` shares it).
pub(crate) fn still_no_key(last_error: Option<KeyError>) -> JwtError {
    match last_error {
        Some(e) => JwtError::keys_unavailable(e),
        None => JwtError::new(JwtErrorKind::UnknownKey),
    }
}
