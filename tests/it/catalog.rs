//! Consul's catalog beyond one agent's services, over real HTTP and dig: checks registered on
//! their own (on an instance, or on this server's node, gating every instance here), external
//! nodes and their services (`PUT /v1/catalog/register`, as consul-esm sends them) answering in
//! DNS as their checks say, the node reads, blocking reads on them, bad input refused whole,
//! restarts, scoped tokens and the areas signpost leaves out.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{Answer, ONE_BLOCKING, get, held, ok_put, put, register, still_held, web};
use crate::dig::dig;
use crate::health::Target;
use crate::support::*;

/// PUTs `body` to `path` and insists on Consul's success answer: 200, empty body.
async fn ok(s: &TestServer, path: &str, body: Value) {
    let a = put(s, path, Some(body.clone())).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""), "PUT {path} {body}");
}

/// `dig +short NAME TYPE`, one line per record, sorted.
async fn short(s: &TestServer, name: &str, qtype: &str) -> Vec<String> {
    let mut lines: Vec<String> = dig(s, &["+short", name, qtype]).await.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

async fn status(s: &TestServer, name: &str) -> String {
    let out = dig(s, &[name, "A"]).await;
    let at = out.find("status: ").expect("dig prints the status") + 8;
    out[at..].split(',').next().unwrap().to_string()
}

/// consul-esm's registration of an external node with one service: the node's own health
/// check and the service's, as statuses it keeps current itself.
fn esm(node_status: &str, service_status: &str) -> Value {
    json!({
        "Node": "db-host", "Address": "10.20.0.5", "NodeMeta": {"external-node": "true", "external-probe": "true"},
        "Service": {"ID": "pg-1", "Service": "postgres", "Port": 5432, "Tags": ["primary"], "Meta": {"version": "16"}},
        "Checks": [
            {"Node": "db-host", "CheckID": "externalNodeHealth", "Name": "External Node Status", "Status": node_status,
             "Output": "ping"},
            {"Node": "db-host", "CheckID": "service:pg-1", "Name": "pg", "Status": service_status, "ServiceID": "pg-1"}
        ]
    })
}

#[tokio::test]
async fn external_services_answer_in_dns_as_their_checks_and_their_nodes_checks_say() {
    let s = server().start().await;
    ok(&s, "/v1/catalog/register", esm("passing", "passing")).await;
    assert_eq!(short(&s, "postgres.service.local", "A").await, ["10.20.0.5"], "Service.Address defaults to the node's");
    assert_eq!(short(&s, "postgres.service.local", "SRV").await, ["1 1 5432 pg-1.instance.local."]);
    assert_eq!(short(&s, "db-host.node.local", "A").await, ["10.20.0.5"]);
    assert_eq!(short(&s, "DB-Host.node.local", "A").await, ["10.20.0.5"], "node names match case-insensitively");
    assert_eq!(status(&s, "db-host.node.local").await, "NOERROR");
    assert_eq!(status(&s, "nope.node.local").await, "NXDOMAIN");
    assert_eq!(status(&s, "node.local").await, "NOERROR", "node.D is an empty non-terminal (RFC 8020)");

    // The service's check fails: its instance leaves the answers, the node stays.
    ok(&s, "/v1/catalog/register", esm("passing", "critical")).await;
    assert_eq!(short(&s, "postgres.service.local", "A").await, Vec::<String>::new());
    assert_eq!(status(&s, "postgres.service.local").await, "NOERROR", "registered, not healthy: NODATA");
    ok(&s, "/v1/catalog/register", esm("passing", "warning")).await;
    assert_eq!(short(&s, "postgres.service.local", "A").await, ["10.20.0.5"], "warning still answers");
    // The node's check fails: every instance on it goes, whatever its own checks say.
    ok(&s, "/v1/catalog/register", esm("critical", "passing")).await;
    assert_eq!(short(&s, "postgres.service.local", "A").await, Vec::<String>::new());
    let health = get(&s, "/v1/health/service/postgres").await.json();
    assert_eq!(health[0]["Node"]["Node"], "db-host");
    assert_eq!(health[0]["Node"]["Meta"]["external-node"], "true");
    let checks: Vec<(&str, &str, &str)> = health[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["CheckID"].as_str().unwrap(), c["Status"].as_str().unwrap(), c["ServiceID"].as_str().unwrap()))
        .collect();
    assert_eq!(checks, [("externalNodeHealth", "critical", ""), ("service:pg-1", "passing", "pg-1")]);
    assert_eq!(get(&s, "/v1/health/service/postgres?passing").await.json(), json!([]));
    ok(&s, "/v1/catalog/register", esm("passing", "passing")).await;
    assert_eq!(short(&s, "postgres.service.local", "A").await, ["10.20.0.5"]);

    // The catalog shows the node; the agent's own lists do not show what is not the agent's.
    let catalog = get(&s, "/v1/catalog/service/postgres").await.json();
    assert_eq!((&catalog[0]["Node"], &catalog[0]["Address"]), (&json!("db-host"), &json!("10.20.0.5")));
    assert_eq!(catalog[0]["NodeMeta"]["external-probe"], "true");
    assert_eq!(get(&s, "/v1/agent/services").await.json(), json!({}));
    assert_eq!(get(&s, "/v1/agent/checks").await.json(), json!({}));

    // A check with a definition is probed by signpost, with no monitor needed.
    let target = Target::start(200).await;
    let probed = json!({"Node": "db-host", "Address": "10.20.0.5", "SkipNodeUpdate": true,
        "Check": {"CheckID": "pg-http", "Name": "pg over http", "ServiceID": "pg-1",
                  "Definition": {"HTTP": format!("http://{}/health", target.addr), "Interval": "100ms", "Timeout": "1s"}}});
    ok(&s, "/v1/catalog/register", probed).await;
    wait_for("the catalog check's first probe", || async {
        get(&s, "/v1/health/checks/postgres")
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["CheckID"] == "pg-http" && c["Status"] == "passing" && c["Type"] == "http")
    })
    .await;
    target.set(500);
    wait_for("the probed check failing", || async { short(&s, "postgres.service.local", "A").await.is_empty() }).await;
    target.set(200);
    wait_for("the probed check passing", || async { !short(&s, "postgres.service.local", "A").await.is_empty() }).await;

    // Deregistering a check, the service, then the node.
    ok(&s, "/v1/catalog/deregister", json!({"Node": "db-host", "CheckID": "pg-http"})).await;
    ok(&s, "/v1/catalog/deregister", json!({"Node": "db-host", "ServiceID": "pg-1"})).await;
    assert_eq!(status(&s, "postgres.service.local").await, "NXDOMAIN");
    assert_eq!(short(&s, "db-host.node.local", "A").await, ["10.20.0.5"], "the node stays");
    ok(&s, "/v1/catalog/deregister", json!({"Node": "db-host"})).await;
    assert_eq!(status(&s, "db-host.node.local").await, "NXDOMAIN");
    let a = put(&s, "/v1/catalog/deregister", Some(json!({"Node": "db-host"}))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
}

#[tokio::test]
async fn a_node_goes_with_everything_on_it_and_ipv6_nodes_answer_aaaa() {
    let s = server().start().await;
    let node = |id: &str| json!({"Node": "v6-host", "Address": "2001:db8::7", "Service": {"Service": "cache", "ID": id, "Port": 6379}});
    ok(&s, "/v1/catalog/register", node("cache-1")).await;
    ok(&s, "/v1/catalog/register", node("cache-2")).await;
    assert_eq!(short(&s, "v6-host.node.local", "AAAA").await, ["2001:db8::7"]);
    assert_eq!(dig(&s, &["+short", "v6-host.node.local", "A"]).await, "", "no A for an IPv6 node");
    assert_eq!(dig(&s, &["+short", "+tcp", "v6-host.node.local", "AAAA"]).await.trim(), "2001:db8::7");
    let node = get(&s, "/v1/catalog/node/v6-host").await.json();
    assert_eq!(node["Node"]["Address"], "2001:db8::7");
    assert_eq!(node["Services"].as_object().unwrap().keys().collect::<Vec<_>>(), ["cache-1", "cache-2"]);
    ok(&s, "/v1/catalog/deregister", json!({"Node": "v6-host"})).await;
    assert_eq!(status(&s, "cache.service.local").await, "NXDOMAIN");
    assert_eq!(get(&s, "/v1/catalog/node/v6-host").await.json(), Value::Null, "Consul's answer for no such node");
}

#[tokio::test]
async fn agent_checks_bind_to_an_instance_or_gate_every_instance_of_this_server() {
    let zone =
        "[[service]]\nname = \"files\"\n[[service.instance]]\nid = \"files-1\"\naddress = \"10.5.0.1\"\nport = 80\n";
    let s = server().zone("files.toml", zone).start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    ok(&s, "/v1/catalog/register", json!({"Node": "far", "Address": "10.30.0.1", "Service": {"Service": "far"}})).await;

    // On an instance: it gates that instance alone.
    ok(
        &s,
        "/v1/agent/check/register",
        json!({"Name": "web alive", "CheckID": "web-alive", "ServiceID": "web-1", "TTL": "1h"}),
    )
    .await;
    assert_eq!(short(&s, "web.service.local", "A").await, Vec::<String>::new(), "a new TTL check starts critical");
    ok(&s, "/v1/agent/check/update/web-alive", json!({"Status": "passing", "Output": "fine"})).await;
    assert_eq!(short(&s, "web.service.local", "A").await, ["10.0.0.1"]);
    let checks = get(&s, "/v1/health/checks/web").await.json();
    let mine = checks.as_array().unwrap().iter().find(|c| c["CheckID"] == "web-alive").expect("listed");
    assert_eq!((&mine["Output"], &mine["ServiceID"], &mine["Type"]), (&json!("fine"), &json!("web-1"), &json!("ttl")));

    // On this server's node: every instance here (API and zone file) follows it; external
    // nodes do not.
    ok(&s, "/v1/agent/check/register", json!({"Name": "disk", "TTL": "1h", "Notes": "df"})).await;
    for name in ["web.service.local", "files.service.local"] {
        assert_eq!(short(&s, name, "A").await, Vec::<String>::new(), "{name} is gated by the node check");
    }
    assert_eq!(short(&s, "far.service.local", "A").await, ["10.30.0.1"]);
    ok_put(&s, "/v1/agent/check/pass/disk").await;
    assert_eq!(short(&s, "web.service.local", "A").await, ["10.0.0.1"]);
    assert_eq!(short(&s, "files.service.local", "A").await, ["10.5.0.1"]);

    let agent = get(&s, "/v1/agent/checks").await.json();
    assert_eq!(agent.as_object().unwrap().keys().collect::<Vec<_>>(), ["disk", "web-alive"]);
    assert_eq!((&agent["disk"]["ServiceID"], &agent["disk"]["Status"]), (&json!(""), &json!("passing")));
    let node = get(&s, "/v1/agent/self").await.json()["Config"]["NodeName"].as_str().unwrap().to_string();
    let on_node = get(&s, &format!("/v1/health/node/{node}")).await.json();
    let ids: Vec<&str> = on_node.as_array().unwrap().iter().map(|c| c["CheckID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["disk", "web-alive"]);

    // Re-registering the same check keeps its state; deregistering lets the instances go free.
    ok(&s, "/v1/agent/check/register", json!({"Name": "disk", "TTL": "1h", "Notes": "df"})).await;
    assert_eq!(get(&s, "/v1/agent/checks").await.json()["disk"]["Status"], "passing");
    ok_put(&s, "/v1/agent/check/fail/disk").await;
    assert_eq!(short(&s, "files.service.local", "A").await, Vec::<String>::new());
    ok_put(&s, "/v1/agent/check/deregister/disk").await;
    assert_eq!(short(&s, "files.service.local", "A").await, ["10.5.0.1"]);
    assert_eq!(put(&s, "/v1/agent/check/deregister/disk", None).await.status, StatusCode::NOT_FOUND);
    let a = put(&s, "/v1/agent/check/register", Some(json!({"Name": "x", "ServiceID": "files-1", "TTL": "1h"}))).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "a zone file's instance is its file's: {}", a.text);
    assert!(a.text.contains("files.toml"), "{}", a.text);
}

#[tokio::test]
async fn every_bad_field_is_a_400_naming_it_and_changes_nothing() {
    let s = server().start().await;
    let with_check =
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Check": {"TTL": "1h", "Status": "passing"}});
    register(&s, with_check).await;
    ok(&s, "/v1/catalog/register", json!({"Node": "n1", "Address": "10.0.0.9", "Service": {"Service": "db"}})).await;
    let local = get(&s, "/v1/agent/self").await.json()["Config"]["NodeName"].as_str().unwrap().to_string();
    let before = (get(&s, "/v1/catalog/nodes").await, get(&s, "/v1/agent/checks").await);
    let huge = "x".repeat(70 * 1024);
    // (path, body, status, what the answer names)
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        ("/v1/agent/check/register", json!({"TTL": "10s"}), StatusCode::BAD_REQUEST, "Name: required"),
        (
            "/v1/agent/check/register",
            json!({"Name": "c"}),
            StatusCode::BAD_REQUEST,
            "HTTP, TCP, TTL: needs exactly one",
        ),
        ("/v1/agent/check/register", json!({"Name": "c", "TTL": "soon"}), StatusCode::BAD_REQUEST, "TTL:"),
        (
            "/v1/agent/check/register",
            json!({"Name": "c", "HTTP": "http://x/"}),
            StatusCode::BAD_REQUEST,
            "Interval: required",
        ),
        (
            "/v1/agent/check/register",
            json!({"Name": "c", "Args": ["/bin/true"]}),
            StatusCode::BAD_REQUEST,
            "Args checks are not supported",
        ),
        (
            "/v1/agent/check/register",
            json!({"Name": "c", "TTL": "1s", "ServiceID": "nope"}),
            StatusCode::BAD_REQUEST,
            "ServiceID: no service instance with id \"nope\"",
        ),
        (
            "/v1/agent/check/register",
            json!({"Name": "c", "TTL": "1s", "Status": "fine"}),
            StatusCode::BAD_REQUEST,
            "Status:",
        ),
        (
            "/v1/agent/check/register",
            json!({"Name": "c", "TTL": "1s", "CheckID": "service:web-1"}),
            StatusCode::CONFLICT,
            "service:web-1",
        ),
        ("/v1/catalog/register", json!({"Address": "10.0.0.1"}), StatusCode::BAD_REQUEST, "Node: required"),
        ("/v1/catalog/register", json!({"Node": "bad name", "Address": "10.0.0.1"}), StatusCode::BAD_REQUEST, "Node:"),
        ("/v1/catalog/register", json!({"Node": "n2"}), StatusCode::BAD_REQUEST, "Address: required"),
        ("/v1/catalog/register", json!({"Node": "n2", "Address": "0.0.0.0"}), StatusCode::BAD_REQUEST, "Address:"),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Datacenter": "mars"}),
            StatusCode::BAD_REQUEST,
            "Datacenter: \"mars\"",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "NodeMeta": {"k": 1}}),
            StatusCode::BAD_REQUEST,
            "NodeMeta.k:",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": local, "Address": "10.0.0.2"}),
            StatusCode::BAD_REQUEST,
            "this server's own node",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Port": 1}}),
            StatusCode::BAD_REQUEST,
            "Service.Service: required",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "s", "Port": 70000}}),
            StatusCode::BAD_REQUEST,
            "Service.Port:",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "s", "Tags": [1]}}),
            StatusCode::BAD_REQUEST,
            "Service.Tags[0]:",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Checks": [{"CheckID": "a"}, {"Name": "b", "Status": "ok"}]}),
            StatusCode::BAD_REQUEST,
            "Checks[1].Status:",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Check": {"CheckID": "a", "Definition": {"HTTP": "http://x/"}}}),
            StatusCode::BAD_REQUEST,
            "Check.Definition.Interval: required",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Check": {"Status": "passing"}}),
            StatusCode::BAD_REQUEST,
            "Check.CheckID:",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Check": {"CheckID": "a", "ServiceID": "web-1"}}),
            StatusCode::BAD_REQUEST,
            "Check.ServiceID: no service instance \"web-1\" on node \"n2\"",
        ),
        // The service lands, then its id turns out to be another node's: all of it is refused.
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "web", "ID": "web-1"}}),
            StatusCode::CONFLICT,
            "web-1",
        ),
        (
            "/v1/catalog/register",
            json!({"Node": "n2", "Address": "10.0.0.2", "Service": {"Service": "x", "ID": "db"}, "Check": {"CheckID": "c", "ServiceID": "db"}}),
            StatusCode::CONFLICT,
            "node \"n1\"",
        ),
        ("/v1/catalog/register", Value::String(huge), StatusCode::PAYLOAD_TOO_LARGE, ""),
        ("/v1/catalog/deregister", json!({"ServiceID": "db"}), StatusCode::BAD_REQUEST, "Node: required"),
        ("/v1/catalog/deregister", json!({"Node": "n1", "ServiceID": "web-1"}), StatusCode::NOT_FOUND, "web-1"),
        (
            "/v1/catalog/deregister",
            json!({"Node": "n1", "ServiceID": "db", "CheckID": "c"}),
            StatusCode::BAD_REQUEST,
            "CheckID: give ServiceID or CheckID",
        ),
        ("/v1/catalog/deregister", json!({"Node": "n9"}), StatusCode::NOT_FOUND, "n9"),
    ];
    for (path, body, want, needle) in cases {
        let a = put(&s, path, Some(body.clone())).await;
        assert_eq!(a.status, want, "{path} {body}: {}", a.text);
        assert!(
            a.text.contains(needle) && !a.text.trim_end().contains('\n'),
            "{path} {body}: one line naming {needle:?}: {}",
            a.text
        );
    }
    let after = (get(&s, "/v1/catalog/nodes").await, get(&s, "/v1/agent/checks").await);
    assert_eq!((after.0.text, after.1.text), (before.0.text, before.1.text), "nothing stored changed");
    assert_eq!(after.0.index, before.0.index, "not even the index");
    assert_eq!(short(&s, "web.service.local", "A").await, ["10.0.0.1"]);
    assert_eq!(status(&s, "n2.node.local").await, "NXDOMAIN");
}

#[tokio::test]
async fn node_reads_block_until_the_catalog_changes() {
    let s = server().config(ONE_BLOCKING).start().await;
    let first = get(&s, "/v1/catalog/nodes").await;
    assert!(first.index >= 1);
    for (path, change) in [
        ("/v1/catalog/nodes", json!({"Node": "b1", "Address": "10.0.1.1"})),
        ("/v1/catalog/node/b1", json!({"Node": "b1", "Address": "10.0.1.1", "Service": {"Service": "s1"}})),
        (
            "/v1/health/node/b1",
            json!({"Node": "b1", "Address": "10.0.1.1", "Check": {"CheckID": "up", "Status": "passing"}}),
        ),
    ] {
        let index = get(&s, path).await.index;
        let blocked = held(&s, &format!("{path}?index={index}&wait=30s")).await;
        assert!(still_held(&s).await, "{path} waits for a change");
        ok(&s, "/v1/catalog/register", change).await;
        let (a, took) = blocked.await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert!(a.index > index && took < Duration::from_secs(5), "{path}: answered by the change ({took:?})");
    }
    let held_nodes = get(&s, "/v1/health/node/b1").await.json();
    assert_eq!(held_nodes[0]["CheckID"], "up");
    // A blocking read ends at its wait when nothing changes.
    let index = get(&s, "/v1/catalog/nodes").await.index;
    let a = get(&s, &format!("/v1/catalog/nodes?index={index}&wait=100ms")).await;
    assert_eq!((a.status, a.index), (StatusCode::OK, index));
}

#[tokio::test]
async fn members_peers_and_datacenters_are_this_server() {
    let s = server().start().await;
    let me = s.api.trim_start_matches("http://").to_string();
    let this = get(&s, "/v1/agent/self").await.json();
    let name = this["Config"]["NodeName"].clone();
    assert_eq!(get(&s, "/v1/status/peers").await.json(), json!([me]));
    assert_eq!(get(&s, "/v1/catalog/datacenters").await.json(), json!([this["Config"]["Datacenter"]]));
    let members = get(&s, "/v1/agent/members").await.json();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!((&members[0]["Name"], &members[0]["Status"]), (&name, &json!(1)));
    assert_eq!(format!("{}:{}", members[0]["Addr"].as_str().unwrap(), members[0]["Port"]), me);
    let nodes = get(&s, "/v1/catalog/nodes").await.json();
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["Node"], name);
}

#[tokio::test]
async fn nodes_and_checks_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let s = server().data_dir(data.path()).start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    ok(&s, "/v1/catalog/register", esm("passing", "critical")).await;
    ok(&s, "/v1/agent/check/register", json!({"Name": "disk", "TTL": "1h", "Status": "passing"})).await;
    ok(
        &s,
        "/v1/agent/check/register",
        json!({"Name": "web extra", "ServiceID": "web-1", "TTL": "1h", "Status": "warning"}),
    )
    .await;
    let before: Vec<String> =
        ["/v1/catalog/nodes", "/v1/health/node/db-host", "/v1/agent/checks", "/v1/health/service/postgres"]
            .iter()
            .map(|p| p.to_string())
            .collect();
    let mut seen = Vec::new();
    for p in &before {
        seen.push(get(&s, p).await.text);
    }
    s.stop().await;
    let s = server().data_dir(data.path()).start().await;
    for (p, was) in before.iter().zip(seen) {
        assert_eq!(get(&s, p).await.text, was, "{p} after a restart");
    }
    assert_eq!(short(&s, "db-host.node.local", "A").await, ["10.20.0.5"]);
    assert_eq!(short(&s, "postgres.service.local", "A").await, Vec::<String>::new(), "still critical");
    assert_eq!(short(&s, "web.service.local", "A").await, ["10.0.0.1"]);
}

#[tokio::test]
async fn node_level_writes_need_write_on_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = crate::acl::team_config(dir.path());
    let s = server().config(&config).start().await;
    let as_team = |path: &'static str, body: Value| {
        let req = http_client().put(s.url(path)).header("X-Consul-Token", crate::acl::PAYMENTS).body(body.to_string());
        crate::api::send(req)
    };
    let as_admin = |path: &'static str, body: Value| {
        let req =
            http_client().put(s.url(path)).header("X-Consul-Token", crate::acl::MANAGEMENT).body(body.to_string());
        crate::api::send(req)
    };
    let node = json!({"Node": "pay-host", "Address": "10.40.0.1"});
    let refused = |a: Answer, what: &str| {
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.text);
    };
    refused(as_team("/v1/catalog/register", node.clone()).await, "a new node");
    refused(as_team("/v1/agent/check/register", json!({"Name": "disk", "TTL": "1h"})).await, "a check on this node");
    assert_eq!(as_admin("/v1/catalog/register", node.clone()).await.status, StatusCode::OK);
    // The node as it is, with the team's service on it: the service is all that is written.
    let with = |service: &str| json!({"Node": "pay-host", "Address": "10.40.0.1", "Service": {"Service": service}});
    assert_eq!(as_team("/v1/catalog/register", with("payment-gw")).await.status, StatusCode::OK);
    refused(as_team("/v1/catalog/register", with("orders")).await, "another team's service");
    let moved = json!({"Node": "pay-host", "Address": "10.40.0.2", "Service": {"Service": "payment-gw"}});
    refused(as_team("/v1/catalog/register", moved).await, "moving the node");
    let check = json!({"Node": "pay-host", "Address": "10.40.0.1",
                       "Check": {"CheckID": "gw", "ServiceID": "payment-gw", "Status": "passing"}});
    assert_eq!(as_team("/v1/catalog/register", check).await.status, StatusCode::OK, "a check on its own service");
    refused(as_team("/v1/catalog/deregister", json!({"Node": "pay-host"})).await, "the node going");
    assert_eq!(
        as_team("/v1/catalog/deregister", json!({"Node": "pay-host", "ServiceID": "payment-gw"})).await.status,
        StatusCode::OK
    );
    assert_eq!(short(&s, "pay-host.node.local", "A").await, ["10.40.0.1"]);
}

#[tokio::test]
async fn consuls_areas_signpost_leaves_out_answer_404_naming_the_route() {
    let s = server().start().await;
    let cases = [
        ("GET", "/v1/kv/config/db", "key/value"),
        ("PUT", "/v1/kv/config/db", "key/value"),
        ("GET", "/v1/kv", "key/value"),
        ("PUT", "/v1/session/create", "sessions"),
        ("PUT", "/v1/event/fire/deploy", "events"),
        ("GET", "/v1/connect/ca/roots", "Connect"),
        ("GET", "/v1/agent/connect/ca/leaf/web", "Connect"),
        ("PUT", "/v1/acl/token", "ACL"),
    ];
    for (method, path, area) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let a = crate::api::send(http_client().request(method.clone(), s.url(path)).body("x")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(
            a.text.starts_with(&format!("{method} {path}: unsupported by signpost")) && a.text.contains(area),
            "{method} {path}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn with_consul_names_a_node_answers_under_its_datacenter_too() {
    let s = server().config("[dns]\ndomain = \"consul\"\nconsul_names = true\n").start().await;
    ok(&s, "/v1/catalog/register", json!({"Node": "db-host", "Address": "10.20.0.5"})).await;
    for name in ["db-host.node.consul", "db-host.node.dc1.consul", "db-host.node.dc1.dc.consul"] {
        assert_eq!(short(&s, name, "A").await, ["10.20.0.5"], "{name}");
        assert_eq!(dig(&s, &["+short", "+tcp", name, "A"]).await.trim(), "10.20.0.5", "{name} over TCP");
    }
}

/// This server is a node of the catalog like the external ones: its name (the host name, as
/// `/v1/agent/self` and `/v1/catalog/nodes` report it) answers its address in DNS, on UDP and
/// TCP, any case.
#[tokio::test]
async fn this_servers_own_node_answers_in_dns() {
    let s = server().start().await;
    let node = get(&s, "/v1/agent/self").await.json()["Config"]["NodeName"].as_str().unwrap().to_string();
    let nodes = get(&s, "/v1/catalog/nodes").await.json();
    assert_eq!(nodes[0]["Node"], node.as_str(), "{nodes}");
    let name = format!("{}.node.local", node.to_uppercase());
    assert_eq!(short(&s, &name, "A").await, [s.dns.ip().to_string()], "{name}");
    let m = s.tcp(&format!("{node}.node.local."), hickory_proto::rr::RecordType::A).await;
    assert_eq!(addresses(&m), [s.dns.ip().to_string()]);
    assert!(short(&s, &format!("{node}.node.local"), "AAAA").await.is_empty(), "no IPv6 address advertised");
}
