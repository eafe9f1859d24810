//! Truncation, as a property over real sockets: for answers of 1 to 200 instances,
//! every record type the catalog answers (A, AAAA, SRV with glue, TXT, PTR for reverse names and
//! DNS-SD browsing), and client buffers
//! from none (512) through each EDNS size up to 4096, under both the default `udp_max_payload`
//! cap and a raised one, every UDP answer parses with a strict parser (counts exact, whole
//! records, no trailing bytes), fits the client's size, keeps its OPT, and is either complete or
//! truncated the RFC 2181 way (TC, as many whole answers as fit, nothing else).

use std::collections::HashSet;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::support::*;

const LARGEST: usize = 200;

/// The service sizes: every size up to where answers start to overflow 512 bytes and well past
/// it, then a spread up to the largest (every size would take a debug-built server seconds to
/// load, for nothing the spread does not find).
fn sizes() -> Vec<usize> {
    (1..=40).chain((47..LARGEST).step_by(7)).chain([LARGEST]).collect()
}

/// Service `s<n>` has instances 0..n; instance `i` is at 10.0.0.i (even `i`) or fd00::i (odd),
/// so each address is shared by the instances `i` of every larger service: the reverse name of
/// instance `i`'s address answers one PTR per service with more than `i` instances.
fn zones() -> Vec<(String, String)> {
    sizes()
        .chunks(20)
        .map(|chunk| {
            let mut z = String::new();
            for &n in chunk {
                z += &format!("[[service]]\nname = \"s{n}\"\n");
                for i in 0..n {
                    z += &format!(
                        "[[service.instance]]\nid = \"s{n}-i{i}\"\naddress = \"{}\"\nport = {}\n\
                         meta = {{ role = \"worker-{i}\" }}\n",
                        address(i),
                        8000 + i
                    );
                }
            }
            (format!("s{}.toml", chunk[0]), z)
        })
        .collect()
}

fn address(i: usize) -> String {
    if i.is_multiple_of(2) { format!("10.0.0.{i}") } else { format!("fd00::{i:x}") }
}

/// The reverse name of `address(i)`.
fn reverse(i: usize) -> String {
    match address(i).parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        std::net::IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let mut labels: Vec<String> = hex.chars().rev().map(String::from).collect();
            labels.push("ip6.arpa.".into());
            labels.join(".")
        }
    }
}

/// How many records a complete answer holds.
fn complete(qtype: RecordType, n: usize) -> usize {
    match qtype {
        RecordType::A => n.div_ceil(2),
        RecordType::AAAA => n / 2,
        _ => n,
    }
}

/// Client buffers for one question: none (512), the minimum, the classic cap, the maximum, and
/// one more from the whole range, different for every question.
fn buffers(seed: usize) -> [Option<u16>; 5] {
    let spread = 512 + (seed * 2_654_435_761 % 3585) as u16;
    [None, Some(512), Some(1232), Some(4096), Some(spread)]
}

#[tokio::test]
async fn every_udp_answer_holds_whole_records_within_the_clients_size() {
    let mut checked = 0;
    for (cap, config) in [(1232, ""), (4096, "[dns]\nudp_max_payload = 4096\n")] {
        let mut builder = server().config(config);
        for (name, text) in zones() {
            builder = builder.zone(&name, &text);
        }
        let s = builder.start().await;
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(s.dns).await.unwrap();
        let mut questions: Vec<(String, RecordType, usize)> = Vec::new();
        for n in sizes() {
            for qtype in [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT] {
                questions.push((format!("s{n}.service.local."), qtype, complete(qtype, n)));
            }
            questions.push((format!("_s{n}._tcp.service.local."), RecordType::PTR, n));
        }
        for i in 0..LARGEST {
            let sharing = sizes().into_iter().filter(|&n| n > i).count();
            questions.push((reverse(i), RecordType::PTR, sharing));
        }
        for (k, (name, qtype, want)) in questions.iter().enumerate() {
            for payload in buffers(k) {
                let ask = Ask { edns_payload: payload, ..Ask::new(name, *qtype) };
                let reply = exchange(&client, &ask.to_bytes()).await;
                let what = format!("{name} {qtype}, buffer {payload:?}, cap {cap}");
                let m = strict_parse(&reply).unwrap_or_else(|e| panic!("{what}: {e}"));
                let limit = payload.map_or(512, |p| usize::from(p.clamp(512, cap)));
                check(&m, reply.len(), limit, *want, &what);
                checked += 1;
            }
        }
        // Over TCP the whole answer, glue included.
        for (name, qtype) in [
            (format!("s{LARGEST}.service.local."), RecordType::A),
            (format!("s{LARGEST}.service.local."), RecordType::SRV),
            (format!("s{LARGEST}.service.local."), RecordType::TXT),
            (format!("_s{LARGEST}._tcp.service.local."), RecordType::PTR),
        ] {
            let m = s.tcp(&name, qtype).await;
            assert!(!m.metadata.truncation);
            assert_eq!(m.answers.len(), complete(qtype, LARGEST), "TCP {qtype}");
            if qtype == RecordType::SRV {
                assert_eq!(m.additionals.len(), LARGEST, "TCP SRV glue");
            }
        }
        s.stop().await;
    }
    assert_eq!(checked, 2 * (sizes().len() * 5 + LARGEST) * 5);
}

/// One question and its answer over `client`'s socket, one at a time.
async fn exchange(client: &tokio::net::UdpSocket, query: &[u8]) -> Vec<u8> {
    client.send(query).await.unwrap();
    let mut buf = vec![0; 65535];
    let n = tokio::time::timeout(DEADLINE, client.recv(&mut buf)).await.expect("an answer").unwrap();
    buf.truncate(n);
    assert_eq!(buf[..2], query[..2], "the answer to this question");
    buf
}

fn check(m: &Message, size: usize, limit: usize, want: usize, what: &str) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{what}");
    assert!(size <= limit, "{what}: {size} bytes > {limit}");
    let asked_edns = !what.contains("buffer None");
    assert_eq!(m.edns.is_some(), asked_edns, "{what}: OPT kept exactly when asked");
    if let Some(e) = &m.edns {
        assert_eq!(usize::from(e.max_payload()), limit, "{what}: the OPT says what we honour");
    }
    if m.metadata.truncation {
        assert!(m.answers.len() < want, "{what}: TC with all {want} answers");
        assert!(m.authorities.is_empty() && m.additionals.is_empty(), "{what}: TC keeps answers only");
        if let Some(r) = m.answers.first() {
            // Fixed-size records: none more would have fitted.
            let one = match r.data {
                RData::A(_) => Some(16),
                RData::AAAA(_) => Some(28),
                _ => None,
            };
            if let Some(one) = one {
                assert!(size + one > limit, "{what}: {size} bytes leave room for another record");
            }
        }
    } else {
        assert_eq!(m.answers.len(), want, "{what}: complete without TC");
    }
    // SRV glue, whole or partial, only for targets of the answer.
    let targets: HashSet<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.target.to_string()),
            _ => None,
        })
        .collect();
    for glue in &m.additionals {
        assert!(targets.contains(&glue.name.to_string()), "{what}: glue {glue} for no target");
    }
}
