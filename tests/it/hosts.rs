//! Host-name addresses: an instance registered as `Address: "db.example.internal"` is answered
//! with what an upstream resolver (a small hickory server started here, whose records the test
//! changes) says the name is, re-resolved at the records' TTL.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use serde_json::{Value, json};
use tokio::net::{TcpListener, UdpSocket};

use crate::support::*;

/// Host name (lowercase, absolute) → its addresses and their TTL.
type Zone = Arc<Mutex<HashMap<String, (Vec<IpAddr>, u32)>>>;

/// An upstream whose records the test sets, counting questions per name.
#[derive(Clone, Default)]
struct Upstream {
    zone: Zone,
    asked: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> (Upstream, SocketAddr) {
        let up = Upstream::default();
        let (udp, tcp, addr) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp, addr);
            }
        };
        let mut server = Server::new(up.clone());
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10), 16);
        tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        (up, addr)
    }

    fn set(&self, name: &str, addrs: &[&str], ttl: u32) {
        let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        self.zone.lock().unwrap().insert(name.to_string(), (addrs, ttl));
    }

    fn asked(&self, name: &str) -> usize {
        self.asked.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Upstream {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let query = request.queries.queries()[0].original().clone();
        let name = query.name.to_lowercase().to_ascii();
        *self.asked.lock().unwrap().entry(name.clone()).or_default() += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let found = self.zone.lock().unwrap().get(&name).cloned();
        let answers: Vec<Record> = match &found {
            None => {
                meta.response_code = ResponseCode::NXDomain;
                vec![]
            }
            Some((addrs, ttl)) => addrs
                .iter()
                .filter_map(|ip| match (ip, query.query_type) {
                    (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                    (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .map(|data| Record::from_rdata(query.name.clone(), *ttl, data))
                .collect(),
        };
        let response = MessageResponseBuilder::new(&request.queries, None).build(
            meta,
            answers.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header { metadata: meta, counts: HeaderCounts::default() }),
        }
    }
}

async fn register(s: &TestServer, body: Value) {
    let r = http_client().put(s.url("/v1/agent/service/register")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn answer(s: &TestServer, name: &str, qtype: RecordType) -> Vec<String> {
    let mut got = addresses(&s.udp(name, qtype).await);
    got.sort();
    got
}

#[tokio::test]
async fn a_host_name_address_answers_with_what_the_upstream_resolves() {
    let (up, addr) = Upstream::start().await;
    up.set("db.example.internal.", &["192.0.2.1", "2001:db8::1"], 300);
    let s = server().config(&format!("[dns]\nupstreams = [\"{addr}\"]\n")).start().await;
    register(&s, json!({"Name": "db", "ID": "db-1", "Address": "db.example.internal", "Port": 5432})).await;
    register(&s, json!({"Name": "db", "ID": "db-2", "Address": "10.0.0.2", "Port": 5432})).await;

    wait_for("the host name resolved", || async {
        answer(&s, "db.service.local.", RecordType::A).await == ["10.0.0.2", "192.0.2.1"]
    })
    .await;
    assert_eq!(answer(&s, "db.service.local.", RecordType::AAAA).await, ["2001:db8::1"]);
    assert_eq!(answer(&s, "db-1.instance.local.", RecordType::A).await, ["192.0.2.1"]);
    assert_eq!(answer(&s, "db-1.instance.local.", RecordType::AAAA).await, ["2001:db8::1"]);

    // SRV names the instance; the glue carries the resolved addresses.
    for t in [Transport::Udp, Transport::Tcp] {
        let m = query(s.dns, t, &Ask::new("db.service.local.", RecordType::SRV)).await;
        let mut srv = lines(&m.answers);
        srv.sort();
        assert_eq!(
            srv,
            [
                "db.service.local. 5 IN SRV 1 1 5432 db-1.instance.local.",
                "db.service.local. 5 IN SRV 1 1 5432 db-2.instance.local."
            ],
            "{t:?}"
        );
        let mut glue = lines(&m.additionals);
        glue.sort();
        assert_eq!(
            glue,
            [
                "db-1.instance.local. 5 IN A 192.0.2.1",
                "db-1.instance.local. 5 IN AAAA 2001:db8::1",
                "db-2.instance.local. 5 IN A 10.0.0.2"
            ],
            "{t:?}"
        );
    }

    // The API shows the name as registered.
    let catalog: Value = http_client().get(s.url("/v1/catalog/service/db")).send().await.unwrap().json().await.unwrap();
    assert_eq!(catalog[0]["ServiceAddress"], "db.example.internal");

    // With a TTL of 300 s, the name is not asked again meanwhile.
    let asked = up.asked("db.example.internal.");
    assert_eq!(asked, 2, "one A and one AAAA question");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(up.asked("db.example.internal."), asked, "nothing asked before the TTL runs out");
}

#[tokio::test]
async fn a_host_name_is_re_resolved_at_its_ttl_and_forgotten_with_its_instance() {
    let (up, addr) = Upstream::start().await;
    up.set("api.example.internal.", &["192.0.2.10"], 1);
    let s = server().config(&format!("[dns]\nupstreams = [\"{addr}\"]\n")).start().await;
    register(&s, json!({"Name": "api", "ID": "api-1", "Address": "API.example.internal.", "Port": 80})).await;
    wait_for("the first resolution", || async {
        answer(&s, "api.service.local.", RecordType::A).await == ["192.0.2.10"]
    })
    .await;

    // The upstream moves the name: signpost follows within the TTL (1 s), plus a lookup.
    up.set("api.example.internal.", &["192.0.2.11", "192.0.2.12"], 1);
    let took = wait_for("the re-resolution", || async {
        answer(&s, "api.service.local.", RecordType::A).await == ["192.0.2.11", "192.0.2.12"]
    })
    .await;
    assert!(took < Duration::from_millis(2500), "re-resolved at the TTL: {took:?}");

    // A name that stops existing answers nothing (NODATA: the instance is still registered).
    up.zone.lock().unwrap().remove("api.example.internal.");
    wait_for("the name gone upstream", || async {
        let m = s.udp("api.service.local.", RecordType::A).await;
        m.metadata.response_code == ResponseCode::NoError && m.answers.is_empty()
    })
    .await;

    // Deregistered, the name is no longer asked.
    let r = http_client().put(s.url("/v1/agent/service/deregister/api-1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = up.asked("api.example.internal.");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(up.asked("api.example.internal."), before, "no questions about a name nobody uses");
}

#[tokio::test]
async fn an_external_node_named_by_a_host_name_answers_with_what_it_resolves_to() {
    let (up, addr) = Upstream::start().await;
    up.set("ext.example.internal.", &["192.0.2.9"], 300);
    let s = server().config(&format!("[dns]\nupstreams = [\"{addr}\"]\n")).start().await;
    let body = json!({"Node": "ext", "Address": "ext.example.internal"});
    let r = http_client().put(s.url("/v1/catalog/register")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_for("the node's host name resolved", || async {
        answer(&s, "ext.node.local.", RecordType::A).await == ["192.0.2.9"]
    })
    .await;
    let r = http_client().put(s.url("/v1/catalog/deregister")).json(&json!({"Node": "ext"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.udp("ext.node.local.", RecordType::A).await.metadata.response_code, ResponseCode::NXDomain);
}
