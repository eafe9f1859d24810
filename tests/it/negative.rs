//! Negative answers: NXDOMAIN for names that do not exist, NODATA (RFC 8020) for names that do,
//! each with the domain's SOA in authority; health-driven emptiness; names outside the domain.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

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

[[service]]
name = "down"
tags = ["t1"]
region = "ap"
check = { tcp = "127.0.0.1:1", interval = "10s" }

[[service.instance]]
id = "down-1"
address = "10.0.0.5"
port = 1
"#;

const TRANSPORTS: [Transport; 2] = [Transport::Udp, Transport::Tcp];

fn soa(serial: u64, minimum: u32) -> String {
    format!("local. {minimum} IN SOA ns.local. hostmaster.local. {serial} 3600 600 86400 {minimum}")
}

/// Asks and checks the shape every negative answer in the domain has.
async fn negative(s: &TestServer, t: Transport, name: &str, qtype: RecordType, rcode: ResponseCode) -> Message {
    let m = query(s.dns, t, &Ask::new(name, qtype)).await;
    let what = format!("{t:?} {name} {qtype}");
    assert_eq!(m.metadata.response_code, rcode, "{what}");
    assert!(m.metadata.authoritative, "{what}: AA");
    assert!(m.answers.is_empty(), "{what}: {:?}", lines(&m.answers));
    assert!(m.additionals.is_empty(), "{what}: {:?}", lines(&m.additionals));
    assert_eq!(lines(&m.authorities), [soa(s.registry.snapshot().version, 1)], "{what}");
    m
}

#[tokio::test]
async fn unknown_names_are_nxdomain_with_the_soa() {
    let s = server().zone("z.toml", ZONE).start().await;
    let cases: &[(&str, RecordType)] = &[
        ("nope.service.local.", RecordType::A),
        ("nope.service.local.", RecordType::SRV),
        ("v2.web.service.local.", RecordType::A),
        ("_web._v2.service.local.", RecordType::SRV),
        ("_v2.service.local.", RecordType::SRV),
        ("t1.web.service.local.", RecordType::A),
        ("web.service.mars.local.", RecordType::A),
        ("web.service.ap.local.", RecordType::A),
        ("_web._tcp.service.mars.local.", RecordType::SRV),
        ("mars.local.", RecordType::A),
        ("service.mars.local.", RecordType::A),
        ("_tcp.service.mars.local.", RecordType::SRV),
        ("nope.instance.local.", RecordType::A),
        ("x.y.local.", RecordType::A),
        ("deep.v1.web.service.eu.local.", RecordType::A),
        ("web.services.local.", RecordType::A),
    ];
    for t in TRANSPORTS {
        for &(name, qtype) in cases {
            negative(&s, t, name, qtype, ResponseCode::NXDomain).await;
        }
    }
}

#[tokio::test]
async fn existing_names_without_the_type_are_nodata() {
    let s = server().zone("z.toml", ZONE).start().await;
    let cases: &[(&str, RecordType)] = &[
        // Known names, other types.
        ("web.service.local.", RecordType::MX),
        ("web.service.local.", RecordType::AAAA),
        ("v1.web.service.local.", RecordType::CNAME),
        ("web-1.instance.local.", RecordType::SRV),
        ("web-1.instance.local.", RecordType::TXT),
        ("web-1.instance.local.", RecordType::AAAA),
        ("local.", RecordType::A),
        ("ns.local.", RecordType::AAAA),
        // Empty non-terminals (RFC 8020).
        ("service.local.", RecordType::A),
        ("instance.local.", RecordType::A),
        ("_tcp.service.local.", RecordType::SRV),
        ("_v1.service.local.", RecordType::SRV),
        ("eu.local.", RecordType::A),
        ("EU.local.", RecordType::SOA),
        ("service.eu.local.", RecordType::A),
        ("_tcp.service.eu.local.", RecordType::SRV),
        ("ap.local.", RecordType::A),
    ];
    for t in TRANSPORTS {
        for &(name, qtype) in cases {
            negative(&s, t, name, qtype, ResponseCode::NoError).await;
        }
    }
}

#[tokio::test]
async fn a_service_with_no_healthy_instance_is_nodata() {
    let s = server().zone("z.toml", ZONE).start().await;
    // A new check is critical until its first result, and 127.0.0.1:1 refuses anyway.
    let cases: &[(&str, RecordType)] = &[
        ("down.service.local.", RecordType::A),
        ("down.service.local.", RecordType::SRV),
        ("down.service.local.", RecordType::TXT),
        ("t1.down.service.local.", RecordType::A),
        ("down.service.ap.local.", RecordType::A),
        ("_down._tcp.service.local.", RecordType::SRV),
    ];
    for t in TRANSPORTS {
        for &(name, qtype) in cases {
            negative(&s, t, name, qtype, ResponseCode::NoError).await;
        }
        // The instance's own name answers whatever its health.
        let m = query(s.dns, t, &Ask::new("down-1.instance.local.", RecordType::A)).await;
        assert_eq!(lines(&m.answers), ["down-1.instance.local. 5 IN A 10.0.0.5"], "{t:?}");
    }
}

#[tokio::test]
async fn when_none_healthy_all_answers_the_unhealthy() {
    let zone = ZONE.replace("check = {", "when_none_healthy = \"all\"\ncheck = {");
    let s = server().zone("z.toml", &zone).start().await;
    for t in TRANSPORTS {
        let m = query(s.dns, t, &Ask::new("down.service.local.", RecordType::A)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(lines(&m.answers), ["down.service.local. 5 IN A 10.0.0.5"], "{t:?}");
        let m = query(s.dns, t, &Ask::new("_down._t1.service.local.", RecordType::SRV)).await;
        assert_eq!(lines(&m.answers), ["_down._t1.service.local. 5 IN SRV 1 1 1 down-1.instance.local."], "{t:?}");
        // Other services keep their own policy: nothing changes for them.
        let m = query(s.dns, t, &Ask::new("web.service.local.", RecordType::A)).await;
        assert_eq!(lines(&m.answers), ["web.service.local. 5 IN A 10.0.0.1"], "{t:?}");
    }
}

#[tokio::test]
async fn when_none_healthy_all_in_dns_config_answers_the_unhealthy() {
    let s = server().zone("z.toml", ZONE).config("[dns]\nwhen_none_healthy = \"all\"\n").start().await;
    for t in TRANSPORTS {
        let m = query(s.dns, t, &Ask::new("down.service.local.", RecordType::A)).await;
        assert_eq!(lines(&m.answers), ["down.service.local. 5 IN A 10.0.0.5"], "{t:?}");
    }
}

#[tokio::test]
async fn negative_ttl_sets_the_soa_minimum_and_ttl() {
    let s = server().zone("z.toml", ZONE).config("[dns]\nnegative_ttl = \"30s\"\nttl = \"7s\"\n").start().await;
    let serial = s.registry.snapshot().version;
    for t in TRANSPORTS {
        for (name, rcode) in
            [("nope.service.local.", ResponseCode::NXDomain), ("service.local.", ResponseCode::NoError)]
        {
            let m = query(s.dns, t, &Ask::new(name, RecordType::A)).await;
            assert_eq!(m.metadata.response_code, rcode, "{t:?} {name}");
            assert_eq!(lines(&m.authorities), [soa(serial, 30)], "{t:?} {name}");
        }
        // The apex SOA itself carries the positive TTL, and the same minimum.
        let m = query(s.dns, t, &Ask::new("local.", RecordType::SOA)).await;
        let want = format!("local. 7 IN SOA ns.local. hostmaster.local. {serial} 3600 600 86400 30");
        assert_eq!(lines(&m.answers), [want], "{t:?}");
    }
}

#[tokio::test]
async fn soa_serial_follows_the_registry_version() {
    let s = server().zone("z.toml", ZONE).start().await;
    let before = s.registry.snapshot().version;
    let m = query(s.dns, Transport::Udp, &Ask::new("nope.service.local.", RecordType::A)).await;
    assert_eq!(lines(&m.authorities), [soa(before, 1)]);

    s.write_zone(
        "more.toml",
        "[[service]]\nname = \"nope\"\n[[service.instance]]\nid = \"n-1\"\naddress = \"10.0.0.7\"\nport = 1\n",
    );
    wait_for("the new service to be answered", || async {
        !s.udp("nope.service.local.", RecordType::A).await.answers.is_empty()
    })
    .await;
    let after = s.registry.snapshot().version;
    assert!(after > before, "version {after} must pass {before}");
    let m = query(s.dns, Transport::Tcp, &Ask::new("nope.service.local.", RecordType::AAAA)).await;
    assert_eq!(lines(&m.authorities), [soa(after, 1)]);
    let m = query(s.dns, Transport::Udp, &Ask::new("local.", RecordType::SOA)).await;
    assert_eq!(lines(&m.answers), [format!("local. 5 IN SOA ns.local. hostmaster.local. {after} 3600 600 86400 1")]);
}

/// Names outside the domain are forwarded (tests/it/forward.rs) only where that is allowed:
/// with no upstream (`upstreams = []`), or for a client outside `recursion_allow`, they are
/// REFUSED at once, without RA, and nothing is sent anywhere. A reverse name of an address no
/// instance has is NXDOMAIN when there is no upstream to ask (tests/it/regions.rs).
#[tokio::test]
async fn names_outside_the_domain_are_refused_when_not_forwarded() {
    let no_upstreams = server().zone("z.toml", ZONE).config("[dns]\nupstreams = []\n").start().await;
    // 192.0.2.1 (TEST-NET) would time out if it were asked.
    let not_allowed = server()
        .zone("z.toml", ZONE)
        .config("[dns]\nupstreams = [\"192.0.2.1\"]\nupstream_timeout = \"5s\"\nrecursion_allow = [\"10.0.0.0/8\"]\n")
        .start()
        .await;
    for s in [&no_upstreams, &not_allowed] {
        for t in TRANSPORTS {
            let reverse = if std::ptr::eq(s, &no_upstreams) { vec![] } else { vec!["9.9.9.10.in-addr.arpa."] };
            for name in
                ["example.com.", "web.service.local.example.", "localhost.", "ocal.", "."].into_iter().chain(reverse)
            {
                let m = query(s.dns, t, &Ask::new(name, RecordType::A)).await;
                assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t:?} {name}");
                assert!(!m.metadata.authoritative, "{t:?} {name}: not ours, no AA");
                assert!(!m.metadata.recursion_available, "{t:?} {name}: no recursion for this client");
                assert!(m.answers.is_empty() && m.authorities.is_empty(), "{t:?} {name}");
            }
        }
    }
}

#[tokio::test]
async fn every_in_domain_answer_is_authoritative() {
    let s = server().zone("z.toml", ZONE).start().await;
    let names = [
        ("web.service.local.", RecordType::A),
        ("web.service.local.", RecordType::SRV),
        ("web.service.local.", RecordType::TXT),
        ("web-1.instance.local.", RecordType::A),
        ("local.", RecordType::SOA),
        ("local.", RecordType::NS),
        ("ns.local.", RecordType::A),
        ("local.", RecordType::ANY),
        ("service.local.", RecordType::A),
        ("nope.service.local.", RecordType::A),
    ];
    for t in TRANSPORTS {
        for (name, qtype) in names {
            let m = query(s.dns, t, &Ask::new(name, qtype)).await;
            assert!(m.metadata.authoritative, "{t:?} {name} {qtype}");
        }
    }
}
