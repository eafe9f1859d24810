//! The UDP fast path: answers for the common questions assembled from bytes encoded once per
//! service version, with no per-query parsing into objects, record building or allocation.
//!
//! For every snapshot the registry publishes, `FastTable::update` re-encodes the services that
//! changed since the previous one — each instance's A, AAAA, SRV (+ glue) and TXT record, from
//! the same record builders as `answer.rs`, so the two paths cannot drift apart — and indexes
//! every DNS name of the domain by its lowercase wire form in a persistent map that shares all
//! untouched names with the previous table. A change thus costs in proportion to what it
//! changes, not to the size of the registry. A query is then: check the header, copy the
//! question, look the name up, advance the name's rotation (the snapshot's own counter, shared
//! with the slow path) and copy the instances' record bytes in rotated order. Everything
//! unusual — other opcodes or classes, several questions, EDNS options or versions, names
//! outside the domain, ANY, the apex, answers that would not fit, names whose answer depends on
//! the client's region — returns `None` and goes to the full handler (hickory-proto parsing,
//! `answer.rs`), which is the reference behaviour.

use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::answer::{Zone, address_record, srv_record, txt_record};
use super::parse::{Target, classify_labels, service_names};
use crate::registry::model::Address;
use crate::registry::{AnswerSet, NameEntry, ServiceView, Snapshot};

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
    /// Lowercase wire name (with its final zero byte) → what it is; every name but the
    /// instances' own (`<id>.instance.D`), which are found through the snapshot's ids.
    names: imbl::HashMap<Arc<[u8]>, FastName>,
    /// Lowercase service name → its encoding.
    wires: imbl::HashMap<Arc<str>, Arc<ServiceWire>>,
    shape: Arc<Shape>,
    /// The SOA for negative answers, without its owner (which points into the question).
    soa: Box<[u8]>,
}

/// What every version of the table shares.
struct Shape {
    zone: Zone,
    /// The domain's lowercase labels, and its wire form, to tell names inside it from others.
    labels: Vec<Vec<u8>>,
    domain: Box<[u8]>,
    /// `instance.D` in wire form: what follows the id in an instance's name.
    instance_suffix: Box<[u8]>,
    /// Client regions are configured: names that do not name a region answer differently per
    /// client and are left to the full handler.
    regional: bool,
    udp_max_payload: u16,
}

#[derive(Clone)]
enum FastName {
    /// A name of a service; `slow`: answered by the full handler (it depends on the client).
    Service { wire: Arc<ServiceWire>, entry: u32, rfc2782: bool, slow: bool },
    /// Exists but holds no records here (an empty non-terminal): NODATA.
    Exists,
    /// Exists, but the full handler answers it (the apex, `ns.D`).
    Slow,
}

impl FastName {
    fn owner(&self) -> Option<&Arc<ServiceWire>> {
        match self {
            FastName::Service { wire, .. } => Some(wire),
            FastName::Exists | FastName::Slow => None,
        }
    }
}

/// One service version, encoded.
struct ServiceWire {
    view: Arc<ServiceView>,
    /// Per instance of `view.instances`.
    instances: Vec<InstanceWire>,
    /// Per entry of the view (`ServiceView::entry`), what its answers need.
    entries: Vec<EntryWire>,
}

/// One instance's records, each without its owner name (TYPE CLASS TTL RDLENGTH RDATA), back to
/// back in one shared allocation: its address record (none for a host name), SRV, TXT. Shared
/// by every version of its service's encoding until the instance itself changes.
#[derive(Debug, Clone)]
struct InstanceWire {
    bytes: Arc<[u8]>,
    srv_at: u32,
    txt_at: u32,
    family: AddressFamily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressFamily {
    V4,
    V6,
    /// Registered with a host name, resolved elsewhere: the full handler answers for it.
    Host,
}

impl InstanceWire {
    fn encode(zone: &Zone, instance: &crate::registry::model::Instance, ttl: u32) -> InstanceWire {
        let root = Name::root();
        let mut bytes = Vec::with_capacity(128);
        let family = match instance.address {
            Address::Ip(ip) => {
                if let Some(r) = address_record(&root, ip, RecordType::ANY, ttl) {
                    bytes.extend_from_slice(&tail(&r));
                }
                if ip.is_ipv4() { AddressFamily::V4 } else { AddressFamily::V6 }
            }
            Address::Host(_) => AddressFamily::Host,
        };
        let srv_at = bytes.len() as u32;
        if let Some((srv, _)) = srv_record(zone, &root, instance, ttl, 1) {
            bytes.extend_from_slice(&tail(&srv));
        }
        let txt_at = bytes.len() as u32;
        bytes.extend_from_slice(&tail(&txt_record(&root, instance, ttl)));
        InstanceWire { bytes: bytes.into(), srv_at, txt_at, family }
    }

    /// The A or AAAA record; also the SRV target's glue (its owner: a pointer to the target).
    fn address(&self) -> Option<&[u8]> {
        (self.family != AddressFamily::Host).then(|| &self.bytes[..self.srv_at as usize])
    }

    fn a(&self) -> Option<&[u8]> {
        self.address().filter(|_| self.family == AddressFamily::V4)
    }

    fn aaaa(&self) -> Option<&[u8]> {
        self.address().filter(|_| self.family == AddressFamily::V6)
    }

    fn srv(&self) -> &[u8] {
        &self.bytes[self.srv_at as usize..self.txt_at as usize]
    }

    fn txt(&self) -> &[u8] {
        &self.bytes[self.txt_at as usize..]
    }

    fn host(&self) -> bool {
        self.family == AddressFamily::Host
    }
}

/// Per name entry: the bytes each answer takes, or `None` where the fast path must step aside.
#[derive(Debug, Default, Clone, Copy)]
struct EntryWire {
    a: Option<Family>,
    aaaa: Option<Family>,
    /// `None` when a member has a host-name address (its glue is resolved elsewhere).
    srv: Option<usize>,
    txt: usize,
}

/// An A or AAAA answer's size, and whether members share addresses (then each address is
/// answered once, as the full handler does).
#[derive(Debug, Clone, Copy)]
struct Family {
    size: usize,
    dedup: bool,
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
        let labels: Vec<Vec<u8>> = zone.lower.iter().map(<[u8]>::to_vec).collect();
        let shape = Shape {
            zone: zone.clone(),
            domain: wire_name(&[], &labels),
            instance_suffix: wire_name(&["instance"], &labels),
            labels,
            regional,
            udp_max_payload,
        };
        let mut empty = FastTable {
            snap: Arc::new(Snapshot::default()),
            names: imbl::HashMap::new(),
            wires: imbl::HashMap::new(),
            shape: Arc::new(shape),
            soa: Box::default(),
        };
        empty.add(&[], FastName::Slow, Target::Apex);
        empty.add(&["ns"], FastName::Slow, Target::Nameserver);
        for ent in [&["service"][..], &["instance"], &["_tcp", "service"]] {
            empty.add(ent, FastName::Exists, Target::EmptyNonTerminal);
        }
        empty.update(snap)
    }

    /// The table for `snap`, a later snapshot than this table's: only the services that differ
    /// between the two are encoded again; everything else is shared with this table.
    pub fn update(&self, snap: Arc<Snapshot>) -> FastTable {
        let mut next = FastTable {
            snap: snap.clone(),
            names: self.names.clone(),
            wires: self.wires.clone(),
            shape: self.shape.clone(),
            soa: Box::default(),
        };
        let changed: Vec<_> = snap.changed_services(&self.snap).collect();
        // Every name of the old versions goes before any of the new ones arrives: an instance
        // may move from one service to another.
        for (old, _) in &changed {
            if let Some(old) = old
                && let Some(wire) = next.wires.remove(&old.key)
            {
                let shape = next.shape.clone();
                service_names(&wire.view, |relative, _| {
                    let key = wire_name(relative, &shape.labels);
                    if next.names.get(&*key).and_then(FastName::owner).is_some_and(|w| Arc::ptr_eq(w, &wire)) {
                        next.names.remove(&*key);
                    }
                });
            }
        }
        for (_, new) in &changed {
            if let Some(view) = new {
                let previous = self.wires.get(&view.key);
                let wire = Arc::new(ServiceWire::build(view, &next.shape.zone, previous.map(|w| &**w)));
                let regional = next.shape.regional;
                service_names(view, |relative, name| {
                    let slow = regional && !name.names_region;
                    let what = FastName::Service { wire: wire.clone(), entry: name.entry, rfc2782: name.rfc2782, slow };
                    next.names.insert(wire_name(relative, &next.shape.labels).into(), what);
                });
                next.wires.insert(view.key.clone(), wire);
            }
        }
        // Regions and tags that appeared or went with these services: their empty non-terminals.
        for view in changed.iter().flat_map(|(old, new)| old.iter().chain(new)) {
            let (regions, tags) = view.regions_and_tags();
            for r in regions {
                let present = snap.has_region(r);
                for ent in [&[r][..], &["service", r], &["_tcp", "service", r]] {
                    next.exists(ent, present, Target::RegionNonTerminal(r));
                }
            }
            for t in tags {
                next.exists(&[&format!("_{t}"), "service"], snap.has_tag(t), Target::TagNonTerminal(t));
            }
        }
        let mut soa = next.shape.zone.soa(snap.version, next.shape.zone.negative_ttl);
        soa.name = Name::root();
        next.soa = tail(&soa);
        next
    }

    /// Indexes a name, if the full handler reads it the same way: with tags or regions spelled
    /// like `_tcp` or `service`, a generated name can mean something else.
    fn add(&mut self, relative: &[&str], what: FastName, meant: Target) {
        if classify_labels(relative) == meant {
            self.names.insert(wire_name(relative, &self.shape.labels).into(), what);
        }
    }

    /// Indexes an empty non-terminal while it exists, and takes it out when it no longer does.
    fn exists(&mut self, relative: &[&str], present: bool, meant: Target) {
        if present {
            self.add(relative, FastName::Exists, meant);
        } else {
            let key = wire_name(relative, &self.shape.labels);
            if matches!(self.names.get(&*key), Some(FastName::Exists)) {
                self.names.remove(&*key);
            }
        }
    }

    /// The snapshot this table encodes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// Answers `query` into `out` (the whole answer, from its first byte) and returns the
    /// question's type, for the query metrics; `None` if the full handler must answer it.
    /// Advances the rotation of the name only when it answers.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> Option<u16> {
        let mut q = parse(query)?;
        let mut key = [0u8; 255];
        let name = &query[12..12 + q.name_len];
        for (k, b) in key.iter_mut().zip(name) {
            *k = b.to_ascii_lowercase();
        }
        let key = &key[..q.name_len];
        q.limit = match q.edns {
            Some((payload, _)) => payload.clamp(512, self.shape.udp_max_payload),
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
            Some(what) => Some(what),
            None if key.ends_with(&self.shape.domain) => None,
            None => return None,
        };
        let (answers, additionals) = match what {
            None => {
                let Some(w) = self.instance(key) else {
                    return self.negative(&q, out, RCODE_NXDOMAIN);
                };
                if w.host() {
                    return None;
                }
                let rec = match q.qtype {
                    TYPE_A => w.a(),
                    TYPE_AAAA => w.aaaa(),
                    _ => None,
                };
                match rec {
                    Some(rec) if q.end + 2 + rec.len() + opt_len <= limit => {
                        out.extend_from_slice(&QNAME_POINTER);
                        out.extend_from_slice(rec);
                        (1, 0)
                    }
                    Some(_) => return None,
                    None => return self.negative(&q, out, 0),
                }
            }
            Some(FastName::Slow | FastName::Service { slow: true, .. }) => return None,
            Some(FastName::Exists) => return self.negative(&q, out, 0),
            Some(FastName::Service { wire, entry, rfc2782, .. }) => {
                let e = wire.view.entry(*entry);
                let sizes = wire.entries[*entry as usize];
                let (set, size, dedup) = match q.qtype {
                    TYPE_A => (&e.v4, sizes.a?.size, sizes.a?.dedup),
                    TYPE_AAAA => (&e.v6, sizes.aaaa?.size, sizes.aaaa?.dedup),
                    TYPE_SRV => (if *rfc2782 { &e.srv_rfc2782 } else { &e.srv }, sizes.srv?, false),
                    TYPE_TXT => (&e.txt, sizes.txt, false),
                    _ => return self.negative(&q, out, 0),
                };
                if set.is_empty() {
                    return self.negative(&q, out, 0);
                }
                if q.end + size + opt_len > limit {
                    return None; // The full handler truncates properly.
                }
                wire.records(q.qtype, e, set, dedup, out)
            }
        };
        finish(out, &q, 0, answers, 0, additionals);
        Some(q.qtype)
    }

    /// The encoding of the instance `key` (a lowercase wire name inside the domain) names, if
    /// it is `<id>.instance.D` and the instance exists.
    fn instance(&self, key: &[u8]) -> Option<&InstanceWire> {
        let len = usize::from(*key.first()?);
        if key.get(1 + len..)? != &*self.shape.instance_suffix {
            return None;
        }
        let id = std::str::from_utf8(&key[1..1 + len]).ok()?;
        let view = self.snap.instance(id)?;
        let wire = self.wires.get(&view.service)?;
        let at = wire.view.instances.binary_search_by(|v| (*v.key).cmp(id)).ok()?;
        Some(&wire.instances[at])
    }

    /// NXDOMAIN (`rcode` 3) or NODATA (0): no answers, the domain's SOA in authority.
    fn negative(&self, q: &Question, out: &mut Vec<u8>, rcode: u8) -> Option<u16> {
        // The domain is the question's last labels: point the SOA's owner at them.
        let owner = 12 + q.name_len - self.shape.domain.len();
        out.extend_from_slice(&(0xC000 | owner as u16).to_be_bytes());
        out.extend_from_slice(&self.soa);
        finish(out, q, rcode, 0, 1, 0);
        Some(q.qtype)
    }
}

impl ServiceWire {
    /// Encodes a service version; instances unchanged since `previous` keep their encoding, so
    /// a change to one instance of a large service encodes one instance.
    fn build(view: &Arc<ServiceView>, zone: &Zone, previous: Option<&ServiceWire>) -> ServiceWire {
        let ttl = view.ttl();
        let reusable = previous.filter(|p| p.view.ttl() == ttl);
        let mut old = reusable.into_iter().flat_map(|p| p.view.instances.iter().zip(&p.instances)).peekable();
        let instances: Vec<InstanceWire> = view
            .instances
            .iter()
            .map(|v| {
                // Both lists are in id order: walk the old one alongside.
                while old.next_if(|(o, _)| o.key < v.key).is_some() {}
                match old.peek() {
                    Some((o, w)) if Arc::ptr_eq(&o.instance, &v.instance) => (*w).clone(),
                    _ => InstanceWire::encode(zone, &v.instance, ttl),
                }
            })
            .collect();
        let entries = view
            .entries()
            .iter()
            .map(|e| EntryWire {
                a: sized(e, &e.v4, view, &instances, InstanceWire::a),
                aaaa: sized(e, &e.v6, view, &instances, InstanceWire::aaaa),
                srv: e
                    .srv
                    .members
                    .iter()
                    .map(|&i| (!instances[i as usize].host()).then(|| srv_len(&instances[i as usize])))
                    .sum(),
                txt: e.txt.members.iter().map(|&i| 2 + instances[i as usize].txt().len()).sum(),
            })
            .collect();
        ServiceWire { view: view.clone(), instances, entries }
    }

    /// Appends the records of one name and type in this query's rotated order; returns the
    /// answer and additional counts.
    fn records(&self, qtype: u16, e: &NameEntry, set: &AnswerSet, dedup: bool, out: &mut Vec<u8>) -> (u16, u16) {
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
                    out.extend_from_slice(w.srv());
                    if (answers as usize) < targets.len() {
                        targets[answers as usize] = (i, target);
                    } else {
                        spill.push((i, target));
                    }
                    answers += 1;
                }
                let mut glue = 0u16;
                for &(i, target) in targets[..(answers as usize).min(64)].iter().chain(&spill) {
                    if let Some(g) = self.instances[i as usize].address() {
                        out.extend_from_slice(&(0xC000 | target).to_be_bytes());
                        out.extend_from_slice(g);
                        glue += 1;
                    }
                }
                return (answers, glue);
            }
            _ => {
                let start = out.len();
                for i in set.rotate() {
                    if answers as usize == limit && qtype != TYPE_TXT {
                        break;
                    }
                    let w = &self.instances[i as usize];
                    let rec = match qtype {
                        TYPE_A => w.a(),
                        TYPE_AAAA => w.aaaa(),
                        _ => Some(w.txt()),
                    };
                    let Some(rec) = rec else { continue };
                    // Records of one family have one length: the answers so far sit at a
                    // fixed stride, each after its two-byte owner pointer.
                    let stride = 2 + rec.len();
                    if dedup && out[start..].chunks_exact(stride).any(|r| &r[2..] == rec) {
                        continue;
                    }
                    out.extend_from_slice(&QNAME_POINTER);
                    out.extend_from_slice(rec);
                    answers += 1;
                }
            }
        }
        (answers, 0)
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
fn wire_name(relative: &[&str], domain: &[Vec<u8>]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    for label in relative.iter().map(|l| l.as_bytes()).chain(domain.iter().map(Vec::as_slice)) {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into()
}

/// The size of an A or AAAA answer for `set`, or `None` when a member has no address of this
/// family here (a host name: the full handler answers with what it resolved to).
fn sized(
    e: &NameEntry,
    set: &AnswerSet,
    view: &ServiceView,
    instances: &[InstanceWire],
    rec: fn(&InstanceWire) -> Option<&[u8]>,
) -> Option<Family> {
    let mut distinct = std::collections::HashSet::new();
    let mut per = 0;
    for &i in set.members.iter() {
        per = 2 + rec(&instances[i as usize])?.len();
        distinct.insert(&view.instance(i).instance.address);
    }
    let limit = if e.answer_limit == 0 { usize::MAX } else { e.answer_limit as usize };
    Some(Family { size: per * distinct.len().min(limit), dedup: distinct.len() < set.members.len() })
}

fn srv_len(w: &InstanceWire) -> usize {
    2 + w.srv().len() + w.address().map_or(0, |g| 2 + g.len())
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
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
        Arc::new(Snapshot::build(&state, &Defaults::default()))
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
            ("shared.service.local.", RecordType::A),
            ("shared.service.local.", RecordType::SRV),
            ("limited.service.local.", RecordType::A),
            ("limited.service.local.", RecordType::TXT),
        ];
        let mut out = Vec::new();
        for round in 0..7 {
            for (name, qtype) in cases {
                for edns in [None, Some(1232)] {
                    let q = query(name, qtype, edns);
                    table.answer(&q, &mut out).unwrap_or_else(|| panic!("fast path declined {name} {qtype}"));
                    let fast = Message::from_vec(&out).unwrap();
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
        let table = FastTable::build(Arc::new(Snapshot::build(&state, &Defaults::default())), &zone(), false, 1232);
        let mut out = Vec::new();
        assert!(table.answer(&query("big.service.local.", RecordType::A, None), &mut out).is_none(), "over 512");
        table.answer(&query("big.service.local.", RecordType::A, Some(1232)), &mut out).unwrap();
        assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 40);
        assert!(table.answer(&query("big.service.local.", RecordType::SRV, Some(1232)), &mut out).is_none());
    }

    /// Registrations, removals, moves between services, tags, regions, weights, maintenance,
    /// check results and host-name resolutions in random batches: after each, the snapshot made
    /// from the previous one and the table updated from the previous one hold exactly what
    /// ones built from scratch hold, and the fast path answers every name as the full handler.
    #[test]
    fn snapshots_and_tables_updated_batch_by_batch_equal_ones_built_from_scratch() {
        use crate::registry::model::{CheckKind, CheckSpec, Instance, ServicePolicy, Source, Status, WhenNoneHealthy};
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
        let mut table = FastTable::build(snap.clone(), &zone, false, 1232);
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
        for round in 0..250 {
            for _ in 0..1 + next(4) {
                let id = next(12);
                let change = match next(10) {
                    0 => Change::Deregister { id: format!("i{id}") },
                    1 => Change::Maintenance { id: format!("i{id}"), reason: next(2).eq(&0).then(|| "m".into()) },
                    2 => Change::CheckUpdate {
                        check_id: format!("c{id}"),
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
                            region: ["eu", "us"].get(next(3) as usize).map(|r| r.to_string()),
                            meta: Default::default(),
                            checks: if next(2) == 0 { vec![check(id)] } else { vec![] },
                            policy: ServicePolicy {
                                answer_limit: next(2).eq(&0).then_some(2),
                                when_none_healthy: next(2).eq(&0).then_some(WhenNoneHealthy::All),
                                ..ServicePolicy::default()
                            },
                            source: Source::Api,
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
            let fresh_table = FastTable::build(fresh.clone(), &zone, false, 1232);

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
            for id in 0..12 {
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
            names.extend(
                ["eu.local.", "us.local.", "service.eu.local.", "_t0.service.local.", "_t2.service.local."]
                    .map(String::from),
            );
            let mut out = Vec::new();
            for name in &names {
                for qtype in [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT] {
                    let q = query(name, qtype, Some(1232));
                    let updated = table.answer(&q, &mut out).map(|_| records(&out));
                    let built = fresh_table.answer(&q, &mut out).map(|_| records(&out));
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
                        let limited = matches!(qtype, RecordType::A | RecordType::AAAA) && fast.1.len() == 2;
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
                }
            }
        }
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
}
