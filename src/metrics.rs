//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): what the
//! layer decided, how its key sources and its token cache are doing. Install any `metrics`
//! recorder (Prometheus, OpenTelemetry, StatsD, …) and they appear; with none installed, or with
//! the feature off, recording costs nothing measurable.
//!
//! [`ALL`] is the table of every metric — name, type, labels and meaning — and the only place
//! they are written; the README's table is checked against it by a test. Labels are few and
//! fixed by the configuration: never a token, a `sub`, a `kid` or a token's issuer.
//!
//! ```
//! use validate_jwt::metrics::{self, MetricType};
//!
//! let requests = metrics::ALL.iter().find(|m| m.name == "validate_jwt_requests_total").unwrap();
//! assert_eq!(requests.metric_type, MetricType::Counter);
//! assert_eq!(requests.labels, ["outcome", "reason"]);
//! // Register every description (Prometheus `# HELP` lines) with the installed recorder.
//! metrics::describe();
//! ```
//!
//! The recording itself is crate-private: the layer records each request's outcome where it
//! knows it, the remote key sources their fetches and refreshes, and the token cache its
//! lookups.
//! Request and cache metrics use static keys: no allocation per request (with
//! `label_metrics_by_issuer`, the request counter's key is built per request: one small
//! allocation).

use crate::error::{JwtErrorKind, KeyErrorKind};
use crate::issuer::IssuerLabel;

/// The name of the counter of requests by outcome and reason.
pub const REQUESTS: &str = "validate_jwt_requests_total";
/// The name of the counter of key set fetch attempts by source and result.
pub const KEY_FETCHES: &str = "validate_jwt_key_fetches_total";
/// The name of the histogram of key set fetch durations by source.
pub const KEY_FETCH_DURATION: &str = "validate_jwt_key_fetch_duration_seconds";
/// The name of the gauge of keys in a source's current set.
pub const KEYS: &str = "validate_jwt_keys";
/// The name of the gauge of when a source's key set was last fetched or revalidated.
pub const KEY_SET_UPDATED: &str = "validate_jwt_key_set_updated_timestamp_seconds";
/// The name of the gauge of a source's failed fetches since its last success.
pub const KEY_FAILURES: &str = "validate_jwt_key_consecutive_failures";
/// The name of the counter of on-demand refreshes by source and decision.
pub const KEY_REFRESHES: &str = "validate_jwt_key_refreshes_total";
/// The name of the counter of unknown `kid`s remembered by a source.
pub const UNKNOWN_KIDS: &str = "validate_jwt_unknown_kids_remembered_total";
/// The name of the counter of token cache hits by tier.
pub const CACHE_HITS: &str = "validate_jwt_token_cache_hits_total";
/// The name of the counter of token cache misses.
pub const CACHE_MISSES: &str = "validate_jwt_token_cache_misses_total";
/// The name of the counter of token cache evictions.
pub const CACHE_EVICTIONS: &str = "validate_jwt_token_cache_evictions_total";
/// The name of the gauge of token cache entries.
pub const CACHE_ENTRIES: &str = "validate_jwt_token_cache_entries";
/// The name of the counter of DPoP replay checks by result.
pub const DPOP_REPLAY_CHECKS: &str = "validate_jwt_dpop_replay_checks_total";

/// The type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricType {
    /// Only goes up.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

impl MetricType {
    /// `"counter"`, `"gauge"` or `"histogram"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One metric of [`ALL`]: its name, type, labels and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metric {
    /// The metric's name (Prometheus style, `validate_jwt_` first).
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub metric_type: MetricType,
    /// The label names, in order.
    pub labels: &'static [&'static str],
    /// What it counts and what its label values are.
    pub description: &'static str,
}

/// Every metric the crate records. Extend here (and in the README's table, which a test checks
/// against this one).
pub const ALL: &[Metric] = &[
    Metric {
        name: REQUESTS,
        metric_type: MetricType::Counter,
        labels: &["outcome", "reason"],
        description: "Requests (and `validate_token` calls) by outcome: `accepted`, `refused`, \
            `anonymous` (no token, let through by `allow_anonymous`) or `skipped` (by `skip_if`); \
            `reason` is the refusal's `JwtErrorKind::as_str` (`missing`, `expired`, …), `none` otherwise. \
            With `label_metrics_by_issuer`, an `issuer` label too: the issuer the token was \
            verified for as configured (or discovered), `any` under `danger_accept_any_issuer`, \
            `unverified` before an issuer was established; never a refused token's `iss`.",
    },
    Metric {
        name: KEY_FETCHES,
        metric_type: MetricType::Counter,
        labels: &["source", "result"],
        description: "Key set fetch attempts of a remote source (its URL, without query) by \
            result: `ok`, `not_modified`, or the `KeyErrorKind` of the failure (`timeout`, \
            `connect`, `status`, `too_large`, `invalid_json`, `issuer_mismatch`, \
            `no_usable_keys`, `invalid_key`, `invalid_url`, `other`), \
            one per attempt.",
    },
    Metric {
        name: KEY_FETCH_DURATION,
        metric_type: MetricType::Histogram,
        labels: &["source"],
        description: "How long each fetch attempt took (discovery document and key set), \
            successful or not, in seconds.",
    },
    Metric {
        name: KEYS,
        metric_type: MetricType::Gauge,
        labels: &["source"],
        description: "Keys in the source's current key set (0 before the first success).",
    },
    Metric {
        name: KEY_SET_UPDATED,
        metric_type: MetricType::Gauge,
        labels: &["source"],
        description: "When the key set was last fetched or revalidated, in seconds since the \
            Unix epoch: the set's age is `time() - validate_jwt_key_set_updated_timestamp_seconds`.",
    },
    Metric {
        name: KEY_FAILURES,
        metric_type: MetricType::Gauge,
        labels: &["source"],
        description: "Failed fetch attempts since the last success (0 when the last one succeeded).",
    },
    Metric {
        name: KEY_REFRESHES,
        metric_type: MetricType::Counter,
        labels: &["source", "result"],
        description: "On-demand refreshes asked for by tokens naming an unknown `kid`: \
            `started` (a fetch was asked for), `rate_limited` (declined: one ran less than \
            `with_min_refresh_interval` ago) or `unknown_kid` (declined: the last fetch already \
            proved the `kid` unknown).",
    },
    Metric {
        name: UNKNOWN_KIDS,
        metric_type: MetricType::Counter,
        labels: &["source"],
        description: "`kid`s remembered as unknown after a fetch made for them (forgotten when a \
            new key set arrives).",
    },
    Metric {
        name: CACHE_HITS,
        metric_type: MetricType::Counter,
        labels: &["tier"],
        description: "Verified-token cache hits: `front` (the thread's own front cache) or \
            `shared` (the sharded cache).",
    },
    Metric {
        name: CACHE_MISSES,
        metric_type: MetricType::Counter,
        labels: &[],
        description: "Verified-token cache lookups that found no fresh entry (a full validation follows).",
    },
    Metric {
        name: CACHE_EVICTIONS,
        metric_type: MetricType::Counter,
        labels: &[],
        description: "Verified-token cache entries evicted to make room (expired entries first).",
    },
    Metric {
        name: CACHE_ENTRIES,
        metric_type: MetricType::Gauge,
        labels: &[],
        description: "Entries in the verified-token caches of every layer (their shared tier; \
            the threads' front copies are not counted).",
    },
    Metric {
        name: DPOP_REPLAY_CHECKS,
        metric_type: MetricType::Counter,
        labels: &["result"],
        description: "DPoP proofs checked against the replay store (after every other check \
            passed): `fresh` (first use of its `jti`), `replayed` (refused), \
            `store_error_refused` (the store failed; answered 503) or `store_error_accepted` \
            (the store failed; let through by `danger_fail_open_on_store_errors`).",
    },
];

/// Registers the description of every metric of [`ALL`] with the installed recorder (so a
/// Prometheus exporter prints `# HELP` lines). Optional; call it once after installing the
/// recorder.
pub fn describe() {
    #[cfg(feature = "metrics")]
    ::metrics::with_recorder(|recorder| {
        for metric in ALL {
            let name = ::metrics::KeyName::from_const_str(metric.name);
            let unit = metric
                .name
                .ends_with("_seconds")
                .then_some(::metrics::Unit::Seconds);
            let help = ::metrics::SharedString::const_str(metric.description);
            match metric.metric_type {
                MetricType::Counter => recorder.describe_counter(name, unit, help),
                MetricType::Gauge => recorder.describe_gauge(name, unit, help),
                MetricType::Histogram => recorder.describe_histogram(name, unit, help),
            }
        }
    });
}

/// How a request (or a `validate_token` call) ended, for [`request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted,
    Refused(JwtErrorKind),
    Anonymous,
    Skipped,
}

impl Outcome {
    /// The `outcome` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused(_) => "refused",
            Outcome::Anonymous => "anonymous",
            Outcome::Skipped => "skipped",
        }
    }
}

/// The `result` label of a fetch that failed with `kind`.
pub(crate) fn key_error_label(kind: KeyErrorKind) -> &'static str {
    match kind {
        KeyErrorKind::Timeout => "timeout",
        KeyErrorKind::Connect => "connect",
        KeyErrorKind::Status => "status",
        KeyErrorKind::TooLarge => "too_large",
        KeyErrorKind::InvalidJson => "invalid_json",
        KeyErrorKind::IssuerMismatch => "issuer_mismatch",
        KeyErrorKind::NoUsableKeys => "no_usable_keys",
        KeyErrorKind::RateLimited => "rate_limited",
        KeyErrorKind::InvalidKey => "invalid_key",
        KeyErrorKind::InvalidUrl => "invalid_url",
        KeyErrorKind::Other => "other",
    }
}

/// Every [`KeyErrorKind`], in the order of [`SourceMetrics`]' failure keys.
#[cfg(feature = "metrics")]
const KEY_ERROR_KINDS: [KeyErrorKind; 11] = [
    KeyErrorKind::Timeout,
    KeyErrorKind::Connect,
    KeyErrorKind::Status,
    KeyErrorKind::TooLarge,
    KeyErrorKind::InvalidJson,
    KeyErrorKind::IssuerMismatch,
    KeyErrorKind::NoUsableKeys,
    KeyErrorKind::RateLimited,
    KeyErrorKind::InvalidKey,
    KeyErrorKind::InvalidUrl,
    KeyErrorKind::Other,
];

#[cfg(feature = "metrics")]
mod record {
    use ::metrics::{Key, Label, Level, Metadata};

    use super::*;

    pub(super) static META: Metadata<'static> =
        Metadata::new("validate_jwt", Level::INFO, Some(module_path!()));

    #[inline]
    pub(super) fn count(key: &Key, n: u64) {
        ::metrics::with_recorder(|r| r.register_counter(key, &META).increment(n));
    }

    #[inline]
    pub(super) fn gauge_add(key: &Key, delta: f64) {
        ::metrics::with_recorder(|r| r.register_gauge(key, &META).increment(delta));
    }

    pub(super) fn gauge_set(key: &Key, value: f64) {
        ::metrics::with_recorder(|r| r.register_gauge(key, &META).set(value));
    }

    pub(super) fn observe(key: &Key, value: f64) {
        ::metrics::with_recorder(|r| r.register_histogram(key, &META).record(value));
    }

    /// A static key of `name` with static labels.
    macro_rules! key {
        ($name:expr) => {{
            static KEY: Key = Key::from_static_name($name);
            &KEY
        }};
        ($name:expr, $k1:literal => $v1:literal) => {{
            static LABELS: [Label; 1] = [Label::from_static_parts($k1, $v1)];
            static KEY: Key = Key::from_static_parts($name, &LABELS);
            &KEY
        }};
        ($name:expr, $k1:literal => $v1:literal, $k2:literal => $v2:literal) => {{
            static LABELS: [Label; 2] = [
                Label::from_static_parts($k1, $v1),
                Label::from_static_parts($k2, $v2),
            ];
            static KEY: Key = Key::from_static_parts($name, &LABELS);
            &KEY
        }};
    }

    pub(super) fn request_key(outcome: Outcome) -> &'static Key {
        use JwtErrorKind as K;
        macro_rules! refused {
            ($reason:literal) => {
                key!(REQUESTS, "outcome" => "refused", "reason" => $reason)
            };
        }
        match outcome {
            Outcome::Accepted => key!(REQUESTS, "outcome" => "accepted", "reason" => "none"),
            Outcome::Anonymous => key!(REQUESTS, "outcome" => "anonymous", "reason" => "none"),
            Outcome::Skipped => key!(REQUESTS, "outcome" => "skipped", "reason" => "none"),
            Outcome::Refused(kind) => match kind {
                K::Missing => refused!("missing"),
                K::InvalidRequest => refused!("invalid_request"),
                K::TooLarge => refused!("too_large"),
                K::Malformed => refused!("malformed"),
                K::Encrypted => refused!("encrypted"),
                K::UnsupportedAlgorithm => refused!("unsupported_algorithm"),
                K::InvalidHeader => refused!("invalid_header"),
                K::UnknownKey => refused!("unknown_key"),
                K::InvalidSignature => refused!("invalid_signature"),
                K::Expired => refused!("expired"),
                K::NotYetValid => refused!("not_yet_valid"),
                K::InvalidClaims => refused!("invalid_claims"),
                K::InvalidIssuer => refused!("invalid_issuer"),
                K::InvalidAudience => refused!("invalid_audience"),
                K::InsufficientScope => refused!("insufficient_scope"),
                K::KeysUnavailable => refused!("keys_unavailable"),
                K::Misconfigured => refused!("misconfigured"),
                K::InvalidDpopProof => refused!("invalid_dpop_proof"),
                K::UseDpopNonce => refused!("use_dpop_nonce"),
                K::InvalidBinding => refused!("invalid_binding"),
                K::ReplayStoreUnavailable => refused!("replay_store_unavailable"),
            },
        }
    }

    /// Counts a request with the `issuer` label too: a key built per request (the label's
    /// value is shared, not copied), only when the layer asked for the label.
    #[cold]
    #[inline(never)]
    pub(super) fn count_by_issuer(outcome: Outcome, issuer: Option<&IssuerLabel>) {
        let issuer = match issuer {
            Some(IssuerLabel::Issuer(text)) => ::metrics::SharedString::from(text.clone()),
            Some(IssuerLabel::Any) => ::metrics::SharedString::const_str("any"),
            None => ::metrics::SharedString::const_str("unverified"),
        };
        let labels = request_key(outcome)
            .labels()
            .cloned()
            .chain([Label::new("issuer", issuer)])
            .collect::<Vec<_>>();
        count(&Key::from_parts(REQUESTS, labels), 1);
    }

    pub(super) fn cache_hit_key(front: bool) -> &'static Key {
        match front {
            true => key!(CACHE_HITS, "tier" => "front"),
            false => key!(CACHE_HITS, "tier" => "shared"),
        }
    }

    pub(super) fn replay_check_key(result: ReplayCheck) -> &'static Key {
        match result {
            ReplayCheck::Fresh => key!(DPOP_REPLAY_CHECKS, "result" => "fresh"),
            ReplayCheck::Replayed => key!(DPOP_REPLAY_CHECKS, "result" => "replayed"),
            ReplayCheck::StoreErrorRefused => {
                key!(DPOP_REPLAY_CHECKS, "result" => "store_error_refused")
            }
            ReplayCheck::StoreErrorAccepted => {
                key!(DPOP_REPLAY_CHECKS, "result" => "store_error_accepted")
            }
        }
    }

    pub(super) fn cache_miss_key() -> &'static Key {
        key!(CACHE_MISSES)
    }

    pub(super) fn cache_eviction_key() -> &'static Key {
        key!(CACHE_EVICTIONS)
    }

    pub(super) fn cache_entries_key() -> &'static Key {
        key!(CACHE_ENTRIES)
    }
}

/// Counts a request's outcome (see [`REQUESTS`]); `by_issuer` (the layer's
/// `label_metrics_by_issuer`) adds the `issuer` label: the issuer the token was verified for,
/// `unverified` without one.
#[inline]
pub(crate) fn request(outcome: Outcome, by_issuer: bool, issuer: Option<&IssuerLabel>) {
    #[cfg(feature = "metrics")]
    match by_issuer {
        false => record::count(record::request_key(outcome), 1),
        true => record::count_by_issuer(outcome, issuer),
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, by_issuer, issuer);
}

/// Counts a token cache hit, from the thread's front cache or the shared one.
#[inline]
pub(crate) fn cache_hit(front: bool) {
    #[cfg(feature = "metrics")]
    record::count(record::cache_hit_key(front), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = front;
}

/// Counts a token cache miss.
#[inline]
pub(crate) fn cache_miss() {
    #[cfg(feature = "metrics")]
    record::count(record::cache_miss_key(), 1);
}

/// Counts an eviction to make room.
#[inline]
pub(crate) fn cache_eviction() {
    #[cfg(feature = "metrics")]
    record::count(record::cache_eviction_key(), 1);
}

/// Entries added (positive) or removed (negative).
#[inline]
pub(crate) fn cache_entries(delta: f64) {
    #[cfg(feature = "metrics")]
    record::gauge_add(record::cache_entries_key(), delta);
    #[cfg(not(feature = "metrics"))]
    let _ = delta;
}

/// How a DPoP proof's replay check ended (the `result` label of [`DPOP_REPLAY_CHECKS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayCheck {
    Fresh,
    Replayed,
    StoreErrorRefused,
    StoreErrorAccepted,
}

/// Counts a DPoP replay check.
#[inline]
pub(crate) fn replay_check(result: ReplayCheck) {
    #[cfg(feature = "metrics")]
    record::count(record::replay_check_key(result), 1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// What an on-demand refresh was answered (the `result` label of [`KEY_REFRESHES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    Started,
    RateLimited,
    UnknownKid,
}

/// The metric keys of one remote key source, built once with its `source` label (so recording
/// them allocates nothing). Empty without the feature.
pub(crate) struct SourceMetrics {
    #[cfg(feature = "metrics")]
    keys: SourceKeys,
}

#[cfg(feature = "metrics")]
struct SourceKeys {
    fetch_ok: ::metrics::Key,
    fetch_not_modified: ::metrics::Key,
    /// In the order of [`KEY_ERROR_KINDS`].
    fetch_failed: Vec<::metrics::Key>,
    duration: ::metrics::Key,
    keys: ::metrics::Key,
    updated: ::metrics::Key,
    failures: ::metrics::Key,
    refresh_started: ::metrics::Key,
    refresh_rate_limited: ::metrics::Key,
    refresh_unknown_kid: ::metrics::Key,
    unknown_kids: ::metrics::Key,
}

impl SourceMetrics {
    /// The keys of the source labelled `source` (its URL, without query or fragment).
    pub(crate) fn new(source: &str) -> Self {
        #[cfg(feature = "metrics")]
        {
            use ::metrics::{Key, Label};
            let source: ::metrics::SharedString = source.to_owned().into();
            let only = |name: &'static str| {
                Key::from_parts(name, vec![Label::new("source", source.clone())])
            };
            let with = |name: &'static str, result: &'static str| {
                Key::from_parts(
                    name,
                    vec![
                        Label::new("source", source.clone()),
                        Label::from_static_parts("result", result),
                    ],
                )
            };
            SourceMetrics {
                keys: SourceKeys {
                    fetch_ok: with(KEY_FETCHES, "ok"),
                    fetch_not_modified: with(KEY_FETCHES, "not_modified"),
                    fetch_failed: KEY_ERROR_KINDS
                        .iter()
                        .map(|kind| with(KEY_FETCHES, key_error_label(*kind)))
                        .collect(),
                    duration: only(KEY_FETCH_DURATION),
                    keys: only(KEYS),
                    updated: only(KEY_SET_UPDATED),
                    failures: only(KEY_FAILURES),
                    refresh_started: with(KEY_REFRESHES, "started"),
                    refresh_rate_limited: with(KEY_REFRESHES, "rate_limited"),
                    refresh_unknown_kid: with(KEY_REFRESHES, "unknown_kid"),
                    unknown_kids: only(UNKNOWN_KIDS),
                },
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = source;
            SourceMetrics {}
        }
    }

    /// A fetch attempt succeeded (`modified`: a new set, else 304), leaving `keys` keys.
    pub(crate) fn fetched(&self, modified: bool, keys: usize, took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        {
            let k = &self.keys;
            let result = match modified {
                true => &k.fetch_ok,
                false => &k.fetch_not_modified,
            };
            record::count(result, 1);
            record::observe(&k.duration, took.as_secs_f64());
            record::gauge_set(&k.keys, keys as f64);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            record::gauge_set(&k.updated, now);
            record::gauge_set(&k.failures, 0.0);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (modified, keys, took);
    }

    /// A fetch attempt failed with `kind`, the `failures`th in a row.
    pub(crate) fn failed(&self, kind: KeyErrorKind, failures: u32, took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        {
            let k = &self.keys;
            if let Some(i) = KEY_ERROR_KINDS.iter().position(|x| *x == kind)
                && let Some(key) = k.fetch_failed.get(i)
            {
                record::count(key, 1);
            }
            record::observe(&k.duration, took.as_secs_f64());
            record::gauge_set(&k.failures, f64::from(failures));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (kind, failures, took);
    }

    /// An on-demand refresh was answered so.
    pub(crate) fn refresh(&self, decision: Refresh) {
        #[cfg(feature = "metrics")]
        {
            let k = &self.keys;
            let key = match decision {
                Refresh::Started => &k.refresh_started,
                Refresh::RateLimited => &k.refresh_rate_limited,
                Refresh::UnknownKid => &k.refresh_unknown_kid,
            };
            record::count(key, 1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = decision;
    }

    /// A `kid` was remembered as unknown.
    pub(crate) fn unknown_kid_remembered(&self) {
        #[cfg(feature = "metrics")]
        record::count(&self.keys.unknown_kids, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for metric in ALL {
            assert!(metric.name.starts_with("validate_jwt_"), "{}", metric.name);
            let counter = metric.metric_type == MetricType::Counter;
            assert_eq!(counter, metric.name.ends_with("_total"), "{}", metric.name);
        }
    }

    #[test]
    fn the_readme_table_is_this_table() {
        let readme = include_str!("../README.md");
        let rows: Vec<String> = readme
            .lines()
            .filter(|l| l.starts_with("| `validate_jwt_"))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = ALL
            .iter()
            .map(|m| {
                let labels = m
                    .labels
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "| `{}` | {} | {} | {} |",
                    m.name,
                    m.metric_type.as_str(),
                    labels,
                    m.description
                )
            })
            .collect();
        assert_eq!(
            rows,
            expected,
            "the README's metrics table differs from src/metrics.rs's ALL; its rows should read:\n{}",
            expected.join("\n")
        );
    }

    #[test]
    fn refusal_reasons_are_the_kinds_names() {
        for kind in JwtErrorKind::ALL {
            assert!(ALL[0].description.contains("JwtErrorKind::as_str"));
            #[cfg(feature = "metrics")]
            {
                let key = record::request_key(Outcome::Refused(*kind));
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("outcome", "refused"), ("reason", kind.as_str())]);
            }
        }
        for outcome in [Outcome::Accepted, Outcome::Anonymous, Outcome::Skipped] {
            #[cfg(feature = "metrics")]
            {
                let key = record::request_key(outcome);
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("outcome", outcome.as_str()), ("reason", "none")]);
            }
            let _ = outcome;
        }
    }
}
