//! HTTPS on the API: curl with `--cacert` and with client certificates, a certificate renewed on
//! disk while a client keeps calling, and the start-up errors for bad files (the built binary).

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::binary::{Binary, signpost};
use crate::pki::{Pki, Usage, served_cn, write_atomically};
use crate::support::*;

/// `[http]` keys serving `cert` and `key`, with client certificates from `client_ca` required.
fn https_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> String {
    let mut c = format!("[http]\ntls_cert = {:?}\ntls_key = {:?}\n", cert, key);
    if let Some(ca) = client_ca {
        c.push_str(&format!("tls_client_ca = {ca:?}\n"));
    }
    c
}

/// Runs curl quietly (without blocking the runtime the server runs on); returns its exit code
/// and what it printed.
pub async fn curl(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn curl_reaches_the_api_ui_and_metrics_over_https_with_the_ca() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("server", Usage::Server);
    let s = server().config(&https_config(&cert, &key, None)).start().await;
    assert!(s.api.starts_with("https://127.0.0.1:"), "{}", s.api);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();

    let body = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80}).to_string();
    let url = s.url("/v1/agent/service/register");
    let (code, out) =
        curl(&["--cacert", ca, "-X", "PUT", "-d", &body, "-o", "/dev/null", "-w", "%{http_code}", &url]).await;
    assert_eq!((code, out.as_str()), (0, "200"));
    assert_eq!(addresses(&s.udp("web.service.local.", hickory_proto::rr::RecordType::A).await), ["10.0.0.1"]);
    for path in ["/v1/health/service/web", "/ui", "/metrics", "/healthz"] {
        let (code, out) = curl(&["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", &s.url(path)]).await;
        assert_eq!((code, out.as_str()), (0, "200"), "{path}");
    }

    // Without the CA curl refuses the certificate (60: peer certificate cannot be authenticated);
    // plain HTTP to the HTTPS port gets no answer.
    let (code, out) = curl(&[&s.url("/healthz")]).await;
    assert_eq!(code, 60, "{out}");
    let (code, out) = curl(&[&s.url("/healthz").replace("https://", "http://")]).await;
    assert_ne!(code, 0, "{out}");
}

#[tokio::test]
async fn tls_client_ca_requires_a_client_certificate_from_that_ca() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("server", Usage::Server);
    let (client_cert, client_key) = pki.files("client", Usage::Client);
    let stranger = Pki::new("other-ca");
    let (other_cert, other_key) = stranger.files("client", Usage::Client);
    let s = server().config(&https_config(&cert, &key, Some(&pki.ca()))).start().await;
    let ca = pki.ca();
    let url = s.url("/v1/agent/self");
    let head = ["--cacert", ca.to_str().unwrap(), "-o", "/dev/null", "-w", "%{http_code}", url.as_str()];
    let with = |cert: &Path, key: &Path| {
        let mut args = head.map(str::to_string).to_vec();
        args.extend(["--cert".into(), cert.display().to_string(), "--key".into(), key.display().to_string()]);
        args
    };

    let (code, out) = curl(&head).await;
    assert_ne!(code, 0, "no client certificate: refused in the handshake: {out}");
    let args = with(&other_cert, &other_key);
    let (code, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_ne!(code, 0, "a certificate from another CA: refused: {out}");
    let args = with(&client_cert, &client_key);
    let (code, out) = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!((code, out.as_str()), (0, "200"));

    let client = https_client(&pki.ca(), Some((&client_cert, &client_key)));
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::OK);
    assert!(https_client(&pki.ca(), None).get(&url).send().await.is_err());
}

/// Waits until a request is served with the certificate named `want`; returns when it was.
async fn until(served: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>, want: &str) -> Instant {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (cn, at) = tokio::time::timeout_at(deadline.into(), served.recv())
            .await
            .unwrap_or_else(|_| panic!("never served by {want}"))
            .unwrap();
        if cn == want {
            return at;
        }
    }
}

/// `signpost_reloads_total{kind="tls",result}` as the server reports it.
async fn tls_reloads(client: &reqwest::Client, s: &TestServer, result: &str) -> u64 {
    let text = client.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let prefix = format!("signpost_reloads_total{{kind=\"tls\",result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_new_connections_within_a_second_and_no_request_fails() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("gen-1", Usage::Server);
    let s = server().config(&https_config(&cert, &key, None)).start().await;
    let client = https_client(&pki.ca(), None);
    let url = s.url("/v1/catalog/services");

    // A client loop on fresh connections, counting failures and noting who served each request.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
    let looping = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !*stopped.borrow() {
                match client.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        ok += 1;
                        let _ = served_tx.send((served_cn(&r), Instant::now()));
                    }
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(format!("{e:?}")),
                }
            }
            (ok, failed)
        })
    };
    for _ in 0..3 {
        until(&mut served, "gen-1").await;
    }

    // Renewal as certbot does it: new files renamed over the old ones, key first.
    let renewed = pki.issue("gen-2", Usage::Server);
    let written = Instant::now();
    write_atomically(&key, &renewed.key);
    write_atomically(&cert, &renewed.cert);
    let first = until(&mut served, "gen-2").await;
    let took = first.duration_since(written);
    println!("a renewed certificate served to new connections {took:?} after it was written");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A broken renewal (half a certificate) changes nothing: the last good one keeps serving.
    let errors = tls_reloads(&client, &s, "error").await;
    std::fs::write(&cert, &renewed.cert[..renewed.cert.len() / 2]).unwrap();
    wait_for("the failed reload", || async { tls_reloads(&client, &s, "error").await > errors }).await;
    let r = client.get(&url).send().await.unwrap();
    assert_eq!((r.status(), served_cn(&r)), (StatusCode::OK, "gen-2".to_string()));
    for _ in 0..3 {
        until(&mut served, "gen-2").await;
    }

    stop.send(true).unwrap();
    let (ok, failed) = looping.await.unwrap();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), ok as usize + failed.len());
    println!("{ok} requests, each on a new connection, none failed");
    assert!(ok >= 7, "the loop kept calling: {ok}");
}

/// Starts `signpost serve` with `args`; it must exit 2 with one line on stderr.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = signpost()
        .args(["serve", "--dns-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args(["--zones", dir.path().to_str().unwrap(), "--data-dir", dir.path().join("data").to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("signpost: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    last
}

#[test]
fn bad_tls_files_are_a_start_up_error_naming_the_file_and_the_problem() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("server", Usage::Server);
    let (_, other_key) = pki.files("other", Usage::Server);
    let text = pki.write("text.pem", "hello\n");
    let missing = pki.dir.path().join("missing.pem");
    let folder = pki.dir.path().to_path_buf();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let cases: [(&Path, &Path, &str, &Path); 6] = [
        (&missing, &key, "cannot read: No such file or directory", &missing),
        (&folder, &key, "cannot read: Is a directory", &folder),
        (&text, &key, "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)", &text),
        (&cert, &text, "no private key in it", &text),
        (&cert, &cert, "no private key in it", &cert),
        (&cert, &other_key, "the private key does not match the certificate in", &other_key),
    ];
    for (c, k, problem, named) in cases {
        let line = refused(&["--tls-cert", &p(c), "--tls-key", &p(k)]);
        assert!(line.contains(problem) && line.contains(&format!("{}: ", named.display())), "{c:?} {k:?}: {line}");
        assert!(line.contains("cannot serve HTTPS"), "{line}");
    }
    let line = refused(&["--tls-cert", &p(&cert)]);
    assert!(line.contains("http.tls_key: needed with tls_cert"), "{line}");
    let line = refused(&["--tls-cert", &p(&cert), "--tls-key", &p(&key), "--tls-client-ca", &p(&text)]);
    assert!(line.contains(&format!("{}: no certificate in it", text.display())), "{line}");
}

#[tokio::test]
async fn an_expired_certificate_is_a_warning_with_its_date_and_the_server_starts() {
    let pki = Pki::new("test-ca");
    let old = pki.issue_until("old", Usage::Server, Some((2020, 1, 2)));
    let (cert, key) = (pki.write("old-cert.pem", &old.cert), pki.write("old-key.pem", &old.key));
    let zones = tempfile::tempdir().unwrap();
    let args = ["--dns-addr", "127.0.0.1:0", "--zones", zones.path().to_str().unwrap()];
    let data = zones.path().join("data");
    let tls = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let b = Binary::serve(&[&args[..], &["--data-dir", data.to_str().unwrap()], &tls[..]].concat(), &[]);
    let warning = b.startup_log.iter().find(|l| l.contains("the certificate has expired"));
    let warning = warning.unwrap_or_else(|| panic!("no expiry warning: {:#?}", b.startup_log));
    assert!(warning.contains("WARN") && warning.contains("2020-01-02T00:00:00Z"), "{warning}");
    assert!(warning.contains(cert.to_str().unwrap()), "names the file: {warning}");
    assert!(b.startup_log.iter().any(|l| l.contains("listening https")), "{:#?}", b.startup_log);
}

#[test]
fn the_cli_and_healthcheck_speak_https_with_a_ca_file_and_client_certificates() {
    let pki = Pki::new("test-ca");
    let (cert, key) = pki.files("server", Usage::Server);
    let (client_cert, client_key) = pki.files("client", Usage::Client);
    let dir = tempfile::tempdir().unwrap();
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let (zones, data) = (dir.path().join("zones"), dir.path().join("data"));
    std::fs::create_dir(&zones).unwrap();
    let args = ["--dns-addr", "127.0.0.1:0", "--zones", &p(&zones), "--data-dir", &p(&data)];
    let tls = ["--tls-cert", &p(&cert), "--tls-key", &p(&key), "--tls-client-ca", &p(&pki.ca())];
    let b = Binary::serve(&[&args[..], &tls[..]].concat(), &[]);
    let api = format!("https://{}", b.http);
    let (ca, cc, ck) = (p(&pki.ca()), p(&client_cert), p(&client_key));
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = signpost().args(args).args(["--api", &api]).envs(env.iter().copied()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let register = ["register", "--name", "web", "--id", "web-1", "--address", "10.0.0.1", "--port", "80"];

    // Flags.
    let (code, out, err) =
        run(&[&register[..], &["--ca-file", &ca, "--client-cert", &cc, "--client-key", &ck]].concat(), &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The environment, as Consul's CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY.
    let env =
        [("SIGNPOST_CACERT", ca.as_str()), ("SIGNPOST_CLIENT_CERT", cc.as_str()), ("SIGNPOST_CLIENT_KEY", ck.as_str())];
    let (code, out, err) = run(&["services"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("web      1          1"), "{out}");
    let (code, _, err) = run(&["healthcheck"], &env);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["healthcheck", "--ready"], &env);
    assert_eq!(code, Some(0), "{err}");

    // Without the CA the certificate is refused; without a client certificate, the server
    // refuses: both say what to give.
    let (code, _, err) = run(&["services", "--client-cert", &cc, "--client-key", &ck], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS handshake") && err.contains("--ca-file"), "{err}");
    let (code, _, err) = run(&["services", "--ca-file", &ca], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--client-cert"), "{err}");
    let (code, _, err) = run(&["healthcheck", "--ca-file", &ca], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unhealthy"), "{err}");
    // A CA file that is not one is refused before anything is sent.
    let (code, _, err) = run(&["services", "--ca-file", &p(&client_key)], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{}: no certificate in it", client_key.display())), "{err}");
}
