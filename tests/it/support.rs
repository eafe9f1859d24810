//! The test harness: a real signpost on port 0 with its own zone folder, and a small DNS client
//! over real UDP and TCP sockets (hickory-proto encodes and decodes; nothing is mocked).
// Not every test binary configuration uses every helper.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use signpost::app::{self, Listeners};
use signpost::config::RawConfig;
use signpost::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A port for a peer that cannot be handed a bound socket (NSD, etcd, the built binary under a
/// service manager), free on 127.0.0.1 for TCP and UDP when handed out. Ports come from below the
/// kernel's ephemeral range (32768 up), so no `bind(:0)` anywhere can take one between our check
/// and the peer's bind, and from one counter, so no two tests in this run get the same one; the
/// process id spreads runs apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {}", LOW + SPAN);
}

pub struct TestServer {
    pub dns: SocketAddr,
    /// The HTTP API's base URL, `http://127.0.0.1:PORT` (`https://` with `[http] tls_cert`).
    pub api: String,
    pub registry: Registry,
    pub probe_stats: std::sync::Arc<signpost::health::Stats>,
    pub zones: tempfile::TempDir,
    token: CancellationToken,
    stopped: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[derive(Default)]
pub struct Builder {
    config: String,
    files: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
}

impl Builder {
    /// Extra configuration file text (TOML); `[dns] listen` and `[zones] dir` are set by the harness.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_string();
        self
    }

    /// The store's folder (default: a fresh one per server); a second server over the same
    /// folder sees what the first stored.
    pub fn data_dir(mut self, path: &Path) -> Self {
        self.data_dir = Some(path.to_path_buf());
        self
    }

    pub fn zone(mut self, name: &str, text: &str) -> Self {
        self.files.push((name.to_string(), text.to_string()));
        self
    }

    /// Loads the repository's own `zones/` examples.
    pub fn example_zones(mut self) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones");
        for path in signpost::zones::list(&dir).unwrap() {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            self.files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
        self
    }

    pub async fn start(self) -> TestServer {
        let zones = tempfile::tempdir().unwrap();
        for (name, text) in &self.files {
            std::fs::write(zones.path().join(name), text).unwrap();
        }
        let mut raw = RawConfig::from_toml(Path::new("test.toml"), &self.config).unwrap();
        if raw.dns.listen.is_none() {
            raw.dns.listen = Some(vec!["127.0.0.1:0".into()]);
        }
        // Hermetic: never the host's resolv.conf. Forwarding tests name their own upstreams.
        if raw.dns.upstreams.is_none() {
            raw.dns.upstreams = Some(vec![]);
        }
        if raw.http.listen.is_none() {
            raw.http.listen = Some("127.0.0.1:0".into());
        }
        // No drain: nothing balances over a test server, and `stop()` should be quick.
        if raw.shutdown.drain.is_none() {
            raw.shutdown.drain = Some("0s".into());
        }
        raw.zones.dir = Some(zones.path().to_path_buf());
        if let Some(dir) = self.data_dir {
            raw.store.data_dir = Some(dir);
        } else if raw.store.data_dir.is_none() {
            raw.store.data_dir = Some(zones.path().join(".data"));
        }
        let scheme = if raw.http.tls_cert.is_some() { "https" } else { "http" };
        let config = raw.validate().unwrap();
        let listeners = Listeners::bind(&config).await.unwrap();
        let token = CancellationToken::new();
        let running = app::start(config, listeners, token.clone()).await.unwrap();
        let dns = running.dns_addrs[0];
        let api = format!("{scheme}://{}", running.http_addr.expect("the harness binds HTTP"));
        let (registry, probe_stats) = (running.registry.clone(), running.probe_stats.clone());
        let stopped = Some(tokio::spawn(running.wait()));
        TestServer { dns, api, registry, probe_stats, zones, token, stopped }
    }
}

pub fn server() -> Builder {
    Builder::default()
}

impl TestServer {
    /// Shuts the server down gracefully and waits until every task has stopped (the store is
    /// closed), e.g. before starting another server over the same data dir.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(done) = self.stopped.take() {
            tokio::time::timeout(DEADLINE, done).await.expect("server stops in time").unwrap();
        }
    }

    /// The URL of an API path (`/v1/agent/services`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    pub fn zone_path(&self, name: &str) -> PathBuf {
        self.zones.path().join(name)
    }

    /// Writes a zone file atomically (temp file + rename), as deploy tools do.
    pub fn write_zone(&self, name: &str, text: &str) {
        let tmp = self.zones.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.zone_path(name)).unwrap();
    }

    pub async fn udp(&self, name: &str, qtype: RecordType) -> Message {
        query(self.dns, Transport::Udp, &Ask::new(name, qtype)).await
    }

    pub async fn tcp(&self, name: &str, qtype: RecordType) -> Message {
        query(self.dns, Transport::Tcp, &Ask::new(name, qtype)).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A question and how to ask it.
#[derive(Debug, Clone)]
pub struct Ask {
    pub name: Name,
    pub qtype: RecordType,
    pub class: DNSClass,
    /// `None` = no OPT record.
    pub edns_payload: Option<u16>,
    pub dnssec_ok: bool,
    pub edns_version: u8,
    /// An EDNS Client Subnet option: address and source prefix length.
    pub ecs: Option<(std::net::IpAddr, u8)>,
    /// The client's own address (a loopback address other than 127.0.0.1 stands for another host).
    pub from: Option<std::net::IpAddr>,
}

impl Ask {
    pub fn new(name: &str, qtype: RecordType) -> Ask {
        Ask {
            name: Name::from_ascii(name).unwrap(),
            qtype,
            class: DNSClass::IN,
            edns_payload: Some(1232),
            dnssec_ok: false,
            edns_version: 0,
            ecs: None,
            from: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut q = Query::query(self.name.clone(), self.qtype);
        q.set_query_class(self.class);
        let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(q);
        if let Some(payload) = self.edns_payload {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_dnssec_ok(self.dnssec_ok);
            e.set_version(self.edns_version);
            if let Some((addr, prefix)) = self.ecs {
                let subnet = hickory_proto::rr::rdata::opt::ClientSubnet::new(addr, prefix, 0);
                e.options_mut().insert(hickory_proto::rr::rdata::opt::EdnsOption::Subnet(subnet));
            }
            m.edns = Some(e);
        }
        m.to_vec().unwrap()
    }
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(4242);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

pub async fn query(server: SocketAddr, transport: Transport, ask: &Ask) -> Message {
    let bytes = ask.to_bytes();
    let from = ask.from.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let reply = match transport {
        Transport::Udp => exchange_udp_from(from, server, &bytes).await.expect("no UDP answer"),
        Transport::Tcp => exchange_tcp_from(from, server, &bytes).await.expect("no TCP answer"),
    };
    let msg = Message::from_vec(&reply).expect("answer does not parse");
    assert_eq!(msg.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]), "answer id must match the query's");
    msg
}

/// Sends raw bytes over UDP; `None` if nothing comes back within a second.
pub async fn exchange_udp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    exchange_udp_from(std::net::Ipv4Addr::LOCALHOST.into(), server, bytes).await
}

/// Like `exchange_udp`, from a socket bound to `from`.
pub async fn exchange_udp_from(from: std::net::IpAddr, server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65535];
    let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await.ok()?.unwrap();
    buf.truncate(n);
    Some(buf)
}

/// Sends raw bytes over TCP with the two-byte length prefix; `None` if the server closes or
/// says nothing within a second.
pub async fn exchange_tcp(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    exchange_tcp_from(std::net::Ipv4Addr::LOCALHOST.into(), server, bytes).await
}

/// Like `exchange_tcp`, from a socket bound to `from`.
pub async fn exchange_tcp_from(from: std::net::IpAddr, server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket =
        if from.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }.unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut s = socket.connect(server).await.unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_tcp(&mut s).await
}

pub async fn read_tcp(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0; 2];
    tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut len)).await.ok()?.ok()?;
    let mut buf = vec![0; u16::from_be_bytes(len) as usize];
    tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await.ok()?.ok()?;
    Some(buf)
}

/// Records as zone-file lines (`name ttl IN TYPE data`), the way dig prints them.
pub fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), r.data)).collect()
}

/// The addresses of A/AAAA answers, in order.
pub fn addresses(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// Polls `check` until it returns true; panics with `what` after `DEADLINE`.
pub async fn wait_for<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// An HTTP client for the API. reqwest is built without a default TLS provider; these tests
/// speak plain HTTP, but building a client needs one installed all the same.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An HTTPS client that trusts only the CA in `ca` (PEM) and presents `identity` (certificate
/// and key files, PEM) when given. It opens a new connection for every request, so that each one
/// shakes hands with the certificate the server serves at that moment.
pub fn https_client(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_only([ca]).tls_info(true).pool_max_idle_per_host(0);
    if let Some((cert, key)) = identity {
        let pem = [std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()].concat();
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// Parses a DNS message the way strict stub resolvers do: the header's counts say exactly what
/// follows, every record is whole, and nothing comes after the last one (RFC 1035 §4.2.1).
/// hickory's own `Message::from_vec` reads the counted records and ignores what follows.
pub fn strict_parse(bytes: &[u8]) -> Result<Message, String> {
    use hickory_proto::op::Header;
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    let mut d = BinDecoder::new(bytes);
    let header = Header::read(&mut d).map_err(|e| format!("header: {e}"))?;
    for i in 0..header.counts.queries {
        Query::read(&mut d).map_err(|e| format!("question {i}: {e}"))?;
    }
    let sections = [
        ("answer", header.counts.answers),
        ("authority", header.counts.authorities),
        ("additional", header.counts.additionals),
    ];
    for (section, count) in sections {
        for i in 0..count {
            Record::read(&mut d).map_err(|e| format!("{section} record {i} of {count}: {e}"))?;
        }
    }
    if !d.is_empty() {
        return Err(format!("{} bytes after the last counted record", d.len()));
    }
    Message::from_vec(bytes).map_err(|e| e.to_string())
}

/// Runs `script` with `sh` in a private mount namespace (`unshare -m`), where it may bind-mount
/// its own /etc/resolv.conf and the like, with `dir` as its first argument; returns its output
/// split at its `== <title>` lines. Panics, naming what the script `needs` besides root and
/// util-linux's unshare, if it fails or outlasts `timeout`.
pub async fn in_mount_namespace(script: &str, dir: &Path, timeout: Duration, needs: &str) -> Vec<String> {
    let out = tokio::time::timeout(
        timeout,
        tokio::process::Command::new("unshare").args(["-m", "sh", "-c", script, "sh", dir.to_str().unwrap()]).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("the script in a mount namespace ends within {timeout:?}"))
    .expect("`unshare` runs (util-linux; scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script in a mount namespace failed ({}); it needs root, util-linux's unshare and {needs}, \
         as scripts/test.sh has in CI.\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("{stdout}");
    stdout.split("== ").skip(1).map(str::to_string).collect()
}

/// The documentation: README.md, then every page of docs/ in name order. Tests find the examples
/// they run here, so that a page cannot drift from the product wherever an example lives.
pub fn docs_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is there")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    let mut text = std::fs::read_to_string(root.join("README.md")).unwrap();
    for page in pages {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(page).unwrap());
    }
    text
}
