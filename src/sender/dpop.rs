//! DPoP at the resource server (RFC 9449 §4.3, §7): the proof's checks, `htu` normalisation
//! and server nonces.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::digest::{b64url, b64url_decode, constant_time_eq, fill_random, hmac_sha256, sha256};
use super::replay::{InMemoryReplayStore, ReplayStore};
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::clock::Clock;
use crate::error::{ConfigError, JwtError, JwtErrorKind};
use crate::extract::hex_byte;

/// The default window around now in which a proof's `iat` must lie: ±60 seconds.
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// The default lifetime of a server nonce: 5 minutes (one is accepted for up to twice that).
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// The largest `DPoP` header accepted: 8 KiB (an RSA-4096 `jwk` fits with room to spare).
pub(crate) const MAX_PROOF_BYTES: usize = 8 * 1024;
/// The longest `jti` accepted.
const MAX_JTI_BYTES: usize = 256;

/// Whether DPoP-bound tokens are accepted beside bearer tokens, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopMode {
    /// Bearer tokens without `cnf.jkt` as before, and DPoP-bound tokens with their proofs. A
    /// token bound with `cnf.jkt` is refused under the `Bearer` scheme.
    Allowed,
    /// Only DPoP-bound tokens with their proofs.
    Required,
}

/// DPoP (RFC 9449) at the resource server, for
/// [`ValidateJwtBuilder::with_dpop`](crate::ValidateJwtBuilder::with_dpop). Off unless set.
///
/// A request `Authorization: DPoP <token>` must carry exactly one `DPoP` header: a proof JWS
/// with `typ: dpop+jwt`, an asymmetric `alg` from the allow-list, a public `jwk`, `jti`,
/// `htm` (the method), `htu` (the URL without query and fragment, compared after RFC 3986
/// normalisation), `iat` within [`with_proof_window`](Self::with_proof_window), `ath` (the
/// token's SHA-256) and, with server nonces on, `nonce`. The token's `cnf.jkt` must be the
/// RFC 7638 thumbprint of that `jwk`, and each proof is accepted once (the
/// [`ReplayStore`]).
///
/// **The URL for `htu`.** By default it is built from the request: its scheme if the URI has
/// one (HTTP/2), else `https`; its authority, or the `Host` header. Behind a proxy that
/// rewrites the host or prefix, give the public URL with
/// [`with_public_url`](Self::with_public_url). `X-Forwarded-Proto` / `X-Forwarded-Host` are
/// never read unless [`danger_trust_forwarded_headers`](Self::danger_trust_forwarded_headers).
/// The authority (`Host`, the URI's, `X-Forwarded-Host`) must be exactly `host[:port]` and
/// the scheme `http` or `https`: anything else (a path, query, fragment or user info in
/// `Host`, or a second `Host` line) refuses the proof (`invalid_dpop_proof`) rather than make
/// another URL.
///
/// ```
/// use validate_jwt::sender::Dpop;
/// use validate_jwt::{StaticKeys, ValidateJwtLayer};
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .add_audience("api://echo")
///     .with_dpop(
///         Dpop::required()
///             .with_public_url("https://api.example.com")
///             .with_nonces(),
///     )
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Dpop {
    pub(crate) mode: DpopMode,
    algorithms: Option<Vec<Algorithm>>,
    proof_window: Duration,
    nonces: NonceSetting,
    nonce_lifetime: Duration,
    public_url: Option<String>,
    trust_forwarded: bool,
    replay: Option<Arc<dyn ReplayStore>>,
    fail_open: bool,
}

#[derive(Clone)]
enum NonceSetting {
    Off,
    Random,
    Secret(Vec<u8>),
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("proof_window", &self.proof_window)
            .field("nonces", &!matches!(self.nonces, NonceSetting::Off))
            .field("public_url", &self.public_url)
            .field("trust_forwarded", &self.trust_forwarded)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl Dpop {
    fn new(mode: DpopMode) -> Self {
        Dpop {
            mode,
            algorithms: None,
            proof_window: DEFAULT_PROOF_WINDOW,
            nonces: NonceSetting::Off,
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            public_url: None,
            trust_forwarded: false,
            replay: None,
            fail_open: false,
        }
    }

    /// [`DpopMode::Allowed`]: bearer tokens as before, DPoP-bound tokens with their proofs.
    pub fn allowed() -> Self {
        Self::new(DpopMode::Allowed)
    }

    /// [`DpopMode::Required`]: DPoP-bound tokens only.
    pub fn required() -> Self {
        Self::new(DpopMode::Required)
    }

    /// The proof algorithms accepted (default: every asymmetric one, [`Algorithm::ASYMMETRIC`]).
    /// HMAC algorithms are a `build()` error: a proof proves a private key.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// How far a proof's `iat` may lie from now, either way (default
    /// [`DEFAULT_PROOF_WINDOW`]; the layer's leeway is not added). 1 second to 10 minutes.
    pub fn with_proof_window(mut self, window: Duration) -> Self {
        self.proof_window = window;
        self
    }

    /// Server nonces (RFC 9449 §8): a proof without a current `nonce` is answered
    /// `use_dpop_nonce` with a fresh one in `DPoP-Nonce`. The nonces are stateless (an HMAC of
    /// the time slot) under a random secret of this layer: with several replicas, give them
    /// one secret with [`with_nonce_secret`](Self::with_nonce_secret).
    pub fn with_nonces(mut self) -> Self {
        self.nonces = NonceSetting::Random;
        self
    }

    /// Server nonces under a secret shared by every replica (at least 32 bytes).
    pub fn with_nonce_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.nonces = NonceSetting::Secret(secret.into());
        self
    }

    /// How long a server nonce is current (default [`DEFAULT_NONCE_LIFETIME`]; one stays
    /// accepted for up to twice that). 10 seconds to 1 day.
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.nonce_lifetime = lifetime;
        self
    }

    /// The public base URL the clients call (`https://api.example.com`, optionally with a path
    /// prefix a proxy strips): `htu` must be this followed by the request's path.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Builds the URL for `htu` from `X-Forwarded-Proto` and `X-Forwarded-Host` (their first
    /// values) when present. Only behind a proxy that sets them and strips any a client sent:
    /// otherwise a client chooses the URL its proofs are checked against.
    pub fn danger_trust_forwarded_headers(mut self) -> Self {
        self.trust_forwarded = true;
        self
    }

    /// Where proofs are remembered (default: an [`InMemoryReplayStore`] of this layer). The
    /// store's own settings are checked at `build()` ([`ReplayStore::check_settings`]).
    pub fn with_replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// When the replay store fails, accept the proof with a logged warning instead of the
    /// default 503 with `Retry-After` (fail-closed): a replay then goes through while the
    /// store is down.
    pub fn danger_fail_open_on_store_errors(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Checks the settings and builds the rules the request path uses.
    pub(crate) fn build(self, clock: Arc<dyn Clock>) -> Result<DpopRules, ConfigError> {
        let setting =
            |setting: &'static str, reason: String| ConfigError::InvalidSetting { setting, reason };
        let algorithms = match &self.algorithms {
            None => AlgorithmSet::of(Algorithm::ASYMMETRIC.iter().copied()),
            Some(list) => {
                if let Some(hmac) = list.iter().find(|a| a.is_hmac()) {
                    return Err(setting(
                        "Dpop::with_algorithms",
                        format!("{hmac} is symmetric: a DPoP proof is signed with a private key"),
                    ));
                }
                AlgorithmSet::of(list.iter().copied())
            }
        };
        if algorithms.is_empty() {
            return Err(setting(
                "Dpop::with_algorithms",
                "no proof algorithm left".into(),
            ));
        }
        let window = self.proof_window;
        if window < Duration::from_secs(1) || window > Duration::from_secs(600) {
            return Err(setting(
                "Dpop::with_proof_window",
                format!("{window:?} is outside 1 s to 10 minutes"),
            ));
        }
        let lifetime = self.nonce_lifetime;
        if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(86_400) {
            return Err(setting(
                "Dpop::with_nonce_lifetime",
                format!("{lifetime:?} is outside 10 s to 1 day"),
            ));
        }
        let nonces = match self.nonces {
            NonceSetting::Off => None,
            NonceSetting::Random => {
                let mut secret = vec![0u8; 32];
                if !fill_random(&mut secret) {
                    return Err(setting(
                        "Dpop::with_nonces",
                        "the system's random source failed".into(),
                    ));
                }
                Some(secret)
            }
            NonceSetting::Secret(secret) if secret.len() < 32 => {
                return Err(setting(
                    "Dpop::with_nonce_secret",
                    format!("{} bytes; at least 32 are needed", secret.len()),
                ));
            }
            NonceSetting::Secret(secret) => Some(secret),
        }
        .map(|secret| {
            Arc::new(Nonces {
                secret,
                lifetime: lifetime.as_secs(),
                clock: clock.clone(),
            })
        });
        let public_url = match self.public_url {
            None => None,
            Some(url) => Some(public_base(&url).ok_or_else(|| ConfigError::InvalidUrl {
                url: url.clone(),
                reason: "a public URL is http(s)://host[:port][/prefix], without query, fragment or user info".into(),
            })?),
        };
        let replay = self
            .replay
            .unwrap_or_else(|| Arc::new(InMemoryReplayStore::new()));
        replay.check_settings()?;
        Ok(DpopRules {
            mode: self.mode,
            algorithms,
            window: window.as_secs(),
            nonces,
            public_url,
            trust_forwarded: self.trust_forwarded,
            replay,
            fail_open: self.fail_open,
            clock,
        })
    }
}

/// The checked DPoP settings.
pub(crate) struct DpopRules {
    pub(crate) mode: DpopMode,
    pub(crate) algorithms: AlgorithmSet,
    /// Seconds either side of now for `iat`.
    pub(crate) window: u64,
    pub(crate) nonces: Option<Arc<Nonces>>,
    /// The normalised public base URL, without a trailing slash.
    pub(crate) public_url: Option<String>,
    pub(crate) trust_forwarded: bool,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) fail_open: bool,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The accepted algorithms, space-separated, for the challenge's `algs` and the metadata.
pub(crate) fn algorithm_names(algorithms: AlgorithmSet) -> Vec<&'static str> {
    algorithms.iter().map(Algorithm::as_str).collect()
}

// ---- server nonces --------------------------------------------------------------------------

/// Stateless server nonces: base64url(slot ‖ HMAC(secret, slot)[..16]), slot = now / lifetime.
pub(crate) struct Nonces {
    secret: Vec<u8>,
    lifetime: u64,
    clock: Arc<dyn Clock>,
}

impl Nonces {
    fn at_slot(&self, slot: u64) -> String {
        let slot = slot.to_be_bytes();
        let mac = hmac_sha256(&self.secret, &slot);
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&slot);
        raw[8..].copy_from_slice(&mac[..16]);
        b64url(&raw)
    }

    /// A nonce for now.
    pub(crate) fn issue(&self) -> String {
        self.at_slot(self.clock.now() / self.lifetime)
    }

    /// Whether `nonce` is this slot's or the previous slot's.
    pub(crate) fn accepts(&self, nonce: &str) -> bool {
        let current = self.clock.now() / self.lifetime;
        [current, current.saturating_sub(1)]
            .iter()
            .any(|slot| constant_time_eq(self.at_slot(*slot).as_bytes(), nonce.as_bytes()))
    }
}

// ---- the proof ------------------------------------------------------------------------------

#[cold]
#[inline(never)]
pub(crate) fn invalid_proof(detail: impl Into<std::borrow::Cow<'static, str>>) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidDpopProof, detail)
}

/// What the request brings for the proof check, captured once.
pub(crate) struct ProofInput<'a> {
    /// The `DPoP` header's value.
    pub(crate) proof: &'a [u8],
    pub(crate) method: &'a str,
    /// The normalised URL the proof's `htu` must name.
    pub(crate) htu: &'a str,
    /// SHA-256 of the access token, for `ath`.
    pub(crate) token_hash: &'a [u8; 32],
}

/// A proof that passed every check but the replay store.
#[derive(Debug)]
pub(crate) struct CheckedProof {
    /// The RFC 7638 thumbprint of the proof's `jwk`, base64url.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: u64,
}

/// The private members of RSA, EC and OKP keys (RFC 7518 §6, RFC 8037), and `oct`'s `k`.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl DpopRules {
    /// RFC 9449 §4.3 checks 2–12 (the caller checked 1, one header; 13, the binding, is the
    /// caller's too: it compares `jkt` with the token's `cnf.jkt`).
    pub(crate) fn check_proof(&self, input: &ProofInput<'_>) -> Result<CheckedProof, JwtError> {
        if input.proof.len() > MAX_PROOF_BYTES {
            return Err(invalid_proof("the proof is too large"));
        }
        let mut parts = input.proof.split(|b| *b == b'.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid_proof("the proof is not a compact JWS"));
        };
        let signing_input = &input.proof[..h64.len() + 1 + p64.len()];
        let decode_object =
            |seg: &[u8], what: &'static str| -> Result<Map<String, Value>, JwtError> {
                let bytes = b64url_decode(seg)
                    .ok_or_else(|| invalid_proof(format!("the proof's {what} is not base64url")))?;
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(map)) => Ok(map),
                    _ => Err(invalid_proof(format!(
                        "the proof's {what} is not a JSON object"
                    ))),
                }
            };
        let header = decode_object(h64, "header")?;
        let claims = decode_object(p64, "payload")?;

        // typ, alg, crit.
        match header.get("typ").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("dpop+jwt") => {}
            _ => return Err(invalid_proof("`typ` is not dpop+jwt")),
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|a| Algorithm::from_bytes(a.as_bytes()))
            .filter(|a| !a.is_hmac() && self.algorithms.contains(*a))
            .ok_or_else(|| invalid_proof("the proof's `alg` is not accepted"))?;
        if header.contains_key("crit") {
            return Err(invalid_proof("the proof names `crit` extensions"));
        }

        // jwk: public, parsed by the crate's own JWK rules, bound to `alg`.
        let Some(Value::Object(jwk)) = header.get("jwk") else {
            return Err(invalid_proof("the proof has no `jwk` object"));
        };
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return Err(invalid_proof(format!(
                "the proof's `jwk` carries private key material (`{member}`)"
            )));
        }
        let key = crate::keys::jwk::parse_jwk(jwk, false)
            .map_err(|why| invalid_proof(format!("the proof's `jwk` is not usable: {why}")))?;
        let signature = b64url_decode(s64)
            .ok_or_else(|| invalid_proof("the proof's signature is not base64url"))?;
        if !key.verify(alg, signing_input, &signature) {
            return Err(invalid_proof(
                "the proof's signature does not verify with its `jwk`",
            ));
        }
        let jkt =
            thumbprint(jwk).ok_or_else(|| invalid_proof("the proof's `jwk` has no thumbprint"))?;

        // Claims.
        let string = |name: &'static str| -> Result<&str, JwtError> {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid_proof(format!("the proof has no `{name}` string")))
        };
        let jti = string("jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
            return Err(invalid_proof("the proof's `jti` is empty or too long"));
        }
        if string("htm")? != input.method {
            return Err(invalid_proof("`htm` is not the request's method"));
        }
        let htu = string("htu")?;
        match normalize_url(htu) {
            Some(htu) if htu == input.htu => {}
            _ => return Err(invalid_proof("`htu` is not the request's URL")),
        }
        let Some(iat) = claims
            .get("iat")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
        else {
            return Err(invalid_proof("the proof has no numeric `iat`"));
        };
        let now = self.clock.now() as f64;
        let window = self.window as f64;
        if iat < now - window {
            return Err(invalid_proof("the proof's `iat` is too old"));
        }
        if iat > now + window {
            return Err(invalid_proof("the proof's `iat` is in the future"));
        }
        let ath = string("ath")?;
        if !constant_time_eq(ath.as_bytes(), b64url(input.token_hash).as_bytes()) {
            return Err(invalid_proof("`ath` is not the access token's hash"));
        }
        if let Some(nonces) = &self.nonces {
            match claims.get("nonce").and_then(Value::as_str) {
                Some(n) if nonces.accepts(n) => {}
                Some(_) => {
                    return Err(JwtError::with_detail(
                        JwtErrorKind::UseDpopNonce,
                        "the proof's `nonce` is not current",
                    ));
                }
                None => {
                    return Err(JwtError::with_detail(
                        JwtErrorKind::UseDpopNonce,
                        "the proof has no `nonce`",
                    ));
                }
            }
        }
        Ok(CheckedProof {
            jkt,
            jti: jti.to_owned(),
            iat: iat.max(0.0) as u64,
        })
    }

    /// How long the replay store must remember a proof issued at `iat`: until it falls out of
    /// the window, and a second more.
    pub(crate) fn replay_ttl(&self, iat: u64) -> Duration {
        let until = iat.saturating_add(self.window).saturating_add(1);
        Duration::from_secs(until.saturating_sub(self.clock.now()).max(1))
    }
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: its required members in
/// lexicographic order, without whitespace.
pub(crate) fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let member = |name: &str| -> Option<String> {
        let value = jwk.get(name)?.as_str()?;
        serde_json::to_string(value).ok()
    };
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => return None,
    };
    Some(b64url(&sha256(canonical.as_bytes())))
}

// ---- URLs (RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation) ----------------

/// An `http(s)` URL without query and fragment, normalised: scheme and host lowercase, the
/// default port dropped, percent-encodings of unreserved characters decoded and the others'
/// hex uppercase, dot segments removed, an empty path `/`. `None` for anything else.
pub(crate) fn normalize_url(url: &str) -> Option<String> {
    let url = url.split('#').next()?;
    let url = url.split('?').next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = normalize_authority(authority, default_port)?;
    let path = normalize_path(path)?;
    Some(format!("{scheme}://{authority}{path}"))
}

fn normalize_authority(authority: &str, default_port: &str) -> Option<String> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    // The port follows the last colon outside an IPv6 literal.
    let host_end = match authority.rfind(']') {
        Some(close) => close + 1,
        None => authority.rfind(':').unwrap_or(authority.len()),
    };
    let (host, port) = authority.split_at(host_end);
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => "",
        None => return None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => p,
        Some(_) => return None,
    };
    if host.is_empty() {
        return None;
    }
    let host = normalize_percent(host)?.to_ascii_lowercase();
    // An empty port is the default one (RFC 3986 §6.2.3).
    Some(match port {
        "" => host,
        p if p == default_port => host,
        p => format!("{host}:{p}"),
    })
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Decodes percent-encoded unreserved characters and uppercases the hex of the others.
fn normalize_percent(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = hex_byte(hex)?;
            if is_unreserved(value) {
                out.push(value as char);
            } else {
                out.push('%');
                out.extend(hex.iter().map(|b| char::from(b.to_ascii_uppercase())));
            }
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(b as char);
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

fn normalize_path(path: &str) -> Option<String> {
    let path = normalize_percent(path)?;
    if path.is_empty() {
        return Some("/".into());
    }
    Some(remove_dot_segments(&path))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(input: &str) -> String {
    let mut input = input;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            // Move the first segment (with its leading slash) to the output.
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

/// A configured public base URL, normalised and without a trailing slash.
fn public_base(url: &str) -> Option<String> {
    if url.contains(['?', '#']) {
        return None;
    }
    let normal = normalize_url(url)?;
    Some(normal.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_are_compared_after_rfc_3986_normalisation() {
        for (a, b) in [
            ("HTTPS://API.Example.COM/a", "https://api.example.com/a"),
            ("https://api.example.com:443/a", "https://api.example.com/a"),
            ("http://api.example.com:80", "http://api.example.com/"),
            (
                "https://api.example.com/%7euser/%2f",
                "https://api.example.com/~user/%2F",
            ),
            (
                "https://api.example.com/a/./b/../c",
                "https://api.example.com/a/c",
            ),
            (
                "https://api.example.com/a?q=1#f",
                "https://api.example.com/a",
            ),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ] {
            assert_eq!(normalize_url(a).unwrap(), normalize_url(b).unwrap(), "{a}");
        }
        assert_ne!(
            normalize_url("https://api.example.com:8443/a"),
            normalize_url("https://api.example.com/a")
        );
        assert_ne!(
            normalize_url("https://api.example.com/A"),
            normalize_url("https://api.example.com/a")
        );
        for bad in [
            "ftp://x/",
            "https://user@x/",
            "https:///a",
            "https://x:port/",
            "https://x/%zz",
            "https://x/%+1",
            "https://x/%-1",
            "https://x/a%+fb",
            "https://x/%1",
            "https://%+1x/",
            "x/y",
        ] {
            assert_eq!(normalize_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn thumbprints_match_rfc_7638s_example() {
        // RFC 7638 §3.1.
        let jwk: Value = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(jwk.as_object().unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn nonces_are_accepted_for_their_slot_and_the_next() {
        let clock = crate::ManualClock::new(1_000);
        let nonces = Nonces {
            secret: vec![7; 32],
            lifetime: 100,
            clock: Arc::new(clock.clone()),
        };
        let nonce = nonces.issue();
        assert!(nonces.accepts(&nonce));
        clock.advance(100);
        assert!(nonces.accepts(&nonce));
        clock.advance(100);
        assert!(!nonces.accepts(&nonce));
        assert!(!nonces.accepts("not a nonce"));
    }
}
