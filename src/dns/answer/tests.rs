//! Answers from a snapshot, no sockets: each case a question and the records it gets, written
//! the way dig prints them (in a canonical order: rotation moves the first record along).

use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType::{self, A, AAAA, ANY, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};

use super::{Transport, Zone, answer, apex_records, browse_domains_at, reverse, service_zone_records};
use crate::registry::{Change, Defaults, Snapshot, State};

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
meta = { version = "2" }

[[service.instance]]
id = "web-2"
address = "10.0.0.2"
port = 81
weight = 3
region = "us"

[[service.instance]]
id = "web-3"
address = "2001:db8::3"
port = 82
tags = ["canary"]

[[service]]
name = "db"
answer_limit = 1

[[service.instance]]
id = "db-1"
address = "10.1.0.1"
port = 5432

[[service.instance]]
id = "db-2"
address = "10.1.0.2"
port = 5432

[[service]]
name = "down"
check = { tcp = "127.0.0.1:1", interval = "1m" }

[[service.instance]]
id = "down-1"
address = "10.2.0.1"
port = 1

[[service]]
name = "open"
when_none_healthy = "all"
check = { tcp = "127.0.0.1:1", interval = "1m" }

[[service.instance]]
id = "open-1"
address = "10.3.0.1"
port = 1

"#;

/// A service with an instance whose id is a DNS label but no DNS-SD instance name
/// (`_sub._odd._tcp` is the subtypes' name), and one with a plain id.
pub(crate) const ODD: &str = r#"[[service]]
name = "odd"

[[service.instance]]
id = "_SUB"
address = "10.5.0.1"
port = 80

[[service.instance]]
id = "odd-1"
address = "10.5.0.2"
port = 80
"#;

fn snapshot() -> Snapshot {
    let mut state = State::new();
    state.apply(Change::ZoneFile(crate::zones::parse(Path::new("z.toml"), ZONE).unwrap())).unwrap();
    state.apply(Change::ZoneFile(crate::zones::parse(Path::new("odd.toml"), ODD).unwrap())).unwrap();
    Snapshot::build(&state, &Defaults::default())
}

fn zone() -> Zone {
    Zone::new(Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1)
}

/// Records as dig prints them (whitespace folded, TXT strings quoted), sorted.
fn text(records: &[Record]) -> Vec<String> {
    let data = |r: &Record| match &r.data {
        RData::TXT(t) => {
            let quoted: Vec<String> = t.txt_data.iter().map(|s| format!("{:?}", String::from_utf8_lossy(s))).collect();
            quoted.join(" ")
        }
        other => other.to_string(),
    };
    let mut out: Vec<String> =
        records.iter().map(|r| format!("{} {} IN {} {}", r.name, r.ttl, r.record_type(), data(r))).collect();
    out.sort();
    out
}

struct Case {
    name: &'static str,
    qtype: RecordType,
    region: Option<&'static str>,
    transport: Transport,
    rcode: ResponseCode,
    answers: &'static [&'static str],
    additionals: &'static [&'static str],
    /// A negative answer carries the SOA.
    soa: bool,
}

const fn case(name: &'static str, qtype: RecordType, answers: &'static [&'static str]) -> Case {
    Case {
        name,
        qtype,
        region: None,
        transport: Transport::Udp,
        rcode: ResponseCode::NoError,
        answers,
        additionals: &[],
        soa: answers.is_empty(),
    }
}

#[test]
fn every_name_form_answers_from_the_snapshot() {
    let cases = [
        case("web.service.local.", A, &["web.service.local. 5 IN A 10.0.0.1", "web.service.local. 5 IN A 10.0.0.2"]),
        case("WEB.Service.local.", AAAA, &["WEB.Service.local. 5 IN AAAA 2001:db8::3"]),
        Case {
            additionals: &[
                "web-1.instance.local. 5 IN A 10.0.0.1",
                "web-2.instance.local. 5 IN A 10.0.0.2",
                "web-3.instance.local. 5 IN AAAA 2001:db8::3",
            ],
            ..case(
                "web.service.local.",
                SRV,
                &[
                    "web.service.local. 5 IN SRV 1 1 80 web-1.instance.local.",
                    "web.service.local. 5 IN SRV 1 1 82 web-3.instance.local.",
                    "web.service.local. 5 IN SRV 1 3 81 web-2.instance.local.",
                ],
            )
        },
        case(
            "web.service.local.",
            TXT,
            &[
                r#"web.service.local. 5 IN TXT "id=web-1" "version=2""#,
                r#"web.service.local. 5 IN TXT "id=web-2""#,
                r#"web.service.local. 5 IN TXT "id=web-3""#,
            ],
        ),
        case("canary.web.service.local.", AAAA, &["canary.web.service.local. 5 IN AAAA 2001:db8::3"]),
        case("canary.web.service.local.", A, &[]),
        case("web.service.us.local.", A, &["web.service.us.local. 5 IN A 10.0.0.2"]),
        Case {
            additionals: &["web-2.instance.local. 5 IN A 10.0.0.2"],
            ..case(
                "_web._tcp.service.us.local.",
                SRV,
                &["_web._tcp.service.us.local. 5 IN SRV 1 3 81 web-2.instance.local."],
            )
        },
        // The client's region first; SRV carries the others at priority 2.
        Case { region: Some("us"), ..case("web.service.local.", A, &["web.service.local. 5 IN A 10.0.0.2"]) },
        Case {
            region: Some("us"),
            additionals: &[
                "web-1.instance.local. 5 IN A 10.0.0.1",
                "web-2.instance.local. 5 IN A 10.0.0.2",
                "web-3.instance.local. 5 IN AAAA 2001:db8::3",
            ],
            ..case(
                "web.service.local.",
                SRV,
                &[
                    "web.service.local. 5 IN SRV 1 3 81 web-2.instance.local.",
                    "web.service.local. 5 IN SRV 2 1 80 web-1.instance.local.",
                    "web.service.local. 5 IN SRV 2 1 82 web-3.instance.local.",
                ],
            )
        },
        // A region with no instance of the service: everyone.
        Case {
            region: Some("ap"),
            ..case(
                "v1.web.service.local.",
                A,
                &["v1.web.service.local. 5 IN A 10.0.0.1", "v1.web.service.local. 5 IN A 10.0.0.2"],
            )
        },
        case("db.service.local.", A, &["db.service.local. 5 IN A 10.1.0.1"]),
        case("db-2.instance.local.", A, &["db-2.instance.local. 5 IN A 10.1.0.2"]),
        case("down-1.instance.local.", A, &["down-1.instance.local. 5 IN A 10.2.0.1"]),
        case("down.service.local.", A, &[]),
        case("open.service.local.", A, &["open.service.local. 5 IN A 10.3.0.1"]),
        Case { additionals: &["ns.local. 5 IN A 127.0.0.1"], ..case("local.", NS, &["local. 5 IN NS ns.local."]) },
        case("ns.local.", A, &["ns.local. 5 IN A 127.0.0.1"]),
        case("local.", SOA, &["local. 5 IN SOA ns.local. hostmaster.local. 1 3600 600 86400 1"]),
        case("web.service.local.", ANY, &["web.service.local. 5 IN HINFO RFC8482 "]),
        case("service.local.", A, &[]),
        case("_tcp.service.local.", SRV, &[]),
        case("eu.local.", A, &[]),
        case("_v1.service.local.", SRV, &[]),
        Case { rcode: ResponseCode::NXDomain, ..case("nope.service.local.", A, &[]) },
        Case { rcode: ResponseCode::NXDomain, ..case("ap.local.", A, &[]) },
        Case { rcode: ResponseCode::NXDomain, ..case("nope.instance.local.", A, &[]) },
        Case { rcode: ResponseCode::NXDomain, ..case("a.b.c.d.e.local.", A, &[]) },
    ];
    check(&cases);
}

fn check(cases: &[Case]) {
    let (zone, snap) = (zone(), snapshot());
    for c in cases {
        let what = format!("{} {} region {:?}", c.name, c.qtype, c.region);
        let got = answer(&zone, &snap, &Name::from_ascii(c.name).unwrap(), c.qtype, c.transport, c.region);
        assert_eq!(got.rcode, c.rcode, "{what}");
        assert!(got.authoritative, "{what}");
        assert_eq!(text(&got.answers), c.answers, "{what}");
        let mut additionals: Vec<String> = c.additionals.iter().map(|s| s.to_string()).collect();
        additionals.sort();
        assert_eq!(text(&got.additionals), additionals, "{what}");
        let soa = got.authorities.iter().any(|r| r.record_type() == SOA);
        assert_eq!(soa, c.soa, "{what}: the SOA in authority exactly for negative answers");
    }
    // Outside the domain: not ours.
    let out = answer(&zone, &snap, &Name::from_ascii("example.com.").unwrap(), A, Transport::Udp, None);
    assert_eq!(out.rcode, ResponseCode::Refused);
}

/// DNS-SD (RFC 6763) under the browse domain `service.local`: service types, browsing,
/// subtypes, instances and the browse domain itself, with RFC 8020's NXDOMAIN and NODATA.
#[test]
fn every_dns_sd_name_answers_from_the_snapshot() {
    const NX: ResponseCode = ResponseCode::NXDomain;
    let cases = [
        // `down` has no healthy instance; `open` fails open.
        case(
            "_services._dns-sd._udp.service.local.",
            PTR,
            &[
                "_services._dns-sd._udp.service.local. 5 IN PTR _db._tcp.service.local.",
                "_services._dns-sd._udp.service.local. 5 IN PTR _odd._tcp.service.local.",
                "_services._dns-sd._udp.service.local. 5 IN PTR _open._tcp.service.local.",
                "_services._dns-sd._udp.service.local. 5 IN PTR _web._tcp.service.local.",
            ],
        ),
        case(
            "_web._TCP.service.local.",
            PTR,
            &[
                "_web._TCP.service.local. 5 IN PTR web-1._web._TCP.service.local.",
                "_web._TCP.service.local. 5 IN PTR web-2._web._TCP.service.local.",
                "_web._TCP.service.local. 5 IN PTR web-3._web._TCP.service.local.",
            ],
        ),
        case(
            "_web._tcp.service.us.local.",
            PTR,
            &["_web._tcp.service.us.local. 5 IN PTR web-2._web._tcp.service.us.local."],
        ),
        // answer_limit caps browsing too.
        case("_db._tcp.service.local.", PTR, &["_db._tcp.service.local. 5 IN PTR db-1._db._tcp.service.local."]),
        case("_down._tcp.service.local.", PTR, &[]),
        case(
            "_open._tcp.service.local.",
            PTR,
            &["_open._tcp.service.local. 5 IN PTR open-1._open._tcp.service.local."],
        ),
        case(
            "_canary._sub._web._tcp.service.local.",
            PTR,
            &["_canary._sub._web._tcp.service.local. 5 IN PTR web-3._web._tcp.service.local."],
        ),
        case("_canary._sub._web._tcp.service.local.", A, &[]),
        case("_sub._web._tcp.service.local.", PTR, &[]),
        Case { rcode: NX, ..case("_sub._db._tcp.service.local.", PTR, &[]) },
        Case { rcode: NX, ..case("_nope._sub._web._tcp.service.local.", PTR, &[]) },
        Case {
            additionals: &["web-1.instance.local. 5 IN A 10.0.0.1"],
            ..case(
                "web-1._web._tcp.service.local.",
                SRV,
                &["web-1._web._tcp.service.local. 5 IN SRV 1 1 80 web-1.instance.local."],
            )
        },
        case(
            "Web-1._web._tcp.service.local.",
            TXT,
            &[r#"Web-1._web._tcp.service.local. 5 IN TXT "txtvers=1" "version=2""#],
        ),
        case("web-2._web._tcp.service.local.", TXT, &[r#"web-2._web._tcp.service.local. 5 IN TXT """#]),
        case("web-1._web._tcp.service.local.", A, &[]),
        case("web-2._web._tcp.service.us.local.", TXT, &[r#"web-2._web._tcp.service.us.local. 5 IN TXT """#]),
        Case { rcode: NX, ..case("web-1._web._tcp.service.us.local.", SRV, &[]) },
        Case { rcode: NX, ..case("nope._web._tcp.service.local.", SRV, &[]) },
        Case { rcode: NX, ..case("db-1._web._tcp.service.local.", SRV, &[]) },
        Case { rcode: NX, ..case("x.web-1._web._tcp.service.local.", SRV, &[]) },
        // Registered, not healthy: the name exists, without records.
        case("down-1._down._tcp.service.local.", SRV, &[]),
        case("open-1._open._tcp.service.local.", TXT, &[r#"open-1._open._tcp.service.local. 5 IN TXT """#]),
        case("b._dns-sd._udp.local.", PTR, &["b._dns-sd._udp.local. 5 IN PTR service.local."]),
        case("DB._dns-sd._udp.local.", PTR, &["DB._dns-sd._udp.local. 5 IN PTR service.local."]),
        case("lb._dns-sd._udp.service.local.", PTR, &["lb._dns-sd._udp.service.local. 5 IN PTR service.local."]),
        case("b._dns-sd._udp.local.", TXT, &[]),
        case("_dns-sd._udp.local.", PTR, &[]),
        case("_udp.local.", PTR, &[]),
        case("_dns-sd._udp.service.local.", PTR, &[]),
        case("_udp.service.local.", PTR, &[]),
        Case { rcode: NX, ..case("r._dns-sd._udp.local.", PTR, &[]) },
        // An instance whose id is `_sub` has no DNS-SD name: not browsed to.
        case("_odd._tcp.service.local.", PTR, &["_odd._tcp.service.local. 5 IN PTR odd-1._odd._tcp.service.local."]),
        Case { rcode: NX, ..case("_sub._odd._tcp.service.local.", SRV, &[]) },
        // The plain and RFC 2782 names hold no PTR records.
        case("web.service.local.", PTR, &[]),
        case("_web._v1.service.local.", PTR, &[]),
    ];
    check(&cases);
}

/// Browsing rotates like every answer, puts the client's region first, and the other regions'
/// instances after it.
#[test]
fn browsing_rotates_and_prefers_the_clients_region() {
    let (zone, snap) = (zone(), snapshot());
    let name = Name::from_ascii("_web._tcp.service.local.").unwrap();
    let browse = |region| {
        let got = answer(&zone, &snap, &name, PTR, Transport::Udp, region);
        got.answers.iter().map(|r| r.data.to_string().split('.').next().unwrap().to_string()).collect::<Vec<_>>()
    };
    // Weights 1, 3, 1: over five queries web-2 comes first three times.
    let firsts: Vec<String> = (0..5).map(|_| browse(None)[0].clone()).collect();
    assert_eq!(firsts.iter().filter(|f| *f == "web-2").count(), 3, "{firsts:?}");
    assert_eq!(firsts.iter().filter(|f| *f == "web-1").count(), 1, "{firsts:?}");
    for _ in 0..3 {
        let us = browse(Some("us"));
        assert_eq!(us[0], "web-2", "{us:?}");
        assert_eq!(us.len(), 3, "everyone, the client's region first");
        let eu = browse(Some("eu"));
        assert_eq!(eu[2], "web-2", "{eu:?}");
    }
    let got = answer(&zone, &snap, &name, PTR, Transport::Udp, Some("us"));
    assert!(got.regional, "the order depends on the client's region");
    let got = answer(
        &zone,
        &snap,
        &Name::from_ascii("web-1._web._tcp.service.local.").unwrap(),
        SRV,
        Transport::Udp,
        Some("us"),
    );
    assert!(!got.regional, "an instance is the same for everyone");
}

/// The browse domain under a reverse zone of `dns_sd_networks`: authoritative, no SOA.
#[test]
fn the_browse_domain_answers_under_a_networks_reverse_zone() {
    let zone = zone();
    let name = Name::from_ascii("lb._dns-sd._udp.0.0.1.10.in-addr.arpa.").unwrap();
    let got = browse_domains_at(&zone, &name, PTR, Transport::Udp);
    assert!(got.authoritative);
    assert_eq!(text(&got.answers), ["lb._dns-sd._udp.0.0.1.10.in-addr.arpa. 5 IN PTR service.local."]);
    let got = browse_domains_at(&zone, &name, A, Transport::Udp);
    assert!(got.answers.is_empty() && got.authorities.is_empty() && got.rcode == ResponseCode::NoError);
}

#[test]
fn reverse_names_of_registered_addresses_answer_ptr() {
    let (zone, snap) = (zone(), snapshot());
    let name = Name::from_ascii("2.0.1.10.in-addr.arpa.").unwrap();
    let got = reverse(&zone, &snap, &name, "10.1.0.2".parse().unwrap(), RecordType::PTR).unwrap();
    assert_eq!(text(&got.answers), ["2.0.1.10.in-addr.arpa. 5 IN PTR db-2.instance.local."]);
    assert!(reverse(&zone, &snap, &name, "10.9.9.9".parse().unwrap(), RecordType::PTR).is_none());
}

/// A zone transfer's records of a service are what each of its names answers over TCP with
/// no client region, all of them.
#[test]
fn a_services_zone_records_are_its_answers() {
    let (zone, snap) = (zone(), snapshot());
    let view = snap.service_view("web").unwrap();
    let mut records = Vec::new();
    service_zone_records(&zone, &snap, view, &mut records);
    let all = text(&records);
    let names = [
        "web.service.local.",
        "v1.web.service.local.",
        "_web._tcp.service.local.",
        "web.service.eu.local.",
        "_canary._sub._web._tcp.service.local.",
        "_web._tcp.service.eu.local.",
        "web-1._web._tcp.service.local.",
        "web-3._web._tcp.service.eu.local.",
    ];
    for name in names {
        for qtype in [A, AAAA, SRV, TXT, PTR] {
            let got = answer(&zone, &snap, &Name::from_ascii(name).unwrap(), qtype, Transport::Tcp, None);
            let mut want = text(&got.answers);
            let have: Vec<String> =
                all.iter().filter(|r| r.starts_with(&format!("{name} 5 IN {qtype} "))).cloned().collect();
            want.sort();
            assert_eq!(have, want, "{name} {qtype}");
        }
    }
    assert!(all.contains(&"web-3.instance.local. 5 IN AAAA 2001:db8::3".to_string()));
    let listed = "_services._dns-sd._udp.service.local. 5 IN PTR _web._tcp.service.local.";
    assert!(all.contains(&listed.to_string()), "its service type, among the service types");
    let down = snap.service_view("down").unwrap();
    let mut records = Vec::new();
    service_zone_records(&zone, &snap, down, &mut records);
    assert!(!text(&records).iter().any(|r| r.contains("_down._tcp")), "no healthy instance, no DNS-SD records");
    let apex = text(&apex_records(&zone));
    for name in ["b._dns-sd._udp.local.", "db._dns-sd._udp.service.local.", "lb._dns-sd._udp.local."] {
        assert!(apex.contains(&format!("{name} 5 IN PTR service.local.")), "{apex:?}");
    }
}
