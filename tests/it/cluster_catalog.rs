//! Cluster mode and the catalog's second half: external nodes, their checks and this server's
//! node checks written through one replica answer through another's DNS, and every replica is a
//! member and a peer of the others.

use std::collections::BTreeSet;

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::etcd::Etcd;
use crate::support::*;

async fn replica(etcd: &Etcd) -> TestServer {
    server().config(&format!("[store]\nurl = \"{}\"\n", etcd.url())).start().await
}

async fn put(s: &TestServer, path: &str, body: Value) {
    let r = http_client().put(s.url(path)).body(body.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
}

async fn get(s: &TestServer, path: &str) -> Value {
    http_client().get(s.url(path)).send().await.unwrap().json().await.unwrap()
}

async fn a(s: &TestServer, name: &str) -> Vec<String> {
    addresses(&query(s.dns, Transport::Udp, &Ask::new(name, RecordType::A)).await)
}

#[tokio::test]
async fn external_nodes_and_node_checks_reach_every_replica_and_replicas_are_members() {
    let etcd = Etcd::start(3).await;
    let (one, two) = (replica(&etcd).await, replica(&etcd).await);
    let esm = |status: &str| {
        json!({"Node": "db-host", "Address": "10.20.0.5", "Service": {"Service": "pg", "ID": "pg-1"},
               "Check": {"CheckID": "externalNodeHealth", "Status": status}})
    };
    put(&one, "/v1/catalog/register", esm("passing")).await;
    wait_for("the other replica answers the external service", || async {
        a(&two, "pg.service.local.").await == ["10.20.0.5"] && a(&two, "db-host.node.local.").await == ["10.20.0.5"]
    })
    .await;
    put(&two, "/v1/catalog/register", esm("critical")).await;
    wait_for("the node check's status reaching the first replica", || async {
        a(&one, "pg.service.local.").await.is_empty()
    })
    .await;

    // This server's node is the replicas' shared one: a node check written through one gates
    // the instances both answer.
    put(&one, "/v1/agent/service/register", json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1"})).await;
    wait_for("web on two", || async { a(&two, "web.service.local.").await == ["10.0.0.1"] }).await;
    put(&two, "/v1/agent/check/register", json!({"Name": "disk", "TTL": "1h"})).await;
    wait_for("the node check gating web on one", || async { a(&one, "web.service.local.").await.is_empty() }).await;
    let pass = http_client().put(one.url("/v1/agent/check/pass/disk")).send().await.unwrap();
    assert_eq!(pass.status(), 200);
    wait_for("web back on two", || async { a(&two, "web.service.local.").await == ["10.0.0.1"] }).await;

    // Members and peers: each replica lists both, itself first, at their HTTP addresses.
    let addrs = |s: &TestServer| s.api.trim_start_matches("http://").to_string();
    let both: BTreeSet<String> = [addrs(&one), addrs(&two)].into();
    for s in [&one, &two] {
        wait_for("both replicas listed", || async {
            let peers = get(s, "/v1/status/peers").await;
            let peers: BTreeSet<String> =
                peers.as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
            peers == both
        })
        .await;
        assert_eq!(get(s, "/v1/status/peers").await[0], addrs(s), "this server first");
        let members = get(s, "/v1/agent/members").await;
        let at: BTreeSet<String> = members
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("{}:{}", m["Addr"].as_str().unwrap(), m["Port"]))
            .collect();
        assert_eq!(at, both);
    }

    put(&two, "/v1/catalog/deregister", json!({"Node": "db-host"})).await;
    wait_for("the node gone on one", || async {
        query(one.dns, Transport::Udp, &Ask::new("db-host.node.local.", RecordType::A)).await.metadata.response_code
            == hickory_proto::op::ResponseCode::NXDomain
    })
    .await;
}
