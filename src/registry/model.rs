//! The registry's domain objects: what a service instance is, where it came from, how it is
//! checked and how its service wants to be answered. No DNS records live here; those are built
//! from these objects in `dns/answer.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One registered endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Unique across every source; the `<id>.instance.D` name and the SRV target.
    pub id: String,
    pub service: String,
    pub address: Address,
    pub port: u16,
    pub tags: Vec<String>,
    /// Relative share of first places in rotation and the SRV weight; at least 1.
    pub weight: u32,
    pub region: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub checks: Vec<CheckSpec>,
    /// Service-level DNS settings carried by this instance's declaration.
    pub policy: ServicePolicy,
    pub source: Source,
}

/// Where an instance is reachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Ip(IpAddr),
    /// A host name, resolved through the upstream resolvers (SRV targets still name the instance).
    Host(String),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Ip(ip) => ip.fmt(f),
            Address::Host(h) => f.write_str(h),
        }
    }
}

/// Which source owns an instance; only the owner may change or remove it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Declared in a zone file; read-only through the API.
    Zone(PathBuf),
    /// Registered through the HTTP API.
    Api,
}

/// A health check as declared; `{address}`/`{port}` are already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// `service:<id>` (or `service:<id>:<n>` when an instance has several).
    pub id: String,
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that make it passing; `None` = the `[health] rise` default.
    pub rise: Option<u32>,
    /// Consecutive failures that make it critical; `None` = the `[health] fall` default.
    pub fall: Option<u32>,
    /// Remove the instance once this check has been critical this long.
    pub deregister_after: Option<Duration>,
    /// Status before the first result (`Status` on the API); `None` = critical.
    pub initial: Option<Status>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Http { url: String, method: String, headers: BTreeMap<String, Vec<String>>, tls_skip_verify: bool },
    Tcp { target: String },
    Ttl { ttl: Duration },
}

/// Aggregated or per-check health, ordered so that `max` picks the aggregate
/// (maintenance > critical > warning > passing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Maintenance => "maintenance",
        }
    }
}

/// What to answer when a service has instances but none is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenNoneHealthy {
    /// NODATA: callers learn there is nothing to call.
    #[default]
    Empty,
    /// Fail open: answer every instance (except those in maintenance).
    All,
}

/// Per-service DNS settings; `None` = the global `[dns]` value. When several declarations of one
/// service disagree, the most conservative wins (smallest TTL, smallest positive limit, any
/// `only_passing`, any `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServicePolicy {
    pub ttl: Option<Duration>,
    /// 0 = no limit.
    pub answer_limit: Option<u32>,
    pub only_passing: Option<bool>,
    pub when_none_healthy: Option<WhenNoneHealthy>,
}

/// Returns true if `s` is a valid service name, instance id or tag label for DNS: 1–63 of
/// `[A-Za-z0-9_-]`, not starting or ending with `-`.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
