//! Answer sizes: UDP answers fit 512 bytes or the client's EDNS buffer (capped by
//! `udp_max_payload`), hold whole records only and set TC; TCP gives everything.

use std::collections::HashSet;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::support::*;

/// An A record in these answers: a compressed owner (2) + type, class, TTL, length (10) + 4.
const A_RECORD: usize = 16;

/// `big`: 100 IPv4 instances (1,600 bytes of A records); `srv30`: 30 instances for SRV + glue.
fn zone() -> String {
    let mut z = String::from("[[service]]\nname = \"big\"\n");
    for i in 1..=100 {
        z += &format!("[[service.instance]]\nid = \"big-{i}\"\naddress = \"10.0.1.{i}\"\nport = 8000\n");
    }
    z += "[[service]]\nname = \"srv30\"\n";
    for i in 1..=30 {
        z += &format!("[[service.instance]]\nid = \"s-{i}\"\naddress = \"10.0.2.{i}\"\nport = {}\n", 9000 + i);
    }
    z
}

fn all_big() -> HashSet<String> {
    (1..=100).map(|i| format!("10.0.1.{i}")).collect()
}

/// Asks over UDP; returns the answer and its size on the wire.
async fn udp(s: &TestServer, ask: &Ask) -> (Message, usize) {
    let bytes = ask.to_bytes();
    let reply = exchange_udp(s.dns, &bytes).await.expect("no UDP answer");
    let m = Message::from_vec(&reply).expect("a truncated answer still parses: whole records only");
    (m, reply.len())
}

/// Checks a truncated A answer: TC, within `limit`, distinct addresses of `big`, nothing but
/// answers, and no room left for one more record.
fn assert_truncated(m: &Message, size: usize, limit: usize, what: &str) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{what}");
    assert!(m.metadata.truncation, "{what}: TC");
    assert!(size <= limit, "{what}: {size} bytes > {limit}");
    assert!(size + A_RECORD > limit, "{what}: {size} bytes leaves room for another record under {limit}");
    assert!(!m.answers.is_empty(), "{what}: a truncated answer still carries what fits");
    assert!(m.authorities.is_empty() && m.additionals.is_empty(), "{what}: answers only");
    let got: HashSet<String> = addresses(m).into_iter().collect();
    assert_eq!(got.len(), m.answers.len(), "{what}: distinct addresses");
    assert!(got.is_subset(&all_big()), "{what}: {got:?}");
}

#[tokio::test]
async fn plain_udp_answers_fit_512_bytes() {
    let s = server().zone("big.toml", &zone()).start().await;
    let ask = Ask { edns_payload: None, ..Ask::new("big.service.local.", RecordType::A) };
    let (m, size) = udp(&s, &ask).await;
    assert_truncated(&m, size, 512, "no EDNS");
    assert!(m.edns.is_none());
    // EDNS buffers below 512 are read as 512 (RFC 6891 §6.2.3).
    let (m, size) = udp(&s, &Ask { edns_payload: Some(200), ..Ask::new("big.service.local.", RecordType::A) }).await;
    assert_truncated(&m, size, 512, "EDNS 200");
}

#[tokio::test]
async fn edns_buffers_are_honoured_up_to_udp_max_payload() {
    let s = server().zone("big.toml", &zone()).start().await;
    for payload in [1232, 4096, 65535] {
        let ask = Ask { edns_payload: Some(payload), ..Ask::new("big.service.local.", RecordType::A) };
        let (m, size) = udp(&s, &ask).await;
        assert_truncated(&m, size, 1232, &format!("EDNS {payload}"));
        assert_eq!(m.edns.as_ref().expect("OPT").max_payload(), 1232, "we advertise what we honour");
    }
    let (m, size) = udp(&s, &Ask { edns_payload: Some(800), ..Ask::new("big.service.local.", RecordType::A) }).await;
    assert_truncated(&m, size, 800, "EDNS 800");
}

#[tokio::test]
async fn udp_max_payload_raises_the_cap() {
    let s = server().zone("big.toml", &zone()).config("[dns]\nudp_max_payload = 4096\n").start().await;
    let ask = Ask { edns_payload: Some(4096), ..Ask::new("big.service.local.", RecordType::A) };
    let (m, size) = udp(&s, &ask).await;
    assert!(!m.metadata.truncation);
    assert!(size > 1232 && size <= 4096, "{size}");
    assert_eq!(addresses(&m).into_iter().collect::<HashSet<_>>(), all_big());
    assert_eq!(m.answers.len(), 100);
    // The client's smaller buffer still rules.
    let (m, size) = udp(&s, &Ask { edns_payload: Some(1232), ..Ask::new("big.service.local.", RecordType::A) }).await;
    assert_truncated(&m, size, 1232, "EDNS 1232 under a 4096 cap");
    // And without EDNS, 512.
    let (m, size) = udp(&s, &Ask { edns_payload: None, ..Ask::new("big.service.local.", RecordType::A) }).await;
    assert_truncated(&m, size, 512, "no EDNS under a 4096 cap");
}

#[tokio::test]
async fn tcp_answers_carry_every_record() {
    let s = server().zone("big.toml", &zone()).start().await;
    for edns_payload in [None, Some(512), Some(1232)] {
        let m =
            query(s.dns, Transport::Tcp, &Ask { edns_payload, ..Ask::new("big.service.local.", RecordType::A) }).await;
        assert!(!m.metadata.truncation, "{edns_payload:?}");
        assert_eq!(m.answers.len(), 100, "{edns_payload:?}");
        assert_eq!(addresses(&m).into_iter().collect::<HashSet<_>>(), all_big(), "{edns_payload:?}");
    }
}

/// SRV glue is extra (RFC 2181 §9): when the SRV records fit but not all their glue, as much
/// glue as fits goes, each record whole, and TC stays clear; when the SRV records themselves do
/// not fit, TC and no glue.
#[tokio::test]
async fn srv_with_glue_truncates_over_udp_and_is_whole_over_tcp() {
    let s = server().zone("big.toml", &zone()).start().await;
    let ask = Ask { edns_payload: None, ..Ask::new("srv30.service.local.", RecordType::SRV) };
    let (m, size) = udp(&s, &ask).await;
    assert!(m.metadata.truncation, "512 bytes hold fewer than 30 SRV");
    assert!(size <= 512, "{size}");
    assert!((1..30).contains(&m.answers.len()), "{}", m.answers.len());
    assert!(m.answers.iter().all(|r| matches!(r.data, RData::SRV(_))));
    assert!(m.additionals.is_empty(), "glue is dropped with TC");

    // 1232 bytes hold all 30 SRV but not all their glue.
    let (m, size) = udp(&s, &Ask::new("srv30.service.local.", RecordType::SRV)).await;
    assert!(!m.metadata.truncation, "missing glue is no reason for TC");
    assert!(size <= 1232, "{size}");
    assert_eq!(m.answers.len(), 30);
    assert!((1..30).contains(&m.additionals.len()), "{}", m.additionals.len());
    let targets: HashSet<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.target.to_string()),
            _ => None,
        })
        .collect();
    for glue in &m.additionals {
        assert!(targets.contains(&glue.name.to_string()), "glue for a target of the answer: {glue}");
    }

    let m = s.tcp("srv30.service.local.", RecordType::SRV).await;
    assert!(!m.metadata.truncation);
    let mut got = lines(&m.answers);
    got.sort();
    let mut want: Vec<String> =
        (1..=30).map(|i| format!("srv30.service.local. 5 IN SRV 1 1 {} s-{i}.instance.local.", 9000 + i)).collect();
    want.sort();
    assert_eq!(got, want);
    let mut got = lines(&m.additionals);
    got.sort();
    let mut want: Vec<String> = (1..=30).map(|i| format!("s-{i}.instance.local. 5 IN A 10.0.2.{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn small_answers_are_not_truncated() {
    let s = server().zone("big.toml", &zone()).start().await;
    let ask = Ask { edns_payload: None, ..Ask::new("big-7.instance.local.", RecordType::A) };
    let (m, _) = udp(&s, &ask).await;
    assert!(!m.metadata.truncation);
    assert_eq!(lines(&m.answers), ["big-7.instance.local. 5 IN A 10.0.1.7"]);
    // A negative answer carries its SOA whole.
    let (m, _) = udp(&s, &Ask { edns_payload: None, ..Ask::new("nope.service.local.", RecordType::A) }).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
}

#[tokio::test]
async fn a_record_larger_than_the_buffer_leaves_an_empty_truncated_answer() {
    let zone = format!(
        "[[service]]\nname = \"fat\"\n[[service.instance]]\nid = \"fat-1\"\naddress = \"10.0.0.1\"\nport = 1\n\
         meta = {{ blob = \"{}\" }}\n",
        "b".repeat(512)
    );
    let s = server().zone("fat.toml", &zone).start().await;
    let (m, size) = udp(&s, &Ask { edns_payload: None, ..Ask::new("fat.service.local.", RecordType::TXT) }).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.truncation);
    assert!(size <= 512, "{size}");
    assert!(m.answers.is_empty(), "half a record is never sent");
    // It fits 1232, and TCP in any case.
    let (m, _) = udp(&s, &Ask::new("fat.service.local.", RecordType::TXT)).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    let m = s.tcp("fat.service.local.", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 1);
}
