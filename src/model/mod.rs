//! The domain model, on the ground floor: what a service instance is, where it came from, how it
//! is checked and how its service wants to be answered; what the store keeps of one (`Stored`)
//! and what a zone file hands the registry (`ZoneFile`, or `ZoneError`s). Every other module
//! builds on these; this one imports none of them. No DNS records live here; those are built
//! from these objects in `dns/answer.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod policy;
pub mod rules;

pub use policy::{Policy, ServicePolicy, WhenNoneHealthy};

/// One registered endpoint of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique across every source; the `<id>.instance.D` name and the SRV target.
    pub id: String,
    pub service: String,
    pub address: Address,
    pub port: u16,
    pub tags: Vec<String>,
    /// Relative share of first places in rotation and the SRV weight; at least 1.
    pub weight: u32,
    pub region: Option<Box<str>>,
    pub meta: Meta,
    pub checks: Vec<CheckSpec>,
    /// Service-level DNS settings carried by this instance's declaration.
    pub policy: Policy,
    pub source: Source,
    /// The node it runs on, as `PUT /v1/catalog/register` names it (an external node); `None`
    /// is this server's own node (the agent's services and every zone-file instance). On a
    /// node record (`is_node`), the node's own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Box<str>>,
}

/// Node records live among the instances (so that they are stored, replicated, probed and
/// rolled back with them) under ids no instance can have: instance ids are DNS labels, and
/// never hold a `:`.
const NODE_PREFIX: &str = "node:";

/// The id of the record of `node` (`None`: this server's own node), as `id_key` keeps it.
pub fn node_key(node: Option<&str>) -> String {
    format!("{NODE_PREFIX}{}", node.map(str::to_ascii_lowercase).unwrap_or_default())
}

impl Instance {
    /// Returns true if this is a node's record (its address, meta and node-level checks)
    /// rather than an instance of a service.
    pub fn is_node(&self) -> bool {
        self.id.starts_with(NODE_PREFIX)
    }

    /// The record of a node: `name` is `None` for this server's own node, whose address is the
    /// API's to show. It answers in no service.
    pub fn node_record(name: Option<&str>, address: Address, meta: Meta, checks: Vec<CheckSpec>) -> Instance {
        Instance {
            id: node_key(name),
            service: String::new(),
            address,
            port: 0,
            tags: Vec::new(),
            weight: 1,
            region: None,
            meta,
            checks,
            policy: Policy::default(),
            source: Source::Api,
            node: name.map(Into::into),
        }
    }
}

/// An instance's key/value metadata, sorted by key, each key once, kept as one text (every
/// key and value back to back) and where each ends: two allocations whatever the number of
/// pairs. Most instances carry one or two pairs, a hundred thousand times over; as a
/// `BTreeMap` they took over 500 bytes each, as a slice of `String` pairs 1 + 2n allocations
/// (~130 bytes for one pair, measured with heaptrack). Serialized as a map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    text: Box<str>,
    /// Where each key and each value ends in `text`: 2n offsets for n pairs.
    ends: Box<[u32]>,
}

impl Meta {
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.ends.chunks_exact(2).enumerate().map(|(i, pair)| {
            let start = if i == 0 { 0 } else { self.ends[2 * i - 1] as usize };
            let (k, v) = (pair[0] as usize, pair[1] as usize);
            (&self.text[start..k], &self.text[k..v])
        })
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Sets `key` to `value`, replacing what it held.
    #[cfg(test)]
    pub fn insert(&mut self, key: String, value: String) {
        let mut map: BTreeMap<String, String> = std::mem::take(self).into();
        map.insert(key, value);
        *self = map.into();
    }
}

impl From<BTreeMap<String, String>> for Meta {
    fn from(map: BTreeMap<String, String>) -> Meta {
        let mut meta = MetaBuilder::default();
        meta.text.reserve(map.iter().map(|(k, v)| k.len() + v.len()).sum());
        map.iter().for_each(|(k, v)| meta.push(k, v));
        meta.build()
    }
}

impl From<Meta> for BTreeMap<String, String> {
    fn from(meta: Meta) -> BTreeMap<String, String> {
        meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

impl<const N: usize> From<[(String, String); N]> for Meta {
    fn from(pairs: [(String, String); N]) -> Meta {
        BTreeMap::from(pairs).into()
    }
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Meta {
    /// Straight from the map into the text, the strings borrowed from the input where they can
    /// be: a replica joining 100,000 instances decodes every one's metadata.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Meta, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Meta;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Meta, A::Error> {
                let mut pairs: Vec<(Text<'de>, Text<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                // Sorted by key, and of a key given twice the last value, as a map would keep.
                pairs.sort_by(|a, b| a.0.0.cmp(&b.0.0));
                let mut meta = MetaBuilder::with_capacity(&pairs);
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if pairs.get(i + 1).is_none_or(|next| next.0.0 != k.0) {
                        meta.push(&k.0, &v.0);
                    }
                }
                Ok(meta.build())
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// A string borrowed from the input when it holds no escapes.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(s.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(s.to_string().into()))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(s.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Builds a `Meta` from pairs given in key order.
#[derive(Default)]
struct MetaBuilder {
    text: String,
    ends: Vec<u32>,
}

impl MetaBuilder {
    fn with_capacity(pairs: &[(Text, Text)]) -> MetaBuilder {
        let text = String::with_capacity(pairs.iter().map(|(k, v)| k.0.len() + v.0.len()).sum());
        MetaBuilder { text, ends: Vec::with_capacity(pairs.len() * 2) }
    }

    fn push(&mut self, key: &str, value: &str) {
        // Far below 4 GiB: a registration's body is limited to a few MiB.
        self.text.push_str(key);
        self.ends.push(self.text.len() as u32);
        self.text.push_str(value);
        self.ends.push(self.text.len() as u32);
    }

    fn build(self) -> Meta {
        Meta { text: self.text.into(), ends: self.ends.into() }
    }
}

/// Where an instance is reachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Source {
    /// Declared in a zone file; read-only through the API.
    Zone(PathBuf),
    /// Registered through the HTTP API.
    Api,
}

/// A health check as declared; `{address}`/`{port}` are already expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    Http {
        url: String,
        method: String,
        headers: BTreeMap<String, Vec<String>>,
        tls_skip_verify: bool,
    },
    Tcp {
        target: String,
    },
    Ttl {
        ttl: Duration,
    },
    /// A status whoever registered it keeps current (`PUT /v1/catalog/register` with a check
    /// that has no definition, as consul-esm sends them, then the same again or
    /// `/v1/agent/check/update`). Nothing probes it, nothing expires it.
    External,
}

impl CheckKind {
    pub const HTTP: &'static str = "http";
    pub const TCP: &'static str = "tcp";
    pub const TTL: &'static str = "ttl";
    pub const EXTERNAL: &'static str = "external";

    /// Returns true if signpost probes it (HTTP and TCP); the others' status comes from outside.
    pub fn is_probed(&self) -> bool {
        matches!(self, CheckKind::Http { .. } | CheckKind::Tcp { .. })
    }

    /// `http`, `tcp`, `ttl` or `external`, as the API, the status page and the probe metrics name the kinds.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => CheckKind::HTTP,
            CheckKind::Tcp { .. } => CheckKind::TCP,
            CheckKind::Ttl { .. } => CheckKind::TTL,
            CheckKind::External => CheckKind::EXTERNAL,
        }
    }
}

/// Aggregated or per-check health, ordered so that `max` picks the aggregate
/// (maintenance > critical > warning > passing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    Passing,
    Warning,
    Critical,
    Maintenance,
}

impl Status {
    /// Every status, in order: `Counts` and the gauges index by `Status as usize`.
    pub const ALL: [Status; 4] = [Status::Passing, Status::Warning, Status::Critical, Status::Maintenance];

    /// Consul's word for it (`passing`, `warning`, `critical`, `maintenance`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Maintenance => "maintenance",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = ();

    fn from_str(s: &str) -> Result<Status, ()> {
        match s.to_ascii_lowercase().as_str() {
            "passing" => Ok(Status::Passing),
            "warning" => Ok(Status::Warning),
            "critical" => Ok(Status::Critical),
            "maintenance" => Ok(Status::Maintenance),
            _ => Err(()),
        }
    }
}

/// What the registry knows of one check right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    pub status: Status,
    /// The last result's text (HTTP body excerpt, error, heartbeat note).
    pub output: String,
    /// When the status last changed, in milliseconds since the Unix epoch.
    pub changed_at_ms: u64,
}

/// An instance's runtime health: one state per declared check, plus maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// Parallel to `Instance::checks`.
    pub checks: Vec<CheckState>,
    /// `Some(reason)` while in maintenance.
    pub maintenance: Option<String>,
}

impl Health {
    /// Health of a just-declared instance: each check at its initial status (critical unless
    /// registered otherwise), no maintenance.
    pub fn initial(instance: &Instance, now_ms: u64) -> Health {
        let checks = instance
            .checks
            .iter()
            .map(|c| CheckState {
                status: c.initial.unwrap_or(Status::Critical),
                output: String::new(),
                changed_at_ms: now_ms,
            })
            .collect();
        Health { checks, maintenance: None }
    }

    /// The aggregate: maintenance > critical > warning > passing; passing without checks.
    pub fn status(&self) -> Status {
        if self.maintenance.is_some() {
            return Status::Maintenance;
        }
        self.checks.iter().map(|c| c.status).max().unwrap_or(Status::Passing)
    }
}

/// Milliseconds since the Unix epoch, for timestamps shown to people and stored.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the store keeps of an API registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    pub instance: Instance,
    pub health: Health,
}

/// Ids are unique case-insensitively, because `<id>.instance.D` is a DNS name.
pub fn id_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// One error, pointing at the offending key or value. Display: "{path}:{line}:{col}: {message}"
/// (1-based line and column; column counts chars).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct ZoneError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// A parsed instance with the position of its `id` value, so later cross-file checks (duplicate
/// ids across files/API, done elsewhere) can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInstance {
    pub instance: Instance,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFile {
    pub path: PathBuf,
    pub instances: Vec<ParsedInstance>,
}

#[cfg(test)]
mod meta_tests {
    use super::Meta;

    #[test]
    fn meta_reads_any_map_of_strings_in_key_order_and_writes_it_back() {
        // Out of order, a key given twice (the last wins, as in a map), escapes (not borrowed).
        let meta: Meta = serde_json::from_str(r#"{"b":"2","a":"x\"y","b":"3","":"","é":"\u00e9"}"#).unwrap();
        let pairs: Vec<(&str, &str)> = meta.iter().collect();
        assert_eq!(pairs, [("", ""), ("a", "x\"y"), ("b", "3"), ("é", "é")]);
        assert_eq!(serde_json::to_string(&meta).unwrap(), r#"{"":"","a":"x\"y","b":"3","é":"é"}"#);
        let empty: Meta = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty() && empty == Meta::default());
        assert!(serde_json::from_str::<Meta>(r#"{"a":1}"#).unwrap_err().to_string().contains("a string"));
    }
}
