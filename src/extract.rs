//! Finding the token in a request: header (with or without a scheme), query parameter, cookie,
//! or a custom extractor (APIM's `header-name`, `require-scheme`, `query-parameter-name`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Uri, header};

use crate::error::{JwtError, JwtErrorKind};

/// A custom token extractor: returns the token, or `None` when the request carries none.
pub(crate) type Extractor = dyn Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync;

#[derive(Clone)]
pub(crate) struct TokenLocations {
    pub(crate) header: Option<HeaderName>,
    /// The scheme the header value must start with (`Bearer` for `Authorization`); `None` for a
    /// header carrying the raw token (a leading `Bearer ` is tolerated).
    pub(crate) scheme: Option<Box<str>>,
    pub(crate) query: Option<Box<str>>,
    pub(crate) cookie: Option<Box<str>>,
    pub(crate) custom: Option<Arc<Extractor>>,
    /// DPoP is on: `Authorization: DPoP <token>` is a token too (RFC 9449 §7.1).
    pub(crate) dpop: bool,
}

impl fmt::Debug for TokenLocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenLocations")
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .field("query", &self.query)
            .field("cookie", &self.cookie)
            .field("custom", &self.custom.is_some())
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl Default for TokenLocations {
    fn default() -> Self {
        TokenLocations {
            header: Some(header::AUTHORIZATION),
            scheme: Some("Bearer".into()),
            query: None,
            cookie: None,
            custom: None,
            dpop: false,
        }
    }
}

#[cold]
#[inline(never)]
fn invalid_request(detail: &'static str) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidRequest, detail)
}

/// Strips `scheme` and the spaces after it; `None` when the value uses another scheme.
fn strip_scheme<'a>(value: &'a [u8], scheme: &str) -> Option<&'a [u8]> {
    let s = scheme.as_bytes();
    if value.len() < s.len() || !value[..s.len()].eq_ignore_ascii_case(s) {
        return None;
    }
    let rest = &value[s.len()..];
    match rest.first() {
        None => Some(rest),
        Some(b' ') => Some(trim(rest)),
        Some(_) => None, // "Bearerx": another scheme
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// `input` percent-decoded (RFC 3986 §2.1): `%` and exactly two hex digits each; with
/// `plus_is_space`, `+` is a space too (`application/x-www-form-urlencoded`, query strings).
/// `None` for a `%` not followed by two hex digits. (The certificate headers of
/// `crate::sender` decode with it too.)
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(hex_byte(bytes.get(i + 1..i + 3)?)?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The byte two hex digits spell (either case): `None` unless `pair` is exactly two ASCII hex
/// digits (`u8::from_str_radix` alone would take `+1`).
pub(crate) fn hex_byte(pair: &[u8]) -> Option<u8> {
    match *pair {
        [hi, lo] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
            let digit = |b: u8| char::from(b).to_digit(16);
            u8::try_from(digit(hi)? * 16 + digit(lo)?).ok()
        }
        _ => None,
    }
}

impl TokenLocations {
    /// The token, `None` when the request carries none, or `invalid_request` when it carries
    /// one in more than one place, twice, or empty.
    pub(crate) fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
    ) -> Result<Option<Cow<'a, [u8]>>, JwtError> {
        let mut found: Option<Cow<'a, [u8]>> = None;
        let mut put = |token: Cow<'a, [u8]>| {
            if token.is_empty() {
                return Err(invalid_request("the access token is empty"));
            }
            if found.replace(token).is_some() {
                return Err(invalid_request(
                    "the request carries more than one access token",
                ));
            }
            Ok(())
        };

        if let Some(name) = &self.header {
            let mut values = headers.get_all(name).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(invalid_request("the request repeats the token header"));
                }
                let raw = value.as_bytes();
                match &self.scheme {
                    Some(scheme) => {
                        let token = strip_scheme(raw, scheme)
                            .or_else(|| self.dpop.then(|| strip_scheme(raw, "DPoP")).flatten());
                        if let Some(token) = token {
                            put(Cow::Borrowed(token))?;
                        }
                    }
                    None => {
                        let token = strip_scheme(raw, "Bearer").unwrap_or_else(|| trim(raw));
                        put(Cow::Borrowed(token))?;
                    }
                }
            }
        }

        if let Some(name) = &self.query
            && let Some(query) = uri.query()
        {
            let mut seen = false;
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if k != &**name {
                    continue;
                }
                if seen {
                    return Err(invalid_request("the query repeats the token parameter"));
                }
                seen = true;
                let token = if v.contains(['%', '+']) {
                    Cow::Owned(percent_decode(v, true).ok_or_else(|| {
                        invalid_request("the token parameter is not percent-encoded correctly")
                    })?)
                } else {
                    Cow::Borrowed(v.as_bytes())
                };
                put(token)?;
            }
        }

        if let Some(name) = &self.cookie {
            let mut seen = false;
            for value in headers.get_all(header::COOKIE) {
                let Ok(value) = value.to_str() else { continue };
                for pair in value.split(';') {
                    let Some((k, v)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    if k != &**name {
                        continue;
                    }
                    if seen {
                        return Err(invalid_request("the request repeats the token cookie"));
                    }
                    seen = true;
                    put(Cow::Borrowed(v.trim_matches('"').as_bytes()))?;
                }
            }
        }

        if let Some(custom) = &self.custom
            && let Some(token) = custom(headers, uri)
        {
            put(Cow::Owned(token.into_bytes()))?;
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get(
        loc: &TokenLocations,
        pairs: &[(&str, &str)],
        uri: &str,
    ) -> Result<Option<Vec<u8>>, JwtErrorKind> {
        let h = headers(pairs);
        let uri: Uri = uri.parse().unwrap();
        loc.extract(&h, &uri)
            .map(|t| t.map(|c| c.into_owned()))
            .map_err(|e| e.kind())
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let loc = TokenLocations::default();
        for v in ["Bearer abc", "bearer abc", "BEARER  abc", "Bearer abc "] {
            assert_eq!(
                get(&loc, &[("authorization", v)], "/"),
                Ok(Some(b"abc".to_vec())),
                "{v}"
            );
        }
    }

    #[test]
    fn other_schemes_are_no_token() {
        let loc = TokenLocations::default();
        assert_eq!(
            get(&loc, &[("authorization", "Basic dXNlcg==")], "/"),
            Ok(None)
        );
        assert_eq!(get(&loc, &[("authorization", "Bearerabc")], "/"), Ok(None));
        assert_eq!(get(&loc, &[], "/"), Ok(None));
    }

    #[test]
    fn empty_and_repeated_tokens_are_invalid_requests() {
        let loc = TokenLocations {
            query: Some("access_token".into()),
            ..Default::default()
        };
        assert_eq!(
            get(&loc, &[("authorization", "Bearer")], "/"),
            Err(JwtErrorKind::InvalidRequest)
        );
        assert_eq!(
            get(&loc, &[("authorization", "Bearer   ")], "/"),
            Err(JwtErrorKind::InvalidRequest)
        );
        assert_eq!(
            get(
                &loc,
                &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
                "/"
            ),
            Err(JwtErrorKind::InvalidRequest)
        );
        assert_eq!(
            get(&loc, &[("authorization", "Bearer a")], "/?access_token=a"),
            Err(JwtErrorKind::InvalidRequest)
        );
        assert_eq!(
            get(&loc, &[], "/?access_token=a&access_token=b"),
            Err(JwtErrorKind::InvalidRequest)
        );
        assert_eq!(
            get(&loc, &[], "/?x=1&access_token=a%2Eb"),
            Ok(Some(b"a.b".to_vec()))
        );
        // A `%` takes exactly two hex digits: no sign (`u8::from_str_radix` took `%+1`).
        for bad in ["%zz", "%+1", "%-1", "a%2", "%"] {
            assert_eq!(
                get(&loc, &[], &format!("/?access_token={bad}")),
                Err(JwtErrorKind::InvalidRequest),
                "{bad}"
            );
        }
    }

    #[test]
    fn hex_bytes_are_exactly_two_hex_digits() {
        assert_eq!(hex_byte(b"00"), Some(0));
        assert_eq!(hex_byte(b"7e"), Some(0x7e));
        assert_eq!(hex_byte(b"Ff"), Some(0xff));
        for bad in [
            &b"+1"[..],
            b"-1",
            b" 1",
            b"1 ",
            b"0x",
            b"g0",
            b"1",
            b"",
            b"123",
        ] {
            assert_eq!(hex_byte(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_dpop_scheme_is_a_token_only_with_dpop_on() {
        let off = TokenLocations::default();
        assert_eq!(get(&off, &[("authorization", "DPoP abc")], "/"), Ok(None));
        let on = TokenLocations {
            dpop: true,
            ..Default::default()
        };
        for v in ["DPoP abc", "dpop  abc", "Bearer abc"] {
            assert_eq!(
                get(&on, &[("authorization", v)], "/"),
                Ok(Some(b"abc".to_vec())),
                "{v}"
            );
        }
        assert_eq!(get(&on, &[("authorization", "DPoPabc")], "/"), Ok(None));
    }

    #[test]
    fn custom_headers_carry_the_raw_token() {
        let loc = TokenLocations {
            header: Some(HeaderName::from_static("x-token")),
            scheme: None,
            ..Default::default()
        };
        assert_eq!(
            get(&loc, &[("x-token", "abc")], "/"),
            Ok(Some(b"abc".to_vec()))
        );
        assert_eq!(
            get(&loc, &[("x-token", "Bearer abc")], "/"),
            Ok(Some(b"abc".to_vec()))
        );
        assert_eq!(
            get(&loc, &[("x-token", "")], "/"),
            Err(JwtErrorKind::InvalidRequest)
        );
    }

    #[test]
    fn cookies_and_custom_extractors_are_locations() {
        let loc = TokenLocations {
            header: None,
            cookie: Some("at".into()),
            custom: Some(Arc::new(|h: &HeaderMap, _: &Uri| {
                h.get("x-alt").map(|v| v.to_str().unwrap_or("").to_owned())
            })),
            ..Default::default()
        };
        assert_eq!(
            get(&loc, &[("cookie", "a=1; at=tok")], "/"),
            Ok(Some(b"tok".to_vec()))
        );
        assert_eq!(get(&loc, &[("x-alt", "t2")], "/"), Ok(Some(b"t2".to_vec())));
        assert_eq!(
            get(&loc, &[("cookie", "at=tok"), ("x-alt", "t2")], "/"),
            Err(JwtErrorKind::InvalidRequest)
        );
    }
}
