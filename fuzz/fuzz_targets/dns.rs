//! The DNS request path from raw bytes to the encoded answer: the UDP fast path, the full
//! handler as the UDP server calls it, and the same bytes as a TCP byte stream through the TCP
//! server's connection loop (framing, pipelining). Properties: no panic; every answer parses,
//! is a response, carries the query's id and fits the transport's size.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use signpost::dns::{FastTable, Handler, Reply, TcpLimits, Transport, Zone};
use signpost::registry::{Change, Defaults, Registry, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
meta = { version = "1" }

[[service.instance]]
id = "web-2"
address = "2001:db8::2"
port = 81
weight = 3

[[service]]
name = "db"
answer_limit = 1

[[service.instance]]
id = "db-1"
address = "10.1.0.1"
port = 5432
"#;

struct World {
    rt: tokio::runtime::Runtime,
    handler: Handler,
    fast: FastTable,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut state = State::new();
        let file = signpost::zones::parse(Path::new("z.toml"), ZONE).unwrap();
        state.apply(Change::ZoneFile(file)).unwrap();
        let zone =
            Zone::new(hickory_proto::rr::Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1);
        let (registry, _writer) = rt.block_on(async {
            Registry::start(
                state,
                Defaults::default(),
                Box::new(signpost::store::NoStore),
                Box::new(|_| {}),
                tokio_util::sync::CancellationToken::new(),
            )
        });
        let fast = FastTable::build(registry.snapshot(), &zone, false, 1232);
        let handler = Handler::new(registry, zone, 1232);
        World { rt, handler, fast }
    })
}

fn check(query: &[u8], answer: &[u8], max: usize) {
    assert!(answer.len() <= max, "answer of {} bytes over {max}", answer.len());
    let m = Message::from_vec(answer).expect("every answer parses");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.id.to_be_bytes(), query[..2], "the answer carries the query's id");
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut out = Vec::with_capacity(1232);
    if w.fast.answer(data, &mut out).is_some() {
        check(data, &out, 1232);
    }
    w.rt.block_on(async {
        match w.handler.answer(data, src, Transport::Udp).await {
            Some(Reply::Message(answer)) => check(data, &answer, 1232),
            Some(Reply::Transfer(_)) => panic!("a transfer over UDP"),
            None => {}
        }
        // The same bytes as what a TCP client sends, then it closes its side.
        let (mut client, server) = tokio::io::duplex(1 << 17);
        let limits = TcpLimits { pipeline: 4, ..TcpLimits::default() };
        let served = tokio::spawn(signpost::dns::serve_stream(server, src, w.handler.clone(), limits));
        client.write_all(data).await.unwrap();
        client.shutdown().await.unwrap();
        let mut stream = Vec::new();
        client.read_to_end(&mut stream).await.unwrap();
        served.await.unwrap();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let answer = &rest[2..2 + len];
            let m = Message::from_vec(answer).expect("every TCP answer parses");
            assert_eq!(m.metadata.message_type, MessageType::Response);
            rest = &rest[2 + len..];
        }
    });
});
