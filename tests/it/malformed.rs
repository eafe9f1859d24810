//! The malformed-packet battery: every way a query can be broken, over UDP and TCP. The server
//! answers FORMERR (with the query's id) or says nothing, never anything else, and the next
//! valid query on a fresh socket is answered as usual.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
"#;

/// A header: id 0x5150, RD, the given counts.
fn header(qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = vec![0x51, 0x50, 0x01, 0x00];
    for c in [qd, an, ns, ar] {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

/// `web.service.local.` in wire form.
fn qname() -> Vec<u8> {
    let mut n = Vec::new();
    for l in ["web", "service", "local"] {
        n.push(l.len() as u8);
        n.extend_from_slice(l.as_bytes());
    }
    n.push(0);
    n
}

/// A query with one question whose name is `name` (raw wire bytes), type A, class IN.
fn with_name(name: &[u8]) -> Vec<u8> {
    let mut q = header(1, 0, 0, 0);
    q.extend_from_slice(name);
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// An OPT record: root owner, payload 1232, version 0, `rdlen` as given and `rdata` after it.
fn opt(rdlen: u16, rdata: &[u8]) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0];
    o.extend_from_slice(&rdlen.to_be_bytes());
    o.extend_from_slice(rdata);
    o
}

/// A valid query with `ar` additional records given as raw bytes.
fn with_additionals(ar: u16, additionals: &[u8]) -> Vec<u8> {
    let mut q = header(1, 0, 0, ar);
    q.extend_from_slice(&qname());
    q.extend_from_slice(&[0, 1, 0, 1]);
    q.extend_from_slice(additionals);
    q
}

/// Every malformed query of the battery, named.
fn battery() -> Vec<(&'static str, Vec<u8>)> {
    let valid = with_name(&qname());
    let long_label = {
        let mut n = vec![64];
        n.extend_from_slice(&[b'a'; 64]);
        n.extend_from_slice(&qname());
        n
    };
    let long_name = {
        // Five labels of 63 bytes: 320 bytes, over the 255 a name may have.
        let mut n = Vec::new();
        for _ in 0..5 {
            n.push(63);
            n.extend_from_slice(&[b'a'; 63]);
        }
        n.push(0);
        n
    };
    let garbage: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let ecs = |family: u16, source: u8, addr: &[u8]| {
        let mut o = 8u16.to_be_bytes().to_vec();
        o.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
        o.extend_from_slice(&family.to_be_bytes());
        o.extend_from_slice(&[source, 0]);
        o.extend_from_slice(addr);
        o
    };
    let ecs_opt = |rdata: Vec<u8>| with_additionals(1, &opt(rdata.len() as u16, &rdata));
    vec![
        ("one byte", vec![0x51]),
        ("eleven bytes", valid[..11].to_vec()),
        ("header only, QDCOUNT 1", header(1, 0, 0, 0)),
        ("QDCOUNT 0", header(0, 0, 0, 0)),
        ("QDCOUNT 2", {
            let mut q = header(2, 0, 0, 0);
            for _ in 0..2 {
                q.extend_from_slice(&qname());
                q.extend_from_slice(&[0, 1, 0, 1]);
            }
            q
        }),
        ("QDCOUNT 65535", {
            let mut q = valid.clone();
            q[4..6].copy_from_slice(&[0xFF, 0xFF]);
            q
        }),
        ("name cut short", valid[..18].to_vec()),
        ("no type and class", valid[..12 + qname().len()].to_vec()),
        ("class cut short", valid[..valid.len() - 1].to_vec()),
        ("pointer to itself", with_name(&[0xC0, 12])),
        ("two pointers in a loop", {
            let mut q = header(1, 0, 0, 0);
            // At 12: a label then a pointer to 18; at 18: a pointer back to 12.
            q.extend_from_slice(&[3, b'w', b'e', b'b', 0xC0, 18, 0xC0, 12]);
            q.extend_from_slice(&[0, 1, 0, 1]);
            q
        }),
        ("pointer past the end", with_name(&[0xC0, 0xFF])),
        ("pointer forward", with_name(&[3, b'w', b'e', b'b', 0xC0, 20, 0])),
        ("label type 0x40", with_name(&long_label)),
        ("label type 0x80", with_name(&[0x80, b'a', 0])),
        ("name over 255 bytes", with_name(&long_name)),
        ("ARCOUNT 1, nothing there", with_additionals(1, &[])),
        ("ANCOUNT 65535, nothing there", {
            let mut q = valid.clone();
            q[6..8].copy_from_slice(&[0xFF, 0xFF]);
            q
        }),
        ("OPT rdlen past the end", with_additionals(1, &opt(40, &[0, 8, 0, 4]))),
        ("OPT option length past rdlen", with_additionals(1, &opt(4, &[0, 10, 0, 200]))),
        ("OPT option header cut", with_additionals(1, &opt(3, &[0, 10, 0]))),
        ("two OPTs", with_additionals(2, &[opt(0, &[]), opt(0, &[])].concat())),
        ("OPT with an owner name", with_additionals(1, &[&[1, b'x'][..], &opt(0, &[])].concat())),
        ("ECS family 7", ecs_opt(ecs(7, 8, &[10]))),
        ("ECS prefix 33 for IPv4", ecs_opt(ecs(1, 33, &[10, 0, 0, 1, 9]))),
        ("ECS prefix 200 for IPv6", ecs_opt(ecs(2, 200, &[0x20; 17]))),
        ("garbage", garbage),
    ]
}

/// The answer, if any, must be FORMERR for this query's id.
fn check(what: &str, t: Transport, query: &[u8], reply: Option<Vec<u8>>) {
    let Some(reply) = reply else { return };
    let m = Message::from_vec(&reply).unwrap_or_else(|e| panic!("{t:?} {what}: the answer does not parse: {e}"));
    if query.len() >= 2 {
        assert_eq!(m.metadata.id.to_be_bytes(), query[..2], "{t:?} {what}: the answer's id");
    }
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{t:?} {what}");
}

#[tokio::test]
async fn malformed_queries_get_formerr_or_nothing_and_the_server_carries_on() {
    let s = server().zone("z.toml", ZONE).start().await;
    for (what, bytes) in battery() {
        let reply = exchange_udp(s.dns, &bytes).await;
        check(what, Transport::Udp, &bytes, reply);
        let reply = exchange_tcp(s.dns, &bytes).await;
        check(what, Transport::Tcp, &bytes, reply);
        for t in [Transport::Udp, Transport::Tcp] {
            let m = query(s.dns, t, &Ask::new("web.service.local.", RecordType::A)).await;
            assert_eq!(addresses(&m), ["10.0.0.1"], "{t:?} after {what}");
        }
    }
}

#[tokio::test]
async fn an_empty_datagram_is_dropped() {
    let s = server().zone("z.toml", ZONE).start().await;
    assert_eq!(exchange_udp(s.dns, &[]).await, None);
    let m = s.udp("web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.0.0.1"]);
}

#[tokio::test]
async fn tcp_framing_errors_close_the_connection_only() {
    let s = server().zone("z.toml", ZONE).start().await;
    let valid = with_name(&qname());
    // A length prefix promising more than follows, then the client hangs up.
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&200u16.to_be_bytes()).await.unwrap();
    c.write_all(&valid).await.unwrap();
    drop(c);
    // A length of zero, and a lone byte of a length.
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&[0, 0]).await.unwrap();
    check("length 0", Transport::Tcp, &[], read_tcp(&mut c).await);
    drop(c);
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&[0]).await.unwrap();
    drop(c);
    // A connection that sends garbage after a good query still gets the good query's answer.
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&(valid.len() as u16).to_be_bytes()).await.unwrap();
    c.write_all(&valid).await.unwrap();
    c.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
    let first = read_tcp(&mut c).await.expect("the good query is answered");
    assert_eq!(Message::from_vec(&first).unwrap().metadata.response_code, ResponseCode::NoError);
    drop(c);
    for t in [Transport::Udp, Transport::Tcp] {
        let m = query(s.dns, t, &Ask::new("web.service.local.", RecordType::A)).await;
        assert_eq!(addresses(&m), ["10.0.0.1"], "{t:?}");
    }
}

/// Found by fuzz/dns: a question name that points back into the header (a label holding a zero
/// byte) came back in an answer that did not parse.
#[tokio::test]
async fn a_name_pointing_into_the_header_is_answered_with_a_parseable_message() {
    let s = server().zone("z.toml", ZONE).start().await;
    let bytes = [
        &[0x12, 0xE0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
        &[3, b'w', b'e', b'b', 7, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0x34, 0x12, 0x34, 1, b'e', 0xC0, 2],
        &[0x65, 0x75, 0x01, 0x00, 0x00, 0x23, 0x12, 0x00, 0x01, 0x00, 0x73],
    ]
    .concat();
    for t in [Transport::Udp, Transport::Tcp] {
        let reply = match t {
            Transport::Udp => exchange_udp(s.dns, &bytes).await,
            Transport::Tcp => exchange_tcp(s.dns, &bytes).await,
        };
        if let Some(reply) = &reply {
            let m = Message::from_vec(reply).unwrap_or_else(|e| panic!("{t:?}: the answer does not parse: {e}"));
            assert_eq!(m.metadata.id, 0x12E0);
            assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{t:?}");
        }
    }
}
