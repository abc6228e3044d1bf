//! Accepting connections. Each connection is served by hyper with a header read timeout, so a
//! client trickling its headers (slowloris), idling between requests or never sending anything
//! cannot hold a connection for long; open connections are capped, and one over the cap is
//! closed at once. With TLS, the handshake must also finish within the header time limit. On
//! shutdown the listener closes, every connection finishes the request it is serving, and then
//! closes.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Longest a client may take to send a request's headers (also the longest a kept-alive
    /// connection may sit idle).
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` completes, then drains the
/// connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors or a connection reset before accept: try again shortly.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
        let (builder, app, watcher, tls) = (builder.clone(), app.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            // hyper's header timer starts at the first byte; a client that never sends one is
            // timed out here.
            let first_byte = tokio::time::timeout(limits.header_timeout, stream.peek(&mut [0u8; 1])).await;
            if !matches!(first_byte, Ok(Ok(1))) {
                return;
            }
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app);
            match tls {
                None => serve_io(stream, &builder, service, watcher).await,
                Some(tls) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await else {
                        return;
                    };
                    serve_io(stream, &builder, service, watcher).await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves one connection over `stream` (plain TCP or an established TLS stream).
async fn serve_io(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    builder: &Builder<TokioExecutor>,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let _ = watcher.watch(connection.into_owned()).await;
}
