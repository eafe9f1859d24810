//! The registry's mutable state, owned by exactly one writer. Every source (zone files, the API,
//! probes) describes what happened as a `Change`; `State::apply` decides whether it is allowed
//! and what it changes. Readers never see this type: they see `Snapshot`s built from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::model::{Instance, Source, Status};
use crate::zones::{ZoneError, ZoneFile};

/// Something a source wants the registry to know.
#[derive(Debug, Clone)]
pub enum Change {
    /// A zone file parsed and validated; replaces everything that file declared before.
    ZoneFile(ZoneFile),
    /// A zone file is gone; its instances go with it.
    ZoneFileRemoved(PathBuf),
    /// A zone file no longer parses; its last good version keeps serving.
    ZoneFileBroken { path: PathBuf, errors: Vec<ZoneError> },
}

/// Why a change was refused. A refused change alters nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Zone(ZoneError),
    #[error("the registry has stopped")]
    Stopped,
}

/// One registered instance and what the registry knows of its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub instance: Arc<Instance>,
    pub status: Status,
}

impl Entry {
    fn new(instance: Instance) -> Self {
        let status = initial_status(&instance);
        Entry { instance: Arc::new(instance), status }
    }
}

/// Returns the status an instance has before any check result: passing without checks,
/// otherwise the worst of its checks' initial statuses (critical unless registered otherwise).
pub fn initial_status(instance: &Instance) -> Status {
    instance.checks.iter().map(|c| c.initial.unwrap_or(Status::Critical)).max().unwrap_or(Status::Passing)
}

/// Ids are unique case-insensitively, because `<id>.instance.D` is a DNS name.
pub fn id_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

#[derive(Debug, Default)]
pub struct State {
    /// Keyed by `id_key`.
    pub(crate) entries: BTreeMap<String, Entry>,
    /// Which ids each zone file declared in its last accepted version.
    zone_files: BTreeMap<PathBuf, Vec<String>>,
    /// Current problems per zone file (parse errors, refused duplicates).
    pub(crate) zone_errors: BTreeMap<PathBuf, Vec<ZoneError>>,
    /// Bumped by the writer once per batch of changes that altered the catalog.
    pub(crate) version: u64,
}

impl State {
    pub fn new() -> Self {
        State { version: 1, ..State::default() }
    }

    /// Applies one change. Returns true if the catalog (what DNS or the API shows) changed.
    pub fn apply(&mut self, change: Change) -> Result<bool, RegistryError> {
        match change {
            Change::ZoneFile(file) => self.apply_zone_file(file),
            Change::ZoneFileRemoved(path) => {
                self.zone_errors.remove(&path);
                let ids = self.zone_files.remove(&path).unwrap_or_default();
                let changed = !ids.is_empty();
                for id in ids {
                    self.entries.remove(&id);
                }
                Ok(changed)
            }
            Change::ZoneFileBroken { path, errors } => {
                self.zone_errors.insert(path, errors);
                Ok(false)
            }
        }
    }

    /// Replaces a zone file's instances, unless one of its ids belongs to another source: then
    /// the whole file is refused (its previous version keeps serving) and the error points at
    /// the id.
    fn apply_zone_file(&mut self, file: ZoneFile) -> Result<bool, RegistryError> {
        let source = Source::Zone(file.path.clone());
        for parsed in &file.instances {
            let key = id_key(&parsed.instance.id);
            if let Some(other) = self.entries.get(&key)
                && other.instance.source != source
            {
                let owner = match &other.instance.source {
                    Source::Zone(p) => format!("zone file {}", p.display()),
                    Source::Api => "an API registration".to_string(),
                };
                let error = ZoneError {
                    path: file.path.clone(),
                    line: parsed.line,
                    col: parsed.col,
                    message: format!(
                        "id {:?} is already taken by {owner}; the file is ignored until the id is unique",
                        parsed.instance.id
                    ),
                };
                self.zone_errors.insert(file.path.clone(), vec![error.clone()]);
                return Err(RegistryError::Zone(error));
            }
        }
        self.zone_errors.remove(&file.path);

        let old_ids = self.zone_files.remove(&file.path).unwrap_or_default();
        let mut old: BTreeMap<String, Entry> =
            old_ids.into_iter().filter_map(|id| self.entries.remove_entry(&id)).collect();
        let mut changed = false;
        let mut ids = Vec::with_capacity(file.instances.len());
        for parsed in file.instances {
            let key = id_key(&parsed.instance.id);
            // An unchanged declaration keeps its health; anything else starts afresh.
            let entry = match old.remove(&key) {
                Some(prev) if *prev.instance == parsed.instance => prev,
                _ => {
                    changed = true;
                    Entry::new(parsed.instance)
                }
            };
            self.entries.insert(key.clone(), entry);
            ids.push(key);
        }
        changed |= !old.is_empty();
        self.zone_files.insert(file.path, ids);
        Ok(changed)
    }

    /// Number of registered instances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every zone file problem, in file order.
    pub fn zone_errors(&self) -> impl Iterator<Item = &ZoneError> {
        self.zone_errors.values().flatten()
    }
}
