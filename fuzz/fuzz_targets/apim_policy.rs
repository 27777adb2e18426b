//! The APIM policy import: `Policy::parse` must never panic or hang, whatever the document
//! (malformed XML, raw C# expressions, deep nesting, named values), must answer the same twice,
//! and every error and note must point inside the document. Memory is bounded by the input
//! (at most `MAX_POLICY_BYTES`), the nesting limit and the element limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use validate_jwt::apim::{MAX_POLICY_BYTES, Policy, Resources};

/// An RSA-2048 public key, for `certificate-id="cert"`.
const PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5wcEYpfE+alR9X6QGBJs
09IeDbAfdHxsLu62H1pTJY2teRKtXJ6n/tkHIMQim5pshte8/gq/Ehbpq/EM/irX
xc2jPeP+mj4VsO8r34poQ0Ij4pGYXwZBLMyjCUAbLzikGdvA9U85o1m6m7gefPbT
BiaZ29vWykIWv3+tn3WTGqmXe67jIqvzBnrpni9LHVSlGfpzxUad1qR8TPbrjC+2
iD4l0305lDAsKbN/deT2gosXStQkWlsopOw7qMG9Bg/XzCUTqESVMZ0yCDydv7eR
d3ZFJsSXzuRdp3s6//0qotlqcZAP0U5bGzOIX2EUX9qCmqVHIKcWvetL9nR8WMyN
fwIDAQAB
-----END PUBLIC KEY-----
";

fn lines(text: &str) -> u32 {
    u32::try_from(text.matches('\n').count() + 1).unwrap_or(u32::MAX)
}

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let resources = Resources::new()
        .add_named_value("tenant-id", "72f988bf-86f1-41af-91ab-2d7cd011db47")
        .add_named_value("backend-app-id", "6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .add_named_value("jwt-signing-key", "YSBzaGFyZWQgc2VjcmV0IG9mIGF0IGxlYXN0IDMyIGJ5dGVzIQ==")
        .add_named_value("expression", "@(context.Request.OriginalUrl.Host)")
        .add_named_value("nested", "{{tenant-id}}")
        .add_certificate("cert", PEM);
    let first = Policy::parse(xml, &resources);
    match &first {
        Ok(policy) => {
            assert!(xml.len() <= MAX_POLICY_BYTES);
            for note in policy.notes() {
                assert!(note.line() >= 1 && note.line() <= lines(xml), "{note}");
                assert!(note.column() >= 1, "{note}");
            }
        }
        Err(err) => {
            assert!(err.line() >= 1 && err.line() <= lines(xml), "{err}");
            assert!(err.column() >= 1, "{err}");
            assert!(!err.message().is_empty());
        }
    }
    // The same answer twice.
    let second = Policy::parse(xml, &resources);
    assert_eq!(first.as_ref().err(), second.as_ref().err());
    // An imported policy builds or says why (no runtime here: nothing is fetched).
    if let Ok(policy) = first {
        let _ = policy.into_builder().build();
    }
});
