//! DNS-based Service Discovery's records (RFC 6763), from the same snapshot and the same pieces
//! as every other answer: PTR records that browse a service type or subtype (rotated, the
//! client's region first, at most `answer_limit`), an instance's SRV (with glue) and TXT, the
//! service types, and the browse domain. The names are `parse.rs`'s.

use hickory_proto::rr::rdata::{PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Answer, Choice, Transport, Zone, address_record, rfc8482, srv_record};
use crate::dns::parse::{Spelling, is_instance_label, service_type};
use crate::model::Instance;
use crate::registry::{NameEntry, ServiceView, Snapshot};

/// PTR: the instances a service type or subtype browses to (RFC 6763 §4.1), each named
/// `<id>.<type>`, where `<type>` is `_<name>._tcp.service[.<region>].D` as the question spells
/// it. Rotated, the client's region first, at most the service's `answer_limit`.
pub(super) fn browse(qname: &Name, choice: &Choice, out: &mut Answer) {
    let type_name = match choice.spelling {
        // `_<tag>._sub.<type>`
        Spelling::Subtype => qname.trim_to(usize::from(qname.num_labels()) - 2),
        _ => qname.clone(),
    };
    let entry = choice.entry;
    let limit = match entry.answer_limit {
        0 => usize::MAX,
        n => n as usize,
    };
    let id = |i: u32| choice.view.instance(i).instance.id.as_bytes();
    let mut emit = |id: &[u8]| {
        if let Ok(target) = type_name.prepend_label(id) {
            out.answers.push(Record::from_rdata(qname.clone(), entry.ttl, RData::PTR(PTR(target))));
        }
    };
    match choice.local {
        // As SRV orders them (`super::srv`): the client's region first, then the others.
        Some(local) => {
            let near = local.ptr.rotate();
            // Members lists are in instance order, so membership is a binary search.
            let others = entry.ptr.rotate().filter(|i| local.ptr.members.binary_search(i).is_err());
            near.chain(others).map(id).filter(|l| is_instance_label(l)).take(limit).for_each(&mut emit);
        }
        None => entry.ptr.rotate().map(id).filter(|l| is_instance_label(l)).take(limit).for_each(&mut emit),
    }
}

/// `<id>._<name>._tcp.service[.<region>].D`: the instance's SRV (with its target's addresses
/// as glue, RFC 6763 §12.2) and TXT while DNS answers for it; nothing (NODATA) while it is
/// registered but not answered (unhealthy). Returns false (NXDOMAIN) when the service has no
/// such instance (in that region).
pub(super) fn service_instance(
    zone: &Zone,
    snap: &Snapshot,
    qname: &Name,
    (id, service, region): (&str, &str, Option<&str>),
    qtype: RecordType,
    transport: Transport,
    out: &mut Answer,
) -> bool {
    let Some(view) = snap.service_view(service) else { return false };
    let Ok(at) = view.instances.binary_search_by(|v| (*v.key).cmp(id)) else { return false };
    let instance = &view.instances[at].instance;
    if region.is_some() && instance.region.as_deref().map(str::to_ascii_lowercase).as_deref() != region {
        return false;
    }
    let Some(entry) = view.name(None, region) else { return false };
    if entry.srv.members.binary_search(&(at as u32)).is_err() {
        return true;
    }
    let srv = |out: &mut Answer| {
        let Some((record, target)) = srv_record(zone, qname, instance, entry.ttl, 1) else { return };
        out.answers.push(record);
        for ip in snap.addresses(&instance.address) {
            out.additionals.extend(address_record(&target, ip, RecordType::ANY, entry.ttl));
        }
    };
    match qtype {
        RecordType::SRV => srv(out),
        RecordType::TXT => out.answers.push(dns_sd_txt_record(qname, instance, entry.ttl)),
        RecordType::ANY if transport == Transport::Udp => out.answers.push(rfc8482(qname, entry.ttl)),
        RecordType::ANY => {
            srv(out);
            out.answers.push(dns_sd_txt_record(qname, instance, entry.ttl));
        }
        _ => {}
    }
    true
}

/// TXT as RFC 6763 §6 has it: `txtvers=1`, then one `key=value` string per metadata pair, in
/// key order; a single empty string when there is no metadata (§6.1). A pair longer than one
/// string (255 bytes) is left out: cut, it would say something else, and a second string would
/// read as another key (§6.3). Keys are the metadata's own (§6.4 asks for at most nine
/// characters; longer ones are sent as they are rather than renamed).
pub(crate) fn dns_sd_txt_record(owner: &Name, instance: &Instance, ttl: u32) -> Record {
    let pairs: Vec<String> =
        instance.meta.iter().map(|(k, v)| format!("{k}={v}")).filter(|pair| pair.len() <= 255).collect();
    let strings: Vec<&[u8]> = match pairs.is_empty() {
        true => vec![b""],
        false => std::iter::once(&b"txtvers=1"[..]).chain(pairs.iter().map(|p| p.as_bytes())).collect(),
    };
    Record::from_rdata(owner.clone(), ttl, RData::TXT(TXT::from_bytes(strings)))
}

/// `_services._dns-sd._udp.service.D`: one PTR per service DNS answers for now, naming its
/// service type under the browse domain as the question spells it (RFC 6763 §9). In name order,
/// with the zone's TTL.
pub(super) fn service_types(
    snap: &Snapshot,
    qname: &Name,
    qtype: RecordType,
    transport: Transport,
    ttl: u32,
    out: &mut Answer,
) {
    let answered = || snap.answered_services().filter(|s| service_type(s).is_some());
    match qtype {
        RecordType::PTR => {}
        RecordType::ANY if transport == Transport::Tcp => {}
        RecordType::ANY if answered().next().is_some() => return out.answers.push(rfc8482(qname, ttl)),
        _ => return,
    }
    // `service.D`, below `_services._dns-sd._udp`.
    let domain = qname.trim_to(usize::from(qname.num_labels()) - 3);
    for service in answered() {
        let name = format!("_{service}");
        if let Ok(target) = domain.prepend_label("_tcp").and_then(|n| n.prepend_label(name.as_bytes())) {
            out.answers.push(Record::from_rdata(qname.clone(), ttl, RData::PTR(PTR(target))));
        }
    }
}

/// `b`, `db` or `lb._dns-sd._udp` under the domain or the browse domain: the browse domain
/// `service.D` (RFC 6763 §11), with the zone's TTL.
pub(super) fn browse_domains(zone: &Zone, qname: &Name, qtype: RecordType, transport: Transport, out: &mut Answer) {
    let record = || Record::from_rdata(qname.clone(), zone.ttl, RData::PTR(PTR(browse_domain(zone))));
    match qtype {
        RecordType::PTR => out.answers.push(record()),
        RecordType::ANY if transport == Transport::Tcp => out.answers.push(record()),
        RecordType::ANY => out.answers.push(rfc8482(qname, zone.ttl)),
        _ => {}
    }
}

/// The same question under the reverse zone of a `[dns] dns_sd_networks` network (which
/// `parse::asks_browse_domains` recognises): the answer a host of that network gets when it
/// looks for its browse domain from its own address. Authoritative for this name alone; a
/// negative answer carries no SOA, as the zone is not ours.
pub fn browse_domains_at(zone: &Zone, qname: &Name, qtype: RecordType, transport: Transport) -> Answer {
    let mut out = Answer { authoritative: true, ..Answer::default() };
    browse_domains(zone, qname, qtype, transport, &mut out);
    out
}

/// `service.D`, the browse domain.
fn browse_domain(zone: &Zone) -> Name {
    zone.name_below(&["service"]).expect("service.<domain> is a valid name")
}

/// The browse domain's records as a zone transfer carries them: `b`, `db` and `lb._dns-sd._udp`
/// under the domain and under `service.D`.
pub(super) fn browse_domain_records(zone: &Zone, out: &mut Vec<Record>) {
    for below in [&[][..], &["service"]] {
        for b in ["b", "db", "lb"] {
            let relative: Vec<&str> = [b, "_dns-sd", "_udp"].into_iter().chain(below.iter().copied()).collect();
            if let Some(owner) = zone.name_below(&relative) {
                out.push(Record::from_rdata(owner, zone.ttl, RData::PTR(PTR(browse_domain(zone)))));
            }
        }
    }
}

/// A service's PTR record among the service types, for a zone transfer, while DNS answers for it.
pub(super) fn service_type_record(zone: &Zone, view: &ServiceView, out: &mut Vec<Record>) {
    let Some(service_type) = service_type(&view.key).filter(|_| view.is_answered()) else { return };
    let (Some(owner), Some(target)) = (
        zone.name_below(&["_services", "_dns-sd", "_udp", "service"]),
        zone.name_below(&service_type.split('.').chain(["service"]).collect::<Vec<_>>()),
    ) else {
        return;
    };
    out.push(Record::from_rdata(owner, zone.ttl, RData::PTR(PTR(target))));
}

/// What a browsing name (`owner`) holds in a zone transfer: a PTR per answered instance, in
/// instance order and all of them (`answer_limit` picks per answer), and for a service type
/// each of those instances' SRV (at priority 1) and TXT records.
pub(super) fn zone_records(
    zone: &Zone,
    view: &ServiceView,
    owner: &Name,
    spelling: Spelling,
    entry: &NameEntry,
    out: &mut Vec<Record>,
) {
    let type_name = match spelling {
        Spelling::Subtype => owner.trim_to(usize::from(owner.num_labels()) - 2),
        _ => owner.clone(),
    };
    for &i in entry.ptr.members.iter() {
        let instance = &view.instance(i).instance;
        if !is_instance_label(instance.id.as_bytes()) {
            continue;
        }
        let Ok(name) = type_name.prepend_label(instance.id.as_bytes()) else { continue };
        out.push(Record::from_rdata(owner.clone(), entry.ttl, RData::PTR(PTR(name.clone()))));
        if spelling == Spelling::ServiceType {
            out.extend(srv_record(zone, &name, instance, entry.ttl, 1).map(|(r, _)| r));
            out.push(dns_sd_txt_record(&name, instance, entry.ttl));
        }
    }
}
