//! Every example in README.md runs here, so the README cannot drift from the product.

use std::path::Path;

use signpost::config::RawConfig;

use crate::support::*;

/// The fenced blocks of README.md with their language tag.
fn blocks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (line.strip_prefix("```"), current.take()) {
            (Some(lang), None) => current = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(block)) => out.push(block),
            (None, Some((lang, mut body))) => {
                body.push_str(line);
                body.push('\n');
                current = Some((lang, body));
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn toml_examples_are_valid_zone_files_or_configs() {
    let tomls: Vec<String> = blocks().into_iter().filter(|(l, _)| l == "toml").map(|(_, b)| b).collect();
    assert!(tomls.len() >= 2, "the README shows a zone file and a config file");
    for body in tomls {
        if body.contains("[[service]]") {
            let file = signpost::zones::parse(Path::new("README.md"), &body).unwrap_or_else(|e| panic!("{e:?}"));
            assert!(!file.instances.is_empty());
        } else {
            let config = RawConfig::from_toml(Path::new("README.md"), &body).unwrap().validate();
            if body.lines().any(|l| l.starts_with("url = \"etcd://")) && !cfg!(feature = "cluster") {
                assert!(config.unwrap_err().to_string().contains("--features cluster"));
            } else {
                config.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn dig_examples_answer_from_the_example_zones() {
    // Transfers allowed to the test's own client, as the Secondaries section's example sets.
    let s = server().example_zones().config("[dns]\ntransfer_allow = [\"127.0.0.1\"]\n").start().await;
    let digs: Vec<String> = blocks()
        .into_iter()
        .filter(|(l, _)| l == "sh")
        .flat_map(|(_, b)| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("dig @localhost"))
        .collect();
    assert!(digs.len() >= 3, "{digs:?}");
    for line in digs {
        let args: Vec<&str> = line.split_whitespace().skip(2).collect();
        let out = crate::dig::dig(&s, &args).await;
        if args.contains(&"AXFR") {
            let soa = out.lines().filter(|l| l.contains("\tSOA\t")).count();
            assert_eq!(soa, 2, "{line}: a transfer between two SOAs: {out}");
            assert!(out.contains("order-service.service.local."), "{line}: {out}");
            continue;
        }
        let short = args.contains(&"+short");
        assert!(short || out.contains("status: NOERROR"), "{line}: {out}");
        assert!(
            if short { !out.trim().is_empty() } else { !crate::dig::answer_section(&out).is_empty() },
            "{line}: {out}"
        );
    }
}

#[test]
fn check_zones_example_passes() {
    let out = crate::binary::signpost()
        .args(["check-zones", "zones/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
