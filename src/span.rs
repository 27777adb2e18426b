//! The tracing span of one validation: `validate_jwt` at `debug` (target `validate_jwt`), with
//! its `outcome` (`accepted`, `refused`, `anonymous`, `skipped`), the refusal's `reason`
//! ([`JwtErrorKind::as_str`](crate::JwtErrorKind::as_str)), the refused token's `alg`, `kid` and
//! `iss` (read from the token without trusting it, escaped and cut to 128 characters; never the
//! token or its signature), and `source`, the index (in
//! [`Health::sources`](crate::Health::sources)) of the key source whose key verified the
//! signature. The layer's events (`request refused`, key fetches on the slow path) happen inside
//! it.
//!
//! When `debug` is off for the target, the span is `Span::none()` and nothing here runs: one
//! level check per request.

use tracing::Span;
use tracing::field::{Empty, debug};

use crate::metrics::Outcome;

/// The longest `alg`, `kid` or `iss` recorded, in characters.
const MAX_FIELD_CHARS: usize = 128;

/// The span of one validation (disabled unless `debug` is on for `validate_jwt`).
#[inline]
pub(crate) fn validation() -> Span {
    // The level check first: a span made only to be disabled still carries its metadata, and
    // with `tracing`'s `log` feature on (axum turns it on) it then calls into `log` when it is
    // entered, recorded and dropped, on every request, with nothing listening.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return Span::none();
    }
    tracing::debug_span!(
        target: "validate_jwt",
        "validate_jwt",
        outcome = Empty,
        reason = Empty,
        alg = Empty,
        kid = Empty,
        iss = Empty,
        source = Empty,
    )
}

/// The refused token's `alg`, `kid` and `iss`, read only while the span is enabled (before
/// the validation consumes the token), recorded only if it is refused.
#[derive(Debug, Default)]
pub(crate) struct TokenFields {
    alg: Option<String>,
    kid: Option<String>,
    iss: Option<String>,
}

impl TokenFields {
    /// The fields of `token` if `span` is enabled.
    #[inline]
    pub(crate) fn peek(span: &Span, token: &[u8]) -> Option<Box<TokenFields>> {
        match span.is_disabled() {
            true => None,
            false => Some(Box::new(Self::of(token))),
        }
    }

    #[cold]
    fn of(token: &[u8]) -> TokenFields {
        let mut segments = token.split(|b| *b == b'.');
        let header = segments.next().and_then(json_segment);
        let payload = segments.next().and_then(json_segment);
        let text = |value: &Option<serde_json::Value>, name: &str| {
            let text = value.as_ref()?.get(name)?.as_str()?;
            Some(text.chars().take(MAX_FIELD_CHARS).collect())
        };
        TokenFields {
            alg: text(&header, "alg"),
            kid: text(&header, "kid"),
            iss: text(&payload, "iss"),
        }
    }
}

/// A base64url segment's JSON, if it is one (bounded by the layer's token limit upstream; this
/// one bounds it again).
fn json_segment(segment: &[u8]) -> Option<serde_json::Value> {
    if segment.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Records how the validation ended (and, for a refusal, the token's fields).
#[inline]
pub(crate) fn outcome(span: &Span, outcome: Outcome, fields: Option<&TokenFields>) {
    if span.is_disabled() {
        return;
    }
    record(span, outcome, fields);
}

#[cold]
fn record(span: &Span, outcome: Outcome, fields: Option<&TokenFields>) {
    span.record("outcome", outcome.as_str());
    if let Outcome::Refused(kind) = outcome {
        span.record("reason", kind.as_str());
        if let Some(f) = fields {
            if let Some(alg) = &f.alg {
                span.record("alg", debug(alg));
            }
            if let Some(kid) = &f.kid {
                span.record("kid", debug(kid));
            }
            if let Some(iss) = &f.iss {
                span.record("iss", debug(iss));
            }
        }
    }
}

/// Records, in the current validation span, which key source's key verified the signature.
/// The request path's hook (in `Validator`): a level check when `debug` is off.
#[inline]
pub(crate) fn answered_by(source: usize) {
    if tracing::level_enabled!(tracing::Level::DEBUG)
        && tracing::enabled!(target: "validate_jwt", tracing::Level::DEBUG)
    {
        Span::current().record("source", source as u64);
    }
}
