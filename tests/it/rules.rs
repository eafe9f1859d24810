//! The same input gets the same answer on every path a registration can take: the HTTP API (a
//! 400 naming the field), a zone file (`file:line:col` from `signpost check-zones`, or the
//! instance served) and the command line (`signpost register`, refusing the flag). One test per
//! rule the paths used to decide differently.

use std::process::Output;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::api::{Answer, get, put};
use crate::binary::signpost;
use crate::support::*;

/// `PUT /v1/agent/service/register` with `body`.
async fn api_register(s: &TestServer, body: Value) -> Answer {
    put(s, "/v1/agent/service/register", Some(body)).await
}

/// `signpost register ARGS` against `s` (waited for without blocking the server, which runs on
/// this test's runtime).
async fn cli_register(s: &TestServer, args: &[&str]) -> Output {
    let mut cmd = signpost();
    cmd.arg("register").args(args).args(["--api", &s.api]);
    tokio::process::Command::from(cmd).output().await.unwrap()
}

/// The CLI refused a flag before sending anything: clap's usage error naming it, and the rule.
fn cli_refused(out: &Output, flag: &str, rule: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("'{flag} <")), "names {flag}: {stderr}");
    assert!(stderr.contains(rule), "says {rule:?}: {stderr}");
}

fn cli_ok(out: &Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `signpost check-zones` over a folder holding `text` as `z.toml`: exit code and stdout.
fn check_zone(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("z.toml"), text).unwrap();
    let out = signpost().arg("check-zones").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", dir.path().display()), "");
    (out.status.code(), stdout)
}

/// A zone file refused with exactly this `z.toml:line:col: message` line.
fn zone_refused(text: &str, want: &str) {
    let (code, stdout) = check_zone(text);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with(want)), "want {want:?} in:\n{stdout}");
}

/// A zone file of service `web` with one instance `id` at `address`, plus `extra` lines.
fn zone(id: &str, address: &str, extra: &str) -> String {
    format!(
        "[[service]]\nname = \"web\"\n[[service.instance]]\nid = \"{id}\"\naddress = \"{address}\"\nport = 80\n{extra}"
    )
}

/// The instance `id` as `/v1/agent/services` shows it, once it is there.
async fn shown(s: &TestServer, id: &str) -> Value {
    wait_for(&format!("{id} in /v1/agent/services"), || async {
        !get(s, "/v1/agent/services").await.json()[id].is_null()
    })
    .await;
    get(s, "/v1/agent/services").await.json()[id].clone()
}

async fn nothing_registered_by_the_api(s: &TestServer) {
    assert_eq!(get(s, "/v1/agent/services").await.json(), json!({}), "a refused registration changes nothing");
}

/// The API used to take `dns-ttl` "500ms" as TTL 0 (caching off, silently) where zone files
/// refused it.
#[tokio::test]
async fn a_sub_second_dns_ttl_is_refused_on_every_path() {
    let s = server().start().await;
    let rule = "\"500ms\" must be 0 or at least 1s: DNS TTLs are whole seconds";
    let a = api_register(&s, json!({"Name": "web", "Meta": {"dns-ttl": "500ms"}})).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.text.trim(), format!("Meta.dns-ttl: {rule}"));
    nothing_registered_by_the_api(&s).await;

    zone_refused("[[service]]\nname = \"web\"\nttl = \"500ms\"\n", &format!("z.toml:3:7: ttl: {rule}"));
    zone_refused(
        &zone("web-1", "10.0.0.1", "meta = { dns-ttl = \"500ms\" }\n"),
        &format!("z.toml:7:10: meta.dns-ttl: {rule}"),
    );

    cli_refused(&cli_register(&s, &["--name", "web", "--meta", "dns-ttl=500ms"]).await, "--meta", rule);
    nothing_registered_by_the_api(&s).await;

    // And a whole-second TTL means the same everywhere, zone-file meta included.
    s.write_zone("z.toml", &zone("web-1", "10.0.0.1", "meta = { dns-ttl = \"7s\" }\n"));
    wait_for("the zone file's TTL", || async {
        let m = s.udp("web.service.local.", RecordType::A).await;
        m.answers.first().is_some_and(|r| r.ttl == 7)
    })
    .await;
}

/// A host name with `_` or a trailing dot was accepted by the API only.
#[tokio::test]
async fn host_names_with_an_underscore_or_a_trailing_dot_are_accepted_on_every_path() {
    let s = server().start().await;
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "my_db.internal."})).await;
    assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, ""));
    s.write_zone("z.toml", &zone("web-2", "my_db.internal.", ""));
    cli_ok(&cli_register(&s, &["--name", "web", "--id", "web-3", "--address", "my_db.internal."]).await);
    for id in ["web-1", "web-2", "web-3"] {
        assert_eq!(shown(&s, id).await["Address"], "my_db.internal", "{id}: one spelling, without the dot");
    }
    let (code, stdout) = check_zone(&zone("web-2", "my_db.internal.", ""));
    assert_eq!(code, Some(0), "{stdout}");
}

/// The API kept a host name's case as given where zone files lowercased it.
#[tokio::test]
async fn a_host_names_case_is_one_spelling_on_every_path() {
    let s = server().start().await;
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "DB.Example.Internal"})).await;
    assert_eq!(a.status, StatusCode::OK);
    s.write_zone("z.toml", &zone("web-2", "DB.Example.Internal", ""));
    cli_ok(&cli_register(&s, &["--name", "web", "--id", "web-3", "--address", "DB.Example.Internal"]).await);
    for id in ["web-1", "web-2", "web-3"] {
        assert_eq!(shown(&s, id).await["Address"], "db.example.internal", "{id}");
    }
}

/// The API answered an IPv4-mapped IPv6 address as IPv4 (A), zone files as IPv6 (AAAA).
#[tokio::test]
async fn an_ipv4_mapped_address_is_answered_as_ipv4_on_every_path() {
    let s = server().start().await;
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "::ffff:10.0.0.1"})).await;
    assert_eq!(a.status, StatusCode::OK);
    s.write_zone("z.toml", &zone("web-2", "::ffff:10.0.0.2", ""));
    cli_ok(&cli_register(&s, &["--name", "web", "--id", "web-3", "--address", "::ffff:10.0.0.3"]).await);
    wait_for("the zone file", || async { !s.udp("web-2.instance.local.", RecordType::A).await.answers.is_empty() })
        .await;
    for (id, want) in [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"), ("web-3", "10.0.0.3")] {
        let name = format!("{id}.instance.local.");
        assert_eq!(addresses(&s.udp(&name, RecordType::A).await), [want], "{id}");
        assert!(s.udp(&name, RecordType::AAAA).await.answers.is_empty(), "{id}: no AAAA");
        assert_eq!(shown(&s, id).await["Address"], want, "{id}");
    }
}

/// An HTTP target answering 200 to any method, recording the methods it saw.
async fn any_method_target() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |method: axum::http::Method| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(method.to_string());
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// The API took any letters as a method and uppercased them; zone files refused lowercase.
#[tokio::test]
async fn http_check_methods_are_read_alike_on_every_path() {
    let s = server().start().await;
    let (target, seen) = any_method_target().await;
    let url = format!("http://{target}/health");
    let check = json!({"HTTP": url, "Method": "post", "Interval": "1h"});
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Check": check})).await;
    assert_eq!(a.status, StatusCode::OK);
    let check = format!("check = {{ http = \"{url}\", method = \"post\", interval = \"1h\" }}\n");
    s.write_zone("z.toml", &zone("web-2", "10.0.0.2", &check));
    // The command line has no --method: its HTTP checks are GET, as Consul's default.
    wait_for("both probes", || async { seen.lock().unwrap().len() >= 2 }).await;
    assert_eq!(*seen.lock().unwrap(), ["POST", "POST"]);
    // The target saw the request before the prober recorded its answer: wait for both outputs.
    let recorded = |checks: &serde_json::Value| {
        ["service:web-1", "service:web-2"].iter().all(|id| checks[id]["Output"].as_str().is_some_and(|o| !o.is_empty()))
    };
    wait_for("both outputs", || async { recorded(&get(&s, "/v1/agent/checks").await.json()) }).await;
    let checks = get(&s, "/v1/agent/checks").await.json();
    for id in ["service:web-1", "service:web-2"] {
        let output = checks[id]["Output"].as_str().unwrap();
        assert!(output.starts_with(&format!("HTTP POST {url}: 200")), "{id}: {output}");
    }

    let rule = "\"GE T\" is not an HTTP method";
    let bad = json!({"HTTP": url, "Method": "GE T", "Interval": "1s"});
    let a = api_register(&s, json!({"Name": "db", "Check": bad})).await;
    assert_eq!((a.status, a.text.trim()), (StatusCode::BAD_REQUEST, format!("Check.Method: {rule}").as_str()));
    let check = format!("check = {{ http = \"{url}\", method = \"GE T\" }}\n");
    let col = check.find("\"GE T\"").unwrap() + 1;
    zone_refused(&zone("web-2", "10.0.0.2", &check), &format!("z.toml:7:{col}: method: {rule}"));
}

/// Zone files refused tags that are not DNS labels, which Consul and the API accept.
#[tokio::test]
async fn tags_that_are_not_dns_labels_are_accepted_on_every_path() {
    let s = server().start().await;
    let tags = ["v1", "traefik.enable=true"];
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Tags": tags})).await;
    assert_eq!(a.status, StatusCode::OK);
    s.write_zone("z.toml", &zone("web-2", "10.0.0.2", "tags = [\"v1\", \"traefik.enable=true\"]\n"));
    cli_ok(
        &cli_register(
            &s,
            &["--name", "web", "--id", "web-3", "--address", "10.0.0.3", "--tag", "v1", "--tag", "traefik.enable=true"],
        )
        .await,
    );
    for id in ["web-1", "web-2", "web-3"] {
        assert_eq!(shown(&s, id).await["Tags"], json!(tags), "{id}");
    }
    let m = s.udp("v1.web.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m).len(), 3, "a tag that is a label is a DNS name");

    zone_refused(&zone("web-2", "10.0.0.2", "tags = [\"\"]\n"), "z.toml:7:9: tag: must not be empty");
    let a = api_register(&s, json!({"Name": "db", "Tags": [""]})).await;
    assert_eq!((a.status, a.text.trim()), (StatusCode::BAD_REQUEST, "Tags[0]: must not be empty"));
    cli_refused(&cli_register(&s, &["--name", "db", "--tag", ""]).await, "--tag", "must not be empty");
}

/// Zone files allowed meta values of 4096 bytes and any key; the API, as Consul, 512 bytes and
/// keys of `A-Z a-z 0-9 _ -`.
#[tokio::test]
async fn meta_limits_are_the_same_on_every_path() {
    let s = server().start().await;
    let long = "v".repeat(513);
    let a = api_register(&s, json!({"Name": "web", "Meta": {"k": long}})).await;
    assert_eq!((a.status, a.text.trim()), (StatusCode::BAD_REQUEST, "Meta.k: is longer than 512 bytes"));
    zone_refused(
        &zone("web-1", "10.0.0.1", &format!("meta = {{ k = \"{long}\" }}\n")),
        "z.toml:7:10: meta.k: is longer than 512 bytes",
    );
    cli_refused(
        &cli_register(&s, &["--name", "web", "--meta", &format!("k={long}")]).await,
        "--meta",
        "is longer than 512 bytes",
    );

    let rule = "keys must be 1-128 characters of A-Z a-z 0-9 _ -";
    let a = api_register(&s, json!({"Name": "web", "Meta": {"a.b": "1"}})).await;
    assert_eq!((a.status, a.text.trim()), (StatusCode::BAD_REQUEST, format!("Meta.a.b: {rule}").as_str()));
    zone_refused(&zone("web-1", "10.0.0.1", "meta = { \"a.b\" = \"1\" }\n"), &format!("z.toml:7:10: meta.a.b: {rule}"));
    cli_refused(&cli_register(&s, &["--name", "web", "--meta", "a.b=1"]).await, "--meta", rule);
    nothing_registered_by_the_api(&s).await;

    // 512 bytes is fine everywhere.
    let ok = "v".repeat(512);
    let a = api_register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Meta": {"k": ok}})).await;
    assert_eq!(a.status, StatusCode::OK);
    let (code, stdout) = check_zone(&zone("web-2", "10.0.0.2", &format!("meta = {{ k = \"{ok}\" }}\n")));
    assert_eq!(code, Some(0), "{stdout}");
    cli_ok(
        &cli_register(&s, &["--name", "web", "--id", "web-3", "--address", "10.0.0.3", "--meta", &format!("k={ok}")])
            .await,
    );
}
