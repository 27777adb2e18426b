//! JWKS parsing: `KeySet::from_jwks` must never panic, whatever the document, and never hold
//! more keys than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use validate_jwt::KeySet;
use validate_jwt::DEFAULT_MAX_KEYS;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = KeySet::from_jwks(data) {
        assert!(!set.is_empty(), "an empty key set was accepted");
        assert!(set.len() <= DEFAULT_MAX_KEYS, "the key limit was exceeded");
        // Walk the parsed keys (kids, algorithms) as the request path would.
        for key in set.keys() {
            let _ = (key.kid(), key.algorithm(), key.is_symmetric());
        }
        for kid in set.kids() {
            assert!(set.contains_kid(kid));
        }
    }
});
