//! The issuer rule, in one place: which issuers each key source signs for, decided once when
//! the layer is built ([`assign`]), and the one check every verified token goes through
//! ([`IssuerRule::check`]).
//!
//! **The rule.** Every verification key belongs to exactly one key source, and every source
//! has an issuer set. A token verified with key K of source S is accepted only if its `iss` is
//! in S's issuer set and, where K's JWK names an `issuer` of its own, matches that too (after
//! `{tenantid}` resolution). A key never signs for an issuer of another source.
//!
//! A source's issuer set is:
//! - what the source states: a discovery document's `issuer` (read with the keys), the
//!   issuers given to `StaticKeys::add_issuer` / `RemoteJwksBuilder::add_issuer` /
//!   `RemoteJwksBuilder::with_issuers`, or a custom source's `KeySource::issuers()`;
//! - with **one** key source, the builder's `add_issuer` list instead: it replaces a discovery
//!   document's issuer, and narrows issuers the source stated explicitly (each listed issuer
//!   must be one of them);
//! - with **several** sources, the builder's list goes to the sources that state no issuer,
//!   less any issuer another source names as its own;
//! - `danger_accept_any_issuer`: any issuer for the sources that state none, less the issuers
//!   other sources name as their own.
//!
//! (About a third of the file is the tests of the rule.)

use std::fmt;
use std::sync::Arc;

use crate::claims::Registered;
use crate::error::{ConfigError, JwtError, JwtErrorKind};
use crate::keys::{Key, KeySet};

/// The placeholder Azure AD's multi-tenant metadata puts where the tenant id goes.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// An issuer: exact text, or an Azure AD template containing `{tenantid}`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct IssuerPattern {
    /// Shared: the metrics' `issuer` label is this text (see [`IssuerLabel`]).
    text: Arc<str>,
    template: bool,
}

impl fmt::Debug for IssuerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl IssuerPattern {
    pub(crate) fn new(text: &str) -> Self {
        IssuerPattern {
            template: text.contains(TENANT_PLACEHOLDER),
            text: text.into(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The metrics label of the tokens accepted for this issuer: its text as configured or
    /// discovered (a template stays a template, whatever tenant the token names).
    pub(crate) fn label(&self) -> IssuerLabel {
        IssuerLabel::Issuer(self.text.clone())
    }

    /// Whether `iss` is this issuer; a template is resolved with the token's `tid`, which must
    /// be a GUID.
    pub(crate) fn matches(&self, iss: &str, tid: Option<&str>) -> bool {
        if !self.template {
            return *self.text == *iss;
        }
        let Some(tid) = tid.filter(|t| is_guid(t)) else {
            return false;
        };
        let Some((prefix, suffix)) = self.text.split_once(TENANT_PLACEHOLDER) else {
            return false;
        };
        iss.len() == prefix.len() + tid.len() + suffix.len()
            && iss.starts_with(prefix)
            && iss.ends_with(suffix)
            && &iss[prefix.len()..prefix.len() + tid.len()] == tid
    }

    /// Whether every token `other` accepts, this accepts too: the same text, or this is a
    /// template and `other` is one of its tenants' issuers.
    pub(crate) fn covers(&self, other: &IssuerPattern) -> bool {
        if self.text == other.text {
            return true;
        }
        if !self.template || other.template {
            return false;
        }
        let Some((prefix, suffix)) = self.text.split_once(TENANT_PLACEHOLDER) else {
            return false;
        };
        other
            .text
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(is_guid)
    }
}

/// The `issuer` label of a request's metrics (`ValidateJwtBuilder::label_metrics_by_issuer`):
/// the issuer pattern the token's `iss` matched, never the token's own text, so the label's
/// values are bounded by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerLabel {
    /// The issuer of the layer's configuration (or of a source's discovery document) the token
    /// was accepted for.
    Issuer(Arc<str>),
    /// Accepted by `danger_accept_any_issuer`: any issuer, so no value of the token's.
    Any,
}

/// Whether `s` is a GUID in its canonical textual form (`8-4-4-4-12` hex digits).
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn list(patterns: &[IssuerPattern]) -> String {
    patterns
        .iter()
        .map(IssuerPattern::as_str)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Azure AD: a v1 issuer (`https://sts.windows.net/{tid}/`) is the same authority as the v2
/// issuer (`https://login.microsoftonline.com/{tid}/v2.0`) when checking a key's own `issuer`.
#[derive(Debug, Clone)]
pub(crate) struct AzureV1 {
    pub(crate) v1_prefix: Box<str>,
    pub(crate) v2_prefix: Box<str>,
    /// Whether v1 tokens are accepted; when not, a v1 token gets an explanation.
    pub(crate) accept: bool,
}

impl AzureV1 {
    /// The tenant of a v1 issuer, if `iss` is one.
    fn v1_tenant<'a>(&self, iss: &'a str) -> Option<&'a str> {
        iss.strip_prefix(&*self.v1_prefix)?.strip_suffix('/')
    }

    /// The v2 form of a v1 issuer, if `iss` is one.
    fn v2_form(&self, iss: &str) -> Option<String> {
        let tenant = self.v1_tenant(iss)?;
        Some(format!("{}{tenant}/v2.0", self.v2_prefix))
    }
}

/// A key source's issuer set, decided when the layer is built.
#[derive(Debug, Clone)]
pub(crate) enum SourceIssuers {
    /// These, whatever the source's key set says: the builder's `add_issuer` list given to this
    /// source.
    Assigned(Box<[IssuerPattern]>),
    /// The source's own: those its current key set was published for (a discovery document's
    /// issuer, read with the keys) or, when the set names none, these (what the source stated
    /// when the layer was built).
    Own(Box<[IssuerPattern]>),
    /// Any issuer (`iss` may be absent), except those another source names as its own
    /// (`danger_accept_any_issuer`).
    Any { others: Box<[IssuerPattern]> },
}

/// What a key source states about its issuers, read when the layer is built.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    /// The issuers the source names (`KeySource::issuers()`); empty when it names none.
    pub(crate) issuers: Vec<IssuerPattern>,
    /// Whether those are a discovery document's issuer, which a single source's `add_issuer`
    /// list replaces (rather than narrows).
    pub(crate) discovered: bool,
}

/// Decides every source's issuer set from what the sources state, the builder's `add_issuer`
/// list and `danger_accept_any_issuer` (see the module documentation).
pub(crate) fn assign(
    sources: &[Statement],
    listed: &[String],
    any_issuer: bool,
) -> Result<Vec<SourceIssuers>, ConfigError> {
    if listed.iter().any(String::is_empty) {
        return Err(ConfigError::InvalidSetting {
            setting: "add_issuer",
            reason: "an empty issuer".into(),
        });
    }
    let listed: Vec<IssuerPattern> = listed.iter().map(|i| IssuerPattern::new(i)).collect();
    let unbound = sources.iter().filter(|s| s.issuers.is_empty()).count();
    if any_issuer && !listed.is_empty() {
        return Err(ConfigError::InvalidSetting {
            setting: "danger_accept_any_issuer",
            reason: "together with `add_issuer`: choose one".into(),
        });
    }
    if any_issuer && unbound == 0 {
        return Err(ConfigError::InvalidSetting {
            setting: "danger_accept_any_issuer",
            reason: "it applies to key sources that name no issuer, and every key source here \
                     names its own"
                .into(),
        });
    }

    if let [only] = sources {
        if listed.is_empty() {
            return Ok(vec![match only.issuers.is_empty() {
                false => SourceIssuers::Own(only.issuers.clone().into()),
                true if any_issuer => SourceIssuers::Any {
                    others: Box::new([]),
                },
                true => return Err(ConfigError::NoIssuerDecision),
            }]);
        }
        if !only.discovered && !only.issuers.is_empty() {
            // Explicitly stated issuers: the list narrows them and may not widen them.
            if let Some(stray) = listed
                .iter()
                .find(|l| !only.issuers.iter().any(|s| s.covers(l)))
            {
                return Err(ConfigError::UnreachableIssuer {
                    issuer: stray.as_str().to_owned(),
                    reason: format!(
                        "the only key source signs for {} (stated where its keys are \
                         configured); list one of those, or bind the keys to this issuer there",
                        list(&only.issuers)
                    ),
                });
            }
        }
        return Ok(vec![SourceIssuers::Assigned(listed.into())]);
    }

    // Several sources: the issuers each bound source names stay with it.
    let owned: Vec<IssuerPattern> = sources
        .iter()
        .flat_map(|s| s.issuers.iter().cloned())
        .collect();
    let for_unbound: Vec<IssuerPattern> = listed
        .iter()
        .filter(|l| !owned.iter().any(|o| o.covers(l)))
        .cloned()
        .collect();
    if unbound == 0
        && let Some(stray) = for_unbound.first()
    {
        return Err(ConfigError::UnreachableIssuer {
            issuer: stray.as_str().to_owned(),
            reason: "every key source names issuers of its own and none of them is this one; \
                     with several key sources, bind each issuer to its source \
                     (`StaticKeys::add_issuer`, `RemoteJwksBuilder::add_issuer`)"
                .into(),
        });
    }
    sources
        .iter()
        .map(|s| {
            if !s.issuers.is_empty() {
                Ok(SourceIssuers::Own(s.issuers.clone().into()))
            } else if any_issuer {
                Ok(SourceIssuers::Any {
                    others: owned.clone().into(),
                })
            } else if !for_unbound.is_empty() {
                Ok(SourceIssuers::Assigned(for_unbound.clone().into()))
            } else {
                Err(ConfigError::NoIssuerDecision)
            }
        })
        .collect()
}

/// The issuer decision of a layer: every source's issuer set, the Azure AD tenant allow-list
/// and v1/v2 equivalence.
#[derive(Debug, Clone)]
pub(crate) struct IssuerRule {
    pub(crate) sources: Vec<SourceIssuers>,
    pub(crate) allowed_tenants: Vec<Box<str>>,
    pub(crate) azure_v1: Option<AzureV1>,
}

fn refused(detail: impl Into<std::borrow::Cow<'static, str>>) -> JwtError {
    JwtError::with_detail(JwtErrorKind::InvalidIssuer, detail)
}

impl IssuerRule {
    /// The rule: a token verified with `key`, of the key set `set` of source number `source`,
    /// is accepted only if its `iss` is in that source's issuer set and matches the key's own
    /// `issuer` where its JWK names one. Returns the issuer of the source's set the token
    /// matched (`None`: the source accepts any issuer), for the metrics' label.
    pub(crate) fn check<'a>(
        &'a self,
        source: usize,
        set: &'a KeySet,
        key: &Key,
        claims: &Registered,
    ) -> Result<Option<&'a IssuerPattern>, JwtError> {
        let (allowed, others): (Option<&[IssuerPattern]>, &[IssuerPattern]) =
            match self.sources.get(source) {
                Some(SourceIssuers::Assigned(issuers)) => (Some(issuers), &[]),
                Some(SourceIssuers::Own(stated)) => (Some(set.issuers().unwrap_or(stated)), &[]),
                Some(SourceIssuers::Any { others }) => (None, others),
                // Every source has an entry (built together); refuse rather than guess.
                None => return Err(refused("the key's source has no issuer set")),
            };
        let key_issuer = key.jwk_issuer();
        let tid = claims.tid();
        let Some(iss) = claims.iss() else {
            if allowed.is_none() && key_issuer.is_none() {
                return Ok(None);
            }
            return Err(refused("`iss` is missing"));
        };
        if self
            .azure_v1
            .as_ref()
            .is_some_and(|a| !a.accept && a.v1_tenant(iss).is_some())
        {
            return Err(refused(
                "a v1 token at a configuration that accepts v2 tokens only: set \
                 `accessTokenAcceptedVersion: 2` in the API's app manifest, or accept v1 tokens",
            ));
        }
        let matched = match allowed {
            Some(allowed) => match allowed.iter().find(|p| p.matches(iss, tid)) {
                Some(pattern) => Some(pattern),
                None => return Err(refused(format!("expected issuer {}", list(allowed)))),
            },
            None if others.iter().any(|p| p.matches(iss, tid)) => {
                return Err(refused(
                    "the issuer belongs to another key source than the signing key's",
                ));
            }
            None => None,
        };
        // The v2 form of a v1 issuer is built only when the key's own issuer needs it.
        if let Some(own) = key_issuer
            && !own.matches(iss, tid)
            && !self
                .azure_v1
                .as_ref()
                .and_then(|a| a.v2_form(iss))
                .is_some_and(|v2| own.matches(&v2, tid))
        {
            return Err(refused(format!(
                "the signing key belongs to {} (its JWK names that issuer)",
                own.as_str()
            )));
        }
        if !self.allowed_tenants.is_empty()
            && !tid.is_some_and(|t| self.allowed_tenants.iter().any(|a| **a == *t))
        {
            return Err(refused("the token's tenant (`tid`) is not allowed"));
        }
        Ok(matched)
    }
}

impl IssuerRule {
    /// In words, what [`check`](Self::check) accepts from `key` of source number `source`
    /// (for `explain`): the source's issuer set, the key's own issuer and the tenant list.
    pub(crate) fn describe(&self, source: usize, set: &KeySet, key: &Key) -> String {
        let mut out = match self.sources.get(source) {
            Some(SourceIssuers::Assigned(issuers)) => list(issuers),
            Some(SourceIssuers::Own(stated)) => list(set.issuers().unwrap_or(stated)),
            Some(SourceIssuers::Any { others }) if others.is_empty() => {
                "any issuer (danger_accept_any_issuer)".to_owned()
            }
            Some(SourceIssuers::Any { others }) => format!(
                "any issuer except {} (danger_accept_any_issuer)",
                list(others)
            ),
            None => "none (the key's source has no issuer set)".to_owned(),
        };
        if let Some(own) = key.jwk_issuer() {
            out.push_str(&format!(", and the key's own issuer {}", own.as_str()));
        }
        if !self.allowed_tenants.is_empty() {
            out.push_str(&format!(
                ", with `tid` one of {}",
                self.allowed_tenants.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn statement(issuers: &[&str], discovered: bool) -> Statement {
        Statement {
            issuers: issuers.iter().map(|i| IssuerPattern::new(i)).collect(),
            discovered,
        }
    }

    fn listed(issuers: &[&str]) -> Vec<String> {
        issuers.iter().map(|i| (*i).to_owned()).collect()
    }

    #[test]
    fn template_issuers_need_a_guid_tid() {
        let p = IssuerPattern::new("https://login.microsoftonline.com/{tenantid}/v2.0");
        let iss = format!("https://login.microsoftonline.com/{TID}/v2.0");
        assert!(p.matches(&iss, Some(TID)));
        assert!(!p.matches(&iss, None));
        assert!(!p.matches(&iss, Some("72f988bf-86f1-41af-91ab-2d7cd011db48")));
        let odd = "https://login.microsoftonline.com/evil/v2.0";
        assert!(!p.matches(odd, Some("evil")));
    }

    #[test]
    fn exact_issuers_compare_exactly() {
        let p = IssuerPattern::new("https://issuer.example/");
        assert!(p.matches("https://issuer.example/", None));
        assert!(!p.matches("https://issuer.example", None));
        assert!(!p.matches("https://ISSUER.example/", None));
    }

    #[test]
    fn a_template_covers_its_tenants_and_nothing_else() {
        let t = IssuerPattern::new("https://login.microsoftonline.com/{tenantid}/v2.0");
        let tenant = IssuerPattern::new(&format!("https://login.microsoftonline.com/{TID}/v2.0"));
        assert!(t.covers(&t));
        assert!(t.covers(&tenant));
        assert!(!tenant.covers(&t));
        assert!(!t.covers(&IssuerPattern::new(
            "https://login.microsoftonline.com/evil/v2.0"
        )));
        assert!(!t.covers(&IssuerPattern::new("https://evil.test")));
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid(TID));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4g"));
        assert!(!is_guid(""));
    }

    #[test]
    fn one_source_keeps_its_own_issuers_without_a_list() {
        let got = assign(&[statement(&["https://a.test"], false)], &[], false).unwrap();
        assert!(matches!(&got[..], [SourceIssuers::Own(i)] if i[0].as_str() == "https://a.test"));
    }

    #[test]
    fn one_unbound_source_needs_a_decision() {
        assert_eq!(
            assign(&[statement(&[], false)], &[], false).unwrap_err(),
            ConfigError::NoIssuerDecision
        );
        let any = assign(&[statement(&[], false)], &[], true).unwrap();
        assert!(matches!(&any[..], [SourceIssuers::Any { others }] if others.is_empty()));
    }

    #[test]
    fn the_list_replaces_a_discovered_issuer_of_a_single_source() {
        let got = assign(
            &[statement(&["https://idp.test"], true)],
            &listed(&["https://frontend.test"]),
            false,
        )
        .unwrap();
        assert!(
            matches!(&got[..], [SourceIssuers::Assigned(i)] if i.len() == 1 && i[0].as_str() == "https://frontend.test")
        );
    }

    #[test]
    fn the_list_only_narrows_explicitly_stated_issuers() {
        let stated = statement(&["https://a.test", "https://b.test"], false);
        let got = assign(
            std::slice::from_ref(&stated),
            &listed(&["https://a.test"]),
            false,
        )
        .unwrap();
        assert!(matches!(&got[..], [SourceIssuers::Assigned(i)] if i.len() == 1));
        let err = assign(&[stated], &listed(&["https://evil.test"]), false).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnreachableIssuer { issuer, .. } if issuer == "https://evil.test"),
            "{err}"
        );
    }

    #[test]
    fn with_several_sources_the_list_goes_to_unbound_ones_less_other_sources_issuers() {
        let got = assign(
            &[statement(&["https://a.test"], false), statement(&[], false)],
            &listed(&["https://a.test", "https://x.test"]),
            false,
        )
        .unwrap();
        assert!(matches!(&got[0], SourceIssuers::Own(i) if i[0].as_str() == "https://a.test"));
        assert!(
            matches!(&got[1], SourceIssuers::Assigned(i) if i.len() == 1 && i[0].as_str() == "https://x.test")
        );
        // Nothing left for the unbound source.
        let err = assign(
            &[statement(&["https://a.test"], false), statement(&[], false)],
            &listed(&["https://a.test"]),
            false,
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::NoIssuerDecision);
    }

    #[test]
    fn with_several_bound_sources_a_stray_listed_issuer_is_an_error() {
        let err = assign(
            &[
                statement(&["https://a.test"], true),
                statement(&["https://b.test"], false),
            ],
            &listed(&["https://x.test"]),
            false,
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::UnreachableIssuer { .. }),
            "{err}"
        );
    }

    #[test]
    fn any_issuer_is_for_unbound_sources_only() {
        let err = assign(&[statement(&["https://a.test"], true)], &[], true).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
        let err = assign(&[statement(&[], false)], &listed(&["https://a.test"]), true).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidSetting { .. }), "{err}");
        let got = assign(
            &[statement(&["https://a.test"], false), statement(&[], false)],
            &[],
            true,
        )
        .unwrap();
        assert!(
            matches!(&got[1], SourceIssuers::Any { others } if others[0].as_str() == "https://a.test")
        );
    }
}
