//! Cluster mode under faults, against a real 3-member etcd (tests/it/etcd.rs): a replica cut off
//! from etcd (through a loopback proxy the test cuts) while etcd compacts past its watch, the
//! etcd leader stopped during concurrent writes, a replica killed under write load. Every wait
//! is on a condition with a deadline.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::binary::{Binary, message};
use crate::etcd::Etcd;
use crate::support::*;

/// A TCP proxy on loopback in front of one etcd member; `cut` closes every connection through
/// it and refuses new ones until `restore`, as a network partition would look to the replica.
struct Proxy {
    addr: SocketAddr,
    /// Open or not, and the token that closes the connections of the current opening.
    state: Arc<Mutex<(bool, CancellationToken)>>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().1.cancel();
    }
}

impl Proxy {
    /// Runs on a thread and runtime of its own, so that a test blocked on a child's log lines
    /// does not stop it.
    fn start(target: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new((true, CancellationToken::new())));
        let stop = CancellationToken::new();
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let mut client = tokio::select! {
                        _ = st.cancelled() => return,
                        r = listener.accept() => match r { Ok((c, _)) => c, Err(_) => continue },
                    };
                    let (open, token) = s.lock().unwrap().clone();
                    if !open {
                        continue;
                    }
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(target).await else { return };
                        tokio::select! {
                            _ = token.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    });
                }
            });
        });
        Proxy { addr, state, stop }
    }

    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = false;
        state.1.cancel();
        state.1 = CancellationToken::new();
    }

    fn restore(&self) {
        self.state.lock().unwrap().0 = true;
    }
}

fn instance(id: &str, service: &str, addr: &str) -> serde_json::Value {
    json!({ "ID": id, "Name": service, "Address": addr, "Port": 80 })
}

/// One client for every request: building one costs tens of milliseconds in a debug build, which
/// would serialise a hundred concurrent writes on the test's thread.
fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(http_client)
}

async fn register(api: &str, body: &serde_json::Value) -> StatusCode {
    let url = format!("{api}/v1/agent/service/register");
    client().put(url).json(body).send().await.map(|r| r.status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

async fn a_records(dns: SocketAddr, name: &str) -> Vec<String> {
    addresses(&query(dns, Transport::Udp, &Ask::new(name, RecordType::A)).await)
}

async fn readyz(api: &str) -> (StatusCode, String) {
    let resp = client().get(format!("{api}/readyz")).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Waits for a log line of `b` whose message contains `text`; returns the line.
fn wait_log(b: &Binary, text: &str) -> String {
    let started = Instant::now();
    loop {
        let left = DEADLINE.checked_sub(started.elapsed()).unwrap_or_default();
        let line = b.log.recv_timeout(left).unwrap_or_else(|_| panic!("no log line saying {text:?}"));
        if message(&line).contains(text) {
            return line;
        }
    }
}

fn ids(s: &TestServer) -> BTreeSet<String> {
    s.registry.snapshot().instances().map(|v| v.instance.id.clone()).collect()
}

/// The store timeout of the cut-off replica: its writes answer 503 within it.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_replica_cut_off_from_etcd_keeps_answering_and_reloads_after_a_compaction_past_its_watch() {
    let etcd = Etcd::start(3).await;
    let proxy = Proxy::start(etcd.client_addr(0));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signpost.toml");
    let toml = format!("[store]\nurl = \"etcd://{}\"\ntimeout = \"2s\"\n", proxy.addr);
    std::fs::write(&config, toml).unwrap();
    let cut_off = Binary::serve(&["--config", config.to_str().unwrap(), "--dns-addr", "127.0.0.1:0"], &[]);
    let (api, dns) = (format!("http://{}", cut_off.http), cut_off.dns_udp);
    let other = server().config(&format!("[store]\nurl = \"{}\"\n", etcd.url())).start().await;
    assert_eq!(register(&api, &instance("before-1", "before", "10.3.0.1")).await, 200);
    assert_eq!(register(&other.api, &instance("gone-1", "gone", "10.3.0.2")).await, 200);
    wait_for("the cut-off replica sees gone-1", || async { a_records(dns, "gone.service.local.").await.len() == 1 })
        .await;
    assert_eq!(readyz(&api).await, (StatusCode::OK, "ready".to_string()));

    proxy.cut();
    wait_log(&cut_off, "lost the etcd watch");
    // DNS answers the last state; /readyz says degraded, and why; writes are refused in time.
    assert_eq!(a_records(dns, "before.service.local.").await, ["10.3.0.1"]);
    let (status, text) = readyz(&api).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.starts_with("degraded: no watch of etcd"), "{text}");
    let started = Instant::now();
    assert_eq!(register(&api, &instance("during-1", "during", "10.3.0.3")).await, 503);
    let took = started.elapsed();
    assert!(took < STORE_TIMEOUT + Duration::from_secs(1), "a write cut off from etcd took {took:?} to be refused");

    // Meanwhile the others go on, and etcd compacts past what the cut-off replica has seen.
    assert_eq!(register(&other.api, &instance("after-1", "after", "10.3.0.4")).await, 200);
    let resp = http_client().put(other.url("/v1/agent/service/deregister/gone-1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    etcd.compact(0, etcd.revision(0));

    proxy.restore();
    wait_log(&cut_off, "etcd compacted revisions this replica had not seen; reading everything again");
    wait_log(&cut_off, "reloaded the registry from etcd");
    wait_for("the cut-off replica converges", || async {
        a_records(dns, "after.service.local.").await == ["10.3.0.4"]
            && a_records(dns, "gone.service.local.").await.is_empty()
    })
    .await;
    wait_for("ready again", || async { readyz(&api).await == (StatusCode::OK, "ready".to_string()) }).await;
    // And it writes again.
    assert_eq!(register(&api, &instance("back-1", "back", "10.3.0.5")).await, 200);
    wait_for("the other replica sees back-1", || async { ids(&other).contains("back-1") }).await;
    println!("a write cut off from etcd was refused after {took:?} (store timeout {STORE_TIMEOUT:?})");
}

/// The try: 100 concurrent registrations over two replicas, the etcd leader stopped
/// after 30 answers; every write must land, none after the store timeout (5 s).
#[tokio::test]
async fn stopping_the_etcd_leader_during_concurrent_writes_refuses_none() {
    // bench/README's 20 rounds: `SIGNPOST_LEADER_ROUNDS=20 cargo test --features cluster leader`.
    let rounds: usize = std::env::var("SIGNPOST_LEADER_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    const WRITES: usize = 100;
    let mut etcd = Etcd::start(3).await;
    let (a, b) = (
        server().config(&format!("[store]\nurl = \"{}\"\n", etcd.url())).start().await,
        server().config(&format!("[store]\nurl = \"{}\"\n", etcd.url())).start().await,
    );
    let apis = Arc::new([a.api.clone(), b.api.clone()]);
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let leader = etcd.leader().await.expect("a leader");
        // Sent 5 ms apart rather than all at once: the group commit answers a burst of 100 in a
        // few transactions, all before the leader could be stopped after the 30th answer.
        let t0 = tokio::time::Instant::now();
        let writes: Vec<_> = (0..WRITES)
            .map(|i| {
                let (apis, answered) = (apis.clone(), answered.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(t0 + Duration::from_millis(5 * i as u64)).await;
                    let body = instance(&format!("l{round}-{i}"), "leader", &format!("10.2.{round}.{}", i + 1));
                    let started = Instant::now();
                    let status = register(&apis[i % 2], &body).await;
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (status, started.elapsed())
                })
            })
            .collect();
        wait_for("30 answers", || async { answered.load(std::sync::atomic::Ordering::SeqCst) >= 30 }).await;
        etcd.stop(leader);
        let in_flight = WRITES - answered.load(std::sync::atomic::Ordering::SeqCst);
        assert!(in_flight >= WRITES / 2, "round {round}: only {in_flight} writes left when the leader stopped");
        let mut refused = Vec::new();
        let mut round_slowest = Duration::ZERO;
        for (i, w) in writes.into_iter().enumerate() {
            let (status, took) = w.await.unwrap();
            round_slowest = round_slowest.max(took);
            if status != 200 {
                refused.push(format!("l{round}-{i}: {status} after {took:?}"));
            }
        }
        assert!(refused.is_empty(), "round {round}: writes refused with the leader stopped: {refused:#?}");
        slowest = slowest.max(round_slowest);
        println!(
            "round {round}: {in_flight} writes not yet answered when the leader stopped; the slowest took {round_slowest:?}"
        );
        etcd.restart(leader).await;
    }
    println!("the etcd leader stopped during {WRITES} writes, {rounds} rounds: none refused, slowest {slowest:?}");
    // Alone on the 2-core machine, 20 rounds: the slowest 2.5 s, etcd's election (its timeout is
    // 1 s) most of it (the target is 3 s: bench/README). What must hold anywhere, the suite's
    // load included: no write waited for the store timeout.
    assert!(slowest < Duration::from_secs(5), "slowest write {slowest:?} (store timeout 5 s)");
    let all: BTreeSet<String> = (0..rounds).flat_map(|r| (0..WRITES).map(move |i| format!("l{r}-{i}"))).collect();
    for s in [&a, &b] {
        wait_for("every write on both replicas", || async { ids(s) == all }).await;
    }
}

/// Every registration a replica acknowledged is in etcd: the survivor has them all after the
/// replica is killed mid-stream.
#[tokio::test]
async fn a_replica_killed_under_write_load_loses_no_acknowledged_write() {
    let etcd = Etcd::start(3).await;
    let zones = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let args = ["--store", &url, "--dns-addr", "127.0.0.1:0", "--zones", zones.path().to_str().unwrap()];
    let victim = Binary::serve(&args, &[]);
    let survivor = server().config(&format!("[store]\nurl = \"{url}\"\n")).start().await;
    let api = format!("http://{}", victim.http);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (api, acked, stop) = (api.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if stop.is_cancelled() {
                        return;
                    }
                    let id = format!("k{w}-{i}");
                    if register(&api, &instance(&id, "killed", &format!("10.1.{w}.{}", i % 250 + 1))).await == 200 {
                        acked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    wait_for("200 acknowledged writes", || async { acked.lock().unwrap().len() >= 200 }).await;
    drop(victim); // SIGKILL, mid-stream
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    wait_for("every acknowledged write on the survivor", || async { ids(&survivor).is_superset(&acked) }).await;
    // And in etcd itself, as a replica started now reads it.
    let fresh = server().config(&format!("[store]\nurl = \"{url}\"\n")).start().await;
    let stored = ids(&fresh);
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but not in etcd: {missing:?}");
    println!("{} writes acknowledged before the kill, all in etcd", acked.len());
}
