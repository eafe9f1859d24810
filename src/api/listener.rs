//! The API's socket for axum: plain TCP, or TLS over it (`[http] tls_cert`). TLS handshakes run
//! in tasks of their own, off the accept loop, each bounded in time: a client that opens a
//! connection and says nothing delays no one else. Each connection takes the TLS configuration
//! current when it arrives, so a renewed certificate reaches the next connection at once.
//!
//! Handlers see the client's address as `ConnectInfo<Peer>` either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

use crate::tls::ServerTls;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Connections whose TLS handshake is done, for axum to serve.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and shakes hands with `tls`'s current configuration, at most
    /// `max_handshakes` at a time (more are closed at once and counted in
    /// `signpost_limit_hits_total{limit="tls_handshakes"}`). Accepting stops when the listener
    /// is dropped.
    pub fn new(tcp: TcpListener, tls: Arc<ServerTls>, max_handshakes: usize) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(max_handshakes));
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off a little, as axum does.
                            debug!(error = %e, "accepting an API connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    crate::metrics::limit_hit(crate::metrics::Limit::TlsHandshakes);
                    continue;
                };
                let (acceptor, tx) = (TlsAcceptor::from(tls.config()), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            drop(slot);
                            let _ = tx.send((stream, peer)).await;
                        }
                        // Scanners and misconfigured clients: not worth a line each at info.
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
