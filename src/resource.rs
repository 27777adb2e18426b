//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that tells a client which
//! authorization server to ask for a token for this API, and the `resource_metadata` parameter
//! every challenge carries to point at it. The Model Context Protocol's authorization spec
//! requires both of an MCP server.
//!
//! Configured with [`ValidateJwtBuilder::with_resource`](crate::ValidateJwtBuilder::with_resource)
//! (or [`with_resource_as_audience`](crate::ValidateJwtBuilder::with_resource_as_audience), which
//! also makes the resource the accepted audience, RFC 8707). The document is assembled once,
//! at `build()`, from the layer's own rules ([`assemble`]): the issuers of its key sources, the
//! scopes of its requirements, the places it reads tokens from; a [`ProtectedResource`] adds
//! the optional members and overrides. The layer answers the metadata paths itself (no token
//! needed), and [`ResourceMetadata`] serves the same document from anywhere else.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use reqwest::Url;
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::error::ConfigError;
use crate::extract::TokenLocations;
use crate::issuer::{SourceIssuers, TENANT_PLACEHOLDER};

/// The well-known path of RFC 9728 §3.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The default `Cache-Control: max-age` of the document: one hour.
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// The protected resource a layer guards, and what its RFC 9728 metadata says beyond what the
/// layer derives from its own rules. Give it to
/// [`ValidateJwtBuilder::with_resource`](crate::ValidateJwtBuilder::with_resource) (a plain
/// `&str` or `String` is a `ProtectedResource` with nothing more set).
///
/// The document members and where they come from:
///
/// | member | value |
/// |---|---|
/// | `resource` | the resource identifier given to [`new`](Self::new) |
/// | `authorization_servers` | the issuers of the layer's key sources: a discovery URL's issuer (the URL less its well-known part), or the issuers bound to static keys, a JWKS URL or a key source (`{tenantid}` templates left out); [`with_authorization_servers`](Self::with_authorization_servers) replaces them |
/// | `scopes_supported` | the scopes the layer's requirements name, then those of [`add_scope`](Self::add_scope) (per-route rules); [`with_scopes_supported`](Self::with_scopes_supported) replaces them |
/// | `bearer_methods_supported` | `header` when the token is read from `Authorization: Bearer`, `query` when from the `access_token` query parameter (RFC 6750 §2.1, §2.3); other places (cookies, other headers or parameters) are no RFC 6750 method, and `body` is never read |
/// | `resource_name`, `resource_documentation`, `resource_policy_uri`, `resource_tos_uri`, `jwks_uri` | when set here |
/// | anything else | [`add_member`](Self::add_member), which also overrides a derived member |
///
/// ```
/// use validate_jwt::{ProtectedResource, StaticKeys, ValidateJwtLayer};
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .with_resource_as_audience(
///         ProtectedResource::new("https://api.example/mcp")
///             .with_resource_name("Files MCP server")
///             .add_scope("files.read")
///             .add_member("x_contact", "ops@example.com"),
///     )
///     .build()
///     .unwrap();
/// let metadata = layer.resource_metadata().unwrap();
/// assert_eq!(
///     metadata.url(),
///     "https://api.example/.well-known/oauth-protected-resource/mcp"
/// );
/// let document: serde_json::Value = serde_json::from_str(metadata.json()).unwrap();
/// assert_eq!(document["resource"], "https://api.example/mcp");
/// assert_eq!(document["authorization_servers"][0], "https://issuer.example");
/// assert_eq!(document["scopes_supported"][0], "files.read");
/// assert_eq!(document["bearer_methods_supported"][0], "header");
/// assert_eq!(document["x_contact"], "ops@example.com");
/// ```
#[derive(Clone)]
#[must_use]
pub struct ProtectedResource {
    resource: String,
    authorization_servers: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    added_scopes: Vec<String>,
    /// Optional, extra and overriding members, in the order they were set (serialized when
    /// set; a value that cannot be JSON is a `build()` error).
    members: Vec<(String, Result<Value, String>)>,
    max_age: Duration,
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl From<&str> for ProtectedResource {
    fn from(resource: &str) -> Self {
        ProtectedResource::new(resource)
    }
}

impl From<String> for ProtectedResource {
    fn from(resource: String) -> Self {
        ProtectedResource::new(resource)
    }
}

impl ProtectedResource {
    /// The resource identifier (RFC 9728 §1.2): the API's URL, `https` (plain `http` only to a
    /// loopback host), without a query or fragment. An MCP server's is its canonical URI, the
    /// URL clients connect to (`https://mcp.example.com/mcp`). Checked at `build()`.
    pub fn new(resource: impl Into<String>) -> Self {
        ProtectedResource {
            resource: resource.into(),
            authorization_servers: None,
            scopes: None,
            added_scopes: Vec::new(),
            members: Vec::new(),
            max_age: DEFAULT_METADATA_MAX_AGE,
        }
    }

    /// `authorization_servers`: these issuer identifiers instead of the key sources' issuers
    /// (each a URL).
    pub fn with_authorization_servers<I, S>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.authorization_servers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// `scopes_supported`: these instead of the scopes the requirements name (an empty list
    /// leaves the member out).
    pub fn with_scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// One more scope for `scopes_supported` (repeatable): the scopes of per-route rules
    /// ([`ValidateJwtLayer::for_route`](crate::ValidateJwtLayer::for_route)), which are made
    /// after the layer.
    pub fn add_scope(mut self, scope: impl Into<String>) -> Self {
        self.added_scopes.push(scope.into());
        self
    }

    /// `resource_name`: a human-readable name for the API.
    pub fn with_resource_name(self, name: impl Into<String>) -> Self {
        self.member("resource_name", Value::String(name.into()))
    }

    /// `resource_documentation`: a URL of the API's documentation for developers.
    pub fn with_resource_documentation(self, url: impl Into<String>) -> Self {
        self.member("resource_documentation", Value::String(url.into()))
    }

    /// `resource_policy_uri`: a URL of how the API's data may be used.
    pub fn with_resource_policy_uri(self, url: impl Into<String>) -> Self {
        self.member("resource_policy_uri", Value::String(url.into()))
    }

    /// `resource_tos_uri`: a URL of the API's terms of service.
    pub fn with_resource_tos_uri(self, url: impl Into<String>) -> Self {
        self.member("resource_tos_uri", Value::String(url.into()))
    }

    /// `jwks_uri`: a URL of the API's own public keys (for signed responses, encrypted
    /// requests); not the keys that verify tokens.
    pub fn with_jwks_uri(self, url: impl Into<String>) -> Self {
        self.member("jwks_uri", Value::String(url.into()))
    }

    /// Any other member (repeatable; the last value of a name wins). The name of a member the
    /// layer derives (`authorization_servers`, `scopes_supported`, `bearer_methods_supported`)
    /// replaces it; `resource` cannot be replaced. `value` is serialized here; one that cannot
    /// be JSON is a `build()` error.
    pub fn add_member(self, name: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).map_err(|e| e.to_string());
        self.member_result(name.into(), value)
    }

    /// The `Cache-Control: max-age` of the document (default one hour; at most a week).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    fn member(self, name: &str, value: Value) -> Self {
        self.member_result(name.to_owned(), Ok(value))
    }

    fn member_result(mut self, name: String, value: Result<Value, String>) -> Self {
        self.members.retain(|(n, _)| *n != name);
        self.members.push((name, value));
        self
    }

    pub(crate) fn resource(&self) -> &str {
        &self.resource
    }
}

/// What the layer knows, for the members it derives (filled in by `build()`). Another feature
/// that publishes members (DPoP, mTLS) adds a field here and its members in [`assemble`].
#[derive(Debug, Default)]
pub(crate) struct Derived {
    /// The issuers of the key sources, in order, without duplicates.
    pub(crate) authorization_servers: Vec<String>,
    /// The scopes the layer's requirements name.
    pub(crate) scopes: Vec<String>,
    /// RFC 6750 methods the layer reads tokens by: `header`, `query`.
    pub(crate) bearer_methods: Vec<&'static str>,
    /// DPoP's and certificate binding's members (RFC 9449 §5.2, RFC 8705 §3.3):
    /// `dpop_signing_alg_values_supported`, `dpop_bound_access_tokens_required`,
    /// `tls_client_certificate_bound_access_tokens`; empty when both are off.
    pub(crate) sender: serde_json::Map<String, Value>,
}

/// `authorization_servers` from the key sources: a discovery source's is the issuer its URL
/// names (the one whose metadata the layer reads, so a client finds it there too); another
/// source's are the issuers of its set, `{tenantid}` templates left out.
pub(crate) fn authorization_servers(
    discovery: &[Option<&str>],
    issuers: &[SourceIssuers],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |issuer: &str| {
        if !issuer.contains(TENANT_PLACEHOLDER) && !out.iter().any(|o| o == issuer) {
            out.push(issuer.to_owned());
        }
    };
    for (i, set) in issuers.iter().enumerate() {
        if let Some(Some(issuer)) = discovery.get(i) {
            push(issuer);
            continue;
        }
        match set {
            SourceIssuers::Assigned(list) | SourceIssuers::Own(list) => {
                list.iter().for_each(|p| push(p.as_str()))
            }
            SourceIssuers::Any { .. } => {}
        }
    }
    out
}

/// `bearer_methods_supported` from the token locations: RFC 6750's `header`
/// (`Authorization: Bearer`) and `query` (`access_token`).
pub(crate) fn bearer_methods(locations: &TokenLocations) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if locations.header == Some(header::AUTHORIZATION)
        && locations
            .scheme
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("Bearer"))
    {
        methods.push("header");
    }
    if locations.query.as_deref() == Some("access_token") {
        methods.push("query");
    }
    methods
}

/// The document's members, in order.
struct Members(Vec<(String, Value)>);

impl Members {
    fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }
}

impl Serialize for Members {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The one place the document is assembled: the derived members, then the ones the user set
/// (which override derived ones of the same name).
fn assemble(resource: &ProtectedResource, derived: Derived) -> Result<Members, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidSetting {
        setting: "ProtectedResource",
        reason,
    };
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let mut members = Members(Vec::new());
    members.set("resource", Value::String(resource.resource.clone()));

    let servers = match &resource.authorization_servers {
        Some(listed) => {
            for issuer in listed {
                if let Err(why) = issuer_identifier(issuer) {
                    return Err(invalid(format!(
                        "authorization server {issuer:?} is not an issuer identifier (RFC 8414 §2): {why}"
                    )));
                }
            }
            listed.clone()
        }
        None => derived.authorization_servers,
    };
    if !servers.is_empty() {
        members.set("authorization_servers", strings(servers));
    }

    let mut scopes = resource.scopes.clone().unwrap_or(derived.scopes);
    for scope in &resource.added_scopes {
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(invalid(format!(
            "scope {bad:?} is not a scope token (RFC 6749 §3.3: visible ASCII except `\"` and `\\`, no spaces)"
        )));
    }
    if !scopes.is_empty() {
        members.set("scopes_supported", strings(scopes));
    }
    members.set(
        "bearer_methods_supported",
        Value::Array(
            derived
                .bearer_methods
                .iter()
                .map(|m| Value::String((*m).to_owned()))
                .collect(),
        ),
    );

    // DPoP's and certificate binding's members, before the user's (who may override them).
    for (name, value) in derived.sender {
        members.set(&name, value);
    }

    for (name, value) in &resource.members {
        if name.is_empty() || name == "resource" {
            return Err(invalid(format!(
                "member {name:?} cannot be set: `resource` is the identifier given to `ProtectedResource::new`"
            )));
        }
        let value = value
            .clone()
            .map_err(|e| invalid(format!("member {name:?} is not JSON: {e}")))?;
        let is_url_member = matches!(
            name.as_str(),
            "resource_documentation" | "resource_policy_uri" | "resource_tos_uri" | "jwks_uri"
        );
        if is_url_member && value.as_str().is_none_or(|u| Url::parse(u).is_err()) {
            return Err(invalid(format!("member {name:?} is not a URL: {value}")));
        }
        members.set(name, value);
    }
    Ok(members)
}

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// An authorization server's issuer identifier (RFC 8414 §2): an https URL (http to a
/// loopback host, for tests), without query or fragment.
fn issuer_identifier(issuer: &str) -> Result<(), &'static str> {
    let url = Url::parse(issuer).map_err(|_| "not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" if crate::keys::is_loopback(&url) => {}
        _ => return Err("the scheme must be https"),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it has a query or a fragment");
    }
    if url.host_str().is_none() {
        return Err("it has no host");
    }
    Ok(())
}

/// The resource identifier's checks, and the metadata URL and paths it gives (§3.1: the
/// well-known path goes between the host and the resource's path, whose terminating `/` is
/// removed).
fn locate(resource: &str) -> Result<(String, Vec<Box<str>>), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        url: resource.to_owned(),
        reason: format!("not a protected resource identifier (RFC 9728 §1.2): {reason}"),
    };
    let url = Url::parse(resource).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if crate::keys::is_loopback(&url) => {}
        "http" => return Err(invalid("plain http is only allowed to a loopback host")),
        _ => return Err(invalid("the scheme must be https")),
    }
    if url.fragment().is_some() {
        return Err(invalid("it has a fragment"));
    }
    if url.query().is_some() {
        return Err(invalid(
            "it has a query, which this crate does not serve metadata for",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it has user information"));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("it has no host"));
    };
    // The document's `resource`, the audience (`with_resource_as_audience`) and the metadata
    // URL must name the same identifier (§3.3), and clients compare it as text: it is written
    // in its normal form (lower-case scheme and host, no default port, no dot segments).
    let normal = url.as_str();
    if resource != normal && format!("{resource}/") != normal {
        return Err(invalid(&format!(
            "it is not written in its normal form, which clients compare it in: write {normal:?}"
        )));
    }
    let origin = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    let path = url.path().trim_end_matches('/');
    let suffixed = format!("{WELL_KNOWN}{path}");
    let mut paths: Vec<Box<str>> = vec![suffixed.clone().into()];
    if !path.is_empty() {
        // The root form too: clients that do not insert the path (and MCP's fallback) ask there.
        paths.push(WELL_KNOWN.into());
    }
    Ok((format!("{origin}{suffixed}"), paths))
}

/// Builds the served document: the resource checked, the members assembled, the JSON written
/// once.
pub(crate) fn build(
    resource: &ProtectedResource,
    derived: Derived,
) -> Result<ResourceMetadata, ConfigError> {
    let (url, paths) = locate(&resource.resource)?;
    if resource.max_age > Duration::from_secs(7 * 24 * 3600) {
        return Err(ConfigError::InvalidSetting {
            setting: "ProtectedResource::with_max_age",
            reason: "a max-age above one week".into(),
        });
    }
    let members = assemble(resource, derived)?;
    let json = serde_json::to_string_pretty(&members).map_err(|e| ConfigError::InvalidSetting {
        setting: "ProtectedResource",
        reason: format!("the document cannot be written: {e}"),
    })?;
    let cache_control =
        HeaderValue::try_from(format!("public, max-age={}", resource.max_age.as_secs())).map_err(
            |_| ConfigError::InvalidSetting {
                setting: "ProtectedResource::with_max_age",
                reason: "not a header value".into(),
            },
        )?;
    Ok(ResourceMetadata(Arc::new(Inner {
        resource: resource.resource.clone().into(),
        url: url.into(),
        paths,
        body: Bytes::from(json.clone().into_bytes()),
        json: json.into(),
        cache_control,
    })))
}

struct Inner {
    resource: Box<str>,
    url: Box<str>,
    paths: Vec<Box<str>>,
    json: Box<str>,
    /// `json`'s bytes, shared by every answer.
    body: Bytes,
    cache_control: HeaderValue,
}

/// A layer's RFC 9728 metadata document, built once: its URL (the `resource_metadata` of every
/// challenge), the paths it is served at, its JSON, and a tower service that serves it.
///
/// The layer answers `GET`, `HEAD` and `OPTIONS` at [`paths`](Self::paths) itself, before
/// looking for a token, so wherever the layer sees those paths (a whole axum router including
/// its fallback, a tonic server, a hyper service) nothing else is needed. Where it does not
/// (the layer on some routes only), mount this service at those paths: it answers every
/// request it is given with the document (`405` for methods other than `GET`, `HEAD`,
/// `OPTIONS`). Cheap to clone.
///
/// ```
/// use axum::Router;
/// use tower::ServiceExt;
/// use validate_jwt::{StaticKeys, ValidateJwtLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let jwt = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .with_resource_as_audience("https://api.example/files")
///     .build()
///     .unwrap();
/// let metadata = jwt.resource_metadata().unwrap();
/// assert_eq!(
///     metadata.paths().collect::<Vec<_>>(),
///     ["/.well-known/oauth-protected-resource/files", "/.well-known/oauth-protected-resource"]
/// );
/// let mut app = Router::new().route("/files", axum::routing::get(|| async { "files" }).layer(jwt));
/// for path in metadata.paths() {
///     app = app.route_service(path, metadata.clone());
/// }
/// let request = http::Request::get("/.well-known/oauth-protected-resource/files")
///     .body(axum::body::Body::empty())
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// # }
/// ```
#[derive(Clone)]
pub struct ResourceMetadata(Arc<Inner>);

impl fmt::Debug for ResourceMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceMetadata")
            .field("resource", &self.0.resource)
            .field("url", &self.0.url)
            .finish_non_exhaustive()
    }
}

impl ResourceMetadata {
    /// The resource identifier (the document's `resource`).
    pub fn resource(&self) -> &str {
        &self.0.resource
    }

    /// The metadata URL (RFC 9728 §3.1), as challenges carry it in `resource_metadata`.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The paths the document is served at: the path-suffixed well-known path of the
    /// resource (`/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`), then,
    /// for a resource with a path, the bare `/.well-known/oauth-protected-resource`.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.paths.iter().map(|p| &**p)
    }

    /// The document, as served.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// Whether the layer answers a request for `path` with the document.
    pub(crate) fn serves(&self, path: &str) -> bool {
        path.starts_with(WELL_KNOWN) && self.0.paths.iter().any(|p| **p == *path)
    }

    /// The answer to a request for the document.
    pub(crate) fn answer(&self, method: &Method, headers: &HeaderMap) -> Response<Bytes> {
        const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
        let mut h = HeaderMap::new();
        let mut status = StatusCode::OK;
        let mut body = Bytes::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if *method == Method::GET || *method == Method::HEAD {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(header::CACHE_CONTROL, self.0.cache_control.clone());
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(self.0.json.len()));
            if *method == Method::GET {
                body = self.0.body.clone();
            }
        } else if *method == Method::OPTIONS {
            status = StatusCode::NO_CONTENT;
            h.insert(header::ALLOW, ALLOW);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW);
            // Browsers' MCP clients send `MCP-Protocol-Version`: whatever they ask for.
            if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        } else {
            status = StatusCode::METHOD_NOT_ALLOWED;
            h.insert(header::ALLOW, ALLOW);
        }
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = h;
        response
    }
}

impl<B> tower::Service<Request<B>> for ResourceMetadata {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.answer(request.method(), request.headers());
        let json = self.json();
        std::future::ready(Ok(response.map(|body| match body.is_empty() {
            true => String::new(),
            false => json.to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived() -> Derived {
        Derived {
            authorization_servers: vec!["https://idp.example".into()],
            scopes: vec!["files.read".into()],
            bearer_methods: vec!["header"],
            sender: serde_json::Map::new(),
        }
    }

    fn document(resource: ProtectedResource) -> Value {
        let metadata = build(&resource, derived()).unwrap();
        serde_json::from_str(metadata.json()).unwrap()
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_path_before_the_resource_path() {
        for (resource, url, paths) in [
            (
                "https://api.example",
                "https://api.example/.well-known/oauth-protected-resource",
                &["/.well-known/oauth-protected-resource"][..],
            ),
            (
                "https://api.example/",
                "https://api.example/.well-known/oauth-protected-resource",
                &["/.well-known/oauth-protected-resource"][..],
            ),
            (
                "https://api.example:8443/v1/mcp/",
                "https://api.example:8443/.well-known/oauth-protected-resource/v1/mcp",
                &[
                    "/.well-known/oauth-protected-resource/v1/mcp",
                    "/.well-known/oauth-protected-resource",
                ][..],
            ),
            (
                "http://127.0.0.1:3000/mcp",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp",
                &[
                    "/.well-known/oauth-protected-resource/mcp",
                    "/.well-known/oauth-protected-resource",
                ][..],
            ),
            (
                "http://[::1]/mcp",
                "http://[::1]/.well-known/oauth-protected-resource/mcp",
                &[
                    "/.well-known/oauth-protected-resource/mcp",
                    "/.well-known/oauth-protected-resource",
                ][..],
            ),
        ] {
            let m = build(&ProtectedResource::new(resource), Derived::default()).unwrap();
            assert_eq!(m.url(), url, "{resource}");
            assert_eq!(m.paths().collect::<Vec<_>>(), paths, "{resource}");
            assert_eq!(m.resource(), resource);
        }
    }

    #[test]
    fn resource_identifiers_that_are_not_https_urls_are_refused() {
        for (resource, reason) in [
            ("api://files", "scheme must be https"),
            ("http://api.example/mcp", "loopback"),
            ("https://api.example/mcp#x", "fragment"),
            ("https://api.example/mcp?x=1", "query"),
            ("https://user@api.example/mcp", "user information"),
            ("not a url", "not a protected resource identifier"),
            ("", "not a protected resource identifier"),
            // Not in the normal form clients compare (§3.3): the URL parser would rewrite them.
            (
                "https://API.example/mcp",
                "write \"https://api.example/mcp\"",
            ),
            (
                "https://api.example:443/mcp",
                "write \"https://api.example/mcp\"",
            ),
            ("HTTPS://api.example/mcp", "normal form"),
            ("https:api.example/mcp", "normal form"),
            (" https://api.example/mcp", "normal form"),
            ("https://api.example/a/../mcp", "normal form"),
        ] {
            let err = build(&ProtectedResource::new(resource), Derived::default()).unwrap_err();
            assert!(
                matches!(&err, ConfigError::InvalidUrl { url, .. } if url == resource),
                "{resource}: {err}"
            );
            assert!(err.to_string().contains(reason), "{resource}: {err}");
        }
    }

    #[test]
    fn listed_authorization_servers_must_be_issuer_identifiers() {
        for (issuer, reason) in [
            ("not a url", "not a URL"),
            ("http://idp.example", "https"),
            ("https://idp.example/?tenant=a", "query or a fragment"),
            ("https://idp.example/#x", "query or a fragment"),
        ] {
            let resource = ProtectedResource::new("https://api.example/mcp")
                .with_authorization_servers([issuer]);
            let err = build(&resource, Derived::default()).unwrap_err();
            assert!(err.to_string().contains(reason), "{issuer}: {err}");
        }
        for issuer in ["https://idp.example/tenant/v2.0", "http://127.0.0.1:8080"] {
            let resource = ProtectedResource::new("https://api.example/mcp")
                .with_authorization_servers([issuer]);
            assert!(build(&resource, Derived::default()).is_ok(), "{issuer}");
        }
    }

    #[test]
    fn derived_members_come_first_in_order() {
        let m = build(
            &ProtectedResource::new("https://api.example/mcp"),
            derived(),
        )
        .unwrap();
        let names: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(m.json())
            .unwrap()
            .keys()
            .cloned()
            .collect();
        // serde_json's map sorts; the text keeps the written order.
        let json = m.json();
        let at = |n: &str| json.find(&format!("\"{n}\"")).unwrap();
        assert!(at("resource") < at("authorization_servers"));
        assert!(at("authorization_servers") < at("scopes_supported"));
        assert!(at("scopes_supported") < at("bearer_methods_supported"));
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn optional_and_extra_members_are_added_and_overrides_replace() {
        let doc = document(
            ProtectedResource::new("https://api.example/mcp")
                .with_resource_name("Files")
                .with_resource_documentation("https://docs.example/files")
                .with_resource_policy_uri("https://docs.example/policy")
                .with_resource_tos_uri("https://docs.example/tos")
                .with_jwks_uri("https://api.example/jwks.json")
                .add_member("x_numbers", [1, 2])
                .add_member("bearer_methods_supported", ["header", "body"])
                .with_resource_name("Files API"),
        );
        assert_eq!(doc["resource_name"], "Files API");
        assert_eq!(doc["resource_documentation"], "https://docs.example/files");
        assert_eq!(doc["resource_policy_uri"], "https://docs.example/policy");
        assert_eq!(doc["resource_tos_uri"], "https://docs.example/tos");
        assert_eq!(doc["jwks_uri"], "https://api.example/jwks.json");
        assert_eq!(doc["x_numbers"], serde_json::json!([1, 2]));
        assert_eq!(
            doc["bearer_methods_supported"],
            serde_json::json!(["header", "body"])
        );
    }

    #[test]
    fn servers_and_scopes_can_be_replaced_or_extended() {
        let doc = document(
            ProtectedResource::new("https://api.example/mcp")
                .with_authorization_servers(["https://other.example/tenant"])
                .add_scope("files.write")
                .add_scope("files.read"),
        );
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://other.example/tenant"])
        );
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["files.read", "files.write"])
        );
        let doc = document(
            ProtectedResource::new("https://api.example/mcp").with_scopes_supported(["a"]),
        );
        assert_eq!(doc["scopes_supported"], serde_json::json!(["a"]));
        let doc = document(
            ProtectedResource::new("https://api.example/mcp")
                .with_scopes_supported(Vec::<String>::new())
                .with_authorization_servers(Vec::<String>::new()),
        );
        assert!(doc.get("scopes_supported").is_none());
        assert!(doc.get("authorization_servers").is_none());
    }

    #[test]
    fn bad_members_are_build_errors() {
        for (resource, reason) in [
            (
                ProtectedResource::new("https://a.example").add_member("resource", "x"),
                "cannot be set",
            ),
            (
                ProtectedResource::new("https://a.example").add_member("", 1),
                "cannot be set",
            ),
            (
                ProtectedResource::new("https://a.example").with_jwks_uri("keys.json"),
                "not a URL",
            ),
            (
                ProtectedResource::new("https://a.example").add_scope("two words"),
                "not a scope token",
            ),
            (
                ProtectedResource::new("https://a.example").add_scope("quo\"te"),
                "not a scope token",
            ),
            (
                ProtectedResource::new("https://a.example").with_authorization_servers(["idp"]),
                "not a URL",
            ),
            (
                ProtectedResource::new("https://a.example")
                    .with_max_age(Duration::from_secs(30 * 24 * 3600)),
                "one week",
            ),
        ] {
            let err = build(&resource, derived()).unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
        }
        // A value that cannot be JSON (a map with non-string keys).
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let err = build(
            &ProtectedResource::new("https://a.example").add_member("x", map),
            derived(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
    }

    #[test]
    fn the_service_answers_get_head_options_and_refuses_other_methods() {
        let m = build(&ProtectedResource::new("https://a.example/x"), derived()).unwrap();
        let headers = HeaderMap::new();
        let get = m.answer(&Method::GET, &headers);
        assert_eq!(get.status(), 200);
        assert_eq!(get.body(), m.json().as_bytes());
        assert_eq!(get.headers()[header::CACHE_CONTROL], "public, max-age=3600");
        assert_eq!(get.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let head = m.answer(&Method::HEAD, &headers);
        assert_eq!(head.status(), 200);
        assert!(head.body().is_empty());
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            m.json().len().to_string()
        );
        let mut asking = HeaderMap::new();
        asking.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("mcp-protocol-version"),
        );
        let options = m.answer(&Method::OPTIONS, &asking);
        assert_eq!(options.status(), 204);
        assert_eq!(
            options.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "mcp-protocol-version"
        );
        let post = m.answer(&Method::POST, &headers);
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
        assert!(m.serves("/.well-known/oauth-protected-resource/x"));
        assert!(m.serves("/.well-known/oauth-protected-resource"));
        assert!(!m.serves("/.well-known/oauth-protected-resource/y"));
        assert!(!m.serves("/x"));
    }
}
