//! Compact JWS parsing: segments, canonical base64url, the header and the registered claims.
//!
//! Everything here works on borrowed bytes; the header and signature are decoded into stack
//! buffers. Only the payload is decoded onto the heap, because it becomes the [`Claims`]
//! handed to the service.
//!
//! [`Claims`]: crate::Claims

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::algorithm::Algorithm;
use crate::error::{JwtError, JwtErrorKind};

/// The largest encoded header accepted (decodes to at most 1 KiB).
pub(crate) const MAX_HEADER_B64: usize = 1368;
/// The largest encoded signature accepted (RSA-8192: 1024 bytes).
pub(crate) const MAX_SIGNATURE_B64: usize = 1366;

pub(crate) fn malformed(detail: &'static str) -> JwtError {
    JwtError::with_detail(JwtErrorKind::Malformed, detail)
}

/// The three segments of a compact JWS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
}

/// The number of `.` in `bytes`, counted in byte-wide lanes (which the compiler vectorises).
fn count_dots(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u8, |n, b| n.wrapping_add(u8::from(*b == b'.'))) as usize
        })
        .sum()
}

/// Splits a token into its segments; five segments are a JWE.
pub(crate) fn split(token: &[u8]) -> Result<Segments<'_>, JwtError> {
    // Counting is one vectorised pass; then the first dot is found from the front (the header
    // is short) and the last from the back (so is the signature).
    match count_dots(token) {
        2 => {}
        4 => {
            return Err(JwtError::with_detail(
                JwtErrorKind::Encrypted,
                "five segments (JWE)",
            ));
        }
        _ => return Err(malformed("a signed token has exactly three segments")),
    }
    let (Some(d1), Some(d2)) = (
        token.iter().position(|b| *b == b'.'),
        token.iter().rposition(|b| *b == b'.'),
    ) else {
        return Err(malformed("a signed token has exactly three segments"));
    };
    let header = &token[..d1];
    let payload = &token[d1 + 1..d2];
    let signature = &token[d2 + 1..];
    if header.is_empty() || payload.is_empty() {
        return Err(malformed("empty header or payload segment"));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input: &token[..d2],
    })
}

/// Decodes canonical unpadded base64url into `out`, returning the decoded length.
pub(crate) fn b64_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.decode_slice(input, out).ok()
}

/// Decodes canonical unpadded base64url onto the heap, into a vector of exactly the decoded
/// length (so that `Bytes::from` takes it over without another allocation).
pub(crate) fn b64_vec(input: &[u8]) -> Option<Vec<u8>> {
    let len = input.len() / 4 * 3
        + match input.len() % 4 {
            0 => 0,
            2 => 1,
            3 => 2,
            _ => return None,
        };
    let mut out = vec![0u8; len];
    let n = URL_SAFE_NO_PAD.decode_slice(input, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

/// The JOSE header members this crate reads. Key-carrying members (`jku`, `x5u`, `jwk`, `x5c`)
/// are deliberately not read: keys never come from the token.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    /// A string when present: `"kid": null` is not an absent `kid` (RFC 7515 §4.1.4).
    #[serde(borrow, default, deserialize_with = "present_string")]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) cty: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) crit: Option<IgnoredAny>,
    #[serde(default)]
    pub(crate) b64: Option<IgnoredAny>,
}

/// A member that must be a string when present (`null` is refused, not taken as absent).
fn present_string<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    Name::deserialize(d).map(|Name(s)| Some(s))
}

/// Parses the decoded header JSON.
pub(crate) fn parse_header(json: &[u8]) -> Result<(Header<'_>, Algorithm), JwtError> {
    // The header is UTF-8 JSON and an object (RFC 7515 §5.2): serde_json skips the strings it
    // ignores without checking their UTF-8, and a derived struct also reads a JSON array.
    if std::str::from_utf8(json).is_err() || json.trim_ascii_start().first() != Some(&b'{') {
        return Err(malformed("the header is not a UTF-8 JSON object"));
    }
    let header: Header<'_> = serde_json::from_slice(json)
        .map_err(|_| malformed("the header is not a JSON object with a string `alg`"))?;
    let alg = Algorithm::from_bytes(header.alg.as_bytes()).ok_or_else(|| {
        JwtError::with_detail(
            JwtErrorKind::UnsupportedAlgorithm,
            "`alg` is none or not a supported algorithm",
        )
    })?;
    if header.crit.is_some() {
        return Err(JwtError::with_detail(
            JwtErrorKind::InvalidHeader,
            "`crit` names extensions this validator does not understand",
        ));
    }
    if header.b64.is_some() {
        return Err(JwtError::with_detail(
            JwtErrorKind::InvalidHeader,
            "`b64` (unencoded payload) is not accepted",
        ));
    }
    if let Some(cty) = &header.cty
        && cty.eq_ignore_ascii_case("JWT")
    {
        return Err(JwtError::with_detail(
            JwtErrorKind::InvalidHeader,
            "nested tokens (`cty: JWT`) are not accepted",
        ));
    }
    Ok((header, alg))
}

/// `aud`: one string or an array of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Audiences(pub(crate) Vec<Box<str>>);

/// The registered claims validation needs, plus the members requirements asked for.
#[derive(Debug, Default)]
pub(crate) struct Registered {
    pub(crate) iss: Option<Box<str>>,
    pub(crate) sub: Option<Box<str>>,
    pub(crate) aud: Option<Audiences>,
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
    pub(crate) tid: Option<Box<str>>,
    /// The top-level members requirements read (the layer's list, shared), all looked for.
    pub(crate) wanted: Wanted,
    /// The ones the payload carries: (index in `wanted`, value), in document order.
    pub(crate) captured: Vec<(usize, serde_json::Value)>,
}

/// The names of the top-level members requirements read, gathered once at build time.
pub(crate) type Wanted = std::sync::Arc<[Box<str>]>;

fn invalid_claim(detail: &'static str) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidClaims, detail)
}

fn numeric_date(raw: &RawValue, what: &'static str) -> Result<f64, JwtError> {
    let n: f64 = serde_json::from_str(raw.get()).map_err(|_| invalid_claim(what))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(invalid_claim(what))
    }
}

/// The text of a JSON string without escapes, straight from the raw value (which serde_json has
/// checked is exactly one valid JSON value, so a quote at each end and no backslash means one
/// string whose content needs no decoding); `None` for anything else.
fn plain_string(raw: &RawValue) -> Option<&str> {
    raw.get()
        .strip_prefix('"')?
        .strip_suffix('"')
        .filter(|s| !s.contains('\\'))
}

fn string_claim(raw: &RawValue, what: &'static str) -> Result<Box<str>, JwtError> {
    if let Some(s) = plain_string(raw) {
        return Ok(s.into());
    }
    let s: Cow<'_, str> = serde_json::from_str(raw.get()).map_err(|_| invalid_claim(what))?;
    Ok(s.into())
}

/// A captured member as a JSON value.
fn json_value(raw: &RawValue) -> Result<serde_json::Value, JwtError> {
    if let Some(s) = plain_string(raw) {
        return Ok(serde_json::Value::String(s.to_owned()));
    }
    serde_json::from_str(raw.get()).map_err(|_| malformed("the payload is not valid JSON"))
}

/// Reads the top-level object in one pass: the registered claims straight into [`Registered`],
/// the `wanted` members as values, everything else skipped. Duplicates of a member we read are
/// rejected (JSON parsers disagree on which one wins).
struct Collect<'w> {
    wanted: &'w [Box<str>],
    r: &'w mut Registered,
}

/// What [`Collect`] found wrong in a syntactically valid object, reported after the syntax.
#[derive(Default)]
struct Findings {
    duplicate: bool,
    /// The first member of the wrong type, in document order.
    first_error: Option<JwtError>,
}

/// The registered claims' bits in [`Collect`]'s record of members seen.
fn registered_bit(name: &str) -> Option<u8> {
    Some(match name {
        "iss" => 1,
        "sub" => 2,
        "aud" => 4,
        "exp" => 8,
        "nbf" => 16,
        "iat" => 32,
        "tid" => 64,
        _ => return None,
    })
}

impl Registered {
    /// Stores one registered claim from its raw JSON.
    fn set(&mut self, bit: u8, raw: &RawValue) -> Result<(), JwtError> {
        match bit {
            1 => self.iss = Some(string_claim(raw, "`iss` is not a string")?),
            2 => self.sub = Some(string_claim(raw, "`sub` is not a string")?),
            4 => self.aud = Some(parse_audiences(raw)?),
            8 => self.exp = Some(numeric_date(raw, "`exp` is not a NumericDate")?),
            16 => self.nbf = Some(numeric_date(raw, "`nbf` is not a NumericDate")?),
            32 => self.iat = Some(numeric_date(raw, "`iat` is not a NumericDate")?),
            64 => self.tid = Some(string_claim(raw, "`tid` is not a string")?),
            _ => {}
        }
        Ok(())
    }
}

/// A member name, borrowed from the input unless it contains escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = Findings;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Findings, A::Error> {
        let mut found = Findings::default();
        let mut seen = 0u8;
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            let bit = registered_bit(&key);
            let wanted = self.wanted.iter().position(|w| **w == *key);
            if bit.is_none() && wanted.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            let mut result = Ok(());
            if let Some(bit) = bit {
                found.duplicate |= seen & bit != 0;
                seen |= bit;
                result = self.r.set(bit, raw);
            }
            if let Some(i) = wanted {
                found.duplicate |= self.r.captured.iter().any(|(j, _)| *j == i);
                result = result.and_then(|()| {
                    self.r.captured.push((i, json_value(raw)?));
                    Ok(())
                });
            }
            if let Err(e) = result {
                found.first_error.get_or_insert(e);
            }
        }
        Ok(found)
    }
}

impl<'de> de::DeserializeSeed<'de> for Collect<'_> {
    type Value = Findings;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Findings, D::Error> {
        d.deserialize_map(self)
    }
}

/// Parses the decoded payload into the registered claims and the `wanted` top-level members.
pub(crate) fn parse_claims(json: &[u8], wanted: &Wanted) -> Result<Registered, JwtError> {
    use de::DeserializeSeed as _;
    // RFC 7519 §7.2: the payload is UTF-8; serde_json does not check the strings it skips.
    // Checked once here, so the parser below reads a `str` and checks no string again.
    let Ok(text) = std::str::from_utf8(json) else {
        return Err(malformed("the payload is not UTF-8"));
    };
    let mut r = Registered {
        wanted: wanted.clone(),
        ..Registered::default()
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let found = Collect { wanted, r: &mut r }
        .deserialize(&mut de)
        .map_err(|_| malformed("the payload is not a JSON object"))?;
    de.end()
        .map_err(|_| malformed("the payload is not a JSON object"))?;
    if found.duplicate {
        return Err(invalid_claim("the payload repeats a member"));
    }
    if let Some(e) = found.first_error {
        return Err(e);
    }
    Ok(r)
}

fn parse_audiences(raw: &RawValue) -> Result<Audiences, JwtError> {
    let bad = || invalid_claim("`aud` is not a string or an array of strings");
    let text = raw.get();
    // `RawValue` holds exactly one JSON value, without surrounding whitespace.
    Ok(Audiences(match text.as_bytes().first() {
        Some(b'"') => vec![string_claim(
            raw,
            "`aud` is not a string or an array of strings",
        )?],
        Some(b'[') => {
            let many: Vec<Cow<'_, str>> = serde_json::from_str(text).map_err(|_| bad())?;
            many.into_iter().map(Into::into).collect()
        }
        _ if text == "null" => Vec::new(),
        _ => return Err(bad()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_segments_split() {
        let s = split(b"aa.bb.cc").unwrap();
        assert_eq!(s.header, b"aa");
        assert_eq!(s.payload, b"bb");
        assert_eq!(s.signature, b"cc");
        assert_eq!(s.signing_input, b"aa.bb");
    }

    #[test]
    fn five_segments_are_encrypted_tokens() {
        assert_eq!(
            split(b"a.b.c.d.e").unwrap_err().kind(),
            JwtErrorKind::Encrypted
        );
    }

    #[test]
    fn other_segment_counts_are_malformed() {
        for t in [
            &b""[..],
            b"a",
            b"a.b",
            b"a.b.c.d",
            b"a.b.c.d.e.f",
            b"..",
            b".b.c",
            b"a..c",
        ] {
            assert_eq!(
                split(t).unwrap_err().kind(),
                JwtErrorKind::Malformed,
                "{t:?}"
            );
        }
    }

    #[test]
    fn base64_must_be_canonical_and_unpadded() {
        let mut buf = [0u8; 16];
        assert_eq!(b64_into(b"YWJj", &mut buf), Some(3));
        assert_eq!(b64_into(b"YWI=", &mut buf), None);
        assert_eq!(
            b64_into(b"YWJ", &mut buf),
            None,
            "non-canonical trailing bits"
        );
        assert_eq!(b64_into(b"YW Jj", &mut buf), None);
        assert_eq!(b64_into(b"YW+j", &mut buf), None, "standard alphabet");
    }

    #[test]
    fn header_needs_a_known_alg() {
        assert_eq!(
            parse_header(br#"{"alg":"none"}"#).err().unwrap().kind(),
            JwtErrorKind::UnsupportedAlgorithm
        );
        assert_eq!(
            parse_header(br#"{"typ":"JWT"}"#).err().unwrap().kind(),
            JwtErrorKind::Malformed
        );
        assert_eq!(
            parse_header(br#"{"alg":"RS256","alg":"HS256"}"#)
                .err()
                .unwrap()
                .kind(),
            JwtErrorKind::Malformed
        );
        assert_eq!(
            parse_header(br#"{"alg":"RS256","kid":5}"#)
                .err()
                .unwrap()
                .kind(),
            JwtErrorKind::Malformed
        );
        assert_eq!(
            parse_header(br#"{"alg":"RS256","crit":["exp"]}"#)
                .err()
                .unwrap()
                .kind(),
            JwtErrorKind::InvalidHeader
        );
        assert_eq!(
            parse_header(br#"{"alg":"RS256","b64":false}"#)
                .err()
                .unwrap()
                .kind(),
            JwtErrorKind::InvalidHeader
        );
        assert_eq!(
            parse_header(br#"{"alg":"RS256","cty":"JWT"}"#)
                .err()
                .unwrap()
                .kind(),
            JwtErrorKind::InvalidHeader
        );
        let (h, alg) =
            parse_header(br#"{"alg":"ES256","kid":"k\u0031","jku":"http://x"}"#).unwrap();
        assert_eq!(alg, Algorithm::ES256);
        assert_eq!(h.kid.as_deref(), Some("k1"));
    }

    fn none() -> Wanted {
        Wanted::from([])
    }

    #[test]
    fn claims_are_typed_strictly() {
        let ok = parse_claims(
            br#"{"iss":"i","aud":["a","b"],"exp":1.5,"x":{"y":1}}"#,
            &none(),
        )
        .unwrap();
        assert_eq!(ok.iss.as_deref(), Some("i"));
        assert_eq!(ok.aud.unwrap().0.len(), 2);
        assert_eq!(ok.exp, Some(1.5));
        for bad in [
            r#"{"exp":"1"}"#,
            r#"{"exp":1e400}"#,
            r#"{"nbf":true}"#,
            r#"{"iat":[1]}"#,
            r#"{"iss":1}"#,
            r#"{"aud":1}"#,
            r#"{"aud":[1]}"#,
            r#"{"exp":1,"exp":2}"#,
            r#"{"aud":"a","aud":"b"}"#,
        ] {
            let err = parse_claims(bad.as_bytes(), &none()).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::InvalidClaims, "{bad}");
        }
        for bad in ["[]", "1", "{", r#"{"a":1} x"#, "\"s\""] {
            let err = parse_claims(bad.as_bytes(), &none()).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::Malformed, "{bad}");
        }
    }

    #[test]
    fn wanted_members_are_captured() {
        let wanted: Wanted = Wanted::from(vec!["scp".into(), "realm_access".into()]);
        let r = parse_claims(
            br#"{"scp":"a b","realm_access":{"roles":["x"]},"other":1}"#,
            &wanted,
        )
        .unwrap();
        assert_eq!(r.captured.len(), 2);
        assert_eq!(&*r.wanted[r.captured[0].0], "scp");
    }

    #[test]
    fn null_audience_is_empty() {
        let r = parse_claims(br#"{"aud":null}"#, &none()).unwrap();
        assert_eq!(r.aud, Some(Audiences(vec![])));
    }
}
