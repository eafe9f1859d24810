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

mod encode;
mod query;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use hickory_proto::rr::Name;

use super::answer::Zone;
use super::parse::{Target, classify_labels, service_names};
use crate::registry::Snapshot;
use encode::{InstanceWire, ServiceWire, tail, wire_name};
use query::{QNAME_POINTER, Question, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_SRV, TYPE_TXT, finish, parse};

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
