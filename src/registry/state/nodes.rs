//! Checks registered on their own and external nodes: a check joins an instance or a node
//! record (`Instance::is_node`), a node goes with everything registered on it, and a group of
//! changes (`PUT /v1/catalog/register`) lands whole or not at all.

use std::sync::Arc;

use super::{Entry, State, Undo};
use crate::model::{Address, CheckKind, CheckSpec, Health, Instance, Meta, Source, node_key, now_ms};
use crate::registry::change::{Change, CheckOwner, Effect, RegistryError};

impl State {
    /// Adds `check` to its owner, replacing a check of the same id there (whose state it keeps
    /// when it probes the same way). This server's own node gets a record with its first check.
    pub(super) fn add_check(&mut self, owner: CheckOwner, check: CheckSpec) -> Result<Effect, RegistryError> {
        let key = match &owner {
            CheckOwner::Instance(id) => self.api_owned(id)?,
            CheckOwner::Node(name) => {
                let key = node_key(name.as_deref());
                match (self.entries.get(&key), name) {
                    (Some(_), _) => {}
                    (None, None) => {
                        // The address of this server's node is the API's to show, not stored.
                        let record =
                            Instance::node_record(None, Address::Ip([0, 0, 0, 0].into()), Meta::default(), Vec::new());
                        self.set_entry(key.clone(), Some(Entry::new(record)));
                    }
                    (None, Some(name)) => return Err(RegistryError::UnknownNode(name.clone())),
                }
                key
            }
        };
        if let Some(other) = self.checks.get(&check.id)
            && *other != key
        {
            return Err(RegistryError::CheckIdTaken { check: check.id.clone(), owner: other.clone() });
        }
        let entry = &self.entries[&key];
        let mut instance = (*entry.instance).clone();
        let mut health = (*entry.health).clone();
        let fresh = Health::initial(&Instance { checks: vec![check.clone()], ..instance.clone() }, now_ms());
        let state = fresh.checks.into_iter().next().expect("one check, one state");
        match instance.checks.iter().position(|c| c.id == check.id) {
            Some(i) if instance.checks[i] == check => return Ok(Effect::None),
            Some(i) => {
                // An external check's registration carries its status: the new one holds.
                if instance.checks[i].kind != check.kind || check.kind == CheckKind::External {
                    health.checks[i] = state;
                }
                instance.checks[i] = check;
            }
            None => {
                instance.checks.push(check);
                health.checks.push(state);
            }
        }
        self.set_entry(key, Some(Entry { instance: Arc::new(instance), health: Arc::new(health) }));
        Ok(Effect::Changed)
    }

    /// Takes a check away from its instance or node. A check of a zone-file instance belongs
    /// to its file.
    pub(super) fn remove_check(&mut self, check_id: &str) -> Result<Effect, RegistryError> {
        let key =
            self.checks.get(check_id).cloned().ok_or_else(|| RegistryError::UnknownCheck(check_id.to_string()))?;
        let entry = &self.entries[&key];
        if let Source::Zone(path) = &entry.instance.source {
            return Err(RegistryError::ZoneOwned { id: entry.instance.id.clone(), path: path.clone() });
        }
        let i = entry.instance.checks.iter().position(|c| c.id == check_id).expect("indexed check exists");
        let mut instance = (*entry.instance).clone();
        let mut health = (*entry.health).clone();
        instance.checks.remove(i);
        health.checks.remove(i);
        // This server's node record holds nothing but its checks.
        let new = (!(instance.is_node() && instance.node.is_none() && instance.checks.is_empty()))
            .then(|| Entry { instance: Arc::new(instance), health: Arc::new(health) });
        self.set_entry(key, new);
        Ok(Effect::Changed)
    }

    /// Removes an external node's record and every instance registered on it.
    pub(super) fn deregister_node(&mut self, node: &str) -> Result<Effect, RegistryError> {
        let record = node_key(Some(node));
        if !self.entries.contains_key(&record) {
            return Err(RegistryError::UnknownNode(node.to_string()));
        }
        let on_it: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.instance.node.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(node)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in on_it {
            self.set_entry(key, None);
        }
        Ok(Effect::Changed)
    }

    /// Applies `changes` in order; if one is refused, those before it are undone and the
    /// refusal is the answer.
    pub(super) fn apply_all(&mut self, changes: Vec<Change>) -> Result<Effect, RegistryError> {
        let mark = self.undo.as_ref().map(Vec::len);
        let mut effect = Effect::None;
        for change in changes {
            match self.apply(change) {
                Ok(e) => effect = effect.max(e),
                Err(e) => {
                    self.undo_to(mark);
                    return Err(e);
                }
            }
        }
        Ok(effect)
    }

    /// Puts back what changed since the undo log was `mark` long. Outside a batch there is no
    /// log, and nothing to undo with: only tests apply changes that way.
    fn undo_to(&mut self, mark: Option<usize>) {
        let (Some(mark), Some(log)) = (mark, self.undo.as_mut()) else { return };
        let tail = log.split_off(mark);
        for undo in tail.into_iter().rev() {
            if let Undo::Entry(key, old) = undo {
                self.set_entry(key, old);
            }
        }
        // Restoring logged itself; the batch's own rollback may still need what came before.
        if let Some(log) = self.undo.as_mut() {
            log.truncate(mark);
        }
    }

    /// The node an entry is on, for gating: its node record, if there is one.
    pub fn node_of(&self, instance: &Instance) -> Option<&Entry> {
        self.entries.get(&node_key(instance.node.as_deref()))
    }
}
