//! The EDNS options real resolvers send, with the real tools: dig's and kdig's cookies (a server
//! cookie back, accepted when sent again, over UDP and TCP), Client Subnet choosing the
//! region and echoed with its scope, NSID, padding; a valid server cookie exempts a client from
//! rate limiting.

use std::time::Duration;

use hickory_proto::op::Message;
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

/// Rate limiting at one answer per second and no slip: a client past it gets nothing unless
/// its server cookie is valid.
pub const STRICT_RRL: &str = "[dns]\nrrl = { responses_per_second = 1, window = \"1s\", slip = 0, exempt = [] }\n";

/// A query for `web.service.local` A carrying `cookie` (client cookie, then any server cookie).
pub fn with_cookie(cookie: &[u8]) -> Vec<u8> {
    let mut q = Ask::new("web.service.local.", RecordType::A).to_bytes();
    // Ask's OPT is last and empty: give it the cookie option.
    let len = q.len();
    q[len - 2..].copy_from_slice(&(4 + cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(&[0, 10]);
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// Asks over `sock` (connected to a server); `None` if no answer comes in half a second.
async fn exchange(sock: &tokio::net::UdpSocket, q: Vec<u8>) -> Option<Message> {
    sock.send(&q).await.unwrap();
    let mut buf = vec![0; 2048];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(Message::from_vec(&buf[..n]).unwrap()),
        _ => None,
    }
}

/// The server cookie `server` gives the client cookie [7; 8] asking from 127.0.0.1, with it.
pub async fn cookie_from(server: std::net::SocketAddr) -> Vec<u8> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    let first = exchange(&sock, with_cookie(&[7; 8])).await.expect("an answer");
    let cookie = first.edns.unwrap().options().options.iter().find_map(|(_, o)| match o {
        hickory_proto::rr::rdata::opt::EdnsOption::Unknown(10, v) => Some(v.clone()),
        _ => None,
    });
    cookie.expect("a cookie back")
}

/// Returns true if `server`, limiting as `STRICT_RRL`, answers ten queries in a row carrying
/// `cookie`: it judged the cookie valid. A client cookie alone is dropped past the first.
pub async fn cookie_exempts(server: std::net::SocketAddr, cookie: &[u8]) -> bool {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    for _ in 0..10 {
        if exchange(&sock, with_cookie(cookie)).await.is_none() {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_client_with_a_valid_server_cookie_is_not_rate_limited() {
    let s = server().zone("web.toml", ZONE).config(STRICT_RRL).start().await;
    let cookie = cookie_from(s.dns).await;
    // Past the rate without the server cookie: dropped (slip 0); with it, every query answered.
    assert!(!cookie_exempts(s.dns, &[7; 8]).await, "a client cookie alone is limited");
    assert!(cookie_exempts(s.dns, &cookie).await, "a valid server cookie is not");
    let mut forged = cookie.clone();
    forged[23] ^= 1;
    assert!(!cookie_exempts(s.dns, &forged).await, "a forged one is");
}

/// The cookie secrets' seed lives in the data directory: a restarted server accepts the
/// cookies clients got before, and the seed is readable by its owner only.
#[tokio::test]
async fn a_restarted_server_accepts_the_cookies_it_gave_before() {
    let data = tempfile::tempdir().unwrap();
    let s = server().zone("web.toml", ZONE).data_dir(data.path()).config(STRICT_RRL).start().await;
    let cookie = cookie_from(s.dns).await;
    s.stop().await;
    let mode = std::fs::metadata(data.path().join("cookie-seed")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    let s = server().zone("web.toml", ZONE).data_dir(data.path()).config(STRICT_RRL).start().await;
    assert!(cookie_exempts(s.dns, &cookie).await, "the cookie from before the restart is valid");
    // Another data directory, another seed: the cookie is not this server's.
    let other = server().zone("web.toml", ZONE).config(STRICT_RRL).start().await;
    assert!(!cookie_exempts(other.dns, &cookie).await);
}
