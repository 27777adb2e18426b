//! The payload parser (`Claims::from_unverified_json`: one strict pass over the JSON, the same
//! code the layer runs on every verified payload) against serde_json. It must accept no
//! document serde_json refuses, call no well-formed object malformed (within serde_json's
//! nesting limit), and read the same registered claims serde_json reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use validate_jwt::{Claims, JwtErrorKind};

fuzz_target!(|data: &[u8]| {
    let ours = Claims::from_unverified_json(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(ours.is_err(), "accepted a payload that is not UTF-8");
        return;
    };
    let object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let well_formed = object && serde_json::from_str::<IgnoredAny>(text).is_ok();
    match ours {
        Ok(claims) => {
            assert!(well_formed, "accepted what serde_json refuses: {text:?}");
            assert_eq!(claims.raw(), data);
            // serde_json builds the same object (our parser refused duplicates of these).
            if let Ok(map) = serde_json::from_str::<Map<String, Value>>(text) {
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
            }
        }
        Err(e) if e.kind() == JwtErrorKind::Malformed && well_formed => {
            // Only what serde_json also refuses when it builds values: nesting past its limit,
            // a key that is no string (a lone surrogate escape).
            assert!(
                serde_json::from_str::<Value>(text).is_err(),
                "called a well-formed object malformed: {text:?}"
            );
        }
        Err(_) => {}
    }
});
