//! From raw layers to the validated `Config`: each section checked and given its defaults, every
//! refusal naming its key (`dns.ttl`) and what would be accepted.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use super::raw::{
    RawAcl, RawConfig, RawDns, RawHealth, RawHttp, RawLog, RawRegions, RawRrl, RawShutdown, RawStore, RawToken,
    RawZones,
};
use super::{Config, ConfigError, DnsConfig, LogConfig, LogFormat, ShutdownConfig};
use crate::acl::{AclConfig, Policy, Rules, SecretSource, TokenConfig};
use crate::dns::ForwardConfig;
use crate::model::WhenNoneHealthy;
use crate::model::rules::is_dns_label;
use crate::registry::Defaults;
use crate::secret::Secret;
use crate::store::{ClusterConfig, EtcdTls, EtcdUser};

impl RawConfig {
    /// Validates everything and fills in defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let acl = acl_config(&self.http, &self.acl)?;
        Ok(Config {
            dns: dns_config(&self.dns, &self.regions)?,
            zones_dir: self.zones.dir.clone().unwrap_or_else(|| "zones".into()),
            zone_limits: zone_limits(&self.zones)?,
            data_dir: self.store.data_dir.clone().unwrap_or_else(|| "data".into()),
            cluster: cluster_config(&self.store)?,
            http_listen: socket_addr("http.listen", self.http.listen.as_deref().unwrap_or("127.0.0.1:8500"))?,
            http_limits: http_limits(&self.http)?,
            acl,
            http_tls: http_tls(&self.http)?,
            health: health_settings(&self.health)?,
            forward: forward_config(&self.dns)?,
            log: log_config(&self.log)?,
            shutdown: shutdown_config(&self.shutdown)?,
        })
    }
}

fn dns_config(d: &RawDns, regions: &RawRegions) -> Result<DnsConfig, ConfigError> {
    let listen = match &d.listen {
        None => vec!["127.0.0.1:53".parse().expect("valid"), "[::1]:53".parse().expect("valid")],
        Some(list) if list.is_empty() => return invalid("dns.listen", "needs at least one address".into()),
        Some(list) => list.iter().map(|s| socket_addr("dns.listen", s)).collect::<Result<_, _>>()?,
    };
    let domain_text = d.domain.clone().unwrap_or_else(|| "local".into());
    let domain = Name::from_str(domain_text.trim_end_matches('.'))
        .ok()
        .filter(|n| !n.is_root() && n.iter().all(|l| is_dns_label(&String::from_utf8_lossy(l))))
        .ok_or_else(|| ConfigError::Invalid {
            key: "dns.domain",
            message: format!("{domain_text:?} is not a domain name (write e.g. \"local\" or \"sd.example.com\")"),
        })?;
    let advertise = match &d.advertise {
        None => None,
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| ConfigError::Invalid {
            key: "dns.advertise",
            message: format!("{s:?} is not an IP address"),
        })?),
    };
    let udp_max_payload = d.udp_max_payload.unwrap_or(1232);
    if udp_max_payload < 512 {
        return invalid("dns.udp_max_payload", format!("must be at least 512, got {udp_max_payload}"));
    }
    if let Some(r) = &d.region
        && !is_dns_label(r)
    {
        return invalid("dns.region", format!("{r:?} is not a DNS label"));
    }
    Ok(DnsConfig {
        listen,
        listen_is_default: d.listen.is_none(),
        domain,
        advertise,
        negative_ttl: dns_ttl("dns.negative_ttl", d.negative_ttl.as_deref(), Duration::from_secs(1))?,
        udp_max_payload,
        defaults: answer_defaults(d)?,
        region: d.region.clone(),
        client_regions: client_regions(regions)?,
        limits: dns_limits(d)?,
        transfer_allow: match d.transfer_allow.as_deref() {
            Some(list) => cidrs("dns.transfer_allow", Some(list))?,
            None => Vec::new(),
        },
        notify: d.notify.iter().flatten().map(|s| socket_addr("dns.notify", s)).collect::<Result<_, _>>()?,
        nsid: match d.nsid.as_deref() {
            Some(n) if n.is_empty() || n.len() > 255 => {
                return invalid("dns.nsid", format!("must be 1 to 255 bytes, got {}", n.len()));
            }
            n => n.map(|n| n.as_bytes().into()),
        },
        dns_sd_networks: match d.dns_sd_networks.as_deref() {
            Some(list) => cidrs("dns.dns_sd_networks", Some(list))?,
            None => Vec::new(),
        },
        consul_names: d.consul_names.unwrap_or(false),
    })
}

/// `[dns] ttl`, `answer_limit`, `only_passing`, `when_none_healthy`: what services answer with
/// unless they say otherwise.
fn answer_defaults(d: &RawDns) -> Result<Defaults, ConfigError> {
    let when_none_healthy = match d.when_none_healthy.as_deref() {
        None | Some("empty") => WhenNoneHealthy::Empty,
        Some("all") => WhenNoneHealthy::All,
        Some(other) => {
            return invalid("dns.when_none_healthy", format!("{other:?} is neither \"empty\" nor \"all\""));
        }
    };
    Ok(Defaults {
        ttl: dns_ttl("dns.ttl", d.ttl.as_deref(), Duration::from_secs(5))?,
        answer_limit: d.answer_limit.unwrap_or(0),
        only_passing: d.only_passing.unwrap_or(false),
        when_none_healthy,
    })
}

/// `[[regions.client]]`: client networks and their regions.
fn client_regions(regions: &RawRegions) -> Result<Vec<(IpNet, String)>, ConfigError> {
    let mut out = Vec::with_capacity(regions.client.len());
    for c in &regions.client {
        let net: IpNet = c.cidr.parse().map_err(|_| ConfigError::Invalid {
            key: "regions.client.cidr",
            message: format!("{:?} is not a network (write e.g. \"10.1.0.0/16\")", c.cidr),
        })?;
        if !is_dns_label(&c.region) {
            return invalid("regions.client.region", format!("{:?} is not a DNS label", c.region));
        }
        out.push((net.trunc(), c.region.clone()));
    }
    Ok(out)
}

/// `[http] token` (the management token), `reads_need_token` and `[acl]`.
fn acl_config(h: &RawHttp, acl: &RawAcl) -> Result<AclConfig, ConfigError> {
    let management = h.token.clone();
    if management.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return invalid("http.token", "must not be empty (remove the key to allow writes without a token)".into());
    }
    let mut tokens: Vec<TokenConfig> = Vec::with_capacity(acl.token.len());
    for t in &acl.token {
        let token = token_config(t, &acl.env_secrets)?;
        if let Some(other) =
            tokens.iter().find(|o| o.name.eq_ignore_ascii_case(&token.name) || env_var(&o.name) == env_var(&token.name))
        {
            return invalid(
                "acl.token",
                format!(
                    "{:?} and {:?} name the same token (names are case-insensitive, - and _ alike)",
                    other.name, token.name
                ),
            );
        }
        tokens.push(token);
    }
    if let Some(var) = acl.env_secrets.keys().find(|var| !tokens.iter().any(|t| env_var(&t.name) == **var)) {
        return invalid("acl.token", format!("{var} is set, but no [[acl.token]] has that name"));
    }
    let has_tokens = management.is_some() || !tokens.is_empty();
    let reads_need_token = h.reads_need_token.unwrap_or(false);
    if reads_need_token && !has_tokens {
        return invalid(
            "http.reads_need_token",
            "needs a token: set [http] token, SIGNPOST_TOKEN or an [[acl.token]]".into(),
        );
    }
    let anonymous = match &acl.anonymous {
        Some(_) if reads_need_token => {
            return invalid(
                "http.reads_need_token",
                "says the same as [acl.anonymous]; keep one (anonymous rules without read on \"\" keep reads behind a token)".into(),
            );
        }
        Some(rules) => rules_config("acl.anonymous.service_prefix", &rules.service_prefix)?,
        // Nothing without a token; with reads_need_token not even reading.
        None if reads_need_token => Rules::default(),
        None if has_tokens => Rules::everything(Policy::Read),
        // No tokens at all: everyone may do everything, as on loopback before tokens existed.
        None => Rules::everything(Policy::Write),
    };
    Ok(AclConfig { management, tokens, anonymous })
}

/// `SIGNPOST_ACL_<NAME>`: the name in capitals, `-` as `_`.
pub(crate) fn env_var(name: &str) -> String {
    format!("SIGNPOST_ACL_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// One `[[acl.token]]`: a name that can go in a log line, a secret from outside this file, rules.
fn token_config(t: &RawToken, env: &std::collections::BTreeMap<String, Secret>) -> Result<TokenConfig, ConfigError> {
    if !is_dns_label(&t.name) || ["management", "anonymous"].contains(&t.name.to_ascii_lowercase().as_str()) {
        return invalid(
            "acl.token.name",
            format!(
                "{:?}: 1-63 of A-Z a-z 0-9 _ -, not \"management\" or \"anonymous\" (they name the other callers in logs)",
                t.name
            ),
        );
    }
    let var = env_var(&t.name);
    let secret = match (env.get(&var), &t.secret_file) {
        // The environment beats the file, as SIGNPOST_TOKEN beats [http] token.
        (Some(secret), _) => SecretSource::Given { from: var, secret: secret.clone() },
        (None, Some(path)) => SecretSource::File(path.clone()),
        (None, None) => {
            return invalid(
                "acl.token.secret_file",
                format!(
                    "token {:?} needs secret_file or the variable {var} (secrets are never written in the configuration)",
                    t.name
                ),
            );
        }
    };
    let rules = rules_config("acl.token.service_prefix", &t.service_prefix)?;
    Ok(TokenConfig { name: t.name.clone(), secret, rules })
}

/// `service_prefix = { "payment-" = "write", "" = "read" }`.
fn rules_config(key: &'static str, rules: &std::collections::BTreeMap<String, String>) -> Result<Rules, ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for (prefix, policy) in rules {
        let Some(policy) = Policy::parse(policy) else {
            return invalid(key, format!("{prefix:?} = {policy:?}: write \"deny\", \"read\" or \"write\""));
        };
        if !seen.insert(prefix.to_ascii_lowercase()) {
            return invalid(
                key,
                format!("{prefix:?} is given twice (prefixes are case-insensitive, as service names)"),
            );
        }
        out.push((prefix.clone(), policy));
    }
    Ok(Rules::new(out))
}

/// `[http] tls_cert`, `tls_key`, `tls_client_ca`: the files are read when the server starts
/// (`tls::ServerTls::load`), so that a renewal between now and then is what serves.
fn http_tls(h: &RawHttp) -> Result<Option<crate::tls::ServerFiles>, ConfigError> {
    match (&h.tls_cert, &h.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(crate::tls::ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: h.tls_client_ca.clone(),
        })),
        (Some(_), None) => invalid("http.tls_key", "needed with tls_cert: the certificate's private key (PEM)".into()),
        (None, Some(_)) => invalid("http.tls_cert", "needed with tls_key: the certificate chain (PEM)".into()),
        (None, None) if h.tls_client_ca.is_some() => {
            invalid("http.tls_client_ca", "needs tls_cert and tls_key: client certificates are a part of HTTPS".into())
        }
        (None, None) => Ok(None),
    }
}

fn log_config(l: &RawLog) -> Result<LogConfig, ConfigError> {
    if let Some(level) = &l.level
        && !level.contains(['=', ','])
        && !["off", "error", "warn", "info", "debug", "trace"].contains(&level.to_ascii_lowercase().as_str())
    {
        // A bare word that is no level would be read as a target name, silencing the rest.
        return invalid(
            "log.level",
            format!(
                "{level:?}: write off, error, warn, info, debug, trace, or a filter like \"info,signpost::dns=debug\""
            ),
        );
    }
    let format = match l.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return invalid("log.format", format!("{other:?} is neither \"text\" nor \"json\"")),
    };
    Ok(LogConfig { format, level: l.level.clone() })
}

fn zone_limits(z: &RawZones) -> Result<crate::zones::Limits, ConfigError> {
    at_least_one([
        ("zones.max_file_bytes", z.max_file_bytes),
        ("zones.max_instances_per_file", z.max_instances_per_file),
    ])?;
    let defaults = crate::zones::Limits::default();
    Ok(crate::zones::Limits {
        max_file_bytes: z.max_file_bytes.unwrap_or(defaults.max_file_bytes),
        max_instances_per_file: z.max_instances_per_file.unwrap_or(defaults.max_instances_per_file),
    })
}

fn health_settings(h: &RawHealth) -> Result<crate::health::Settings, ConfigError> {
    let wide = |n: Option<u32>| n.map(|n| n as usize);
    at_least_one([
        ("health.rise", wide(h.rise)),
        ("health.fall", wide(h.fall)),
        ("health.max_in_flight", wide(h.max_in_flight)),
    ])?;
    let defaults = crate::health::Settings::default();
    Ok(crate::health::Settings {
        rise: h.rise.unwrap_or(defaults.rise),
        fall: h.fall.unwrap_or(defaults.fall),
        max_in_flight: h.max_in_flight.map_or(defaults.max_in_flight, |n| n as usize),
    })
}

fn invalid<T>(key: &'static str, message: String) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { key, message })
}

fn socket_addr(key: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::Invalid {
        key,
        message: format!("{s:?} is not an address with a port (write e.g. \"127.0.0.1:8600\" or \"[::1]:8600\")"),
    })
}

fn forward_config(d: &RawDns) -> Result<ForwardConfig, ConfigError> {
    let upstreams = match &d.upstreams {
        None => None,
        Some(list) => Some(list.iter().map(|s| upstream(s)).collect::<Result<_, _>>()?),
    };
    let timeout = duration("dns.upstream_timeout", d.upstream_timeout.as_deref(), Duration::from_secs(2))?;
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return invalid("dns.upstream_timeout", format!("must be between 1ms and 60s, got {timeout:?}"));
    }
    let recursion_allow = cidrs("dns.recursion_allow", d.recursion_allow.as_deref())?;
    Ok(ForwardConfig { upstreams, timeout, recursion_allow })
}

fn http_limits(h: &RawHttp) -> Result<crate::api::HttpLimits, ConfigError> {
    let defaults = crate::api::HttpLimits::default();
    at_least_one([
        ("http.max_concurrent_requests", h.max_concurrent_requests),
        ("http.max_blocking_queries", h.max_blocking_queries),
    ])?;
    if h.max_header_bytes.is_some_and(|n| n < 1024) {
        return invalid("http.max_header_bytes", "must be at least 1024".into());
    }
    Ok(crate::api::HttpLimits {
        max_concurrent_requests: h.max_concurrent_requests.unwrap_or(defaults.max_concurrent_requests),
        max_blocking_queries: h.max_blocking_queries.unwrap_or(defaults.max_blocking_queries),
        max_header_bytes: h.max_header_bytes.unwrap_or(defaults.max_header_bytes),
    })
}

fn dns_limits(d: &RawDns) -> Result<crate::dns::Limits, ConfigError> {
    let defaults = crate::dns::Limits::default();
    at_least_one([
        ("dns.max_slow_queries", d.max_slow_queries),
        ("dns.tcp_max_connections", d.tcp_max_connections),
        ("dns.tcp_pipeline", d.tcp_pipeline),
    ])?;
    let idle_timeout = duration("dns.tcp_idle_timeout", d.tcp_idle_timeout.as_deref(), defaults.tcp.idle_timeout)?;
    if idle_timeout.is_zero() {
        return invalid("dns.tcp_idle_timeout", "must be more than 0".into());
    }
    Ok(crate::dns::Limits {
        max_slow_queries: d.max_slow_queries.unwrap_or(defaults.max_slow_queries),
        tcp: crate::dns::TcpLimits {
            max_connections: d.tcp_max_connections.unwrap_or(defaults.tcp.max_connections),
            idle_timeout,
            max_queries: d.tcp_max_queries.unwrap_or(defaults.tcp.max_queries),
            pipeline: d.tcp_pipeline.unwrap_or(defaults.tcp.pipeline),
        },
        rrl: d.rrl.as_ref().map(rrl_config).transpose()?,
    })
}

fn rrl_config(r: &RawRrl) -> Result<crate::dns::RrlConfig, ConfigError> {
    if r.responses_per_second == 0 {
        return invalid("dns.rrl.responses_per_second", "must be at least 1 (remove rrl to turn it off)".into());
    }
    let window = duration("dns.rrl.window", r.window.as_deref(), Duration::from_secs(1))?;
    if window < Duration::from_millis(100) || window > Duration::from_secs(60) {
        return invalid("dns.rrl.window", format!("must be between 100ms and 60s, got {window:?}"));
    }
    let exempt = cidrs("dns.rrl.exempt", r.exempt.as_deref())?;
    Ok(crate::dns::RrlConfig {
        responses_per_second: r.responses_per_second,
        window,
        slip: r.slip.unwrap_or(2),
        exempt,
    })
}

fn cluster_config(s: &RawStore) -> Result<Option<ClusterConfig>, ConfigError> {
    let Some(url) = &s.url else { return Ok(None) };
    if !cfg!(feature = "cluster") {
        return invalid(
            "store.url",
            format!(
                "{url:?}: this build has no cluster mode; build with `cargo build --release --features cluster` (needs protoc: Debian's protobuf-compiler), or remove --store / [store] url to use the embedded store in --data-dir"
            ),
        );
    }
    let bad = |why: &str| ConfigError::Invalid {
        key: "store.url",
        message: format!("{url:?}: {why} (write e.g. \"etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379\")"),
    };
    let hosts = url.strip_prefix("etcd://").ok_or_else(|| bad("only etcd:// is supported"))?;
    let mut endpoints = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        let valid = match host.rsplit_once(':') {
            Some((name, port)) => !name.is_empty() && !name.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0),
            None => false,
        };
        if !valid {
            return Err(bad(&format!("{host:?} is not host:port")));
        }
        endpoints.push(host.to_string());
    }
    let (tls, user) = etcd_access(s)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoints = endpoints.into_iter().map(|h| format!("{scheme}://{h}")).collect();
    let mut prefix = s.prefix.clone().unwrap_or_else(|| "/signpost/".into());
    if prefix.trim().is_empty() {
        return invalid("store.prefix", "must not be empty (default \"/signpost/\")".into());
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    let timeout = duration("store.timeout", s.timeout.as_deref(), Duration::from_secs(5))?;
    let lease = duration("store.lease", s.lease.as_deref(), Duration::from_secs(5))?;
    if timeout < Duration::from_millis(100) {
        return invalid("store.timeout", format!("must be at least 100ms, got {timeout:?}"));
    }
    if lease < Duration::from_secs(2) || lease.subsec_nanos() != 0 {
        return invalid("store.lease", format!("must be whole seconds, at least 2s, got {lease:?}"));
    }
    Ok(Some(ClusterConfig { endpoints, prefix, timeout, lease, tls, user }))
}

/// `[store] ca_file`, `cert_file`, `key_file`, `username`, `password_file`: checked in pairs here;
/// the files are read when the store is opened.
fn etcd_access(s: &RawStore) -> Result<(Option<EtcdTls>, Option<EtcdUser>), ConfigError> {
    let tls = match (&s.ca_file, &s.cert_file, &s.key_file) {
        (_, Some(_), None) => {
            return invalid("store.key_file", "needed with cert_file: the client certificate's key".into());
        }
        (_, None, Some(_)) => return invalid("store.cert_file", "needed with key_file: the client certificate".into()),
        (None, Some(_), Some(_)) => {
            return invalid("store.ca_file", "needed with cert_file: the CA that issued etcd's certificate".into());
        }
        (None, None, None) => None,
        (Some(ca), cert, key) => Some(EtcdTls { ca_file: ca.clone(), cert_file: cert.clone(), key_file: key.clone() }),
    };
    let user = match (&s.username, &s.password_file) {
        (Some(name), Some(file)) if !name.trim().is_empty() => {
            Some(EtcdUser { name: name.clone(), password_file: file.clone() })
        }
        (Some(_), Some(_)) => return invalid("store.username", "must not be empty".into()),
        (Some(_), None) => {
            return invalid("store.password_file", "needed with username: a file holding its password".into());
        }
        (None, Some(_)) => return invalid("store.username", "needed with password_file: the etcd user".into()),
        (None, None) => None,
    };
    Ok((tls, user))
}

fn shutdown_config(s: &RawShutdown) -> Result<ShutdownConfig, ConfigError> {
    let grace = duration("shutdown.grace", s.grace.as_deref(), Duration::from_secs(5))?;
    if grace > Duration::from_secs(3600) {
        return invalid("shutdown.grace", format!("must be at most 1h, got {grace:?}"));
    }
    let drain = duration("shutdown.drain", s.drain.as_deref(), Duration::from_secs(1))?.min(grace);
    Ok(ShutdownConfig { grace, drain })
}

/// `"192.0.2.53:53"`, `"192.0.2.53"`, `"[2001:db8::1]:53"`, `"2001:db8::1"`; the port defaults to 53.
fn upstream(s: &str) -> Result<SocketAddr, ConfigError> {
    let t = s.trim();
    let addr = t.parse::<SocketAddr>().ok().or_else(|| {
        let bare = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(t);
        bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    });
    match addr {
        Some(a) if a.port() != 0 && !a.ip().is_unspecified() => Ok(a),
        _ => invalid(
            "dns.upstreams",
            format!(
                "{s:?} is not a resolver's IP address with an optional port (write e.g. \"192.0.2.53\", \"192.0.2.53:53\" or \"[2001:db8::1]:53\")"
            ),
        ),
    }
}

/// CIDR blocks (`"10.0.0.0/8"`), or single addresses (`"192.0.2.1"` = `/32`); loopback when
/// the key is absent.
fn cidrs(key: &'static str, list: Option<&[String]>) -> Result<Vec<IpNet>, ConfigError> {
    let Some(list) = list else {
        return Ok(vec!["127.0.0.0/8".parse().expect("valid"), "::1/128".parse().expect("valid")]);
    };
    let cidr = |s: &String| {
        let t = s.trim();
        t.parse::<IpNet>().ok().or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from)).ok_or_else(|| {
            ConfigError::Invalid {
                key,
                message: format!(
                    "{s:?} is not a CIDR block (write e.g. \"127.0.0.0/8\", \"10.1.0.0/16\" or \"::1/128\")"
                ),
            }
        })
    };
    list.iter().map(cidr).collect()
}

/// Counts and sizes where 0 would mean "nothing ever": refused with the key.
fn at_least_one<const N: usize>(values: [(&'static str, Option<usize>); N]) -> Result<(), ConfigError> {
    match values.into_iter().find(|(_, v)| *v == Some(0)) {
        Some((key, _)) => invalid(key, "must be at least 1".into()),
        None => Ok(()),
    }
}

/// A TTL, by the rule of the services' own (`model::rules::dns_ttl`): whole seconds.
fn dns_ttl(key: &'static str, s: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match s {
        None => Ok(default),
        Some(s) => crate::model::rules::dns_ttl(s).map_err(|e| ConfigError::Invalid { key, message: e.to_string() }),
    }
}

fn duration(key: &'static str, s: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match s {
        None => Ok(default),
        Some(s) => crate::duration::parse(s).map_err(|e| ConfigError::Invalid { key, message: e.to_string() }),
    }
}
