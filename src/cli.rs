//! The command line (clap): `serve` and the offline tools. Every `serve` flag also reads a
//! `SIGNPOST_<FLAG>` variable; repeatable flags take comma-separated values there.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

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
            token: std::env::var("SIGNPOST_TOKEN").ok(),
        }
    }
}

/// `signpost check-zones`: prints every error and a summary; returns true if all files are valid.
pub fn check_zones(dir: &std::path::Path) -> anyhow::Result<bool> {
    let mut state = crate::registry::State::new();
    let errors = crate::zones::load_dir(&mut state, dir)
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
