//! One HTTP GET for a key source: the https rule, a capped streamed body, `ETag` revalidation,
//! `Cache-Control` lifetimes, and failures sorted into [`KeyErrorKind`]s.
//!
//! (A quarter of the file is tests.)

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::error::{ConfigError, KeyError, KeyErrorKind};

/// The `User-Agent` of the default client.
pub(crate) const USER_AGENT: &str = concat!("validate-jwt/", env!("CARGO_PKG_VERSION"));

/// Redirects the default client follows at most.
const MAX_REDIRECTS: usize = 3;

/// Whether the URL's host is `localhost`, in `127.0.0.0/8` or `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Whether the URL's host is not a public address: loopback (`localhost`, `*.localhost`,
/// `127.0.0.0/8`, `::1`), private (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`), link-local
/// (`169.254/16` — cloud metadata endpoints live there — and `fe80::/10`), shared (`100.64/10`),
/// unspecified or broadcast. Only IP literals and the `localhost` names are recognised: what a
/// DNS name resolves to is the resolver's business.
pub(crate) fn is_internal(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => internal_v4(v4),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
        Err(_) => false,
    }
}

fn internal_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b))
}

/// The rule for a URL another document pointed at (a discovery document's `jwks_uri`, a
/// redirect): the https rule, and never a loopback or private address when `from` was not one.
pub(crate) fn check_pointed(url: &Url, from: &Url, allow_http: bool) -> Result<(), &'static str> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host");
    }
    if is_internal(from) {
        return check_scheme(url, allow_http);
    }
    if is_internal(url) {
        return Err(
            "it points at a loopback or private address, and the URL it came from does not",
        );
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => Err("plain http; use https (or `danger_allow_http`)"),
        _ => Err("the scheme must be https"),
    }
}

/// The https rule: `https`, or plain `http` to a loopback host or with `allow_http`.
pub(crate) fn check_scheme(url: &Url, allow_http: bool) -> Result<(), &'static str> {
    match url.scheme() {
        _ if url.host_str().is_none_or(str::is_empty) => Err("the URL has no host"),
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => {
            Err("plain http is only allowed to loopback hosts; use https (or `danger_allow_http`)")
        }
        _ => Err("the scheme must be https"),
    }
}

/// Parses a configured URL and applies the https rule.
pub(crate) fn parse_url(text: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl {
        url: text.to_owned(),
        reason,
    };
    let url = Url::parse(text).map_err(|e| invalid(e.to_string()))?;
    check_scheme(&url, allow_http).map_err(|reason| invalid(reason.to_owned()))?;
    Ok(url)
}

/// The URL without user name and password, for messages and logs.
pub(crate) fn display_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut url = url.clone();
    // Only fails for URLs that cannot carry credentials, which then have none to hide.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The client used unless one is configured: timeouts, at most three redirects that never leave
/// https nor move from a public to a loopback or private address, and a `User-Agent` naming the
/// crate.
pub(crate) fn default_client(
    connect_timeout: Duration,
    timeout: Duration,
    allow_http: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let verdict = match attempt.previous().first() {
            _ if attempt.previous().len() > MAX_REDIRECTS => Err("too many redirects"),
            Some(first) => check_redirect(first, attempt.url(), allow_http),
            None => check_scheme(attempt.url(), allow_http),
        };
        match verdict {
            Ok(()) => attempt.follow(),
            Err(reason) => attempt.error(reason),
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .redirect(redirects)
        .user_agent(USER_AGENT)
        .build()
}

/// Whether a request for `first` may end at `to`: never from https to another scheme, and the
/// rule for pointed-at URLs ([`check_pointed`]).
fn check_redirect(first: &Url, to: &Url, allow_http: bool) -> Result<(), &'static str> {
    if first.scheme() == "https" && to.scheme() != "https" {
        return Err("redirect from https to another scheme");
    }
    check_pointed(to, first, allow_http)
}

/// How one GET is made.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// The whole request, body included.
    pub(crate) timeout: Duration,
    /// The largest body read.
    pub(crate) max_body_bytes: usize,
    /// `danger_allow_http`: whether a redirect may end at plain http.
    pub(crate) allow_http: bool,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The body, or `None` when the server answered 304 Not Modified.
    pub(crate) body: Option<Vec<u8>>,
    /// The `ETag` to revalidate with next time.
    pub(crate) etag: Option<HeaderValue>,
    /// The freshness lifetime from `Cache-Control` (less `Age`), if the server gave one.
    pub(crate) max_age: Option<Duration>,
}

/// GETs `url`, revalidating with `etag` when given.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&HeaderValue>,
    limits: &Limits,
) -> Result<Fetched, KeyError> {
    // The request carries the timeout too; this one also bounds clients configured without.
    match tokio::time::timeout(limits.timeout, get_unbounded(client, url, etag, limits)).await {
        Ok(result) => result,
        Err(_) => Err(KeyError::new(
            KeyErrorKind::Timeout,
            format!(
                "fetching {} timed out after {:?}",
                display_url(url),
                limits.timeout
            ),
        )),
    }
}

async fn get_unbounded(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&HeaderValue>,
    limits: &Limits,
) -> Result<Fetched, KeyError> {
    let mut request = client
        .get(url.clone())
        .header(
            header::ACCEPT,
            "application/json, application/jwk-set+json;q=0.9",
        )
        .timeout(limits.timeout);
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag.clone());
    }
    let mut response = request.send().await.map_err(|e| http_error(url, e))?;
    // A configured client follows its own redirect policy; wherever it went, the answer is
    // only used if the final URL passes the same rule as the default client's redirects.
    if response.url() != url
        && let Err(reason) = check_redirect(url, response.url(), limits.allow_http)
    {
        return Err(KeyError::new(
            KeyErrorKind::InvalidUrl,
            format!(
                "fetching {} was redirected to {}: {reason}",
                display_url(url),
                display_url(response.url())
            ),
        ));
    }
    let status = response.status();
    let max_age = max_age(response.headers());
    if status == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched {
            body: None,
            etag: etag.cloned(),
            max_age,
        });
    }
    if !status.is_success() {
        return Err(KeyError::new(
            KeyErrorKind::Status,
            format!("{} answered HTTP {status}", display_url(url)),
        ));
    }
    let too_large = || {
        KeyError::new(
            KeyErrorKind::TooLarge,
            format!(
                "{} sent more than the limit of {} bytes",
                display_url(url),
                limits.max_body_bytes
            ),
        )
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limits.max_body_bytes as u64 {
        return Err(too_large());
    }
    let etag = response.headers().get(header::ETAG).cloned();
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|e| http_error(url, e))? {
        if body.len() + chunk.len() > limits.max_body_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body: Some(body),
        etag,
        max_age,
    })
}

/// Sorts a reqwest error into a kind; the error itself is kept as the source.
fn http_error(url: &Url, error: reqwest::Error) -> KeyError {
    let (kind, what) = if error.is_timeout() {
        (KeyErrorKind::Timeout, "timed out")
    } else if error.is_redirect() {
        (KeyErrorKind::Connect, "redirect refused")
    } else if error.is_connect() {
        (KeyErrorKind::Connect, "could not connect")
    } else if error.is_body() || error.is_decode() {
        (
            KeyErrorKind::Connect,
            "connection failed while reading the body",
        )
    } else {
        (KeyErrorKind::Connect, "request failed")
    };
    KeyError::new(kind, format!("fetching {}: {what}", display_url(url))).with_source(error)
}

/// The freshness lifetime from `Cache-Control: max-age` less `Age`; `no-cache` and `no-store`
/// give zero (which the caller clamps to its minimum).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    let directives = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for directive in directives {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Ok(secs) = value.trim().trim_matches('"').parse::<u64>()
        {
            max_age = Some(secs);
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|secs| Duration::from_secs(secs.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let h = headers(&[("cache-control", "public, max-age=3600, must-revalidate")]);
        assert_eq!(max_age(&h), Some(Duration::from_secs(3600)));
        let h = headers(&[("cache-control", "Max-Age = \"60\"")]);
        assert_eq!(max_age(&h), Some(Duration::from_secs(60)));
    }

    #[test]
    fn age_is_subtracted_from_max_age() {
        let h = headers(&[("cache-control", "max-age=600"), ("age", "100")]);
        assert_eq!(max_age(&h), Some(Duration::from_secs(500)));
        let h = headers(&[("cache-control", "max-age=60"), ("age", "100")]);
        assert_eq!(max_age(&h), Some(Duration::ZERO));
    }

    #[test]
    fn no_cache_means_zero_and_absence_means_none() {
        let h = headers(&[("cache-control", "max-age=600, no-cache")]);
        assert_eq!(max_age(&h), Some(Duration::ZERO));
        assert_eq!(max_age(&headers(&[])), None);
        let h = headers(&[("cache-control", "max-age=soon")]);
        assert_eq!(max_age(&h), None);
    }

    #[test]
    fn https_is_required_except_for_loopback_hosts() {
        for ok in [
            "https://login.example.com/keys",
            "http://127.0.0.1:8080/keys",
            "http://127.1.2.3/keys",
            "http://[::1]:80/keys",
            "http://localhost/keys",
            "http://LOCALHOST:1/keys",
        ] {
            assert!(parse_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com/keys",
            "http://128.0.0.1/keys",
            "http://[::2]/keys",
            "http://localhost.example.com/keys",
            "ftp://login.example.com/keys",
            "file:///etc/keys",
            "not a url",
            "/relative/keys",
        ] {
            let err = parse_url(bad, false).unwrap_err();
            assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{bad}");
        }
        assert!(parse_url("http://login.example.com/keys", true).is_ok());
        assert!(parse_url("ftp://login.example.com/keys", true).is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "http://127.0.0.1/k",
            "http://localhost/k",
            "http://keys.localhost/k",
            "http://10.1.2.3/k",
            "http://172.16.0.1/k",
            "http://192.168.1.1/k",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/k",
            "http://0.0.0.0/k",
            "http://[::1]/k",
            "http://[fd00::1]/k",
            "http://[fe80::1]/k",
            "http://[::ffff:10.0.0.1]/k",
        ] {
            assert!(is_internal(&Url::parse(internal).unwrap()), "{internal}");
        }
        for public in [
            "https://login.microsoftonline.com/k",
            "https://8.8.8.8/k",
            "https://172.32.0.1/k",
            "https://[2001:db8::1]/k",
        ] {
            assert!(!is_internal(&Url::parse(public).unwrap()), "{public}");
        }
    }

    #[test]
    fn pointed_at_urls_never_reach_inside_from_outside() {
        let public = Url::parse("https://idp.example/.well-known/openid-configuration").unwrap();
        let local = Url::parse("http://127.0.0.1:8080/.well-known/openid-configuration").unwrap();
        let to = |s: &str| Url::parse(s).unwrap();
        assert!(check_pointed(&to("https://idp.example/keys"), &public, false).is_ok());
        assert!(check_pointed(&to("http://idp.example/keys"), &public, false).is_err());
        assert!(check_pointed(&to("http://idp.example/keys"), &public, true).is_ok());
        for inside in [
            "http://127.0.0.1:9/keys",
            "https://10.0.0.1/keys",
            "https://localhost/k",
        ] {
            assert!(
                check_pointed(&to(inside), &public, false).is_err(),
                "{inside}"
            );
            assert!(
                check_pointed(&to(inside), &public, true).is_err(),
                "{inside}"
            );
        }
        assert!(check_pointed(&to("http://127.0.0.1:9/keys"), &local, false).is_ok());
        assert!(
            check_redirect(
                &to("https://idp.example/a"),
                &to("http://idp.example/b"),
                true
            )
            .is_err()
        );
    }

    #[test]
    fn credentials_never_reach_messages() {
        let url = Url::parse("https://user:secret@idp.example/keys").unwrap();
        assert_eq!(display_url(&url), "https://idp.example/keys");
    }
}
