//! Crash safety, black-box: 64 clients register concurrently into the built binary, which is
//! killed with SIGKILL the moment the planned number of registrations has been acknowledged
//! (more are still in flight); a new process over the same data dir must hold every
//! registration, check and heartbeat that was answered 200.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::binary::Binary;
use crate::support::{self, Ask, Transport};

const CLIENTS: usize = 64;
/// Registrations acknowledged before the kill.
const ACKNOWLEDGED: usize = 2_000;
/// Registrations attempted: the ones past `ACKNOWLEDGED` are in flight when the kill comes.
const ATTEMPTED: usize = 2_400;

fn body(i: usize) -> Value {
    let mut checks = vec![json!({"TTL": "1h"})];
    if i.is_multiple_of(4) {
        // A second check, probed at once (nothing listens on port 1) and then hourly.
        checks.push(json!({"HTTP": "http://127.0.0.1:1/health", "Interval": "1h"}));
    }
    json!({
        "Name": format!("crash-{}", i % 20),
        "ID": format!("inst-{i}"),
        "Address": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        "Port": 1000 + i % 1000,
        "Tags": ["crash"],
        "Checks": checks,
    })
}

/// What the clients were told: registrations and heartbeats answered 200.
#[derive(Default)]
struct Acked {
    registered: std::sync::Mutex<BTreeSet<usize>>,
    passed: std::sync::Mutex<BTreeSet<usize>>,
    count: AtomicUsize,
}

async fn client(api: String, next: Arc<AtomicUsize>, acked: Arc<Acked>, enough: Arc<Notify>) {
    let http = support::http_client();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= ATTEMPTED {
            return;
        }
        let r = http.put(format!("{api}/v1/agent/service/register")).json(&body(i)).send().await;
        match r {
            Ok(r) if r.status() == 200 => {
                acked.registered.lock().unwrap().insert(i);
                if acked.count.fetch_add(1, Ordering::SeqCst) + 1 == ACKNOWLEDGED {
                    enough.notify_one();
                }
            }
            // The server is gone: this one was not acknowledged.
            _ => return,
        }
        if i.is_multiple_of(10) {
            match http.put(format!("{api}/v1/agent/check/pass/{}?note=alive", check_id(i))).send().await {
                Ok(r) if r.status() == 200 => {
                    acked.passed.lock().unwrap().insert(i);
                }
                _ => return,
            }
        }
    }
}

fn check_id(i: usize) -> String {
    if i.is_multiple_of(4) { format!("service:inst-{i}:1") } else { format!("service:inst-{i}") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_registration_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let data = dir.path().join("data");
    let args = ["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    let mut server = Binary::serve(&args, &[]);
    let api = format!("http://{}", server.http);

    let (next, acked, enough) = (Arc::new(AtomicUsize::new(0)), Arc::new(Acked::default()), Arc::new(Notify::new()));
    let start = Instant::now();
    let clients: Vec<_> =
        (0..CLIENTS).map(|_| tokio::spawn(client(api.clone(), next.clone(), acked.clone(), enough.clone()))).collect();
    tokio::time::timeout(Duration::from_secs(120), enough.notified()).await.expect("2,000 registrations in time");
    server.signal("KILL");
    let elapsed = start.elapsed();
    server.wait_exit(Duration::from_secs(10));
    for c in clients {
        c.await.unwrap();
    }
    let registered = acked.registered.lock().unwrap().clone();
    let passed = acked.passed.lock().unwrap().clone();
    let rate = ACKNOWLEDGED as f64 / elapsed.as_secs_f64();

    let server = Binary::serve(&args, &[]);
    let api = format!("http://{}", server.http);
    let http = support::http_client();
    let services: Value = http.get(format!("{api}/v1/agent/services")).send().await.unwrap().json().await.unwrap();
    let checks: Value = http.get(format!("{api}/v1/agent/checks")).send().await.unwrap().json().await.unwrap();
    let services = services.as_object().unwrap();
    let checks = checks.as_object().unwrap();

    let mut missing = Vec::new();
    for &i in &registered {
        let want = body(i);
        let id = format!("inst-{i}");
        let present = services.get(&id).is_some_and(|s| s["Address"] == want["Address"] && s["Port"] == want["Port"]);
        let checks_present = checks.contains_key(&check_id(i))
            && (!i.is_multiple_of(4) || checks.contains_key(&format!("service:inst-{i}:2")));
        if !present || !checks_present {
            missing.push(id);
        }
    }
    let not_passing: Vec<usize> =
        passed.iter().copied().filter(|&i| checks[&check_id(i)]["Status"] != "passing").collect();
    let recovered = registered.len() - missing.len();
    let unacknowledged = services.len().saturating_sub(registered.len());
    println!(
        "crash test: {} registrations acknowledged, {recovered} recovered ({} missing); {} heartbeats acknowledged, \
         {} recovered as passing; {unacknowledged} registrations in flight at the kill were stored too",
        registered.len(),
        missing.len(),
        passed.len(),
        passed.len() - not_passing.len(),
    );
    println!(
        "throughput: {rate:.0} registrations/s from {CLIENTS} concurrent clients, each answered after fsync \
         ({ACKNOWLEDGED} in {elapsed:.2?}, with {} heartbeats)",
        passed.len()
    );
    assert!(registered.len() >= ACKNOWLEDGED);
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(not_passing.is_empty(), "heartbeats acknowledged but not restored: {not_passing:?}");
    assert!(services.len() <= ATTEMPTED, "nothing is invented");

    // And DNS answers them after the restart: a passing one (no HTTP check), and its service.
    let sample = *passed.iter().find(|&&i| !i.is_multiple_of(4)).unwrap();
    let ask = Ask::new(&format!("inst-{sample}.instance.local."), RecordType::A);
    let m = support::query(server.dns_udp, Transport::Udp, &ask).await;
    assert_eq!(support::addresses(&m), [body(sample)["Address"].as_str().unwrap()]);
    let ask = Ask::new(&format!("crash-{}.service.local.", sample % 20), RecordType::A);
    let m = support::query(server.dns_udp, Transport::Udp, &ask).await;
    assert!(support::addresses(&m).contains(&body(sample)["Address"].as_str().unwrap().to_string()));
}
