//! `/metrics` as monitoring reads it, against the built binary (its own process, so that its
//! metrics count this test's traffic alone): every family there from the first scrape, the DNS
//! histogram in step with the query counters at the instant of a scrape, and the Prometheus
//! project's own lint (`promtool check metrics`) clean after every kind of traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::json;

use crate::binary::Binary;
use crate::health::Target;
use crate::ops::parse_prometheus;
use crate::support::*;

const WEB: &str = "[[service]]\nname = \"web\"\n\
    [[service.instance]]\nid = \"web-1\"\naddress = \"10.0.0.1\"\nport = 80\n\
    [[service.instance]]\nid = \"web-2\"\naddress = \"10.0.0.2\"\nport = 80\n";

/// The label values README's Metrics and Limits sections promise, each a series from the start.
const LIMITS: [&str; 11] = [
    "slow_queries",
    "tcp_connections",
    "tcp_idle_timeout",
    "tcp_queries_per_connection",
    "rrl_slipped",
    "rrl_dropped",
    "http_requests",
    "http_blocking_queries",
    "http_header_bytes",
    "tls_handshakes",
    "zone_file",
];
const STATUSES: [&str; 4] = ["passing", "warning", "critical", "maintenance"];

/// Families whose label values are open, so that a series shows with its first count.
const LAZY: [&str; 3] =
    ["signpost_dns_queries_total{", "signpost_http_requests_total{", "signpost_http_request_duration_seconds_"];

fn serve(zones: &Path, data: &Path, extra: &[&str]) -> Binary {
    let mut args = vec!["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap()];
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend(extra);
    Binary::serve(&args, &[])
}

async fn scrape(b: &Binary) -> (String, BTreeMap<String, f64>) {
    let resp = http_client().get(format!("http://{}/metrics", b.http)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let series = parse_prometheus(&text);
    (text, series)
}

/// Every series a fresh server shows at zero: the counters whose label values are known, and
/// the count of each histogram.
fn zero_at_start() -> Vec<String> {
    let mut out = vec!["signpost_check_transitions_total".to_string()];
    for result in ["ok", "error"] {
        out.push(format!("signpost_zone_reloads_total{{result=\"{result}\"}}"));
        out.push(format!("signpost_store_writes_total{{result=\"{result}\"}}"));
    }
    for outcome in ["answered", "failed", "refused"] {
        out.push(format!("signpost_dns_forwarded_total{{outcome=\"{outcome}\"}}"));
    }
    out.extend(LIMITS.map(|limit| format!("signpost_limit_hits_total{{limit=\"{limit}\"}}")));
    for kind in ["http", "tcp"] {
        for result in ["passing", "warning", "critical"] {
            out.push(format!("signpost_probes_total{{kind=\"{kind}\",result=\"{result}\"}}"));
        }
        out.push(format!("signpost_probe_duration_seconds_count{{kind=\"{kind}\"}}"));
    }
    for histogram in ["probe_lateness", "store_write_duration", "dns_query_duration"] {
        out.push(format!("signpost_{histogram}_seconds_count"));
    }
    out.extend(STATUSES.map(|s| format!("signpost_checks{{status=\"{s}\"}}")));
    out.push("signpost_checks_probed".into());
    out
}

/// The DNS queries counted, and the DNS histogram's `_count`, `+Inf` bucket and buckets, in one scrape.
struct DnsSeen {
    counted: f64,
    timed: f64,
    inf: f64,
    buckets: Vec<f64>,
}

fn dns_seen(m: &BTreeMap<String, f64>) -> DnsSeen {
    let h = "signpost_dns_query_duration_seconds";
    let counted = m.iter().filter(|(k, _)| k.starts_with("signpost_dns_queries_total{")).map(|(_, v)| v).sum();
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&format!("{h}_bucket{{le=\""))?.strip_suffix("\"}")?;
            Some((le.parse().ok()?, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    DnsSeen {
        counted,
        timed: m[&format!("{h}_count")],
        inf: m[&format!("{h}_bucket{{le=\"+Inf\"}}")],
        buckets: buckets.into_iter().map(|(_, v)| v).collect(),
    }
}

/// A stream of plain UDP queries that the fast path answers, eight at a time, until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(server: SocketAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let query = Ask { edns_payload: None, ..Ask::new("web.service.local.", RecordType::A) }.to_bytes();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut buf = [0; 512];
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..8 {
                    socket.send_to(&query, server).unwrap();
                }
                // A lost answer only ends the wait for this round.
                for _ in 0..8 {
                    if socket.recv(&mut buf).is_err() {
                        break;
                    }
                }
            }
        });
        Flood { stop, thread: Some(thread) }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().map(|t| t.join());
    }
}

#[tokio::test]
async fn a_fresh_server_shows_its_gauges_and_known_counters_and_the_dns_histogram_keeps_up() {
    let (zones, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(zones.path().join("web.toml"), WEB).unwrap();
    let b = serve(zones.path(), data.path(), &[]);

    // The first scrape, with nothing but the zone file loaded.
    let (_, m) = scrape(&b).await;
    for status in STATUSES {
        let want = if status == "passing" { 2.0 } else { 0.0 };
        let series = format!("signpost_instances{{status=\"{status}\"}}");
        assert_eq!(m.get(&series), Some(&want), "{series} in {m:#?}");
    }
    for series in zero_at_start() {
        assert_eq!(m.get(&series), Some(&0.0), "{series} in {m:#?}");
    }
    let resp = http_client().get(format!("http://{}/v1/catalog/services", b.http)).send().await.unwrap();
    let index: f64 = resp.headers()["x-consul-index"].to_str().unwrap().parse().unwrap();
    assert_eq!(m.get("signpost_registry_version"), Some(&index), "{m:#?}");
    assert!(!m.keys().any(|k| k.starts_with("signpost_dns_queries_total")), "no query yet: {m:#?}");

    // Queries over the fast path (plain UDP), the full handler (EDNS, ANY, TCP) and negative
    // answers: once the counters hold them all, the histogram counts exactly as many.
    let plain = Ask { edns_payload: None, ..Ask::new("web.service.local.", RecordType::A) };
    let asks = [
        (plain, Transport::Udp),
        (Ask::new("web.service.local.", RecordType::ANY), Transport::Udp),
        (Ask::new("missing.service.local.", RecordType::A), Transport::Udp),
        (Ask::new("web.service.local.", RecordType::SRV), Transport::Tcp),
    ];
    let rounds = 5;
    for _ in 0..rounds {
        for (ask, transport) in &asks {
            query(b.dns_udp, *transport, ask).await;
        }
    }
    let sent = (rounds * asks.len()) as f64;
    let start = Instant::now();
    let seen = loop {
        let seen = dns_seen(&scrape(&b).await.1);
        assert!(seen.timed >= seen.counted, "the histogram is behind the counters: {} < {}", seen.timed, seen.counted);
        if seen.counted == sent {
            break seen;
        }
        assert!(start.elapsed() < DEADLINE, "{} of {sent} queries counted", seen.counted);
    };
    assert_eq!((seen.timed, seen.inf), (sent, sent));

    // Under a stream of queries, every scrape shows the histogram at or past the counters, and
    // consistent in itself.
    let flood = Flood::start(b.dns_udp);
    let mut first = None;
    for _ in 0..30 {
        let seen = dns_seen(&scrape(&b).await.1);
        assert!(seen.timed >= seen.counted, "the histogram is behind the counters: {} < {}", seen.timed, seen.counted);
        assert_eq!(seen.inf, seen.timed);
        assert!(seen.buckets.windows(2).all(|w| w[0] <= w[1]), "buckets not cumulative: {:?}", seen.buckets);
        first.get_or_insert(seen.counted);
    }
    drop(flood);
    // The flood's queries all went the fast path, in order on one socket: once a last query is
    // answered, everything before it is counted.
    let start = Instant::now();
    while exchange_udp(b.dns_udp, &asks[0].0.to_bytes()).await.is_none() {
        assert!(start.elapsed() < DEADLINE, "the server no longer answers");
    }
    let seen = dns_seen(&scrape(&b).await.1);
    assert!(first.is_some_and(|f| seen.counted > f + 100.0), "the flood ran: {:?} then {}", first, seen.counted);
    assert_eq!((seen.timed, seen.inf), (seen.counted, seen.counted));
}

#[tokio::test]
async fn promtool_finds_nothing_after_dns_api_probe_and_zone_traffic() {
    let (zones, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(zones.path().join("web.toml"), WEB).unwrap();
    // A closed port upstream, so that a forwarded query fails quickly.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = data.path().join("signpost.toml");
    std::fs::write(&config, format!("[dns]\nupstreams = [\"{closed}\"]\nupstream_timeout = \"200ms\"\n")).unwrap();
    let b = serve(zones.path(), data.path(), &["--config", config.to_str().unwrap()]);
    let fresh: BTreeSet<String> = scrape(&b).await.1.into_keys().collect();

    // API: a registration with an HTTP check on a real target, a rejected one, reads, a 404.
    let target = Target::start(200).await;
    let http = http_client();
    let api = |path: &str| format!("http://{}{path}", b.http);
    let body = json!({ "ID": "api-1", "Name": "api", "Address": "127.0.0.1", "Port": 9000,
        "Check": { "HTTP": format!("http://{}/health", target.addr), "Interval": "1h" } });
    let resp = http.put(api("/v1/agent/service/register")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.put(api("/v1/agent/service/register")).json(&json!({ "Port": 1 })).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    for path in ["/v1/catalog/services", "/v1/health/service/api", "/v1/catalog/service/web"] {
        assert_eq!(http.get(api(path)).send().await.unwrap().status(), 200, "{path}");
    }
    assert_eq!(http.get(api("/no/such/route")).send().await.unwrap().status(), 404);

    // DNS: the fast path, the full handler over UDP and TCP, a negative answer, a forward.
    let plain = Ask { edns_payload: None, ..Ask::new("web.service.local.", RecordType::A) };
    assert_eq!(addresses(&query(b.dns_udp, Transport::Udp, &plain).await).len(), 2);
    query(b.dns_udp, Transport::Tcp, &Ask::new("web.service.local.", RecordType::SRV)).await;
    query(b.dns_udp, Transport::Udp, &Ask::new("local.", RecordType::SOA)).await;
    let nx = query(b.dns_udp, Transport::Udp, &Ask::new("missing.service.local.", RecordType::A)).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let outside = query(b.dns_udp, Transport::Udp, &Ask::new("www.example.com.", RecordType::A)).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::ServFail);

    // Zone files: one added, one broken.
    let db = "[[service]]\nname = \"db\"\n[[service.instance]]\nid = \"db-1\"\naddress = \"10.0.0.3\"\nport = 5432\n";
    std::fs::write(zones.path().join(".db.tmp"), db).unwrap();
    std::fs::rename(zones.path().join(".db.tmp"), zones.path().join("db.toml")).unwrap();
    std::fs::write(zones.path().join("bad.toml"), "[[service]]\nname = 7\n").unwrap();

    let start = Instant::now();
    let text = loop {
        let (text, m) = scrape(&b).await;
        let is = |series: &str, want: f64| m.get(series) == Some(&want);
        if is("signpost_probes_total{kind=\"http\",result=\"passing\"}", 1.0)
            && is("signpost_zone_reloads_total{result=\"ok\"}", 1.0)
            && is("signpost_zone_reloads_total{result=\"error\"}", 1.0)
            && is("signpost_dns_forwarded_total{outcome=\"failed\"}", 1.0)
        {
            break text;
        }
        assert!(start.elapsed() < DEADLINE, "the probe, the reloads and the forward are never all counted: {m:#?}");
    };

    let mut lint = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs prometheus)");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = lint.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
    }
    let out = lint.wait_with_output().await.unwrap();
    let findings = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && findings.trim().is_empty(), "promtool: {findings}\n{text}");

    // The traffic added series only to the families whose label values are open.
    let now: BTreeSet<String> = parse_prometheus(&text).into_keys().collect();
    let new: Vec<&String> = now.difference(&fresh).filter(|s| !LAZY.iter().any(|l| s.starts_with(l))).collect();
    assert!(new.is_empty(), "series that were not there from the start: {new:#?}");
}
