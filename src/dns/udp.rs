//! The UDP server: one task per socket that drains every datagram the socket has ready, answers
//! what the fast path can answer on the spot, and hands the rest to the full handler as tasks
//! of their own (the same `Handler` the TCP side uses through hickory-server). hickory's own UDP
//! loop spawns a task and builds a `Request` for every datagram, which costs more than the
//! pre-encoded answer itself; this loop spends that only on unusual queries.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::fast::FastTable;
use super::handler::Handler;

/// Datagrams answered before the loop yields to other tasks on its thread.
const BUDGET: usize = 128;
/// Incoming datagrams larger than this are not DNS queries we answer.
const MAX_QUERY: usize = 4096;

/// Serves one UDP socket until `token` is cancelled; slow-path answers still in flight are
/// tracked by `tracker`, so shutdown can wait for them.
pub async fn serve(
    socket: UdpSocket,
    fast: Arc<ArcSwapOption<FastTable>>,
    handler: Handler,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            ready = socket.readable() => if let Err(e) = ready {
                debug!(error = %e, "UDP socket failed");
                return;
            },
        }
        for _ in 0..BUDGET {
            let (len, src) = match socket.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error for an earlier reply, and the like: not this loop's concern.
                Err(_) => continue,
            };
            if src.port() == 0 || src.ip().is_unspecified() {
                continue;
            }
            let query = &buf[..len];
            let table = fast.load();
            let timed = super::metrics::sample().then(std::time::Instant::now);
            match table.as_ref().and_then(|t| t.answer(query, &mut out)) {
                Some(n) => {
                    if let Some(start) = timed {
                        super::metrics::fast_duration(start.elapsed());
                    }
                    super::metrics::fast(query, &out[..n]);
                    send(&socket, &out[..n], src).await;
                }
                None => {
                    let (socket, handler, query) = (socket.clone(), handler.clone(), query.to_vec());
                    tracker.spawn(slow(socket, handler, query, src));
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) {
    match socket.try_send_to(bytes, dst) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if let Err(e) = socket.send_to(bytes, dst).await {
                debug!(error = %e, %dst, "UDP send failed");
            }
        }
        Err(e) => debug!(error = %e, %dst, "UDP send failed"),
    }
}

/// The full handler, for everything the fast path left: parse with hickory-proto, answer, send.
async fn slow(socket: Arc<UdpSocket>, handler: Handler, query: Vec<u8>, src: SocketAddr) {
    let header = match Header::read(&mut hickory_proto::serialize::binary::BinDecoder::new(&query)) {
        Ok(h) => h,
        Err(_) => return, // Under 12 bytes: not even a header to answer to.
    };
    if header.metadata.message_type == MessageType::Response {
        return; // Never answer answers: that is how reflection loops start.
    }
    let request = match Request::from_bytes(query, src, Protocol::Udp) {
        Ok(r) => r,
        Err(_) => {
            let mut meta = hickory_proto::op::Metadata::response_from_request(&header.metadata);
            meta.response_code = ResponseCode::FormErr;
            let reply = Header { metadata: meta, counts: Default::default() };
            let mut bytes = Vec::with_capacity(12);
            if reply.emit(&mut BinEncoder::new(&mut bytes)).is_ok() {
                send(&socket, &bytes, src).await;
            }
            return;
        }
    };
    handler.handle_request::<_, TokioTime>(&request, UdpResponder { socket, dst: src }).await;
}

/// Sends the full handler's answers back through the socket the query came in on.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // As hickory's UDP path: the response OPT's payload, or RFC 1035's 512 without one.
        let max = response.edns().map_or(512, |e| e.max_payload());
        let mut bytes = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_max_size(max);
        let info = response.destructive_emit(&mut enc)?;
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}
