//! [`TokenBuilder`] and [`BadToken`]: the tokens of a [`TestIssuer`](super::TestIssuer).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Map, Value, json};

use super::issuer::Shared;
use super::keys::{SigningKey, b64, made};
use crate::algorithm::Algorithm;
use crate::error::JwtErrorKind;

/// A token that one check of the layer refuses, and nothing else: the token
/// [`TokenBuilder::sign_bad`] makes is the builder's token with one flaw.
///
/// Each kind names the answer a layer gives it with the default answers: 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` and the [`JwtErrorKind`] of
/// [`kind`](Self::kind) in the rejection's [`JwtError`](crate::JwtError).
///
/// ```
/// use validate_jwt::testing::{BadToken, TestIssuer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// let layer = issuer.layer_builder().build()?;
/// for &bad in BadToken::ALL {
///     let err = layer.validate_token(&issuer.token().sign_bad(bad)).await.unwrap_err();
///     assert_eq!(err.kind(), bad.kind(), "{bad:?}");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BadToken {
    /// `exp` two hours ago (beyond any leeway the layer allows). Kind: [`JwtErrorKind::Expired`].
    Expired,
    /// `nbf` two hours ahead. Kind: [`JwtErrorKind::NotYetValid`].
    NotYetValid,
    /// For another API (`aud` is `api://another-api`). Kind: [`JwtErrorKind::InvalidAudience`].
    WrongAudience,
    /// From another issuer (`iss` is `https://another-issuer.example`), signed with the issuer's
    /// key. Kind: [`JwtErrorKind::InvalidIssuer`].
    WrongIssuer,
    /// Signed with a key of the same algorithm that the issuer does not publish, under its own
    /// `kid` (the layer refreshes its keys once, then refuses). Kind: [`JwtErrorKind::UnknownKey`].
    UnknownKey,
    /// `"alg": "none"` and no signature. Kind: [`JwtErrorKind::UnsupportedAlgorithm`].
    AlgNone,
    /// Signed, then its payload changed (`sub` became `admin`, or `root` if it was `admin`)
    /// with the signature kept. Kind: [`JwtErrorKind::InvalidSignature`].
    TamperedPayload,
}

impl BadToken {
    /// Every kind, for a table test.
    pub const ALL: &'static [BadToken] = &[
        BadToken::Expired,
        BadToken::NotYetValid,
        BadToken::WrongAudience,
        BadToken::WrongIssuer,
        BadToken::UnknownKey,
        BadToken::AlgNone,
        BadToken::TamperedPayload,
    ];

    /// The kind of the layer's refusal.
    pub fn kind(self) -> JwtErrorKind {
        match self {
            BadToken::Expired => JwtErrorKind::Expired,
            BadToken::NotYetValid => JwtErrorKind::NotYetValid,
            BadToken::WrongAudience => JwtErrorKind::InvalidAudience,
            BadToken::WrongIssuer => JwtErrorKind::InvalidIssuer,
            BadToken::UnknownKey => JwtErrorKind::UnknownKey,
            BadToken::AlgNone => JwtErrorKind::UnsupportedAlgorithm,
            BadToken::TamperedPayload => JwtErrorKind::InvalidSignature,
        }
    }

    /// The status of the layer's answer with the default answers: 401 (gRPC: `UNAUTHENTICATED`).
    pub fn status(self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

/// The audience and issuer of [`BadToken::WrongAudience`] and [`BadToken::WrongIssuer`].
const ANOTHER_AUDIENCE: &str = "api://another-api";
const ANOTHER_ISSUER: &str = "https://another-issuer.example";

/// A token of a [`TestIssuer`](super::TestIssuer), from [`TestIssuer::token`](super::TestIssuer::token):
/// valid for the layer the issuer configures until a method says otherwise; finish with
/// [`sign`](Self::sign) or [`sign_bad`](Self::sign_bad).
///
/// Claims of an OpenID issuer's token: `iss`, `sub` (`test-user`), `aud`, `client_id` and `azp`,
/// `iat`, `exp` (in an hour), `jti`, and `scope` (one space-separated string) and `roles` when
/// asked for. An Azure AD token has Azure's: `aud`, `iss`, `iat`, `nbf`, `exp`, `azp` (v2) or
/// `appid` (v1), `oid`, `sub`, `tid`, `uti`, `ver`, `scp` and `roles`. The header names `alg`,
/// `kid` and `typ` (`at+jwt`, RFC 9068; `JWT` for Azure AD, with `x5t`).
///
/// [`claim`](Self::claim), [`claims`](Self::claims) and [`without_claim`](Self::without_claim)
/// apply last, over everything the other methods set.
///
/// ```
/// use validate_jwt::Algorithm;
/// use validate_jwt::testing::TestIssuer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start()?;
/// let layer = issuer.layer_builder().build()?;
/// let token = issuer
///     .token()
///     .alg(Algorithm::ES384)
///     .subject("alice")
///     .scopes(["Files.Read"])
///     .claim("groups", serde_json::json!(["staff"]))
///     .sign();
/// let claims = layer.validate_token(&token).await?;
/// assert_eq!(claims.subject(), Some("alice"));
/// assert_eq!(claims.scopes().collect::<Vec<_>>(), ["Files.Read"]);
/// assert_eq!(claims.get("groups"), Some(&serde_json::json!(["staff"])));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct TokenBuilder {
    issuer: Arc<Shared>,
    alg: Option<Algorithm>,
    kid: Option<String>,
    typ: Option<String>,
    header: Map<String, Value>,
    audience: Option<String>,
    subject: Option<String>,
    scopes: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    client_app: Option<String>,
    tenant: Option<String>,
    v1: bool,
    expires_in: Duration,
    not_before: Option<Duration>,
    claims: Map<String, Value>,
    removed: Vec<String>,
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("issuer", &self.issuer.base)
            .field("alg", &self.alg)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn strings<I, S>(values: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    values.into_iter().map(Into::into).collect()
}

impl TokenBuilder {
    pub(super) fn new(issuer: Arc<Shared>) -> Self {
        TokenBuilder {
            issuer,
            alg: None,
            kid: None,
            typ: None,
            header: Map::new(),
            audience: None,
            subject: None,
            scopes: None,
            roles: None,
            client_app: None,
            tenant: None,
            v1: false,
            expires_in: Duration::from_secs(3600),
            not_before: None,
            claims: Map::new(),
            removed: Vec::new(),
        }
    }

    /// `aud`, replacing the issuer's audience (a token for another API, say).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// `sub`. Default: `test-user`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The delegated scopes: `scope` (`scp` for Azure AD), one space-separated string.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(strings(scopes));
        self
    }

    /// The application roles: `roles`, an array of strings.
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = Some(strings(roles));
        self
    }

    /// The calling client application (`azp`, `appid` for Azure AD v1, `client_id` too for
    /// OpenID), replacing the issuer's.
    pub fn client_app(mut self, client_id: impl Into<String>) -> Self {
        self.client_app = Some(client_id.into());
        self
    }

    /// Azure AD: the tenant that issues the token: `tid`, and the tenant in `iss` (for a
    /// multi-tenant API, a caller from another tenant). For an OpenID issuer, `tid` only.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant = Some(tenant_id.into());
        self
    }

    /// Azure AD: a v1 token (an API whose manifest has `accessTokenAcceptedVersion` 1 or none):
    /// issuer `{url}/{tid}/`, `appid` instead of `azp`, `ver` `1.0`, audience `api://{client id}`
    /// unless the issuer was given another. For an OpenID issuer, only `appid` and `ver` change.
    pub fn azure_v1(mut self) -> Self {
        self.v1 = true;
        self
    }

    /// A claim, set as given (any JSON value; `None` values included), over what every other
    /// method sets: `claim("exp", 0)`, `claim("iss", "https://elsewhere.example")`.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.removed.retain(|removed| *removed != name);
        self.claims.insert(name, value.into());
        self
    }

    /// Every member of a JSON object as a [`claim`](Self::claim) (a value that is not an object
    /// sets nothing).
    pub fn claims(mut self, claims: Value) -> Self {
        if let Value::Object(members) = claims {
            for (name, value) in members {
                self = self.claim(name, value);
            }
        }
        self
    }

    /// Leaves a claim out, whoever set it (`without_claim("exp")`: a token without expiry).
    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.claims.remove(&name);
        self.removed.push(name);
        self
    }

    /// `exp` this long from now, instead of an hour.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = lifetime;
        self
    }

    /// `nbf` this long from now: a token valid later (a layer refuses it until then, less its
    /// leeway).
    pub fn not_before(mut self, delay: Duration) -> Self {
        self.not_before = Some(delay);
        self
    }

    /// The header's `typ`, instead of `at+jwt` (`JWT` for Azure AD).
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// The signing algorithm: the token is signed with the issuer's current key for it. For
    /// an algorithm the issuer has no key for (one left out of
    /// [`with_algorithms`](super::TestIssuerBuilder::with_algorithms), RS384, HS256 without
    /// [`with_hs256`](super::TestIssuerBuilder::with_hs256)), it is signed with a key the issuer
    /// does not publish, and refused. Default: RS256.
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// The header's `kid`, instead of the signing key's (a token naming a key that is not its
    /// signer's).
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// A header member, over the others (`header("jku", "https://attacker.example/keys")`). An
    /// `alg` the signing key cannot make is written as given, and the signature is still made
    /// with the key's own algorithm.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.header.insert(name.into(), value.into());
        self
    }

    /// The signed token (compact JWS).
    pub fn sign(&self) -> String {
        let key = self.key();
        let (header, claims) = self.parts(&key, now());
        signed(&key, &header, &claims)
    }

    /// This token with one flaw, which a layer refuses with the [`BadToken`]'s
    /// [`kind`](BadToken::kind): see [`BadToken`].
    ///
    /// ```
    /// use validate_jwt::JwtErrorKind;
    /// use validate_jwt::testing::{BadToken, TestIssuer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start()?;
    /// let layer = issuer.layer_builder().build()?;
    /// let expired = issuer.token().scopes(["Files.Read"]).sign_bad(BadToken::Expired);
    /// let err = layer.validate_token(&expired).await.unwrap_err();
    /// assert_eq!(err.kind(), JwtErrorKind::Expired);
    /// # Ok(())
    /// # }
    /// ```
    pub fn sign_bad(&self, bad: BadToken) -> String {
        let now = now();
        let mut key = self.key();
        if bad == BadToken::UnknownKey {
            key = self.issuer.stranger(key.algorithm());
        }
        let (mut header, mut claims) = self.parts(&key, now);
        let mut set = |name: &str, value: Value| {
            claims.insert(name.to_owned(), value);
        };
        match bad {
            BadToken::Expired => {
                set("iat", json!(now.saturating_sub(3 * 3600)));
                set("exp", json!(now.saturating_sub(2 * 3600)));
                if claims.contains_key("nbf") {
                    claims.insert("nbf".into(), json!(now.saturating_sub(3 * 3600)));
                }
            }
            BadToken::NotYetValid => {
                set("nbf", json!(now + 2 * 3600));
                set("exp", json!(now + 3 * 3600));
            }
            BadToken::WrongAudience => set("aud", json!(ANOTHER_AUDIENCE)),
            BadToken::WrongIssuer => set("iss", json!(ANOTHER_ISSUER)),
            BadToken::UnknownKey => {
                header.insert("kid".into(), json!(key.kid()));
            }
            BadToken::AlgNone => {
                header.insert("alg".into(), json!("none"));
                return format!(
                    "{}.{}.",
                    b64(Value::Object(header).to_string()),
                    b64(Value::Object(claims).to_string())
                );
            }
            BadToken::TamperedPayload => {
                let token = signed(&key, &header, &claims);
                let raised = match claims.get("sub").and_then(Value::as_str) {
                    Some("admin") => "root",
                    _ => "admin",
                };
                claims.insert("sub".into(), json!(raised));
                let mut segments = token.split('.');
                let (head, _, signature) = (segments.next(), segments.next(), segments.next());
                return format!(
                    "{}.{}.{}",
                    head.unwrap_or_default(),
                    b64(Value::Object(claims).to_string()),
                    signature.unwrap_or_default()
                );
            }
        }
        signed(&key, &header, &claims)
    }

    fn key(&self) -> SigningKey {
        let alg = self.alg.unwrap_or_else(|| self.issuer.default_algorithm());
        self.issuer.signing_key(alg)
    }

    /// The header and claims, signed by `key`, at `now`.
    fn parts(&self, key: &SigningKey, now: u64) -> (Map<String, Value>, Map<String, Value>) {
        let issuer = &*self.issuer;
        let azure = issuer.is_azure();
        let alg = self.alg.unwrap_or_else(|| key.algorithm());
        let kid = self.kid.clone().unwrap_or_else(|| key.kid().to_owned());
        let typ = match (&self.typ, azure) {
            (Some(typ), _) => typ.clone(),
            (None, false) => "at+jwt".to_owned(),
            (None, true) => "JWT".to_owned(),
        };
        let mut header = Map::new();
        header.insert("alg".into(), json!(alg.as_str()));
        header.insert("typ".into(), json!(typ));
        header.insert("kid".into(), json!(kid));
        if azure {
            header.insert("x5t".into(), json!(kid));
        }
        header.extend(self.header.clone());

        let tenant = self
            .tenant
            .as_deref()
            .or_else(|| issuer.home_tenant())
            .map(str::to_owned);
        let audience = match (&self.audience, self.v1 && azure) {
            (Some(audience), _) => audience.clone(),
            (None, false) => issuer.audience.clone(),
            (None, true) => issuer.v1_audience.clone(),
        };
        let client = self
            .client_app
            .clone()
            .unwrap_or_else(|| issuer.client_app.clone());
        let serial = issuer.next_serial();
        let mut claims = Map::new();
        let mut set = |name: &str, value: Value| {
            claims.insert(name.to_owned(), value);
        };
        set(
            "iss",
            json!(issuer.issuer_for(tenant.as_deref().unwrap_or_default(), self.v1)),
        );
        set("sub", json!(self.subject.as_deref().unwrap_or("test-user")));
        set("aud", json!(audience));
        set("iat", json!(now));
        if azure {
            set("nbf", json!(now));
        }
        if let Some(delay) = self.not_before {
            set("nbf", json!(now.saturating_add(delay.as_secs())));
        }
        set("exp", json!(now.saturating_add(self.expires_in.as_secs())));
        match (azure, self.v1) {
            (false, false) => {
                set("client_id", json!(client));
                set("azp", json!(client));
                set("jti", json!(format!("test-token-{serial}")));
            }
            (false, true) => {
                set("client_id", json!(client));
                set("appid", json!(client));
                set("jti", json!(format!("test-token-{serial}")));
                set("ver", json!("1.0"));
            }
            (true, v1) => {
                let (client_claim, version) = match v1 {
                    false => ("azp", "2.0"),
                    true => ("appid", "1.0"),
                };
                set(client_claim, json!(client));
                set("oid", json!("6a1f0c52-7d31-4b8e-9f2a-4c5d6e7f8091"));
                set("uti", json!(format!("test-token-{serial}")));
                set("ver", json!(version));
            }
        }
        if let Some(tenant) = &tenant {
            set("tid", json!(tenant));
        }
        if let Some(scopes) = &self.scopes {
            set(if azure { "scp" } else { "scope" }, json!(scopes.join(" ")));
        }
        if let Some(roles) = &self.roles {
            set("roles", json!(roles));
        }
        claims.extend(self.claims.clone());
        for name in &self.removed {
            claims.remove(name);
        }
        (header, claims)
    }
}

/// The compact JWS, signed with the algorithm the header names, or with the key's own when the
/// key cannot make that one (a header naming `none` or another key type's algorithm).
fn signed(key: &SigningKey, header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let input = format!(
        "{}.{}",
        b64(Value::Object(header.clone()).to_string()),
        b64(Value::Object(claims.clone()).to_string())
    );
    let named = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|alg| alg.parse::<Algorithm>().ok());
    let signature = named
        .and_then(|alg| key.signature(alg, input.as_bytes()))
        .or_else(|| key.signature(key.algorithm(), input.as_bytes()));
    let signature = made(signature.ok_or("a key always signs its own algorithm"));
    format!("{input}.{}", b64(signature))
}
