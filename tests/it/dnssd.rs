//! DNS-based Service Discovery (RFC 6763) over real sockets: `dig` for every name form, with the
//! same questions' wire answers parsed strictly over UDP and TCP; a table of healthy, unhealthy,
//! tagged and metadata-bearing services checked against the registry; changes at the next
//! query; a service of 10,000 instances within the truncation rules. `dnssd_avahi.rs` browses,
//! resolves and connects with Avahi.

use std::collections::BTreeSet;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

use crate::api::{ok_put, register};
use crate::dig::{answer_section, dig};
use crate::support::*;

const ZONE: &str = r#"
[[service]]
name = "web"

[[service.instance]]
id = "web-1"
address = "10.1.0.1"
port = 8080
meta = { version = "2", path = "/api" }

[[service.instance]]
id = "web-2"
address = "10.1.0.2"
port = 8081
weight = 2
tags = ["v1"]
region = "eu"

[[service]]
name = "db"
ttl = "30s"

[[service.instance]]
id = "db-1"
address = "2001:db8::1"
port = 5432

[[service]]
name = "down"
check = { tcp = "127.0.0.1:1", interval = "1m" }

[[service.instance]]
id = "down-1"
address = "10.2.0.1"
port = 1
"#;

const CONFIG: &str = "[dns]\ndns_sd_networks = [\"10.1.0.0/16\"]\n";

/// A question asked over UDP (EDNS 1232) or TCP, its answer parsed strictly.
async fn strict(s: &TestServer, transport: Transport, ask: &Ask) -> Message {
    let bytes = ask.to_bytes();
    let reply = match transport {
        Transport::Udp => exchange_udp(s.dns, &bytes).await,
        Transport::Tcp => exchange_tcp(s.dns, &bytes).await,
    };
    let reply = reply.unwrap_or_else(|| panic!("no {transport:?} answer to {} {}", ask.name, ask.qtype));
    strict_parse(&reply).unwrap_or_else(|e| panic!("{} {} over {transport:?}: {e}", ask.name, ask.qtype))
}

/// Records as dig prints them (TXT strings quoted), whitespace folded, sorted.
fn folded(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = m
        .answers
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::TXT(t) => {
                    t.txt_data.iter().map(|s| format!("{:?}", String::from_utf8_lossy(s))).collect::<Vec<_>>().join(" ")
                }
                other => other.to_string(),
            };
            format!("{} {} IN {} {data}", r.name, r.ttl, r.record_type())
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn dig_answers_every_dns_sd_form_and_the_wire_parses_strictly() {
    let s = server().zone("z.toml", ZONE).config(CONFIG).start().await;
    wait_for("down-1 to fail its check", || async {
        s.udp("down.service.local.", RecordType::A).await.answers.is_empty()
    })
    .await;
    let nx = ResponseCode::NXDomain;
    let ok = ResponseCode::NoError;
    let cases: &[(&str, &str, ResponseCode, &[&str])] = &[
        (
            "_services._dns-sd._udp.service.local",
            "PTR",
            ok,
            &[
                "_services._dns-sd._udp.service.local. 5 IN PTR _db._tcp.service.local.",
                "_services._dns-sd._udp.service.local. 5 IN PTR _web._tcp.service.local.",
            ],
        ),
        (
            "_web._tcp.service.local",
            "PTR",
            ok,
            &[
                "_web._tcp.service.local. 5 IN PTR web-1._web._tcp.service.local.",
                "_web._tcp.service.local. 5 IN PTR web-2._web._tcp.service.local.",
            ],
        ),
        // The RFC 2782 SRV answer on the same name stays as it was.
        (
            "_web._tcp.service.local",
            "SRV",
            ok,
            &[
                "_web._tcp.service.local. 5 IN SRV 1 1 8080 web-1.instance.local.",
                "_web._tcp.service.local. 5 IN SRV 1 2 8081 web-2.instance.local.",
            ],
        ),
        ("_db._tcp.service.local", "PTR", ok, &["_db._tcp.service.local. 30 IN PTR db-1._db._tcp.service.local."]),
        (
            "_web._tcp.service.eu.local",
            "PTR",
            ok,
            &["_web._tcp.service.eu.local. 5 IN PTR web-2._web._tcp.service.eu.local."],
        ),
        (
            "_v1._sub._web._tcp.service.local",
            "PTR",
            ok,
            &["_v1._sub._web._tcp.service.local. 5 IN PTR web-2._web._tcp.service.local."],
        ),
        (
            "web-1._web._tcp.service.local",
            "SRV",
            ok,
            &["web-1._web._tcp.service.local. 5 IN SRV 1 1 8080 web-1.instance.local."],
        ),
        (
            "web-1._web._tcp.service.local",
            "TXT",
            ok,
            &[r#"web-1._web._tcp.service.local. 5 IN TXT "txtvers=1" "path=/api" "version=2""#],
        ),
        ("db-1._db._tcp.service.local", "TXT", ok, &[r#"db-1._db._tcp.service.local. 30 IN TXT """#]),
        (
            "db-1._db._tcp.service.local",
            "SRV",
            ok,
            &["db-1._db._tcp.service.local. 30 IN SRV 1 1 5432 db-1.instance.local."],
        ),
        ("b._dns-sd._udp.local", "PTR", ok, &["b._dns-sd._udp.local. 5 IN PTR service.local."]),
        ("db._dns-sd._udp.service.local", "PTR", ok, &["db._dns-sd._udp.service.local. 5 IN PTR service.local."]),
        (
            "lb._dns-sd._udp.0.0.1.10.in-addr.arpa",
            "PTR",
            ok,
            &["lb._dns-sd._udp.0.0.1.10.in-addr.arpa. 5 IN PTR service.local."],
        ),
        ("_sub._web._tcp.service.local", "PTR", ok, &[]),
        ("web-1._web._tcp.service.local", "A", ok, &[]),
        ("down-1._down._tcp.service.local", "SRV", ok, &[]),
        ("_down._tcp.service.local", "PTR", ok, &[]),
        ("_dns-sd._udp.service.local", "PTR", ok, &[]),
        ("nope._web._tcp.service.local", "SRV", nx, &[]),
        ("web-1._web._tcp.service.eu.local", "SRV", nx, &[]),
        ("_sub._db._tcp.service.local", "PTR", nx, &[]),
        ("_v2._sub._web._tcp.service.local", "PTR", nx, &[]),
        ("x.web-1._web._tcp.service.local", "SRV", nx, &[]),
        ("r._dns-sd._udp.local", "PTR", nx, &[]),
    ];
    for &(name, qtype, rcode, want) in cases {
        let out = dig(&s, &[name, qtype]).await;
        let status = format!("status: {}", if rcode == nx { "NXDOMAIN" } else { "NOERROR" });
        assert!(out.contains(&status), "{name} {qtype}: {out}");
        assert!(out.contains(" aa"), "{name} {qtype}: authoritative: {out}");
        let mut got = answer_section(&out);
        got.sort();
        assert_eq!(got, want, "{name} {qtype}: {out}");
        let ask = Ask::new(&format!("{name}."), qtype.parse().unwrap());
        for transport in [Transport::Udp, Transport::Tcp] {
            let m = strict(&s, transport, &ask).await;
            let what = format!("{name} {qtype} over {transport:?}");
            assert_eq!(m.metadata.response_code, rcode, "{what}");
            assert!(!m.metadata.truncation, "{what}");
            assert_eq!(folded(&m), want, "{what}");
            let soa: Vec<_> = m.authorities.iter().filter(|r| r.record_type() == RecordType::SOA).collect();
            if want.is_empty() && !name.ends_with(".arpa") {
                // A negative answer carries the SOA, whose TTL and minimum are negative_ttl.
                assert_eq!(soa.len(), 1, "{what}");
                assert_eq!(soa[0].ttl, 1, "{what}");
            } else {
                assert!(soa.is_empty(), "{what}");
            }
        }
    }
    // The glue of an instance's SRV is its target's address.
    let m = strict(&s, Transport::Udp, &Ask::new("web-2._web._tcp.service.local.", RecordType::SRV)).await;
    assert_eq!(lines(&m.additionals), ["web-2.instance.local. 5 IN A 10.1.0.2"]);
    let m = strict(&s, Transport::Udp, &Ask::new("db-1._db._tcp.service.local.", RecordType::SRV)).await;
    assert_eq!(lines(&m.additionals), ["db-1.instance.local. 30 IN AAAA 2001:db8::1"]);
}

/// What the registry says: a service's answerable instances (passing or warning).
fn answered(s: &TestServer, service: &str) -> BTreeSet<String> {
    let snap = s.registry.snapshot();
    snap.service(service)
        .filter(|v| matches!(v.status.as_str(), "passing" | "warning"))
        .map(|v| v.instance.id.clone())
        .collect()
}

/// The instance names a browse answer lists: the first label of each PTR target.
fn browsed(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_string().split('.').next().unwrap().to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn browsing_and_resolving_answer_what_the_registry_holds() {
    let s = server().start().await;
    // Healthy, unhealthy (a TTL check not yet passed, one that failed, maintenance), tagged,
    // and with metadata.
    let table = [
        json!({"Name": "api", "ID": "api-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1"], "Meta": {"team": "core"}}),
        json!({"Name": "api", "ID": "api-2", "Address": "10.0.0.2", "Port": 81, "Tags": ["v1", "canary"],
               "Weights": {"Passing": 5}}),
        json!({"Name": "api", "ID": "api-3", "Address": "10.0.0.3", "Port": 82, "Check": {"TTL": "1m"}}),
        json!({"Name": "api", "ID": "api-4", "Address": "fd00::4", "Port": 83, "Meta": {"a": "1", "b": ""}}),
        json!({"Name": "queue", "ID": "queue-1", "Address": "10.0.1.1", "Port": 5672, "Check": {"TTL": "1m"}}),
        json!({"Name": "cache", "ID": "cache-1", "Address": "10.0.2.1", "Port": 6379, "Tags": ["v1"],
               "Check": {"TTL": "1m", "Status": "passing"}}),
        json!({"Name": "cache", "ID": "cache-2", "Address": "10.0.2.2", "Port": 6379,
               "Check": {"TTL": "1m", "Status": "warning"}}),
        json!({"Name": "cache", "ID": "cache-3", "Address": "10.0.2.3", "Port": 6379,
               "Check": {"TTL": "1m", "Status": "passing"}}),
    ];
    for body in table {
        register(&s, body).await;
    }
    ok_put(&s, "/v1/agent/check/fail/service:cache-3").await;
    ok_put(&s, "/v1/agent/service/maintenance/api-4?enable=true").await;

    let types = strict(&s, Transport::Udp, &Ask::new("_services._dns-sd._udp.service.local.", RecordType::PTR)).await;
    let want: BTreeSet<String> =
        ["api", "cache", "queue"].iter().filter(|n| !answered(&s, n).is_empty()).map(|n| format!("_{n}")).collect();
    assert_eq!(browsed(&types), want, "the service types are the services DNS answers for");
    assert_eq!(want, BTreeSet::from(["_api".to_string(), "_cache".to_string()]));

    for service in ["api", "cache", "queue"] {
        let m =
            strict(&s, Transport::Udp, &Ask::new(&format!("_{service}._tcp.service.local."), RecordType::PTR)).await;
        assert_eq!(browsed(&m), answered(&s, service), "_{service}._tcp");
        let snap = s.registry.snapshot();
        for v in snap.service(service) {
            let i = &v.instance;
            let name = format!("{}._{service}._tcp.service.local.", i.id);
            let srv = strict(&s, Transport::Udp, &Ask::new(&name, RecordType::SRV)).await;
            let txt = strict(&s, Transport::Tcp, &Ask::new(&name, RecordType::TXT)).await;
            for m in [&srv, &txt] {
                assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}: registered, so it exists");
            }
            if !answered(&s, service).contains(&i.id) {
                assert!(srv.answers.is_empty() && txt.answers.is_empty(), "{name}: {:?} is not answered", v.status);
                continue;
            }
            let RData::SRV(r) = &srv.answers[0].data else { panic!("{name}: {srv:?}") };
            assert_eq!(
                (r.port, r.weight, r.target.to_string()),
                (i.port, i.weight as u16, format!("{}.instance.local.", i.id))
            );
            let RData::TXT(t) = &txt.answers[0].data else { panic!("{name}: {txt:?}") };
            let strings: Vec<String> = t.txt_data.iter().map(|s| String::from_utf8_lossy(s).to_string()).collect();
            let mut want: Vec<String> = i.meta.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if want.is_empty() {
                want.push(String::new());
            } else {
                want.insert(0, "txtvers=1".into());
            }
            assert_eq!(strings, want, "{name}: RFC 6763 §6");
        }
        // Each tag browses as a subtype: the answered instances that carry it.
        let tags: BTreeSet<String> = snap.service(service).flat_map(|v| v.instance.tags.clone()).collect();
        for tag in tags {
            let q = format!("_{tag}._sub._{service}._tcp.service.local.");
            let m = strict(&s, Transport::Udp, &Ask::new(&q, RecordType::PTR)).await;
            let want: BTreeSet<String> = snap
                .service(service)
                .filter(|v| v.instance.tags.contains(&tag) && answered(&s, service).contains(&v.instance.id))
                .map(|v| v.instance.id.clone())
                .collect();
            assert_eq!(browsed(&m), want, "{q}");
        }
    }
}

#[tokio::test]
async fn a_change_is_browsed_at_the_next_query() {
    let s = server().start().await;
    let browse = || async { browsed(&s.udp("_web._tcp.service.local.", RecordType::PTR).await) };
    let types = || async { browsed(&s.udp("_services._dns-sd._udp.service.local.", RecordType::PTR).await) };
    assert!(types().await.is_empty());
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80})).await;
    assert_eq!(browse().await, BTreeSet::from(["web-1".to_string()]), "a registration is in the very next answer");
    assert_eq!(types().await, BTreeSet::from(["_web".to_string()]));
    register(
        &s,
        json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Port": 80,
                        "Check": {"TTL": "1m", "Status": "passing"}}),
    )
    .await;
    assert_eq!(browse().await.len(), 2);
    ok_put(&s, "/v1/agent/check/fail/service:web-2").await;
    assert_eq!(browse().await, BTreeSet::from(["web-1".to_string()]), "an unhealthy instance leaves at once");
    let srv = s.udp("web-2._web._tcp.service.local.", RecordType::SRV).await;
    assert!(srv.answers.is_empty() && srv.metadata.response_code == ResponseCode::NoError, "{srv:?}");
    ok_put(&s, "/v1/agent/check/pass/service:web-2").await;
    assert_eq!(browse().await.len(), 2, "and comes back at once");
    ok_put(&s, "/v1/agent/service/deregister/web-2").await;
    let srv = s.udp("web-2._web._tcp.service.local.", RecordType::SRV).await;
    assert_eq!(srv.metadata.response_code, ResponseCode::NXDomain, "a deregistered instance's name is gone");
    ok_put(&s, "/v1/agent/service/deregister/web-1").await;
    assert!(types().await.is_empty(), "a service with no instance is no service type");
    let m = s.udp("_web._tcp.service.local.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

/// Two zone files of 5,000 instances each (the per-file limit is 10,000): one service, `big`.
fn big_zones() -> Vec<(String, String)> {
    (0..2)
        .map(|f| {
            let mut z = String::from("[[service]]\nname = \"big\"\n");
            for i in f * 5000..(f + 1) * 5000 {
                z += &format!(
                    "[[service.instance]]\nid = \"big-{i}\"\naddress = \"10.{}.{}.{}\"\nport = 8000\n",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255
                );
            }
            (format!("big{f}.toml"), z)
        })
        .collect()
}

#[tokio::test]
async fn a_service_with_ten_thousand_instances_browses_within_the_truncation_rules() {
    let mut builder = server();
    for (name, text) in big_zones() {
        builder = builder.zone(&name, &text);
    }
    let s = builder.start().await;
    let name = "_big._tcp.service.local.";
    for payload in [None, Some(512), Some(1232), Some(4096)] {
        let ask = Ask { edns_payload: payload, ..Ask::new(name, RecordType::PTR) };
        let reply = exchange_udp(s.dns, &ask.to_bytes()).await.expect("a UDP answer");
        let m = strict_parse(&reply).unwrap_or_else(|e| panic!("{payload:?}: {e}"));
        let limit = payload.map_or(512, |p| usize::from(p.min(1232)));
        assert!(reply.len() <= limit, "{payload:?}: {} bytes", reply.len());
        assert!(m.metadata.truncation, "{payload:?}: TC, so that the client asks over TCP");
        assert!(!m.answers.is_empty(), "{payload:?}: as many whole records as fit");
        assert!(m.authorities.is_empty() && m.additionals.is_empty(), "{payload:?}: TC keeps answers only");
        assert_eq!(m.edns.is_some(), payload.is_some(), "{payload:?}: the OPT is kept");
        // Whole records only, and as many as fit: none takes more than 23 bytes (`big-9999`).
        assert!(reply.len() + 23 > limit, "{payload:?}: {} bytes leave room for another", reply.len());
    }
    // Over TCP as many as a message holds (64 KiB), the first of them rotating.
    let mut firsts = BTreeSet::new();
    for _ in 0..3 {
        let reply = exchange_tcp(s.dns, &Ask::new(name, RecordType::PTR).to_bytes()).await.expect("a TCP answer");
        let m = strict_parse(&reply).unwrap();
        assert!(m.metadata.truncation, "10,000 names do not fit one message");
        assert!(m.answers.len() > 900, "{}", m.answers.len());
        assert!(reply.len() <= 65535);
        firsts.insert(m.answers[0].data.to_string());
    }
    assert_eq!(firsts.len(), 3, "the browse rotates: {firsts:?}");
    // Any one of them resolves.
    let m = strict(&s, Transport::Udp, &Ask::new("big-9999._big._tcp.service.local.", RecordType::SRV)).await;
    assert_eq!(lines(&m.additionals), ["big-9999.instance.local. 5 IN A 10.0.39.15"]);
}
