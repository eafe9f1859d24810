//! The runnable examples (examples/*.rs), driven end to end against a real signpost: the
//! compiled example binaries (`cargo test` builds them next to this test binary) talk to an
//! in-process server over real sockets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::support::{self, DEADLINE, TestServer};

/// `target/<profile>/examples/NAME`, beside `target/<profile>/deps/it-*`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test` (which builds examples) or `cargo build --examples`",
        path.display()
    );
    path
}

/// A running example, killed on drop; its stdout as lines.
struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    fn spawn(name: &str, args: &[&str]) -> Example {
        let mut child = Command::new(example_path(name))
            .args(args)
            .env_remove("SIGNPOST_API")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Example { child, lines, seen: Vec::new() }
    }

    /// Waits for a line starting with `prefix`; returns the rest of it.
    fn wait_line(&mut self, prefix: &str) -> String {
        let start = Instant::now();
        loop {
            let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_default();
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no {prefix:?} line in {:#?}", self.seen));
            self.seen.push(line.clone());
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success());
    }

    /// Waits for the exit; returns the status and every stdout line.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < DEADLINE, "still running: {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            lines.push(line);
        }
        (status, lines)
    }
}

/// Starts an order_service instance registered with `s`; returns it and its address.
fn order_service(s: &TestServer, id: &str) -> (Example, SocketAddr) {
    let args = ["--signpost", &s.api, "--listen", "127.0.0.1:0", "--id", id, "--drain", "0s", "--check-interval", "1s"];
    let mut svc = Example::spawn("order_service", &args);
    // Blocking reads, off the async workers that serve the registration.
    tokio::task::block_in_place(|| {
        let addr = svc.wait_line("listening ").parse().unwrap();
        assert_eq!(svc.wait_line("registered "), id);
        (svc, addr)
    })
}

/// The ports of the SRV answer for order-service.
async fn srv_ports(s: &TestServer) -> Vec<u16> {
    let m = s.udp("order-service.service.local.", RecordType::SRV).await;
    m.answers.iter().filter_map(|r| if let RData::SRV(srv) = &r.data { Some(srv.port) } else { None }).collect()
}

async fn get(url: &str) -> (u16, String) {
    let r = support::http_client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_service_registers_then_deregisters_on_sigterm() {
    let s = support::server().start().await;
    let (svc, addr) = order_service(&s, "order-7");
    // Registered with a check that starts critical: answered once the first probe passes.
    support::wait_for("order-7 in the SRV answer", || async { srv_ports(&s).await == [addr.port()] }).await;
    let a = s.udp("order-7.instance.local.", RecordType::A).await;
    assert_eq!(support::addresses(&a), ["127.0.0.1"]);
    let (status, body) = get(&format!("http://{addr}/orders/42")).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["orderId"], "42");
    assert_eq!(body["servedBy"], "order-7");

    svc.signal("TERM");
    let (status, lines) = tokio::task::spawn_blocking(|| svc.finish()).await.unwrap();
    assert!(status.success(), "{status:?} {lines:#?}");
    let deregistered = lines.iter().position(|l| l == "deregistered order-7").expect("deregistered");
    assert!(deregistered < lines.iter().position(|l| l == "stopped").unwrap(), "deregistered before it stopped");
    let gone = s.udp("order-7.instance.local.", RecordType::A).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
    assert!(srv_ports(&s).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_client_keeps_succeeding_when_an_instance_dies() {
    let s = support::server().start().await;
    let (_a, a_addr) = order_service(&s, "order-a");
    let (b, b_addr) = order_service(&s, "order-b");
    support::wait_for("both instances in the SRV answer", || async { srv_ports(&s).await.len() == 2 }).await;

    let dns = s.dns.to_string();
    let args = ["--dns", &dns, "--requests", "30", "--interval", "20ms", "--backoff", "5ms", "--breaker-reset", "1m"];
    let mut client = Example::spawn("srv_client", &args);
    let client = tokio::task::spawn_blocking(move || {
        for _ in 0..3 {
            client.wait_line("request ");
        }
        // Killed without deregistering: signpost still answers it until its check fails, and
        // the client's cached answer has it for the TTL.
        drop(b);
        client.finish()
    });
    let (status, lines) = client.await.unwrap();
    assert!(status.success(), "{lines:#?}");
    assert!(lines.contains(&"summary ok=30 failed=0".to_string()), "{lines:#?}");
    assert!(lines.iter().any(|l| l == &format!("breaker open {b_addr}")), "{lines:#?}");
    let served = |addr: SocketAddr| lines.iter().filter(|l| l.contains(&format!(" ok from {addr}:"))).count();
    assert!(served(a_addr) >= 27, "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("resolved _order-service._tcp.service.local.: 2 instances")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_forwards_through_dns() {
    let s = support::server().start().await;
    let (_svc, addr) = order_service(&s, "order-g");
    support::wait_for("order-g in the SRV answer", || async { srv_ports(&s).await == [addr.port()] }).await;
    let dns = s.dns.to_string();
    let mut gw = Example::spawn("gateway", &["--dns", &dns, "--listen", "127.0.0.1:0"]);
    let gw_addr = tokio::task::block_in_place(|| gw.wait_line("listening "));

    let r = support::http_client().get(format!("http://{gw_addr}/order-service/orders/9")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], addr.to_string().as_str());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!((body["orderId"].as_str(), body["servedBy"].as_str()), (Some("9"), Some("order-g")));

    let (status, body) = get(&format!("http://{gw_addr}/no-such-service/x")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("service discovery failed"), "{body}");
}
