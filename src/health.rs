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

use crate::keys::{KeySource, KeySourceStatus, RemoteJwks};

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
    #[serde(serialize_with = "unix_seconds_of")]
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

/// One key source in [`Health`]: its kind, URL, state and key count, and for a remote source
/// its [`KeySourceStatus`] (last success, age, failures, last error, next attempt).
///
/// Serialised, every source has the same members (`null` where a static or custom source has
/// nothing to say).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SourceHealth {
    kind: &'static str,
    url: Option<String>,
    status: HealthStatus,
    keys: usize,
    remote: Option<KeySourceStatus>,
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

    /// A remote source's fetch state (the same as [`RemoteJwks::status`]); `None` for static
    /// and custom sources.
    ///
    /// ```
    /// use validate_jwt::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let issuer = TestIssuer::start().unwrap();
    /// let layer = issuer.layer_builder().build().unwrap();
    /// layer.ready().await.unwrap();
    /// let health = layer.health();
    /// let remote = health.sources()[0].remote().unwrap();
    /// assert_eq!(remote.consecutive_failures(), 0);
    /// assert!(remote.last_success().is_some());
    /// # }
    /// ```
    pub fn remote(&self) -> Option<&KeySourceStatus> {
        self.remote.as_ref()
    }
}

impl Serialize for SourceHealth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.remote.as_ref();
        let mut out = s.serialize_struct("SourceHealth", 10)?;
        out.serialize_field("kind", self.kind)?;
        if let Some(url) = &self.url {
            out.serialize_field("url", url)?;
        }
        out.serialize_field("status", &self.status)?;
        out.serialize_field("keys", &self.keys)?;
        out.serialize_field(
            "last_success",
            &unix_seconds(r.and_then(|r| r.last_success())),
        )?;
        out.serialize_field("age_seconds", &seconds(r.and_then(|r| r.age())))?;
        out.serialize_field(
            "consecutive_failures",
            &r.map_or(0, |r| r.consecutive_failures()),
        )?;
        out.serialize_field(
            "last_error",
            &r.and_then(|r| r.last_error()).map(ToString::to_string),
        )?;
        out.serialize_field(
            "failing_since",
            &unix_seconds(r.and_then(|r| r.failing_since())),
        )?;
        out.serialize_field(
            "next_attempt_in_seconds",
            &seconds(r.and_then(|r| r.next_attempt_in())),
        )?;
        out.end()
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
        HealthStatus::Degraded => sources
            .iter()
            .filter_map(|s| s.remote.as_ref()?.failing_since())
            .min(),
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
    let (kind, url, remote) = match probe {
        Probe::Static => ("static", None, None),
        Probe::Custom => ("custom", None, None),
        Probe::Remote(remote) => ("remote", Some(remote.display_url()), Some(remote.status())),
    };
    let failing = remote
        .as_ref()
        .is_some_and(|r| r.consecutive_failures() > 0);
    let status = match (keys, failing) {
        (0, _) => HealthStatus::Unavailable,
        (_, false) => HealthStatus::Ready,
        (_, true) => HealthStatus::Degraded,
    };
    SourceHealth {
        kind,
        url,
        status,
        keys,
        remote,
    }
}

/// Seconds since the Unix epoch (`null` for none).
fn unix_seconds(at: Option<SystemTime>) -> Option<u64> {
    at.and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_secs())
}

/// Seconds, to the millisecond (`null` for none).
fn seconds(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn unix_seconds_of<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    unix_seconds(*at).serialize(s)
}
