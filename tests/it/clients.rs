//! Real Consul clients against signpost: py-consul (PyPI `py-consul`) and node-consul (npm
//! `consul`), installed by scripts/test.sh into `target/test-clients/`. Each runs a session from
//! tests/clients/ that prints one JSON line per step and waits; here each step is checked, and
//! checked again with a DNS query, before the session goes on.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use axum::Router;
use axum::routing::get;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::*;

/// Where scripts/test.sh installs the clients (`SIGNPOST_TEST_CLIENTS` overrides).
fn clients_dir() -> PathBuf {
    match std::env::var_os("SIGNPOST_TEST_CLIENTS") {
        Some(dir) => dir.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-clients"),
    }
}

/// A client library installed under `clients_dir()`, or a panic that says how to get it.
pub(crate) fn installed(sub: &str) -> PathBuf {
    let dir = clients_dir().join(sub);
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/test.sh, which installs py-consul and node-consul",
        dir.display()
    );
    dir
}

/// One client session: its steps come one JSON line at a time.
pub(crate) struct Session {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Session {
    pub(crate) fn start(name: &'static str, mut cmd: Command) -> Session {
        for var in ["CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_SSL", "HTTP_PROXY", "http_proxy"] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the {name} session: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Session { name, child, stdin, stdout }
    }

    /// The next step's line, which must be `step`; printed, so that a session can be shown.
    pub(crate) async fn expect(&mut self, step: &str) -> Value {
        let line = tokio::time::timeout(DEADLINE, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{}: no `{step}` line in time", self.name))
            .unwrap()
            .unwrap_or_else(|| panic!("{}: ended before `{step}`", self.name));
        println!("{}: {line}", self.name);
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {line:?}: {e}", self.name));
        assert_eq!(v["step"], step, "{}: {line}", self.name);
        v
    }

    /// Lets the session go on to its next step.
    pub(crate) async fn next(&mut self) {
        self.stdin.write_all(b"next\n").await.unwrap();
    }

    pub(crate) async fn finish(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(DEADLINE, self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "{}: {status}", self.name);
    }
}

/// An HTTP check target that always answers 200.
pub(crate) async fn target() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/health")
}

pub(crate) async fn a(s: &TestServer, name: &str) -> (ResponseCode, Vec<String>) {
    let m = s.udp(name, RecordType::A).await;
    (m.metadata.response_code, addresses(&m))
}

/// The session both scripts run, checked step by step. `p` prefixes names, `ip` is the TTL
/// instance's address and `note` its heartbeat note.
async fn check_session(s: &TestServer, mut session: Session, p: &str, ip: &str, note: &str) {
    let (web, api) = (format!("{p}-web.service.local."), format!("{p}-api.service.local."));

    assert_eq!(session.expect("register_ttl").await["result"], true);
    assert_eq!(a(s, &web).await, (ResponseCode::NoError, vec![]), "a TTL check starts critical");
    assert_eq!(a(s, &format!("{p}-web-1.instance.local.")).await.1, [ip], "but the instance is registered");
    session.next().await;

    assert_eq!(session.expect("register_http").await["result"], true);
    wait_for("the HTTP check's first good probe", || async { a(s, &api).await.1 == ["127.0.0.1"] }).await;
    session.next().await;

    let v = session.expect("health_before").await;
    assert_eq!(v["ids"], json!([]), "?passing leaves the critical instance out");
    session.next().await;

    assert_eq!(session.expect("ttl_pass").await["result"], true);
    assert_eq!(a(s, &web).await.1, [ip], "a heartbeat is in the very next answer");
    session.next().await;

    let v = session.expect("health_after").await;
    assert_eq!(v["ids"], json!([format!("{p}-web-1")]));
    assert_eq!((v["address"].as_str(), v["port"].as_u64()), (Some(ip), Some(8080)));
    assert_eq!(v["checks"], json!([{"id": format!("service:{p}-web-1"), "status": "passing", "output": note}]));
    session.next().await;

    let v = session.expect("health_http").await;
    assert_eq!(v["ids"], json!([format!("{p}-api-1")]));
    assert_eq!(v["checks"][0]["status"], "passing");
    session.next().await;

    let v = session.expect("catalog").await;
    assert_eq!(v["services"], json!({format!("{p}-web"): ["v1"], format!("{p}-api"): []}));
    assert_eq!(
        v["instances"],
        json!([{"id": format!("{p}-web-1"), "address": ip, "port": 8080, "meta": {"version": "1.0"}}])
    );
    assert_eq!(v["agent"], json!([format!("{p}-api-1"), format!("{p}-web-1")]));
    session.next().await;

    let v = session.expect("agent").await;
    let catalog: Value =
        http_client().get(s.url(&format!("/v1/catalog/service/{p}-web"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["node"], catalog[0]["Node"], "agent.self() names the node the catalog does");
    assert_eq!(v["passing"], json!([format!("service:{p}-api-1"), format!("service:{p}-web-1")]));
    if p == "py" {
        // node-consul has no call for one instance; py-consul answers None for an unknown id.
        assert_eq!((&v["service"], &v["unknown"]), (&json!(format!("{p}-web-1")), &Value::Null));
    }
    session.next().await;

    assert_eq!(session.expect("deregister").await["result"], json!([true, true]));
    assert_eq!(a(s, &web).await.0, ResponseCode::NXDomain);
    assert_eq!(a(s, &api).await.0, ResponseCode::NXDomain);
    session.next().await;

    assert_eq!(session.expect("gone").await["ids"], json!([]));
    session.next().await;
    session.finish().await;
}

pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(name)
}

#[tokio::test]
async fn py_consul_registers_reads_health_passes_a_ttl_check_and_deregisters() {
    let lib = installed("python");
    let s = server().start().await;
    let mut cmd = Command::new("python3");
    cmd.arg(script("py_session.py")).arg(s.api.trim_start_matches("http://")).arg(target().await);
    cmd.env("PYTHONPATH", lib).env("PYTHONDONTWRITEBYTECODE", "1");
    check_session(&s, Session::start("py-consul", cmd), "py", "10.3.0.1", "ok from python").await;
}

#[tokio::test]
async fn node_consul_registers_reads_health_passes_a_ttl_check_and_deregisters() {
    let lib = installed("node/node_modules");
    let s = server().start().await;
    let mut cmd = Command::new("node");
    cmd.arg(script("node_session.js")).arg(s.api.trim_start_matches("http://")).arg(target().await);
    cmd.env("NODE_PATH", lib);
    check_session(&s, Session::start("node-consul", cmd), "node", "10.4.0.1", "ok from node").await;
}

#[tokio::test]
async fn the_readme_py_consul_example_runs() {
    let lib = installed("python");
    let s = server().start().await;
    let port = s.api.rsplit(':').next().unwrap().to_string();
    let code = crate::cli::readme_block("python", "import consul").replace("port=8500", &format!("port={port}"));
    let out = Command::new("python3").args(["-c", &code]).env("PYTHONPATH", lib).output().await.unwrap();
    assert!(out.status.success(), "{code}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['10.0.0.7']");
    assert_eq!(a(&s, "orders.service.local.").await.1, ["10.0.0.7"]);
}

#[tokio::test]
async fn the_readme_node_consul_example_runs() {
    let lib = installed("node/node_modules");
    let s = server().start().await;
    let port = s.api.rsplit(':').next().unwrap().to_string();
    let code = crate::cli::readme_block("js", "require(\"consul\")").replace("port: 8500", &format!("port: {port}"));
    let out = Command::new("node").args(["-e", &code]).env("NODE_PATH", lib).output().await.unwrap();
    assert!(out.status.success(), "{code}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[ '10.0.0.8' ]");
    assert_eq!(a(&s, "carts.service.local.").await.1, ["10.0.0.8"]);
}
