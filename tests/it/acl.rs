//! Tokens scoped to services, over real HTTP: a team token writing its own services and refused
//! everyone else's (by name and by id), reads by the same rules, tokens from every place Consul
//! clients put them, secret files rotated while the server runs, and the audit lines.

use std::path::{Path, PathBuf};

use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{Answer, send};
use crate::support::*;

pub const MANAGEMENT: &str = "m4nagement-s3cret";
pub const PAYMENTS: &str = "p4yments-s3cret";

/// A folder with the payments team's secret file, and the configuration naming it: the
/// management token, and `payments-ci` writing `payment-*` and reading everything.
pub fn team_config(dir: &Path) -> (String, PathBuf) {
    let secret = dir.join("payments-ci");
    crate::pki::write_atomically(&secret, &format!("{PAYMENTS}\n"));
    let config = format!(
        "[http]\ntoken = \"{MANAGEMENT}\"\n\n[[acl.token]]\nname = \"payments-ci\"\nsecret_file = {secret:?}\n\
         service_prefix = {{ \"payment-\" = \"write\", \"\" = \"read\" }}\n"
    );
    (config, secret)
}

fn body(name: &str, id: &str) -> String {
    json!({"Name": name, "ID": id, "Address": "10.0.0.1", "Port": 80, "Check": {"TTL": "1h"}}).to_string()
}

async fn put_as(s: &TestServer, token: Option<&str>, path: &str, body: Option<String>) -> Answer {
    let mut req = http_client().put(s.url(path));
    if let Some(t) = token {
        req = req.header("X-Consul-Token", t);
    }
    send(match body {
        Some(b) => req.body(b),
        None => req,
    })
    .await
}

async fn get_as(s: &TestServer, token: Option<&str>, path: &str) -> Answer {
    let mut req = http_client().get(s.url(path));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    send(req).await
}

async fn catalog(s: &TestServer) -> Value {
    get_as(s, Some(MANAGEMENT), "/v1/agent/services").await.json()
}

#[tokio::test]
async fn a_team_token_writes_its_services_and_nothing_else_even_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = team_config(dir.path());
    let s = server().config(&config).start().await;
    let register = "/v1/agent/service/register";

    let a = put_as(&s, Some(PAYMENTS), register, Some(body("payment-api", "payment-api-1"))).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    // Names are case-insensitive here, prefixes too.
    let a = put_as(&s, Some(PAYMENTS), register, Some(body("Payment-Worker", "payment-worker-1"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = put_as(&s, Some(MANAGEMENT), register, Some(body("orders", "orders-1"))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let before = catalog(&s).await;

    let a = put_as(&s, Some(PAYMENTS), register, Some(body("orders", "orders-2"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.text,
        "Permission denied: service:write on \"orders\" is refused by the rule service_prefix \"\" = \"read\""
    );
    assert!(!a.text.contains(PAYMENTS) && !a.text.contains("payments-ci"), "names the rule, not the token");

    // By id: the service the id belongs to decides, whatever the request says.
    for path in [
        "/v1/agent/service/deregister/orders-1",
        "/v1/agent/service/deregister/ORDERS-1",
        "/v1/agent/service/maintenance/orders-1?enable=true",
        "/v1/agent/check/pass/service:orders-1",
        "/v1/agent/check/warn/service:orders-1",
        "/v1/agent/check/fail/service:orders-1",
    ] {
        let a = put_as(&s, Some(PAYMENTS), path, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
        assert!(a.text.contains("service:write on \"orders\""), "{path}: {}", a.text);
    }
    let a =
        put_as(&s, Some(PAYMENTS), "/v1/agent/check/update/service:orders-1", Some(r#"{"Status":"passing"}"#.into()))
            .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    // Re-registering another service's id under one's own service would take it over.
    let a = put_as(&s, Some(PAYMENTS), register, Some(body("payment-api", "orders-1"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.text.contains("service:write on \"orders\""), "{}", a.text);
    assert_eq!(catalog(&s).await, before, "no refused write changed anything");
    assert_eq!(addresses(&s.udp("orders.service.local.", RecordType::A).await), Vec::<String>::new());

    // Its own, by id: allowed.
    for path in
        ["/v1/agent/check/pass/service:payment-api-1", "/v1/agent/service/maintenance/payment-api-1?enable=false"]
    {
        assert_eq!(put_as(&s, Some(PAYMENTS), path, None).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(addresses(&s.udp("payment-api.service.local.", RecordType::A).await), ["10.0.0.1"]);
    let a = put_as(&s, Some(PAYMENTS), "/v1/agent/service/deregister/payment-worker-1", None).await;
    assert_eq!(a.status, StatusCode::OK);
    // An unknown id is the registry's 404, as before.
    assert_eq!(
        put_as(&s, Some(PAYMENTS), "/v1/agent/service/deregister/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tokens_arrive_as_consul_clients_send_them_and_unknown_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = team_config(dir.path());
    let s = server().config(&config).start().await;
    let url = s.url("/v1/agent/service/register");
    let ok = [
        http_client().put(&url).header("X-Consul-Token", PAYMENTS),
        http_client().put(&url).header("Authorization", format!("Bearer {PAYMENTS}")),
        http_client().put(format!("{url}?token={PAYMENTS}")),
    ];
    for (i, req) in ok.into_iter().enumerate() {
        let a = send(req.body(body("payment-api", &format!("payment-api-{i}")))).await;
        assert_eq!(a.status, StatusCode::OK, "{i}: {}", a.text);
    }
    // Without a token: reads are open, writes need one.
    let a = put_as(&s, None, "/v1/agent/service/register", Some(body("payment-api", "x"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.text.starts_with("Permission denied: writes need a token"), "{}", a.text);
    assert_eq!(get_as(&s, None, "/v1/catalog/services").await.status, StatusCode::OK);
    // A token nobody knows is refused everywhere, also where no token would do.
    for a in [
        put_as(&s, Some("guess"), "/v1/agent/service/register", Some(body("payment-api", "x"))).await,
        get_as(&s, Some("guess"), "/v1/catalog/services").await,
    ] {
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(a.text.starts_with("Permission denied: ACL not found"), "{}", a.text);
    }
}

#[tokio::test]
async fn reads_follow_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let secret = crate::pki::write_atomically(&dir.path().join("pay"), "pay-read-only");
    let config = format!(
        "[http]\ntoken = \"{MANAGEMENT}\"\n[acl.anonymous]\nservice_prefix = {{ \"public-\" = \"read\" }}\n\
         [[acl.token]]\nname = \"pay\"\nsecret_file = {secret:?}\nservice_prefix = {{ \"payment-\" = \"read\" }}\n"
    );
    let s = server().config(&config).start().await;
    for (name, id) in [("payment-api", "payment-api-1"), ("orders", "orders-1"), ("public-web", "public-web-1")] {
        assert_eq!(put_as(&s, Some(MANAGEMENT), "/v1/agent/service/register", Some(body(name, id))).await.status, 200);
    }
    // (token, path, allowed)
    let cases = [
        (Some("pay-read-only"), "/v1/health/service/payment-api", true),
        (Some("pay-read-only"), "/v1/catalog/service/payment-api", true),
        (Some("pay-read-only"), "/v1/agent/service/payment-api-1", true),
        (Some("pay-read-only"), "/v1/health/service/orders", false),
        (Some("pay-read-only"), "/v1/agent/service/orders-1", false),
        (Some("pay-read-only"), "/v1/catalog/services", false),
        (Some("pay-read-only"), "/ui/state", false),
        (None, "/v1/health/service/public-web", true),
        (None, "/v1/health/checks/public-web", true),
        (None, "/v1/health/service/orders", false),
        (None, "/v1/agent/services", false),
        (None, "/v1/health/state/any", false),
        (None, "/healthz", true),
        (None, "/metrics", true),
        (Some(MANAGEMENT), "/v1/agent/services", true),
    ];
    for (token, path, allowed) in cases {
        let a = get_as(&s, token, path).await;
        assert_eq!(a.status == StatusCode::OK, allowed, "{token:?} {path}: {} {}", a.status, a.text);
        if !allowed {
            assert!(a.text.starts_with("Permission denied: service:read on "), "{path}: {}", a.text);
        }
    }
    let a = get_as(&s, None, "/v1/agent/services").await;
    assert!(a.text.contains("no token"), "a refusal without a token says how to send one: {}", a.text);
    // The page asks for a token that may read everything.
    let a = get_as(&s, None, "/ui").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.text.contains("action=\"/ui/login\""), "{}", a.text);
}

/// `signpost_reloads_total{kind="tokens",result}`.
async fn token_reloads(s: &TestServer, result: &str) -> u64 {
    let text = http_client().get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("signpost_reloads_total{{kind=\"tokens\",result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_rotated_secret_file_takes_effect_and_a_broken_one_keeps_the_secret_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (config, secret) = team_config(dir.path());
    let s = server().config(&config).start().await;
    let try_write = |token: &'static str| {
        let s = &s;
        async move { put_as(s, Some(token), "/v1/agent/service/register", Some(body("payment-api", "p-1"))).await.status }
    };
    assert_eq!(try_write(PAYMENTS).await, StatusCode::OK);

    crate::pki::write_atomically(&secret, "r0tated-s3cret\n");
    wait_for("the rotated secret", || async { try_write("r0tated-s3cret").await == StatusCode::OK }).await;
    assert_eq!(try_write(PAYMENTS).await, StatusCode::FORBIDDEN, "the old secret is gone");

    let errors = token_reloads(&s, "error").await;
    crate::pki::write_atomically(&secret, "\n");
    wait_for("the refused reload", || async { token_reloads(&s, "error").await > errors }).await;
    assert_eq!(try_write("r0tated-s3cret").await, StatusCode::OK, "an empty file changes nothing");
}

/// The next audit lines of a running binary (JSON log format), as objects.
fn audit_lines(b: &crate::binary::Binary, n: usize, all: &mut Vec<String>) -> Vec<Value> {
    let mut found = Vec::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while found.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line =
            b.log.recv_timeout(left).unwrap_or_else(|_| panic!("{} audit lines of {n}: {found:#?}", found.len()));
        all.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["target"] == "signpost::audit" {
            found.push(v);
        }
    }
    found
}

#[tokio::test]
async fn every_write_leaves_one_audit_line_and_no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = team_config(dir.path());
    let file = dir.path().join("signpost.toml");
    std::fs::write(&file, config).unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let data = dir.path().join("data");
    let args = ["--config", file.to_str().unwrap(), "--log-format", "json", "--dns-addr", "127.0.0.1:0"];
    let b = crate::binary::Binary::serve(
        &[&args[..], &["--zones", zones.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]].concat(),
        &[],
    );
    let api = format!("http://{}", b.http);
    let put = |token: Option<&'static str>, path: &'static str, body: Option<String>| {
        let mut req = http_client().put(format!("{api}{path}"));
        if let Some(t) = token {
            req = req.header("X-Consul-Token", t);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let register = "/v1/agent/service/register";
    assert_eq!(put(Some(PAYMENTS), register, Some(body("payment-api", "payment-api-1"))).await, 200);
    assert_eq!(put(Some(PAYMENTS), register, Some(body("orders", "orders-9"))).await, 403);
    assert_eq!(put(None, register, Some(body("payment-api", "payment-api-2"))).await, 403);
    assert_eq!(put(Some("guess"), "/v1/agent/service/deregister/payment-api-1", None).await, 403);
    assert_eq!(put(Some(PAYMENTS), "/v1/agent/check/pass/service:payment-api-1", None).await, 200);
    assert_eq!(put(Some(MANAGEMENT), "/v1/agent/service/deregister/payment-api-1", None).await, 200);

    let mut all: Vec<String> = b.startup_log.clone();
    let lines = audit_lines(&b, 6, &mut all);
    let fields = |v: &Value| {
        ["token", "route", "service", "id", "outcome", "status"].map(|k| match &v[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let want = [
        ["payments-ci", register, "payment-api", "payment-api-1", "accepted", "200"],
        ["payments-ci", register, "orders", "orders-9", "refused", "403"],
        ["anonymous", register, "", "", "refused", "403"],
        ["unknown", "/v1/agent/service/deregister/{id}", "", "payment-api-1", "refused", "403"],
        ["payments-ci", "/v1/agent/check/pass/{id}", "payment-api", "payment-api-1", "accepted", "200"],
        ["management", "/v1/agent/service/deregister/{id}", "payment-api", "payment-api-1", "accepted", "200"],
    ];
    for (line, want) in lines.iter().zip(want) {
        assert_eq!(fields(line), want, "{line}");
        assert_eq!((line["remote"].as_str(), line["method"].as_str()), (Some("127.0.0.1"), Some("PUT")), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
    }
    assert!(lines[1]["reason"].as_str().unwrap().contains("service_prefix \"\" = \"read\""), "{}", lines[1]);
    assert!(lines[3]["reason"].as_str().unwrap().contains("unknown token"), "{}", lines[3]);
    for line in &all {
        assert!(!line.contains(PAYMENTS) && !line.contains(MANAGEMENT) && !line.contains("guess"), "{line}");
    }
    // README's sample line has the fields a real one has, and reads as the refusal above did.
    let sample: Value = serde_json::from_str(crate::cli::readme_block("json", "signpost::audit").trim()).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&sample), keys(&lines[1]));
    for k in ["message", "route", "service", "outcome", "status", "reason", "target"] {
        assert_eq!(sample[k], lines[1][k], "{k}");
    }
}

#[test]
fn a_token_whose_secret_cannot_be_read_stops_the_start_naming_the_token_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = crate::pki::write_atomically(&dir.path().join("empty"), "\n");
    for (file, problem) in [(&missing, "cannot read the secret: No such file or directory"), (&empty, "is empty")] {
        let config = dir.path().join("signpost.toml");
        std::fs::write(&config, format!("[[acl.token]]\nname = \"ci\"\nsecret_file = {file:?}\n")).unwrap();
        let out = crate::binary::signpost()
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--dns-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
            ])
            .args(["--zones", dir.path().to_str().unwrap(), "--data-dir", dir.path().join("data").to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let last = stderr.lines().last().unwrap();
        assert!(
            last.contains("acl.token \"ci\"") && last.contains(&file.display().to_string()) && last.contains(problem),
            "{last}"
        );
    }
    // The secret from the environment instead.
    let config = dir.path().join("signpost.toml");
    std::fs::write(&config, "[[acl.token]]\nname = \"ci\"\nservice_prefix = { \"\" = \"write\" }\n").unwrap();
    let zones = dir.path().to_str().unwrap();
    let data = dir.path().join("data2");
    let b = crate::binary::Binary::serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--dns-addr",
            "127.0.0.1:0",
            "--zones",
            zones,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[("SIGNPOST_ACL_CI", "from-the-env")],
    );
    let status = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "X-Consul-Token: from-the-env"])
        .args(["-d", &body("web", "web-1"), &format!("http://{}/v1/agent/service/register", b.http)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
}
