//! The Consul-compatible HTTP API against the real server: every route with valid and invalid
//! input, each rejection proven to change nothing (API catalog and DNS), blocking queries, the
//! token, restarts over the same data dir.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

pub(crate) fn client() -> reqwest::Client {
    http_client()
}

/// A response's status, `X-Consul-Index` (0 when absent) and body text.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub index: u64,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub(crate) async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("the API answers");
    let status = r.status();
    let index = r.headers().get("x-consul-index").map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    Answer { status, index, text: r.text().await.unwrap() }
}

pub(crate) async fn put(s: &TestServer, path: &str, body: Option<Value>) -> Answer {
    let req = client().put(s.url(path));
    send(match body {
        Some(b) => req.body(b.to_string()),
        None => req,
    })
    .await
}

pub(crate) async fn get(s: &TestServer, path: &str) -> Answer {
    send(client().get(s.url(path))).await
}

/// A server's configuration that lets one blocking query wait at a time, so that `held` can see
/// when one does.
pub(crate) const ONE_BLOCKING: &str = "[http]\nmax_blocking_queries = 1\n";

/// A blocking read in flight: its answer, and how long it took from when it was sent.
pub(crate) type Blocked = tokio::task::JoinHandle<(Answer, Duration)>;

/// Sends the blocking read `path` (with `?index=` or `?hash=`, and a long `wait`) and returns once
/// the server holds it. The server allows one blocking query at a time (`ONE_BLOCKING`), so its
/// own refusal (429) of a second one is the sign that this one waits. A probe that takes the slot
/// first gets the read refused; it is then sent again.
pub(crate) async fn held(s: &TestServer, path: &str) -> Blocked {
    let probe = format!("/v1/agent/services?index={}&wait=1ms", u64::MAX);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let url = s.url(path);
        let read: Blocked = tokio::spawn(async move {
            let start = Instant::now();
            (send(client().get(url)).await, start.elapsed())
        });
        while !read.is_finished() {
            assert!(Instant::now() < deadline, "{path} was never held");
            if get(s, &probe).await.status == StatusCode::TOO_MANY_REQUESTS {
                return read;
            }
        }
        let (a, _) = read.await.unwrap();
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{path} was answered instead of held: {}", a.text);
    }
}

/// Returns true if the server still holds a blocking query (see `held`).
pub(crate) async fn still_held(s: &TestServer) -> bool {
    get(s, &format!("/v1/agent/services?index={}&wait=1ms", u64::MAX)).await.status == StatusCode::TOO_MANY_REQUESTS
}

/// Registers and insists on Consul's success answer: exactly 200 with an empty body.
pub(crate) async fn register(s: &TestServer, body: Value) {
    let a = put(s, "/v1/agent/service/register", Some(body.clone())).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""), "registering {body}");
}

pub(crate) async fn ok_put(s: &TestServer, path: &str) {
    let a = put(s, path, None).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""), "PUT {path}");
}

/// Sorted A answers of a name, with the rcode.
async fn dns_a(s: &TestServer, name: &str) -> (ResponseCode, Vec<String>) {
    let m = s.udp(name, RecordType::A).await;
    let mut a = addresses(&m);
    a.sort();
    (m.metadata.response_code, a)
}

/// What a rejection must leave alone: the API's view and the DNS answers for `web`.
async fn catalog(s: &TestServer) -> (Value, Value, (ResponseCode, Vec<String>)) {
    let services = get(s, "/v1/agent/services").await.json();
    let checks = get(s, "/v1/agent/checks").await.json();
    (services, checks, dns_a(s, "web.service.local.").await)
}

pub(crate) fn web(id: &str, ip: &str) -> Value {
    json!({"Name": "web", "ID": id, "Address": ip, "Port": 80})
}

#[tokio::test]
async fn a_registration_is_in_the_very_next_dns_answer() {
    let s = server().start().await;
    assert_eq!(dns_a(&s, "web.service.local.").await.0, ResponseCode::NXDomain);
    register(&s, web("web-1", "10.0.0.1")).await;
    assert_eq!(dns_a(&s, "web.service.local.").await, (ResponseCode::NoError, vec!["10.0.0.1".into()]));
    register(&s, web("web-2", "10.0.0.2")).await;
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(dns_a(&s, "web-2.instance.local.").await.1, ["10.0.0.2"]);
    let srv = s.udp("web.service.local.", RecordType::SRV).await;
    assert_eq!(srv.answers.len(), 2);

    ok_put(&s, "/v1/agent/service/deregister/web-1").await;
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.2"]);
    ok_put(&s, "/v1/agent/service/deregister/WEB-2").await;
    assert_eq!(dns_a(&s, "web.service.local.").await.0, ResponseCode::NXDomain, "ids match case-insensitively");
}

#[tokio::test]
async fn an_empty_or_absent_address_is_the_clients() {
    let s = server().start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Port": 80})).await;
    register(&s, json!({"Name": "web", "ID": "web-2", "Address": "", "Port": 80})).await;
    let services = get(&s, "/v1/agent/services").await.json();
    assert_eq!(services["web-1"]["Address"], "127.0.0.1");
    assert_eq!(services["web-2"]["Address"], "127.0.0.1");
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["127.0.0.1"], "de-duplicated");
}

#[tokio::test]
async fn py_consul_and_node_consul_bodies_are_both_understood() {
    let s = server().start().await;
    // py-consul: lowercase and snake_case.
    register(
        &s,
        json!({"name": "web", "id": "web-py", "address": "10.0.0.1", "port": 8080, "tags": ["v1"],
               "check": {"ttl": "10s", "deregister_critical_service_after": "90s", "status": "passing"}}),
    )
    .await;
    // node-consul: CamelCase, `Checks` array.
    register(
        &s,
        json!({"Name": "web", "ID": "web-node", "Address": "10.0.0.2", "Port": 8080, "Tags": ["v1"],
               "Checks": [{"TTL": "10s", "Status": "passing"}, {"CheckID": "web-node-deep", "TTL": "1m", "Status": "passing"}]}),
    )
    .await;
    let checks = get(&s, "/v1/agent/checks").await.json();
    let ids: Vec<&String> = checks.as_object().unwrap().keys().collect();
    assert_eq!(ids, ["service:web-node:1", "service:web-py", "web-node-deep"]);
    assert_eq!(checks["service:web-py"]["Definition"]["DeregisterCriticalServiceAfter"], "1m30s");
    assert_eq!(dns_a(&s, "v1.web.service.local.").await.1, ["10.0.0.1", "10.0.0.2"]);
}

#[tokio::test]
async fn rejected_registrations_answer_400_naming_the_field_and_change_nothing() {
    let s = server().start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["a"]})).await;
    let before = catalog(&s).await;
    let many: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"ID": "web-1", "Address": "10.0.0.9"}), "Name: required"),
        (json!({"Name": "we b", "ID": "web-1"}), "Name: \"we b\" must be 1-63"),
        (json!({"Name": "web", "ID": "-web-1"}), "ID: \"-web-1\" must be 1-63"),
        (json!({"Name": "web", "ID": "x".repeat(64)}), "ID: "),
        (json!({"Name": "web", "ID": "web-1", "Address": "0.0.0.0"}), "Address: \"0.0.0.0\" is not an address"),
        (json!({"Name": "web", "ID": "web-1", "Address": "::"}), "Address: \"::\" is not an address"),
        (json!({"Name": "web", "ID": "web-1", "Address": "not an address"}), "Address: \"not an address\" is neither"),
        (json!({"Name": "web", "ID": "web-1", "Port": 70000}), "Port: must be a whole number from 0 to 65535"),
        (json!({"Name": "web", "ID": "web-1", "Weights": {"Passing": 0, "Warning": 1}}), "Weights.Passing: must be"),
        (json!({"Name": "web", "ID": "web-1", "Meta": many}), "Meta: has 65 keys; at most 64"),
        (
            json!({"Name": "web", "ID": "web-1", "Check": {"TTL": "10s", "HTTP": "http://x/"}}),
            "Check: has HTTP and TTL",
        ),
        (
            json!({"Name": "web", "ID": "web-1", "Check": {"Interval": "10s"}}),
            "Check: needs exactly one of HTTP, TCP or TTL",
        ),
        (
            json!({"Name": "web", "ID": "web-1", "Checks": [{"TTL": "1s"}, {"HTTP": "http://x/"}]}),
            "Checks[1].Interval: required",
        ),
        (json!({"Name": "web", "ID": "web-1", "Check": {"TTL": "10"}}), "Check.TTL: invalid duration"),
        (json!("web"), "body: must be a JSON object"),
    ];
    for (body, want) in cases {
        let a = put(&s, "/v1/agent/service/register", Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text);
        assert!(a.text.starts_with(want), "{body}\n  got:  {}\n  want: {want}...", a.text);
        assert!(!a.text.trim_end().contains('\n'), "one line: {}", a.text);
        assert_eq!(catalog(&s).await, before, "{body} changed the catalog");
    }
    let a = send(client().put(s.url("/v1/agent/service/register")).body("{\"Name\": ")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text.starts_with("body: not valid JSON"), "{}", a.text);
    let a = put(&s, "/v1/agent/service/register?replace-existing-checks=perhaps", Some(web("web-1", "10.0.0.7"))).await;
    assert_eq!(
        (a.status, a.text.as_str()),
        (StatusCode::BAD_REQUEST, "replace-existing-checks: \"perhaps\" is not true or false")
    );
    assert_eq!(catalog(&s).await, before);
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_and_changes_nothing() {
    let s = server().start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    let before = catalog(&s).await;
    let body = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.2", "Pad": "x".repeat(100 * 1024)});
    let a = put(&s, "/v1/agent/service/register", Some(body)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(a.text, "request body is larger than 65536 bytes");
    assert_eq!(catalog(&s).await, before);
}

#[tokio::test]
async fn zone_file_ids_are_409_naming_the_file() {
    let zone =
        "[[service]]\nname = \"web\"\n\n[[service.instance]]\nid = \"web-1\"\naddress = \"10.0.0.1\"\nport = 80\n";
    let s = server().zone("web.toml", zone).start().await;
    let before = catalog(&s).await;
    let a = put(&s, "/v1/agent/service/register", Some(web("web-1", "10.0.0.9"))).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.text.contains("web.toml") && a.text.contains("web-1"), "{}", a.text);
    assert_eq!(catalog(&s).await, before);
    let a = put(&s, "/v1/agent/service/deregister/web-1", None).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.text.contains("web.toml"), "{}", a.text);
    assert_eq!(catalog(&s).await, before);
    // The zone-file instance shows in reads like any other.
    assert_eq!(before.0["web-1"]["Address"], "10.0.0.1");
}

#[tokio::test]
async fn unknown_ids_are_404_and_change_nothing() {
    let s = server().start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    let before = catalog(&s).await;
    for path in [
        "/v1/agent/service/deregister/nope",
        "/v1/agent/service/maintenance/nope?enable=true",
        "/v1/agent/check/pass/service:nope",
        "/v1/agent/check/warn/service:nope",
        "/v1/agent/check/fail/service:nope",
    ] {
        let a = put(&s, path, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text);
        assert!(a.text.contains("nope"), "{path}: {}", a.text);
        assert_eq!(catalog(&s).await, before, "{path}");
    }
    let a = put(&s, "/v1/agent/check/update/service:nope", Some(json!({"Status": "passing"}))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(catalog(&s).await, before);
}

#[tokio::test]
async fn ttl_checks_follow_pass_warn_fail_and_update() {
    let s = server().start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Check": {"TTL": "1m"}}))
        .await;
    let name = "web.service.local.";
    assert_eq!(dns_a(&s, name).await, (ResponseCode::NoError, vec![]), "critical until the first heartbeat");

    ok_put(&s, "/v1/agent/check/pass/service:web-1").await;
    assert_eq!(dns_a(&s, name).await.1, ["10.0.0.1"]);
    ok_put(&s, "/v1/agent/check/warn/service%3Aweb-1?note=slow+disk").await;
    assert_eq!(dns_a(&s, name).await.1, ["10.0.0.1"], "warning is still answered");
    let c = &get(&s, "/v1/agent/checks").await.json()["service:web-1"];
    assert_eq!(
        (c["Status"].as_str(), c["Output"].as_str(), c["Type"].as_str()),
        (Some("warning"), Some("slow disk"), Some("ttl"))
    );
    ok_put(&s, "/v1/agent/check/fail/service:web-1?note=down").await;
    assert_eq!(dns_a(&s, name).await.1, Vec::<String>::new());

    let update = "/v1/agent/check/update/service:web-1";
    let a = put(&s, update, Some(json!({"Status": "passing", "Output": "all good"}))).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(dns_a(&s, name).await.1, ["10.0.0.1"]);
    let before = catalog(&s).await;
    for (body, want) in [
        (json!({"Status": "fine"}), "Status: \"fine\" is not one of passing, warning, critical"),
        (json!({"Output": "x"}), "Status: required"),
        (json!({"Status": "maintenance"}), "Status: \"maintenance\" is not one of"),
    ] {
        let a = put(&s, update, Some(body)).await;
        assert_eq!((a.status, a.text.starts_with(want)), (StatusCode::BAD_REQUEST, true), "{}", a.text);
        assert_eq!(catalog(&s).await, before);
    }
}

#[tokio::test]
async fn maintenance_hides_an_instance_and_shows_as_a_critical_check() {
    let s = server().start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    register(&s, web("web-2", "10.0.0.2")).await;
    ok_put(&s, "/v1/agent/service/maintenance/web-1?enable=True&reason=deploy").await;
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.2"]);
    let checks = get(&s, "/v1/health/checks/web").await.json();
    let m = checks.as_array().unwrap().iter().find(|c| c["CheckID"] == "_service_maintenance:web-1").unwrap();
    assert_eq!(
        (m["Status"].as_str(), m["Notes"].as_str(), m["ServiceID"].as_str()),
        (Some("critical"), Some("deploy"), Some("web-1"))
    );
    let a = get(&s, "/v1/agent/health/service/name/web").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()[0]["AggregatedStatus"], "maintenance");

    let before = catalog(&s).await;
    for (path, want) in [
        ("/v1/agent/service/maintenance/web-1", "enable: required"),
        ("/v1/agent/service/maintenance/web-1?enable=maybe", "enable: \"maybe\" is not true or false"),
    ] {
        let a = put(&s, path, None).await;
        assert_eq!((a.status, a.text.starts_with(want)), (StatusCode::BAD_REQUEST, true), "{path}: {}", a.text);
        assert_eq!(catalog(&s).await, before);
    }
    ok_put(&s, "/v1/agent/service/maintenance/web-1?enable=false").await;
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(get(&s, "/v1/agent/health/service/name/web").await.status, StatusCode::OK);
}

#[tokio::test]
async fn reads_have_consul_shapes_and_headers() {
    let s = server().start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1", "blue"],
               "Meta": {"version": "1.2"}, "Weights": {"Passing": 3, "Warning": 1},
               "Check": {"TTL": "1m", "Status": "passing", "Name": "heartbeat"}}),
    )
    .await;
    register(&s, json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Port": 81, "Tags": ["v2"], "Check": {"TTL": "1m"}})).await;
    register(&s, json!({"Name": "db", "ID": "db-1", "Address": "db.example.com", "Port": 5432})).await;

    let a = get(&s, "/v1/agent/services").await;
    assert!(a.index >= 1);
    let svc = &a.json()["web-1"];
    assert_eq!(svc["ID"], "web-1");
    assert_eq!(svc["Service"], "web");
    assert_eq!(svc["Tags"], json!(["v1", "blue"]));
    assert_eq!(svc["Meta"], json!({"version": "1.2"}));
    assert_eq!((svc["Port"].as_u64(), svc["Address"].as_str()), (Some(80), Some("10.0.0.1")));
    assert_eq!(svc["Weights"], json!({"Passing": 3, "Warning": 1}));
    assert_eq!(a.json()["db-1"]["Address"], "db.example.com", "host names are kept as given");

    let checks = get(&s, "/v1/agent/checks").await.json();
    let c = &checks["service:web-1"];
    for (key, want) in [
        ("Name", json!("heartbeat")),
        ("Status", json!("passing")),
        ("ServiceID", json!("web-1")),
        ("ServiceName", json!("web")),
        ("ServiceTags", json!(["v1", "blue"])),
        ("Type", json!("ttl")),
        ("Notes", json!("")),
    ] {
        assert_eq!(c[key], want, "{key} in {c}");
    }
    assert!(c["Node"].is_string() && c["Definition"].is_object());

    assert_eq!(get(&s, "/v1/catalog/services").await.json(), json!({"db": [], "web": ["blue", "v1", "v2"]}));
    let cat = get(&s, "/v1/catalog/service/web?tag=v1").await.json();
    assert_eq!(cat.as_array().unwrap().len(), 1);
    let e = &cat[0];
    assert_eq!(
        (e["ServiceID"].as_str(), e["ServiceAddress"].as_str(), e["ServicePort"].as_u64()),
        (Some("web-1"), Some("10.0.0.1"), Some(80))
    );
    assert_eq!(e["ServiceWeights"]["Passing"], 3);
    assert_eq!(e["ServiceMeta"]["version"], "1.2");
    assert_eq!(e["Datacenter"], "dc1");
    assert!(e["Node"].is_string() && e["Address"].is_string());
    assert_eq!(get(&s, "/v1/catalog/service/WEB").await.json().as_array().unwrap().len(), 2);
    assert_eq!(get(&s, "/v1/catalog/service/nope").await.json(), json!([]));

    let all = get(&s, "/v1/health/service/web").await.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["Service"]["ID"], "web-1");
    assert!(all[0]["Node"]["Node"].is_string());
    assert_eq!(all[0]["Checks"][0]["CheckID"], "service:web-1");
    for flag in ["passing", "passing=1", "passing=true"] {
        let only = get(&s, &format!("/v1/health/service/web?{flag}")).await.json();
        let ids: Vec<&str> = only.as_array().unwrap().iter().map(|e| e["Service"]["ID"].as_str().unwrap()).collect();
        assert_eq!(ids, ["web-1"], "?{flag}");
    }
    assert_eq!(get(&s, "/v1/health/service/web?passing=0").await.json().as_array().unwrap().len(), 2);
    assert_eq!(get(&s, "/v1/health/service/web?tag=v2").await.json()[0]["Service"]["ID"], "web-2");
    assert_eq!(get(&s, "/v1/health/service/web?tag=v1&tag=v2").await.json(), json!([]));
    let unknown = get(&s, "/v1/health/service/nope").await;
    assert_eq!((unknown.status, unknown.json()), (StatusCode::OK, json!([])));

    let hc = get(&s, "/v1/health/checks/web").await.json();
    let ids: Vec<&str> = hc.as_array().unwrap().iter().map(|c| c["CheckID"].as_str().unwrap()).collect();
    assert_eq!(ids, ["service:web-1", "service:web-2"]);
    assert_eq!(hc[1]["Status"], "critical");
    assert_eq!(hc[1]["Output"], "");

    let leader = get(&s, "/v1/status/leader").await;
    assert_eq!(leader.json(), json!(s.api.trim_start_matches("http://")));
}

#[tokio::test]
async fn agent_health_by_name_answers_with_the_worst_status() {
    let s = server().start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Check": {"TTL": "1m", "Status": "passing"}}),
    )
    .await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Check": {"TTL": "1m", "Status": "passing"}}),
    )
    .await;
    let path = "/v1/agent/health/service/name/web";
    let a = get(&s, path).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()[0]["AggregatedStatus"], "passing");
    assert_eq!(a.json()[0]["Service"]["ID"], "web-1");
    ok_put(&s, "/v1/agent/check/warn/service:web-2").await;
    assert_eq!(get(&s, path).await.status, StatusCode::TOO_MANY_REQUESTS);
    let text = get(&s, &format!("{path}?format=text")).await;
    assert_eq!((text.status, text.text.as_str()), (StatusCode::TOO_MANY_REQUESTS, "warning"));
    ok_put(&s, "/v1/agent/check/fail/service:web-1").await;
    assert_eq!(get(&s, path).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let a = get(&s, "/v1/agent/health/service/name/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.text.contains("nope"));
}

#[tokio::test]
async fn replace_existing_checks_drops_checks_not_given_again() {
    let s = server().start().await;
    let two = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1",
                     "Checks": [{"CheckID": "a", "TTL": "1m"}, {"CheckID": "b", "TTL": "1m"}]});
    let one = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Checks": [{"CheckID": "a", "TTL": "1m"}]});
    let ids = |v: Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    register(&s, two.clone()).await;
    register(&s, one.clone()).await;
    assert_eq!(ids(get(&s, "/v1/agent/checks").await.json()), ["a", "b"], "kept without the flag (Consul's rule)");
    for flag in ["replace-existing-checks", "replace-existing-checks=1", "replace-existing-checks=true"] {
        register(&s, two.clone()).await;
        let a = put(&s, &format!("/v1/agent/service/register?{flag}"), Some(one.clone())).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(ids(get(&s, "/v1/agent/checks").await.json()), ["a"], "?{flag}");
    }
}

#[tokio::test]
async fn a_check_id_of_another_instance_is_409() {
    let s = server().start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Check": {"CheckID": "shared", "TTL": "1m"}}),
    )
    .await;
    let before = catalog(&s).await;
    let body =
        json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Check": {"CheckID": "shared", "TTL": "1m"}});
    let a = put(&s, "/v1/agent/service/register", Some(body)).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert!(a.text.contains("shared"), "{}", a.text);
    assert_eq!(catalog(&s).await, before);
}

#[tokio::test]
async fn blocking_queries_return_on_a_change_or_at_the_wait() {
    let s = server().config(ONE_BLOCKING).start().await;
    register(&s, web("web-1", "10.0.0.1")).await;
    let index = get(&s, "/v1/catalog/services").await.index;

    let start = Instant::now();
    let a = get(&s, &format!("/v1/catalog/services?index={index}&wait=200ms")).await;
    let waited = start.elapsed();
    assert_eq!(a.index, index);
    assert!(waited >= Duration::from_millis(190) && waited < Duration::from_secs(5), "waited {waited:?}");

    let blocked = held(&s, &format!("/v1/health/service/web?index={index}&wait=30s")).await;
    register(&s, web("web-2", "10.0.0.2")).await;
    let (a, took) = tokio::time::timeout(DEADLINE, blocked).await.unwrap().unwrap();
    assert!(a.index > index);
    assert_eq!(a.json().as_array().unwrap().len(), 2);
    assert!(took < Duration::from_secs(5), "answered {took:?} after the query, not at the wait");

    // An index already passed answers at once.
    let start = Instant::now();
    assert_eq!(get(&s, "/v1/agent/services?index=0&wait=10s").await.status, StatusCode::OK);
    assert!(start.elapsed() < Duration::from_secs(2));
    for (q, want) in [("index=x", "index: \"x\" is not a number"), ("index=1&wait=5", "wait: invalid duration")] {
        let a = get(&s, &format!("/v1/catalog/services?{q}")).await;
        assert_eq!((a.status, a.text.starts_with(want)), (StatusCode::BAD_REQUEST, true), "{q}: {}", a.text);
    }
}

#[tokio::test]
async fn x_consul_index_never_decreases() {
    let s = server().start().await;
    let mut last = 0;
    let mut seen = |a: &Answer, what: &str| {
        assert!(a.index >= 1 && a.index >= last, "{what}: index {} after {last}", a.index);
        last = a.index;
    };
    for i in 0..5 {
        seen(&get(&s, "/v1/agent/services").await, "agent/services");
        register(&s, web(&format!("web-{i}"), &format!("10.0.0.{}", i + 1))).await;
        seen(&get(&s, "/v1/health/service/web").await, "health/service");
        seen(&get(&s, "/v1/catalog/services").await, "catalog/services");
        ok_put(&s, &format!("/v1/agent/service/deregister/web-{i}")).await;
        seen(&get(&s, "/v1/agent/checks").await, "agent/checks");
    }
    assert!(last >= 10, "every write bumped the index: {last}");
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_configured() {
    let s = server().config("[http]\ntoken = \"s3cret\"\n").start().await;
    let path = "/v1/agent/service/register";
    let before = catalog(&s).await;
    let bad_body = json!({"Name": "no good"});
    for (header, value) in [
        (None, ""),
        (Some("x-consul-token"), "wrong"),
        (Some("authorization"), "Bearer wrong"),
        (Some("authorization"), "s3cret"),
        (Some("x-consul-token"), "s3cret-"),
    ] {
        for body in [web("web-1", "10.0.0.1"), bad_body.clone()] {
            let mut req = client().put(s.url(path)).body(body.to_string());
            if let Some(h) = header {
                req = req.header(h, value);
            }
            let a = send(req).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{header:?}: {value}");
            assert!(a.text.starts_with("Permission denied"), "{}", a.text);
            assert_eq!(catalog(&s).await, before);
        }
    }
    let a =
        send(client().put(s.url(path)).header("X-Consul-Token", "s3cret").body(web("web-1", "10.0.0.1").to_string()))
            .await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    let a = send(
        client().put(s.url(path)).header("Authorization", "Bearer s3cret").body(web("web-2", "10.0.0.2").to_string()),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.1", "10.0.0.2"]);

    // Every write route is guarded; reads are open.
    let after = catalog(&s).await;
    for path in [
        "/v1/agent/service/deregister/web-1",
        "/v1/agent/service/maintenance/web-1?enable=true",
        "/v1/agent/check/pass/service:web-1",
        "/v1/agent/check/update/service:web-1",
    ] {
        assert_eq!(put(&s, path, None).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(catalog(&s).await, after);
    assert_eq!(get(&s, "/v1/health/service/web").await.status, StatusCode::OK);
}

#[tokio::test]
async fn registrations_survive_a_restart_over_the_same_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let s = server().data_dir(data.path()).start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1"], "Check": {"TTL": "1h"}})).await;
    register(&s, web("web-2", "10.0.0.2")).await;
    register(&s, web("web-3", "10.0.0.3")).await;
    ok_put(&s, "/v1/agent/check/pass/service:web-1?note=fine").await;
    ok_put(&s, "/v1/agent/service/maintenance/web-2?enable=1&reason=later").await;
    ok_put(&s, "/v1/agent/service/deregister/web-3").await;
    let before = catalog(&s).await;
    let index = get(&s, "/v1/agent/services").await.index;
    s.stop().await;

    let s = server().data_dir(data.path()).start().await;
    assert_eq!(catalog(&s).await, before);
    assert_eq!(dns_a(&s, "web.service.local.").await.1, ["10.0.0.1"]);
    assert!(get(&s, "/v1/agent/services").await.index >= index, "the index does not go back");
}

#[tokio::test]
async fn liveness_readiness_and_unknown_routes() {
    let s = server().start().await;
    assert_eq!(get(&s, "/healthz").await.status, StatusCode::OK);
    assert_eq!(get(&s, "/readyz").await.status, StatusCode::OK);
    assert_eq!(get(&s, "/v1/nope").await.status, StatusCode::NOT_FOUND);
    let a = send(client().get(s.url("/v1/agent/service/register"))).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn an_http_port_in_use_is_one_clear_error_with_the_remedy() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = crate::binary::signpost()
        .args(["serve", "--dns-addr", "127.0.0.1:0", "--http-addr", &addr, "--zones", "/nonexistent"])
        .args(["--data-dir", tempfile::tempdir().unwrap().path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot bind http {addr}")), "{stderr}");
    assert!(last.contains("--http-addr 127.0.0.1:8501"), "the remedy is named: {stderr}");
}

#[tokio::test]
async fn the_binary_serves_the_api_on_the_port_it_logs() {
    let data = tempfile::tempdir().unwrap();
    let b = crate::binary::Binary::serve(
        &["--dns-addr", "127.0.0.1:0", "--zones", "/nonexistent", "--data-dir", data.path().to_str().unwrap()],
        &[],
    );
    let url = format!("http://{}/v1/agent/service/register", b.http);
    let a = send(client().put(url).body(web("web-1", "10.0.0.1").to_string())).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    let m = query(b.dns_udp, Transport::Udp, &Ask::new("web.service.local.", RecordType::A)).await;
    assert_eq!(addresses(&m), ["10.0.0.1"]);
}

#[tokio::test]
async fn shutdown_answers_blocking_queries_at_once() {
    let s = server().config(ONE_BLOCKING).start().await;
    let index = get(&s, "/v1/agent/services").await.index;
    // No change will come: only the shutdown can answer it.
    let blocked = held(&s, &format!("/v1/agent/services?index={index}&wait=5m")).await;
    let start = Instant::now();
    s.stop().await;
    let (a, _) = tokio::time::timeout(DEADLINE, blocked).await.unwrap().unwrap();
    assert_eq!((a.status, a.index), (StatusCode::OK, index), "the in-flight query is answered");
    assert!(start.elapsed() < Duration::from_secs(2), "shutdown took {:?}", start.elapsed());
}

#[tokio::test]
async fn the_readme_curl_session_works() {
    let readme = docs_text();
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("/v1/agent/service/register") && b.contains("check/pass"))
        .expect("the README shows a curl session");
    let s = server().start().await;
    // `-f` turns an HTTP error into a failed command, `set -e` into a failed script.
    let script = format!("set -e\n{}", block.replace("http://127.0.0.1:8500", &s.api).replace("curl ", "curl -sSf "));
    let out = tokio::process::Command::new("sh").args(["-c", &script]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"ID\":\"web-1\""), "the health read shows the passing instance: {stdout}");
    assert_eq!(get(&s, "/v1/agent/services").await.json(), json!({}), "and the session ends deregistered");
}
