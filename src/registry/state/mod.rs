//! The registry's mutable state, owned by exactly one writer. Every source (zone files, the API,
//! probes) describes what happened as a `Change`; `State::apply` decides whether it is allowed
//! and what it changes. Readers never see this type: they see `Snapshot`s built from it.
//!
//! A batch of changes is all-or-nothing with respect to the store: `begin` starts recording an
//! undo log, `rollback` restores what the batch touched if the store could not make it durable,
//! and `take_dirty` says which API registrations must be written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod nodes;
mod shared;
#[cfg(test)]
mod tests;
mod zone_files;

use self::shared::Revisions;
use self::zone_files::restore;
use super::change::{Change, Effect, RegistryError};
use super::ownership::Ownership;
use super::timers::{Kind, Timers};
use crate::model::{CheckKind, Health, Instance, Source, Status, Stored, ZoneError, id_key, now_ms};

/// One registered instance and what the registry knows of its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub instance: Arc<Instance>,
    pub health: Arc<Health>,
}

impl Entry {
    pub fn new(instance: Instance) -> Self {
        let health = Health::initial(&instance, now_ms());
        Entry::with(instance, health)
    }

    pub fn with(mut instance: Instance, health: Health) -> Self {
        // Decoded lists start with room for four (serde grows them from empty): a registration's
        // one tag took 96 bytes instead of 24, 7 MB at 100,000 instances.
        instance.tags.shrink_to_fit();
        instance.checks.shrink_to_fit();
        Entry { instance: Arc::new(instance), health: shared(health) }
    }

    /// The same instance with a new health.
    pub fn with_health(&self, health: Health) -> Self {
        Entry { instance: self.instance.clone(), health: shared(health) }
    }

    pub fn status(&self) -> Status {
        self.health.status()
    }
}

/// `health` behind an `Arc`; every instance with no checks and not in maintenance shares one
/// (an allocation of 80 bytes less for each, 8 MB at 100,000 instances).
pub(crate) fn shared(health: Health) -> Arc<Health> {
    static NONE: std::sync::LazyLock<Arc<Health>> = std::sync::LazyLock::new(|| Arc::new(Health::default()));
    if health == Health::default() { NONE.clone() } else { Arc::new(health) }
}

/// What changed in the state since the last snapshot was made from it.
#[derive(Debug, Default)]
pub struct Touched {
    /// Entry keys set, replaced or removed (possibly back to what they were), each the state's
    /// own key (no copy of the id: a replica joining 100,000 instances touches them all).
    pub keys: BTreeSet<Arc<str>>,
    /// Host names (lowercase) whose resolved addresses changed.
    pub hosts: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct State {
    /// Keyed by `id_key`.
    entries: BTreeMap<Arc<str>, Entry>,
    /// Check id → owning entry key.
    checks: HashMap<String, String>,
    /// Which ids each zone file declared in its last accepted version.
    zone_files: BTreeMap<PathBuf, Vec<String>>,
    /// Current problems per zone file (parse errors, refused duplicates).
    zone_errors: BTreeMap<PathBuf, Vec<ZoneError>>,
    /// When a zone file was last read (loaded, removed or found broken), in milliseconds since
    /// the Unix epoch; 0 = never. Shown on the status page.
    zone_reloaded_ms: u64,
    /// Bumped by the writer once per batch of changes that altered the catalog.
    pub(crate) version: u64,
    /// While a batch runs: previous values of everything it touched, oldest first.
    undo: Option<Vec<Undo>>,
    /// API registrations changed since the last `take_dirty`.
    dirty: BTreeSet<String>,
    /// True if zone errors or `zone_reloaded_ms` changed since the last `take_errors_changed`.
    errors_changed: bool,
    timers: Timers,
    /// Lowercase host name → its addresses as last resolved, for instances registered by name.
    /// Shared with snapshots: copied only when a host name's addresses change.
    resolved: Arc<HashMap<String, Arc<[IpAddr]>>>,
    /// What changed since the last snapshot was made (`take_touched`).
    touched: Touched,
    /// Shared store only: what this replica knows of each API key's store revisions.
    revisions: HashMap<Arc<str>, Revisions>,
    /// Shared store only: keys known absent, oldest first, whose entry in `revisions` goes once
    /// the watch has delivered past it (`shared.rs`).
    tombstones: std::collections::VecDeque<(u64, Arc<str>)>,
    /// Shared store only: every change of the store up to this revision has been delivered by
    /// the watch (or a reload).
    watched: u64,
    /// Shared store only: TTL heartbeats received since the last `take_beats`.
    beats: Vec<(String, String)>,
    /// Which API checks this replica expires and reaps.
    ownership: Ownership,
    /// Timers acted on in the current batch, re-armed if the batch is rolled back.
    expired: Vec<(Kind, String)>,
    /// The highest shared-store revision applied so far.
    pub(crate) store_revision: u64,
}

/// Returns true if two instances' nodes are the same one (names match case-insensitively).
fn same_node(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// How soon a timer is looked at again when it cannot be acted on now.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
enum Undo {
    Entry(String, Option<Entry>),
    ZoneFile(PathBuf, Option<Vec<String>>),
    ZoneErrors(PathBuf, Option<Vec<ZoneError>>),
}

impl State {
    pub fn new() -> Self {
        State { version: 1, ..State::default() }
    }

    /// Restores API registrations read from the store, before anything else is loaded.
    pub fn restore(&mut self, version: u64, stored: impl IntoIterator<Item = Stored>) {
        self.version = self.version.max(version);
        for s in stored {
            let key = id_key(&s.instance.id);
            let entry = Entry::with(s.instance, s.health);
            self.set_entry(key, Some(entry));
        }
        self.dirty.clear();
    }

    /// Shares out the API checks whose TTL expiry and reaping this replica does.
    pub fn set_ownership(&mut self, ownership: Ownership) {
        self.ownership = ownership;
    }

    /// Number of registered instances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with this id key.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The entry with this id key, and the key as the state keeps it (snapshots share it).
    pub fn entry_key(&self, key: &str) -> Option<(&Arc<str>, &Entry)> {
        self.entries.get_key_value(key)
    }

    /// Every entry's id key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| &**k)
    }

    /// `key` as one shared allocation: the entries, the store revisions, the tombstones and
    /// every snapshot's indexes hold the same one (three copies of each id were ~10 MB at
    /// 100,000 instances).
    fn shared_key(&self, key: &str) -> Arc<str> {
        match self.entries.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => self.revisions.get_key_value(key).map_or_else(|| Arc::from(key), |(k, _)| k.clone()),
        }
    }

    /// Host names (lowercase) and their addresses as last resolved; shared with snapshots.
    pub fn resolved(&self) -> &Arc<HashMap<String, Arc<[IpAddr]>>> {
        &self.resolved
    }

    /// When a zone file was last read, in milliseconds since the Unix epoch; 0 = never.
    pub fn zone_reloaded_ms(&self) -> u64 {
        self.zone_reloaded_ms
    }

    /// Every zone file problem, in file order.
    pub fn zone_errors(&self) -> impl Iterator<Item = &ZoneError> {
        self.zone_errors.values().flatten()
    }

    /// Starts recording an undo log for a batch.
    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
        self.expired.clear();
        self.beats.clear();
    }

    /// Ends the batch: its changes stay.
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Ends the batch by restoring everything it touched.
    pub fn rollback(&mut self) {
        let Some(log) = self.undo.take() else { return };
        for undo in log.into_iter().rev() {
            match undo {
                Undo::Entry(key, old) => self.set_entry(key, old),
                Undo::ZoneFile(path, old) => restore(&mut self.zone_files, path, old),
                Undo::ZoneErrors(path, old) => restore(&mut self.zone_errors, path, old),
            }
        }
        self.dirty.clear();
        self.beats.clear();
        // What time did in this batch is not lost: it is tried again shortly.
        let at = tokio::time::Instant::now() + RETRY;
        for (kind, check_id) in std::mem::take(&mut self.expired) {
            self.timers.defer(kind, &check_id, at);
        }
    }

    /// API registrations changed since the last call: the record to store, or `None` to delete.
    pub fn take_dirty(&mut self) -> Vec<(String, Option<Stored>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| {
                let stored = self
                    .entries
                    .get(key.as_str())
                    .filter(|e| e.instance.source == Source::Api)
                    .map(|e| Stored { instance: (*e.instance).clone(), health: (*e.health).clone() });
                (key, stored)
            })
            .collect()
    }

    /// What changed since the last call: the next snapshot redoes only that.
    pub fn take_touched(&mut self) -> Touched {
        std::mem::take(&mut self.touched)
    }

    /// When the next time-driven change may be due.
    pub fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.timers.next()
    }

    /// Applies the time-driven changes due at `now`: TTL checks without a heartbeat turn
    /// critical, API instances critical past their `deregister_after` are removed.
    pub fn expire(&mut self, now: tokio::time::Instant) -> Effect {
        let mut effect = Effect::None;
        let mut acted = Vec::new();
        for (kind, check_id) in self.timers.due(now) {
            let Some((entry, i)) = self.check(&check_id) else { continue };
            let spec = entry.instance.checks[i].clone();
            let status = entry.health.checks[i].status;
            if !self.ownership.acts_on(&entry.instance.source, &check_id) {
                // Another replica acts on it; look again later in case this one takes it over.
                let pending = match (kind, &spec.kind) {
                    (Kind::TtlExpiry, CheckKind::Ttl { ttl }) => {
                        status != Status::Critical && self.timers.ttl_expired(&check_id, *ttl, now)
                    }
                    (Kind::Reap, _) => status == Status::Critical,
                    _ => false,
                };
                if pending {
                    self.timers.defer(kind, &check_id, now + RETRY);
                }
                continue;
            }
            acted.push((kind, check_id.clone()));
            match (kind, &spec.kind) {
                (Kind::TtlExpiry, CheckKind::Ttl { ttl })
                    if status != Status::Critical && self.timers.ttl_expired(&check_id, *ttl, now) =>
                {
                    let output = format!("TTL expired: no heartbeat for {}", crate::duration::format(*ttl));
                    tracing::info!(check = %check_id, instance = %entry.instance.id, "TTL check expired");
                    let key = id_key(&entry.instance.id);
                    effect = effect.max(self.set_check(&key, i, Status::Critical, output));
                }
                (Kind::Reap, _) => {
                    let after = spec.deregister_after.unwrap_or_default();
                    // As in Consul, only service checks deregister: a node goes by its own
                    // deregistration, never half (its record without its instances).
                    if status == Status::Critical
                        && entry.instance.source == Source::Api
                        && !entry.instance.is_node()
                        && self.timers.critical_for(&check_id, after, now)
                    {
                        let id = entry.instance.id.clone();
                        tracing::info!(instance = %id, check = %check_id, after = %crate::duration::format(after), "deregistering an instance critical for longer than deregister_after");
                        self.set_entry(id_key(&id), None);
                        effect = Effect::Changed;
                    }
                }
                _ => {}
            }
        }
        self.expired.extend(acted);
        effect
    }

    /// Returns true (once) if the zone errors changed: readers should get a new snapshot.
    pub fn take_errors_changed(&mut self) -> bool {
        std::mem::take(&mut self.errors_changed)
    }

    /// Every API registration, for a store snapshot.
    pub fn stored(&self) -> impl Iterator<Item = Stored> + '_ {
        self.entries
            .values()
            .filter(|e| e.instance.source == Source::Api)
            .map(|e| Stored { instance: (*e.instance).clone(), health: (*e.health).clone() })
    }

    /// Applies one change.
    pub fn apply(&mut self, change: Change) -> Result<Effect, RegistryError> {
        if matches!(change, Change::ZoneFile(_) | Change::ZoneFileRemoved(_) | Change::ZoneFileBroken { .. }) {
            // A reload that changed nothing is still news to readers: "last reload" moves.
            self.zone_reloaded_ms = now_ms();
            self.errors_changed = true;
        }
        match change {
            Change::ZoneFile(file) => self.apply_zone_file(file),
            Change::ZoneFileRemoved(path) => {
                self.set_zone_errors(&path, None);
                let ids = self.set_zone_file(&path, None).unwrap_or_default();
                let effect = if ids.is_empty() { Effect::None } else { Effect::Changed };
                for key in ids {
                    self.set_entry(key, None);
                }
                Ok(effect)
            }
            Change::ZoneFileBroken { path, errors } => {
                self.set_zone_errors(&path, Some(errors));
                Ok(Effect::None)
            }
            Change::Register { instance, replace_existing_checks } => self.register(instance, replace_existing_checks),
            Change::Deregister { id } => {
                let key = self.api_owned(&id)?;
                self.set_entry(key, None);
                Ok(Effect::Changed)
            }
            Change::Maintenance { id, reason } => {
                let key = id_key(&id);
                let entry = self
                    .entries
                    .get(key.as_str())
                    .filter(|e| !e.instance.is_node())
                    .ok_or(RegistryError::UnknownInstance(id))?;
                if entry.health.maintenance == reason {
                    return Ok(Effect::None);
                }
                let mut health = (*entry.health).clone();
                health.maintenance = reason;
                let entry = entry.with_health(health);
                self.set_entry(key, Some(entry));
                Ok(Effect::Changed)
            }
            Change::CheckUpdate { check_id, status, output } => self.check_update(&check_id, status, output),
            Change::Resolved { host, addrs } => Ok(self.set_resolved(host, addrs)),
            Change::Republish => Ok(Effect::Detail),
            Change::Remote { key, stored, modified, revision } => Ok(self.remote(key, stored, modified, revision)),
            Change::RemoteBeat { check_id } => {
                if let Some((entry, i)) = self.check(&check_id)
                    && let CheckKind::Ttl { ttl } = entry.instance.checks[i].kind
                {
                    self.timers.beat(&check_id, ttl, tokio::time::Instant::now());
                }
                Ok(Effect::None)
            }
            Change::Reload { records, revision } => Ok(self.reload(records, revision)),
            Change::Watched { revision } => {
                self.watched_up_to(revision);
                Ok(Effect::None)
            }
            Change::AddCheck { owner, check, output } => self.add_check(owner, check, output),
            Change::RemoveCheck { check_id } => self.remove_check(&check_id),
            Change::DeregisterNode { node } => self.deregister_node(&node),
            Change::All(changes) => self.apply_all(changes),
        }
    }

    fn register(&mut self, mut instance: Instance, replace_existing_checks: bool) -> Result<Effect, RegistryError> {
        let key = id_key(&instance.id);
        let old = self.entries.get(key.as_str());
        if let Some(old) = old
            && let Source::Zone(path) = &old.instance.source
        {
            return Err(RegistryError::ZoneOwned { id: instance.id, path: path.clone() });
        }
        // Ids are DNS names, one per registry: the same id on two nodes cannot both answer.
        if let Some(old) = old
            && !same_node(old.instance.node.as_deref(), instance.node.as_deref())
        {
            let on = match &old.instance.node {
                Some(node) => format!("node {node:?}"),
                None => "this server's own node".into(),
            };
            return Err(RegistryError::IdOnOtherNode { id: instance.id, on });
        }
        for check in &instance.checks {
            if let Some(owner) = self.checks.get(&check.id)
                && *owner != key
            {
                return Err(RegistryError::CheckIdTaken { check: check.id.clone(), owner: owner.clone() });
            }
        }
        let now = now_ms();
        let mut health = Health::initial(&instance, now);
        if let Some(old) = old {
            // A check that is still declared the same way keeps its state: re-registering a
            // running service must not make it flap.
            for (spec, state) in instance.checks.iter().zip(health.checks.iter_mut()) {
                if let Some(i) = old.instance.checks.iter().position(|c| c.id == spec.id && c.kind == spec.kind) {
                    *state = old.health.checks[i].clone();
                }
            }
            if !replace_existing_checks {
                for (spec, state) in old.instance.checks.iter().zip(&old.health.checks) {
                    if !instance.checks.iter().any(|c| c.id == spec.id) {
                        instance.checks.push(spec.clone());
                        health.checks.push(state.clone());
                    }
                }
            }
            health.maintenance = old.health.maintenance.clone();
            if *old.instance == instance && *old.health == health {
                return Ok(Effect::None);
            }
        }
        let entry = Entry::with(instance, health);
        self.set_entry(key, Some(entry));
        Ok(Effect::Changed)
    }

    fn check_update(&mut self, check_id: &str, status: Status, output: String) -> Result<Effect, RegistryError> {
        let key =
            self.checks.get(check_id).cloned().ok_or_else(|| RegistryError::UnknownCheck(check_id.to_string()))?;
        let entry = &self.entries[key.as_str()];
        let i = entry.instance.checks.iter().position(|c| c.id == check_id).expect("indexed check exists");
        if let CheckKind::Ttl { ttl } = entry.instance.checks[i].kind {
            // Any update of a TTL check is a sign of life, whatever status it reports.
            self.timers.beat(check_id, ttl, tokio::time::Instant::now());
            self.beats.push((key.clone(), check_id.to_string()));
        }
        Ok(self.set_check(&key, i, status, output))
    }

    /// Sets check `i` of entry `key`; the effect says whether the catalog or only detail changed.
    fn set_check(&mut self, key: &str, i: usize, status: Status, output: String) -> Effect {
        let entry = &self.entries[key];
        let old = &entry.health.checks[i];
        let effect = if old.status != status {
            Effect::Changed
        } else if old.output != output {
            Effect::Detail
        } else {
            return Effect::None;
        };
        let mut health = (*entry.health).clone();
        let state = &mut health.checks[i];
        if state.status != status {
            // Every status change passes here, whoever decided it: a probe, a TTL expiry, an
            // explicit pass/warn/fail or update through the API.
            tracing::info!(check = %entry.instance.checks[i].id, instance = %entry.instance.id, from = state.status.as_str(), to = status.as_str(), output = %output, "check status changed");
            state.changed_at_ms = now_ms();
        }
        state.status = status;
        state.output = output;
        let entry = entry.with_health(health);
        self.set_entry(key.to_string(), Some(entry));
        effect
    }

    /// The key of an API-registered instance, or why it cannot be changed through the API.
    fn api_owned(&self, id: &str) -> Result<String, RegistryError> {
        let key = id_key(id);
        match self.entries.get(key.as_str()).filter(|e| !e.instance.is_node()).map(|e| &e.instance.source) {
            None => Err(RegistryError::UnknownInstance(id.to_string())),
            Some(Source::Zone(path)) => Err(RegistryError::ZoneOwned { id: id.to_string(), path: path.clone() }),
            Some(Source::Api) => Ok(key),
        }
    }

    /// The one way entries change: keeps the check index, the undo log and the dirty set right.
    fn set_entry(&mut self, key: String, new: Option<Entry>) {
        let shared = self.shared_key(&key);
        let old = match &new {
            Some(e) => self.entries.insert(shared.clone(), e.clone()),
            None => self.entries.remove(&*shared),
        };
        if let Some(old) = &old {
            for c in &old.instance.checks {
                self.checks.remove(&c.id);
                if !new.as_ref().is_some_and(|n| n.instance.checks.iter().any(|nc| nc.id == c.id)) {
                    self.timers.forget(&c.id);
                }
            }
        }
        if let Some(new) = &new {
            let now = tokio::time::Instant::now();
            let reapable = new.instance.source == Source::Api;
            for (c, state) in new.instance.checks.iter().zip(&new.health.checks) {
                self.checks.insert(c.id.clone(), key.clone());
                let is_new = !old.as_ref().is_some_and(|o| o.instance.checks.iter().any(|oc| oc.id == c.id));
                self.timers.observe(c, state, is_new, reapable, now);
            }
        }
        self.touched.keys.insert(shared);
        let api = |e: &Option<Entry>| e.as_ref().is_some_and(|e| e.instance.source == Source::Api);
        if api(&old) || api(&new) {
            self.dirty.insert(key.clone());
        }
        if let Some(log) = &mut self.undo {
            log.push(Undo::Entry(key, old));
        }
    }

    /// Readers see new addresses of a host name in the next snapshot; it is detail, like a
    /// check's output, so neither the store nor the catalog version is touched.
    fn set_resolved(&mut self, host: String, addrs: Vec<IpAddr>) -> Effect {
        let key = host.to_ascii_lowercase();
        if addrs.is_empty() {
            if !self.resolved.contains_key(&key) {
                return Effect::None;
            }
            Arc::make_mut(&mut self.resolved).remove(&key);
        } else {
            if self.resolved.get(&key).is_some_and(|old| **old == *addrs) {
                return Effect::None;
            }
            Arc::make_mut(&mut self.resolved).insert(key.clone(), addrs.into());
        }
        self.touched.hosts.insert(key);
        Effect::Detail
    }

    /// The state of one check, by check id.
    pub fn check(&self, check_id: &str) -> Option<(&Entry, usize)> {
        let entry = self.entries.get(self.checks.get(check_id)?.as_str())?;
        let i = entry.instance.checks.iter().position(|c| c.id == check_id)?;
        Some((entry, i))
    }
}
