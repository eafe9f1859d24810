//! Table-driven tests of registration bodies: what each client style sends, and each rule.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 9, 8, 7));

fn ok(body: serde_json::Value) -> Instance {
    decode(body.to_string().as_bytes(), CLIENT).unwrap_or_else(|e| panic!("{body} refused: {e}"))
}

fn err(body: serde_json::Value) -> String {
    match decode(body.to_string().as_bytes(), CLIENT) {
        Ok(i) => panic!("{body} accepted: {i:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn camel_case_and_snake_case_bodies_mean_the_same() {
    let node = json!({
        "Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1"],
        "Meta": {"version": "1"}, "Weights": {"Passing": 3, "Warning": 1},
        "Check": {"HTTP": "http://10.0.0.1/health", "Interval": "10s", "DeregisterCriticalServiceAfter": "1m"}
    });
    let py = json!({
        "name": "web", "id": "web-1", "address": "10.0.0.1", "port": 80, "tags": ["v1"],
        "meta": {"version": "1"}, "weights": {"passing": 3, "warning": 1},
        "check": {"http": "http://10.0.0.1/health", "interval": "10s", "deregister_critical_service_after": "1m"}
    });
    let a = ok(node);
    assert_eq!(a, ok(py));
    assert_eq!((a.id.as_str(), a.service.as_str(), a.port, a.weight), ("web-1", "web", 80, 3));
    assert_eq!(a.address, Address::Ip("10.0.0.1".parse().unwrap()));
    assert_eq!(a.source, Source::Api);
    let c = &a.checks[0];
    assert_eq!((c.id.as_str(), c.name.as_str()), ("service:web-1", "Service 'web' check"));
    assert_eq!(
        (c.interval, c.timeout, c.deregister_after),
        (Duration::from_secs(10), DEFAULT_TIMEOUT, Some(Duration::from_secs(60)))
    );
    assert_eq!(
        c.kind,
        CheckKind::Http {
            url: "http://10.0.0.1/health".into(),
            method: "GET".into(),
            headers: BTreeMap::new(),
            tls_skip_verify: false
        }
    );
}

#[test]
fn defaults_fill_in() {
    let i = ok(json!({"Name": "api", "Unknown": {"x": 1}, "EnableTagOverride": true}));
    assert_eq!((i.id.as_str(), i.port, i.weight), ("api", 0, 1));
    assert_eq!(i.address, Address::Ip(CLIENT), "no Address = the registering client's");
    assert_eq!(ok(json!({"Name": "api", "Address": "", "ID": ""})).address, Address::Ip(CLIENT));
    assert_eq!(ok(json!({"Name": "api", "Address": null})).address, Address::Ip(CLIENT));
    assert!(i.checks.is_empty() && i.tags.is_empty() && i.meta.is_empty() && i.region.is_none());
}

/// The model's rule (`model::rules`, tested there), plus the API's own: empty is the client.
#[test]
fn addresses() {
    let cases = [
        ("::1", Address::Ip("::1".parse().unwrap())),
        ("::ffff:10.0.0.1", Address::Ip("10.0.0.1".parse().unwrap())),
        ("DB.Example.com.", Address::Host("db.example.com".into())),
        ("db_1", Address::Host("db_1".into())),
        (" ", Address::Ip(CLIENT)),
    ];
    for (text, want) in cases {
        assert_eq!(ok(json!({"Name": "a", "Address": text})).address, want, "{text}");
    }
}

#[test]
fn meta_carries_region_and_dns_settings() {
    let i = ok(json!({"Name": "a", "Meta": {"region": "eu-1", "dns-ttl": "1500ms", "dns-answer-limit": "2"}}));
    assert_eq!(i.region.as_deref(), Some("eu-1"));
    assert_eq!((i.policy.ttl, i.policy.answer_limit), (Some(Duration::from_secs(1)), Some(2)));
}

#[test]
fn check_forms() {
    let i = ok(json!({"Name": "a", "ID": "a-1", "Checks": [
        {"TTL": "30s", "Status": "passing", "CheckID": "beat"},
        {"TCP": "[::1]:80", "Interval": "5s", "Timeout": "1s", "SuccessBeforePassing": 1, "FailuresBeforeCritical": 0},
        {"HTTP": "https://h/x", "Interval": "1s", "Method": "post", "Header": {"X-A": ["1", "2"], "X-B": "3"}, "TLSSkipVerify": true, "Name": "deep"},
    ]}));
    let ids: Vec<&str> = i.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["beat", "service:a-1:2", "service:a-1:3"]);
    assert_eq!(i.checks[0].kind, CheckKind::Ttl { ttl: Duration::from_secs(30) });
    assert_eq!((i.checks[0].initial, i.checks[0].interval), (Some(Status::Passing), Duration::from_secs(30)));
    assert_eq!((i.checks[1].rise, i.checks[1].fall, i.checks[1].timeout), (Some(1), None, Duration::from_secs(1)));
    let CheckKind::Http { method, headers, tls_skip_verify, .. } = &i.checks[2].kind else { panic!() };
    assert_eq!((method.as_str(), *tls_skip_verify, i.checks[2].name.as_str()), ("POST", true, "deep"));
    assert_eq!(headers["X-A"], ["1", "2"]);
    assert_eq!(headers["X-B"], ["3"]);
    // `Check` comes first when both are given.
    let both = ok(json!({"Name": "a", "Check": {"TTL": "5s"}, "Checks": [{"TTL": "6s"}]}));
    let ids: Vec<&str> = both.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["service:a:1", "service:a:2"]);
}

#[test]
fn rules_name_the_field() {
    let long = "a".repeat(64);
    let many: serde_json::Map<String, serde_json::Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!([1]), "body: must be a JSON object"),
        (json!({}), "Name: required"),
        (json!({"Name": ""}), "Name: \"\" must be 1-63"),
        (json!({"Name": "-a"}), "Name: \"-a\" must be 1-63"),
        (json!({"Name": long}), "Name: "),
        (json!({"Name": "a.b"}), "Name: "),
        (json!({"Name": 5}), "Name: must be a string"),
        (json!({"Name": "a", "ID": "a-"}), "ID: \"a-\" must be 1-63"),
        (json!({"Name": "a", "Address": "0.0.0.0"}), "Address: \"0.0.0.0\" is not an address clients can reach"),
        (json!({"Name": "a", "Address": "::"}), "Address: \"::\" is not"),
        (json!({"Name": "a", "Address": "10.0.0.300"}), "Address: \"10.0.0.300\" is neither"),
        (json!({"Name": "a", "Address": "a b"}), "Address: "),
        (json!({"Name": "a", "Port": 65536}), "Port: must be a whole number from 0 to 65535, got 65536"),
        (json!({"Name": "a", "Port": -1}), "Port: must be a whole number"),
        (json!({"Name": "a", "Port": "80"}), "Port: must be a whole number"),
        (
            json!({"Name": "a", "Weights": {"Passing": 0}}),
            "Weights.Passing: must be a whole number from 1 to 65535, got 0",
        ),
        (json!({"Name": "a", "Weights": 3}), "Weights: must be a JSON object"),
        (json!({"Name": "a", "Tags": "x"}), "Tags: must be an array"),
        (json!({"Name": "a", "Tags": ["x", 1]}), "Tags[1]: must be a string"),
        (json!({"Name": "a", "Tags": [""]}), "Tags[0]: must not be empty"),
        (json!({"Name": "a", "Meta": many}), "Meta: has 65 keys; at most 64 are allowed"),
        (json!({"Name": "a", "Meta": {"k": 1}}), "Meta.k: must be a string"),
        (json!({"Name": "a", "Meta": {"a b": "1"}}), "Meta.a b: keys must be"),
        (json!({"Name": "a", "Meta": {"region": "us east"}}), "Meta.region: \"us east\" must be 1-63 characters"),
        (json!({"Name": "a", "Meta": {"dns-ttl": "5"}}), "Meta.dns-ttl: invalid duration \"5\": missing unit"),
        (json!({"Name": "a", "Meta": {"dns-ttl": "500ms"}}), "Meta.dns-ttl: \"500ms\" must be 0 or at least 1s"),
        (json!({"Name": "a", "Meta": {"k": "v".repeat(513)}}), "Meta.k: is longer than 512 bytes"),
        (
            json!({"Name": "a", "Meta": {"dns-answer-limit": "-1"}}),
            "Meta.dns-answer-limit: \"-1\" is not a whole number",
        ),
        (json!({"Name": "a", "Check": {}}), "Check: needs exactly one of HTTP, TCP or TTL"),
        (json!({"Name": "a", "Check": {"GRPC": "x:1", "Interval": "1s"}}), "Check: GRPC checks are not supported"),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "TTL": "1s"}}),
            "Check: has HTTP and TTL; a check takes exactly one",
        ),
        (json!({"Name": "a", "Check": {"HTTP": "http://x"}}), "Check.Interval: required for HTTP and TCP checks"),
        (json!({"Name": "a", "Checks": [{"TTL": "1s"}, {"TCP": "x:1"}]}), "Checks[1].Interval: required"),
        (
            json!({"Name": "a", "Checks": [{"TTL": "1s"}, {"TCP": "x", "Interval": "1s"}]}),
            "Checks[1].TCP: \"x\" is not host:port",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "ftp://x", "Interval": "1s"}}),
            "Check.HTTP: \"ftp://x\" is not an http",
        ),
        (json!({"Name": "a", "Check": {"TTL": "0"}}), "Check.TTL: must be greater than 0"),
        (json!({"Name": "a", "Check": {"TTL": "10"}}), "Check.TTL: invalid duration \"10\": missing unit"),
        (json!({"Name": "a", "Check": {"TTL": 10}}), "Check.TTL: must be a string"),
        (
            json!({"Name": "a", "Check": {"TTL": "1s", "Status": "maintenance"}}),
            "Check.Status: \"maintenance\" is not one of",
        ),
        (
            json!({"Name": "a", "Check": {"TCP": "x:1", "Interval": "1s", "Timeout": "0s"}}),
            "Check.Timeout: must be greater than 0",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "Interval": "1s", "Header": {"A B": ["1"]}}}),
            "Check.Header: \"A B\" is not a valid HTTP header name",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "Interval": "1s", "Header": {"A": ["1\r\nB: 2"]}}}),
            "Check.Header.A: \"1\\r\\nB: 2\" has a control character",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "Interval": "1s", "Method": "GE T"}}),
            "Check.Method: \"GE T\" is not an HTTP method",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "Interval": "1s", "Header": {"A": [1]}}}),
            "Check.Header.A: must be an array of strings",
        ),
        (
            json!({"Name": "a", "Check": {"HTTP": "http://x", "Interval": "1s", "TLSSkipVerify": "yes"}}),
            "Check.TLSSkipVerify: must be true or false",
        ),
        (
            json!({"Name": "a", "Checks": [{"TTL": "1s", "CheckID": "c"}, {"TTL": "1s", "CheckID": "c"}]}),
            "Checks[1].CheckID: \"c\" is used twice",
        ),
        (json!({"Name": "a", "Checks": {"TTL": "1s"}}), "Checks: must be an array"),
    ];
    for (body, want) in cases {
        let got = err(body.clone());
        assert!(got.starts_with(want), "{body}\n  got:  {got}\n  want: {want}...");
        assert!(!got.contains('\n'), "one line: {got}");
    }
    assert!(decode(b"{not json", CLIENT).unwrap_err().to_string().starts_with("body: not valid JSON"));
}

#[test]
fn check_update_bodies() {
    assert_eq!(decode_check_update(br#"{"Status":"warning","Output":"slow"}"#), Ok((Status::Warning, "slow".into())));
    assert_eq!(decode_check_update(br#"{"status":"passing"}"#), Ok((Status::Passing, String::new())));
    assert!(decode_check_update(br#"{"Output":"x"}"#).unwrap_err().to_string().starts_with("Status: required"));
    assert!(decode_check_update(br#"{"Status":"ok"}"#).unwrap_err().to_string().starts_with("Status: \"ok\" is not"));
    let long = "é".repeat(MAX_OUTPUT);
    assert!(clip_output(&long).len() <= MAX_OUTPUT);
}

/// Found by fuzz/registration: a meta key with a newline made the 400 reason two lines.
#[test]
fn a_meta_key_with_a_newline_gives_a_one_line_error() {
    let got = err(json!({"Name": "a", "Meta": {"regio\nn": "eu"}}));
    assert_eq!(got, "Meta.regio\\nn: keys must be 1-128 characters of A-Z a-z 0-9 _ -");
}
