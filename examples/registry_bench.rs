//! Benchmarks of the registry through the built binary: registration throughput with 64
//! concurrent clients (every write durable), memory with many instances, restart time with them
//! stored, and DNS throughput while registrations churn the registry. Run through
//! `bench/registry.sh`; it prints one line per figure.
//!
//!     cargo run --release --example registry_bench -- BINARY [INSTANCES]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    dns: SocketAddr,
    api: String,
    ready_after: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(binary: &str, data: &std::path::Path, zones: &std::path::Path) -> anyhow::Result<Server> {
    let started = Instant::now();
    let mut child = Command::new("taskset")
        .args([
            "-c",
            "0",
            binary,
            "serve",
            "--dns-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--zones")
        .arg(zones)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut dns, mut api) = (None, None);
    for line in lines.by_ref() {
        let line = line?;
        if let Some(a) = line.split("listening dns/udp ").nth(1) {
            dns = Some(a.trim().parse()?);
        }
        if let Some(a) = line.split("listening http ").nth(1) {
            api = Some(format!("http://{}", a.trim()));
        }
        if line.ends_with(" ready") || line.contains("\"ready\"") {
            break;
        }
    }
    let ready_after = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    Ok(Server {
        child,
        dns: dns.ok_or_else(|| anyhow::anyhow!("no dns line"))?,
        api: api.ok_or_else(|| anyhow::anyhow!("no http line"))?,
        ready_after,
    })
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Registers instances `from..to` with `clients` concurrent connections; returns registrations/s.
async fn register(api: &str, from: usize, to: usize, clients: usize) -> anyhow::Result<f64> {
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
                let body = serde_json::json!({
                    "Name": format!("svc{}", i % 1000), "ID": format!("i{i}"),
                    "Address": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256), "Port": 8080,
                    "Tags": ["v1"], "Meta": { "version": "1.0" },
                });
                let r = http.put(&url).json(&body).send().await?;
                anyhow::ensure!(r.status() == 200, "register {i}: {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((to - from) as f64 / started.elapsed().as_secs_f64())
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

/// Writes `n` API registrations straight into a data dir, as if registered earlier.
fn seed(data: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use signpost::registry::Stored;
    use signpost::registry::model::{Address, Health, Instance, ServicePolicy, Source};
    use signpost::store::{Journal, Store};
    let (mut journal, _) = Journal::open(data)?;
    let records = (0..n)
        .map(|i| Stored {
            instance: Instance {
                id: format!("seed{i}"),
                service: format!("svc{}", i % 1000),
                address: Address::Ip(
                    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256).parse().expect("ip"),
                ),
                port: 8080,
                tags: vec!["v1".into()],
                weight: 1,
                region: None,
                meta: [("version".to_string(), "1.0".to_string())].into(),
                checks: vec![],
                policy: ServicePolicy::default(),
                source: Source::Api,
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
    let dir = tempfile::tempdir()?;
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(&zones)?;
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, (0..1000).map(|i| format!("svc{i}.service.local A\n")).collect::<String>())?;
    let runtime = tokio::runtime::Runtime::new()?;

    // Throughput into an empty registry, and into one already holding `total` instances.
    let empty = dir.path().join("empty");
    let server = start(&binary, &empty, &zones)?;
    println!("rss empty                 {:.0} MB", rss_mb(server.child.id()));
    let rate = runtime.block_on(register(&server.api, 0, 5_000, 64))?;
    println!(
        "registrations/s           {rate:.0} (64 clients, 5,000 into an empty registry, every write fsynced before its 200)"
    );
    drop(server);

    let data = dir.path().join("data");
    seed(&data, total)?;
    let server = start(&binary, &data, &zones)?;
    let pid = server.child.id();
    println!(
        "restart to ready          {:.2} s with {total} stored instances (target < 2 s)",
        server.ready_after.as_secs_f64()
    );
    println!("rss with {total} instances {:.0} MB (target < 200 MB)", rss_mb(pid));
    let rate = runtime.block_on(register(&server.api, 0, 1_000, 64))?;
    println!("registrations/s           {rate:.0} (64 clients, 1,000 more on top of {total})");

    // DNS throughput with and without 100 registrations/s changing the registry.
    let quiet = dnsperf(server.dns, &queries, 10)?;
    let api = server.api.clone();
    let churn = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let http = reqwest::Client::new();
            let started = Instant::now();
            let mut n = 0usize;
            while started.elapsed() < Duration::from_secs(10) {
                let body = serde_json::json!({ "Name": "churn", "ID": format!("churn{}", n % 50), "Address": format!("10.200.0.{}", n % 250), "Port": n % 60000 });
                let _ = http.put(format!("{api}/v1/agent/service/register")).json(&body).send().await;
                n += 1;
                tokio::time::sleep_until((started + Duration::from_millis(10 * n as u64)).into()).await;
            }
            n
        })
    });
    let busy = dnsperf(server.dns, &queries, 10)?;
    let writes = churn.join().expect("churn thread");
    println!(
        "dns qps quiet / churning  {quiet:.0} / {busy:.0} ({:.1}% drop, {:.0} registrations/s, {total} instances)",
        100.0 * (1.0 - busy / quiet),
        writes as f64 / 10.0
    );
    Ok(())
}
