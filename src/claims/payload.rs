//! The payload's claims, read in one strict pass: the registered claims into [`Registered`]
//! (string claims as spans of the payload), the members requirements read captured as values,
//! and the whole payload checked to be an I-JSON object.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::error::{JwtError, JwtErrorKind};
use crate::json::Member;
use crate::token::{malformed, member_name, plain_string};

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
    /// The `cnf` member's JSON text (RFC 7800), for the binding rule.
    cnf: Option<Text>,
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

    /// The `cnf` member's JSON text, if the token has one.
    pub(crate) fn cnf(&self) -> Option<&str> {
        self.cnf.as_ref().map(|t| t.get(&self.payload))
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

#[cold]
#[inline(never)]
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
    numeric_date_general(raw, what)
}

/// Any other number (a fraction, an exponent, more digits), or a refusal: out of line, so that
/// the request path's code stays small in the instruction cache.
#[cold]
#[inline(never)]
fn numeric_date_general(raw: &str, what: &'static str) -> Result<f64, JwtError> {
    let n: f64 = serde_json::from_str(raw).map_err(|_| invalid_claim(what))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(invalid_claim(what))
    }
}

/// A string member: a span of `base` (the payload) when it has no escapes.
fn string_claim(
    base: &str,
    plain: Option<&str>,
    raw: &str,
    what: &'static str,
) -> Result<Text, JwtError> {
    match plain {
        Some(s) => Ok(raw_text(base, s)),
        None => decoded_string(raw, what),
    }
}

/// A string member with escapes, decoded (out of line: rare in tokens).
#[cold]
#[inline(never)]
fn decoded_string(raw: &str, what: &'static str) -> Result<Text, JwtError> {
    let s: Cow<'_, str> = serde_json::from_str(raw).map_err(|_| invalid_claim(what))?;
    Ok(Text::Owned(s.into()))
}

/// `raw` (borrowed from `base`) as a span of `base`, its offset found by address (checked,
/// never assumed), or a copy if it is not one.
#[inline]
fn raw_text(base: &str, raw: &str) -> Text {
    let start = (raw.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    let end = start.wrapping_add(raw.len());
    match (u32::try_from(start), u32::try_from(end)) {
        (Ok(a), Ok(b))
            if base
                .get(start..end)
                .is_some_and(|t| std::ptr::eq(t.as_ptr(), raw.as_ptr())) =>
        {
            Text::Span(a, b)
        }
        _ => Text::Owned(raw.into()),
    }
}

/// A captured member as a JSON value.
fn json_value(member: &Member<'_>) -> Result<serde_json::Value, JwtError> {
    match member.plain() {
        Some(s) => Ok(serde_json::Value::String(s.to_owned())),
        None => any_value(member.value),
    }
}

/// Any other captured value, parsed by serde_json (out of line).
#[inline(never)]
fn any_value(raw: &str) -> Result<serde_json::Value, JwtError> {
    serde_json::from_str(raw).map_err(|_| malformed("the payload is not valid JSON"))
}

/// The registered claims' bits in the record of members seen.
fn registered_bit(name: &str) -> Option<u8> {
    // Every registered name read has three letters: most members are ruled out by length, the
    // rest by one comparison of their three bytes.
    let &[a, b, c] = name.as_bytes() else {
        return None;
    };
    Some(match u32::from_le_bytes([a, b, c, 0]) {
        n if n == u32::from_le_bytes(*b"iss\0") => 1,
        n if n == u32::from_le_bytes(*b"sub\0") => 2,
        n if n == u32::from_le_bytes(*b"aud\0") => 4,
        n if n == u32::from_le_bytes(*b"exp\0") => 8,
        n if n == u32::from_le_bytes(*b"nbf\0") => 16,
        n if n == u32::from_le_bytes(*b"iat\0") => 32,
        n if n == u32::from_le_bytes(*b"tid\0") => 64,
        n if n == u32::from_le_bytes(*b"cnf\0") => 128,
        _ => return None,
    })
}

impl Registered {
    /// Stores one registered claim from its raw JSON.
    fn set(&mut self, base: &str, bit: u8, member: &Member<'_>) -> Result<(), JwtError> {
        let raw = member.value;
        match bit {
            1 => {
                self.iss = Some(string_claim(
                    base,
                    member.plain(),
                    raw,
                    "`iss` is not a string",
                )?)
            }
            2 => {
                self.sub = Some(string_claim(
                    base,
                    member.plain(),
                    raw,
                    "`sub` is not a string",
                )?)
            }
            4 => self.aud = Some(parse_audiences(base, member)?),
            8 => self.exp = Some(numeric_date(raw, "`exp` is not a NumericDate")?),
            16 => self.nbf = Some(numeric_date(raw, "`nbf` is not a NumericDate")?),
            32 => self.iat = Some(numeric_date(raw, "`iat` is not a NumericDate")?),
            64 => {
                self.tid = Some(string_claim(
                    base,
                    member.plain(),
                    raw,
                    "`tid` is not a string",
                )?)
            }
            // Its text, judged by the binding rule (`crate::sender::BindingRule`).
            128 => self.cnf = Some(raw_text(base, raw)),
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
            // The first byte rules out most names of the same length without a `memcmp`.
            let first = key.as_bytes().first();
            wanted
                .iter()
                .position(|w| w.as_bytes().first() == first && **w == *key)
        } else {
            None
        };
        let mut result = Ok(());
        if let Some(bit) = bit {
            result = r.set(&text, bit, &member);
        }
        if let Some(i) = wanted_at {
            result = result.and_then(|()| {
                r.captured.push((i, json_value(&member)?));
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

#[inline(never)]
fn parse_audiences(base: &str, member: &Member<'_>) -> Result<Audiences, JwtError> {
    const BAD: &str = "`aud` is not a string or an array of strings";
    let raw = member.value;
    match raw.as_bytes().first() {
        Some(b'"') => Ok(Audiences::One(string_claim(
            base,
            member.plain(),
            raw,
            BAD,
        )?)),
        Some(b'[') => {
            let many: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| invalid_claim(BAD))?;
            let many = many
                .into_iter()
                .map(|item| match item.get().as_bytes().first() {
                    Some(b'"') => string_claim(base, plain_string(item.get()), item.get(), BAD),
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
