//! The OPT record's options, as both paths read them (`dns/edns.rs`): arbitrary option data in
//! the OPT of an otherwise ordinary query, from a client of some region. Properties: no panic;
//! both answers parse; when the fast path answers, the full handler gives the same code and
//! records, and malformed options are FORMERR on the full path and never answered fast.
#![no_main]

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use signpost::dns::{Client, Reply, Transport};

#[path = "world.rs"]
mod world;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, options)) = data.split_first() else { return };
    let names = [
        "web.service.local.",
        "v1.web.service.local.",
        "_web._tcp.service.local.",
        "db.service.local.",
        "web-1._web._tcp.service.local.",
        "_v1._sub._web._tcp.service.local.",
    ];
    let qtypes = [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::TXT, RecordType::PTR];
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(names[usize::from(selector) % names.len()]).unwrap();
    m.add_query(Query::query(name, qtypes[usize::from(selector >> 2) % qtypes.len()]));
    m.edns = Some(Edns::new());
    let mut query = m.to_vec().unwrap();
    if options.len() > 4000 {
        return;
    }
    let len = query.len();
    query[len - 2..].copy_from_slice(&(options.len() as u16).to_be_bytes());
    query.extend_from_slice(options);

    let w = world::world();
    let from = if selector & 0x80 != 0 { "10.8.1.1:53" } else { "127.0.0.1:53" };
    let src: SocketAddr = from.parse().unwrap();
    let client = Client { ip: src.ip(), transport: Transport::Udp };
    let mut out = Vec::new();
    let fast = w.fast.load().as_ref().unwrap().answer(&query, client, &mut out).map(|_| out.clone());
    let full = w.rt.block_on(w.handler.answer(&query, src, Transport::Udp));
    let Some(Reply::Message(full)) = full else { panic!("the full handler answers a query with one message") };
    let full = Message::from_vec(&full).expect("the full answer parses");
    if let Some(fast) = fast {
        let fast = Message::from_vec(&fast).expect("the fast answer parses");
        assert_eq!(fast.metadata.response_code, full.metadata.response_code);
        assert_eq!(fast.answers.len(), full.answers.len());
        assert_eq!(fast.additionals.len(), full.additionals.len());
        assert_ne!(fast.metadata.response_code, ResponseCode::FormErr);
    }
});
