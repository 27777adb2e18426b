//! Azure AD (Entra ID): [`AzureAd`], APIM's `validate-azure-ad-token` in code.
use crate::claims::Requirement;
use crate::config::ValidateJwtBuilder;
use crate::error::ConfigError;
use crate::keys::RemoteJwks;

/// The public cloud's authority host.
pub const PUBLIC_CLOUD: &str = "login.microsoftonline.com";

/// The v1 issuer host of the public cloud.
const V1_HOST: &str = "sts.windows.net";

/// Azure AD (Entra ID) first-class: single- and multi-tenant APIs, v1 and v2 tokens, allowed
/// tenants and client applications — APIM's `validate-azure-ad-token`, in code.
///
/// ```
/// use validate_jwt::{AzureAd, Requirement};
///
/// // An API registered in one tenant ("backend-app"), exposing the scope `Files.Read`.
/// let layer = AzureAd::tenant("72f988bf-86f1-41af-91ab-2d7cd011db47")
///     .api("6e74172b-be56-4843-9ff4-e66a39bb12e3")          // client id: accepted as `aud`, and api://<client id>
///     .allow_client_apps(["9b7e2d4a-1c3f-4e5d-8a6b-0f1e2d3c4b5a"]) // azp (v2) / appid (v1)
///     .builder()
///     .require(Requirement::scope_or_app_role(["Files.Read"], ["Files.Read.All"]))
///     .build()
///     .unwrap();
/// ```
///
/// What it configures:
/// - discovery from `https://{authority}/{tenant}/v2.0/.well-known/openid-configuration`;
/// - issuers: the v2 issuer `https://{authority}/{tid}/v2.0` and the v1 issuer
///   `https://sts.windows.net/{tid}/` (a token's version follows the API's
///   `accessTokenAcceptedVersion`, not the client's); [`v2_only`](AzureAd::v2_only) drops v1;
/// - multi-tenant (`organizations`, `common`): the `{tenantid}` template resolved with the token's
///   `tid` (a GUID) and matched exactly, an optional tenant allow-list, and each key's own
///   `issuer` in Azure's JWKS enforced (a key naming one tenant signs for that tenant only);
/// - audiences: the API's client id and Application ID URI (`api://…`).
///
/// Finish with [`builder`](Self::builder), then add requirements and build.
#[derive(Debug, Clone)]
#[must_use]
pub struct AzureAd {
    tenant: String,
    multi: bool,
    /// `https://login.microsoftonline.com` or another authority base URL.
    base: String,
    audiences: Vec<String>,
    tenants: Vec<String>,
    client_apps: Vec<String>,
    v1: bool,
    v2: bool,
}

impl AzureAd {
    /// A single-tenant API: tokens issued by this tenant only. `tenant_id` is the tenant's GUID
    /// (the portal's "Directory (tenant) ID"): tokens name their tenant by GUID, so a verified
    /// domain name (`contoso.onmicrosoft.com`) could never match them and is a `build()` error.
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Self::new(tenant_id.into(), false)
    }

    /// A multi-tenant API for work and school accounts (the `organizations` endpoint).
    /// Restrict the tenants with [`allow_tenants`](Self::allow_tenants).
    pub fn multi_tenant() -> Self {
        Self::new("organizations".into(), true)
    }

    /// A multi-tenant API through the `common` endpoint (work, school and personal accounts).
    pub fn common() -> Self {
        Self::new("common".into(), true)
    }

    fn new(tenant: String, multi: bool) -> Self {
        AzureAd {
            tenant,
            multi,
            base: format!("https://{PUBLIC_CLOUD}"),
            audiences: Vec::new(),
            tenants: Vec::new(),
            client_apps: Vec::new(),
            v1: true,
            v2: true,
        }
    }

    /// The API's application (client) id: accepted as `aud` both bare (v1 tokens, and v2 tokens
    /// when no Application ID URI is set) and as `api://{client id}`.
    pub fn api(mut self, client_id: impl Into<String>) -> Self {
        let id = client_id.into();
        self.audiences.push(format!("api://{id}"));
        self.audiences.push(id);
        self
    }

    /// Another accepted audience, such as a custom Application ID URI (`https://contoso.com/api`).
    pub fn app_id_uri(mut self, uri: impl Into<String>) -> Self {
        self.audiences.push(uri.into());
        self
    }

    /// The authority host for sovereign clouds (for example `login.microsoftonline.us`,
    /// `login.chinacloudapi.cn`); the v1 issuer is then `https://{host}/{tid}/`. A full base URL
    /// (`http://127.0.0.1:8080`, for tests against a local stand-in) is taken as it is.
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        self.base = if host.contains("://") {
            host.trim_end_matches('/').to_owned()
        } else {
            format!("https://{host}")
        };
        self
    }

    /// Only these tenants (GUIDs; anything else is a `build()` error) may call a multi-tenant
    /// API; others get 401 `invalid_token`.
    pub fn allow_tenants<I, S>(mut self, tenant_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tenants.extend(tenant_ids.into_iter().map(Into::into));
        self
    }

    /// Only these client applications may call the API: `azp` (v2) or `appid` (v1) must be one
    /// of them (APIM's `client-application-ids`); others get 403.
    pub fn allow_client_apps<I, S>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_apps
            .extend(client_ids.into_iter().map(Into::into));
        self
    }

    /// Accept v2 tokens only (the API's manifest says `accessTokenAcceptedVersion: 2`).
    pub fn v2_only(mut self) -> Self {
        self.v1 = false;
        self.v2 = true;
        self
    }

    /// Accept v1 tokens only.
    pub fn v1_only(mut self) -> Self {
        self.v1 = true;
        self.v2 = false;
        self
    }

    fn tenant_part(&self) -> &str {
        if self.multi {
            "{tenantid}"
        } else {
            &self.tenant
        }
    }

    /// The v2 issuer (a `{tenantid}` template for multi-tenant APIs).
    pub fn v2_issuer(&self) -> String {
        format!("{}/{}/v2.0", self.base, self.tenant_part())
    }

    /// The v1 issuer (a `{tenantid}` template for multi-tenant APIs).
    pub fn v1_issuer(&self) -> String {
        format!("{}{}/", self.v1_prefix(), self.tenant_part())
    }

    fn v1_prefix(&self) -> String {
        if self.base == format!("https://{PUBLIC_CLOUD}") {
            format!("https://{V1_HOST}/")
        } else {
            format!("{}/", self.base)
        }
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.base, self.tenant
        )
    }

    /// The configuration as a [`ValidateJwtBuilder`], ready for requirements and other settings.
    pub fn builder(self) -> ValidateJwtBuilder {
        let not_guid = |t: &String| !crate::issuer::is_guid(t);
        if !self.multi && not_guid(&self.tenant) {
            return ValidateJwtBuilder::new().fail(ConfigError::InvalidSetting {
                setting: "AzureAd::tenant",
                reason: format!(
                    "{:?}: the tenant must be its GUID (the portal's \"Directory (tenant) \
                     ID\"); tokens name their tenant by GUID, never by domain",
                    self.tenant
                ),
            });
        }
        if let Some(bad) = self.tenants.iter().find(|t| not_guid(t)) {
            return ValidateJwtBuilder::new().fail(ConfigError::InvalidSetting {
                setting: "AzureAd::allow_tenants",
                reason: format!("{bad:?} is not a tenant GUID (a token's `tid` always is one)"),
            });
        }
        // The source signs for exactly the issuers of the accepted token versions (the
        // discovery document is still checked against its URL).
        let mut issuers = Vec::new();
        if self.v2 {
            issuers.push(self.v2_issuer());
        }
        if self.v1 {
            issuers.push(self.v1_issuer());
        }
        let remote = RemoteJwks::discovery_url(&self.discovery_url()).with_issuers(issuers);
        let mut b = ValidateJwtBuilder::new().azure_v1_equivalence(Some(crate::issuer::AzureV1 {
            v1_prefix: self.v1_prefix().into(),
            v2_prefix: format!("{}/", self.base).into(),
            accept: self.v1,
        }));
        b = match remote.build() {
            Ok(remote) => b.add_key_source(remote),
            Err(e) => b.fail(e),
        };
        for aud in self.audiences {
            b = b.add_audience(aud);
        }
        if !self.tenants.is_empty() {
            b = b.allow_tenants(self.tenants);
        }
        if !self.client_apps.is_empty() {
            b = b.require(Requirement::any([
                Requirement::claim("azp").any_of(self.client_apps.clone()),
                Requirement::claim("appid").any_of(self.client_apps),
            ]));
        }
        b
    }
}

impl Requirement {
    /// Microsoft.Identity.Web's rule: a delegated token (with `scp`) needs one of `scopes`, an
    /// application token (with `roles`) one of `app_roles`; a token with neither is refused.
    ///
    /// ```
    /// use validate_jwt::{Claims, Requirement};
    /// let rule = Requirement::scope_or_app_role(["Files.Read"], ["Files.Read.All"]);
    /// # let _ = rule;
    /// ```
    pub fn scope_or_app_role<I, S, J, R>(scopes: I, app_roles: J) -> Requirement
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        J: IntoIterator<Item = R>,
        R: Into<String>,
    {
        Requirement::any([
            Requirement::any_scope(scopes),
            Requirement::any_role(app_roles),
        ])
    }
}
