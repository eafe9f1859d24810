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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use imbl::ordmap::DiffItem;
use imbl::{HashMap as PersistentHashMap, OrdMap, OrdSet};

use super::patch::{merge_members, patch};
use super::service::{Counts, Defaults, InstanceView, NameEntry, ServiceView};
use super::state::{Entry, State, Touched};
use crate::model::{Address, ZoneError};

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
    /// Id key → its service's key, in id order; the instance itself is in the service's view
    /// (`ServiceView::instances`, in id order too). Views are not kept here as well: with
    /// 100,000 instances that copy took ~14 MB, and every write copied a path of nodes whose
    /// entries held four reference counts each.
    by_id: OrdMap<Arc<str>, Arc<str>>,
    /// Node records (`Instance::is_node`), by their key (`node_key`): external nodes, and this
    /// server's own while it has node checks. Their checks gate every instance on the node.
    nodes: OrdMap<Arc<str>, InstanceView>,
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
    /// How many services have instances registered by each (lowercase) host name, and how many
    /// nodes are.
    hosts: OrdMap<Arc<str>, u32>,
    /// The services DNS answers for now (`ServiceView::is_answered`), in name order: the DNS-SD
    /// service types.
    answered: OrdSet<Arc<str>>,
    counts: Counts,
    pub zone_errors: Vec<ZoneError>,
    /// When a zone file was last read, in milliseconds since the Unix epoch; 0 = never.
    pub zone_reloaded_ms: u64,
    /// This snapshot's place in the writer's sequence (0: the empty one), the one it was made
    /// from, and the services `next` rebuilt or removed on the way: a reader that saw the parent
    /// learns what changed from this list instead of comparing the two maps of 10,000 services
    /// (`changed_services`).
    serial: u64,
    parent: u64,
    /// Shared, so that cloning a snapshot (`next` starts from one) does not copy it.
    changed: Arc<[Arc<str>]>,
}

/// A service's view in an older snapshot and in a newer one (`None`: absent there).
pub type ServiceChange<'a> = (Option<&'a Arc<ServiceView>>, Option<&'a Arc<ServiceView>>);

/// Serials of snapshots, unique in the process.
static SERIALS: AtomicU64 = AtomicU64::new(1);

impl Snapshot {
    /// Builds the view of `state` from scratch (tests, tools); the writer uses `next`.
    pub fn build(state: &State, defaults: &Defaults) -> Snapshot {
        let touched = Touched { keys: state.keys().map(Arc::from).collect(), hosts: BTreeSet::new() };
        Snapshot::default().next(state, defaults, &touched)
    }

    /// The view of `state`, which differs from the one this snapshot shows only in `touched`.
    /// Untouched services are shared with this snapshot; rebuilt ones carry their rotation
    /// positions over, so that a registry change does not restart everyone's rotation.
    pub fn next(&self, state: &State, defaults: &Defaults, touched: &Touched) -> Snapshot {
        let mut next = self.clone();
        next.serial = SERIALS.fetch_add(1, Ordering::Relaxed);
        next.parent = self.serial;
        let mut changed = Vec::new();
        next.version = state.version;
        next.resolved = state.resolved().clone();
        next.zone_errors = state.zone_errors().cloned().collect();
        next.zone_reloaded_ms = state.zone_reloaded_ms();

        // Services to rebuild.
        let mut dirty: BTreeSet<Arc<str>> = BTreeSet::new();
        // (service, id key) of each instance leaving its service's view, or being replaced there.
        let mut removed: Vec<(Arc<str>, &str)> = Vec::new();
        let mut entering = Vec::with_capacity(touched.keys.len());
        // Nodes whose health moved: every service with an instance on them is looked at again.
        let mut regated: HashSet<Option<String>> = HashSet::new();
        for key in &touched.keys {
            let new = state.entry_key(key);
            let new_entry = new.map(|(_, e)| e);
            if new_entry.map_or_else(|| next.nodes.contains_key(&**key), |e| e.instance.is_node()) {
                next.node(key, new_entry, &mut regated);
                continue;
            }
            // The services are still this snapshot's: the old view is found there.
            let old = next.instance(key).cloned();
            if let (Some(old), Some(new)) = (&old, new_entry)
                && Arc::ptr_eq(&old.instance, &new.instance)
                && Arc::ptr_eq(&old.health, &new.health)
            {
                continue; // Touched and put back (a rolled-back batch).
            }
            if let Some(old) = old {
                next.by_id.remove(&**key);
                removed.push((old.service.clone(), &**key));
                next.unindex(&old);
                dirty.insert(old.service.clone());
            }
            if let Some(new) = new {
                entering.push(new);
            }
        }
        // Only after every removal: a check id may move from one instance to another.
        let mut views = Vec::with_capacity(entering.len());
        for (key, entry) in entering {
            let lower = entry.instance.service.to_ascii_lowercase();
            // One name per service, shared by all its views, also while it is new (a joining
            // replica's services all are).
            let service = match next.services.get_key_value(lower.as_str()) {
                Some((shared, _)) => shared.clone(),
                None => dirty.get(lower.as_str()).cloned().unwrap_or_else(|| Arc::from(lower)),
            };
            let view = InstanceView {
                key: key.clone(),
                service: service.clone(),
                instance: entry.instance.clone(),
                health: entry.health.clone(),
                status: gated(state, &entry.instance, entry.health.status()),
            };
            next.index(&view);
            dirty.insert(service);
            views.push(Arc::new(view));
        }
        // Grouped by service in one list, in id order within each, walked along with `dirty`
        // below: a list per service, grown by doubling, held 9 MB of spare room at the peak of a
        // join of 100,000.
        views.sort_by(|a, b| (&a.service, &a.key).cmp(&(&b.service, &b.key)));
        let mut views = views.into_iter();
        removed.sort_unstable();
        let mut removed = removed.as_slice();
        if !regated.is_empty() {
            // Rare (a node check changing status), so a walk over the services is affordable.
            for (name, view) in &self.services {
                if view
                    .instances
                    .iter()
                    .any(|v| regated.contains(&v.instance.node.as_ref().map(|n| n.to_ascii_lowercase())))
                {
                    dirty.insert(name.clone());
                }
            }
        }
        if !touched.hosts.is_empty() {
            for (name, view) in &self.services {
                if view.hosts.iter().any(|h| touched.hosts.contains(&**h)) {
                    dirty.insert(name.clone());
                }
            }
        }

        for name in dirty {
            let old = next.services.get(&name).cloned();
            let entering = views.as_slice().partition_point(|v| v.service == name);
            let leaving = removed.partition_point(|(s, _)| *s == name);
            let gone = removed[..leaving].iter().map(|(_, k)| *k);
            removed = &removed[leaving..];
            // A member that did not change itself changes status only with its node's, and then
            // `regated` is not empty; otherwise every write to a service would look up the node
            // of each of its members again.
            let regate = |v: &Arc<InstanceView>| {
                if regated.is_empty() {
                    return v.clone();
                }
                let mut v = InstanceView::clone(v);
                v.status = gated(state, &v.instance, v.health.status());
                Arc::new(v)
            };
            let old_members = old.as_ref().map_or(&[][..], |o| &o.instances[..]);
            let members = merge_members(old_members, gone, views.by_ref().take(entering), regate);
            if members.is_empty() {
                if let Some(old) = &old {
                    next.recount(Some(old), None);
                    next.services.remove(&name);
                    changed.push(name);
                }
                continue;
            }
            // A patch needs the members both versions share unchanged.
            let patched = match old.as_deref() {
                Some(o) if regated.is_empty() && touched.hosts.is_empty() => patch(name.clone(), o, members, defaults),
                _ => Err(members),
            };
            let view = patched.unwrap_or_else(|members| {
                ServiceView::build(name.clone(), members, &next.resolved, defaults, old.as_deref())
            });
            next.recount(old.as_deref(), Some(&view));
            next.services.insert(name.clone(), ServiceRef(Arc::new(view)));
            changed.push(name);
        }
        next.changed = changed.into();
        next
    }

    /// Puts a node record's new state (`None`: gone) in place, noting in `regated` the node
    /// (lowercase name, `None` for this server's) when its status moved.
    fn node(&mut self, key: &str, entry: Option<&Entry>, regated: &mut HashSet<Option<String>>) {
        let old = self.nodes.remove(key);
        if let Some(old) = &old {
            self.unindex(old);
            if let Address::Host(h) = &old.instance.address {
                tally(&mut self.hosts, &h.to_ascii_lowercase(), -1);
            }
        }
        let new = entry.map(|e| InstanceView {
            key: Arc::from(key),
            service: Arc::from(""),
            instance: e.instance.clone(),
            health: e.health.clone(),
            status: e.health.status(),
        });
        if let Some(new) = &new {
            self.index_checks(new);
            self.nodes.insert(new.key.clone(), new.clone());
            // A node named by a host name is resolved like an instance so named.
            if let Address::Host(h) = &new.instance.address {
                tally(&mut self.hosts, &h.to_ascii_lowercase(), 1);
            }
        }
        let status = |v: &Option<InstanceView>| v.as_ref().map(|v| v.status);
        if status(&old) != status(&new) {
            let node = new.as_ref().or(old.as_ref()).and_then(|v| v.instance.node.as_ref());
            regated.insert(node.map(|n| n.to_ascii_lowercase()));
        }
    }

    /// Adds an instance to the indexes across services.
    fn index(&mut self, view: &InstanceView) {
        self.by_id.insert(view.key.clone(), view.service.clone());
        self.index_checks(view);
        if let Address::Ip(ip) = view.instance.address {
            self.by_address.insert((ip, view.key.clone()));
        }
    }

    fn index_checks(&mut self, view: &InstanceView) {
        for (i, c) in view.instance.checks.iter().enumerate() {
            self.checks.insert(Arc::from(c.id.as_str()), (view.key.clone(), i as u32));
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

    /// Moves the counts from what a service contributed (`old`) to what it contributes now
    /// (`new`). A write that leaves its regions, tags, host names and answering as they were
    /// (most) touches only the counts: each tally is a path copied in a persistent map.
    fn recount(&mut self, old: Option<&ServiceView>, new: Option<&ServiceView>) {
        let same_names = |o: &ServiceView, n: &ServiceView| {
            let ((or, ot), (nr, nt)) = (o.regions_and_tags(), n.regions_and_tags());
            or.eq(nr) && ot.eq(nt) && o.hosts == n.hosts && o.is_answered() == n.is_answered()
        };
        if let (Some(o), Some(n)) = (old, new)
            && same_names(o, n)
        {
            self.counts.add(&o.counts, -1);
            self.counts.add(&n.counts, 1);
            return;
        }
        if let Some(o) = old {
            self.count(o, -1);
        }
        if let Some(n) = new {
            self.count(n, 1);
        }
    }

    /// Adds (`sign` 1) or takes away (-1) what a service contributes to the counts.
    fn count(&mut self, view: &ServiceView, sign: i64) {
        self.counts.add(&view.counts, sign);
        let (regions, tags) = view.regions_and_tags();
        regions.for_each(|r| tally(&mut self.regions, r, sign));
        tags.for_each(|t| tally(&mut self.tags, t, sign));
        view.hosts.iter().for_each(|h| tally(&mut self.hosts, h, sign));
        if sign < 0 {
            self.answered.remove(&view.key);
        } else if view.is_answered() {
            self.answered.insert(view.key.clone());
        }
    }

    /// The services that differ between `older` and this snapshot, as (before, after), in name
    /// order; a service that appeared has no before, one that went has no after. From the list
    /// `next` kept when `older` is the snapshot this one was made from, otherwise by comparing
    /// the two maps (shared structure is skipped, so that too costs in proportion to what
    /// changed, but it steps through the boundary nodes of every shared subtree).
    pub fn changed_services<'a>(&'a self, older: &'a Snapshot) -> Vec<ServiceChange<'a>> {
        if self.serial == older.serial {
            return Vec::new();
        }
        if self.parent != older.serial {
            return older
                .services
                .diff(&self.services)
                .map(|d| match d {
                    DiffItem::Add(_, new) => (None, Some(&new.0)),
                    DiffItem::Update { old: (_, old), new: (_, new) } => (Some(&old.0), Some(&new.0)),
                    DiffItem::Remove(_, old) => (Some(&old.0), None),
                })
                .collect();
        }
        self.changed
            .iter()
            .map(|name| (older.services.get(name).map(|s| &s.0), self.services.get(name).map(|s| &s.0)))
            .collect()
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

    /// The services DNS answers for now (lowercase names, in order).
    pub fn answered_services(&self) -> impl Iterator<Item = &str> {
        self.answered.iter().map(|k| &**k)
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
            .filter_map(|(_, key)| self.instance(key))
    }

    /// Every zone file that declares an instance served now or was refused, once each.
    pub fn zone_files(&self) -> impl Iterator<Item = std::path::PathBuf> + '_ {
        let declaring = self.instances().filter_map(|v| match &v.instance.source {
            crate::model::Source::Zone(path) => Some(path.clone()),
            crate::model::Source::Api => None,
        });
        let files: std::collections::BTreeSet<_> =
            declaring.chain(self.zone_errors.iter().map(|e| e.path.clone())).collect();
        files.into_iter()
    }

    /// Every instance, in id order.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceView> {
        self.by_id.iter().filter_map(|(key, service)| self.member(service, key))
    }

    /// The instance with this id key (lowercase).
    pub fn instance(&self, key: &str) -> Option<&InstanceView> {
        self.member(self.by_id.get(key)?, key)
    }

    /// The instance `key` of `service`, whose instances are in id order.
    fn member(&self, service: &str, key: &str) -> Option<&InstanceView> {
        let members = &self.services.get(service)?.instances;
        members.binary_search_by(|v| (*v.key).cmp(key)).ok().map(|i| &*members[i])
    }

    /// The instances of a service (name matched case-insensitively), in id order.
    pub fn service(&self, name: &str) -> impl Iterator<Item = &InstanceView> {
        self.services.get(name.to_ascii_lowercase().as_str()).into_iter().flat_map(|s| s.instances.iter().map(|v| &**v))
    }

    /// Every service (lowercase name) with its instances, in name order.
    pub fn services(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &InstanceView>)> {
        self.services.iter().map(|(n, s)| (&**n, s.instances.iter().map(|v| &**v)))
    }

    /// A check by id: its instance or node record, and its index in `instance.checks` /
    /// `health.checks`.
    pub fn check(&self, check_id: &str) -> Option<(&InstanceView, usize)> {
        let (key, i) = self.checks.get(check_id)?;
        Some((self.instance(key).or_else(|| self.nodes.get(key))?, *i as usize))
    }

    /// Every node record, in key order: external nodes, and this server's own while it has
    /// node checks (the one whose `instance.node` is `None`).
    pub fn nodes(&self) -> impl Iterator<Item = &InstanceView> {
        self.nodes.values()
    }

    /// A node's record, by name (`None`: this server's own).
    pub fn node_record(&self, name: Option<&str>) -> Option<&InstanceView> {
        self.nodes.get(crate::model::node_key(name).as_str())
    }

    /// The node records that differ between `older` and this snapshot, as (before, after).
    pub fn changed_nodes<'a>(
        &'a self,
        older: &'a Snapshot,
    ) -> impl Iterator<Item = (Option<&'a InstanceView>, Option<&'a InstanceView>)> + 'a {
        // Node records are few: a walk over both is enough.
        let same = |a: &InstanceView, b: &InstanceView| {
            Arc::ptr_eq(&a.instance, &b.instance) && Arc::ptr_eq(&a.health, &b.health)
        };
        let gone = older.nodes.iter().filter(|(k, _)| !self.nodes.contains_key(*k)).map(|(_, v)| (Some(v), None));
        let here = self.nodes.iter().filter_map(move |(k, new)| match older.nodes.get(k) {
            Some(old) if same(old, new) => None,
            old => Some((old, Some(new))),
        });
        gone.chain(here)
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

/// An instance's status with its node's: a failing node check fails every instance on the node.
fn gated(state: &State, instance: &crate::model::Instance, own: crate::model::Status) -> crate::model::Status {
    state.node_of(instance).map_or(own, |node| own.max(node.health.status()))
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
