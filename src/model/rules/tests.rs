//! Table-driven tests of the rules every path shares: each case a value and what the rule makes
//! of it, or the error text it reads with.

use std::net::IpAddr;

use super::*;
use crate::model::WhenNoneHealthy;

fn ip(s: &str) -> Address {
    Address::Ip(s.parse::<IpAddr>().unwrap())
}

fn host(s: &str) -> Address {
    Address::Host(s.into())
}

#[test]
fn addresses() {
    let long_label = format!("{}.com", "a".repeat(64));
    let long_name = format!("{}.com", vec!["a".repeat(60); 5].join("."));
    #[rustfmt::skip]
    let cases: Vec<(&str, Result<Address, &str>)> = vec![
        ("10.0.0.1", Ok(ip("10.0.0.1"))),
        (" 10.0.0.1 ", Ok(ip("10.0.0.1"))),
        ("::1", Ok(ip("::1"))),
        ("fe80::1", Ok(ip("fe80::1"))),
        // IPv4-mapped: the IPv4 address, answered as A.
        ("::ffff:10.0.0.1", Ok(ip("10.0.0.1"))),
        ("db.example.com", Ok(host("db.example.com"))),
        // One spelling: lowercase, no trailing dot.
        ("DB.Example.COM.", Ok(host("db.example.com"))),
        ("db-1", Ok(host("db-1"))),
        // `_` is a DNS name's character (Docker's compose service names carry it).
        ("my_db.internal", Ok(host("my_db.internal"))),
        ("1e100.net", Ok(host("1e100.net"))),
        ("", Err("must not be empty")),
        ("  ", Err("must not be empty")),
        ("0.0.0.0", Err("\"0.0.0.0\" is not an address clients can reach; give the instance's own address")),
        ("::", Err("\"::\" is not an address clients can reach")),
        ("::ffff:0.0.0.0", Err("\"::ffff:0.0.0.0\" is not an address clients can reach")),
        ("10.0.0.300", Err("\"10.0.0.300\" is neither an IP address nor a host name")),
        ("300.1.1.1", Err("\"300.1.1.1\" is neither")),
        ("a.123", Err("\"a.123\" is neither")),
        ("a b", Err("\"a b\" is neither")),
        ("bad!", Err("\"bad!\" is neither")),
        ("-a.example", Err("\"-a.example\" is neither")),
        ("a..example", Err("\"a..example\" is neither")),
        (".", Err("\".\" is neither")),
        ("db.example..", Err("\"db.example..\" is neither")),
        (&long_label, Err("is neither")),
        (&long_name, Err("is neither")),
    ];
    for (text, want) in cases {
        match (Address::parse(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn labels_and_tags() {
    for (s, label_ok, tag_ok) in [
        ("web", true, true),
        ("Web_1", true, true),
        ("a", true, true),
        (&*"a".repeat(63), true, true),
        (&*"a".repeat(64), false, true),
        ("-a", false, true),
        ("a-", false, true),
        ("a.b", false, true),
        ("traefik.enable=true", false, true),
        ("", false, false),
    ] {
        assert_eq!(label(s).is_ok(), label_ok, "label {s:?}");
        assert_eq!(tag(s).is_ok(), tag_ok, "tag {s:?}");
    }
    assert_eq!(
        label("-a").unwrap_err().to_string(),
        "\"-a\" must be 1-63 characters of A-Z a-z 0-9 _ -, not starting or ending with '-'"
    );
    assert_eq!(tag("").unwrap_err(), Invalid::Empty);
}

#[test]
fn meta_pairs() {
    let long_key = "k".repeat(129);
    #[rustfmt::skip]
    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        ("version", "2.1.0".into(), Ok(())),
        ("a_b-C9", "".into(), Ok(())),
        (&long_key[..128], "v".repeat(512), Ok(())),
        ("", "v".into(), Err("keys must be 1-128 characters of A-Z a-z 0-9 _ -")),
        (&long_key, "v".into(), Err("keys must be 1-128 characters")),
        ("a.b", "v".into(), Err("keys must be")),
        ("a b", "v".into(), Err("keys must be")),
        ("k", "v".repeat(513), Err("is longer than 512 bytes")),
        // The keys signpost reads, by their own rules.
        ("region", "eu-1".into(), Ok(())),
        ("region", "us east".into(), Err("\"us east\" must be 1-63 characters")),
        ("dns-ttl", "10s".into(), Ok(())),
        ("dns-ttl", "500ms".into(), Err("\"500ms\" must be 0 or at least 1s: DNS TTLs are whole seconds")),
        ("dns-ttl", "5".into(), Err("invalid duration \"5\": missing unit")),
        ("dns-answer-limit", "0".into(), Ok(())),
        ("dns-answer-limit", "-1".into(), Err("\"-1\" is not a whole number from 0 to 4294967295")),
    ];
    for (key, value, want) in cases {
        let got = meta_entry(key, &value).map_err(|e| e.to_string());
        match want {
            Ok(()) => assert_eq!(got, Ok(()), "{key}={value}"),
            Err(want) => assert!(got.as_ref().is_err_and(|e| e.starts_with(want)), "{key}={value}: {got:?}"),
        }
    }
    assert!(meta_count(64).is_ok());
    assert_eq!(meta_count(65).unwrap_err().to_string(), "has 65 keys; at most 64 are allowed");
}

#[test]
fn meta_settings_read_region_ttl_and_limit() {
    let meta = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let (region, policy) =
        meta_settings(&meta(&[("region", "eu"), ("dns-ttl", "1500ms"), ("dns-answer-limit", "2")])).unwrap();
    assert_eq!(region.as_deref(), Some("eu"));
    assert_eq!((policy.ttl, policy.answer_limit), (Some(Duration::from_secs(1)), Some(2)));
    assert_eq!(meta_settings(&meta(&[("version", "1")])).unwrap(), (None, ServicePolicy::default()));
    let (key, e) = meta_settings(&meta(&[("dns-ttl", "500ms")])).unwrap_err();
    assert_eq!((key, e), ("dns-ttl", Invalid::SubSecondTtl("500ms".into())));
}

#[test]
fn dns_ttls_are_whole_seconds() {
    #[rustfmt::skip]
    let cases: [(&str, Result<u64, Invalid>); 9] = [
        ("0", Ok(0)),
        ("0s", Ok(0)),
        ("1s", Ok(1)),
        ("1500ms", Ok(1)),
        ("1m30s", Ok(90)),
        ("2147483647s", Ok(2147483647)),
        ("500ms", Err(Invalid::SubSecondTtl("500ms".into()))),
        ("2147483648s", Err(Invalid::LongTtl("2147483648s".into()))),
        ("10", Err(Invalid::Duration(crate::duration::parse("10").unwrap_err()))),
    ];
    for (text, want) in cases {
        assert_eq!(dns_ttl(text).map(|d| d.as_secs()), want, "{text}");
    }
}

#[test]
fn answer_limits_are_plain_numbers() {
    for (text, want) in [
        ("0", Some(0)),
        ("2", Some(2)),
        ("4294967295", Some(u32::MAX)),
        ("-1", None),
        ("+2", None),
        ("", None),
        ("2x", None),
        ("4294967296", None),
    ] {
        assert_eq!(answer_limit(text).ok(), want, "{text:?}");
    }
}

#[test]
fn http_checks() {
    for (method, want) in [
        ("", Ok("GET")),
        ("GET", Ok("GET")),
        ("post", Ok("POST")),
        ("Head", Ok("HEAD")),
        ("M-SEARCH", Ok("M-SEARCH")),
        ("GE T", Err("\"GE T\" is not an HTTP method")),
        ("GET\n", Err("\"GET\\n\" is not an HTTP method")),
    ] {
        let got = http_method(method).map_err(|e| e.to_string());
        assert_eq!(got.as_deref(), want.map_err(|e: &str| e.to_string()).as_deref(), "{method:?}");
    }
    for (name, ok) in [("X-Probe", true), ("Authorization", true), ("A B", false), ("", false), ("A:", false)] {
        assert_eq!(header_name(name).is_ok(), ok, "{name:?}");
    }
    for (value, ok) in [("Bearer x", true), ("a\tb", true), ("", true), ("a\r\nX-Evil: 1", false), ("\u{7f}", false)] {
        assert_eq!(header_value(value).is_ok(), ok, "{value:?}");
    }
    for (url, ok) in [
        ("http://x", true),
        ("https://10.0.0.1:8443/health?full=1", true),
        ("http://[::1]:80/", true),
        ("ftp://x/", false),
        ("http://", false),
        ("http:///path", false),
        ("http://a b/", false),
        ("x", false),
    ] {
        assert_eq!(http_url(url).is_ok(), ok, "{url:?}");
    }
}

#[test]
fn tcp_targets() {
    for (target, ok) in [
        ("x:1", true),
        ("10.0.0.1:5432", true),
        ("[::1]:80", true),
        ("x", false),
        ("x:", false),
        (":80", false),
        ("x:65536", false),
        ("::1:80", false),
        ("[::1]", false),
        ("a b:1", false),
    ] {
        assert_eq!(tcp_target(target).is_ok(), ok, "{target:?}");
    }
}

#[test]
fn durations_must_be_positive() {
    assert_eq!(positive(Duration::from_millis(1)), Ok(Duration::from_millis(1)));
    assert_eq!(positive(Duration::ZERO), Err(Invalid::NotPositive));
}

#[test]
fn policies_merge_to_the_most_conservative() {
    let p = |ttl: Option<u64>, limit: Option<u32>, only: Option<bool>, none: Option<WhenNoneHealthy>| ServicePolicy {
        ttl: ttl.map(Duration::from_secs),
        answer_limit: limit,
        only_passing: only,
        when_none_healthy: none,
    };
    let all = Some(WhenNoneHealthy::All);
    let empty = Some(WhenNoneHealthy::Empty);
    #[rustfmt::skip]
    let cases = [
        (p(None, None, None, None), p(None, None, None, None), p(None, None, None, None)),
        (p(Some(30), None, None, None), p(Some(10), None, None, None), p(Some(10), None, None, None)),
        (p(Some(30), None, None, None), p(None, None, None, None), p(Some(30), None, None, None)),
        // 0 is "no limit": any positive limit is smaller.
        (p(None, Some(0), None, None), p(None, Some(3), None, None), p(None, Some(3), None, None)),
        (p(None, Some(5), None, None), p(None, Some(3), None, None), p(None, Some(3), None, None)),
        (p(None, Some(0), None, None), p(None, None, None, None), p(None, Some(0), None, None)),
        (p(None, None, Some(false), None), p(None, None, Some(true), None), p(None, None, Some(true), None)),
        (p(None, None, None, empty), p(None, None, None, all), p(None, None, None, all)),
        (p(None, None, None, empty), p(None, None, None, None), p(None, None, None, empty)),
    ];
    for (a, b, want) in cases {
        assert_eq!(a.merge(b), want, "{a:?} + {b:?}");
        assert_eq!(b.merge(a), want, "{b:?} + {a:?}");
    }
}
