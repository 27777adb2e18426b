//! SHA-256, HMAC-SHA-256 and randomness from whichever signature backend is built: aws-lc-rs
//! (the default), or the RustCrypto crates jsonwebtoken's pure-Rust provider already brings.

/// SHA-256 of `data`.
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// HMAC-SHA-256 of `data` under `key`.
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Fills `out` from the operating system's random source; false if it failed.
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn fill_random(out: &mut [u8]) -> bool {
    aws_lc_rs::rand::fill(out).is_ok()
}

/// SHA-256 of `data`.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// HMAC-SHA-256 of `data` under `key`.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::Mac as _;
    // HMAC takes a key of any length (RFC 2104 §2): `new_from_slice` cannot fail for it.
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// Fills `out` from the operating system's random source; false if it failed.
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
pub(crate) fn fill_random(out: &mut [u8]) -> bool {
    getrandom::getrandom(out).is_ok()
}

/// Equality that takes the same time wherever the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unpadded base64url.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// Decodes canonical unpadded base64url.
pub(crate) fn b64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_hmac_match_their_test_vectors() {
        // FIPS 180-2 "abc"; RFC 4231 test case 2.
        assert_eq!(
            b64url(&sha256(b"abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut a = [0u8; 16];
        assert!(fill_random(&mut a));
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"ac"));
    }
}
