//! The layer in front of real tonic 0.14 servers on 127.0.0.1, called by a real tonic client:
//! gRPC statuses for every refusal, claims in the handler for a valid token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::LayerExt as _;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use validate_jwt::grpc::ClaimsExt;
use validate_jwt::{
    KeyError, KeyErrorKind, KeySet, KeySource, RefreshFuture, RefreshReason, Requirement,
    StaticKeys, ValidateJwtLayer,
};

/// A health service whose `check` handler reports the caller it sees in the request's
/// extensions, in the `x-subject` and `x-scopes` response metadata.
struct Whoami;

#[derive(serde::Deserialize)]
struct Caller {
    sub: String,
    scp: String,
}

#[tonic::async_trait]
impl Health for Whoami {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let claims = request
            .extensions()
            .claims()
            .ok_or_else(|| Status::internal("the handler got no claims"))?;
        let caller: Caller = request
            .extensions()
            .claims_as()
            .ok_or_else(|| Status::internal("the claims do not fit Caller"))?;
        if claims.subject() != Some(caller.sub.as_str()) {
            return Err(Status::internal("the typed claims disagree"));
        }
        let mut response = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        });
        response
            .metadata_mut()
            .insert("x-subject", caller.sub.parse().unwrap());
        response
            .metadata_mut()
            .insert("x-scopes", caller.scp.parse().unwrap());
        Ok(response)
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

/// A key source that never has keys and cannot get any.
struct Down;

impl KeySource for Down {
    fn current(&self) -> Option<Arc<KeySet>> {
        None
    }
    fn refresh(&self, _: RefreshReason) -> RefreshFuture {
        Box::pin(async { Err(KeyError::new(KeyErrorKind::Connect, "down")) })
    }
}

fn static_keys(key: &TestKey) -> StaticKeys {
    StaticKeys::new()
        .add_jwks(jwks(&[key]).to_string())
        .add_issuer(ISSUER)
}

fn layer(key: &TestKey) -> ValidateJwtLayer {
    ValidateJwtLayer::builder()
        .add_keys(static_keys(key))
        .add_audience(AUDIENCE)
        .build()
        .unwrap()
}

/// Binds 127.0.0.1:0 first, so the server is accepting before the client connects.
async fn listen() -> (TcpListenerStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (TcpListenerStream::new(listener), addr)
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

/// `Whoami` behind `Server::builder().layer(jwt)`: the layer protects the whole server.
async fn server_wide(jwt: ValidateJwtLayer) -> HealthClient<Channel> {
    let (incoming, addr) = listen().await;
    tokio::spawn(
        Server::builder()
            .layer(jwt)
            .add_service(HealthServer::new(Whoami))
            .serve_with_incoming(incoming),
    );
    client(addr).await
}

fn check(token: Option<&str>) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest::default());
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn meta<'a, T>(response: &'a Response<T>, key: &str) -> &'a str {
    response.metadata().get(key).unwrap().to_str().unwrap()
}

fn www_authenticate(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_claims() {
    let key = TestKey::ed25519("ed");
    let mut client = server_wide(layer(&key)).await;
    let response = client
        .check(check(Some(&key.token(&claims()))))
        .await
        .unwrap();
    assert_eq!(meta(&response, "x-subject"), "alice");
    assert_eq!(meta(&response, "x-scopes"), "Echo.Read");
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_a_bearer_challenge() {
    let key = TestKey::ed25519("ed");
    let mut client = server_wide(layer(&key)).await;
    let status = client.check(check(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no access token");
    assert_eq!(www_authenticate(&status), Some("Bearer"));
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_with_invalid_token() {
    let key = TestKey::ed25519("ed");
    let mut client = server_wide(layer(&key)).await;
    let mut expired = claims();
    expired["exp"] = json!(now() - 600);
    let stranger = TestKey::ed25519("ed");
    let cases = [
        ("garbage", "not.a.jwt".to_owned(), "the token is malformed"),
        ("expired", key.token(&expired), "the token has expired"),
        (
            "foreign signature",
            stranger.token(&claims()),
            "the token's signature is invalid",
        ),
    ];
    for (name, token, message) in cases {
        let status = client.check(check(Some(&token))).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{name}");
        assert_eq!(status.message(), message, "{name}");
        assert_eq!(
            www_authenticate(&status).unwrap(),
            format!(r#"Bearer error="invalid_token", error_description="{message}""#),
            "{name}"
        );
    }
}

#[tokio::test]
async fn grpc_message_is_percent_encoded_and_decoded_by_the_client() {
    let key = TestKey::ed25519("ed");
    let jwt = ValidateJwtLayer::builder()
        .add_keys(static_keys(&key))
        .add_audience(AUDIENCE)
        .with_failed_message("refused, see https://errors.test/?code=%41")
        .build()
        .unwrap();
    let mut client = server_wide(jwt).await;
    let status = client.check(check(Some("not.a.jwt"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Sent as `%2541`: unencoded, the client would have decoded `%41` to `A`.
    assert_eq!(
        status.message(),
        "refused, see https://errors.test/?code=%41"
    );
}

#[tokio::test]
async fn missing_scope_is_permission_denied() {
    let key = TestKey::ed25519("ed");
    let jwt = ValidateJwtLayer::builder()
        .add_keys(static_keys(&key))
        .add_audience(AUDIENCE)
        .require_all_scopes(["Health.Check"])
        .build()
        .unwrap();
    let mut client = server_wide(jwt).await;
    let status = client
        .check(check(Some(&key.token(&claims()))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "missing scope Health.Check");
    assert_eq!(
        www_authenticate(&status),
        Some(
            r#"Bearer error="insufficient_scope", error_description="missing scope Health.Check", scope="Health.Check""#
        )
    );
}

#[tokio::test]
async fn unavailable_keys_are_unavailable() {
    let key = TestKey::ed25519("ed");
    let jwt = ValidateJwtLayer::builder()
        .add_key_source(Down)
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .build()
        .unwrap();
    let mut client = server_wide(jwt).await;
    let status = client
        .check(check(Some(&key.token(&claims()))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "signing keys are unavailable; try again later"
    );
    assert!(status.metadata().get("retry-after").is_some());
}

#[tokio::test]
async fn two_authorization_values_are_invalid_argument() {
    let key = TestKey::ed25519("ed");
    let mut client = server_wide(layer(&key)).await;
    let token = key.token(&claims());
    let mut request = check(Some(&token));
    request
        .metadata_mut()
        .append("authorization", format!("Bearer {token}").parse().unwrap());
    let status = client.check(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "the request carries a malformed or repeated access token"
    );
}

#[tokio::test]
async fn layer_protects_a_single_named_service() {
    let key = TestKey::ed25519("ed");
    let jwt = layer(&key);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (incoming, addr) = listen().await;
    tokio::spawn(
        Server::builder()
            .add_service(jwt.named_layer(health))
            .serve_with_incoming(incoming),
    );
    let mut client = client(addr).await;

    let status = client.check(check(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(www_authenticate(&status), Some("Bearer"));
    let status = client.check(check(Some("not.a.jwt"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let response = client
        .check(check(Some(&key.token(&claims()))))
        .await
        .unwrap();
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn per_service_requirement_adds_to_the_server_wide_layer() {
    let key = TestKey::ed25519("ed");
    let jwt = layer(&key);
    let admin_only = jwt
        .for_route(Requirement::all_scopes(["Health.Admin"]))
        .unwrap();
    let (incoming, addr) = listen().await;
    tokio::spawn(
        Server::builder()
            .layer(jwt)
            .add_service(admin_only.named_layer(HealthServer::new(Whoami)))
            .serve_with_incoming(incoming),
    );
    let mut client = client(addr).await;

    let status = client.check(check(None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .check(check(Some(&key.token(&claims()))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "missing scope Health.Admin");

    let mut admin = claims();
    admin["scp"] = json!("Echo.Read Health.Admin");
    let response = client.check(check(Some(&key.token(&admin)))).await.unwrap();
    assert_eq!(meta(&response, "x-subject"), "alice");
    assert_eq!(meta(&response, "x-scopes"), "Echo.Read Health.Admin");
}
