//! Per-route requirements sharing one validation and one key cache: `GET /files` needs the
//! scope `Files.Read`, `POST /files` needs `Files.Write`. Runs a demo request of each kind and
//! prints the answers.
//!
//! ```text
//! cargo run --example per_route
//! ```

use std::error::Error;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::json;
use tower::ServiceExt;
use validate_jwt::{Requirement, StaticKeys, ValidateJwtLayer};

const SECRET: &[u8] = b"a demo secret of at least 32 bytes!!";

fn token(scopes: &str) -> String {
    use aws_lc_rs::hmac;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 600;
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "JWT"})),
        b64(
            json!({"iss": "https://issuer.example", "aud": "api://files", "exp": exp, "scp": scopes})
        )
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let jwt = ValidateJwtLayer::builder()
        .add_keys(
            StaticKeys::new()
                .add_hmac_secret(None, SECRET)
                .add_issuer("https://issuer.example"),
        )
        .add_audience("api://files")
        .build()?;
    let app = Router::new()
        .route(
            "/files",
            get(|| async { "the list of files" })
                .route_layer(jwt.for_route(Requirement::all_scopes(["Files.Read"]))?)
                .merge(
                    post(|| async { "uploaded" })
                        .route_layer(jwt.for_route(Requirement::all_scopes(["Files.Write"]))?),
                ),
        )
        .layer(jwt);

    for (method, scopes) in [
        ("GET", "Files.Read"),
        ("POST", "Files.Read"),
        ("POST", "Files.Read Files.Write"),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri("/files")
            .header("authorization", format!("Bearer {}", token(scopes)))
            .body(axum::body::Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        println!(
            "{method} /files with scp={scopes:?}: {} {challenge}",
            response.status()
        );
    }
    Ok(())
}
