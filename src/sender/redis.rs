//! [`RedisReplayStore`]: the replay view every replica shares (feature `redis`).

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::replay::{ReplayFuture, ReplayOutcome, ReplayStore, ReplayStoreError};
use crate::error::ConfigError;

/// The default time a Redis round trip may take before the check counts as failed.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// The shortest and longest [`RedisReplayStore::with_timeout`] accepted.
const TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(60);

/// DPoP replay protection in Redis (or Valkey): `SET <prefix><key> 1 NX PX <ttl>`, one
/// atomic step, so N replicas behind a load balancer accept each proof once between them.
///
/// The connection is made at the first check and re-made after a failure. A check that
/// fails or takes longer than [`with_timeout`](Self::with_timeout) is an error, answered as
/// the [`Dpop`](super::Dpop) says: 503 with `Retry-After` by default (fail-closed), or
/// accepted with a warning after
/// [`danger_fail_open_on_store_errors`](super::Dpop::danger_fail_open_on_store_errors).
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
        Ok(())
    }

    fn check_and_insert<'a>(&'a self, key: &'a str, ttl: Duration) -> ReplayFuture<'a> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.set_nx(key, ttl)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ReplayStoreError::new(format!(
                    "redis did not answer within {:?}",
                    self.timeout
                ))),
            }
        })
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
}
