//! An API protected by Azure AD (Entra ID), configured from the environment:
//!
//! ```text
//! AZURE_TENANT_ID=<tenant guid> API_CLIENT_ID=<backend-app client id> \
//! API_APP_ID_URI=api://<backend-app client id> REQUIRED_SCOPE=Files.Read \
//! REQUIRED_APP_ROLE=Files.Read.All cargo run --example azure_ad
//! ```
//!
//! `REQUIRED_APP_ROLE` is optional: with it, application tokens (client credentials) need that
//! app role in `roles`, and delegated tokens need the scope in `scp`. `LISTEN` defaults to
//! `127.0.0.1:3000`. See the README's Azure AD walkthrough.

use std::error::Error;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use validate_jwt::{AzureAd, Claims, Requirement};

fn env(name: &str) -> Result<String, Box<dyn Error>> {
    std::env::var(name).map_err(|_| format!("set {name} (see the example's documentation)").into())
}

async fn whoami(claims: axum::Extension<Claims>) -> axum::Json<Value> {
    axum::Json(json!({
        "subject": claims.subject(),
        "tenant": claims.tenant_id(),
        "client": claims.client_id(),
        "scopes": claims.scopes().collect::<Vec<_>>(),
        "roles": claims.roles().collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let tenant = env("AZURE_TENANT_ID")?;
    let client_id = env("API_CLIENT_ID")?;
    let scope = env("REQUIRED_SCOPE")?;
    let mut azure = AzureAd::tenant(tenant).api(client_id);
    if let Ok(uri) = std::env::var("API_APP_ID_URI") {
        azure = azure.app_id_uri(uri);
    }
    let requirement = match std::env::var("REQUIRED_APP_ROLE") {
        Ok(role) => Requirement::scope_or_app_role([scope], [role]),
        Err(_) => Requirement::all_scopes([scope]),
    };
    let layer = azure.builder().require(requirement).build()?;
    layer.ready().await?;

    let app = Router::new().route("/whoami", get(whoami)).layer(layer);
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
