//! A replica's DNS queries per second from dnsperf, for the quiet and the churning figures.

use std::net::SocketAddr;
use std::process::Command;

use anyhow::Context;

/// dnsperf against `dns` for `seconds`, A queries for the first `services` services
/// (`svc<n>.service.local`, as the fill registers them); its "Queries per second".
pub fn qps(dns: SocketAddr, services: usize, seconds: u64) -> anyhow::Result<f64> {
    let file = tempfile::NamedTempFile::new()?;
    let names: String = (0..services).map(|n| format!("svc{n}.service.local A\n")).collect();
    std::fs::write(file.path(), names)?;
    let out = Command::new("dnsperf")
        .args(["-s", &dns.ip().to_string(), "-p", &dns.port().to_string(), "-d"])
        .arg(file.path())
        .args(["-c", "20", "-q", "500", "-T", "2", "-l", &seconds.to_string()])
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
