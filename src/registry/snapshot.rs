//! Immutable views of the registry, built by the writer after each batch of changes and read by
//! DNS and the API without locks. Everything a query needs is precomputed here: which instances
//! each DNS name covers, which of them are answerable, in what rotation, with what TTL. The only
//! thing a query changes is a rotation counter, an atomic.
//!
//! Each snapshot is made from the previous one by redoing only what the batch touched, so that a
//! change costs in proportion to the services it touches, not to the size of the registry. The
//! catalog is kept per service (`ServiceView`: its instances and every DNS name of it, with their
//! rotations); the indexes across services (ids, checks, addresses, services) are persistent
//! maps whose versions share everything a batch did not touch. A snapshot is therefore cheap to
//! make even with 100,000 instances, and consecutive snapshots share their untouched services,
//! which lets readers that derive their own views (the DNS fast path, the prober) update them
//! by the same difference.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imbl::ordmap::DiffItem;
use imbl::{HashMap as PersistentHashMap, OrdMap, OrdSet};

use super::state::{State, Touched};
use crate::model::{Address, Health, Instance, ServicePolicy, Status, WhenNoneHealthy, ZoneError};

/// Global answer policy, from `[dns]`; services may override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub ttl: Duration,
    pub answer_limit: u32,
    pub only_passing: bool,
    pub when_none_healthy: WhenNoneHealthy,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: Duration::from_secs(5),
            answer_limit: 0,
            only_passing: false,
            when_none_healthy: WhenNoneHealthy::Empty,
        }
    }
}

/// One instance as readers see it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    /// The id's key (`id_key`: lowercase).
    pub key: Arc<str>,
    /// The service's name, lowercase.
    pub service: Arc<str>,
    pub instance: Arc<Instance>,
    pub health: Arc<Health>,
    /// The aggregate of `health`, precomputed.
    pub status: Status,
}

/// Instances and checks by status (indexed by `Status as usize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub instances: [u64; 4],
    pub checks: [u64; 4],
}

impl Counts {
    fn add(&mut self, other: &Counts, sign: i64) {
        let apply = |a: &mut u64, b: u64| *a = (*a as i64 + sign * b as i64) as u64;
        for i in 0..4 {
            apply(&mut self.instances[i], other.instances[i]);
            apply(&mut self.checks[i], other.checks[i]);
        }
    }
}

/// A service's view, shared between snapshots until the service changes. Compared by identity:
/// two snapshots hold the same `ServiceRef` exactly when the service did not change between them.
#[derive(Debug, Clone)]
pub struct ServiceRef(pub Arc<ServiceView>);

impl PartialEq for ServiceRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for ServiceRef {
    type Target = ServiceView;
    fn deref(&self) -> &ServiceView {
        &self.0
    }
}

/// The registry at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Lowercase service name → its view.
    services: OrdMap<Arc<str>, ServiceRef>,
    /// Id key → instance, in id order.
    by_id: OrdMap<Arc<str>, InstanceView>,
    /// Check id → (instance key, check index).
    checks: PersistentHashMap<Arc<str>, (Arc<str>, u32)>,
    /// (instance address, instance key), for reverse (PTR) lookups: a set in address order, so
    /// that an address's instances are a range, in id order.
    by_address: OrdSet<(IpAddr, Arc<str>)>,
    /// Lowercase host name → addresses, for instances registered with a host name.
    resolved: Arc<HashMap<String, Arc<[IpAddr]>>>,
    /// How many services carry each lowercase region and tag: `<region>.D` and
    /// `_<tag>.service.D` exist as empty non-terminals while some instance carries them.
    regions: OrdMap<Arc<str>, u32>,
    tags: OrdMap<Arc<str>, u32>,
    /// How many services have instances registered by each (lowercase) host name.
    hosts: OrdMap<Arc<str>, u32>,
    counts: Counts,
    pub zone_errors: Vec<ZoneError>,
    /// When a zone file was last read, in milliseconds since the Unix epoch; 0 = never.
    pub zone_reloaded_ms: u64,
}

/// One service: its instances and every DNS name it has, with their answers.
#[derive(Debug)]
pub struct ServiceView {
    /// The name, lowercase.
    pub key: Arc<str>,
    /// In id order; `AnswerSet` members index into this.
    pub instances: Vec<InstanceView>,
    names: ServiceNames,
    /// Every DNS name's entry; `names` refers to them by position.
    entries: Vec<NameEntry>,
    /// The host names its instances are registered with: lowercase, distinct.
    hosts: Vec<Arc<str>>,
    counts: Counts,
}

/// The DNS names of one service: `<name>`, `<tag>.<name>`, each with or without a region.
#[derive(Debug)]
struct ServiceNames {
    all: RegionSplit,
    by_tag: SmallMap<RegionSplit>,
}

#[derive(Debug)]
struct RegionSplit {
    any: u32,
    by_region: SmallMap<u32>,
}

/// A map sorted by key, for the few tags and regions of one service: a `BTreeMap` allocates
/// room for eleven entries even for one, and there is one per service.
#[derive(Debug)]
struct SmallMap<V>(Box<[(Box<str>, V)]>);

impl<V> SmallMap<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &self.0[i].1)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
}

impl<V> FromIterator<(String, V)> for SmallMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(Box<str>, V)> = iter.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        SmallMap(pairs.into())
    }
}

/// One DNS name of a service, for those who index every name (the DNS fast path).
#[derive(Debug, Clone, Copy)]
pub struct NameForm<'a> {
    pub service: &'a str,
    pub tag: Option<&'a str>,
    pub region: Option<&'a str>,
    /// Position for `ServiceView::entry`.
    pub index: u32,
}

/// What one DNS name answers.
#[derive(Debug)]
pub struct NameEntry {
    /// TTL in seconds.
    pub ttl: u32,
    /// Most A/AAAA records per answer; 0 = all.
    pub answer_limit: u32,
    /// Answerable instances with an IPv4 address, an IPv6 address, and any address.
    pub v4: AnswerSet,
    pub v6: AnswerSet,
    pub srv: AnswerSet,
    /// SRV asked as `_<name>._<tag>`: the same members as `srv`, rotating on their own.
    pub srv_rfc2782: AnswerSet,
    pub txt: AnswerSet,
}

/// The instances one (name, type) answers, and where its rotation stands.
#[derive(Debug)]
pub struct AnswerSet {
    /// Indexes into `ServiceView::instances`; shared by the sets of a name that have the same
    /// members (SRV, TXT, and usually one address family).
    pub members: Arc<[u32]>,
    schedule: Schedule,
    /// Queries answered so far; carried over from the previous snapshot so that a registry
    /// change does not restart everyone's rotation at the first instance.
    counter: AtomicU64,
}

/// Which member comes first for the k-th query.
#[derive(Debug, Clone)]
enum Schedule {
    /// Equal weights: member k mod n.
    Uniform,
    /// Smooth weighted round-robin, precomputed over one period of Σw queries.
    Weighted(Arc<[u32]>),
}

impl Schedule {
    fn new(weights: impl Iterator<Item = u32>) -> Schedule {
        let weights: Vec<u64> = weights.map(|w| u64::from(w.max(1))).collect();
        if weights.windows(2).all(|w| w[0] == w[1]) {
            Schedule::Uniform
        } else {
            Schedule::Weighted(smooth_weighted_schedule(&weights).into())
        }
    }
}

/// The largest weighted period kept in memory; larger weight sums are scaled down to it.
const MAX_PERIOD: u64 = 1 << 16;

impl AnswerSet {
    #[cfg(test)]
    fn new(members: Vec<u32>, weights: impl Iterator<Item = u32>, carried: u64) -> Self {
        AnswerSet { members: members.into(), schedule: Schedule::new(weights), counter: AtomicU64::new(carried) }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in this query's rotated order: the scheduled first member, then the others in
    /// their cyclic order after it. Each call advances the rotation by one.
    pub fn rotate(&self) -> impl Iterator<Item = u32> + '_ {
        let k = if self.members.is_empty() { 0 } else { self.counter.fetch_add(1, Ordering::Relaxed) };
        self.order(k)
    }

    /// Members in the order the next query would get, without advancing the rotation: for the
    /// status page, which must show the answer without changing what clients receive.
    pub fn peek(&self) -> impl Iterator<Item = u32> + '_ {
        self.order(self.position())
    }

    /// Members in the order of the k-th query.
    fn order(&self, k: u64) -> impl Iterator<Item = u32> + '_ {
        let n = self.members.len();
        let first = match &self.schedule {
            _ if n == 0 => 0,
            Schedule::Uniform => (k % n as u64) as usize,
            Schedule::Weighted(s) => s[(k % s.len() as u64) as usize] as usize,
        };
        (0..n).map(move |i| self.members[(first + i) % n])
    }

    fn position(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// One period of smooth weighted round-robin (nginx's): each step every member gains its weight,
/// the richest goes first and pays the total. Over Σw steps member i goes first exactly wᵢ times,
/// interleaved rather than in bursts.
fn smooth_weighted_schedule(weights: &[u64]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let mut total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        w = w.iter().map(|x| (x * MAX_PERIOD / total).max(1)).collect();
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, c) in current.iter_mut().enumerate() {
            *c += w[i] as i64;
        }
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Returns true if an instance with this status is answered under the given policy.
fn is_healthy(status: Status, only_passing: bool) -> bool {
    match status {
        Status::Passing => true,
        Status::Warning => !only_passing,
        Status::Critical | Status::Maintenance => false,
    }
}

/// A service's effective DNS settings: its declarations merged conservatively, then defaults.
#[derive(Debug, Clone, Copy)]
struct Effective {
    ttl: u32,
    answer_limit: u32,
    only_passing: bool,
    when_none_healthy: WhenNoneHealthy,
}

fn merge_policies<'a>(policies: impl Iterator<Item = &'a ServicePolicy>, d: &Defaults) -> Effective {
    let p = policies.fold(ServicePolicy::default(), |a, b| a.merge(*b));
    Effective {
        ttl: p.ttl.unwrap_or(d.ttl).as_secs().min(u64::from(u32::MAX)) as u32,
        answer_limit: p.answer_limit.unwrap_or(d.answer_limit),
        only_passing: p.only_passing.unwrap_or(d.only_passing),
        when_none_healthy: p.when_none_healthy.unwrap_or(d.when_none_healthy),
    }
}

impl Snapshot {
    /// Builds the view of `state` from scratch (tests, tools); the writer uses `next`.
    pub fn build(state: &State, defaults: &Defaults) -> Snapshot {
        let touched = Touched { keys: state.keys().cloned().collect(), hosts: BTreeSet::new() };
        Snapshot::default().next(state, defaults, &touched)
    }

    /// The view of `state`, which differs from the one this snapshot shows only in `touched`.
    /// Untouched services are shared with this snapshot; rebuilt ones carry their rotation
    /// positions over, so that a registry change does not restart everyone's rotation.
    pub fn next(&self, state: &State, defaults: &Defaults, touched: &Touched) -> Snapshot {
        let mut next = self.clone();
        next.version = state.version;
        next.resolved = state.resolved().clone();
        next.zone_errors = state.zone_errors().cloned().collect();
        next.zone_reloaded_ms = state.zone_reloaded_ms();

        // Services to rebuild, each with the instances entering it.
        let mut dirty: BTreeMap<Arc<str>, Vec<InstanceView>> = BTreeMap::new();
        let mut removed: HashSet<&str> = HashSet::new();
        let mut entering = Vec::new();
        for key in &touched.keys {
            let new = state.entry(key);
            if let (Some(old), Some(new)) = (next.by_id.get(key.as_str()), new)
                && Arc::ptr_eq(&old.instance, &new.instance)
                && Arc::ptr_eq(&old.health, &new.health)
            {
                continue; // Touched and put back (a rolled-back batch).
            }
            if let Some(old) = next.by_id.remove(key.as_str()) {
                removed.insert(key);
                next.unindex(&old);
                dirty.entry(old.service.clone()).or_default();
            }
            if let Some(entry) = new {
                entering.push((key, entry));
            }
        }
        // Only after every removal: a check id may move from one instance to another.
        for (key, entry) in entering {
            let service = entry.instance.service.to_ascii_lowercase();
            let service = match next.services.get_key_value(service.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => Arc::from(service),
            };
            let view = InstanceView {
                key: Arc::from(key.as_str()),
                service: service.clone(),
                instance: entry.instance.clone(),
                health: entry.health.clone(),
                status: entry.health.status(),
            };
            next.index(&view);
            dirty.entry(service).or_default().push(view);
        }
        if !touched.hosts.is_empty() {
            for (name, view) in &self.services {
                if view.hosts.iter().any(|h| touched.hosts.contains(&**h)) {
                    dirty.entry(name.clone()).or_default();
                }
            }
        }

        for (name, entering) in dirty {
            let old = next.services.get(&name).cloned();
            let mut members: Vec<InstanceView> = old
                .iter()
                .flat_map(|o| o.instances.iter())
                .filter(|v| !removed.contains(&*v.key))
                .cloned()
                .chain(entering)
                .collect();
            members.sort_by(|a, b| a.key.cmp(&b.key));
            if let Some(old) = &old {
                next.count(old, -1);
            }
            if members.is_empty() {
                next.services.remove(&name);
                continue;
            }
            let view = ServiceView::build(name.clone(), members, &next.resolved, defaults, old.as_deref());
            next.count(&view, 1);
            next.services.insert(name, ServiceRef(Arc::new(view)));
        }
        next
    }

    /// Adds an instance to the indexes across services.
    fn index(&mut self, view: &InstanceView) {
        self.by_id.insert(view.key.clone(), view.clone());
        for (i, c) in view.instance.checks.iter().enumerate() {
            self.checks.insert(Arc::from(c.id.as_str()), (view.key.clone(), i as u32));
        }
        if let Address::Ip(ip) = view.instance.address {
            self.by_address.insert((ip, view.key.clone()));
        }
    }

    /// Takes an instance out of the indexes across services.
    fn unindex(&mut self, view: &InstanceView) {
        for c in &view.instance.checks {
            if self.checks.get(c.id.as_str()).is_some_and(|(owner, _)| *owner == view.key) {
                self.checks.remove(c.id.as_str());
            }
        }
        if let Address::Ip(ip) = view.instance.address {
            self.by_address.remove(&(ip, view.key.clone()));
        }
    }

    /// Adds (`sign` 1) or takes away (-1) what a service contributes to the counts.
    fn count(&mut self, view: &ServiceView, sign: i64) {
        self.counts.add(&view.counts, sign);
        let (regions, tags) = view.regions_and_tags();
        regions.for_each(|r| tally(&mut self.regions, r, sign));
        tags.for_each(|t| tally(&mut self.tags, t, sign));
        view.hosts.iter().for_each(|h| tally(&mut self.hosts, h, sign));
    }

    /// The services that differ between `older` and this snapshot, as (before, after); a
    /// service that appeared has no before, one that went has no after. Shared structure is
    /// skipped, so this costs in proportion to what changed.
    pub fn changed_services<'a>(
        &'a self,
        older: &'a Snapshot,
    ) -> impl Iterator<Item = (Option<&'a Arc<ServiceView>>, Option<&'a Arc<ServiceView>>)> + 'a {
        older.services.diff(&self.services).map(|d| match d {
            DiffItem::Add(_, new) => (None, Some(&new.0)),
            DiffItem::Update { old: (_, old), new: (_, new) } => (Some(&old.0), Some(&new.0)),
            DiffItem::Remove(_, old) => (Some(&old.0), None),
        })
    }

    /// A service's view, by lowercase name.
    pub fn service_view(&self, service: &str) -> Option<&Arc<ServiceView>> {
        self.services.get(service).map(|s| &s.0)
    }

    /// Every service's view, in name order.
    pub fn service_views(&self) -> impl Iterator<Item = &Arc<ServiceView>> {
        self.services.values().map(|s| &s.0)
    }

    /// The entry for `<tag>.<service>.service[.<region>]`, with its service (whose instances the
    /// entry's members index); arguments must be lowercase.
    pub fn name(&self, service: &str, tag: Option<&str>, region: Option<&str>) -> Option<(&ServiceView, &NameEntry)> {
        let view = self.service_view(service)?;
        Some((view, view.name(tag, region)?))
    }

    /// Every region and tag some instance carries (lowercase).
    pub fn regions_and_tags(&self) -> (impl Iterator<Item = &str>, impl Iterator<Item = &str>) {
        (self.regions.keys().map(|k| &**k), self.tags.keys().map(|k| &**k))
    }

    /// Every host name some instance is registered with (lowercase), in order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(|k| &**k)
    }

    /// The addresses an instance is reachable at: its IP, or its host name's as last resolved
    /// (none before the first answer).
    pub fn addresses<'a>(&'a self, address: &'a Address) -> impl Iterator<Item = IpAddr> + 'a {
        let (ip, host) = match address {
            Address::Ip(ip) => (Some(*ip), None),
            Address::Host(h) => (None, self.resolved.get(&h.to_ascii_lowercase())),
        };
        ip.into_iter().chain(host.into_iter().flat_map(|a| a.iter().copied()))
    }

    /// The instances registered at this address, in id order.
    pub fn at_address(&self, ip: IpAddr) -> impl Iterator<Item = &InstanceView> {
        self.by_address
            .range((ip, Arc::<str>::from(""))..)
            .take_while(move |(at, _)| *at == ip)
            .filter_map(|(_, key)| self.by_id.get(key))
    }

    /// Every instance, in id order.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceView> {
        self.by_id.values()
    }

    /// The instance with this id key (lowercase).
    pub fn instance(&self, key: &str) -> Option<&InstanceView> {
        self.by_id.get(key)
    }

    /// The instances of a service (name matched case-insensitively), in id order.
    pub fn service(&self, name: &str) -> impl Iterator<Item = &InstanceView> {
        self.services.get(name.to_ascii_lowercase().as_str()).into_iter().flat_map(|s| s.instances.iter())
    }

    /// Every service (lowercase name) with its instances, in name order.
    pub fn services(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &InstanceView>)> {
        self.services.iter().map(|(n, s)| (&**n, s.instances.iter()))
    }

    /// A check by id: its instance and its index in `instance.checks` / `health.checks`.
    pub fn check(&self, check_id: &str) -> Option<(&InstanceView, usize)> {
        let (key, i) = self.checks.get(check_id)?;
        Some((self.by_id.get(key)?, *i as usize))
    }

    /// Instances and checks by status.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Returns true if some instance carries this region (lowercase).
    pub fn has_region(&self, region: &str) -> bool {
        self.regions.contains_key(region)
    }

    /// Returns true if some instance carries this tag (lowercase).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains_key(tag)
    }

    /// Number of registered instances.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Returns true if no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl ServiceView {
    /// Builds the view of one service from its instances (in id order), carrying rotation
    /// positions over from its previous view.
    fn build(
        key: Arc<str>,
        instances: Vec<InstanceView>,
        resolved: &HashMap<String, Arc<[IpAddr]>>,
        defaults: &Defaults,
        previous: Option<&ServiceView>,
    ) -> ServiceView {
        let eff = merge_policies(instances.iter().map(|v| &v.instance.policy), defaults);
        let members: Vec<u32> = (0..instances.len() as u32).collect();
        let mut entries = Vec::new();
        let mut build = |subset: &[u32], tag: Option<&str>, region: Option<&str>| {
            let carried = previous.and_then(|p| p.name(tag, region));
            entries.push(NameEntry::build(&instances, resolved, subset, &eff, carried));
            (entries.len() - 1) as u32
        };
        let mut tag_members: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (i, v) in instances.iter().enumerate() {
            for t in &v.instance.tags {
                let list = tag_members.entry(t.to_ascii_lowercase()).or_default();
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            }
        }
        let mut split = |subset: &[u32], tag: Option<&str>| RegionSplit {
            any: build(subset, tag, None),
            by_region: group_by_region(&instances, subset)
                .into_iter()
                .map(|(r, sub)| {
                    let e = build(&sub, tag, Some(&r));
                    (r, e)
                })
                .collect(),
        };
        let all = split(&members, None);
        let by_tag = tag_members.iter().map(|(t, sub)| (t.clone(), split(sub, Some(t)))).collect();
        entries.shrink_to_fit();

        let mut counts = Counts::default();
        let mut hosts = BTreeSet::new();
        for v in &instances {
            counts.instances[v.status as usize] += 1;
            for c in &v.health.checks {
                counts.checks[c.status as usize] += 1;
            }
            if let Address::Host(h) = &v.instance.address {
                hosts.insert(h.to_ascii_lowercase());
            }
        }
        ServiceView {
            key,
            instances,
            names: ServiceNames { all, by_tag },
            entries,
            hosts: hosts.into_iter().map(Arc::from).collect(),
            counts,
        }
    }

    /// The entry for `<tag>.<service>.service[.<region>]`; arguments must be lowercase.
    pub fn name(&self, tag: Option<&str>, region: Option<&str>) -> Option<&NameEntry> {
        self.names.lookup(tag, region).map(|i| &self.entries[i as usize])
    }

    /// The entry at a position given by `name_forms`.
    pub fn entry(&self, index: u32) -> &NameEntry {
        &self.entries[index as usize]
    }

    /// Every name entry, by position.
    pub fn entries(&self) -> &[NameEntry] {
        &self.entries
    }

    /// An instance by its index in `instances` (an `AnswerSet` member).
    pub fn instance(&self, index: u32) -> &InstanceView {
        &self.instances[index as usize]
    }

    /// The service's TTL (its names' entries all share it), which its instances' own names
    /// answer with too.
    pub fn ttl(&self) -> u32 {
        self.entries[self.names.all.any as usize].ttl
    }

    /// Every name form of the service, with its entry's position.
    pub fn name_forms(&self) -> impl Iterator<Item = NameForm<'_>> {
        let service = &*self.key;
        let splits =
            std::iter::once((None, &self.names.all)).chain(self.names.by_tag.iter().map(|(t, s)| (Some(t), s)));
        splits.flat_map(move |(tag, split)| {
            let any = NameForm { service, tag, region: None, index: split.any };
            std::iter::once(any).chain(split.by_region.iter().map(move |(r, &index)| NameForm {
                service,
                tag,
                region: Some(r),
                index,
            }))
        })
    }

    /// The regions and tags the service's instances carry (lowercase): those its names split by.
    pub fn regions_and_tags(&self) -> (impl Iterator<Item = &str>, impl Iterator<Item = &str>) {
        (self.names.all.by_region.iter().map(|(r, _)| r), self.names.by_tag.iter().map(|(t, _)| t))
    }
}

impl ServiceNames {
    fn lookup(&self, tag: Option<&str>, region: Option<&str>) -> Option<u32> {
        let split = match tag {
            None => &self.all,
            Some(t) => self.by_tag.get(t)?,
        };
        match region {
            None => Some(split.any),
            Some(r) => split.by_region.get(r).copied(),
        }
    }
}

/// Adds `sign` (1 or -1) to `key`'s count; a key whose count reaches 0 goes.
fn tally(map: &mut OrdMap<Arc<str>, u32>, key: &str, sign: i64) {
    let (key, n) = match map.get_key_value(key) {
        Some((k, &n)) => (k.clone(), i64::from(n) + sign),
        None => (Arc::from(key), sign),
    };
    if n > 0 {
        map.insert(key, n as u32);
    } else {
        map.remove(&key);
    }
}

fn group_by_region(instances: &[InstanceView], subset: &[u32]) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for &i in subset {
        if let Some(r) = &instances[i as usize].instance.region {
            out.entry(r.to_ascii_lowercase()).or_default().push(i);
        }
    }
    out
}

impl NameEntry {
    fn build(
        instances: &[InstanceView],
        resolved: &HashMap<String, Arc<[IpAddr]>>,
        subset: &[u32],
        eff: &Effective,
        carried: Option<&NameEntry>,
    ) -> NameEntry {
        let mut answerable: Vec<u32> =
            subset.iter().copied().filter(|&i| is_healthy(instances[i as usize].status, eff.only_passing)).collect();
        if answerable.is_empty() && eff.when_none_healthy == WhenNoneHealthy::All {
            // Fail open, but never to an instance an operator put into maintenance.
            answerable =
                subset.iter().copied().filter(|&i| instances[i as usize].status != Status::Maintenance).collect();
        }
        let schedule = |members: &[u32]| Schedule::new(members.iter().map(|&i| instances[i as usize].instance.weight));
        let all_schedule = schedule(&answerable);
        let all = (Arc::<[u32]>::from(answerable), all_schedule);
        // A family with every answerable instance (the usual case) shares their list.
        let family = |want_v4: bool| -> (Arc<[u32]>, Schedule) {
            let members: Vec<u32> = all
                .0
                .iter()
                .copied()
                .filter(|&i| match &instances[i as usize].instance.address {
                    Address::Ip(IpAddr::V4(_)) => want_v4,
                    Address::Ip(IpAddr::V6(_)) => !want_v4,
                    Address::Host(h) => resolved
                        .get(&h.to_ascii_lowercase())
                        .is_some_and(|a| a.iter().any(|ip| ip.is_ipv4() == want_v4)),
                })
                .collect();
            if members.len() == all.0.len() {
                all.clone()
            } else {
                let s = schedule(&members);
                (members.into(), s)
            }
        };
        let set = |(members, schedule): (Arc<[u32]>, Schedule), pick: fn(&NameEntry) -> &AnswerSet| {
            let pos = carried.map(|c| pick(c).position()).unwrap_or(0);
            AnswerSet { members, schedule, counter: AtomicU64::new(pos) }
        };
        NameEntry {
            ttl: eff.ttl,
            answer_limit: eff.answer_limit,
            v4: set(family(true), |e| &e.v4),
            v6: set(family(false), |e| &e.v6),
            srv: set(all.clone(), |e| &e.srv),
            srv_rfc2782: set(all.clone(), |e| &e.srv_rfc2782),
            txt: set(all, |e| &e.txt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(weights: &[u32], queries: usize) -> Vec<u32> {
        let set = AnswerSet::new((0..weights.len() as u32).collect(), weights.iter().copied(), 0);
        (0..queries).map(|_| set.rotate().next().unwrap()).collect()
    }

    #[test]
    fn equal_weights_put_each_member_first_once_per_round() {
        assert_eq!(firsts(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
        let set = AnswerSet::new(vec![7, 8, 9], [2, 2, 2].into_iter(), 0);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![8, 9, 7]);
    }

    #[test]
    fn weights_give_exact_shares_spread_out() {
        let order = firsts(&[5, 1, 1], 7);
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence for 5,1,1");
        let order = firsts(&[3, 1], 8);
        for (m, want) in [(0, 6), (1, 2)] {
            assert_eq!(order.iter().filter(|&&x| x == m).count(), want);
        }
        // Common factors do not lengthen the period.
        assert_eq!(firsts(&[200, 100], 3), vec![0, 1, 0]);
    }

    #[test]
    fn peek_shows_the_next_order_without_advancing() {
        let set = AnswerSet::new(vec![7, 8, 9], [1, 1, 1].into_iter(), 0);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9], "peeking twice changes nothing");
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9], "the next query gets what peek showed");
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![8, 9, 7]);
        let weighted = AnswerSet::new(vec![0, 1, 2], [5, 1, 1].into_iter(), 0);
        for _ in 0..9 {
            let seen: Vec<u32> = weighted.peek().collect();
            assert_eq!(weighted.rotate().collect::<Vec<_>>(), seen);
        }
        assert!(AnswerSet::new(vec![], std::iter::empty(), 0).peek().next().is_none());
    }

    #[test]
    fn huge_weight_sums_are_scaled_not_refused() {
        let s = smooth_weighted_schedule(&[65535, 65535, 1, 3]);
        assert!(s.len() as u64 <= MAX_PERIOD + 4);
        assert!(s.contains(&2) && s.contains(&3));
    }
}
