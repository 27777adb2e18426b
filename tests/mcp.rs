//! The MCP example (`examples/mcp_server.rs`, an `rmcp` streamable-HTTP server behind the
//! layer) on 127.0.0.1, called by `rmcp`'s own client: with a token for the server's URL the
//! tool call succeeds; without one, or with one lacking the scope or for another audience, the
//! client gets the challenge that points at the RFC 9728 metadata.
//!
//! The official MCP TypeScript SDK's run against the same example, with a real OpenID
//! provider, is in `tests/mcp_typescript.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/mcp_server.rs"]
mod example;

use std::collections::HashMap;

use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig, ClientJsonRpcMessage};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient as _, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use serde_json::json;
use validate_jwt::testing::TestIssuer;

struct Server {
    issuer: TestIssuer,
    /// The MCP endpoint, which is also the resource identifier and the tokens' audience.
    url: String,
    metadata_url: String,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let issuer = TestIssuer::builder().with_audience(&url).start().unwrap();
    let jwt = example::layer(&issuer.discovery_url(), &url, None).unwrap();
    let metadata_url = jwt.resource_metadata().unwrap().url().to_owned();
    let app = example::app(jwt).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        issuer,
        url,
        metadata_url,
    }
}

/// An MCP `initialize` request, as rmcp's client sends it first.
fn initialize() -> ClientJsonRpcMessage {
    serde_json::from_value(json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "validate-jwt-test", "version": "1" }
        }
    }))
    .unwrap()
}

/// rmcp's client transport posting `initialize` with `token`: its classification of the answer.
async fn post_initialize(
    server: &Server,
    token: Option<String>,
) -> Result<(), StreamableHttpError<reqwest::Error>> {
    reqwest::Client::new()
        .post_message(
            server.url.as_str().into(),
            initialize(),
            None,
            token,
            HashMap::new(),
        )
        .await
        .map(|_| ())
}

#[tokio::test]
async fn an_rmcp_client_with_a_token_for_the_server_calls_the_tool() {
    let server = start().await;
    let token = server
        .issuer
        .token()
        .subject("alice")
        .scopes([example::SCOPE])
        .sign();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.as_str()).auth_header(token),
    );
    let client = ClientConfig::default().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        ["whoami"]
    );
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let text = serde_json::to_string(&result).unwrap();
    assert!(text.contains("subject alice via client"), "{text}");
    assert_ne!(result.is_error, Some(true));
    let _ = client.cancel().await;
}

#[tokio::test]
async fn an_rmcp_client_without_a_token_gets_the_challenge_naming_the_metadata() {
    let server = start().await;
    match post_initialize(&server, None).await {
        Err(StreamableHttpError::AuthRequired(e)) => assert_eq!(
            e.www_authenticate_header,
            format!(r#"Bearer resource_metadata="{}""#, server.metadata_url)
        ),
        other => panic!("expected AuthRequired, got {other:?}"),
    }
    // The whole client fails to connect.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url.as_str()),
    );
    assert!(ClientConfig::default().serve(transport).await.is_err());
    // And the metadata it points at needs no token.
    let document: serde_json::Value = reqwest::get(&server.metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], server.url);
    assert_eq!(
        document["authorization_servers"],
        json!([server.issuer.issuer()])
    );
    assert_eq!(document["scopes_supported"], json!([example::SCOPE]));
}

#[tokio::test]
async fn a_token_without_the_scope_is_told_which_scope_to_get() {
    let server = start().await;
    let token = server.issuer.token().scopes(["other"]).sign();
    match post_initialize(&server, Some(token)).await {
        Err(StreamableHttpError::InsufficientScope(e)) => {
            assert_eq!(e.get_required_scope(), Some(example::SCOPE));
            assert!(
                e.www_authenticate_header
                    .contains(&format!(r#"resource_metadata="{}""#, server.metadata_url)),
                "{}",
                e.www_authenticate_header
            );
        }
        other => panic!("expected InsufficientScope, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let server = start().await;
    let token = server
        .issuer
        .token()
        .audience("http://127.0.0.1:1/mcp")
        .scopes([example::SCOPE])
        .sign();
    match post_initialize(&server, Some(token)).await {
        Err(StreamableHttpError::AuthRequired(e)) => {
            let challenge = e.www_authenticate_header;
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{challenge}"
            );
            assert!(challenge.contains("resource_metadata="), "{challenge}");
        }
        other => panic!("expected AuthRequired, got {other:?}"),
    }
}

/// The README's MCP section shows the example's real metadata for its Entra ID command line.
#[test]
fn the_readme_shows_the_examples_metadata() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## MCP servers and protected resource metadata")
        .nth(1)
        .unwrap();
    let arg = |flag: &str| {
        let at = section.find(flag).unwrap() + flag.len();
        section[at..].split_whitespace().next().unwrap().to_owned()
    };
    let json = section
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let jwt = example::layer(
        &arg("--openid-config "),
        &arg("--resource "),
        Some(&arg("--audience ")),
    )
    .unwrap();
    assert_eq!(jwt.resource_metadata().unwrap().json(), json.trim_end());
}
