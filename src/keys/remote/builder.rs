//! [`RemoteJwksBuilder`]: the settings of a [`RemoteJwks`], checked at `build()`, and the
//! configuration the coordinator and the worker read.

use std::sync::Arc;
use std::time::Duration;

use super::config::{Config, Source};
use super::coordinator::Shared;
use super::{MAX_TIMEOUT, MAX_TTL, RemoteJwks, RemoteJwksBuilder};
use crate::error::{ConfigError, KeyError, KeyErrorKind};
use crate::keys::DEFAULT_MAX_KEYS;
use crate::keys::discovery::Discovery;
use crate::keys::fetch::{self, Limits};

impl RemoteJwksBuilder {
    pub(super) fn new(url: &str, discover: bool) -> Self {
        RemoteJwksBuilder {
            url: url.to_owned(),
            discover,
            client: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_keys: DEFAULT_MAX_KEYS,
            min_refresh_interval: Duration::from_secs(30),
            ttl_bounds: (
                Duration::from_secs(5 * 60),
                Duration::from_secs(24 * 60 * 60),
            ),
            default_ttl: Duration::from_secs(60 * 60),
            also_accept: Vec::new(),
            for_issuers: Vec::new(),
            tenant_template: false,
            any_document_issuer: false,
            allow_http: false,
        }
    }

    /// Uses this HTTP client instead of the default one (which has the connect timeout, at
    /// most three redirects that never leave https nor move from a public host to a loopback or
    /// private address, and a `validate-jwt/<version>` `User-Agent`).
    ///
    /// What the crate still enforces with your client: the total [`with_timeout`](Self::with_timeout) on
    /// every request, the body cap, and the redirect rule on the *final* URL of every answer (an
    /// answer that ended on plain http after https, or on a loopback or private address when the
    /// URL asked for was not one, is refused with `KeyErrorKind::InvalidUrl`). What your client's
    /// own policy decides: which redirects it follows on the way, proxies, TLS roots, and DNS.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The connect timeout of the default client. Default: 5 s.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The limit for one request, body included. Default: 10 s. A refresh waits at most this
    /// long per request (a discovery document and a key set are two).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest document read; larger ones are refused (`KeyErrorKind::TooLarge`).
    /// Default: 1 MiB.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The most keys a key set may hold. Default: [`DEFAULT_MAX_KEYS`].
    pub fn with_max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// The least time between two on-demand refreshes (for unknown `kid`s); the first one
    /// always happens at once. Default: 30 s.
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// The window a server's `Cache-Control: max-age` is clamped to. Default: 5 min to 24 h.
    pub fn with_cache_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.ttl_bounds = (min, max);
        self
    }

    /// How long a key set is used when the server sends no `max-age` (clamped to the bounds).
    /// Default: 1 h.
    pub fn with_default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// An issuer the keys sign for (repeatable): for a JWKS URL, which names no issuer, this
    /// binds the source; for discovery it is one more beside the document's `issuer` (Azure
    /// AD's v1 issuer `https://sts.windows.net/{tid}/` beside the v2 one, say). A key whose JWK
    /// names an `issuer` of its own signs only for the issuers that match it too.
    ///
    /// ```
    /// use validate_jwt::{KeySource, RemoteJwks};
    ///
    /// let keys = RemoteJwks::jwks_url("https://idp.example/keys")
    ///     .add_issuer("https://idp.example")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(keys.issuers(), Some(vec!["https://idp.example".to_owned()]));
    /// ```
    pub fn add_issuer(mut self, issuer: &str) -> Self {
        self.also_accept.push(issuer.to_owned());
        self
    }

    /// The issuers the keys sign for, replacing a discovery document's `issuer` and any added
    /// with [`add_issuer`](Self::add_issuer) (the document is still checked against its URL).
    /// `{tenantid}` in a value is resolved per token from its `tid`.
    ///
    /// ```
    /// use validate_jwt::{KeySource, RemoteJwks};
    ///
    /// let keys = RemoteJwks::discovery_url("https://idp.example/.well-known/openid-configuration")
    ///     .with_issuers(["https://api.example", "https://idp.example/legacy"])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(keys.issuers().unwrap().len(), 2);
    /// ```
    pub fn with_issuers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.for_issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Accept a discovery document whose `issuer` is Azure AD's `{tenantid}` template although
    /// the metadata URL is not one of Azure AD's multi-tenant URLs (`common`, `organizations`,
    /// `consumers`), such as a stand-in at another path. The keys then sign for every tenant
    /// whose `tid` a token carries: restrict the tenants on the layer.
    pub fn danger_accept_tenant_template(mut self) -> Self {
        self.tenant_template = true;
        self
    }

    /// Trust the `issuer` a discovery document names even when it is not the one its URL
    /// derives from (OpenID Connect Discovery §4.3 and RFC 8414 §3.3 want them identical; APIM's
    /// `openid-config` and ASP.NET's `MetadataAddress` take the document's word). Azure AD needs
    /// it for its v1 metadata URL (`…/{tenant}/.well-known/openid-configuration` names
    /// `https://sts.windows.net/{tid}/`), tenants named by domain, B2C and External ID
    /// (`ciamlogin.com`). The keys then sign for whatever issuer the document names, another
    /// key source's included; the `{tenantid}` template is still refused outside Azure AD's
    /// multi-tenant URLs (see [`danger_accept_tenant_template`](Self::danger_accept_tenant_template)).
    ///
    /// ```
    /// use validate_jwt::RemoteJwks;
    ///
    /// // Azure AD v1 metadata, whose issuer is https://sts.windows.net/{tid}/.
    /// let keys = RemoteJwks::discovery_url(
    ///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/.well-known/openid-configuration",
    /// )
    /// .danger_accept_document_issuer()
    /// .build()
    /// .unwrap();
    /// # let _ = keys;
    /// ```
    pub fn danger_accept_document_issuer(mut self) -> Self {
        self.any_document_issuer = true;
        self
    }

    /// Allows plain `http` to any host (for tests and internal networks); without it `http` is
    /// only allowed to loopback hosts (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn danger_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks the URL and settings. Needs no runtime and makes no request.
    pub fn build(self) -> Result<RemoteJwks, ConfigError> {
        let url = fetch::parse_url(&self.url, self.allow_http)?;
        let setting = |setting: &'static str, reason: &str| {
            Err(ConfigError::InvalidSetting {
                setting,
                reason: reason.to_owned(),
            })
        };
        let (ttl_min, ttl_max) = self.ttl_bounds;
        if ttl_min > ttl_max {
            return setting(
                "RemoteJwksBuilder::with_cache_ttl_bounds",
                "the minimum is above the maximum",
            );
        }
        // Out-of-range durations are refused here rather than overflowing a deadline later.
        for (name, timeout) in [
            ("RemoteJwksBuilder::with_timeout", self.timeout),
            (
                "RemoteJwksBuilder::with_connect_timeout",
                self.connect_timeout,
            ),
        ] {
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return setting(name, "a timeout must be above zero and at most 5 minutes");
            }
        }
        if self.min_refresh_interval > MAX_TTL {
            return setting(
                "RemoteJwksBuilder::with_min_refresh_interval",
                "at most 7 days",
            );
        }
        if ttl_max > MAX_TTL {
            return setting("RemoteJwksBuilder::with_cache_ttl_bounds", "at most 7 days");
        }
        if self.default_ttl > MAX_TTL {
            return setting(
                "RemoteJwksBuilder::with_default_cache_ttl",
                "at most 7 days",
            );
        }
        if self.max_body_bytes == 0 {
            return setting("RemoteJwksBuilder::with_max_body_bytes", "must not be zero");
        }
        if self.max_keys == 0 {
            return setting("RemoteJwksBuilder::with_max_keys", "must not be zero");
        }
        if self.also_accept.iter().any(String::is_empty) {
            return setting("RemoteJwksBuilder::add_issuer", "an empty issuer");
        }
        if self.for_issuers.iter().any(String::is_empty) {
            return setting("RemoteJwksBuilder::with_issuers", "an empty issuer");
        }
        let source = if self.discover {
            let discovery = Discovery::new(url, self.tenant_template).map_err(|reason| {
                ConfigError::InvalidUrl {
                    url: self.url.clone(),
                    reason: reason.to_owned(),
                }
            })?;
            Source::Discovery(match self.any_document_issuer {
                true => discovery.accepting_document_issuer(),
                false => discovery,
            })
        } else {
            Source::Jwks(url)
        };
        let client = match self.client {
            Some(client) => client,
            None => fetch::default_client(self.connect_timeout, self.timeout, self.allow_http)
                .map_err(|e| {
                    ConfigError::HttpClient(
                        KeyError::new(KeyErrorKind::Other, "the default client").with_source(e),
                    )
                })?,
        };
        let config = Config {
            source,
            client,
            limits: Limits {
                timeout: self.timeout,
                max_body_bytes: self.max_body_bytes,
                allow_http: self.allow_http,
            },
            max_keys: self.max_keys,
            min_refresh_interval: self.min_refresh_interval,
            ttl_min,
            ttl_max,
            default_ttl: self.default_ttl,
            also_accept: self.also_accept,
            for_issuers: self.for_issuers,
            allow_http: self.allow_http,
        };
        Ok(RemoteJwks {
            shared: Arc::new(Shared::new(config)),
        })
    }
}
