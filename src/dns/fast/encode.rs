//! One service version's records, encoded once: each instance's address, SRV and TXT records
//! (and DNS-SD's TXT and instance label) without owner names, shared across versions until the
//! instance changes, and per name the sizes its answers take; `records` copies them into an
//! answer in rotated order.

use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::query::{QNAME_POINTER, TYPE_A, TYPE_AAAA, TYPE_TXT};
use crate::dns::answer::{Zone, address_record, dns_sd_txt_record, srv_record, txt_record};
use crate::model::Address;
use crate::registry::{AnswerSet, InstanceView, NameEntry, ServiceView};

/// One service version, encoded.
pub(super) struct ServiceWire {
    pub view: Arc<ServiceView>,
    /// Per instance of `view.instances`.
    pub instances: Vec<InstanceWire>,
    /// Per entry of the view (`ServiceView::entry`), what its answers need.
    pub entries: Vec<EntryWire>,
    /// TYPE (PTR), CLASS and TTL of the service's PTR records.
    pub ptr_head: [u8; 8],
    /// For each entry of a name that names no region, of a service whose instances under that
    /// name's tag carry regions (by entry; empty for most services): each region's entry.
    by_region: Vec<(u32, Box<ByRegion>)>,
}

/// Each region's entry (sorted by region): a name's answer for a client of that region.
pub(super) type ByRegion = [(Arc<str>, u32)];

/// One instance's records, each without its owner name (TYPE CLASS TTL RDLENGTH RDATA), back to
/// back in one shared allocation: its address record (none for a host name), SRV, TXT, DNS-SD's
/// TXT, and then its id as a label (length byte first), the first label of its DNS-SD name.
/// Shared by every version of its service's encoding until the instance itself changes.
#[derive(Debug, Clone)]
pub(super) struct InstanceWire {
    bytes: Arc<[u8]>,
    srv_at: u32,
    txt_at: u32,
    sd_txt_at: u32,
    label_at: u32,
    family: AddressFamily,
    /// An IPv4 address, kept here too (in what would be padding) so that a service's addresses
    /// are compared without reading each instance (`AddressIds`).
    v4: u32,
}

// 100,000 instances each have one: `v4` must stay in what is padding.
const _: () = assert!(std::mem::size_of::<InstanceWire>() <= 40);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AddressFamily {
    V4,
    V6,
    /// Registered with a host name, resolved elsewhere: the full handler answers for it.
    Host,
}

impl InstanceWire {
    pub(super) fn encode(zone: &Zone, instance: &crate::model::Instance, ttl: u32) -> InstanceWire {
        let root = Name::root();
        let mut bytes = Vec::with_capacity(128);
        let family = match instance.address {
            Address::Ip(ip) => {
                if let Some(r) = address_record(&root, ip, RecordType::ANY, ttl) {
                    append_tail(&r, &mut bytes);
                }
                if ip.is_ipv4() { AddressFamily::V4 } else { AddressFamily::V6 }
            }
            Address::Host(_) => AddressFamily::Host,
        };
        let srv_at = bytes.len() as u32;
        if let Some((srv, _)) = srv_record(zone, &root, instance, ttl, 1) {
            append_tail(&srv, &mut bytes);
        }
        let txt_at = bytes.len() as u32;
        append_tail(&txt_record(&root, instance, ttl), &mut bytes);
        let sd_txt_at = bytes.len() as u32;
        append_tail(&dns_sd_txt_record(&root, instance, ttl), &mut bytes);
        let label_at = bytes.len() as u32;
        // Ids are DNS labels (1 to 63 bytes), checked where instances come in.
        bytes.push(instance.id.len() as u8);
        bytes.extend_from_slice(instance.id.as_bytes());
        let v4 = match instance.address {
            Address::Ip(IpAddr::V4(ip)) => ip.to_bits(),
            _ => 0,
        };
        InstanceWire { bytes: bytes.into(), srv_at, txt_at, sd_txt_at, label_at, family, v4 }
    }

    /// The A or AAAA record; also the SRV target's glue (its owner: a pointer to the target).
    pub(super) fn address(&self) -> Option<&[u8]> {
        (self.family != AddressFamily::Host).then(|| &self.bytes[..self.srv_at as usize])
    }

    pub(super) fn a(&self) -> Option<&[u8]> {
        self.address().filter(|_| self.family == AddressFamily::V4)
    }

    pub(super) fn aaaa(&self) -> Option<&[u8]> {
        self.address().filter(|_| self.family == AddressFamily::V6)
    }

    pub(super) fn srv(&self) -> &[u8] {
        &self.bytes[self.srv_at as usize..self.txt_at as usize]
    }

    pub(super) fn txt(&self) -> &[u8] {
        &self.bytes[self.txt_at as usize..self.sd_txt_at as usize]
    }

    /// The TXT record of its DNS-SD name (RFC 6763 §6).
    pub(super) fn sd_txt(&self) -> &[u8] {
        &self.bytes[self.sd_txt_at as usize..self.label_at as usize]
    }

    /// Its id as a label, length byte first: the first label of its DNS-SD name.
    pub(super) fn label(&self) -> &[u8] {
        &self.bytes[self.label_at as usize..]
    }

    /// Its IP address as a number (IPv4 ones marked apart), `None` for a host name.
    fn address_key(&self) -> Option<u128> {
        match self.family {
            AddressFamily::V4 => Some(u128::from(self.v4) | 1 << 127),
            // The record's last 16 bytes.
            AddressFamily::V6 => {
                let record = self.aaaa()?;
                Some(u128::from_be_bytes(record[record.len() - 16..].try_into().ok()?))
            }
            AddressFamily::Host => None,
        }
    }

    pub(super) fn host(&self) -> bool {
        self.family == AddressFamily::Host
    }
}

/// Per name entry: the bytes each answer takes, or `None` where the fast path must step aside.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct EntryWire {
    pub a: Option<Family>,
    pub aaaa: Option<Family>,
    /// `None` when a member has a host-name address (its glue is resolved elsewhere).
    pub srv: Option<usize>,
    pub txt: usize,
    /// At most the bytes a PTR answer (DNS-SD browsing) takes, when cut to `answer_limit`.
    pub ptr: usize,
}

/// An A or AAAA answer's size, and whether members share addresses (then each address is
/// answered once, as the full handler does).
#[derive(Debug, Clone, Copy)]
pub(super) struct Family {
    pub size: usize,
    pub dedup: bool,
}

impl ServiceWire {
    /// Encodes a service version; instances unchanged since `previous` keep their encoding, so
    /// a change to one instance of a large service encodes one instance.
    pub(super) fn build(view: &Arc<ServiceView>, zone: &Zone, previous: Option<&ServiceWire>) -> ServiceWire {
        let ttl = view.ttl();
        let reusable = previous.filter(|p| p.view.ttl() == ttl);
        let mut old = reusable.into_iter().flat_map(|p| p.view.instances.iter().zip(&p.instances)).peekable();
        let instances: Vec<InstanceWire> = view
            .instances
            .iter()
            .map(|v| {
                // Both lists are in id order: walk the old one alongside, comparing keys only
                // where the lists differ. An instance the write left alone is the same view in
                // both (`merge_members` keeps it), so comparing the lists' pointers settles it
                // without reading each view: for a service of 100 instances that read was most
                // of what encoding it again cost.
                let same = |o: &Arc<InstanceView>| Arc::ptr_eq(o, v) || Arc::ptr_eq(&o.instance, &v.instance);
                while old.next_if(|(o, _)| !same(o) && o.key < v.key).is_some() {}
                match old.next_if(|(o, _)| same(o)) {
                    Some((_, w)) => w.clone(),
                    None => InstanceWire::encode(zone, &v.instance, ttl),
                }
            })
            .collect();
        let shared = AddressIds::of(&instances);
        let hosts = instances.iter().any(InstanceWire::host);
        let mut marks = Vec::new();
        let entries = view
            .entries()
            .iter()
            .map(|e| EntryWire {
                a: sized(e, &e.v4, shared.as_ref(), &mut marks, hosts, &instances, InstanceWire::a),
                aaaa: sized(e, &e.v6, shared.as_ref(), &mut marks, hosts, &instances, InstanceWire::aaaa),
                srv: e
                    .srv
                    .members
                    .iter()
                    .map(|&i| (!instances[i as usize].host()).then(|| srv_len(&instances[i as usize])))
                    .sum(),
                txt: e.txt.members.iter().map(|&i| 2 + instances[i as usize].txt().len()).sum(),
                ptr: ptr_size(e, &instances),
            })
            .collect();
        let mut ptr_head = [0, 12, 0, 1, 0, 0, 0, 0];
        ptr_head[4..].copy_from_slice(&ttl.to_be_bytes());
        let mut by_region: Vec<(u32, Box<ByRegion>)> = view
            .name_forms()
            .filter(|f| f.region.is_none())
            .filter_map(|any| {
                let mut list: Vec<(Arc<str>, u32)> = view
                    .name_forms()
                    .filter(|f| f.tag == any.tag)
                    .filter_map(|f| Some((Arc::from(f.region?), f.index)))
                    .collect();
                list.sort();
                (!list.is_empty()).then(|| (any.index, list.into()))
            })
            .collect();
        by_region.sort_by_key(|(entry, _)| *entry);
        ServiceWire { view: view.clone(), instances, entries, ptr_head, by_region }
    }

    /// The entries a name that names no region (entry `entry`) answers a client of each region
    /// with, if any of its instances carry a region.
    pub(super) fn by_region(&self, entry: u32) -> Option<&ByRegion> {
        let at = self.by_region.binary_search_by_key(&entry, |(e, _)| *e).ok()?;
        Some(&self.by_region[at].1)
    }

    /// Appends the A, AAAA or TXT records of `set` in this query's rotated order, each address
    /// once when `dedup`, at most the entry's answer limit (A/AAAA); returns how many.
    pub(super) fn records(&self, qtype: u16, e: &NameEntry, set: &AnswerSet, dedup: bool, out: &mut Vec<u8>) -> u16 {
        let limit = if e.answer_limit == 0 { usize::MAX } else { e.answer_limit as usize };
        let mut answers = 0u16;
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
            // Records of one family have one length: the answers so far sit at a fixed
            // stride, each after its two-byte owner pointer.
            let stride = 2 + rec.len();
            if dedup && out[start..].chunks_exact(stride).any(|r| &r[2..] == rec) {
                continue;
            }
            out.extend_from_slice(&QNAME_POINTER);
            out.extend_from_slice(rec);
            answers += 1;
        }
        answers
    }

    /// Appends SRV records for `order` (instance, priority), then their glue; returns the
    /// answer and additional counts. Each glue owner points at its SRV's target, so the answer
    /// must end below 16 KiB, where compression pointers reach.
    pub(super) fn srv_records(&self, order: impl Iterator<Item = (u32, u16)>, out: &mut Vec<u8>) -> (u16, u16) {
        let mut targets: [(u32, u16); 64] = [(0, 0); 64];
        let mut spill = Vec::new();
        let mut answers = 0u16;
        for (i, priority) in order {
            let w = &self.instances[i as usize];
            out.extend_from_slice(&QNAME_POINTER);
            // TYPE CLASS TTL RDLENGTH (10) come before the priority; weight and port (4) after.
            let at = out.len() + 10;
            out.extend_from_slice(w.srv());
            if priority != 1 {
                out[at..at + 2].copy_from_slice(&priority.to_be_bytes());
            }
            let target = (at + 6) as u16;
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
        (answers, glue)
    }
}

/// A record's bytes after its owner name (encoded as the root, one zero byte), uncompressed so
/// they can be copied anywhere.
pub(super) fn tail(record: &Record) -> Box<[u8]> {
    let mut buf = Vec::new();
    append_tail(record, &mut buf);
    buf.into()
}

/// `tail` of `record` appended to `out`: encoded in place, since an encoder reserves 512 bytes
/// of its buffer, which made each record of each instance an allocation of its own and a copy
/// (half of what encoding 100,000 instances cost a joining replica).
fn append_tail(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    let mut enc = BinEncoder::with_offset(out, start as u32);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    record.emit(&mut enc).expect("a record built here encodes");
    // The owner, the root: one zero byte.
    out.remove(start);
}

/// The lowercase wire form of `relative` labels followed by the domain's.
pub(super) fn wire_name(relative: &[&str], domain: &[Vec<u8>]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    for label in relative.iter().map(|l| l.as_bytes()).chain(domain.iter().map(Vec::as_slice)) {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out.into()
}

/// Each instance's address as a number, equal for equal addresses, when two instances of the
/// service share one: only then do its answers need their addresses counted and repeats left
/// out, and with numbers each name counts them without hashing again.
struct AddressIds {
    of: Vec<u32>,
    distinct: usize,
}

impl AddressIds {
    fn of(instances: &[InstanceWire]) -> Option<AddressIds> {
        let mut ids: hashbrown::HashMap<u128, u32, BuildHasherDefault<IpHasher>> =
            hashbrown::HashMap::with_capacity_and_hasher(instances.len(), Default::default());
        let mut next = 0u32;
        let mut fresh = || {
            next += 1;
            next - 1
        };
        let of: Vec<u32> = instances
            .iter()
            .map(|w| {
                // A host name is answered by the full handler: each its own.
                let Some(key) = w.address_key() else { return fresh() };
                *ids.entry(key).or_insert_with(&mut fresh)
            })
            .collect();
        let distinct = next as usize;
        (distinct < of.len()).then_some(AddressIds { distinct, of })
    }
}

/// Hashes an address as a number: one multiplication where a general hasher took a tenth of a
/// replica's CPU when a large service changed.
#[derive(Default)]
struct IpHasher(u64);

impl std::hash::Hasher for IpHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let folded = u128::from(self.0 ^ n) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (folded as u64) ^ (folded >> 64) as u64;
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The size of an A or AAAA answer for `set`, or `None` when a member has no address of this
/// family here (a host name: the full handler answers with what it resolved to). `marks` is
/// scratch space for counting `shared` addresses; `hosts`: some instance has a host name.
fn sized(
    e: &NameEntry,
    set: &AnswerSet,
    shared: Option<&AddressIds>,
    marks: &mut Vec<bool>,
    hosts: bool,
    instances: &[InstanceWire],
    rec: fn(&InstanceWire) -> Option<&[u8]>,
) -> Option<Family> {
    // Records of one family have one length, and only a member with a host name has none: the
    // members are looked at one by one only in a service that has such members.
    let mut per = 0;
    let looked_at = if hosts { &set.members[..] } else { &set.members[..set.members.len().min(1)] };
    for &i in looked_at {
        per = 2 + rec(&instances[i as usize])?.len();
    }
    let distinct = match shared {
        Some(ids) => {
            marks.clear();
            marks.resize(ids.distinct, false);
            let mut distinct = 0;
            for &i in set.members.iter() {
                let seen = std::mem::replace(&mut marks[ids.of[i as usize] as usize], true);
                distinct += usize::from(!seen);
            }
            distinct
        }
        None => set.members.len(),
    };
    let limit = if e.answer_limit == 0 { usize::MAX } else { e.answer_limit as usize };
    Some(Family { size: per * distinct.min(limit), dedup: distinct < set.members.len() })
}

/// The most a PTR answer of `e` takes: each record its owner pointer, TYPE CLASS TTL RDLENGTH,
/// the id's label and a pointer to the service type's name; at most `answer_limit` of them.
fn ptr_size(e: &NameEntry, instances: &[InstanceWire]) -> usize {
    let sizes = e.ptr.members.iter().map(|&i| 2 + 10 + instances[i as usize].label().len() + 2);
    let (total, largest) = sizes.fold((0, 0), |(t, m), s| (t + s, m.max(s)));
    match e.answer_limit {
        0 => total,
        n => total.min(largest * n as usize),
    }
}

pub(super) fn srv_len(w: &InstanceWire) -> usize {
    2 + w.srv().len() + w.address().map_or(0, |g| 2 + g.len())
}
