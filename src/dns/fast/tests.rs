//! The fast path against the full handler, record for record.

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Record, RecordType};

use super::*;
use crate::dns::answer::{Transport, answer};
use crate::dns::{ConsulNames, Settings, Zone};
use crate::model::Address;
use crate::registry::{Change, CheckOwner, Defaults, State};

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]

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

[[service.instance]]
id = "web-3"
address = "2001:db8::3"
port = 82
tags = ["canary"]

[[service]]
name = "db"
region = "eu"
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
name = "shared"

[[service.instance]]
id = "shared-1"
address = "10.3.0.1"
port = 80

[[service.instance]]
id = "shared-2"
address = "10.3.0.1"
port = 81

[[service.instance]]
id = "shared-3"
address = "10.3.0.2"
port = 80

[[service.instance]]
id = "shared-4"
address = "fd00::3"
port = 80

[[service.instance]]
id = "shared-5"
address = "fd00::3"
port = 81

[[service]]
name = "limited"
answer_limit = 2

[[service.instance]]
id = "limited-1"
address = "10.4.0.1"
port = 80

[[service.instance]]
id = "limited-2"
address = "10.4.0.1"
port = 81

[[service.instance]]
id = "limited-3"
address = "10.4.0.2"
port = 80

[[service.instance]]
id = "limited-4"
address = "10.4.0.3"
port = 80

[[service]]
name = "down"
check = { tcp = "127.0.0.1:1", interval = "1m" }

[[service.instance]]
id = "down-1"
address = "10.2.0.1"
port = 1

"#;

fn snapshot() -> Arc<Snapshot> {
    let mut state = State::new();
    let file = crate::zones::parse(Path::new("z.toml"), ZONE).unwrap();
    state.apply(Change::ZoneFile(file)).unwrap();
    let odd = crate::zones::parse(Path::new("odd.toml"), crate::dns::answer::tests::ODD).unwrap();
    state.apply(Change::ZoneFile(odd)).unwrap();
    Arc::new(Snapshot::build(&state, &Defaults::default()))
}

fn zone() -> Zone {
    Zone::new(Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1)
}

fn settings() -> Arc<Settings> {
    Arc::new(Settings::new(zone()))
}

/// A client on loopback, over UDP, now.
fn client() -> Client {
    Client { ip: "127.0.0.1".parse().unwrap(), transport: Transport::Udp }
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

/// Every question the fast path takes gets exactly the records the full path gives, in the
/// same rotated order, query after query.
#[test]
fn the_fast_path_answers_exactly_as_the_full_handler() {
    let (fast_snap, slow_snap, zone) = (snapshot(), snapshot(), zone());
    let table = FastTable::build(fast_snap, settings());
    let cases = [
        ("web.service.local.", RecordType::A),
        ("WEB.Service.LOCAL.", RecordType::A),
        ("web.service.local.", RecordType::AAAA),
        ("web.service.local.", RecordType::SRV),
        ("web.service.local.", RecordType::TXT),
        ("web.service.local.", RecordType::MX),
        ("v1.web.service.local.", RecordType::SRV),
        ("_web._tcp.service.local.", RecordType::SRV),
        ("_web._canary.service.local.", RecordType::SRV),
        ("db.service.local.", RecordType::A),
        ("db.service.eu.local.", RecordType::A),
        ("db.service.eu.local.", RecordType::SRV),
        ("web-2.instance.local.", RecordType::A),
        ("web-2.instance.local.", RecordType::AAAA),
        ("down.service.local.", RecordType::A),
        ("nope.service.local.", RecordType::A),
        ("x.y.z.local.", RecordType::A),
        ("service.local.", RecordType::A),
        ("_tcp.service.local.", RecordType::SRV),
        ("eu.local.", RecordType::A),
        ("_v1.service.local.", RecordType::A),
        ("shared.service.local.", RecordType::A),
        ("shared.service.local.", RecordType::SRV),
        ("shared.service.local.", RecordType::AAAA),
        ("limited.service.local.", RecordType::A),
        ("limited.service.local.", RecordType::TXT),
        // DNS-SD (RFC 6763).
        ("_web._tcp.service.local.", RecordType::PTR),
        ("_WEB._Tcp.service.local.", RecordType::PTR),
        ("_v1._sub._web._tcp.service.local.", RecordType::PTR),
        ("_Canary._sub._web._tcp.service.local.", RecordType::PTR),
        ("_canary._sub._web._tcp.service.local.", RecordType::A),
        ("_sub._web._tcp.service.local.", RecordType::PTR),
        ("_sub._db._tcp.service.local.", RecordType::PTR),
        ("_nope._sub._web._tcp.service.local.", RecordType::PTR),
        ("_db._tcp.service.local.", RecordType::PTR),
        ("_limited._tcp.service.local.", RecordType::PTR),
        ("_down._tcp.service.local.", RecordType::PTR),
        ("web-1._web._tcp.service.local.", RecordType::SRV),
        ("web-1._web._tcp.service.local.", RecordType::TXT),
        ("web-2._web._tcp.service.local.", RecordType::TXT),
        ("web-3._web._tcp.service.local.", RecordType::SRV),
        ("Web-1._WEB._tcp.service.local.", RecordType::SRV),
        ("web-1._web._tcp.service.local.", RecordType::A),
        ("db-1._db._tcp.service.local.", RecordType::SRV),
        ("nope._web._tcp.service.local.", RecordType::SRV),
        ("db-1._web._tcp.service.local.", RecordType::SRV),
        ("_sub._web._tcp.service.local.", RecordType::SRV),
        ("down-1._down._tcp.service.local.", RecordType::SRV),
        ("x.web-1._web._tcp.service.local.", RecordType::SRV),
        ("_udp.service.local.", RecordType::PTR),
        ("_dns-sd._udp.service.local.", RecordType::PTR),
        ("_udp.local.", RecordType::PTR),
        ("_dns-sd._udp.local.", RecordType::PTR),
        ("web.service.local.", RecordType::PTR),
        ("_web._v1.service.local.", RecordType::PTR),
        ("_odd._tcp.service.local.", RecordType::PTR),
        ("_sub._odd._tcp.service.local.", RecordType::SRV),
        ("odd-1._odd._tcp.service.local.", RecordType::SRV),
    ];
    same_answers(&table, &zone, &slow_snap, &cases);
}

/// Asks both paths each question, seven rounds (rotation included), and insists on the same
/// answer, the fast path never declining.
fn same_answers(table: &FastTable, zone: &Zone, slow_snap: &Snapshot, cases: &[(&str, RecordType)]) {
    let mut out = Vec::new();
    for round in 0..7 {
        for &(name, qtype) in cases {
            for edns in [None, Some(1232)] {
                let q = query(name, qtype, edns);
                table.answer(&q, client(), &mut out).unwrap_or_else(|| panic!("fast path declined {name} {qtype}"));
                let fast = Message::from_vec(&out).unwrap();
                let full = answer(zone, slow_snap, &Name::from_ascii(name).unwrap(), qtype, Transport::Udp, None);
                let what = format!("round {round}: {name} {qtype} edns {edns:?}");
                assert_eq!(fast.metadata.id, 4242, "{what}");
                assert_eq!(fast.metadata.response_code, full.rcode, "{what}");
                assert!(fast.metadata.authoritative && fast.metadata.recursion_desired, "{what}");
                assert_eq!(fast.answers, full.answers, "{what}");
                assert_eq!(fast.authorities, full.authorities, "{what}");
                assert_eq!(fast.additionals, full.additionals, "{what}");
                assert_eq!(fast.queries[0].name().to_string(), name, "the question's case is kept: {what}");
                assert_eq!(fast.edns.as_ref().map(|e| e.max_payload()), edns, "{what}");
            }
        }
    }
}

/// `[dns] consul_names`: Consul's datacenter qualifiers answer on both paths alike, as the names
/// without them do.
#[test]
fn consul_qualified_names_answer_alike_on_both_paths() {
    let (fast_snap, slow_snap) = (snapshot(), snapshot());
    let zone = Zone { consul: Some(ConsulNames { local: Some("dc1".into()) }), ..zone() };
    let table = FastTable::build(fast_snap, Arc::new(Settings::new(zone.clone())));
    let cases = [
        ("web.service.dc1.local.", RecordType::A),
        ("web.service.DC1.dc.local.", RecordType::SRV),
        ("v1.web.service.dc1.local.", RecordType::SRV),
        ("_web._tcp.service.dc1.local.", RecordType::SRV),
        ("_web._tcp.service.dc1.dc.local.", RecordType::PTR),
        ("_v1._sub._web._tcp.service.dc1.dc.local.", RecordType::PTR),
        ("web-1._web._tcp.service.dc1.local.", RecordType::SRV),
        ("db.service.eu.dc.local.", RecordType::A),
        ("db.service.eu.local.", RecordType::A),
        ("nope.service.dc1.local.", RecordType::A),
        ("web.service.dc2.local.", RecordType::A),
        ("service.dc1.local.", RecordType::A),
        ("web.service.local.", RecordType::A),
        ("web-2.instance.local.", RecordType::A),
    ];
    same_answers(&table, &zone, &slow_snap, &cases);
    // And what they answer is what the name without the qualifier answers (over a few queries:
    // answers rotate, and may be limited).
    let addresses = |name: &str| {
        let mut all = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let full = answer(&zone, &slow_snap, &Name::from_ascii(name).unwrap(), RecordType::A, Transport::Udp, None);
            all.extend(full.answers.iter().map(|r| r.data.to_string()));
        }
        all
    };
    assert!(!addresses("web.service.local.").is_empty());
    assert_eq!(addresses("web.service.dc1.dc.local."), addresses("web.service.local."));
    assert_eq!(addresses("db.service.eu.dc.local."), addresses("db.service.eu.local."));
}

#[test]
fn unusual_questions_are_left_to_the_full_handler() {
    let table = FastTable::build(snapshot(), settings());
    let mut out = Vec::new();
    let declined = |bytes: &[u8], out: &mut Vec<u8>| table.answer(bytes, client(), out).is_none();
    assert!(declined(&query("web.service.local.", RecordType::ANY, None), &mut out));
    assert!(declined(&query("service.local.", RecordType::AXFR, None), &mut out), "a transfer");
    assert!(declined(&query("local.", RecordType::IXFR, None), &mut out), "a transfer");
    assert!(declined(&query("local.", RecordType::SOA, None), &mut out), "the apex");
    assert!(declined(&query("ns.local.", RecordType::A, None), &mut out));
    assert!(declined(&query("example.com.", RecordType::A, None), &mut out), "outside the domain");
    assert!(declined(&query("1.0.0.10.in-addr.arpa.", RecordType::PTR, None), &mut out));
    // DNS-SD's rare questions, and instances under a region's browse domain.
    assert!(declined(&query("_services._dns-sd._udp.service.local.", RecordType::PTR, None), &mut out));
    assert!(declined(&query("b._dns-sd._udp.local.", RecordType::PTR, None), &mut out));
    assert!(declined(&query("lb._dns-sd._udp.service.local.", RecordType::PTR, None), &mut out));
    assert!(declined(&query("db-1._db._tcp.service.eu.local.", RecordType::SRV, None), &mut out));
    let mut two = query("web.service.local.", RecordType::A, None);
    two[5] = 2;
    assert!(declined(&two, &mut out), "two questions");
    let mut notify = query("web.service.local.", RecordType::A, None);
    notify[2] |= 4 << 3;
    assert!(declined(&notify, &mut out), "another opcode");
    let mut chaos = query("web.service.local.", RecordType::A, None);
    let len = chaos.len();
    chaos[len - 1] = 3;
    assert!(declined(&chaos, &mut out), "class CH");
    let mut v1 = query("web.service.local.", RecordType::A, Some(1232));
    let len = v1.len();
    v1[len - 5] = 1;
    assert!(declined(&v1, &mut out), "EDNS version 1");
    assert!(declined(&[0; 11], &mut out));
    let mut bad_cookie = query("web.service.local.", RecordType::A, Some(1232));
    bad_cookie.splice(bad_cookie.len() - 2.., [0, 13, 0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert!(declined(&bad_cookie, &mut out), "a malformed cookie: FORMERR is the full handler's");
}

#[test]
fn an_answer_too_big_for_the_client_goes_to_the_full_handler() {
    let mut text = String::from("[[service]]\nname = \"big\"\n");
    for i in 0..40 {
        text.push_str(&format!("\n[[service.instance]]\nid = \"big-{i}\"\naddress = \"10.9.0.{i}\"\nport = 80\n"));
    }
    let mut state = State::new();
    state.apply(Change::ZoneFile(crate::zones::parse(Path::new("z.toml"), &text).unwrap())).unwrap();
    let table = FastTable::build(Arc::new(Snapshot::build(&state, &Defaults::default())), settings());
    let mut out = Vec::new();
    assert!(table.answer(&query("big.service.local.", RecordType::A, None), client(), &mut out).is_none(), "over 512");
    table.answer(&query("big.service.local.", RecordType::A, Some(1232)), client(), &mut out).unwrap();
    assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 40);
    assert!(table.answer(&query("big.service.local.", RecordType::SRV, Some(1232)), client(), &mut out).is_none());
    // Over TCP the whole answer, glue included.
    let tcp = Client { transport: Transport::Tcp, ..client() };
    table.answer(&query("big.service.local.", RecordType::SRV, None), tcp, &mut out).unwrap();
    let m = Message::from_vec(&out).unwrap();
    assert_eq!((m.answers.len(), m.additionals.len()), (40, 40));
}

/// Registrations, removals, moves between services, tags, regions, weights, maintenance,
/// check results and host-name resolutions in random batches: after each, the snapshot made
/// from the previous one and the table updated from the previous one hold exactly what
/// ones built from scratch hold, and the fast path answers every name as the full handler.
#[test]
fn snapshots_and_tables_updated_batch_by_batch_equal_ones_built_from_scratch() {
    use crate::model::{CheckKind, CheckSpec, Instance, ServicePolicy, Source, Status, WhenNoneHealthy};
    use std::time::Duration;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (defaults, zone) = (Defaults::default(), zone());
    let mut state = State::new();
    let mut snap = Arc::new(Snapshot::default());
    let mut table = FastTable::build(snap.clone(), settings());
    let check = |id: u64| CheckSpec {
        id: format!("c{id}"),
        name: "ttl".into(),
        kind: CheckKind::Ttl { ttl: Duration::from_secs(60) },
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        rise: None,
        fall: None,
        deregister_after: None,
        initial: Some(Status::Passing),
    };
    let mut dns_sd = std::collections::HashMap::new();
    for round in 0..250 {
        for _ in 0..1 + next(4) {
            let id = next(12);
            let node = format!("n{}", next(2));
            let change = match next(13) {
                0 => Change::Deregister { id: format!("i{id}") },
                // Nodes: records, their checks (c12 to c14) gating what is on them, and going.
                10 => Change::Register {
                    instance: Instance::node_record(
                        Some(&node),
                        Address::Ip(IpAddr::from([10, 0, 1, next(2) as u8])),
                        Default::default(),
                        vec![],
                    ),
                    replace_existing_checks: false,
                },
                11 => Change::AddCheck {
                    owner: CheckOwner::Node(next(3).ne(&0).then(|| node.clone())),
                    check: CheckSpec { initial: Some(Status::Critical), ..check(12 + next(3)) },
                    output: String::new(),
                },
                12 => Change::DeregisterNode { node: node.clone() },
                1 => Change::Maintenance { id: format!("i{id}"), reason: next(2).eq(&0).then(|| "m".into()) },
                2 => Change::CheckUpdate {
                    check_id: format!("c{}", next(15)),
                    status: [Status::Passing, Status::Warning, Status::Critical][next(3) as usize],
                    output: String::new(),
                },
                3 => Change::Resolved {
                    host: format!("h{}.example", next(2)),
                    addrs: (0..next(3)).map(|k| IpAddr::from([192, 0, 2, k as u8 + next(2) as u8])).collect(),
                },
                _ => Change::Register {
                    instance: Instance {
                        id: format!("i{id}"),
                        service: ["a", "B", "c"][next(3) as usize].into(),
                        address: match next(6) {
                            0 => Address::Host(format!("h{}.example", next(2))),
                            1 => Address::Ip(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, next(3) as u16])),
                            _ => Address::Ip(IpAddr::from([10, 0, 0, next(5) as u8])),
                        },
                        port: 80 + next(3) as u16,
                        tags: (0..next(3)).map(|t| format!("t{t}")).collect(),
                        weight: 1 + next(3) as u32,
                        region: ["eu", "us"].get(next(3) as usize).map(|r| (*r).into()),
                        meta: Default::default(),
                        checks: if next(2) == 0 { vec![check(id)] } else { vec![] },
                        policy: ServicePolicy {
                            answer_limit: next(2).eq(&0).then_some(2),
                            when_none_healthy: next(2).eq(&0).then_some(WhenNoneHealthy::All),
                            ..ServicePolicy::default()
                        }
                        .into(),
                        source: Source::Api,
                        node: [None, None, Some(node.clone())][next(3) as usize].clone().map(Into::into),
                    },
                    replace_existing_checks: next(2) == 0,
                },
            };
            let _ = state.apply(change);
        }
        state.version += 1;
        let touched = state.take_touched();
        snap = Arc::new(snap.next(&state, &defaults, &touched));
        table = table.update(snap.clone());
        let fresh = Arc::new(Snapshot::build(&state, &defaults));
        let fresh_table = FastTable::build(fresh.clone(), settings());

        let what = format!("round {round}");
        let ids = |s: &Snapshot| s.instances().map(|v| (v.key.to_string(), v.status)).collect::<Vec<_>>();
        assert_eq!(ids(&snap), ids(&fresh), "{what}");
        assert_eq!(snap.counts(), fresh.counts(), "{what}");
        assert_eq!(snap.hosts().collect::<Vec<_>>(), fresh.hosts().collect::<Vec<_>>(), "{what}");
        let sorted = |i: Box<dyn Iterator<Item = &str> + '_>| {
            let mut v: Vec<String> = i.map(str::to_string).collect();
            v.sort();
            v
        };
        let (r1, t1) = snap.regions_and_tags();
        let (r2, t2) = fresh.regions_and_tags();
        assert_eq!(sorted(Box::new(r1)), sorted(Box::new(r2)), "{what}");
        assert_eq!(sorted(Box::new(t1)), sorted(Box::new(t2)), "{what}");
        for id in 0..15 {
            let c = format!("c{id}");
            let at = |s: &Snapshot| s.check(&c).map(|(v, i)| (v.key.to_string(), i));
            assert_eq!(at(&snap), at(&fresh), "{what} {c}");
        }
        for last in 0..5 {
            let ip = IpAddr::from([10, 0, 0, last]);
            let at = |s: &Snapshot| s.at_address(ip).map(|v| v.key.to_string()).collect::<Vec<_>>();
            assert_eq!(at(&snap), at(&fresh), "{what} {ip}");
        }
        let mut names: Vec<String> = Vec::new();
        for service in ["a", "b", "c", "d"] {
            for tag in ["", "t0.", "t1.", "t2."] {
                for region in ["", ".eu", ".us"] {
                    names.push(format!("{tag}{service}.service{region}.local."));
                }
                let t = if tag.is_empty() { "tcp" } else { tag.trim_end_matches('.') };
                names.push(format!("_{service}._{t}.service.local."));
            }
        }
        names.extend((0..12).map(|i| format!("i{i}.instance.local.")));
        for service in ["a", "b", "c"] {
            for region in ["", ".eu"] {
                names.push(format!("_t0._sub._{service}._tcp.service{region}.local."));
                names.push(format!("_sub._{service}._tcp.service{region}.local."));
                names.push(format!("_{service}._tcp.service{region}.local."));
                names.extend((0..12).map(|i| format!("i{i}._{service}._tcp.service{region}.local.")));
            }
        }
        names.extend(
            ["eu.local.", "us.local.", "service.eu.local.", "_t0.service.local.", "_t2.service.local."]
                .map(String::from),
        );
        names.extend(["n0.node.local.", "N1.Node.local.", "n2.node.local.", "node.local."].map(String::from));
        let mut out = Vec::new();
        for name in &names {
            for qtype in [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT, RecordType::PTR] {
                let q = query(name, qtype, Some(1232));
                let updated = table.answer(&q, client(), &mut out).map(|_| records(&out));
                let built = fresh_table.answer(&q, client(), &mut out).map(|_| records(&out));
                let full = answer(&zone, &fresh, &Name::from_ascii(name).unwrap(), qtype, Transport::Udp, None);
                let full = (
                    full.rcode,
                    sorted_records(&full.answers),
                    sorted_records(&full.authorities),
                    sorted_records(&full.additionals),
                );
                for fast in [updated.as_ref(), built.as_ref()].into_iter().flatten() {
                    // With an answer limit, which addresses make the cut depends on where
                    // each table's rotation stands: then only how many.
                    let limited =
                        matches!(qtype, RecordType::A | RecordType::AAAA | RecordType::PTR) && fast.1.len() == 2;
                    let unique: std::collections::HashSet<_> = fast.1.iter().collect();
                    assert_eq!(unique.len(), fast.1.len(), "{what}: {name} {qtype}: an address twice");
                    if limited {
                        assert_eq!(
                            (fast.0, fast.1.len(), &fast.2),
                            (full.0, full.1.len(), &full.2),
                            "{what}: {name} {qtype}"
                        );
                    } else {
                        assert_eq!(fast, &full, "{what}: {name} {qtype} (fast vs full)");
                    }
                }
                assert_eq!(updated.is_some(), built.is_some(), "{what}: {name} {qtype}: only one table answers");
                // DNS-SD's browsing and instances, answered with records by the fast path.
                if name.contains("._tcp.") && updated.as_ref().is_some_and(|u| !u.1.is_empty()) {
                    let kind = if name.starts_with("i") { "instance" } else { "type" };
                    *dns_sd.entry((kind, qtype)).or_insert(0) += 1;
                }
            }
        }
    }
    assert!(dns_sd.values().all(|&n| n > 200) && dns_sd.len() == 7, "{dns_sd:?}");
}

/// An answer's rcode and its records in every section, in a canonical order (rotations of
/// two tables need not stand at the same place).
type Sections = (hickory_proto::op::ResponseCode, Vec<String>, Vec<String>, Vec<String>);

fn records(bytes: &[u8]) -> Sections {
    let m = Message::from_vec(bytes).unwrap();
    (
        m.metadata.response_code,
        sorted_records(&m.answers),
        sorted_records(&m.authorities),
        sorted_records(&m.additionals),
    )
}

fn sorted_records(records: &[Record]) -> Vec<String> {
    let mut all: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    all.sort();
    all
}
