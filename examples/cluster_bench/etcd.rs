//! Three etcd members on loopback, their data in tmpfs, for the cluster bench; and the CPU time
//! of a process, for the cost of a write.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Three etcd members on loopback, data in tmpfs; killed on drop.
pub struct Etcd {
    _dir: tempfile::TempDir,
    pub members: Vec<Child>,
    clients: Vec<u16>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

impl Etcd {
    pub fn start() -> anyhow::Result<Etcd> {
        let dir = tempfile::tempdir_in("/dev/shm").context("a folder in /dev/shm (tmpfs) for etcd's data")?;
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let cluster: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log")))?;
            let (c, p) = (format!("http://127.0.0.1:{client}"), format!("http://127.0.0.1:{peer}"));
            members.push(
                Command::new("etcd")
                    .args(["--name", &format!("m{i}"), "--data-dir"])
                    .arg(dir.path().join(format!("m{i}")))
                    .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
                    .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
                    .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
                    .args(["--log-level", "warn", "--logger", "zap", "--quota-backend-bytes", "4294967296"])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("etcd runs (Debian package etcd-server)")?,
            );
        }
        let etcd = Etcd { _dir: dir, members, clients: ports.iter().map(|(c, _)| *c).collect() };
        let started = Instant::now();
        for c in &etcd.clients {
            while !healthy(*c) {
                if started.elapsed() > Duration::from_secs(30) {
                    bail!("etcd not healthy within 30 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(etcd)
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.clients.iter().map(|c| format!("127.0.0.1:{c}")).collect();
        format!("etcd://{}", hosts.join(","))
    }
}

/// Returns true if the etcd member serving clients on `port` says it is healthy.
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut text = String::new();
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok()
        && s.read_to_string(&mut text).is_ok()
        && text.contains("\"health\":\"true\"")
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    ticks(&format!("/proc/{pid}/stat"))
}

/// CPU time its thread named `name` has used so far (zero if it has none).
pub fn thread_cpu_time(pid: u32, name: &str) -> Duration {
    threads(pid)
        .into_iter()
        .filter(|(_, n)| n == name)
        .map(|(tid, _)| ticks(&format!("/proc/{pid}/task/{tid}/stat")))
        .sum()
}

/// The threads of `pid`: id and name.
pub fn threads(pid: u32) -> Vec<(u32, String)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    tasks
        .filter_map(|t| {
            let tid = t.file_name().to_string_lossy().parse().ok()?;
            Some((tid, std::fs::read_to_string(t.path().join("comm")).ok()?.trim().to_string()))
        })
        .collect()
}

fn ticks(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
