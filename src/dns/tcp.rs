//! DNS over TCP (RFC 7766), our own instead of hickory-server's listener, which has no limit on
//! connections and answers one query at a time per connection. Each connection reads
//! length-prefixed queries, runs up to `pipeline` of them at once through the full handler
//! (`wire::answer`) and writes the answers as they complete, in any order.
//!
//! Bounds: at most `max_connections` at once; when a new client finds them all taken, the
//! connection idle the longest is closed to make room (RFC 7766 §6.2.3 lets a server close idle
//! connections under pressure), and only when none is idle is the new one refused. A connection
//! idle for `idle_timeout` is closed, as is one that has sent `max_queries` queries (after their
//! answers). Each bound hit is counted in `signpost_limit_hits_total`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::answer::Transport;
use super::handler::{Handler, Reply};
use crate::metrics::{Limit, limit_hit};

/// The bounds of the TCP server (`[dns] tcp_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Queries one connection may send before the server closes it.
    pub max_queries: u32,
    /// Queries of one connection answered at once; reading waits while that many are open.
    pub pipeline: usize,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits { max_connections: 1000, idle_timeout: Duration::from_secs(10), max_queries: 10_000, pipeline: 64 }
    }
}

/// How long a new client waits for the connection it displaced to give its slot back.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// Connections waiting for their next query, oldest first, so that a new client can take the
/// place of the one idle longest.
#[derive(Default)]
struct Idle {
    next: AtomicU64,
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Idle {
    /// Marks a connection idle; returns the key to take it back with.
    fn enter(&self, evict: &CancellationToken) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(key, evict.clone());
        key
    }

    fn leave(&self, key: u64) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    }

    /// Closes the connection idle the longest; returns false if none is idle.
    fn evict_oldest(&self) -> bool {
        let oldest = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).pop_first();
        oldest.map(|(_, token)| token.cancel()).is_some()
    }
}

/// Serves one listener until `token` is cancelled; connections are tracked by `tracker`, so
/// shutdown can wait for their answers.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: TcpLimits,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let idle = Arc::new(Idle::default());
    loop {
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    debug!(error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                limit_hit(Limit::TcpConnections);
                if !idle.evict_oldest() {
                    debug!(%peer, "TCP connection refused: every connection is busy");
                    continue; // Dropping the stream closes it.
                }
                // The evicted connection gives its slot back as soon as its task sees the token.
                match tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, idle, token) = (handler.clone(), idle.clone(), token.clone());
        tracker.spawn(async move {
            connection(stream, peer, handler, limits, &idle, token).await;
            drop(permit);
        });
    }
}

/// Serves one byte stream as a connection from `peer` would be served, with no other
/// connection to compete with (the fuzz targets drive it with an in-memory stream).
pub async fn serve_stream<S>(stream: S, peer: SocketAddr, handler: Handler, limits: TcpLimits)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    connection(stream, peer, handler, limits, &Idle::default(), CancellationToken::new()).await;
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    handler: Handler,
    limits: TcpLimits,
    idle: &Idle,
    token: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let pipeline = limits.pipeline.max(1);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(pipeline);
    let open = Arc::new(Semaphore::new(pipeline));
    let write = tokio::spawn(write_answers(writer, rx, limits.idle_timeout));
    let evict = token.child_token();
    let mut queries = 0u32;
    loop {
        if queries >= limits.max_queries {
            limit_hit(Limit::TcpQueriesPerConnection);
            break;
        }
        // Wait for room in the pipeline before reading more (back pressure on the client).
        let Ok(slot) = open.clone().acquire_owned().await else { break };
        // Idle: nothing of ours in flight, waiting for the client to start its next query.
        let idle_key = (open.available_permits() == pipeline - 1).then(|| idle.enter(&evict));
        let mut len = [0u8; 2];
        let started = tokio::select! {
            _ = evict.cancelled() => false,
            r = tokio::time::timeout(limits.idle_timeout, reader.read_exact(&mut len)) => match r {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    limit_hit(Limit::TcpIdleTimeout);
                    false
                }
            },
        };
        if let Some(key) = idle_key {
            idle.leave(key);
        }
        if !started {
            break;
        }
        // A message begun must arrive whole within the idle timeout too (no slow drip).
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        let frame = tokio::select! {
            _ = token.cancelled() => None,
            r = tokio::time::timeout(limits.idle_timeout, reader.read_exact(&mut body)) => match r {
                Ok(Ok(_)) => Some(body),
                Ok(Err(_)) => None,
                Err(_) => {
                    limit_hit(Limit::TcpIdleTimeout);
                    None
                }
            },
        };
        let Some(query) = frame else { break };
        queries += 1;
        let (handler, tx) = (handler.clone(), tx.clone());
        tokio::spawn(async move {
            match handler.answer(&query, peer, Transport::Tcp).await {
                Some(Reply::Message(answer)) => {
                    let _ = tx.send(answer).await;
                }
                Some(Reply::Transfer(messages)) => {
                    // Made one at a time as the writer takes them: the channel's bound is the
                    // back pressure of a client reading slowly.
                    for message in messages {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                }
                None => {}
            }
            drop(slot);
        });
    }
    // The answers still in flight are written before the connection closes.
    drop(tx);
    let _ = write.await;
}

/// Writes answers as they come; a client that stops reading for `timeout` is given up on.
async fn write_answers<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>, timeout: Duration) {
    while let Some(answer) = rx.recv().await {
        let Ok(len) = u16::try_from(answer.len()) else { continue };
        let mut framed = Vec::with_capacity(2 + answer.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&answer);
        match tokio::time::timeout(timeout, writer.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = writer.shutdown().await;
}
