//! Testing a tonic gRPC service protected by the layer, with the test kit
//! (`validate_jwt::testing`, feature `test-util`): the tests start a local `TestIssuer`, serve
//! the service on 127.0.0.1 behind a layer that trusts it, and call it with a real client.
//!
//! ```text
//! cargo test --example testing_tonic     # the tests at the bottom (CI runs them)
//! cargo run --example testing_tonic -- \
//!     https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration \
//!     api://<backend-app-id>
//! ```

use std::error::Error;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use validate_jwt::{ConfigError, ValidateJwtBuilder, ValidateJwtLayer};

/// The service's rules: every call needs the `Health.Check` scope.
pub fn protect(builder: ValidateJwtBuilder) -> Result<ValidateJwtLayer, ConfigError> {
    builder.require_all_scopes(["Health.Check"]).build()
}

/// Serves the standard gRPC health service behind `jwt` on `listener`.
pub async fn serve(
    jwt: ValidateJwtLayer,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Server::builder()
        .layer(jwt)
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [discovery_url, audience] = args.as_slice() else {
        return Err(
            "usage: cargo run --example testing_tonic -- DISCOVERY_URL AUDIENCE \
                    (the tests: cargo test --example testing_tonic)"
                .into(),
        );
    };
    let builder = ValidateJwtLayer::builder()
        .add_discovery_url(discovery_url)
        .add_audience(audience);
    let listener = TcpListener::bind("127.0.0.1:50051").await?;
    println!("gRPC health service on {}", listener.local_addr()?);
    serve(protect(builder)?, listener).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic::transport::Channel;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use validate_jwt::testing::{BadToken, TestIssuer};

    type TestResult = Result<(), Box<dyn Error>>;

    /// The service behind a layer trusting `issuer`, on 127.0.0.1, and a client of it.
    async fn start(issuer: &TestIssuer) -> Result<HealthClient<Channel>, Box<dyn Error>> {
        let jwt = protect(issuer.layer_builder())?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(serve(jwt, listener));
        Ok(HealthClient::new(
            Channel::from_shared(url)?.connect().await?,
        ))
    }

    /// A health check carrying `token` in the `authorization` metadata.
    fn check(token: &str) -> tonic::Request<HealthCheckRequest> {
        let mut request = tonic::Request::new(HealthCheckRequest::default());
        let bearer = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        request
    }

    #[tokio::test]
    async fn a_token_with_the_scope_is_served() -> TestResult {
        let issuer = TestIssuer::start()?;
        let mut client = start(&issuer).await?;
        let token = issuer.token().scopes(["Health.Check"]).sign();
        let response = client.check(check(&token)).await?;
        assert_eq!(response.get_ref().status(), ServingStatus::Serving);
        Ok(())
    }

    #[tokio::test]
    async fn a_call_without_a_token_is_unauthenticated() -> TestResult {
        let issuer = TestIssuer::start()?;
        let mut client = start(&issuer).await?;
        let status = client
            .check(HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        Ok(())
    }

    #[tokio::test]
    async fn a_token_without_the_scope_is_permission_denied() -> TestResult {
        let issuer = TestIssuer::start()?;
        let mut client = start(&issuer).await?;
        let status = client
            .check(check(&issuer.token().sign()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        Ok(())
    }

    #[tokio::test]
    async fn every_bad_token_is_unauthenticated() -> TestResult {
        let issuer = TestIssuer::start()?;
        let mut client = start(&issuer).await?;
        let token = issuer.token().scopes(["Health.Check"]);
        for &bad in BadToken::ALL {
            let status = client.check(check(&token.sign_bad(bad))).await.unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}");
        }
        Ok(())
    }
}
