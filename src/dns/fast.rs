//! The UDP fast path: answers for the common questions assembled from bytes encoded once per
//! snapshot, with no per-query parsing into objects, record building or allocation.
//!
//! For every snapshot the registry publishes, `FastTable::build` encodes each instance's A,
//! AAAA, SRV (+ glue) and TXT record once (from the same record builders as `answer.rs`, so the
//! two paths cannot drift apart) and indexes every DNS name of the domain by its lowercase wire
//! form. A query is then: check the header, copy the question, look the name up, advance the
//! name's rotation (the snapshot's own counter, shared with the slow path) and copy the
//! instances' record bytes in rotated order. Everything unusual — other opcodes or classes,
//! several questions, EDNS options or versions, names outside the domain, ANY, the apex,
//! answers that would not fit, names whose answer depends on the client's region — returns
//! `None` and goes to the full handler (hickory-proto parsing, `answer.rs`), which is the
//! reference behaviour.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::answer::{Zone, address_record, instance_ttl, srv_record, txt_record};
use super::parse::{Target, classify_labels};
use crate::registry::model::Address;
use crate::registry::{AnswerSet, NameEntry, Snapshot};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_TXT: u16 = 16;
const TYPE_OPT: u16 = 41;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
/// A pointer to the question's name, which always starts right after the 12-byte header.
const QNAME_POINTER: [u8; 2] = [0xC0, 0x0C];

/// The answers of one snapshot, pre-encoded.
pub struct FastTable {
    snap: Arc<Snapshot>,
    /// Lowercase wire name (with its final zero byte) → what it is.
    names: HashMap<Box<[u8]>, FastName>,
    /// The domain's lowercase wire form, to tell names inside it from names outside.
    domain: Box<[u8]>,
    /// Per instance of `snap.instances`.
    instances: Vec<InstanceWire>,
    /// Per entry of the snapshot (`Snapshot::entry`), what its answers need.
    entries: Vec<EntryWire>,
    /// The SOA for negative answers, without its owner (which points into the question).
    soa: Box<[u8]>,
    udp_max_payload: u16,
}

#[derive(Debug, Clone, Copy)]
enum FastName {
    Service {
        entry: u32,
        rfc2782: bool,
    },
    Instance(u32),
    /// Exists but holds no records here (an empty non-terminal): NODATA.
    Exists,
    /// Exists, but the full handler answers it (the apex, `ns.D`, region-dependent names).
    Slow,
}

/// One instance's records, each without its owner name: TYPE CLASS TTL RDLENGTH RDATA.
#[derive(Debug, Default)]
struct InstanceWire {
    a: Option<Box<[u8]>>,
    aaaa: Option<Box<[u8]>>,
    srv: Box<[u8]>,
    /// The SRV target's address record (owner: a pointer to the target in the SRV's RDATA).
    glue: Option<Box<[u8]>>,
    txt: Box<[u8]>,
}

/// Per name entry: the bytes each answer takes, or `None` where the fast path must step aside
/// (an address shared by several instances, which A/AAAA de-duplicate).
#[derive(Debug, Default, Clone, Copy)]
struct EntryWire {
    a: Option<usize>,
    aaaa: Option<usize>,
    /// `None` when a member has a host-name address (its glue is resolved elsewhere).
    srv: Option<usize>,
    txt: usize,
}

/// How the question is laid out in a query that passed the checks.
struct Question {
    /// End of the question (and start of the answer section).
    end: usize,
    qtype: u16,
    /// Length of the wire name, with its final zero byte.
    name_len: usize,
    /// The client's EDNS: (payload size, DO bit), if it sent an OPT.
    edns: Option<(u16, bool)>,
    /// The answer's size limit; also the payload our OPT advertises.
    limit: u16,
}

impl FastTable {
    /// Encodes `snap` for `zone`. `regional`: client regions are configured, so names that do
    /// not name a region answer differently per client and are left to the full handler.
    pub fn build(snap: Arc<Snapshot>, zone: &Zone, regional: bool, udp_max_payload: u16) -> FastTable {
        let root = Name::root();
        let instances: Vec<InstanceWire> = snap
            .instances
            .iter()
            .map(|view| {
                let ttl = instance_ttl(&snap, view);
                let mut w = InstanceWire::default();
                if let Address::Ip(ip) = view.instance.address {
                    let rec = address_record(&root, ip, RecordType::ANY, ttl).map(|r| tail(&r));
                    match ip {
                        IpAddr::V4(_) => w.a = rec,
                        IpAddr::V6(_) => w.aaaa = rec,
                    }
                    w.glue = address_record(&root, ip, RecordType::ANY, ttl).map(|r| tail(&r));
                }
                if let Some((srv, _)) = srv_record(zone, &root, &view.instance, ttl, 1) {
                    w.srv = tail(&srv);
                }
                w.txt = tail(&txt_record(&root, &view.instance, ttl));
                w
            })
            .collect();

        let mut names = HashMap::new();
        let domain_labels: Vec<Vec<u8>> = zone.lower.iter().map(<[u8]>::to_vec).collect();
        // Only names the full handler reads the same way are indexed: with tags or regions
        // spelled like `_tcp` or `service`, a generated name can mean something else.
        let mut add = |relative: &[&str], what: FastName, meant: Target| {
            if classify_labels(relative) == meant {
                names.entry(wire(relative, &domain_labels)).or_insert(what);
            }
        };
        add(&[], FastName::Slow, Target::Apex);
        add(&["ns"], FastName::Slow, Target::Nameserver);
        for ent in [&["service"][..], &["instance"], &["_tcp", "service"]] {
            add(ent, FastName::Exists, Target::EmptyNonTerminal);
        }
        let (regions, tags) = snap.regions_and_tags();
        for r in regions {
            for ent in [&[r][..], &["service", r], &["_tcp", "service", r]] {
                add(ent, FastName::Exists, Target::RegionNonTerminal(r));
            }
        }
        for t in tags {
            add(&[&format!("_{t}"), "service"], FastName::Exists, Target::TagNonTerminal(t));
        }
        for form in snap.name_forms() {
            let slow = regional && form.region.is_none();
            let service =
                |rfc2782| if slow { FastName::Slow } else { FastName::Service { entry: form.index, rfc2782 } };
            let meant =
                |rfc2782| Target::Service { service: form.service, tag: form.tag, region: form.region, rfc2782 };
            let mut plain: Vec<&str> = form.tag.into_iter().collect();
            plain.extend([form.service, "service"]);
            plain.extend(form.region);
            add(&plain, service(false), meant(false));
            let (under_name, under_tag) = (format!("_{}", form.service), format!("_{}", form.tag.unwrap_or("tcp")));
            let mut rfc = vec![under_name.as_str(), under_tag.as_str(), "service"];
            rfc.extend(form.region);
            add(&rfc, service(true), meant(true));
        }
        for (i, view) in snap.instances.iter().enumerate() {
            // A host-name address is resolved elsewhere; the full handler answers for it.
            let what = match view.instance.address {
                Address::Ip(_) => FastName::Instance(i as u32),
                Address::Host(_) => FastName::Slow,
            };
            let id = view.instance.id.to_ascii_lowercase();
            add(&[&id, "instance"], what, Target::Instance { id: &id });
        }

        let entries = snap
            .entries()
            .iter()
            .map(|e| EntryWire {
                a: sized(e, &e.v4, &snap, &instances, |w| w.a.as_deref()),
                aaaa: sized(e, &e.v6, &snap, &instances, |w| w.aaaa.as_deref()),
                srv: e
                    .srv
                    .members
                    .iter()
                    .map(|&i| match snap.instances[i as usize].instance.address {
                        Address::Ip(_) => Some(srv_len(&instances[i as usize])),
                        Address::Host(_) => None,
                    })
                    .sum(),
                txt: e.txt.members.iter().map(|&i| 2 + instances[i as usize].txt.len()).sum(),
            })
            .collect();
        let mut soa = zone.soa(snap.version, zone.negative_ttl);
        soa.name = root;
        let soa = tail(&soa);
        let domain = wire(&[], &domain_labels);
        FastTable { snap, names, domain, instances, entries, soa, udp_max_payload }
    }

    /// The snapshot this table encodes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// Answers `query` into `out` and returns the answer's length, or `None` if the full handler
    /// must answer it. Advances the rotation of the name only when it answers.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut q = parse(query)?;
        let mut key = [0u8; 255];
        let name = &query[12..12 + q.name_len];
        for (k, b) in key.iter_mut().zip(name) {
            *k = b.to_ascii_lowercase();
        }
        let key = &key[..q.name_len];
        q.limit = match q.edns {
            Some((payload, _)) => payload.clamp(512, self.udp_max_payload),
            None => 512,
        };
        let limit = usize::from(q.limit);
        let opt_len = if q.edns.is_some() { 11 } else { 0 };
        if q.qtype == TYPE_ANY {
            return None;
        }

        out.clear();
        out.extend_from_slice(&query[..q.end]);
        let what = match self.names.get(key) {
            Some(what) => *what,
            None if key.ends_with(&self.domain) => return Some(self.negative(&q, out, RCODE_NXDOMAIN)),
            None => return None,
        };
        let (answers, additionals) = match what {
            FastName::Slow => return None,
            FastName::Exists => return Some(self.negative(&q, out, 0)),
            FastName::Instance(i) => {
                let w = &self.instances[i as usize];
                let rec = match q.qtype {
                    TYPE_A => w.a.as_deref(),
                    TYPE_AAAA => w.aaaa.as_deref(),
                    _ => None,
                };
                match rec {
                    Some(rec) if q.end + 2 + rec.len() + opt_len <= limit => {
                        out.extend_from_slice(&QNAME_POINTER);
                        out.extend_from_slice(rec);
                        (1, 0)
                    }
                    Some(_) => return None,
                    None => return Some(self.negative(&q, out, 0)),
                }
            }
            FastName::Service { entry, rfc2782 } => {
                let e = self.snap.entry(entry);
                let sizes = self.entries[entry as usize];
                let (set, size) = match q.qtype {
                    TYPE_A => (&e.v4, sizes.a?),
                    TYPE_AAAA => (&e.v6, sizes.aaaa?),
                    TYPE_SRV => (if rfc2782 { &e.srv_rfc2782 } else { &e.srv }, sizes.srv?),
                    TYPE_TXT => (&e.txt, sizes.txt),
                    _ => return Some(self.negative(&q, out, 0)),
                };
                if set.is_empty() {
                    return Some(self.negative(&q, out, 0));
                }
                if q.end + size + opt_len > limit {
                    return None; // The full handler truncates properly.
                }
                self.records(q.qtype, e, set, out)
            }
        };
        finish(out, &q, 0, answers, 0, additionals);
        Some(out.len())
    }

    /// Appends the records of one name and type in this query's rotated order; returns the
    /// answer and additional counts.
    fn records(&self, qtype: u16, e: &NameEntry, set: &AnswerSet, out: &mut Vec<u8>) -> (u16, u16) {
        let limit = if e.answer_limit == 0 { usize::MAX } else { e.answer_limit as usize };
        let mut answers = 0u16;
        match qtype {
            TYPE_SRV => {
                // Glue follows all SRV records; each glue owner points at its SRV's target.
                let mut targets: [(u32, u16); 64] = [(0, 0); 64];
                let mut spill = Vec::new();
                for i in set.rotate() {
                    let w = &self.instances[i as usize];
                    out.extend_from_slice(&QNAME_POINTER);
                    // TYPE CLASS TTL RDLENGTH (10) and priority, weight, port (6) precede the target.
                    let target = (out.len() + 16) as u16;
                    out.extend_from_slice(&w.srv);
                    if (answers as usize) < targets.len() {
                        targets[answers as usize] = (i, target);
                    } else {
                        spill.push((i, target));
                    }
                    answers += 1;
                }
                let mut glue = 0u16;
                for &(i, target) in targets[..(answers as usize).min(64)].iter().chain(&spill) {
                    if let Some(g) = &self.instances[i as usize].glue {
                        out.extend_from_slice(&(0xC000 | target).to_be_bytes());
                        out.extend_from_slice(g);
                        glue += 1;
                    }
                }
                return (answers, glue);
            }
            _ => {
                for i in set.rotate() {
                    if answers as usize == limit && qtype != TYPE_TXT {
                        break;
                    }
                    let w = &self.instances[i as usize];
                    let rec = match qtype {
                        TYPE_A => w.a.as_deref(),
                        TYPE_AAAA => w.aaaa.as_deref(),
                        _ => Some(&*w.txt),
                    };
                    if let Some(rec) = rec {
                        out.extend_from_slice(&QNAME_POINTER);
                        out.extend_from_slice(rec);
                        answers += 1;
                    }
                }
            }
        }
        (answers, 0)
    }

    /// NXDOMAIN (`rcode` 3) or NODATA (0): no answers, the domain's SOA in authority.
    fn negative(&self, q: &Question, out: &mut Vec<u8>, rcode: u8) -> usize {
        // The domain is the question's last labels: point the SOA's owner at them.
        let owner = 12 + q.name_len - self.domain.len();
        out.extend_from_slice(&(0xC000 | owner as u16).to_be_bytes());
        out.extend_from_slice(&self.soa);
        finish(out, q, rcode, 0, 1, 0);
        out.len()
    }
}

/// Header flags and counts, and the OPT record when the client sent one.
fn finish(out: &mut Vec<u8>, q: &Question, rcode: u8, answers: u16, authorities: u16, additionals: u16) {
    let mut additionals = additionals;
    if let Some((_, dnssec_ok)) = q.edns {
        // Root owner, OPT, our payload, extended rcode 0, version 0, DO echoed (RFC 3225), no data.
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&q.limit.to_be_bytes());
        out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        additionals += 1;
    }
    // QR, opcode QUERY, AA, RD copied; RA, AD, Z clear; CD copied.
    out[2] = 0x80 | 0x04 | (out[2] & 0x01);
    out[3] = (out[3] & 0x10) | rcode;
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[8..10].copy_from_slice(&authorities.to_be_bytes());
    out[10..12].copy_from_slice(&additionals.to_be_bytes());
}

/// Checks the query is one the fast path may answer and finds its parts; `None` otherwise.
fn parse(query: &[u8]) -> Option<Question> {
    if query.len() < 17 {
        return None;
    }
    let counts = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    // QR=0, opcode QUERY, no TC; exactly one question, nothing but an optional OPT after it.
    if query[2] & 0xFA != 0 || counts(4) != 1 || counts(6) != 0 || counts(8) != 0 || counts(10) > 1 {
        return None;
    }
    let mut pos = 12;
    loop {
        let len = *query.get(pos)? as usize;
        if len & 0xC0 != 0 || pos - 12 + 1 + len > 255 {
            return None; // Compression or an overlong name: let the full parser judge it.
        }
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name_len = pos - 12;
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*query.get(pos + 2)?, *query.get(pos + 3)?]);
    if qclass != CLASS_IN {
        return None;
    }
    let end = pos + 4;
    let edns = if counts(10) == 1 {
        // Root name, OPT, payload, extended rcode, version 0, flags, no options, then the end.
        let opt = query.get(end..)?;
        if opt.len() != 11 || opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
            return None;
        }
        if opt[5] != 0 || opt[6] != 0 || opt[9] != 0 || opt[10] != 0 {
            return None;
        }
        Some((u16::from_be_bytes([opt[3], opt[4]]), opt[7] & 0x80 != 0))
    } else if end == query.len() {
        None
    } else {
        return None;
    };
    Some(Question { end, qtype, name_len, edns, limit: 512 })
}

/// A record's bytes after its owner name (encoded as the root, one zero byte), uncompressed so
/// they can be copied anywhere.
fn tail(record: &Record) -> Box<[u8]> {
    let mut buf = Vec::with_capacity(64);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    record.emit(&mut enc).expect("a record built here encodes");
    buf[1..].into()
}

/// The lowercase wire form of `relative` labels followed by the domain's.
fn wire(relative: &[&str], domain: &[Vec<u8>]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    for label in relative.iter().map(|l| l.as_bytes()).chain(domain.iter().map(Vec::as_slice)) {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into()
}

/// The size of an A or AAAA answer for `set`, or `None` when instances share an address or
/// have none of this family (then the full handler de-duplicates).
fn sized(
    e: &NameEntry,
    set: &AnswerSet,
    snap: &Snapshot,
    instances: &[InstanceWire],
    rec: impl Fn(&InstanceWire) -> Option<&[u8]>,
) -> Option<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut size = 0;
    for &i in &set.members {
        if !seen.insert(&snap.instances[i as usize].instance.address) {
            return None;
        }
        size += 2 + rec(&instances[i as usize])?.len();
    }
    let limit = if e.answer_limit == 0 { usize::MAX } else { e.answer_limit as usize };
    let per = if set.members.is_empty() { 0 } else { size / set.members.len() };
    Some(if set.members.len() > limit { per * limit } else { size })
}

fn srv_len(w: &InstanceWire) -> usize {
    2 + w.srv.len() + w.glue.as_ref().map_or(0, |g| 2 + g.len())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};

    use super::*;
    use crate::dns::answer::{Transport, answer};
    use crate::registry::{Change, Defaults, State};

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
        Arc::new(Snapshot::build(&state, &Defaults::default(), None))
    }

    fn zone() -> Zone {
        Zone::new(Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1)
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
        let table = FastTable::build(fast_snap, &zone, false, 1232);
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
        ];
        let mut out = Vec::new();
        for round in 0..7 {
            for (name, qtype) in cases {
                for edns in [None, Some(1232)] {
                    let q = query(name, qtype, edns);
                    let n = table.answer(&q, &mut out).unwrap_or_else(|| panic!("fast path declined {name} {qtype}"));
                    let fast = Message::from_vec(&out[..n]).unwrap();
                    let full = answer(&zone, &slow_snap, &Name::from_ascii(name).unwrap(), qtype, Transport::Udp, None);
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

    #[test]
    fn unusual_questions_are_left_to_the_full_handler() {
        let table = FastTable::build(snapshot(), &zone(), false, 1232);
        let mut out = Vec::new();
        let declined = |bytes: &[u8], out: &mut Vec<u8>| table.answer(bytes, out).is_none();
        assert!(declined(&query("web.service.local.", RecordType::ANY, None), &mut out));
        assert!(declined(&query("local.", RecordType::SOA, None), &mut out), "the apex");
        assert!(declined(&query("ns.local.", RecordType::A, None), &mut out));
        assert!(declined(&query("example.com.", RecordType::A, None), &mut out), "outside the domain");
        assert!(declined(&query("1.0.0.10.in-addr.arpa.", RecordType::PTR, None), &mut out));
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
        // Client regions configured: plain service names depend on the client.
        let regional = FastTable::build(snapshot(), &zone(), true, 1232);
        assert!(regional.answer(&query("web.service.local.", RecordType::A, None), &mut out).is_none());
        assert!(regional.answer(&query("db.service.eu.local.", RecordType::A, None), &mut out).is_some());
    }

    #[test]
    fn an_answer_too_big_for_the_client_goes_to_the_full_handler() {
        let mut text = String::from("[[service]]\nname = \"big\"\n");
        for i in 0..40 {
            text.push_str(&format!("\n[[service.instance]]\nid = \"big-{i}\"\naddress = \"10.9.0.{i}\"\nport = 80\n"));
        }
        let mut state = State::new();
        state.apply(Change::ZoneFile(crate::zones::parse(Path::new("z.toml"), &text).unwrap())).unwrap();
        let table =
            FastTable::build(Arc::new(Snapshot::build(&state, &Defaults::default(), None)), &zone(), false, 1232);
        let mut out = Vec::new();
        assert!(table.answer(&query("big.service.local.", RecordType::A, None), &mut out).is_none(), "over 512");
        let n = table.answer(&query("big.service.local.", RecordType::A, Some(1232)), &mut out).unwrap();
        assert_eq!(Message::from_vec(&out[..n]).unwrap().answers.len(), 40);
        assert!(table.answer(&query("big.service.local.", RecordType::SRV, Some(1232)), &mut out).is_none());
    }
}
