//! A replica's DNS queries per second from dnsperf, quiet and under churn, in two layouts of
//! its threads over the two CPUs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::etcd;

/// dnsperf against `dns` for `seconds`, A queries for the first `services` services
/// (`svc<n>.service.local`, as the fill registers them); its "Queries per second".
///
/// 2,000 queries outstanding: dnsperf shares CPU 1 with etcd, the other replicas and the
/// writes, and is held off it for a few milliseconds at a time under churn. With 500 (about
/// 6 ms of the replica's work) the replica's queue ran dry then: it received in batches half
/// the size (18,252 `recvmmsg` calls in 7 s against 10,000 quiet), so a query cost it more
/// for the load generator's sake. With 2,000 the batches were alike (9,438 calls against 9,279).
pub fn qps(dns: SocketAddr, services: usize, seconds: u64) -> anyhow::Result<f64> {
    let file = tempfile::NamedTempFile::new()?;
    let names: String = (0..services).map(|n| format!("svc{n}.service.local A\n")).collect();
    std::fs::write(file.path(), names)?;
    let out = Command::new("dnsperf")
        .args(["-s", &dns.ip().to_string(), "-p", &dns.port().to_string(), "-d"])
        .arg(file.path())
        .args(["-c", "20", "-q", "2000", "-T", "2", "-l", &seconds.to_string()])
        .output()
        .context("dnsperf runs (Debian package dnsperf)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:")?.trim().parse().ok())
        .with_context(|| format!("no QPS in dnsperf's output: {text}"))
}

/// Returns true if dnsperf is installed.
pub fn available() -> bool {
    Command::new("dnsperf").arg("-h").output().is_ok()
}

/// Where the measured replica's threads run while dnsperf loads it. Either way its DNS thread
/// is alone on CPU 0, capped at half of it by a cgroup v1 `cpu.cfs_quota_us` (as bench/dns.sh
/// caps servers): dnsperf, on the other CPU, cannot keep a whole CPU's worth of server busy.
#[derive(Clone, Copy, PartialEq)]
pub enum Layout {
    /// The replica's other threads (the runtime: the API, the etcd watch, the registry's
    /// writer) run on CPU 1 with etcd, the other replicas, dnsperf and this bench: the layout
    /// the server is built for on a machine of two CPUs or more (UDP on a thread of its own,
    /// the runtime on one worker fewer than the CPUs). What the churn changes is then the cost
    /// of a query: the target's figure.
    DnsThread,
    /// The whole replica in the capped half of CPU 0: the churn's CPU comes out of the DNS
    /// thread's. The ratio then says how much of half a CPU the churn takes, more than how DNS
    /// fares under it: a replica with a whole CPU would lose about half as much.
    Whole,
}

impl Layout {
    fn describe(self) -> &'static str {
        match self {
            Layout::DnsThread => {
                "its DNS thread alone on CPU 0 capped at 50%, its other threads with the rest on CPU 1"
            }
            Layout::Whole => "the whole replica on CPU 0 capped at 50%, the rest on CPU 1",
        }
    }
}

/// Runs `measure` with replica `pid` laid out as `layout` says and every process in `others`
/// (etcd, the other replicas) and this bench on CPU 1, so that the replica's QPS is its own
/// work per query rather than who won the shared CPUs; then puts everything back. Without the
/// cgroup controller or `taskset`, runs `measure` as things are; the description says which.
pub fn isolated<T>(pid: u32, others: &[u32], layout: Layout, measure: impl FnOnce() -> T) -> (T, String) {
    let cgroup = format!("/sys/fs/cgroup/cpu/signpost-cluster-bench-{}", std::process::id());
    let capped = std::fs::create_dir(&cgroup).is_ok()
        && std::fs::write(format!("{cgroup}/cpu.cfs_period_us"), "100000").is_ok()
        && std::fs::write(format!("{cgroup}/cpu.cfs_quota_us"), "50000").is_ok()
        && std::fs::write(format!("{cgroup}/cgroup.procs"), pid.to_string()).is_ok();
    let pin = |p: u32, cpus: &str, all: bool| {
        let all = if all { "-a" } else { "" };
        Command::new("taskset")
            .args([all, "-p", "-c", cpus, &p.to_string()].into_iter().filter(|a| !a.is_empty()))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut pinned =
        pin(pid, "0", true) & others.iter().chain([&std::process::id()]).fold(true, |ok, &p| pin(p, "1", true) & ok);
    if layout == Layout::DnsThread {
        // Threads the runtime starts later (blocking ones) inherit CPU and cgroup from these.
        for tid in etcd::threads(pid).into_iter().filter(|(_, name)| name != "dns-udp").map(|(tid, _)| tid) {
            if capped {
                let _ = std::fs::write("/sys/fs/cgroup/cpu/tasks", tid.to_string());
            }
            pinned &= pin(tid, "1", false);
        }
    }
    let out = measure();
    for &p in others.iter().chain([&pid, &std::process::id()]) {
        pin(p, "0,1", true);
    }
    if capped {
        let _ = std::fs::write("/sys/fs/cgroup/cpu/cgroup.procs", pid.to_string());
        let _ = std::fs::remove_dir(&cgroup);
    }
    let how = match (capped, pinned) {
        (true, true) => layout.describe().to_string(),
        (false, true) => format!(
            "{} (no cgroup cap: not root, or no cgroup v1 cpu controller)",
            layout.describe().replace(" capped at 50%", "")
        ),
        _ => "nothing pinned (taskset failed): the CPUs shared".to_string(),
    };
    (out, how)
}

/// One dnsperf run: its QPS, the CPUs the replica and its DNS thread used meanwhile, and how
/// busy CPU 0 was (all of it, and the hypervisor's steal): a run whose DNS thread got less
/// than its cap while CPU 0 was busier than the replica was disturbed from outside.
struct Phase {
    qps: f64,
    cpu: f64,
    udp: f64,
    cpu0: f64,
    steal0: f64,
}

/// CPU 0's busy and stolen time so far, from /proc/stat (in USER_HZ ticks, 1/100 s).
fn cpu0() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|l| l.strip_prefix("cpu0 "))
        .map(|l| l.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    let ticks = |t: u64| Duration::from_millis(t * 10);
    (ticks(at(0) + at(1) + at(2) + at(5) + at(6) + at(7)), ticks(at(7)))
}

/// The quiet and the busy runs of one layout, and the writes of the busy ones.
pub struct Phases {
    quiet: Vec<Phase>,
    busy: Vec<Phase>,
    acked: usize,
    refused: usize,
}

/// Rounds of a quiet and a busy run, interleaved: one pair swung the ratio from 0.80 to 1.02
/// between runs of one build.
const PAIRS: usize = 3;
const SECONDS: u64 = 10;

/// dnsperf on replica `pid` (DNS at `dns`) quiet, then while `churn` writes for a second more
/// than dnsperf runs (returning the writes acknowledged and refused), `PAIRS` times.
pub fn under_churn(
    pid: u32,
    dns: SocketAddr,
    services: usize,
    churn: &mut dyn FnMut(u64) -> anyhow::Result<(usize, usize)>,
) -> anyhow::Result<Phases> {
    // With the replica's CPU in each run (at its cap, the QPS is the replica's; below it,
    // dnsperf did not keep it busy) and its UDP thread's (what the churn left it, and what a
    // query cost it).
    let run = || -> anyhow::Result<Phase> {
        let (before, udp, (busy0, steal0), started) =
            (etcd::cpu_time(pid), etcd::thread_cpu_time(pid, "dns-udp"), cpu0(), Instant::now());
        let qps = qps(dns, services, SECONDS)?;
        let per_s = |d: Duration| d.as_secs_f64() / started.elapsed().as_secs_f64();
        let (busy, steal) = cpu0();
        Ok(Phase {
            qps,
            cpu: per_s(etcd::cpu_time(pid) - before),
            udp: per_s(etcd::thread_cpu_time(pid, "dns-udp") - udp),
            cpu0: per_s(busy - busy0),
            steal0: per_s(steal - steal0),
        })
    };
    let mut phases = Phases { quiet: Vec::new(), busy: Vec::new(), acked: 0, refused: 0 };
    for _ in 0..PAIRS {
        phases.quiet.push(run()?);
        let (busy, writes) = std::thread::scope(|scope| {
            let load = scope.spawn(run);
            let writes = churn(SECONDS + 1);
            (load.join().expect("dnsperf thread"), writes)
        });
        phases.busy.push(busy?);
        let (acked, refused) = writes?;
        phases.acked += acked;
        phases.refused += refused;
    }
    Ok(phases)
}

impl Phases {
    fn mean(runs: &[Phase], of: impl Fn(&Phase) -> f64) -> f64 {
        runs.iter().map(of).sum::<f64>() / runs.len() as f64
    }

    /// Busy QPS / quiet QPS, each the mean of its runs.
    pub fn ratio(&self) -> f64 {
        Phases::mean(&self.busy, |p| p.qps) / Phases::mean(&self.quiet, |p| p.qps)
    }

    /// The figures behind the ratio: QPS, each pair's ratio, the CPUs, queries per CPU-second
    /// of the DNS thread busy / quiet (whether a query costs more under churn, or the churn
    /// only takes CPU from the thread), and the writes.
    pub fn detail(&self, rate: u64, how: &str) -> String {
        let (quiet, busy) = (Phases::mean(&self.quiet, |p| p.qps), Phases::mean(&self.busy, |p| p.qps));
        let pairs: Vec<String> =
            self.busy.iter().zip(&self.quiet).map(|(b, q)| format!("{:.2}×", b.qps / q.qps)).collect();
        let cpus = |v: &[Phase]| {
            v.iter()
                .map(|p| {
                    format!(
                        "{:.0}% (UDP thread {:.0}%; CPU 0 {:.0}% busy, {:.0}% stolen)",
                        100.0 * p.cpu,
                        100.0 * p.udp,
                        100.0 * p.cpu0,
                        100.0 * p.steal0
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let per_cpu = |v: &[Phase]| Phases::mean(v, |p| p.qps / p.udp.max(1e-3));
        format!(
            "QPS of one replica under {rate} writes/s ({busy:.0}) / quiet ({quiet:.0}), each the mean of {PAIRS} interleaved runs of dnsperf -c 20 -q 2000 -l {SECONDS} (busy / quiet {}), {how}; the replica's CPU quiet {}, busy {}; queries per CPU-second of its UDP thread busy / quiet {:.2}×; {} writes acknowledged, {} refused",
            pairs.join(", "),
            cpus(&self.quiet),
            cpus(&self.busy),
            per_cpu(&self.busy) / per_cpu(&self.quiet),
            self.acked,
            self.refused,
        )
    }
}
