//! OpenID Connect discovery (`/.well-known/openid-configuration`) and RFC 8414 authorization
//! server metadata (`/.well-known/oauth-authorization-server`): which issuer a metadata URL
//! speaks for, and reading its document.

use reqwest::Url;
use serde::Deserialize;

use super::TENANT_PLACEHOLDER;
use super::fetch::{check_pointed, display_url};
use crate::error::{KeyError, KeyErrorKind};

const OPENID: &str = "/.well-known/openid-configuration";
const OAUTH: &str = "/.well-known/oauth-authorization-server";

/// The path segments Azure AD uses for its tenant-independent endpoints, whose documents name
/// the `{tenantid}` template as their issuer.
const AZURE_MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// A metadata URL and the issuer it was derived from.
#[derive(Debug, Clone)]
pub(crate) struct Discovery {
    url: Url,
    /// OIDC Discovery §4.3 (URL minus `/.well-known/openid-configuration`) or RFC 8414 §3.3
    /// (`https://host/.well-known/oauth-authorization-server/path` → `https://host/path`).
    issuer: String,
    /// `issuer` with its first path segment (Azure AD's tenant) replaced by `{tenantid}`.
    template: Option<String>,
    /// Whether the document may name the `{tenantid}` template: the URL's tenant segment is
    /// one of Azure AD's tenant-independent names, or `danger_accept_tenant_template`.
    multi_tenant: bool,
    /// `danger_accept_document_issuer`: a document may name another issuer than its URL's.
    any_document_issuer: bool,
}

/// The members of a metadata document this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Document {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Url,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl Discovery {
    /// Derives the issuer from a metadata URL; `Err` says why the URL is not one.
    pub(crate) fn new(url: Url, accept_template: bool) -> Result<Self, &'static str> {
        let path = url.path();
        let issuer_path = if let Some(prefix) = path.strip_suffix(OPENID) {
            prefix
        } else if let Some(rest) = path
            .strip_prefix(OAUTH)
            .or_else(|| path.strip_prefix(OPENID))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            rest
        } else {
            return Err(
                "not a metadata URL: the path must end in /.well-known/openid-configuration or start with /.well-known/oauth-authorization-server",
            );
        };
        let host = url.host_str().unwrap_or_default();
        let origin = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        let issuer = format!("{origin}{issuer_path}");
        let (tenant, rest) = match issuer_path.strip_prefix('/') {
            Some(segments) => segments
                .split_once('/')
                .map_or((segments, ""), |(tenant, rest)| (tenant, rest)),
            None => ("", ""),
        };
        let template = (!tenant.is_empty()).then(|| {
            let slash = if rest.is_empty() { "" } else { "/" };
            format!("{origin}/{TENANT_PLACEHOLDER}{slash}{rest}")
        });
        let multi_tenant =
            template.is_some() && (accept_template || AZURE_MULTI_TENANT.contains(&tenant));
        Ok(Discovery {
            url,
            issuer,
            template,
            multi_tenant,
            any_document_issuer: false,
        })
    }

    /// Trusts the issuer a fetched document names, whatever its URL (never the `{tenantid}`
    /// template outside Azure AD's multi-tenant URLs).
    pub(crate) fn accepting_document_issuer(mut self) -> Self {
        self.any_document_issuer = true;
        self
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The issuer the URL was derived from (the authorization server's identifier, RFC 9728).
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuers a document fetched from this URL may name, before it has been read: the
    /// derived issuer in both forms OIDC Discovery §4.1 allows (the issuer's terminating `/` is
    /// removed before appending the well-known path), or Azure AD's template for its
    /// tenant-independent endpoints.
    pub(crate) fn expected_issuers(&self) -> Vec<String> {
        let base = match &self.template {
            Some(template) if self.multi_tenant => template,
            _ => &self.issuer,
        };
        if base.ends_with('/') {
            vec![base.clone()]
        } else {
            vec![base.clone(), format!("{base}/")]
        }
    }

    /// Whether a document's `issuer` is the one this URL was derived from: identical, up to
    /// the terminating `/` §4.1 strips, or — for Azure AD's multi-tenant URLs only — its
    /// template with `{tenantid}` exactly where the URL names its tenant. A single-tenant URL
    /// whose document names the template would bind its keys to every tenant: refused.
    fn issuer_matches(&self, doc_issuer: &str) -> bool {
        let same = |expected: &str| {
            doc_issuer == expected || doc_issuer.strip_suffix('/') == Some(expected)
        };
        if doc_issuer.contains(TENANT_PLACEHOLDER) {
            self.multi_tenant && self.template.as_deref().is_some_and(same)
        } else {
            (self.any_document_issuer && !doc_issuer.is_empty()) || same(&self.issuer)
        }
    }

    /// Reads a metadata document: `issuer` and `jwks_uri` are required strings, the issuer must
    /// match, and `jwks_uri` must be https (plain http only with `allow_http`, or when the
    /// metadata URL is itself loopback) and may not point at a loopback or private address
    /// unless the metadata URL does.
    pub(crate) fn read(&self, body: &[u8], allow_http: bool) -> Result<Document, KeyError> {
        let url = display_url(&self.url);
        let meta: Metadata = serde_json::from_slice(body).map_err(|e| {
            KeyError::new(
                KeyErrorKind::InvalidJson,
                format!("{url} is not a metadata document with string `issuer` and `jwks_uri`"),
            )
            .with_source(e)
        })?;
        if !self.issuer_matches(&meta.issuer) {
            return Err(KeyError::new(
                KeyErrorKind::IssuerMismatch,
                format!(
                    "{url} names issuer {:?}, not {:?} which the URL was derived from",
                    meta.issuer, self.issuer
                ),
            ));
        }
        let invalid = |reason: String| {
            KeyError::new(
                KeyErrorKind::InvalidUrl,
                format!("jwks_uri {:?} from {url}: {reason}", meta.jwks_uri),
            )
        };
        let jwks_uri = Url::parse(&meta.jwks_uri).map_err(|e| invalid(e.to_string()))?;
        check_pointed(&jwks_uri, &self.url, allow_http)
            .map_err(|reason| invalid(reason.to_owned()))?;
        Ok(Document {
            issuer: meta.issuer,
            jwks_uri,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovery(url: &str) -> Discovery {
        Discovery::new(Url::parse(url).unwrap(), false).unwrap()
    }

    fn doc(issuer: &str, jwks_uri: &str) -> Vec<u8> {
        serde_json::json!({ "issuer": issuer, "jwks_uri": jwks_uri })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn openid_issuer_is_the_url_minus_the_well_known_suffix() {
        let d = discovery("https://idp.example/tenant/v2.0/.well-known/openid-configuration");
        assert_eq!(d.issuer, "https://idp.example/tenant/v2.0");
        let d = discovery("https://idp.example/.well-known/openid-configuration");
        assert_eq!(d.issuer, "https://idp.example");
        let d = discovery("http://127.0.0.1:8080/realms/x/.well-known/openid-configuration");
        assert_eq!(d.issuer, "http://127.0.0.1:8080/realms/x");
    }

    #[test]
    fn rfc8414_issuer_moves_the_path_after_the_host() {
        let d = discovery("https://idp.example/.well-known/oauth-authorization-server/tenant/x");
        assert_eq!(d.issuer, "https://idp.example/tenant/x");
        let d = discovery("https://idp.example/.well-known/oauth-authorization-server");
        assert_eq!(d.issuer, "https://idp.example");
    }

    #[test]
    fn other_urls_are_not_metadata_urls() {
        for url in [
            "https://idp.example/keys",
            "https://idp.example/.well-known/openid-configurationx",
            "https://idp.example/.well-known/oauth-authorization-serverx",
        ] {
            assert!(
                Discovery::new(Url::parse(url).unwrap(), false).is_err(),
                "{url}"
            );
        }
    }

    #[test]
    fn the_document_issuer_must_be_identical() {
        let d = discovery("https://idp.example/t/.well-known/openid-configuration");
        let ok = d.read(
            &doc("https://idp.example/t", "https://idp.example/keys"),
            false,
        );
        assert_eq!(ok.unwrap().issuer, "https://idp.example/t");
        assert!(
            d.read(
                &doc("https://idp.example/t/", "https://idp.example/k"),
                false
            )
            .is_ok()
        );
        for wrong in [
            "https://idp.example/other",
            "https://IDP.example/t",
            "https://idp.example/t//",
            "https://evil.example/t",
            "https://idp.example/{tenantid}/x",
        ] {
            let err = d
                .read(&doc(wrong, "https://idp.example/keys"), false)
                .unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::IssuerMismatch, "{wrong}");
        }
    }

    #[test]
    fn azure_template_is_accepted_only_in_the_tenant_segment() {
        let d = discovery(
            "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
        );
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let read = d.read(&doc(template, "https://login.microsoftonline.com/k"), false);
        assert_eq!(read.unwrap().issuer, template);
        assert_eq!(d.expected_issuers()[0], template);
        for wrong in [
            "https://login.microsoftonline.com/{tenantid}/v1.0",
            "https://{tenantid}.microsoftonline.com/common/v2.0",
            "https://login.microsoftonline.com/common/{tenantid}",
        ] {
            let err = d
                .read(&doc(wrong, "https://login.microsoftonline.com/k"), false)
                .unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::IssuerMismatch, "{wrong}");
        }
        let guid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let d = discovery(&format!(
            "https://login.microsoftonline.com/{guid}/v2.0/.well-known/openid-configuration"
        ));
        assert_eq!(
            d.expected_issuers()[0],
            format!("https://login.microsoftonline.com/{guid}/v2.0")
        );
    }

    #[test]
    fn a_single_tenant_url_never_takes_the_template() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let keys = "https://login.microsoftonline.com/k";
        for tenant in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "x",
        ] {
            let url = format!(
                "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
            );
            let err = discovery(&url)
                .read(&doc(template, keys), false)
                .unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::IssuerMismatch, "{tenant}");
            // Unless the template is explicitly accepted for this source.
            let opted = Discovery::new(Url::parse(&url).unwrap(), true).unwrap();
            assert_eq!(
                opted.read(&doc(template, keys), false).unwrap().issuer,
                template
            );
            assert_eq!(opted.expected_issuers()[0], template);
        }
    }

    #[test]
    fn a_discovered_jwks_uri_never_points_inside_from_outside() {
        let d = discovery("https://idp.example/.well-known/openid-configuration");
        for inside in [
            "http://127.0.0.1:8080/keys",
            "https://127.0.0.1/keys",
            "http://localhost/keys",
            "https://169.254.169.254/keys",
            "https://[::1]/keys",
        ] {
            for allow_http in [false, true] {
                let err = d
                    .read(&doc("https://idp.example", inside), allow_http)
                    .unwrap_err();
                assert_eq!(err.kind(), KeyErrorKind::InvalidUrl, "{inside}");
            }
        }
        // A loopback metadata URL (a local identity provider) may point at loopback.
        let local = discovery("http://127.0.0.1:9/.well-known/openid-configuration");
        assert!(
            local
                .read(&doc("http://127.0.0.1:9", "http://127.0.0.1:9/keys"), false)
                .is_ok()
        );
    }

    #[test]
    fn documents_need_string_issuer_and_https_jwks_uri() {
        let d = discovery("https://idp.example/.well-known/openid-configuration");
        for body in [
            &b"{"[..],
            br#"{"issuer":"https://idp.example"}"#,
            br#"{"issuer":1,"jwks_uri":"https://idp.example/k"}"#,
        ] {
            let err = d.read(body, false).unwrap_err();
            assert_eq!(err.kind(), KeyErrorKind::InvalidJson);
        }
        let err = d
            .read(&doc("https://idp.example", "http://idp.example/k"), false)
            .unwrap_err();
        assert_eq!(err.kind(), KeyErrorKind::InvalidUrl);
        assert!(
            d.read(&doc("https://idp.example", "http://idp.example/k"), true)
                .is_ok()
        );
    }

    #[test]
    fn real_entra_documents_are_read() {
        for (tenant, json) in [
            (
                "common",
                include_str!("../../tests/fixtures/entra/entra-common.openid-configuration.json"),
            ),
            (
                "organizations",
                include_str!(
                    "../../tests/fixtures/entra/entra-organizations.openid-configuration.json"
                ),
            ),
        ] {
            let d = discovery(&format!(
                "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
            ));
            let read = d.read(json.as_bytes(), false).unwrap();
            assert_eq!(
                read.issuer,
                "https://login.microsoftonline.com/{tenantid}/v2.0"
            );
            assert_eq!(
                read.jwks_uri.as_str(),
                format!("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys")
            );
        }
    }
}
