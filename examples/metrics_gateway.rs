//! The demo with observability: an Echo API behind `ValidateJwtLayer` (keys from a local test
//! issuer), a Prometheus exporter at `/metrics` (`metrics-exporter-prometheus`) and a readiness
//! probe at `/healthz` (`validate_jwt::axum::health_route`). It prints the curl lines to try.
//!
//! ```text
//! cargo run --example metrics_gateway --features metrics,axum [-- --listen 127.0.0.1:3001]
//! ```
//!
//! `scripts/check_metrics_demo.sh` (run by CI) checks that every printed line answers as printed.

use std::error::Error;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;
use validate_jwt::testing::{BadToken, TestIssuer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut listen = "127.0.0.1:3001".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => return Err("usage: metrics_gateway [--listen ADDR]".into()),
        }
    }

    // The recorder first: every metric recorded from now on reaches it.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    validate_jwt::metrics::describe();

    let issuer = TestIssuer::start()?;
    let jwt = issuer.layer_builder().with_token_cache(10_000).build()?;
    jwt.ready().await?;

    let app = Router::new()
        .route("/", get(|| async { "echo" }))
        .layer(jwt.clone())
        // Outside the layer: no token needed.
        .route("/healthz", validate_jwt::axum::health_route(jwt))
        .route("/metrics", get(move || async move { prometheus.render() }));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = issuer.token().sign();
    let expired = issuer.token().sign_bad(BadToken::Expired);
    println!("metrics_gateway on {base} (Ctrl-C to stop)");
    println!("# 200: a valid token (send it twice: the second is a token-cache hit)");
    println!("curl -i -H 'Authorization: Bearer {token}' {base}/");
    println!("# 401: an expired one");
    println!("curl -i -H 'Authorization: Bearer {expired}' {base}/");
    println!("# 401: no token");
    println!("curl -i {base}/");
    println!("# 200: the readiness probe (503 while no key set is available)");
    println!("curl -i {base}/healthz");
    println!("# 200: the metrics, Prometheus text format");
    println!("curl -i {base}/metrics");
    axum::serve(listener, app).await?;
    Ok(())
}
