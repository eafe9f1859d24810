//! Answer policy by client region: the `[[regions.client]]` map, EDNS Client Subnet, the
//! server's own region; SRV priorities; PTR for registered addresses; per-service TTL and limit
//! from API metadata.

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{RData, RecordType};
use signpost::registry::Change;

use crate::support::*;

const MAP: &str = r#"
[[regions.client]]
cidr = "127.0.0.2/32"
region = "east"

[[regions.client]]
cidr = "127.0.0.3/32"
region = "west"

[[regions.client]]
cidr = "10.30.0.0/16"
region = "west"
"#;

const ZONE: &str = r#"
[[service]]
name = "web"
region = "east"

[[service.instance]]
id = "e1"
address = "10.0.1.1"
port = 80

[[service.instance]]
id = "e2"
address = "10.0.1.2"
port = 80

[[service]]
name = "web"
region = "west"

[[service.instance]]
id = "w1"
address = "10.0.2.1"
port = 80
"#;

async fn ask(s: &TestServer, from: &str, name: &str, qtype: RecordType) -> Message {
    let ask = Ask { from: Some(from.parse().unwrap()), ..Ask::new(name, qtype) };
    query(s.dns, Transport::Udp, &ask).await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// SRV answers as (priority, target), sorted.
fn srv(m: &Message) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.target.to_string())),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_client_gets_its_own_region_first() {
    let s = server().config(MAP).zone("web.toml", ZONE).start().await;
    for transport_from in ["127.0.0.2"] {
        let m = ask(&s, transport_from, "web.service.local.", RecordType::A).await;
        assert_eq!(sorted(addresses(&m)), ["10.0.1.1", "10.0.1.2"]);
    }
    let m = ask(&s, "127.0.0.3", "web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.0.2.1"]);
    // A client of no known region, and no server region: everyone.
    let m = ask(&s, "127.0.0.1", "web.service.local.", RecordType::A).await;
    assert_eq!(sorted(addresses(&m)), ["10.0.1.1", "10.0.1.2", "10.0.2.1"]);
    // Over TCP too.
    let m = query(
        s.dns,
        Transport::Tcp,
        &Ask { from: Some("127.0.0.3".parse().unwrap()), ..Ask::new("web.service.local.", RecordType::A) },
    )
    .await;
    assert_eq!(addresses(&m), ["10.0.2.1"]);
}

#[tokio::test]
async fn srv_puts_the_clients_region_at_priority_one_and_the_rest_at_two() {
    let s = server().config(MAP).zone("web.toml", ZONE).start().await;
    let m = ask(&s, "127.0.0.2", "web.service.local.", RecordType::SRV).await;
    assert_eq!(
        srv(&m),
        [(1, "e1.instance.local.".into()), (1, "e2.instance.local.".into()), (2, "w1.instance.local.".into())]
    );
    // Priority-1 records come first in the answer, whatever the rotation.
    assert!(matches!(&m.answers[2].data, RData::SRV(s) if s.priority == 2));
    let m = ask(&s, "127.0.0.3", "_web._tcp.service.local.", RecordType::SRV).await;
    assert_eq!(
        srv(&m),
        [(1, "w1.instance.local.".into()), (2, "e1.instance.local.".into()), (2, "e2.instance.local.".into())]
    );
    // No region known: everyone at priority 1.
    let m = ask(&s, "127.0.0.1", "web.service.local.", RecordType::SRV).await;
    assert!(srv(&m).iter().all(|(p, _)| *p == 1));
}

#[tokio::test]
async fn a_name_that_names_a_region_answers_only_that_region() {
    let s = server().config(MAP).zone("web.toml", ZONE).start().await;
    let m = ask(&s, "127.0.0.3", "web.service.east.local.", RecordType::SRV).await;
    assert_eq!(srv(&m), [(1, "e1.instance.local.".into()), (1, "e2.instance.local.".into())]);
}

#[tokio::test]
async fn when_the_region_has_nobody_healthy_everyone_healthy_is_answered() {
    let s = server().config(MAP).zone("web.toml", ZONE).start().await;
    s.registry.apply(Change::Maintenance { id: "w1".into(), reason: Some("deploy".into()) }).await.unwrap();
    let m = ask(&s, "127.0.0.3", "web.service.local.", RecordType::A).await;
    assert_eq!(sorted(addresses(&m)), ["10.0.1.1", "10.0.1.2"]);
    let m = ask(&s, "127.0.0.3", "web.service.local.", RecordType::SRV).await;
    assert_eq!(srv(&m), [(2, "e1.instance.local.".into()), (2, "e2.instance.local.".into())]);
    s.registry.apply(Change::Maintenance { id: "w1".into(), reason: None }).await.unwrap();
    let m = ask(&s, "127.0.0.3", "web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.0.2.1"]);
}

#[tokio::test]
async fn client_subnet_decides_the_region_and_is_echoed_with_its_scope() {
    let s = server().config(MAP).zone("web.toml", ZONE).start().await;
    let ecs = |addr: &str, prefix| Ask {
        ecs: Some((addr.parse::<IpAddr>().unwrap(), prefix)),
        from: Some("127.0.0.2".parse().unwrap()),
        ..Ask::new("web.service.local.", RecordType::A)
    };
    // The resolver at 127.0.0.2 (east) asks for a client in 10.30.7.0/24 (west).
    let m = query(s.dns, Transport::Udp, &ecs("10.30.7.0", 24)).await;
    assert_eq!(addresses(&m), ["10.0.2.1"]);
    let echoed = m.edns.as_ref().and_then(|e| match e.option(EdnsCode::Subnet) {
        Some(EdnsOption::Subnet(s)) => Some((s.addr().to_string(), s.source_prefix(), s.scope_prefix())),
        _ => None,
    });
    assert_eq!(echoed, Some(("10.30.7.0".into(), 24, 16)), "scope = the matching CIDR's prefix");
    let scope = |m: &hickory_proto::op::Message| {
        m.edns.as_ref().and_then(|e| match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
            _ => None,
        })
    };
    // A subnet of no region gets no preference (and there is no server region); the answer
    // holds for that subnet only: a scope of 0 would let a resolver cache it for every client,
    // those of east and west included.
    let m = query(s.dns, Transport::Udp, &ecs("192.0.2.0", 24)).await;
    assert_eq!(addresses(&m).len(), 3);
    assert_eq!(scope(&m), Some(24));
    // Answers that do not depend on the client's region hold for every address: scope 0.
    let named =
        Ask { name: hickory_proto::rr::Name::from_ascii("web.service.west.local.").unwrap(), ..ecs("10.30.7.0", 24) };
    let m = query(s.dns, Transport::Udp, &named).await;
    assert_eq!((addresses(&m).len(), scope(&m)), (1, Some(0)), "a name that names its region");
    let own = Ask { name: hickory_proto::rr::Name::from_ascii("w1.instance.local.").unwrap(), ..ecs("10.30.7.0", 24) };
    assert_eq!(scope(&query(s.dns, Transport::Udp, &own).await), Some(0), "an instance's own name");
    let none =
        Ask { name: hickory_proto::rr::Name::from_ascii("nope.service.local.").unwrap(), ..ecs("10.30.7.0", 24) };
    assert_eq!(scope(&query(s.dns, Transport::Udp, &none).await), Some(0), "NXDOMAIN");
}

#[tokio::test]
async fn the_server_region_applies_to_clients_of_no_known_region() {
    let config = format!("[dns]\nregion = \"west\"\n{MAP}");
    let s = server().config(&config).zone("web.toml", ZONE).start().await;
    let m = ask(&s, "127.0.0.1", "web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.0.2.1"]);
    let m = ask(&s, "127.0.0.2", "web.service.local.", RecordType::A).await;
    assert_eq!(sorted(addresses(&m)), ["10.0.1.1", "10.0.1.2"]);
}

#[tokio::test]
async fn reverse_lookups_name_the_instances_at_an_address() {
    let zone = format!(
        "{ZONE}\n[[service]]\nname = \"db\"\nttl = \"30s\"\n\n[[service.instance]]\nid = \"db-1\"\naddress = \"10.0.1.1\"\nport = 5432\n"
    );
    let s = server().zone("web.toml", &zone).start().await;
    let m = s.udp("2.1.0.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(m.metadata.authoritative);
    assert_eq!(lines(&m.answers), ["2.1.0.10.in-addr.arpa. 5 IN PTR e2.instance.local."]);
    // One PTR per instance sharing the address.
    let m = s.udp("1.1.0.10.in-addr.arpa.", RecordType::PTR).await;
    let mut got = lines(&m.answers);
    got.sort();
    assert_eq!(
        got,
        ["1.1.0.10.in-addr.arpa. 30 IN PTR db-1.instance.local.", "1.1.0.10.in-addr.arpa. 5 IN PTR e1.instance.local."]
    );
    // Another address, with no upstream to ask: it does not exist.
    let m = s.udp("9.9.9.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn api_metadata_sets_a_services_ttl_and_answer_limit() {
    let s = server().start().await;
    let client = http_client();
    for (id, addr) in [("api-1", "10.9.0.1"), ("api-2", "10.9.0.2"), ("api-3", "10.9.0.3")] {
        let body = serde_json::json!({
            "Name": "api", "ID": id, "Address": addr, "Port": 80,
            "Meta": { "dns-ttl": "42s", "dns-answer-limit": "1" }
        });
        let r = client.put(s.url("/v1/agent/service/register")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let m = s.udp("api.service.local.", RecordType::A).await;
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].ttl, 42);
        firsts.extend(addresses(&m));
    }
    assert_eq!(sorted(firsts), ["10.9.0.1", "10.9.0.2", "10.9.0.3"], "the limit takes the rotated order");
}
