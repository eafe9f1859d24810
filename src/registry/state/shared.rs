//! The state's side of a shared store (cluster mode): which revision of each key this replica
//! knows, so that its writes expect what it has seen (compare-and-swap) and news older than what
//! it knows is ignored; registrations other replicas wrote; a whole reload after a gap.
//!
//! A deleted key's revision is remembered (a tombstone) only until the watch has delivered past
//! it: the watch delivers in revision order, so after that no older put of the key can arrive
//! to resurrect it, and a key with no entry expects to be absent (modification revision 0),
//! which is what the tombstone said. Without this, every id ever deleted stayed in memory.

use std::collections::BTreeSet;

use super::{Entry, State};
use crate::model::{Source, Stored, id_key};
use crate::registry::Effect;

#[derive(Debug, Clone, Copy)]
pub(super) struct Revisions {
    /// The newest revision at which this replica knows the key's value; older news is stale.
    pub(super) known: u64,
    /// The key's modification revision at `known` (0 = absent): what a write must expect.
    pub(super) modified: u64,
}

impl State {
    /// Restores what a shared store held at `revision`, each record with the revision it was
    /// last modified at.
    pub fn restore_shared(&mut self, revision: u64, records: Vec<(Stored, u64)>) {
        for (s, modified) in &records {
            self.revisions.insert(id_key(&s.instance.id).into(), Revisions { known: revision, modified: *modified });
        }
        self.store_revision = revision;
        self.watched = revision;
        self.restore(revision, records.into_iter().map(|(s, _)| s));
    }

    /// For a shared store: the modification revision each key of `ops` is expected to have.
    pub fn expectations(&self, ops: &[(String, Option<Stored>)]) -> Vec<u64> {
        ops.iter().map(|(key, _)| self.revisions.get(key.as_str()).map_or(0, |r| r.modified)).collect()
    }

    /// A shared store accepted `ops`, each at its revision in `revisions` (empty: all at
    /// `revision`).
    pub fn committed(&mut self, ops: &[(String, Option<Stored>)], revisions: &[u64], revision: u64) {
        for (i, (key, stored)) in ops.iter().enumerate() {
            let at = revisions.get(i).copied().unwrap_or(revision);
            let modified = if stored.is_some() { at } else { 0 };
            self.know(key.clone(), Revisions { known: at, modified });
        }
        self.store_revision = self.store_revision.max(revision);
    }

    /// TTL heartbeats received in this batch, as (instance key, check id).
    pub fn take_beats(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.beats)
    }

    /// Applies a registration as the shared store holds it, unless this replica already knows
    /// a newer state of the key.
    pub(super) fn remote(&mut self, key: String, stored: Option<Stored>, modified: u64, revision: u64) -> Effect {
        self.store_revision = self.store_revision.max(revision);
        if self.revisions.get(key.as_str()).is_some_and(|r| r.known >= revision) {
            return Effect::None;
        }
        self.know(key.clone(), Revisions { known: revision, modified });
        let current = self.entries.get(key.as_str());
        if let Some(Source::Zone(path)) = current.map(|e| &e.instance.source) {
            tracing::warn!(id = %key, file = %path.display(), "another replica registered an id that a zone file here declares; the zone file wins on this replica (ids must be unique across replicas)");
            return Effect::None;
        }
        let effect = match stored {
            None if current.is_none() => return Effect::None,
            None => {
                self.set_entry(key.clone(), None);
                Effect::Changed
            }
            Some(s) => {
                if current.is_some_and(|e| *e.instance == s.instance && *e.health == s.health) {
                    return Effect::None;
                }
                let entry = Entry::with(s.instance, s.health);
                self.set_entry(key.clone(), Some(entry));
                Effect::Changed
            }
        };
        // It is the store's own value: nothing to write back.
        self.dirty.remove(&key);
        effect
    }

    /// Records what this replica knows of `key`; a deletion is remembered until the watch
    /// passes it.
    fn know(&mut self, key: String, revisions: Revisions) {
        let key = self.shared_key(&key);
        if revisions.modified == 0 {
            self.tombstones.push_back((revisions.known, key.clone()));
        }
        self.revisions.insert(key, revisions);
    }

    /// The watch has delivered everything up to `revision`: forgets the deleted keys known at
    /// or before it (unless written again since).
    pub(super) fn watched_up_to(&mut self, revision: u64) {
        self.watched = self.watched.max(revision);
        while let Some((known, _)) = self.tombstones.front() {
            if *known > self.watched {
                break;
            }
            let (known, key) = self.tombstones.pop_front().expect("a front");
            if self.revisions.get(&key).is_some_and(|r| r.modified == 0 && r.known == known) {
                self.revisions.remove(&key);
            }
        }
    }

    /// How many keys this replica remembers revisions of (present ones and tombstones).
    pub fn remembered(&self) -> usize {
        self.revisions.len()
    }

    /// Replaces every API registration with what the shared store holds at `revision`.
    pub(super) fn reload(&mut self, records: Vec<(Stored, u64)>, revision: u64) -> Effect {
        let keep: BTreeSet<String> = records.iter().map(|(s, _)| id_key(&s.instance.id)).collect();
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(k, e)| e.instance.source == Source::Api && !keep.contains(&***k))
            .map(|(k, _)| k.to_string())
            .collect();
        let mut effect = Effect::None;
        for key in gone {
            effect = effect.max(self.remote(key, None, 0, revision));
        }
        for (s, modified) in records {
            effect = effect.max(self.remote(id_key(&s.instance.id), Some(s), modified, revision));
        }
        // The watch goes on from the revision after this read.
        self.watched_up_to(revision);
        effect
    }
}
