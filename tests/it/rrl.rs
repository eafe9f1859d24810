//! Response-rate limiting over UDP (`[dns] rrl`): past the rate, every second query gets a bare
//! TC=1 answer and the rest nothing, on the fast path and the full handler alike; exempt
//! clients (loopback by default) are never limited. The tests empty `exempt`, so that a
//! loopback client stands for a remote one.

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
"#;

/// Sends `queries` at once from one socket; returns (full answers, TC-only answers).
async fn burst(s: &TestServer, queries: &[Vec<u8>]) -> (usize, usize) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for q in queries {
        sock.send_to(q, s.dns).await.unwrap();
    }
    let (mut full, mut slipped) = (0, 0);
    let mut buf = vec![0; 4096];
    // Answers come at once; a quiet half second means there are no more.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await {
        let m = Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation && m.answers.is_empty() && m.authorities.is_empty() {
            slipped += 1;
        } else {
            full += 1;
        }
    }
    (full, slipped)
}

fn queries(n: usize) -> Vec<Vec<u8>> {
    // Half for the fast path, half for the full handler (the apex SOA is never fast).
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                Ask::new("web.service.local.", RecordType::A).to_bytes()
            } else {
                Ask::new("local.", RecordType::SOA).to_bytes()
            }
        })
        .collect()
}

#[tokio::test]
async fn past_the_rate_answers_slip_or_drop_on_both_paths() {
    let config = "[dns]\nrrl = { responses_per_second = 5, window = \"10s\", slip = 2, exempt = [] }\n";
    let s = server().zone("z.toml", ZONE).config(config).start().await;
    // The window allows 50 answers; 150 queries leave 100 limited: 50 slip, 50 dropped.
    let (full, slipped) = burst(&s, &queries(150)).await;
    // (A datagram lost on a loaded host would take one off either count.)
    assert!((45..=50).contains(&full) && (45..=50).contains(&slipped), "{full} answered, {slipped} slipped");
    // TCP is not rate limited: a client told to retry over TCP gets its answer.
    let m = s.tcp("web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.0.0.1"]);
}

#[tokio::test]
async fn loopback_is_exempt_by_default_and_rrl_is_off_by_default() {
    let on = "[dns]\nrrl = { responses_per_second = 1 }\n";
    for config in [on, ""] {
        let s = server().zone("z.toml", ZONE).config(config).start().await;
        assert_eq!(burst(&s, &queries(40)).await, (40, 0), "{config:?}");
    }
}
