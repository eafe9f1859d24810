//! Every key of the configuration file, once: where it lives, its default as the file would
//! write it, the flag and variable that set it too, and what it means. The sample configuration
//! (`signpost config-sample`, installed as /etc/signpost/signpost.toml) and the signpost.toml(5)
//! man page are made from this table; tests hold it to the parser (every key the file accepts is
//! here, and nothing else is) and to the validator (a file that writes every default out runs
//! exactly as an empty one).

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The TOML table (`dns`), or the array of tables (`regions.client`).
    pub section: &'static str,
    pub name: &'static str,
    /// The value the server runs with when the key is absent, as TOML; `None` when the absence
    /// means something no value writes (then `example` shows a value).
    pub default: Option<&'static str>,
    pub example: Option<&'static str>,
    /// The flag and environment variable that set the same thing over the file.
    pub flag: Option<&'static str>,
    pub env: Option<&'static str>,
    pub doc: &'static str,
}

const fn key(section: &'static str, name: &'static str, default: &'static str, doc: &'static str) -> Key {
    Key { section, name, default: Some(default), example: None, flag: None, env: None, doc }
}

const fn unset(section: &'static str, name: &'static str, example: &'static str, doc: &'static str) -> Key {
    Key { section, name, default: None, example: Some(example), flag: None, env: None, doc }
}

const fn flag(mut k: Key, flag: &'static str, env: &'static str) -> Key {
    k.flag = Some(flag);
    k.env = Some(env);
    k
}

/// The sections, in the order the file and the manual show them.
pub const SECTIONS: &[(&str, &str)] = &[
    ("dns", "The DNS server: where it listens, the domain it answers for, and how it answers."),
    ("regions.client", "Client networks and their regions (an array of tables, one per network)."),
    ("http", "The Consul-compatible HTTP API, the status page and /metrics."),
    ("store", "Where API registrations are kept: a data directory, or etcd in cluster mode."),
    ("zones", "The watched folder of zone files."),
    ("health", "Health-check defaults."),
    ("log", "Logs, to stderr."),
    ("shutdown", "What happens between SIGTERM and the exit."),
    ("acl", "Tokens scoped to services, and what requests without a token may do (see docs/security.md)."),
];

pub const KEYS: &[Key] = &[
    flag(
        key(
            "dns",
            "listen",
            r#"["127.0.0.1:53", "[::1]:53"]"#,
            "Addresses for DNS over UDP and TCP; port 0 picks a free port; [::1] is skipped on hosts without IPv6.",
        ),
        "--dns-addr ADDR (repeatable)",
        "SIGNPOST_DNS_ADDR",
    ),
    flag(
        key("dns", "domain", r#""local""#, "The domain answered from the registry; other names are forwarded."),
        "--domain NAME",
        "SIGNPOST_DOMAIN",
    ),
    unset(
        "dns",
        "advertise",
        r#""192.0.2.10""#,
        "The address ns.DOMAIN answers with (default: the first listen address).",
    ),
    flag(
        unset(
            "dns",
            "region",
            r#""us-east-1""#,
            "This server's region, for clients no [[regions.client]] network places.",
        ),
        "--region NAME",
        "SIGNPOST_REGION",
    ),
    key("dns", "ttl", r#""5s""#, "TTL of answers; services may set their own."),
    key("dns", "negative_ttl", r#""1s""#, "SOA minimum: how long resolvers may cache an absence."),
    key("dns", "answer_limit", "0", "At most this many A/AAAA records per answer (0: all)."),
    key("dns", "udp_max_payload", "1232", "The largest UDP answer, whatever the client's EDNS buffer."),
    key("dns", "only_passing", "false", "true: instances whose checks warn are not answered."),
    key(
        "dns",
        "when_none_healthy",
        r#""empty""#,
        "\"all\": a service with no healthy instance answers all of them (fail open).",
    ),
    flag(
        unset(
            "dns",
            "upstreams",
            r#"["192.0.2.53:53"]"#,
            "Resolvers for names outside the domain (default: /etc/resolv.conf's nameservers at start, minus signpost's own addresses; [] turns forwarding off).",
        ),
        "--upstream ADDR (repeatable)",
        "SIGNPOST_UPSTREAM",
    ),
    key("dns", "upstream_timeout", r#""2s""#, "How long one upstream may take before the next is tried."),
    key(
        "dns",
        "recursion_allow",
        r#"["127.0.0.0/8", "::1/128"]"#,
        "Client networks whose names outside the domain are forwarded; others get REFUSED.",
    ),
    key("dns", "max_slow_queries", "1024", "UDP queries the full handler works on at once; more are dropped."),
    key("dns", "tcp_max_connections", "1000", "TCP connections at once; at the limit the one idle longest makes room."),
    key("dns", "tcp_idle_timeout", r#""10s""#, "A TCP connection idle this long is closed."),
    key("dns", "tcp_max_queries", "0", "Queries per TCP connection before it is closed (0: no limit)."),
    key("dns", "tcp_pipeline", "64", "Queries of one TCP connection on the full handler at once."),
    unset(
        "dns",
        "rrl",
        r#"{ responses_per_second = 20, window = "1s", slip = 2, exempt = ["127.0.0.0/8", "::1/128"] }"#,
        "Response-rate limiting of UDP answers per client network (off by default).",
    ),
    key("dns", "transfer_allow", "[]", "Client networks that may transfer the zone (AXFR, IXFR)."),
    key("dns", "notify", "[]", "Secondaries (ADDR:PORT) sent a NOTIFY at every change."),
    unset("dns", "nsid", r#""dns-1.eu""#, "What NSID queries are answered with (1 to 255 bytes)."),
    key(
        "dns",
        "dns_sd_networks",
        "[]",
        "Networks whose hosts find the DNS-SD browse domain under their reverse zone (RFC 6763 §11).",
    ),
    key(
        "dns",
        "consul_names",
        "false",
        "Read Consul's datacenter qualifiers (web.service.dc1.D, web.service.dc1.dc.D); see docs/migrating.md.",
    ),
    unset("regions.client", "cidr", r#""10.1.0.0/16""#, "A client network."),
    unset("regions.client", "region", r#""us-east-1""#, "Its region."),
    flag(
        key("http", "listen", r#""127.0.0.1:8500""#, "The HTTP API's address; port 0 picks a free port."),
        "--http-addr ADDR",
        "SIGNPOST_HTTP_ADDR",
    ),
    Key {
        env: Some("SIGNPOST_TOKEN"),
        ..unset(
            "http",
            "token",
            r#""s3cret""#,
            "The management token: may do everything; writes need a token when set.",
        )
    },
    key("http", "reads_need_token", "false", "true: reads and the status page need a token too."),
    key(
        "http",
        "max_concurrent_requests",
        "1024",
        "Requests in progress at once (not /healthz, /readyz, /metrics); more get 429.",
    ),
    key("http", "max_blocking_queries", "512", "?index= queries waiting at once; more get 429."),
    key("http", "max_header_bytes", "16384", "Request line and headers."),
    flag(
        unset(
            "http",
            "tls_cert",
            r#""/etc/signpost/tls/server.pem""#,
            "HTTPS: the certificate chain (PEM), read again when it changes.",
        ),
        "--tls-cert FILE",
        "SIGNPOST_TLS_CERT",
    ),
    flag(
        unset(
            "http",
            "tls_key",
            r#""/etc/signpost/tls/server-key.pem""#,
            "HTTPS: the certificate's private key (PEM).",
        ),
        "--tls-key FILE",
        "SIGNPOST_TLS_KEY",
    ),
    flag(
        unset(
            "http",
            "tls_client_ca",
            r#""/etc/signpost/tls/clients.pem""#,
            "HTTPS: client certificates from this CA required (PEM).",
        ),
        "--tls-client-ca FILE",
        "SIGNPOST_TLS_CLIENT_CA",
    ),
    flag(
        key("store", "data_dir", r#""data""#, "Where the embedded store keeps API registrations."),
        "--data-dir DIR",
        "SIGNPOST_DATA_DIR",
    ),
    flag(
        unset(
            "store",
            "url",
            r#""etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379""#,
            "Cluster mode: replicas share a registry in etcd (builds with --features cluster).",
        ),
        "--store URL",
        "SIGNPOST_STORE",
    ),
    key(
        "store",
        "prefix",
        r#""/signpost/""#,
        "Cluster mode: etcd key prefix; replicas with the same prefix share a registry.",
    ),
    key("store", "timeout", r#""5s""#, "Cluster mode: a write waits this long for etcd, then answers 503."),
    key("store", "lease", r#""5s""#, "Cluster mode: a dead replica's checks move to the others within two of these."),
    unset(
        "store",
        "ca_file",
        r#""/etc/signpost/etcd/ca.pem""#,
        "Cluster mode: etcd over TLS, trusting the CA of etcd's certificates (PEM).",
    ),
    unset(
        "store",
        "cert_file",
        r#""/etc/signpost/etcd/client.pem""#,
        "Cluster mode: a client certificate for etcd's --client-cert-auth (PEM).",
    ),
    unset("store", "key_file", r#""/etc/signpost/etcd/client-key.pem""#, "Cluster mode: its private key (PEM)."),
    unset("store", "username", r#""signpost""#, "Cluster mode: the etcd user (etcd's authentication)."),
    unset(
        "store",
        "password_file",
        r#""/etc/signpost/etcd/password""#,
        "Cluster mode: the file holding that user's password.",
    ),
    flag(key("zones", "dir", r#""zones""#, "The watched folder of zone files."), "--zones DIR", "SIGNPOST_ZONES"),
    key("zones", "max_file_bytes", "4194304", "A larger zone file is refused."),
    key("zones", "max_instances_per_file", "10000", "A zone file declaring more is refused."),
    key("health", "rise", "2", "Consecutive successes that make a check passing."),
    key("health", "fall", "3", "Consecutive failures that make a check critical."),
    key("health", "max_in_flight", "1024", "Probes running at once."),
    flag(
        key("log", "format", r#""text""#, "\"json\": one JSON object per line, with the same messages."),
        "--log-format text|json",
        "SIGNPOST_LOG_FORMAT",
    ),
    flag(
        unset("log", "level", r#""info""#, "A level or a RUST_LOG-style filter (default: RUST_LOG, else info)."),
        "--log-level LEVEL",
        "SIGNPOST_LOG_LEVEL",
    ),
    flag(
        key("shutdown", "grace", r#""5s""#, "From the signal to the exit, at most."),
        "--shutdown-grace DUR",
        "SIGNPOST_SHUTDOWN_GRACE",
    ),
    key("shutdown", "drain", r#""1s""#, "How long DNS and HTTP keep serving after /readyz turned 503."),
    unset(
        "acl",
        "token",
        r#"[{ name = "payments-ci", secret_file = "/etc/signpost/tokens/payments-ci", service_prefix = { "payment-" = "write", "" = "read" } }]"#,
        "Named tokens ([[acl.token]]): a secret from secret_file or SIGNPOST_ACL_<NAME>, rules by service-name prefix.",
    ),
    unset(
        "acl",
        "anonymous",
        r#"{ service_prefix = { "" = "read" } }"#,
        "What requests without a token may do (default: everything while no token exists, read once one does).",
    ),
];

/// The configuration file with every key, commented out, at its default (or an example where
/// its absence means something no value writes): what a packaged /etc/signpost/signpost.toml is.
pub fn sample() -> String {
    let mut out = String::from(
        "# signpost configuration. Every key is optional; each is shown commented out at its\n\
         # default. Flags and SIGNPOST_* variables override these. See signpost.toml(5).\n",
    );
    for (section, about) in SECTIONS {
        let array = section.contains('.');
        out.push_str(&format!("\n# {about}\n"));
        out.push_str(&if array { format!("# [[{section}]]\n") } else { format!("[{section}]\n") });
        for k in KEYS.iter().filter(|k| k.section == *section) {
            out.push_str(&format!("# {}\n", k.doc));
            let value = k.default.or(k.example).unwrap_or_default();
            out.push_str(&format!("# {} = {value}\n", k.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::config::RawConfig;

    /// The file with every default written out (keys without one left out).
    fn defaults_written() -> String {
        let mut out = String::new();
        for (section, _) in SECTIONS.iter().filter(|(s, _)| !s.contains('.')) {
            out.push_str(&format!("[{section}]\n"));
            for k in KEYS.iter().filter(|k| k.section == *section) {
                if let Some(v) = k.default {
                    out.push_str(&format!("{} = {v}\n", k.name));
                }
            }
        }
        out
    }

    #[test]
    fn a_file_of_every_default_runs_as_an_empty_one() {
        let written =
            RawConfig::from_toml(Path::new("defaults.toml"), &defaults_written()).unwrap().validate().unwrap();
        let mut empty = RawConfig::default().validate().unwrap();
        // The one thing writing the default changes: `[::1]:53` is then required, not skipped.
        empty.dns.listen_is_default = false;
        assert_eq!(format!("{written:?}"), format!("{empty:?}"));
    }

    #[test]
    fn every_key_the_file_takes_is_in_the_table_and_no_other() {
        // Every example parses and validates too.
        let mut all = String::new();
        for (section, _) in SECTIONS {
            all.push_str(&if section.contains('.') { format!("[[{section}]]\n") } else { format!("[{section}]\n") });
            for k in KEYS.iter().filter(|k| k.section == *section && !(k.section == "store" && k.name == "url")) {
                all.push_str(&format!("{} = {}\n", k.name, k.default.or(k.example).unwrap()));
            }
        }
        let raw = RawConfig::from_toml(Path::new("all.toml"), &all).unwrap_or_else(|e| panic!("{e}\n{all}"));
        raw.clone().validate().unwrap();
        // The raw layer's own key list: serialized, every field shows, set or not.
        let json = serde_json::to_value(&raw).unwrap();
        let mut fields = BTreeSet::new();
        for (section, table) in json.as_object().unwrap() {
            let table = match table {
                serde_json::Value::Array(items) => items[0].clone(),
                other => other.clone(),
            };
            let section = if section == "regions" { "regions.client".to_string() } else { section.clone() };
            let table = if section == "regions.client" { table["client"][0].clone() } else { table };
            for name in table.as_object().unwrap().keys() {
                fields.insert(format!("{section}.{name}"));
            }
        }
        let documented: BTreeSet<String> = KEYS.iter().map(|k| format!("{}.{}", k.section, k.name)).collect();
        assert_eq!(fields, documented);
    }

    #[test]
    fn the_sample_parses_with_every_line_uncommented_but_cluster_mode() {
        let uncommented: String = sample()
            .lines()
            .filter(|l| {
                l.starts_with('[')
                    || l.starts_with("# [[")
                    || l.starts_with("# ") && l.contains(" = ") && !l.contains("url = ")
            })
            .map(|l| l.trim_start_matches("# ").to_string() + "\n")
            .collect();
        RawConfig::from_toml(Path::new("sample"), &uncommented).unwrap().validate().unwrap();
        RawConfig::from_toml(Path::new("sample"), &sample()).unwrap().validate().unwrap();
    }
}
