//! The DNS server: hickory-server's `Server` on the sockets `main` bound, with our `Handler`.
//! `parse` maps names to what they ask, `answer` builds records from a snapshot, `forward` relays
//! other names upstream, `handler` speaks the protocol around them.

pub mod answer;
pub mod forward;
pub mod handler;
pub mod parse;
pub mod region;

use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use answer::{Transport, Zone};
pub use forward::Forwarder;
pub use handler::Handler;
pub use region::Regions;

/// How long a TCP connection may sit idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection (pipelined queries, RFC 7766).
const TCP_QUEUE: usize = 64;

/// Serves DNS on every socket until `token` is cancelled, then lets in-flight queries finish.
pub async fn serve(handler: Handler, udp: Vec<UdpSocket>, tcp: Vec<TcpListener>, token: CancellationToken) {
    let mut server = Server::new(handler);
    for socket in udp {
        server.register_socket(socket);
    }
    for listener in tcp {
        server.register_listener(listener, TCP_IDLE, TCP_QUEUE);
    }
    tokio::select! {
        _ = token.cancelled() => {
            if let Err(e) = server.shutdown_gracefully().await {
                warn!(error = %e, "DNS server stopped with an error");
            }
        }
        r = server.block_until_done() => {
            if let Err(e) = r {
                warn!(error = %e, "DNS server stopped with an error");
            }
        }
    }
}
