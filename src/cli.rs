//! The command line (clap): `serve`, the offline tools and the API client subcommands (run by
//! `client.rs`). Every `serve` flag also reads a `SIGNPOST_<FLAG>` variable; repeatable flags
//! take comma-separated values there. `register`'s flags are checked here by the model's rules
//! (`model::rules`, as the API and zone files check theirs), so a bad value is refused naming
//! its flag before anything is sent.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::model::Address;
use crate::model::rules::{self, Invalid};

#[derive(Debug, Parser)]
#[command(name = "signpost", version, about = "DNS-interface service discovery: healthy instances, rotated fairly")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (DNS, zone files, API).
    Serve(Box<ServeArgs>),
    /// Validate zone files; exit 1 with one file:line:col error per line.
    CheckZones {
        /// The zone folder [default: ./zones]
        dir: Option<PathBuf>,
    },
    /// Register a service instance through the API (replaces one with the same id).
    Register(Box<RegisterArgs>),
    /// Remove an API-registered instance.
    Deregister {
        /// The instance id
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Mark a TTL check passing (a heartbeat).
    Pass {
        /// The check id, e.g. service:web-1
        check_id: String,
        /// Text shown as the check's output
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List services with their instance and healthy counts.
    Services {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the instances of a service with their health.
    Instances {
        /// The service name
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List every check (of instances and of nodes) with its status and last output.
    Checks {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the nodes (this server's and external ones) with their address, services and health.
    Nodes {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the configuration file with every key commented out at its default.
    ConfigSample,
    /// Write the man pages (signpost(1), one per command, signpost.toml(5)) into DIR.
    #[command(hide = true)]
    Man {
        /// The folder to write them into
        dir: PathBuf,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Exit 0 if the server answers `/healthz` (with --ready: `/readyz`) with 200, 1 otherwise;
    /// for container HEALTHCHECKs, with no curl in the image.
    Healthcheck {
        #[command(flatten)]
        api: ApiArgs,
        /// Ask `/readyz` instead: 503 while starting or shutting down
        #[arg(long)]
        ready: bool,
    },
}

/// Where the client subcommands find the API, and how they prove who they are to it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The signpost HTTP API (http:// or https://)
    #[arg(long, env = "SIGNPOST_API", default_value = "http://127.0.0.1:8500")]
    pub api: String,
    /// The API token (sent as X-Consul-Token)
    #[arg(long, env = "SIGNPOST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// For https://: trust only the CA certificates in this PEM file [default: the system's]
    #[arg(long = "ca-file", env = "SIGNPOST_CACERT")]
    pub ca_file: Option<PathBuf>,
    /// For https:// with client certificates: this certificate (PEM)
    #[arg(long = "client-cert", env = "SIGNPOST_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM)
    #[arg(long = "client-key", env = "SIGNPOST_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("check").args(["http_check", "tcp_check", "ttl"]))]
pub struct RegisterArgs {
    /// The service name
    #[arg(long, value_parser = label_arg)]
    pub name: String,
    /// The instance id, unique across services [default: the name]
    #[arg(long, value_parser = label_arg)]
    pub id: Option<String>,
    /// IP address or host name [default: this host's address as the server sees it]
    #[arg(long, value_parser = address_arg)]
    pub address: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// A tag (repeatable)
    #[arg(long, value_parser = tag_arg)]
    pub tag: Vec<String>,
    /// Metadata KEY=VALUE (repeatable)
    #[arg(long, value_parser = meta_arg)]
    pub meta: Vec<String>,
    /// Share of first places in rotation, and the SRV weight [default: 1]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub weight: Option<u32>,
    /// The instance's region
    #[arg(long, value_parser = label_arg)]
    pub region: Option<String>,
    /// HTTP health check URL (2xx passing, 429 warning)
    #[arg(long, value_parser = rule_arg(rules::http_url))]
    pub http_check: Option<String>,
    /// TCP health check HOST:PORT (passing while it accepts connections)
    #[arg(long, value_parser = rule_arg(rules::tcp_target))]
    pub tcp_check: Option<String>,
    /// TTL check: passing while `signpost pass service:<id>` comes within this duration
    #[arg(long, value_parser = positive_duration_arg)]
    pub ttl: Option<String>,
    /// How often the HTTP or TCP check runs [default: 10s]
    #[arg(long, requires = "check", value_parser = positive_duration_arg)]
    pub interval: Option<String>,
    /// Probe timeout [default: 5s]
    #[arg(long, requires = "check", value_parser = positive_duration_arg)]
    pub timeout: Option<String>,
    /// Remove the instance once its check has been critical this long
    #[arg(long, requires = "check", value_parser = duration_arg)]
    pub deregister_after: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

// Flags are checked by the model's rules and sent as written: the server reads them as it reads
// any registration.

/// A flag checked by `rule`.
fn rule_arg(rule: fn(&str) -> Result<(), Invalid>) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s| rule(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

fn label_arg(s: &str) -> Result<String, String> {
    rule_arg(rules::label)(s)
}

fn tag_arg(s: &str) -> Result<String, String> {
    rule_arg(rules::tag)(s)
}

fn address_arg(s: &str) -> Result<String, String> {
    Address::parse(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// `KEY=VALUE`, by the rules of a `Meta` pair (`dns-ttl=500ms` is refused here as everywhere).
fn meta_arg(s: &str) -> Result<String, String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    rules::meta_entry(k, v).map(|()| s.to_string()).map_err(|e| format!("{k}: {e}"))
}

/// A duration flag (`10s`, `1m30s`).
fn duration_arg(s: &str) -> Result<String, String> {
    crate::duration::parse(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// A probe interval, a timeout or a TTL: above 0.
fn positive_duration_arg(s: &str) -> Result<String, String> {
    let d = crate::duration::parse(s).map_err(|e| e.to_string())?;
    rules::positive(d).map(|_| s.to_string()).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); flags and SIGNPOST_* variables override its keys.
    #[arg(long, env = "SIGNPOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// DNS listen address, UDP and TCP (repeatable) [default: 127.0.0.1:53 and [::1]:53]
    #[arg(long = "dns-addr", env = "SIGNPOST_DNS_ADDR", value_delimiter = ',')]
    pub dns_addr: Vec<String>,
    /// HTTP API listen address [default: 127.0.0.1:8500]
    #[arg(long = "http-addr", env = "SIGNPOST_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Zone file folder, watched for changes [default: ./zones]
    #[arg(long, env = "SIGNPOST_ZONES")]
    pub zones: Option<PathBuf>,
    /// Embedded store folder [default: ./data]
    #[arg(long = "data-dir", env = "SIGNPOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cluster store, e.g. etcd://127.0.0.1:2379
    #[arg(long, env = "SIGNPOST_STORE")]
    pub store: Option<String>,
    /// DNS domain served [default: local]
    #[arg(long, env = "SIGNPOST_DOMAIN")]
    pub domain: Option<String>,
    /// Upstream resolver for other names (repeatable) [default: /etc/resolv.conf's]
    #[arg(long, env = "SIGNPOST_UPSTREAM", value_delimiter = ',')]
    pub upstream: Vec<String>,
    /// This server's region
    #[arg(long, env = "SIGNPOST_REGION")]
    pub region: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long = "log-format", env = "SIGNPOST_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log level, or a RUST_LOG-style filter [default: info]
    #[arg(long = "log-level", env = "SIGNPOST_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take before the exit [default: 5s]
    #[arg(long = "shutdown-grace", env = "SIGNPOST_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// HTTPS: the API's certificate chain (PEM), reloaded when it changes
    #[arg(long = "tls-cert", env = "SIGNPOST_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM)
    #[arg(long = "tls-key", env = "SIGNPOST_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS: require client certificates issued by this CA (PEM)
    #[arg(long = "tls-client-ca", env = "SIGNPOST_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            dns_addr: self.dns_addr.clone(),
            http_addr: self.http_addr.clone(),
            zones: self.zones.clone(),
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            domain: self.domain.clone(),
            upstream: self.upstream.clone(),
            region: self.region.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            shutdown_grace: self.shutdown_grace.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            token: std::env::var("SIGNPOST_TOKEN").ok().map(Into::into),
            acl_secrets: std::env::vars()
                .filter(|(k, _)| k.starts_with("SIGNPOST_ACL_"))
                .map(|(k, v)| (k, v.into()))
                .collect(),
        }
    }
}

/// `signpost check-zones`: prints every error and a summary; returns true if all files are valid.
pub fn check_zones(dir: &std::path::Path) -> anyhow::Result<bool> {
    let mut state = crate::registry::State::new();
    let errors = crate::zones::load_dir(&mut state, dir, crate::zones::Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot read zone folder {}: {e}", dir.display()))?;
    for e in &errors {
        println!("{e}");
    }
    let files = crate::zones::list(dir)?.len();
    if errors.is_empty() {
        println!("{}: {files} zone files, {} instances, no errors", dir.display(), state.len());
    } else {
        eprintln!("{}: {} errors in {files} zone files", dir.display(), errors.len());
    }
    Ok(errors.is_empty())
}
