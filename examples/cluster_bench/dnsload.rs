//! A replica's DNS queries per second from dnsperf, for the quiet and the churning figures.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::Context;

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

/// Runs `measure` with replica `pid` alone on CPU 0, capped at half of it by a cgroup v1
/// `cpu.cfs_quota_us` (as bench/dns.sh caps servers), and every process in `others` (etcd, the
/// other replicas, this bench, dnsperf) on CPU 1: the replica's QPS is then its own work per
/// query, including what applying the writes costs it, rather than who won the shared CPUs.
/// Without the cgroup controller or `taskset`, runs `measure` as things are; says which.
pub fn isolated<T>(pid: u32, others: &[u32], measure: impl FnOnce() -> T) -> (T, &'static str) {
    let cgroup = format!("/sys/fs/cgroup/cpu/signpost-cluster-bench-{}", std::process::id());
    let capped = std::fs::create_dir(&cgroup).is_ok()
        && std::fs::write(format!("{cgroup}/cpu.cfs_period_us"), "100000").is_ok()
        && std::fs::write(format!("{cgroup}/cpu.cfs_quota_us"), "50000").is_ok()
        && std::fs::write(format!("{cgroup}/cgroup.procs"), pid.to_string()).is_ok();
    let pin = |p: u32, cpus: &str| {
        Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &p.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let pinned = pin(pid, "0") & others.iter().chain([&std::process::id()]).fold(true, |ok, &p| pin(p, "1") & ok);
    let out = measure();
    for &p in others.iter().chain([&pid, &std::process::id()]) {
        pin(p, "0,1");
    }
    if capped {
        let _ = std::fs::write("/sys/fs/cgroup/cpu/cgroup.procs", pid.to_string());
        let _ = std::fs::remove_dir(&cgroup);
    }
    let how = match (capped, pinned) {
        (true, true) => "replica on CPU 0 capped at 50%, the rest on CPU 1",
        (false, true) => {
            "replica on CPU 0 (no cgroup cap: not root, or no cgroup v1 cpu controller), the rest on CPU 1"
        }
        _ => "nothing pinned (taskset failed): the CPUs shared",
    };
    (out, how)
}
