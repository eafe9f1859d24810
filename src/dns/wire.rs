//! Raw query bytes in, answer bytes out: the full handler as our own UDP and TCP servers (and
//! the fuzz targets) call it. Parsing is hickory-proto's; a query that does not parse gets a
//! bare FORMERR header when it has a header to answer to, and nothing otherwise.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use super::handler::Handler;

/// Answers one query as the full handler would over `protocol`; `None` means send nothing (not
/// even a header, or a message that is itself a response).
pub async fn answer(handler: &Handler, query: Vec<u8>, src: SocketAddr, protocol: Protocol) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(&query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        return None; // Never answer answers: that is how reflection loops start.
    }
    if question_points_into_header(&query) {
        return Some(formerr(&header.metadata));
    }
    let request = match Request::from_bytes(query, src, protocol) {
        Ok(r) => r,
        Err(_) => return Some(formerr(&header.metadata)),
    };
    let capture = Capture { out: Arc::new(Mutex::new(None)), udp: protocol == Protocol::Udp };
    handler.handle_request::<_, TokioTime>(&request, capture.clone()).await;
    capture.out.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Returns true if a question name reaches, through compression pointers, into the header.
/// hickory-proto reads such a name (header bytes as labels), and hickory-server echoes the
/// question's original bytes in the answer, where the pointer then lands on the answer's header:
/// an answer no client can parse (found by fuzz/dns). No real name lives in a header.
fn question_points_into_header(query: &[u8]) -> bool {
    let count = u16::from_be_bytes([query[4], query[5]]);
    let mut pos = 12;
    for _ in 0..count {
        let (mut at, mut hops) = (pos, 0);
        let mut end = None;
        loop {
            let Some(&len) = query.get(at) else { return false };
            match len & 0xC0 {
                0xC0 => {
                    let Some(&low) = query.get(at + 1) else { return false };
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                    if target < 12 {
                        return true;
                    }
                    end.get_or_insert(at + 2);
                    hops += 1;
                    if hops > 64 || target >= at {
                        return false; // A loop or a forward pointer: the parser refuses those.
                    }
                    at = target;
                }
                0x00 if len == 0 => {
                    end.get_or_insert(at + 1);
                    break;
                }
                0x00 => at += 1 + usize::from(len),
                _ => return false, // Label types the parser refuses.
            }
        }
        pos = end.unwrap_or(at) + 4;
    }
    false
}

/// A header alone, FORMERR, for a query whose header was readable but nothing after it.
fn formerr(query: &Metadata) -> Vec<u8> {
    let mut meta = Metadata::response_from_request(query);
    meta.response_code = ResponseCode::FormErr;
    let reply = Header { metadata: meta, counts: Default::default() };
    let mut bytes = Vec::with_capacity(12);
    // A bare header always encodes.
    let _ = reply.emit(&mut BinEncoder::new(&mut bytes));
    bytes
}

/// Keeps the handler's encoded answer.
#[derive(Clone)]
struct Capture {
    out: Arc<Mutex<Option<Vec<u8>>>>,
    udp: bool,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
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
        let max = if self.udp { response.edns().map_or(512, |e| e.max_payload()) } else { u16::MAX };
        let mut bytes = Vec::with_capacity(512);
        let mut enc = BinEncoder::new(&mut bytes);
        enc.set_max_size(max);
        let info = response.destructive_emit(&mut enc)?;
        *self.out.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}
