//! Answers from a snapshot, no sockets: each case a question and the records it gets, written
//! the way dig prints them (in a canonical order: rotation moves the first record along).

use std::path::Path;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType::{self, A, AAAA, ANY, NS, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};

use super::{Transport, Zone, answer, reverse, service_zone_records};
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

fn snapshot() -> Snapshot {
    let mut state = State::new();
    state.apply(Change::ZoneFile(crate::zones::parse(Path::new("z.toml"), ZONE).unwrap())).unwrap();
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
    for name in ["web.service.local.", "v1.web.service.local.", "_web._tcp.service.local.", "web.service.eu.local."] {
        for qtype in [A, AAAA, SRV, TXT] {
            let got = answer(&zone, &snap, &Name::from_ascii(name).unwrap(), qtype, Transport::Tcp, None);
            let mut want = text(&got.answers);
            let have: Vec<String> =
                all.iter().filter(|r| r.starts_with(&format!("{name} 5 IN {qtype} "))).cloned().collect();
            want.sort();
            assert_eq!(have, want, "{name} {qtype}");
        }
    }
    assert!(all.contains(&"web-3.instance.local. 5 IN AAAA 2001:db8::3".to_string()));
}
