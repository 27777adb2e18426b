//! "Why was my token refused?": [`ValidateJwtLayer::explain`](crate::ValidateJwtLayer::explain)
//! runs *every* check of the layer on one token instead of stopping at the first failure, and
//! reports each with its outcome, what was expected and what was found, beside the answer the
//! layer would give.
//!
//! A development tool: never on the request path. The report is built from the layer's own
//! rules (the same allow-list, `typ` rule, key lookup, signature verification, time rule,
//! [issuer rule](crate#secure-defaults), audience rule and requirements, with the same clock
//! and keys), so its verdict is the layer's: a test runs it beside the layer for every case of
//! the attack suite. It logs nothing and keeps nothing.
//!
//! ```
//! use validate_jwt::{JwtErrorKind, StaticKeys, ValidateJwtLayer};
//! use validate_jwt::explain::{CheckName, Outcome};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .add_audience("api://echo")
//!     .build()
//!     .unwrap();
//! let report = layer.explain("not.a.token").await;
//! assert_eq!(report.answer().status(), 401);
//! assert_eq!(report.answer().kind(), Some(JwtErrorKind::Malformed));
//! let first = report.failures().next().unwrap();
//! assert_eq!(first.name(), CheckName::Header);
//! assert_eq!(first.outcome(), Outcome::Fail);
//! println!("{report}"); // a readable table; `serde_json::to_string(&report)` for JSON
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::algorithm::Algorithm;
use crate::claims::{Claims, Registered, parse_claims};
use crate::error::{JwtError, JwtErrorKind};
use crate::keys::{Key, KeySet, RefreshReason};
use crate::response::Answers;
use crate::token::{self, Segments};
use crate::validate::{
    Step, Validator, after_no_key, header_not_base64, payload_not_base64, still_no_key,
};

/// The checks of a report, in the order the layer runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckName {
    /// The token's size and its three segments of base64url (and not a JWE).
    Format,
    /// The header: a JSON object with a string `alg`, no `crit`, no `b64`, no nested token.
    Header,
    /// `alg`: a known algorithm, on the allow-list (and bound to the key's type, see `Key`).
    Algorithm,
    /// `typ`: an accepted token type.
    Type,
    /// The key the token names (`kid` and algorithm), in which key source, after a refresh or not.
    Key,
    /// The signature, verified with that key.
    Signature,
    /// The payload: canonical base64url of an I-JSON object with well-typed registered claims.
    Claims,
    /// `exp` against now and the leeway.
    Expiry,
    /// `nbf` against now and the leeway.
    NotBefore,
    /// `iat` (shown, not checked: the layer has no rule for it).
    IssuedAt,
    /// `iss` against the issuers of the verifying key's source (the issuer rule).
    Issuer,
    /// `aud` against the accepted audiences.
    Audience,
    /// One of the layer's requirements (one row per `require*` call).
    Requirement,
    /// Sender constraint (DPoP, certificate binding): the token's `cnf` beside the layer's
    /// settings. Shown, not checked: the proof and the certificate come with a request, and
    /// `explain` is given a token alone.
    SenderConstraint,
}

impl CheckName {
    /// A short, stable, lowercase name (`"expiry"`, `"not_before"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Format => "format",
            Self::Header => "header",
            Self::Algorithm => "algorithm",
            Self::Type => "type",
            Self::Key => "key",
            Self::Signature => "signature",
            Self::Claims => "claims",
            Self::Expiry => "expiry",
            Self::NotBefore => "not_before",
            Self::IssuedAt => "issued_at",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Requirement => "requirement",
            Self::SenderConstraint => "sender_constraint",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The check holds.
    Pass,
    /// The check fails: the token is refused (by the first failing check, in order).
    Fail,
    /// The check could not run (it needs what an earlier failure left out, such as the key
    /// that verified the signature); `found` says why.
    Skipped,
    /// Shown for information; the layer has no rule here.
    Info,
}

impl Outcome {
    fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "✓",
            Outcome::Fail => "✗",
            Outcome::Skipped => "–",
            Outcome::Info => "·",
        }
    }
}

fn kind_name<S: serde::Serializer>(kind: &Option<JwtErrorKind>, s: S) -> Result<S::Ok, S::Error> {
    match kind {
        Some(kind) => s.serialize_str(kind.as_str()),
        None => s.serialize_none(),
    }
}

/// One check of an [`Explanation`]: its outcome, what was expected and what the token holds.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    name: CheckName,
    outcome: Outcome,
    expected: String,
    found: String,
    #[serde(serialize_with = "kind_name")]
    refusal: Option<JwtErrorKind>,
    detail: Option<String>,
}

impl Check {
    /// Which check.
    pub fn name(&self) -> CheckName {
        self.name
    }

    /// How it came out.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// What the layer expects, in words (the configuration's side).
    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// What the token holds, in words (the token's side).
    pub fn found(&self) -> &str {
        &self.found
    }

    /// For a failed check, the kind of refusal it causes.
    pub fn refusal(&self) -> Option<JwtErrorKind> {
        self.refusal
    }

    /// For a failed check, the refusal's detail (as [`JwtError::detail`] gives it).
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

/// The answer the layer would give the token (its HTTP answer; a gRPC request gets the
/// matching status).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Answer {
    status: u16,
    #[serde(serialize_with = "kind_name")]
    kind: Option<JwtErrorKind>,
    error: Option<String>,
    www_authenticate: Option<String>,
    description: String,
}

impl Answer {
    /// The HTTP status: 200 when the request would reach the service.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Why the token is refused; `None` when it is accepted.
    pub fn kind(&self) -> Option<JwtErrorKind> {
        self.kind
    }

    /// The body's `error` (`invalid_token`, `insufficient_scope`, …), when refused.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The `WWW-Authenticate` challenge, when the answer has one.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.www_authenticate.as_deref()
    }

    /// One line: what happens to a request carrying the token.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// The report of [`ValidateJwtLayer::explain`](crate::ValidateJwtLayer::explain): every check
/// with its outcome, the decoded header and claims, and the layer's answer. `Display` prints
/// a table; `serde::Serialize` gives JSON. It holds no part of the token beyond the decoded
/// header and claims.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Explanation {
    answer: Answer,
    checks: Vec<Check>,
    header: Option<Value>,
    claims: Option<Value>,
    claims_verified: bool,
    notes: Vec<String>,
    now: u64,
    leeway_secs: u64,
    #[serde(skip)]
    error: Option<JwtError>,
}

impl Explanation {
    /// The answer the layer would give.
    pub fn answer(&self) -> &Answer {
        &self.answer
    }

    /// Whether the layer accepts the token.
    pub fn is_accepted(&self) -> bool {
        self.error.is_none()
    }

    /// The refusal the layer would answer with (the first failing check's), `None` when accepted.
    pub fn error(&self) -> Option<&JwtError> {
        self.error.as_ref()
    }

    /// Every check, in the order the layer runs them.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The first check of this name (there is one row per requirement).
    pub fn check(&self, name: CheckName) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The failed checks, in order (the layer answers for the first one, or, for a five-segment
    /// token, for `format`).
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// The decoded header, when it is JSON.
    pub fn header(&self) -> Option<&Value> {
        self.header.as_ref()
    }

    /// The decoded claims, when the payload is JSON. Decoded only once the signature verdict
    /// was known; see [`claims_verified`](Self::claims_verified) before trusting them.
    pub fn claims(&self) -> Option<&Value> {
        self.claims.as_ref()
    }

    /// Whether the claims come from a token whose signature verified with a configured key.
    pub fn claims_verified(&self) -> bool {
        self.claims_verified
    }

    /// Remarks on the report (for example that the claims shown are not verified).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The time the checks used (seconds since the epoch, from the layer's clock).
    pub fn now(&self) -> u64 {
        self.now
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.answer;
        match a.kind {
            None => writeln!(f, "answer: {} ({})", a.status, a.description)?,
            Some(kind) => {
                let error = a.error.as_deref().unwrap_or("-");
                write!(f, "answer: {} {error}", a.status)?;
                if error != kind.as_str() {
                    write!(f, " ({kind})")?;
                }
                writeln!(f, ": {}", a.description)?;
            }
        }
        let name_w = self
            .checks
            .iter()
            .map(|c| c.name.as_str().len())
            .max()
            .unwrap_or(5)
            .max(5);
        let exp_w = self
            .checks
            .iter()
            .map(|c| c.expected.chars().count())
            .max()
            .unwrap_or(8)
            .clamp(8, 56);
        writeln!(f, "  {:name_w$}     {:exp_w$}  found", "check", "expected")?;
        for c in &self.checks {
            writeln!(
                f,
                "{} {:name_w$}     {:exp_w$}  {}",
                c.outcome.mark(),
                c.name.as_str(),
                c.expected,
                c.found
            )?;
        }
        if let Some(header) = &self.header {
            writeln!(f, "header: {header}")?;
        }
        if let Some(claims) = &self.claims {
            let label = match self.claims_verified {
                true => "claims",
                false => "claims (NOT verified)",
            };
            writeln!(f, "{label}: {claims}")?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}

/// The report being built: the rows, and the first refusal in the layer's order.
struct Report {
    checks: Vec<Check>,
    first: Option<JwtError>,
    notes: Vec<String>,
    /// The layer's DPoP and certificate settings in words, for the sender-constraint row.
    sender_settings: String,
}

impl Report {
    fn row(
        &mut self,
        name: CheckName,
        result: Result<(), JwtError>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) {
        let (outcome, refusal, detail) = match result {
            Ok(()) => (Outcome::Pass, None, None),
            Err(e) => {
                let row = (Outcome::Fail, Some(e.kind()), e.detail().map(str::to_owned));
                self.first.get_or_insert(e);
                row
            }
        };
        self.checks.push(Check {
            name,
            outcome,
            expected: expected.into(),
            found: found.into(),
            refusal,
            detail,
        });
    }

    fn other(&mut self, name: CheckName, outcome: Outcome, expected: &str, found: &str) {
        self.checks.push(Check {
            name,
            outcome,
            expected: expected.into(),
            found: found.into(),
            refusal: None,
            detail: None,
        });
    }

    /// Rows for the checks that cannot run, with why.
    fn skip_rest(&mut self, from: CheckName, why: &str) {
        const ORDER: [CheckName; 14] = [
            CheckName::Format,
            CheckName::Header,
            CheckName::Algorithm,
            CheckName::Type,
            CheckName::Key,
            CheckName::Signature,
            CheckName::Claims,
            CheckName::Expiry,
            CheckName::NotBefore,
            CheckName::IssuedAt,
            CheckName::Issuer,
            CheckName::Audience,
            CheckName::SenderConstraint,
            CheckName::Requirement,
        ];
        let start = ORDER.iter().position(|n| *n == from).unwrap_or(ORDER.len());
        for name in &ORDER[start..] {
            self.other(*name, Outcome::Skipped, "", why);
        }
    }
}

fn describe_key(key: &Key) -> String {
    let kid = key
        .kid()
        .map_or("no kid".to_owned(), |k| format!("kid {k:?}"));
    let algs: Vec<&str> = key.algorithms().iter().map(Algorithm::as_str).collect();
    format!("{kid} ({})", algs.join(", "))
}

/// What the key sources hold for `kid` (any algorithm), for the key row.
fn key_sets_summary(v: &Validator, kid: Option<&str>) -> String {
    let providers = v.providers();
    let mut parts = Vec::new();
    for (i, provider) in providers.iter().enumerate() {
        let label = format!("source {} of {}", i + 1, providers.len());
        let Some(set) = provider.current() else {
            parts.push(format!("{label}: no key set yet"));
            continue;
        };
        let keys: Vec<String> = set
            .keys()
            .filter(|k| kid.is_none() || k.kid() == kid)
            .take(6)
            .map(describe_key)
            .collect();
        match (kid, keys.is_empty()) {
            (Some(kid), true) => {
                let kids: Vec<&str> = set.kids().take(8).collect();
                parts.push(format!(
                    "{label}: no key with kid {kid:?} (kids: {})",
                    if kids.is_empty() {
                        "none".to_owned()
                    } else {
                        kids.join(", ")
                    }
                ));
            }
            _ => parts.push(format!("{label}: {}", keys.join("; "))),
        }
    }
    parts.join(" | ")
}

/// `delta` seconds, with a rounder figure beside large ones.
fn seconds(delta: f64) -> (String, String) {
    let d = delta.abs();
    let about = if d >= 2.0 * 86_400.0 {
        format!("; about {:.0} days", d / 86_400.0)
    } else if d >= 3600.0 {
        format!("; about {:.0} h", d / 3600.0)
    } else {
        String::new()
    };
    (format!("{d:.0} s"), about)
}

fn time_text(now: u64, at: f64) -> String {
    let delta = at - now as f64;
    let (secs, about) = seconds(delta);
    if delta.abs() < 1.0 {
        format!("{at} (now)")
    } else if delta >= 0.0 {
        format!("{at} (in {secs}{about})")
    } else {
        format!("{at} ({secs} ago{about})")
    }
}

/// Runs every check of `v` on `token` (which passed `validate_token`'s preamble, or not: then
/// `preamble` is its refusal).
pub(crate) async fn run(
    v: &Validator,
    answers: &Answers,
    sender: Option<&crate::sender::Sender>,
    token: &str,
    preamble: Result<(), JwtError>,
) -> Explanation {
    let now = v.now();
    let leeway = v.leeway();
    let mut r = Report {
        checks: Vec::new(),
        first: None,
        notes: Vec::new(),
        sender_settings: match sender {
            None => "DPoP and certificate binding off".to_owned(),
            Some(s) => format!(
                "{}; proofs and certificates come with a request: not checked here",
                s.describe()
            ),
        },
    };
    let mut header_value = None;
    let mut claims_value = None;
    let mut claims_verified = false;
    let bytes = token.as_bytes();
    let max = v.max_token_bytes();
    let format_expected = format!("3 base64url segments (not a JWE), at most {max} bytes");

    // Format: the preamble, the size, the segments.
    let seg: Option<Segments<'_>> = if let Err(e) = preamble {
        r.row(CheckName::Format, Err(e), format_expected, "");
        r.skip_rest(CheckName::Header, "not read: no token to read");
        None
    } else if bytes.len() > max {
        r.row(
            CheckName::Format,
            Err(JwtError::new(JwtErrorKind::TooLarge)),
            format_expected,
            format!("{} bytes", bytes.len()),
        );
        r.skip_rest(
            CheckName::Header,
            "not read: larger tokens are refused unread",
        );
        None
    } else {
        let found = format!(
            "{} segments, {} bytes",
            bytes.iter().filter(|b| **b == b'.').count() + 1,
            bytes.len()
        );
        match token::split(bytes) {
            Err(e) => {
                r.row(CheckName::Format, Err(e), format_expected, found);
                r.skip_rest(
                    CheckName::Header,
                    "not read: the token has no three segments",
                );
                None
            }
            Ok(seg) => {
                // The layer answers this for a token of more than three segments, whatever
                // else fails (and something always does: a dot never decodes).
                let extra = token::extra_segments(&seg).map_or(Ok(()), Err);
                r.row(CheckName::Format, extra, format_expected, found);
                Some(seg)
            }
        }
    };

    if let Some(seg) = seg {
        checks_from_header(
            v,
            &mut r,
            &seg,
            now,
            &mut header_value,
            &mut claims_value,
            &mut claims_verified,
        )
        .await;
    }

    if claims_value.is_some() && !claims_verified {
        r.notes.push(
            "these claims come from a token whose signature did not verify with a configured \
             key: anyone could have written them"
                .to_owned(),
        );
    }
    let answer = match &r.first {
        None => Answer {
            status: 200,
            kind: None,
            error: None,
            www_authenticate: None,
            description: "accepted: the request reaches the service with these claims".into(),
        },
        Some(err) => {
            let response = answers.preview(err);
            let body: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            Answer {
                status: response.status().as_u16(),
                kind: Some(err.kind()),
                error: body["error"].as_str().map(str::to_owned),
                www_authenticate: response
                    .headers()
                    .get(http::header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned),
                description: match err.detail() {
                    Some(detail) => format!("{}: {detail}", err.kind().description()),
                    None => err.kind().description().to_owned(),
                },
            }
        }
    };
    Explanation {
        answer,
        checks: r.checks,
        header: header_value,
        claims: claims_value,
        claims_verified,
        notes: r.notes,
        now,
        leeway_secs: leeway,
        error: r.first,
    }
}

async fn checks_from_header(
    v: &Validator,
    r: &mut Report,
    seg: &Segments<'_>,
    now: u64,
    header_value: &mut Option<Value>,
    claims_value: &mut Option<Value>,
    claims_verified: &mut bool,
) {
    let header_expected = "a JSON object with a string alg; no crit, no b64, no nested JWT";
    let Some(header_json) = token::b64_vec(seg.header) else {
        r.row(
            CheckName::Header,
            Err(header_not_base64()),
            header_expected,
            "not canonical base64url",
        );
        r.skip_rest(CheckName::Algorithm, "not read: the header is unreadable");
        return;
    };
    *header_value = serde_json::from_slice(&header_json).ok();
    let (header, alg) = match token::parse_header(&header_json) {
        Ok(parsed) => parsed,
        Err(e) => {
            let found = header_value
                .as_ref()
                .map_or("not a JSON object".to_owned(), Value::to_string);
            if e.kind() == JwtErrorKind::UnsupportedAlgorithm {
                let alg = header_value
                    .as_ref()
                    .and_then(|h| h.get("alg"))
                    .map_or("?".to_owned(), Value::to_string);
                r.other(
                    CheckName::Header,
                    Outcome::Skipped,
                    header_expected,
                    "not read past alg",
                );
                r.row(
                    CheckName::Algorithm,
                    Err(e),
                    allowed(v),
                    format!("alg {alg}"),
                );
                r.skip_rest(CheckName::Type, "not read: the algorithm is unknown");
            } else {
                r.row(CheckName::Header, Err(e), header_expected, found);
                r.skip_rest(CheckName::Algorithm, "not read: the header is refused");
            }
            return;
        }
    };
    r.row(
        CheckName::Header,
        Ok(()),
        header_expected,
        "a JSON object with a string alg",
    );
    r.row(
        CheckName::Algorithm,
        v.allow_listed(alg),
        allowed(v),
        alg.as_str(),
    );
    let typ = header.typ.as_deref();
    r.row(
        CheckName::Type,
        v.typ_rule(typ),
        v.typ_accepted(),
        typ.map_or("absent".to_owned(), |t| format!("{t:?}")),
    );

    // Key and signature.
    let kid = header.kid.as_deref();
    let key_expected = match kid {
        Some(kid) => format!("a key with kid {kid:?} for {alg}"),
        None => format!("a key for {alg} (no kid: the keys of its type are tried)"),
    };
    let sig_expected = format!("a valid {alg} signature by that key");
    let mut verified = None;
    match Validator::signature_bytes(seg) {
        Err(e) => {
            r.other(
                CheckName::Key,
                Outcome::Skipped,
                &key_expected,
                "not looked up: the signature segment is refused",
            );
            r.row(
                CheckName::Signature,
                Err(e),
                sig_expected,
                "no usable signature",
            );
        }
        // The layer looks keys up (and so may start fetching them) only for a token that
        // passed every check so far: so does the report.
        Ok(_) if r.first.is_some() => {
            r.other(
                CheckName::Key,
                Outcome::Skipped,
                &key_expected,
                "not looked up: the layer looks keys up only for a token that passed the checks above",
            );
            r.other(
                CheckName::Signature,
                Outcome::Skipped,
                &sig_expected,
                "not verified: no key looked up",
            );
        }
        Ok(sig) => {
            let mut found = v.lookup(kid, alg, seg.signing_input, &sig);
            let mut refreshed = "";
            let mut outcome = Ok(());
            if found.verified.is_none() {
                outcome = match after_no_key(kid, found.cold, found.tried, true) {
                    Ok(Step::Refresh(reason)) => {
                        refreshed = match reason {
                            RefreshReason::NoKeys => ", after the first fetch of keys",
                            _ => ", after a refresh for this kid",
                        };
                        let last_error = v.refresh_keys(reason).await;
                        found = v.lookup(kid, alg, seg.signing_input, &sig);
                        match (
                            &found.verified,
                            after_no_key(kid, found.cold, found.tried, false),
                        ) {
                            (Some(_), _) => Ok(()),
                            (None, Ok(_)) => Err(still_no_key(last_error)),
                            (None, Err(e)) => Err(e),
                        }
                    }
                    Ok(Step::Done(_)) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            let after = refreshed;
            match (&found.verified, outcome) {
                (Some((source, set, index)), _) => {
                    let key = set.key_at(*index).map_or("?".to_owned(), describe_key);
                    let at = format!(
                        "source {} of {}: {key}{after}",
                        source + 1,
                        v.providers().len()
                    );
                    r.row(CheckName::Key, Ok(()), key_expected, at.clone());
                    r.row(
                        CheckName::Signature,
                        Ok(()),
                        sig_expected,
                        format!("verified with {at}"),
                    );
                    verified = Some((*source, set.clone(), *index));
                }
                (None, Err(e)) if e.kind() == JwtErrorKind::InvalidSignature => {
                    r.row(
                        CheckName::Key,
                        Ok(()),
                        key_expected,
                        format!("{}{after}", key_sets_summary(v, kid)),
                    );
                    r.row(
                        CheckName::Signature,
                        Err(e),
                        sig_expected,
                        "does not verify with the candidate keys",
                    );
                }
                (None, result) => {
                    r.row(
                        CheckName::Key,
                        result,
                        key_expected,
                        format!("{}{after}", key_sets_summary(v, kid)),
                    );
                    r.other(
                        CheckName::Signature,
                        Outcome::Skipped,
                        &sig_expected,
                        "not verified: no key to verify it with",
                    );
                }
            }
        }
    }
    *claims_verified = verified.is_some();

    // The payload, decoded now that the signature's verdict is known.
    let claims_expected = "an I-JSON object with well-typed registered claims";
    let Some(payload) = token::b64_vec(seg.payload) else {
        r.row(
            CheckName::Claims,
            Err(payload_not_base64()),
            claims_expected,
            "not canonical base64url",
        );
        r.skip_rest(CheckName::Expiry, "not read: the payload is unreadable");
        return;
    };
    *claims_value = serde_json::from_slice(&payload).ok();
    let registered = match parse_claims(payload, v.wanted()) {
        Ok(registered) => registered,
        Err(e) => {
            r.row(CheckName::Claims, Err(e), claims_expected, "refused");
            r.skip_rest(CheckName::Expiry, "not read: the claims are refused");
            return;
        }
    };
    r.row(CheckName::Claims, Ok(()), claims_expected, "well-formed");
    claim_checks(v, r, registered, verified, now).await;
}

fn allowed(v: &Validator) -> String {
    let names: Vec<&str> = v.algorithms().iter().map(Algorithm::as_str).collect();
    format!("one of {}", names.join(", "))
}

async fn claim_checks(
    v: &Validator,
    r: &mut Report,
    registered: Registered,
    verified: Option<(usize, Arc<KeySet>, usize)>,
    now: u64,
) {
    let leeway = v.leeway();
    let exp_expected = match v.requires_exp() {
        true => format!("present, and now − {leeway} s leeway before it (now {now})"),
        false => format!("if present, now − {leeway} s leeway before it (now {now})"),
    };
    r.row(
        CheckName::Expiry,
        v.times_at(now, registered.exp, None),
        exp_expected,
        registered
            .exp
            .map_or("absent".to_owned(), |e| time_text(now, e)),
    );
    // An `exp` that never ends, so that this row is `nbf`'s part of the time rule alone.
    r.row(
        CheckName::NotBefore,
        v.times_at(now, Some(f64::INFINITY), registered.nbf),
        format!("if present, at most now + {leeway} s leeway"),
        registered
            .nbf
            .map_or("absent".to_owned(), |n| time_text(now, n)),
    );
    r.other(
        CheckName::IssuedAt,
        Outcome::Info,
        "not checked",
        &registered
            .iat
            .map_or("absent".to_owned(), |i| time_text(now, i)),
    );

    let iss = registered
        .iss()
        .map_or("absent".to_owned(), |i| format!("{i:?}"));
    match &verified {
        Some((source, set, index)) => match set.key_at(*index) {
            Some(key) => r.row(
                CheckName::Issuer,
                v.issuer_rule()
                    .check(*source, set, key, &registered)
                    .map(|_| ()),
                v.issuer_rule().describe(*source, set, key),
                iss,
            ),
            None => r.other(CheckName::Issuer, Outcome::Skipped, "", "no key"),
        },
        None => r.other(
            CheckName::Issuer,
            Outcome::Skipped,
            "the issuers of the verifying key's source",
            &format!("{iss}; not checked: no key verified the signature"),
        ),
    }

    let auds: Vec<String> = registered.audiences().map(|a| format!("{a:?}")).collect();
    r.row(
        CheckName::Audience,
        v.audience(&registered),
        match v.accepted_audiences() {
            Some(list) => format!("one of {}", list.join(", ")),
            None => "any (danger_accept_any_audience)".to_owned(),
        },
        match auds.is_empty() {
            true => "absent".to_owned(),
            false => auds.join(", "),
        },
    );

    // The binding rule of the token alone, as the layer runs it after the audience.
    let found = match registered.cnf() {
        None => "no `cnf`: a bearer token".to_owned(),
        Some(cnf) => {
            let cnf: Value = serde_json::from_str(cnf).unwrap_or(Value::Null);
            let member = |name: &str| cnf.get(name).and_then(Value::as_str);
            match (member("jkt"), member("x5t#S256")) {
                (Some(jkt), Some(x5t)) => format!(
                    "`cnf.jkt` {jkt:?} and `cnf[\"x5t#S256\"]` {x5t:?}: bound to a DPoP key \
                     and a client certificate"
                ),
                (Some(jkt), None) => format!("`cnf.jkt` {jkt:?}: bound to a DPoP key"),
                (None, Some(x5t)) => {
                    format!("`cnf[\"x5t#S256\"]` {x5t:?}: bound to a client certificate")
                }
                (None, None) => format!("`cnf` {cnf}: no binding the layer checks"),
            }
        }
    };
    let expected = format!("{} ({})", v.binding_rule().describe(), r.sender_settings);
    r.row(
        CheckName::SenderConstraint,
        v.binding_rule().check(registered.cnf()),
        expected,
        found,
    );

    let claims = Claims::new(registered, 0);
    let Some(requirement) = v.requirement() else {
        r.other(CheckName::Requirement, Outcome::Info, "none", "");
        return;
    };
    // As the layer: every synchronous part first (in order), then the asynchronous ones.
    let parts = requirement.parts();
    let mut results: Vec<Result<(), JwtError>> = parts
        .iter()
        .map(|p| p.check(&claims).map_err(|d| v.requirement_refusal(&d)))
        .collect();
    let sync_failure = results.iter().position(Result::is_err);
    // The layer runs an asynchronous part only for a token that passed everything else: never
    // on claims no key verified, nor after a refusal (it may query a database or a service).
    let run_async = verified.is_some() && r.first.is_none() && sync_failure.is_none();
    for (part, result) in parts.iter().zip(results.iter_mut()) {
        if run_async && result.is_ok() && part.is_async() {
            *result = part
                .check_async(claims.clone())
                .await
                .map_err(|d| v.requirement_refusal(&d));
        }
    }
    let first = sync_failure.or_else(|| results.iter().position(Result::is_err));
    if let Some(e) = first
        .and_then(|i| results.get(i))
        .and_then(|r| r.clone().err())
    {
        r.first.get_or_insert(e);
    }
    for (part, result) in parts.iter().zip(results) {
        if part.is_async() && !run_async {
            let why = match verified.is_some() {
                false => "not run: the signature did not verify",
                true => "not run: the token is already refused",
            };
            r.other(
                CheckName::Requirement,
                Outcome::Skipped,
                &part.describe(),
                why,
            );
            continue;
        }
        r.row(
            CheckName::Requirement,
            result,
            part.describe(),
            part.found_in(&claims),
        );
    }
}
