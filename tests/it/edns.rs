//! The EDNS options real resolvers send, with the real tools: dig's and kdig's cookies (a server
//! cookie back, accepted when sent again, over UDP and TCP), Client Subnet choosing the
//! region and echoed with its scope, NSID, padding; a valid server cookie exempts a client from
//! rate limiting.

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::process::Command;

use crate::dig::dig;
use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"
region = "eu"

[[service.instance]]
id = "web-e1"
address = "10.0.1.1"
port = 80

[[service]]
name = "web"
region = "us"

[[service.instance]]
id = "web-u1"
address = "10.0.2.1"
port = 80
"#;

const CONFIG: &str = r#"
[dns]
nsid = "signpost-test"

[[regions.client]]
cidr = "10.8.0.0/16"
region = "eu"

[[regions.client]]
cidr = "10.9.0.0/16"
region = "us"
"#;

/// The hex of the `; COOKIE:` line dig prints, and whether dig judged it good.
fn cookie_line(out: &str) -> Option<(String, bool)> {
    let line = out.lines().find(|l| l.starts_with("; COOKIE: "))?;
    let hex = line.trim_start_matches("; COOKIE: ").split_whitespace().next()?.to_string();
    Some((hex, line.ends_with("(good)")))
}

#[tokio::test]
async fn dig_gets_a_server_cookie_and_sending_it_back_is_accepted() {
    let s = server().zone("web.toml", ZONE).config(CONFIG).start().await;
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&s, &[transport, "+cookie", "web.service.local", "A"]).await;
        let (cookie, good) = cookie_line(&out).unwrap_or_else(|| panic!("{transport}: a cookie back: {out}"));
        assert!(good, "{transport}: dig checks its client cookie came back: {out}");
        assert_eq!(cookie.len(), 48, "8 bytes of client cookie and 16 of RFC 9018 server cookie: {cookie}");
        assert_eq!(&cookie[16..24], "01000000", "version 1, reserved zero");
        // Sent back, the server cookie is ours: the answer comes with a fresh one.
        let again = dig(&s, &[transport, &format!("+cookie={cookie}"), "web.service.local", "A"]).await;
        assert!(again.contains("status: NOERROR"), "{again}");
        let (fresh, good) = cookie_line(&again).expect("a cookie back");
        assert!(good && fresh[..16] == cookie[..16], "{again}");
        // A server cookie that is not ours still gets an answer (RFC 7873 §5.2.3) and ours.
        let forged = format!("{}{}", &cookie[..16], "0100000000000000ffffffffffffffff");
        let out = dig(&s, &[transport, &format!("+cookie={forged}"), "web.service.local", "A"]).await;
        assert!(out.contains("status: NOERROR") && cookie_line(&out).is_some(), "{out}");
    }
    // A malformed cookie (9 bytes) is FORMERR.
    let out = dig(&s, &["+cookie=0102030405060708aa", "web.service.local", "A"]).await;
    assert!(out.contains("status: FORMERR"), "{out}");
}

#[tokio::test]
async fn dig_subnet_chooses_the_region_and_gets_the_scope() {
    let s = server().zone("web.toml", ZONE).config(CONFIG).start().await;
    for (subnet, address, echo) in
        [("10.8.7.0/24", "10.0.1.1", "10.8.7.0/24/16"), ("10.9.0.0/16", "10.0.2.1", "10.9.0.0/16/16")]
    {
        let out = dig(&s, &[&format!("+subnet={subnet}"), "+short", "web.service.local", "A"]).await;
        assert_eq!(out.trim(), address, "{subnet}");
        let out = dig(&s, &[&format!("+subnet={subnet}"), "web.service.local", "A"]).await;
        assert!(out.contains(&format!("; CLIENT-SUBNET: {echo}")), "{subnet}: {out}");
    }
    // No region: everyone, for that subnet only.
    let out = dig(&s, &["+subnet=192.0.2.0/24", "web.service.local", "A"]).await;
    assert!(out.contains("; CLIENT-SUBNET: 192.0.2.0/24/24"), "{out}");
    assert_eq!(crate::dig::answer_section(&out).len(), 2, "{out}");
    // An answer that does not depend on the address holds for all of them.
    let out = dig(&s, &["+subnet=10.8.7.0/24", "web.service.eu.local", "A"]).await;
    assert!(out.contains("; CLIENT-SUBNET: 10.8.7.0/24/0"), "{out}");
    // NSID.
    let out = dig(&s, &["+nsid", "web.service.local", "A"]).await;
    assert!(out.contains("(\"signpost-test\")"), "{out}");
}

#[tokio::test]
async fn kdig_round_trips_cookie_subnet_padding_and_nsid_together() {
    let s = server().zone("web.toml", ZONE).config(CONFIG).start().await;
    for transport in ["+notcp", "+tcp"] {
        let out = Command::new("kdig")
            .arg(format!("@{}", s.dns.ip()))
            .args(["-p", &s.dns.port().to_string()])
            .args([transport, "+cookie", "+subnet=10.9.1.0/24", "+padding", "+nsid", "web.service.local", "A"])
            .output()
            .await
            .expect("kdig is installed (scripts/test.sh installs knot-dnsutils)");
        let out = String::from_utf8(out.stdout).unwrap();
        assert!(out.contains("status: NOERROR"), "{transport}: {out}");
        assert!(out.contains(";; COOKIE: "), "{transport}: {out}");
        assert!(out.contains(";; CLIENT-SUBNET: 10.9.1.0/24/16"), "{transport}: {out}");
        assert!(out.contains(";; NSID: ") && out.contains("\"signpost-test\""), "{transport}: {out}");
        assert!(out.contains("10.0.2.1") && !out.contains("10.0.1.1"), "{transport}: the us answer: {out}");
    }
}

#[tokio::test]
async fn a_client_with_a_valid_server_cookie_is_not_rate_limited() {
    let config = "[dns]\nrrl = { responses_per_second = 1, window = \"1s\", slip = 0, exempt = [] }\n";
    let s = server().zone("web.toml", ZONE).config(config).start().await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(s.dns).await.unwrap();
    let ask = |cookie: &[u8]| {
        let mut q = Ask::new("web.service.local.", RecordType::A).to_bytes();
        // Ask's OPT is last and empty: give it the cookie option.
        let len = q.len();
        q[len - 2..].copy_from_slice(&(4 + cookie.len() as u16).to_be_bytes());
        q.extend_from_slice(&[0, 10]);
        q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        q.extend_from_slice(cookie);
        q
    };
    let exchange = |q: Vec<u8>| {
        let sock = &sock;
        async move {
            sock.send(&q).await.unwrap();
            let mut buf = vec![0; 2048];
            match tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await {
                Ok(Ok(n)) => Some(Message::from_vec(&buf[..n]).unwrap()),
                _ => None,
            }
        }
    };
    // The first answer brings the server cookie.
    let first = exchange(ask(&[7; 8])).await.expect("an answer");
    let cookie = first.edns.unwrap().options().options.iter().find_map(|(_, o)| match o {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, v) => Some(v.clone()),
        _ => None,
    });
    let cookie = cookie.expect("a cookie back");
    // Past the rate without the server cookie: dropped (slip 0).
    let mut dropped = 0;
    for _ in 0..6 {
        if exchange(ask(&[7; 8])).await.is_none() {
            dropped += 1;
        }
    }
    assert!(dropped >= 3, "{dropped} of 6 dropped");
    // With it: every query answered.
    for i in 0..10 {
        let m = exchange(ask(&cookie)).await.unwrap_or_else(|| panic!("query {i} with a valid cookie dropped"));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
}
