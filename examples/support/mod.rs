//! What the benchmark examples share: a server started from its binary and read until `ready`,
//! and its memory. Included with `#[path]` (Cargo takes only `examples/*.rs` and
//! `examples/*/main.rs` as examples).

// Each example uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process started by `start`; killed on drop.
pub struct Server {
    pub child: Child,
    pub dns: SocketAddr,
    pub api: String,
    pub ready_after: Duration,
    /// When the line containing `start`'s `mark` came, after the start.
    pub mark_after: Option<Duration>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` (a `signpost serve` listening on port 0), reads its log until `ready`, and
/// keeps draining it after. Notes when a line containing `mark` came.
pub fn start(mut command: Command, mark: &str) -> anyhow::Result<Server> {
    let started = Instant::now();
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let (mut dns, mut api, mut mark_after) = (None, None, None);
    for line in lines.by_ref() {
        let line = line?;
        if !mark.is_empty() && line.contains(mark) {
            mark_after = Some(started.elapsed());
        }
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
        dns: dns.ok_or_else(|| anyhow::anyhow!("no `listening dns/udp` line before ready"))?,
        api: api.ok_or_else(|| anyhow::anyhow!("no `listening http` line before ready"))?,
        ready_after,
        mark_after,
    })
}

/// The resident memory of process `pid`, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}
