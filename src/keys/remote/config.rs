//! What a [`RemoteJwks`](super::RemoteJwks) was configured with, checked by its builder and
//! read by the coordinator and the worker.

use std::time::Duration;

use reqwest::Url;

use crate::keys::discovery::Discovery;
use crate::keys::fetch::Limits;

pub(super) enum Source {
    Jwks(Url),
    Discovery(Discovery),
}

pub(super) struct Config {
    pub(super) source: Source,
    pub(super) client: reqwest::Client,
    pub(super) limits: Limits,
    pub(super) max_keys: usize,
    pub(super) min_refresh_interval: Duration,
    pub(super) ttl_min: Duration,
    pub(super) ttl_max: Duration,
    pub(super) default_ttl: Duration,
    pub(super) also_accept: Vec<String>,
    /// `with_issuers`: when set, the keys sign for these instead of the document's issuer.
    pub(super) for_issuers: Vec<String>,
    pub(super) allow_http: bool,
}

impl Config {
    /// How long a fetched set is used.
    pub(super) fn ttl(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.ttl_min, self.ttl_max)
    }

    /// The `source` label of this source's metrics: its URL without credentials, query or
    /// fragment (set by configuration, so of bounded cardinality).
    pub(super) fn metrics_label(&self) -> String {
        let url = match &self.source {
            Source::Jwks(url) => url,
            Source::Discovery(discovery) => discovery.url(),
        };
        let mut url = url.clone();
        url.set_query(None);
        url.set_fragment(None);
        crate::keys::fetch::display_url(&url)
    }

    /// How long one attempt can take: each request is bounded by the timeout.
    pub(super) fn attempt_bound(&self) -> Duration {
        let requests = match self.source {
            Source::Jwks(_) => 1,
            Source::Discovery(_) => 2,
        };
        self.limits.timeout * requests + Duration::from_secs(1)
    }
}
