//! Snapshot + question → records. The one place where registry objects become DNS records, so
//! that A, AAAA, SRV and TXT cannot drift apart (DNS-SD's, `dnssd.rs`, are built from the same
//! pieces). Pure and synchronous: no I/O, no locks; the only side effect is advancing a name's
//! rotation.

mod dnssd;

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, HINFO, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::parse::{ConsulNames, Spelling, Target, classify, has_subtypes, service_names};
use crate::model::Instance;
use crate::registry::{AnswerSet, InstanceView, NameEntry, ServiceView, Snapshot};
pub use dnssd::browse_domains_at;
pub(crate) use dnssd::dns_sd_txt_record;

/// The zone signpost is authoritative for, and how its apex looks.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The domain as configured (its case is used in SRV targets and the SOA).
    pub origin: Name,
    pub lower: LowerName,
    /// `ns.D`
    pub nameserver: Name,
    pub hostmaster: Name,
    /// Addresses of `ns.D`.
    pub advertise: Vec<IpAddr>,
    /// TTL of apex records (SOA, NS), in seconds.
    pub ttl: u32,
    /// SOA minimum and the TTL of the SOA in negative answers, in seconds.
    pub negative_ttl: u32,
    /// `[dns] consul_names`: Consul's datacenter qualifiers read as our names; off by default.
    pub consul: Option<ConsulNames>,
    /// This server's own node name, lowercase: `<node>.node.D` answers `advertise`, as `ns.D`.
    pub node: Option<String>,
}

impl Zone {
    pub fn new(origin: Name, advertise: Vec<IpAddr>, ttl: u32, negative_ttl: u32) -> Zone {
        let mut origin = origin;
        origin.set_fqdn(true);
        let child = |label: &str| Name::from_ascii(label).and_then(|n| n.append_domain(&origin));
        Zone {
            lower: LowerName::new(&origin),
            nameserver: child("ns").expect("ns.<domain> is a valid name"),
            hostmaster: child("hostmaster").expect("hostmaster.<domain> is a valid name"),
            origin,
            advertise,
            ttl,
            negative_ttl,
            consul: None,
            node: None,
        }
    }

    /// The SOA serial of registry version `version`: the version modulo 2^32 (RFC 1982
    /// arithmetic lets secondaries follow it past the wrap).
    pub(crate) fn serial(version: u64) -> u32 {
        version as u32
    }

    pub(crate) fn soa(&self, version: u64, ttl: u32) -> Record {
        let soa = SOA::new(
            self.nameserver.clone(),
            self.hostmaster.clone(),
            Zone::serial(version),
            3600,
            600,
            86400,
            self.negative_ttl,
        );
        Record::from_rdata(self.origin.clone(), ttl, RData::SOA(soa))
    }

    /// The name of `relative` labels below the domain, in the case they are written.
    pub fn name_below(&self, relative: &[&str]) -> Option<Name> {
        relative.iter().rev().try_fold(self.origin.clone(), |name, label| name.prepend_label(label.as_bytes()).ok())
    }

    /// `<id>.instance.D`, the SRV target of an instance.
    pub fn instance_name(&self, id: &str) -> Option<Name> {
        Name::from_ascii(id)
            .ok()?
            .append_domain(&Name::from_ascii("instance").ok()?.append_domain(&self.origin).ok()?)
            .ok()
    }
}

/// How the question arrived; ANY is answered minimally over UDP only (RFC 8482).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A complete answer, before size limits are applied.
#[derive(Debug, Default)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// False only for names outside the zone.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The records depend on the client's region (an ECS answer's scope then says for which
    /// addresses they hold).
    pub regional: bool,
}

impl Answer {
    fn refused() -> Answer {
        Answer { rcode: ResponseCode::Refused, ..Answer::default() }
    }
}

/// Answers `qname`/`qtype` from `snap`. `qname` keeps the question's case, which every answer
/// record's owner echoes. `client_region` is the asking client's region, when known: names that
/// do not name a region themselves then prefer that region's instances.
pub fn answer(
    zone: &Zone,
    snap: &Snapshot,
    qname: &Name,
    qtype: RecordType,
    transport: Transport,
    client_region: Option<&str>,
) -> Answer {
    let lower = LowerName::new(qname);
    let Some(target) = classify(&lower, &zone.lower, zone.consul.as_ref()) else {
        return Answer::refused();
    };
    let mut out = Answer { authoritative: true, ..Answer::default() };
    let exists = match target {
        Target::Apex => {
            apex(zone, snap, qname, qtype, transport, &mut out);
            true
        }
        Target::Nameserver => {
            let ttl = zone.ttl;
            for ip in &zone.advertise {
                if let Some(r) = address_record(qname, *ip, qtype, ttl) {
                    out.answers.push(r);
                }
            }
            true
        }
        Target::Service { service, region, spelling: Spelling::Subtypes, .. } => {
            snap.service_view(service).is_some_and(|view| has_subtypes(view, region))
        }
        Target::Service { service, tag, region, spelling } => match snap.name(service, tag, region) {
            Some((view, entry)) => {
                // A name that names no region prefers the client's region.
                let local = match (region, client_region) {
                    (None, Some(r)) => view.name(tag, Some(r)),
                    _ => None,
                };
                let choice = Choice { view, entry, local, spelling };
                service_records(zone, snap, qname, qtype, transport, &choice, &mut out);
                let holds = qtype == RecordType::ANY || spelling.holds(qtype);
                out.regional = region.is_none() && holds && splits_by_region(view, tag);
                true
            }
            None => false,
        },
        Target::ServiceInstance { id, service, region } => {
            dnssd::service_instance(zone, snap, qname, (id, service, region), qtype, transport, &mut out)
        }
        Target::ServiceTypes => {
            dnssd::service_types(snap, qname, qtype, transport, zone.ttl, &mut out);
            true
        }
        Target::BrowseDomains => {
            dnssd::browse_domains(zone, qname, qtype, transport, &mut out);
            true
        }
        Target::Instance { id } => match snap.instance(id) {
            Some(view) => {
                let ttl = instance_ttl(snap, view);
                for ip in snap.addresses(&view.instance.address) {
                    out.answers.extend(address_record(qname, ip, qtype, ttl));
                }
                true
            }
            None => false,
        },
        Target::Node { name } if zone.node.as_deref() == Some(name) => {
            for ip in &zone.advertise {
                out.answers.extend(address_record(qname, *ip, qtype, zone.ttl));
            }
            true
        }
        Target::Node { name } => match snap.node_record(Some(name)) {
            Some(record) => {
                for ip in snap.addresses(&record.instance.address) {
                    out.answers.extend(address_record(qname, ip, qtype, zone.ttl));
                }
                true
            }
            None => false,
        },
        Target::EmptyNonTerminal => true,
        Target::RegionNonTerminal(r) => snap.has_region(r),
        Target::TagNonTerminal(t) => snap.has_tag(t),
        Target::Unknown => false,
    };
    if !exists {
        out.rcode = ResponseCode::NXDomain;
    }
    if out.answers.is_empty() {
        // NXDOMAIN or NODATA: the SOA's minimum bounds how long resolvers cache the absence.
        out.authorities.push(zone.soa(snap.version, zone.negative_ttl));
    }
    out
}

/// Returns true if some of the service's instances under `tag` (all, for `None`) carry a region:
/// only then does a name that names no region answer one client differently from another.
pub(crate) fn splits_by_region(view: &ServiceView, tag: Option<&str>) -> bool {
    view.name_forms().any(|f| f.tag == tag && f.region.is_some())
}

/// A reverse (PTR) question about an address some instance is registered at: one PTR record per
/// such instance, naming `<id>.instance.D`. `None` when no instance has that address, so the
/// question goes on to the upstreams like any other name outside the domain.
pub fn reverse(zone: &Zone, snap: &Snapshot, qname: &Name, ip: IpAddr, qtype: RecordType) -> Option<Answer> {
    let mut views = snap.at_address(ip).peekable();
    views.peek()?;
    let mut out = Answer { authoritative: true, ..Answer::default() };
    if matches!(qtype, RecordType::PTR | RecordType::ANY) {
        for view in views {
            if let Some(target) = zone.instance_name(&view.instance.id) {
                let ttl = instance_ttl(snap, view);
                out.answers.push(Record::from_rdata(qname.clone(), ttl, RData::PTR(PTR(target))));
            }
        }
    }
    Some(out)
}

fn apex(zone: &Zone, snap: &Snapshot, qname: &Name, qtype: RecordType, transport: Transport, out: &mut Answer) {
    let with_owner = |mut r: Record| {
        r.name = qname.clone();
        r
    };
    let ns = || Record::from_rdata(qname.clone(), zone.ttl, RData::NS(NS(zone.nameserver.clone())));
    match qtype {
        RecordType::SOA => out.answers.push(with_owner(zone.soa(snap.version, zone.ttl))),
        RecordType::NS => {
            out.answers.push(ns());
            nameserver_glue(zone, out);
        }
        RecordType::ANY if transport == Transport::Udp => out.answers.push(rfc8482(qname, zone.ttl)),
        RecordType::ANY => {
            out.answers.push(with_owner(zone.soa(snap.version, zone.ttl)));
            out.answers.push(ns());
        }
        _ => {}
    }
}

fn nameserver_glue(zone: &Zone, out: &mut Answer) {
    for ip in &zone.advertise {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(*v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
        };
        out.additionals.push(Record::from_rdata(zone.nameserver.clone(), zone.ttl, data));
    }
}

/// RFC 8482 §4.2: a single synthesized HINFO instead of everything.
fn rfc8482(qname: &Name, ttl: u32) -> Record {
    Record::from_rdata(qname.clone(), ttl, RData::HINFO(HINFO::new("RFC8482".into(), String::new())))
}

/// What a service name answers one client: the name's instances, and the part of them in the
/// client's region when that is known.
struct Choice<'a> {
    /// The service whose instances the entries' members index.
    view: &'a ServiceView,
    entry: &'a NameEntry,
    local: Option<&'a NameEntry>,
    /// The RFC 2782 names are other names for the same instances, with their own SRV rotation;
    /// DNS-SD's browse them with PTR.
    spelling: Spelling,
}

impl<'a> Choice<'a> {
    /// The client's region's set while it has answerable instances, else everyone's.
    fn pick(&self, set: fn(&NameEntry) -> &AnswerSet) -> &'a AnswerSet {
        match self.local {
            Some(l) if !set(l).is_empty() => set(l),
            _ => set(self.entry),
        }
    }

    fn srv_of(&self, e: &'a NameEntry) -> &'a AnswerSet {
        if self.spelling == Spelling::Plain { &e.srv } else { &e.srv_rfc2782 }
    }
}

fn service_records(
    zone: &Zone,
    snap: &Snapshot,
    qname: &Name,
    qtype: RecordType,
    transport: Transport,
    choice: &Choice,
    out: &mut Answer,
) {
    let (view, entry) = (choice.view, choice.entry);
    if choice.spelling == Spelling::Subtype {
        // A subtype holds PTR records only (RFC 6763 §7.1).
        match qtype {
            RecordType::PTR => dnssd::browse(qname, choice, out),
            RecordType::ANY if transport == Transport::Tcp => dnssd::browse(qname, choice, out),
            RecordType::ANY if !entry.ptr.is_empty() => out.answers.push(rfc8482(qname, entry.ttl)),
            _ => {}
        }
        return;
    }
    match qtype {
        RecordType::PTR if choice.spelling.browses() => dnssd::browse(qname, choice, out),
        RecordType::A => addresses(snap, qname, view, entry, choice.pick(|e| &e.v4), RecordType::A, out),
        RecordType::AAAA => addresses(snap, qname, view, entry, choice.pick(|e| &e.v6), RecordType::AAAA, out),
        RecordType::SRV => srv(zone, snap, qname, choice, out),
        RecordType::TXT => txt(qname, view, entry, choice.pick(|e| &e.txt), out),
        RecordType::ANY if transport == Transport::Udp && !choice.srv_of(entry).is_empty() => {
            out.answers.push(rfc8482(qname, entry.ttl));
        }
        RecordType::ANY if transport == Transport::Udp => {}
        RecordType::ANY => {
            addresses(snap, qname, view, entry, choice.pick(|e| &e.v4), RecordType::A, out);
            addresses(snap, qname, view, entry, choice.pick(|e| &e.v6), RecordType::AAAA, out);
            srv(zone, snap, qname, choice, out);
            txt(qname, view, entry, choice.pick(|e| &e.txt), out);
            if choice.spelling.browses() {
                dnssd::browse(qname, choice, out);
            }
        }
        _ => {}
    }
}

/// A/AAAA: one record per distinct address, in rotated order, at most `answer_limit`.
fn addresses(
    snap: &Snapshot,
    qname: &Name,
    view: &ServiceView,
    entry: &NameEntry,
    set: &AnswerSet,
    qtype: RecordType,
    out: &mut Answer,
) {
    for ip in distinct_addresses(snap, view, entry.answer_limit, set.rotate(), qtype == RecordType::A) {
        out.answers.extend(address_record(qname, ip, qtype, entry.ttl));
    }
}

/// The addresses an A (`v4`) or AAAA answer carries for members in `order`: each address once,
/// at most `answer_limit` (a name entry's; 0 = all). Shared with the status page, which shows
/// the next answer.
pub fn distinct_addresses(
    snap: &Snapshot,
    view: &ServiceView,
    answer_limit: u32,
    order: impl Iterator<Item = u32>,
    v4: bool,
) -> Vec<IpAddr> {
    let limit = match answer_limit {
        0 => usize::MAX,
        n => n as usize,
    };
    let mut seen: Vec<IpAddr> = Vec::new();
    for i in order {
        // A host name may resolve to both families; only this question's family counts.
        for ip in snap.addresses(&view.instance(i).instance.address) {
            if seen.len() == limit {
                return seen;
            }
            if ip.is_ipv4() == v4 && !seen.contains(&ip) {
                seen.push(ip);
            }
        }
    }
    seen
}

/// SRV: every answerable instance with its weight and port. With the client's region known,
/// its instances come first at priority 1 and the others follow at priority 2, so SRV-aware
/// clients fail over to other regions by themselves.
fn srv(zone: &Zone, snap: &Snapshot, qname: &Name, choice: &Choice, out: &mut Answer) {
    let entry = choice.entry;
    let mut emit = |i: u32, priority: u16| {
        let view = choice.view.instance(i);
        let Some((record, target)) = srv_record(zone, qname, &view.instance, entry.ttl, priority) else { return };
        out.answers.push(record);
        for ip in snap.addresses(&view.instance.address) {
            out.additionals.extend(address_record(&target, ip, RecordType::ANY, entry.ttl));
        }
    };
    match choice.local {
        Some(local) => {
            let near = choice.srv_of(local);
            for i in near.rotate() {
                emit(i, 1);
            }
            // Members lists are in instance order, so membership is a binary search.
            for i in choice.srv_of(entry).rotate().filter(|i| local.srv.members.binary_search(i).is_err()) {
                emit(i, 2);
            }
        }
        None => {
            for i in choice.srv_of(entry).rotate() {
                emit(i, 1);
            }
        }
    }
}

/// Every record of the zone that one service's names and instances hold, as a zone transfer
/// carries them: each name's answerable instances in instance order (a transfer does not
/// rotate, and `answer_limit` picks per answer, so all of them), SRV at priority 1 (there is no
/// client whose region to prefer), and each instance's own name whatever its health.
pub(crate) fn service_zone_records(zone: &Zone, snap: &Snapshot, view: &ServiceView, out: &mut Vec<Record>) {
    dnssd::service_type_record(zone, view, out);
    service_names(view, |relative, name| {
        let Some(owner) = zone.name_below(relative) else { return };
        let entry = view.entry(name.entry);
        if name.spelling.browses() {
            dnssd::zone_records(zone, view, &owner, name.spelling, entry, out);
        }
        if matches!(name.spelling, Spelling::Subtype | Spelling::Subtypes) {
            return;
        }
        for (set, v4) in [(&entry.v4, true), (&entry.v6, false)] {
            for ip in distinct_addresses(snap, view, 0, set.members.iter().copied(), v4) {
                out.extend(address_record(&owner, ip, RecordType::ANY, entry.ttl));
            }
        }
        let srv = if name.rfc2782() { &entry.srv_rfc2782 } else { &entry.srv };
        for &i in srv.members.iter() {
            out.extend(srv_record(zone, &owner, &view.instance(i).instance, entry.ttl, 1).map(|(r, _)| r));
        }
        for &i in entry.txt.members.iter() {
            out.push(txt_record(&owner, &view.instance(i).instance, entry.ttl));
        }
    });
    for v in &view.instances {
        let Some(owner) = zone.instance_name(&v.instance.id) else { continue };
        for ip in snap.addresses(&v.instance.address) {
            out.extend(address_record(&owner, ip, RecordType::ANY, view.ttl()));
        }
    }
}

/// The address records of every external node (`<node>.node.D`), as a transfer carries them.
pub(crate) fn node_zone_records(zone: &Zone, snap: &Snapshot, out: &mut Vec<Record>) {
    // This server's own node first, with the addresses `ns.D` has.
    if let Some(owner) = zone.node.as_deref().and_then(|n| zone.name_below(&[n, "node"])) {
        for ip in &zone.advertise {
            out.extend(address_record(&owner, *ip, RecordType::ANY, zone.ttl));
        }
    }
    for record in snap.nodes() {
        let Some(owner) = record.instance.node.as_deref().and_then(|n| zone.name_below(&[n, "node"])) else { continue };
        for ip in snap.addresses(&record.instance.address) {
            out.extend(address_record(&owner, ip, RecordType::ANY, zone.ttl));
        }
    }
}

/// The zone's apex records, as a transfer carries them after the opening SOA: NS and its glue,
/// and the browse domain's PTR records.
pub(crate) fn apex_records(zone: &Zone) -> Vec<Record> {
    let mut out = Answer::default();
    out.answers.push(Record::from_rdata(zone.origin.clone(), zone.ttl, RData::NS(NS(zone.nameserver.clone()))));
    nameserver_glue(zone, &mut out);
    out.answers.append(&mut out.additionals);
    dnssd::browse_domain_records(zone, &mut out.answers);
    out.answers
}

/// An instance's weight as SRV carries it (16 bits; larger weights still rotate by their
/// full value).
pub fn srv_weight(instance: &Instance) -> u16 {
    instance.weight.min(u32::from(u16::MAX)) as u16
}

/// An instance's SRV record and its target name (`<id>.instance.D`).
pub(crate) fn srv_record(
    zone: &Zone,
    owner: &Name,
    instance: &Instance,
    ttl: u32,
    priority: u16,
) -> Option<(Record, Name)> {
    let target = zone.instance_name(&instance.id)?;
    let weight = srv_weight(instance);
    let data = SRV::new(priority, weight, instance.port, target.clone());
    Some((Record::from_rdata(owner.clone(), ttl, RData::SRV(data)), target))
}

fn txt(qname: &Name, view: &ServiceView, entry: &NameEntry, set: &AnswerSet, out: &mut Answer) {
    for i in set.rotate() {
        out.answers.push(txt_record(qname, &view.instance(i).instance, entry.ttl));
    }
}

/// TXT: `id=<id>` and each metadata pair, every string cut to DNS's 255-byte limit.
pub(crate) fn txt_record(owner: &Name, instance: &Instance, ttl: u32) -> Record {
    let mut strings = vec![format!("id={}", instance.id)];
    strings.extend(instance.meta.iter().map(|(k, v)| format!("{k}={v}")));
    let chunks: Vec<&[u8]> = strings.iter().flat_map(|s| s.as_bytes().chunks(255)).collect();
    Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::from_bytes(chunks)))
}

/// The A or AAAA record for `ip` if `qtype` asks for its family (`ANY` asks for both).
pub(crate) fn address_record(owner: &Name, ip: IpAddr, qtype: RecordType, ttl: u32) -> Option<Record> {
    let data = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(owner.clone(), ttl, data))
}

/// An instance's own name answers with its service's TTL.
pub(crate) fn instance_ttl(snap: &Snapshot, view: &InstanceView) -> u32 {
    snap.service_view(&view.service).map_or(5, |s| s.ttl())
}

#[cfg(test)]
pub(crate) mod tests;
