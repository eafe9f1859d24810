//! py-consul and node-consul with their own calls for the catalog's second half: checks
//! registered on their own (`agent.check.register`, `agent.check.deregister`), an external node
//! (`catalog.register`, `catalog.deregister`), the node reads (`catalog.nodes`, `catalog.node`,
//! `health.node`, `health.checks`, `catalog.datacenters`, `agent.members`, `status.peers`) and
//! a blocking read, each step checked against DNS before the session goes on.

use hickory_proto::op::ResponseCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::api::put;
use crate::clients::{Session, a, installed, script, target};
use crate::support::*;

/// The session both scripts run; `p` prefixes names, `net` is the scripts' `10.N` network.
async fn catalog_session(s: &TestServer, mut session: Session, p: &str, net: &str) {
    let svc = format!("{p}-svc.service.local.");
    let (db, ext_node) = (format!("{p}-db.service.local."), format!("{p}-ext.node.local."));
    let (local_ip, ext_ip) = (format!("{net}.1.1"), format!("{net}.2.1"));

    assert_eq!(session.expect("check_register").await["result"], true);
    assert_eq!(a(s, &svc).await, (ResponseCode::NoError, vec![]), "a check of its own gates the instance");
    session.next().await;
    assert_eq!(session.expect("check_pass").await["result"], true);
    assert_eq!(a(s, &svc).await.1, [local_ip.as_str()]);
    session.next().await;

    assert_eq!(session.expect("node_check").await["result"], true);
    assert_eq!(a(s, &svc).await.1, Vec::<String>::new(), "a node check gates every instance here");
    session.next().await;
    assert_eq!(session.expect("node_pass").await["result"], true);
    assert_eq!(a(s, &svc).await.1, [local_ip.as_str()]);
    session.next().await;

    let v = session.expect("agent_checks").await;
    let own = format!("{p}-alive");
    assert_eq!(v["checks"], json!({format!("{p}-disk"): ["passing", ""], own: ["passing", format!("{p}-svc-1")]}));
    session.next().await;

    assert_eq!(session.expect("catalog_register").await["result"], json!([true, true]));
    assert_eq!(a(s, &ext_node).await.1, [ext_ip.as_str()]);
    // The node's probed check (its Definition) gates the service until its first result, and
    // settles before the blocking read starts.
    wait_for("the catalog's HTTP check passing", || async {
        let checks = http_client().get(s.url(&format!("/v1/health/node/{p}-ext"))).send().await.unwrap();
        let checks: Value = checks.json().await.unwrap();
        checks.as_array().unwrap().iter().any(|c| c["CheckID"] == "http" && c["Status"] == "passing")
    })
    .await;
    assert_eq!(a(s, &db).await.1, [ext_ip.as_str()], "an external service answers like any other");
    session.next().await;

    // The script waits on catalog.nodes past this index; a new node answers it.
    let index = session.expect("block").await["index"].as_u64().unwrap();
    let late = json!({"Node": format!("{p}-late"), "Address": format!("{net}.3.1")});
    let added = put(s, "/v1/catalog/register", Some(late)).await;
    assert_eq!(added.status, 200, "{}", added.text);
    let v = session.expect("blocked").await;
    assert_eq!(v["later"], true, "after index {index}");
    assert!(v["nodes"].as_array().unwrap().contains(&json!(format!("{p}-late"))), "{v}");
    session.next().await;

    let v = session.expect("reads").await;
    let me = s.api.trim_start_matches("http://");
    let this: Value = http_client().get(s.url("/v1/agent/self")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["node"], json!([format!("{p}-ext"), ext_ip, [format!("{p}-db-1")]]));
    assert_eq!(
        v["health_node"],
        json!([["http", "passing", ""], ["service:db", "passing", format!("{p}-db-1")]]),
        "the node's checks and its service's, with the ids they were registered with"
    );
    assert_eq!(v["db_checks"], json!(["service:db"]));
    assert_eq!(v["datacenters"], json!([this["Config"]["Datacenter"]]));
    let port: u16 = me.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(v["members"], json!([[this["Config"]["NodeName"], "127.0.0.1", port]]));
    assert_eq!(v["peers"], json!([me]));
    session.next().await;

    assert_eq!(session.expect("external_critical").await["result"], true);
    assert_eq!(a(s, &db).await, (ResponseCode::NoError, vec![]), "its check failing takes it out of DNS");
    session.next().await;

    let v = session.expect("deregister").await;
    assert_eq!(v["result"], json!([true, true, true, true]));
    assert_eq!(v["nodes"], 2, "this server and the late node are left");
    assert_eq!(v["checks"], json!([]));
    assert_eq!(a(s, &db).await.0, ResponseCode::NXDomain);
    assert_eq!(a(s, &ext_node).await.0, ResponseCode::NXDomain);
    assert_eq!(a(s, &svc).await.1, [local_ip.as_str()]);
    session.next().await;
    session.finish().await;
}

#[tokio::test]
async fn py_consul_registers_checks_and_external_nodes_and_reads_them_back() {
    let lib = installed("python");
    let s = server().start().await;
    let mut cmd = Command::new("python3");
    cmd.arg(script("py_catalog.py")).arg(s.api.trim_start_matches("http://")).arg(target().await);
    cmd.env("PYTHONPATH", lib).env("PYTHONDONTWRITEBYTECODE", "1");
    catalog_session(&s, Session::start("py-consul", cmd), "py", "10.3").await;
}

#[tokio::test]
async fn node_consul_registers_checks_and_external_nodes_and_reads_them_back() {
    let lib = installed("node/node_modules");
    let s = server().start().await;
    let mut cmd = Command::new("node");
    cmd.arg(script("node_catalog.js")).arg(s.api.trim_start_matches("http://")).arg(target().await);
    cmd.env("NODE_PATH", lib);
    catalog_session(&s, Session::start("node-consul", cmd), "node", "10.4").await;
}
