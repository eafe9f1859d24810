//! The DNS server: hickory-server's `Server` on the sockets `main` bound, with our `Handler`.
//! `parse` maps names to what they ask, `answer` builds records from a snapshot, `forward` relays
//! other names upstream, `handler` speaks the protocol around them.

pub mod answer;
pub mod fast;
pub mod forward;
pub mod handler;
pub mod metrics;
pub mod parse;
pub mod region;
pub mod udp;

use std::time::Duration;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use answer::{Transport, Zone};
pub use fast::FastTable;
pub use forward::Forwarder;
pub use handler::Handler;
pub use region::Regions;

/// How long a TCP connection may sit idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection (pipelined queries, RFC 7766).
const TCP_QUEUE: usize = 64;

/// Serves DNS until `token` is cancelled, then lets in-flight queries finish: UDP through our
/// own loop with the fast path (`udp.rs`), TCP through hickory-server, both with `handler`.
pub async fn serve(
    handler: Handler,
    fast: Arc<ArcSwapOption<FastTable>>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    token: CancellationToken,
) {
    let slow_tasks = TaskTracker::new();
    let loops = TaskTracker::new();
    for socket in udp {
        loops.spawn(udp::serve(socket, fast.clone(), handler.clone(), slow_tasks.clone(), token.clone()));
    }
    let has_tcp = !tcp.is_empty();
    let mut server = Server::new(handler);
    for listener in tcp {
        server.register_listener(listener, TCP_IDLE, TCP_QUEUE);
    }
    if has_tcp {
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
    } else {
        token.cancelled().await;
    }
    loops.close();
    loops.wait().await;
    slow_tasks.close();
    slow_tasks.wait().await;
}
