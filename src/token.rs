//! Compact JWS parsing: segments, canonical base64url, the header and the registered claims.
//!
//! Everything here works on borrowed bytes; the header (up to 1 KiB, the usual case) and the
//! signature are decoded into stack buffers. Only the payload is decoded onto the heap, because it becomes the [`Claims`]
//! handed to the service.
//!
//! [`Claims`]: crate::Claims

use std::borrow::Cow;
use std::mem::MaybeUninit;

use serde_json::value::RawValue;

use crate::algorithm::Algorithm;
use crate::error::{JwtError, JwtErrorKind};

/// The largest encoded header decoded on the stack (1 KiB decoded); larger ones go to the heap.
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
    let three = || malformed("a signed token has exactly three segments");
    // A compact JWS is ASCII; as a `str`, the dots are found with `memchr` / `memrchr`: the
    // first from the front (the header is short), the last from the back (so is the
    // signature), then the long payload between them is searched once.
    let text = std::str::from_utf8(token).map_err(|_| malformed("the token is not ASCII"))?;
    let d1 = text.find('.').ok_or_else(three)?;
    let d2 = text.rfind('.').ok_or_else(three)?;
    if d1 == d2 {
        return Err(three());
    }
    let payload = &token[d1 + 1..d2];
    if text[d1 + 1..d2].contains('.') {
        // Off the fast path: say whether it is an encrypted token (five segments).
        let dots = payload.iter().filter(|b| **b == b'.').count() + 2;
        if dots == 4 {
            return Err(JwtError::with_detail(
                JwtErrorKind::Encrypted,
                "five segments (JWE)",
            ));
        }
        return Err(three());
    }
    let header = &token[..d1];
    if header.is_empty() || payload.is_empty() {
        return Err(malformed("empty header or payload segment"));
    }
    Ok(Segments {
        header,
        payload,
        signature: &token[d2 + 1..],
        signing_input: &token[..d2],
    })
}

/// The request path's base64url: SIMD (AVX2 / SSSE3 / NEON, chosen at run time), unpadded,
/// and strict: a character outside the URL-safe alphabet, padding, or set trailing bits (a
/// non-canonical encoding) is an error.
const B64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Decodes canonical unpadded base64url into `out`, returning the decoded length.
pub(crate) fn b64_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = decoded_len(input.len())?;
    let out = out.get_mut(..len)?;
    B64.decode(input, base64_simd::Out::from_slice(out))
        .ok()
        .map(|decoded| decoded.len())
}

/// Decodes canonical unpadded base64url into an uninitialised stack buffer (no zeroing first),
/// returning the decoded bytes.
pub(crate) fn b64_stack<'b>(input: &[u8], out: &'b mut [MaybeUninit<u8>]) -> Option<&'b [u8]> {
    let len = decoded_len(input.len())?;
    let out = out.get_mut(..len)?;
    B64.decode(input, base64_simd::Out::from_uninit_slice(out))
        .ok()
        .map(|decoded| &*decoded)
}

/// A stack buffer for [`b64_stack`].
pub(crate) const fn stack_buffer() -> [MaybeUninit<u8>; 1024] {
    [MaybeUninit::uninit(); 1024]
}

/// The decoded length of `encoded` unpadded base64 characters; `None` for an impossible length.
fn decoded_len(encoded: usize) -> Option<usize> {
    Some(
        encoded / 4 * 3
            + match encoded % 4 {
                0 => 0,
                2 => 1,
                3 => 2,
                _ => return None,
            },
    )
}

/// Decodes a base64url value from configuration or a key set (a JWK's `n`, `e`, `x`, `k`): the
/// request path's strict decoder, after removing trailing `=` padding, which JWKs in the wild
/// sometimes carry (the value stays unambiguous). One decoder for the whole crate.
pub(crate) fn b64url_lenient_padding(text: &str) -> Option<Vec<u8>> {
    b64_vec(text.trim_end_matches('=').as_bytes())
}

/// Decodes standard, padded base64 (APIM's `issuer-signing-keys` secrets), strictly.
pub(crate) fn b64_standard(text: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(text.as_bytes()).ok()
}

/// Decodes canonical unpadded base64url onto the heap, into a vector of exactly the decoded
/// length (so that `Bytes::from` takes it over without another allocation).
pub(crate) fn b64_vec(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; decoded_len(input.len())?];
    let n = b64_into(input, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// The JOSE header members this crate reads. Key-carrying members (`jku`, `x5u`, `jwk`, `x5c`)
/// are deliberately not read: keys never come from the token.
#[derive(Default)]
pub(crate) struct Header<'a> {
    pub(crate) alg: Cow<'a, str>,
    /// A string when present: `"kid": null` is not an absent `kid` (RFC 7515 §4.1.4).
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    pub(crate) cty: Option<Cow<'a, str>>,
    /// Whether `crit` / `b64` are present (with a value other than `null`).
    crit: bool,
    b64: bool,
}

/// A JSON string's content from its raw text: borrowed when it has no escapes.
fn json_string(raw: &str) -> Option<Cow<'_, str>> {
    if let Some(s) = plain_string(raw) {
        return Some(Cow::Borrowed(s));
    }
    if !raw.starts_with('"') {
        return None;
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// A member's name: borrowed when it has no escapes, else decoded by serde_json (which refuses
/// lone surrogates); `None` when it cannot be decoded.
fn member_name<'a>(member: &crate::json::Member<'a>) -> Option<Cow<'a, str>> {
    if !member.key_escaped {
        return Some(Cow::Borrowed(member.key));
    }
    serde_json::from_str::<String>(&format!("\"{}\"", member.key))
        .ok()
        .map(Cow::Owned)
}

/// Parses the decoded header JSON.
pub(crate) fn parse_header(json: &[u8]) -> Result<(Header<'_>, Algorithm), JwtError> {
    // The header is a UTF-8 JSON object (RFC 7515 §5.2).
    let Ok(text) = std::str::from_utf8(json) else {
        return Err(malformed("the header is not a UTF-8 JSON object"));
    };
    let mut header = Header::default();
    let (mut seen, mut has_alg, mut bad) = (0u8, false, false);
    crate::json::members(text, false, |member| {
        let Some(name) = member_name(&member) else {
            bad = true;
            return;
        };
        let bit = match &*name {
            "alg" => 1,
            "kid" => 2,
            "typ" => 4,
            "cty" => 8,
            "crit" => 16,
            "b64" => 32,
            _ => return,
        };
        // A repeated member is refused: parsers disagree on which one wins.
        bad |= seen & bit != 0;
        seen |= bit;
        let null = member.value == "null";
        let string = || json_string(member.value);
        match bit {
            1 => match string() {
                Some(alg) => (header.alg, has_alg) = (alg, true),
                None => bad = true,
            },
            2 => match string() {
                Some(kid) => header.kid = Some(kid),
                None => bad = true,
            },
            4 | 8 if null => {}
            4 | 8 => match string() {
                Some(v) if bit == 4 => header.typ = Some(v),
                Some(v) => header.cty = Some(v),
                None => bad = true,
            },
            16 => header.crit = !null,
            _ => header.b64 = !null,
        }
    })
    .map_err(|_| malformed("the header is not a UTF-8 JSON object"))?;
    if bad || !has_alg {
        return Err(malformed(
            "the header is not a JSON object with a string `alg`",
        ));
    }
    let alg = Algorithm::from_bytes(header.alg.as_bytes()).ok_or_else(|| {
        JwtError::with_detail(
            JwtErrorKind::UnsupportedAlgorithm,
            "`alg` is none or not a supported algorithm",
        )
    })?;
    if header.crit {
        return Err(JwtError::with_detail(
            JwtErrorKind::InvalidHeader,
            "`crit` names extensions this validator does not understand",
        ));
    }
    if header.b64 {
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

/// A string claim: where it sits in the payload (the common case: no escapes, so no copy), or
/// its decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text {
    /// `payload[start..end]`.
    Span(u32, u32),
    /// Decoded from a string with escapes.
    Owned(Box<str>),
}

impl Text {
    /// The text, given the payload it was read from.
    pub(crate) fn get<'a>(&'a self, payload: &'a str) -> &'a str {
        match self {
            // Spans are made from the payload itself; the fallback is never taken.
            Text::Span(start, end) => payload.get(*start as usize..*end as usize).unwrap_or(""),
            Text::Owned(s) => s,
        }
    }
}

/// `aud`: one string or an array of strings (`null`: an empty array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audiences {
    One(Text),
    Many(Vec<Text>),
}

/// The registered claims validation needs, plus the members requirements asked for, with the
/// payload they were read from.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registered {
    /// The payload's JSON text (checked UTF-8), exactly as the token carried it.
    pub(crate) payload: String,
    iss: Option<Text>,
    sub: Option<Text>,
    aud: Option<Audiences>,
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
    tid: Option<Text>,
    /// The top-level members requirements read (the layer's list, shared), all looked for.
    pub(crate) wanted: Wanted,
    /// The ones the payload carries: (index in `wanted`, value), in document order.
    pub(crate) captured: Vec<(usize, serde_json::Value)>,
}

impl Registered {
    /// `iss`.
    pub(crate) fn iss(&self) -> Option<&str> {
        self.iss.as_ref().map(|t| t.get(&self.payload))
    }

    /// `sub`.
    pub(crate) fn sub(&self) -> Option<&str> {
        self.sub.as_ref().map(|t| t.get(&self.payload))
    }

    /// `tid`.
    pub(crate) fn tid(&self) -> Option<&str> {
        self.tid.as_ref().map(|t| t.get(&self.payload))
    }

    /// Whether the payload has an `aud` member (of any of the accepted shapes).
    #[cfg(test)]
    pub(crate) fn has_aud(&self) -> bool {
        self.aud.is_some()
    }

    /// The audiences: none when `aud` is absent, `null` or `[]`.
    pub(crate) fn audiences(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match &self.aud {
            None => (None, &[][..]),
            Some(Audiences::One(t)) => (Some(t), &[][..]),
            Some(Audiences::Many(v)) => (None, &v[..]),
        };
        one.into_iter().chain(many).map(|t| t.get(&self.payload))
    }
}

/// The names of the top-level members requirements read, gathered once at build time.
pub(crate) type Wanted = std::sync::Arc<[Box<str>]>;

fn invalid_claim(detail: &'static str) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidClaims, detail)
}

fn numeric_date(raw: &str, what: &'static str) -> Result<f64, JwtError> {
    // The common case, a plain non-negative integer of at most 15 digits (exact in an f64),
    // without a second parser; anything else goes through serde_json.
    let digits = raw.as_bytes();
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        return Ok(digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64);
    }
    let n: f64 = serde_json::from_str(raw).map_err(|_| invalid_claim(what))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(invalid_claim(what))
    }
}

/// The text of a JSON string without escapes, straight from a value's raw text (which the
/// scanner has checked is exactly one valid JSON value, so a quote at each end and no backslash
/// means one string whose content needs no decoding); `None` for anything else.
fn plain_string(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')?
        .strip_suffix('"')
        .filter(|s| !s.contains('\\'))
}

/// A string member: a span of `base` (the payload) when it has no escapes.
fn string_claim(base: &str, raw: &str, what: &'static str) -> Result<Text, JwtError> {
    if let Some(s) = plain_string(raw) {
        // `s` borrows from `base`; its offset is found by address (checked, never assumed).
        let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        let end = start.wrapping_add(s.len());
        if let (Ok(a), Ok(b)) = (u32::try_from(start), u32::try_from(end))
            && base.get(start..end) == Some(s)
        {
            return Ok(Text::Span(a, b));
        }
        return Ok(Text::Owned(s.into()));
    }
    let s: Cow<'_, str> = serde_json::from_str(raw).map_err(|_| invalid_claim(what))?;
    Ok(Text::Owned(s.into()))
}

/// A captured member as a JSON value.
fn json_value(raw: &str) -> Result<serde_json::Value, JwtError> {
    if let Some(s) = plain_string(raw) {
        return Ok(serde_json::Value::String(s.to_owned()));
    }
    serde_json::from_str(raw).map_err(|_| malformed("the payload is not valid JSON"))
}

/// The registered claims' bits in the record of members seen.
fn registered_bit(name: &str) -> Option<u8> {
    // Every registered name read has three letters: most members are rejected by length.
    if name.len() != 3 {
        return None;
    }
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
    fn set(&mut self, base: &str, bit: u8, raw: &str) -> Result<(), JwtError> {
        match bit {
            1 => self.iss = Some(string_claim(base, raw, "`iss` is not a string")?),
            2 => self.sub = Some(string_claim(base, raw, "`sub` is not a string")?),
            4 => self.aud = Some(parse_audiences(base, raw)?),
            8 => self.exp = Some(numeric_date(raw, "`exp` is not a NumericDate")?),
            16 => self.nbf = Some(numeric_date(raw, "`nbf` is not a NumericDate")?),
            32 => self.iat = Some(numeric_date(raw, "`iat` is not a NumericDate")?),
            64 => self.tid = Some(string_claim(base, raw, "`tid` is not a string")?),
            _ => {}
        }
        Ok(())
    }
}

/// Parses the decoded payload into the registered claims and the `wanted` top-level members.
///
/// One pass of [`json::members`](crate::json::members) checks the whole payload and hands over
/// the top-level members; the registered claims go straight into [`Registered`], the `wanted`
/// members become values, the rest is only checked. The payload must be I-JSON (RFC 7493): a
/// repeated member name in any object, a lone surrogate or an out-of-range number anywhere is
/// refused, so every later reader (`Claims::get`, per-route requirements, `deserialize`) sees
/// exactly these members. A syntax error comes first, then the first member of the wrong type in
/// document order.
pub(crate) fn parse_claims(payload: Vec<u8>, wanted: &Wanted) -> Result<Registered, JwtError> {
    // RFC 7519 §7.2: the payload is UTF-8. Checked once here; the scanner then reads a `str`.
    let Ok(text) = String::from_utf8(payload) else {
        return Err(malformed("the payload is not UTF-8"));
    };
    let mut r = Registered {
        wanted: wanted.clone(),
        ..Registered::default()
    };
    let mut first_error: Option<JwtError> = None;
    // The lengths of the wanted names: most members are ruled out without a comparison.
    let wanted_lengths = wanted
        .iter()
        .fold(0u64, |mask, w| mask | 1 << w.len().min(63));
    crate::json::members(&text, true, |member| {
        let Some(key) = member_name(&member) else {
            first_error.get_or_insert(malformed("the payload is not a JSON object"));
            return;
        };
        let bit = registered_bit(&key);
        let wanted_at = if wanted_lengths & 1 << key.len().min(63) != 0 {
            wanted.iter().position(|w| **w == *key)
        } else {
            None
        };
        let mut result = Ok(());
        if let Some(bit) = bit {
            result = r.set(&text, bit, member.value);
        }
        if let Some(i) = wanted_at {
            result = result.and_then(|()| {
                r.captured.push((i, json_value(member.value)?));
                Ok(())
            });
        }
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    })
    .map_err(|e| match e {
        crate::json::ScanError::DuplicateName => invalid_claim("the payload repeats a member"),
        crate::json::ScanError::OutOfRange => {
            invalid_claim("the payload has a number beyond the range of a double (RFC 7493)")
        }
        crate::json::ScanError::Syntax => malformed("the payload is not an I-JSON object"),
    })?;
    if let Some(e) = first_error {
        return Err(e);
    }
    r.payload = text;
    Ok(r)
}

fn parse_audiences(base: &str, raw: &str) -> Result<Audiences, JwtError> {
    const BAD: &str = "`aud` is not a string or an array of strings";
    match raw.as_bytes().first() {
        Some(b'"') => Ok(Audiences::One(string_claim(base, raw, BAD)?)),
        Some(b'[') => {
            let many: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| invalid_claim(BAD))?;
            let many = many
                .into_iter()
                .map(|item| match item.get().as_bytes().first() {
                    Some(b'"') => string_claim(base, item.get(), BAD),
                    _ => Err(invalid_claim(BAD)),
                })
                .collect::<Result<_, _>>()?;
            Ok(Audiences::Many(many))
        }
        _ if raw == "null" => Ok(Audiences::Many(Vec::new())),
        _ => Err(invalid_claim(BAD)),
    }
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
        // Escaped member names are decoded before they are compared; repeats are refused
        // however they are spelled.
        let (h, alg) = parse_header(br#"{"\u0061lg":"RS256","typ":null}"#).unwrap();
        assert_eq!((alg, h.typ), (Algorithm::RS256, None));
        for bad in [
            &br#"{"alg":"RS256","\u0061lg":"HS256"}"#[..],
            br#"{"alg":"RS256","kid":null}"#,
            br#"{"alg":"RS256","typ":1}"#,
            br#"{"alg":"RS256","\ud800":1}"#,
            br#"["alg","RS256"]"#,
            br#"{"alg":"RS256",}"#,
        ] {
            let err = parse_header(bad).err().map(|e| e.kind());
            assert_eq!(
                err,
                Some(JwtErrorKind::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            parse_header(br#" {"alg":"RS256"} "#).is_ok(),
            "whitespace around is JSON"
        );
        assert!(parse_header(br#"{"alg":"RS256","crit":null,"b64":null}"#).is_ok());
    }

    fn none() -> Wanted {
        Wanted::from([])
    }

    #[test]
    fn claims_are_typed_strictly() {
        let ok = parse_claims(
            br#"{"iss":"i","aud":["a","b\u0063"],"exp":1.5,"x":{"y":1},"sub":"s\"","tid":"t"}"#
                .to_vec(),
            &none(),
        )
        .unwrap();
        assert_eq!(ok.iss(), Some("i"));
        assert_eq!(ok.sub(), Some("s\""));
        assert_eq!(ok.tid(), Some("t"));
        assert_eq!(ok.audiences().collect::<Vec<_>>(), ["a", "bc"]);
        assert_eq!(ok.exp, Some(1.5));
        let one = parse_claims(br#"{"aud":"a","exp":1700000000}"#.to_vec(), &none()).unwrap();
        assert_eq!(one.audiences().collect::<Vec<_>>(), ["a"]);
        assert_eq!(one.exp, Some(1_700_000_000.0));
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
            let err = parse_claims(bad.as_bytes().to_vec(), &none()).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::InvalidClaims, "{bad}");
        }
        for bad in ["[]", "1", "{", r#"{"a":1} x"#, "\"s\""] {
            let err = parse_claims(bad.as_bytes().to_vec(), &none()).unwrap_err();
            assert_eq!(err.kind(), JwtErrorKind::Malformed, "{bad}");
        }
    }

    #[test]
    fn wanted_members_are_captured() {
        let wanted: Wanted = Wanted::from(vec!["scp".into(), "realm_access".into()]);
        let r = parse_claims(
            br#"{"scp":"a b","realm_access":{"roles":["x"]},"other":1}"#.to_vec(),
            &wanted,
        )
        .unwrap();
        assert_eq!(r.captured.len(), 2);
        assert_eq!(&*r.wanted[r.captured[0].0], "scp");
    }

    #[test]
    fn null_audience_is_empty() {
        let r = parse_claims(br#"{"aud":null}"#.to_vec(), &none()).unwrap();
        assert!(r.has_aud());
        assert_eq!(r.audiences().count(), 0);
    }
}

#[cfg(test)]
mod base64_agreement {
    use base64::Engine as _;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD decoder accepts and refuses exactly what the strict scalar decoder of the
        /// `base64` crate does, with the same bytes.
        #[test]
        fn simd_decoding_agrees_with_the_strict_scalar_decoder(
            text in "[A-Za-z0-9_\\-+/= .]{0,200}",
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let encoded = engine.encode(&bytes);
            for input in [text.as_bytes(), encoded.as_bytes()] {
                let scalar = engine.decode(input).ok();
                prop_assert_eq!(super::b64_vec(input), scalar.clone());
                let mut buf = [0u8; 160];
                let into = super::b64_into(input, &mut buf).map(|n| buf[..n].to_vec());
                prop_assert_eq!(into, scalar.clone().filter(|v| v.len() <= 160));
                let mut stack = super::stack_buffer();
                let on_stack = super::b64_stack(input, &mut stack).map(<[u8]>::to_vec);
                prop_assert_eq!(on_stack, scalar.filter(|v| v.len() <= 1024));
            }
        }
    }
}
