//! Cluster mode against a real 3-member etcd (tests/it/etcd.rs): replicas in this process (or,
//! to kill one, the built binary), writes through one replica read back through another's DNS,
//! check takeover, etcd members and then all of etcd going away and coming back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::json;

use crate::binary::Binary;
use crate::etcd::Etcd;
use crate::health::Target;
use crate::support::*;

/// The lease period (the default): a dead replica's checks move within two of these.
const LEASE: Duration = Duration::from_secs(5);
/// The write timeout (the default): with etcd down, a write answers 503 within it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

async fn replica(etcd: &Etcd) -> TestServer {
    server().config(&format!("[store]\nurl = \"{}\"\n", etcd.url())).start().await
}

fn instance(id: &str, service: &str, addr: &str) -> serde_json::Value {
    json!({ "ID": id, "Name": service, "Address": addr, "Port": 80 })
}

async fn register(s: &TestServer, body: &serde_json::Value) -> (StatusCode, String) {
    let resp = http_client().put(s.url("/v1/agent/service/register")).json(body).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn put(s: &TestServer, path: &str) -> (StatusCode, String) {
    let resp = http_client().put(s.url(path)).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn a_records(dns: std::net::SocketAddr, name: &str) -> Vec<String> {
    addresses(&query(dns, Transport::Udp, &Ask::new(name, RecordType::A)).await)
}

fn ids(s: &TestServer) -> BTreeSet<String> {
    s.registry.snapshot().instances().map(|v| v.instance.id.clone()).collect()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test]
async fn a_write_on_one_replica_is_in_another_replicas_dns_within_a_second() {
    let etcd = Etcd::start(3).await;
    let (a, b) = (replica(&etcd).await, replica(&etcd).await);
    let mut delays = Vec::new();
    for i in 0..50 {
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let addr = format!("10.9.0.{}", i + 1);
        let name = format!("prop-{i}.service.local.");
        assert_eq!(register(writer, &instance(&format!("prop-{i}"), &format!("prop-{i}"), &addr)).await.0, 200);
        let acked = Instant::now();
        loop {
            if a_records(reader.dns, &name).await == [addr.as_str()] {
                break;
            }
            assert!(acked.elapsed() < DEADLINE, "write {i} never reached the other replica");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push(acked.elapsed());
    }
    delays.sort();
    let (p50, p99) = (quantile(&delays, 0.5), quantile(&delays, 0.99));
    println!(
        "propagation from the write's 200 on one replica to the other's DNS answer over 50 writes: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays[49]
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}

#[tokio::test]
async fn a_ttl_heartbeat_sent_to_any_replica_counts_on_all() {
    let etcd = Etcd::start(3).await;
    let (a, b) = (replica(&etcd).await, replica(&etcd).await);
    let body = json!({ "ID": "beat-1", "Name": "beat", "Address": "10.8.0.1", "Port": 80,
        "Check": { "TTL": "2s", "Status": "passing" } });
    assert_eq!(register(&a, &body).await.0, 200);
    let name = "beat.service.local.";
    wait_for("b answers beat", || async { a_records(b.dns, name).await == ["10.8.0.1"] }).await;
    // Heartbeats alternate between the replicas, each 0.5 s, for three TTLs: whichever replica
    // owns the check hears all of them.
    for round in 0..12 {
        let s = if round % 2 == 0 { &a } else { &b };
        assert_eq!(put(s, "/v1/agent/check/pass/service:beat-1").await.0, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for s in [&a, &b] {
            assert_eq!(a_records(s.dns, name).await, ["10.8.0.1"], "round {round}: the check stayed passing");
        }
    }
    // Heartbeats stop: critical on both within the TTL and a second.
    let stopped = Instant::now();
    for s in [&a, &b] {
        wait_for("beat critical", || async { a_records(s.dns, name).await.is_empty() }).await;
    }
    assert!(stopped.elapsed() < Duration::from_secs(4), "{:?}", stopped.elapsed());
}

#[tokio::test]
async fn the_checks_of_a_killed_replica_are_taken_over() {
    let etcd = Etcd::start(3).await;
    let target = Target::start(200).await;
    let zones = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let args = ["--store", &url, "--dns-addr", "127.0.0.1:0", "--zones", zones.path().to_str().unwrap()];
    let mut replicas = [Some(Binary::serve(&args, &[])), Some(Binary::serve(&args, &[]))];
    let apis: Vec<String> = replicas.iter().map(|r| format!("http://{}", r.as_ref().unwrap().http)).collect();
    let dns: Vec<_> = replicas.iter().map(|r| r.as_ref().unwrap().dns_udp).collect();
    let http = http_client();
    let body = json!({ "ID": "owned-1", "Name": "owned", "Address": "10.7.0.1", "Port": 80,
        "Check": { "HTTP": format!("http://{}/health", target.addr), "Interval": "200ms", "Timeout": "1s",
                   "FailuresBeforeCritical": 1 } });
    let resp = http.put(format!("{}/v1/agent/service/register", apis[0])).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let name = "owned.service.local.";
    for d in &dns {
        wait_for("owned passing", || async { a_records(*d, name).await == ["10.7.0.1"] }).await;
    }
    // Exactly one replica probes it, once both see each other.
    let probed = |i: usize| {
        let (http, api) = (http.clone(), apis[i].clone());
        async move {
            let text = http.get(format!("{api}/metrics")).send().await.unwrap().text().await.unwrap();
            text.lines().find_map(|l| l.strip_prefix("signpost_checks_probed ")).map(|v| v.trim().to_string())
        }
    };
    let started = Instant::now();
    let owner = loop {
        match (probed(0).await.as_deref(), probed(1).await.as_deref()) {
            (Some("1"), Some("0")) => break 0,
            (Some("0"), Some("1")) => break 1,
            counts => assert!(started.elapsed() < DEADLINE, "no single owner: {counts:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let survivor = 1 - owner;
    let hits_before = target.hits();
    // kill -9 the owner: it cannot hand over; its lease has to run out.
    drop(replicas[owner].take());
    let killed = Instant::now();
    target.set(500);
    loop {
        if a_records(dns[survivor], name).await.is_empty() {
            break;
        }
        assert!(killed.elapsed() < 2 * LEASE + Duration::from_secs(2), "the check was not taken over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let takeover = killed.elapsed();
    println!(
        "takeover: the survivor reported the killed replica's check critical {takeover:?} after the kill (lease {LEASE:?})"
    );
    assert!(takeover < 2 * LEASE, "{takeover:?}");
    assert!(target.hits() > hits_before);
    assert_eq!(probed(survivor).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn stopping_one_etcd_member_during_registrations_loses_none() {
    let mut etcd = Etcd::start(3).await;
    let (a, b) = (replica(&etcd).await, replica(&etcd).await);
    let urls = Arc::new([a.url("/v1/agent/service/register"), b.url("/v1/agent/service/register")]);
    let acked = Arc::new(AtomicUsize::new(0));
    const WRITERS: usize = 4;
    const EACH: usize = 75;
    let mut streams = Vec::new();
    for w in 0..WRITERS {
        let (urls, acked) = (urls.clone(), acked.clone());
        streams.push(tokio::spawn(async move {
            let http = http_client();
            let mut failures = Vec::new();
            for i in 0..EACH {
                let id = format!("s{w}-{i}");
                let body = instance(&id, "stream", &format!("10.6.{w}.{}", i + 1));
                let resp = http.put(&urls[(w + i) % 2]).json(&body).send().await.unwrap();
                if resp.status() != 200 {
                    failures.push(format!("{id}: {} {}", resp.status(), resp.text().await.unwrap()));
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    wait_for("a third of the stream", || async { acked.load(Ordering::SeqCst) >= WRITERS * EACH / 3 }).await;
    // The leader, to make it hard: the others have to elect a new one mid-stream.
    let leader = etcd.leader().await.unwrap_or(0);
    etcd.stop(leader);
    let stopped_at = acked.load(Ordering::SeqCst);
    for s in streams {
        let failures = s.await.unwrap();
        assert!(failures.is_empty(), "writes failed with one etcd member down: {failures:#?}");
    }
    assert!(stopped_at < WRITERS * EACH, "the member stopped during the stream");
    let expected: BTreeSet<String> = (0..WRITERS).flat_map(|w| (0..EACH).map(move |i| format!("s{w}-{i}"))).collect();
    for s in [&a, &b] {
        wait_for("every registration on both replicas", || async { ids(s) == expected }).await;
    }
    let m = b.tcp("stream.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m).len(), WRITERS * EACH);
    etcd.restart(leader).await;
}

#[tokio::test]
async fn with_etcd_down_dns_answers_and_writes_fail_then_everything_resumes() {
    let mut etcd = Etcd::start(3).await;
    let (a, b) = (replica(&etcd).await, replica(&etcd).await);
    assert_eq!(register(&a, &instance("before-1", "before", "10.5.0.1")).await.0, 200);
    wait_for("b answers before", || async { a_records(b.dns, "before.service.local.").await == ["10.5.0.1"] }).await;

    for i in 0..3 {
        etcd.stop(i);
    }
    // DNS answers from the last state, on both.
    for s in [&a, &b] {
        assert_eq!(a_records(s.dns, "before.service.local.").await, ["10.5.0.1"]);
    }
    // Writes fail within the timeout, with a message that says why.
    let started = Instant::now();
    let (status, text) = register(&b, &instance("during-1", "during", "10.5.0.2")).await;
    let took = started.elapsed();
    println!("with etcd down a write answered {status} after {took:?}: {text}");
    assert_eq!(status, 503);
    assert!(text.contains("etcd") && text.contains("nothing was changed"), "{text}");
    assert!(took < WRITE_TIMEOUT + Duration::from_secs(1), "{took:?}");
    assert_eq!(put(&a, "/v1/agent/service/deregister/before-1").await.0, 503);
    for s in [&a, &b] {
        assert_eq!(
            a_records(s.dns, "before.service.local.").await,
            ["10.5.0.1"],
            "still answered after the failed writes"
        );
        assert!(a_records(s.dns, "during.service.local.").await.is_empty());
    }

    etcd.restart_all().await;
    // Writes work again on both, and both replicas converge.
    assert_eq!(register(&a, &instance("after-1", "after", "10.5.0.3")).await.0, 200);
    assert_eq!(register(&b, &instance("after-2", "after", "10.5.0.4")).await.0, 200);
    for s in [&a, &b] {
        wait_for("both after-* everywhere", || async {
            let mut got = a_records(s.dns, "after.service.local.").await;
            got.sort();
            got == ["10.5.0.3", "10.5.0.4"]
        })
        .await;
    }
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(ids(&a), ["after-1", "after-2", "before-1"].map(String::from).into_iter().collect());
}

#[tokio::test]
async fn a_restarted_replica_has_the_whole_registry_before_ready() {
    let etcd = Etcd::start(3).await;
    let (a, b) = (replica(&etcd).await, replica(&etcd).await);
    let mut expected = BTreeSet::new();
    for i in 0..100 {
        let id = format!("r-{i}");
        assert_eq!(register(&a, &instance(&id, "restart", &format!("10.4.0.{}", i + 1))).await.0, 200);
        expected.insert(id);
    }
    wait_for("b has them all", || async { ids(&b) == expected }).await;
    b.stop().await;
    // While b is away: more registrations, and some removed.
    for i in 100..200 {
        let id = format!("r-{i}");
        assert_eq!(register(&a, &instance(&id, "restart", &format!("10.4.1.{}", i - 99))).await.0, 200);
        expected.insert(id);
    }
    for i in 0..10 {
        assert_eq!(put(&a, &format!("/v1/agent/service/deregister/r-{i}")).await.0, 200);
        expected.remove(&format!("r-{i}"));
    }
    let b = replica(&etcd).await;
    // `start` returned: the replica is ready, and already has everything.
    assert_eq!(ids(&b), expected);
    // The version follows etcd's revision: never behind what the other replica wrote.
    assert!(b.registry.snapshot().version >= a.registry.snapshot().version);
    assert_eq!(a_records(b.dns, "r-150.instance.local.").await, ["10.4.1.51"]);
    assert!(a_records(b.dns, "r-5.instance.local.").await.is_empty());
}

/// Replicas share the cookie secrets' seed through etcd: a client's server cookie from one
/// replica is valid at another (a client that moves between them keeps its proof of address).
#[tokio::test]
async fn replicas_accept_each_others_cookies() {
    use crate::edns::{STRICT_RRL, cookie_exempts, cookie_from};
    let etcd = Etcd::start(3).await;
    let config = format!("{STRICT_RRL}\n[store]\nurl = \"{}\"\n", etcd.url());
    let zone = "[[service]]\nname = \"web\"\n\n[[service.instance]]\nid = \"w1\"\naddress = \"10.0.0.1\"\nport = 80\n";
    let a = server().zone("web.toml", zone).config(&config).start().await;
    let b = server().zone("web.toml", zone).config(&config).start().await;
    let cookie = cookie_from(a.dns).await;
    assert!(cookie_exempts(b.dns, &cookie).await, "replica b accepts replica a's cookie");
    assert!(!cookie_exempts(b.dns, &[7; 8]).await, "a client cookie alone is limited there");
}
