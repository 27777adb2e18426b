//! The checks of [`ValidateJwtBuilder::build`](super::ValidateJwtBuilder::build), one function
//! per concept, each turning settings into a checked part of the layer or a [`ConfigError`].

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, StatusCode};

use super::RemoteKind;
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::claims::Requirement;
use crate::error::ConfigError;
use crate::extract::TokenLocations;
use crate::health::Probe;
use crate::issuer::{IssuerPattern, Statement};
use crate::keys::{KeySource, RemoteJwks, StaticKeys};
use crate::response::{Answers, is_quotable};

/// One key source as the builder collects it: the source, whether the issuers it states are a
/// discovery document's, what the health check knows of it, and its discovery URL's issuer
/// (RFC 9728 `authorization_servers`).
pub(super) type SourceEntry = (Arc<dyn KeySource>, bool, Probe, Option<String>);

/// The key sources, built and checked, with what the algorithm check needs to know of them.
pub(super) struct KeySources {
    list: Vec<SourceEntry>,
    has_hmac: bool,
    /// The algorithms the static keys verify, and whether every source is static.
    static_families: AlgorithmSet,
    only_static: bool,
}

impl KeySources {
    pub(super) fn new(
        mut list: Vec<SourceEntry>,
        remote: &[(RemoteKind, String)],
        allow_http: bool,
        http_client: Option<&reqwest::Client>,
        static_keys: Vec<StaticKeys>,
    ) -> Result<Self, ConfigError> {
        for (kind, url) in remote {
            let mut builder = match kind {
                RemoteKind::Discovery => RemoteJwks::discovery_url(url),
                RemoteKind::Jwks => RemoteJwks::jwks_url(url),
            };
            if allow_http {
                builder = builder.danger_allow_http();
            }
            if let Some(client) = http_client {
                builder = builder.with_http_client(client.clone());
            }
            let remote = builder.build()?;
            let discovered = remote.issuer_is_discovered();
            let server = remote.discovery_issuer().map(Into::into);
            list.push((
                Arc::new(remote.clone()),
                discovered,
                Probe::Remote(remote),
                server,
            ));
        }
        let only_static = list.is_empty();
        let mut has_hmac = false;
        let mut static_families = AlgorithmSet::empty();
        for keys in static_keys {
            if let Some(e) = keys.error() {
                return Err(ConfigError::InvalidKey(e.clone()));
            }
            has_hmac |= keys.has_hmac();
            let (source, set) = keys.into_source().map_err(ConfigError::InvalidKey)?;
            for key in set.keys() {
                static_families = static_families.union(key.algorithms());
            }
            list.push((Arc::new(source), false, Probe::Static, None));
        }
        if list.is_empty() {
            return Err(ConfigError::NoKeySource);
        }
        Ok(KeySources {
            list,
            has_hmac,
            static_families,
            only_static,
        })
    }

    /// What each source states about its issuers, for the issuer rule.
    pub(super) fn statements(&self) -> Vec<Statement> {
        self.list
            .iter()
            .map(|(p, discovered, ..)| Statement {
                issuers: p
                    .issuers()
                    .unwrap_or_default()
                    .iter()
                    .filter(|i| !i.is_empty())
                    .map(|i| IssuerPattern::new(i))
                    .collect(),
                discovered: *discovered,
            })
            .collect()
    }

    /// Each source's discovery URL issuer, in order (`None` for other sources).
    pub(super) fn discovery_issuers(&self) -> Vec<Option<&str>> {
        self.list.iter().map(|(.., s)| s.as_deref()).collect()
    }

    /// The providers, and what the health check knows of each (same order).
    pub(super) fn into_providers(self) -> (Vec<Arc<dyn KeySource>>, Vec<Probe>) {
        self.list
            .into_iter()
            .map(|(p, _, probe, _)| (p, probe))
            .unzip()
    }
}

/// The audience decision: some audience, or the explicit opt-out.
pub(super) fn audiences(
    audiences: Vec<String>,
    any_audience: bool,
) -> Result<Vec<Box<str>>, ConfigError> {
    if audiences.is_empty() && !any_audience {
        return Err(ConfigError::NoAudienceDecision);
    }
    if audiences.iter().any(String::is_empty) {
        return Err(ConfigError::InvalidSetting {
            setting: "add_audience",
            reason: "an empty audience".into(),
        });
    }
    Ok(audiences.into_iter().map(String::into_boxed_str).collect())
}

/// The algorithm allow-list: the asymmetric algorithms (plus HS* with a configured secret) by
/// default; never HS* without a secret; never a list no configured key can use.
pub(super) fn algorithms(
    listed: &[Algorithm],
    sources: &KeySources,
) -> Result<AlgorithmSet, ConfigError> {
    let algorithms = if listed.is_empty() {
        let mut set = AlgorithmSet::of(Algorithm::ASYMMETRIC.iter().copied());
        if sources.has_hmac {
            set = set.union(AlgorithmSet::of([
                Algorithm::HS256,
                Algorithm::HS384,
                Algorithm::HS512,
            ]));
        }
        set
    } else {
        if let Some(alg) = listed.iter().find(|a| a.is_hmac())
            && !sources.has_hmac
        {
            return Err(ConfigError::HmacWithoutSecret(alg.as_str()));
        }
        AlgorithmSet::of(listed.iter().copied())
    };
    if sources.only_static && algorithms.intersect(sources.static_families).is_empty() {
        return Err(ConfigError::NoAlgorithm(
            "no allowed algorithm fits the configured keys".into(),
        ));
    }
    Ok(algorithms)
}

/// Durations and sizes within their ranges.
pub(super) fn limits(
    key_wait: Duration,
    leeway: Duration,
    max_token_bytes: usize,
) -> Result<(), ConfigError> {
    if key_wait.is_zero() || key_wait > Duration::from_secs(10 * 60) {
        return Err(ConfigError::InvalidSetting {
            setting: "with_key_wait",
            reason: "the key wait must be above zero and at most 10 minutes".into(),
        });
    }
    if leeway > Duration::from_secs(3600) {
        return Err(ConfigError::InvalidSetting {
            setting: "with_leeway",
            reason: "a leeway above one hour".into(),
        });
    }
    if max_token_bytes < 256 {
        return Err(ConfigError::InvalidSetting {
            setting: "with_max_token_size",
            reason: "a limit below 256 bytes".into(),
        });
    }
    Ok(())
}

/// Where tokens are read: valid header, scheme, query parameter and cookie names.
pub(super) fn token_locations(
    mut locations: TokenLocations,
    header_name: Option<String>,
    scheme: Option<String>,
    query: Option<String>,
    cookie: Option<String>,
) -> Result<TokenLocations, ConfigError> {
    if let Some(name) = header_name {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::InvalidTokenLocation(format!("header name {name:?}")))?;
        locations.scheme = (name == http::header::AUTHORIZATION).then(|| "Bearer".into());
        locations.header = Some(name);
    }
    if let Some(scheme) = scheme {
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidTokenLocation(format!(
                "scheme {scheme:?}"
            )));
        }
        locations.scheme = Some(scheme.into());
    }
    let simple = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    };
    if let Some(q) = query {
        if !simple(&q) {
            return Err(ConfigError::InvalidTokenLocation(format!(
                "query parameter {q:?}"
            )));
        }
        locations.query = Some(q.into());
    }
    if let Some(c) = cookie {
        if !simple(&c) {
            return Err(ConfigError::InvalidTokenLocation(format!("cookie {c:?}")));
        }
        locations.cookie = Some(c.into());
    }
    Ok(locations)
}

/// How refusals are answered: a 4xx failure status, header-safe message and realm.
pub(super) fn answers(
    realm: Option<String>,
    failed_status: Option<u16>,
    failed_message: Option<String>,
    responder: Option<Arc<crate::response::Responder>>,
) -> Result<Answers, ConfigError> {
    let failed_status = match failed_status {
        None => None,
        Some(code) => match StatusCode::from_u16(code) {
            Ok(s) if s.is_client_error() => Some(s),
            _ => {
                return Err(ConfigError::InvalidFailureAnswer(format!(
                    "status {code} is not a 4xx status"
                )));
            }
        },
    };
    if failed_message.as_deref().is_some_and(|m| !is_quotable(m)) {
        return Err(ConfigError::InvalidFailureAnswer(
            "the message must be visible ASCII".into(),
        ));
    }
    if realm.as_deref().is_some_and(|r| !is_quotable(r)) {
        return Err(ConfigError::InvalidFailureAnswer(
            "the realm must be visible ASCII".into(),
        ));
    }
    Ok(Answers {
        realm: realm.map(Into::into),
        failed_status,
        failed_message: failed_message.map(Into::into),
        responder,
        retry_after_secs: 10,
        dpop: None,
        resource_metadata: None,
    })
}

/// The layer's requirements, all of which must hold, checked to be satisfiable.
pub(super) fn requirement(
    requirements: Vec<Requirement>,
) -> Result<Option<Requirement>, ConfigError> {
    let requirement = match requirements.len() {
        0 => None,
        1 => requirements.into_iter().next(),
        _ => Some(Requirement::all(requirements)),
    };
    if let Some(r) = &requirement {
        r.validate()?;
    }
    Ok(requirement)
}

/// DPoP and certificate binding: checked, with the `DPoP` scheme and challenge turned on.
pub(super) fn sender(
    dpop: Option<crate::sender::Dpop>,
    certificates: Option<crate::sender::ClientCertificates>,
    clock: Arc<dyn crate::clock::Clock>,
    locations: &mut TokenLocations,
    answers: &mut Answers,
) -> Result<Option<crate::sender::Sender>, ConfigError> {
    let Some(sender) = crate::sender::Sender::new(dpop, certificates, clock)? else {
        return Ok(None);
    };
    if sender.dpop_enabled() {
        let authorization = locations.header.as_ref() == Some(&http::header::AUTHORIZATION)
            && locations
                .scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("Bearer"));
        if !authorization {
            return Err(ConfigError::InvalidSetting {
                setting: "with_dpop",
                reason: "DPoP tokens come in `Authorization`: keep the default token header and scheme (no `with_header_name` / `with_scheme`)".into(),
            });
        }
        locations.dpop = true;
        answers.dpop = sender.answers().map(Arc::new);
    }
    Ok(Some(sender))
}
