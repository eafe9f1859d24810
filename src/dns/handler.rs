//! The full handler: raw query bytes in, the encoded answer out, for everything the fast path
//! leaves and for every TCP query. hickory-proto parses the query; then the protocol checks
//! (opcode, question count, class, EDNS version), then `answer::answer` on the current snapshot,
//! a reverse name, a zone transfer (`transfer`), or `forward` for names outside the domain; then
//! `message::encode` fits the answer to what the client can take, forwarded answers alike.
//!
//! Not hickory-server's `Catalog` or `RequestHandler`: the Catalog answers other classes with IN
//! data, drops the DO bit and does not cap EDNS payloads, and its response encoder leaves part
//! of a record behind when it truncates; the handler trait hands the answer to a callback, where
//! our loops want it back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{DNSClass, LowerName, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tracing::debug;

use super::answer::{Answer, Transport, answer, browse_domains_at, reverse};
use super::edns::{self, Options};
use super::message::{Sections, encode};
use super::parse::{asks_browse_domains, reverse_ip};
use super::transfer::{self, Transfer};
use super::{LiveSettings, Settings};
use crate::registry::Registry;

/// DNS's classic limit for UDP answers to clients without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: u16 = 512;

#[derive(Clone)]
pub struct Handler {
    registry: Registry,
    /// Read once per query: a configuration reload swaps it.
    settings: LiveSettings,
}

/// What a query gets back.
pub enum Reply {
    /// One message.
    Message(Vec<u8>),
    /// A zone transfer's messages, in order (TCP only).
    Transfer(Box<Transfer>),
}

impl Handler {
    pub fn new(registry: Registry, settings: LiveSettings) -> Handler {
        Handler { registry, settings }
    }

    /// How this handler answers now (the fast path answers the same way).
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Answers one query from `src` that arrived over `transport`; `None` means send nothing
    /// (no header to answer to, or a message that is itself a response). Counted in the query
    /// metrics with the answer's code.
    pub async fn answer(&self, query: &[u8], src: SocketAddr, transport: Transport) -> Option<Reply> {
        let started = Instant::now();
        let header = Header::read(&mut BinDecoder::new(query)).ok()?;
        if header.metadata.message_type == MessageType::Response {
            return None; // Never answer answers: that is how reflection loops start.
        }
        let parsed = match question_points_into_header(query) {
            true => None,
            false => Message::from_vec(query).ok(),
        };
        let (reply, qtype, rcode) = match parsed {
            Some(request) => self.respond(query, request, src, transport).await,
            None => (Reply::Message(formerr(&header.metadata)), RecordType::Unknown(0), ResponseCode::FormErr),
        };
        super::metrics::record(qtype, rcode, transport, started.elapsed());
        Some(reply)
    }

    async fn respond(
        &self,
        bytes: &[u8],
        request: Message,
        src: SocketAddr,
        transport: Transport,
    ) -> (Reply, RecordType, ResponseCode) {
        let settings = self.settings.load_full();
        let mut meta = Metadata::response_from_request(&request.metadata);
        let limit = match (&request.edns, transport) {
            (_, Transport::Tcp) => u16::MAX,
            (Some(e), Transport::Udp) => e.max_payload().clamp(PLAIN_UDP_LIMIT, settings.udp_max_payload),
            (None, Transport::Udp) => PLAIN_UDP_LIMIT,
        };
        // The options, read as the fast path reads them (hickory has parsed the OPT its own way).
        let options = match request.edns {
            Some(_) => edns::find_opt(bytes).map_or(Ok(Options::default()), |opt| edns::parse(opt.data)),
            None => Ok(Options::default()),
        };
        let (options, malformed) = match options {
            Ok(o) => (o, None),
            Err(m) => (Options::default(), Some(m)),
        };
        let client = settings.regions.of(src.ip(), options.subnet.map(|s| (s.addr, s.source_prefix)));
        // The response OPT: our own version 0, the client's DO bit echoed (RFC 3225), the payload
        // we honour; its options once the answer is known.
        let mut edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(limit.min(settings.udp_max_payload));
            r.set_dnssec_ok(e.flags().dnssec_ok);
            r
        });
        let query = request.queries.first();
        let qtype = query.map_or(RecordType::Unknown(0), |q| q.query_type());

        let refuse_with = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if let Some(why) = malformed {
            debug!(id = meta.id, why = why.0, "malformed EDNS option");
            Some(ResponseCode::FormErr)
        } else if !matches!(request.queries[0].query_class(), DNSClass::IN | DNSClass::ANY) {
            Some(ResponseCode::Refused)
        } else {
            None
        };
        if let Some(rcode) = refuse_with {
            debug!(id = meta.id, %rcode, "refusing query");
            meta.response_code = rcode;
            if let Some(e) = edns.as_mut() {
                // Extended codes (BADVERS) keep their high bits in the OPT (RFC 6891 §6.1.3).
                e.set_rcode_high(rcode.high());
                Self::answer_options(&settings, e, &options, src, None);
            }
            let question = query.filter(|_| request.queries.len() == 1);
            let bytes = encode(meta, question, &Sections::default(), edns.as_ref(), limit);
            return (Reply::Message(bytes), qtype, rcode);
        }
        let query = &request.queries[0];

        if matches!(qtype, RecordType::AXFR | RecordType::IXFR)
            && settings.zone.lower.zone_of(&LowerName::new(query.name()))
        {
            if let Some(e) = edns.as_mut() {
                Self::answer_options(&settings, e, &options, src, None);
            }
            let snapshot = self.registry.snapshot();
            let asked = transfer::Asked { query, request: &request, client: src.ip(), transport, limit };
            return match settings.transfers.serve(&settings.zone, snapshot, &asked, meta, edns) {
                transfer::Served::Transfer(t) => (Reply::Transfer(t), qtype, ResponseCode::NoError),
                transfer::Served::Message(bytes, rcode) => (Reply::Message(bytes), qtype, rcode),
            };
        }

        let (ans, recursive) = self.lookup(&settings, query, src, transport, client.region).await;
        debug!(name = %query.name(), qtype = %qtype, rcode = %ans.rcode, answers = ans.answers.len(), "query");
        if let Some(e) = edns.as_mut() {
            Self::answer_options(&settings, e, &options, src, client.ecs_scope.filter(|_| ans.regional));
        }
        meta.response_code = ans.rcode;
        meta.authoritative = ans.authoritative;
        meta.recursion_available = recursive;
        let sections = Sections { answers: &ans.answers, authorities: &ans.authorities, additionals: &ans.additionals };
        (Reply::Message(encode(meta, Some(query), &sections, edns.as_ref(), limit)), qtype, ans.rcode)
    }

    /// The options of an answer's OPT, for what the query asked: the client's cookie with a
    /// fresh server cookie, the client subnet echoed with `scope` (0 when the answer holds for
    /// every address, RFC 7871 §7.2.1), and this server's NSID when one is set.
    fn answer_options(settings: &Settings, edns: &mut Edns, options: &Options<'_>, src: SocketAddr, scope: Option<u8>) {
        let mut add = |code: u16, value: Vec<u8>| edns.options_mut().insert(EdnsOption::Unknown(code, value));
        if let Some(cookie) = options.cookie {
            add(edns::COOKIE, settings.answer_cookie(&cookie, src.ip()).to_vec());
        }
        if let Some(subnet) = options.subnet {
            let [f0, f1] = subnet.family.to_be_bytes();
            add(edns::SUBNET, [&[f0, f1, subnet.source_prefix, scope.unwrap_or(0)][..], subnet.raw].concat());
        }
        if let (true, Some(nsid)) = (options.nsid, &settings.nsid) {
            add(edns::NSID, nsid.to_vec());
        }
    }

    /// The records for a question: from the snapshot for names in the domain and reverse names
    /// of registered addresses, from upstream for the rest. Returns the answer and whether it
    /// is a recursive one (RA).
    async fn lookup(
        &self,
        settings: &Settings,
        query: &Query,
        src: SocketAddr,
        transport: Transport,
        region: Option<&str>,
    ) -> (Answer, bool) {
        let lower = LowerName::new(query.name());
        let snapshot = self.registry.snapshot();
        if settings.zone.lower.zone_of(&lower) {
            return (answer(&settings.zone, &snapshot, query.name(), query.query_type(), transport, region), false);
        }
        // Only names outside the domain can be reverse names of registered addresses, or ask
        // for the browse domain under the reverse zone of a `dns_sd_networks` network.
        if asks_browse_domains(&lower, &settings.browse_zones) {
            return (browse_domains_at(&settings.zone, query.name(), query.query_type(), transport), false);
        }
        let reverse_of = reverse_ip(&lower);
        if let Some(ans) =
            reverse_of.and_then(|ip| reverse(&settings.zone, &snapshot, query.name(), ip, query.query_type()))
        {
            return (ans, false);
        }
        let refused = || Answer { rcode: ResponseCode::Refused, ..Answer::default() };
        match &settings.forwarder {
            // Awaits the upstream; every slow query runs as its own task, so this holds up no
            // other query (and no lock is held across it).
            Some(f) if f.is_enabled() && f.allows(src.ip()) => {
                (f.forward(query.name(), query.query_type(), transport).await, true)
            }
            Some(f) if f.is_enabled() => {
                debug!(client = %src, name = %query.name(), "client not in recursion_allow; refused");
                (refused(), false)
            }
            // A reverse name of an address nobody registered: it does not exist as far as we know.
            _ if reverse_of.is_some() => (Answer { rcode: ResponseCode::NXDomain, ..Answer::default() }, false),
            _ => (refused(), false),
        }
    }
}

/// Returns true if a question name reaches, through compression pointers, into the header.
/// hickory-proto reads such a name (header bytes as labels); no real name lives in a header,
/// and echoing one makes an answer no client can parse (found by fuzz/dns).
fn question_points_into_header(query: &[u8]) -> bool {
    let count = u16::from_be_bytes([query[4], query[5]]);
    let mut pos = 12;
    for _ in 0..count {
        let (mut at, mut hops) = (pos, 0);
        let mut end = None;
        loop {
            let Some(&len) = query.get(at) else { return false };
            match len & 0xC0 {
                0xC0 => {
                    let Some(&low) = query.get(at + 1) else { return false };
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                    if target < 12 {
                        return true;
                    }
                    end.get_or_insert(at + 2);
                    hops += 1;
                    if hops > 64 || target >= at {
                        return false; // A loop or a forward pointer: the parser refuses those.
                    }
                    at = target;
                }
                0x00 if len == 0 => {
                    end.get_or_insert(at + 1);
                    break;
                }
                0x00 => at += 1 + usize::from(len),
                _ => return false, // Label types the parser refuses.
            }
        }
        pos = end.unwrap_or(at) + 4;
    }
    false
}

/// A header alone, FORMERR, for a query whose header was readable but nothing after it.
fn formerr(query: &Metadata) -> Vec<u8> {
    let mut meta = Metadata::response_from_request(query);
    meta.response_code = ResponseCode::FormErr;
    encode(meta, None, &Sections::default(), None, PLAIN_UDP_LIMIT)
}
