//! The seed's scenario as a program: an Echo API behind `ValidateJwtLayer`, configured by flags
//! (APIM's `validate-jwt` policy, in code).
//!
//! ```text
//! cargo run --example echo_gateway                      # demo mode: prints tokens and curl lines
//! cargo run --example echo_gateway -- \
//!     --openid-config https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration \
//!     --audience api://<backend-app-id> --require-scope Echo.Read
//! ```
//!
//! Flags: `--listen ADDR` (default 127.0.0.1:3000), `--openid-config URL`…, `--jwks-uri URL`…,
//! `--issuer ISS`… (with one `--openid-config`, replaces the document's issuer; with several key
//! sources, binds the sources that name none, such as `--jwks-uri` URLs), `--audience AUD`…, `--require-scope S`…, `--require-claim NAME=V1[,V2…]`…,
//! `--require-claim-all NAME=V1[,V2…]`…, `--algorithm ALG`…, `--leeway SECONDS`,
//! `--header-name NAME`, `--query-param NAME`, `--failed-status CODE`, `--failed-message TEXT`,
//! `--allow-http`, `--token-cache N` (remember up to N validated tokens; the cache's counters are
//! printed on Ctrl-C), `--no-auth` (no layer at all: the baseline of `scripts/http_bench.sh`),
//! `--signature-only JWKS_FILE` (no layer either: the benchmark's ceiling, the signature check
//! alone with that file's keys, `benches/support/signature_only.rs`; in this binary so that the
//! ceiling and the layer are measured with the crypto at the same addresses),
//! `--inspector` (a development tool, loopback only: the token inspector page at
//! `/_inspector/`, where a pasted token gets `ValidateJwtLayer::explain`'s report of every check;
//! see `mod inspector` below).
//! Sender-constrained tokens (`validate_jwt::sender`): `--dpop allowed|required`, `--dpop-nonce`
//! (server nonces), `--public-url URL` (what clients put in the proofs' `htu`),
//! `--replay-store redis://…` (build with `--features redis`), `--client-cert-header NAME` (a
//! trusted proxy's client certificate: envoy's format for `x-forwarded-client-cert`, PEM for
//! any other name).
//! `--resource URL` (RFC 9728: the protected resource metadata of that URL at its well-known
//! paths, `resource_metadata` in every challenge; with no `--audience`, the resource is the
//! audience).

// The HTTP benchmark's ceiling (`--signature-only`), shared with `benches/ratio.rs`.
#[path = "../benches/support/signature_only.rs"]
mod ceiling;

use std::error::Error;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::header;
use serde_json::{Value, json};
use validate_jwt::{Algorithm, Claims, Requirement, ValidateJwtLayer};

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Default)]
struct Args {
    listen: Option<String>,
    openid_config: Vec<String>,
    jwks_uri: Vec<String>,
    issuer: Vec<String>,
    audience: Vec<String>,
    require_scope: Vec<String>,
    require_claim: Vec<String>,
    require_claim_all: Vec<String>,
    algorithm: Vec<String>,
    leeway: Option<u64>,
    header_name: Option<String>,
    query_param: Option<String>,
    failed_status: Option<u16>,
    failed_message: Option<String>,
    allow_http: bool,
    token_cache: usize,
    no_auth: bool,
    signature_only: Option<String>,
    inspector: bool,
    dpop: Option<String>,
    dpop_nonce: bool,
    public_url: Option<String>,
    replay_store: Option<String>,
    client_cert_header: Option<String>,
    resource: Option<String>,
}

const USAGE: &str = "usage: echo_gateway [--listen ADDR] [--openid-config URL]... [--jwks-uri URL]... \
[--issuer ISS]... [--audience AUD]... [--require-scope S]... [--require-claim NAME=V1[,V2]]... \
[--require-claim-all NAME=V1[,V2]]... [--algorithm ALG]... [--leeway SECONDS] [--header-name NAME] \
[--query-param NAME] [--failed-status CODE] [--failed-message TEXT] [--allow-http] [--token-cache N] \
[--no-auth] [--signature-only JWKS_FILE] [--inspector] [--dpop allowed|required] [--dpop-nonce] [--public-url URL] \
[--replay-store redis://…] [--client-cert-header NAME] [--resource URL]";

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
            "--openid-config" => args.openid_config.push(value()?),
            "--jwks-uri" => args.jwks_uri.push(value()?),
            "--issuer" => args.issuer.push(value()?),
            "--audience" => args.audience.push(value()?),
            "--require-scope" => args.require_scope.push(value()?),
            "--require-claim" => args.require_claim.push(value()?),
            "--require-claim-all" => args.require_claim_all.push(value()?),
            "--algorithm" => args.algorithm.push(value()?),
            "--leeway" => args.leeway = Some(value()?.parse()?),
            "--header-name" => args.header_name = Some(value()?),
            "--query-param" => args.query_param = Some(value()?),
            "--failed-status" => args.failed_status = Some(value()?.parse()?),
            "--failed-message" => args.failed_message = Some(value()?),
            "--allow-http" => args.allow_http = true,
            "--token-cache" => args.token_cache = value()?.parse()?,
            "--no-auth" => args.no_auth = true,
            "--signature-only" => args.signature_only = Some(value()?),
            "--inspector" => args.inspector = true,
            "--dpop" => args.dpop = Some(value()?),
            "--dpop-nonce" => args.dpop_nonce = true,
            "--public-url" => args.public_url = Some(value()?),
            "--replay-store" => args.replay_store = Some(value()?),
            "--client-cert-header" => args.client_cert_header = Some(value()?),
            "--resource" => args.resource = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}\n{USAGE}").into()),
        }
    }
    Ok(args)
}

fn claim_rule(spec: &str, all: bool) -> Result<Requirement, BoxError> {
    let (name, values) = spec.split_once('=').ok_or_else(|| {
        format!(
            "--require-claim{} wants NAME=V1[,V2…], got {spec:?}",
            if all { "-all" } else { "" }
        )
    })?;
    let values: Vec<String> = values.split(',').map(str::to_owned).collect();
    let rule = Requirement::claim(name);
    Ok(if all {
        rule.all_of(values)
    } else {
        rule.any_of(values)
    })
}

/// `{"claims":…,"method":…,"path":…}`: the verified claims' JSON exactly as the token carried
/// it (the layer checked it is a UTF-8 JSON object), without parsing it again.
async fn echo(request: Request) -> Response {
    let claims = request.extensions().get::<Claims>().map(Claims::raw);
    let body = format!(
        r#"{{"claims":{},"method":{},"path":{}}}"#,
        claims.unwrap_or("null"),
        Value::from(request.method().as_str()),
        Value::from(request.uri().path()),
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Demo mode: the test kit's identity provider (`validate_jwt::testing::TestIssuer`) with fresh
/// Ed25519 and RSA keys, serving OpenID discovery and a JWKS on loopback, and the sample tokens
/// it signs.
mod demo {
    use super::*;
    use validate_jwt::testing::{BadToken, TestIssuer, TokenBuilder};

    pub(super) const AUDIENCE: &str = "api://echo-demo";
    pub(super) const SCOPE: &str = "Echo.Read";

    /// The issuer; its tokens are for `audience`.
    pub(super) fn start(audience: &str) -> Result<TestIssuer, BoxError> {
        let issuer = TestIssuer::builder()
            .with_audience(audience)
            .with_algorithms([Algorithm::EdDSA, Algorithm::RS256])
            .start()?;
        Ok(issuer)
    }

    fn token(issuer: &TestIssuer, scope: &str) -> TokenBuilder {
        issuer
            .token()
            .alg(Algorithm::EdDSA)
            .subject("demo-user")
            .claim("tid", "demo-tenant")
            .scopes([scope])
    }

    pub(super) fn valid(issuer: &TestIssuer, scope: &str) -> String {
        token(issuer, scope).sign()
    }

    pub(super) fn expired(issuer: &TestIssuer) -> String {
        token(issuer, SCOPE).sign_bad(BadToken::Expired)
    }

    /// An RS256 token whose header also carries `jwk`, `jku`, `x5u` and a three-certificate
    /// `x5c` (about 4.5 KB of header, as some identity providers send): the layer reads the
    /// header, ignores every key-carrying member, and verifies with the JWKS key.
    pub(super) fn big_header_token(issuer: &TestIssuer) -> Result<String, BoxError> {
        // Certificate-sized base64 (an RSA-2048 certificate is about 1 KB of DER).
        let cert = base64::engine::general_purpose::STANDARD.encode([0x30u8; 1000]);
        let mut jwk = issuer
            .signing_key(Algorithm::RS256)
            .ok_or("the demo issuer has an RSA key")?
            .jwk();
        jwk["kid"] = json!("untrusted");
        Ok(token(issuer, SCOPE)
            .alg(Algorithm::RS256)
            .header("jwk", jwk)
            .header("jku", "https://attacker.example/jwks")
            .header("x5u", "https://attacker.example/cert.pem")
            .header("x5c", json!([cert.clone(), cert.clone(), cert]))
            .sign())
    }
}

/// `--inspector`: the token inspector, a development tool. A page (HTML, script and style
/// from `examples/inspector/`, compiled in: nothing is loaded from elsewhere, so it works
/// offline) where a developer pastes a token, and a JSON endpoint answering with
/// [`ValidateJwtLayer::explain`]'s report. Served beside the protected routes, outside the
/// layer, on loopback only. Nothing is logged or stored; every answer carries
/// `Cache-Control: no-store` and a strict Content-Security-Policy; the endpoint takes JSON only
/// (so a page of another origin cannot post to it without a preflight this server never
/// answers), from a page of its own origin, under its own `Host` (no DNS rebinding).
mod inspector {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::routing::{get, post};

    pub(super) const PATH: &str = "/_inspector/";
    const PAGE: &str = include_str!("inspector/index.html");
    const SCRIPT: &str = include_str!("inspector/inspector.js");
    const STYLE: &str = include_str!("inspector/inspector.css");
    const ICON: &str = include_str!("inspector/favicon.svg");
    const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

    #[derive(Clone)]
    struct Inspector {
        layer: ValidateJwtLayer,
        /// The `Host` values of this server: `127.0.0.1:PORT` (or `[::1]:PORT`), `localhost:PORT`.
        hosts: Vec<String>,
    }

    #[derive(serde::Deserialize)]
    struct Body {
        token: String,
    }

    /// The inspector's routes; `addr` is the loopback address the server listens on.
    pub(super) fn routes(layer: ValidateJwtLayer, addr: SocketAddr) -> Router {
        let state = Inspector {
            layer,
            hosts: vec![addr.to_string(), format!("localhost:{}", addr.port())],
        };
        Router::new()
            .route(
                "/_inspector",
                get(|| async { axum::response::Redirect::permanent(PATH) }),
            )
            .route(
                PATH,
                get(|| async { asset("text/html; charset=utf-8", PAGE) }),
            )
            .route(
                "/_inspector/inspector.js",
                get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/_inspector/inspector.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .route(
                "/_inspector/favicon.svg",
                get(|| async { asset("image/svg+xml", ICON) }),
            )
            .route("/_inspector/explain", post(explain))
            .with_state(state)
            .layer(axum::middleware::map_response(secure))
    }

    fn asset(content_type: &'static str, body: &'static str) -> Response {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    }

    /// The headers of every inspector answer.
    async fn secure(mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }

    /// `POST {"token": "…"}` → the report as JSON. Refused unless it comes from this server's
    /// own page: JSON (axum's `Json` wants `application/json`), same origin, own `Host`.
    async fn explain(
        State(inspector): State<Inspector>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Body>,
    ) -> Response {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| inspector.hosts.iter().any(|own| own == h)) {
            return (StatusCode::MISDIRECTED_REQUEST, "not this server's host").into_response();
        }
        let site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        if site.is_some_and(|s| s != "same-origin" && s != "none") {
            return (
                StatusCode::FORBIDDEN,
                "the inspector answers its own page only",
            )
                .into_response();
        }
        let report = inspector.layer.explain(&body.token).await;
        axum::Json(report).into_response()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error's own text (a `ConfigError` names the method to call), not its Debug form.
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let mut args = parse_args()?;
    if args.inspector && (args.no_auth || args.signature_only.is_some()) {
        return Err(
            "--inspector explains what the layer does: it cannot go with --no-auth or --signature-only"
                .into(),
        );
    }
    if args.no_auth && args.signature_only.is_some() {
        return Err("--no-auth and --signature-only are two different baselines: pick one".into());
    }
    if args.no_auth || args.signature_only.is_some() {
        let (app, what) = match &args.signature_only {
            Some(file) => {
                let jwks: Value = serde_json::from_slice(&std::fs::read(file)?)?;
                (
                    ceiling::router(ceiling::keys_from_jwks(&jwks)?),
                    "signature only",
                )
            }
            None => (Router::new().fallback(echo), "no authentication"),
        };
        let listen: SocketAddr = args.listen.as_deref().unwrap_or("127.0.0.1:3000").parse()?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("listening on http://{} ({what})", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(ctrl_c())
            .await?;
        return Ok(());
    }
    let demo = if args.openid_config.is_empty() && args.jwks_uri.is_empty() {
        // With `--resource` and no `--audience`, the demo's tokens are for the resource.
        let audience = match (&args.resource, args.audience.first()) {
            (_, Some(aud)) => aud.clone(),
            (Some(resource), None) => resource.clone(),
            (None, None) => demo::AUDIENCE.into(),
        };
        let issuer = demo::start(&audience)?;
        args.openid_config.push(issuer.discovery_url());
        if args.audience.is_empty() && args.resource.is_none() {
            args.audience.push(demo::AUDIENCE.into());
        }
        if args.require_scope.is_empty() {
            args.require_scope.push(demo::SCOPE.into());
        }
        Some(issuer)
    } else {
        None
    };

    let mut builder = ValidateJwtLayer::builder();
    for url in &args.openid_config {
        builder = builder.add_discovery_url(url);
    }
    for url in &args.jwks_uri {
        builder = builder.add_jwks_url(url);
    }
    if args.allow_http {
        builder = builder.danger_allow_http();
    }
    for iss in &args.issuer {
        builder = builder.add_issuer(iss);
    }
    for aud in &args.audience {
        builder = builder.add_audience(aud);
    }
    if !args.require_scope.is_empty() {
        builder = builder.require_all_scopes(args.require_scope.clone());
    }
    for spec in &args.require_claim {
        builder = builder.require(claim_rule(spec, false)?);
    }
    for spec in &args.require_claim_all {
        builder = builder.require(claim_rule(spec, true)?);
    }
    for alg in &args.algorithm {
        builder = builder.add_algorithm(alg.parse::<Algorithm>()?);
    }
    if let Some(secs) = args.leeway {
        builder = builder.with_leeway(Duration::from_secs(secs));
    }
    if let Some(name) = &args.header_name {
        builder = builder.with_header_name(name);
    }
    if let Some(name) = &args.query_param {
        builder = builder.add_query_parameter(name);
    }
    if let Some(code) = args.failed_status {
        builder = builder.with_failed_status(code);
    }
    if let Some(message) = &args.failed_message {
        builder = builder.with_failed_message(message);
    }
    builder = builder.with_token_cache(args.token_cache);
    builder = sender_constraint(builder, &args)?;
    builder = match (&args.resource, args.audience.is_empty()) {
        (Some(resource), true) => builder.with_resource_as_audience(resource.as_str()),
        (Some(resource), false) => builder.with_resource(resource.as_str()),
        (None, _) => builder,
    };
    let layer = builder.build()?;
    if let Err(e) = layer.ready().await {
        eprintln!("warning: keys not available yet ({e}); requests get 503 until they are");
    }

    let mut app = Router::new().fallback(echo).layer(layer.clone());
    let listen: SocketAddr = args.listen.as_deref().unwrap_or("127.0.0.1:3000").parse()?;
    if args.inspector && !listen.ip().is_loopback() {
        return Err(format!(
            "--inspector is a development tool and listens on loopback only, not {listen}: \
             use --listen 127.0.0.1:PORT (or leave --inspector out)"
        )
        .into());
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    if args.inspector {
        // Added after `.layer(..)`: outside the layer, so the page needs no token.
        app = app.merge(inspector::routes(layer.clone(), addr));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    if args.inspector && demo.is_none() {
        writeln!(
            out,
            "token inspector (a development tool): http://{addr}{}",
            inspector::PATH
        )?;
    }
    if let Some(metadata) = layer.resource_metadata() {
        writeln!(
            out,
            "protected resource metadata (RFC 9728) of {} at {}",
            metadata.resource(),
            metadata.paths().collect::<Vec<_>>().join(" and ")
        )?;
    }
    if let Some(issuer) = &demo {
        let valid = demo::valid(issuer, demo::SCOPE);
        let expired = demo::expired(issuer);
        let no_scope = demo::valid(issuer, "Other.Scope");
        eprintln!(
            "demo mode: an in-process identity provider at {} signs the tokens below.",
            issuer.url()
        );
        eprintln!("\nvalid token:\n{valid}\n\nexpired token:\n{expired}\n");
        eprintln!("# 200, the echo of your request and the token's claims:");
        eprintln!("curl -i -H 'Authorization: Bearer {valid}' http://{addr}/hello");
        eprintln!("# 401 invalid_token (expired):");
        eprintln!("curl -i -H 'Authorization: Bearer {expired}' http://{addr}/hello");
        eprintln!("# 401, no token:");
        eprintln!("curl -i http://{addr}/hello");
        eprintln!(
            "# 403 insufficient_scope (the token lacks {}):",
            demo::SCOPE
        );
        eprintln!("curl -i -H 'Authorization: Bearer {no_scope}' http://{addr}/hello");
        let big = demo::big_header_token(issuer)?;
        eprintln!(
            "# 200, an RS256 token whose {}-byte header also carries jwk, jku, x5u and a \
             three-certificate x5c (read, and its keys ignored):",
            big.split('.').next().map_or(0, str::len) * 3 / 4
        );
        eprintln!("curl -i -H 'Authorization: Bearer {big}' http://{addr}/hello");
        if args.inspector {
            eprintln!(
                "# why a token is refused: paste it into the token inspector (a development \
                 tool) at http://{addr}{}",
                inspector::PATH
            );
        }
    }
    out.flush()?;
    drop(out);
    axum::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    if let Some(stats) = layer.token_cache_stats() {
        eprintln!(
            "token cache: {} entries (capacity {}), {} hits, {} misses",
            stats.len, stats.capacity, stats.hits, stats.misses
        );
    }
    Ok(())
}

/// `--dpop`, `--dpop-nonce`, `--public-url`, `--replay-store`, `--client-cert-header`.
fn sender_constraint(
    mut builder: validate_jwt::ValidateJwtBuilder,
    args: &Args,
) -> Result<validate_jwt::ValidateJwtBuilder, BoxError> {
    use validate_jwt::sender::{CertificateHeader, ClientCertificates, Dpop};
    match args.dpop.as_deref() {
        None => {
            if args.dpop_nonce || args.public_url.is_some() || args.replay_store.is_some() {
                return Err("--dpop-nonce, --public-url and --replay-store need --dpop".into());
            }
        }
        Some(mode) => {
            let mut dpop = match mode {
                "allowed" => Dpop::allowed(),
                "required" => Dpop::required(),
                other => {
                    return Err(format!("--dpop wants allowed or required, got {other:?}").into());
                }
            };
            if args.dpop_nonce {
                dpop = dpop.with_nonces();
            }
            if let Some(url) = &args.public_url {
                dpop = dpop.with_public_url(url);
            }
            if let Some(url) = &args.replay_store {
                #[cfg(feature = "redis")]
                {
                    dpop =
                        dpop.with_replay_store(validate_jwt::sender::RedisReplayStore::new(url)?);
                }
                #[cfg(not(feature = "redis"))]
                {
                    return Err(
                        format!("--replay-store {url}: build with `--features redis`").into(),
                    );
                }
            }
            builder = builder.with_dpop(dpop);
        }
    }
    if let Some(name) = &args.client_cert_header {
        let format = match name.eq_ignore_ascii_case("x-forwarded-client-cert") {
            true => CertificateHeader::EnvoyXfcc,
            false => CertificateHeader::Pem,
        };
        builder =
            builder.with_client_certificates(ClientCertificates::from_trusted_header(name, format));
    }
    Ok(builder)
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
