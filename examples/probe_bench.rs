//! Benchmark of the health prober at scale: N HTTP checks at a fixed interval against a local
//! target process, reporting probe rate, start lateness against schedule (p50/p99) and the CPU
//! both processes used. Run through `bench/health.sh`, or directly:
//!
//!     cargo run --release --example probe_bench -- [CHECKS] [INTERVAL] [SECONDS]
//!
//! The target is this same program started with `target` as its first argument, so that its CPU
//! is measured apart from the prober's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use signpost::app::{self, Listeners};
use signpost::config::RawConfig;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("target") {
        return target();
    }
    let checks: usize = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let interval = signpost::duration::parse(args.get(2).map_or("1s", String::as_str))?;
    let seconds: u64 = args.get(3).map_or(Ok(30), |s| s.parse())?;
    let warmup = Duration::from_secs(5).max(interval * 3);

    let mut child = Command::new(std::env::current_exe()?).arg("target").stdout(Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;

    let dir = tempfile::tempdir()?;
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones)?;
    let mut zone = std::fs::File::create(zones.join("bench.toml"))?;
    for i in 0..checks {
        writeln!(
            zone,
            "[[service]]\nname = \"svc{}\"\ncheck = {{ http = \"http://{{address}}:{{port}}/health/{i}\", interval = \"{}\", timeout = \"2s\" }}\n\n[[service.instance]]\nid = \"i{i}\"\naddress = \"127.0.0.1\"\nport = {port}\n",
            i % 100,
            signpost::duration::format(interval),
        )?;
    }
    drop(zone);

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let text = format!(
            "[dns]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndir = {:?}\n[store]\ndata_dir = {:?}\n",
            zones,
            dir.path().join("data")
        );
        let config = RawConfig::from_toml(std::path::Path::new("bench.toml"), &text)?.validate()?;
        let listeners = Listeners::bind(&config).await?;
        let token = CancellationToken::new();
        let running = app::start(config, listeners, token.clone()).await?;
        let stats = running.probe_stats.clone();
        tokio::time::sleep(warmup).await;

        let lateness0: Vec<u64> = stats.lateness.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let probes0 = stats.probes.load(Ordering::Relaxed);
        let (cpu0, tcpu0, t0) = (cpu_seconds("self"), cpu_seconds(&child.id().to_string()), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let (cpu1, tcpu1, elapsed) = (cpu_seconds("self"), cpu_seconds(&child.id().to_string()), t0.elapsed());
        let probes = stats.probes.load(Ordering::Relaxed) - probes0;
        let window: Vec<u64> =
            stats.lateness.iter().zip(&lateness0).map(|(c, b)| c.load(Ordering::Relaxed) - b).collect();

        let secs = elapsed.as_secs_f64();
        println!(
            "checks            {checks} at {} interval, measured {secs:.0} s after {warmup:?} warm-up",
            signpost::duration::format(interval)
        );
        println!(
            "probes/s          {:.0} (expected {:.0})",
            probes as f64 / secs,
            checks as f64 / interval.as_secs_f64()
        );
        println!("lateness p50      < {} ms", quantile(&window, 0.50));
        println!(
            "lateness p99      < {} ms  (target: under 10% of the interval = {} ms)",
            quantile(&window, 0.99),
            interval.as_millis() / 10
        );
        println!("prober CPU        {:.0}% of one core", 100.0 * (cpu1 - cpu0) / secs);
        println!("target CPU        {:.0}% of one core", 100.0 * (tcpu1 - tcpu0) / secs);
        token.cancel();
        running.wait().await;
        anyhow::Ok(())
    })?;
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// The upper bound (ms) of the lateness bucket holding quantile `q`; "inf" past the last.
fn quantile(counts: &[u64], q: f64) -> String {
    const BOUNDS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
    let total: u64 = counts.iter().sum();
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen as f64 >= q * total as f64 {
            return BOUNDS.get(i).map_or("inf".into(), |b| b.to_string());
        }
    }
    "n/a".into()
}

/// User + system CPU seconds of a process (`self` or a pid), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A minimal HTTP target: 200 "ok" for every path, on a free port printed first.
fn target() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let app = axum::Router::new().fallback(|| async { "ok" });
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
