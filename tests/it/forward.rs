//! Forwarding: names outside the domain go to the upstreams, through a real signpost, to a small
//! upstream DNS server started here (hickory-server with a handler that counts what it is asked).
//! Last, as a user would use it: getent and Python's getaddrinfo with resolv.conf pointing at the
//! built binary, in a private mount namespace.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use crate::binary::{Binary, repo_zones};
use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
"#;

const UPSTREAM_SOA: &str = "example.com. 60 IN SOA ns.example.com. hostmaster.example.com. 2026 7200 900 1209600 60";
/// TXT records of `big.example.com`: more than fits in 1232 bytes.
const BIG: usize = 30;

// ---- the upstream ----------------------------------------------------------------------------

/// What an upstream was asked.
#[derive(Default)]
struct Log {
    udp: AtomicUsize,
    tcp: AtomicUsize,
    names: Mutex<Vec<String>>,
}

impl Log {
    fn total(&self) -> usize {
        self.udp.load(Ordering::SeqCst) + self.tcp.load(Ordering::SeqCst)
    }
}

/// A recursive resolver's stand-in for `example.com`, or one that SERVFAILs everything.
#[derive(Clone)]
struct Fake {
    log: Arc<Log>,
    servfail: bool,
}

struct Upstream {
    addr: SocketAddr,
    log: Arc<Log>,
}

async fn upstream() -> Upstream {
    start_upstream(false).await
}

async fn start_upstream(servfail: bool) -> Upstream {
    let log = Arc::new(Log::default());
    // UDP and TCP on one port; the UDP port chosen may be taken for TCP, so try again.
    let (udp, tcp, addr) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            break (udp, tcp, addr);
        }
    };
    let mut server = Server::new(Fake { log: log.clone(), servfail });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(10), 16);
    tokio::spawn(async move {
        let _ = server.block_until_done().await;
    });
    Upstream { addr, log }
}

fn rec(owner: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(owner.clone(), ttl, data)
}

fn example_soa() -> Record {
    let n = |s: &str| Name::from_ascii(s).unwrap();
    let soa = SOA::new(n("ns.example.com."), n("hostmaster.example.com."), 2026, 7200, 900, 1209600, 60);
    rec(&n("example.com."), 60, RData::SOA(soa))
}

impl Fake {
    /// The zone: answers, authority, rcode. Owners echo the question as asked, as servers do.
    fn lookup(&self, asked: &Name, qtype: RecordType) -> (ResponseCode, Vec<Record>, Vec<Record>) {
        let www = Name::from_ascii("www.example.com.").unwrap();
        let name = asked.to_lowercase().to_ascii();
        let found = match (name.as_str(), qtype) {
            ("www.example.com.", RecordType::A) => vec![rec(asked, 300, RData::A(A::new(192, 0, 2, 10)))],
            ("www.example.com.", RecordType::AAAA) => {
                vec![rec(asked, 300, RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)))]
            }
            ("alias.example.com.", RecordType::A) => {
                vec![rec(asked, 120, RData::CNAME(CNAME(www.clone()))), rec(&www, 300, RData::A(A::new(192, 0, 2, 10)))]
            }
            ("big.example.com.", RecordType::TXT) => (0..BIG)
                .map(|i| rec(asked, 300, RData::TXT(TXT::new(vec![format!("{i:02}-{}", "x".repeat(97))]))))
                .collect(),
            ("www.example.com." | "alias.example.com." | "big.example.com." | "nodata.example.com.", _) => {
                return (ResponseCode::NoError, vec![], vec![example_soa()]);
            }
            _ => return (ResponseCode::NXDomain, vec![], vec![example_soa()]),
        };
        (ResponseCode::NoError, found, vec![])
    }
}

#[async_trait::async_trait]
impl RequestHandler for Fake {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        match request.protocol() {
            Protocol::Udp => self.log.udp.fetch_add(1, Ordering::SeqCst),
            _ => self.log.tcp.fetch_add(1, Ordering::SeqCst),
        };
        let query = request.queries.queries()[0].original().clone();
        self.log.names.lock().unwrap().push(query.name.to_string());
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        // Echo the client's EDNS size, so that UDP answers are truncated as a real server's are.
        let edns = request.edns.as_ref().map(|e| {
            let mut o = Edns::new();
            o.set_max_payload(e.max_payload().max(512));
            o
        });
        let (rcode, answers, authorities) = if self.servfail {
            (ResponseCode::ServFail, vec![], vec![])
        } else {
            self.lookup(&query.name, query.query_type)
        };
        meta.response_code = rcode;
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            meta,
            answers.iter(),
            authorities.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header { metadata: meta, counts: HeaderCounts::default() }),
        }
    }
}

/// A UDP socket that swallows queries and never answers (nothing listens on its TCP port).
fn silent() -> (std::net::UdpSocket, SocketAddr) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// A port nobody listens on, UDP or TCP.
fn closed() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

fn config(upstreams: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[dns]\nupstreams = [{}]\n{extra}", list.join(", "))
}

async fn forwarding(upstreams: &[SocketAddr], extra: &str) -> TestServer {
    server().zone("z.toml", ZONE).config(&config(upstreams, extra)).start().await
}

// ---- a client with a chosen source address and patience -------------------------------------

/// Asks from `source` (any port), waiting up to `wait` for the answer.
async fn ask_from(source: IpAddr, server: SocketAddr, t: Transport, ask: &Ask, wait: Duration) -> Message {
    let bytes = ask.to_bytes();
    let reply = tokio::time::timeout(wait, async {
        match t {
            Transport::Udp => {
                let sock = UdpSocket::bind(SocketAddr::new(source, 0)).await.unwrap();
                sock.send_to(&bytes, server).await.unwrap();
                let mut buf = vec![0; 65535];
                let n = sock.recv(&mut buf).await.unwrap();
                buf.truncate(n);
                buf
            }
            Transport::Tcp => {
                let sock = TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::new(source, 0)).unwrap();
                let mut s = sock.connect(server).await.unwrap();
                s.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
                s.write_all(&bytes).await.unwrap();
                let mut len = [0; 2];
                s.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut buf).await.unwrap();
                buf
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {t:?} answer for {} within {wait:?}", ask.name));
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
    m
}

async fn ask(s: &TestServer, t: Transport, name: &str, qtype: RecordType) -> Message {
    ask_from([127, 0, 0, 1].into(), s.dns, t, &Ask::new(name, qtype), DEADLINE).await
}

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// The flags every forwarded answer has: RA, and no AA (the answer is not ours).
fn assert_forwarded(m: &Message, rcode: ResponseCode, what: &str) {
    assert_eq!(m.metadata.response_code, rcode, "{what}");
    assert!(m.metadata.recursion_available, "{what}: RA");
    assert!(!m.metadata.authoritative, "{what}: not ours, no AA");
}

// ---- the tests -------------------------------------------------------------------------------

#[tokio::test]
async fn forwarded_answers_carry_the_upstreams_records_and_ra() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    for t in TRANSPORTS {
        let m = ask(&s, t, "www.example.com.", RecordType::A).await;
        assert_forwarded(&m, ResponseCode::NoError, "A");
        assert_eq!(addresses(&m), ["192.0.2.10"], "{t:?}");
        assert!(m.answers[0].ttl <= 300 && m.answers[0].ttl >= 295, "upstream TTL kept: {}", m.answers[0].ttl);

        let m = ask(&s, t, "www.example.com.", RecordType::AAAA).await;
        assert_forwarded(&m, ResponseCode::NoError, "AAAA");
        assert_eq!(addresses(&m), ["2001:db8::10"], "{t:?}");

        // The question's case comes back, whatever case the cache holds.
        let m = ask(&s, t, "WwW.ExAmPlE.CoM.", RecordType::A).await;
        assert_eq!(m.queries[0].name().to_string(), "WwW.ExAmPlE.CoM.");
        assert_eq!(m.answers[0].name.to_string(), "WwW.ExAmPlE.CoM.", "{t:?}");

        // A CNAME chain comes whole.
        let m = ask(&s, t, "alias.example.com.", RecordType::A).await;
        assert_forwarded(&m, ResponseCode::NoError, "CNAME");
        let got: Vec<String> =
            lines(&m.answers).iter().map(|l| l.split(' ').skip(2).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(got, ["IN CNAME www.example.com.", "IN A 192.0.2.10"], "{t:?}");
    }
}

#[tokio::test]
async fn nxdomain_and_nodata_pass_through_with_the_upstream_soa() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    for t in TRANSPORTS {
        for (name, qtype, rcode) in [
            ("nope.example.com.", RecordType::A, ResponseCode::NXDomain),
            ("nope.example.com.", RecordType::AAAA, ResponseCode::NXDomain),
            ("nodata.example.com.", RecordType::A, ResponseCode::NoError),
            ("www.example.com.", RecordType::MX, ResponseCode::NoError),
        ] {
            let what = format!("{t:?} {name} {qtype}");
            let m = ask(&s, t, name, qtype).await;
            assert_forwarded(&m, rcode, &what);
            assert!(m.answers.is_empty(), "{what}");
            // The TTL counts down in the cache; compare the rest.
            let auth = lines(&m.authorities);
            assert_eq!(auth.len(), 1, "{what}: {auth:?}");
            let strip = |l: &str| {
                l.split(' ').enumerate().filter(|(i, _)| *i != 1).map(|(_, w)| w).collect::<Vec<_>>().join(" ")
            };
            assert_eq!(strip(&auth[0]), strip(UPSTREAM_SOA), "{what}");
            assert!(m.authorities[0].ttl <= 60, "{what}");
        }
    }
    // Reverse names are not ours either: they go upstream.
    let before = up.log.total();
    let m = ask(&s, Transport::Udp, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
    assert_forwarded(&m, ResponseCode::NXDomain, "PTR");
    assert_eq!(up.log.total(), before + 1);
}

#[tokio::test]
async fn names_in_the_domain_never_reach_the_upstream() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    let names: &[(&str, RecordType)] = &[
        ("web.service.local.", RecordType::A),
        ("web.service.local.", RecordType::AAAA),
        ("web.service.local.", RecordType::SRV),
        ("WEB.Service.LOCAL.", RecordType::TXT),
        ("web-1.instance.local.", RecordType::A),
        ("nope.service.local.", RecordType::A),
        ("x.y.z.local.", RecordType::MX),
        ("local.", RecordType::SOA),
        ("local.", RecordType::NS),
        ("ns.local.", RecordType::A),
    ];
    for round in 0..20 {
        for t in TRANSPORTS {
            for &(name, qtype) in names {
                let m = ask(&s, t, name, qtype).await;
                assert!(m.metadata.authoritative, "{round} {t:?} {name} {qtype}");
                assert!(!m.metadata.recursion_available, "{round} {t:?} {name} {qtype}: not forwarded");
            }
        }
    }
    assert_eq!(up.log.total(), 0, "asked: {:?}", up.log.names.lock().unwrap());
    ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await;
    assert_eq!(up.log.total(), 1);
}

/// The value of `signpost_dns_forwarded_total{outcome}` in the server's `/metrics` (0 before
/// its first count). The recorder is shared by every server in this process, so tests compare
/// before and after.
async fn forwarded_count(s: &TestServer, outcome: &str) -> u64 {
    let text = http_client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let series = format!("signpost_dns_forwarded_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn forwarded_queries_are_counted_by_outcome() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    let before = forwarded_count(&s, "answered").await;
    let m = ask(&s, Transport::Udp, "counted.example.com.", RecordType::A).await;
    assert_forwarded(&m, ResponseCode::NXDomain, "an NXDOMAIN is an answer");
    assert!(forwarded_count(&s, "answered").await > before, "answered by the upstream");

    let down = forwarding(&[closed()], "upstream_timeout = \"300ms\"\n").await;
    let before = forwarded_count(&down, "failed").await;
    let m = ask(&down, Transport::Udp, "www.example.com.", RecordType::A).await;
    assert_forwarded(&m, ResponseCode::ServFail, "no upstream");
    assert!(forwarded_count(&down, "failed").await > before, "no upstream answered");
}

#[tokio::test]
async fn an_upstream_that_is_down_is_servfail_within_the_timeout() {
    let (_held, silent) = silent();
    // Bounds well apart from the timeout (1 s) and the client's own patience (DEADLINE): with a
    // 300 ms timeout and a 1 s bound, a loaded 2-core CI machine once took 1.1 s.
    for (what, upstreams) in [("silent", vec![silent]), ("closed", vec![closed()]), ("both", vec![silent, closed()])] {
        let s = forwarding(&upstreams, "upstream_timeout = \"1s\"\n").await;
        for t in TRANSPORTS {
            let start = Instant::now();
            let m =
                ask_from([127, 0, 0, 1].into(), s.dns, t, &Ask::new("www.example.com.", RecordType::A), DEADLINE).await;
            let took = start.elapsed();
            assert_forwarded(&m, ResponseCode::ServFail, &format!("{what} {t:?}"));
            assert!(took < Duration::from_secs(4), "{what} {t:?}: SERVFAIL took {took:?}");
        }
    }
}

#[tokio::test]
async fn the_next_upstream_answers_when_one_fails() {
    let (_held, silent) = silent();
    let good = upstream().await;
    let failing = start_upstream(true).await;
    for (what, first) in [("silent", silent), ("closed", closed()), ("servfail", failing.addr)] {
        let s = forwarding(&[first, good.addr], "upstream_timeout = \"1s\"\n").await;
        let start = Instant::now();
        let m = ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await;
        assert_forwarded(&m, ResponseCode::NoError, what);
        assert_eq!(addresses(&m), ["192.0.2.10"], "{what}");
        assert!(start.elapsed() < Duration::from_secs(3), "{what}: took {:?}", start.elapsed());
        // The upstream that answered is asked first from now on: a dead one costs its timeout
        // (1 s) once, not on every query (another name, so that the cache does not answer).
        let start = Instant::now();
        let m = ask(&s, Transport::Udp, "www.example.com.", RecordType::AAAA).await;
        assert_eq!(addresses(&m), ["2001:db8::10"], "{what}");
        assert!(start.elapsed() < Duration::from_millis(900), "{what}: second query took {:?}", start.elapsed());
    }
    assert!(failing.log.total() >= 1, "the SERVFAILing upstream was asked first");
}

#[tokio::test]
async fn clients_outside_recursion_allow_are_refused_but_answered_in_the_domain() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "recursion_allow = [\"127.0.0.1/32\"]\n").await;
    let outsider: IpAddr = [127, 0, 0, 2].into();
    for t in TRANSPORTS {
        let m = ask_from(outsider, s.dns, t, &Ask::new("www.example.com.", RecordType::A), DEADLINE).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t:?}");
        assert!(!m.metadata.recursion_available && m.answers.is_empty(), "{t:?}");
        let m = ask_from(outsider, s.dns, t, &Ask::new("web.service.local.", RecordType::A), DEADLINE).await;
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "{t:?}");
        assert!(m.metadata.authoritative, "{t:?}");
    }
    assert_eq!(up.log.total(), 0, "nothing of the outsider's went upstream");
    // 127.0.0.1 itself is allowed.
    let m = ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await;
    assert_eq!(addresses(&m), ["192.0.2.10"]);
}

#[tokio::test]
async fn tcp_clients_are_forwarded_over_tcp() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    let m = ask(&s, Transport::Tcp, "www.example.com.", RecordType::A).await;
    assert_forwarded(&m, ResponseCode::NoError, "TCP");
    assert_eq!(addresses(&m), ["192.0.2.10"]);
    assert_eq!((up.log.udp.load(Ordering::SeqCst), up.log.tcp.load(Ordering::SeqCst)), (0, 1));
    let m = ask(&s, Transport::Udp, "www.example.com.", RecordType::AAAA).await;
    assert_eq!(addresses(&m), ["2001:db8::10"]);
    assert_eq!((up.log.udp.load(Ordering::SeqCst), up.log.tcp.load(Ordering::SeqCst)), (1, 1));
}

#[tokio::test]
async fn big_answers_come_over_tcp_from_upstream_and_truncate_for_udp_clients() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    // The upstream's UDP answer is truncated; the resolver fetches it again over TCP.
    let m = ask(&s, Transport::Udp, "big.example.com.", RecordType::TXT).await;
    assert_eq!((up.log.udp.load(Ordering::SeqCst), up.log.tcp.load(Ordering::SeqCst)), (1, 1));
    // Our own size rules apply to the client: whole records that fit, and TC.
    assert_forwarded(&m, ResponseCode::NoError, "UDP");
    assert!(m.metadata.truncation, "TC");
    assert!(!m.answers.is_empty() && m.answers.len() < BIG, "{} records", m.answers.len());
    assert!(m.to_vec().unwrap().len() <= 1232);
    let m = ask_from(
        [127, 0, 0, 1].into(),
        s.dns,
        Transport::Udp,
        &Ask { edns_payload: None, ..Ask::new("big.example.com.", RecordType::TXT) },
        DEADLINE,
    )
    .await;
    assert!(m.metadata.truncation && m.to_vec().unwrap().len() <= 512, "no EDNS: 512 bytes");
    // Over TCP the client gets everything.
    let m = ask(&s, Transport::Tcp, "big.example.com.", RecordType::TXT).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), BIG);
}

#[tokio::test]
async fn cached_answers_count_their_ttl_down() {
    let up = upstream().await;
    let s = forwarding(&[up.addr], "").await;
    let first = ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await.answers[0].ttl;
    let waited = wait_for("the cached TTL to count down", || async {
        ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await.answers[0].ttl < first
    })
    .await;
    assert!(waited <= Duration::from_millis(2100), "TTL counted down after {waited:?}");
    assert_eq!(up.log.total(), 1, "answered from the cache meanwhile");
}

#[tokio::test]
async fn a_slow_upstream_holds_up_no_answer_in_the_domain() {
    let (_held, silent) = silent();
    let s = forwarding(&[silent], "upstream_timeout = \"3s\"\n").await;
    let dns = s.dns;
    let pending = tokio::spawn(async move {
        ask_from([127, 0, 0, 1].into(), dns, Transport::Udp, &Ask::new("www.example.com.", RecordType::A), DEADLINE)
            .await
    });
    let start = Instant::now();
    for _ in 0..50 {
        let m = ask(&s, Transport::Udp, "web.service.local.", RecordType::A).await;
        assert_eq!(addresses(&m), ["10.0.0.1"]);
    }
    assert!(start.elapsed() < Duration::from_secs(2), "50 in-domain answers took {:?}", start.elapsed());
    assert!(!pending.is_finished(), "the forwarded query is still waiting for its upstream");
    let m = pending.await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn an_upstream_that_is_signpost_itself_is_dropped() {
    // Our own address as the upstream: dropped at start, so the name is refused at once rather
    // than looping until the timeout.
    // An address no other test binds, so the free port found here cannot be taken meanwhile by
    // another test's port-0 bind on 127.0.0.1.
    let me = std::net::UdpSocket::bind("127.77.0.1:0").unwrap().local_addr().unwrap();
    let s = server()
        .zone("z.toml", ZONE)
        .config(&format!("[dns]\nlisten = [\"{me}\"]\nupstreams = [\"{me}\"]\nupstream_timeout = \"5s\"\n"))
        .start()
        .await;
    let start = Instant::now();
    let m = ask(&s, Transport::Udp, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(start.elapsed() < Duration::from_secs(1));
}

// ---- as a user uses it -----------------------------------------------------------------------

/// An address of our own on port 53 (glibc cannot use another port), free on this host.
fn free_port_53() -> SocketAddr {
    for ip in [[127, 0, 0, 53], [127, 53, 0, 1], [127, 53, 0, 2], [127, 53, 0, 3]] {
        let addr = SocketAddr::from((ip, 53));
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free 127.x.y.z:53 for the getent test (tests run as root; is something holding them?)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getent_and_getaddrinfo_resolve_through_signpost() {
    let up = upstream().await;
    let addr = free_port_53();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let zones = repo_zones();
    let _signpost = Binary::serve(
        &[
            "--dns-addr",
            &addr.to_string(),
            "--http-addr",
            "127.0.0.1:0",
            "--zones",
            zones.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--upstream",
            &up.addr.to_string(),
        ],
        &[],
    );
    std::fs::write(dir.path().join("resolv.conf"), format!("nameserver {}\n", addr.ip())).unwrap();
    std::fs::write(dir.path().join("nsswitch.conf"), "hosts: files dns\n").unwrap();
    let script = r#"set -e
d="$1"
mount --bind "$d/resolv.conf" /etc/resolv.conf
mount --bind "$d/nsswitch.conf" /etc/nsswitch.conf
echo "== getent ahosts order-service.service.local"
getent ahosts order-service.service.local
echo "== python getaddrinfo"
python3 -c 'import socket; print(" ".join(sorted({a[4][0] for a in socket.getaddrinfo("order-service.service.local", 8001, proto=socket.IPPROTO_TCP)})))'
echo "== getent ahosts www.example.com"
getent ahosts www.example.com
"#;
    let sections = in_mount_namespace(script, dir.path(), DEADLINE, "getent and python3").await;
    let stdout = sections.concat();
    assert_eq!(sections.len(), 3, "{stdout}");
    fn first_column(s: &str) -> BTreeSet<&str> {
        s.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect()
    }
    assert_eq!(first_column(&sections[0]), BTreeSet::from(["192.168.1.10", "192.168.1.11", "192.168.1.12"]));
    assert!(sections[0].contains("STREAM order-service.service.local"), "{stdout}");
    assert_eq!(sections[1].lines().nth(1), Some("192.168.1.10 192.168.1.11 192.168.1.12"), "{stdout}");
    assert_eq!(first_column(&sections[2]), BTreeSet::from(["192.0.2.10", "2001:db8::10"]), "{stdout}");
    // These are the README's lines (its resolv.conf says 127.0.0.1, the default listen address;
    // here signpost has an address of its own, so as not to depend on 127.0.0.1:53 being free).
    let readme = docs_text();
    for line in
        ["nameserver 127.0.0.1\n", "getent ahosts order-service.service.local ", "getent ahosts www.example.com "]
    {
        assert!(readme.contains(line), "README.md shows {line:?}");
    }
    let names = up.log.names.lock().unwrap().clone();
    assert!(
        names.iter().all(|n| !n.to_ascii_lowercase().ends_with(".local.")),
        "in-domain names went upstream: {names:?}"
    );
    assert!(names.iter().any(|n| n == "www.example.com."), "{names:?}");
}
