//! Resource bounds: TCP connections, idle time and queries per connection, slow-path UDP work.
//! Each bound is hit on purpose and the server must keep answering everyone else; the hits are
//! counted in `signpost_limit_hits_total{limit}`.

use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

fn web() -> Vec<u8> {
    Ask::new("web.service.local.", RecordType::A).to_bytes()
}

async fn send_frame(c: &mut TcpStream, bytes: &[u8]) {
    c.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
    c.write_all(bytes).await.unwrap();
}

/// Returns true once the server has closed `c` (end of stream), within the deadline.
async fn closed(c: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(DEADLINE, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The value of `signpost_limit_hits_total{limit="<limit>"}` (0 when absent).
pub async fn limit_hits(s: &TestServer, limit: &str) -> u64 {
    let text = http_client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("signpost_limit_hits_total{{limit=\"{limit}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_thousand_idle_tcp_connections_do_not_stop_udp_or_new_tcp_clients() {
    let s = server().zone("z.toml", ZONE).start().await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(s.dns).await.unwrap());
    }
    // Make sure the server has taken every one of them (a query answered on the last).
    send_frame(idle.last_mut().unwrap(), &web()).await;
    assert!(read_tcp(idle.last_mut().unwrap()).await.is_some(), "the 1000th connection is served");
    for t in [Transport::Udp, Transport::Tcp, Transport::Tcp, Transport::Udp] {
        let m = query(s.dns, t, &Ask::new("web.service.local.", RecordType::A)).await;
        assert_eq!(addresses(&m), ["10.0.0.1"], "{t:?}");
    }
    // The new clients took the places of the connections idle the longest: the first ones.
    assert!(closed(&mut idle[0]).await, "the oldest idle connection was closed to make room");
    assert!(limit_hits(&s, "tcp_connections").await >= 2);
}

#[tokio::test]
async fn a_busy_server_refuses_new_tcp_connections_rather_than_queue_them() {
    let s = server().zone("z.toml", ZONE).config("[dns]\ntcp_max_connections = 1\n").start().await;
    // The one connection is busy: a query half sent.
    let mut busy = TcpStream::connect(s.dns).await.unwrap();
    busy.write_all(&[0, 40, 0x12]).await.unwrap();
    // Wait until the server reads from it (no sleep): a second client then finds no room.
    let mut refused = TcpStream::connect(s.dns).await.unwrap();
    assert!(closed(&mut refused).await, "a new connection is closed when none is idle");
    // UDP is unaffected.
    assert_eq!(addresses(&s.udp("web.service.local.", RecordType::A).await), ["10.0.0.1"]);
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed_after_the_idle_timeout() {
    let s = server().zone("z.toml", ZONE).config("[dns]\ntcp_idle_timeout = \"200ms\"\n").start().await;
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    send_frame(&mut c, &web()).await;
    assert!(read_tcp(&mut c).await.is_some());
    let started = std::time::Instant::now();
    assert!(closed(&mut c).await);
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    // A client that sends half a length prefix and stops is closed just the same.
    let mut slow = TcpStream::connect(s.dns).await.unwrap();
    slow.write_all(&[0]).await.unwrap();
    assert!(closed(&mut slow).await);
    assert!(limit_hits(&s, "tcp_idle_timeout").await >= 2);
}

#[tokio::test]
async fn a_tcp_connection_is_closed_after_its_query_limit_with_every_answer_sent() {
    let s = server().zone("z.toml", ZONE).config("[dns]\ntcp_max_queries = 3\n").start().await;
    let mut c = TcpStream::connect(s.dns).await.unwrap();
    // Five pipelined queries: at least the three the limit allows are answered, and every
    // query the server had read when it reached the limit (all five, when they arrived in one
    // read); then the server closes.
    for _ in 0..5 {
        send_frame(&mut c, &web()).await;
    }
    let mut answered = 0;
    while let Some(answer) = read_tcp(&mut c).await {
        assert_eq!(addresses(&Message::from_vec(&answer).unwrap()), ["10.0.0.1"]);
        answered += 1;
    }
    assert!((3..=5).contains(&answered), "{answered} answers");
    assert!(closed(&mut c).await);
    assert!(limit_hits(&s, "tcp_queries_per_connection").await >= 1);
}

#[tokio::test]
async fn slow_path_udp_work_beyond_the_bound_is_dropped() {
    // Forwarded queries to an upstream that never answers: each holds a slow-path slot for the
    // upstream timeout.
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "[dns]\nmax_slow_queries = 2\nupstreams = [\"{}\"]\nupstream_timeout = \"2s\"\n",
        upstream.local_addr().unwrap()
    );
    let s = server().zone("z.toml", ZONE).config(&config).start().await;
    let before = limit_hits(&s, "slow_queries").await;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10 {
        let q = Ask::new(&format!("n{i}.example.com."), RecordType::A).to_bytes();
        client.send_to(&q, s.dns).await.unwrap();
    }
    wait_for("8 slow queries dropped", || async { limit_hits(&s, "slow_queries").await >= before + 8 }).await;
    // The fast path does not need a slot.
    assert_eq!(addresses(&s.udp("web.service.local.", RecordType::A).await), ["10.0.0.1"]);
}

/// `GET path` on the API; the status code.
async fn get_status(s: &TestServer, path: &str) -> u16 {
    http_client().get(s.url(path)).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_10_mib_body_is_refused_without_being_read_whole() {
    let s = server().start().await;
    let addr = s.api.strip_prefix("http://").unwrap().to_string();
    let mut c = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v1/agent/service/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        10 << 20
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // A first MiB of the ten; the answer comes without the rest.
    c.write_all(&vec![b' '; 1 << 20]).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(DEADLINE, c.read(&mut buf)).await.expect("an answer before the body ends").unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn headers_over_the_limit_are_431() {
    let s = server().start().await;
    let big = "x".repeat(20 * 1024);
    let r = http_client().get(s.url("/v1/catalog/services")).header("x-padding", big).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(get_status(&s, "/v1/catalog/services").await, 200);
    assert!(limit_hits(&s, "http_header_bytes").await >= 1);
}

/// Starts two blocking queries that wait 20 s; returns once both are waiting, which shows as a
/// request that cannot start (429).
async fn two_waiting(s: &TestServer, probe: &str) -> Vec<tokio::task::JoinHandle<()>> {
    let blocked = (0..2)
        .map(|_| {
            let url = s.url("/v1/catalog/services?index=1000000&wait=20s");
            tokio::spawn(async move {
                let _ = http_client().get(url).send().await;
            })
        })
        .collect();
    wait_for("two blocking queries waiting", || async { get_status(s, probe).await == 429 }).await;
    blocked
}

#[tokio::test]
async fn blocking_queries_beyond_their_bound_are_429_and_others_are_served() {
    let s = server().zone("z.toml", ZONE).config("[http]\nmax_blocking_queries = 2\n").start().await;
    let blocked = two_waiting(&s, "/v1/catalog/services?index=1000000&wait=1ms").await;
    assert_eq!(get_status(&s, "/v1/catalog/services").await, 200, "plain reads are not watchers");
    assert!(limit_hits(&s, "http_blocking_queries").await >= 1);
    blocked.into_iter().for_each(|b| b.abort());
}

#[tokio::test]
async fn requests_beyond_the_concurrency_bound_are_429_but_ops_endpoints_answer() {
    let s = server().zone("z.toml", ZONE).config("[http]\nmax_concurrent_requests = 2\n").start().await;
    let blocked = two_waiting(&s, "/v1/catalog/services").await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get_status(&s, path).await, 200, "{path}");
    }
    assert!(limit_hits(&s, "http_requests").await >= 1);
    blocked.into_iter().for_each(|b| b.abort());
}

fn zone_with(instances: usize, pad: usize) -> String {
    let mut text = format!("# {}\n[[service]]\nname = \"web\"\n", "x".repeat(pad));
    for i in 1..=instances {
        text.push_str(&format!("\n[[service.instance]]\nid = \"web-{i}\"\naddress = \"10.0.0.{i}\"\nport = 80\n"));
    }
    text
}

#[tokio::test]
async fn zone_files_over_their_bounds_are_refused_and_the_last_good_version_serves() {
    let config = "[zones]\nmax_file_bytes = 4096\nmax_instances_per_file = 2\n";
    let s = server().zone("web.toml", &zone_with(1, 0)).config(config).start().await;
    assert_eq!(addresses(&s.udp("web.service.local.", RecordType::A).await), ["10.0.0.1"]);
    for (what, text) in [("three instances", zone_with(3, 0)), ("5000 bytes", zone_with(2, 5000))] {
        let before = limit_hits(&s, "zone_file").await;
        s.write_zone("web.toml", &text);
        wait_for(what, || async { limit_hits(&s, "zone_file").await > before }).await;
        assert_eq!(addresses(&s.udp("web.service.local.", RecordType::A).await), ["10.0.0.1"], "{what}");
    }
    // Within the bounds again: served.
    s.write_zone("web.toml", &zone_with(2, 100));
    wait_for("two instances", || async { addresses(&s.udp("web.service.local.", RecordType::A).await).len() == 2 })
        .await;
}
