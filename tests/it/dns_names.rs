//! Every name form of DESIGN.md's "DNS names" table, over UDP and TCP, with exact records.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::support::*;

#[tokio::test]
async fn srv_answers_the_example_zone_with_glue() {
    let s = server().example_zones().start().await;
    let m = s.udp("order-service.service.local.", RecordType::SRV).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        lines(&m.answers),
        [
            "order-service.service.local. 5 IN SRV 1 1 8001 order-1.instance.local.",
            "order-service.service.local. 5 IN SRV 1 1 8001 order-2.instance.local.",
            "order-service.service.local. 5 IN SRV 1 1 8001 order-3.instance.local.",
        ]
    );
    assert_eq!(
        lines(&m.additionals),
        [
            "order-1.instance.local. 5 IN A 192.168.1.10",
            "order-2.instance.local. 5 IN A 192.168.1.11",
            "order-3.instance.local. 5 IN A 192.168.1.12",
        ]
    );
}

/// web-1 (eu, v1), web-2 (us, v1 + canary), web-3 (eu, v1, IPv6 only).
const WEB: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 8080
meta = { version = "1.0" }

[[service.instance]]
id = "web-2"
address = "10.0.0.2"
port = 8081
tags = ["canary"]
region = "us"

[[service.instance]]
id = "web-3"
address = "2001:db8::3"
port = 8082
"#;

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

/// Answer records as zone text, sorted: rotation changes the order, not the set.
fn sorted(records: &[Record]) -> Vec<String> {
    let mut v = lines(records);
    v.sort();
    v
}

/// Each TXT record's character-strings, sorted by record.
fn txt_strings(m: &Message) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

async fn ask(s: &TestServer, t: Transport, name: &str, qtype: RecordType) -> Message {
    let m = query(s.dns, t, &Ask::new(name, qtype)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t:?} {name} {qtype}");
    assert!(m.metadata.authoritative, "{t:?} {name} {qtype}: AA");
    assert!(!m.metadata.truncation, "{t:?} {name} {qtype}: TC");
    m
}

fn srv(owner: &str, port: u16, id: &str) -> String {
    format!("{owner} 5 IN SRV 1 1 {port} {id}.instance.local.")
}

fn glue(id: &str) -> String {
    match id {
        "web-1" => "web-1.instance.local. 5 IN A 10.0.0.1".into(),
        "web-2" => "web-2.instance.local. 5 IN A 10.0.0.2".into(),
        _ => "web-3.instance.local. 5 IN AAAA 2001:db8::3".into(),
    }
}

const PORTS: [(&str, u16); 3] = [("web-1", 8080), ("web-2", 8081), ("web-3", 8082)];

#[tokio::test]
async fn addresses_of_every_service_name_form() {
    let s = server().zone("web.toml", WEB).start().await;
    let cases: &[(&str, RecordType, &[&str])] = &[
        ("web.service.local.", RecordType::A, &["10.0.0.1", "10.0.0.2"]),
        ("web.service.local.", RecordType::AAAA, &["2001:db8::3"]),
        ("v1.web.service.local.", RecordType::A, &["10.0.0.1", "10.0.0.2"]),
        ("canary.web.service.local.", RecordType::A, &["10.0.0.2"]),
        ("canary.web.service.local.", RecordType::AAAA, &[]),
        ("web.service.eu.local.", RecordType::A, &["10.0.0.1"]),
        ("web.service.eu.local.", RecordType::AAAA, &["2001:db8::3"]),
        ("web.service.us.local.", RecordType::A, &["10.0.0.2"]),
        ("v1.web.service.eu.local.", RecordType::A, &["10.0.0.1"]),
        ("canary.web.service.us.local.", RecordType::A, &["10.0.0.2"]),
        ("web-1.instance.local.", RecordType::A, &["10.0.0.1"]),
        ("web-3.instance.local.", RecordType::AAAA, &["2001:db8::3"]),
        ("web-3.instance.local.", RecordType::A, &[]),
        ("ns.local.", RecordType::A, &["127.0.0.1"]),
    ];
    for t in TRANSPORTS {
        for &(name, qtype, want) in cases {
            let m = ask(&s, t, name, qtype).await;
            let mut got = addresses(&m);
            got.sort();
            assert_eq!(got, want, "{t:?} {name} {qtype}");
            let ty = qtype.to_string();
            assert!(m.answers.iter().all(|r| r.name.to_string() == name && r.ttl == 5), "{t:?} {name} {qtype}");
            assert!(lines(&m.answers).iter().all(|l| l.contains(&format!(" IN {ty} "))), "{t:?} {name} {qtype}");
            if want.is_empty() {
                assert_eq!(m.authorities.len(), 1, "{t:?} {name} {qtype}: NODATA carries the SOA");
            }
        }
    }
}

#[tokio::test]
async fn srv_of_every_service_name_form_with_glue() {
    let s = server().zone("web.toml", WEB).start().await;
    let cases: &[(&str, &[&str])] = &[
        ("web.service.local.", &["web-1", "web-2", "web-3"]),
        ("v1.web.service.local.", &["web-1", "web-2", "web-3"]),
        ("canary.web.service.local.", &["web-2"]),
        ("web.service.eu.local.", &["web-1", "web-3"]),
        ("v1.web.service.us.local.", &["web-2"]),
        ("_web._tcp.service.local.", &["web-1", "web-2", "web-3"]),
        ("_web._canary.service.local.", &["web-2"]),
        ("_web._v1.service.local.", &["web-1", "web-2", "web-3"]),
        ("_web._tcp.service.eu.local.", &["web-1", "web-3"]),
        ("_web._canary.service.us.local.", &["web-2"]),
    ];
    for t in TRANSPORTS {
        for &(name, ids) in cases {
            let m = ask(&s, t, name, RecordType::SRV).await;
            let want: Vec<String> =
                PORTS.iter().filter(|(id, _)| ids.contains(id)).map(|&(id, p)| srv(name, p, id)).collect();
            assert_eq!(sorted(&m.answers), want, "{t:?} {name}");
            let want: Vec<String> = ids.iter().map(|id| glue(id)).collect();
            assert_eq!(sorted(&m.additionals), want, "{t:?} {name}: glue");
            assert!(m.authorities.is_empty(), "{t:?} {name}");
        }
    }
}

#[tokio::test]
async fn txt_carries_the_id_then_meta() {
    let s = server().zone("web.toml", WEB).start().await;
    for t in TRANSPORTS {
        let m = ask(&s, t, "web.service.local.", RecordType::TXT).await;
        assert_eq!(txt_strings(&m), [vec!["id=web-1", "version=1.0"], vec!["id=web-2"], vec!["id=web-3"]], "{t:?}");
        assert!(m.answers.iter().all(|r| r.name.to_string() == "web.service.local." && r.ttl == 5));
        let m = ask(&s, t, "canary.web.service.us.local.", RecordType::TXT).await;
        assert_eq!(txt_strings(&m), [vec!["id=web-2"]], "{t:?}");
    }
}

#[tokio::test]
async fn txt_splits_long_meta_values_into_255_byte_strings() {
    // The longest value a registration may carry (512 bytes): `long=` and it span three strings.
    let long = "x".repeat(512);
    let zone = format!(
        "[[service]]\nname = \"big\"\n[[service.instance]]\nid = \"big-1\"\naddress = \"10.0.0.1\"\nport = 1\n\
         meta = {{ a = \"1\", long = \"{long}\", z = \"last\" }}\n"
    );
    let s = server().zone("big.toml", &zone).start().await;
    let whole = format!("long={long}");
    let want = vec![
        "id=big-1".to_string(),
        "a=1".to_string(),
        whole[..255].to_string(),
        whole[255..510].to_string(),
        whole[510..].to_string(),
        "z=last".to_string(),
    ];
    for t in TRANSPORTS {
        let m = ask(&s, t, "big.service.local.", RecordType::TXT).await;
        assert_eq!(txt_strings(&m), std::slice::from_ref(&want), "{t:?}");
    }
}

#[tokio::test]
async fn apex_soa_and_ns_with_glue() {
    let s = server().zone("web.toml", WEB).start().await;
    let serial = s.registry.snapshot().version;
    for t in TRANSPORTS {
        let m = ask(&s, t, "local.", RecordType::SOA).await;
        assert_eq!(
            lines(&m.answers),
            [format!("local. 5 IN SOA ns.local. hostmaster.local. {serial} 3600 600 86400 1")]
        );
        let m = ask(&s, t, "local.", RecordType::NS).await;
        assert_eq!(lines(&m.answers), ["local. 5 IN NS ns.local."], "{t:?}");
        assert_eq!(lines(&m.additionals), ["ns.local. 5 IN A 127.0.0.1"], "{t:?}");
    }
}

#[tokio::test]
async fn mixed_case_questions_are_echoed_in_answer_owners() {
    let s = server().zone("web.toml", WEB).start().await;
    for t in TRANSPORTS {
        let m = ask(&s, t, "CaNaRy.WeB.SeRvIcE.LoCaL.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["CaNaRy.WeB.SeRvIcE.LoCaL. 5 IN A 10.0.0.2"], "{t:?}");
        let m = ask(&s, t, "_WEB._Canary.Service.US.Local.", RecordType::SRV).await;
        assert_eq!(lines(&m.answers), ["_WEB._Canary.Service.US.Local. 5 IN SRV 1 1 8081 web-2.instance.local."]);
        let m = ask(&s, t, "WEB-1.Instance.LOCAL.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["WEB-1.Instance.LOCAL. 5 IN A 10.0.0.1"], "{t:?}");
        let m = ask(&s, t, "LOCAL.", RecordType::NS).await;
        assert_eq!(lines(&m.answers), ["LOCAL. 5 IN NS ns.local."], "{t:?}");
        let m = ask(&s, t, "Ns.Local.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["Ns.Local. 5 IN A 127.0.0.1"], "{t:?}");
    }
}

#[tokio::test]
async fn a_custom_domain_replaces_local() {
    let s = server().zone("web.toml", WEB).config("[dns]\ndomain = \"sd.example\"\n").start().await;
    let serial = s.registry.snapshot().version;
    for t in TRANSPORTS {
        let m = ask(&s, t, "canary.web.service.sd.example.", RecordType::SRV).await;
        assert_eq!(lines(&m.answers), ["canary.web.service.sd.example. 5 IN SRV 1 1 8081 web-2.instance.sd.example."]);
        assert_eq!(lines(&m.additionals), ["web-2.instance.sd.example. 5 IN A 10.0.0.2"], "{t:?}");
        let m = ask(&s, t, "web-1.instance.sd.example.", RecordType::A).await;
        assert_eq!(lines(&m.answers), ["web-1.instance.sd.example. 5 IN A 10.0.0.1"], "{t:?}");
        let m = ask(&s, t, "sd.example.", RecordType::SOA).await;
        let soa = format!("sd.example. 5 IN SOA ns.sd.example. hostmaster.sd.example. {serial} 3600 600 86400 1");
        assert_eq!(lines(&m.answers), [soa], "{t:?}");
        let m = ask(&s, t, "sd.example.", RecordType::NS).await;
        assert_eq!(lines(&m.answers), ["sd.example. 5 IN NS ns.sd.example."], "{t:?}");
        assert_eq!(lines(&m.additionals), ["ns.sd.example. 5 IN A 127.0.0.1"], "{t:?}");
        // The old domain is no longer ours.
        let m = query(s.dns, t, &Ask::new("web.service.local.", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t:?}");
        assert!(m.answers.is_empty());
    }
}

#[tokio::test]
async fn ipv6_instances_answer_aaaa_and_not_a() {
    let zone = "[[service]]\nname = \"six\"\n[[service.instance]]\nid = \"six-1\"\naddress = \"2001:db8::61\"\nport = 1\n\
                [[service.instance]]\nid = \"six-2\"\naddress = \"2001:db8::62\"\nport = 2\n";
    let s = server().zone("six.toml", zone).start().await;
    for t in TRANSPORTS {
        let m = ask(&s, t, "six.service.local.", RecordType::AAAA).await;
        assert_eq!(
            sorted(&m.answers),
            ["six.service.local. 5 IN AAAA 2001:db8::61", "six.service.local. 5 IN AAAA 2001:db8::62"],
            "{t:?}"
        );
        let m = ask(&s, t, "six.service.local.", RecordType::A).await;
        assert!(m.answers.is_empty(), "{t:?}: {:?}", lines(&m.answers));
        assert_eq!(m.authorities.len(), 1, "{t:?}: NODATA carries the SOA");
        let m = ask(&s, t, "six.service.local.", RecordType::SRV).await;
        assert_eq!(
            sorted(&m.additionals),
            ["six-1.instance.local. 5 IN AAAA 2001:db8::61", "six-2.instance.local. 5 IN AAAA 2001:db8::62"],
            "{t:?}"
        );
    }
}

#[tokio::test]
async fn a_deduplicates_instances_sharing_an_address() {
    let zone = "[[service]]\nname = \"dup\"\n\
                [[service.instance]]\nid = \"dup-1\"\naddress = \"10.0.0.9\"\nport = 1\n\
                [[service.instance]]\nid = \"dup-2\"\naddress = \"10.0.0.9\"\nport = 2\n\
                [[service.instance]]\nid = \"dup-3\"\naddress = \"10.0.0.8\"\nport = 3\n";
    let s = server().zone("dup.toml", zone).start().await;
    for t in TRANSPORTS {
        // Every rotation position, so that a duplicate cannot hide behind one order.
        for _ in 0..3 {
            let m = ask(&s, t, "dup.service.local.", RecordType::A).await;
            assert_eq!(
                sorted(&m.answers),
                ["dup.service.local. 5 IN A 10.0.0.8", "dup.service.local. 5 IN A 10.0.0.9"]
            );
        }
        let m = ask(&s, t, "dup.service.local.", RecordType::SRV).await;
        assert_eq!(m.answers.len(), 3, "{t:?}: SRV keeps one record per instance");
    }
}
