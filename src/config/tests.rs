//! The configuration's layers and rules, table-driven where they are many.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn design_example_is_accepted() {
    let text = r#"
[dns]
listen = ["127.0.0.1:53", "[::1]:53"]
domain = "local"
advertise = "127.0.0.1"
region = "us-east-1"
ttl = "5s"
negative_ttl = "1s"
answer_limit = 0
udp_max_payload = 1232
only_passing = false
when_none_healthy = "empty"
upstreams = ["192.0.2.53:53"]
upstream_timeout = "2s"
recursion_allow = ["127.0.0.0/8", "::1/128"]

[[regions.client]]
cidr = "10.1.0.0/16"
region = "us-east-1"

[http]
listen = "127.0.0.1:8500"
token = "..."

[store]
data_dir = "./data"
# url = "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379"   (cluster mode: store_url_* below)
prefix = "/signpost/"

[zones]
dir = "./zones"

[health]
rise = 2
fall = 3
max_in_flight = 1024

[log]
format = "text"
level = "info"

[shutdown]
grace = "5s"
drain = "1s"
"#;
    let c = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap();
    assert_eq!(c.dns.listen.len(), 2);
    assert_eq!(c.dns.domain.to_string(), "local");
    assert_eq!(c.dns.defaults.ttl, Duration::from_secs(5));
}

#[test]
#[cfg(feature = "cluster")]
fn store_url_turns_on_cluster_mode() {
    let text = "[store]\nurl = \"etcd://10.0.0.1:2379, 10.0.0.2:2379\"\nprefix = \"/sd\"\n";
    let c = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap();
    let cluster = c.cluster.unwrap();
    assert_eq!(cluster.endpoints, ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]);
    assert_eq!(cluster.prefix, "/sd/");
    assert_eq!((cluster.timeout, cluster.lease), (Duration::from_secs(5), Duration::from_secs(5)));
    assert!(RawConfig::default().validate().unwrap().cluster.is_none());
    for (text, key) in [
        ("[store]\nurl = \"etcd://h:1\"\nlease = \"1500ms\"\n", "store.lease"),
        ("[store]\nurl = \"etcd://h:1\"\ntimeout = \"1ms\"\n", "store.timeout"),
    ] {
        let err = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
#[cfg(not(feature = "cluster"))]
fn store_url_without_the_cluster_feature_says_how_to_get_it() {
    let text = "[store]\nurl = \"etcd://127.0.0.1:2379\"\n";
    let err = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap_err().to_string();
    assert!(err.contains("store.url") && err.contains("--features cluster"), "{err}");
}

#[test]
fn unknown_keys_point_at_the_key() {
    let err = RawConfig::from_toml(Path::new("s.toml"), "[dns]\nttl = \"5s\"\ncolour = 1\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("s.toml:3:1: "), "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[test]
fn flags_beat_the_file() {
    let raw =
        RawConfig::from_toml(Path::new("s.toml"), "[dns]\nlisten = [\"127.0.0.1:5300\"]\ndomain = \"a\"\n").unwrap();
    let o = Overrides { dns_addr: vec!["127.0.0.1:8600".into()], ..Overrides::default() };
    let c = raw.overlay(o).validate().unwrap();
    assert_eq!(c.dns.listen, vec!["127.0.0.1:8600".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.dns.domain.to_string(), "a");
}

#[test]
fn token_from_the_environment_beats_the_file() {
    let raw = || RawConfig::from_toml(Path::new("s.toml"), "[http]\ntoken = \"file\"\n").unwrap();
    let env = |t: &str| Overrides { token: Some(t.into()), ..Overrides::default() };
    assert_eq!(raw().overlay(env("env")).validate().unwrap().acl.management.as_deref(), Some("env"));
    assert_eq!(raw().overlay(env("")).validate().unwrap().acl.management.as_deref(), Some("file"));
    assert_eq!(RawConfig::default().validate().unwrap().acl.management, None);
    let empty = RawConfig::from_toml(Path::new("s.toml"), "[http]\ntoken = \"\"\n").unwrap();
    assert!(empty.validate().unwrap_err().to_string().contains("http.token"));
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let raw = RawConfig::from_toml(Path::new("s.toml"), "[http]\ntoken = \"s3cr3t-t0ken\"\n").unwrap();
    let o = Overrides { token: Some("env-s3cr3t".into()), ..Overrides::default() };
    let config = raw.clone().overlay(o.clone()).validate().unwrap();
    for text in [format!("{raw:?}"), format!("{o:?}"), format!("{config:?}"), format!("{config:#?}")] {
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
    assert_eq!(config.acl.management.as_deref(), Some("env-s3cr3t"));
}

#[test]
fn bad_values_name_the_key() {
    for (text, key) in [
        ("[dns]\nlisten = [\"localhost\"]\n", "dns.listen"),
        ("[dns]\nttl = \"5\"\n", "dns.ttl"),
        ("[dns]\nttl = \"500ms\"\n", "dns.ttl"),
        ("[dns]\nnegative_ttl = \"100ms\"\n", "dns.negative_ttl"),
        ("[dns]\ndomain = \"bad domain\"\n", "dns.domain"),
        ("[dns]\nwhen_none_healthy = \"some\"\n", "dns.when_none_healthy"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[store]\nurl = \"consul://127.0.0.1:8500\"\n", "store.url"),
        ("[store]\nurl = \"etcd://127.0.0.1\"\n", "store.url"),
        ("[dns]\nupstreams = [\"resolver.example\"]\n", "dns.upstreams"),
        ("[dns]\nupstreams = [\"192.0.2.53:0\"]\n", "dns.upstreams"),
        ("[dns]\nupstreams = [\"2001:db8::1:53:x\"]\n", "dns.upstreams"),
        ("[dns]\nupstream_timeout = \"2\"\n", "dns.upstream_timeout"),
        ("[dns]\nupstream_timeout = \"0\"\n", "dns.upstream_timeout"),
        ("[dns]\nrecursion_allow = [\"10.0.0.0/33\"]\n", "dns.recursion_allow"),
        ("[dns]\nrecursion_allow = [\"everyone\"]\n", "dns.recursion_allow"),
        ("[dns]\ndns_sd_networks = [\"10.1.0.0/40\"]\n", "dns.dns_sd_networks"),
        ("[shutdown]\ngrace = \"5\"\n", "shutdown.grace"),
        ("[shutdown]\ndrain = \"soon\"\n", "shutdown.drain"),
        ("[dns]\nmax_slow_queries = 0\n", "dns.max_slow_queries"),
        ("[dns]\ntcp_max_connections = 0\n", "dns.tcp_max_connections"),
        ("[dns]\ntcp_idle_timeout = \"0s\"\n", "dns.tcp_idle_timeout"),
        ("[dns]\nrrl = { responses_per_second = 0 }\n", "dns.rrl.responses_per_second"),
        ("[dns]\nrrl = { responses_per_second = 5, window = \"1ms\" }\n", "dns.rrl.window"),
        ("[dns]\nrrl = { responses_per_second = 5, exempt = [\"x\"] }\n", "dns.rrl.exempt"),
    ] {
        let err = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn forwarding_keys_parse_with_defaults() {
    let c = RawConfig::default().validate().unwrap();
    assert_eq!(c.forward.upstreams, None, "default: /etc/resolv.conf at start");
    assert_eq!(c.forward.timeout, Duration::from_secs(2));
    let allow: Vec<String> = c.forward.recursion_allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(allow, ["127.0.0.0/8", "::1/128"]);

    let text = "[dns]\nupstreams = [\"192.0.2.53:5300\", \"192.0.2.54\", \"[2001:db8::1]:53\", \"2001:db8::2\"]\n\
                upstream_timeout = \"300ms\"\nrecursion_allow = [\"10.1.0.0/16\", \"192.0.2.7\"]\n";
    let c = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap();
    let ups: Vec<String> = c.forward.upstreams.unwrap().iter().map(|a| a.to_string()).collect();
    assert_eq!(ups, ["192.0.2.53:5300", "192.0.2.54:53", "[2001:db8::1]:53", "[2001:db8::2]:53"]);
    assert_eq!(c.forward.timeout, Duration::from_millis(300));
    let allow: Vec<String> = c.forward.recursion_allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(allow, ["10.1.0.0/16", "192.0.2.7/32"]);

    // An empty list turns forwarding off; --upstream replaces the file's list.
    let off = RawConfig::from_toml(Path::new("s.toml"), "[dns]\nupstreams = []\n").unwrap();
    assert_eq!(off.clone().validate().unwrap().forward.upstreams, Some(vec![]));
    let o = Overrides { upstream: vec!["192.0.2.9".into()], ..Overrides::default() };
    let ups = off.overlay(o).validate().unwrap().forward.upstreams.unwrap();
    assert_eq!(ups, ["192.0.2.9:53".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn dns_sd_networks_default_to_none() {
    assert!(RawConfig::default().validate().unwrap().dns.dns_sd_networks.is_empty());
    let text = "[dns]\ndns_sd_networks = [\"10.1.0.0/16\", \"fd00::/64\"]\n";
    let c = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap();
    let nets: Vec<String> = c.dns.dns_sd_networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(nets, ["10.1.0.0/16", "fd00::/64"]);
}

#[test]
fn shutdown_drain_is_capped_by_the_grace() {
    let c = RawConfig::default().validate().unwrap();
    assert_eq!(c.shutdown, ShutdownConfig { grace: Duration::from_secs(5), drain: Duration::from_secs(1) });
    let short = RawConfig::from_toml(Path::new("s.toml"), "[shutdown]\ngrace = \"300ms\"\n").unwrap();
    let c = short.validate().unwrap();
    assert_eq!(c.shutdown, ShutdownConfig { grace: Duration::from_millis(300), drain: Duration::from_millis(300) });
    let o = Overrides { shutdown_grace: Some("10s".into()), ..Overrides::default() };
    assert_eq!(RawConfig::default().overlay(o).validate().unwrap().shutdown.grace, Duration::from_secs(10));
}

#[test]
fn acl_and_tls_refusals_name_the_key() {
    let token = |extra: &str| format!("[[acl.token]]\nname = \"ci\"\nsecret_file = \"ci.secret\"\n{extra}");
    for (text, key, words) in [
        ("[[acl.token]]\nname = \"ci\"\n".to_string(), "acl.token.secret_file", "SIGNPOST_ACL_CI"),
        (token("service_prefix = { \"\" = \"admin\" }\n"), "acl.token.service_prefix", "\"admin\""),
        (token("service_prefix = { \"Pay\" = \"read\", \"pay\" = \"write\" }\n"), "acl.token.service_prefix", "twice"),
        ("[[acl.token]]\nname = \"anonymous\"\nsecret_file = \"f\"\n".into(), "acl.token.name", "anonymous"),
        ("[[acl.token]]\nname = \"a b\"\nsecret_file = \"f\"\n".into(), "acl.token.name", "\"a b\""),
        (token("[[acl.token]]\nname = \"CI\"\nsecret_file = \"g\"\n"), "acl.token", "the same token"),
        ("[acl.anonymous]\nservice_prefix = { \"\" = \"reed\" }\n".into(), "acl.anonymous.service_prefix", "reed"),
        (
            "[http]\ntoken = \"t\"\nreads_need_token = true\n[acl.anonymous]\nservice_prefix = {}\n".into(),
            "http.reads_need_token",
            "[acl.anonymous]",
        ),
        ("[http]\nreads_need_token = true\n".into(), "http.reads_need_token", "needs a token"),
        ("[http]\ntls_cert = \"c.pem\"\n".into(), "http.tls_key", "needed with tls_cert"),
        ("[http]\ntls_key = \"k.pem\"\n".into(), "http.tls_cert", "needed with tls_key"),
        ("[http]\ntls_client_ca = \"ca.pem\"\n".into(), "http.tls_client_ca", "needs tls_cert"),
    ] {
        let err = RawConfig::from_toml(Path::new("s.toml"), &text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{text}: {err}");
    }
}

#[test]
fn requests_without_a_token_may_do_what_the_configuration_implies() {
    use crate::acl::Policy::{Read, Write};
    // (configuration, may anonymous read "x", may anonymous write "x")
    for (text, read, write) in [
        ("", true, true),
        ("[http]\ntoken = \"t\"\n", true, false),
        ("[[acl.token]]\nname = \"ci\"\nsecret_file = \"f\"\n", true, false),
        ("[http]\ntoken = \"t\"\nreads_need_token = true\n", false, false),
        ("[acl.anonymous]\nservice_prefix = { \"x\" = \"write\" }\n", true, true),
        ("[http]\ntoken = \"t\"\n[acl.anonymous]\nservice_prefix = { \"y\" = \"read\" }\n", false, false),
    ] {
        let c = RawConfig::from_toml(Path::new("s.toml"), text).unwrap().validate().unwrap();
        assert_eq!(c.acl.anonymous.check("x", Read).is_ok(), read, "{text}");
        assert_eq!(c.acl.anonymous.check("x", Write).is_ok(), write, "{text}");
    }
}

#[test]
fn a_token_secret_from_the_environment_beats_its_file_and_never_shows() {
    use crate::acl::SecretSource;
    let text =
        "[[acl.token]]\nname = \"payments-ci\"\nsecret_file = \"f\"\nservice_prefix = { \"payment-\" = \"write\" }\n";
    let raw = || RawConfig::from_toml(Path::new("s.toml"), text).unwrap();
    let env = |k: &str| {
        let secrets = [(k.to_string(), "s3cr3t-from-env".into())].into_iter().collect();
        Overrides { acl_secrets: secrets, ..Overrides::default() }
    };
    let c = raw().validate().unwrap();
    assert_eq!(c.acl.tokens[0].secret, SecretSource::File("f".into()));
    let c = raw().overlay(env("SIGNPOST_ACL_PAYMENTS_CI")).validate().unwrap();
    match &c.acl.tokens[0].secret {
        SecretSource::Given { from, secret } => {
            assert_eq!((from.as_str(), &**secret), ("SIGNPOST_ACL_PAYMENTS_CI", "s3cr3t-from-env"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
    let err = raw().overlay(env("SIGNPOST_ACL_PAYMENT_CI")).validate().unwrap_err().to_string();
    assert!(err.contains("SIGNPOST_ACL_PAYMENT_CI is set, but no [[acl.token]] has that name"), "{err}");
}

#[cfg(feature = "cluster")]
#[test]
fn etcd_tls_and_user_keys_come_in_pairs() {
    let url = "[store]\nurl = \"etcd://127.0.0.1:2379\"\n";
    for (extra, key) in [
        ("cert_file = \"c\"\nkey_file = \"k\"\n", "store.ca_file"),
        ("ca_file = \"ca\"\ncert_file = \"c\"\n", "store.key_file"),
        ("ca_file = \"ca\"\nkey_file = \"k\"\n", "store.cert_file"),
        ("username = \"u\"\n", "store.password_file"),
        ("password_file = \"p\"\n", "store.username"),
    ] {
        let err = RawConfig::from_toml(Path::new("s.toml"), &format!("{url}{extra}")).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
    let text = format!("{url}ca_file = \"ca\"\nusername = \"u\"\npassword_file = \"p\"\n");
    let c = RawConfig::from_toml(Path::new("s.toml"), &text).unwrap().validate().unwrap().cluster.unwrap();
    assert_eq!(c.endpoints, ["https://127.0.0.1:2379"], "TLS endpoints");
    assert_eq!(c.user.unwrap().name, "u");
    let c = RawConfig::from_toml(Path::new("s.toml"), url).unwrap().validate().unwrap().cluster.unwrap();
    assert_eq!((c.endpoints, c.tls, c.user), (vec!["http://127.0.0.1:2379".to_string()], None, None));
}
