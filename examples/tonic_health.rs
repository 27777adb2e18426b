//! A tonic gRPC server (the standard `grpc.health.v1.Health` service from `tonic-health`) behind
//! `ValidateJwtLayer`, then a client call without and with a token.
//!
//! ```text
//! cargo run --example tonic_health
//! ```
//!
//! The demo key is an Ed25519 key generated at start; the token is minted here the way an
//! identity provider would. Against a real provider, configure the layer with
//! `add_discovery_url(...)` instead of `add_keys(...)`.

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use validate_jwt::{StaticKeys, ValidateJwtLayer};

type BoxError = Box<dyn Error + Send + Sync>;

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api://health";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A demo signing key and its public JWK.
fn demo_key() -> Result<(Ed25519KeyPair, String), BoxError> {
    let key = Ed25519KeyPair::generate()?;
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "demo", "alg": "EdDSA", "use": "sig",
        "x": b64(key.public_key().as_ref()),
    });
    Ok((key, jwk.to_string()))
}

/// A signed access token for `sub`, valid for an hour.
fn mint_token(key: &Ed25519KeyPair, sub: &str) -> Result<String, BoxError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = json!({ "alg": "EdDSA", "kid": "demo", "typ": "JWT" });
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scp": "Health.Check",
        "iat": now, "exp": now + 3600,
    });
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = key.sign(input.as_bytes());
    Ok(format!("{input}.{}", b64(signature)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (key, jwk) = demo_key()?;

    // The server: every service behind the layer.
    let jwt = ValidateJwtLayer::builder()
        .add_keys(StaticKeys::new().add_jwk(jwk))
        .add_issuer(ISSUER)
        .add_audience(AUDIENCE)
        .require_all_scopes(["Health.Check"])
        .build()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        Server::builder()
            .layer(jwt)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    println!("gRPC health service on {addr}, behind ValidateJwtLayer");

    // The client: without a token, then with one in the `authorization` metadata.
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);

    let status = match client.check(HealthCheckRequest::default()).await {
        Ok(_) => return Err("a call without a token was let through".into()),
        Err(status) => status,
    };
    println!(
        "without a token: {:?} {:?} (www-authenticate: {:?})",
        status.code(),
        status.message(),
        status.metadata().get("www-authenticate"),
    );

    let mut request = tonic::Request::new(HealthCheckRequest::default());
    let token = mint_token(&key, "alice")?;
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let response = client.check(request).await?;
    println!("with a token: {:?}", response.get_ref().status());

    server.abort();
    Ok(())
}
