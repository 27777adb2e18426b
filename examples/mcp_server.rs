//! An MCP server (`rmcp`'s streamable HTTP transport, a tower service) behind
//! `ValidateJwtLayer`, as the Model Context Protocol's authorization spec wants it: tokens from
//! an OpenID provider whose audience is the server's URL (RFC 8707), a scope rule on the MCP
//! route, and RFC 9728 protected resource metadata that a client meeting the 401 follows to the
//! provider.
//!
//! ```text
//! cargo run --example mcp_server                      # demo mode: prints a token and curl lines
//! cargo run --example mcp_server -- \
//!     --openid-config https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration \
//!     --resource https://mcp.example.com/mcp --audience api://<app-id>
//! ```
//!
//! Flags: `--listen ADDR` (default 127.0.0.1:3000), `--openid-config URL` (without it: demo
//! mode, the test kit's identity provider), `--resource URL` (default
//! `http://{listen}/mcp`; the MCP endpoint is served at its path), `--audience AUD` (default:
//! the resource; Entra ID access tokens carry the API's Application ID URI or client id).
//!
//! The one tool, `whoami`, answers with the verified token's subject and client: the claims
//! reach tools through the HTTP request parts rmcp hands them.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tower::Layer as _;
use validate_jwt::{Claims, ConfigError, ProtectedResource, Requirement, ValidateJwtLayer};

type BoxError = Box<dyn Error + Send + Sync>;

/// The scope the MCP route requires.
pub const SCOPE: &str = "mcp:tools";

/// The MCP server: one tool.
#[derive(Debug, Clone)]
pub struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    fn new() -> Self {
        Tools {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Who the verified access token says is calling")]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match parts.extensions.get::<Claims>() {
            Some(claims) => format!(
                "subject {} via client {}",
                claims.subject().unwrap_or("(none)"),
                // `azp`/`appid` (Entra ID, OIDC), or RFC 9068's `client_id`.
                claims
                    .client_id()
                    .or_else(|| claims.get("client_id").and_then(|v| v.as_str()))
                    .unwrap_or("(none)")
            ),
            None => "no verified claims".into(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("validate-jwt's MCP example: call whoami")
    }
}

/// The layer: keys and issuer from the provider's discovery document, the MCP server's URL as
/// the protected resource (metadata, challenges) and, unless `audience` is given, as the
/// audience tokens must carry.
pub fn layer(
    discovery_url: &str,
    resource: &str,
    audience: Option<&str>,
) -> Result<ValidateJwtLayer, ConfigError> {
    let resource = ProtectedResource::new(resource)
        .with_resource_name("validate-jwt MCP example")
        // The route's scope rule is made after the layer: name its scope here.
        .add_scope(SCOPE);
    let builder = ValidateJwtLayer::builder().add_discovery_url(discovery_url);
    match audience {
        None => builder.with_resource_as_audience(resource),
        Some(audience) => builder.add_audience(audience).with_resource(resource),
    }
    .build()
}

/// The application: the MCP endpoint at the resource's path behind its scope rule, and the
/// layer in front of everything (it also answers the metadata paths, without a token).
pub fn app(jwt: ValidateJwtLayer) -> Result<Router, BoxError> {
    let metadata = jwt
        .resource_metadata()
        .ok_or("the layer has no protected resource")?;
    let resource: http::Uri = metadata.resource().parse()?;
    let host = resource.host().ok_or("the resource has no host")?;
    let mcp = StreamableHttpService::new(
        || Ok(Tools::new()),
        Arc::new(LocalSessionManager::default()),
        // rmcp checks `Host` against DNS rebinding: the resource's host, and loopback.
        StreamableHttpServerConfig::default().with_allowed_hosts([
            host,
            "localhost",
            "127.0.0.1",
            "::1",
        ]),
    );
    let scoped = jwt.for_route(Requirement::all_scopes([SCOPE]))?;
    Ok(Router::new()
        .route_service(resource.path(), scoped.layer(mcp))
        .layer(jwt))
}

#[derive(Default)]
struct Args {
    listen: Option<String>,
    openid_config: Option<String>,
    resource: Option<String>,
    audience: Option<String>,
}

const USAGE: &str =
    "usage: mcp_server [--listen ADDR] [--openid-config URL] [--resource URL] [--audience AUD]";

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => args.listen = Some(value()?),
            "--openid-config" => args.openid_config = Some(value()?),
            "--resource" => args.resource = Some(value()?),
            "--audience" => args.audience = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}").into()),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let args = parse_args()?;
    let listen: SocketAddr = args.listen.as_deref().unwrap_or("127.0.0.1:3000").parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let resource = args
        .resource
        .clone()
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    // Demo mode: the test kit's identity provider, its tokens for this server.
    let demo = match &args.openid_config {
        Some(_) => None,
        None => Some(
            validate_jwt::testing::TestIssuer::builder()
                .with_audience(args.audience.as_deref().unwrap_or(&resource))
                .start()?,
        ),
    };
    let discovery_url = match (&args.openid_config, &demo) {
        (Some(url), _) => url.clone(),
        (None, issuer) => issuer
            .as_ref()
            .map(|i| i.discovery_url())
            .ok_or("demo mode without an issuer")?,
    };
    let jwt = layer(&discovery_url, &resource, args.audience.as_deref())?;
    if let Err(e) = jwt.ready().await {
        eprintln!("warning: keys not available yet ({e}); requests get 503 until they are");
    }
    let metadata = jwt.resource_metadata().ok_or("no protected resource")?;
    println!("MCP server {resource} listening on http://{addr}");
    println!("protected resource metadata at {}", metadata.url());
    let path = resource.parse::<http::Uri>()?.path().to_owned();
    if let Some(issuer) = &demo {
        let token = issuer.token().subject("demo-user").scopes([SCOPE]).sign();
        eprintln!(
            "\ndemo mode: an in-process identity provider at {} signs this token:\n{token}\n",
            issuer.url()
        );
        eprintln!("# the metadata (no token needed):");
        eprintln!(
            "curl -s http://{addr}{}",
            metadata.paths().next().unwrap_or("/")
        );
        eprintln!("# 401 and the challenge that points at it:");
        eprintln!("curl -si -X POST http://{addr}{path}");
        eprintln!("# an MCP initialize with the token:");
        eprintln!(
            "curl -si -X POST http://{addr}{path} -H 'Authorization: Bearer {token}' \
             -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
             -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"1\"}}}}}}'"
        );
    }
    axum::serve(listener, app(jwt)?)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
