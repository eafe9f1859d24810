//! Black-box tests of the built `signpost` binary, as a user runs it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::support::{self, DEADLINE, Transport};

pub fn repo_zones() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zones")
}

/// A running `signpost serve`, killed on drop.
pub struct Binary {
    child: Child,
    pub dns_udp: SocketAddr,
    pub dns_tcp: SocketAddr,
    pub http: SocketAddr,
    /// The log lines up to `ready`.
    pub startup_log: Vec<String>,
    /// The log lines after `ready`, as they come.
    pub log: mpsc::Receiver<String>,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signpost() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_signpost"));
    // The environment of the test runner must not configure the binary behind our back.
    for (k, _) in std::env::vars() {
        if k.starts_with("SIGNPOST_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

impl Binary {
    /// Starts `signpost serve ARGS` and waits for its `ready` line. The HTTP API goes on port 0
    /// unless ARGS or ENV say otherwise, so that tests never fight over 8500.
    pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut cmd = signpost();
        cmd.arg("serve");
        if !args.contains(&"--http-addr") && !env.iter().any(|(k, _)| *k == "SIGNPOST_HTTP_ADDR") {
            cmd.args(["--http-addr", "127.0.0.1:0"]);
        }
        cmd.args(args).envs(env.iter().copied()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the signpost binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after `ready`, so the server never writes into a closed pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let start = Instant::now();
        let (mut log, mut udp, mut tcp, mut http) = (Vec::new(), None, None, None);
        loop {
            let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_default();
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no `ready` line; log so far: {log:#?}"));
            let message = message(&line);
            if let Some(a) = message.strip_prefix("listening dns/udp ") {
                udp = Some(a.trim().parse().unwrap());
            }
            if let Some(a) = message.strip_prefix("listening dns/tcp ") {
                tcp = Some(a.trim().parse().unwrap());
            }
            if let Some(a) = message.strip_prefix("listening http ").or(message.strip_prefix("listening https ")) {
                http = Some(a.trim().parse().unwrap());
            }
            let ready = message == "ready";
            log.push(line);
            if ready {
                break;
            }
        }
        let http = http.expect("a listening http line");
        let (dns_udp, dns_tcp) = (udp.expect("a dns/udp line"), tcp.expect("a dns/tcp line"));
        Binary { child, dns_udp, dns_tcp, http, startup_log: log, log: rx }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"INT"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit; panics if it runs past `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < limit, "still running {limit:?} after the signal");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The message of a log line, text (`2024-.. INFO signpost::app: ready`) or JSON
/// (`{"message":"ready",...}`).
pub fn message(line: &str) -> String {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let m = v.get("message").or_else(|| v.get("fields").and_then(|f| f.get("message")));
        return m.and_then(|m| m.as_str()).unwrap_or_default().to_string();
    }
    // After the target: `LEVEL target: message key=value ...`; fields follow the message.
    let text = line.split_once(": ").map_or(line, |(_, m)| m);
    text.to_string()
}

#[tokio::test]
async fn serve_on_port_zero_logs_its_addresses_and_answers() {
    let zones = repo_zones();
    let b = Binary::serve(&["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap()], &[]);
    assert_eq!(b.dns_udp, b.dns_tcp, "UDP and TCP share the port");
    for transport in [Transport::Udp, Transport::Tcp] {
        let m =
            support::query(b.dns_udp, transport, &support::Ask::new("payment-service.service.local.", RecordType::A))
                .await;
        assert_eq!(support::addresses(&m), ["192.168.1.20"]);
    }
}

#[tokio::test]
async fn environment_configures_and_flags_win_over_it() {
    let zones = repo_zones();
    let zones = zones.to_str().unwrap();
    // SIGNPOST_DOMAIN sets the domain...
    let b = Binary::serve(&["--dns-addr", "127.0.0.1:0"], &[("SIGNPOST_DOMAIN", "sd.test"), ("SIGNPOST_ZONES", zones)]);
    let m = support::query(
        b.dns_udp,
        Transport::Udp,
        &support::Ask::new("payment-service.service.sd.test.", RecordType::A),
    )
    .await;
    assert_eq!(support::addresses(&m), ["192.168.1.20"]);
    drop(b);
    // ...and --domain beats it; a config file is beaten by both.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signpost.toml");
    std::fs::write(&config, "[dns]\ndomain = \"from-file\"\nttl = \"30s\"\n").unwrap();
    let b = Binary::serve(
        &["--dns-addr", "127.0.0.1:0", "--domain", "flag.test", "--config", config.to_str().unwrap()],
        &[("SIGNPOST_DOMAIN", "sd.test"), ("SIGNPOST_ZONES", zones)],
    );
    let m = support::query(
        b.dns_udp,
        Transport::Udp,
        &support::Ask::new("payment-service.service.flag.test.", RecordType::A),
    )
    .await;
    assert_eq!(support::addresses(&m), ["192.168.1.20"]);
    assert_eq!(m.answers[0].ttl, 30, "the file's ttl still applies where nothing overrides it");
}

#[test]
fn a_port_in_use_is_one_clear_error_with_the_remedy() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = signpost().args(["serve", "--dns-addr", &addr, "--zones", "/nonexistent"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot bind dns/udp {addr}")), "{stderr}");
    assert!(last.contains("--dns-addr"), "the remedy is named: {stderr}");
}

#[test]
fn a_bad_config_file_points_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signpost.toml");
    std::fs::write(&config, "[dns]\nttl = \"5s\"\nlisten_on = []\n").unwrap();
    let out = signpost().args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("signpost.toml:3:1:") && stderr.contains("listen_on"), "{stderr}");
}

#[test]
fn check_zones_passes_the_examples_and_fails_with_positions() {
    let out = signpost().args(["check-zones", repo_zones().to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[[service]]\nname = \"web\"\n\n[[service.instance]]\nid = \"w1\"\naddress = \"300.1.1.1\"\nport = 80\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.toml"), "[[service]]\nname = \"db\"\nport = 1\n").unwrap();
    let out = signpost().args(["check-zones", dir.path().to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("a.toml:6:11:") && lines[0].contains("300.1.1.1"), "{stdout}");
    assert!(lines[1].contains("b.toml:3:1:") && lines[1].contains("port"), "{stdout}");
}

#[test]
fn stops_on_sigterm() {
    let zones = repo_zones();
    let mut b = Binary::serve(&["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap()], &[]);
    let pid = b.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
}
