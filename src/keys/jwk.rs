//! JWK and JWKS parsing (RFC 7517, RFC 7518 §6, RFC 8037).

use serde_json::{Map, Value};

use super::crypto::KeyMaterial;
use super::{IssuerPattern, Key};
use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::{KeyError, KeyErrorKind};

/// Why one JWK in a set was skipped. Skipping never discards the other keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub(crate) index: usize,
    pub(crate) kid: Option<String>,
    pub(crate) reason: String,
}

fn b64url(member: &str, value: Option<&Value>) -> Result<Vec<u8>, String> {
    let Some(value) = value else {
        return Err(format!("missing `{member}`"));
    };
    let Some(text) = value.as_str() else {
        return Err(format!("`{member}` is not a string"));
    };
    crate::token::b64url_lenient_padding(text).ok_or_else(|| format!("`{member}` is not base64url"))
}

/// Whether the JWK may be used to verify signatures, from `use` and `key_ops`.
fn usable_for_verification(jwk: &Map<String, Value>) -> Result<(), String> {
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(Value::String(u)) => return Err(format!("`use` is {u:?}, not \"sig\"")),
        Some(_) => return Err("`use` is not a string".into()),
    }
    match jwk.get("key_ops") {
        None => Ok(()),
        Some(Value::Array(ops)) => {
            if ops.iter().any(|op| op.as_str() == Some("verify")) {
                Ok(())
            } else {
                Err("`key_ops` does not include \"verify\"".into())
            }
        }
        Some(_) => Err("`key_ops` is not an array".into()),
    }
}

/// Parses one JWK object into a ready key. `allow_oct` admits symmetric (`oct`) keys, which are
/// only meaningful in configuration, never in a published JWKS.
pub(crate) fn parse_jwk(jwk: &Map<String, Value>, allow_oct: bool) -> Result<Key, String> {
    usable_for_verification(jwk)?;
    let kid = match jwk.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let alg = match jwk.get("alg") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match Algorithm::from_bytes(name.as_bytes()) {
            Some(alg) => Some(alg),
            None => {
                return Err(format!(
                    "`alg` {name:?} is not a supported signature algorithm"
                ));
            }
        },
        Some(_) => return Err("`alg` is not a string".into()),
    };
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        Some(_) => return Err("`kty` is not a string".into()),
        None => return Err("missing `kty`".into()),
    };
    let material = match kty {
        "RSA" => KeyMaterial::Rsa {
            n: b64url("n", jwk.get("n"))?,
            e: b64url("e", jwk.get("e"))?,
        },
        "EC" => {
            let family = match jwk.get("crv").and_then(Value::as_str) {
                Some("P-256") => KeyFamily::EcP256,
                Some("P-384") => KeyFamily::EcP384,
                Some(other) => return Err(format!("unsupported EC curve {other:?}")),
                None => return Err("missing `crv`".into()),
            };
            let x = b64url("x", jwk.get("x"))?;
            let y = b64url("y", jwk.get("y"))?;
            let size = if family == KeyFamily::EcP256 { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return Err("EC coordinates have the wrong length for the curve".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::EcPoint { family, point }
        }
        "OKP" => match jwk.get("crv").and_then(Value::as_str) {
            Some("Ed25519") => KeyMaterial::Ed25519(b64url("x", jwk.get("x"))?),
            Some(other) => return Err(format!("unsupported OKP curve {other:?}")),
            None => return Err("missing `crv`".into()),
        },
        "oct" if allow_oct => KeyMaterial::Hmac(b64url("k", jwk.get("k"))?),
        "oct" => return Err("symmetric (`oct`) keys are not accepted from a key set".into()),
        other => return Err(format!("unsupported `kty` {other:?}")),
    };
    if let Some(alg) = alg
        && alg.family() != material.family()
    {
        return Err(format!("`alg` {alg} does not fit a {kty} key"));
    }
    let issuer = match jwk.get("issuer") {
        None | Some(Value::Null) => None,
        Some(Value::String(iss)) => Some(IssuerPattern::new(iss)),
        Some(_) => return Err("`issuer` is not a string".into()),
    };
    let mut key = Key::from_material(material, alg).map_err(|e| e.to_string())?;
    key.kid = kid.map(Into::into);
    key.jwk_issuer = issuer;
    Ok(key)
}

/// Parses a JWKS document. Bad keys are skipped and reported; an unparsable document, or one
/// with no usable key, is an error. At most `max_keys` keys are read.
pub(crate) fn parse_jwks(
    json: &[u8],
    allow_oct: bool,
    max_keys: usize,
) -> Result<(Vec<Key>, Vec<Skipped>), KeyError> {
    let doc: Value = serde_json::from_slice(json).map_err(|e| {
        KeyError::new(
            KeyErrorKind::InvalidJson,
            format!("key set is not valid JSON: {e}"),
        )
    })?;
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Err(KeyError::new(
            KeyErrorKind::InvalidJson,
            "key set has no `keys` array",
        ));
    };
    if keys.len() > max_keys {
        return Err(KeyError::new(
            KeyErrorKind::TooLarge,
            format!(
                "key set has {} keys, more than the limit of {max_keys}",
                keys.len()
            ),
        ));
    }
    let mut good = Vec::with_capacity(keys.len());
    let mut skipped = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let Some(obj) = jwk.as_object() else {
            skipped.push(Skipped {
                index,
                kid: None,
                reason: "not a JSON object".into(),
            });
            continue;
        };
        match parse_jwk(obj, allow_oct) {
            Ok(key) => good.push(key),
            Err(reason) => {
                let kid = obj.get("kid").and_then(Value::as_str).map(str::to_owned);
                tracing::warn!(target: "validate_jwt::keys", index, kid = kid.as_deref(), %reason, "skipping JWK");
                skipped.push(Skipped { index, kid, reason });
            }
        }
    }
    if good.is_empty() {
        let why = skipped
            .iter()
            .map(|s| s.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(KeyError::new(
            KeyErrorKind::NoUsableKeys,
            if why.is_empty() {
                "key set is empty".to_owned()
            } else {
                format!("key set has no usable key ({why})")
            },
        ));
    }
    Ok((good, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn rsa_jwk_without_alg_parses() {
        let key = parse_jwk(
            &obj(json!({"kty":"RSA","kid":"a","n":RSA_N,"e":"AQAB"})),
            false,
        )
        .unwrap();
        assert_eq!(key.kid(), Some("a"));
        assert_eq!(key.algorithm(), None);
    }

    #[test]
    fn encryption_keys_are_skipped() {
        let err = parse_jwk(
            &obj(json!({"kty":"RSA","use":"enc","n":RSA_N,"e":"AQAB"})),
            false,
        )
        .unwrap_err();
        assert!(err.contains("use"), "{err}");
        let err = parse_jwk(
            &obj(json!({"kty":"RSA","key_ops":["encrypt"],"n":RSA_N,"e":"AQAB"})),
            false,
        )
        .unwrap_err();
        assert!(err.contains("key_ops"), "{err}");
    }

    #[test]
    fn small_rsa_keys_are_refused() {
        let err = parse_jwk(&obj(json!({"kty":"RSA","n":"AQAB","e":"AQAB"})), false).unwrap_err();
        assert!(err.contains("2048"), "{err}");
    }

    #[test]
    fn alg_must_fit_the_key_type() {
        let err = parse_jwk(
            &obj(json!({"kty":"RSA","alg":"ES256","n":RSA_N,"e":"AQAB"})),
            false,
        )
        .unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let err = parse_jwk(
            &obj(json!({"kty":"RSA","alg":"HS256","n":RSA_N,"e":"AQAB"})),
            false,
        )
        .unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn oct_keys_are_refused_from_key_sets() {
        let err = parse_jwk(
            &obj(json!({"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"})),
            false,
        )
        .unwrap_err();
        assert!(err.contains("oct"), "{err}");
    }

    #[test]
    fn one_bad_key_never_discards_the_good_ones() {
        let doc = json!({"keys":[
            {"kty":"RSA","kid":"good","n":RSA_N,"e":"AQAB"},
            {"kty":"XYZ","kid":"bad"},
            "not an object",
            {"kty":"RSA","kid":"broken","n":"!!!","e":"AQAB"},
        ]});
        let (keys, skipped) = parse_jwks(doc.to_string().as_bytes(), false, 100).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(skipped.len(), 3);
        assert_eq!(skipped[0].kid.as_deref(), Some("bad"));
    }

    #[test]
    fn key_sets_without_usable_keys_are_errors() {
        for doc in [r#"{"keys":[]}"#, r#"{"keys":[{"kty":"XYZ"}]}"#] {
            let err = parse_jwks(doc.as_bytes(), false, 100).unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::NoUsableKeys, "{doc}");
        }
        for doc in ["", "{", "[]", r#"{"keys":{}}"#, "null"] {
            let err = parse_jwks(doc.as_bytes(), false, 100).unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::InvalidJson, "{doc}");
        }
    }

    #[test]
    fn key_sets_above_the_limit_are_refused() {
        let keys: Vec<Value> = (0..5)
            .map(|i| json!({"kty":"RSA","kid":i.to_string(),"n":RSA_N,"e":"AQAB"}))
            .collect();
        let doc = json!({ "keys": keys }).to_string();
        let err = parse_jwks(doc.as_bytes(), false, 4).unwrap_err();
        assert_eq!(err.kind(), KeyErrorKind::TooLarge);
    }
}
