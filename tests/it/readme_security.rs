//! README's Security examples, run as written: the openssl session that makes a CA and
//! certificates and calls the HTTPS API with curl, the CLI and healthcheck; and the team token's
//! worked example. `signpost serve` lines start the built binary on port 0 in a temporary
//! folder; `127.0.0.1:8500` in the lines after it becomes the port it took.

use std::path::Path;
use std::process::Command;

use crate::binary::{Binary, signpost};
use crate::cli::readme_block;

/// A block's commands, continuation lines joined.
fn commands(block: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut continued = false;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let text = line.trim_end();
        let (body, more) = match text.strip_suffix('\\') {
            Some(b) => (b.trim_end(), true),
            None => (text, false),
        };
        if continued {
            let last = out.last_mut().unwrap();
            last.push(' ');
            last.push_str(body.trim_start());
        } else {
            out.push(body.to_string());
        }
        continued = more;
    }
    out
}

/// Runs `script` with bash in `dir`, `signpost` being the built binary; returns its stdout.
fn bash(dir: &Path, script: &[String]) -> String {
    let text = format!(
        "set -euo pipefail\nsignpost() {{ \"{}\" \"$@\"; }}\n{}\n",
        env!("CARGO_BIN_EXE_signpost"),
        script.join("\n")
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &text]).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SIGNPOST_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Runs a block: the commands before `signpost serve`, the server (replacing `server`), then the
/// commands after it against the server's port. Returns what those printed.
fn run_block(dir: &Path, block: &str, server: &mut Option<Binary>, extra: &[&str]) -> String {
    let commands = commands(block);
    let serve = commands.iter().position(|c| c.starts_with("signpost serve")).expect("a signpost serve line");
    bash(dir, &commands[..serve]);
    let in_dir = |arg: &str| {
        let p = dir.join(arg);
        if p.exists() { p.display().to_string() } else { arg.to_string() }
    };
    let args: Vec<String> = commands[serve].split_whitespace().skip(2).map(in_dir).collect();
    let data = dir.join("data").display().to_string();
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--dns-addr", "127.0.0.1:0", "--data-dir", &data, "--zones", zones.to_str().unwrap()]);
    all.extend(extra);
    drop(server.take());
    let b = Binary::serve(&all, &[]);
    let port = b.http.to_string();
    *server = Some(b);
    let after: Vec<String> = commands[serve + 1..].iter().map(|c| c.replace("127.0.0.1:8500", &port)).collect();
    bash(dir, &after)
}

#[test]
fn the_https_session_with_openssl_certificates_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = None;
    let out = run_block(dir.path(), &readme_block("sh", "openssl req -x509"), &mut server, &[]);
    assert!(out.contains("{}") && out.contains("no services registered"), "{out}");
    // From here on the same server asks for client certificates: without one, curl gets nothing.
    let out = run_block(dir.path(), &readme_block("sh", "--tls-client-ca ca.pem"), &mut server, &[]);
    assert!(out.contains("{}"), "{out}");
    let http = server.as_ref().unwrap().http;
    let no_cert = Command::new("curl")
        .args(["-sS", "--cacert", "ca.pem", &format!("https://{http}/v1/catalog/services")])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!no_cert.status.success());
    let refused = signpost()
        .args(["healthcheck", "--api", &format!("https://{http}"), "--ca-file", "ca.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "healthcheck without the client certificate");
}

#[test]
fn the_team_token_example_writes_its_service_and_is_refused_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("payments-ci");
    let path = "/etc/signpost/tokens/payments-ci";
    // The management token registers the other team's `orders-1` first.
    let config = readme_block("toml", "name = \"payments-ci\"").replace(path, secret.to_str().unwrap());
    let config = format!("[http]\ntoken = \"management-s3cret\"\n\n{config}");
    std::fs::write(dir.path().join("signpost.toml"), config).unwrap();
    let block = readme_block("sh", "X-Consul-Token: $T").replace(path, secret.to_str().unwrap());
    let mut commands = commands(&block);
    let register_orders = "curl -sS -f -X PUT -H 'X-Consul-Token: management-s3cret' \
         -d '{\"Name\": \"orders\", \"ID\": \"orders-1\", \"Port\": 80}' \
         http://127.0.0.1:8500/v1/agent/service/register";
    commands.insert(1, "signpost serve --config signpost.toml".into());
    commands.insert(2, register_orders.to_string());
    let mut server = None;
    let out = run_block(dir.path(), &commands.join("\n"), &mut server, &[]);
    let want: Vec<String> =
        readme_block("text", "Permission denied: service:write on \"orders\"").lines().map(str::to_string).collect();
    let got: Vec<String> =
        out.split("Permission denied").filter(|s| !s.is_empty()).map(|s| format!("Permission denied{s}")).collect();
    assert_eq!(got, want, "{out}");
}
