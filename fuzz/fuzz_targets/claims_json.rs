//! The payload parser (`Claims::from_unverified_json`: one strict pass over the JSON, the same
//! code the layer runs on every verified payload) against serde_json. It must accept exactly
//! the I-JSON objects (RFC 7493): what serde_json accepts when it builds every value (no lone
//! surrogate, no out-of-range number, its nesting limit), less objects that repeat a name;
//! never call such an object malformed; and read the same registered claims serde_json reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use validate_jwt::Claims;

#[path = "../../src/json_oracle.rs"]
mod oracle;
use oracle::Unique;

fuzz_target!(|data: &[u8]| {
    let ours = Claims::from_unverified_json(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(ours.is_err(), "accepted a payload that is not UTF-8");
        return;
    };
    let object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let i_json = object && serde_json::from_str::<Unique>(text).is_ok();
    match ours {
        Ok(claims) => {
            assert!(i_json, "accepted what is not an I-JSON object: {text:?}");
            assert_eq!(claims.raw().as_bytes(), data);
            // serde_json builds the same object, and so does the claims' own map.
            let map = serde_json::from_str::<Map<String, Value>>(text)
                .expect("an accepted payload is a serde_json object");
            let string = |name: &str| map.get(name).and_then(Value::as_str);
            assert_eq!(claims.issuer(), string("iss"));
            assert_eq!(claims.subject(), string("sub"));
            assert_eq!(claims.tenant_id(), string("tid"));
            assert_eq!(claims.expires_at(), map.get("exp").and_then(Value::as_f64));
            assert_eq!(claims.not_before(), map.get("nbf").and_then(Value::as_f64));
            let theirs: Vec<&str> = match map.get("aud") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            assert_eq!(claims.audiences().collect::<Vec<_>>(), theirs);
            for (name, value) in &map {
                assert_eq!(claims.get(name), Some(value), "{name}");
            }
        }
        Err(e) => {
            // An I-JSON object is only ever refused for its claims' types, never as malformed
            // or for a repeated name.
            assert!(
                !i_json || e.kind() == validate_jwt::JwtErrorKind::InvalidClaims,
                "refused an I-JSON object as {:?}: {text:?}",
                e.kind()
            );
            if i_json {
                assert_ne!(e.detail(), Some("the payload repeats a member"), "{text:?}");
            }
        }
    }
});
