//! Everything the status page shows, computed once from a `Snapshot`: the server renders it as
//! HTML for the first paint and serves it as JSON (`/ui/state`) for the live updates, so both
//! always show the same thing.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{CheckKind, Source, Status};
use crate::registry::{AnswerSet, InstanceView, NameEntry, ServiceView, Snapshot};

#[derive(Debug, Serialize)]
pub struct Page {
    /// The registry version (`X-Consul-Index`).
    pub index: u64,
    /// Changes whenever anything shown except `answers` changes, including details that do not
    /// bump `index` (a check's output); the page waits on it.
    pub hash: String,
    pub generated_ms: u64,
    /// The DNS domain, as configured (`local`).
    pub domain: String,
    pub zones: Zones,
    pub services: Vec<Service>,
    /// What DNS answers for `<name>.service.D` right now, by service name. Kept out of `hash`:
    /// rotation moves with every query, and the page must not refresh at the query rate.
    pub answers: BTreeMap<String, Answers>,
}

#[derive(Debug, Serialize, Hash)]
pub struct Zones {
    /// When a zone file was last read, in ms since the epoch; 0 = never.
    pub reloaded_ms: u64,
    pub errors: Vec<ZoneProblem>,
}

#[derive(Debug, Serialize, Hash)]
pub struct ZoneProblem {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Serialize, Hash)]
pub struct Service {
    /// As its first instance spells it.
    pub name: String,
    /// Its DNS-SD service type (`_<name>._tcp`, browsed under `service.D`); none for a name
    /// too long to make one.
    pub dns_sd: Option<String>,
    pub counts: Counts,
    /// Every tag of its instances, sorted, once each.
    pub tags: Vec<String>,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Default, Serialize, Hash)]
pub struct Counts {
    pub total: usize,
    pub passing: usize,
    pub warning: usize,
    pub critical: usize,
    pub maintenance: usize,
}

#[derive(Debug, Serialize, Hash)]
pub struct Instance {
    pub id: String,
    pub status: &'static str,
    pub address: String,
    pub port: u16,
    pub region: Option<String>,
    pub tags: Vec<String>,
    pub weight: u32,
    /// `api` or `zone`.
    pub source: &'static str,
    /// The zone file, for `zone`.
    pub file: Option<String>,
    pub meta: BTreeMap<String, String>,
    /// The reason, while in maintenance.
    pub maintenance: Option<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize, Hash)]
pub struct Check {
    pub id: String,
    pub name: String,
    /// `http`, `tcp` or `ttl`.
    pub kind: &'static str,
    /// The URL, `host:port` or TTL it checks.
    pub target: String,
    pub status: &'static str,
    pub output: String,
    /// When the status last changed, in ms since the epoch.
    pub changed_ms: u64,
}

/// `dig <name>.service.D` for A, AAAA and SRV, in the order the next query gets.
#[derive(Debug, Serialize)]
pub struct Answers {
    pub name: String,
    pub ttl: u32,
    pub a: Vec<String>,
    pub aaaa: Vec<String>,
    /// `1 <weight> <port> <id>.instance.D.`, as dig prints SRV data.
    pub srv: Vec<String>,
}

impl Page {
    pub fn build(snap: &Snapshot, domain: &str, now_ms: u64) -> Page {
        let zones = Zones {
            reloaded_ms: snap.zone_reloaded_ms,
            errors: snap
                .zone_errors
                .iter()
                .map(|e| ZoneProblem {
                    file: e.path.display().to_string(),
                    line: e.line,
                    col: e.col,
                    message: e.message.clone(),
                })
                .collect(),
        };
        let mut services = Vec::new();
        let mut answers = BTreeMap::new();
        for (key, views) in snap.services() {
            let views: Vec<&InstanceView> = views.collect();
            let Some(first) = views.first() else { continue };
            let name = first.instance.service.clone();
            if let Some((view, entry)) = snap.name(key, None, None) {
                answers.insert(name.clone(), dig(snap, view, entry, &name, domain));
            }
            services.push(service(name, &views));
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (snap.version, &zones, &services).hash(&mut hasher);
        Page {
            index: snap.version.max(1),
            hash: format!("{:016x}", hasher.finish()),
            generated_ms: now_ms,
            domain: domain.to_string(),
            zones,
            services,
            answers,
        }
    }
}

fn service(name: String, views: &[&InstanceView]) -> Service {
    let mut counts = Counts { total: views.len(), ..Counts::default() };
    for v in views {
        *match v.status {
            Status::Passing => &mut counts.passing,
            Status::Warning => &mut counts.warning,
            Status::Critical => &mut counts.critical,
            Status::Maintenance => &mut counts.maintenance,
        } += 1;
    }
    let mut tags: Vec<String> = views.iter().flat_map(|v| v.instance.tags.iter().cloned()).collect();
    tags.sort_unstable();
    tags.dedup();
    let dns_sd = crate::dns::service_type(&name.to_ascii_lowercase());
    Service { name, dns_sd, counts, tags, instances: views.iter().map(|v| instance(v)).collect() }
}

fn instance(v: &InstanceView) -> Instance {
    let i = &v.instance;
    let (source, file) = match &i.source {
        Source::Api => ("api", None),
        Source::Zone(path) => ("zone", Some(path.display().to_string())),
    };
    let checks = i
        .checks
        .iter()
        .zip(&v.health.checks)
        .map(|(spec, state)| {
            let target = match &spec.kind {
                CheckKind::Http { url, .. } => url.clone(),
                CheckKind::Tcp { target } => target.clone(),
                CheckKind::Ttl { ttl } => crate::duration::format(*ttl),
                CheckKind::External => String::new(),
            };
            let kind = spec.kind.as_str();
            Check {
                id: spec.id.clone(),
                name: spec.name.clone(),
                kind,
                target,
                status: state.status.as_str(),
                output: state.output.clone(),
                changed_ms: state.changed_at_ms,
            }
        })
        .collect();
    Instance {
        id: i.id.clone(),
        status: v.status.as_str(),
        address: i.address.to_string(),
        port: i.port,
        region: i.region.as_deref().map(str::to_string),
        tags: i.tags.clone(),
        weight: i.weight,
        source,
        file,
        meta: i.meta.clone().into(),
        maintenance: v.health.maintenance.clone(),
        checks,
    }
}

/// What `dig` gets for a client whose region is unknown, read with `peek` so that showing it
/// does not move the rotation; the addresses come from the same function DNS answers use.
fn dig(snap: &Snapshot, view: &ServiceView, entry: &NameEntry, name: &str, domain: &str) -> Answers {
    let domain = domain.trim_end_matches('.');
    let addresses = |set: &AnswerSet, v4: bool| -> Vec<String> {
        crate::dns::distinct_addresses(snap, view, entry.answer_limit, set.peek(), v4)
            .iter()
            .map(IpAddr::to_string)
            .collect()
    };
    let srv = entry
        .srv
        .peek()
        .map(|i| {
            let inst = &view.instance(i).instance;
            format!("1 {} {} {}.instance.{domain}.", crate::dns::srv_weight(inst), inst.port, inst.id)
        })
        .collect();
    Answers {
        name: format!("{name}.service.{domain}"),
        ttl: entry.ttl,
        a: addresses(&entry.v4, true),
        aaaa: addresses(&entry.v6, false),
        srv,
    }
}
