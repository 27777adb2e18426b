//! The seed's picture end to end: a reverse proxy configured from an Azure API Management policy
//! file, validating tokens with `ValidateJwtLayer` and forwarding the verified claims as headers
//! to a separate backend (the Echo API, a second server in this program).
//!
//! ```text
//! cargo run --features apim --example apim_gateway -- --demo
//! cargo run --features apim --example apim_gateway -- --policy examples/apim_policy.xml \
//!     --named-value tenant-id=<tenant GUID> --named-value backend-app-id=<backend client id> \
//!     --claim-header oid=x-user-oid --claim-header roles=x-user-roles
//! ```
//!
//! Flags: `--policy FILE` (default `examples/apim_policy.xml`), `--named-value NAME=VALUE`…
//! (APIM's `{{named values}}`), `--certificate ID=PEM_FILE`… (for `certificate-id`),
//! `--claim-header CLAIM=HEADER`… (`/a/b` for nested claims), `--payload-header NAME`,
//! `--listen ADDR` (default 127.0.0.1:3000), `--backend URL` (another backend instead of the
//! built-in Echo API), `--authority FROM=TO` (replace a URL prefix in the policy, to point it at
//! a stand-in), `--demo`.
//!
//! `--demo` starts an in-process stand-in for Entra ID on loopback (discovery and JWKS at
//! `/{tenant}/v2.0/…`, a fresh RSA key), points the policy's `https://login.microsoftonline.com`
//! at it (the policy file itself is unchanged), fills in the named values, forwards `oid`,
//! `roles` and `scp`, and prints tokens and `curl` lines. `scripts/check_apim_gateway.sh` runs it.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use validate_jwt::apim::{Policy, Resources};

type BoxError = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: apim_gateway [--policy FILE] [--named-value NAME=VALUE]... \
[--certificate ID=PEM_FILE]... [--claim-header CLAIM=HEADER]... [--payload-header NAME] \
[--listen ADDR] [--backend URL] [--authority FROM=TO] [--demo]";

#[derive(Default)]
struct Args {
    policy: Option<String>,
    named_values: Vec<(String, String)>,
    certificates: Vec<(String, String)>,
    claim_headers: Vec<(String, String)>,
    payload_header: Option<String>,
    listen: Option<String>,
    backend: Option<String>,
    authority: Option<(String, String)>,
    demo: bool,
}

fn pair(flag: &str, value: &str) -> Result<(String, String), BoxError> {
    let (a, b) = value
        .split_once('=')
        .ok_or_else(|| format!("{flag} wants A=B, got {value:?}\n{USAGE}"))?;
    Ok((a.to_owned(), b.to_owned()))
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--policy" => args.policy = Some(value()?),
            "--named-value" => args.named_values.push(pair(&flag, &value()?)?),
            "--certificate" => args.certificates.push(pair(&flag, &value()?)?),
            "--claim-header" => args.claim_headers.push(pair(&flag, &value()?)?),
            "--payload-header" => args.payload_header = Some(value()?),
            "--listen" => args.listen = Some(value()?),
            "--backend" => args.backend = Some(value()?),
            "--authority" => args.authority = Some(pair(&flag, &value()?)?),
            "--demo" => args.demo = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}").into()),
        }
    }
    Ok(args)
}

/// The Echo API: `{"method":…,"path":…,"headers":{name: [values]}}`, the request as the backend
/// received it (so the claim headers the gateway added are visible).
async fn echo(request: Request) -> Response {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "headers": headers,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The reverse proxy behind the layer: the request, validated and with its claim headers, goes
/// to the backend; hop-by-hop headers stay here.
#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, Body>,
    backend: String,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn forward(State(proxy): State<Proxy>, mut request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let Ok(uri) = format!("{}{path}", proxy.backend).parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *request.uri_mut() = uri;
    strip_hop_by_hop(request.headers_mut());
    match proxy.client.request(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            strip_hop_by_hop(response.headers_mut());
            response
        }
        Err(e) => {
            eprintln!("backend error: {e}");
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}

/// Demo mode: a stand-in for Entra ID with a fresh RSA key, serving a tenant's v2 discovery
/// document and key set on loopback, and minting access tokens.
mod demo {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
    use base64::Engine as _;

    pub(super) const TENANT: &str = "3f1d0c7e-5a2b-4c8d-9e6f-0a1b2c3d4e5f";
    pub(super) const BACKEND_APP: &str = "6e74172b-be56-4843-9ff4-e66a39bb12e3";
    pub(super) const OID: &str = "00000000-0000-0000-0000-00000000a11c";

    pub(super) struct Entra {
        pub(super) base: String,
        key: RsaKeyPair,
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Entra {
        pub(super) async fn start() -> Result<Entra, BoxError> {
            let key =
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "cannot generate a key")?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let base = format!("http://{}", listener.local_addr()?);
            let public = key.public_key();
            let jwks = json!({"keys": [{
                "kty": "RSA", "use": "sig", "kid": "demo-entra",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            }]});
            let discovery = json!({
                "issuer": format!("{base}/{TENANT}/v2.0"),
                "jwks_uri": format!("{base}/{TENANT}/discovery/v2.0/keys"),
            });
            let app = Router::new()
                .route(
                    &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                    axum::routing::get(move || async move { axum::Json(discovery) }),
                )
                .route(
                    &format!("/{TENANT}/discovery/v2.0/keys"),
                    axum::routing::get(move || async move { axum::Json(jwks) }),
                );
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok(Entra { base, key })
        }

        /// An Entra-shaped v2 access token for `audience`.
        pub(super) fn token(&self, audience: &str) -> Result<String, BoxError> {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": "demo-entra"});
            let claims = json!({
                "iss": format!("{}/{TENANT}/v2.0", self.base), "aud": audience, "tid": TENANT,
                "oid": OID, "sub": "demo-subject", "azp": "9b7e2d4a-1c3f-4e5d-8a6b-0f1e2d3c4b5a",
                "scp": "Files.Read", "roles": ["Files.Read.All", "Echo.Admin"], "ver": "2.0",
                "iat": now, "nbf": now, "exp": now + 3600,
            });
            let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            let mut sig = vec![0; self.key.public_modulus_len()];
            self.key
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "cannot sign")?;
            Ok(format!("{input}.{}", b64(sig)))
        }
    }
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
    let mut args = parse_args()?;
    let path = args
        .policy
        .clone()
        .unwrap_or_else(|| "examples/apim_policy.xml".into());
    let mut xml = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the policy {path}: {e}"))?;

    let demo = match args.demo {
        true => Some(demo::Entra::start().await?),
        false => None,
    };
    if let Some(entra) = &demo {
        args.authority.get_or_insert((
            "https://login.microsoftonline.com".into(),
            entra.base.clone(),
        ));
        for (name, value) in [
            ("tenant-id", demo::TENANT),
            ("backend-app-id", demo::BACKEND_APP),
        ] {
            if !args.named_values.iter().any(|(n, _)| n == name) {
                args.named_values.push((name.into(), value.into()));
            }
        }
        if args.claim_headers.is_empty() {
            for (claim, header) in [
                ("oid", "x-user-oid"),
                ("roles", "x-user-roles"),
                ("scp", "x-user-scopes"),
            ] {
                args.claim_headers.push((claim.into(), header.into()));
            }
        }
    }
    if let Some((from, to)) = &args.authority {
        xml = xml.replace(from.as_str(), to);
    }

    let mut resources = Resources::new();
    for (name, value) in &args.named_values {
        resources = resources.add_named_value(name, value);
    }
    for (id, file) in &args.certificates {
        let pem = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        resources = resources.add_certificate(id, pem);
    }
    let policy = Policy::parse(&xml, &resources).map_err(|e| format!("{path}: {e}"))?;
    for note in policy.notes() {
        eprintln!("note: {path}: {note}");
    }
    let mut builder = policy.into_builder();
    for (claim, header) in &args.claim_headers {
        builder = builder.add_claim_header(claim, header);
    }
    if let Some(name) = &args.payload_header {
        builder = builder.with_payload_header(name);
    }
    let layer = builder.build()?;
    if let Err(e) = layer.ready().await {
        eprintln!("warning: keys not available yet ({e}); requests get 503 until they are");
    }

    // The backend: the Echo API on its own server, unless another one is given.
    let backend = match &args.backend {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, Router::new().fallback(echo)).await });
            url
        }
    };
    let proxy = Proxy {
        client: Client::builder(TokioExecutor::new()).build_http(),
        backend: backend.clone(),
    };
    let app = Router::new()
        .fallback(forward)
        .with_state(proxy)
        .layer(layer);
    let listen: SocketAddr = args.listen.as_deref().unwrap_or("127.0.0.1:3000").parse()?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let gateway = format!("http://{}", listener.local_addr()?);

    println!("GATEWAY={gateway}");
    println!("BACKEND={backend}");
    if let Some(entra) = &demo {
        let token = entra.token(demo::BACKEND_APP)?;
        let other = entra.token("api://another-app")?;
        println!("TOKEN={token}");
        println!("OTHER_AUDIENCE_TOKEN={other}");
        println!("OID={}", demo::OID);
        eprintln!(
            "demo mode: {path} runs with https://login.microsoftonline.com pointed at an \
             in-process stand-in ({}), tenant {}, backend app {}.",
            entra.base,
            demo::TENANT,
            demo::BACKEND_APP
        );
        eprintln!(
            "# 200: the backend's echo shows x-user-oid, x-user-roles and x-user-scopes from the token (not the forged x-user-oid):"
        );
        eprintln!(
            "curl -i -H 'Authorization: Bearer {token}' -H 'x-user-oid: forged' {gateway}/files"
        );
        eprintln!("# 401, no token:");
        eprintln!("curl -i {gateway}/files");
        eprintln!("# 401, a token for another audience (the policy's required aud claim):");
        eprintln!("curl -i -H 'Authorization: Bearer {other}' {gateway}/files");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
