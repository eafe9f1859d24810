//! Zone transfers of the domain — AXFR (RFC 5936) and IXFR (RFC 1995) — so that a standard
//! secondary (NSD, Knot, BIND) can mirror what DNS answers now. Only clients in `[dns]
//! transfer_allow` get one; everyone else is REFUSED, over UDP and TCP alike.
//!
//! A transfer holds every name's answerable instances, as `answer::service_zone_records` gives
//! them, and the external nodes' addresses (`<node>.node.D`), between two copies of the SOA, in messages of up to 16 KiB over TCP, built one at a
//! time from the snapshot of the moment it began (a catalog of 100,000 instances is never held
//! as one list of records). The catalog keeps no history, so IXFR is answered with the whole
//! zone (RFC 1995 §4 allows that), or with the SOA alone when the client is up to date or asked
//! over UDP (the sign to come back over TCP).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Metadata, Query, ResponseCode};
use hickory_proto::rr::{LowerName, RData, Record, RecordType};
use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::answer::{Transport, Zone, apex_records, node_zone_records, service_zone_records};
use super::message::{Overflow, Sections, encode, encode_part};
use crate::registry::Snapshot;

/// A transfer's messages are filled up to this size; a record larger than that (a TXT of much
/// metadata) gets a message of up to 64 KiB of its own.
const MESSAGE: u16 = 16 * 1024;
/// Records kept ready to fill the next message from.
const READY: usize = 1024;

/// Who may transfer the zone (`[dns] transfer_allow`; nobody by default).
#[derive(Debug, Clone, Default)]
pub struct Transfers {
    allow: Vec<IpNet>,
}

/// A transfer question and where it came from.
pub(crate) struct Asked<'a> {
    pub query: &'a Query,
    pub request: &'a Message,
    pub client: IpAddr,
    pub transport: Transport,
    /// The size the client takes in one message (UDP).
    pub limit: u16,
}

/// What a transfer question gets.
pub(crate) enum Served {
    Transfer(Box<Transfer>),
    /// One message: a refusal, the SOA alone, or a pointer to TCP.
    Message(Vec<u8>, ResponseCode),
}

impl Transfers {
    pub fn new(allow: Vec<IpNet>) -> Transfers {
        Transfers { allow }
    }

    /// Returns true if `client` is in `transfer_allow`.
    fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|net| net.contains(&client))
    }

    pub(crate) fn serve(
        &self,
        zone: &Zone,
        snap: Arc<Snapshot>,
        asked: &Asked<'_>,
        mut meta: Metadata,
        edns: Option<Edns>,
    ) -> Served {
        let qtype = asked.query.query_type();
        let one = |meta: Metadata, answers: &[Record]| {
            let sections = Sections { answers, ..Sections::default() };
            let bytes = encode(meta, Some(asked.query), &sections, edns.as_ref(), asked.limit);
            Served::Message(bytes, meta.response_code)
        };
        if !self.allows(asked.client) {
            debug!(client = %asked.client, %qtype, "zone transfer refused: the client is not in transfer_allow");
            meta.response_code = ResponseCode::Refused;
            return one(meta, &[]);
        }
        if LowerName::new(asked.query.name()) != zone.lower {
            // A name inside the domain but not its apex: no zone of ours starts there.
            meta.response_code = ResponseCode::NotAuth;
            return one(meta, &[]);
        }
        meta.authoritative = true;
        let serial = Zone::serial(snap.version);
        let soa = zone.soa(snap.version, zone.ttl);
        let up_to_date = qtype == RecordType::IXFR && client_serial(asked.request).is_some_and(|s| !older(s, serial));
        if up_to_date || (qtype == RecordType::IXFR && asked.transport == Transport::Udp) {
            return one(meta, &[soa]);
        }
        if asked.transport == Transport::Udp {
            // AXFR is defined over TCP only (RFC 5936 §4.2): TC sends the client there.
            meta.truncation = true;
            return one(meta, &[]);
        }
        info!(client = %asked.client, %qtype, serial, services = snap.service_views().count(), "zone transfer");
        let services: Vec<Arc<str>> = snap.service_views().map(|v| v.key.clone()).collect();
        Served::Transfer(Box::new(Transfer {
            zone: zone.clone(),
            snap,
            meta,
            query: Some(asked.query.clone()),
            edns,
            services: services.into_iter(),
            stage: Stage::Start,
            ready: Vec::new(),
            sent: 0,
        }))
    }
}

/// The serial of the SOA an IXFR question carries in its authority section (its current copy).
fn client_serial(request: &Message) -> Option<u32> {
    request.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// Returns true if serial `a` is older than `b` in RFC 1982 serial number arithmetic.
fn older(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// A zone transfer's messages, made as they are asked for.
pub struct Transfer {
    zone: Zone,
    snap: Arc<Snapshot>,
    meta: Metadata,
    /// The question, in the first message only.
    query: Option<Query>,
    edns: Option<Edns>,
    services: std::vec::IntoIter<Arc<str>>,
    stage: Stage,
    /// Records made and not yet sent, from `sent` on.
    ready: Vec<Record>,
    sent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The SOA and the apex's records come next.
    Start,
    Services,
    /// The closing SOA comes next.
    End,
    Done,
}

impl Transfer {
    /// Makes records until `READY` wait or there are no more.
    fn refill(&mut self) {
        if self.sent > self.ready.len() / 2 {
            self.ready.drain(..self.sent);
            self.sent = 0;
        }
        while self.ready.len() - self.sent < READY && self.stage != Stage::Done {
            match self.stage {
                Stage::Start => {
                    self.ready.push(self.zone.soa(self.snap.version, self.zone.ttl));
                    self.ready.extend(apex_records(&self.zone));
                    self.stage = Stage::Services;
                }
                Stage::Services => match self.services.next() {
                    Some(key) => {
                        if let Some(view) = self.snap.service_view(&key) {
                            service_zone_records(&self.zone, &self.snap, view, &mut self.ready);
                        }
                    }
                    None => {
                        // Nodes are few: all of them at once.
                        node_zone_records(&self.zone, &self.snap, &mut self.ready);
                        self.stage = Stage::End;
                    }
                },
                Stage::End => {
                    self.ready.push(self.zone.soa(self.snap.version, self.zone.ttl));
                    self.stage = Stage::Done;
                }
                Stage::Done => {}
            }
        }
    }
}

impl Iterator for Transfer {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            self.refill();
            if self.sent == self.ready.len() {
                return None;
            }
            let query = self.query.take();
            for limit in [MESSAGE, u16::MAX] {
                let sections = Sections { answers: &self.ready[self.sent..], ..Sections::default() };
                let (bytes, n) =
                    encode_part(self.meta, query.as_ref(), &sections, self.edns.as_ref(), limit, Overflow::Continue);
                if n > 0 {
                    self.sent += n;
                    return Some(bytes);
                }
            }
            warn!(record = %self.ready[self.sent], "a record too large for any DNS message is left out of a zone transfer");
            self.sent += 1;
            self.query = query;
        }
    }
}
