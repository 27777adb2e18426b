//! Token parsing and full validation against a fixed key set, through the public API.
//!
//! The first input byte picks a mode:
//! - `0`: the rest is a token given to `ValidateJwtLayer::validate_token` (when it is UTF-8);
//! - `1`: the rest is an `Authorization` header value sent through the layer as a request;
//! - otherwise the rest is `header JSON 0xFF payload JSON`, which the harness encodes and signs
//!   with a key the layer trusts (byte 0 picks HS256 / HS512 / ES256 / EdDSA), so the fuzzer
//!   reaches header checks, claims parsing, time, issuer, audience and requirements.
//!
//! Validation must never panic, and a token the harness did not sign must never be accepted.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use validate_jwt::{ManualClock, Requirement, StaticKeys, ValidateJwtLayer};

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://issuer.fuzz";
const AUDIENCE: &str = "api://fuzz";
const HMAC_SECRET: &[u8] = b"a fixed fuzzing secret of 32+ bytes!";
/// A P-256 key generated once with `openssl ecparam -name prime256v1 -genkey` (PKCS#8 DER).
const EC_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQNofpNIqwTtddTFKpXucVU1Cy5sgNfQjHwFyj1sBfeihRANCAAQ5FgXsv1fztRUQfcrntXweJsM5HtNDBqtMlrr+UuDAGuopAEcJ6X7u1qG6HIETijI3Pz8C/AjLJlH9K4NsRbMS";
/// The modulus of an RSA-2048 key generated once with `openssl genrsa` (verification only).
const RSA_N: &str = "zHYL59WGbd20Ii0x959mgc8EZPAfKSzkIsxD9imOqN4ZLbo_Vjp4zp17_f2mlQIymc1Nq72rJMzA3mjPMNtpWtauJzYQzX4SxhZQXlB2-MBu1ey0FlfAgtA97C6Lh5kzDHfxRGBSAISbMQHicbY9Qx9-Dmnsd8e_HyddHPLWAWA7m40UQtBsz7mVp0QHWYY7EmQ9m67Ujn1q317jzsPfwtZMCyUNsZLAvy16jwxZyHn-0o7qLqyaG6euICxxZjMVEYAMvoabUH_DUsKJhg2lpGD_jDXDUMxFv5S5tv5CfRRzIxx9X-Q-tP8UTeT0jg_9iiaNkpEPQxCYUJBkDE7Y1Q";

struct Harness {
    runtime: tokio::runtime::Runtime,
    layer: ValidateJwtLayer,
    hs256: hmac::Key,
    hs512: hmac::Key,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let ec_der = STANDARD.decode(EC_PKCS8).unwrap();
        let ec =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der).unwrap();
        let ed = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let point = ec.public_key().as_ref();
        let ec_jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","kid":"ec","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..])
        );
        let ed_jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())
        );
        let keys = StaticKeys::new()
            .add_hmac_secret(Some("hs"), HMAC_SECRET)
            .add_jwk(ec_jwk)
            .add_jwk(ed_jwk)
            .add_rsa_components(Some("rsa"), RSA_N, "AQAB")
            .add_issuer(ISSUER);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let layer = runtime.block_on(async {
            ValidateJwtLayer::builder()
                .add_keys(keys)
                .add_audience(AUDIENCE)
                .add_audience("api://other")
                .with_clock(ManualClock::new(NOW))
                .require(Requirement::any([
                    Requirement::all_scopes(["Fuzz.Read"]),
                    Requirement::any_role(["Fuzz.Admin", "Fuzz.Owner"]),
                    Requirement::claim_path(["realm", "roles"]).any_of(["admin"]),
                ]))
                .build()
                .unwrap()
        });
        Harness {
            runtime,
            layer,
            hs256: hmac::Key::new(hmac::HMAC_SHA256, HMAC_SECRET),
            hs512: hmac::Key::new(hmac::HMAC_SHA512, HMAC_SECRET),
            ec,
            ed,
        }
    })
}

impl Harness {
    /// Encodes and signs `header` and `payload` with the key `which` selects.
    fn sign(&self, which: u8, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = match which % 4 {
            0 => hmac::sign(&self.hs256, input.as_bytes()).as_ref().to_vec(),
            1 => hmac::sign(&self.hs512, input.as_bytes()).as_ref().to_vec(),
            2 => self
                .ec
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn validate(&self, token: &str) -> bool {
        self.runtime
            .block_on(self.layer.validate_token(token))
            .is_ok()
    }

    fn request(&self, authorization: &[u8]) -> Option<u16> {
        let value = http::HeaderValue::from_bytes(authorization).ok()?;
        let request = http::Request::get("/")
            .header(http::header::AUTHORIZATION, value)
            .body(())
            .ok()?;
        let service = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new(()))
        });
        let service = tower::Layer::layer(&self.layer, service);
        let response = self.runtime.block_on(service.oneshot(request)).ok()?;
        Some(response.status().as_u16())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let h = harness();
    match mode {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                // Nothing the harness did not sign can verify.
                assert!(!h.validate(token), "an unsigned token was accepted");
            }
        }
        1 => {
            if let Some(status) = h.request(rest) {
                assert_ne!(status, 200, "an unsigned token was accepted");
            }
        }
        which => {
            let (header, payload) = match rest.iter().position(|b| *b == 0xFF) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b"{}"[..]),
            };
            let token = h.sign(which, header, payload);
            let _ = h.validate(&token);
        }
    }
});
