//! The README's session of checks on their own, an external node and the unsupported areas,
//! run as written (curl, dig and the CLI) against the built binary: it prints what the README
//! says it prints.

use std::process::Command;

use crate::binary::Binary;
use crate::cli::readme_block;

/// A table line's cells (split on runs of two or more spaces), so that a host name of another
/// length than the README's `myhost` does not move the comparison.
fn cells(text: &str) -> Vec<Vec<String>> {
    text.trim()
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
        .collect()
}

#[test]
fn the_readme_external_node_session_prints_what_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir(&zones).unwrap();
    let data = dir.path().join("data");
    let args = ["--dns-addr", "127.0.0.1:0", "--zones", zones.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    let server = Binary::serve(&args, &[]);
    let api = format!("http://{}", server.http);
    let session = readme_block("sh", "/v1/catalog/register").replace("http://127.0.0.1:8500", &api);
    let shown = readme_block("text", "externalNodeHealth  db-host");
    let script = format!(
        "set -e\nsignpost() {{ \"{}\" \"$@\" --api {api}; }}\ndig() {{ command dig -p {} \"$@\"; }}\n{session}",
        env!("CARGO_BIN_EXE_signpost"),
        server.dns_udp.port(),
    );
    let mut cmd = Command::new("sh");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SIGNPOST_")) {
        cmd.env_remove(k);
    }
    let out = cmd.args(["-c", &script]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").map_or("signpost".into(), |h| h.trim().to_string());
    assert_eq!(
        cells(&stdout),
        cells(&shown.replace("myhost", &node)),
        "the README shows what the session prints:\n{stdout}"
    );
}
