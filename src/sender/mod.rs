//! Sender-constrained access tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).
//!
//! A bearer token works for whoever holds it. A sender-constrained token names a key in its
//! `cnf` claim (RFC 7800), and every request must prove possession of that key: a DPoP proof
//! signed with the key whose thumbprint is `cnf.jkt`, or the TLS client certificate whose
//! thumbprint is `cnf["x5t#S256"]`. Both are off unless configured:
//! [`ValidateJwtBuilder::with_dpop`](crate::ValidateJwtBuilder::with_dpop) with a [`Dpop`],
//! [`ValidateJwtBuilder::with_client_certificates`](crate::ValidateJwtBuilder::with_client_certificates)
//! with a [`ClientCertificates`]. With neither, the request path is unchanged (one branch).
//!
//! After the token is validated, the layer checks the binding; the verified binding is on
//! [`Claims::binding`](crate::Claims::binding). Each DPoP proof is accepted once: a
//! [`ReplayStore`] remembers it for its window ([`InMemoryReplayStore`] by default; with the
//! `redis` feature, `RedisReplayStore` shares one view between replicas).
//!
//! ```
//! use validate_jwt::sender::{ClientCertificates, Dpop, InMemoryReplayStore};
//! use validate_jwt::{StaticKeys, ValidateJwtLayer};
//!
//! let layer = ValidateJwtLayer::builder()
//!     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
//!     .add_issuer("https://issuer.example")
//!     .add_audience("api://echo")
//!     .with_dpop(Dpop::allowed().with_replay_store(InMemoryReplayStore::new()))
//!     .with_client_certificates(ClientCertificates::from_extensions())
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//! ```

use std::sync::Arc;

use http::uri::Authority;
use http::{HeaderMap, Request, header};
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::clock::Clock;
use crate::error::{ConfigError, JwtError, JwtErrorKind};
use crate::metrics::{self, ReplayCheck};
use crate::validate::Verdict;

mod binding;
pub(crate) mod digest;
mod dpop;
mod mtls;
#[cfg(feature = "redis")]
mod redis;
mod replay;

pub use dpop::{DEFAULT_NONCE_LIFETIME, DEFAULT_PROOF_WINDOW, Dpop, DpopMode};
pub use mtls::{CertificateHeader, ClientCertificate, ClientCertificates};
#[cfg(feature = "redis")]
pub use redis::{
    DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN_FOR, DEFAULT_REDIS_TIMEOUT, RedisReplayStore,
};
pub use replay::{
    DEFAULT_REPLAY_CAPACITY, InMemoryReplayStore, MAX_REPLAY_TTL, ReplayFuture, ReplayOutcome,
    ReplayStore, ReplayStoreError,
};

pub(crate) use binding::BindingRule;
use dpop::{DpopRules, Nonces, ProofInput, invalid_proof, normalize_url};
use mtls::CertSource;

/// The key a token is bound to, verified by the layer for this request: on
/// [`Claims::binding`](crate::Claims::binding).
///
/// ```
/// # fn handler(claims: validate_jwt::Claims) {
/// if let Some(binding) = claims.binding() {
///     // A DPoP key thumbprint (RFC 7638) or a certificate thumbprint (RFC 8705).
///     let who = binding.jkt().or(binding.certificate_thumbprint());
/// #   let _ = who;
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Binding {
    jkt: Option<Box<str>>,
    x5t_s256: Option<Box<str>>,
}

impl Binding {
    /// `cnf.jkt`: the thumbprint of the key that signed this request's DPoP proof.
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// `cnf["x5t#S256"]`: the thumbprint of this request's TLS client certificate.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

/// How the challenges of a DPoP layer look (for `response.rs`).
pub(crate) struct DpopAnswers {
    /// The accepted proof algorithms, space-separated.
    pub(crate) algs: Box<str>,
    /// Required mode: no `Bearer` challenge.
    pub(crate) required: bool,
    pub(crate) nonces: Option<Arc<Nonces>>,
}

impl DpopAnswers {
    /// A fresh server nonce, when nonces are on.
    pub(crate) fn fresh_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(|n| n.issue())
    }
}

/// The checked sender-constraint settings, run after the token is validated.
pub(crate) struct Sender {
    dpop: Option<DpopRules>,
    certs: Option<CertSource>,
}

/// What a request presents, captured before validation (owned: the slow path outlives the
/// borrow of the request).
struct Captured {
    dpop: Presentation,
    /// The client certificate's thumbprint, when certificates are configured.
    cert: Option<Result<Option<String>, &'static str>>,
}

enum Presentation {
    /// Not under the `DPoP` scheme (or DPoP is off).
    NotDpop,
    /// `Authorization: DPoP …`: the proof's inputs, or why they are unusable.
    Dpop(Result<DpopRequest, JwtError>),
}

struct DpopRequest {
    proof: String,
    method: String,
    htu: String,
    token_hash: [u8; 32],
}

impl Captured {
    fn under_dpop(&self) -> bool {
        matches!(self.dpop, Presentation::Dpop(_))
    }

    /// A refusal of a request under the `DPoP` scheme is answered with the DPoP challenge.
    fn mark(&self, err: JwtError) -> JwtError {
        if self.under_dpop() {
            err.under_dpop()
        } else {
            err
        }
    }
}

/// The access token of `Authorization: DPoP <token>`.
fn dpop_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    if value.len() < 5 || !value[..5].eq_ignore_ascii_case(b"dpop ") {
        return None;
    }
    let token = &value[5..];
    let start = token.iter().position(|b| *b != b' ' && *b != b'\t')?;
    let end = token.iter().rposition(|b| *b != b' ' && *b != b'\t')? + 1;
    Some(&token[start..end])
}

impl Sender {
    pub(crate) fn new(
        dpop: Option<Dpop>,
        certs: Option<ClientCertificates>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Sender>, ConfigError> {
        if dpop.is_none() && certs.is_none() {
            return Ok(None);
        }
        Ok(Some(Sender {
            dpop: dpop.map(|d| d.build(clock)).transpose()?,
            certs: certs.map(ClientCertificates::build).transpose()?,
        }))
    }

    /// The challenges' settings, when DPoP is on.
    pub(crate) fn answers(&self) -> Option<DpopAnswers> {
        let rules = self.dpop.as_ref()?;
        Some(DpopAnswers {
            algs: dpop::algorithm_names(rules.algorithms).join(" ").into(),
            required: rules.mode == DpopMode::Required,
            nonces: rules.nonces.clone(),
        })
    }

    pub(crate) fn dpop_enabled(&self) -> bool {
        self.dpop.is_some()
    }

    /// The members this configuration adds to the RFC 9728 protected-resource metadata.
    pub(crate) fn metadata_members(&self) -> Map<String, Value> {
        let mut members = Map::new();
        if let Some(rules) = &self.dpop {
            members.insert(
                "dpop_signing_alg_values_supported".into(),
                dpop::algorithm_names(rules.algorithms).into(),
            );
            members.insert(
                "dpop_bound_access_tokens_required".into(),
                (rules.mode == DpopMode::Required).into(),
            );
        }
        if self.certs.is_some() {
            members.insert(
                "tls_client_certificate_bound_access_tokens".into(),
                true.into(),
            );
        }
        members
    }

    /// The binding rule of the token alone for this configuration (`None`: neither DPoP nor
    /// certificates are checked); `accept_unchecked` is `danger_accept_bound_tokens_as_bearer`.
    pub(crate) fn binding_rule(sender: Option<&Sender>, accept_unchecked: bool) -> BindingRule {
        BindingRule {
            dpop: sender.and_then(|s| s.dpop.as_ref()).map(|rules| rules.mode),
            certificates: sender.is_some_and(|s| s.certs.is_some()),
            accept_unchecked,
        }
    }

    /// The settings in words, for `explain`'s sender-constraint row.
    pub(crate) fn describe(&self) -> String {
        let dpop = self.dpop.as_ref().map(|rules| {
            let mode = match rules.mode {
                DpopMode::Required => "DPoP required: every token bound (`cnf.jkt`) and proven",
                _ => "DPoP allowed: a bound token needs its proof, a bearer token passes as one",
            };
            format!(
                "{mode} (proofs signed with {})",
                dpop::algorithm_names(rules.algorithms).join(", ")
            )
        });
        let certs = self.certs.as_ref().map(|_| {
            "certificate binding: a `cnf[\"x5t#S256\"]` token needs its client certificate"
                .to_owned()
        });
        dpop.into_iter().chain(certs).collect::<Vec<_>>().join("; ")
    }

    /// The hook of the request path: the validator's verdict, checked against what the
    /// request proves.
    pub(crate) fn bind<B>(self: &Arc<Self>, verdict: Verdict, request: &Request<B>) -> Verdict {
        let captured = self.capture(request);
        match verdict {
            Verdict::Invalid(err) => Verdict::Invalid(captured.mark(err)),
            Verdict::Valid(claims) => self.finish(claims, captured),
            Verdict::Pending(check) => {
                let this = self.clone();
                Verdict::Pending(Box::pin(async move {
                    let claims = match check.await {
                        Ok(Some(claims)) => claims,
                        Ok(None) => return Ok(None),
                        Err(err) => return Err(captured.mark(err)),
                    };
                    match this.finish(claims, captured) {
                        Verdict::Valid(claims) => Ok(Some(claims)),
                        Verdict::Invalid(err) => Err(err),
                        Verdict::Pending(rest) => rest.await,
                    }
                }))
            }
        }
    }

    fn capture<B>(&self, request: &Request<B>) -> Captured {
        let headers = request.headers();
        let cert = self
            .certs
            .as_ref()
            .map(|c| c.thumbprint(headers, request.extensions()));
        let dpop = match (&self.dpop, dpop_token(headers)) {
            (Some(rules), Some(token)) => Presentation::Dpop(capture_proof(rules, request, token)),
            _ => Presentation::NotDpop,
        };
        Captured { dpop, cert }
    }

    /// The binding checks, after the token is valid: certificate, then DPoP (and its replay
    /// check, the one asynchronous step).
    fn finish(&self, claims: Claims, captured: Captured) -> Verdict {
        match self.check(&claims, &captured) {
            Ok((binding, replay)) => {
                let claims = match binding.is_empty() {
                    true => claims,
                    false => claims.with_binding(binding),
                };
                match (replay, &self.dpop) {
                    (Some((key, ttl)), Some(rules)) => {
                        let store = rules.replay.clone();
                        let fail_open = rules.fail_open;
                        Verdict::Pending(Box::pin(async move {
                            match store.check_and_insert(&key, ttl).await {
                                Ok(ReplayOutcome::Fresh) => {
                                    metrics::replay_check(ReplayCheck::Fresh);
                                    Ok(Some(claims))
                                }
                                Ok(ReplayOutcome::Replayed) => {
                                    metrics::replay_check(ReplayCheck::Replayed);
                                    Err(invalid_proof(
                                        "the proof was used before (a replayed `jti`)",
                                    )
                                    .under_dpop()
                                    .for_issuer(claims.issuer_label().cloned()))
                                }
                                Err(err) if fail_open => {
                                    metrics::replay_check(ReplayCheck::StoreErrorAccepted);
                                    tracing::warn!(target: "validate_jwt", error = %err, "DPoP replay store failed; accepting the proof unchecked (fail-open)");
                                    Ok(Some(claims))
                                }
                                Err(err) => {
                                    metrics::replay_check(ReplayCheck::StoreErrorRefused);
                                    Err(JwtError::replay_store_unavailable(err)
                                        .for_issuer(claims.issuer_label().cloned()))
                                }
                            }
                        }))
                    }
                    _ => Verdict::Valid(claims),
                }
            }
            Err(err) => Verdict::Invalid(
                captured
                    .mark(err)
                    .for_issuer(claims.issuer_label().cloned()),
            ),
        }
    }

    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        claims: &Claims,
        captured: &Captured,
    ) -> Result<(Binding, Option<(String, std::time::Duration)>), JwtError> {
        let cnf = claims.get("cnf");
        let member = |name: &str| cnf.and_then(|c| c.get(name)).and_then(Value::as_str);
        let mut binding = Binding::default();

        // RFC 8705 §3: the certificate of this connection.
        if let (Some(x5t), Some(cert)) = (member("x5t#S256"), &captured.cert) {
            match cert {
                Ok(Some(thumbprint))
                    if digest::constant_time_eq(thumbprint.as_bytes(), x5t.as_bytes()) =>
                {
                    binding.x5t_s256 = Some(x5t.into());
                }
                Ok(Some(_)) => {
                    return Err(unbound("the token is bound to another client certificate"));
                }
                Ok(None) => {
                    return Err(unbound(
                        "the token is certificate-bound and the request has no client certificate",
                    ));
                }
                Err(why) => return Err(unbound(why)),
            }
        }

        // RFC 9449 §7: the DPoP proof.
        let Some(rules) = &self.dpop else {
            return Ok((binding, None));
        };
        let jkt = member("jkt");
        let request = match &captured.dpop {
            Presentation::NotDpop => {
                if jkt.is_some() {
                    // Answered on the DPoP challenge: the client must use that scheme.
                    return Err(
                        unbound("a DPoP-bound token presented as a bearer token").under_dpop()
                    );
                }
                // (Under `Dpop::required` an unbound token never gets here: the binding rule
                // of the token alone, `BindingRule`, refused it.)
                return Ok((binding, None));
            }
            Presentation::Dpop(Err(err)) => return Err(err.clone()),
            Presentation::Dpop(Ok(request)) => request,
        };
        let Some(jkt) = jkt else {
            return Err(unbound("the token is not DPoP-bound (no `cnf.jkt`)"));
        };
        let proof = rules.check_proof(&ProofInput {
            proof: request.proof.as_bytes(),
            method: &request.method,
            htu: &request.htu,
            token_hash: &request.token_hash,
        })?;
        if !digest::constant_time_eq(proof.jkt.as_bytes(), jkt.as_bytes()) {
            return Err(unbound(
                "the proof is signed by another key than the token's `cnf.jkt`",
            ));
        }
        binding.jkt = Some(jkt.into());
        let mut id = Vec::with_capacity(proof.jkt.len() + 1 + proof.jti.len());
        id.extend_from_slice(proof.jkt.as_bytes());
        id.push(0);
        id.extend_from_slice(proof.jti.as_bytes());
        let key = digest::b64url(&digest::sha256(&id));
        Ok((binding, Some((key, rules.replay_ttl(proof.iat)))))
    }
}

#[cold]
#[inline(never)]
fn unbound(detail: &'static str) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidBinding, detail)
}

/// The proof's inputs from the request: exactly one `DPoP` header, the method, the URL.
fn capture_proof<B>(
    rules: &DpopRules,
    request: &Request<B>,
    token: &[u8],
) -> Result<DpopRequest, JwtError> {
    let headers = request.headers();
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Err(invalid_proof("no DPoP proof header"));
    };
    if proofs.next().is_some() {
        return Err(invalid_proof("more than one DPoP proof header"));
    }
    let proof = proof
        .to_str()
        .map_err(|_| invalid_proof("the DPoP header is not ASCII"))?;
    let htu = expected_htu(rules, request).map_err(invalid_proof)?;
    Ok(DpopRequest {
        proof: proof.trim().to_owned(),
        method: request.method().as_str().to_owned(),
        htu,
        token_hash: digest::sha256(token),
    })
}

/// Why the request's URL cannot be told.
const NO_URL: &str = "the request's URL cannot be determined for `htu`";

/// The normalised URL the request was sent to (without query), as `htu` must name it; or why
/// it cannot be told. It is built from parts checked one by one (a scheme of `http` or
/// `https`, an authority of exactly `host[:port]`, the request's path), so no header can
/// carry a path, query or fragment into it.
fn expected_htu<B>(rules: &DpopRules, request: &Request<B>) -> Result<String, &'static str> {
    let path = request.uri().path();
    // Origin form (or none): never `*`, nothing that would run on from the authority.
    if !(path.is_empty() || path.starts_with('/')) {
        return Err("the request's target is not a path");
    }
    if let Some(base) = &rules.public_url {
        return normalize_url(&format!("{base}{path}")).ok_or(NO_URL);
    }
    let headers = request.headers();
    // The first value of a forwarded header when they are trusted; `Err` when it is not text.
    let forwarded = |name: &str| -> Result<Option<&str>, ()> {
        if !rules.trust_forwarded {
            return Ok(None);
        }
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        let value = value.to_str().map_err(|_| ())?;
        Ok(value
            .split(',')
            .next()
            .map(str::trim)
            .filter(|v| !v.is_empty()))
    };
    const BAD_PROTO: &str = "the request's X-Forwarded-Proto is not http or https";
    let scheme = match forwarded("x-forwarded-proto").map_err(|()| BAD_PROTO)? {
        Some(proto) => web_scheme(proto).ok_or(BAD_PROTO)?,
        None => match request.uri().scheme_str() {
            Some(scheme) => {
                web_scheme(scheme).ok_or("the request's scheme is not http or https")?
            }
            None => "https",
        },
    };
    const BAD_FORWARDED_HOST: &str = "the request's X-Forwarded-Host is not a host[:port]";
    let authority = match forwarded("x-forwarded-host").map_err(|()| BAD_FORWARDED_HOST)? {
        Some(host) => host_port(host).ok_or(BAD_FORWARDED_HOST)?,
        None => match request.uri().authority() {
            Some(authority) => host_port(authority.as_str())
                .ok_or("the request's authority is not a host[:port]")?,
            None => {
                // One `Host` line only (RFC 9112 §3.2): with two, a proxy and this layer could
                // each read another.
                let mut hosts = headers.get_all(header::HOST).iter();
                let host = hosts.next().ok_or(NO_URL)?;
                if hosts.next().is_some() {
                    return Err("the request has more than one Host");
                }
                host.to_str()
                    .ok()
                    .and_then(host_port)
                    .ok_or("the request's Host is not a host[:port]")?
            }
        },
    };
    normalize_url(&format!("{scheme}://{authority}{path}")).ok_or(NO_URL)
}

/// `http` or `https`, in any case.
fn web_scheme(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// `text` if it is exactly `host[:port]` (RFC 3986 §3.2.2-3, as `http::uri::Authority`
/// parses it): no user info, path, query or fragment, brackets only around an IP literal,
/// a port of at most 65535 in digits only. Rebuilt from the host and the port.
fn host_port(text: &str) -> Option<String> {
    let authority: Authority = text.parse().ok()?;
    let all = authority.as_str();
    if all.contains('@') {
        return None;
    }
    let host = authority.host();
    let rest = all.strip_prefix(host)?;
    let ip_literal = host.len() > 2 && host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (!ip_literal && host.contains(['[', ']'])) {
        return None;
    }
    let port = match rest.strip_prefix(':') {
        None if rest.is_empty() => "",
        None => return None,
        // An empty port is the default one (RFC 3986 §6.2.3).
        Some("") => "",
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok() => {
            port
        }
        Some(_) => return None,
    };
    Some(match port {
        "" => host.to_owned(),
        port => format!("{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sender(dpop: Option<Dpop>, certs: Option<ClientCertificates>) -> Sender {
        Sender::new(dpop, certs, Arc::new(crate::SystemClock))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn metadata_members_describe_the_configuration() {
        let s = sender(
            Some(
                Dpop::required()
                    .with_algorithms([crate::Algorithm::ES256, crate::Algorithm::PS256]),
            ),
            Some(ClientCertificates::from_extensions()),
        );
        assert_eq!(
            Value::Object(s.metadata_members()),
            serde_json::json!({
                "dpop_signing_alg_values_supported": ["PS256", "ES256"],
                "dpop_bound_access_tokens_required": true,
                "tls_client_certificate_bound_access_tokens": true,
            })
        );
        let s = sender(Some(Dpop::allowed()), None);
        let m = s.metadata_members();
        assert_eq!(m["dpop_bound_access_tokens_required"], false);
        assert!(!m.contains_key("tls_client_certificate_bound_access_tokens"));
        assert_eq!(
            m["dpop_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .len(),
            crate::Algorithm::ASYMMETRIC.len()
        );
        let s = sender(None, Some(ClientCertificates::from_extensions()));
        assert_eq!(
            Value::Object(s.metadata_members()),
            serde_json::json!({"tls_client_certificate_bound_access_tokens": true})
        );
    }

    #[test]
    fn the_htu_comes_from_the_request_or_the_public_url_never_forwarded_headers_unless_told() {
        let rules = |dpop: Dpop| dpop.build(Arc::new(crate::SystemClock)).unwrap();
        let request = http::Request::get("/a/b?q=1")
            .header("host", "API.example.com:443")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "http")
            .body(())
            .unwrap();
        assert_eq!(
            expected_htu(&rules(Dpop::allowed()), &request).unwrap(),
            "https://api.example.com/a/b"
        );
        assert_eq!(
            expected_htu(
                &rules(Dpop::allowed().with_public_url("https://edge.example/api/")),
                &request
            )
            .unwrap(),
            "https://edge.example/api/a/b"
        );
        assert_eq!(
            expected_htu(
                &rules(Dpop::allowed().danger_trust_forwarded_headers()),
                &request
            )
            .unwrap(),
            "http://evil.example/a/b"
        );
        let no_host = http::Request::get("/").body(()).unwrap();
        assert_eq!(expected_htu(&rules(Dpop::allowed()), &no_host), Err(NO_URL));
    }

    fn htu_with_host(host: &str) -> Result<String, &'static str> {
        let rules = Dpop::allowed().build(Arc::new(crate::SystemClock)).unwrap();
        let request = http::Request::get("/a/b?q=1")
            .header("host", host)
            .body(())
            .unwrap();
        expected_htu(&rules, &request)
    }

    #[test]
    fn a_host_with_a_port_or_an_ip_literal_makes_the_htu() {
        assert_eq!(
            htu_with_host("api.example.com:8443").unwrap(),
            "https://api.example.com:8443/a/b"
        );
        assert_eq!(
            htu_with_host("API.example.com:").unwrap(),
            "https://api.example.com/a/b"
        );
        assert_eq!(
            htu_with_host("[::1]:8443").unwrap(),
            "https://[::1]:8443/a/b"
        );
        assert_eq!(htu_with_host("127.0.0.1").unwrap(), "https://127.0.0.1/a/b");
    }

    #[test]
    fn a_host_that_is_not_host_and_port_makes_no_htu() {
        for host in [
            "api.example.com/admin",
            "api.example.com?",
            "api.example.com#",
            "user@api.example.com",
            "api.example.com:+443",
            "api.example.com:99999",
            "api.example.com:x",
            "a:1:2",
            "a[::1]",
            "[::1",
            "[]",
            "",
            "api example",
            "%41pi.example.com",
        ] {
            assert_eq!(
                htu_with_host(host),
                Err("the request's Host is not a host[:port]"),
                "{host:?}"
            );
        }
    }

    #[test]
    fn forwarded_proto_and_authority_in_the_uri_are_checked_too() {
        let rules = |dpop: Dpop| dpop.build(Arc::new(crate::SystemClock)).unwrap();
        let trusting = rules(Dpop::allowed().danger_trust_forwarded_headers());
        let with = |name: &str, value: &str| {
            http::Request::get("/a")
                .header("host", "api.example.com")
                .header(name, value)
                .body(())
                .unwrap()
        };
        assert_eq!(
            expected_htu(&trusting, &with("x-forwarded-proto", "HTTP")).unwrap(),
            "http://api.example.com/a"
        );
        for proto in ["ftp", "https://evil.example/x?", "https:"] {
            assert_eq!(
                expected_htu(&trusting, &with("x-forwarded-proto", proto)),
                Err("the request's X-Forwarded-Proto is not http or https"),
                "{proto}"
            );
        }
        let absolute = http::Request::get("https://user@api.example.com/a")
            .body(())
            .unwrap();
        assert_eq!(
            expected_htu(&rules(Dpop::allowed()), &absolute),
            Err("the request's authority is not a host[:port]")
        );
        let absolute = http::Request::get("HTTP://api.example.com:8080/a")
            .body(())
            .unwrap();
        assert_eq!(
            expected_htu(&rules(Dpop::allowed()), &absolute).unwrap(),
            "http://api.example.com:8080/a"
        );
        let two_hosts = http::Request::get("/a")
            .header("host", "api.example.com")
            .header("host", "admin.example.com")
            .body(())
            .unwrap();
        assert_eq!(
            expected_htu(&rules(Dpop::allowed()), &two_hosts),
            Err("the request has more than one Host")
        );
        let star = http::Request::options("*")
            .header("host", "api.example.com")
            .body(())
            .unwrap();
        assert_eq!(
            expected_htu(&rules(Dpop::allowed()), &star),
            Err("the request's target is not a path")
        );
    }
}
