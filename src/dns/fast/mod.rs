//! The UDP fast path: answers for the common questions assembled from bytes encoded once per
//! service version, with no per-query parsing into objects, record building or allocation.
//!
//! For every snapshot the registry publishes, `FastTable::update` re-encodes the services that
//! changed since the previous one — each instance's A, AAAA, SRV (+ glue) and TXT record, from
//! the same record builders as `answer.rs`, so the two paths cannot drift apart — and indexes
//! every DNS name of the domain by its lowercase wire form in a persistent map that shares all
//! untouched names with the previous table (`index.rs`: a name points at its service's slot, so
//! a change to a service's instances re-encodes the service and leaves its names alone). A
//! change thus costs in proportion to what it changes, not to the size of the registry. A
//! query is then: check the header, copy the question, look the name up, advance the name's
//! rotation (the snapshot's own counter, shared with the slow path) and copy the instances'
//! record bytes in rotated order. The EDNS options
//! real clients send are handled here as the full handler handles them (`edns.rs` reads them
//! for both): a server cookie for every client cookie, Client Subnet deciding the client's
//! region (names that do not name a region answer that region's instances first, SRV at
//! priorities 1 and 2), NSID. DNS-SD's browsing (PTR) and instances (SRV, TXT) are answered here
//! too (`dnssd.rs`). The same answers serve TCP. Everything unusual — other opcodes or classes,
//! several questions, malformed options or other EDNS versions, names outside the domain, ANY,
//! the apex, DNS-SD's service types and browse domains, host-name instances, answers that would
//! not fit — returns `None` and goes to the full handler (hickory-proto parsing, `answer/`), the
//! reference behaviour.

mod dnssd;
mod encode;
mod index;
#[cfg(test)]
mod options_tests;
mod query;
mod shards;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use super::Settings;
use super::answer::{Transport, Zone};
use super::parse::{Spelling, Target, classify_labels, service_names};
use crate::registry::{AnswerSet, NameEntry, ServiceView, Snapshot};
use encode::{ByRegion, InstanceWire, ServiceWire, tail, wire_name};
use index::{FastName, Index};
pub use query::Client;
use query::{Opt, QNAME_POINTER, Question, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, finish, parse};

/// The largest answer the fast path makes: its glue points at SRV targets, and compression
/// pointers reach 16 KiB into a message. Larger ones (over TCP) go to the full handler.
const MAX_ANSWER: usize = 0x3FFF;

/// The answers of one snapshot, pre-encoded.
pub struct FastTable {
    snap: Arc<Snapshot>,
    /// Lowercase wire name (with its final zero byte) → what it is, and each service's
    /// encoding; every name but the instances' own (`<id>.instance.D`), which are found through
    /// the snapshot's ids.
    index: Index,
    shape: Arc<Shape>,
}

/// What every version of the table shares.
struct Shape {
    settings: Arc<Settings>,
    /// The domain's lowercase labels, and its wire form, to tell names inside it from others.
    labels: Vec<Vec<u8>>,
    domain: Box<[u8]>,
    /// `instance.D` in wire form: what follows the id in an instance's name.
    instance_suffix: Box<[u8]>,
    /// `node.D` in wire form: what follows a node's name.
    node_suffix: Box<[u8]>,
    /// The SOA for negative answers, without its owner (which points into the question), with
    /// serial 0: each answer writes its table's version there (`SOA_SERIAL`), so that a write
    /// does not encode the SOA again.
    soa: Box<[u8]>,
}

/// Where an SOA's serial is, counted back from the record's end: REFRESH, RETRY, EXPIRE and
/// MINIMUM (4 bytes each) follow it.
const SOA_SERIAL: usize = 20;

impl FastTable {
    /// Encodes `snap` to answer as `settings` say.
    pub fn build(snap: Arc<Snapshot>, settings: Arc<Settings>) -> FastTable {
        let labels: Vec<Vec<u8>> = settings.zone.lower.iter().map(<[u8]>::to_vec).collect();
        let mut soa = settings.zone.soa(0, settings.zone.negative_ttl);
        soa.name = Name::root();
        let shape = Shape {
            soa: tail(&soa),
            domain: wire_name(&[], &labels),
            instance_suffix: wire_name(&["instance"], &labels),
            node_suffix: wire_name(&["node"], &labels),
            labels,
            settings,
        };
        let mut empty =
            FastTable { snap: Arc::new(Snapshot::default()), index: Index::default(), shape: Arc::new(shape) };
        empty.add(&[], FastName::Slow, Target::Apex);
        empty.add(&["ns"], FastName::Slow, Target::Nameserver);
        // This server's own node answers as `ns.D` does, from the full handler.
        if let Some(node) = empty.shape.settings.zone.node.clone() {
            empty.add(&[&node, "node"], FastName::Slow, Target::Node { name: &node });
        }
        let ents = [&["service"][..], &["instance"], &["node"], &["_tcp", "service"], &["_udp"], &["_dns-sd", "_udp"]];
        for ent in ents.into_iter().chain([&["_udp", "service"][..], &["_dns-sd", "_udp", "service"]]) {
            empty.add(ent, FastName::Exists, Target::EmptyNonTerminal);
        }
        // DNS-SD's service types and browse domains: rare questions, answered by the full handler.
        empty.add(&["_services", "_dns-sd", "_udp", "service"], FastName::Slow, Target::ServiceTypes);
        for b in ["b", "db", "lb"] {
            empty.add(&[b, "_dns-sd", "_udp"], FastName::Slow, Target::BrowseDomains);
            empty.add(&[b, "_dns-sd", "_udp", "service"], FastName::Slow, Target::BrowseDomains);
        }
        empty.update(snap)
    }

    /// The table for `snap`, a later snapshot than this table's: only the services that differ
    /// between the two are encoded again; everything else is shared with this table.
    pub fn update(&self, snap: Arc<Snapshot>) -> FastTable {
        let mut next = FastTable { snap: snap.clone(), index: self.index.clone(), shape: self.shape.clone() };
        let changed = snap.changed_services(&self.snap);
        let labels = &self.shape.labels;
        // A service's names follow from its name forms alone: one whose forms did not change
        // (instances came, went or changed, not its tags or regions) keeps every name as it is
        // and only gets its new encoding in its slot.
        let renamed: Vec<_> = changed
            .iter()
            .filter(|(old, new)| !matches!((old, new), (Some(o), Some(n)) if o.name_forms().eq(n.name_forms())))
            .map(|&(old, new)| (old, new, new.map_or_else(Vec::new, |view| names_of(view, labels))))
            .collect();
        // The names a service no longer has go before any new one arrives: a name may move from
        // one service to another. A name is taken out only by the service whose slot it points at.
        for (old, new, now) in &renamed {
            let Some(old) = old else { continue };
            let slot = self.index.slot(&old.key);
            let owned = |w: FastName| matches!(w, FastName::Service { slot: s, .. } if Some(s) == slot);
            let kept: HashSet<&[u8]> = now.iter().map(|(k, ..)| &**k).collect();
            for (key, ..) in names_of(old, labels) {
                if !kept.contains(&*key) {
                    next.index.remove_if(&key, owned);
                }
            }
            if new.is_none() {
                next.index.drop_service(&old.key);
            }
        }
        for view in changed.iter().filter_map(|(_, new)| *new) {
            let previous = self.index.service(&view.key).map(|w| &**w);
            let wire = ServiceWire::build(view, &self.shape.settings.zone, previous);
            next.index.set_service(&view.key, Arc::new(wire));
        }
        for (_, new, now) in renamed {
            let Some(slot) = new.and_then(|view| next.index.slot(&view.key)) else { continue };
            for (key, entry, spelling, names_region) in now {
                next.index.insert(&key, FastName::Service { slot, entry, spelling, names_region });
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
        next
    }

    /// Indexes a name, if the full handler reads it the same way: with tags or regions spelled
    /// like `_tcp` or `service`, a generated name can mean something else.
    fn add(&mut self, relative: &[&str], what: FastName, meant: Target) {
        if classify_labels(relative) == meant {
            self.index.insert(&wire_name(relative, &self.shape.labels), what);
        }
    }

    /// Indexes an empty non-terminal while it exists, and takes it out when it no longer does
    /// (unless the name means something else: a region named `service` is not `service.D`).
    fn exists(&mut self, relative: &[&str], present: bool, meant: Target) {
        if classify_labels(relative) != meant {
            return;
        }
        if present {
            self.add(relative, FastName::Exists, meant);
        } else {
            let key = wire_name(relative, &self.shape.labels);
            self.index.remove_if(&key, |w| w == FastName::Exists);
        }
    }

    /// The settings this table answers with.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.shape.settings
    }

    /// The snapshot this table encodes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// Answers `query` from `client` into `out` (the whole answer, from its first byte) and
    /// returns the question's type, for the query metrics; `None` if the full handler must
    /// answer it. Advances the rotation of the name only when it answers.
    pub fn answer(&self, query: &[u8], client: Client, out: &mut Vec<u8>) -> Option<u16> {
        let q = parse(query)?;
        // Meta-queries (RFC 6895 §3.1: ANY, AXFR, IXFR, ...) are the full handler's.
        if (128..=255).contains(&q.qtype) {
            return None;
        }
        let mut key = [0u8; 255];
        let name = &query[12..12 + q.name_len];
        for (k, b) in key.iter_mut().zip(name) {
            *k = b.to_ascii_lowercase();
        }
        let mut alias = [0u8; 255];
        let key = self.consul_alias(&key[..q.name_len], &mut alias);
        let what = match self.index.get(key) {
            Some(what) => Some(what),
            None if key.ends_with(&self.shape.domain) => None,
            None => return None,
        };
        let settings = &self.shape.settings;
        let mut opt = q.edns.map(|e| self.opt(&e, client));
        let limit = match (client.transport, &q.edns) {
            (Transport::Tcp, _) => MAX_ANSWER,
            (Transport::Udp, Some(e)) => usize::from(e.payload.clamp(512, settings.udp_max_payload)),
            (Transport::Udp, None) => 512,
        };
        let asked = Asked { q: &q, name, room: limit.saturating_sub(opt.as_ref().map_or(0, Opt::len)) };

        out.clear();
        out.extend_from_slice(&query[..q.end]);
        let made = match what {
            None => match self.instance(key) {
                Some(w) => instance_address(w, &asked, out),
                None => match self.node(key) {
                    Some(record) => node_address(record, self.shape.settings.zone.ttl, &asked, out),
                    None => self.service_instance(key, &asked, out),
                },
            },
            Some(FastName::Slow) => Made::Decline,
            Some(FastName::Exists) => Made::Negative(0),
            Some(FastName::Service { slot, entry, spelling, names_region }) => {
                let wire = self.index.wire(slot)?;
                let by_region = if names_region { None } else { wire.by_region(entry) };
                let local = by_region.and_then(|b| self.client_region(b, spelling, &asked, client, &mut opt));
                service(&Named { wire, entry, spelling, local }, &asked, out)
            }
        };
        match made {
            Made::Records(answers, additionals) => {
                finish(out, opt.as_ref(), 0, answers, 0, additionals);
                Some(q.qtype)
            }
            Made::Negative(rcode) => self.negative(&q, opt.as_ref(), out, rcode),
            Made::Decline => None,
        }
    }

    /// The entry a name that names no region answers a client of its region with (`by_region`'s),
    /// if the client's region has one; sets the ECS scope when the answer depends on it.
    fn client_region(
        &self,
        by_region: &ByRegion,
        spelling: Spelling,
        asked: &Asked,
        client: Client,
        opt: &mut Option<Opt<'_>>,
    ) -> Option<u32> {
        let subnet = asked.q.edns.and_then(|e| e.options.subnet).map(|s| (s.addr, s.source_prefix));
        let found = self.shape.settings.regions.of(client.ip, subnet);
        if let Some((_, scope)) = opt.as_mut().and_then(|o| o.subnet.as_mut())
            && spelling.holds(RecordType::from(asked.q.qtype))
        {
            *scope = found.ecs_scope.unwrap_or(0);
        }
        let r = found.region?;
        by_region.binary_search_by(|(k, _)| (**k).cmp(r)).ok().map(|i| by_region[i].1)
    }

    /// The OPT record of an answer to a query with `edns`: the payload we honour, the client's
    /// cookie with a fresh server cookie, the subnet echoed (scope 0 until an answer depends on
    /// it), our NSID when asked for and set.
    fn opt<'q>(&'q self, edns: &query::Edns<'q>, client: Client) -> Opt<'q> {
        let settings = &self.shape.settings;
        let cookie = edns.options.cookie.map(|c| settings.answer_cookie(&c, client.ip));
        Opt {
            payload: edns.payload.clamp(512, settings.udp_max_payload),
            dnssec_ok: edns.dnssec_ok,
            cookie,
            subnet: edns.options.subnet.map(|s| (s, 0)),
            nsid: settings.nsid.as_deref().filter(|_| edns.options.nsid),
        }
    }

    /// The name `key` (a lowercase wire name) means under `[dns] consul_names`: without Consul's
    /// datacenter qualifier, written into `buf`, when it has one (`parse::consul_labels` reads
    /// it, for both paths); else `key` itself.
    fn consul_alias<'k>(&self, key: &'k [u8], buf: &'k mut [u8; 255]) -> &'k [u8] {
        let (Some(consul), domain) = (&self.shape.settings.zone.consul, &*self.shape.domain) else { return key };
        let Some(relative) = key.len().checked_sub(domain.len()).filter(|_| key.ends_with(domain)) else {
            return key;
        };
        let (mut labels, mut starts, mut n, mut at) =
            ([""; super::parse::MAX_LABELS], [0; super::parse::MAX_LABELS], 0, 0);
        while at < relative {
            let len = usize::from(key[at]);
            let Some(label) = key.get(at + 1..at + 1 + len).and_then(|l| std::str::from_utf8(l).ok()) else {
                return key;
            };
            if n == labels.len() {
                return key;
            }
            (labels[n], starts[n]) = (label, at);
            (n, at) = (n + 1, at + 1 + len);
        }
        let kept = super::parse::consul_labels(&labels[..n], consul);
        if kept == n {
            return key;
        }
        let cut = starts[kept];
        buf[..cut].copy_from_slice(&key[..cut]);
        buf[cut..cut + domain.len()].copy_from_slice(domain);
        &buf[..cut + domain.len()]
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
        let wire = self.index.service(&view.service)?;
        let at = wire.view.instances.binary_search_by(|v| (*v.key).cmp(id)).ok()?;
        Some(&wire.instances[at])
    }

    /// The record of the node `key` names, if it is `<node>.node.D` and the node is registered.
    fn node(&self, key: &[u8]) -> Option<&crate::registry::InstanceView> {
        let len = usize::from(*key.first()?);
        if key.get(1 + len..)? != &*self.shape.node_suffix {
            return None;
        }
        self.snap.node_record(Some(std::str::from_utf8(&key[1..1 + len]).ok()?))
    }

    /// NXDOMAIN (`rcode` 3) or NODATA (0): no answers, the domain's SOA in authority.
    fn negative(&self, q: &Question, opt: Option<&Opt<'_>>, out: &mut Vec<u8>, rcode: u8) -> Option<u16> {
        // The domain is the question's last labels: point the SOA's owner at them.
        let owner = 12 + q.name_len - self.shape.domain.len();
        out.extend_from_slice(&(0xC000 | owner as u16).to_be_bytes());
        out.extend_from_slice(&self.shape.soa);
        let serial = out.len() - SOA_SERIAL;
        out[serial..serial + 4].copy_from_slice(&Zone::serial(self.snap.version).to_be_bytes());
        finish(out, opt, rcode, 0, 1, 0);
        Some(q.qtype)
    }
}

/// What a branch of `FastTable::answer` made of a query.
enum Made {
    /// Answer and additional records, written.
    Records(u16, u16),
    /// NXDOMAIN (3) or NODATA (0), nothing written.
    Negative(u8),
    /// The full handler answers it.
    Decline,
}

/// A query being answered: its question, its name as asked, and the room its answer has (the
/// client's size less the OPT record's).
struct Asked<'q> {
    q: &'q Question<'q>,
    name: &'q [u8],
    room: usize,
}

/// A service's name a query asked: its service's encoding, its entry and spelling, and the
/// entry of the client's region (for a name that names none, when the region has one).
#[derive(Clone, Copy)]
struct Named<'a> {
    wire: &'a ServiceWire,
    entry: u32,
    spelling: Spelling,
    local: Option<u32>,
}

/// `<node>.node.D`: its address. Nodes are few and rarely asked for, so the record is made
/// here rather than kept encoded.
fn node_address(record: &crate::registry::InstanceView, ttl: u32, asked: &Asked, out: &mut Vec<u8>) -> Made {
    let crate::model::Address::Ip(ip) = record.instance.address else { return Made::Decline };
    let wanted = match asked.q.qtype {
        TYPE_A => ip.is_ipv4(),
        TYPE_AAAA => ip.is_ipv6(),
        _ => false,
    };
    if !wanted {
        return Made::Negative(0);
    }
    let Some(r) = crate::dns::answer::address_record(&hickory_proto::rr::Name::root(), ip, RecordType::ANY, ttl) else {
        return Made::Negative(0);
    };
    let rec = encode::tail(&r);
    if asked.q.end + 2 + rec.len() > asked.room {
        return Made::Decline;
    }
    out.extend_from_slice(&QNAME_POINTER);
    out.extend_from_slice(&rec);
    Made::Records(1, 0)
}

/// `<id>.instance.D`: its address.
fn instance_address(w: &InstanceWire, asked: &Asked, out: &mut Vec<u8>) -> Made {
    if w.host() {
        return Made::Decline;
    }
    let rec = match asked.q.qtype {
        TYPE_A => w.a(),
        TYPE_AAAA => w.aaaa(),
        _ => None,
    };
    match rec {
        Some(rec) if asked.q.end + 2 + rec.len() <= asked.room => {
            out.extend_from_slice(&QNAME_POINTER);
            out.extend_from_slice(rec);
            Made::Records(1, 0)
        }
        Some(_) => Made::Decline,
        None => Made::Negative(0),
    }
}

/// A service's name: the records of its entry for the question's type, the client's region's
/// first where the answer prefers it, as `answer.rs` makes them.
fn service(named: &Named, asked: &Asked, out: &mut Vec<u8>) -> Made {
    let Named { wire, entry, spelling, local } = *named;
    let (view, q) = (&wire.view, asked.q);
    if !spelling.holds(RecordType::from(q.qtype)) {
        return Made::Negative(0);
    }
    if q.qtype == TYPE_PTR {
        return dnssd::browse(named, asked, out);
    }
    let e = view.entry(entry);
    // The client's region's set while it has instances, else everyone's (answer.rs's
    // `Choice::pick`).
    let pick = |set: fn(&NameEntry) -> &AnswerSet| match local {
        Some(l) if !set(view.entry(l)).is_empty() => l,
        _ => entry,
    };
    fn srv(n: &NameEntry, spelling: Spelling) -> &AnswerSet {
        if spelling == Spelling::Plain { &n.srv } else { &n.srv_rfc2782 }
    }
    let (set, size, dedup) = match q.qtype {
        TYPE_A => {
            let c = pick(|n| &n.v4);
            let Some(f) = wire.entries[c as usize].a else { return Made::Decline };
            (&view.entry(c).v4, f.size, f.dedup)
        }
        TYPE_AAAA => {
            let c = pick(|n| &n.v6);
            let Some(f) = wire.entries[c as usize].aaaa else { return Made::Decline };
            (&view.entry(c).v6, f.size, f.dedup)
        }
        TYPE_SRV => match wire.entries[entry as usize].srv {
            Some(size) => (srv(e, spelling), size, false),
            None => return Made::Decline,
        },
        _ => {
            let c = pick(|n| &n.txt);
            (&view.entry(c).txt, wire.entries[c as usize].txt, false)
        }
    };
    if set.is_empty() {
        return Made::Negative(0);
    }
    if q.end + size > asked.room {
        return Made::Decline; // The full handler truncates properly.
    }
    let (answers, additionals) = match (q.qtype, local) {
        // Everyone, the client's region at priority 1 and the others at 2 (answer.rs's `srv`).
        (TYPE_SRV, Some(l)) => {
            let near = view.entry(l);
            let others = set.rotate().filter(|i| near.srv.members.binary_search(i).is_err());
            let order = srv(near, spelling).rotate().map(|i| (i, 1)).chain(others.map(|i| (i, 2)));
            wire.srv_records(order, out)
        }
        (TYPE_SRV, None) => wire.srv_records(set.rotate().map(|i| (i, 1)), out),
        _ => (wire.records(q.qtype, e, set, dedup, out), 0),
    };
    Made::Records(answers, additionals)
}

/// A name of a service as the index keeps it: its lowercase wire form, its entry, its spelling,
/// and whether it names a region.
type NameOf = (Box<[u8]>, u32, Spelling, bool);

/// Every name of `view`.
fn names_of(view: &ServiceView, labels: &[Vec<u8>]) -> Vec<NameOf> {
    let mut names = Vec::new();
    service_names(view, |relative, name| {
        names.push((wire_name(relative, labels), name.entry, name.spelling, name.region.is_some()));
    });
    names
}
