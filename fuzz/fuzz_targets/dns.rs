//! The DNS request path from raw bytes to the encoded answer: the UDP fast path, the full
//! handler as the UDP server calls it, and the same bytes as a TCP byte stream through the TCP
//! server's connection loop (framing, pipelining). Properties: no panic; every answer parses,
//! is a response, carries the query's id and fits the transport's size.
#![no_main]

use std::net::SocketAddr;

use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use signpost::dns::{Answerers, Client, Reply, TcpLimits, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "world.rs"]
mod world;

fn check(query: &[u8], answer: &[u8], max: usize) {
    assert!(answer.len() <= max, "answer of {} bytes over {max}", answer.len());
    let m = Message::from_vec(answer).expect("every answer parses");
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.id.to_be_bytes(), query[..2], "the answer carries the query's id");
}

fuzz_target!(|data: &[u8]| {
    let w = world::world();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut out = Vec::with_capacity(1232);
    let client = Client { ip: src.ip(), transport: Transport::Udp };
    if w.fast.load().as_ref().unwrap().answer(data, client, &mut out).is_some() {
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
        let answerers = Answerers { fast: w.fast.clone(), handler: w.handler.clone() };
        let served = tokio::spawn(signpost::dns::serve_stream(server, src, answerers, limits));
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
