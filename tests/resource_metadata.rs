//! RFC 9728 protected resource metadata over a real server on 127.0.0.1: the document the
//! layer derives from its own rules, served without a token at its well-known paths, and the
//! `resource_metadata` parameter of every challenge (HTTP 401/403 and gRPC answers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Value, json};
use validate_jwt::testing::{BadToken, TestIssuer};
use validate_jwt::{
    ConfigError, ProtectedResource, Requirement, StaticKeys, ValidateJwtBuilder, ValidateJwtLayer,
};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A listener on 127.0.0.1 and the server's resource identifier, `http://127.0.0.1:{port}/api`.
async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, format!("http://{addr}/api"))
}

/// Serves `/api` and `/api/admin` (the latter with a per-route scope rule) behind `jwt`.
fn serve(listener: tokio::net::TcpListener, jwt: ValidateJwtLayer) -> SocketAddr {
    let addr = listener.local_addr().unwrap();
    let admin = jwt
        .for_route(Requirement::all_scopes(["api.admin"]))
        .unwrap();
    let app = Router::new()
        .route("/api", get(|| async { "api" }).post(|| async { "posted" }))
        .route("/api/admin", post(|| async { "admin" }).route_layer(admin))
        .layer(jwt);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn started(builder: impl FnOnce(&TestIssuer, &str) -> ValidateJwtBuilder) -> Server {
    let issuer = TestIssuer::start().unwrap();
    let (listener, resource) = listener().await;
    let jwt = builder(&issuer, &resource).build().unwrap();
    let metadata_url = jwt.resource_metadata().unwrap().url().to_owned();
    let addr = serve(listener, jwt);
    Server {
        issuer,
        resource,
        metadata_url,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

struct Server {
    issuer: TestIssuer,
    resource: String,
    metadata_url: String,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn document(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        response.json().await.unwrap()
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::of(request.send().await.unwrap())
    }
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn of(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            challenge: response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: response.headers().clone(),
        }
    }
}

fn scoped(issuer: &TestIssuer, resource: &str) -> ValidateJwtBuilder {
    issuer
        .layer_builder()
        .require_all_scopes(["api.read"])
        .with_resource(ProtectedResource::new(resource).add_scope("api.admin"))
}

#[tokio::test]
async fn the_document_is_served_without_a_token_from_the_layers_own_rules() {
    let server = started(scoped).await;
    assert_eq!(
        server.metadata_url,
        format!("{}{WELL_KNOWN}/api", server.base),
        "§3.1: the well-known path goes between the host and the resource's path"
    );
    let suffixed = server.document(&format!("{WELL_KNOWN}/api")).await;
    assert_eq!(
        suffixed,
        json!({
            "resource": server.resource,
            "authorization_servers": [server.issuer.issuer()],
            "scopes_supported": ["api.read", "api.admin"],
            "bearer_methods_supported": ["header"],
        })
    );
    // The bare well-known path too (clients that do not insert the resource's path).
    assert_eq!(server.document(WELL_KNOWN).await, suffixed);
    // Cacheable, and readable by browser-based clients.
    let response = server.get(WELL_KNOWN).await;
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // Other paths under .well-known are the application's: the layer guards them as usual.
    let other = server
        .call(reqwest::Method::GET, &format!("{WELL_KNOWN}/other"), None)
        .await;
    assert_eq!(other.status, 401);
}

#[tokio::test]
async fn head_and_options_are_answered_and_other_methods_refused() {
    let server = started(scoped).await;
    let path = format!("{WELL_KNOWN}/api");
    let head = server.call(reqwest::Method::HEAD, &path, None).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-type"], "application/json");
    let body_len = server.get(&path).await.bytes().await.unwrap().len();
    assert_eq!(head.headers["content-length"], body_len.to_string());

    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, format!("{}{path}", server.base))
        .header("origin", "https://inspector.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert_eq!(h["access-control-allow-methods"], "GET, HEAD, OPTIONS");
    assert_eq!(h["access-control-allow-headers"], "mcp-protocol-version");

    let post = server.call(reqwest::Method::POST, &path, None).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn every_challenge_points_at_the_metadata() {
    let server = started(scoped).await;
    let pointer = format!(r#"resource_metadata="{}""#, server.metadata_url);

    // No token: the bare challenge, with the pointer alone.
    let none = server.call(reqwest::Method::GET, "/api", None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.challenge.unwrap(), format!("Bearer {pointer}"));

    // A bad token: invalid_token, then the pointer.
    let expired = server
        .issuer
        .token()
        .scopes(["api.read"])
        .sign_bad(BadToken::Expired);
    let bad = server
        .call(reqwest::Method::GET, "/api", Some(&expired))
        .await;
    assert_eq!(bad.status, 401);
    let challenge = bad.challenge.unwrap();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#),
        "{challenge}"
    );
    assert!(challenge.ends_with(&format!(", {pointer}")), "{challenge}");

    // A token without the layer's scope: 403 insufficient_scope with `scope`, then the pointer.
    let unscoped = server.issuer.token().sign();
    let forbidden = server
        .call(reqwest::Method::GET, "/api", Some(&unscoped))
        .await;
    assert_eq!(forbidden.status, 403);
    let challenge = forbidden.challenge.unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(&format!(r#"scope="api.read", {pointer}"#)),
        "{challenge}"
    );

    // A per-route rule (for_route) answers like its layer.
    let reader = server.issuer.token().scopes(["api.read"]).sign();
    assert_eq!(
        server
            .call(reqwest::Method::POST, "/api", Some(&reader))
            .await
            .status,
        200
    );
    let route = server
        .call(reqwest::Method::POST, "/api/admin", Some(&reader))
        .await;
    assert_eq!(route.status, 403);
    let challenge = route.challenge.unwrap();
    assert!(
        challenge.ends_with(&format!(r#"scope="api.admin", {pointer}"#)),
        "{challenge}"
    );
}

#[tokio::test]
async fn grpc_answers_carry_the_pointer_in_their_metadata() {
    let server = started(scoped).await;
    let response = server
        .client
        .post(format!("{}/api", server.base))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    let answer = Answer::of(response);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["grpc-status"], "16");
    assert_eq!(
        answer.challenge.unwrap(),
        format!(r#"Bearer resource_metadata="{}""#, server.metadata_url)
    );
}

#[tokio::test]
async fn bearer_methods_follow_the_token_locations() {
    let server = started(|issuer, resource| {
        issuer
            .layer_builder()
            .add_query_parameter("access_token")
            .with_resource(resource)
    })
    .await;
    let document = server.document(WELL_KNOWN).await;
    assert_eq!(
        document["bearer_methods_supported"],
        json!(["header", "query"])
    );
    // No requirement names a scope: no `scopes_supported`.
    assert!(document.get("scopes_supported").is_none(), "{document}");
    // And the query location works as published.
    let token = server.issuer.token().sign();
    let path = format!("/api?access_token={token}");
    assert_eq!(
        server.call(reqwest::Method::GET, &path, None).await.status,
        200
    );

    // A parameter of another name, a cookie or another header is no RFC 6750 method.
    let server = started(|issuer, resource| {
        issuer
            .layer_builder()
            .with_header_name("x-api-token")
            .add_query_parameter("token")
            .with_resource(resource)
    })
    .await;
    let document = server.document(WELL_KNOWN).await;
    assert_eq!(document["bearer_methods_supported"], json!([]));
}

#[tokio::test]
async fn the_audience_follows_the_resource_when_asked() {
    let server = started(|issuer, resource| {
        ValidateJwtLayer::builder()
            .add_key_source(issuer.remote_jwks().build().unwrap())
            .with_resource_as_audience(resource)
    })
    .await;
    let for_us = server.issuer.token().audience(&server.resource).sign();
    assert_eq!(
        server
            .call(reqwest::Method::GET, "/api", Some(&for_us))
            .await
            .status,
        200
    );
    // A token for the issuer's default audience (another API) is the usual 401.
    let for_another = server.issuer.token().sign();
    let refused = server
        .call(reqwest::Method::GET, "/api", Some(&for_another))
        .await;
    assert_eq!(refused.status, 401);
    let challenge = refused.challenge.unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    // The discovery source's issuer is the authorization server, with no `add_issuer`.
    let document = server.document(WELL_KNOWN).await;
    assert_eq!(
        document["authorization_servers"],
        json!([server.issuer.issuer()])
    );
}

#[tokio::test]
async fn without_a_resource_nothing_changes() {
    let issuer = TestIssuer::start().unwrap();
    let (listener, _) = listener().await;
    let jwt = issuer.layer_builder().build().unwrap();
    assert!(jwt.resource_metadata().is_none());
    let addr = serve(listener, jwt);
    let response = reqwest::get(format!("http://{addr}{WELL_KNOWN}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[test]
fn static_keys_issuers_are_the_authorization_servers_and_templates_are_left_out() {
    let secret = b"a shared secret of at least 32 bytes!";
    let jwt = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(Some("a"), secret)
                .add_issuer("https://a.example"),
        )
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(Some("b"), secret)
                .add_issuer("https://login.example/{tenantid}/v2.0")
                .add_issuer("https://b.example"),
        )
        .add_audience("api://x")
        .with_resource("https://api.example")
        .build()
        .unwrap();
    let document: Value = serde_json::from_str(jwt.resource_metadata().unwrap().json()).unwrap();
    assert_eq!(
        document["authorization_servers"],
        json!(["https://a.example", "https://b.example"])
    );
}

#[test]
fn a_bad_resource_is_a_build_error() {
    let build = |resource: &str| {
        ValidateJwtLayer::builder()
            .add_keys(
                StaticKeys::new().add_hmac_secret(None, b"a shared secret of at least 32 bytes!"),
            )
            .add_issuer("https://issuer.example")
            .with_resource_as_audience(resource)
            .build()
    };
    for resource in [
        "http://api.example/mcp",
        "api://files",
        "https://api.example/#top",
    ] {
        let err = build(resource).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidUrl { url, .. } if url == resource),
            "{resource}: {err}"
        );
    }
    assert!(build("https://api.example/mcp").is_ok());
    assert!(build("http://localhost:8080/mcp").is_ok());
}

#[tokio::test]
async fn a_tonic_client_sees_the_pointer_in_the_status_metadata() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let issuer = TestIssuer::start().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jwt = issuer
        .layer_builder()
        .require_all_scopes(["health.read"])
        .with_resource(format!("http://{addr}"))
        .build()
        .unwrap();
    let metadata_url = jwt.resource_metadata().unwrap().url().to_owned();
    assert_eq!(metadata_url, format!("http://{addr}{WELL_KNOWN}"));
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(jwt)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let challenge = |status: &tonic::Status| {
        status
            .metadata()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    let no_token = client
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        challenge(&no_token).unwrap(),
        format!(r#"Bearer resource_metadata="{metadata_url}""#)
    );

    let mut request = tonic::Request::new(HealthCheckRequest::default());
    let token = issuer.token().sign();
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let no_scope = client.check(request).await.unwrap_err();
    assert_eq!(no_scope.code(), tonic::Code::PermissionDenied);
    let www = challenge(&no_scope).unwrap();
    assert!(
        www.ends_with(&format!(
            r#"scope="health.read", resource_metadata="{metadata_url}""#
        )),
        "{www}"
    );
}

/// With DPoP and certificate binding on, the document says so (RFC 9449 §5.2, RFC 8705 §3.3),
/// from the same settings the layer checks by; the challenges still point at it.
#[tokio::test]
async fn sender_constraints_are_advertised() {
    use validate_jwt::Algorithm;
    use validate_jwt::sender::{ClientCertificates, Dpop};
    let server = started(|issuer, resource| {
        scoped(issuer, resource)
            .with_dpop(
                Dpop::required()
                    .with_algorithms([Algorithm::ES256, Algorithm::EdDSA])
                    .with_public_url(resource.trim_end_matches("/api")),
            )
            .with_client_certificates(ClientCertificates::from_extensions())
    })
    .await;
    let document = server.document(WELL_KNOWN).await;
    assert_eq!(
        document["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(document["dpop_bound_access_tokens_required"], json!(true));
    assert_eq!(
        document["tls_client_certificate_bound_access_tokens"],
        json!(true)
    );
    let refused = server.call(reqwest::Method::GET, "/api", None).await;
    assert_eq!(refused.status, 401);
    let challenge = refused.challenge.unwrap_or_default();
    assert!(
        challenge.starts_with("DPoP ")
            && challenge.contains(&format!(r#"resource_metadata="{}""#, server.metadata_url)),
        "{challenge}"
    );
}
