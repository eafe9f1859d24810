//! Cluster mode at scale, as a new user would try it: a 3-member etcd on loopback (data dirs in
//! tmpfs, /dev/shm), 3 replicas of the built binary, and the figures, each printed
//! against its target. Run through `bench/cluster.sh`; one line per figure.
//!
//!     cargo run --release --features cluster --example cluster_bench -- BINARY [--small]
//!
//! `SIGNPOST_BASELINE=path` measures the write throughput of an older build too, alternating
//! with BINARY in the same run (each on a fresh etcd), so that the ratio is what to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// How big a run is: the full one is the issue's; `--small` checks the script in a minute.
struct Size {
    /// Registrations timed into an empty cluster, per binary and round.
    writes: usize,
    rounds: usize,
    /// Instances the cluster holds for the join, memory and propagation figures.
    instances: usize,
    /// Writes/s and seconds of the propagation and churn phase.
    rate: u64,
    seconds: u64,
}

const FULL: Size = Size { writes: 20_000, rounds: 2, instances: 100_000, rate: 2_000, seconds: 60 };
const SMALL: Size = Size { writes: 3_000, rounds: 1, instances: 10_000, rate: 500, seconds: 10 };
/// HTTP clients of the write figures (`--clients N` to try others).
static CLIENTS: AtomicUsize = AtomicUsize::new(64);
/// Writes in flight at most during the steady phase; a write that would exceed it is counted late.
const IN_FLIGHT: usize = 512;
/// Propagation samples per second of the steady phase.
const SAMPLES_PER_S: u64 = 20;
/// Writes/s of the churn under which DNS is measured (the issue's, as for memory).
const CHURN: u64 = 200;

mod dnsload;
mod etcd;
mod probes;

use etcd::Etcd;

#[path = "../support/mod.rs"]
mod support;

use support::Server as Replica;

/// One replica of the built binary on `etcd`; the time its store was loaded is its `mark_after`.
fn replica(binary: &Path, etcd: &Etcd, zones: &Path) -> anyhow::Result<Replica> {
    let mut command = Command::new(binary);
    command
        .args(["serve", "--dns-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", &etcd.url()])
        .arg("--zones")
        .arg(zones);
    support::start(command, "cluster store loaded")
}

fn rss_of(r: &Replica) -> f64 {
    support::rss_mb(r.child.id())
}

fn replicas(binary: &Path, etcd: &Etcd, zones: &Path, n: usize) -> anyhow::Result<Vec<Replica>> {
    (0..n).map(|_| replica(binary, etcd, zones)).collect()
}

/// Instance `i`: service `svc<i mod 10,000>`, its own address.
fn registration(i: usize) -> serde_json::Value {
    serde_json::json!({
        "Name": format!("svc{}", i % 10_000), "ID": format!("i{i}"), "Address": address(i), "Port": 8080,
        "Tags": ["v1"], "Meta": { "version": "1.0" },
    })
}

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)
}

struct Writes {
    rate: f64,
    p50: Duration,
    p99: Duration,
    refused: usize,
}

/// Registers instances `from..to` with `CLIENTS` concurrent clients, client c writing to
/// replica c mod the number of replicas.
async fn register(apis: &[String], from: usize, to: usize) -> anyhow::Result<Writes> {
    let clients = CLIENTS.load(Ordering::Relaxed);
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{}/v1/agent/service/register", apis[c % apis.len()]);
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut refused) = (Vec::new(), 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return anyhow::Ok((latencies, refused));
                }
                let t = Instant::now();
                let r = http.put(&url).json(&registration(i)).send().await?;
                latencies.push(t.elapsed());
                refused += usize::from(r.status() != 200);
            }
        }));
    }
    let (mut latencies, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (l, r) = t.await??;
        latencies.extend(l);
        refused += r;
    }
    let rate = (to - from) as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Ok(Writes { rate, p50: quantile(&latencies, 0.5), p99: quantile(&latencies, 0.99), refused })
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One DNS question over UDP; true if the answer holds an A record.
async fn answers(socket: &tokio::net::UdpSocket, dns: SocketAddr, name: &Name, id: u16) -> bool {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name.clone(), RecordType::A));
    let Ok(bytes) = m.to_vec() else { return false };
    if socket.send_to(&bytes, dns).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    loop {
        match tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => match Message::from_vec(&buf[..n]) {
                Ok(r) if r.metadata.id == id => return !r.answers.is_empty(),
                _ => continue,
            },
            _ => return false,
        }
    }
}

struct Steady {
    acked: usize,
    refused: usize,
    late: usize,
    delays: Vec<Duration>,
    lost: usize,
}

/// `rate` writes/s for `seconds`, sent on schedule and spread over the replicas: churn (a new
/// instance registered, the one registered `window` writes earlier deregistered), and
/// `SAMPLES_PER_S` of them registrations of a service of their own whose 200 starts a clock
/// that stops when the next replica's DNS answers for it.
async fn steady(replicas: &[(String, SocketAddr)], rate: u64, seconds: u64) -> anyhow::Result<Steady> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build()?;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = tokio::time::Instant::now();
    let total = rate * seconds;
    // Even writes register, odd ones deregister what the write `window + 1` earlier registered
    // (`window` even, so that it is an even one): about a second of instances alive at any time.
    // Every `half_every`-th registration is a sample of its own service instead of a `c<n>`; the
    // odd write paired with a sample sends nothing (the sample goes once seen, below). Pairing
    // any other way leaves registrations behind: the first version of this left 20 a second.
    let half_every = (rate / 2 / SAMPLES_PER_S).max(1);
    let window = rate + rate % 2;
    let is_sample = move |n: u64| n.is_multiple_of(2) && (n / 2).is_multiple_of(half_every);
    let mut tasks = Vec::new();
    let mut late = 0;
    for n in 0..total {
        let partner = (n % 2 == 1).then(|| n.checked_sub(window + 1)).flatten();
        if n % 2 == 1 && partner.is_none_or(is_sample) {
            continue;
        }
        tokio::time::sleep_until(started + Duration::from_nanos(n * 1_000_000_000 / rate)).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            late += 1;
            continue;
        };
        let (writer, reader) = (n as usize % replicas.len(), (n as usize + 1) % replicas.len());
        let (api, dns) = (replicas[writer].0.clone(), replicas[reader].1);
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let sample = is_sample(n);
            let (path, body) = match partner {
                Some(g) => (format!("deregister/c{g}"), None),
                None if sample => {
                    let body = serde_json::json!({ "Name": format!("p{n}"), "ID": format!("p{n}"),
                        "Address": address(n as usize), "Port": 80 });
                    ("register".to_string(), Some(body))
                }
                None => {
                    let body = serde_json::json!({ "Name": "churn", "ID": format!("c{n}"),
                        "Address": address(n as usize), "Port": 80 });
                    ("register".to_string(), Some(body))
                }
            };
            let mut req = http.put(format!("{api}/v1/agent/service/{path}"));
            if let Some(b) = &body {
                req = req.json(b);
            }
            // A deregistration whose registration went out late (skipped) finds no id: not a
            // refusal of the store.
            let ok = req.send().await.is_ok_and(|r| r.status() == 200 || (body.is_none() && r.status() == 404));
            if !(ok && sample) {
                return (ok, None);
            }
            let acked = Instant::now();
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket");
            let name = Name::from_ascii(format!("p{n}.service.local.")).expect("a name");
            let mut id = 0u16;
            let mut seen = None;
            while acked.elapsed() < Duration::from_secs(10) {
                id = id.wrapping_add(1);
                if answers(&socket, dns, &name, id).await {
                    seen = Some(acked.elapsed());
                    break;
                }
            }
            // Each sample's service goes again once seen, so that the registry keeps its size:
            // 20 new services a second kept would grow every replica by ~165 MB in 30 minutes.
            let gone = http.put(format!("{api}/v1/agent/service/deregister/p{n}")).send().await;
            (gone.is_ok_and(|r| r.status() == 200), Some(seen))
        }));
    }
    let mut out = Steady { acked: 0, refused: 0, late, delays: Vec::new(), lost: 0 };
    for t in tasks {
        let (ok, delay) = t.await?;
        if ok {
            out.acked += 1;
        } else {
            out.refused += 1;
        }
        match delay {
            Some(Some(d)) => out.delays.push(d),
            Some(None) => out.lost += 1,
            None => {}
        }
    }
    out.delays.sort();
    Ok(out)
}

/// The number of instances a replica's registry holds, from its `/metrics`.
async fn instances(api: &str) -> anyhow::Result<usize> {
    let text = reqwest::get(format!("{api}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("signpost_instances{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize)
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Write throughput into an empty cluster: a fresh etcd and 3 replicas of `binary`.
fn throughput(runtime: &tokio::runtime::Runtime, binary: &Path, zones: &Path, n: usize) -> anyhow::Result<Writes> {
    let etcd = Etcd::start()?;
    let rs = replicas(binary, &etcd, zones, 3)?;
    let apis: Vec<String> = rs.iter().map(|r| r.api.clone()).collect();
    runtime.block_on(register(&apis, 0, n))
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let binary = PathBuf::from(args.get(1).map_or("target/release/signpost", String::as_str));
    let mut size = if args.iter().any(|a| a == "--small") { SMALL } else { FULL };
    let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    if let Some(r) = option("--rate") {
        size.rate = r.parse().context("--rate WRITES_PER_S")?;
    }
    if let Some(s) = option("--seconds") {
        size.seconds = s.parse().context("--seconds N")?;
    }
    if args.iter().any(|a| a == "--skip-writes") {
        size.rounds = 0;
    }
    if let Some(n) = args.iter().position(|a| a == "--clients").and_then(|i| args.get(i + 1)) {
        CLIENTS.store(n.parse().context("--clients N")?, Ordering::Relaxed);
    }
    let clients = CLIENTS.load(Ordering::Relaxed);
    let probes_only = args.iter().any(|a| a == "--probes");
    let checks: usize = option("--checks").map_or(Ok(10_000), |n| n.parse()).context("--checks N")?;
    // The guide's check interval; the longest a check can go unprobed when its replica dies is
    // about an interval plus the lease (5 s).
    let interval =
        Duration::from_secs(option("--interval").map_or(Ok(10), |n| n.parse()).context("--interval SECONDS")?);
    let baseline = std::env::var_os("SIGNPOST_BASELINE").map(PathBuf::from);
    let dir = tempfile::tempdir()?;
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(&zones)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "# 3-member etcd (data in tmpfs, /dev/shm) and 3 replicas on loopback, {cpus} CPUs shared, nothing pinned"
    );

    let start = |etcd: &Etcd| replica(&binary, etcd, &zones);
    if probes_only {
        return probes::run(&runtime, &start, checks, interval);
    }

    // Writes: registrations into an empty cluster, alternating with the baseline if given.
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 1..=size.rounds {
        let builds = baseline.iter().map(|b| ("baseline", b.as_path())).chain([("this build", binary.as_path())]);
        for (label, b) in builds {
            let w = throughput(&runtime, b, &zones, size.writes)?;
            println!(
                "writes/s        {:>7.0}  {label}, round {round}: {} registrations, {clients} clients over 3 replicas, p50 {} p99 {}, {} refused (target ≥ 5,000/s, 0 refused)",
                w.rate,
                size.writes,
                ms(w.p50),
                ms(w.p99),
                w.refused
            );
            rates.entry(label).or_default().push(w.rate);
        }
    }
    let mean = |label: &str| rates.get(label).map(|r| r.iter().sum::<f64>() / r.len() as f64);
    let this = mean("this build").unwrap_or(0.0);
    let spread = rates.get("this build").map_or(0.0, |r| {
        let (lo, hi) = r.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        100.0 * (hi - lo) / this
    });
    if size.rounds > 0 {
        println!("writes/s mean   {this:>7.0}  {} (spread between rounds {spread:.0}%)", verdict(this >= 5_000.0));
    }
    if let Some(base) = mean("baseline") {
        println!("writes ratio    {:>7.2}  this build / baseline, same run", this / base);
    }

    // Fill to `instances`, then join, memory, steady writes with propagation, memory again.
    let etcd = Etcd::start()?;
    let rs = replicas(&binary, &etcd, &zones, 3)?;
    let apis: Vec<String> = rs.iter().map(|r| r.api.clone()).collect();
    let cpu = |pids: &[u32]| pids.iter().map(|&p| etcd::cpu_time(p)).sum::<Duration>().as_secs_f64();
    let replica_pids: Vec<u32> = rs.iter().map(|r| r.child.id()).collect();
    let etcd_pids: Vec<u32> = etcd.members.iter().map(|m| m.id()).collect();
    let (r0, e0, t0) = (cpu(&replica_pids), cpu(&etcd_pids), Instant::now());
    let fill = runtime.block_on(register(&apis, 0, size.instances))?;
    let (r1, e1, wall) = (cpu(&replica_pids), cpu(&etcd_pids), t0.elapsed().as_secs_f64());
    println!(
        "fill writes/s   {:>7.0}  {} instances, p50 {} p99 {}, {} refused",
        fill.rate,
        size.instances,
        ms(fill.p50),
        ms(fill.p99),
        fill.refused
    );
    // What a write costs the whole cluster: every replica applies every write (its own, or from
    // the watch), and every etcd member stores it.
    let per_write = |cpu: f64| 1e6 * cpu / size.instances as f64;
    println!(
        "cpu per write   {:>7.0} µs  3 replicas together, {:.0} µs 3 etcd members together, during the fill ({:.2} of {cpus} CPUs busy at {:.0}/s; 5,000/s would need {:.1} CPUs for these alone)",
        per_write(r1 - r0),
        per_write(e1 - e0),
        (r1 - r0 + e1 - e0) / wall,
        fill.rate,
        5_000.0 * (per_write(r1 - r0) + per_write(e1 - e0)) / 1e6
    );
    // SIGNPOST_JOIN_BINARY: another program for the 4th replica (a wrapper that profiles it).
    let joining = std::env::var_os("SIGNPOST_JOIN_BINARY").map_or(binary.clone(), PathBuf::from);
    let mut joins: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut joined_rss = 0.0f64;
    for round in 1..=2 {
        let builds = baseline.iter().map(|b| ("baseline", b.as_path())).chain([("this build", joining.as_path())]);
        for (label, b) in builds {
            let fourth = replica(b, &etcd, &zones)?;
            let held = runtime.block_on(instances(&fourth.api))?;
            let last = runtime.block_on(async {
                let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
                let name = Name::from_ascii(format!("i{}.instance.local.", size.instances - 1))?;
                anyhow::Ok(answers(&socket, fourth.dns, &name, 1).await)
            })?;
            let join = fourth.ready_after.as_secs_f64();
            // A replica that joined holds what the filled ones do, built in one go from etcd's pages.
            let rss = rss_of(&fourth);
            println!(
                "join           {join:>7.2} s  {label}, round {round}: a 4th replica ready ({:.2} s to load etcd) with {held} of {} instances, answers the last write: {last}, RSS {rss:.0} MB (target < 2 s) {}",
                fourth.mark_after.unwrap_or_default().as_secs_f64(),
                size.instances,
                verdict(join < 2.0 && held == size.instances && last)
            );
            joins.entry(label).or_default().push(join);
            if label == "this build" {
                joined_rss = joined_rss.max(rss);
            }
        }
    }
    let mean_join = |label: &str| joins.get(label).map(|j| j.iter().sum::<f64>() / j.len() as f64);
    if let (Some(this), Some(base)) = (mean_join("this build"), mean_join("baseline")) {
        println!("join ratio      {:>7.2}  this build / baseline, same run", this / base);
    }
    let rss: Vec<f64> = rs.iter().map(rss_of).collect();
    let worst = rss.iter().cloned().fold(joined_rss, f64::max);
    println!(
        "rss            {worst:>7.0} MB  the largest of {:.0?} MB (filled) and {joined_rss:.0} MB (joined) with {} instances (target < 150 MB) {}",
        rss,
        size.instances,
        verdict(worst < 150.0)
    );

    let ends: Vec<(String, SocketAddr)> = rs.iter().map(|r| (r.api.clone(), r.dns)).collect();
    if dnsload::available() {
        // dnsperf on one replica, quiet and under CHURN writes/s over all three; in the
        // layout the server is built for (the target's figure), then squeezed into half a CPU.
        let services = size.instances.min(10_000);
        let others: Vec<u32> = etcd_pids.iter().chain(&replica_pids[1..]).copied().collect();
        let pid = replica_pids[0];
        let before = etcd::cpu_time(pid);
        runtime.block_on(steady(&ends, CHURN, 10))?;
        let alone = (etcd::cpu_time(pid) - before).as_secs_f64() / 10.0;
        println!(
            "churn alone     {:>6.1}%  of a CPU used by one replica at {CHURN} writes/s without DNS load",
            100.0 * alone
        );
        let mut churn = |seconds| runtime.block_on(steady(&ends, CHURN, seconds)).map(|w| (w.acked, w.refused));
        for layout in [dnsload::Layout::DnsThread, dnsload::Layout::Whole] {
            let (phases, how) =
                dnsload::isolated(pid, &others, layout, || dnsload::under_churn(pid, rs[0].dns, services, &mut churn));
            let phases = phases?;
            let ratio = phases.ratio();
            match layout {
                dnsload::Layout::DnsThread => println!(
                    "dns under churn {ratio:>6.2}×  {} (target ≥ 0.90) {}",
                    phases.detail(CHURN, &how),
                    verdict(ratio >= 0.9)
                ),
                dnsload::Layout::Whole => println!(
                    "dns squeezed    {ratio:>6.2}×  {}: the churn's CPU comes out of DNS's, so the smaller the replica's share of a CPU, the larger the loss (no target)",
                    phases.detail(CHURN, &how)
                ),
            }
        }
    }
    let s = runtime.block_on(steady(&ends, size.rate, size.seconds))?;
    let p99 = quantile(&s.delays, 0.99);
    println!(
        "propagation    {:>7}  p99; p50 {} max {}; {} samples, {} never seen within 10 s; at {}/s for {} s: {} acknowledged, {} refused, {} late (over {IN_FLIGHT} in flight) (target p99 < 20 ms) {}",
        ms(p99),
        ms(quantile(&s.delays, 0.5)),
        ms(s.delays.last().copied().unwrap_or_default()),
        s.delays.len(),
        s.lost,
        size.rate,
        size.seconds,
        s.acked,
        s.refused,
        s.late,
        verdict(p99 < Duration::from_millis(20) && s.lost == 0 && s.refused == 0 && s.late == 0)
    );
    let after: Vec<f64> = rs.iter().map(rss_of).collect();
    let drift = rss.iter().zip(&after).map(|(b, a)| 100.0 * (a - b) / b).fold(0.0f64, |m, d| m.max(d.abs()));
    println!(
        "rss after churn {:>6.0} MB  {:.0?} MB after {} s of churn: drift at most {drift:.1}% (target ±5% over 30 min) {}",
        after.iter().cloned().fold(0.0, f64::max),
        after,
        size.seconds,
        verdict(drift <= 5.0)
    );
    drop((rs, etcd));
    if checks == 0 {
        return Ok(());
    }
    probes::run(&runtime, &start, checks, interval)
}
