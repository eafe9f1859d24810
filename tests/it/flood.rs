//! Floods against the built binary (its own process, so its memory is its own): random names
//! at full speed over UDP, half inside the domain (the fast path's NXDOMAIN) and half outside
//! (the full handler and forwarding, bounded by `max_slow_queries`), must leave its resident
//! memory flat and the server answering.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::binary::{Binary, repo_zones};
use crate::support::*;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A query for a random name (`xorshift` state in `seed`), inside the domain or outside it.
fn random_query(seed: &mut u64) -> Vec<u8> {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let name = if (*seed).is_multiple_of(2) {
        format!("r{:x}.service.local.", *seed)
    } else {
        format!("r{:x}.flood.example.", *seed)
    };
    Ask::new(&name, RecordType::A).to_bytes()
}

/// Sends random queries from `threads` threads until `stop`; returns how many were sent.
fn flood(target: std::net::SocketAddr, threads: usize, run: Duration, max: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < max {
                    // Replies are never read: the kernel drops them once the buffer is full.
                    let _ = sock.send_to(&random_query(&mut seed), target);
                }
            })
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < run && sent.load(Ordering::Relaxed) < max {
        std::thread::park_timeout(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    sent.load(Ordering::Relaxed).min(max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_names_leaves_memory_flat() {
    let data = tempfile::tempdir().unwrap();
    let zones = repo_zones();
    // An upstream that refuses at once (nothing listens on the discard port).
    let args = [
        "--dns-addr",
        "127.0.0.1:0",
        "--zones",
        zones.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--upstream",
        "127.0.0.1:9",
    ];
    let server = Binary::serve(&args, &[]);
    let (pid, target) = (server.pid(), server.dns_udp);
    // Warm-up: allocator arenas, task slots and caches reach their working size.
    tokio::task::spawn_blocking(move || flood(target, 2, Duration::from_secs(2), 2_000_000)).await.unwrap();
    let start = rss_kib(pid);
    let sampler = tokio::task::spawn_blocking(move || {
        let mut peak = 0;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(6) {
            peak = peak.max(rss_kib(pid));
            std::thread::park_timeout(Duration::from_millis(100));
        }
        peak
    });
    let sent = tokio::task::spawn_blocking(move || flood(target, 2, Duration::from_secs(6), 10_000_000)).await.unwrap();
    let peak = sampler.await.unwrap();
    let end = rss_kib(pid);
    eprintln!("flood: {sent} queries; RSS {start} KiB after warm-up, peak {peak} KiB, {end} KiB at the end");
    assert!(sent > 10_000, "the flood ran ({sent} queries)");
    assert!(peak <= start + start / 5, "RSS grew from {start} KiB to a peak of {peak} KiB");
    assert!(end <= start + start / 5, "RSS grew from {start} KiB to {end} KiB");
    // Still answering, both paths. Over UDP as a stub resolver asks: again after a second of
    // silence, since the flood's last queries may still fill the socket's queue when it ends.
    let ask = Ask::new("order-service.service.local.", RecordType::SRV);
    let deadline = Instant::now() + DEADLINE;
    let reply = loop {
        if let Some(reply) = exchange_udp(server.dns_udp, &ask.to_bytes()).await {
            break reply;
        }
        assert!(Instant::now() < deadline, "no answer after the flood");
    };
    assert!(!Message::from_vec(&reply).unwrap().answers.is_empty());
    let reply = exchange_tcp(server.dns_tcp, &ask.to_bytes()).await.expect("a TCP answer after the flood");
    assert!(!Message::from_vec(&reply).unwrap().answers.is_empty());
}
