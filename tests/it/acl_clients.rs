//! py-consul and node-consul against a server that speaks HTTPS, asks for client certificates
//! and scopes tokens to services: each registers and heartbeats its team's service with the
//! team's token and is refused (403) another team's, by name and by id.

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::acl::{MANAGEMENT, PAYMENTS, team_config};
use crate::clients::{installed, script};
use crate::pki::{Pki, Usage};
use crate::support::*;

/// A TLS server with client certificates and the payments team's token, holding `orders-1`;
/// and the files a client needs.
async fn secured() -> (TestServer, Pki, [String; 3], tempfile::TempDir) {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("server", Usage::Server);
    let (client_cert, client_key) = pki.files("client", Usage::Client);
    let dir = tempfile::tempdir().unwrap();
    let (acl, _) = team_config(dir.path());
    let tls = format!("tls_cert = {cert:?}\ntls_key = {key:?}\ntls_client_ca = {:?}\n", pki.ca());
    let config = acl.replacen("[http]\n", &format!("[http]\n{tls}"), 1);
    let s = server().config(&config).start().await;
    let http = https_client(&pki.ca(), Some((&client_cert, &client_key)));
    let orders = json!({"Name": "orders", "ID": "orders-1", "Address": "10.7.0.1", "Port": 80});
    let r = http.put(s.url("/v1/agent/service/register")).header("X-Consul-Token", MANAGEMENT).json(&orders);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let files = [pki.ca(), client_cert, client_key].map(|p| p.display().to_string());
    (s, pki, files, dir)
}

/// Runs a one-shot client script and returns the JSON object it prints.
async fn run(mut cmd: Command) -> Value {
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn check(s: &TestServer, out: &Value, service: &str, ip: &str) {
    assert_eq!((&out["own"], &out["pass"]), (&json!("ok"), &json!("ok")), "{out}");
    for refused in ["other", "other_by_id"] {
        let text = out[refused].as_str().unwrap();
        assert!(text.starts_with("403") && text.contains("service:write on \"orders\""), "{refused}: {text}");
    }
    assert_eq!(out["read"], json!([format!("{service}-1")]), "{out}");
    let m = s.udp(&format!("{service}.service.local."), RecordType::A).await;
    assert_eq!(addresses(&m), [ip], "registered and passing");
    let m = s.udp("orders.service.local.", RecordType::A).await;
    assert_eq!(addresses(&m), ["10.7.0.1"], "the other team's service is untouched");
}

#[tokio::test]
async fn py_consul_over_https_with_a_team_token_writes_its_service_and_is_refused_another() {
    let lib = installed("python");
    let (s, _pki, [ca, cert, key], _dir) = secured().await;
    let mut cmd = Command::new("python3");
    cmd.arg(script("py_tls.py")).arg(s.api.trim_start_matches("https://")).args([&ca, &cert, &key, PAYMENTS]);
    cmd.env("PYTHONPATH", lib).env("PYTHONDONTWRITEBYTECODE", "1").env_remove("CONSUL_HTTP_TOKEN");
    check(&s, &run(cmd).await, "payment-py", "10.5.0.1").await;
}

#[tokio::test]
async fn node_consul_over_https_with_a_team_token_writes_its_service_and_is_refused_another() {
    let lib = installed("node/node_modules");
    let (s, _pki, [ca, cert, key], _dir) = secured().await;
    let mut cmd = Command::new("node");
    cmd.arg(script("node_tls.js")).arg(s.api.trim_start_matches("https://")).args([&ca, &cert, &key, PAYMENTS]);
    cmd.env("NODE_PATH", lib);
    check(&s, &run(cmd).await, "payment-node", "10.6.0.1").await;
}
