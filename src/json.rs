//! A strict scanner for the payload's top-level JSON object.
//!
//! The request path needs a handful of top-level members of a ~1 KB payload and the certainty
//! that the whole payload is well-formed JSON (RFC 8259). Driving serde_json's deserializer for
//! that costs about twice a bare skim of the payload, most of it per-member machinery; this
//! scanner validates the whole text in one pass without allocating and hands back each
//! top-level member as raw slices. Values the validator keeps are then read by serde_json from
//! their own slice (strings without escapes are used as they are).
//!
//! It accepts exactly the I-JSON (RFC 7493) objects: the documents serde_json accepts when it
//! builds a `serde_json::Value` (nesting up to [`MAX_DEPTH`], no lone surrogate in any string,
//! no number beyond an `f64`'s range), less those that repeat a member name in any object
//! (RFC 7493 §2.3; RFC 7519 §4 for the claims). So every later reader of an accepted payload —
//! the requirements, `Claims::get`, `Claims::deserialize` — sees the same members the
//! validator saw. `tests` check the agreement by property.
//!
//! (Long because a scanner is one loop best read whole; the last third is its tests, including
//! the property test against the oracle.)

/// The deepest nesting accepted, the top-level object included (serde_json refuses a 128th
/// level when it builds values).
pub(crate) const MAX_DEPTH: usize = 127;

/// A syntax error (the position is not reported: the answer is "not a JSON object").
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError;

/// Why a document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// Not an I-JSON object.
    Syntax,
    /// An object repeats a member name.
    DuplicateName,
    /// A number beyond an `f64`'s range.
    OutOfRange,
}

/// One top-level member, as slices of the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// The key between its quotes, escapes not decoded.
    pub(crate) key: &'a str,
    /// Whether the key contains an escape (then decode it before comparing).
    pub(crate) key_escaped: bool,
    /// The value's text, without surrounding whitespace.
    pub(crate) value: &'a str,
    /// The value is a string without escapes.
    pub(crate) value_plain: bool,
}

impl<'a> Member<'a> {
    /// The value's content when it is a string without escapes (no decoding needed).
    #[inline]
    pub(crate) fn plain(&self) -> Option<&'a str> {
        match self.value_plain {
            true => self.value.get(1..self.value.len().saturating_sub(1)),
            false => None,
        }
    }
}

/// One member name seen in an object, for the duplicate check: its span in the text, whether
/// it has escapes, and the depth of its object.
#[derive(Clone, Copy)]
struct Name {
    start: u32,
    end: u32,
    escaped: bool,
    depth: u32,
}

/// The top-level names kept on the stack; a payload with more members spills to the heap.
const STACK_NAMES: usize = 128;

/// The fingerprint of a name: one of 256 values, equal for equal names, from its length and
/// its first, second and last bytes (a few instructions). Names are compared in full only with
/// the earlier names that share it. It is cheap rather than collision-resistant on purpose: only
/// payloads are checked for repeated names, and a payload is scanned only after its signature
/// verified, so its names come from the issuer, not from an attacker choosing collisions.
#[inline]
fn fingerprint(name: &[u8]) -> u8 {
    let byte = |i: usize| u32::from(name.get(i).copied().unwrap_or(0));
    let last = u32::from(name.last().copied().unwrap_or(0));
    let h =
        (name.len() as u32 ^ byte(0) << 8 ^ byte(1) << 16 ^ last << 24).wrapping_mul(0x9e37_79b1);
    (h >> 24) as u8
}

/// A top-level name packed in eight bytes (plain integers, so the stack array of them is
/// zeroed with a `memset`): its start, its end, and the escape flag in the top bit.
fn pack(name: Name) -> u64 {
    u64::from(name.start) | u64::from(name.end) << 32 | u64::from(name.escaped) << 63
}

fn unpack(packed: u64) -> Name {
    Name {
        start: packed as u32,
        end: (packed >> 32) as u32 & !(1 << 31),
        escaped: packed >> 63 == 1,
        depth: 0,
    }
}

/// Whether two member names are the same name (escapes decoded when either has one).
fn same_name(text: &[u8], a: Name, b: Name) -> bool {
    let span = |n: Name| text.get(n.start as usize..n.end as usize).unwrap_or(&[]);
    let (x, y) = (span(a), span(b));
    if !a.escaped && !b.escaped {
        return x == y;
    }
    let decode = |raw: &[u8]| -> Option<String> {
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        serde_json::from_slice(&quoted).ok()
    };
    // Undecodable names were refused by the scan before they get here.
    decode(x).is_some_and(|x| Some(x) == decode(y))
}

/// Scans `text`, which must be one I-JSON object (whitespace around it allowed), calling
/// `each` for every top-level member in document order. With `unique`, an object repeating a
/// name is refused ([`ScanError::DuplicateName`]); without, repeated names are left to the
/// caller (the header's reader refuses repeats of the members it reads).
pub(crate) fn members<'a>(
    text: &'a str,
    unique: bool,
    mut each: impl FnMut(Member<'a>),
) -> Result<(), ScanError> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
        nested: Vec::new(),
        reason: ScanError::Syntax,
        unique,
    };
    // One body for both (not a const generic): the request path runs it for the header and the
    // payload, and one copy of the code stays in the instruction cache better than two.
    scan_members(&mut s, text, &mut each).map_err(|SyntaxError| s.reason)
}

fn scan_members<'a>(
    s: &mut Scanner<'_>,
    text: &'a str,
    each: &mut dyn FnMut(Member<'a>),
) -> Result<(), SyntaxError> {
    // The top-level names: a fingerprint mask, and the names themselves (on the stack for the
    // usual payload).
    let mut mask = [0u64; 4];
    let mut all = false;
    let unique = s.unique;
    let mut on_stack = [0u64; STACK_NAMES];
    let mut prints = [0u8; STACK_NAMES];
    let mut spilled: Vec<(u64, u8)> = Vec::new();
    let mut count = 0usize;
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.expect(b'"')?;
            let key_start = s.i;
            let key_escaped = s.string_rest()?;
            let key = text.get(key_start..s.i - 1).ok_or(SyntaxError)?;
            let (start, end) = (key_start, s.i - 1);
            if end >= 1 << 31 {
                return Err(SyntaxError);
            }
            let name = Name {
                start: start as u32,
                end: end as u32,
                escaped: key_escaped,
                depth: 0,
            };
            // An escaped name may equal any other: it is compared with all of them, and every
            // later name with it (`all`: an escaped name was seen).
            if unique {
                let print = fingerprint(key.as_bytes());
                let (word, bit) = (usize::from(print / 64), 1u64 << (print % 64));
                if key_escaped || all || mask[word] & bit != 0 {
                    let kept = count.min(STACK_NAMES);
                    let seen = on_stack[..kept]
                        .iter()
                        .copied()
                        .zip(prints[..kept].iter().copied())
                        .chain(spilled.iter().copied());
                    let mut candidates =
                        seen.filter(|(p, f)| key_escaped || p >> 63 == 1 || *f == print);
                    if candidates.any(|(p, _)| same_name(s.b, unpack(p), name)) {
                        s.reason = ScanError::DuplicateName;
                        return Err(SyntaxError);
                    }
                }
                mask[word] |= bit;
                all |= key_escaped;
                if count < STACK_NAMES {
                    on_stack[count] = pack(name);
                    prints[count] = print;
                } else {
                    spilled.push((pack(name), print));
                }
            }
            count += 1;
            s.ws();
            s.expect(b':')?;
            s.ws();
            let value_start = s.i;
            // Most members' values are strings: no container bookkeeping for them.
            let value_plain = if s.peek() == Some(b'"') {
                s.i += 1;
                !s.string_rest()?
            } else {
                s.value()?;
                false
            };
            let value = text.get(value_start..s.i).ok_or(SyntaxError)?;
            each(Member {
                key,
                key_escaped,
                value,
                value_plain,
            });
            s.ws();
            match s.next() {
                Some(b',') => s.ws(),
                Some(b'}') => break,
                _ => return Err(SyntaxError),
            }
        }
    }
    s.ws();
    if s.i == s.b.len() {
        Ok(())
    } else {
        Err(SyntaxError)
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// The member names of the open nested objects (allocated only when a payload has them).
    nested: Vec<Name>,
    /// What a [`SyntaxError`] means, when it is not plain syntax.
    reason: ScanError,
    /// Whether repeated names are refused.
    unique: bool,
}

/// Bytes with their high bit set where the byte in `v` is zero. A borrow can flag a byte above
/// a zero byte too, but the lowest flag is always exact, and it is all the string scan uses.
#[inline]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080
}

impl Scanner<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Result<(), SyntaxError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    #[inline]
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// After an opening quote: to just past the closing quote. Returns whether it saw an escape.
    #[inline(always)]
    fn string_rest(&mut self) -> Result<bool, SyntaxError> {
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none is a quote, a backslash or a control character
            // (the text is valid UTF-8 already, so other bytes need no look).
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let v = u64::from_le_bytes(word);
                let quote = zero_bytes(v ^ 0x2222_2222_2222_2222);
                let backslash = zero_bytes(v ^ 0x5c5c_5c5c_5c5c_5c5c);
                // Bytes below 0x20: subtracting 0x20 borrows into the high bit, for bytes that
                // had it clear.
                let control = v.wrapping_sub(0x2020_2020_2020_2020) & !v & 0x8080_8080_8080_8080;
                let special = quote | backslash | control;
                if special != 0 {
                    // Straight to the first special byte (the lowest flag is exact).
                    self.i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                self.i += 8;
            }
            match self.next().ok_or(SyntaxError)? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next().ok_or(SyntaxError)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => match self.hex4()? {
                            // A high surrogate must be followed by an escaped low one; a lone
                            // surrogate is not a character (RFC 7493 §2.1).
                            0xD800..=0xDBFF => {
                                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                                    return Err(SyntaxError);
                                }
                                if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                    return Err(SyntaxError);
                                }
                            }
                            0xDC00..=0xDFFF => return Err(SyntaxError),
                            _ => {}
                        },
                        _ => return Err(SyntaxError),
                    }
                }
                c if c < 0x20 => return Err(SyntaxError),
                _ => {}
            }
        }
    }

    /// Four hex digits, as a code unit.
    fn hex4(&mut self) -> Result<u16, SyntaxError> {
        let mut unit = 0u16;
        for _ in 0..4 {
            let c = self.next().ok_or(SyntaxError)?;
            let digit = (c as char).to_digit(16).ok_or(SyntaxError)?;
            unit = unit << 4 | digit as u16;
        }
        Ok(unit)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, within an `f64`'s range
    /// (RFC 7493 §2.2).
    fn number(&mut self) -> Result<(), SyntaxError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(SyntaxError),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
            return self.in_range(start);
        }
        // Without an exponent, fewer than 300 digits are always in range.
        if self.i - start >= 300 {
            return self.in_range(start);
        }
        Ok(())
    }

    /// Whether the number from `start` to here is a finite `f64`.
    #[cold]
    fn in_range(&mut self, start: usize) -> Result<(), SyntaxError> {
        let text = self.b.get(start..self.i).ok_or(SyntaxError)?;
        let text = std::str::from_utf8(text).map_err(|_| SyntaxError)?;
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(()),
            _ => {
                self.reason = ScanError::OutOfRange;
                Err(SyntaxError)
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), SyntaxError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    /// One value of any kind, nested ones included, without recursion: the kinds of the open
    /// containers are kept as a bit stack (1 = object), at most [`MAX_DEPTH`] − 1 deep (the
    /// top-level object is the first level).
    fn value(&mut self) -> Result<(), SyntaxError> {
        let mut open = [0u64; 2];
        let mut depth = 0usize;
        loop {
            // A value.
            match self.peek().ok_or(SyntaxError)? {
                b'"' => {
                    self.i += 1;
                    self.string_rest()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                c @ (b'[' | b'{') => {
                    self.i += 1;
                    if depth + 1 >= MAX_DEPTH {
                        return Err(SyntaxError);
                    }
                    let object = c == b'{';
                    let (word, bit) = (depth / 64, depth % 64);
                    if object {
                        open[word] |= 1 << bit;
                    } else {
                        open[word] &= !(1 << bit);
                    }
                    depth += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.member_key(depth)?;
                        }
                        continue;
                    }
                }
                _ => return Err(SyntaxError),
            }
            // After a value: close containers, or go on to the next element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = open[(depth - 1) / 64] & (1 << ((depth - 1) % 64)) != 0;
                self.ws();
                match self.next() {
                    Some(b',') => {
                        self.ws();
                        if object {
                            self.member_key(depth)?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        // The object's names are done with.
                        while self
                            .nested
                            .last()
                            .is_some_and(|n| n.depth as usize == depth)
                        {
                            self.nested.pop();
                        }
                        depth -= 1;
                    }
                    Some(b']') if !object => depth -= 1,
                    _ => return Err(SyntaxError),
                }
            }
        }
    }

    /// Inside an object at `depth`: `"key" :` and the whitespace before the value; a name the
    /// object already has is refused.
    fn member_key(&mut self, depth: usize) -> Result<(), SyntaxError> {
        self.expect(b'"')?;
        let start = self.i;
        let escaped = self.string_rest()?;
        if !self.unique {
            self.ws();
            self.expect(b':')?;
            self.ws();
            return Ok(());
        }
        let name = Name {
            start: u32::try_from(start).map_err(|_| SyntaxError)?,
            end: u32::try_from(self.i - 1).map_err(|_| SyntaxError)?,
            escaped,
            depth: depth as u32,
        };
        let siblings = self
            .nested
            .iter()
            .rev()
            .take_while(|n| n.depth as usize == depth);
        if siblings.copied().any(|n| same_name(self.b, n, name)) {
            self.reason = ScanError::DuplicateName;
            return Err(SyntaxError);
        }
        self.nested.push(name);
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::json_oracle::Unique;

    fn scan(text: &str) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        members(text, true, |m| {
            out.push((m.key.to_owned(), m.value.to_owned()))
        })?;
        Ok(out)
    }

    /// Whether `text` is an I-JSON object, by serde_json and the oracle.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<Unique>(text).is_ok()
            && text
                .trim_start_matches([' ', '\t', '\n', '\r'])
                .starts_with('{')
    }

    #[test]
    fn lone_surrogates_are_refused_anywhere() {
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":["\ud800"]}"#,
            r#"{"a":{"b":"x\uDBFF"}}"#,
            r#"{"\ud800":1}"#,
        ] {
            assert_eq!(scan(bad), Err(ScanError::Syntax), "{bad}");
            assert!(!serde_accepts(bad), "{bad}");
        }
        let pair = r#"{"a":"\ud83d\ude00","b":"\uD83D\uDE00"}"#;
        assert!(scan(pair).is_ok());
        assert!(serde_accepts(pair));
    }

    #[test]
    fn numbers_beyond_f64_are_refused() {
        let long = format!("{{\"a\":1{}}}", "0".repeat(400));
        for bad in [
            r#"{"a":1e400}"#,
            r#"{"a":-1E+309}"#,
            r#"{"a":[1.5e999]}"#,
            &long,
        ] {
            assert_eq!(scan(bad), Err(ScanError::OutOfRange), "{bad}");
            assert!(!serde_accepts(bad), "{bad}");
        }
        for good in [
            r#"{"a":1e308}"#,
            r#"{"a":1e-400}"#,
            r#"{"a":123456789012345678901234567890}"#,
        ] {
            assert!(scan(good).is_ok(), "{good}");
            assert!(serde_accepts(good), "{good}");
        }
    }

    #[test]
    fn repeated_names_are_refused_in_every_object() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"b":2,"a":3}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"a":1,"a":2}}"#,
            r#"{"x":[{"a":1},{"b":1,"b":2}]}"#,
            r#"{"x":{"y":{"a":1},"y":2}}"#,
        ] {
            assert_eq!(scan(bad), Err(ScanError::DuplicateName), "{bad}");
            assert!(!serde_accepts(bad), "{bad}");
        }
        for good in [
            r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#,
            r#"{"x":{"a":1,"b":{"a":2}},"a":3}"#,
        ] {
            assert!(scan(good).is_ok(), "{good}");
            assert!(serde_accepts(good), "{good}");
        }
        // More names than fit on the stack.
        let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(scan(&format!("{{{}}}", many.join(","))).is_ok());
        let repeated = format!("{{{},\"k7\":0}}", many.join(","));
        assert_eq!(scan(&repeated), Err(ScanError::DuplicateName));
    }

    #[test]
    fn members_come_back_as_slices() {
        let m = scan(r#" { "a" : 1 , "b\"c":[1,{"x":null}], "d":"e\u00e9" } "#).unwrap();
        assert_eq!(
            m,
            [
                ("a".into(), "1".into()),
                ("b\\\"c".into(), r#"[1,{"x":null}]"#.into()),
                ("d".into(), r#""e\u00e9""#.into()),
            ]
        );
        assert_eq!(scan("{}").unwrap(), []);
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "[]",
            "1",
            "{",
            "}",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":1} x"#,
            r#"{"a":1}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{a:1}"#,
            r#"{"a":'b'}"#,
            r#"{"a":NaN}"#,
            r#"{"a":"unterminated}"#,
            "{\"a\":1}\u{0}",
        ] {
            assert_eq!(scan(bad), Err(ScanError::Syntax), "{bad:?}");
            assert!(!serde_accepts(bad), "serde_json accepts {bad:?}");
        }
    }

    #[test]
    fn nesting_is_bounded_like_serde_json() {
        let nested = |depth: usize| {
            // `depth` levels in all, the top-level object included.
            format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        assert!(scan(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(scan(&nested(MAX_DEPTH + 1)), Err(ScanError::Syntax));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_DEPTH + 1)).is_err());
        // Objects and arrays alternating, past 64 levels (the bit stack's second word).
        let mixed = format!("{{\"a\":{}1{}}}", "[{\"k\":".repeat(50), "}]".repeat(50));
        assert!(scan(&mixed).is_ok());
        assert!(serde_accepts(&mixed));
    }

    /// JSON-ish text: real JSON, then small mutations of it.
    fn jsonish() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| serde_json::json!(f)),
            "\\PC{0,12}".prop_map(serde_json::Value::String),
        ];
        let value = leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        let object = proptest::collection::btree_map("\\PC{0,6}", value, 0..6)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string());
        let edits = proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3u8,
                prop::sample::select(
                    &[
                        " ", "\"", "\\", ",", ":", "{", "}", "[", "]", "0", "-", ".", "e", "u",
                        "\n", "\u{1}", "\\u", "tru", "1", "é",
                    ][..],
                ),
            ),
            0..3,
        );
        (object, edits).prop_map(|(mut text, edits)| {
            for (at, op, piece) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                match op {
                    0 => text.insert_str(i, piece),
                    1 => {
                        let end = (i + 1..=text.len()).find(|j| text.is_char_boundary(*j));
                        if let Some(end) = end {
                            text.replace_range(i..end, "");
                        }
                    }
                    _ => {
                        let end = (i + 1..=text.len()).find(|j| text.is_char_boundary(*j));
                        if let Some(end) = end {
                            text.replace_range(i..end, piece);
                        }
                    }
                }
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The scanner accepts exactly what serde_json accepts, and finds the same members.
        #[test]
        fn agrees_with_serde_json(text in jsonish()) {
            let ours = scan(&text);
            prop_assert_eq!(ours.is_ok(), serde_accepts(&text), "{:?}", text);
            if let Ok(members) = ours {
                // serde_json's view: the same members (names are unique).
                let theirs: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
                    serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(theirs.len(), members.len());
                for (key, raw) in theirs {
                    let found = members.iter().find(|(k, _)| {
                        serde_json::from_str::<String>(&format!("\"{k}\"")).ok().as_deref()
                            == Some(key.as_str())
                    });
                    prop_assert_eq!(found.map(|(_, v)| v.as_str()), Some(raw.get()));
                }
            }
        }
    }
}
