//! `?filter=` on the list reads, against the real server: a table of routes and expressions with
//! the entries each lets through, bad expressions answered 400 naming the position, a filtered
//! blocking read, and py-consul's own `filter_expr` arguments.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::api::{Answer, ONE_BLOCKING, client, get, held, ok_put, register, send};
use crate::clients::installed;
use crate::support::*;

/// web-1 (v1, canary, version 1.2, passing), web-2 (v2, critical), db-1 (no tags, version 9,
/// passing).
async fn three(s: &TestServer) {
    let ttl = json!({"TTL": "10m"});
    register(
        s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1", "canary"],
               "Meta": {"version": "1.2", "build-id": "77"}, "Check": ttl}),
    )
    .await;
    register(
        s,
        json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Port": 8080, "Tags": ["v2"], "Check": ttl}),
    )
    .await;
    register(s, json!({"Name": "db", "ID": "db-1", "Address": "10.0.0.3", "Port": 5432, "Meta": {"version": "9"}, "Check": ttl}))
        .await;
    ok_put(s, "/v1/agent/check/pass/service:web-1").await;
    ok_put(s, "/v1/agent/check/fail/service:web-2").await;
    ok_put(s, "/v1/agent/check/pass/service:db-1").await;
}

/// GET `route` with `?filter=` (reqwest encodes it).
async fn filtered(s: &TestServer, route: &str, filter: &str) -> Answer {
    let mut url = reqwest::Url::parse(&s.url(route)).unwrap();
    url.query_pairs_mut().append_pair("filter", filter);
    send(client().get(url)).await
}

/// The ids (service ids, or check ids for check reads) a filtered read answers, sorted.
async fn ids(s: &TestServer, route: &str, filter: &str) -> Vec<String> {
    let a = filtered(s, route, filter).await;
    assert_eq!(a.status, StatusCode::OK, "{route} {filter}: {}", a.text);
    let mut ids: Vec<String> = match a.json() {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => items
            .iter()
            .map(|e| {
                let id = e.get("CheckID").or_else(|| e.get("ServiceID")).or_else(|| e["Service"].get("ID"));
                id.and_then(Value::as_str).unwrap_or_else(|| panic!("no id in {e}")).to_string()
            })
            .collect(),
        other => panic!("{route}: {other}"),
    };
    ids.sort();
    ids
}

#[tokio::test]
async fn each_list_read_keeps_the_entries_the_expression_selects() {
    let s = server().start().await;
    three(&s).await;
    let cases: &[(&str, &str, &[&str])] = &[
        ("/v1/agent/services", r#"Tags contains "canary""#, &["web-1"]),
        ("/v1/agent/services", r#"Service == "web" and Tags is empty or Meta.version == "9""#, &["db-1"]),
        ("/v1/agent/services", r#"Meta.version == "9" or "v2" in Tags"#, &["db-1", "web-2"]),
        ("/v1/agent/services", r#"not (Service == "web")"#, &["db-1"]),
        ("/v1/agent/services", r#"Meta["build-id"] == "77""#, &["web-1"]),
        ("/v1/agent/services", r#"Meta is empty"#, &["web-2"]),
        ("/v1/agent/services", r#"ID matches "^web-[12]$""#, &["web-1", "web-2"]),
        ("/v1/agent/checks", r#"Status == "critical""#, &["service:web-2"]),
        ("/v1/agent/checks", r#"ServiceName == "web" and Status == "passing""#, &["service:web-1"]),
        ("/v1/catalog/service/web", r#"ServiceTags contains "v2""#, &["web-2"]),
        ("/v1/catalog/service/web", r#"ServiceMeta.version == "1.2""#, &["web-1"]),
        ("/v1/catalog/service/web", r#"ServiceMeta.absent == "x""#, &[]),
        ("/v1/catalog/service/web", r#"ServicePort == 8080"#, &["web-2"]),
        ("/v1/health/service/web", r#"Checks.Status == "critical""#, &["web-2"]),
        ("/v1/health/service/web", r#"Checks.Status != "critical""#, &["web-1"]),
        ("/v1/health/service/web", r#""canary" in Service.Tags"#, &["web-1"]),
        ("/v1/health/service/web?passing", r#"Service.Tags contains "v2""#, &[]),
        ("/v1/health/checks/web", r#"Status == "passing""#, &["service:web-1"]),
        (
            "/v1/health/state/any",
            r#"ServiceName != "nope" and Status != "critical""#,
            &["service:db-1", "service:web-1"],
        ),
    ];
    for (route, filter, want) in cases {
        assert_eq!(ids(&s, route, filter).await, *want, "{route} ?filter={filter}");
    }
    // An empty expression is no filter.
    assert_eq!(ids(&s, "/v1/agent/services", " ").await, ["db-1", "web-1", "web-2"]);

    // /v1/catalog/services lists the services that have an instance passing.
    let a = filtered(&s, "/v1/catalog/services", r#"ServiceTags contains "v2""#).await;
    assert_eq!(a.json(), json!({"web": ["v2"]}), "only web-2's tags");
}

#[tokio::test]
async fn a_bad_expression_is_a_400_naming_where_and_changes_nothing() {
    let s = server().start().await;
    three(&s).await;
    let cases: &[(&str, &str, &str)] = &[
        ("/v1/agent/services", r#"Tags contains"#, "at position 13"),
        ("/v1/agent/services", r#"Service == "web" and"#, "at position 20"),
        ("/v1/agent/services", r#"(Service == "web""#, "at position 17"),
        ("/v1/agent/services", r#"Service === "web""#, "position"),
        ("/v1/agent/services", r#"Service == "web"#, "position 11"),
        ("/v1/agent/services", r#"ID matches "(""#, "position"),
        ("/v1/agent/services", r#"Nope == "x""#, "\"Nope\""),
        ("/v1/health/service/web?index=1&wait=30s", r#"Service.Nope == "x""#, "\"Nope\""),
        ("/v1/catalog/service/web", r#"ServiceTags contains "v2" or or"#, "position"),
    ];
    let before = get(&s, "/v1/agent/services").await.text;
    for (route, filter, names) in cases {
        let a = filtered(&s, route, filter).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{route} ?filter={filter}: {}", a.text);
        assert!(a.text.starts_with("filter: ") && a.text.contains(names), "{filter}: {} should name {names}", a.text);
    }
    assert_eq!(get(&s, "/v1/agent/services").await.text, before);
}

#[tokio::test]
async fn a_filtered_blocking_read_answers_when_the_catalog_moves() {
    let s = server().config(ONE_BLOCKING).start().await;
    three(&s).await;
    let index = get(&s, "/v1/health/service/web").await.index;
    let read =
        held(&s, &format!("/v1/health/service/web?index={index}&wait=30s&filter=Checks.Status%20%3D%3D%20passing"))
            .await;
    ok_put(&s, "/v1/agent/check/pass/service:web-2").await;
    let (a, took) = read.await.unwrap();
    assert!(took < Duration::from_secs(20), "answered by the change, not the wait: {took:?}");
    let body = a.json();
    let mut got: Vec<&str> = body.as_array().unwrap().iter().map(|e| e["Service"]["ID"].as_str().unwrap()).collect();
    got.sort();
    assert_eq!(got, ["web-1", "web-2"], "{}", a.text);
}

#[tokio::test]
async fn py_consul_filter_expr_arguments_are_honoured() {
    let lib = installed("python");
    let s = server().start().await;
    three(&s).await;
    let (host, port) = s.api.trim_start_matches("http://").rsplit_once(':').unwrap();
    let code = format!(
        r#"
import consul
c = consul.Consul(host="{host}", port={port})
print(sorted(c.agent.services(filter_expr='Tags contains "canary"')))
print(sorted(c.agent.checks(filter_expr='Status == "critical"')))
_, entries = c.health.service("web", filter_expr='Checks.Status == "passing"')
print([e["Service"]["ID"] for e in entries])
_, entries = c.catalog.service("web", filter_expr='ServicePort == 8080')
print([e["ServiceID"] for e in entries])
try:
    c.agent.services(filter_expr='Tags contains')
except consul.ConsulException as e:
    print("refused:", e)
"#
    );
    let out = Command::new("python3").args(["-c", &code]).env("PYTHONPATH", lib).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..4], ["['web-1']", "['service:web-2']", "['web-1']", "['web-2']"], "{stdout}");
    assert!(lines[4].starts_with("refused:") && lines[4].contains("position 13"), "{stdout}");
}

#[tokio::test]
async fn node_reads_filter_too() {
    let s = server().start().await;
    for (node, address, status) in [("db-host", "10.20.0.5", "critical"), ("cache-host", "10.20.0.6", "passing")] {
        let body = json!({
            "Node": node, "Address": address, "NodeMeta": {"external-node": "true", "rack": node},
            "Service": {"ID": format!("{node}-svc"), "Service": "store", "Port": 5432},
            "Checks": [{"Node": node, "CheckID": "externalNodeHealth", "Name": "node", "Status": status}],
        });
        let a = crate::api::put(&s, "/v1/catalog/register", Some(body)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
    let names = |a: Answer, field: &str| -> Vec<String> {
        let mut v: Vec<String> =
            a.json().as_array().unwrap().iter().map(|e| e[field].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };
    let a = filtered(&s, "/v1/catalog/nodes", r#"Meta["external-node"] == "true""#).await;
    assert_eq!(names(a, "Node"), ["cache-host", "db-host"]);
    let a = filtered(&s, "/v1/catalog/nodes", r#"Meta.rack matches "^db""#).await;
    assert_eq!(names(a, "Node"), ["db-host"]);
    let a = filtered(&s, "/v1/health/node/db-host", r#"Status == "critical""#).await;
    assert_eq!(names(a, "CheckID"), ["externalNodeHealth"]);
    let a = filtered(&s, "/v1/health/node/cache-host", r#"Status == "critical""#).await;
    assert!(a.json().as_array().unwrap().is_empty(), "{}", a.text);
    let a = filtered(&s, "/v1/catalog/node/db-host", r#"Port == 5432"#).await;
    assert_eq!(a.json()["Services"].as_object().unwrap().keys().collect::<Vec<_>>(), ["db-host-svc"]);
    let a = filtered(&s, "/v1/catalog/node/db-host", r#"Port == 1"#).await;
    assert!(a.json()["Services"].as_object().unwrap().is_empty(), "{}", a.text);
    assert_eq!(filtered(&s, "/v1/catalog/nodes", "Meta.rack ==").await.status, StatusCode::BAD_REQUEST);
}
