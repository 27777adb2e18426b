//! A strict scanner for the payload's top-level JSON object.
//!
//! The request path needs a handful of top-level members of a ~1 KB payload and the certainty
//! that the whole payload is well-formed JSON (RFC 8259). Driving serde_json's deserializer for
//! that costs about twice a bare skim of the payload, most of it per-member machinery; this
//! scanner validates the whole text in one pass without allocating and hands back each
//! top-level member as raw slices. Values the validator keeps are then read by serde_json from
//! their own slice (strings without escapes are used as they are).
//!
//! It accepts exactly the documents serde_json accepts when it skips a value, with two
//! deliberate differences, both stricter: nesting deeper than [`MAX_DEPTH`] is refused (as
//! serde_json refuses it when it builds values), and a top-level key with an escape is decoded
//! by serde_json itself (which refuses lone surrogates). `tests` check the agreement by
//! property.

/// The deepest nesting accepted, the top-level object included (serde_json refuses a 128th
/// level when it builds values).
pub(crate) const MAX_DEPTH: usize = 127;

/// A syntax error (the position is not reported: the answer is "not a JSON object").
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError;

/// One top-level member, as slices of the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// The key between its quotes, escapes not decoded.
    pub(crate) key: &'a str,
    /// Whether the key contains an escape (then decode it before comparing).
    pub(crate) key_escaped: bool,
    /// The value's text, without surrounding whitespace.
    pub(crate) value: &'a str,
}

/// Scans `text`, which must be one JSON object (whitespace around it allowed), calling `each`
/// for every top-level member in document order.
pub(crate) fn members<'a>(
    text: &'a str,
    mut each: impl FnMut(Member<'a>),
) -> Result<(), SyntaxError> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
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
            s.ws();
            s.expect(b':')?;
            s.ws();
            let value_start = s.i;
            // Most members' values are strings: no container bookkeeping for them.
            if s.peek() == Some(b'"') {
                s.i += 1;
                s.string_rest()?;
            } else {
                s.value()?;
            }
            let value = text.get(value_start..s.i).ok_or(SyntaxError)?;
            each(Member {
                key,
                key_escaped,
                value,
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
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next().ok_or(SyntaxError)?.is_ascii_hexdigit() {
                                    return Err(SyntaxError);
                                }
                            }
                        }
                        _ => return Err(SyntaxError),
                    }
                }
                c if c < 0x20 => return Err(SyntaxError),
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), SyntaxError> {
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
        }
        Ok(())
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
                            self.member_key()?;
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
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => depth -= 1,
                    Some(b']') if !object => depth -= 1,
                    _ => return Err(SyntaxError),
                }
            }
        }
    }

    /// Inside an object: `"key" :` and the whitespace before the value.
    fn member_key(&mut self) -> Result<(), SyntaxError> {
        self.expect(b'"')?;
        self.string_rest()?;
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
    use serde::de::IgnoredAny;

    fn scan(text: &str) -> Result<Vec<(String, String)>, SyntaxError> {
        let mut out = Vec::new();
        members(text, |m| out.push((m.key.to_owned(), m.value.to_owned())))?;
        Ok(out)
    }

    /// What serde_json says of a payload when it skips every member's value.
    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok()
            && text
                .trim_start_matches([' ', '\t', '\n', '\r'])
                .starts_with('{')
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
            assert_eq!(scan(bad), Err(SyntaxError), "{bad:?}");
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
        assert_eq!(scan(&nested(MAX_DEPTH + 1)), Err(SyntaxError));
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
                // serde_json's view (the last of duplicate keys wins); documents whose keys it
                // cannot decode (lone surrogates) are not compared.
                let theirs: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
                    match serde_json::from_str(&text) {
                        Ok(map) => map,
                        Err(_) => return Ok(()),
                    };
                for (key, raw) in theirs {
                    let found = members.iter().rev().find(|(k, _)| {
                        serde_json::from_str::<String>(&format!("\"{k}\"")).ok().as_deref()
                            == Some(key.as_str())
                    });
                    prop_assert_eq!(found.map(|(_, v)| v.as_str()), Some(raw.get()));
                }
            }
        }
    }
}
