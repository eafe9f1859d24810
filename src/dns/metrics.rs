//! DNS query metrics: `signpost_dns_queries_total{qtype,rcode,proto}` and
//! `signpost_dns_query_duration_seconds`. Counter handles are looked up once and kept in a
//! table, so the fast path pays an atomic add per query, not a label lookup, and one histogram
//! update per batch of datagrams.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use metrics::Counter;

use super::answer::Transport;
use crate::metrics::DNS_QUERY_DURATION;

const QTYPES: [(u16, &str); 10] = [
    (1, "A"),
    (28, "AAAA"),
    (33, "SRV"),
    (16, "TXT"),
    (12, "PTR"),
    (255, "ANY"),
    (6, "SOA"),
    (2, "NS"),
    (252, "AXFR"),
    (251, "IXFR"),
];
const RCODES: [(u16, &str); 8] = [
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (9, "NOTAUTH"),
    (16, "BADVERS"),
];
const PROTOS: [&str; 2] = ["udp", "tcp"];

/// One counter per (qtype, rcode, proto), each registered on its first count: a series shows in
/// `/metrics` once something happened to it, rather than a hundred and more zeros.
fn counter(slot: usize) -> &'static Counter {
    const SLOTS: usize = (QTYPES.len() + 1) * (RCODES.len() + 1) * PROTOS.len();
    static TABLE: [OnceLock<Counter>; SLOTS] = [const { OnceLock::new() }; SLOTS];
    TABLE[slot].get_or_init(|| {
        let (proto, rest) = (slot % PROTOS.len(), slot / PROTOS.len());
        let (rcode, qtype) = (rest % (RCODES.len() + 1), rest / (RCODES.len() + 1));
        let qtype = QTYPES.get(qtype).map_or("other", |(_, n)| *n);
        let rcode = RCODES.get(rcode).map_or("other", |(_, n)| *n);
        metrics::counter!("signpost_dns_queries_total", "qtype" => qtype, "rcode" => rcode, "proto" => PROTOS[proto])
    })
}

fn index(qtype: u16, rcode: u16, proto: Transport) -> usize {
    let q = QTYPES.iter().position(|(t, _)| *t == qtype).unwrap_or(QTYPES.len());
    let r = RCODES.iter().position(|(c, _)| *c == rcode).unwrap_or(RCODES.len());
    let p = match proto {
        Transport::Udp => 0,
        Transport::Tcp => 1,
    };
    (q * (RCODES.len() + 1) + r) * PROTOS.len() + p
}

/// A query answered by the full handler: timed before it is counted (see `crate::metrics::render`).
pub fn record(qtype: RecordType, rcode: ResponseCode, proto: Transport, took: Duration) {
    DNS_QUERY_DURATION.record_many(took, 1);
    counter(index(u16::from(qtype), u16::from(rcode), proto)).increment(1);
}

/// The fast path's metrics for one batch of datagrams: the counter of each query it answered,
/// kept until the batch's answers are ready, when the batch's time is known.
pub struct FastBatch {
    read_at: Instant,
    slots: Vec<usize>,
    transport: Transport,
}

impl FastBatch {
    /// For batches of up to `n` queries that came over `transport`.
    pub fn with_capacity(n: usize, transport: Transport) -> FastBatch {
        FastBatch { read_at: Instant::now(), slots: Vec::with_capacity(n), transport }
    }

    /// A batch was read just now.
    pub fn start(&mut self) {
        self.read_at = Instant::now();
        self.slots.clear();
    }

    /// A query of the batch answered: its question's type, as the fast path read it, and the
    /// rcode from the answer's header.
    pub fn answered(&mut self, qtype: u16, answer: &[u8]) {
        let rcode = u16::from(answer[3] & 0x0F);
        self.slots.push(index(qtype, rcode, self.transport));
    }

    /// The batch's answers are ready to send: every query answered takes the batch's time.
    pub fn finish(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        DNS_QUERY_DURATION.record_many(self.read_at.elapsed(), self.slots.len() as u64);
        for &slot in &self.slots {
            counter(slot).increment(1);
        }
    }
}
