//! [`Health`]: the layer's key sources in one answer, for a readiness probe
//! ([`ValidateJwtLayer::health`](crate::ValidateJwtLayer::health); with the `axum` feature,
//! [`validate_jwt::axum::health_route`](crate#features) answers it as 200 / 503 JSON).
//!
//! * **ready**: every key source has a key set and its last fetch succeeded;
//! * **degraded**: tokens are still validated, but a source serves stale keys (its refreshes
//!   fail; `degraded_since` says since when) or, with several sources, one has no key set;
//! * **unavailable**: no source has a key set (a cold start before the first fetch, or with
//!   the endpoint down): every token is answered 503.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::Serializer;

use crate::keys::{KeySource, RemoteJwks};

/// What the layer knows of each key source, beyond its current key set.
#[derive(Clone)]
pub(crate) enum Probe {
    /// A JWKS or discovery URL: its status.
    Remote(RemoteJwks),
    /// Keys given in configuration.
    Static,
    /// A [`KeySource`] of the user's: only whether it has a key set.
    Custom,
}

/// The aggregated state of [`Health`] and of each [`SourceHealth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Every source has fresh keys.
    Ready,
    /// Tokens are validated, but with stale keys or without one source's keys.
    Degraded,
    /// No key set at all: every token is answered 503.
    Unavailable,
}

impl HealthStatus {
    /// `"ready"`, `"degraded"` or `"unavailable"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ready => "ready",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unavailable => "unavailable",
        }
    }
}

/// The state of a layer's key sources, from
/// [`ValidateJwtLayer::health`](crate::ValidateJwtLayer::health); serialises to the JSON a
/// readiness probe reads (times in seconds since the Unix epoch, durations in seconds).
///
/// ```
/// use validate_jwt::{HealthStatus, StaticKeys, ValidateJwtLayer};
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .add_audience("api://echo")
///     .build()
///     .unwrap();
/// let health = layer.health();
/// assert_eq!(health.status(), HealthStatus::Ready);
/// assert_eq!(health.http_status(), 200);
/// let json = serde_json::to_value(&health).unwrap();
/// assert_eq!(json["status"], "ready");
/// assert_eq!(json["sources"][0]["kind"], "static");
/// assert_eq!(json["sources"][0]["keys"], 1);
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Health {
    status: HealthStatus,
    #[serde(serialize_with = "unix_seconds")]
    degraded_since: Option<SystemTime>,
    sources: Vec<SourceHealth>,
}

impl Health {
    /// Ready, degraded or unavailable.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Since when the oldest of the failures behind a degraded state has lasted (the first
    /// failed refresh of a source serving stale keys, or of a source with no keys).
    pub fn degraded_since(&self) -> Option<SystemTime> {
        self.degraded_since
    }

    /// Each key source, in the order they were configured (`add_key_source`s, then URLs,
    /// then static keys).
    pub fn sources(&self) -> &[SourceHealth] {
        &self.sources
    }

    /// The status a readiness probe should answer: 200 while tokens can be validated (ready or
    /// degraded), 503 when they cannot (unavailable).
    pub fn http_status(&self) -> http::StatusCode {
        match self.status {
            HealthStatus::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::OK,
        }
    }
}

/// One key source in [`Health`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SourceHealth {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    status: HealthStatus,
    keys: usize,
    #[serde(serialize_with = "unix_seconds")]
    last_success: Option<SystemTime>,
    #[serde(rename = "age_seconds", serialize_with = "seconds")]
    age: Option<Duration>,
    consecutive_failures: u32,
    last_error: Option<String>,
    #[serde(serialize_with = "unix_seconds")]
    failing_since: Option<SystemTime>,
    #[serde(rename = "next_attempt_in_seconds", serialize_with = "seconds")]
    next_attempt_in: Option<Duration>,
}

impl SourceHealth {
    /// `"remote"` (a JWKS or discovery URL), `"static"` (configured keys) or `"custom"` (a
    /// [`KeySource`] of yours: only its key count is known).
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// A remote source's URL (without user name and password).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Ready (keys, last fetch fine), degraded (stale keys: refreshes fail) or unavailable (no keys).
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Keys in the current set.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// When the key set was last fetched or revalidated.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.last_success
    }

    /// The age of the keys in use.
    pub fn age(&self) -> Option<Duration> {
        self.age
    }

    /// Failed fetches since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Since when its fetches have failed.
    pub fn failing_since(&self) -> Option<SystemTime> {
        self.failing_since
    }

    /// How soon the next fetch is planned.
    pub fn next_attempt_in(&self) -> Option<Duration> {
        self.next_attempt_in
    }
}

/// The health of these sources (`probes` has one entry per provider, in the same order).
pub(crate) fn health(providers: &[Arc<dyn KeySource>], probes: &[Probe]) -> Health {
    let sources: Vec<SourceHealth> = providers
        .iter()
        .zip(probes)
        .map(|(provider, probe)| source_health(provider.as_ref(), probe))
        .collect();
    let serving = sources.iter().filter(|s| s.keys > 0).count();
    let status = if serving == 0 {
        HealthStatus::Unavailable
    } else if sources.iter().all(|s| s.status == HealthStatus::Ready) {
        HealthStatus::Ready
    } else {
        HealthStatus::Degraded
    };
    let degraded_since = match status {
        HealthStatus::Degraded => sources.iter().filter_map(|s| s.failing_since).min(),
        _ => None,
    };
    Health {
        status,
        degraded_since,
        sources,
    }
}

fn source_health(provider: &dyn KeySource, probe: &Probe) -> SourceHealth {
    let keys = provider.current().map_or(0, |set| set.len());
    let bare = |kind| SourceHealth {
        kind,
        url: None,
        status: match keys {
            0 => HealthStatus::Unavailable,
            _ => HealthStatus::Ready,
        },
        keys,
        last_success: None,
        age: None,
        consecutive_failures: 0,
        last_error: None,
        failing_since: None,
        next_attempt_in: None,
    };
    match probe {
        Probe::Static => bare("static"),
        Probe::Custom => bare("custom"),
        Probe::Remote(remote) => {
            let status = remote.status();
            let state = match (keys, status.consecutive_failures()) {
                (0, _) => HealthStatus::Unavailable,
                (_, 0) => HealthStatus::Ready,
                _ => HealthStatus::Degraded,
            };
            SourceHealth {
                kind: "remote",
                url: Some(remote.display_url()),
                status: state,
                keys,
                last_success: status.last_success(),
                age: status.age(),
                consecutive_failures: status.consecutive_failures(),
                last_error: status.last_error().map(ToString::to_string),
                failing_since: status.failing_since(),
                next_attempt_in: status.next_attempt_in(),
            }
        }
    }
}

fn unix_seconds<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match at.and_then(|at| at.duration_since(UNIX_EPOCH).ok()) {
        Some(since) => s.serialize_u64(since.as_secs()),
        None => s.serialize_none(),
    }
}

fn seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}
