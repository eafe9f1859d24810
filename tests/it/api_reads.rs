//! Consul reads beyond the catalog ones in api.rs, against the real server: one instance's
//! definition (`/v1/agent/service/ID`, with hash-based blocking), the checks in a state
//! (`/v1/health/state/STATE`) and the agent itself (`/v1/agent/self`).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{ONE_BLOCKING, client, get, held, ok_put, register, still_held, web};
use crate::support::*;

/// `GET /v1/agent/service/ID` with its status, `X-Consul-ContentHash` and JSON body.
async fn agent_service(s: &TestServer, query: &str) -> (StatusCode, String, Value) {
    let r = client().get(s.url(&format!("/v1/agent/service/{query}"))).send().await.expect("the API answers");
    let status = r.status();
    let hash = r.headers().get("x-consul-contenthash").map_or("", |v| v.to_str().unwrap()).to_string();
    let text = r.text().await.unwrap();
    (status, hash, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn agent_service_is_one_value_of_agent_services_with_its_content_hash() {
    let s = server().start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1"],
               "Meta": {"version": "1.2"}, "Weights": {"Passing": 3, "Warning": 1}, "Check": {"TTL": "1m"}}),
    )
    .await;
    register(&s, web("web-2", "10.0.0.2")).await;

    let a = get(&s, "/v1/agent/service/web-1").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.index >= 1, "reads carry X-Consul-Index");
    let mut one = a.json();
    let hash = one.as_object_mut().unwrap().remove("ContentHash").expect("a ContentHash");
    assert_eq!(one, get(&s, "/v1/agent/services").await.json()["web-1"], "the same fields as in the map");
    assert!(hash.as_str().is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())), "{hash}");

    let (status, header, body) = agent_service(&s, "WEB-1").await;
    assert_eq!((status, body["ID"].as_str()), (StatusCode::OK, Some("web-1")), "ids match case-insensitively");
    assert_eq!((header.as_str(), &body["ContentHash"]), (hash.as_str().unwrap(), &hash), "and the header says it too");
    assert_ne!(agent_service(&s, "web-2").await.1, header, "another definition, another hash");

    // Health is not part of the definition.
    ok_put(&s, "/v1/agent/check/pass/service:web-1").await;
    assert_eq!(agent_service(&s, "web-1").await.1, header);

    for path in ["/v1/agent/service/nope", "/v1/agent/service/nope?hash=abc&wait=10s"] {
        let start = Instant::now();
        let a = get(&s, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text);
        assert!(a.text.contains("nope") && !a.text.trim_end().contains('\n'), "one line naming the id: {}", a.text);
        assert!(start.elapsed() < Duration::from_secs(2), "an unknown id does not block");
    }
}

#[tokio::test]
async fn agent_service_blocks_until_its_definition_changes() {
    let s = server().config(ONE_BLOCKING).start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    let (_, hash, _) = agent_service(&s, "web-1").await;

    // Same hash: the answer comes at the wait, unchanged.
    let start = Instant::now();
    let (status, again, _) = agent_service(&s, &format!("web-1?hash={hash}&wait=200ms")).await;
    let waited = start.elapsed();
    assert_eq!((status, again.as_str()), (StatusCode::OK, hash.as_str()));
    assert!(waited >= Duration::from_millis(190) && waited < Duration::from_secs(5), "waited {waited:?}");
    // Another hash (a stale one): at once.
    let start = Instant::now();
    assert_eq!(agent_service(&s, "web-1?hash=0&wait=30s").await.1, hash);
    assert!(start.elapsed() < Duration::from_secs(2));

    let blocked = held(&s, &format!("/v1/agent/service/web-1?hash={hash}&wait=30s")).await;
    // Changes elsewhere, and to web-1's health, do not answer it: its hash is still the one asked
    // about, the query still waits, and what finally answers it is the change below.
    register(&s, web("web-2", "10.0.0.2")).await;
    ok_put(&s, "/v1/agent/service/maintenance/web-1?enable=true").await;
    assert_eq!(agent_service(&s, "web-1").await.1, hash);
    assert!(still_held(&s).await && !blocked.is_finished(), "answered on a change that left web-1's definition alone");
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 8080})).await;
    let (a, _) = tokio::time::timeout(DEADLINE, blocked).await.expect("answered on the change").unwrap();
    assert_eq!((a.status, a.json()["Port"].as_u64()), (StatusCode::OK, Some(8080)));
    assert_ne!(a.json()["ContentHash"], json!(hash));

    // A deregistration answers a blocked query with 404.
    let (_, hash, _) = agent_service(&s, "web-1").await;
    let blocked = held(&s, &format!("/v1/agent/service/web-1?hash={hash}&wait=30s")).await;
    ok_put(&s, "/v1/agent/service/deregister/web-1").await;
    let (a, _) = tokio::time::timeout(DEADLINE, blocked).await.expect("answered on the deregistration").unwrap();
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    let a = get(&s, "/v1/agent/service/web-2?hash=x&wait=5").await;
    assert_eq!((a.status, a.text.starts_with("wait: invalid duration")), (StatusCode::BAD_REQUEST, true), "{}", a.text);
}

/// The check ids of a list of checks, in order.
fn check_ids(checks: &Value) -> Vec<&str> {
    checks.as_array().unwrap().iter().map(|c| c["CheckID"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn health_state_lists_the_checks_in_a_state_in_health_checks_shape() {
    let s = server().start().await;
    let ttl = |id: &str, service: &str, status: &str| json!({"Name": service, "ID": id, "Address": "10.0.0.1", "Check": {"TTL": "1m", "Status": status}});
    register(&s, ttl("web-1", "web", "passing")).await;
    register(&s, ttl("web-2", "web", "critical")).await;
    register(&s, ttl("db-1", "db", "passing")).await;
    register(&s, web("web-3", "10.0.0.3")).await;
    ok_put(&s, "/v1/agent/check/warn/service:db-1?note=slow").await;
    ok_put(&s, "/v1/agent/service/maintenance/web-3?enable=true&reason=deploy").await;

    for (state, want) in [
        ("passing", vec!["service:web-1"]),
        ("warning", vec!["service:db-1"]),
        ("critical", vec!["service:web-2", "_service_maintenance:web-3"]),
        ("any", vec!["service:db-1", "service:web-1", "service:web-2", "_service_maintenance:web-3"]),
    ] {
        let a = get(&s, &format!("/v1/health/state/{state}")).await;
        assert_eq!(a.status, StatusCode::OK, "{state}: {}", a.text);
        assert!(a.index >= 1, "{state}: reads carry X-Consul-Index");
        assert_eq!(check_ids(&a.json()), want, "{state}");
    }
    // Each check exactly as /v1/health/checks/NAME shows it.
    let web_checks = get(&s, "/v1/health/checks/web").await.json();
    let critical = get(&s, "/v1/health/state/critical").await.json();
    assert_eq!(critical.as_array().unwrap()[..], web_checks.as_array().unwrap()[1..]);
    let warning = &get(&s, "/v1/health/state/warning").await.json()[0];
    assert_eq!(warning, &get(&s, "/v1/health/checks/db").await.json()[0]);
    assert_eq!((warning["Status"].as_str(), warning["Output"].as_str()), (Some("warning"), Some("slow")));

    for state in ["maintenance", "Passing", "unknown", "bogus"] {
        let a = get(&s, &format!("/v1/health/state/{state}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{state}: {}", a.text);
        assert_eq!(a.text, format!("state: {state:?} is not one of any, passing, warning, critical"));
    }
}

#[tokio::test]
async fn health_state_blocks_until_the_catalog_changes() {
    let s = server().config(ONE_BLOCKING).start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Check": {"TTL": "1m", "Status": "passing"}}),
    )
    .await;
    let a = get(&s, "/v1/health/state/critical").await;
    assert_eq!(a.json(), json!([]));
    let blocked = held(&s, &format!("/v1/health/state/critical?index={}&wait=30s", a.index)).await;
    ok_put(&s, "/v1/agent/check/fail/service:web-1?note=down").await;
    let (b, _) = tokio::time::timeout(DEADLINE, blocked).await.expect("answered on the change").unwrap();
    assert!(b.index > a.index, "{} after {}", b.index, a.index);
    assert_eq!(check_ids(&b.json()), ["service:web-1"]);
    assert_eq!(b.json()[0]["Output"], "down");
}

#[tokio::test]
async fn agent_self_names_the_node_and_datacenter_the_catalog_reports() {
    for (config, datacenter) in [("", "dc1"), ("[dns]\nregion = \"eu-west\"\n", "eu-west")] {
        let s = server().config(config).start().await;
        register(&s, web("web-1", "10.0.0.1")).await;
        let node = &get(&s, "/v1/catalog/service/web").await.json()[0];

        let a = get(&s, "/v1/agent/self").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(a.index >= 1, "reads carry X-Consul-Index");
        let me = a.json();
        let c = &me["Config"];
        assert_eq!((c["Datacenter"].as_str(), c["PrimaryDatacenter"].as_str()), (Some(datacenter), Some(datacenter)));
        assert_eq!(c["Datacenter"], node["Datacenter"]);
        assert_eq!(c["NodeName"], node["Node"]);
        assert!(c["NodeName"].as_str().is_some_and(|n| !n.is_empty()));
        assert_eq!(c["NodeID"], node["ID"]);
        assert_eq!(c["Version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(c["Server"], true);

        let m = &me["Member"];
        assert_eq!((&m["Name"], &m["Addr"]), (&node["Node"], &node["Address"]));
        let port: u16 = s.api.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!((m["Port"].as_u64(), m["Status"].as_u64()), (Some(u64::from(port)), Some(1)));
        // Go's consul/api decodes the answer as map[string]map[string]interface{}.
        assert!(me.as_object().unwrap().values().all(Value::is_object), "{me}");
    }
}
