//! Benchmarks of the registry through the built binary: registration throughput with 64
//! concurrent clients (every write durable), memory with many instances, restart time with them
//! stored, and DNS throughput while registrations churn the registry. Run through
//! `bench/registry.sh`; it prints one line per figure.
//!
//!     cargo run --release --example registry_bench -- BINARY [INSTANCES [SEED_ONLY_DIR]]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{Server, rss_mb};

fn start(binary: &str, data: &std::path::Path, zones: &std::path::Path) -> anyhow::Result<Server> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", "0", binary, "serve", "--dns-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--log-level", "info", "--data-dir"])
        .arg(data)
        .arg("--zones")
        .arg(zones);
    support::start(command, "")
}

/// Registers instances `from..to` of `services` services (instance i belongs to service
/// i mod `services`) with `clients` concurrent connections; returns registrations/s.
async fn register(api: &str, from: usize, to: usize, services: usize, clients: usize) -> anyhow::Result<f64> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, next, url) = (http.clone(), next.clone(), format!("{api}/v1/agent/service/register"));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return anyhow::Ok(());
                }
                let r = http.put(&url).json(&registration(i, services)).send().await?;
                anyhow::ensure!(r.status() == 200, "register {i}: {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((to - from) as f64 / started.elapsed().as_secs_f64())
}

/// Instance `i` of `services` services, each at its own address (10.0.0.0/8 by number).
fn registration(i: usize, services: usize) -> serde_json::Value {
    serde_json::json!({
        "Name": format!("svc{}", i % services), "ID": format!("i{i}"), "Address": address(i), "Port": 8080,
        "Tags": ["v1"], "Meta": { "version": "1.0" },
    })
}

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)
}

/// DNS QPS (dnsperf over 10 s) while nothing changes, then while registrations arrive at a
/// steady 100/s (each sent on time, whatever the previous ones are doing); two rounds, alternating,
/// because one 10 s run on a shared machine varies by a few percent. Returns (quiet QPS, busy
/// QPS, each the mean of its rounds; registrations completed per second; their p99 latency).
fn churn(
    runtime: &tokio::runtime::Runtime,
    server: &Server,
    queries: &std::path::Path,
) -> anyhow::Result<(f64, f64, f64, Duration)> {
    const ROUNDS: u32 = 2;
    let (mut quiet, mut busy, mut latencies) = (0.0, 0.0, Vec::new());
    for round in 0..ROUNDS {
        quiet += dnsperf(server.dns, queries, 10)? / f64::from(ROUNDS);
        let api = server.api.clone();
        let writes = runtime.spawn(async move {
            let http = reqwest::Client::new();
            let started = tokio::time::Instant::now();
            let mut sent = Vec::new();
            for n in 0..1000u64 {
                tokio::time::sleep_until(started + Duration::from_millis(10 * n)).await;
                let (http, api) = (http.clone(), api.clone());
                sent.push(tokio::spawn(async move {
                    let body = serde_json::json!({
                        "Name": "churn", "ID": format!("churn{}", n % 50),
                        "Address": format!("10.200.{round}.{}", n % 250), "Port": n % 60000,
                    });
                    let t = Instant::now();
                    let r = http.put(format!("{api}/v1/agent/service/register")).json(&body).send().await;
                    r.is_ok_and(|r| r.status() == 200).then(|| t.elapsed())
                }));
            }
            let mut latencies = Vec::new();
            for s in sent {
                latencies.extend(s.await.ok().flatten());
            }
            latencies
        });
        busy += dnsperf(server.dns, queries, 10)? / f64::from(ROUNDS);
        latencies.extend(runtime.block_on(writes)?);
    }
    latencies.sort();
    let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
    Ok((quiet, busy, latencies.len() as f64 / (10.0 * f64::from(ROUNDS)), p99))
}

fn dnsperf(dns: SocketAddr, queries: &std::path::Path, seconds: u32) -> anyhow::Result<f64> {
    let out = Command::new("taskset")
        .args([
            "-c",
            "1",
            "dnsperf",
            "-s",
            &dns.ip().to_string(),
            "-p",
            &dns.port().to_string(),
            "-c",
            "20",
            "-q",
            "500",
            "-T",
            "2",
        ])
        .args(["-l", &seconds.to_string(), "-d"])
        .arg(queries)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let qps =
        text.lines().find(|l| l.contains("Queries per second")).and_then(|l| l.split_whitespace().nth(3)?.parse().ok());
    qps.ok_or_else(|| anyhow::anyhow!("dnsperf said: {text}"))
}

/// Writes `n` API registrations of `services` services straight into a data dir, as if
/// registered earlier; instance i is `i<i>` as `register` would have made it.
fn seed(data: &std::path::Path, n: usize, services: usize) -> anyhow::Result<()> {
    use signpost::model::Stored;
    use signpost::model::{Address, Health, Instance, Source};
    use signpost::store::{Journal, Store};
    let (mut journal, _) = Journal::open(data)?;
    let records = (0..n)
        .map(|i| Stored {
            instance: Instance {
                id: format!("i{i}"),
                service: format!("svc{}", i % services),
                address: Address::Ip(address(i).parse().expect("ip")),
                port: 8080,
                tags: vec!["v1".into()],
                weight: 1,
                region: None,
                meta: [("version".to_string(), "1.0".to_string())].into(),
                checks: vec![],
                policy: Default::default(),
                source: Source::Api,
                node: None,
            },
            health: Health::default(),
        })
        .collect();
    journal.compact(2, records)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let binary = args.get(1).cloned().unwrap_or_else(|| "target/release/signpost".into());
    let total: usize = args.get(2).map_or(Ok(100_000), |s| s.parse())?;
    if let Some(dir) = args.get(3) {
        // Only write a data dir with `total` instances, for profiling a server by hand.
        return seed(std::path::Path::new(dir), total, (total / 10).max(1));
    }
    let dir = tempfile::tempdir()?;
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(&zones)?;
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, (0..1000).map(|i| format!("svc{i}.service.local A\n")).collect::<String>())?;
    let runtime = tokio::runtime::Runtime::new()?;

    // Into an empty registry: 20,000 instances of 1,000 services.
    let server = start(&binary, &dir.path().join("empty"), &zones)?;
    println!("rss empty                    {:.0} MB", rss_mb(server.child.id()));
    let rate = runtime.block_on(register(&server.api, 0, 20_000, 1_000, 64))?;
    println!(
        "registrations/s              {rate:.0} (64 clients, 20,000 into an empty registry, every write fsynced before its 200)"
    );
    drop(server);

    // The DNS benchmark's registry (1,000 services x 3), answering while registrations churn it.
    let small = dir.path().join("small");
    seed(&small, 3_000, 1_000)?;
    let server = start(&binary, &small, &zones)?;
    let (quiet, busy, writes, p99) = churn(&runtime, &server, &queries)?;
    println!(
        "dns qps quiet / churning     {quiet:.0} / {busy:.0} ({:.1}% drop; {writes:.0} registrations/s, p99 {:.1} ms; 3,000 instances of 1,000 services)",
        100.0 * (1.0 - busy / quiet),
        p99.as_secs_f64() * 1e3
    );
    drop(server);

    // `total` instances of total/10 services: restart, memory, writes on top, DNS under churn.
    let data = dir.path().join("data");
    let services = (total / 10).max(1);
    seed(&data, total, services)?;
    let server = start(&binary, &data, &zones)?;
    println!(
        "restart to ready             {:.2} s with {total} stored instances (target < 2 s)",
        server.ready_after.as_secs_f64()
    );
    println!("rss with {total} instances  {:.0} MB (target < 200 MB)", rss_mb(server.child.id()));
    let rate = runtime.block_on(register(&server.api, total, total + 10_000, services, 64))?;
    println!("registrations/s              {rate:.0} (64 clients, 10,000 more on top of {total})");
    let (quiet, busy, writes, p99) = churn(&runtime, &server, &queries)?;
    println!(
        "dns qps quiet / churning     {quiet:.0} / {busy:.0} ({:.1}% drop; {writes:.0} registrations/s, p99 {:.1} ms; {} instances of {services} services)",
        100.0 * (1.0 - busy / quiet),
        p99.as_secs_f64() * 1e3,
        total + 10_000
    );
    Ok(())
}
