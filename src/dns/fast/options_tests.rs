//! The fast path against the full handler with the EDNS options real clients send: every
//! combination of cookie, client subnet, NSID, padding and an unknown option, in both orders,
//! from clients of different regions, for every kind of name; both paths over their own copies
//! of one catalog, query after query, so that their rotations stand at the same place.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;

use super::{Client, FastTable};
use crate::dns::cookie::{Cookies, Verdict};
use crate::dns::edns::{COOKIE, NSID, SUBNET};
use crate::dns::{Handler, Regions, Reply, Settings, Transport, Zone};
use crate::registry::{Change, Defaults, Registry, Snapshot, State};

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-e1"
address = "10.0.1.1"
port = 80

[[service.instance]]
id = "web-e2"
address = "10.0.1.2"
port = 81
weight = 2

[[service]]
name = "web"
region = "us"

[[service.instance]]
id = "web-u1"
address = "10.0.2.1"
port = 80
tags = ["v1"]

[[service.instance]]
id = "web-u6"
address = "2001:db8::6"
port = 80

[[service]]
name = "db"

[[service.instance]]
id = "db-1"
address = "10.1.0.1"
port = 5432
"#;

fn state() -> State {
    let mut state = State::new();
    state.apply(Change::ZoneFile(crate::zones::parse(Path::new("z.toml"), ZONE).unwrap())).unwrap();
    state
}

fn settings() -> Arc<Settings> {
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    Arc::new(Settings {
        regions: Regions::new(vec![(net("10.8.0.0/16"), "eu".into()), (net("10.9.0.0/16"), "us".into())], None),
        nsid: Some(b"signpost-1".as_slice().into()),
        cookies: Cookies::new([3; 16]),
        ..Settings::new(Zone::new(Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1))
    })
}

/// One option as it goes on the wire.
fn option(code: u16, value: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], &(value.len() as u16).to_be_bytes(), value].concat()
}

/// A query with an OPT record holding `options` (raw), as a client writes it.
fn query(name: &str, qtype: RecordType, options: &[u8]) -> Vec<u8> {
    let mut m = Message::new(777, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.edns = Some(e);
    let mut bytes = m.to_vec().unwrap();
    // The OPT is last, its data empty: append the options and set its length.
    let len = bytes.len();
    bytes[len - 2..].copy_from_slice(&(options.len() as u16).to_be_bytes());
    bytes.extend_from_slice(options);
    bytes
}

/// The option sets to try: each cookie, subnet and extra combination, in both orders.
fn option_sets(valid_cookie: &[u8]) -> Vec<(String, Vec<u8>)> {
    let cookies: [(&str, Option<Vec<u8>>); 5] = [
        ("no cookie", None),
        ("client cookie", Some(vec![1, 2, 3, 4, 5, 6, 7, 8])),
        ("good server cookie", Some(valid_cookie.to_vec())),
        ("bogus server cookie", Some([&[1, 2, 3, 4, 5, 6, 7, 8][..], &[9; 16]].concat())),
        ("malformed cookie", Some(vec![1; 9])),
    ];
    let subnets: [(&str, Option<Vec<u8>>); 6] = [
        ("no subnet", None),
        ("eu subnet", Some(vec![0, 1, 24, 0, 10, 8, 7])),
        ("us subnet", Some(vec![0, 1, 16, 0, 10, 9])),
        ("no region's subnet", Some(vec![0, 1, 24, 0, 192, 0, 2])),
        ("v6 subnet", Some(vec![0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 1])),
        ("malformed subnet", Some(vec![0, 1, 24, 8, 10, 8, 7])),
    ];
    let mut out = Vec::new();
    for (c_what, cookie) in &cookies {
        for (s_what, subnet) in &subnets {
            for extras in 0..4 {
                let mut parts: Vec<Vec<u8>> = Vec::new();
                parts.extend(cookie.iter().map(|c| option(COOKIE, c)));
                parts.extend(subnet.iter().map(|s| option(SUBNET, s)));
                if extras & 1 != 0 {
                    parts.push(option(NSID, &[]));
                }
                if extras & 2 != 0 {
                    parts.push(option(12, &[0; 17])); // padding
                    parts.push(option(65001, b"unknown"));
                }
                let what = format!("{c_what}, {s_what}, extras {extras}");
                out.push((format!("{what}, in order"), parts.concat()));
                parts.reverse();
                out.push((format!("{what}, reversed"), parts.concat()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_option_combination_gets_the_same_answer_on_both_paths() {
    let settings = settings();
    let table = FastTable::build(Arc::new(Snapshot::build(&state(), &Defaults::default())), settings.clone());
    let (registry, _writer) = Registry::start(
        state(),
        Defaults::default(),
        Box::new(crate::store::NoStore),
        Box::new(|_| {}),
        tokio_util::sync::CancellationToken::new(),
    );
    let handler = Handler::new(registry, Arc::new(arc_swap::ArcSwap::new(settings.clone())));
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let now = crate::dns::cookie::unix_seconds();
    let (_, server) = settings.cookies.check(&[1, 2, 3, 4, 5, 6, 7, 8], &[], loopback, now);
    let valid = [&[1, 2, 3, 4, 5, 6, 7, 8][..], &server].concat();
    let names = [
        "web.service.local.",
        "v1.web.service.local.",
        "_web._tcp.service.local.",
        "web.service.eu.local.",
        "db.service.local.",
        "web-e1.instance.local.",
        "nope.service.local.",
        "service.local.",
        "_v1._sub._web._tcp.service.local.",
        "web-e1._web._tcp.service.local.",
        "web-u6._web._tcp.service.local.",
        "nope._web._tcp.service.local.",
        "_sub._web._tcp.service.local.",
    ];
    let mut answered_fast = 0;
    for (what, options) in option_sets(&valid) {
        // The same client from a region of its own address, and from loopback (no region).
        for from in ["127.0.0.1", "10.9.0.5"] {
            let ip: IpAddr = from.parse().unwrap();
            for name in names {
                let qtypes = [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT, RecordType::PTR];
                for qtype in qtypes.into_iter().chain([RecordType::MX]) {
                    let q = query(name, qtype, &options);
                    let ctx = format!("{name} {qtype} from {from}, {what}");
                    let mut out = Vec::new();
                    let client = Client { ip, transport: Transport::Udp };
                    let fast = table.answer(&q, client, &mut out).map(|_| out.clone());
                    let Some(Reply::Message(full)) =
                        handler.answer(&q, SocketAddr::new(ip, 5353), Transport::Udp).await
                    else {
                        panic!("{ctx}: the full handler gives one message");
                    };
                    let full = Message::from_vec(&full).unwrap();
                    if what.contains("malformed") {
                        assert!(fast.is_none(), "{ctx}: the fast path leaves malformed options alone");
                        assert_eq!(full.metadata.response_code, ResponseCode::FormErr, "{ctx}");
                        continue;
                    }
                    let fast =
                        Message::from_vec(&fast.unwrap_or_else(|| panic!("{ctx}: the fast path declined"))).unwrap();
                    answered_fast += 1;
                    same(&fast, &full, &settings.cookies, ip, now, &ctx);
                }
            }
        }
    }
    assert!(answered_fast > 20_000, "{answered_fast}");
}

/// Two answers agree: header, every section in order, and the OPT record option by option
/// (the server cookies may differ in time; both must be ours).
fn same(fast: &Message, full: &Message, cookies: &Cookies, ip: IpAddr, now: u32, ctx: &str) {
    assert_eq!(fast.metadata, full.metadata, "{ctx}: header");
    assert_eq!(fast.queries, full.queries, "{ctx}");
    assert_eq!(fast.answers, full.answers, "{ctx}: answers");
    assert_eq!(fast.authorities, full.authorities, "{ctx}: authorities");
    assert_eq!(fast.additionals, full.additionals, "{ctx}: additionals");
    let (a, b) = (fast.edns.as_ref().unwrap(), full.edns.as_ref().unwrap());
    assert_eq!(
        (a.max_payload(), a.flags().dnssec_ok, a.version()),
        (b.max_payload(), b.flags().dnssec_ok, b.version()),
        "{ctx}"
    );
    let options = |e: &Edns| -> Vec<(u16, Vec<u8>)> {
        e.options()
            .options
            .iter()
            .map(|(code, o)| match o {
                EdnsOption::Unknown(c, v) => (*c, v.clone()),
                other => (u16::from(*code), format!("{other:?}").into_bytes()),
            })
            .collect()
    };
    let (a, b) = (options(a), options(b));
    assert_eq!(a.len(), b.len(), "{ctx}: {a:?} {b:?}");
    for ((ca, va), (cb, vb)) in a.iter().zip(&b) {
        assert_eq!(ca, cb, "{ctx}: option order");
        if *ca == COOKIE {
            assert_eq!(va[..8], vb[..8], "{ctx}: the client cookie echoed");
            for v in [va, vb] {
                let client: [u8; 8] = v[..8].try_into().unwrap();
                assert_eq!(
                    cookies.check(&client, &v[8..], ip, now).0,
                    Verdict::Valid,
                    "{ctx}: a server cookie of ours"
                );
            }
        } else {
            assert_eq!(va, vb, "{ctx}: option {ca}");
        }
    }
}
