//! Every example in README.md runs here, so the README cannot drift from the product.

use std::path::Path;

use signpost::config::RawConfig;

use crate::support::*;

/// The fenced blocks of README.md with their language tag.
fn blocks() -> Vec<(String, String)> {
    let text = docs_text();
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
        // Sessions that register first (the tour) run in their own tests.
        .filter(|(l, b)| l == "sh" && !b.contains("curl"))
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

/// A heading's anchor as GitHub makes it: lowercase, spaces to hyphens, other punctuation gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every relative link of README.md and docs/ names a file that exists and, with `#...`, a
/// heading of that file; every page of docs/ is linked from README.md.
#[test]
fn every_link_in_the_documentation_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    docs.sort();
    pages.extend(docs.iter().cloned());
    let anchors = |file: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(file).unwrap();
        let mut in_code = false;
        let mut out = Vec::new();
        for line in text.lines() {
            in_code ^= line.starts_with("```");
            if !in_code && line.starts_with('#') {
                out.push(anchor(line.trim_start_matches('#')));
            }
        }
        out
    };
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for cap in link.captures_iter(&text) {
            let target = &cap[1];
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            assert!(file.exists(), "{}: {target} names no file", page.display());
            if !fragment.is_empty() {
                assert!(
                    anchors(&file).iter().any(|a| a == fragment),
                    "{}: {target}: no such heading in {}",
                    page.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} links");
    let front = std::fs::read_to_string(root.join("README.md")).unwrap();
    for doc in docs {
        let name = format!("docs/{}", doc.file_name().unwrap().to_str().unwrap());
        assert!(front.contains(&format!("]({name})")), "README.md links {name}");
    }
}

/// README's tour, run as written: the dig between the register and the deregister answers the
/// registered address, and once deregistered the name answers nothing.
#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    let s = server().start().await;
    let tour = crate::cli::readme_block("sh", "dig @localhost web.service.local +short");
    let dig = format!("dig @{} -p {}", s.dns.ip(), s.dns.port());
    let script = format!(
        "set -e\n{}",
        tour.replace("http://127.0.0.1:8500", &s.api).replace("dig @localhost", &dig).replace("curl ", "curl -sSf ")
    );
    let out = tokio::process::Command::new("sh").args(["-c", &script]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "10.0.0.1", "{script}");
    let m = s.udp("web.service.local.", hickory_proto::rr::RecordType::A).await;
    assert!(m.answers.is_empty(), "deregistered: {m:?}");
}
