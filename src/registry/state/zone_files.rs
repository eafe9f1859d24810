//! The state's side of zone files: a file's instances replace its previous ones as a whole, or
//! not at all when one of its ids belongs to another source; its problems are kept per file for
//! the status page and `/metrics`, and undone with the batch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Entry, State, Undo};
use crate::model::{Source, ZoneError, ZoneFile, id_key};
use crate::registry::{Effect, RegistryError};

impl State {
    /// Replaces a zone file's instances, unless one of its ids belongs to another source: then
    /// the whole file is refused (its previous version keeps serving) and the error points at
    /// the id.
    pub(super) fn apply_zone_file(&mut self, file: ZoneFile) -> Result<Effect, RegistryError> {
        let source = Source::Zone(file.path.clone());
        for parsed in &file.instances {
            let key = id_key(&parsed.instance.id);
            let owner = match self.entries.get(key.as_str()) {
                Some(other) if other.instance.source != source => match &other.instance.source {
                    Source::Zone(p) => Some(format!("zone file {}", p.display())),
                    Source::Api => Some("an API registration".to_string()),
                },
                _ => None,
            };
            let owner = owner.or_else(|| {
                // A check id is claimed by another instance (custom API check ids can collide).
                parsed.instance.checks.iter().find_map(|c| {
                    self.checks
                        .get(&c.id)
                        .filter(|o| **o != key)
                        .map(|o| format!("check id {:?} of instance {o}", c.id))
                })
            });
            if let Some(owner) = owner {
                let error = ZoneError {
                    path: file.path.clone(),
                    line: parsed.line,
                    col: parsed.col,
                    message: format!(
                        "id {:?} is already taken by {owner}; the file is ignored until the id is unique",
                        parsed.instance.id
                    ),
                };
                self.set_zone_errors(&file.path, Some(vec![error.clone()]));
                return Err(RegistryError::Zone(error));
            }
        }
        self.set_zone_errors(&file.path, None);

        let old_ids = self.set_zone_file(&file.path, None).unwrap_or_default();
        let mut old: BTreeMap<String, Entry> =
            old_ids.into_iter().filter_map(|k| self.entries.get(k.as_str()).cloned().map(|e| (k, e))).collect();
        let mut effect = Effect::None;
        let mut ids = Vec::with_capacity(file.instances.len());
        for parsed in file.instances {
            let key = id_key(&parsed.instance.id);
            match old.remove(&key) {
                // An unchanged declaration keeps its health.
                Some(prev) if *prev.instance == parsed.instance => {}
                _ => {
                    effect = Effect::Changed;
                    self.set_entry(key.clone(), Some(Entry::new(parsed.instance)));
                }
            }
            ids.push(key);
        }
        for (key, _) in old {
            effect = Effect::Changed;
            self.set_entry(key, None);
        }
        self.set_zone_file(&file.path, Some(ids));
        Ok(effect)
    }

    pub(super) fn set_zone_file(&mut self, path: &PathBuf, ids: Option<Vec<String>>) -> Option<Vec<String>> {
        let old = match ids {
            Some(ids) => self.zone_files.insert(path.clone(), ids),
            None => self.zone_files.remove(path),
        };
        if let Some(log) = &mut self.undo {
            log.push(Undo::ZoneFile(path.clone(), old.clone()));
        }
        old
    }

    pub(super) fn set_zone_errors(&mut self, path: &PathBuf, errors: Option<Vec<ZoneError>>) {
        if self.zone_errors.get(path) != errors.as_ref() {
            self.errors_changed = true;
        }
        let old = match errors {
            Some(e) => self.zone_errors.insert(path.clone(), e),
            None => self.zone_errors.remove(path),
        };
        if let Some(log) = &mut self.undo {
            log.push(Undo::ZoneErrors(path.clone(), old));
        }
    }
}

/// Puts `old` back under `key` (or nothing, if there was nothing).
pub(super) fn restore<V>(map: &mut BTreeMap<PathBuf, V>, key: PathBuf, old: Option<V>) {
    match old {
        Some(v) => {
            map.insert(key, v);
        }
        None => {
            map.remove(&key);
        }
    }
}
