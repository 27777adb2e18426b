//! The signature-only check, the ceiling for validated traffic: what no validator can skip, and
//! nothing more. One definition for the HTTP benchmark's signature-only server
//! (`benches/http/signature_only.rs`) and the in-process ratio (`benches/ratio.rs`).
//!
//! Per request: the bearer token from `Authorization`; its header decoded and its `kid` read
//! (serde_json); the key for that `kid` among keys parsed once (aws-lc-rs, as the layer); the
//! signature decoded and verified; the payload decoded, checked to be UTF-8 and kept, to hand to
//! the service in the request's extensions. No time, issuer, audience, `typ` or scope check, no
//! JSON check of the payload: a server that did less would not know the token is authentic. The
//! base64url decoder is the layer's own (base64-simd), so the ceiling is not slowed by a slower
//! one.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::signature::ParsedPublicKey;
use base64_simd::URL_SAFE_NO_PAD;
use http::{HeaderMap, header};

/// The verified payload, as the token carried it.
#[derive(Clone)]
pub struct Payload(pub Arc<str>);

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    kid: Option<&'a str>,
}

/// The payload of the request's bearer token when its signature verifies with the key its
/// `kid` names; `None` for anything else.
pub fn verify(headers: &HeaderMap, keys: &HashMap<String, ParsedPublicKey>) -> Option<Payload> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let (input, sig) = token.rsplit_once('.')?;
    let (head, payload) = input.split_once('.')?;
    let head = URL_SAFE_NO_PAD.decode_to_vec(head).ok()?;
    let kid = serde_json::from_slice::<Header<'_>>(&head).ok()?.kid?;
    let key = keys.get(kid)?;
    let sig = URL_SAFE_NO_PAD.decode_to_vec(sig).ok()?;
    key.verify_sig(input.as_bytes(), &sig).ok()?;
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode_to_vec(payload).ok()?).ok()?;
    Some(Payload(payload.into()))
}
