//! [`RedisReplayStore`]: the replay view every replica shares (feature `redis`).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::replay::{ReplayFuture, ReplayOutcome, ReplayStore, ReplayStoreError};
use crate::error::ConfigError;

/// The default time a Redis round trip may take before the check counts as failed.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// The shortest and longest [`RedisReplayStore::with_timeout`] accepted.
const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(60);
/// The default number of failed checks in a row after which the store stops asking Redis for
/// a while ([`RedisReplayStore::with_circuit_breaker`]).
pub const DEFAULT_BREAKER_FAILURES: u32 = 3;
/// The default time the store answers at once, without asking Redis, once it stopped asking.
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(1);
/// The accepted [`RedisReplayStore::with_circuit_breaker`] settings.
const BREAKER_FAILURES: std::ops::RangeInclusive<u32> = 1..=1000;
const BREAKER_OPEN_FOR: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(10)..=Duration::from_secs(600);

/// DPoP replay protection in Redis (or Valkey): `SET <prefix><key> 1 NX PX <ttl>`, one
/// atomic step, so N replicas behind a load balancer accept each proof once between them.
///
/// The connection is made at the first check and re-made after a failure. A check that
/// fails or takes longer than [`with_timeout`](Self::with_timeout) is an error, answered as
/// the [`Dpop`](super::Dpop) says: 503 with `Retry-After` by default (fail-closed), or
/// accepted with a warning after
/// [`danger_fail_open_on_store_errors`](super::Dpop::danger_fail_open_on_store_errors).
///
/// **When Redis is down.** After [`DEFAULT_BREAKER_FAILURES`] failed checks in a row the store
/// stops asking Redis for [`DEFAULT_BREAKER_OPEN_FOR`]: checks then fail at once instead of
/// each waiting for the timeout (a circuit breaker; see
/// [`with_circuit_breaker`](Self::with_circuit_breaker)). After that time one check asks Redis
/// again while the others still fail at once; its success closes the breaker, its failure opens
/// it again.
///
/// ```
/// use validate_jwt::sender::{Dpop, RedisReplayStore};
/// let store = RedisReplayStore::new("redis://127.0.0.1:6379/").unwrap();
/// let dpop = Dpop::required().with_replay_store(store);
/// # let _ = dpop;
/// ```
pub struct RedisReplayStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: Box<str>,
    timeout: Duration,
    breaker: Breaker,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field(
                "server",
                &self.client.get_connection_info().addr().to_string(),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("breaker_failures", &self.breaker.failures)
            .field("breaker_open_for", &self.breaker.open_for)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// A store at `url` (`redis://[user:password@]host[:port][/db]`).
    /// Only parses the URL; nothing is connected until the first check.
    pub fn new(url: &str) -> Result<Self, ReplayStoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| ReplayStoreError::new("invalid redis URL").with_source(e))?;
        Ok(RedisReplayStore {
            client,
            connection: OnceCell::new(),
            prefix: "validate-jwt:dpop:".into(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            breaker: Breaker::new(DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN_FOR),
        })
    }

    /// The prefix of every key (default `validate-jwt:dpop:`).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// How long one check may take, connecting included (default [`DEFAULT_REDIS_TIMEOUT`]):
    /// 1 ms to 60 s. A layer built with a store outside that range is a
    /// [`ConfigError::InvalidSetting`] at `build()` (zero would fail every check).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After `failures` failed checks in a row (1 to 1,000; default
    /// [`DEFAULT_BREAKER_FAILURES`]), checks fail at once for `open_for` (10 ms to 10 min;
    /// default [`DEFAULT_BREAKER_OPEN_FOR`]) without asking Redis; then one check asks again.
    /// Settings outside those ranges are a [`ConfigError::InvalidSetting`] at `build()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use validate_jwt::sender::RedisReplayStore;
    /// let store = RedisReplayStore::new("redis://127.0.0.1:6379/")
    ///     .unwrap()
    ///     .with_circuit_breaker(5, Duration::from_secs(2));
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_circuit_breaker(mut self, failures: u32, open_for: Duration) -> Self {
        self.breaker = Breaker::new(failures, open_for);
        self
    }

    async fn connection(&self) -> Result<ConnectionManager, ReplayStoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let manager = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(|e| ReplayStoreError::new("cannot connect to redis").with_source(e))?;
        Ok(manager.clone())
    }

    async fn set_nx(&self, key: &str, ttl: Duration) -> Result<ReplayOutcome, ReplayStoreError> {
        let mut connection = self.connection().await?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut connection)
            .await
            .map_err(|e| ReplayStoreError::new("redis SET NX failed").with_source(e))?;
        Ok(match set {
            Some(_) => ReplayOutcome::Fresh,
            None => ReplayOutcome::Replayed,
        })
    }
}

impl ReplayStore for RedisReplayStore {
    fn check_settings(&self) -> Result<(), ConfigError> {
        if !TIMEOUT_RANGE.contains(&self.timeout) {
            return Err(ConfigError::InvalidSetting {
                setting: "RedisReplayStore::with_timeout",
                reason: format!("{:?} is outside 1 ms to 60 s", self.timeout),
            });
        }
        if !BREAKER_FAILURES.contains(&self.breaker.failures) {
            return Err(ConfigError::InvalidSetting {
                setting: "RedisReplayStore::with_circuit_breaker",
                reason: format!("{} failures is outside 1 to 1000", self.breaker.failures),
            });
        }
        if !BREAKER_OPEN_FOR.contains(&self.breaker.open_for) {
            return Err(ConfigError::InvalidSetting {
                setting: "RedisReplayStore::with_circuit_breaker",
                reason: format!("{:?} is outside 10 ms to 10 min", self.breaker.open_for),
            });
        }
        Ok(())
    }

    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        Box::pin(async move {
            let attempt = self.breaker.admit()?;
            let outcome = match tokio::time::timeout(self.timeout, self.set_nx(key, ttl)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ReplayStoreError::new(format!(
                    "redis did not answer within {:?}",
                    self.timeout
                ))),
            };
            attempt.finish(outcome.is_ok());
            outcome
        })
    }
}

/// The circuit breaker: counts failed checks in a row and, past the limit, answers at once for
/// a while. A `std` mutex held for a few instructions, never across an `await`.
struct Breaker {
    failures: u32,
    open_for: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    /// Failed checks in a row.
    failed: u32,
    /// Until when checks fail at once (open), if they do.
    open_until: Option<Instant>,
    /// A check is asking Redis after the open time (half-open): the others still fail at once.
    probing: bool,
}

/// One check let through by the breaker; it reports how it went with [`Attempt::finish`]. Dropped
/// unfinished (the request went away), it counts as failed, so a probe never stays pending.
struct Attempt<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl Breaker {
    fn new(failures: u32, open_for: Duration) -> Self {
        Breaker {
            failures,
            open_for,
            state: Mutex::new(BreakerState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // The state is a few plain fields, always left consistent: a poisoned lock still holds
        // a usable state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a check ask Redis, or says why not.
    fn admit(&self) -> Result<Attempt<'_>, ReplayStoreError> {
        let mut state = self.state();
        if let Some(until) = state.open_until {
            let now = Instant::now();
            if now < until {
                return Err(ReplayStoreError::new(format!(
                    "redis failed {} checks in a row: not asked again for {:?} (circuit open)",
                    state.failed,
                    until - now,
                )));
            }
            if state.probing {
                return Err(ReplayStoreError::new(format!(
                    "redis failed {} checks in a row: one check is trying it again (circuit \
                     half-open)",
                    state.failed,
                )));
            }
            state.probing = true;
        }
        Ok(Attempt {
            breaker: self,
            done: false,
        })
    }

    fn record(&self, ok: bool) {
        let mut state = self.state();
        if ok {
            *state = BreakerState::default();
            return;
        }
        state.failed = state.failed.saturating_add(1);
        if state.probing || state.failed >= self.failures {
            // Capped as `build()` caps it, for a store used without a layer.
            let open_for = self.open_for.min(*BREAKER_OPEN_FOR.end());
            state.open_until = Some(Instant::now() + open_for);
        }
        state.probing = false;
    }
}

impl Attempt<'_> {
    fn finish(mut self, ok: bool) {
        self.done = true;
        self.breaker.record(ok);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(false);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_timeout_outside_1_ms_to_60_s_is_a_settings_error() {
        let store = |timeout| {
            RedisReplayStore::new("redis://127.0.0.1:1/")
                .unwrap()
                .with_timeout(timeout)
        };
        for bad in [
            Duration::ZERO,
            Duration::from_micros(999),
            Duration::from_secs(60) + Duration::from_nanos(1),
            Duration::MAX,
        ] {
            assert!(
                matches!(
                    store(bad).check_settings(),
                    Err(ConfigError::InvalidSetting {
                        setting: "RedisReplayStore::with_timeout",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        for good in [
            Duration::from_millis(1),
            DEFAULT_REDIS_TIMEOUT,
            Duration::from_secs(60),
        ] {
            assert!(store(good).check_settings().is_ok(), "{good:?}");
        }
    }

    #[test]
    fn breaker_settings_outside_their_ranges_are_settings_errors() {
        let store = |failures, open_for| {
            RedisReplayStore::new("redis://127.0.0.1:1/")
                .unwrap()
                .with_circuit_breaker(failures, open_for)
        };
        let second = Duration::from_secs(1);
        for (failures, open_for) in [
            (0, second),
            (1001, second),
            (3, Duration::from_millis(9)),
            (3, Duration::from_secs(601)),
            (3, Duration::MAX),
        ] {
            assert!(
                matches!(
                    store(failures, open_for).check_settings(),
                    Err(ConfigError::InvalidSetting {
                        setting: "RedisReplayStore::with_circuit_breaker",
                        ..
                    })
                ),
                "{failures} {open_for:?}"
            );
        }
        for (failures, open_for) in [
            (1, Duration::from_millis(10)),
            (1000, Duration::from_secs(600)),
        ] {
            assert!(store(failures, open_for).check_settings().is_ok());
        }
    }

    /// The breaker's states, by paused time: closed, open after the limit, one probe after the
    /// open time (the others still refused), closed again by the probe's success or open
    /// again by its failure, and a probe that goes away counts as failed.
    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_the_limit_and_probes_once_after_the_open_time() {
        let open_for = Duration::from_secs(1);
        let breaker = Breaker::new(3, open_for);
        let fail = |b: &Breaker| b.admit().map(|a| a.finish(false)).is_ok();
        // Two failures: still closed. A success resets the count.
        assert!(fail(&breaker) && fail(&breaker));
        breaker.admit().unwrap().finish(true);
        assert!(fail(&breaker) && fail(&breaker) && fail(&breaker));
        // Open: refused at once, with the reason.
        let refused = breaker.admit().err().unwrap().to_string();
        assert!(refused.contains("3 checks in a row"), "{refused}");
        assert!(refused.contains("circuit open"), "{refused}");
        tokio::time::advance(open_for - Duration::from_millis(1)).await;
        assert!(breaker.admit().is_err());
        // Half-open: one probe, the others refused while it runs.
        tokio::time::advance(Duration::from_millis(1)).await;
        let probe = breaker.admit().unwrap();
        let refused = breaker.admit().err().unwrap().to_string();
        assert!(refused.contains("half-open"), "{refused}");
        // The probe fails: open again for the whole time.
        probe.finish(false);
        assert!(breaker.admit().is_err());
        tokio::time::advance(open_for).await;
        // A probe dropped unfinished counts as failed: open again, never stuck half-open.
        drop(breaker.admit().unwrap());
        assert!(breaker.admit().is_err());
        tokio::time::advance(open_for).await;
        // The probe succeeds: closed, every check let through again.
        breaker.admit().unwrap().finish(true);
        assert!(fail(&breaker) && fail(&breaker));
        assert!(breaker.admit().is_ok());
    }

    /// With a limit of one, the first failure opens it.
    #[tokio::test(start_paused = true)]
    async fn a_limit_of_one_opens_at_the_first_failure() {
        let breaker = Breaker::new(1, Duration::from_millis(10));
        breaker.admit().unwrap().finish(false);
        assert!(breaker.admit().is_err());
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(breaker.admit().is_ok());
    }
}
