//! APIM policy import: the shapes of Microsoft's published `validate-jwt` and
//! `validate-azure-ad-token` examples, each imported and then run through the layer with real
//! signed tokens (accepted and refused), against a real discovery/JWKS server on 127.0.0.1; and
//! every malformed shape refused with its position.
#![cfg(feature = "apim")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/key_server.rs"]
mod key_server;

use base64::Engine as _;
use common::*;
use key_server::KeyServer;
use serde_json::{Value, json};
use validate_jwt::apim::{Policy, PolicyError, PolicyErrorKind, Resources};
use validate_jwt::{JwtErrorKind, ValidateJwtLayer};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const API: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
const CLIENT: &str = "9b7e2d4a-1c3f-4e5d-8a6b-0f1e2d3c4b5a";
const SECRET: &[u8] = b"the APIM named value jwt-signing-key, 256 bits or more";
const MESSAGE: &str = "Unauthorized. Access token is missing or invalid.";

fn import(xml: &str, resources: &Resources) -> Policy {
    Policy::parse(xml, resources).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

async fn layer(xml: &str, resources: &Resources) -> ValidateJwtLayer {
    let layer = import(xml, resources).into_builder().build().unwrap();
    layer.ready().await.unwrap();
    layer
}

fn claims_for(iss: &str, aud: &str) -> Value {
    json!({"iss": iss, "aud": aud, "sub": "alice", "exp": now() + 600, "iat": now()})
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

/// A token without `kid` (APIM examples' keys carry no `id`).
fn kidless(key: &TestKey, claims: &Value) -> String {
    key.sign(&json!({"alg": key.alg, "typ": "JWT"}), claims)
}

/// Every refusal of an imported policy is 401 (APIM's `failed-validation-httpcode` default).
#[track_caller]
fn assert_refused(answer: &Answer, kind: JwtErrorKind) {
    assert_eq!(answer.status, 401, "{answer:?}");
    assert_eq!(answer.kind(), Some(kind), "{answer:?}");
}

/// (line, column) of the first `needle` in `xml`, as the importer counts them.
fn position_of(xml: &str, needle: &str) -> (u32, u32) {
    let at = xml
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {xml}"));
    let before = &xml[..at];
    let line = before.matches('\n').count() as u32 + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() as u32 + 1;
    (line, column)
}

#[track_caller]
fn assert_error(err: &PolicyError, kind: PolicyErrorKind, xml: &str, needle: &str) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(
        (err.line(), err.column()),
        position_of(xml, needle),
        "{err} (expected at {needle:?})"
    );
}

fn b64_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---- Microsoft's examples, through the layer ------------------------------------------------

#[tokio::test]
async fn simple_token_validation_with_a_base64_signing_key() {
    // "Simple token validation", with a literal audience for the host expression.
    let xml = r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
    <issuer-signing-keys>
        <key>{{jwt-signing-key}}</key>  <!-- signing key specified as a named value -->
    </issuer-signing-keys>
    <audiences>
        <audience>contoso.azure-api.net</audience>
    </audiences>
    <issuers>
        <issuer>http://contoso.com/</issuer>
    </issuers>
</validate-jwt>"#;
    let resources = Resources::new().add_named_value("jwt-signing-key", b64_standard(SECRET));
    let policy = import(xml, &resources);
    assert!(
        policy.notes()[0].message().contains("without `id`"),
        "{:?}",
        policy.notes()
    );
    let layer = layer(xml, &resources).await;
    let key = TestKey::hmac("k", "HS256", SECRET);
    let good = claims_for("http://contoso.com/", "contoso.azure-api.net");
    assert_accepted(&call(&layer, &kidless(&key, &good)).await);

    let other_issuer = with(good.clone(), "iss", json!("http://fabrikam.com/"));
    assert_refused(
        &call(&layer, &kidless(&key, &other_issuer)).await,
        JwtErrorKind::InvalidIssuer,
    );
    let other_audience = with(good.clone(), "aud", json!("fabrikam.azure-api.net"));
    assert_refused(
        &call(&layer, &kidless(&key, &other_audience)).await,
        JwtErrorKind::InvalidAudience,
    );
    let wrong_key = TestKey::hmac("k", "HS256", b"another secret, also 256 bits or more!!");
    assert_refused(
        &call(&layer, &kidless(&wrong_key, &good)).await,
        JwtErrorKind::InvalidSignature,
    );
    // APIM's clock-skew default is 0: a token expired 5 seconds ago is refused (the layer's own
    // default leeway of 60 s would accept it).
    let just_expired = with(good.clone(), "exp", json!(now() - 5));
    assert_refused(
        &call(&layer, &kidless(&key, &just_expired)).await,
        JwtErrorKind::Expired,
    );
    // A key without `id` verifies tokens without `kid` only (the note above says so).
    assert_refused(
        &call(&layer, &key.token(&good)).await,
        JwtErrorKind::UnknownKey,
    );
}

#[tokio::test]
async fn the_published_simple_example_names_its_audience_expression() {
    let xml = r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
    <issuer-signing-keys>
        <key>{{jwt-signing-key}}</key>  <!-- signing key specified as a named value -->
    </issuer-signing-keys>
    <audiences>
        <audience>@(context.Request.OriginalUrl.Host)</audience>  <!-- audience is set to API Management host name -->
    </audiences>
    <issuers>
        <issuer>http://contoso.com/</issuer>
    </issuers>
</validate-jwt>"#;
    let resources = Resources::new().add_named_value("jwt-signing-key", b64_standard(SECRET));
    let err = Policy::parse(xml, &resources).unwrap_err();
    assert_error(&err, PolicyErrorKind::Expression, xml, "@(context");
    assert!(err.message().contains("<audience>"), "{err}");
}

#[tokio::test]
async fn azure_ad_v2_openid_config_with_audiences_and_a_required_claim() {
    let key = TestKey::rsa("entra-key", "RS256");
    let server = KeyServer::start();
    let issuer = format!("{}/{TENANT}/v2.0", server.origin());
    server.serve_discovery(
        &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
        &issuer,
        "/keys",
    );
    server.serve_json("/keys", &jwks(&[&key]));
    let xml = format!(
        r#"<validate-jwt header-name="Authorization" failed-validation-httpcode="401" failed-validation-error-message="{MESSAGE}">
    <openid-config url="{}/{{{{aad-tenant}}}}/v2.0/.well-known/openid-configuration" />
    <audiences>
        <audience>{API}</audience>
    </audiences>
    <required-claims>
        <claim name="roles" match="all">
            <value>Files.Read</value>
        </claim>
    </required-claims>
</validate-jwt>"#,
        server.origin()
    );
    let resources = Resources::new().add_named_value("aad-tenant", TENANT);
    let layer = layer(&xml, &resources).await;
    let good = with(claims_for(&issuer, API), "roles", json!(["Files.Read"]));
    assert_accepted(&call(&layer, &key.token(&good)).await);

    let answer = call(
        &layer,
        &key.token(&with(good.clone(), "aud", json!("other"))),
    )
    .await;
    assert_refused(&answer, JwtErrorKind::InvalidAudience);
    assert_eq!(answer.body["error_description"], MESSAGE);
    // A missing claim is 401 too (APIM answers every failure with failed-validation-httpcode).
    let answer = call(&layer, &key.token(&with(good.clone(), "roles", json!([])))).await;
    assert_refused(&answer, JwtErrorKind::InsufficientScope);
    assert_eq!(answer.body["error_description"], MESSAGE);
    let foreign = with(
        good,
        "iss",
        json!("https://login.microsoftonline.com/other/v2.0"),
    );
    assert_refused(
        &call(&layer, &key.token(&foreign)).await,
        JwtErrorKind::InvalidIssuer,
    );
}

#[tokio::test]
async fn azure_ad_v1_openid_config_by_domain_names_the_sts_issuer() {
    // "Microsoft Entra ID single tenant token validation": the v1 metadata URL with the tenant's
    // domain, whose document names https://sts.windows.net/{tid}/ as issuer.
    let key = TestKey::rsa("v1-key", "RS256");
    let server = KeyServer::start();
    let sts = format!("https://sts.windows.net/{TENANT}/");
    server.serve_discovery(
        "/contoso.onmicrosoft.com/.well-known/openid-configuration",
        &sts,
        "/common/discovery/keys",
    );
    server.serve_json("/common/discovery/keys", &jwks(&[&key]));
    let xml = format!(
        r#"<validate-jwt header-name="Authorization" failed-validation-httpcode="401" failed-validation-error-message="{MESSAGE}">
    <openid-config url="{}/contoso.onmicrosoft.com/.well-known/openid-configuration" />
    <audiences>
        <audience>api://{API}</audience>
    </audiences>
    <required-claims>
        <claim name="appid" match="all">
            <value>{CLIENT}</value>
        </claim>
    </required-claims>
</validate-jwt>"#,
        server.origin()
    );
    let layer = layer(&xml, &Resources::new()).await;
    let good = with(
        claims_for(&sts, &format!("api://{API}")),
        "appid",
        json!(CLIENT),
    );
    assert_accepted(&call(&layer, &key.token(&good)).await);
    // The issuer the URL would derive is not the document's: refused.
    let derived = with(
        good.clone(),
        "iss",
        json!(format!("{}/contoso.onmicrosoft.com", server.origin())),
    );
    assert_refused(
        &call(&layer, &key.token(&derived)).await,
        JwtErrorKind::InvalidIssuer,
    );
    let other_app = with(good, "appid", json!("another-client"));
    assert_refused(
        &call(&layer, &key.token(&other_app)).await,
        JwtErrorKind::InsufficientScope,
    );
}

#[tokio::test]
async fn azure_ad_b2c_openid_config() {
    // "Azure Active Directory B2C token validation": the tfp metadata URL; the document names
    // the b2clogin issuer with the tenant's GUID.
    let key = TestKey::rsa("b2c-key", "RS256");
    let server = KeyServer::start();
    let issuer = format!("https://contoso.b2clogin.com/{TENANT}/v2.0/");
    let path = "/tfp/contoso.onmicrosoft.com/b2c_1_signin/v2.0/.well-known/openid-configuration";
    server.serve_discovery(path, &issuer, "/b2c_1_signin/discovery/v2.0/keys");
    server.serve_json("/b2c_1_signin/discovery/v2.0/keys", &jwks(&[&key]));
    let xml = format!(
        r#"<validate-jwt header-name="Authorization" failed-validation-httpcode="401" failed-validation-error-message="{MESSAGE}">
    <openid-config url="{}{path}" />
    <audiences>
        <audience>{API}</audience>
    </audiences>
    <required-claims>
        <claim name="tfp" match="all">
            <value>B2C_1_signin</value>
        </claim>
    </required-claims>
</validate-jwt>"#,
        server.origin()
    );
    let layer = layer(&xml, &Resources::new()).await;
    let good = with(claims_for(&issuer, API), "tfp", json!("B2C_1_signin"));
    assert_accepted(&call(&layer, &key.token(&good)).await);
    let other_flow = with(good.clone(), "tfp", json!("B2C_1_other"));
    assert_refused(
        &call(&layer, &key.token(&other_flow)).await,
        JwtErrorKind::InsufficientScope,
    );
    let unknown_key = TestKey::rsa("b2c-key", "RS256");
    assert_refused(
        &call(&layer, &unknown_key.token(&good)).await,
        JwtErrorKind::InvalidSignature,
    );
}

#[tokio::test]
async fn issuer_signing_keys_with_n_and_e() {
    let key = TestKey::rsa("rsa-1", "RS256");
    let jwk = key.jwk(false);
    let (n, e) = (jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap());
    // The same modulus in the standard alphabet with padding, as the published gist writes it.
    let n_standard = b64_standard(&key.rsa_modulus());
    for n in [n.to_owned(), n_standard] {
        let xml = format!(
            r#"<validate-jwt header-name="Authorization">
    <issuer-signing-keys>
        <key id="rsa-1" n="{n}" e="{e}" />
    </issuer-signing-keys>
    <audiences><audience>{AUDIENCE}</audience></audiences>
    <issuers><issuer>{ISSUER}</issuer></issuers>
</validate-jwt>"#
        );
        let policy = import(&xml, &Resources::new());
        assert!(policy.notes().is_empty(), "{:?}", policy.notes());
        let layer = layer(&xml, &Resources::new()).await;
        assert_accepted(&call(&layer, &key.token(&claims())).await);
        let impostor = TestKey::rsa("rsa-1", "RS256");
        assert_refused(
            &call(&layer, &impostor.token(&claims())).await,
            JwtErrorKind::InvalidSignature,
        );
        let other_kid = TestKey::rsa("rsa-2", "RS256");
        assert_refused(
            &call(&layer, &other_kid.token(&claims())).await,
            JwtErrorKind::UnknownKey,
        );
    }
}

#[tokio::test]
async fn a_certificate_id_uses_the_certificate_the_caller_supplies() {
    let key = TestKey::rsa("cert-key", "RS256");
    let xml = format!(
        r#"<validate-jwt header-name="Authorization" require-scheme="Bearer">
    <issuer-signing-keys>
        <key id="cert-key" certificate-id="my-rsa-cert" />
    </issuer-signing-keys>
    <audiences><audience>{AUDIENCE}</audience></audiences>
    <issuers><issuer>{ISSUER}</issuer></issuers>
</validate-jwt>"#
    );
    let err = Policy::parse(&xml, &Resources::new()).unwrap_err();
    assert_error(&err, PolicyErrorKind::Unresolved, &xml, "certificate-id=");
    let resources = Resources::new().add_certificate("my-rsa-cert", key.public_pem());
    let layer = layer(&xml, &resources).await;
    assert_accepted(&call(&layer, &key.token(&claims())).await);
    assert_refused(
        &call(&layer, &TestKey::rsa("cert-key", "RS256").token(&claims())).await,
        JwtErrorKind::InvalidSignature,
    );
}

#[tokio::test]
async fn required_claims_with_match_any_and_a_separator() {
    // "Authorize access to operations based on token claims" in a whole document, with its
    // <choose> written as APIM writes expressions (raw quotes and `&&` in the attribute), plus a
    // separator-split claim.
    let xml = format!(
        r#"<policies><inbound>
<validate-jwt header-name="Authorization" require-scheme="Bearer" output-token-variable-name="jwt">
    <issuer-signing-keys>
        <key id="k">{{{{jwt-signing-key}}}}</key>
    </issuer-signing-keys>
    <audiences>
        <audience>{AUDIENCE}</audience>
    </audiences>
    <issuers>
        <issuer>{ISSUER}</issuer>
    </issuers>
    <required-claims>
        <claim name="group" match="any">
            <value>finance</value>
            <value>logistics</value>
        </claim>
        <claim name="permissions" match="all" separator=";">
            <value>read</value>
            <value>write</value>
        </claim>
        <claim name="level" match="any">
            <value>5</value>
        </claim>
    </required-claims>
</validate-jwt>
<choose>
    <when condition="@(context.Request.Method == "POST" && !((Jwt)context.Variables["jwt"]).Claims["group"].Contains("finance"))">
        <return-response>
            <set-status code="403" reason="Forbidden" />
        </return-response>
    </when>
</choose>
<set-header name="x-user-oid" exists-action="override">
    <value>@(context.Variables.GetValueOrDefault<Jwt>("jwt")?.Claims.GetValueOrDefault("oid", ""))</value>
</set-header>
</inbound></policies>"#
    );
    let resources = Resources::new().add_named_value("jwt-signing-key", b64_standard(SECRET));
    let policy = import(&xml, &resources);
    let notes: Vec<&str> = policy.notes().iter().map(|n| n.message()).collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].contains("output-token-variable-name"), "{notes:?}");
    assert!(
        notes[1].starts_with("<choose> is not imported"),
        "{notes:?}"
    );
    assert!(
        notes[2].starts_with("<set-header> is not imported"),
        "{notes:?}"
    );
    let layer = layer(&xml, &resources).await;
    let key = TestKey::hmac("k", "HS256", SECRET);
    let base = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now() + 600,
        "permissions": "read;write;delete", "level": 5});
    for group in [json!("logistics"), json!(["hr", "finance"])] {
        let token = key.token(&with(base.clone(), "group", group.clone()));
        assert_accepted(&call(&layer, &token).await);
    }
    // `level` is compared as text: the string "5" passes too.
    let text_level = with(
        with(base.clone(), "group", json!("finance")),
        "level",
        json!("5"),
    );
    assert_accepted(&call(&layer, &key.token(&text_level)).await);
    for (name, value) in [
        ("group", json!("hr")),
        ("group", json!(["hr"])),
        ("permissions", json!("read;delete")),
        ("permissions", json!("read,write")),
        ("level", json!(4)),
    ] {
        let claims = with(
            with(base.clone(), "group", json!("finance")),
            name,
            value.clone(),
        );
        assert_refused(
            &call(&layer, &key.token(&claims)).await,
            JwtErrorKind::InsufficientScope,
        );
    }
}

#[tokio::test]
async fn validate_azure_ad_token_with_client_application_ids() {
    let key = TestKey::rsa("entra", "RS256");
    let server = KeyServer::start();
    let base = server.origin();
    server.serve_discovery(
        &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
        &format!("{base}/{TENANT}/v2.0"),
        &format!("/{TENANT}/discovery/v2.0/keys"),
    );
    server.serve_json(&format!("/{TENANT}/discovery/v2.0/keys"), &jwks(&[&key]));
    // The published minimal form, with the backend's id and a stand-in authority.
    let xml = format!(
        r#"<validate-azure-ad-token tenant-id="{{{{aad-tenant-id}}}}" authentication-endpoint="{base}">
    <client-application-ids>
        <application-id>{{{{aad-client-application-id}}}}</application-id>
    </client-application-ids>
    <backend-application-ids>
        <application-id>{API}</application-id>
    </backend-application-ids>
</validate-azure-ad-token>"#
    );
    let resources = Resources::new()
        .add_named_value("aad-tenant-id", TENANT)
        .add_named_value("aad-client-application-id", CLIENT);
    let layer = layer(&xml, &resources).await;
    let v2 = json!({"iss": format!("{base}/{TENANT}/v2.0"), "aud": API, "tid": TENANT,
        "azp": CLIENT, "sub": "s", "exp": now() + 600});
    assert_accepted_sub(&call(&layer, &key.token(&v2)).await);
    let v1 = json!({"iss": format!("{base}/{TENANT}/"), "aud": format!("api://{API}"),
        "tid": TENANT, "appid": CLIENT, "sub": "s", "exp": now() + 600});
    assert_accepted_sub(&call(&layer, &key.token(&v1)).await);
    assert_refused(
        &call(
            &layer,
            &key.token(&with(v2.clone(), "azp", json!("another-app"))),
        )
        .await,
        JwtErrorKind::InsufficientScope,
    );
    assert_refused(
        &call(
            &layer,
            &key.token(&with(v2.clone(), "aud", json!("another-api"))),
        )
        .await,
        JwtErrorKind::InvalidAudience,
    );
    let other_tenant = "11111111-1111-1111-1111-111111111111";
    let foreign = with(
        with(v2, "iss", json!(format!("{base}/{other_tenant}/v2.0"))),
        "tid",
        json!(other_tenant),
    );
    assert_refused(
        &call(&layer, &key.token(&foreign)).await,
        JwtErrorKind::InvalidIssuer,
    );
}

#[track_caller]
fn assert_accepted_sub(answer: &Answer) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["claims"]["sub"], "s", "{answer:?}");
}

/// The README's gateway policy (`examples/apim_policy.xml`, the seed's): `openid-config` and a
/// required `aud` claim, no `<audiences>`, in a whole policy document.
const GATEWAY_POLICY: &str = include_str!("../examples/apim_policy.xml");

#[tokio::test]
async fn the_openid_config_and_aud_claim_policy_runs_unchanged() {
    let key = TestKey::rsa("entra", "RS256");
    let server = KeyServer::start();
    let issuer = format!("{}/{TENANT}/v2.0", server.origin());
    server.serve_discovery(
        &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
        &issuer,
        "/keys",
    );
    server.serve_json("/keys", &jwks(&[&key]));
    // The policy points at login.microsoftonline.com; the test serves its stand-in instead.
    let xml = GATEWAY_POLICY.replace("https://login.microsoftonline.com", &server.origin());
    let resources = Resources::new()
        .add_named_value("tenant-id", TENANT)
        .add_named_value("backend-app-id", API);
    let policy = import(&xml, &resources);
    let notes: Vec<String> = policy.notes().iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "line 6, column 9: <base> is not imported: only the validation policy is read",
            "line 17, column 9: <base> in <backend> is not imported: only the validation policy is read",
            "line 20, column 9: <base> in <outbound> is not imported: only the validation policy is read",
            "line 23, column 9: <base> in <on-error> is not imported: only the validation policy is read",
        ]
    );
    let layer = layer(&xml, &resources).await;
    assert_accepted(&call(&layer, &key.token(&claims_for(&issuer, API))).await);
    let answer = call(&layer, &key.token(&claims_for(&issuer, "api://another"))).await;
    assert_refused(&answer, JwtErrorKind::InvalidAudience);
    assert_eq!(answer.body["error_description"], MESSAGE);
    let app = axum::Router::new()
        .route("/", axum::routing::get(echo))
        .layer(layer);
    let no_token = http::Request::get("/")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, kind, body) = respond(app, no_token).await;
    assert_eq!((status, kind), (401, Some(JwtErrorKind::Missing)));
    assert_eq!(body["error_description"], MESSAGE);
}

#[tokio::test]
async fn clock_skew_and_require_expiration_time() {
    let key = TestKey::hmac("k", "HS256", SECRET);
    let xml = |attrs: &str| {
        format!(
            r#"<validate-jwt header-name="Authorization" {attrs}>
    <issuer-signing-keys><key id="k">{}</key></issuer-signing-keys>
    <audiences><audience>{AUDIENCE}</audience></audiences>
    <issuers><issuer>{ISSUER}</issuer></issuers>
</validate-jwt>"#,
            b64_standard(SECRET)
        )
    };
    let expired_a_minute_ago = key.token(&with(claims(), "exp", json!(now() - 60)));
    let lenient = layer(&xml(r#"clock-skew="120""#), &Resources::new()).await;
    assert_accepted(&call(&lenient, &expired_a_minute_ago).await);
    let timespan = layer(&xml(r#"clock-skew="00:02:00""#), &Resources::new()).await;
    assert_accepted(&call(&timespan, &expired_a_minute_ago).await);
    let strict = layer(&xml(""), &Resources::new()).await;
    assert_refused(
        &call(&strict, &expired_a_minute_ago).await,
        JwtErrorKind::Expired,
    );
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_refused(
        &call(&strict, &key.token(&no_exp)).await,
        JwtErrorKind::InvalidClaims,
    );
    let optional = layer(
        &xml(r#"require-expiration-time="false""#),
        &Resources::new(),
    )
    .await;
    assert_accepted(&call(&optional, &key.token(&no_exp)).await);
}

#[tokio::test]
async fn a_custom_header_and_a_query_parameter() {
    let key = TestKey::hmac("k", "HS256", SECRET);
    let xml = format!(
        r#"<validate-jwt header-name="X-Api-Token" query-parameter-name="access_token" require-scheme="Bearer" failed-validation-httpcode="403">
    <issuer-signing-keys><key id="k">{}</key></issuer-signing-keys>
    <audiences><audience>{AUDIENCE}</audience></audiences>
    <issuers><issuer>{ISSUER}</issuer></issuers>
</validate-jwt>"#,
        b64_standard(SECRET)
    );
    let policy = import(&xml, &Resources::new());
    assert!(
        policy.notes()[0]
            .message()
            .contains("require-scheme is ignored"),
        "{:?}",
        policy.notes()
    );
    let layer = policy.into_builder().build().unwrap();
    let token = key.token(&claims());
    let app = axum::Router::new()
        .route("/", axum::routing::get(echo))
        .layer(layer);
    let get = |uri: String, header: Option<&str>| {
        let mut r = http::Request::get(uri);
        if let Some(h) = header {
            r = r.header("x-api-token", h);
        }
        r.body(axum::body::Body::empty()).unwrap()
    };
    let (status, _, _) = respond(app.clone(), get("/".into(), Some(&token))).await;
    assert_eq!(status, 200);
    let (status, _, _) = respond(app.clone(), get(format!("/?access_token={token}"), None)).await;
    assert_eq!(status, 200);
    let (status, kind, _) = respond(app, get("/".into(), None)).await;
    assert_eq!((status, kind), (403, Some(JwtErrorKind::Missing)));
}

// ---- documents -------------------------------------------------------------------------------

#[test]
fn a_document_must_hold_exactly_one_validation_policy_directly_in_inbound() {
    let jwt = r#"<validate-jwt header-name="Authorization"><issuer-signing-keys><key id="k">c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0</key></issuer-signing-keys><audiences><audience>a</audience></audiences><issuers><issuer>i</issuer></issuers></validate-jwt>"#;
    let two = format!("<policies>\n  <inbound>\n    {jwt}\n    {jwt}\n  </inbound>\n</policies>");
    let err = Policy::parse(&two, &Resources::new()).unwrap_err();
    assert_eq!(err.kind(), PolicyErrorKind::Order);
    assert_eq!((err.line(), err.column()), (4, 5));

    let nested = format!(
        "<policies>\n  <inbound>\n    <choose>\n      <when condition=\"@(true)\">\n        {jwt}\n      </when>\n    </choose>\n  </inbound>\n</policies>"
    );
    let err = Policy::parse(&nested, &Resources::new()).unwrap_err();
    assert_error(&err, PolicyErrorKind::Unsupported, &nested, "<validate-jwt");

    let outbound = format!("<policies>\n  <outbound>\n    {jwt}\n  </outbound>\n</policies>");
    let err = Policy::parse(&outbound, &Resources::new()).unwrap_err();
    assert_error(
        &err,
        PolicyErrorKind::Unsupported,
        &outbound,
        "<validate-jwt",
    );

    let none = "<policies>\n  <inbound>\n    <base />\n  </inbound>\n</policies>";
    let err = Policy::parse(none, &Resources::new()).unwrap_err();
    assert_error(&err, PolicyErrorKind::Missing, none, "<policies");

    let other = "<configuration/>";
    let err = Policy::parse(other, &Resources::new()).unwrap_err();
    assert_error(
        &err,
        PolicyErrorKind::UnknownElement,
        other,
        "<configuration",
    );

    let fragment = format!("<fragment>\n  {jwt}\n</fragment>");
    assert!(Policy::parse(&fragment, &Resources::new()).is_ok());
}

// ---- malformed shapes, each with its position ------------------------------------------------

#[test]
fn every_malformed_shape_is_a_specific_error_at_its_position() {
    const KEYS: &str = r#"<issuer-signing-keys><key id="k">{{key}}</key></issuer-signing-keys>"#;
    let resources = Resources::new()
        .add_named_value("key", b64_standard(SECRET))
        .add_named_value("host-expression", "@(context.Request.OriginalUrl.Host)")
        .add_named_value("tenant", TENANT);
    let ok_body = format!(
        "  {KEYS}\n  <audiences><audience>a</audience></audiences>\n  <issuers><issuer>i</issuer></issuers>\n"
    );
    let jwt = |attrs: &str, body: &str| {
        format!("<validate-jwt header-name=\"Authorization\"{attrs}>\n{body}</validate-jwt>")
    };
    let cases: Vec<(String, PolicyErrorKind, &str)> = vec![
        // Malformed XML.
        (
            jwt("", "  <audiences>\n    <audience>a</audience>\n</validate-jwt>"),
            PolicyErrorKind::Xml,
            "</validate-jwt>",
        ),
        (
            jwt(" clock-skew=\"1", &ok_body),
            PolicyErrorKind::Xml,
            "<validate-jwt",
        ),
        (
            format!("<!DOCTYPE x [<!ENTITY e \"e\">]>\n{}", jwt("", &ok_body)),
            PolicyErrorKind::Xml,
            "<!DOCTYPE",
        ),
        (
            jwt("", &ok_body.replace("<audience>a", "<audience>&e;")),
            PolicyErrorKind::Xml,
            "&e;",
        ),
        // Expressions.
        (
            jwt(
                " failed-validation-error-message=\"@(&quot;no&quot;)\"",
                &ok_body,
            ),
            PolicyErrorKind::Expression,
            "failed-validation-error-message",
        ),
        (
            jwt(
                "",
                &ok_body.replace("<issuer>i", "<issuer>@{ return \"i\"; }"),
            ),
            PolicyErrorKind::Expression,
            "@{",
        ),
        (
            jwt(
                "",
                &ok_body.replace("<audience>a", "<audience>{{host-expression}}"),
            ),
            PolicyErrorKind::Expression,
            "{{host-expression}}",
        ),
        // Unknown attributes and elements.
        (
            jwt(" validate-everything=\"true\"", &ok_body),
            PolicyErrorKind::UnknownAttribute,
            "validate-everything",
        ),
        (
            jwt("", &ok_body.replace("<key id=", "<key kid=")),
            PolicyErrorKind::UnknownAttribute,
            "kid=",
        ),
        (
            jwt("", &format!("{ok_body}  <audience>a</audience>\n")),
            PolicyErrorKind::UnknownElement,
            "<audience>a</audience>\n</validate-jwt",
        ),
        (
            jwt(
                "",
                &ok_body.replace("<audience>a</audience>", "<aud>a</aud>"),
            ),
            PolicyErrorKind::UnknownElement,
            "<aud>",
        ),
        (
            jwt("", &ok_body.replace("<issuers>", "<issuers>stray text")),
            PolicyErrorKind::UnknownElement,
            "stray text",
        ),
        // Order and repetition.
        (
            jwt(
                "",
                &format!(
                    "  <audiences><audience>a</audience></audiences>\n  {KEYS}\n  <issuers><issuer>i</issuer></issuers>\n"
                ),
            ),
            PolicyErrorKind::Order,
            "<issuer-signing-keys>",
        ),
        (
            jwt(
                "",
                &format!("{ok_body}  <issuers><issuer>j</issuer></issuers>\n"),
            ),
            PolicyErrorKind::Order,
            "<issuers><issuer>j",
        ),
        // Unresolved named values and certificates.
        (
            jwt("", &ok_body.replace("<issuer>i", "<issuer>{{issuer-name}}")),
            PolicyErrorKind::Unresolved,
            "{{issuer-name}}",
        ),
        (
            jwt(" header-name=\"{{header\"", &ok_body).replace(" header-name=\"Authorization\"", ""),
            PolicyErrorKind::Unresolved,
            "header-name",
        ),
        (
            jwt(
                "",
                &ok_body.replace(
                    "<key id=\"k\">{{key}}</key>",
                    "<key certificate-id=\"pfx\" />",
                ),
            ),
            PolicyErrorKind::Unresolved,
            "certificate-id",
        ),
        // What the layer does not do.
        (
            jwt(
                "",
                &format!(
                    "{ok_body}  <decryption-keys><key certificate-id=\"c\" /></decryption-keys>\n"
                ),
            ),
            PolicyErrorKind::Unsupported,
            "<decryption-keys>",
        ),
        (
            jwt(
                " token-value=\"@(context.Request.Headers.GetValueOrDefault(&quot;X&quot;))\"",
                &ok_body,
            ),
            PolicyErrorKind::Expression,
            "token-value",
        ),
        (
            jwt(" token-value=\"eyJhbGciOi\"", &ok_body),
            PolicyErrorKind::Unsupported,
            "token-value",
        ),
        (
            jwt(" require-signed-tokens=\"false\"", &ok_body),
            PolicyErrorKind::Unsupported,
            "require-signed-tokens",
        ),
        // Missing pieces.
        (
            jwt("", &ok_body).replace(" header-name=\"Authorization\"", ""),
            PolicyErrorKind::Missing,
            "<validate-jwt",
        ),
        (
            jwt("", "  <audiences><audience>a</audience></audiences>\n"),
            PolicyErrorKind::Missing,
            "<validate-jwt",
        ),
        (
            jwt(
                "",
                &format!(
                    "{ok_body}  <required-claims><claim name=\"group\" /></required-claims>\n"
                ),
            ),
            PolicyErrorKind::Missing,
            "<claim",
        ),
        (
            jwt(
                "",
                &ok_body.replace("<key id=\"k\">{{key}}</key>", "<key id=\"k\" n=\"AQAB\" />"),
            ),
            PolicyErrorKind::Missing,
            "<key",
        ),
        (
            jwt("", &format!("  {KEYS}\n  <audiences />\n")),
            PolicyErrorKind::Missing,
            "<audiences",
        ),
        // Values of the wrong form.
        (
            jwt(" clock-skew=\"two minutes\"", &ok_body),
            PolicyErrorKind::InvalidValue,
            "clock-skew",
        ),
        (
            jwt(" failed-validation-httpcode=\"500\"", &ok_body),
            PolicyErrorKind::InvalidValue,
            "failed-validation-httpcode",
        ),
        (
            jwt(" require-expiration-time=\"yes\"", &ok_body),
            PolicyErrorKind::InvalidValue,
            "require-expiration-time",
        ),
        (
            jwt(
                "",
                &format!(
                    "{ok_body}  <required-claims><claim name=\"g\" match=\"some\"><value>x</value></claim></required-claims>\n"
                ),
            ),
            PolicyErrorKind::InvalidValue,
            "match=",
        ),
        (
            jwt("", &ok_body.replace("{{key}}", "c2hvcnQ=")),
            PolicyErrorKind::InvalidValue,
            "<key",
        ),
        (
            jwt("", &ok_body)
                .replace("header-name=\"Authorization\"", "header-name=\"Bad Header\""),
            PolicyErrorKind::InvalidValue,
            "header-name",
        ),
        (
            "<validate-azure-ad-token tenant-id=\"contoso.onmicrosoft.com\" />".to_owned(),
            PolicyErrorKind::InvalidValue,
            "tenant-id",
        ),
        (
            "<validate-azure-ad-token tenant-id=\"{{tenant}}\">\n  <audiences><audience>a</audience></audiences>\n  <client-application-ids><application-id>c</application-id></client-application-ids>\n</validate-azure-ad-token>".to_owned(),
            PolicyErrorKind::Order,
            "<client-application-ids>",
        ),
        (
            "<validate-azure-ad-token tenant-id=\"{{tenant}}\" clock-skew=\"5\" />".to_owned(),
            PolicyErrorKind::UnknownAttribute,
            "clock-skew",
        ),
        (
            "<validate-azure-ad-token header-name=\"Authorization\" />".to_owned(),
            PolicyErrorKind::Missing,
            "<validate-azure-ad-token",
        ),
    ];
    for (xml, kind, needle) in &cases {
        let err = match Policy::parse(xml, &resources) {
            Ok(_) => panic!("accepted:\n{xml}"),
            Err(err) => err,
        };
        assert_eq!(err.kind(), *kind, "{err}\n{xml}");
        assert_eq!(
            (err.line(), err.column()),
            position_of(xml, needle),
            "{err} (expected at {needle:?})\n{xml}"
        );
    }
    // The well-formed body the cases start from is accepted.
    let fine = Policy::parse(&jwt("", &ok_body), &resources).unwrap();
    fine.into_builder().build().unwrap();
}
