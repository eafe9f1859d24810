//! The raw layers: the configuration file as written (`#[serde(deny_unknown_fields)]`, every key
//! optional) and the flags and variables put over it (`Overrides`). Nothing is checked here but
//! TOML syntax, types and unknown keys; `validate.rs` turns the result into a `Config`. The raw
//! layer serializes only so that a test can list its keys against `keys.rs`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    #[serde(default)]
    pub acl: RawAcl,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    pub nsid: Option<String>,
    pub dns_sd_networks: Option<Vec<String>>,
    pub consul_names: Option<bool>,
}

/// `[dns] rrl = { responses_per_second = 20, window = "1s", slip = 2, exempt = [...] }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    pub responses_per_second: u32,
    pub window: Option<String>,
    pub slip: Option<u32>,
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegions {
    #[serde(default)]
    pub client: Vec<RawClientRegion>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientRegion {
    pub cidr: String,
    pub region: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    pub token: Option<Secret>,
    /// Reads (the API's and the status page) need the token too; default false.
    pub reads_need_token: Option<bool>,
    pub max_concurrent_requests: Option<usize>,
    pub max_blocking_queries: Option<usize>,
    pub max_header_bytes: Option<usize>,
    /// HTTPS: the certificate chain and its key (PEM), and the CA that client certificates
    /// must chain to (mTLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
}

/// `[acl]`: named tokens with rules by service-name prefix, and what requests without a token
/// may do.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcl {
    pub anonymous: Option<RawRules>,
    #[serde(default)]
    pub token: Vec<RawToken>,
    /// `SIGNPOST_ACL_<NAME>` variables, put here by `overlay`.
    #[serde(skip)]
    pub env_secrets: std::collections::BTreeMap<String, Secret>,
}

/// `service_prefix = { "payment-" = "write", "" = "read" }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    #[serde(default)]
    pub service_prefix: std::collections::BTreeMap<String, String>,
}

/// `[[acl.token]]`: its secret is in `secret_file` or `SIGNPOST_ACL_<NAME>`, never in this file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub service_prefix: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub data_dir: Option<PathBuf>,
    pub url: Option<String>,
    pub prefix: Option<String>,
    pub timeout: Option<String>,
    pub lease: Option<String>,
    /// etcd over TLS: the CA that issued its certificate, and a client certificate with its key
    /// for `--client-cert-auth` (PEM).
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// etcd's authentication (`etcdctl auth enable`): the user, and a file holding its password.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawZones {
    pub dir: Option<PathBuf>,
    pub max_file_bytes: Option<usize>,
    pub max_instances_per_file: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    /// `SIGNPOST_TOKEN` (environment only: a flag would show the token in `ps`).
    pub token: Option<Secret>,
    /// `SIGNPOST_ACL_<NAME>` variables: named tokens' secrets (environment only, as above).
    pub acl_secrets: std::collections::BTreeMap<String, Secret>,
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
        set(&mut self.http.tls_cert, o.tls_cert);
        set(&mut self.http.tls_key, o.tls_key);
        set(&mut self.http.tls_client_ca, o.tls_client_ca);
        // An exported but empty variable means "no token from here", not "the empty token".
        set(&mut self.http.token, o.token.filter(|t| !t.is_empty()));
        self.acl.env_secrets.extend(o.acl_secrets.into_iter().filter(|(_, t)| !t.is_empty()));
        self
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}
