//! The probing figures (`--probes`): HTTP checks shared by 3 replicas, each probed once per
//! interval in total; when a replica is killed and when a new one joins, the share of the checks
//! that moves (from each replica's `signpost_probes_total`) and the longest any check went
//! unprobed (from the target's own log of each check's requests).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::etcd::Etcd;
use crate::support::Server as Replica;

/// Every request the target saw, per check, in seconds since the target started.
type Hits = Arc<Vec<Mutex<Vec<f64>>>>;

/// An HTTP target in this process: `GET /c/<n>` answers 200 and notes the time under check n.
async fn target(checks: usize) -> anyhow::Result<(u16, Hits, Instant)> {
    let hits: Hits = Arc::new((0..checks).map(|_| Mutex::new(Vec::new())).collect());
    let t0 = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let log = hits.clone();
    let app = axum::Router::new().route(
        "/c/{n}",
        axum::routing::get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
            let log = log.clone();
            async move {
                if let Some(h) = log.get(n) {
                    h.lock().unwrap().push(t0.elapsed().as_secs_f64());
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((port, hits, t0))
}

/// Registers `checks` instances, each with an HTTP check on the target, over the replicas.
async fn register(apis: &[String], port: u16, checks: usize, interval: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let (http, apis) = (http.clone(), apis.to_vec());
        tasks.push(tokio::spawn(async move {
            for n in (c..checks).step_by(64) {
                let body = serde_json::json!({
                    "Name": format!("pr{}", n % 1000), "ID": format!("pr{n}"), "Address": "127.0.0.1", "Port": port,
                    "Check": { "HTTP": format!("http://127.0.0.1:{port}/c/{n}"), "Interval": format!("{}ms", interval.as_millis()) },
                });
                let r = http.put(format!("{}/v1/agent/service/register", apis[n % apis.len()])).json(&body).send().await?;
                anyhow::ensure!(r.status() == 200, "registering pr{n}: {}", r.status());
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// HTTP probes a replica has run so far.
async fn probes_of(api: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{api}/metrics")).await else { return 0.0 };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("signpost_probes_total{") && l.contains("kind=\"http\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Each replica's share of the probes run between two readings, in percent.
fn shares(before: &[f64], after: &[f64]) -> Vec<f64> {
    let runs: Vec<f64> = before.iter().zip(after).map(|(b, a)| a - b).collect();
    let total: f64 = runs.iter().sum();
    runs.iter().map(|r| 100.0 * r / total.max(1.0)).collect()
}

/// Per check, the longest time between two requests (or from `from` to the first, or from the
/// last to `to`) within [from, to]; and the requests per check within it.
fn gaps(hits: &Hits, from: f64, to: f64) -> (Vec<f64>, Vec<usize>) {
    let mut longest = Vec::with_capacity(hits.len());
    let mut counts = Vec::with_capacity(hits.len());
    for h in hits.iter() {
        let h = h.lock().unwrap();
        let within: Vec<f64> = h.iter().copied().filter(|&t| t >= from && t <= to).collect();
        let mut last = from;
        let mut worst = 0.0f64;
        for &t in &within {
            worst = worst.max(t - last);
            last = t;
        }
        longest.push(worst.max(to - last));
        counts.push(within.len());
    }
    (longest, counts)
}

fn pct(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|s| format!("{s:.0}%")).collect();
    parts.join(" / ")
}

/// Runs the probing figures on a fresh etcd and 3 replicas of `binary`.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    start: &dyn Fn(&Etcd) -> anyhow::Result<Replica>,
    checks: usize,
    interval: Duration,
) -> anyhow::Result<()> {
    let etcd = Etcd::start()?;
    let mut rs: Vec<Replica> = (0..3).map(|_| start(&etcd)).collect::<anyhow::Result<_>>()?;
    let apis: Vec<String> = rs.iter().map(|r| r.api.clone()).collect();
    let (port, hits, t0) = runtime.block_on(target(checks))?;
    let now = || t0.elapsed().as_secs_f64();
    runtime.block_on(register(&apis, port, checks, interval))?;
    let every = interval.as_secs_f64();
    let wait = |intervals: f64| std::thread::sleep(Duration::from_secs_f64(every * intervals));
    // Two intervals for every check's first probe and the schedules to spread.
    wait(2.0);
    let read = |apis: &[String]| runtime.block_on(async { futures_probes(apis).await });

    // Steady: three intervals with every replica up.
    let (from, before) = (now(), read(&apis));
    wait(3.0);
    let (to, after) = (now(), read(&apis));
    let (_, counts) = gaps(&hits, from, to);
    let per_interval: Vec<f64> = counts.iter().map(|&c| c as f64 / 3.0).collect();
    let (lo, hi) = per_interval.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let total: f64 = before.iter().zip(&after).map(|(b, a)| a - b).sum();
    let once = (total / 3.0 / checks as f64 - 1.0).abs() < 0.05;
    println!(
        "probes/interval {:>6.2}  per check, over 3 intervals of {}: min {lo:.2} max {hi:.2}; replicas' shares {} (target: once per interval in total) {}",
        total / 3.0 / checks as f64,
        crate::ms(interval),
        pct(&shares(&before, &after)),
        crate::verdict(once)
    );

    // Leave: the third replica killed (SIGKILL); the others take its checks within the lease.
    let killed_share = shares(&before, &after)[2];
    let killed_at = now();
    drop(rs.pop());
    let survivors = &apis[..2];
    let before = read(survivors);
    wait(4.0);
    let (to, after) = (now(), read(survivors));
    let (longest, _) = gaps(&hits, killed_at - every, to);
    report("leave", killed_share, &shares(&before, &after), &longest, every);

    // Join: a new replica; it takes its share, the others stop probing those. It probes each
    // check it takes at once, so its share is read from the second interval on.
    let joined_at = now();
    rs.push(start(&etcd)?);
    let apis: Vec<String> = rs.iter().map(|r| r.api.clone()).collect();
    wait(1.0);
    let before = read(&apis);
    wait(3.0);
    let (to, after) = (now(), read(&apis));
    let (longest, _) = gaps(&hits, joined_at - every, to);
    let s = shares(&before, &after);
    report("join", s[2], &s, &longest, every);
    Ok(())
}

/// One line for a replica leaving or joining: the share that moved, the shares after, and the
/// longest any check went unprobed around it.
fn report(what: &str, moved: f64, after: &[f64], longest: &[f64], every: f64) {
    let worst = longest.iter().copied().fold(0.0f64, f64::max);
    let over = longest.iter().filter(|&&g| g > 2.0 * every).count();
    println!(
        "probes {what:<6} {moved:>6.0}%  of the checks moved (target: about a third); shares after {}; longest unprobed {:.1} intervals, {over} checks over 2 (target: none) {}",
        pct(after),
        worst / every,
        crate::verdict(over == 0 && (20.0..=45.0).contains(&moved))
    );
}

async fn futures_probes(apis: &[String]) -> Vec<f64> {
    let mut out = Vec::with_capacity(apis.len());
    for api in apis {
        out.push(probes_of(api).await);
    }
    out
}
