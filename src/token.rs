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

/// Splits a token into its segments; five segments are a JWE.
pub(crate) fn split(token: &[u8]) -> Result<Segments<'_>, JwtError> {
    let mut dots = [0usize; 2];
    let mut count = 0usize;
    for (i, b) in token.iter().enumerate() {
        if *b == b'.' {
            if count < 2 {
                dots[count] = i;
            }
            count += 1;
        }
    }
    match count {
        2 => {}
        4 => {
            return Err(JwtError::with_detail(
                JwtErrorKind::Encrypted,
                "five segments (JWE)",
            ));
        }
        _ => return Err(malformed("a signed token has exactly three segments")),
    }
    let [d1, d2] = dots;
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

/// Decodes canonical unpadded base64url onto the heap.
pub(crate) fn b64_vec(input: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// The JOSE header members this crate reads. Key-carrying members (`jku`, `x5u`, `jwk`, `x5c`)
/// are deliberately not read: keys never come from the token.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(borrow, default)]
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

/// Parses the decoded header JSON.
pub(crate) fn parse_header(json: &[u8]) -> Result<(Header<'_>, Algorithm), JwtError> {
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
    /// Top-level members captured for requirement matching, in document order.
    pub(crate) captured: Vec<(Box<str>, serde_json::Value)>,
}

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

fn string_claim(raw: &RawValue, what: &'static str) -> Result<Box<str>, JwtError> {
    let s: Cow<'_, str> = serde_json::from_str(raw.get()).map_err(|_| invalid_claim(what))?;
    Ok(s.into())
}

/// Collects borrowed raw members of the top-level object; duplicates of a member we read are
/// rejected (JSON parsers disagree on which one wins).
struct Collect<'a, 'w> {
    wanted: &'w [Box<str>],
    out: &'w mut Vec<(Cow<'a, str>, &'a RawValue)>,
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

const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "tid"];

impl<'de, 'w> Visitor<'de> for Collect<'de, 'w> {
    type Value = Result<(), &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut duplicate = false;
        while let Some(Name(key)) = map.next_key::<Name<'de>>()? {
            let interesting =
                REGISTERED.contains(&&*key) || self.wanted.iter().any(|w| **w == *key);
            if interesting {
                let value: &'de RawValue = map.next_value()?;
                if self.out.iter().any(|(k, _)| *k == key) {
                    duplicate = true;
                }
                self.out.push((key, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(if duplicate {
            Err("the payload repeats a member")
        } else {
            Ok(())
        })
    }
}

impl<'de, 'w> de::DeserializeSeed<'de> for Collect<'de, 'w> {
    type Value = Result<(), &'static str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Parses the decoded payload into the registered claims and the `wanted` top-level members.
pub(crate) fn parse_claims(json: &[u8], wanted: &[Box<str>]) -> Result<Registered, JwtError> {
    use de::DeserializeSeed as _;
    let mut members: Vec<(Cow<'_, str>, &RawValue)> = Vec::with_capacity(8 + wanted.len());
    let mut de = serde_json::Deserializer::from_slice(json);
    let collected = Collect {
        wanted,
        out: &mut members,
    }
    .deserialize(&mut de)
    .map_err(|_| malformed("the payload is not a JSON object"))?;
    de.end()
        .map_err(|_| malformed("the payload is not a JSON object"))?;
    collected.map_err(invalid_claim)?;

    let mut r = Registered::default();
    for (name, raw) in members {
        match &*name {
            "iss" => r.iss = Some(string_claim(raw, "`iss` is not a string")?),
            "sub" => r.sub = Some(string_claim(raw, "`sub` is not a string")?),
            "tid" => r.tid = Some(string_claim(raw, "`tid` is not a string")?),
            "exp" => r.exp = Some(numeric_date(raw, "`exp` is not a NumericDate")?),
            "nbf" => r.nbf = Some(numeric_date(raw, "`nbf` is not a NumericDate")?),
            "iat" => r.iat = Some(numeric_date(raw, "`iat` is not a NumericDate")?),
            "aud" => r.aud = Some(parse_audiences(raw)?),
            _ => {}
        }
        if wanted.iter().any(|w| **w == *name) {
            let value: serde_json::Value = serde_json::from_str(raw.get())
                .map_err(|_| malformed("the payload is not valid JSON"))?;
            r.captured.push((name.into(), value));
        }
    }
    Ok(r)
}

fn parse_audiences(raw: &RawValue) -> Result<Audiences, JwtError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud<'a> {
        #[serde(borrow)]
        One(Cow<'a, str>),
        #[serde(borrow)]
        Many(Vec<Cow<'a, str>>),
        Null(()),
    }
    let aud: Aud<'_> = serde_json::from_str(raw.get())
        .map_err(|_| invalid_claim("`aud` is not a string or an array of strings"))?;
    Ok(Audiences(match aud {
        Aud::One(s) => vec![s.into()],
        Aud::Many(v) => v.into_iter().map(Into::into).collect(),
        Aud::Null(()) => Vec::new(),
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

    #[test]
    fn claims_are_typed_strictly() {
        let ok =
            parse_claims(br#"{"iss":"i","aud":["a","b"],"exp":1.5,"x":{"y":1}}"#, &[]).unwrap();
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
            let err = parse_claims(bad.as_bytes(), &[]).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::InvalidClaims, "{bad}");
        }
        for bad in ["[]", "1", "{", r#"{"a":1} x"#, "\"s\""] {
            let err = parse_claims(bad.as_bytes(), &[]).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::Malformed, "{bad}");
        }
    }

    #[test]
    fn wanted_members_are_captured() {
        let wanted: Vec<Box<str>> = vec!["scp".into(), "realm_access".into()];
        let r = parse_claims(
            br#"{"scp":"a b","realm_access":{"roles":["x"]},"other":1}"#,
            &wanted,
        )
        .unwrap();
        assert_eq!(r.captured.len(), 2);
        assert_eq!(r.captured[0].0.as_ref(), "scp");
    }

    #[test]
    fn null_audience_is_empty() {
        let r = parse_claims(br#"{"aud":null}"#, &[]).unwrap();
        assert_eq!(r.aud, Some(Audiences(vec![])));
    }
}
