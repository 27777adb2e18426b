//! Certificate-bound access tokens (RFC 8705) with a server that terminates TLS itself:
//! tokio-rustls asks each client for a certificate, the connection's certificate goes into
//! every request's extensions as a [`ClientCertificate`], and the layer accepts a token whose
//! `cnf["x5t#S256"]` is that certificate's thumbprint, and only over that connection.
//!
//! ```text
//! cargo run --example mtls_server      # a self-contained demo: CA, server, two clients
//! cargo test --example mtls_server     # the same, asserting the answers
//! ```
//!
//! The demo makes a CA, a server certificate for `localhost` and two client certificates with
//! rcgen, starts a local identity provider (the test kit) for the token, serves on
//! 127.0.0.1, and calls itself three times with the token bound to client A: as client A
//! (200), as client B (401), and without a client certificate (401).

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig, crypto};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower::ServiceExt as _;
use validate_jwt::Claims;
use validate_jwt::sender::{ClientCertificate, ClientCertificates};
use validate_jwt::testing::TestIssuer;

type BoxError = Box<dyn Error + Send + Sync>;

/// A certificate and its private key (PKCS#8).
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn key(identity: &Identity) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone()))
}

/// A CA, a server certificate for `localhost` and two client certificates it signed.
fn pki() -> Result<(CertificateDer<'static>, Identity, Identity, Identity), BoxError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let issue = |names: Vec<String>| -> Result<Identity, BoxError> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &ca)?;
        Ok(Identity {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        })
    };
    let server = issue(vec!["localhost".into()])?;
    let client_a = issue(vec!["client-a.example".into()])?;
    let client_b = issue(vec!["client-b.example".into()])?;
    Ok((ca.der().clone(), server, client_a, client_b))
}

fn provider() -> Arc<crypto::CryptoProvider> {
    Arc::new(crypto::aws_lc_rs::default_provider())
}

/// Accepts TLS connections that may present a client certificate signed by `ca`, and serves
/// `app` on each with the certificate in every request's extensions.
async fn serve(
    listener: TcpListener,
    ca: CertificateDer<'static>,
    server: Identity,
    app: Router,
) -> Result<(), BoxError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated() // bearer tokens need no certificate; bound ones do
        .build()?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert.clone()], key(&server))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            // The end-entity certificate rustls verified for this connection.
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| ClientCertificate::from_der(der.to_vec()));
            let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
                if let Some(certificate) = &certificate {
                    request.extensions_mut().insert(certificate.clone());
                }
                app.clone().oneshot(request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await;
        });
    }
}

/// `GET /hello` over TLS with `token`, as `client` (or without a certificate): the status.
async fn call(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    client: Option<&Identity>,
    token: &str,
) -> Result<u16, BoxError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        Some(identity) => {
            builder.with_client_auth_cert(vec![identity.cert.clone()], key(identity))?
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let request = format!(
        "GET /hello HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // The server may close without close_notify: what was read is the answer.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split(' ')
        .nth(1)
        .ok_or("no status line")?
        .parse()?;
    Ok(status)
}

/// Runs the demo: the statuses as client A, as client B, and without a certificate.
async fn demo() -> Result<[u16; 3], BoxError> {
    let (ca, server, client_a, client_b) = pki()?;
    let issuer = TestIssuer::start()?;
    let layer = issuer
        .layer_builder()
        .with_client_certificates(ClientCertificates::from_extensions())
        .build()?;
    let app = Router::new()
        .route(
            "/hello",
            get(|claims: axum::Extension<Claims>| async move {
                let bound = claims.binding().and_then(|b| b.certificate_thumbprint());
                format!("hello; bound to the certificate {bound:?}\n")
            }),
        )
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, ca.clone(), server, app));

    // The authorization server binds the token to client A's certificate.
    let x5t = ClientCertificate::from_der(client_a.cert.to_vec()).thumbprint();
    let token = issuer
        .token()
        .subject("alice")
        .claim("cnf", json!({ "x5t#S256": x5t }))
        .sign();
    Ok([
        call(addr, &ca, Some(&client_a), &token).await?,
        call(addr, &ca, Some(&client_b), &token).await?,
        call(addr, &ca, None, &token).await?,
    ])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let [a, b, none] = demo().await?;
    println!("the token bound to client A, sent as client A: {a}");
    println!("the same token, sent as client B:            {b}");
    println!("the same token, without a client certificate: {none}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_certificate_bound_token_passes_over_its_own_tls_connection_only() {
        assert_eq!(super::demo().await.unwrap(), [200, 401, 401]);
    }
}
