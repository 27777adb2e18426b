//! Compact JWS parsing: segments, canonical base64url and the header. (The payload's claims
//! are read in `claims/payload.rs`, beside [`Claims`].)
//!
//! Everything here works on borrowed bytes; the header (up to 1 KiB, the usual case) and the
//! signature are decoded into stack buffers. Only the payload is decoded onto the heap, because it becomes the [`Claims`]
//! handed to the service.
//!
//! [`Claims`]: crate::Claims

use std::borrow::Cow;
use std::mem::MaybeUninit;

use crate::algorithm::Algorithm;
use crate::error::{JwtError, JwtErrorKind};

/// The largest encoded header decoded on the stack (1 KiB decoded); larger ones go to the heap.
pub(crate) const MAX_HEADER_B64: usize = 1368;
/// The largest encoded signature accepted (RSA-8192: 1024 bytes).
pub(crate) const MAX_SIGNATURE_B64: usize = 1366;

#[cold]
#[inline(never)]
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

/// Splits a token at its first and last dot; [`extra_segments`] says, on a refusal, whether it
/// had more than three segments (five are a JWE).
pub(crate) fn split(token: &[u8]) -> Result<Segments<'_>, JwtError> {
    // The first dot from the front (the header is short), the last from the back (so is the
    // signature). Dots between them are not looked for here: base64url has none, so a payload
    // holding one never decodes, and every refusal first asks `extra_segments` why.
    let three = || malformed("a signed token has exactly three segments");
    let d1 = first_dot(token).ok_or_else(three)?;
    let d2 = last_dot(token).ok_or_else(three)?;
    if d1 == d2 {
        return Err(three());
    }
    let header = &token[..d1];
    let payload = &token[d1 + 1..d2];
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

/// The high bit of every byte of `word` that is a dot, and no other (no carry crosses bytes).
#[inline]
fn dots(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let v = word ^ 0x2e2e_2e2e_2e2e_2e2e;
    !((v & LOW7).wrapping_add(LOW7) | v) & !LOW7
}

#[inline]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes.get(i..i + 8)?);
    Some(u64::from_le_bytes(word))
}

/// The index of the first `.`, eight bytes at a time.
fn first_dot(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(word) = word_at(bytes, i) {
        let found = dots(word);
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..].iter().position(|b| *b == b'.').map(|at| i + at)
}

/// The index of the last `.`, eight bytes at a time from the end.
fn last_dot(bytes: &[u8]) -> Option<usize> {
    let mut end = bytes.len();
    while end >= 8 {
        let word = word_at(bytes, end - 8)?;
        let found = dots(word);
        if found != 0 {
            return Some(end - 8 + (7 - found.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    bytes[..end].iter().rposition(|b| *b == b'.')
}

/// The refusal for a token with more than three segments (an encrypted token has five), if it
/// has more: asked on every refusal of a split token, so that it is the answer whatever else
/// the extra segments made fail.
#[cold]
pub(crate) fn extra_segments(segments: &Segments<'_>) -> Option<JwtError> {
    let dots = segments.payload.iter().filter(|b| **b == b'.').count();
    match dots {
        0 => None,
        2 => Some(JwtError::with_detail(
            JwtErrorKind::Encrypted,
            "five segments (JWE)",
        )),
        _ => Some(malformed("a signed token has exactly three segments")),
    }
}

/// The request path's base64url: SIMD (AVX2 / SSSE3 / NEON, chosen at run time), unpadded,
/// and strict: a character outside the URL-safe alphabet, padding, or set trailing bits (a
/// non-canonical encoding) is an error.
const B64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Decodes canonical unpadded base64url into `out`, returning the decoded length (the tests'
/// reference for the other two).
#[cfg(test)]
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
    decoded_len(input.len())?;
    // Into a buffer of the decoded length, not zeroed first.
    B64.decode_to_vec(input).ok()
}

/// The text of a JSON string without escapes, straight from a value's raw text (which the
/// scanner has checked is exactly one valid JSON value, so a quote at each end and no backslash
/// means one string whose content needs no decoding); `None` for anything else.
pub(crate) fn plain_string(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')?
        .strip_suffix('"')
        .filter(|s| !s.contains('\\'))
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
fn json_string<'a>(member: &crate::json::Member<'a>) -> Option<Cow<'a, str>> {
    if let Some(s) = member.plain() {
        return Some(Cow::Borrowed(s));
    }
    let raw = member.value;
    if !raw.starts_with('"') {
        return None;
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// A member's name: borrowed when it has no escapes, else decoded by serde_json (which refuses
/// lone surrogates); `None` when it cannot be decoded.
#[inline]
pub(crate) fn member_name<'a>(member: &crate::json::Member<'a>) -> Option<Cow<'a, str>> {
    match member.key_escaped {
        false => Some(Cow::Borrowed(member.key)),
        true => decoded_name(member.key),
    }
}

/// A member name with escapes, decoded (out of line: rare).
#[cold]
#[inline(never)]
fn decoded_name(key: &str) -> Option<Cow<'_, str>> {
    serde_json::from_str::<String>(&format!("\"{key}\""))
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
        let string = || json_string(&member);
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
        let segments = split(b"a.b.c.d.e").unwrap();
        assert_eq!(
            extra_segments(&segments).unwrap().kind(),
            JwtErrorKind::Encrypted
        );
        assert!(extra_segments(&split(b"a.b.c").unwrap()).is_none());
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
            let refusal = match split(t) {
                Err(e) => e,
                Ok(segments) => extra_segments(&segments).unwrap(),
            };
            assert_eq!(refusal.kind(), JwtErrorKind::Malformed, "{t:?}");
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

        /// The word-at-a-time dot search finds what a byte-at-a-time one does, whatever the
        /// bytes around the dots (`/` and `-` differ from `.` in one bit).
        #[test]
        fn dots_are_found_where_they_are(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'/'), Just(b'-'), Just(0xae), any::<u8>()], 0..80),
        ) {
            prop_assert_eq!(super::first_dot(&bytes), bytes.iter().position(|b| *b == b'.'));
            prop_assert_eq!(super::last_dot(&bytes), bytes.iter().rposition(|b| *b == b'.'));
        }
    }
}
