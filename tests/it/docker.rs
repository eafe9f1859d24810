//! The Dockerfile and examples/compose.yaml, checked without a Docker engine: the Dockerfile is
//! parsed into instructions and held to what the README promises (stages, non-root user with
//! the capability for port 53, ports, volumes, health check); compose.yaml is parsed as YAML
//! (by Python's PyYAML, when the host has it) and its build targets and commands are checked
//! against the Dockerfile's stages and the examples.

use std::path::Path;
use std::process::Command;

use crate::binary::signpost;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The instructions of a Dockerfile: `(KEYWORD, arguments)`, continuation lines joined and
/// comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                out.push((keyword.to_ascii_uppercase(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "the Dockerfile ends inside a continued line");
    out
}

/// A stage: its `FROM` arguments and its instructions.
struct Stage {
    from: String,
    name: String,
    body: Vec<(String, String)>,
}

fn stages(text: &str) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for (keyword, args) in instructions(text) {
        const KNOWN: [&str; 18] = [
            "FROM",
            "RUN",
            "CMD",
            "LABEL",
            "EXPOSE",
            "ENV",
            "ADD",
            "COPY",
            "ENTRYPOINT",
            "VOLUME",
            "USER",
            "WORKDIR",
            "ARG",
            "ONBUILD",
            "STOPSIGNAL",
            "HEALTHCHECK",
            "SHELL",
            "MAINTAINER",
        ];
        assert!(KNOWN.contains(&keyword.as_str()), "unknown instruction {keyword}");
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                [_] => String::new(),
                _ => panic!("FROM {args}"),
            };
            out.push(Stage { from: words[0].to_string(), name, body: Vec::new() });
        } else {
            out.last_mut().expect("FROM comes first").body.push((keyword, args));
        }
    }
    out
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not a JSON exec form ({e}): {args}"))
}

#[test]
fn dockerfile_builds_a_slim_non_root_image_that_can_bind_53() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let stages = stages(&text);
    let builder = &stages[0];
    assert_eq!((builder.from.as_str(), builder.name.as_str()), ("rust:1-bookworm", "builder"));
    // The last stage is what `docker build .` produces.
    let runtime = stages.last().unwrap();
    assert_eq!((runtime.from.as_str(), runtime.name.as_str()), ("debian:bookworm-slim", "runtime"));
    let all = |stage: &Stage, keyword: &str| -> Vec<String> {
        stage.body.iter().filter(|(k, _)| k == keyword).map(|(_, a)| a.clone()).collect()
    };
    let builds = all(builder, "RUN").join(" ");
    assert!(builds.contains("cargo build --release --locked --bin signpost"), "{builds}");

    // Every COPY --from names an earlier stage; every other COPY source exists in the repo.
    for (i, stage) in stages.iter().enumerate() {
        for copy in all(stage, "COPY") {
            let words: Vec<&str> = copy.split_whitespace().collect();
            if let Some(from) = words[0].strip_prefix("--from=") {
                assert!(stages[..i].iter().any(|s| s.name == from), "COPY --from={from} in stage {}", stage.name);
            } else {
                for src in &words[..words.len() - 1] {
                    assert!(repo(src).exists(), "COPY {src}: no such file in the repository");
                }
            }
        }
    }

    let runs = all(runtime, "RUN").join(" ");
    assert!(runs.contains("setcap cap_net_bind_service=+ep /usr/local/bin/signpost"), "{runs}");
    assert!(
        all(runtime, "COPY").iter().any(|c| c.contains("--from=builder") && c.ends_with("/usr/local/bin/signpost"))
    );
    let user = all(runtime, "USER");
    assert_eq!(user.len(), 1);
    assert!(user[0] != "root" && user[0] != "0", "runs as {}", user[0]);
    assert!(runs.contains(&format!("useradd --system --no-create-home --uid 10053 {}", user[0])));

    let exposed: Vec<String> = all(runtime, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(exposed, ["53/udp", "53/tcp", "8500"]);
    let volumes = exec_form(&all(runtime, "VOLUME")[0]);
    assert_eq!(volumes, ["/etc/signpost/zones", "/var/lib/signpost"]);
    let env = all(runtime, "ENV").join(" ");
    for setting in [
        "SIGNPOST_DNS_ADDR=0.0.0.0:53",
        "SIGNPOST_HTTP_ADDR=0.0.0.0:8500",
        "SIGNPOST_ZONES=/etc/signpost/zones",
        "SIGNPOST_DATA_DIR=/var/lib/signpost",
    ] {
        assert!(env.split_whitespace().any(|w| w == setting), "ENV {setting} missing: {env}");
    }
    assert_eq!(exec_form(&all(runtime, "ENTRYPOINT")[0]), ["signpost"]);
    assert_eq!(exec_form(&all(runtime, "CMD")[0]), ["serve"]);

    // The health check is the binary's own subcommand, and the binary knows it.
    let check = all(runtime, "HEALTHCHECK");
    let command = check[0].split_once("CMD ").expect("HEALTHCHECK ... CMD [...]").1;
    let command = exec_form(command);
    assert_eq!(command[..2], ["signpost", "healthcheck"]);
    let out = signpost().args(&command[1..]).arg("--help").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn compose_runs_signpost_three_order_services_and_a_gateway() {
    let text = std::fs::read_to_string(repo("examples/compose.yaml")).unwrap();
    // PyYAML where the host has it (scripts/test.sh installs python3-yaml); otherwise the
    // structural checks below still run on the text.
    let parsed = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(repo("examples/compose.yaml"))
        .output();
    let stage_names: Vec<String> =
        stages(&std::fs::read_to_string(repo("Dockerfile")).unwrap()).into_iter().map(|s| s.name).collect();
    match parsed {
        Ok(out) if out.status.success() => {
            let compose: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let services = compose["services"].as_object().expect("services");
            let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
            names.sort();
            assert_eq!(names, ["api-gateway", "order-service-1", "order-service-2", "order-service-3", "signpost"]);
            for (name, service) in services {
                let target = service["build"]["target"].as_str().unwrap_or_else(|| panic!("{name}: no build target"));
                assert!(stage_names.iter().any(|s| s == target), "{name}: no Dockerfile stage {target}");
                assert_eq!(service["build"]["context"], "..", "{name}");
                if let Some(command) = service["command"].as_array() {
                    let example = command[0].as_str().unwrap();
                    assert!(repo(&format!("examples/{example}.rs")).exists(), "{name}: no example {example}");
                }
            }
            for i in 1..=3 {
                let env = &services[&format!("order-service-{i}")]["environment"];
                assert_eq!(env["INSTANCE_ID"], format!("order-service-{i}"));
                assert_eq!(env["SIGNPOST_API"], "http://signpost:8500");
            }
            let dns = services["signpost"]["networks"]["mesh"]["ipv4_address"].as_str().unwrap();
            let gateway: Vec<&str> =
                services["api-gateway"]["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert!(gateway.windows(2).any(|w| w == ["--dns", &format!("{dns}:53")]), "{gateway:?}");
        }
        _ => eprintln!("compose.yaml: python3 with PyYAML not found; YAML parse skipped"),
    }
    assert!(!text.contains('\t'), "YAML is indented with spaces");
}
