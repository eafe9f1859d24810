//! Zone transfers: REFUSED to clients outside `[dns] transfer_allow` (the default: everyone),
//! over UDP and TCP; for allowed clients a real AXFR of what DNS answers now (SOA first and
//! last), IXFR answered with the whole zone or the SOA alone; and NSD, a standard secondary,
//! mirroring the catalog through AXFR and following registrations at once through NOTIFY.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::process::Command;

use crate::dig::dig;
use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
meta = { version = "1" }

[[service.instance]]
id = "web-2"
address = "2001:db8::2"
port = 81
weight = 3

[[service]]
name = "db"

[[service.instance]]
id = "db-1"
address = "10.1.0.1"
port = 5432
"#;

/// A transfer question as raw bytes, from the harness's DNS client.
fn transfer_query(name: &str, qtype: RecordType, serial: Option<u32>) -> Vec<u8> {
    let mut m = Message::new(0x5150, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(serial) = serial {
        let soa = SOA::new(Name::root(), Name::root(), serial, 0, 0, 0, 0);
        m.add_authority(Record::from_rdata(Name::from_ascii(name).unwrap(), 0, RData::SOA(soa)));
    }
    m.to_vec().unwrap()
}

async fn ask_tcp(s: &TestServer, bytes: &[u8], from: IpAddr) -> Message {
    let reply = exchange_tcp_from(from, s.dns, bytes).await.expect("a TCP answer");
    strict_parse(&reply).unwrap()
}

async fn ask_udp(s: &TestServer, bytes: &[u8], from: IpAddr) -> Message {
    let reply = exchange_udp_from(from, s.dns, bytes).await.expect("a UDP answer");
    strict_parse(&reply).unwrap()
}

#[tokio::test]
async fn transfers_are_refused_to_clients_not_in_transfer_allow() {
    let s = server().zone("web.toml", ZONE).start().await;
    let out = dig(&s, &["local", "AXFR"]).await;
    assert!(out.contains("Transfer failed."), "{out}");
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        let q = transfer_query("local.", qtype, Some(1));
        for m in [ask_tcp(&s, &q, local).await, ask_udp(&s, &q, local).await] {
            assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{qtype}");
            assert!(m.answers.is_empty() && !m.metadata.authoritative, "{qtype}: nothing of the zone");
            assert_eq!(m.queries.len(), 1, "{qtype}: the question is echoed");
        }
    }
    let metrics = http_client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for (qtype, proto) in [("AXFR", "tcp"), ("AXFR", "udp"), ("IXFR", "tcp")] {
        let counted = metrics.lines().any(|l| {
            l.starts_with("signpost_dns_queries_total{")
                && l.contains(&format!("qtype=\"{qtype}\""))
                && l.contains("rcode=\"REFUSED\"")
                && l.contains(&format!("proto=\"{proto}\""))
        });
        assert!(counted, "{qtype} over {proto} counted as REFUSED:\n{metrics}");
    }

    // Allowing one address allows no other.
    let s = server().zone("web.toml", ZONE).config("[dns]\ntransfer_allow = [\"127.0.0.1\"]\n").start().await;
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let m = ask_tcp(&s, &transfer_query("local.", RecordType::AXFR, None), other).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

/// dig's records of a transfer, whitespace folded, in order.
fn records(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn an_allowed_client_transfers_what_dns_answers_now() {
    let s = server().zone("web.toml", ZONE).config("[dns]\ntransfer_allow = [\"127.0.0.0/8\"]\n").start().await;
    // An instance whose TTL check has not passed yet: its own name exists, its service has no
    // answer for it.
    let body = r#"{"Name": "queue", "ID": "queue-1", "Address": "10.2.0.1", "Port": 5672, "Check": {"TTL": "30s"}}"#;
    let put = http_client().put(s.url("/v1/agent/service/register")).body(body).send().await.unwrap();
    assert_eq!(put.status(), 200);
    // An external node: its name is in the zone too.
    let node = r#"{"Node": "db-host", "Address": "10.20.0.5"}"#;
    let put = http_client().put(s.url("/v1/catalog/register")).body(node).send().await.unwrap();
    assert_eq!(put.status(), 200);

    let out = dig(&s, &["local", "AXFR"]).await;
    let got = records(&out);
    let soa = got.first().expect("records").clone();
    assert!(soa.starts_with("local. 5 IN SOA ns.local. hostmaster.local. "), "{out}");
    assert_eq!(got.last(), Some(&soa), "SOA first and last (RFC 5936)");
    assert!(got.contains(&"local. 5 IN NS ns.local.".to_string()), "{out}");
    assert!(got.contains(&"queue-1.instance.local. 5 IN A 10.2.0.1".to_string()), "{out}");
    assert!(got.contains(&"db-host.node.local. 5 IN A 10.20.0.5".to_string()), "{out}");
    assert!(!got.iter().any(|r| r.starts_with("queue.service.local.")), "no healthy instance: {out}");

    // Every (name, type) of the transfer answers the same records over DNS, and the other way
    // round for the names DNS answers.
    let mut rrsets: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &got[1..got.len() - 1] {
        let f: Vec<&str> = r.split(' ').collect();
        rrsets.insert((f[0].to_string(), f[3].to_string()));
    }
    for (name, qtype) in &rrsets {
        let mut want = records(&dig(&s, &["+tcp", "+noall", "+answer", name, qtype]).await);
        want.sort();
        let mut have: Vec<String> = got[1..got.len() - 1]
            .iter()
            .filter(|r| r.starts_with(&format!("{name} ")) && r.split(' ').nth(3) == Some(qtype))
            .cloned()
            .collect();
        have.sort();
        assert_eq!(have, want, "{name} {qtype}");
    }
    for name in [
        "web.service.local.",
        "v1.web.service.local.",
        "web.service.eu.local.",
        "_web._tcp.service.local.",
        "db.service.local.",
        "web-2.instance.local.",
    ] {
        assert!(rrsets.iter().any(|(n, _)| n == name), "{name} is in the transfer: {out}");
    }
    // DNS-SD's names too: the service types, browsing, a subtype, the instances, the browse
    // domain; none for a service with no healthy instance.
    for (name, qtype) in [
        ("_services._dns-sd._udp.service.local.", "PTR"),
        ("_web._tcp.service.local.", "PTR"),
        ("_web._tcp.service.eu.local.", "PTR"),
        ("_v1._sub._web._tcp.service.local.", "PTR"),
        ("web-1._web._tcp.service.local.", "SRV"),
        ("web-1._web._tcp.service.local.", "TXT"),
        ("db-1._db._tcp.service.local.", "TXT"),
        ("b._dns-sd._udp.local.", "PTR"),
        ("lb._dns-sd._udp.service.local.", "PTR"),
    ] {
        assert!(rrsets.contains(&(name.to_string(), qtype.to_string())), "{name} {qtype} is in the transfer: {out}");
    }
    assert!(!got.iter().any(|r| r.contains("_queue._tcp")), "no healthy instance, no DNS-SD records: {out}");

    // IXFR: the SOA alone for a client up to date, the whole zone for one behind (over TCP),
    // and the SOA alone over UDP (the sign to ask over TCP).
    let serial: u32 = soa.split(' ').nth(6).unwrap().parse().unwrap();
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let current = ask_tcp(&s, &transfer_query("local.", RecordType::IXFR, Some(serial)), local).await;
    assert_eq!(current.answers.len(), 1);
    assert!(matches!(current.answers[0].data, RData::SOA(_)));
    let behind = dig(&s, &["local", &format!("IXFR={}", serial - 1)]).await;
    assert_eq!(records(&behind), got, "IXFR from an older serial: the whole zone");
    let udp = ask_udp(&s, &transfer_query("local.", RecordType::IXFR, Some(serial - 1)), local).await;
    assert_eq!(udp.answers.len(), 1);
    // AXFR over UDP: TC, to TCP. A name below the apex is no zone of ours.
    let udp = ask_udp(&s, &transfer_query("local.", RecordType::AXFR, None), local).await;
    assert!(udp.metadata.truncation && udp.answers.is_empty());
    let below = ask_tcp(&s, &transfer_query("service.local.", RecordType::AXFR, None), local).await;
    assert_eq!(below.metadata.response_code, ResponseCode::NotAuth);
}

/// An NSD process of the test's, stopped when dropped.
struct Nsd {
    child: tokio::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Nsd {
    /// NSD on `port`, secondary for `local` from signpost at `primary`.
    fn start(port: u16, primary: SocketAddr) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  \
             zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zonelist\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  verbosity: 2\n\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: local\n  zonefile: local.zone\n  request-xfr: {ip}@{p} NOKEY\n  allow-notify: {ip} NOKEY\n",
            ip = primary.ip(),
            p = primary.port(),
        );
        std::fs::write(dir.path().join("nsd.conf"), conf).unwrap();
        let child = Command::new("nsd")
            .args(["-d", "-c"])
            .arg(dir.path().join("nsd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nsd is installed (scripts/test.sh installs it)");
        Nsd { child, port, _dir: dir }
    }

    async fn ask(&self, name: &str, qtype: RecordType) -> Option<Message> {
        let server: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let reply = exchange_udp(server, &Ask::new(name, qtype).to_bytes()).await?;
        Message::from_vec(&reply).ok()
    }
}

#[tokio::test]
async fn nsd_mirrors_the_catalog_and_follows_changes_through_notify() {
    let nsd_port = free_port();
    let config = format!("[dns]\ntransfer_allow = [\"127.0.0.1\"]\nnotify = [\"127.0.0.1:{nsd_port}\"]\n");
    let s = server().zone("web.toml", ZONE).config(&config).start().await;
    let nsd = Nsd::start(nsd_port, s.dns);

    let mirrored = |name: &'static str, want: &'static [&'static str]| {
        let nsd = &nsd;
        async move {
            let Some(m) = nsd.ask(name, RecordType::A).await else { return false };
            let mut got = addresses(&m);
            got.sort();
            got == want
        }
    };
    // NSD's first transfer can take a while on a loaded machine (its own retry timers): a longer
    // deadline than ours, and its log if even that passes.
    let started = std::time::Instant::now();
    while !mirrored("web.service.local.", &["10.0.0.1"]).await {
        let log = std::fs::read_to_string(nsd._dir.path().join("nsd.log")).unwrap_or_default();
        assert!(started.elapsed() < 3 * DEADLINE, "NSD did not transfer the zone; its log:\n{log}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let m = nsd.ask("_web._tcp.service.local.", RecordType::SRV).await.unwrap();
    assert_eq!(m.answers.len(), 2, "{m:?}");
    // The secondary serves DNS-SD browsing and resolving too.
    let m = nsd.ask("_web._tcp.service.local.", RecordType::PTR).await.unwrap();
    assert_eq!(m.answers.len(), 2, "{m:?}");
    let m = nsd.ask("web-2._web._tcp.service.local.", RecordType::SRV).await.unwrap();
    assert_eq!(lines(&m.answers), ["web-2._web._tcp.service.local. 5 IN SRV 1 3 81 web-2.instance.local."]);

    // A registration reaches the secondary through NOTIFY, long before the SOA's refresh.
    let body = r#"{"Name": "cache", "ID": "cache-1", "Address": "10.3.0.1", "Port": 6379}"#;
    let put = http_client().put(s.url("/v1/agent/service/register")).body(body).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let took = wait_for("NSD to follow a registration", || mirrored("cache.service.local.", &["10.3.0.1"])).await;
    eprintln!("registration on the secondary after {took:?}");
    let put = http_client().put(s.url("/v1/agent/service/deregister/cache-1")).send().await.unwrap();
    assert_eq!(put.status(), 200);
    wait_for("NSD to follow a deregistration", || async {
        nsd.ask("cache.service.local.", RecordType::A)
            .await
            .is_some_and(|m| m.metadata.response_code == ResponseCode::NXDomain)
    })
    .await;
}
