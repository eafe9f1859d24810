//! The hickory-server `RequestHandler`: protocol checks (opcode, question count, class, EDNS
//! version), then `answer::answer` on the current snapshot (or `forward` for names outside the
//! domain), then size limits, which apply to forwarded answers alike. The stock Catalog
//! is not used: it answers other classes with IN data, drops the DO bit and does not cap EDNS
//! payloads, and its per-answer `Message` clone costs more than the whole answer.

use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use super::answer::{Answer, Transport, Zone, answer, reverse};
use super::forward::Forwarder;
use super::parse::reverse_ip;
use super::region::Regions;
use crate::registry::Registry;

/// DNS's classic limit for UDP answers to clients without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: u16 = 512;
/// Size of an OPT record without options.
const OPT_LEN: usize = 11;

#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
    /// Where names outside the domain go; `None` refuses them.
    forwarder: Option<Arc<Forwarder>>,
}

struct Inner {
    registry: Registry,
    zone: Zone,
    udp_max_payload: u16,
    regions: Regions,
}

impl Handler {
    pub fn new(registry: Registry, zone: Zone, udp_max_payload: u16) -> Handler {
        let inner = Inner {
            registry,
            zone,
            udp_max_payload: udp_max_payload.max(PLAIN_UDP_LIMIT),
            regions: Regions::default(),
        };
        Handler { inner: Arc::new(inner), forwarder: None }
    }

    /// Prefers each client's region in answers (see `region.rs`).
    pub fn with_regions(mut self, regions: Regions) -> Handler {
        Arc::get_mut(&mut self.inner).expect("configured before it is shared").regions = regions;
        self
    }

    /// Forwards names outside the domain through `forwarder` instead of refusing them.
    pub fn with_forwarder(mut self, forwarder: Arc<Forwarder>) -> Handler {
        self.forwarder = Some(forwarder);
        self
    }

    /// A name outside the domain: forwarded for clients in `recursion_allow`, REFUSED otherwise
    /// (and when there is no upstream). Returns the answer and whether it is a recursive one (RA).
    async fn outside(
        &self,
        request: &Request,
        query: &hickory_proto::op::Query,
        transport: Transport,
    ) -> (Answer, bool) {
        let refused = || Answer { rcode: ResponseCode::Refused, ..Answer::default() };
        let forwarding = self.forwarder.as_ref().is_some_and(|f| f.is_enabled());
        if !forwarding && reverse_ip(request.queries.queries()[0].name()).is_some() {
            // A reverse name of an address nobody registered: it does not exist as far as we know.
            return (Answer { rcode: ResponseCode::NXDomain, ..Answer::default() }, false);
        }
        match &self.forwarder {
            Some(f) if f.is_enabled() && f.allows(request.src().ip()) => {
                (f.forward(&query.name, query.query_type, transport).await, true)
            }
            Some(f) if f.is_enabled() => {
                debug!(client = %request.src(), name = %query.name, "client not in recursion_allow; refused");
                (refused(), false)
            }
            _ => (refused(), false),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, handle: R) -> ResponseInfo {
        let started = std::time::Instant::now();
        let info = self.respond(request, handle).await;
        let qtype = request.queries.queries().first().map_or(RecordType::Unknown(0), |q| q.query_type());
        let transport = if request.protocol() == Protocol::Udp { Transport::Udp } else { Transport::Tcp };
        super::metrics::record(qtype, info.response_code, transport, started.elapsed());
        info
    }
}

impl Handler {
    async fn respond<R: ResponseHandler>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let inner = &self.inner;
        let mut meta = Metadata::response_from_request(&request.metadata);
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };

        // The response OPT: our own version 0, the client's DO bit echoed (RFC 3225), and the
        // payload we will actually honour.
        let limit = match (&request.edns, transport) {
            (_, Transport::Tcp) => u16::MAX,
            (Some(e), Transport::Udp) => e.max_payload().clamp(PLAIN_UDP_LIMIT, inner.udp_max_payload),
            (None, Transport::Udp) => PLAIN_UDP_LIMIT,
        };
        let ecs = request.edns.as_ref().and_then(|e| match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(s),
            _ => None,
        });
        let client = inner.regions.of(request.src().ip(), ecs);
        let response_edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(limit.min(inner.udp_max_payload));
            r.set_dnssec_ok(e.flags().dnssec_ok);
            if let (Some(subnet), Some(scope)) = (ecs, client.ecs_scope) {
                // RFC 7871 §7.2.1: echo the family, source prefix and address, with our scope.
                let echo = ClientSubnet::new(subnet.addr(), subnet.source_prefix(), scope);
                r.options_mut().insert(EdnsOption::Subnet(echo));
            }
            r
        });
        let opt_len = response_edns.as_ref().map_or(0, |_| OPT_LEN + ecs.map_or(0, |s| 4 + s.len() as usize));
        let builder = MessageResponseBuilder::new(&request.queries, response_edns.as_ref());

        let refuse_with = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if !matches!(request.queries.queries()[0].query_class(), DNSClass::IN | DNSClass::ANY) {
            Some(ResponseCode::Refused)
        } else {
            None
        };
        if let Some(rcode) = refuse_with {
            debug!(id = meta.id, %rcode, "refusing query");
            let response = builder.error_msg(&request.metadata, rcode);
            return send(&mut handle, response, meta).await;
        }

        let query = request.queries.queries()[0].original();
        let lower = request.queries.queries()[0].name();
        let snapshot = inner.registry.snapshot();
        let (mut ans, recursive) = if inner.zone.lower.zone_of(lower) {
            (answer(&inner.zone, &snapshot, &query.name, query.query_type, transport, client.region), false)
        } else if let Some(ans) =
            // Only names outside the domain can be reverse names of registered addresses.
            reverse_ip(lower)
                .and_then(|ip| reverse(&inner.zone, &snapshot, &query.name, ip, query.query_type))
        {
            (ans, false)
        } else {
            // Awaits the upstream; the server runs every request as its own task, so this holds
            // up no other query (and no lock is held across it).
            self.outside(request, query, transport).await
        };
        debug!(name = %query.name, qtype = %query.query_type, rcode = %ans.rcode, answers = ans.answers.len(), "query");

        meta.response_code = ans.rcode;
        meta.authoritative = ans.authoritative;
        meta.recursion_available = recursive;
        let room = usize::from(limit) - opt_len;
        if let Some(fit) = answers_that_fit(query, &ans, room) {
            // Whole records only, and the client must come back over TCP for the rest.
            ans.answers.truncate(fit);
            ans.authorities.clear();
            ans.additionals.clear();
            meta.truncation = true;
        }
        let response =
            builder.build(meta, ans.answers.iter(), ans.authorities.iter(), std::iter::empty(), ans.additionals.iter());
        send(&mut handle, response, meta).await
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    meta: Metadata,
) -> ResponseInfo {
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            warn!(%error, "failed to send DNS response");
            let mut meta = meta;
            meta.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header { metadata: meta, counts: HeaderCounts::default() })
        }
    }
}

/// `None` if the whole answer fits in `room` bytes; otherwise how many answer records fit.
/// Encodes exactly as the response will be (question first, names compressed), so the count is
/// right rather than a guess.
fn answers_that_fit(query: &hickory_proto::op::Query, ans: &Answer, room: usize) -> Option<usize> {
    // Small answers cannot overflow even uncompressed; skip the trial encoding for them.
    let rough: usize = 12
        + query.name.len()
        + 6
        + [&ans.answers, &ans.authorities, &ans.additionals]
            .iter()
            .flat_map(|s| s.iter())
            .map(|r| r.name.len() + 12 + rdata_upper_bound(r))
            .sum::<usize>();
    if rough <= room {
        return None;
    }
    let mut buf = Vec::with_capacity(room);
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_max_size(room.min(usize::from(u16::MAX)) as u16);
    if enc.emit_vec(&[0; 12]).is_err() || query.emit(&mut enc).is_err() {
        return Some(0);
    }
    let mut written = 0;
    for r in &ans.answers {
        if r.emit(&mut enc).is_err() {
            return Some(written);
        }
        written += 1;
    }
    for r in ans.authorities.iter().chain(&ans.additionals) {
        if r.emit(&mut enc).is_err() {
            return Some(written);
        }
    }
    None
}

/// A generous bound on a record's data size, used only to skip exact encoding when obviously
/// unnecessary.
fn rdata_upper_bound(r: &Record) -> usize {
    use hickory_proto::rr::RData;
    match &r.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::SRV(s) => 6 + s.target.len() + 2,
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum(),
        RData::SOA(s) => s.mname.len() + s.rname.len() + 24,
        RData::NS(n) => n.0.len() + 2,
        _ => 512,
    }
}
