//! Azure API Management policies, imported (feature `apim`): one `<validate-jwt>` or
//! `<validate-azure-ad-token>` element, alone or inside a whole `<policies>` document (or a
//! `<fragment>`), becomes a [`ValidateJwtBuilder`] — the policy file an APIOps repository
//! already keeps, running in process.
//!
//! ```
//! use validate_jwt::apim::{Policy, Resources};
//!
//! let xml = r#"
//! <policies>
//!   <inbound>
//!     <base />
//!     <validate-jwt header-name="Authorization" failed-validation-httpcode="401"
//!                   failed-validation-error-message="Unauthorized. Access token is missing or invalid.">
//!       <openid-config url="https://login.microsoftonline.com/{{tenant-id}}/v2.0/.well-known/openid-configuration" />
//!       <required-claims>
//!         <claim name="aud">
//!           <value>{{backend-app-id}}</value>
//!         </claim>
//!       </required-claims>
//!     </validate-jwt>
//!   </inbound>
//! </policies>"#;
//! let resources = Resources::new()
//!     .add_named_value("tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47")
//!     .add_named_value("backend-app-id", "6e74172b-be56-4843-9ff4-e66a39bb12e3");
//! let policy = Policy::parse(xml, &resources).unwrap();
//! // What was not imported is said, never dropped silently.
//! assert_eq!(policy.notes()[0].to_string(), "line 4, column 5: <base> is not imported: only the validation policy is read");
//! let layer = policy
//!     .into_builder()
//!     .add_claim_header("oid", "x-user-oid") // APIM's set-header, in code
//!     .build()
//!     .unwrap();
//! # let _ = layer;
//!
//! // Anything the import cannot honour is an error with its position.
//! let simple = r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
//!     <issuer-signing-keys><key>{{jwt-signing-key}}</key></issuer-signing-keys>
//!     <audiences><audience>@(context.Request.OriginalUrl.Host)</audience></audiences>
//!     <issuers><issuer>http://contoso.com/</issuer></issuers>
//! </validate-jwt>"#;
//! let resources = Resources::new().add_named_value("jwt-signing-key", "YSBzaGFyZWQgc2VjcmV0IG9mIGF0IGxlYXN0IDMyIGJ5dGVzIQ==");
//! let err = Policy::parse(simple, &resources).unwrap_err();
//! assert_eq!((err.line(), err.column()), (3, 26));
//! assert_eq!(err.kind(), validate_jwt::apim::PolicyErrorKind::Expression);
//! ```
//!
//! # Mapping
//!
//! Every attribute and element of Microsoft's reference is mapped, refused with a
//! [`PolicyError`], or (where it changes nothing here) recorded as a [`Note`]. Where APIM's
//! default differs from the layer's and the difference matters, the import follows APIM.
//!
//! | `<validate-jwt>` | here |
//! |---|---|
//! | `header-name="Authorization"` | the default: `Authorization: Bearer <token>`; a value without the scheme counts as no token |
//! | `header-name="other"` | [`with_header_name`](ValidateJwtBuilder::with_header_name): the raw token (a leading `Bearer ` tolerated) |
//! | `query-parameter-name` | [`add_query_parameter`](ValidateJwtBuilder::add_query_parameter); the `Authorization` header is still read too (a note says so when it is the only location) |
//! | none of `header-name`, `query-parameter-name`, `token-value` | an error, as in APIM (`validate-azure-ad-token`: `Authorization`) |
//! | `token-value` | refused: it is a policy expression ([`add_token_extractor`](ValidateJwtBuilder::add_token_extractor) is the code equivalent) |
//! | `require-scheme` | [`with_scheme`](ValidateJwtBuilder::with_scheme) with `Authorization`; ignored with another header, as APIM does (a note) |
//! | `failed-validation-httpcode` | [`with_failed_status`](ValidateJwtBuilder::with_failed_status) (a 4xx); **absent: 401 for every failure, missing claims included** (APIM's default; the layer's own is 403 `insufficient_scope` for those) |
//! | `failed-validation-error-message` | [`with_failed_message`](ValidateJwtBuilder::with_failed_message) (visible ASCII) |
//! | `require-expiration-time="false"` | [`danger_allow_missing_exp`](ValidateJwtBuilder::danger_allow_missing_exp); `true` is the default |
//! | `require-signed-tokens="false"` | refused: unsigned tokens are never accepted; `true` is the default |
//! | `clock-skew` | [`with_leeway`](ValidateJwtBuilder::with_leeway): seconds (`120`) or a TimeSpan (`00:02:00`), at most one hour; **absent: 0 s** (APIM's default; the layer's own is 60 s) |
//! | `output-token-variable-name` | a note: the verified [`Claims`](crate::Claims) are in the request's extensions; forward them with [`add_claim_header`](ValidateJwtBuilder::add_claim_header) |
//! | `<openid-config url>` (repeatable, at most 8) | [`RemoteJwks::discovery_url`](crate::RemoteJwks::discovery_url) with [`danger_accept_document_issuer`](crate::RemoteJwksBuilder::danger_accept_document_issuer): the document's issuer is trusted as APIM trusts it (Azure AD v1 and domain-named metadata, B2C, External ID name another issuer than their URL's) |
//! | `validate-connectivity` | accepted (`true`/`false`); nothing is fetched while importing: await [`ready`](crate::ValidateJwtLayer::ready) to check the endpoint |
//! | `<issuer-signing-keys><key>base64</key>` (at most 100 keys) | an HMAC secret ([`StaticKeys::add_hmac_secret`], at least 32 bytes; standard or url-safe base64, padding optional) |
//! | `<key n="…" e="…"/>` | [`StaticKeys::add_rsa_components`] (either base64 alphabet) |
//! | `<key certificate-id="…"/>` | the certificate given to [`Resources::add_certificate`] (PEM: `CERTIFICATE` or `PUBLIC KEY`); refused without it |
//! | `<key id="…">` | the key's `kid`. **A key without `id` verifies only tokens without `kid`** (APIM tries every key; a note says so) |
//! | `<decryption-keys>` | refused: encrypted tokens (JWE) are not supported |
//! | `<audiences>` | [`add_audience`](ValidateJwtBuilder::add_audience), any of them. Absent, with a `required-claims` rule on `aud` that any one value satisfies: that rule's values are the audiences (a rule on `aud` needing several values at once, or with a separator, stays a rule and decides the audience alone, with a note). Absent otherwise: APIM checks no audience; here `build()` asks for the decision ([`danger_accept_any_audience`](ValidateJwtBuilder::danger_accept_any_audience) is APIM's behaviour) |
//! | `<issuers>` | the issuers every key source signs for (a discovery document's issuer is replaced, as in APIM). Absent: discovery documents name theirs; signing keys then need [`add_issuer`](ValidateJwtBuilder::add_issuer) or [`danger_accept_any_issuer`](ValidateJwtBuilder::danger_accept_any_issuer) at `build()` (APIM checks none) |
//! | `<required-claims><claim name match separator><value>` (at most 256 claims) | [`Requirement::claim`](crate::Requirement::claim) with `any_of` / `all_of` (**`match` absent: `all`**), [`separator`](crate::ClaimRequirement::separator); values compared as text (`"5"` matches the number 5, `"true"` the boolean). A `<claim>` needs a `<value>` |
//!
//! | `<validate-azure-ad-token>` | here |
//! |---|---|
//! | `tenant-id` | [`AzureAd::tenant`](crate::AzureAd::tenant): the tenant's GUID (a domain is an error: tokens name their tenant by GUID); v1 and v2 tokens |
//! | `authentication-endpoint` | [`AzureAd::authority_host`](crate::AzureAd::authority_host) (`https://` optional); default `login.microsoftonline.com` |
//! | `<client-application-ids><application-id>` | [`AzureAd::allow_client_apps`](crate::AzureAd::allow_client_apps): `azp` (v2) or `appid` (v1); absent: any client application |
//! | `<backend-application-ids><application-id>` | [`AzureAd::api`](crate::AzureAd::api): `aud` is the id or `api://` the id |
//! | `<audiences>` | [`AzureAd::app_id_uri`](crate::AzureAd::app_id_uri), and as for `validate-jwt` |
//! | `header-name`, `query-parameter-name`, `token-value`, `failed-validation-*`, `output-token-variable-name`, `<required-claims>`, `<decryption-keys>` | as for `validate-jwt`; the leeway is 0 s |
//!
//! **Also refused, with their position**: malformed XML (and a `DOCTYPE`), any policy
//! expression (`@(…)`, `@{…}`, also when a named value holds one), an attribute or element the
//! reference does not name, elements out of the reference's order or repeated, a `{{named
//! value}}` the [`Resources`] do not hold, a `certificate-id` without its certificate, a
//! validation policy anywhere but directly in `<inbound>` (inside `<choose>`, say), and two of
//! them. The other policies of a `<policies>` document are not imported; each gets a note.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use http::HeaderName;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::azure::AzureAd;
use crate::claims::Requirement;
use crate::config::ValidateJwtBuilder;
use crate::keys::{RemoteJwks, StaticKeys};
use crate::layer::ValidateJwtLayer;

/// The largest policy document read (1 MiB).
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The deepest element nesting read.
const MAX_DEPTH: usize = 64;

/// The most attributes on one element.
const MAX_ATTRIBUTES: usize = 64;

/// The most `<claim>` rules in one policy.
const MAX_CLAIMS: usize = 256;

/// The most notes kept (a further one says how many more there were).
const MAX_NOTES: usize = 100;

/// The most `<openid-config>` elements in one policy (each is a key source with its own client).
const MAX_OPENID_CONFIGS: usize = 8;

/// What an APIM instance gives its policies: named values (`{{name}}`) and certificates
/// (`certificate-id`).
///
/// ```
/// use validate_jwt::apim::Resources;
///
/// let resources = Resources::new()
///     .add_named_value("tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .add_certificate("my-rsa-cert", "-----BEGIN CERTIFICATE-----\n…");
/// # let _ = resources;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct Resources {
    named_values: HashMap<String, String>,
    certificates: HashMap<String, Vec<u8>>,
}

impl Resources {
    /// No named values, no certificates.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `{{name}}` (names compared exactly). A value may itself be a policy
    /// expression in APIM; here that is an error where it is used.
    pub fn add_named_value(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.named_values.insert(name.into(), value.into());
        self
    }

    /// The certificate a `<key certificate-id="id"/>` names, as PEM: a `CERTIFICATE` (the public
    /// part of what APIM holds as PFX) or a `PUBLIC KEY` (see [`StaticKeys::add_pem`]).
    pub fn add_certificate(mut self, id: impl Into<String>, pem: impl AsRef<[u8]>) -> Self {
        self.certificates.insert(id.into(), pem.as_ref().to_vec());
        self
    }
}

/// An imported policy: a [`ValidateJwtBuilder`] to finish (claim headers, a token cache, …)
/// and build, and the notes on what was not imported.
#[must_use]
pub struct Policy {
    builder: ValidateJwtBuilder,
    notes: Vec<Note>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("builder", &self.builder)
            .field("notes", &self.notes)
            .finish()
    }
}

impl Policy {
    /// Reads one `<validate-jwt>` or `<validate-azure-ad-token>` policy (the root element, or
    /// directly inside `<inbound>` of a `<policies>` document or in a `<fragment>`), resolving
    /// `{{named values}}` and `certificate-id`s from `resources`. See the [module
    /// documentation](self) for the mapping.
    pub fn parse(xml: &str, resources: &Resources) -> Result<Policy, PolicyError> {
        let lines = Lines::new(xml);
        if xml.len() > MAX_POLICY_BYTES {
            return Err(lines.error(
                PolicyErrorKind::Xml,
                0,
                format!("the policy is larger than {MAX_POLICY_BYTES} bytes"),
            ));
        }
        let root = parse_tree(xml, &lines)?;
        let mut import = Import {
            lines: &lines,
            resources,
            notes: Vec::new(),
        };
        let policy = import.find_policy(&root)?;
        let builder = match policy.name.as_str() {
            VALIDATE_JWT => import.validate_jwt(policy)?,
            _ => import.validate_azure_ad_token(policy)?,
        };
        let mut notes = import.notes;
        notes.sort_by_key(|n| (n.line, n.column));
        Ok(Policy { builder, notes })
    }

    /// What was read but not imported (other policies of the document, attributes that change
    /// nothing here, APIM behaviours the layer does not copy), in document order.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// The configuration, to finish and build.
    pub fn into_builder(self) -> ValidateJwtBuilder {
        self.builder
    }
}

/// A remark on an imported policy: something read but not imported, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    line: u32,
    column: u32,
    message: String,
}

impl Note {
    /// The line (from 1).
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column (from 1, in characters).
    pub fn column(&self) -> u32 {
        self.column
    }

    /// What it says.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Why a policy cannot be imported, and where: the element or attribute, by line and column.
///
/// ```
/// use validate_jwt::apim::{Policy, PolicyErrorKind, Resources};
///
/// let err = Policy::parse("<validate-jwt header-name=\"Authorization\">\n  <decryption-keys/>\n</validate-jwt>", &Resources::new())
///     .unwrap_err();
/// assert_eq!(err.kind(), PolicyErrorKind::Unsupported);
/// assert_eq!((err.line(), err.column()), (2, 3));
/// assert!(err.to_string().starts_with("line 2, column 3: <decryption-keys>"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct PolicyError {
    kind: PolicyErrorKind,
    line: u32,
    column: u32,
    message: String,
}

impl PolicyError {
    /// The category.
    pub fn kind(&self) -> PolicyErrorKind {
        self.kind
    }

    /// The line (from 1).
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The column (from 1, in characters).
    pub fn column(&self) -> u32 {
        self.column
    }

    /// The message, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The category of a [`PolicyError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// Not well-formed XML (or a `DOCTYPE`, or larger than [`MAX_POLICY_BYTES`]).
    Xml,
    /// A policy expression (`@(…)` or `@{…}`), written in the policy or held by a named value.
    Expression,
    /// An element the reference does not name here (or text where only elements belong).
    UnknownElement,
    /// An attribute the reference does not name on this element.
    UnknownAttribute,
    /// An element out of the reference's order, or repeated.
    Order,
    /// A `{{named value}}` or `certificate-id` the [`Resources`] do not hold.
    Unresolved,
    /// Something APIM supports that the layer does not: `decryption-keys`, `token-value`,
    /// `require-signed-tokens="false"`.
    Unsupported,
    /// A required attribute or element is absent, or no validation policy was found.
    Missing,
    /// A value of the wrong form or out of range.
    InvalidValue,
}

const VALIDATE_JWT: &str = "validate-jwt";
const VALIDATE_AZURE_AD_TOKEN: &str = "validate-azure-ad-token";

// ---- the XML, as a small tree with positions ---------------------------------------------------

/// An element: name, attributes, children and text, with byte offsets into the document.
#[derive(Debug)]
struct Node {
    name: String,
    at: usize,
    attrs: Vec<Attr>,
    children: Vec<Node>,
    text: String,
    /// Where the first text that is not whitespace starts.
    text_at: Option<usize>,
}

#[derive(Debug)]
struct Attr {
    name: String,
    value: String,
    at: usize,
}

/// Line starts, for positions.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// (line, column), both from 1; the column counts characters.
    fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(s) => s.chars().count(),
            None => offset - start,
        };
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(line), clamp(column + 1))
    }

    fn error(&self, kind: PolicyErrorKind, offset: usize, message: String) -> PolicyError {
        let (line, column) = self.position(offset);
        PolicyError {
            kind,
            line,
            column,
            message,
        }
    }
}

/// Where `part` (a slice of `whole`) starts in `whole`; `fallback` when it is not a slice of it.
fn offset_in(whole: &str, part: &str, fallback: usize) -> usize {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= whole.len() => start,
        _ => fallback,
    }
}

fn xml_error(lines: &Lines<'_>, at: usize, message: impl fmt::Display) -> PolicyError {
    lines.error(
        PolicyErrorKind::Xml,
        at,
        format!("malformed XML: {message}"),
    )
}

fn element(
    xml: &str,
    lines: &Lines<'_>,
    e: &BytesStart<'_>,
    at: usize,
) -> Result<Node, PolicyError> {
    let name = e.name();
    let mut node = Node {
        name: name.as_ref().to_owned(),
        at,
        attrs: Vec::new(),
        children: Vec::new(),
        text: String::new(),
        text_at: None,
    };
    // Repeated attributes are checked here, on at most MAX_ATTRIBUTES of them (quick-xml's own
    // check compares every pair).
    for attr in e.attributes().with_checks(false) {
        let attr = attr.map_err(|err| xml_error(lines, at, err))?;
        let key = attr.key.as_ref();
        let attr_at = offset_in(xml, key, at);
        if node.attrs.len() == MAX_ATTRIBUTES {
            return Err(xml_error(
                lines,
                attr_at,
                format!("more than {MAX_ATTRIBUTES} attributes on <{}>", node.name),
            ));
        }
        if node.attrs.iter().any(|a| a.name == key) {
            return Err(xml_error(
                lines,
                attr_at,
                format!("attribute `{key}` is repeated on <{}>", node.name),
            ));
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| xml_error(lines, attr_at, err))?;
        node.attrs.push(Attr {
            name: key.to_owned(),
            value: value.into_owned(),
            at: attr_at,
        });
    }
    Ok(node)
}

fn push_text(node: &mut Node, text: &str, at: usize) {
    if node.text_at.is_none() && !text.trim().is_empty() {
        let leading = text.len() - text.trim_start().len();
        node.text_at = Some(at + leading);
    }
    node.text.push_str(text);
}

/// APIM writes policy expressions as C#, unescaped: `condition="@(x == "POST")"`,
/// `<value>@(v.GetValueOrDefault<Jwt>("jwt"))</value>` are not well-formed XML. An expression
/// that opens an attribute value or an element's text (`@(` or `@{` after a quote or `>`) is
/// found by bracket matching, skipping C# string and character literals, and its `<`, `>`, `&`
/// and quotes become `_`: the document parses, every byte keeps its offset (so positions hold),
/// and the value still starts with `@(` or `@{`, which the import then refuses or notes.
fn neutralize_expressions(xml: &str) -> std::borrow::Cow<'_, str> {
    let bytes = xml.as_bytes();
    if !xml.contains("@(") && !xml.contains("@{") {
        return std::borrow::Cow::Borrowed(xml);
    }
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let rest = &bytes[i..];
        let skip_to = |open: usize, close: &[u8]| {
            bytes[i + open..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(bytes.len(), |p| i + open + p + close.len())
        };
        if rest.starts_with(b"<!--") {
            i = skip_to(4, b"-->");
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            i = skip_to(9, b"]]>");
            continue;
        }
        let opens_value = || {
            let before = bytes[..i].iter().rev().find(|b| !b.is_ascii_whitespace());
            matches!(before, Some(b'"' | b'\'' | b'>'))
        };
        if rest[0] == b'@' && matches!(rest[1], b'(' | b'{') && opens_value() {
            // An expression never closed runs to the end: so would every later one (each scan
            // would be quadratic in all); the rest is left as it is.
            let Some(end) = expression_end(bytes, i + 1) else {
                break;
            };
            for b in &mut out[i + 2..end] {
                if matches!(*b, b'<' | b'>' | b'&' | b'"' | b'\'') {
                    *b = b'_';
                }
            }
            i = end + 1;
            continue;
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes: still UTF-8.
    match String::from_utf8(out) {
        Ok(s) => std::borrow::Cow::Owned(s),
        Err(_) => std::borrow::Cow::Borrowed(xml),
    }
}

/// The index of the bracket closing the one at `open` (`(` or `{`), C# literals skipped.
fn expression_end(bytes: &[u8], open: usize) -> Option<usize> {
    let (left, right) = match bytes.get(open)? {
        b'(' => (b'(', b')'),
        _ => (b'{', b'}'),
    };
    let mut depth = 0usize;
    let mut j = open;
    while j < bytes.len() {
        match bytes[j] {
            b'"' => {
                let verbatim = j > 0 && bytes[j - 1] == b'@';
                j += 1;
                loop {
                    match (bytes.get(j)?, bytes.get(j + 1)) {
                        (b'\\', Some(_)) if !verbatim => j += 2,
                        (b'"', Some(b'"')) if verbatim => j += 2,
                        (b'"', _) => break,
                        _ => j += 1,
                    }
                }
            }
            b'\'' => match (bytes.get(j + 1), bytes.get(j + 2), bytes.get(j + 3)) {
                (Some(b'\\'), Some(_), Some(b'\'')) => j += 3,
                (Some(_), Some(b'\''), _) => j += 2,
                _ => {}
            },
            c if c == left => depth += 1,
            c if c == right => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// Parses the document into a tree: one root element; comments, the XML declaration and
/// processing instructions skipped; the five predefined entities and character references
/// resolved; a `DOCTYPE`, other entities, text outside the root and unclosed elements refused.
fn parse_tree(xml: &str, lines: &Lines<'_>) -> Result<Node, PolicyError> {
    let neutral = neutralize_expressions(xml);
    let xml: &str = &neutral;
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let attach = |stack: &mut Vec<Node>, root: &mut Option<Node>, node: Node| match stack.last_mut()
    {
        Some(parent) => {
            parent.children.push(node);
            Ok(())
        }
        None if root.is_some() => Err(xml_error(
            lines,
            node.at,
            format!("<{}> is a second root element", node.name),
        )),
        None => {
            *root = Some(node);
            Ok(())
        }
    };
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|err| {
            let pos = usize::try_from(reader.error_position()).unwrap_or(at);
            xml_error(lines, pos, err)
        })?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(xml_error(
                        lines,
                        at,
                        format!("elements nested deeper than {MAX_DEPTH}"),
                    ));
                }
                if stack.is_empty() && root.is_some() {
                    return Err(xml_error(lines, at, "a second root element"));
                }
                stack.push(element(xml, lines, &e, at)?);
            }
            Event::Empty(e) => {
                let node = element(xml, lines, &e, at)?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::End(_) => {
                let Some(node) = stack.pop() else {
                    return Err(xml_error(
                        lines,
                        at,
                        "a closing tag without its opening tag",
                    ));
                };
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(parent) => push_text(parent, &content, at),
                    None if content.trim().is_empty() => {}
                    None => return Err(xml_error(lines, at, "text outside the root element")),
                }
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                match stack.last_mut() {
                    Some(parent) => push_text(parent, &content, at),
                    None => return Err(xml_error(lines, at, "CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match &*r {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        _ => {
                            return Err(xml_error(
                                lines,
                                at,
                                format!("unknown entity or character reference &{};", &*r),
                            ));
                        }
                    },
                };
                match stack.last_mut() {
                    Some(parent) => push_text(parent, resolved.encode_utf8(&mut [0; 4]), at),
                    None => {
                        return Err(xml_error(lines, at, "a reference outside the root element"));
                    }
                }
            }
            Event::DocType(_) => {
                return Err(xml_error(
                    lines,
                    at,
                    "a DOCTYPE is not accepted in a policy",
                ));
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(xml_error(
            lines,
            open.at,
            format!("<{}> is never closed", open.name),
        ));
    }
    root.ok_or_else(|| {
        lines.error(
            PolicyErrorKind::Missing,
            0,
            "no element: expected <policies>, <validate-jwt> or <validate-azure-ad-token>".into(),
        )
    })
}

// ---- mapping -------------------------------------------------------------------------------------

/// A key of `<issuer-signing-keys>`, checked.
enum KeySpec {
    Secret(Option<String>, String),
    Rsa(Option<String>, String, String),
    Pem(Option<String>, Vec<u8>),
}

impl KeySpec {
    fn add_to(&self, keys: StaticKeys) -> StaticKeys {
        match self {
            KeySpec::Secret(kid, b64) => keys.add_hmac_secret_base64(kid.as_deref(), b64),
            KeySpec::Rsa(kid, n, e) => keys.add_rsa_components(kid.as_deref(), n, e),
            KeySpec::Pem(kid, pem) => keys.add_pem(kid.as_deref(), pem),
        }
    }
}

/// A `<claim>` of `<required-claims>`.
struct ClaimRule {
    name: String,
    values: Vec<String>,
    all: bool,
    separator: Option<String>,
}

impl ClaimRule {
    fn requirement(&self) -> Requirement {
        let mut rule = Requirement::claim(&self.name).compared_as_text();
        if let Some(sep) = &self.separator {
            rule = rule.separator(sep);
        }
        match self.all {
            true => rule.all_of(self.values.iter().map(String::as_str)),
            false => rule.any_of(self.values.iter().map(String::as_str)),
        }
    }

    /// Whether any one of the values is enough: then they are an audience list.
    fn is_audience_list(&self) -> bool {
        self.name == "aud" && self.separator.is_none() && (!self.all || self.values.len() == 1)
    }
}

/// The policy's children, checked for the reference's order.
struct Children<'n> {
    list: Vec<(&'static str, &'n Node)>,
}

impl<'n> Children<'n> {
    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'n Node> + 's {
        self.list
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, node)| *node)
    }

    fn one(&self, name: &str) -> Option<&'n Node> {
        self.all(name).next()
    }
}

struct Import<'a> {
    lines: &'a Lines<'a>,
    resources: &'a Resources,
    notes: Vec<Note>,
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("<{n}>"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn valid_named_value_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Import<'_> {
    fn error(&self, kind: PolicyErrorKind, at: usize, message: String) -> PolicyError {
        self.lines.error(kind, at, message)
    }

    fn note(&mut self, at: usize, message: String) {
        if self.notes.len() > MAX_NOTES {
            return;
        }
        let message = match self.notes.len() == MAX_NOTES {
            true => format!("more notes from here on were left out (at most {MAX_NOTES})"),
            false => message,
        };
        let (line, column) = self.lines.position(at);
        self.notes.push(Note {
            line,
            column,
            message,
        });
    }

    /// `{{named values}}` replaced, then refused if it is a policy expression. `what` names the
    /// attribute or element for messages.
    fn resolve(&self, raw: &str, at: usize, what: &str) -> Result<String, PolicyError> {
        let expression = |from_named: Option<&str>| {
            let message = match from_named {
                None => format!(
                    "{what} is a policy expression, which cannot be imported: replace it with a \
                     value (or set it in code on the builder)"
                ),
                Some(name) => format!(
                    "{what}: named value {{{{{name}}}}} holds a policy expression, which cannot \
                     be imported: give it a plain value"
                ),
            };
            self.error(PolicyErrorKind::Expression, at, message)
        };
        let is_expression = |s: &str| {
            let s = s.trim_start();
            s.starts_with("@(") || s.starts_with("@{")
        };
        if is_expression(raw) {
            return Err(expression(None));
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        let mut named = None;
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find("}}") else {
                return Err(self.error(
                    PolicyErrorKind::Unresolved,
                    at,
                    format!("{what}: `{{{{` opens a named value that is never closed with `}}}}`"),
                ));
            };
            let name = &after[..end];
            if !valid_named_value_name(name) {
                return Err(self.error(
                    PolicyErrorKind::Unresolved,
                    at,
                    format!("{what}: {{{{{name}}}}} is not a named value reference"),
                ));
            }
            let Some(value) = self.resources.named_values.get(name) else {
                return Err(self.error(
                    PolicyErrorKind::Unresolved,
                    at,
                    format!(
                        "{what}: named value {{{{{name}}}}} is not given (`Resources::add_named_value`)"
                    ),
                ));
            };
            if out.len() + value.len() > MAX_POLICY_BYTES {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    format!("{what}: named values make it larger than {MAX_POLICY_BYTES} bytes"),
                ));
            }
            named.get_or_insert(name);
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        if let Some(name) = named
            && is_expression(&out)
        {
            return Err(expression(Some(name)));
        }
        Ok(out)
    }

    /// Refuses attributes `node` may not carry.
    fn known_attributes(&self, node: &Node, known: &[&str]) -> Result<(), PolicyError> {
        if let Some(attr) = node
            .attrs
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            let list = known.join(", ");
            return Err(self.error(
                PolicyErrorKind::UnknownAttribute,
                attr.at,
                match known.is_empty() {
                    true => format!("<{}> has no attribute `{}`", node.name, attr.name),
                    false => format!(
                        "<{}> has no attribute `{}` (it has: {list})",
                        node.name, attr.name
                    ),
                },
            ));
        }
        Ok(())
    }

    /// An attribute's value, resolved, and its position.
    fn attr(&self, node: &Node, name: &str) -> Result<Option<(String, usize)>, PolicyError> {
        match node.attrs.iter().find(|a| a.name == name) {
            None => Ok(None),
            Some(a) => {
                let what = format!("attribute `{name}` of <{}>", node.name);
                Ok(Some((self.resolve(&a.value, a.at, &what)?, a.at)))
            }
        }
    }

    fn required_attr(&self, node: &Node, name: &str) -> Result<(String, usize), PolicyError> {
        self.attr(node, name)?.ok_or_else(|| {
            self.error(
                PolicyErrorKind::Missing,
                node.at,
                format!("<{}> needs the attribute `{name}`", node.name),
            )
        })
    }

    fn boolean(&self, node: &Node, name: &str) -> Result<Option<(bool, usize)>, PolicyError> {
        let Some((value, at)) = self.attr(node, name)? else {
            return Ok(None);
        };
        match value.trim() {
            v if v.eq_ignore_ascii_case("true") => Ok(Some((true, at))),
            v if v.eq_ignore_ascii_case("false") => Ok(Some((false, at))),
            _ => Err(self.error(
                PolicyErrorKind::InvalidValue,
                at,
                format!(
                    "attribute `{name}` of <{}> is {value:?}, not true or false",
                    node.name
                ),
            )),
        }
    }

    /// An element holding only text: the text, trimmed and resolved, and its position.
    fn text(&self, node: &Node) -> Result<(String, usize), PolicyError> {
        if let Some(child) = node.children.first() {
            return Err(self.error(
                PolicyErrorKind::UnknownElement,
                child.at,
                format!("<{}> inside <{}>, which holds text", child.name, node.name),
            ));
        }
        let at = node.text_at.unwrap_or(node.at);
        let what = format!("the text of <{}>", node.name);
        Ok((self.resolve(node.text.trim(), at, &what)?, at))
    }

    /// An element holding only elements named `child`: those, at least one.
    fn list<'n>(&self, node: &'n Node, child: &str) -> Result<Vec<&'n Node>, PolicyError> {
        self.no_text(node)?;
        if let Some(stray) = node.children.iter().find(|c| c.name != child) {
            return Err(self.error(
                PolicyErrorKind::UnknownElement,
                stray.at,
                format!(
                    "<{}> inside <{}>, which holds <{child}> elements",
                    stray.name, node.name
                ),
            ));
        }
        if node.children.is_empty() {
            return Err(self.error(
                PolicyErrorKind::Missing,
                node.at,
                format!("<{}> needs at least one <{child}>", node.name),
            ));
        }
        Ok(node.children.iter().collect())
    }

    /// The texts of a list element's children (`<audiences><audience>…`), each resolved.
    fn texts(&self, node: &Node, child: &str) -> Result<Vec<(String, usize)>, PolicyError> {
        self.known_attributes(node, &[])?;
        self.list(node, child)?
            .into_iter()
            .map(|c| {
                self.known_attributes(c, &[])?;
                let (text, at) = self.text(c)?;
                if text.is_empty() {
                    return Err(self.error(
                        PolicyErrorKind::InvalidValue,
                        c.at,
                        format!("<{}> is empty", c.name),
                    ));
                }
                Ok((text, at))
            })
            .collect()
    }

    fn no_text(&self, node: &Node) -> Result<(), PolicyError> {
        match node.text_at {
            Some(at) => Err(self.error(
                PolicyErrorKind::UnknownElement,
                at,
                format!("text inside <{}>, which holds elements only", node.name),
            )),
            None => Ok(()),
        }
    }

    /// The validation policy of the document: the root, or the one directly in `<inbound>` (of
    /// `<policies>`) or in a `<fragment>`. The other policies get notes.
    fn find_policy<'n>(&mut self, root: &'n Node) -> Result<&'n Node, PolicyError> {
        let is_policy = |n: &Node| n.name == VALIDATE_JWT || n.name == VALIDATE_AZURE_AD_TOKEN;
        if is_policy(root) {
            return Ok(root);
        }
        let sections: Vec<&Node> = match root.name.as_str() {
            "policies" => root.children.iter().collect(),
            "fragment" => vec![root],
            other => {
                return Err(self.error(
                    PolicyErrorKind::UnknownElement,
                    root.at,
                    format!(
                        "<{other}>: the document must be <policies>, <fragment>, <{VALIDATE_JWT}> \
                         or <{VALIDATE_AZURE_AD_TOKEN}>"
                    ),
                ));
            }
        };
        let mut found: Option<&Node> = None;
        for section in sections {
            let readable = section.name == "inbound" || section.name == "fragment";
            for child in &section.children {
                if readable && is_policy(child) {
                    if found.is_some() {
                        return Err(self.error(
                            PolicyErrorKind::Order,
                            child.at,
                            format!(
                                "a second validation policy (<{}>): import one policy at a time",
                                child.name
                            ),
                        ));
                    }
                    found = Some(child);
                    continue;
                }
                // A validation policy nested anywhere else (inside <choose>, another section).
                let mut stack = vec![child];
                while let Some(n) = stack.pop() {
                    if is_policy(n) {
                        return Err(self.error(
                            PolicyErrorKind::Unsupported,
                            n.at,
                            format!(
                                "<{}> inside <{}>: only a validation policy directly in <inbound> \
                                 is imported (a conditional one has no equivalent here)",
                                n.name, child.name
                            ),
                        ));
                    }
                    stack.extend(n.children.iter());
                }
                let message = match readable {
                    true => format!(
                        "<{}> is not imported: only the validation policy is read",
                        child.name
                    ),
                    false => format!(
                        "<{}> in <{}> is not imported: only the validation policy is read",
                        child.name, section.name
                    ),
                };
                self.note(child.at, message);
            }
        }
        found.ok_or_else(|| {
            self.error(
                PolicyErrorKind::Missing,
                root.at,
                format!("no <{VALIDATE_JWT}> or <{VALIDATE_AZURE_AD_TOKEN}> in <inbound>"),
            )
        })
    }

    /// The children of a policy, in `order` (names of one rank may come in any order among
    /// themselves); `repeatable` names may appear more than once.
    fn children<'n>(
        &self,
        node: &'n Node,
        order: &[&[&'static str]],
        repeatable: &[&str],
    ) -> Result<Children<'n>, PolicyError> {
        self.no_text(node)?;
        let all: Vec<&'static str> = order.iter().flat_map(|r| r.iter().copied()).collect();
        let mut list: Vec<(&'static str, &Node)> = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        let mut last_rank = 0;
        for child in &node.children {
            let Some((rank, name)) = order.iter().enumerate().find_map(|(rank, names)| {
                names
                    .iter()
                    .find(|n| **n == child.name)
                    .map(|name| (rank, *name))
            }) else {
                return Err(self.error(
                    PolicyErrorKind::UnknownElement,
                    child.at,
                    format!(
                        "<{}> has no element <{}> (it has: {})",
                        node.name,
                        child.name,
                        quoted(&all)
                    ),
                ));
            };
            if name == "decryption-keys" {
                return Err(self.error(
                    PolicyErrorKind::Unsupported,
                    child.at,
                    "<decryption-keys>: encrypted tokens (JWE) are not supported; only signed \
                     tokens (JWS) are validated"
                        .into(),
                ));
            }
            if seen.contains(&name) && !repeatable.contains(&name) {
                return Err(self.error(
                    PolicyErrorKind::Order,
                    child.at,
                    format!("<{name}> is repeated in <{}>", node.name),
                ));
            }
            if rank < last_rank {
                let previous = list.last().map_or("", |(n, _)| *n);
                return Err(self.error(
                    PolicyErrorKind::Order,
                    child.at,
                    format!(
                        "<{name}> after <{previous}>: APIM wants the elements of <{}> in the \
                         reference's order ({})",
                        node.name,
                        quoted(&all)
                    ),
                ));
            }
            last_rank = rank;
            if !seen.contains(&name) {
                seen.push(name);
            }
            list.push((name, child));
        }
        Ok(Children { list })
    }

    /// `header-name`, `query-parameter-name`, `token-value`, `require-scheme`.
    fn token_location(
        &mut self,
        node: &Node,
        mut b: ValidateJwtBuilder,
        header_by_default: bool,
    ) -> Result<ValidateJwtBuilder, PolicyError> {
        if let Some(attr) = node.attrs.iter().find(|a| a.name == "token-value") {
            let what = format!("attribute `token-value` of <{}>", node.name);
            self.resolve(&attr.value, attr.at, &what)?;
            return Err(self.error(
                PolicyErrorKind::Unsupported,
                attr.at,
                "attribute `token-value` names the token in the policy itself; read it from the \
                 request in code with `add_token_extractor`"
                    .into(),
            ));
        }
        let header = self.attr(node, "header-name")?;
        let query = self.attr(node, "query-parameter-name")?;
        let scheme = match node.name.as_str() {
            VALIDATE_JWT => self.attr(node, "require-scheme")?,
            _ => None,
        };
        if header.is_none() && query.is_none() && !header_by_default {
            return Err(self.error(
                PolicyErrorKind::Missing,
                node.at,
                format!(
                    "<{}> needs `header-name` or `query-parameter-name` (APIM requires one of \
                     header-name, query-parameter-name or token-value)",
                    node.name
                ),
            ));
        }
        let mut authorization = header.is_none() && header_by_default;
        if let Some((name, at)) = &header {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    *at,
                    format!("header-name {name:?} is not a valid header name"),
                ));
            }
            authorization = name.eq_ignore_ascii_case("authorization");
            b = b.with_header_name(name);
        }
        if let Some((scheme, at)) = scheme {
            if !authorization {
                self.note(
                    at,
                    "require-scheme is ignored: the token is not read from Authorization (APIM \
                     ignores it with another header too)"
                        .into(),
                );
            } else if scheme.is_empty() || !scheme.bytes().all(|c| c.is_ascii_graphic()) {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    format!("require-scheme {scheme:?} is not a scheme name"),
                ));
            } else {
                b = b.with_scheme(scheme);
            }
        }
        if let Some((name, at)) = query {
            let simple = !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.~".contains(&c));
            if !simple {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    format!("query-parameter-name {name:?} is not a plain parameter name"),
                ));
            }
            if header.is_none() && !header_by_default {
                self.note(
                    at,
                    "the token is also accepted in `Authorization: Bearer`: the layer always \
                     reads a header"
                        .into(),
                );
            }
            b = b.add_query_parameter(name);
        }
        Ok(b)
    }

    /// `failed-validation-httpcode` (absent: 401, APIM's default), `failed-validation-error-message`,
    /// `output-token-variable-name`.
    fn answers(
        &mut self,
        node: &Node,
        mut b: ValidateJwtBuilder,
    ) -> Result<ValidateJwtBuilder, PolicyError> {
        let status = match self.attr(node, "failed-validation-httpcode")? {
            None => 401,
            Some((code, at)) => match code.trim().parse::<u16>() {
                Ok(status) if (400..500).contains(&status) => status,
                _ => {
                    return Err(self.error(
                        PolicyErrorKind::InvalidValue,
                        at,
                        format!(
                            "failed-validation-httpcode {code:?}: the layer answers validation \
                             failures with a 4xx status"
                        ),
                    ));
                }
            },
        };
        b = b.with_failed_status(status);
        if let Some((message, at)) = self.attr(node, "failed-validation-error-message")? {
            if !crate::response::is_quotable(&message) {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    "failed-validation-error-message must be visible ASCII (it is sent in the \
                     WWW-Authenticate header too)"
                        .into(),
                ));
            }
            b = b.with_failed_message(message);
        }
        if let Some((name, at)) = self.attr(node, "output-token-variable-name")? {
            self.note(
                at,
                format!(
                    "output-token-variable-name {name:?}: the verified claims are in the \
                     request's extensions (`Claims`); forward them to a backend with \
                     `add_claim_header`"
                ),
            );
        }
        Ok(b)
    }

    fn clock_skew(&self, value: &str, at: usize) -> Result<Duration, PolicyError> {
        let bad = |why: &str| {
            self.error(
                PolicyErrorKind::InvalidValue,
                at,
                format!("clock-skew {value:?}: {why}"),
            )
        };
        let v = value.trim();
        let seconds = if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) {
            v.parse::<u64>().map_err(|_| bad("too large"))?
        } else {
            // A TimeSpan: [d.]hh:mm:ss
            let (days, clock) = match v.split_once(':') {
                Some((head, _)) if head.contains('.') => {
                    let (d, rest) = v.split_once('.').ok_or_else(|| bad("not a TimeSpan"))?;
                    (d.parse::<u64>().map_err(|_| bad("not a TimeSpan"))?, rest)
                }
                _ => (0, v),
            };
            let parts: Vec<&str> = clock.split(':').collect();
            let [h, m, s] = parts.as_slice() else {
                return Err(bad("not seconds (120) nor a TimeSpan (00:02:00)"));
            };
            let num = |p: &str, max: u64| {
                p.parse::<u64>()
                    .ok()
                    .filter(|n| *n < max && !p.is_empty() && p.len() <= 2)
                    .ok_or_else(|| bad("not seconds (120) nor a TimeSpan (00:02:00)"))
            };
            let (h, m, s) = (num(h, 24)?, num(m, 60)?, num(s, 60)?);
            days.saturating_mul(86_400)
                .saturating_add(h * 3600 + m * 60 + s)
        };
        if seconds > 3600 {
            return Err(bad("at most one hour here"));
        }
        Ok(Duration::from_secs(seconds))
    }

    /// `<issuer-signing-keys>`: each key checked on its own, with its position.
    fn signing_keys(&mut self, node: &Node) -> Result<Vec<KeySpec>, PolicyError> {
        let mut specs = Vec::new();
        self.known_attributes(node, &[])?;
        let keys = self.list(node, "key")?;
        if let Some(extra) = keys.get(crate::keys::DEFAULT_MAX_KEYS) {
            return Err(self.error(
                PolicyErrorKind::InvalidValue,
                extra.at,
                format!("more than {} <key> elements", crate::keys::DEFAULT_MAX_KEYS),
            ));
        }
        for key in keys {
            self.known_attributes(key, &["id", "certificate-id", "n", "e"])?;
            let (content, _) = self.text(key)?;
            let id = self.attr(key, "id")?.map(|(id, _)| id);
            let cert = self.attr(key, "certificate-id")?;
            let n = self.attr(key, "n")?;
            let e = self.attr(key, "e")?;
            let url_safe = |s: &str| s.trim().replace('+', "-").replace('/', "_");
            let spec = match (content.is_empty(), cert, n, e) {
                (false, None, None, None) => {
                    let standard = content.trim().replace('-', "+").replace('_', "/");
                    let padded = format!("{standard}{}", "=".repeat((4 - standard.len() % 4) % 4));
                    KeySpec::Secret(id.clone(), padded)
                }
                (true, Some((cert, at)), None, None) => {
                    let Some(pem) = self.resources.certificates.get(&cert) else {
                        return Err(self.error(
                            PolicyErrorKind::Unresolved,
                            at,
                            format!(
                                "certificate-id {cert:?} is not given: supply its certificate \
                                 (PEM) with `Resources::add_certificate`"
                            ),
                        ));
                    };
                    KeySpec::Pem(id.clone(), pem.clone())
                }
                (true, None, Some((n, _)), Some((e, _))) => {
                    KeySpec::Rsa(id.clone(), url_safe(&n), url_safe(&e))
                }
                (_, None, Some(_), None) | (_, None, None, Some(_)) => {
                    return Err(self.error(
                        PolicyErrorKind::Missing,
                        key.at,
                        "<key>: `n` and `e` go together (the RSA modulus and exponent)".into(),
                    ));
                }
                _ => {
                    return Err(self.error(
                        PolicyErrorKind::InvalidValue,
                        key.at,
                        "<key> is one of: base64 content (a shared secret), `certificate-id`, \
                         or `n` and `e`"
                            .into(),
                    ));
                }
            };
            if let Err(err) = spec.add_to(StaticKeys::new()).key_set() {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    key.at,
                    format!("<key>: {err}"),
                ));
            }
            if id.is_none() {
                self.note(
                    key.at,
                    "<key> without `id`: it verifies tokens without `kid` only (APIM tries every \
                     key); add id=\"…\" with the tokens' kid"
                        .into(),
                );
            }
            specs.push(spec);
        }
        Ok(specs)
    }

    /// `<required-claims>`.
    fn required_claims(&self, node: &Node) -> Result<Vec<ClaimRule>, PolicyError> {
        let mut rules = Vec::new();
        self.known_attributes(node, &[])?;
        let claims = self.list(node, "claim")?;
        if let Some(extra) = claims.get(MAX_CLAIMS) {
            return Err(self.error(
                PolicyErrorKind::InvalidValue,
                extra.at,
                format!("more than {MAX_CLAIMS} <claim> elements"),
            ));
        }
        for claim in claims {
            self.known_attributes(claim, &["name", "match", "separator"])?;
            let (name, name_at) = self.required_attr(claim, "name")?;
            if name.is_empty() {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    name_at,
                    "<claim> has an empty name".into(),
                ));
            }
            let all = match self.attr(claim, "match")? {
                None => true,
                Some((m, _)) if m.eq_ignore_ascii_case("all") => true,
                Some((m, _)) if m.eq_ignore_ascii_case("any") => false,
                Some((m, at)) => {
                    return Err(self.error(
                        PolicyErrorKind::InvalidValue,
                        at,
                        format!("match {m:?} is neither all nor any"),
                    ));
                }
            };
            let separator = match self.attr(claim, "separator")? {
                Some((sep, at)) if sep.is_empty() => {
                    return Err(self.error(
                        PolicyErrorKind::InvalidValue,
                        at,
                        "an empty separator".into(),
                    ));
                }
                other => other.map(|(sep, _)| sep),
            };
            let mut values = Vec::new();
            for value in self.list(claim, "value")? {
                self.known_attributes(value, &[])?;
                values.push(self.text(value)?.0);
            }
            rules.push(ClaimRule {
                name,
                values,
                all,
                separator,
            });
        }
        Ok(rules)
    }

    /// Audiences and claim rules, with APIM's `aud` rule standing in for absent audiences.
    fn audiences_and_claims(
        &mut self,
        mut b: ValidateJwtBuilder,
        audiences_given: bool,
        rules: Vec<ClaimRule>,
        claims_at: usize,
    ) -> ValidateJwtBuilder {
        let mut rules = rules;
        if !audiences_given {
            if let Some(i) = rules.iter().position(ClaimRule::is_audience_list) {
                let rule = rules.remove(i);
                for value in rule.values {
                    b = b.add_audience(value);
                }
            } else if rules.iter().any(|r| r.name == "aud") {
                // The `aud` rule decides the audience (all of its values, or split values).
                b = b.danger_accept_any_audience();
                self.note(
                    claims_at,
                    "the `aud` claim rule decides the audience (no <audiences>)".into(),
                );
            }
        }
        for rule in &rules {
            b = b.require(rule.requirement());
        }
        b
    }

    fn validate_jwt(&mut self, node: &Node) -> Result<ValidateJwtBuilder, PolicyError> {
        self.known_attributes(
            node,
            &[
                "header-name",
                "query-parameter-name",
                "token-value",
                "failed-validation-httpcode",
                "failed-validation-error-message",
                "require-expiration-time",
                "require-scheme",
                "require-signed-tokens",
                "clock-skew",
                "output-token-variable-name",
            ],
        )?;
        let mut b = ValidateJwtLayer::builder();
        b = self.token_location(node, b, false)?;
        b = self.answers(node, b)?;
        if let Some((false, _)) = self.boolean(node, "require-expiration-time")? {
            b = b.danger_allow_missing_exp();
        }
        if let Some((false, at)) = self.boolean(node, "require-signed-tokens")? {
            return Err(self.error(
                PolicyErrorKind::Unsupported,
                at,
                "require-signed-tokens=\"false\": unsigned tokens are never accepted here".into(),
            ));
        }
        let leeway = match self.attr(node, "clock-skew")? {
            Some((value, at)) => self.clock_skew(&value, at)?,
            None => Duration::ZERO,
        };
        b = b.with_leeway(leeway);

        let children = self.children(
            node,
            &[
                &["openid-config"],
                &["issuer-signing-keys"],
                &["decryption-keys"],
                &["audiences"],
                &["issuers"],
                &["required-claims"],
            ],
            &["openid-config"],
        )?;
        let issuers: Vec<String> = match children.one("issuers") {
            Some(n) => self
                .texts(n, "issuer")?
                .into_iter()
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        };
        let mut sources = 0;
        if let Some(extra) = children.all("openid-config").nth(MAX_OPENID_CONFIGS) {
            return Err(self.error(
                PolicyErrorKind::InvalidValue,
                extra.at,
                format!("more than {MAX_OPENID_CONFIGS} <openid-config> elements"),
            ));
        }
        for config in children.all("openid-config") {
            self.known_attributes(config, &["url", "validate-connectivity"])?;
            self.list_free(config)?;
            let (url, at) = self.required_attr(config, "url")?;
            self.boolean(config, "validate-connectivity")?;
            let mut remote = RemoteJwks::discovery_url(&url).danger_accept_document_issuer();
            if !issuers.is_empty() {
                remote = remote.with_issuers(issuers.iter().cloned());
            }
            let remote = remote.build().map_err(|e| {
                self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    format!("openid-config url: {e}"),
                )
            })?;
            b = b.add_key_source(remote);
            sources += 1;
        }
        if let Some(keys) = children.one("issuer-signing-keys") {
            let mut set = StaticKeys::new();
            for spec in self.signing_keys(keys)? {
                set = spec.add_to(set);
            }
            for issuer in &issuers {
                set = set.add_issuer(issuer);
            }
            b = b.add_keys(set);
            sources += 1;
        }
        if sources == 0 {
            return Err(self.error(
                PolicyErrorKind::Missing,
                node.at,
                "<validate-jwt> needs <openid-config> or <issuer-signing-keys>: no key would \
                 verify a token"
                    .into(),
            ));
        }
        let audiences = match children.one("audiences") {
            Some(n) => self.texts(n, "audience")?,
            None => Vec::new(),
        };
        for (aud, _) in &audiences {
            b = b.add_audience(aud);
        }
        let (rules, claims_at) = match children.one("required-claims") {
            Some(n) => (self.required_claims(n)?, n.at),
            None => (Vec::new(), node.at),
        };
        Ok(self.audiences_and_claims(b, !audiences.is_empty(), rules, claims_at))
    }

    fn validate_azure_ad_token(&mut self, node: &Node) -> Result<ValidateJwtBuilder, PolicyError> {
        self.known_attributes(
            node,
            &[
                "tenant-id",
                "header-name",
                "query-parameter-name",
                "token-value",
                "authentication-endpoint",
                "failed-validation-httpcode",
                "failed-validation-error-message",
                "output-token-variable-name",
            ],
        )?;
        let (tenant, tenant_at) = self.required_attr(node, "tenant-id")?;
        if !crate::issuer::is_guid(&tenant) {
            return Err(self.error(
                PolicyErrorKind::InvalidValue,
                tenant_at,
                format!(
                    "tenant-id {tenant:?}: give the tenant's GUID (the portal's \"Directory \
                     (tenant) ID\"); tokens name their tenant by GUID, never by domain"
                ),
            ));
        }
        let mut ad = AzureAd::tenant(&tenant);
        if let Some((endpoint, at)) = self.attr(node, "authentication-endpoint")? {
            let host = endpoint.trim().trim_end_matches('/');
            if host.is_empty() || host.contains(char::is_whitespace) {
                return Err(self.error(
                    PolicyErrorKind::InvalidValue,
                    at,
                    format!("authentication-endpoint {endpoint:?} is not a host name or URL"),
                ));
            }
            ad = ad.authority_host(host);
        }
        let children = self.children(
            node,
            &[
                &["client-application-ids", "backend-application-ids"],
                &["audiences"],
                &["required-claims"],
                &["decryption-keys"],
            ],
            &[],
        )?;
        if let Some(n) = children.one("client-application-ids") {
            let ids: Vec<String> = self
                .texts(n, "application-id")?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            ad = ad.allow_client_apps(ids);
        }
        let mut audiences_given = false;
        if let Some(n) = children.one("backend-application-ids") {
            for (id, _) in self.texts(n, "application-id")? {
                ad = ad.api(id);
                audiences_given = true;
            }
        }
        if let Some(n) = children.one("audiences") {
            for (aud, _) in self.texts(n, "audience")? {
                ad = ad.app_id_uri(aud);
                audiences_given = true;
            }
        }
        let mut b = ad.builder();
        b = self.token_location(node, b, true)?;
        b = self.answers(node, b)?;
        b = b.with_leeway(Duration::ZERO);
        let (rules, claims_at) = match children.one("required-claims") {
            Some(n) => (self.required_claims(n)?, n.at),
            None => (Vec::new(), node.at),
        };
        Ok(self.audiences_and_claims(b, audiences_given, rules, claims_at))
    }

    /// An element that holds nothing (`<openid-config … />`).
    fn list_free(&self, node: &Node) -> Result<(), PolicyError> {
        self.no_text(node)?;
        match node.children.first() {
            Some(child) => Err(self.error(
                PolicyErrorKind::UnknownElement,
                child.at,
                format!(
                    "<{}> inside <{}>, which holds nothing",
                    child.name, node.name
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let lines = Lines::new("ab\nçd\n\nx");
        assert_eq!(lines.position(0), (1, 1));
        assert_eq!(lines.position(1), (1, 2));
        assert_eq!(lines.position(3), (2, 1));
        assert_eq!(lines.position(5), (2, 2)); // after the two-byte ç
        assert_eq!(lines.position(7), (3, 1));
        assert_eq!(lines.position(8), (4, 1));
        assert_eq!(lines.position(99), (4, 2));
    }

    #[test]
    fn the_tree_keeps_text_entities_and_positions() {
        let xml = "<?xml version=\"1.0\"?>\n<!-- c -->\n<a x=\"1 &amp; 2\">\n  <b>t&lt;&#x41;<![CDATA[<c>]]></b><d/>\n</a>\n";
        let lines = Lines::new(xml);
        let root = parse_tree(xml, &lines).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attrs[0].value, "1 & 2");
        assert_eq!(lines.position(root.attrs[0].at), (3, 4));
        assert_eq!(root.children[0].text, "t<A<c>");
        assert_eq!(lines.position(root.children[0].at), (4, 3));
        assert_eq!(root.children[1].name, "d");
    }

    #[test]
    fn malformed_documents_are_refused_with_a_position() {
        for (xml, line) in [
            ("<a><b></a>", 1),
            ("<a>\n<b>", 2),
            ("<a/><b/>", 1),
            ("<a>&unknown;</a>", 1),
            ("<!DOCTYPE a><a/>", 1),
            ("text<a/>", 1),
            ("<a x='1' x='2'/>", 1),
            ("<a x=1/>", 1),
            ("", 1),
            ("<a>\n</b>", 2),
        ] {
            let lines = Lines::new(xml);
            let err = parse_tree(xml, &lines).unwrap_err();
            assert!(
                matches!(err.kind(), PolicyErrorKind::Xml | PolicyErrorKind::Missing),
                "{xml:?}: {err}"
            );
            assert_eq!(err.line(), line, "{xml:?}: {err}");
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        let err = parse_tree(&deep, &Lines::new(&deep)).unwrap_err();
        assert!(err.message().contains("deeper"), "{err}");
    }

    #[test]
    fn expressions_as_apim_writes_them_parse_and_keep_their_offsets() {
        let xml = r#"<when condition="@(context.Request.Method == "POST" && !((Jwt)context.Variables["jwt"]).Claims["g"].Contains("a)"))"><value>@(v.GetValueOrDefault<Jwt>("jwt")?.Claims.GetValueOrDefault("oid", ""))</value><v>@{ var s = @"x""<"; return s + '<' + '\''; }</v><!-- @( --></when>"#;
        let neutral = neutralize_expressions(xml);
        assert_eq!(neutral.len(), xml.len());
        let lines = Lines::new(xml);
        let root = parse_tree(xml, &lines).unwrap();
        assert!(
            root.attrs[0]
                .value
                .starts_with("@(context.Request.Method == _POST_ __")
        );
        assert!(root.attrs[0].value.ends_with("Contains(_a)_))"));
        assert!(
            root.children[0]
                .text
                .starts_with("@(v.GetValueOrDefault_Jwt_(_jwt_)")
        );
        assert!(root.children[1].text.starts_with("@{ var s = @_x___"));
        // Not at the start of a value: left alone.
        assert_eq!(
            neutralize_expressions("<a>x @(<b/>)</a>"),
            "<a>x @(<b/>)</a>"
        );
        // Unbalanced: left alone (and malformed).
        let open = r#"<a b="@(x"/>"#;
        assert_eq!(neutralize_expressions(open), open);
    }

    #[test]
    fn documents_stay_within_their_limits() {
        let jwt = r#"<validate-jwt header-name="Authorization"><openid-config url="https://idp.example/.well-known/openid-configuration"/><audiences><audience>a</audience></audiences></validate-jwt>"#;
        let many = format!(
            "<policies><inbound>{}{jwt}</inbound></policies>",
            "<base/>".repeat(150)
        );
        let policy = Policy::parse(&many, &Resources::new()).unwrap();
        assert_eq!(policy.notes().len(), MAX_NOTES + 1);
        assert!(policy.notes()[MAX_NOTES].message().contains("left out"));

        let attrs: String = (0..=MAX_ATTRIBUTES)
            .map(|i| format!(" a{i}=\"\""))
            .collect();
        let err = Policy::parse(&format!("<x{attrs}/>"), &Resources::new()).unwrap_err();
        assert!(err.message().contains("attributes"), "{err}");

        let configs =
            r#"<openid-config url="https://idp.example/.well-known/openid-configuration"/>"#
                .repeat(MAX_OPENID_CONFIGS + 1);
        let xml = jwt.replace(
            r#"<openid-config url="https://idp.example/.well-known/openid-configuration"/>"#,
            &configs,
        );
        let err = Policy::parse(&xml, &Resources::new()).unwrap_err();
        assert_eq!(err.kind(), PolicyErrorKind::InvalidValue, "{err}");

        // Unclosed expressions are scanned once, not once each.
        let open = format!("<a>{}</a>", "<b c=\"@(\"/>".repeat(20_000));
        assert!(Policy::parse(&open, &Resources::new()).is_err());
    }

    #[test]
    fn clock_skew_is_seconds_or_a_timespan() {
        let lines = Lines::new("");
        let resources = Resources::new();
        let import = Import {
            lines: &lines,
            resources: &resources,
            notes: Vec::new(),
        };
        for (value, secs) in [
            ("0", 0),
            ("120", 120),
            ("00:02:00", 120),
            ("01:00:00", 3600),
        ] {
            assert_eq!(
                import.clock_skew(value, 0).unwrap().as_secs(),
                secs,
                "{value}"
            );
        }
        for bad in [
            "",
            "-1",
            "3601",
            "1.00:00:00",
            "00:60:00",
            "2m",
            "1:2",
            "99999999999999999999",
        ] {
            assert!(import.clock_skew(bad, 0).is_err(), "{bad}");
        }
    }
}
