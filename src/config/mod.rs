//! Configuration in two levels: raw layers as written (`raw.rs`: the TOML file, then `SIGNPOST_*`
//! variables and flags, which clap merges) and one validated `Config` built from them
//! (`validate.rs`), whose sections are the settings each subsystem owns. Precedence: flag >
//! environment > file > default. Every key of DESIGN.md is accepted; unknown keys are errors
//! with file:line:col.

pub mod keys;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

pub use raw::{
    Overrides, RawAcl, RawClientRegion, RawConfig, RawDns, RawHealth, RawHttp, RawLog, RawRegions, RawRrl, RawRules,
    RawShutdown, RawStore, RawToken, RawZones,
};

use crate::dns::ForwardConfig;
use crate::registry::Defaults;
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
    /// Who may do what through the API: the management token (`[http] token`, or
    /// `SIGNPOST_TOKEN` over it), `[[acl.token]]`, and requests without a token (`[acl.anonymous]`,
    /// `[http] reads_need_token`).
    pub acl: crate::acl::AclConfig,
    /// `[http] tls_cert`, `tls_key`, `tls_client_ca`: the API speaks HTTPS.
    pub http_tls: Option<crate::tls::ServerFiles>,
    pub health: crate::health::Settings,
    pub forward: ForwardConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone, PartialEq)]
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
    /// `nsid`: this server's identifier for NSID queries (RFC 5001).
    pub nsid: Option<std::sync::Arc<[u8]>>,
    /// `dns_sd_networks`: networks whose hosts find the DNS-SD browse domain from their own
    /// address (RFC 6763 §11); none by default.
    pub dns_sd_networks: Vec<IpNet>,
    /// `consul_names`: Consul's datacenter qualifiers in names (`web.service.dc1.<domain>`).
    pub consul_names: bool,
}

impl DnsConfig {
    /// The datacenter this server reports to Consul clients: its region, else Consul's default.
    pub fn datacenter(&self) -> &str {
        self.region.as_deref().unwrap_or("dc1")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
