//! DNS query metrics: `signpost_dns_queries_total{qtype,rcode,proto}` and
//! `signpost_dns_query_duration_seconds`. Counter handles are looked up once and kept in a
//! table, so the fast path pays an atomic add per query, not a label lookup.

use std::sync::OnceLock;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use metrics::Counter;

use super::answer::Transport;

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
/// The fast path records the duration of one query in this many.
const DURATION_SAMPLE: u32 = 32;

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

/// A query answered by the full handler.
pub fn record(qtype: RecordType, rcode: ResponseCode, proto: Transport, took: Duration) {
    counter(index(u16::from(qtype), u16::from(rcode), proto)).increment(1);
    metrics::histogram!("signpost_dns_query_duration_seconds").record(took);
}

/// A query answered by the fast path: its question's type, as the fast path read it, and the
/// rcode from the answer's header.
pub fn fast(qtype: u16, answer: &[u8]) {
    let rcode = u16::from(answer[3] & 0x0F);
    counter(index(qtype, rcode, Transport::Udp)).increment(1);
}

/// Returns true for one call in `DURATION_SAMPLE` on this thread: the fast path times that one.
pub fn sample() -> bool {
    thread_local!(static N: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
    N.with(|n| {
        let v = n.get().wrapping_add(1);
        n.set(v);
        v % DURATION_SAMPLE == 0
    })
}

/// A sampled fast-path duration.
pub fn fast_duration(took: Duration) {
    metrics::histogram!("signpost_dns_query_duration_seconds").record(took);
}
