//! Protocol fine points: malformed and unusual queries, EDNS, ANY, and a server that no client
//! input can stop. Raw bytes where hickory would refuse to encode the query.

use std::collections::BTreeMap;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
meta = { v = "1" }

[[service.instance]]
id = "web-2"
address = "2001:db8::2"
port = 81
"#;

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

async fn exchange(s: &TestServer, t: Transport, bytes: &[u8]) -> Message {
    let reply = match t {
        Transport::Udp => exchange_udp(s.dns, bytes).await,
        Transport::Tcp => exchange_tcp(s.dns, bytes).await,
    };
    let m = Message::from_vec(&reply.unwrap_or_else(|| panic!("{t:?}: no answer"))).expect("answer parses");
    assert_eq!(m.metadata.id.to_be_bytes(), bytes[..2], "{t:?}: the answer's id is the query's");
    m
}

/// A query for `web.service.local. A` without OPT, as raw bytes.
fn plain(name: &str) -> Vec<u8> {
    Ask { edns_payload: None, ..Ask::new(name, RecordType::A) }.to_bytes()
}

#[tokio::test]
async fn question_counts_other_than_one_are_formerr() {
    let s = server().zone("z.toml", ZONE).start().await;
    let one = plain("web.service.local.");
    // QDCOUNT 0: the header alone.
    let mut none = one[..12].to_vec();
    none[4..6].copy_from_slice(&0u16.to_be_bytes());
    // QDCOUNT 2: the same question twice.
    let mut two = one.clone();
    two[4..6].copy_from_slice(&2u16.to_be_bytes());
    two.extend_from_slice(&one[12..]);
    for t in TRANSPORTS {
        for (what, bytes) in [("QDCOUNT 0", &none), ("QDCOUNT 2", &two)] {
            let m = exchange(&s, t, bytes).await;
            assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{t:?} {what}");
            assert!(m.answers.is_empty(), "{t:?} {what}");
        }
    }
}

#[tokio::test]
async fn opcodes_other_than_query_are_notimp() {
    let s = server().zone("z.toml", ZONE).start().await;
    for t in TRANSPORTS {
        // Opcode sits in bits 3..7 of byte 2: STATUS = 2, NOTIFY = 4, UPDATE = 5, IQUERY = 1.
        for opcode in [1u8, 2, 4, 5] {
            let mut bytes = plain("web.service.local.");
            bytes[2] = (bytes[2] & 0b1000_0111) | (opcode << 3);
            let m = exchange(&s, t, &bytes).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{t:?} opcode {opcode}");
            assert!(m.answers.is_empty(), "{t:?} opcode {opcode}");
        }
    }
}

#[tokio::test]
async fn classes_other_than_in_and_any_are_refused() {
    let s = server().zone("z.toml", ZONE).start().await;
    for t in TRANSPORTS {
        for class in [DNSClass::CH, DNSClass::HS, DNSClass::NONE] {
            let m = query(s.dns, t, &Ask { class, ..Ask::new("web.service.local.", RecordType::A) }).await;
            assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t:?} {class}");
            assert!(m.answers.is_empty(), "{t:?} {class}");
        }
        let m = query(s.dns, t, &Ask { class: DNSClass::ANY, ..Ask::new("web.service.local.", RecordType::A) }).await;
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "{t:?} class ANY");
    }
}

#[tokio::test]
async fn edns_version_above_zero_is_badvers_with_a_version_0_opt() {
    let s = server().zone("z.toml", ZONE).start().await;
    for t in TRANSPORTS {
        for version in [1, 255] {
            let m =
                query(s.dns, t, &Ask { edns_version: version, ..Ask::new("web.service.local.", RecordType::A) }).await;
            // 16 on the wire: hickory decodes it as BADSIG, its twin in TSIG's numbering.
            let rcode = u16::from(m.metadata.response_code);
            assert_eq!(rcode, u16::from(ResponseCode::BADVERS), "{t:?} version {version}");
            let opt = m.edns.as_ref().expect("BADVERS travels in an OPT");
            assert_eq!(opt.rcode_high(), 1, "{t:?}: BADVERS's upper bits sit in the OPT");
            assert_eq!(opt.version(), 0, "{t:?}");
            assert!(m.answers.is_empty(), "{t:?}");
        }
    }
}

#[tokio::test]
async fn the_do_bit_is_copied_and_opt_only_answers_opt() {
    let s = server().zone("z.toml", ZONE).start().await;
    for t in TRANSPORTS {
        for dnssec_ok in [true, false] {
            let ask = Ask { dnssec_ok, ..Ask::new("web.service.local.", RecordType::A) };
            let m = query(s.dns, t, &ask).await;
            let opt = m.edns.as_ref().expect("an OPT query gets an OPT answer");
            assert_eq!(opt.flags().dnssec_ok, dnssec_ok, "{t:?}");
            assert_eq!(opt.version(), 0, "{t:?}");
            assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "{t:?}");
        }
        // Negative answers too.
        let ask = Ask { dnssec_ok: true, ..Ask::new("nope.service.local.", RecordType::A) };
        let m = query(s.dns, t, &ask).await;
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok, "{t:?} NXDOMAIN");

        let m = exchange(&s, t, &plain("web.service.local.")).await;
        assert!(m.edns.is_none(), "{t:?}: no OPT asked, none given");
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "{t:?}");
        assert!(m.additionals.is_empty(), "{t:?}");
    }
}

#[tokio::test]
async fn any_over_udp_is_the_rfc8482_minimal_answer() {
    let s = server().zone("z.toml", ZONE).start().await;
    for name in ["web.service.local.", "local."] {
        let m = s.udp(name, RecordType::ANY).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(m.answers.len(), 1, "{name}: {:?}", lines(&m.answers));
        let RData::HINFO(hinfo) = &m.answers[0].data else { panic!("{name}: not HINFO: {:?}", lines(&m.answers)) };
        assert_eq!(&*hinfo.cpu, b"RFC8482", "{name}");
        assert_eq!(m.answers[0].name.to_string(), name);
        assert!(m.additionals.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn any_over_tcp_is_every_record() {
    let s = server().zone("z.toml", ZONE).start().await;
    let m = s.tcp("web.service.local.", RecordType::ANY).await;
    let mut got = lines(&m.answers);
    got.sort();
    assert_eq!(
        got,
        [
            "web.service.local. 5 IN A 10.0.0.1",
            "web.service.local. 5 IN AAAA 2001:db8::2",
            "web.service.local. 5 IN SRV 1 1 80 web-1.instance.local.",
            "web.service.local. 5 IN SRV 1 1 81 web-2.instance.local.",
            "web.service.local. 5 IN TXT id=web-1v=1",
            "web.service.local. 5 IN TXT id=web-2",
        ]
    );
    let serial = s.registry.snapshot().version;
    let m = s.tcp("local.", RecordType::ANY).await;
    assert_eq!(
        lines(&m.answers),
        [
            format!("local. 5 IN SOA ns.local. hostmaster.local. {serial} 3600 600 86400 1"),
            "local. 5 IN NS ns.local.".into()
        ]
    );
}

#[tokio::test]
async fn malformed_datagrams_do_not_stop_the_server() {
    let s = server().zone("z.toml", ZONE).start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut broken_question = plain("web.service.local.");
    broken_question.truncate(20);
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let junk: [&[u8]; 5] = [&[], &[1, 2, 3], &[0xff; 12], &garbage, &broken_question];
    for bytes in junk {
        sock.send_to(bytes, s.dns).await.unwrap();
        let m = s.udp("web.service.local.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "after {bytes:?}");
    }
    // A header that parses with a question that does not: FORMERR, not silence.
    let m = exchange(&s, Transport::Udp, &broken_question).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    for bytes in junk {
        let mut c = TcpStream::connect(s.dns).await.unwrap();
        c.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
        c.write_all(bytes).await.unwrap();
        drop(c);
        let m = s.tcp("web.service.local.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "TCP after {bytes:?}");
    }
    // A connection that sends half a length prefix and hangs up.
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&[0]).await.unwrap();
    drop(c);
    let m = s.tcp("web.service.local.", RecordType::A).await;
    assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"]);
}

#[tokio::test]
async fn pipelined_tcp_queries_are_all_answered() {
    let s = server().zone("z.toml", ZONE).start().await;
    let asks = [
        Ask::new("web.service.local.", RecordType::A),
        Ask::new("web.service.local.", RecordType::AAAA),
        Ask::new("web-1.instance.local.", RecordType::A),
        Ask::new("nope.service.local.", RecordType::A),
        Ask::new("local.", RecordType::NS),
        Ask::new("web.service.local.", RecordType::SRV),
    ];
    let mut want: BTreeMap<u16, (String, RecordType)> = BTreeMap::new();
    let mut wire = Vec::new();
    for ask in &asks {
        let bytes = ask.to_bytes();
        want.insert(u16::from_be_bytes([bytes[0], bytes[1]]), (ask.name.to_string(), ask.qtype));
        wire.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        wire.extend_from_slice(&bytes);
    }
    assert_eq!(want.len(), asks.len(), "ids must differ");
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    c.write_all(&wire).await.unwrap();
    let mut got = BTreeMap::new();
    for _ in &asks {
        let m = Message::from_vec(&read_tcp(&mut c).await.expect("every pipelined query is answered")).unwrap();
        let q = &m.queries[0];
        got.insert(m.metadata.id, (q.name().to_string(), q.query_type()));
        let expected = match q.query_type() {
            RecordType::A if q.name().to_string() == "nope.service.local." => 0,
            RecordType::SRV => 2,
            _ => 1,
        };
        assert_eq!(m.answers.len(), expected, "{}", q.name());
    }
    assert_eq!(got, want);
}
