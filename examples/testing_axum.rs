//! Testing an axum API protected by the layer, with the test kit (`validate_jwt::testing`,
//! feature `test-util`): the API's rules are one function of a `ValidateJwtBuilder`, so
//! production hands it the real identity provider's configuration and the tests hand it a local
//! `TestIssuer`'s.
//!
//! ```text
//! cargo test --example testing_axum      # the tests at the bottom (CI runs them)
//! DISCOVERY_URL=https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration \
//! AUDIENCE=api://<backend-app-id> cargo run --example testing_axum
//! ```

use std::error::Error;

use axum::Router;
use axum::extract::Path;
use axum::routing::{delete, get};
use validate_jwt::{Claims, ConfigError, Requirement, ValidateJwtBuilder, ValidateJwtLayer};

/// The API's rules: every route needs the `Files.Read` scope.
pub fn protect(builder: ValidateJwtBuilder) -> Result<ValidateJwtLayer, ConfigError> {
    builder.require_all_scopes(["Files.Read"]).build()
}

/// The API: `GET /files` lists the caller's files; `DELETE /files/{name}` also needs the
/// `Files.Admin` role.
pub fn app(jwt: ValidateJwtLayer) -> Result<Router, ConfigError> {
    let admin = jwt.for_route(Requirement::all_roles(["Files.Admin"]))?;
    Ok(Router::new()
        .route("/files", get(list))
        .route("/files/{name}", delete(remove).route_layer(admin))
        .layer(jwt))
}

async fn list(claims: axum::Extension<Claims>) -> String {
    format!("the files of {}", claims.subject().unwrap_or("nobody"))
}

async fn remove(Path(name): Path<String>) -> String {
    format!("{name} deleted")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let (Ok(discovery_url), Ok(audience)) =
        (std::env::var("DISCOVERY_URL"), std::env::var("AUDIENCE"))
    else {
        return Err(
            "set DISCOVERY_URL and AUDIENCE (or run the tests: cargo test --example testing_axum)"
                .into(),
        );
    };
    let jwt = protect(
        ValidateJwtLayer::builder()
            .add_discovery_url(discovery_url)
            .add_audience(audience),
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(jwt)?).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};
    use tower::ServiceExt as _;
    use validate_jwt::testing::{BadToken, Fault, TestIssuer};

    type TestResult = Result<(), Box<dyn Error>>;

    /// Sends one request with a bearer token to the app; its status.
    async fn send(app: &Router, method: Method, path: &str, token: &str) -> StatusCode {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_reader_lists_files() -> TestResult {
        let issuer = TestIssuer::start()?;
        let app = app(protect(issuer.layer_builder())?)?;
        let token = issuer
            .token()
            .subject("alice")
            .scopes(["Files.Read"])
            .sign();
        assert_eq!(
            send(&app, Method::GET, "/files", &token).await,
            StatusCode::OK
        );
        Ok(())
    }

    #[tokio::test]
    async fn deleting_needs_the_admin_role() -> TestResult {
        let issuer = TestIssuer::start()?;
        let app = app(protect(issuer.layer_builder())?)?;
        let reader = issuer.token().scopes(["Files.Read"]);
        let admin = reader.clone().roles(["Files.Admin"]).sign();
        let path = "/files/report.txt";
        assert_eq!(
            send(&app, Method::DELETE, path, &admin).await,
            StatusCode::OK
        );
        let status = send(&app, Method::DELETE, path, &reader.sign()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        Ok(())
    }

    #[tokio::test]
    async fn a_token_without_the_scope_is_forbidden() -> TestResult {
        let issuer = TestIssuer::start()?;
        let app = app(protect(issuer.layer_builder())?)?;
        let token = issuer.token().scopes(["Files.Write"]).sign();
        let status = send(&app, Method::GET, "/files", &token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        Ok(())
    }

    #[tokio::test]
    async fn every_bad_token_is_refused() -> TestResult {
        let issuer = TestIssuer::start()?;
        let app = app(protect(issuer.layer_builder())?)?;
        let token = issuer.token().scopes(["Files.Read"]);
        for &bad in BadToken::ALL {
            let status = send(&app, Method::GET, "/files", &token.sign_bad(bad)).await;
            assert_eq!(status, bad.status(), "{bad:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_api_answers_503_while_the_identity_provider_is_down() -> TestResult {
        let issuer = TestIssuer::start()?;
        issuer.set_fault(Fault::Down);
        let app = app(protect(issuer.layer_builder())?)?;
        let token = issuer.token().scopes(["Files.Read"]).sign();
        let status = send(&app, Method::GET, "/files", &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        Ok(())
    }
}
