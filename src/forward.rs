//! Verified claims to request headers for the inner service: envoy's `claim_to_headers` and
//! `forward_payload_header`, APIM's `set-header` after `validate-jwt`. Configured with
//! [`add_claim_header`](crate::ValidateJwtBuilder::add_claim_header),
//! [`with_claim_header_separator`](crate::ValidateJwtBuilder::with_claim_header_separator),
//! [`with_claim_header_encoding`](crate::ValidateJwtBuilder::with_claim_header_encoding) and
//! [`with_payload_header`](crate::ValidateJwtBuilder::with_payload_header).
//!
//! The layer removes every incoming header of these names from every request it lets through
//! (accepted, anonymous or skipped), then writes the verified values: a client can never
//! pre-set them. A layer without any of these settings carries no forwarding step at all (one
//! `None` check per request).

use std::borrow::Cow;
use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::claims::Claims;
use crate::error::{ConfigError, JwtError, JwtErrorKind};

/// How a claim's text becomes a header value
/// ([`with_claim_header_encoding`](crate::ValidateJwtBuilder::with_claim_header_encoding)).
///
/// ```
/// use validate_jwt::{ClaimHeaderEncoding, StaticKeys, ValidateJwtLayer};
///
/// let layer = ValidateJwtLayer::builder()
///     .add_keys(StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"))
///     .add_issuer("https://issuer.example")
///     .add_audience("api://echo")
///     .add_claim_header("name", "x-user-name")
///     .with_claim_header_encoding(ClaimHeaderEncoding::Percent) // "José" → "Jos%C3%A9"
///     .build()
///     .unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClaimHeaderEncoding {
    /// The text as it is, UTF-8 beyond ASCII included (HTTP's `obs-text`: read it with
    /// `HeaderValue::as_bytes`, not `to_str`). A value holding a control character (CR, LF,
    /// NUL, DEL, …) cannot be a header value: the request is refused with 401 `invalid_token`
    /// ([`JwtErrorKind::InvalidClaims`]), never forwarded without it. The default.
    #[default]
    Verbatim,
    /// Percent-encoded UTF-8 (RFC 3986 §2.1): every byte outside visible ASCII (`!` to `~`),
    /// space included, and `%` itself become `%XX`. Every value can be forwarded; the backend
    /// percent-decodes.
    Percent,
}

/// Names that carry the request's framing, routing or credentials: never a claim header.
const RESERVED: [&str; 11] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "cookie",
];

/// One claim to forward.
#[derive(Debug)]
struct Forwarded {
    /// The path: the top-level name, then object members or array indexes.
    path: Box<[Box<str>]>,
    /// The path as the user wrote it, for messages.
    spelled: Box<str>,
    header: HeaderName,
}

/// The forwarding step of a layer, built once by `build()`.
#[derive(Debug)]
pub(crate) struct Forward {
    claims: Box<[Forwarded]>,
    payload: Option<HeaderName>,
    separator: Box<str>,
    encoding: ClaimHeaderEncoding,
}

/// What the builder collected.
#[derive(Debug, Clone)]
pub(crate) struct ForwardSettings {
    pub(crate) claims: Vec<(String, String)>,
    pub(crate) separator: String,
    pub(crate) encoding: ClaimHeaderEncoding,
    pub(crate) payload: Option<String>,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            claims: Vec::new(),
            separator: ",".into(),
            encoding: ClaimHeaderEncoding::Verbatim,
            payload: None,
        }
    }
}

fn setting(setting: &'static str, reason: String) -> ConfigError {
    ConfigError::InvalidSetting { setting, reason }
}

/// A claim path: a top-level name as it is, or a JSON Pointer (RFC 6901) when it starts with
/// `/` (`/realm_access/roles`, `/groups/0`; `~1` is `/` and `~0` is `~` inside a segment).
fn parse_path(path: &str) -> Result<Box<[Box<str>]>, String> {
    if path.is_empty() {
        return Err("an empty claim path".into());
    }
    let Some(pointer) = path.strip_prefix('/') else {
        return Ok(Box::new([path.into()]));
    };
    pointer
        .split('/')
        .map(|segment| {
            if segment.is_empty() {
                return Err(format!("{path:?} has an empty segment"));
            }
            let mut out = String::with_capacity(segment.len());
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(format!(
                            "{path:?}: a `~` must be followed by 0 or 1 in a JSON Pointer"
                        ));
                    }
                }
            }
            Ok(out.into_boxed_str())
        })
        .collect()
}

impl ForwardSettings {
    /// Checks names, paths and the separator; `None` when nothing is forwarded. `token_header`
    /// is the header the layer reads tokens from, which is never overwritten.
    pub(crate) fn build(
        self,
        token_header: Option<&HeaderName>,
    ) -> Result<Option<Forward>, ConfigError> {
        if self.claims.is_empty() && self.payload.is_none() {
            return Ok(None);
        }
        let mut taken: Vec<HeaderName> = Vec::new();
        let mut name = |raw: &str, method: &'static str| -> Result<HeaderName, ConfigError> {
            let name = HeaderName::from_bytes(raw.as_bytes())
                .map_err(|_| setting(method, format!("{raw:?} is not a valid header name")))?;
            if RESERVED.contains(&name.as_str()) || Some(&name) == token_header {
                return Err(setting(
                    method,
                    format!(
                        "{raw:?} carries the request's framing, routing or credentials; \
                         choose a header of your own (`x-user-id`, say)"
                    ),
                ));
            }
            if taken.contains(&name) {
                return Err(setting(
                    method,
                    format!("header {raw:?} is given twice: one value per header"),
                ));
            }
            taken.push(name.clone());
            Ok(name)
        };
        let mut claims = Vec::with_capacity(self.claims.len());
        for (path, header) in &self.claims {
            let header = name(header, "add_claim_header")?;
            let parsed = parse_path(path).map_err(|reason| setting("add_claim_header", reason))?;
            claims.push(Forwarded {
                path: parsed,
                spelled: path.as_str().into(),
                header,
            });
        }
        let payload = match &self.payload {
            Some(header) => Some(name(header, "with_payload_header")?),
            None => None,
        };
        if self.separator.is_empty()
            || !self
                .separator
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(setting(
                "with_claim_header_separator",
                "the separator must be visible ASCII or spaces, and not empty".into(),
            ));
        }
        Ok(Some(Forward {
            claims: claims.into(),
            payload,
            separator: self.separator.into(),
            encoding: self.encoding,
        }))
    }
}

impl Forward {
    /// The top-level claims read, for the validator to capture in its one payload parse.
    pub(crate) fn top_level_names(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .filter_map(|c| c.path.first().map(|s| &**s))
    }

    /// Removes every header this step writes (a request let through without claims, or the
    /// first half of [`write`](Self::write)).
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        for c in self.claims.iter() {
            headers.remove(&c.header);
        }
        if let Some(name) = &self.payload {
            headers.remove(name);
        }
    }

    /// Removes the incoming headers of these names, then writes the verified values. A claim
    /// that is absent or `null` (or an empty array) leaves its header absent; a value that
    /// cannot be a header value refuses the request (see [`ClaimHeaderEncoding::Verbatim`]).
    pub(crate) fn write(&self, claims: &Claims, headers: &mut HeaderMap) -> Result<(), JwtError> {
        self.strip(headers);
        for c in self.claims.iter() {
            let Some(text) = lookup(claims, &c.path).and_then(|v| render(v, &self.separator))
            else {
                continue;
            };
            let value = self.header_value(&text).ok_or_else(|| {
                JwtError::with_detail(
                    JwtErrorKind::InvalidClaims,
                    format!(
                        "claim {} holds a control character and cannot be forwarded in header {}",
                        c.spelled.escape_debug(),
                        c.header
                    ),
                )
            })?;
            headers.insert(c.header.clone(), value);
        }
        if let Some(name) = &self.payload {
            let encoded = base64_simd::URL_SAFE_NO_PAD.encode_to_string(claims.raw());
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(name.clone(), value);
            }
        }
        Ok(())
    }

    fn header_value(&self, text: &str) -> Option<HeaderValue> {
        match self.encoding {
            ClaimHeaderEncoding::Verbatim => HeaderValue::from_bytes(text.as_bytes()).ok(),
            ClaimHeaderEncoding::Percent => {
                let mut out = String::with_capacity(text.len());
                for b in text.bytes() {
                    if b.is_ascii_graphic() && b != b'%' {
                        out.push(char::from(b));
                    } else {
                        let _ = write!(out, "%{b:02X}");
                    }
                }
                HeaderValue::from_str(&out).ok()
            }
        }
    }
}

/// The value at `path`: a top-level claim, then object members or array indexes.
fn lookup<'c>(claims: &'c Claims, path: &[Box<str>]) -> Option<&'c Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = match value {
            Value::Object(map) => map.get(&**segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// A claim as header text: strings as they are, numbers and booleans as their JSON text,
/// arrays joined with `separator`, objects (and arrays inside arrays) as compact JSON; `None`
/// for `null` and an empty array.
fn render<'v>(value: &'v Value, separator: &str) -> Option<Cow<'v, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                match item {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
            }
            Some(Cow::Owned(out))
        }
        other => Some(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        claims: &[(&str, &str)],
        separator: &str,
        encoding: ClaimHeaderEncoding,
        payload: Option<&str>,
    ) -> Result<Option<Forward>, ConfigError> {
        ForwardSettings {
            claims: claims
                .iter()
                .map(|(c, h)| ((*c).to_owned(), (*h).to_owned()))
                .collect(),
            separator: separator.into(),
            encoding,
            payload: payload.map(Into::into),
        }
        .build(Some(&http::header::AUTHORIZATION))
    }

    fn forward(claims: &[(&str, &str)], separator: &str, encoding: ClaimHeaderEncoding) -> Forward {
        settings(claims, separator, encoding, Some("x-payload"))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn paths_are_names_or_json_pointers() {
        assert_eq!(&*parse_path("oid").unwrap(), [Box::<str>::from("oid")]);
        assert_eq!(
            &*parse_path("https://x.example/roles").unwrap(),
            [Box::<str>::from("https://x.example/roles")]
        );
        assert_eq!(
            &*parse_path("/realm_access/roles").unwrap(),
            [Box::<str>::from("realm_access"), Box::<str>::from("roles")]
        );
        assert_eq!(
            &*parse_path("/a~1b/c~0d").unwrap(),
            [Box::<str>::from("a/b"), Box::<str>::from("c~d")]
        );
        for bad in ["", "/", "/a//b", "/a~2", "/a~"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_become_header_text() {
        let f = forward(
            &[
                ("s", "x-s"),
                ("n", "x-n"),
                ("b", "x-b"),
                ("a", "x-a"),
                ("/o/k", "x-o"),
                ("o", "x-obj"),
                ("/a/1", "x-a1"),
                ("null", "x-null"),
                ("empty", "x-empty"),
                ("missing", "x-missing"),
            ],
            ", ",
            ClaimHeaderEncoding::Verbatim,
        );
        let claims = Claims::from_unverified_json(
            br#"{"s":"Jos\u00e9","n":1.5,"b":true,"a":["r1",2,false,[3]],"o":{"k":"v"},"null":null,"empty":[]}"#,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-missing", HeaderValue::from_static("forged"));
        headers.append("x-s", HeaderValue::from_static("forged"));
        headers.append("x-s", HeaderValue::from_static("forged twice"));
        f.write(&claims, &mut headers).unwrap();
        let get = |n: &str| headers.get(n).map(|v| v.as_bytes().to_vec());
        assert_eq!(get("x-s").unwrap(), "José".as_bytes());
        assert_eq!(headers.get_all("x-s").iter().count(), 1);
        assert_eq!(get("x-n").unwrap(), b"1.5");
        assert_eq!(get("x-b").unwrap(), b"true");
        assert_eq!(get("x-a").unwrap(), b"r1, 2, false, [3]");
        assert_eq!(get("x-o").unwrap(), b"v");
        assert_eq!(get("x-obj").unwrap(), br#"{"k":"v"}"#);
        assert_eq!(get("x-a1").unwrap(), b"2");
        assert_eq!(get("x-null"), None);
        assert_eq!(get("x-empty"), None);
        assert_eq!(get("x-missing"), None);
        let payload = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(get("x-payload").unwrap())
            .unwrap();
        assert_eq!(payload, claims.raw().as_bytes());
    }

    #[test]
    fn control_characters_refuse_or_are_encoded() {
        let claims = Claims::from_unverified_json(br#"{"s":"a\r\nx-admin: true"}"#).unwrap();
        let verbatim = forward(&[("s", "x-s")], ",", ClaimHeaderEncoding::Verbatim);
        let err = verbatim.write(&claims, &mut HeaderMap::new()).unwrap_err();
        assert_eq!(err.kind(), JwtErrorKind::InvalidClaims);
        let percent = forward(&[("s", "x-s")], ",", ClaimHeaderEncoding::Percent);
        let mut headers = HeaderMap::new();
        percent.write(&claims, &mut headers).unwrap();
        assert_eq!(headers["x-s"], "a%0D%0Ax-admin:%20true");
        let name = Claims::from_unverified_json(r#"{"s":"José 100%"}"#.as_bytes()).unwrap();
        percent.write(&name, &mut headers).unwrap();
        assert_eq!(headers["x-s"], "Jos%C3%A9%20100%25");
    }

    #[test]
    fn bad_settings_are_refused_at_build() {
        let build = |claims: &[(&str, &str)], separator: &str, payload: Option<&str>| {
            settings(claims, separator, ClaimHeaderEncoding::Verbatim, payload)
        };
        for (claims, separator, payload) in [
            (&[("oid", "bad name")][..], ",", None),
            (&[("oid", "authorization")][..], ",", None),
            (&[("oid", "Host")][..], ",", None),
            (&[("oid", "x-a"), ("sub", "X-A")][..], ",", None),
            (&[("oid", "x-a")][..], ",", Some("x-a")),
            (&[("", "x-a")][..], ",", None),
            (&[("/a~", "x-a")][..], ",", None),
            (&[("oid", "x-a")][..], "", None),
            (&[("oid", "x-a")][..], "\n", None),
        ] {
            let err = build(claims, separator, payload).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidSetting { .. }),
                "{claims:?} {separator:?}: {err}"
            );
        }
        assert!(build(&[], ",", None).unwrap().is_none());
    }
}
