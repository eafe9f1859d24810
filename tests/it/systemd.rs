//! The built binary under a service manager's eyes: systemd's notify protocol over a real
//! `NOTIFY_SOCKET` datagram socket the test reads (READY=1 only once DNS answers, STATUS=,
//! WATCHDOG=1 at half the interval, RELOADING=1 … READY=1 around SIGHUP, STOPPING=1), and what a
//! reload (SIGHUP, `systemctl reload`) changes while queries keep being answered.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::binary::{Binary, message, repo_zones, signpost};
use crate::support::*;

/// A notify socket of the test's own, as systemd gives a `Type=notify` service.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        NotifySocket { socket, _dir: dir, path }
    }

    /// The next message's lines; panics after `DEADLINE`.
    fn next(&self) -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notify message in time");
        String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string).collect()
    }

    /// Reads messages until one holds `line`; returns the lines of that message.
    fn until(&self, line: &str) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.next();
            if lines.iter().any(|l| l == line) {
                return lines;
            }
            assert!(start.elapsed() < DEADLINE, "no {line} in time");
        }
    }
}

#[tokio::test]
async fn ready_status_watchdog_reload_and_stopping_reach_the_notify_socket() {
    let notify = NotifySocket::new();
    let port = free_port();
    let dns: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let data = tempfile::tempdir().unwrap();
    let mut child = signpost()
        .args(["serve", "--dns-addr", &dns.to_string(), "--http-addr", "127.0.0.1:0"])
        .args(["--zones", repo_zones().to_str().unwrap(), "--data-dir", data.path().to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // READY=1 comes only once DNS answers: a query sent the moment it arrives is answered.
    let ready = notify.until("READY=1");
    let m = query(dns, Transport::Udp, &Ask::new("order-service.service.local.", RecordType::A)).await;
    assert_eq!(addresses(&m).len(), 3);
    let status = ready.iter().find(|l| l.starts_with("STATUS=")).expect("STATUS= with READY=1");
    assert!(status.contains("services") && status.contains("instances"), "{status}");

    // WATCHDOG=1 at half the 400 ms interval.
    let mut pings = Vec::new();
    while pings.len() < 4 {
        if notify.next().iter().any(|l| l == "WATCHDOG=1") {
            pings.push(Instant::now());
        }
    }
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g < Duration::from_millis(400)), "pings every 200 ms: {gaps:?}");

    // SIGHUP: RELOADING=1 (with the monotonic time systemd asks for), then READY=1 again.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let reloading = notify.until("RELOADING=1");
    assert!(reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    notify.until("READY=1");

    // SIGTERM: STOPPING=1, and a clean exit.
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    notify.until("STOPPING=1");
    assert!(child.wait().unwrap().success());
}

/// The NSID a server answers with, through dig, or `None`.
async fn nsid(dns: std::net::SocketAddr) -> Option<String> {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", dns.ip()))
        .args(["-p", &dns.port().to_string(), "+nsid", "order-service.service.local", "A"])
        .output()
        .await
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let line = out.lines().find(|l| l.starts_with("; NSID:"))?;
    Some(line.rsplit_once('(')?.1.trim_end_matches(')').trim_matches('"').to_string())
}

/// Waits for a log line whose message is `wanted`; returns it.
fn log_line(b: &Binary, wanted: &str) -> String {
    let start = Instant::now();
    loop {
        let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_default();
        let line = b.log.recv_timeout(left).unwrap_or_else(|_| panic!("no {wanted:?} log line"));
        if message(&line).starts_with(wanted) {
            return line;
        }
    }
}

#[tokio::test]
async fn a_reload_applies_what_it_can_names_the_rest_and_drops_no_query() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signpost.toml");
    std::fs::write(&config, "[dns]\nnsid = \"before\"\n").unwrap();
    let zones = repo_zones();
    let b = Binary::serve(
        &["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap(), "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(nsid(b.dns_udp).await.as_deref(), Some("before"));

    // Queries all along the reloads: every one answered.
    let (stop, failed, answered) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, failed, answered, dns) = (stop.clone(), failed.clone(), answered.clone(), b.dns_udp);
        tokio::spawn(async move {
            let ask = Ask::new("order-service.service.local.", RecordType::A);
            while !stop.load(Ordering::Relaxed) {
                match exchange_udp(dns, &ask.to_bytes()).await {
                    Some(_) => answered.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    // A new NSID applies at once; new health defaults wait for a restart, and say so.
    std::fs::write(&config, "[dns]\nnsid = \"after\"\n\n[health]\nrise = 5\n").unwrap();
    b.signal("HUP");
    let warned = log_line(&b, "changed in the configuration; it takes effect at the next restart");
    assert!(warned.contains("health"), "{warned}");
    log_line(&b, "configuration reloaded");
    assert_eq!(nsid(b.dns_udp).await.as_deref(), Some("after"));

    // A configuration that does not validate changes nothing.
    std::fs::write(&config, "[dns]\nnsid = \"\"\n").unwrap();
    b.signal("HUP");
    let refused = log_line(&b, "configuration not reloaded");
    assert!(refused.contains("dns.nsid"), "{refused}");
    assert_eq!(nsid(b.dns_udp).await.as_deref(), Some("after"));

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(answered.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no query unanswered across the reloads");
}
