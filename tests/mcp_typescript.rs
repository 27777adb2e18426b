//! A client no one here wrote finds its way: the official MCP TypeScript SDK
//! (`@modelcontextprotocol/sdk`, `tests/interop/mcp-client/`, installed from its lockfile)
//! against the MCP example (`examples/mcp_server.rs`), whose layer knows nothing but a real
//! OpenID provider's discovery URL (`oidc-provider`, `tests/interop/provider/`, as in
//! `tests/interop.rs`) and its own URL.
//!
//! From the 401's `resource_metadata` the SDK must arrive at that provider, get a token for the
//! server's URL (RFC 8707 `resource`) with the scope the metadata lists, and call the tool;
//! without credentials it is refused. What the SDK did is in `client.mjs`, step by step, with
//! the SDK function used for each (`discoverOAuthProtectedResourceMetadata`,
//! `discoverAuthorizationServerMetadata`, `extractWWWAuthenticateParams`, and
//! `ClientCredentialsProvider` driving the SDK's `auth()`).
//!
//! Needs `node`, and `npm ci` in both directories (`.ci/run` does it). With `CI` set a missing
//! one fails the test; locally it skips with a printed reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/mcp_server.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The provider's client for MCP (client_secret_basic, as the SDK's provider authenticates).
const CLIENT_ID: &str = "mcp-client";
const CLIENT_SECRET: &str = "mcp-secret";
/// The longest the provider may take to say it is listening, and the client to finish.
const BOUND: Duration = Duration::from_secs(60);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The two Node.js directories, or `None` when the test must skip (locally only).
fn node_dirs() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let (provider, client) = (root.join("provider"), root.join("mcp-client"));
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let problem = if !node.is_ok_and(|s| s.success()) {
        "`node` is not on PATH"
    } else if !provider
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        "oidc-provider is not installed: run `npm ci` in tests/interop/provider"
    } else if !client
        .join("node_modules/@modelcontextprotocol/sdk/package.json")
        .is_file()
    {
        "the MCP TypeScript SDK is not installed: run `npm ci` in tests/interop/mcp-client"
    } else {
        return Some((provider, client));
    };
    assert!(
        !in_ci(),
        "CI is set, and the MCP SDK test cannot run: {problem}"
    );
    eprintln!("skipping the MCP TypeScript SDK test: {problem}");
    None
}

/// Starts `oidc-provider` with fresh keys; returns it (killed on drop) and its issuer URL.
async fn provider(dir: &Path) -> (Child, String) {
    let keys = Command::new("node")
        .args(["provider.mjs", "keygen", "mcp"])
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(dir)
        .env(
            "INTEROP_JWKS",
            String::from_utf8(keys.stdout).unwrap().trim(),
        )
        .env("INTEROP_PORT", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(BOUND, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("INTEROP_PROVIDER_URL=") {
                return Some(url.to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("the provider did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn the_mcp_typescript_sdk_follows_the_metadata_to_the_provider_and_calls_the_tool() {
    let Some((provider_dir, client_dir)) = node_dirs() else {
        return;
    };
    let (_provider, issuer) = provider(&provider_dir).await;

    // The example, as its README command runs it: the provider's discovery URL, its own URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let jwt = example::layer(&discovery, &server_url, None).unwrap();
    jwt.ready().await.unwrap();
    let metadata_url = jwt.resource_metadata().unwrap().url().to_owned();
    let app = example::app(jwt).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let run = Command::new("node")
        .args(["client.mjs", &server_url, CLIENT_ID, CLIENT_SECRET, &issuer])
        .current_dir(&client_dir)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(BOUND, run)
        .await
        .expect("the SDK client did not finish")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client.mjs failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("client.mjs printed no JSON ({e}):\n{stderr}"));

    // Without credentials: refused, with the challenge the SDK reads `resource_metadata` from.
    assert!(!report["refused"].is_null(), "{report}");
    assert!(
        report["refused"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("401") || m.contains("nauthorized")),
        "{report}"
    );
    assert_eq!(report["challenge"]["status"], 401, "{report}");
    assert_eq!(report["challenge"]["resourceMetadataUrl"], metadata_url);

    // The metadata leads to the provider, and the provider's own metadata is found there.
    let metadata = &report["resourceMetadata"];
    assert_eq!(metadata["resource"], server_url);
    assert_eq!(metadata["authorization_servers"], json!([issuer]));
    assert_eq!(metadata["scopes_supported"], json!([example::SCOPE]));
    assert_eq!(report["authorizationServer"]["issuer"], issuer);
    assert_eq!(
        report["authorizationServer"]["token_endpoint"],
        format!("{issuer}/token")
    );

    // With credentials: a token for this server's URL with the listed scope, and the tool.
    assert!(report.get("error").is_none(), "{report}");
    assert_eq!(report["token"]["aud"], server_url, "{report}");
    assert_eq!(report["token"]["iss"], issuer);
    assert_eq!(report["token"]["scope"], example::SCOPE);
    assert_eq!(report["tools"], json!(["whoami"]));
    assert_eq!(report["tool"]["isError"], false);
    assert_eq!(
        report["tool"]["text"],
        format!("subject {CLIENT_ID} via client {CLIENT_ID}"),
        "{report}"
    );
}
