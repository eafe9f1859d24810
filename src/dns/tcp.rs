//! DNS over TCP (RFC 7766), our own instead of hickory-server's listener, which has no limit on
//! connections and answers one query at a time per connection. Each connection reads whatever
//! the client has sent, answers every whole query in it that the fast path can answer at once
//! (the same pre-encoded answers as UDP, RFC 7766 §6.2.1.1's pipelining) and writes those
//! answers together; the others go to the full handler, up to `pipeline` at once, and their
//! answers follow as they complete, in any order.
//!
//! Bounds: at most `max_connections` at once; when a new client finds them all taken, the
//! connection idle the longest is closed to make room (RFC 7766 §6.2.3 lets a server close idle
//! connections under pressure), and only when none is idle is the new one refused. A connection
//! idle for `idle_timeout` is closed, as is one that has sent `max_queries` queries (0, the
//! default, is no limit, as NSD's `tcp-query-count`): every query read by then is answered
//! first. Each bound hit is counted in `signpost_limit_hits_total`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::answer::Transport;
use super::fast::{Client, FastTable};
use super::handler::{Handler, Reply};
use super::metrics::FastBatch;
use crate::metrics::{Limit, limit_hit};

/// The bounds of the TCP server (`[dns] tcp_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Queries one connection may send before the server closes it; 0 = no limit.
    pub max_queries: u32,
    /// Queries of one connection answered at once; reading waits while that many are open.
    pub pipeline: usize,
}

impl Default for TcpLimits {
    fn default() -> TcpLimits {
        TcpLimits { max_connections: 1000, idle_timeout: Duration::from_secs(10), max_queries: 0, pipeline: 64 }
    }
}

/// Who answers a connection's queries: the fast path's current table first, then the full
/// handler.
#[derive(Clone)]
pub struct Answerers {
    pub fast: Arc<ArcSwapOption<FastTable>>,
    pub handler: Handler,
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
    answerers: Answerers,
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
        let (answerers, idle, token) = (answerers.clone(), idle.clone(), token.clone());
        tracker.spawn(async move {
            connection(stream, peer, answerers, limits, &idle, token).await;
            drop(permit);
        });
    }
}

/// Serves one byte stream as a connection from `peer` would be served, with no other
/// connection to compete with (the fuzz targets drive it with an in-memory stream).
pub async fn serve_stream<S>(stream: S, peer: SocketAddr, answerers: Answerers, limits: TcpLimits)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    connection(stream, peer, answerers, limits, &Idle::default(), CancellationToken::new()).await;
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    answerers: Answerers,
    limits: TcpLimits,
    idle: &Idle,
    token: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let pipeline = limits.pipeline.max(1);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(pipeline);
    // Queries of this connection with the full handler.
    let open = Arc::new(Semaphore::new(pipeline));
    let write = tokio::spawn(write_answers(writer, rx, limits.idle_timeout));
    let evict = token.child_token();
    let mut read: Vec<u8> = Vec::with_capacity(4096);
    // When the first byte of the query not yet read whole arrived: it must arrive whole within
    // the idle timeout too (no slow drip).
    let mut begun: Option<Instant> = None;
    let (mut queries, mut scratch) = (0u32, Vec::with_capacity(512));
    let mut counted = FastBatch::with_capacity(64, Transport::Tcp);
    'connection: loop {
        // Idle: nothing of ours in flight, waiting for the client to start its next query.
        let idle_key = (read.is_empty() && open.available_permits() == pipeline).then(|| idle.enter(&evict));
        let deadline = begun.unwrap_or_else(Instant::now) + limits.idle_timeout;
        read.reserve(4096);
        let got = tokio::select! {
            _ = evict.cancelled() => 0,
            r = tokio::time::timeout_at(deadline, reader.read_buf(&mut read)) => match r {
                Ok(r) => r.unwrap_or(0),
                Err(_) => {
                    limit_hit(Limit::TcpIdleTimeout);
                    0
                }
            },
        };
        if let Some(key) = idle_key {
            idle.leave(key);
        }
        if got == 0 {
            break;
        }
        // Every whole query read: the fast path's answers go out in one write.
        let table = answerers.fast.load();
        let client = Client { ip: peer.ip(), transport: Transport::Tcp };
        let mut batch = Vec::new();
        let mut at = 0;
        counted.start();
        while let Some(query) = frame(&read[at..]) {
            at += 2 + query.len();
            queries += 1;
            if let Some(qtype) = table.as_ref().and_then(|t| t.answer(query, client, &mut scratch)) {
                counted.answered(qtype, &scratch);
                push_framed(&mut batch, &scratch);
                continue;
            }
            let slot = match open.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    // Back pressure: the answers ready go first, then wait for room.
                    if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).await.is_err() {
                        break 'connection;
                    }
                    let Ok(slot) = open.clone().acquire_owned().await else { break 'connection };
                    slot
                }
            };
            tokio::spawn(slow(answerers.handler.clone(), query.to_vec(), peer, tx.clone(), slot));
        }
        counted.finish();
        read.drain(..at);
        begun = if read.is_empty() { None } else { begun.or_else(|| Some(Instant::now())) };
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            break;
        }
        if limits.max_queries > 0 && queries >= limits.max_queries {
            limit_hit(Limit::TcpQueriesPerConnection);
            break;
        }
    }
    // The answers still in flight are written before the connection closes.
    drop(tx);
    let _ = write.await;
}

/// The first whole length-prefixed message of `buf`, if it holds one.
fn frame(buf: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    buf.get(2..2 + len)
}

fn push_framed(out: &mut Vec<u8>, message: &[u8]) {
    if let Ok(len) = u16::try_from(message.len()) {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
    }
}

/// The full handler for one query of a connection; its answer (or a transfer's messages, made
/// one at a time as the writer takes them) goes to the connection's writer.
async fn slow(
    handler: Handler,
    query: Vec<u8>,
    peer: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    _slot: OwnedSemaphorePermit,
) {
    let framed = |message: Vec<u8>| {
        let mut out = Vec::with_capacity(2 + message.len());
        push_framed(&mut out, &message);
        out
    };
    match handler.answer(&query, peer, Transport::Tcp).await {
        Some(Reply::Message(answer)) => {
            let _ = tx.send(framed(answer)).await;
        }
        Some(Reply::Transfer(messages)) => {
            // The channel's bound is the back pressure of a client reading slowly.
            for message in *messages {
                if tx.send(framed(message)).await.is_err() {
                    break;
                }
            }
        }
        None => {}
    }
}

/// Writes framed answers as they come; a client that stops reading for `timeout` is given up on.
async fn write_answers<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>, timeout: Duration) {
    while let Some(framed) = rx.recv().await {
        match tokio::time::timeout(timeout, writer.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
    let _ = writer.shutdown().await;
}
