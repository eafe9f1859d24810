//! Operations, against the built binary (its own process, so its metrics count only this
//! test's traffic): `/metrics` after known traffic, graceful shutdown under a stream of DNS
//! queries, the second signal, logs as text and JSON, and log filters.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::binary::{self, Binary, repo_zones};
use crate::support::{Ask, DEADLINE};

/// One HTTP/1.0 exchange over a plain socket (these tests run on std threads).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A scrape: `name{label="value",...}` → value, labels in the order rendered.
pub fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, head, body) = http(addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    parse_prometheus(&body)
}

pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        out.insert(series.to_string(), value);
    }
    out
}

/// The value of one series, 0 when absent (the DNS and HTTP request series show with their
/// first count).
fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Scrapes until `check` holds; panics after the deadline.
fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let start = Instant::now();
    loop {
        let m = scrape(addr);
        if check(&m) {
            return m;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}; last scrape: {m:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn udp_query(server: SocketAddr, name: &str) -> Option<Message> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(&Ask::new(name, RecordType::A).to_bytes(), server).unwrap();
    let mut buf = [0; 4096];
    let n = s.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn serve_in(zones: &std::path::Path, data: &std::path::Path, extra: &[&str]) -> Binary {
    let mut args = vec!["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap()];
    args.extend(["--data-dir", data.to_str().unwrap()]);
    args.extend(extra);
    Binary::serve(&args, &[])
}

#[test]
fn metrics_count_the_traffic() {
    let zones = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        zones.path().join("web.toml"),
        "[[service]]\nname = \"web\"\n[[service.instance]]\nid = \"web-1\"\naddress = \"10.0.0.1\"\nport = 80\n",
    )
    .unwrap();
    let b = serve_in(zones.path(), data.path(), &[]);

    // Two registrations with a TCP check each: one probe at once, the next an hour away.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    for id in ["api-1", "api-2"] {
        let body = format!(
            r#"{{"ID":"{id}","Name":"api","Address":"127.0.0.1","Port":9000,"Check":{{"TCP":"127.0.0.1:{port}","Interval":"1h"}}}}"#
        );
        let (status, head, _) = http(b.http, "PUT", "/v1/agent/service/register", &body);
        assert_eq!(status, 200, "{head}");
    }
    for _ in 0..3 {
        assert_eq!(http(b.http, "GET", "/v1/catalog/services", "").0, 200);
    }
    assert_eq!(http(b.http, "GET", "/no/such/route", "").0, 404);
    // A zone file added, then a broken one.
    std::fs::write(
        zones.path().join(".db.tmp"),
        "[[service]]\nname = \"db\"\n[[service.instance]]\nid = \"db-1\"\naddress = \"10.0.0.2\"\nport = 5432\n",
    )
    .unwrap();
    std::fs::rename(zones.path().join(".db.tmp"), zones.path().join("db.toml")).unwrap();
    let start = Instant::now();
    while udp_query(b.dns_udp, "db.service.local.").is_none_or(|m| m.answers.is_empty()) {
        assert!(start.elapsed() < DEADLINE, "the new zone file is never served");
    }
    std::fs::write(zones.path().join("bad.toml"), "[[service]]\nname = 7\n").unwrap();
    let mut answered = 0;
    for _ in 0..5 {
        answered += udp_query(b.dns_udp, "web.service.local.").is_some() as u32;
    }

    // Every DNS answer is counted (most of these by the fast path, just before it sends).
    let web = r#"signpost_dns_queries_total{qtype="A",rcode="NOERROR",proto="udp"}"#;
    let m = scrape_until(b.http, "two passing probes, the broken zone file, the DNS answers", |m| {
        value(m, web) >= f64::from(answered)
            && value(m, r#"signpost_probes_total{kind="tcp",result="passing"}"#) == 2.0
            && value(m, r#"signpost_zone_reloads_total{result="error"}"#) == 1.0
            && value(m, r#"signpost_instances{status="passing"}"#) == 4.0
    });
    let put = r#"signpost_http_requests_total{method="PUT",route="/v1/agent/service/register",status="200"}"#;
    assert_eq!(value(&m, put), 2.0, "{m:#?}");
    let get = r#"signpost_http_requests_total{method="GET",route="/v1/catalog/services",status="200"}"#;
    assert_eq!(value(&m, get), 3.0);
    assert_eq!(value(&m, r#"signpost_http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0);
    assert_eq!(value(&m, r#"signpost_http_request_duration_seconds_count{route="/v1/catalog/services"}"#), 3.0);
    assert_eq!(value(&m, r#"signpost_probe_duration_seconds_count{kind="tcp"}"#), 2.0);
    assert_eq!(value(&m, r#"signpost_zone_reloads_total{result="ok"}"#), 1.0, "{m:#?}");
    assert_eq!(value(&m, r#"signpost_checks{status="passing"}"#), 2.0);
    assert_eq!(value(&m, r#"signpost_instances{status="critical"}"#), 0.0);
    // Registrations and the checks' first results are written; nothing failed.
    assert!(value(&m, r#"signpost_store_writes_total{result="ok"}"#) >= 2.0, "{m:#?}");
    assert_eq!(value(&m, r#"signpost_store_writes_total{result="error"}"#), 0.0);
    assert!(value(&m, "signpost_store_write_duration_seconds_count") >= 2.0);
    assert!(value(&m, "signpost_registry_version") >= 2.0);
    assert!(answered > 0, "the server answers");
    // A DNS series shows only once something was counted in it.
    let dns: Vec<_> = m.iter().filter(|(k, _)| k.starts_with("signpost_dns_queries_total{")).collect();
    assert!(dns.iter().all(|(_, v)| **v > 0.0), "series that never counted: {dns:?}");
}

/// A stream of UDP queries, each with its own id, sent and answered on one socket.
struct QueryStream {
    sent: Arc<Mutex<Vec<(u16, Instant)>>>,
    answered: Arc<Mutex<HashSet<u16>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl QueryStream {
    fn start(server: SocketAddr, name: &str) -> QueryStream {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let recv = socket.try_clone().unwrap();
        let template = Ask::new(name, RecordType::A).to_bytes();
        let (sent, answered, stop) = (Arc::default(), Arc::default(), Arc::new(AtomicBool::new(false)));
        let (s, st) = (Arc::clone(&sent), Arc::clone(&stop));
        let sender = std::thread::spawn(move || {
            let s: Arc<Mutex<Vec<(u16, Instant)>>> = s;
            for id in 0u16.. {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let mut q = template.clone();
                q[..2].copy_from_slice(&id.to_be_bytes());
                let at = Instant::now();
                if socket.send_to(&q, server).is_err() {
                    break;
                }
                s.lock().unwrap().push((id, at));
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        let (a, st) = (Arc::clone(&answered), Arc::clone(&stop));
        let receiver = std::thread::spawn(move || {
            let a: Arc<Mutex<HashSet<u16>>> = a;
            let mut buf = [0; 4096];
            // Keep reading a while after `stop`, for answers still on their way.
            let mut quiet_since: Option<Instant> = None;
            loop {
                match recv.recv(&mut buf) {
                    Ok(n) if n >= 12 => {
                        let m = Message::from_vec(&buf[..n]).expect("answers parse");
                        assert!(!m.answers.is_empty(), "a full answer, not an error: {m:?}");
                        a.lock().unwrap().insert(m.metadata.id);
                        quiet_since = None;
                    }
                    _ if st.load(Ordering::Relaxed) => {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(300) {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        });
        QueryStream { sent, answered, stop, threads: vec![sender, receiver] }
    }

    fn sent_count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }

    /// Stops the stream; returns the queries sent before `cutoff` that got no answer, and how
    /// many were sent before it.
    fn finish(self, cutoff: Instant) -> (Vec<u16>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let answered = self.answered.lock().unwrap();
        let before: Vec<u16> =
            self.sent.lock().unwrap().iter().filter(|(_, at)| *at < cutoff).map(|(id, _)| *id).collect();
        let missing = before.iter().copied().filter(|id| !answered.contains(id)).collect();
        (missing, before.len())
    }
}

#[test]
fn sigterm_answers_every_query_sent_before_it_and_exits_within_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let mut b = serve_in(&repo_zones(), data.path(), &[]);
    let stream = QueryStream::start(b.dns_udp, "payment-service.service.local.");
    let start = Instant::now();
    while stream.sent_count() < 200 {
        assert!(start.elapsed() < DEADLINE, "the query stream does not run");
        std::thread::yield_now();
    }
    // A blocking query waiting for a change that never comes: shutdown answers it at once.
    let index = http(b.http, "GET", "/v1/catalog/services", "").1;
    let index = index.lines().find_map(|l| l.strip_prefix("X-Consul-Index: ").or(l.strip_prefix("x-consul-index: ")));
    let path = format!("/v1/catalog/services?index={}&wait=30s", index.expect("X-Consul-Index").trim());
    let api = b.http;
    let blocking = std::thread::spawn(move || http(api, "GET", &path, "").0);
    assert_eq!(http(b.http, "GET", "/readyz", "").0, 200);

    let signalled = Instant::now();
    b.signal("TERM");
    let mut readyz = http(b.http, "GET", "/readyz", "").0;
    while readyz == 200 {
        readyz = http(b.http, "GET", "/readyz", "").0;
    }
    assert_eq!(readyz, 503, "readiness turns off while the API still answers");
    assert!(signalled.elapsed() < Duration::from_millis(500), "/readyz turned 503 late: {:?}", signalled.elapsed());
    assert_eq!(blocking.join().unwrap(), 200, "the blocking query is answered, not cut");

    let status = b.wait_exit(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    let (missing, before) = stream.finish(signalled);
    assert!(before >= 200);
    assert!(missing.is_empty(), "{} of {before} queries sent before SIGTERM unanswered: {missing:?}", missing.len());
    assert!(took >= Duration::from_secs(1), "DNS kept serving for the 1 s drain; stopped after {took:?}");
    let log: Vec<String> = b.log.try_iter().map(|l| binary::message(&l)).collect();
    for m in ["shutting down", "not ready; draining", "stopped"] {
        assert!(log.iter().any(|l| l.starts_with(m)), "no {m:?} in {log:#?}");
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("signpost.toml");
    std::fs::write(&config, "[shutdown]\ngrace = \"30s\"\ndrain = \"20s\"\n").unwrap();
    let mut b = serve_in(&repo_zones(), data.path(), &["--config", config.to_str().unwrap()]);
    b.signal("TERM");
    while http(b.http, "GET", "/readyz", "").0 == 200 {}
    let second = Instant::now();
    b.signal("INT");
    let status = b.wait_exit(Duration::from_secs(1));
    assert!(!status.success(), "an interrupted shutdown is not a clean exit: {status:?}");
    assert!(second.elapsed() < Duration::from_millis(500), "{:?}", second.elapsed());
}

#[test]
fn json_logs_are_one_object_per_line_with_the_text_messages() {
    let data = tempfile::tempdir().unwrap();
    let text = serve_in(&repo_zones(), data.path(), &[]);
    let data = tempfile::tempdir().unwrap();
    let json = serve_in(&repo_zones(), data.path(), &["--log-format", "json"]);
    let words = |log: &[String]| -> Vec<String> {
        // The message up to its first address or number, which differ between the two runs.
        log.iter().map(|l| binary::message(l).split([' ']).take(2).collect::<Vec<_>>().join(" ")).collect()
    };
    for line in &json.startup_log {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string() && v["target"].is_string(), "{line}");
        assert!(v["message"].is_string(), "the message is a top-level key: {line}");
    }
    let store = json.startup_log.iter().find(|l| l.contains("store opened")).unwrap();
    let v: serde_json::Value = serde_json::from_str(store).unwrap();
    assert_eq!(v["message"], "store opened");
    assert_eq!(v["instances"], 0, "structured fields stay typed: {store}");
    assert_eq!(words(&text.startup_log), words(&json.startup_log));
}

#[test]
fn log_level_and_rust_log_filter_the_log() {
    // `signpost::app=info` keeps the app's lines (`listening`, `ready`) and drops the others'.
    let quiet = "warn,signpost::app=info";
    let run = |args: &[&str], env: &[(&str, &str)]| -> Vec<String> {
        let data = tempfile::tempdir().unwrap();
        let zones = repo_zones();
        let mut all = vec!["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap()];
        all.extend(["--data-dir", data.path().to_str().unwrap(), "--upstream", "192.0.2.53"]);
        all.extend(args);
        let b = Binary::serve(&all, env);
        b.startup_log.iter().map(|l| binary::message(l)).collect()
    };
    let forwarding = |log: &[String]| log.iter().any(|m| m.starts_with("forwarding names outside the domain"));
    assert!(forwarding(&run(&[], &[])), "info by default");
    assert!(!forwarding(&run(&["--log-level", quiet], &[])));
    assert!(!forwarding(&run(&[], &[("RUST_LOG", quiet)])));
    assert!(!forwarding(&run(&[], &[("SIGNPOST_LOG_LEVEL", quiet)])));
    assert!(forwarding(&run(&["--log-level", "info"], &[("RUST_LOG", quiet)])), "the flag beats RUST_LOG");
}

#[test]
fn healthcheck_subcommand_exits_0_on_a_live_server_and_1_otherwise() {
    let data = tempfile::tempdir().unwrap();
    let b = serve_in(&repo_zones(), data.path(), &[]);
    let run = |args: &[&str]| binary::signpost().arg("healthcheck").args(args).output().unwrap();
    let api = format!("http://{}", b.http);
    assert!(run(&["--api", &api]).status.success());
    assert!(run(&["--api", &api, "--ready"]).status.success());
    drop(b);
    let dead = run(&["--api", &api]);
    assert_eq!(dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dead.stderr).contains("unhealthy"), "{dead:?}");
}
