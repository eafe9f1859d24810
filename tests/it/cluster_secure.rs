//! Cluster mode against a real 3-member etcd that serves clients over TLS only, requires client
//! certificates and has authentication enabled (tests/it/etcd.rs `start_secure`): replicas share
//! a registry through it, and a wrong password, user or certificate stops a replica at start with
//! the reason, at once rather than after the 30 s a replica waits for etcd to come up.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::json;

use crate::etcd::{Etcd, NOBODY, PASSWORD, USER};
use crate::pki::{Pki, Usage, write_atomically};
use crate::support::*;

/// `[store]` for `etcd` as `user` with the password in a file under `dir`, presenting `client`.
fn store_config(etcd: &Etcd, dir: &Path, user: Option<(&str, &str)>, ca: &Path, client: (&Path, &Path)) -> String {
    let mut c = format!(
        "[store]\nurl = \"{}\"\nca_file = {ca:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        etcd.url(),
        client.0,
        client.1
    );
    if let Some((name, password)) = user {
        let file = write_atomically(&dir.join(format!("{name}-{password}.password")), &format!("{password}\n"));
        c.push_str(&format!("username = {name:?}\npassword_file = {file:?}\n"));
    }
    c
}

/// README's `[store]` example, with this cluster's address and files.
fn readme_store_config(etcd: &Etcd, dir: &Path) -> String {
    let s = etcd.secure();
    let password = write_atomically(&dir.join("password"), &format!("{PASSWORD}\n"));
    let block = crate::cli::readme_block("toml", "password_file = \"/etc/signpost/etcd/password\"");
    let mut config = String::new();
    for line in block.lines() {
        let line = match line.split_once(" = ") {
            Some(("url", _)) => format!("url = \"{}\"", etcd.url()),
            _ => line.to_string(),
        };
        config.push_str(&line);
        config.push('\n');
    }
    config
        .replace("/etc/signpost/etcd/ca.pem", s.ca.to_str().unwrap())
        .replace("/etc/signpost/etcd/client.pem", s.client.0.to_str().unwrap())
        .replace("/etc/signpost/etcd/client-key.pem", s.client.1.to_str().unwrap())
        .replace("/etc/signpost/etcd/password", password.to_str().unwrap())
}

#[tokio::test]
async fn replicas_share_a_registry_through_etcd_over_tls_with_client_certificates_and_auth() {
    let pki = Pki::new("etcd-ca");
    let mut etcd = Etcd::start_secure(3, &pki).await;
    let dir = tempfile::tempdir().unwrap();
    let config = readme_store_config(&etcd, dir.path());
    assert!(config.contains(&etcd.url()) && !config.contains("/etc/signpost"), "{config}");
    let (a, b) = (server().config(&config).start().await, server().config(&config).start().await);
    let body = json!({"ID": "tls-1", "Name": "tls", "Address": "10.9.9.1", "Port": 80, "Check": {"TTL": "30s"}});
    let r = http_client().put(a.url("/v1/agent/service/register")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http_client().put(b.url("/v1/agent/check/pass/service:tls-1")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a heartbeat through the other replica");
    for s in [&a, &b] {
        wait_for("tls passing on both replicas", || async {
            addresses(&s.udp("tls.service.local.", RecordType::A).await) == ["10.9.9.1"]
        })
        .await;
    }

    // A member down while a replica starts: it authenticates with the others, and starts.
    etcd.stop(0);
    let c = server().config(&config).start().await;
    assert_eq!(addresses(&c.udp("tls.service.local.", RecordType::A).await), ["10.9.9.1"]);
    let body = json!({"ID": "tls-2", "Name": "tls", "Address": "10.9.9.2", "Port": 80});
    let r = http_client().put(c.url("/v1/agent/service/register")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    wait_for("tls-2 on a", || async { a.udp("tls-2.instance.local.", RecordType::A).await.answers.len() == 1 }).await;
    etcd.restart(0).await;
}

/// Runs `signpost serve` with `config`; it must stop by itself with exit code 2, well before the
/// 30 s a replica waits for an unreachable etcd. Returns its last line.
fn refused_at_start(config: &str, dir: &Path) -> String {
    let file = dir.join("signpost.toml");
    std::fs::write(&file, config).unwrap();
    let started = Instant::now();
    let mut child = crate::binary::signpost()
        .args(["serve", "--config", file.to_str().unwrap(), "--dns-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--zones", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("still starting after {:?}: {stderr}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    println!("refused after {:?}: {}", started.elapsed(), stderr.lines().last().unwrap_or_default());
    stderr.lines().last().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_wrong_password_user_or_certificate_stops_a_replica_at_start_with_the_reason() {
    let pki = Pki::new("etcd-ca");
    let etcd = Etcd::start_secure(3, &pki).await;
    let dir = tempfile::tempdir().unwrap();
    let s = etcd.secure();
    let client = (s.client.0.as_path(), s.client.1.as_path());
    let stranger = Pki::new("other-ca");
    let (other_cert, other_key) = stranger.files("stranger", Usage::Client);
    let cases: [(String, &[&str]); 5] = [
        (
            store_config(&etcd, dir.path(), Some((USER, "wrong")), &s.ca, client),
            &["refused user \"signpost\"", "wrong user name or password", "password_file"],
        ),
        (
            store_config(&etcd, dir.path(), None, &s.ca, client),
            &["without a user", "[store] username and password_file"],
        ),
        (
            store_config(&etcd, dir.path(), Some((NOBODY, PASSWORD)), &s.ca, client),
            &["user \"nobody\" may not use /signpost/", "grant-permission"],
        ),
        (
            store_config(&etcd, dir.path(), Some((USER, PASSWORD)), &s.ca, (&other_cert, &other_key)),
            &["TLS handshake failed", "cert_file"],
        ),
        (
            store_config(&etcd, dir.path(), Some((USER, PASSWORD)), &stranger.ca(), client),
            &["TLS handshake failed", "UnknownIssuer", "ca_file"],
        ),
    ];
    for (config, words) in cases {
        let line = refused_at_start(&config, dir.path());
        assert!(line.starts_with("signpost: cannot open the store: etcd at 127.0.0.1:"), "{line}");
        for w in words {
            assert!(line.contains(w), "{w:?} in {line}");
        }
    }
}
