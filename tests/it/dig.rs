//! `dig`, exactly as a user types it (with the test server's port).

use tokio::process::Command;

use crate::support::*;

/// Runs dig against the test server and returns its stdout.
pub async fn dig(s: &TestServer, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", s.dns.ip()))
        .args(["-p", &s.dns.port().to_string()])
        .args(args)
        .output()
        .await
        .expect("dig is installed (scripts/test.sh installs dnsutils)");
    assert!(out.status.success(), "dig failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of dig's ANSWER SECTION, whitespace folded.
pub fn answer_section(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn dig_srv_as_in_the_readme() {
    let s = server().example_zones().start().await;
    let out = dig(&s, &["order-service.service.local", "SRV"]).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd;"), "{out}");
    assert_eq!(
        answer_section(&out),
        [
            "order-service.service.local. 5 IN SRV 1 1 8001 order-1.instance.local.",
            "order-service.service.local. 5 IN SRV 1 1 8001 order-2.instance.local.",
            "order-service.service.local. 5 IN SRV 1 1 8001 order-3.instance.local.",
        ]
    );
    assert!(out.contains("order-2.instance.local.\t5\tIN\tA\t192.168.1.11"), "glue in ADDITIONAL: {out}");
}

#[tokio::test]
async fn dig_short_rotates_and_tcp_answers_the_same() {
    let s = server().example_zones().start().await;
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let out = dig(&s, &["+short", "order-service.service.local", "A"]).await;
        firsts.push(out.lines().next().unwrap().to_string());
    }
    assert_eq!(firsts, ["192.168.1.10", "192.168.1.11", "192.168.1.12"]);
    let tcp = dig(&s, &["+tcp", "+short", "payment-service.service.local"]).await;
    assert_eq!(tcp.trim(), "192.168.1.20");
    let nx = dig(&s, &["missing.service.local"]).await;
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("IN\tSOA\tns.local. hostmaster.local."), "{nx}");
}
