//! DNS-SD on the fast path: browsing a service type or subtype (PTR) and resolving an instance
//! (SRV, TXT), the questions a browsing client asks most, answered as `answer/dnssd.rs` answers
//! them. The service types and browse domains, asked once per browse, are the full handler's.

use std::iter::once;

use super::query::{QNAME_POINTER, TYPE_SRV, TYPE_TXT};
use super::{Asked, FastName, FastTable, Made, Named};
use crate::dns::parse::{Spelling, is_instance_label};

/// The most PTR records the fast path answers with. hickory-proto compresses at most 120 names
/// of a message and remembers at most 64 suffixes to point at (`COMPRESSED_NAME_LIMIT`,
/// `COMPRESSION_CANDIDATE_LIMIT`); a PTR record takes two names and one suffix, the question up
/// to a dozen suffixes. Past that the full handler's encoding grows past ours and which records
/// fit would differ, so larger answers are the full handler's.
const MAX_PTR: usize = 50;

/// PTR on a service type or subtype: `<id>.<type>` for each answered instance, the client's
/// region first, at most `answer_limit`.
pub(super) fn browse(named: &Named, asked: &Asked, out: &mut Vec<u8>) -> Made {
    let Named { wire, entry, spelling, local } = *named;
    let (view, q) = (&wire.view, asked.q);
    let e = view.entry(entry);
    if e.ptr.is_empty() {
        return Made::Negative(0);
    }
    let limit = match e.answer_limit {
        0 => usize::MAX,
        n => n as usize,
    };
    if e.ptr.members.len().min(limit) > MAX_PTR || q.end + wire.entries[entry as usize].ptr > asked.room {
        return Made::Decline;
    }
    // Where the type's name starts in the question: after `_<tag>._sub.` for a subtype.
    let mut at = 12;
    if spelling == Spelling::Subtype {
        for _ in 0..2 {
            at += 1 + usize::from(asked.name[at - 12]);
        }
    }
    let pointer = (0xC000 | at as u16).to_be_bytes();
    let mut answers = 0;
    let label = |i: u32| wire.instances[i as usize].label();
    let named = |l: &&[u8]| is_instance_label(&l[1..]);
    let mut emit = |label: &[u8]| {
        out.extend_from_slice(&QNAME_POINTER);
        out.extend_from_slice(&wire.ptr_head);
        out.extend_from_slice(&(label.len() as u16 + 2).to_be_bytes());
        out.extend_from_slice(label);
        out.extend_from_slice(&pointer);
        answers += 1;
    };
    match local {
        // answer/dnssd.rs's `browse`: the client's region first, then the others.
        Some(l) => {
            let near = view.entry(l);
            let others = e.ptr.rotate().filter(|i| near.ptr.members.binary_search(i).is_err());
            near.ptr.rotate().chain(others).map(label).filter(named).take(limit).for_each(&mut emit);
        }
        None => e.ptr.rotate().map(label).filter(named).take(limit).for_each(&mut emit),
    }
    // Only instances without a DNS-SD name (`_sub`): NODATA, as the full handler finds.
    if answers == 0 { Made::Negative(0) } else { Made::Records(answers, 0) }
}

impl FastTable {
    /// A name not in the table: `<id>._<name>._tcp.service.D`, a DNS-SD instance (its SRV with
    /// glue, or its TXT), if the rest is a service type that names no region and the service
    /// has the instance; NXDOMAIN otherwise. Instances are not indexed one by one (a change to
    /// a large service would re-index all of them), but found through their service type.
    pub(super) fn service_instance(&self, key: &[u8], asked: &Asked, out: &mut Vec<u8>) -> Made {
        let len = usize::from(key[0]);
        let (label, rest) = (&key[1..1 + len], &key[1 + len..]);
        let Some(FastName::Service { slot, entry, spelling: Spelling::ServiceType, names_region }) =
            self.index.get(rest).filter(|_| len > 0 && is_instance_label(label))
        else {
            return Made::Negative(super::RCODE_NXDOMAIN);
        };
        let Some(wire) = self.index.wire(slot).filter(|_| !names_region) else {
            // The instance must be in that region: the full handler checks.
            return Made::Decline;
        };
        let found = std::str::from_utf8(label)
            .ok()
            .and_then(|id| wire.view.instances.binary_search_by(|v| (*v.key).cmp(id)).ok());
        let Some(at) = found else { return Made::Negative(super::RCODE_NXDOMAIN) };
        let w = &wire.instances[at];
        if wire.view.entry(entry).srv.members.binary_search(&(at as u32)).is_err() {
            return Made::Negative(0); // Registered, not answered (unhealthy).
        }
        let q = asked.q;
        match q.qtype {
            TYPE_SRV if w.host() => Made::Decline,
            TYPE_SRV if q.end + super::encode::srv_len(w) <= asked.room => {
                let (answers, glue) = wire.srv_records(once((at as u32, 1)), out);
                Made::Records(answers, glue)
            }
            TYPE_TXT if q.end + 2 + w.sd_txt().len() <= asked.room => {
                out.extend_from_slice(&QNAME_POINTER);
                out.extend_from_slice(w.sd_txt());
                Made::Records(1, 0)
            }
            TYPE_SRV | TYPE_TXT => Made::Decline,
            _ => Made::Negative(0),
        }
    }
}
