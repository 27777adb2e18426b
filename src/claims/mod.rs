//! Verified claims for the service, and the requirements a token's claims must meet.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::issuer::IssuerLabel;

mod payload;
mod requirement;

pub(crate) use payload::{Registered, Wanted, parse_claims};

pub use requirement::{ClaimRequirement, Denied, Requirement};

/// The verified claims of a request's token, put into the request's extensions by the layer.
///
/// Cheap to clone (an `Arc`). The payload was decoded once; typed access deserializes from
/// those bytes without checking the signature again.
///
/// ```
/// # use validate_jwt::Claims;
/// # fn handler(claims: &Claims) {
/// #[derive(serde::Deserialize)]
/// struct AzureAd { oid: String, tid: String }
///
/// let subject = claims.subject();
/// let can_read = claims.scopes().any(|s| s == "Files.Read");
/// let typed: Result<AzureAd, _> = claims.deserialize();
/// # }
/// ```
///
/// How Azure AD (Entra ID) claims map: `scp` (delegated permissions, one space-separated
/// string) and `roles` (application permissions, an array) are read by
/// [`scopes`](Self::scopes) and [`roles`](Self::roles); `tid` by
/// [`tenant_id`](Self::tenant_id); `azp` (v2) or `appid` (v1) by
/// [`client_id`](Self::client_id); `oid` with `claims.get("oid")` or your own struct.
#[derive(Clone)]
pub struct Claims {
    inner: Arc<Inner>,
}

struct Inner {
    /// Holds the payload text too.
    registered: Registered,
    /// The id of the layer that verified these claims (0: none, see `from_unverified_json`).
    layer: u64,
    full: OnceLock<Option<Map<String, Value>>>,
    /// The sender binding the layer verified for this request (`crate::sender`).
    binding: Option<crate::sender::Binding>,
    /// The issuer the layer verified the token for, when it labels its metrics by issuer.
    issuer: Option<IssuerLabel>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.issuer())
            .field("sub", &self.subject())
            .field("exp", &self.expires_at())
            .finish_non_exhaustive()
    }
}

impl Claims {
    pub(crate) fn new(registered: Registered, layer: u64) -> Self {
        Self::verified(registered, layer, None)
    }

    /// Claims the layer `layer` verified for `issuer` (the metrics' label, when it labels by
    /// issuer).
    pub(crate) fn verified(
        registered: Registered,
        layer: u64,
        issuer: Option<IssuerLabel>,
    ) -> Self {
        Claims {
            inner: Arc::new(Inner {
                registered,
                layer,
                full: OnceLock::new(),
                binding: None,
                issuer,
            }),
        }
    }

    /// The issuer the layer verified these claims for, when it labels its metrics by issuer.
    pub(crate) fn issuer_label(&self) -> Option<&IssuerLabel> {
        self.inner.issuer.as_ref()
    }

    /// A copy carrying the sender binding the layer verified for this request.
    pub(crate) fn with_binding(&self, binding: crate::sender::Binding) -> Self {
        Claims {
            inner: Arc::new(Inner {
                registered: self.inner.registered.clone(),
                layer: self.inner.layer,
                full: OnceLock::new(),
                binding: Some(binding),
                issuer: self.inner.issuer.clone(),
            }),
        }
    }

    /// The key this request proved the token is bound to (RFC 7800 `cnf`): the DPoP key's
    /// thumbprint (`cnf.jkt`) or the client certificate's (`cnf["x5t#S256"]`). `None` unless
    /// the layer checked a binding ([`ValidateJwtBuilder::with_dpop`](crate::ValidateJwtBuilder::with_dpop),
    /// [`with_client_certificates`](crate::ValidateJwtBuilder::with_client_certificates)):
    /// a `cnf` the layer did not verify is never reported here.
    ///
    /// ```
    /// let claims = validate_jwt::Claims::from_unverified_json(br#"{"cnf":{"jkt":"abc"}}"#).unwrap();
    /// assert!(claims.binding().is_none());
    /// ```
    pub fn binding(&self) -> Option<&crate::sender::Binding> {
        self.inner.binding.as_ref()
    }

    /// A copy with its own allocation (and so its own reference count), for the token cache's
    /// per-thread entries.
    pub(crate) fn deep_copy(&self) -> Self {
        match &self.inner.binding {
            None => Claims::verified(
                self.inner.registered.clone(),
                self.inner.layer,
                self.inner.issuer.clone(),
            ),
            Some(binding) => self.with_binding(binding.clone()),
        }
    }

    /// Claims from a JSON payload, without any verification. For tests of code that consumes
    /// claims (handlers, custom requirements); the layer never uses this.
    ///
    /// ```
    /// let claims = validate_jwt::Claims::from_unverified_json(br#"{"sub":"alice","scp":"a b"}"#).unwrap();
    /// assert_eq!(claims.subject(), Some("alice"));
    /// assert_eq!(claims.scopes().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn from_unverified_json(json: &[u8]) -> Result<Self, crate::JwtError> {
        let registered = parse_claims(json.to_vec(), &Wanted::from([]))?;
        Ok(Claims::new(registered, 0))
    }

    /// The id of the [`ValidateJwtLayer`](crate::ValidateJwtLayer) that verified these claims;
    /// 0 for claims no layer verified.
    pub(crate) fn layer(&self) -> u64 {
        self.inner.layer
    }

    /// The payload's JSON text, exactly as the token carried it (the layer checked it is a
    /// UTF-8 I-JSON object).
    ///
    /// ```
    /// let claims = validate_jwt::Claims::from_unverified_json(br#"{"sub":"alice"}"#).unwrap();
    /// assert_eq!(claims.raw(), r#"{"sub":"alice"}"#);
    /// ```
    pub fn raw(&self) -> &str {
        &self.inner.registered.payload
    }

    /// Deserializes the payload into your own type.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.inner.registered.payload)
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.inner.registered.iss()
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.inner.registered.sub()
    }

    /// `aud`, whether the token carried one string or an array.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.inner.registered.audiences()
    }

    /// `exp`, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> Option<f64> {
        self.inner.registered.exp
    }

    /// `nbf`, in seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<f64> {
        self.inner.registered.nbf
    }

    /// `iat`, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<f64> {
        self.inner.registered.iat
    }

    /// Azure AD's tenant id, `tid`.
    pub fn tenant_id(&self) -> Option<&str> {
        self.inner.registered.tid()
    }

    /// The calling client application: `client_id` (RFC 9068 JWT access tokens, RFC 8693),
    /// else `azp` (Azure AD v2, OpenID Connect), else `appid` (Azure AD v1).
    ///
    /// ```
    /// use validate_jwt::Claims;
    ///
    /// let rfc9068 = Claims::from_unverified_json(br#"{"client_id":"s6BhdRkqt3","azp":"x"}"#).unwrap();
    /// assert_eq!(rfc9068.client_id(), Some("s6BhdRkqt3"));
    /// let azure_v1 = Claims::from_unverified_json(br#"{"appid":"0f3c2b1a"}"#).unwrap();
    /// assert_eq!(azure_v1.client_id(), Some("0f3c2b1a"));
    /// ```
    pub fn client_id(&self) -> Option<&str> {
        ["client_id", "azp", "appid"]
            .into_iter()
            .find_map(|name| self.get(name).and_then(Value::as_str))
    }

    /// The scopes from `scp` or `scope` (RFC 8693 / RFC 9068), each a space-separated string or
    /// an array of strings.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let scp = self.get("scp").map(words).into_iter().flatten();
        let scope = self.get("scope").map(words).into_iter().flatten();
        scp.chain(scope)
    }

    /// Whether [`scopes`](Self::scopes) holds `want`: the requirements' check, one plain loop
    /// over the words instead of the chained iterators (the request path runs it for every
    /// token).
    pub(crate) fn has_scope(&self, want: &str) -> bool {
        let has = |name: &str| self.get(name).is_some_and(|v| has_word(v, want, true));
        !want.is_empty() && (has("scp") || has("scope"))
    }

    /// Whether [`roles`](Self::roles) holds `want`.
    pub(crate) fn has_role(&self, want: &str) -> bool {
        self.get("roles").is_some_and(|v| has_word(v, want, false))
    }

    /// The roles from `roles`: an array of strings, or one string.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.get("roles").map(list).into_iter().flatten()
    }

    /// A top-level claim.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let r = &self.inner.registered;
        // Members the requirements read were all looked for in the one parse: no need to parse
        // the whole payload to learn that one is absent.
        if let Some(i) = r.wanted.iter().position(|w| **w == *name) {
            return r.captured.iter().find(|(j, _)| *j == i).map(|(_, v)| v);
        }
        self.as_map().and_then(|m| m.get(name))
    }

    /// A nested claim by path, e.g. `["realm_access", "roles"]` (Keycloak).
    pub fn get_path<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> Option<&Value> {
        let mut path = path.into_iter();
        let mut value = self.get(path.next()?)?;
        for segment in path {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// The whole payload as a JSON object (parsed on first use, then kept).
    pub fn as_map(&self) -> Option<&Map<String, Value>> {
        self.inner
            .full
            .get_or_init(|| serde_json::from_str(&self.inner.registered.payload).ok())
            .as_ref()
    }
}

/// The strings of a claim: the words of a space-separated string, the strings of an array, or
/// (for [`list`]) one whole string.
enum Strings<'a> {
    Words(std::str::Split<'a, char>),
    One(Option<&'a str>),
    Array(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for Strings<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Strings::Words(words) => words.find(|w| !w.is_empty()),
            Strings::One(one) => one.take(),
            Strings::Array(items) => items.find_map(Value::as_str),
        }
    }
}

/// Whether `v` holds `want`: as one of its space-separated words (`words`) or as the whole
/// string, or as one of its array's strings. [`words`] and [`list`] in one loop.
fn has_word(v: &Value, want: &str, words: bool) -> bool {
    match v {
        Value::String(s) if words => s
            .as_bytes()
            .split(|b| *b == b' ')
            .any(|w| w == want.as_bytes()),
        Value::String(s) => s == want,
        Value::Array(a) => a.iter().any(|item| item.as_str() == Some(want)),
        _ => false,
    }
}

/// Space-separated words of a string, or the strings of an array.
fn words(v: &Value) -> Strings<'_> {
    match v {
        Value::String(s) => Strings::Words(s.split(' ')),
        Value::Array(a) => Strings::Array(a.iter()),
        _ => Strings::One(None),
    }
}

/// One string, or the strings of an array.
fn list(v: &Value) -> Strings<'_> {
    match v {
        Value::String(s) => Strings::One(Some(s.as_str())),
        Value::Array(a) => Strings::Array(a.iter()),
        _ => Strings::One(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The requirements' checks (`has_scope`, `has_role`) agree with the public iterators
    /// (`scopes`, `roles`) on every shape of the claims.
    #[test]
    fn has_scope_and_has_role_agree_with_the_iterators() {
        let payloads = [
            r#"{"scp":"a b","roles":["r","s"]}"#,
            r#"{"scp":"a  b ","scope":"c"}"#,
            r#"{"scope":["a","b",1],"roles":"r s"}"#,
            r#"{"scp":["a b"],"roles":[1,"r"]}"#,
            r#"{"scp":1,"scope":null,"roles":{"r":1}}"#,
            r#"{"scp":"","roles":""}"#,
            r#"{}"#,
        ];
        let wants = ["a", "b", "c", "a b", "", " ", "r", "s", "r s", "x"];
        for payload in payloads {
            let claims = Claims::from_unverified_json(payload.as_bytes()).unwrap();
            for want in wants {
                assert_eq!(
                    claims.has_scope(want),
                    claims.scopes().any(|s| s == want),
                    "scope {want:?} in {payload}"
                );
                assert_eq!(
                    claims.has_role(want),
                    claims.roles().any(|r| r == want),
                    "role {want:?} in {payload}"
                );
            }
        }
    }
}
