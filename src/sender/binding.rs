//! The binding rule of a token alone: what its `cnf` claim (RFC 7800) allows, decided by the
//! layer's configuration before any request is looked at. One rule, run by the validator for
//! every verified token (HTTP requests, `validate_token` and `explain` alike):
//!
//! 1. `cnf`, when present, is a JSON object, and its `jkt` and `x5t#S256` members, when
//!    present, are strings;
//! 2. under [`Dpop::required`](super::Dpop::required), the token is DPoP-bound (`cnf.jkt`);
//! 3. a token bound to a DPoP key (`cnf.jkt`) needs a layer that checks DPoP proofs, and a token
//!    bound to a client certificate (`cnf["x5t#S256"]`) a layer that checks certificates:
//!    otherwise whoever holds the token could use it, which is what binding it was meant to
//!    prevent. `danger_accept_bound_tokens_as_bearer` lets such tokens pass as bearer tokens.
//!
//! What each request proves (the proof, the certificate) is checked afterwards, by
//! [`Sender`](super::Sender). Other `cnf` members (`jwk`, `kid`, `jku`, …) are not bindings
//! this crate checks, and RFC 7800 §3.1 says members a recipient does not understand are
//! ignored: they are.

use serde_json::Value;

use super::DpopMode;
use super::unbound;
use crate::error::JwtError;

/// The configuration the rule reads (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BindingRule {
    /// DPoP's mode, when the layer checks DPoP proofs.
    pub(crate) dpop: Option<DpopMode>,
    /// Whether the layer checks client certificates.
    pub(crate) certificates: bool,
    /// `danger_accept_bound_tokens_as_bearer`.
    pub(crate) accept_unchecked: bool,
}

impl BindingRule {
    /// The rule, for a token whose `cnf` member is `cnf` (its JSON text). One comparison when
    /// the token has none.
    #[inline]
    pub(crate) fn check(&self, cnf: Option<&str>) -> Result<(), JwtError> {
        if cnf.is_none() && self.dpop != Some(DpopMode::Required) {
            return Ok(());
        }
        self.check_cnf(cnf)
    }

    #[cold]
    #[inline(never)]
    fn check_cnf(&self, cnf: Option<&str>) -> Result<(), JwtError> {
        let members = match cnf.map(serde_json::from_str::<Value>) {
            None => None,
            Some(Ok(Value::Object(members))) => Some(members),
            Some(_) => return Err(unbound("`cnf` is not a JSON object (RFC 7800)")),
        };
        let member = |name: &str, what: &'static str| -> Result<bool, JwtError> {
            match members.as_ref().and_then(|m| m.get(name)) {
                None => Ok(false),
                Some(Value::String(_)) => Ok(true),
                Some(_) => Err(unbound(what)),
            }
        };
        let jkt = member("jkt", "`cnf.jkt` is not a string")?;
        let x5t = member("x5t#S256", "`cnf[\"x5t#S256\"]` is not a string")?;
        if self.dpop == Some(DpopMode::Required) && !jkt {
            return Err(unbound(
                "this resource requires DPoP-bound tokens, and this one is not bound (no `cnf.jkt`)",
            ));
        }
        if self.accept_unchecked {
            return Ok(());
        }
        if jkt && self.dpop.is_none() {
            return Err(unbound(
                "the token is bound to a DPoP key (`cnf.jkt`) and this layer does not check DPoP \
                 proofs (`with_dpop`)",
            ));
        }
        if x5t && !self.certificates {
            return Err(unbound(
                "the token is bound to a client certificate (`cnf[\"x5t#S256\"]`) and this layer \
                 does not check client certificates (`with_client_certificates`)",
            ));
        }
        Ok(())
    }

    /// In words, for `explain`.
    pub(crate) fn describe(&self) -> &'static str {
        match (self.dpop, self.certificates, self.accept_unchecked) {
            (Some(DpopMode::Required), _, _) => "a DPoP-bound token (`cnf.jkt`)",
            (_, _, true) => {
                "any `cnf`; bindings the layer does not check are ignored \
                 (danger_accept_bound_tokens_as_bearer)"
            }
            (Some(_), true, false) => "no binding, or a DPoP key or client certificate binding",
            (Some(_), false, false) => "no binding, or a DPoP key binding (`cnf.jkt`)",
            (None, true, false) => {
                "no binding, or a client certificate binding (`cnf[\"x5t#S256\"]`)"
            }
            (None, false, false) => "a bearer token: no `cnf.jkt` or `cnf[\"x5t#S256\"]`",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JwtErrorKind;

    fn rule(dpop: Option<DpopMode>, certificates: bool, accept_unchecked: bool) -> BindingRule {
        BindingRule {
            dpop,
            certificates,
            accept_unchecked,
        }
    }

    fn refusal(rule: BindingRule, cnf: Option<&str>) -> Option<String> {
        rule.check(cnf).err().map(|e| {
            assert_eq!(e.kind(), JwtErrorKind::InvalidBinding);
            e.detail().unwrap_or_default().to_owned()
        })
    }

    const JKT: &str = r#"{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}"#;
    const X5T: &str = r#"{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}"#;

    #[test]
    fn a_bearer_token_passes_unless_dpop_is_required() {
        for r in [
            rule(None, false, false),
            rule(Some(DpopMode::Allowed), true, false),
        ] {
            assert_eq!(refusal(r, None), None);
            // Members that are not bindings this crate checks are ignored (RFC 7800 §3.1).
            assert_eq!(refusal(r, Some(r#"{"kid":"k1"}"#)), None);
        }
        let required = refusal(rule(Some(DpopMode::Required), false, false), None).unwrap();
        assert!(required.contains("requires DPoP"), "{required}");
        // Not even the opt-out loosens the required mode.
        let opted = rule(Some(DpopMode::Required), false, true);
        assert!(refusal(opted, Some(X5T)).unwrap().contains("requires DPoP"));
        assert_eq!(refusal(opted, Some(JKT)), None);
    }

    #[test]
    fn a_binding_the_layer_does_not_check_is_refused_unless_opted_out() {
        let plain = rule(None, false, false);
        assert!(refusal(plain, Some(JKT)).unwrap().contains("with_dpop"));
        assert!(
            refusal(plain, Some(X5T))
                .unwrap()
                .contains("with_client_certificates")
        );
        let dpop = rule(Some(DpopMode::Allowed), false, false);
        assert_eq!(refusal(dpop, Some(JKT)), None);
        assert!(refusal(dpop, Some(X5T)).is_some());
        let certs = rule(None, true, false);
        assert_eq!(refusal(certs, Some(X5T)), None);
        assert!(refusal(certs, Some(JKT)).is_some());
        let opted = rule(None, false, true);
        assert_eq!(refusal(opted, Some(JKT)), None);
        assert_eq!(refusal(opted, Some(X5T)), None);
    }

    #[test]
    fn a_malformed_cnf_is_refused_whatever_the_configuration() {
        for r in [
            rule(None, false, false),
            rule(None, false, true),
            rule(Some(DpopMode::Allowed), true, false),
        ] {
            for cnf in [
                "\"jkt\"",
                "[]",
                "null",
                "7",
                r#"{"jkt":7}"#,
                r#"{"jkt":null}"#,
                r#"{"x5t#S256":["a"]}"#,
                r#"{"jkt":{"x":"y"}}"#,
            ] {
                assert!(refusal(r, Some(cnf)).is_some(), "{cnf} under {r:?}");
            }
        }
    }
}
