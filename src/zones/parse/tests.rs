//! Zone files as operators write them: the documented example, every rule and where its error
//! points.

use super::*;
use std::net::Ipv4Addr;

const EXAMPLE: &str = r#"
[[service]]
name = "payment-service"
tags = ["v2"]                 # given to every instance below
region = "us-east-1"          # default region of its instances
ttl = "5s"                    # optional DNS TTL for this service
check = { http = "http://{address}:{port}/health", interval = "10s", timeout = "5s" }

[[service.instance]]
id = "payment-1"
address = "192.168.1.20"
port = 8002
weight = 3
meta = { version = "2.1.0" }

[[service.instance]]
id = "payment-2"
address = "192.168.1.21"
port = 8002
check = { tcp = "192.168.1.21:8002", interval = "5s" }   # instance check replaces the service's
"#;

fn zone(text: &str) -> Result<ZoneFile, Vec<ZoneError>> {
    parse(Path::new("z.toml"), text)
}

const OK_INSTANCE: &str = "id = \"a-1\"\naddress = \"10.0.0.1\"\nport = 80";

fn check_spec(id: &str, kind: CheckKind, interval: u64) -> CheckSpec {
    CheckSpec {
        id: format!("service:{id}"),
        name: "Service 'payment-service' check".into(),
        kind,
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(5),
        rise: None,
        fall: None,
        deregister_after: None,
        initial: None,
    }
}

#[test]
fn the_documented_example_parses() {
    let file = zone(EXAMPLE).unwrap();
    let policy = ServicePolicy { ttl: Some(Duration::from_secs(5)), ..Default::default() };
    let base = Instance {
        id: "payment-1".into(),
        service: "payment-service".into(),
        address: Address::Ip(Ipv4Addr::new(192, 168, 1, 20).into()),
        port: 8002,
        tags: vec!["v2".into()],
        weight: 3,
        region: Some("us-east-1".into()),
        meta: [("version".into(), "2.1.0".into())].into(),
        checks: vec![check_spec(
            "payment-1",
            CheckKind::Http {
                url: "http://192.168.1.20:8002/health".into(),
                method: "GET".into(),
                headers: BTreeMap::new(),
                tls_skip_verify: false,
            },
            10,
        )],
        policy: policy.into(),
        source: Source::Zone("z.toml".into()),
        node: None,
    };
    let second = Instance {
        id: "payment-2".into(),
        address: Address::Ip(Ipv4Addr::new(192, 168, 1, 21).into()),
        weight: 1,
        meta: Default::default(),
        checks: vec![check_spec("payment-2", CheckKind::Tcp { target: "192.168.1.21:8002".into() }, 5)],
        ..base.clone()
    };
    let want = vec![
        ParsedInstance { instance: base, line: 10, col: 6 },
        ParsedInstance { instance: second, line: 17, col: 6 },
    ];
    assert_eq!(file, ZoneFile { path: "z.toml".into(), instances: want });
}

#[test]
fn instances_combine_with_their_service() {
    let text = r#"
        [[service]]
        name = "web"
        tags = ["a", "b"]
        region = "eu"
        ttl = "1500ms"
        answer_limit = 3
        only_passing = true
        when_none_healthy = "all"
        check = { tcp = "{address}:{port}", rise = 2, fall = 3, deregister_after = "1m" }
        [[service.instance]]
        id = "web-1"
        address = "::1"
        port = 80
        tags = ["b", "c", "a"]
        region = "us"
        [[service.instance]]
        id = "web-2"
        address = "Web-2.Example.COM"
        port = 81
        check = { http = "https://[{address}]:{port}/h?for={address}", method = "HEAD", header = { X-Probe = ["1"] }, tls_skip_verify = true }
    "#;
    let file = zone(text).unwrap();
    let [one, two] = file.instances.as_slice() else { panic!("{file:#?}") };
    let (one, two) = (&one.instance, &two.instance);
    assert_eq!(one.tags, ["a", "b", "c"]);
    assert_eq!((one.region.as_deref(), two.region.as_deref()), (Some("us"), Some("eu")));
    assert_eq!(one.address, Address::Ip("::1".parse().unwrap()));
    assert_eq!(two.address, Address::Host("web-2.example.com".into()));
    assert_eq!(
        one.policy,
        ServicePolicy {
            ttl: Some(Duration::from_secs(1)),
            answer_limit: Some(3),
            only_passing: Some(true),
            when_none_healthy: Some(WhenNoneHealthy::All),
        }
        .into()
    );
    let c = &one.checks[0];
    assert_eq!(c.kind, CheckKind::Tcp { target: "[::1]:80".into() });
    assert_eq!((c.rise, c.fall, c.deregister_after), (Some(2), Some(3), Some(Duration::from_secs(60))));
    assert_eq!((c.interval, c.timeout), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT));
    assert_eq!(
        two.checks[0].kind,
        CheckKind::Http {
            url: "https://web-2.example.com:81/h?for=web-2.example.com".into(),
            method: "HEAD".into(),
            headers: BTreeMap::from([("X-Probe".into(), vec!["1".into()])]),
            tls_skip_verify: true,
        }
    );
}

#[test]
fn meta_region_and_dns_settings_mean_what_they_mean_in_the_api() {
    let text = r#"
        [[service]]
        name = "web"
        region = "eu"
        ttl = "30s"
        answer_limit = 0
        [[service.instance]]
        id = "web-1"
        address = "10.0.0.1"
        port = 80
        meta = { region = "us", dns-ttl = "10s", dns-answer-limit = "2" }
        [[service.instance]]
        id = "web-2"
        address = "10.0.0.2"
        port = 80
        region = "ap"
        meta = { region = "us", dns-ttl = "1m" }
    "#;
    let file = zone(text).unwrap();
    let [one, two] = file.instances.as_slice() else { panic!("{file:#?}") };
    let (one, two) = (&one.instance, &two.instance);
    // An instance's own key beats its meta, which beats its service's.
    assert_eq!((one.region.as_deref(), two.region.as_deref()), (Some("us"), Some("ap")));
    // Meta settings merge with the service's like two declarations: the smallest wins.
    assert_eq!((one.policy.ttl, one.policy.answer_limit), (Some(Duration::from_secs(10)), Some(2)));
    assert_eq!((two.policy.ttl, two.policy.answer_limit), (Some(Duration::from_secs(30)), Some(0)));
    assert_eq!(one.meta.get("dns-ttl"), Some("10s"), "and they stay meta, as in the API");
}

#[test]
fn ipv6_is_bracketed_only_in_host_position() {
    let text =
        inst("id = \"a-1\"\naddress = \"fe80::1\"\nport = 80\ncheck = { http = \"http://{address}/?ip={address}\" }");
    let file = zone(&text).unwrap();
    let CheckKind::Http { url, .. } = &file.instances[0].instance.checks[0].kind else { panic!() };
    assert_eq!(url, "http://[fe80::1]/?ip=fe80::1");
}

#[test]
fn empty_and_instance_less_files_are_valid() {
    for text in ["", "# nothing yet\n", "[[service]]\nname = \"a\"\n"] {
        assert_eq!(zone(text).unwrap().instances, [], "{text:?}");
    }
}

/// A service `a` with `line3` as its third line.
fn svc(line3: &str) -> String {
    format!("[[service]]\nname = \"a\"\n{line3}\n")
}

/// A service `a` whose one instance has `fields`; the first field is on line 4.
fn inst(fields: &str) -> String {
    svc(&format!("[[service.instance]]\n{fields}"))
}

/// `OK_INSTANCE` plus `line7` as the instance's seventh line.
fn inst7(line7: &str) -> String {
    inst(&format!("{OK_INSTANCE}\n{line7}"))
}

fn addr(address: &str) -> String {
    inst(&format!("id = \"a-1\"\naddress = {address:?}\nport = 80"))
}

#[test]
fn errors_point_at_the_offending_key_or_value() {
    let meta_65: String = (0..65).map(|i| format!("k{i} = \"v\", ")).collect();
    #[rustfmt::skip]
    let cases = [
        ("colour = 1\n".into(), 1, 1, "unknown field `colour`, expected `service`"),
        (svc("colour = 1"), 3, 1, "unknown field `colour`"),
        (inst7("colour = 1"), 7, 1, "unknown field `colour`"),
        (svc("check = { tcp = \"x:1\", colour = 1 }"), 3, 24, "unknown field `colour`"),
        ("[[service]]\ntags = []\n".into(), 1, 1, "missing field `name`"),
        (addr("300.1.1.1"), 5, 11, "address: \"300.1.1.1\" is neither an IP address nor a host name"),
        (addr("0.0.0.0"), 5, 11, "address: \"0.0.0.0\" is not an address clients can reach"),
        (addr("::"), 5, 11, "address: \"::\" is not an address clients can reach"),
        (addr(""), 5, 11, "address: must not be empty"),
        (addr("bad_host!"), 5, 11, "address: \"bad_host!\" is neither"),
        (addr(&format!("{}.com", "a".repeat(64))), 5, 11, "is neither"),
        (inst("id = \"a-1\"\naddress = \"10.0.0.1\"\nport = 70000"), 6, 8, "port must be between 0 and 65535, got 70000"),
        (inst("id = \"a-1\"\naddress = \"10.0.0.1\"\nport = \"80\""), 6, 8, "invalid type: string \"80\""),
        (inst7("weight = 0"), 7, 10, "weight must be between 1 and 65535, got 0"),
        (inst("id = \"a b\"\naddress = \"10.0.0.1\"\nport = 80"), 4, 6, "id: \"a b\" must be 1-63 characters"),
        (inst7(&format!("[[service.instance]]\n{OK_INSTANCE}")), 8, 6, "duplicate instance id \"a-1\" (first declared on line 4)"),
        (inst7("tags = [\"ok\", \"\"]"), 7, 15, "tag: must not be empty"),
        (inst7("region = \"us east\""), 7, 10, "region: \"us east\" must be 1-63 characters"),
        (inst7(&format!("meta = {{ {meta_65}}}")), 7, 8, "meta: has 65 keys; at most 64 are allowed"),
        (inst7("meta = { \"\" = \"x\" }"), 7, 10, "meta.: keys must be 1-128 characters of A-Z a-z 0-9 _ -"),
        (inst7("meta = { \"a.b\" = \"x\" }"), 7, 10, "meta.a.b: keys must be 1-128 characters"),
        (inst7(&format!("meta = {{ {} = \"x\" }}", "k".repeat(129))), 7, 10, "keys must be 1-128 characters"),
        (inst7(&format!("meta = {{ k = \"{}\" }}", "v".repeat(513))), 7, 10, "meta.k: is longer than 512 bytes"),
        (inst7("meta = { dns-ttl = \"500ms\" }"), 7, 10, "meta.dns-ttl: \"500ms\" must be 0 or at least 1s"),
        (inst7("meta = { region = \"us east\" }"), 7, 10, "meta.region: \"us east\" must be 1-63 characters"),
        (inst7("meta = { k = 1 }"), 7, 14, "invalid type: integer `1`, expected a string"),
        (svc("ttl = \"10\""), 3, 7, "ttl: invalid duration \"10\": missing unit"),
        (svc("ttl = \"500ms\""), 3, 7, "ttl: \"500ms\" must be 0 or at least 1s"),
        (svc("answer_limit = -1"), 3, 16, "answer_limit must be at least 0, got -1"),
        (svc("answer_limit = 5000000000"), 3, 16, "between 0 and 4294967295"),
        (svc("when_none_healthy = \"some\""), 3, 21, "when_none_healthy must be \"empty\" or \"all\""),
        (svc("check = { ttl = \"30s\", interval = \"5x\" }"), 3, 35, "interval: invalid duration \"5x\": unknown unit"),
        (svc("check = { tcp = \"x:1\", timeout = \"0\" }"), 3, 34, "timeout: must be greater than 0"),
        (svc("check = { http = \"http://x/\", tcp = \"x:1\" }"), 3, 37, "found `http` and `tcp`"),
        (svc("check = { interval = \"5s\" }"), 3, 9, "check needs one of `http`, `tcp` or `ttl`"),
        (svc("check = { http = \"http://{host}/\" }"), 3, 26, "unknown placeholder `{host}` in check http"),
        (svc("check = { http = \"ftp://x/\" }"), 3, 18, "check http: \"ftp://x/\" is not an http:// or https:// URL"),
        (svc("check = { tcp = \"x\" }"), 3, 17, "check tcp: \"x\" is not host:port"),
        (svc("check = { tcp = \"x:1\", method = \"GET\" }"), 3, 33, "`method` applies only to http checks"),
        (svc("check = { http = \"http://x/\", method = \"GE T\" }"), 3, 40, "method: \"GE T\" is not an HTTP method"),
        (svc("check = { http = \"http://x/\", header = { \"A B\" = [] } }"), 3, 42, "header: \"A B\" is not a valid HTTP header name"),
        (svc("check = { http = \"http://x/\", header = { A = [\"1\\n\"] } }"), 3, 42, "header.A: \"1\\n\" has a control character"),
        (svc("check = { ttl = \"30s\", timeout = \"1s\" }"), 3, 34, "`timeout` applies only to http and tcp checks"),
        (svc("check = { ttl = \"30s\", rise = 0 }"), 3, 31, "rise must be at least 1, got 0"),
        (svc("[service.check]\ntcp = \"x:1\"\nhttp = \"https://x/\""), 5, 8, "found `tcp` and `http`"),
        (svc("name = \"b\""), 3, 1, "duplicate key"),
        ("[service]\nname = \"a\"\n".into(), 1, 1, "invalid type"),
    ];
    for (text, line, col, msg) in cases {
        let got = zone(&text).expect_err(&text);
        let view: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 1, "{text}\n{view:#?}");
        assert_eq!((got[0].line, got[0].col), (line, col), "{text}\n{view:#?}");
        assert!(got[0].message.contains(msg), "{text}\nwant {msg:?} in {view:#?}");
    }
}

#[test]
fn missing_instance_fields_are_all_reported_at_the_table() {
    let got: Vec<_> = zone(&inst("weight = 2")).unwrap_err().into_iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        ["z.toml:3:1: missing field `id`", "z.toml:3:1: missing field `address`", "z.toml:3:1: missing field `port`"]
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = "[[service]]\nname = \"a\"\ncolour = 1\n[[service.instance]]\n\
                id = \"a-1\"\naddress = \"300.1.1.1\"\nport = 70000\nweight = 0\n\
                check = { http = \"http://{host}/\" }\n";
    let got: Vec<String> = zone(text).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 5, "{got:#?}");
    for (e, prefix) in
        got.iter().zip(["z.toml:3:1: ", "z.toml:6:11: ", "z.toml:7:8: ", "z.toml:8:10: ", "z.toml:9:26: "])
    {
        assert!(e.starts_with(prefix), "{e} should start with {prefix}");
    }
}

#[test]
fn line_col_counts_chars() {
    let text = "a\nµé = 1\n";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 2), (2, 1));
    assert_eq!(line_col(text, text.find('=').unwrap()), (2, 4));
    assert_eq!(line_col(text, 999), (3, 1));
}

/// The line index answers every offset as counting from the start of the text does (multi-byte
/// characters, CRLF, a text without a final newline, offsets past the end).
#[test]
fn line_index_agrees_with_counting_from_the_start() {
    let counted = |text: &str, offset: usize| {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
    };
    for text in ["", "\n", "a", "[[service]]\r\nname = \"wéb\"\n\n  id = \"ü-1\"", "x\ny\n"] {
        for offset in 0..text.len() + 3 {
            assert_eq!(line_col(text, offset), counted(text, offset), "{text:?} at {offset}");
        }
    }
}
