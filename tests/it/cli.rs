//! The client subcommands, black-box: the built binary registering with, and reading from, a
//! built binary serving; each step checked with a DNS query.

use std::process::Output;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::binary::{Binary, signpost};
use crate::support::{self, Ask, Transport, wait_for};

/// A server with no zone files and its own data dir.
struct Fixture {
    server: Binary,
    _dir: tempfile::TempDir,
}

fn serve(env: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let data = dir.path().join("data");
    let args = ["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    Fixture { server: Binary::serve(&args, env), _dir: dir }
}

impl Fixture {
    fn zones(&self) -> std::path::PathBuf {
        self._dir.path().join("zones")
    }

    fn api(&self) -> String {
        format!("http://{}", self.server.http)
    }

    /// Runs `signpost ARGS --api <this server>`.
    fn run(&self, args: &[&str]) -> Output {
        signpost().args(args).args(["--api", &self.api()]).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    async fn a(&self, name: &str) -> (ResponseCode, Vec<String>) {
        let m = support::query(self.server.dns_udp, Transport::Udp, &Ask::new(name, RecordType::A)).await;
        let mut addrs = support::addresses(&m);
        addrs.sort();
        (m.metadata.response_code, addrs)
    }
}

/// The stderr of a failed command, which must exit 1 with one line.
fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

/// The cells of a table's lines, split on runs of two or more spaces.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn register_list_pass_and_deregister_from_the_command_line() {
    let f = serve(&[]);
    let out = f.ok(&[
        "register",
        "--name",
        "web",
        "--id",
        "web-1",
        "--address",
        "10.1.0.1",
        "--port",
        "8080",
        "--tag",
        "v1",
        "--meta",
        "version=2",
        "--region",
        "eu",
    ]);
    assert!(out.contains("registered web-1"), "{out}");
    assert_eq!(f.a("web.service.local.").await, (ResponseCode::NoError, vec!["10.1.0.1".into()]));
    assert_eq!(f.a("v1.web.service.eu.local.").await.1, ["10.1.0.1"], "tag and region arrive");

    // A TTL check starts critical: registered, listed, not answered until its first heartbeat.
    let out = f.ok(&[
        "register",
        "--name",
        "web",
        "--id",
        "web-2",
        "--address",
        "10.1.0.2",
        "--port",
        "8080",
        "--ttl",
        "30s",
    ]);
    assert!(out.contains("signpost pass service:web-2"), "the heartbeat command is shown: {out}");
    assert_eq!(f.a("web.service.local.").await.1, ["10.1.0.1"]);
    assert_eq!(f.a("web-2.instance.local.").await.1, ["10.1.0.2"]);

    let services = f.ok(&["services"]);
    assert_eq!(
        cells(&services),
        [vec!["SERVICE", "INSTANCES", "HEALTHY", "DNS-SD TYPE"], vec!["web", "2", "1", "_web._tcp"]],
        "{services}"
    );
    let instances = f.ok(&["instances", "web"]);
    let rows = cells(&instances);
    assert_eq!(rows[0], ["ID", "ADDRESS", "PORT", "REGION", "STATUS", "LAST OUTPUT"], "{instances}");
    assert_eq!(rows[1], ["web-1", "10.1.0.1", "8080", "eu", "passing"], "{instances}");
    assert_eq!(rows[2], ["web-2", "10.1.0.2", "8080", "-", "critical"], "{instances}");
    // Columns line up: every header starts where its cells start.
    let lines: Vec<&str> = instances.lines().collect();
    let col = |line: &str, text: &str| line.find(text).unwrap();
    assert_eq!(col(lines[0], "STATUS"), col(lines[1], "passing"), "{instances}");
    assert_eq!(col(lines[0], "STATUS"), col(lines[2], "critical"), "{instances}");
    println!("{services}{instances}");

    f.ok(&["pass", "service:web-2", "--note", "warmed up"]);
    assert_eq!(f.a("web.service.local.").await.1, ["10.1.0.1", "10.1.0.2"], "a heartbeat is in the next answer");
    let rows = cells(&f.ok(&["instances", "web"]));
    assert_eq!(rows[2], ["web-2", "10.1.0.2", "8080", "-", "passing", "warmed up"]);
    assert_eq!(cells(&f.ok(&["services"]))[1], ["web", "2", "2", "_web._tcp"]);

    f.ok(&["deregister", "web-1"]);
    assert_eq!(f.a("web.service.local.").await.1, ["10.1.0.2"]);
    f.ok(&["deregister", "web-2"]);
    assert_eq!(f.a("web.service.local.").await, (ResponseCode::NXDomain, vec![]), "gone");
    assert_eq!(f.ok(&["services"]).trim(), "no services registered");
    let e = failure(&f.run(&["instances", "web"]));
    assert!(e.contains("no instances of service \"web\""), "{e}");
}

#[tokio::test]
async fn server_refusals_print_the_status_and_the_servers_line() {
    let f = serve(&[]);
    std::fs::write(
        f.zones().join("web.toml"),
        "[[service]]\nname = \"web\"\n[[service.instance]]\nid = \"web-1\"\naddress = \"10.1.0.1\"\nport = 80\n",
    )
    .unwrap();
    wait_for("the zone file", || async { f.a("web-1.instance.local.").await.1 == ["10.1.0.1"] }).await;
    let e = failure(&f.run(&["register", "--name", "web", "--id", "web-1", "--address", "10.1.0.9"]));
    assert!(e.starts_with("signpost: 409 Conflict: id \"web-1\" is declared in zone file "), "{e}");
    assert!(e.ends_with("web.toml; change it there"), "{e}");
    let e = failure(&f.run(&["deregister", "nope"]));
    assert_eq!(e, "signpost: 404 Not Found: unknown service id \"nope\"");
    let e = failure(&f.run(&["pass", "service:nope"]));
    assert_eq!(e, "signpost: 404 Not Found: unknown check id \"service:nope\"");
    let services = cells(&f.ok(&["services"]));
    assert_eq!(services[1], ["web", "1", "1", "_web._tcp"], "nothing changed");
}

#[test]
fn bad_flags_are_refused_naming_the_flag_before_anything_is_sent() {
    // Nothing listens at the API: the flags are checked by the same rules as the API's fields.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let api = format!("http://{closed}");
    for (args, flag, rule) in [
        (
            &["--name", "web", "--address", "0.0.0.0"][..],
            "--address",
            "\"0.0.0.0\" is not an address clients can reach",
        ),
        (&["--name=-web"][..], "--name", "\"-web\" must be 1-63 characters"),
        (&["--name", "web", "--region", "us east"][..], "--region", "\"us east\" must be 1-63 characters"),
        (&["--name", "web", "--meta", "version"][..], "--meta", "expected KEY=VALUE"),
        (&["--name", "web", "--http-check", "ftp://x/"][..], "--http-check", "is not an http:// or https:// URL"),
        (&["--name", "web", "--tcp-check", "x"][..], "--tcp-check", "\"x\" is not host:port"),
        (&["--name", "web", "--ttl", "0s"][..], "--ttl", "must be greater than 0"),
    ] {
        let out = signpost().arg("register").args(args).args(["--api", &api]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("'{flag} <")) && stderr.contains(rule), "{args:?}: {stderr}");
        assert!(!stderr.contains("connect"), "{args:?}: nothing was sent: {stderr}");
    }
}

#[tokio::test]
async fn a_wrong_token_is_403_and_the_right_one_from_the_environment_works() {
    let f = serve(&[("SIGNPOST_TOKEN", "s3cret")]);
    let register = ["register", "--name", "db", "--address", "10.2.0.1", "--port", "5432"];
    let e = failure(&f.run(&register));
    assert!(e.starts_with("signpost: 403 Forbidden: Permission denied"), "{e}");
    let e = failure(&f.run(&[&register[..], &["--token", "guess"]].concat()));
    assert!(e.starts_with("signpost: 403 Forbidden"), "{e}");
    assert_eq!(f.a("db.service.local.").await.0, ResponseCode::NXDomain, "a refused write changes nothing");

    let out = signpost().args(register).args(["--api", &f.api()]).env("SIGNPOST_TOKEN", "s3cret").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("db in DNS", || async { f.a("db.service.local.").await.1 == ["10.2.0.1"] }).await;
}

#[test]
fn an_unreachable_api_names_the_url_and_the_flag() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = signpost().args(["services", "--api", &format!("http://{closed}")]).output().unwrap();
    let e = failure(&out);
    assert!(e.contains(&format!("http://{closed}/")) && e.contains("--api"), "{e}");
    assert!(e.to_lowercase().contains("connection refused"), "{e}");

    let out = signpost().args(["services"]).env("SIGNPOST_API", format!("http://{closed}")).output().unwrap();
    assert!(failure(&out).contains(&closed.to_string()), "SIGNPOST_API is read");
}

/// The fenced block of README.md in `lang` that contains `needle`.
pub fn readme_block(lang: &str, needle: &str) -> String {
    let readme = crate::support::docs_text();
    readme
        .split(&format!("```{lang}\n"))
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("the documentation has a {lang} block with {needle:?}"))
        .to_string()
}

#[tokio::test]
async fn the_readme_cli_session_prints_the_tables_it_shows() {
    let f = serve(&[]);
    let session = readme_block("sh", "signpost register");
    let tables = readme_block("text", "SERVICE  INSTANCES  HEALTHY  DNS-SD TYPE");
    // `signpost` in the block is the built binary, pointed at this server.
    let script =
        format!("set -e\nsignpost() {{ \"{}\" \"$@\" --api {}; }}\n{session}", env!("CARGO_BIN_EXE_signpost"), f.api());
    let out = signpost_free_env(std::process::Command::new("sh").args(["-c", &script])).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&tables), "the README's tables are what the session prints:\n{stdout}");
    assert_eq!(f.a("web.service.local.").await.1, ["10.0.0.1"], "and DNS agrees with the last step");
}

/// A command without the test runner's `SIGNPOST_*` variables.
fn signpost_free_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("SIGNPOST_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[tokio::test]
async fn checks_and_nodes_tables_show_node_checks_and_external_nodes() {
    let f = serve(&[]);
    let http = support::http_client();
    let put = |path: &'static str, body: serde_json::Value| {
        let req = http.put(format!("{}{path}", f.api())).body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        }
    };
    assert_eq!(f.ok(&["checks"]), "no checks registered\n");
    f.ok(&["register", "--name", "web", "--id", "web-1", "--address", "10.1.0.1", "--ttl", "30s"]);
    put("/v1/agent/check/register", serde_json::json!({"Name": "disk", "TTL": "1h", "Status": "warning"})).await;
    let esm = serde_json::json!({"Node": "db-host", "Address": "10.20.0.5", "Service": {"Service": "pg", "ID": "pg-1"},
        "Checks": [{"CheckID": "externalNodeHealth", "Status": "passing", "Output": "ping ok"},
                   {"CheckID": "pg", "ServiceID": "pg-1", "Status": "critical"}]});
    put("/v1/catalog/register", esm).await;
    f.ok(&["pass", "service:web-1", "--note", "fine"]);

    let checks = f.ok(&["checks"]);
    let rows = cells(&checks);
    let node = rows.iter().find(|r| r[0] == "service:web-1").expect("the instance's check")[1].clone();
    assert_eq!(rows[0], ["CHECK", "NODE", "SERVICE ID", "TYPE", "STATUS", "LAST OUTPUT"], "{checks}");
    let mut rest: Vec<Vec<String>> = rows[1..].to_vec();
    rest.sort();
    let want = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rest,
        [
            want(&["disk", &node, "-", "ttl", "warning"]),
            want(&["externalNodeHealth", "db-host", "-", "external", "passing", "ping ok"]),
            want(&["pg", "db-host", "pg-1", "external", "critical"]),
            want(&["service:web-1", &node, "web-1", "ttl", "passing", "fine"]),
        ],
        "{checks}"
    );

    let nodes = f.ok(&["nodes"]);
    assert_eq!(
        cells(&nodes),
        [
            want(&["NODE", "ADDRESS", "INSTANCES", "NODE CHECKS", "STATUS"]),
            want(&[&node, "127.0.0.1", "1", "1", "warning"]),
            want(&["db-host", "10.20.0.5", "1", "1", "passing"]),
        ],
        "{nodes}"
    );
    let services = cells(&f.ok(&["services"]));
    assert_eq!(services[1..], [want(&["pg", "1", "0", "_pg._tcp"]), want(&["web", "1", "1", "_web._tcp"])]);
    println!("{checks}{nodes}");
}
