//! The issuer's HTTP server: axum on its own OS thread with its own current-thread Tokio
//! runtime, so it runs in real time whatever the test's runtime does (a test may pause and
//! advance its clock; a hang then really hangs), and it works from any test, async or not.
//!
//! While the issuer is [down](super::Fault::Down), new connections are closed as soon as they
//! are accepted and open ones fail at their next read or write; the port stays the issuer's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::Fault;

/// What the server answers at a path.
pub(super) enum Reply {
    NotFound,
    Json(String),
    Fault(Fault),
}

/// What the server serves: the issuer's documents, read at every request.
pub(super) trait Site: Send + Sync + 'static {
    /// The answer for a GET of `path` (the site counts its requests).
    fn reply(&self, path: &str) -> Reply;
    /// Whether connections are refused ([`Fault::Down`]).
    fn is_down(&self) -> bool;
}

/// The body of [`Fault::InvalidJson`]: a key set cut short.
const INVALID_JSON: &str = "{\"keys\": [{\"kty\": \"RSA\", \"n\": ";

/// A running server: the way to stop it and its thread. It stops when dropped.
pub(super) struct Server(Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>);

impl Server {
    /// Serves `site` on `listener`, which must be non-blocking. Returns once the server's
    /// runtime is up (its thread builds it, so that no runtime is ever dropped in the caller's,
    /// which may be async).
    pub(super) fn spawn(listener: std::net::TcpListener, site: Arc<dyn Site>) -> io::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, up) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new()
            .name("validate-jwt-test-issuer".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(e) => return drop(started.send(Err(e))),
                };
                let listener = {
                    let _entered = runtime.enter();
                    tokio::net::TcpListener::from_std(listener)
                };
                let gate = match listener {
                    Ok(listener) => Gate {
                        listener,
                        site: site.clone(),
                    },
                    Err(e) => return drop(started.send(Err(e))),
                };
                let _ = started.send(Ok(()));
                let app = Router::new().fallback(answer).with_state(site);
                runtime.block_on(async move {
                    tokio::select! {
                        _ = axum::serve(gate, app) => {}
                        _ = stopped => {}
                    }
                });
                // Hanging answers and open connections are dropped, not awaited.
                runtime.shutdown_background();
            })?;
        let server = Server(Some((stop, thread)));
        match up.recv() {
            Ok(result) => result.map(|()| server),
            Err(_) => Err(io::Error::other("the test issuer's thread ended")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.0.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// The listener: while the site is down, a connection is closed as soon as it is accepted.
struct Gate {
    listener: tokio::net::TcpListener,
    site: Arc<dyn Site>,
}

impl axum::serve::Listener for Gate {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) if self.site.is_down() => drop(stream),
                Ok((stream, addr)) => {
                    let site = self.site.clone();
                    return (Connection { stream, site }, addr);
                }
                // Out of file descriptors and the like: wait a little, as axum's listener does.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection, which fails at its next read or write while the site is down (the
/// server then closes it), as a keep-alive connection to a server that went down does.
struct Connection {
    stream: TcpStream,
    site: Arc<dyn Site>,
}

impl Connection {
    fn cut(&self) -> Option<io::Error> {
        self.site
            .is_down()
            .then(|| io::Error::new(io::ErrorKind::ConnectionAborted, "the test issuer is down"))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(error) = this.cut() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

async fn answer(State(site): State<Arc<dyn Site>>, uri: Uri) -> Response {
    let json = |body: String| ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    match site.reply(uri.path()) {
        Reply::NotFound => StatusCode::NOT_FOUND.into_response(),
        Reply::Json(body) => json(body),
        Reply::Fault(Fault::Status(status)) => status.into_response(),
        Reply::Fault(Fault::Hang) => std::future::pending().await,
        Reply::Fault(Fault::InvalidJson) => json(INVALID_JSON.to_owned()),
        // A request that slipped in as the issuer went down.
        Reply::Fault(Fault::Down) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
