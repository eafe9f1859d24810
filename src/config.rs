//! Configuration in two levels: raw layers as written (TOML file, then `SIGNPOST_*` variables and
//! flags, which clap merges) and one validated `Config` built from them. Precedence: flag >
//! environment > file > default. Every key of DESIGN.md is accepted; unknown keys are errors
//! with file:line:col.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use crate::dns::ForwardConfig;
use crate::model::WhenNoneHealthy;
use crate::registry::Defaults;
use crate::secret::Secret;
use crate::store::ClusterConfig;

/// A configuration that cannot be used, naming where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{col}: {message}")]
    Syntax { path: PathBuf, line: usize, col: usize, message: String },
    #[error("invalid {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The validated configuration the app runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub dns: DnsConfig,
    pub zones_dir: PathBuf,
    /// `[zones] max_file_bytes`, `max_instances_per_file`.
    pub zone_limits: crate::zones::Limits,
    pub data_dir: PathBuf,
    /// `--store etcd://...`: cluster mode instead of the embedded store in `data_dir`.
    pub cluster: Option<ClusterConfig>,
    pub http_listen: SocketAddr,
    /// `[http] max_concurrent_requests`, `max_blocking_queries`, `max_header_bytes`.
    pub http_limits: crate::api::HttpLimits,
    /// `[http] token`, or `SIGNPOST_TOKEN` over it: required on API writes when set.
    pub token: Option<Secret>,
    /// `[http] reads_need_token`: reads and the status page need the token too (a token is set).
    pub reads_need_token: bool,
    pub health: crate::health::Settings,
    pub forward: ForwardConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: Vec<SocketAddr>,
    /// True if `listen` is the built-in default, whose `[::1]:53` is skipped on hosts without IPv6.
    pub listen_is_default: bool,
    pub domain: Name,
    pub advertise: Option<IpAddr>,
    pub negative_ttl: Duration,
    pub udp_max_payload: u16,
    pub defaults: Defaults,
    /// This server's region (`--region`): the client's region when nothing else tells it.
    pub region: Option<String>,
    /// `[[regions.client]]`: client networks and their regions.
    pub client_regions: Vec<(IpNet, String)>,
    /// `max_slow_queries` and `tcp_*`: how much work clients may give the DNS servers.
    pub limits: crate::dns::Limits,
    /// `transfer_allow`: clients that may transfer the zone (AXFR/IXFR); nobody by default.
    pub transfer_allow: Vec<IpNet>,
    /// `notify`: secondaries told of every change (RFC 1996 NOTIFY), as `addr:port`.
    pub notify: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `[log] level` / `--log-level`: a level or a RUST_LOG-style filter; `None`: `RUST_LOG`,
    /// else info.
    pub level: Option<String>,
}

/// `[shutdown]`: what happens between the first SIGTERM and the exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// The whole budget: from the signal to the exit, in-flight DNS and HTTP requests get this
    /// long to finish (default 5 s).
    pub grace: Duration,
    /// How long DNS and HTTP keep serving after `/readyz` turned 503, so that load balancers see
    /// the 503 before the sockets close (default 1 s, at most `grace`).
    pub drain: Duration,
}

// ---- raw layer: the file as written ---------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub regions: RawRegions,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub zones: RawZones,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub shutdown: RawShutdown,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub listen: Option<Vec<String>>,
    pub domain: Option<String>,
    pub advertise: Option<String>,
    pub region: Option<String>,
    pub ttl: Option<String>,
    pub negative_ttl: Option<String>,
    pub answer_limit: Option<u32>,
    pub udp_max_payload: Option<u16>,
    pub only_passing: Option<bool>,
    pub when_none_healthy: Option<String>,
    pub upstreams: Option<Vec<String>>,
    pub upstream_timeout: Option<String>,
    pub recursion_allow: Option<Vec<String>>,
    pub max_slow_queries: Option<usize>,
    pub tcp_max_connections: Option<usize>,
    pub tcp_idle_timeout: Option<String>,
    pub tcp_max_queries: Option<u32>,
    pub tcp_pipeline: Option<usize>,
    pub rrl: Option<RawRrl>,
    pub transfer_allow: Option<Vec<String>>,
    pub notify: Option<Vec<String>>,
}

/// `[dns] rrl = { responses_per_second = 20, window = "1s", slip = 2, exempt = [...] }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    pub responses_per_second: u32,
    pub window: Option<String>,
    pub slip: Option<u32>,
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegions {
    #[serde(default)]
    pub client: Vec<RawClientRegion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientRegion {
    pub cidr: String,
    pub region: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub token: Option<Secret>,
    /// Reads (the API's and the status page) need the token too; default false.
    pub reads_need_token: Option<bool>,
    pub max_concurrent_requests: Option<usize>,
    pub max_blocking_queries: Option<usize>,
    pub max_header_bytes: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub data_dir: Option<PathBuf>,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub timeout: Option<String>,
    pub lease: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZones {
    pub dir: Option<PathBuf>,
    pub max_file_bytes: Option<usize>,
    pub max_instances_per_file: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    pub grace: Option<String>,
    pub drain: Option<String>,
}

/// Values from flags and `SIGNPOST_*` variables (clap has already put flags over variables).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub dns_addr: Vec<String>,
    pub http_addr: Option<String>,
    pub zones: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub domain: Option<String>,
    pub upstream: Vec<String>,
    pub region: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub shutdown_grace: Option<String>,
    /// `SIGNPOST_TOKEN` (environment only: a flag would show the token in `ps`).
    pub token: Option<Secret>,
}

impl RawConfig {
    /// Parses a configuration file's text; `path` only names it in errors.
    pub fn from_toml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| crate::zones::line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Syntax { path: path.to_path_buf(), line, col, message: e.message().to_string() }
        })
    }

    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        RawConfig::from_toml(path, &text)
    }

    /// Puts flag and environment values over the file's.
    pub fn overlay(mut self, o: Overrides) -> RawConfig {
        if !o.dns_addr.is_empty() {
            self.dns.listen = Some(o.dns_addr);
        }
        if !o.upstream.is_empty() {
            self.dns.upstreams = Some(o.upstream);
        }
        set(&mut self.http.listen, o.http_addr);
        set(&mut self.zones.dir, o.zones);
        set(&mut self.store.data_dir, o.data_dir);
        set(&mut self.store.url, o.store);
        set(&mut self.dns.domain, o.domain);
        set(&mut self.dns.region, o.region);
        set(&mut self.log.format, o.log_format);
        set(&mut self.log.level, o.log_level);
        set(&mut self.shutdown.grace, o.shutdown_grace);
        // An exported but empty variable means "no token from here", not "the empty token".
        set(&mut self.http.token, o.token.filter(|t| !t.is_empty()));
        self
    }

    /// Validates everything and fills in defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let d = &self.dns;
        let listen_is_default = d.listen.is_none();
        let listen = match &d.listen {
            None => vec!["127.0.0.1:53".parse().expect("valid"), "[::1]:53".parse().expect("valid")],
            Some(list) if list.is_empty() => return invalid("dns.listen", "needs at least one address".into()),
            Some(list) => list.iter().map(|s| socket_addr("dns.listen", s)).collect::<Result<_, _>>()?,
        };
        let domain_text = d.domain.clone().unwrap_or_else(|| "local".into());
        let domain = Name::from_str(domain_text.trim_end_matches('.'))
            .ok()
            .filter(|n| {
                !n.is_root() && n.iter().all(|l| crate::model::rules::is_dns_label(&String::from_utf8_lossy(l)))
            })
            .ok_or_else(|| ConfigError::Invalid {
                key: "dns.domain",
                message: format!("{domain_text:?} is not a domain name (write e.g. \"local\" or \"sd.example.com\")"),
            })?;
        let advertise = match &d.advertise {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| ConfigError::Invalid {
                key: "dns.advertise",
                message: format!("{s:?} is not an IP address"),
            })?),
        };
        let ttl = dns_ttl("dns.ttl", d.ttl.as_deref(), Duration::from_secs(5))?;
        let negative_ttl = dns_ttl("dns.negative_ttl", d.negative_ttl.as_deref(), Duration::from_secs(1))?;
        let when_none_healthy = match d.when_none_healthy.as_deref() {
            None | Some("empty") => WhenNoneHealthy::Empty,
            Some("all") => WhenNoneHealthy::All,
            Some(other) => {
                return invalid("dns.when_none_healthy", format!("{other:?} is neither \"empty\" nor \"all\""));
            }
        };
        let udp_max_payload = d.udp_max_payload.unwrap_or(1232);
        if udp_max_payload < 512 {
            return invalid("dns.udp_max_payload", format!("must be at least 512, got {udp_max_payload}"));
        }
        if let Some(r) = &d.region
            && !crate::model::rules::is_dns_label(r)
        {
            return invalid("dns.region", format!("{r:?} is not a DNS label"));
        }
        let mut client_regions = Vec::with_capacity(self.regions.client.len());
        for c in &self.regions.client {
            let net: IpNet = c.cidr.parse().map_err(|_| ConfigError::Invalid {
                key: "regions.client.cidr",
                message: format!("{:?} is not a network (write e.g. \"10.1.0.0/16\")", c.cidr),
            })?;
            if !crate::model::rules::is_dns_label(&c.region) {
                return invalid("regions.client.region", format!("{:?} is not a DNS label", c.region));
            }
            client_regions.push((net.trunc(), c.region.clone()));
        }
        let cluster = cluster_config(&self.store)?;
        let http_listen = socket_addr("http.listen", self.http.listen.as_deref().unwrap_or("127.0.0.1:8500"))?;
        let token = self.http.token.clone();
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return invalid("http.token", "must not be empty (remove the key to allow writes without a token)".into());
        }
        if self.http.reads_need_token == Some(true) && token.is_none() {
            return invalid("http.reads_need_token", "needs a token: set [http] token or SIGNPOST_TOKEN".into());
        }
        if let Some(level) = &self.log.level
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
        let format = match self.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return invalid("log.format", format!("{other:?} is neither \"text\" nor \"json\"")),
        };
        let forward = forward_config(d)?;
        let http_limits = http_limits(&self.http)?;
        let zone_defaults = crate::zones::Limits::default();
        let zone_limits = crate::zones::Limits {
            max_file_bytes: self.zones.max_file_bytes.unwrap_or(zone_defaults.max_file_bytes),
            max_instances_per_file: self.zones.max_instances_per_file.unwrap_or(zone_defaults.max_instances_per_file),
        };
        at_least_one([
            ("zones.max_file_bytes", self.zones.max_file_bytes),
            ("zones.max_instances_per_file", self.zones.max_instances_per_file),
        ])?;
        let limits = dns_limits(d)?;
        let shutdown = shutdown_config(&self.shutdown)?;
        let h = &self.health;
        let defaults = crate::health::Settings::default();
        let wide = |n: Option<u32>| n.map(|n| n as usize);
        at_least_one([
            ("health.rise", wide(h.rise)),
            ("health.fall", wide(h.fall)),
            ("health.max_in_flight", wide(h.max_in_flight)),
        ])?;
        let health = crate::health::Settings {
            rise: h.rise.unwrap_or(defaults.rise),
            fall: h.fall.unwrap_or(defaults.fall),
            max_in_flight: h.max_in_flight.map_or(defaults.max_in_flight, |n| n as usize),
        };
        Ok(Config {
            dns: DnsConfig {
                listen,
                listen_is_default,
                domain,
                advertise,
                negative_ttl,
                udp_max_payload,
                defaults: Defaults {
                    ttl,
                    answer_limit: d.answer_limit.unwrap_or(0),
                    only_passing: d.only_passing.unwrap_or(false),
                    when_none_healthy,
                },
                region: d.region.clone(),
                client_regions,
                limits,
                transfer_allow: match d.transfer_allow.as_deref() {
                    Some(list) => cidrs("dns.transfer_allow", Some(list))?,
                    None => Vec::new(),
                },
                notify: d.notify.iter().flatten().map(|s| socket_addr("dns.notify", s)).collect::<Result<_, _>>()?,
            },
            zones_dir: self.zones.dir.clone().unwrap_or_else(|| "zones".into()),
            zone_limits,
            data_dir: self.store.data_dir.clone().unwrap_or_else(|| "data".into()),
            cluster,
            http_listen,
            http_limits,
            token,
            reads_need_token: self.http.reads_need_token.unwrap_or(false),
            health,
            forward,
            log: LogConfig { format, level: self.log.level.clone() },
            shutdown,
        })
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
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
        ("dns.tcp_max_queries", d.tcp_max_queries.map(|n| n as usize)),
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
        endpoints.push(format!("http://{host}"));
    }
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
    Ok(Some(ClusterConfig { endpoints, prefix, timeout, lease }))
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

#[cfg(test)]
mod tests {
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
        let raw = RawConfig::from_toml(Path::new("s.toml"), "[dns]\nlisten = [\"127.0.0.1:5300\"]\ndomain = \"a\"\n")
            .unwrap();
        let o = Overrides { dns_addr: vec!["127.0.0.1:8600".into()], ..Overrides::default() };
        let c = raw.overlay(o).validate().unwrap();
        assert_eq!(c.dns.listen, vec!["127.0.0.1:8600".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.dns.domain.to_string(), "a");
    }

    #[test]
    fn token_from_the_environment_beats_the_file() {
        let raw = || RawConfig::from_toml(Path::new("s.toml"), "[http]\ntoken = \"file\"\n").unwrap();
        let env = |t: &str| Overrides { token: Some(t.into()), ..Overrides::default() };
        assert_eq!(raw().overlay(env("env")).validate().unwrap().token.as_deref(), Some("env"));
        assert_eq!(raw().overlay(env("")).validate().unwrap().token.as_deref(), Some("file"));
        assert_eq!(RawConfig::default().validate().unwrap().token, None);
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
        assert_eq!(config.token.as_deref(), Some("env-s3cr3t"));
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
    fn shutdown_drain_is_capped_by_the_grace() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.shutdown, ShutdownConfig { grace: Duration::from_secs(5), drain: Duration::from_secs(1) });
        let short = RawConfig::from_toml(Path::new("s.toml"), "[shutdown]\ngrace = \"300ms\"\n").unwrap();
        let c = short.validate().unwrap();
        assert_eq!(c.shutdown, ShutdownConfig { grace: Duration::from_millis(300), drain: Duration::from_millis(300) });
        let o = Overrides { shutdown_grace: Some("10s".into()), ..Overrides::default() };
        assert_eq!(RawConfig::default().overlay(o).validate().unwrap().shutdown.grace, Duration::from_secs(10));
    }
}
