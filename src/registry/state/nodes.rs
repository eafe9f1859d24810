//! Checks registered on their own and external nodes: a check joins an instance or a node
//! record (`Instance::is_node`), a node goes with everything registered on it, and a group of
//! changes (`PUT /v1/catalog/register`) lands whole or not at all.

use super::{Entry, State, Undo};
use crate::model::{Address, CheckKind, CheckSpec, Health, Instance, Meta, Source, node_key, now_ms};
use crate::registry::change::{Change, CheckOwner, Effect, RegistryError};

impl State {
    /// Adds `check` to its owner, replacing a check of the same id there (whose state it keeps
    /// when it probes the same way). This server's own node gets a record with its first check.
    pub(super) fn add_check(
        &mut self,
        owner: CheckOwner,
        check: CheckSpec,
        output: String,
    ) -> Result<Effect, RegistryError> {
        let key = match &owner {
            CheckOwner::Instance(id) => self.api_owned(id)?,
            CheckOwner::Node(name) => {
                let key = node_key(name.as_deref());
                if let (None, Some(name)) = (self.entries.get(key.as_str()), name) {
                    return Err(RegistryError::UnknownNode(name.clone()));
                }
                key
            }
        };
        // Before anything changes: a refused check leaves no record behind.
        if let Some(other) = self.checks.get(&check.id)
            && *other != key
        {
            return Err(RegistryError::CheckIdTaken { check: check.id.clone(), owner: other.clone() });
        }
        if !self.entries.contains_key(key.as_str()) {
            // This server's node, at its first check. Its address is the API's to show, not stored.
            let record = Instance::node_record(None, Address::Ip([0, 0, 0, 0].into()), Meta::default(), Vec::new());
            self.set_entry(key.clone(), Some(Entry::new(record)));
        }
        let entry = &self.entries[key.as_str()];
        let mut instance = (*entry.instance).clone();
        let mut health = (*entry.health).clone();
        let fresh = Health::initial(&Instance { checks: vec![check.clone()], ..instance.clone() }, now_ms());
        let mut state = fresh.checks.into_iter().next().expect("one check, one state");
        let external = check.kind == CheckKind::External;
        if external {
            state.output = output;
        }
        let mut effect = Effect::Changed;
        match instance.checks.iter().position(|c| c.id == check.id) {
            Some(i) if instance.checks[i] == check && (!external || health.checks[i].output == state.output) => {
                return Ok(Effect::None);
            }
            // The same status again with new words: detail, as a probe's output is.
            Some(i) if instance.checks[i] == check => {
                health.checks[i].output = state.output;
                effect = Effect::Detail;
            }
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
        self.set_entry(key, Some(Entry::with(instance, health)));
        Ok(effect)
    }

    /// Takes a check away from its instance or node. A check of a zone-file instance belongs
    /// to its file.
    pub(super) fn remove_check(&mut self, check_id: &str) -> Result<Effect, RegistryError> {
        let key =
            self.checks.get(check_id).cloned().ok_or_else(|| RegistryError::UnknownCheck(check_id.to_string()))?;
        let entry = &self.entries[key.as_str()];
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
            .then(|| Entry::with(instance, health));
        self.set_entry(key, new);
        Ok(Effect::Changed)
    }

    /// Removes an external node's record and every instance registered on it.
    pub(super) fn deregister_node(&mut self, node: &str) -> Result<Effect, RegistryError> {
        let record = node_key(Some(node));
        if !self.entries.contains_key(record.as_str()) {
            return Err(RegistryError::UnknownNode(node.to_string()));
        }
        let on_it: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.instance.node.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(node)))
            .map(|(k, _)| k.to_string())
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
        self.entries.get(node_key(instance.node.as_deref()).as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::Status;
    use crate::registry::tests::{instance, ttl_check};
    use crate::registry::{Defaults, Snapshot};

    fn on(node: Option<&str>, id: &str) -> Instance {
        Instance { node: node.map(Into::into), ..instance(id, vec![]) }
    }

    fn check(id: &str, initial: Status) -> CheckSpec {
        CheckSpec { initial: Some(initial), ..ttl_check(id, Duration::from_secs(60)) }
    }

    fn node(name: &str) -> Change {
        let record = Instance::node_record(Some(name), Address::Ip([10, 0, 0, 9].into()), Meta::default(), vec![]);
        Change::Register { instance: record, replace_existing_checks: false }
    }

    fn add(owner: CheckOwner, id: &str, status: Status) -> Change {
        Change::AddCheck { owner, check: check(id, status), output: String::new() }
    }

    /// Status of each instance as a snapshot shows it, in id order.
    fn statuses(state: &State) -> Vec<(String, Status)> {
        let snap = Snapshot::build(state, &Defaults::default());
        snap.instances().map(|v| (v.instance.id.clone(), v.status)).collect()
    }

    #[test]
    fn checks_join_instances_and_nodes_and_a_nodes_checks_gate_everything_on_it() {
        use CheckOwner::{Instance as Of, Node};
        use Status::{Critical, Passing, Warning};
        let mut state = State::new();
        state.begin();
        let reg = |i| Change::Register { instance: i, replace_existing_checks: false };
        // (change, its result as text, then every instance's status)
        type Case = (Change, &'static str, Vec<(&'static str, Status)>);
        let cases: Vec<Case> = vec![
            (reg(on(None, "web-1")), "Ok(Changed)", vec![("web-1", Passing)]),
            (node("db-host"), "Ok(Changed)", vec![("web-1", Passing)]),
            (reg(on(Some("db-host"), "pg-1")), "Ok(Changed)", vec![("pg-1", Passing), ("web-1", Passing)]),
            (add(Of("web-1".into()), "w", Warning), "Ok(Changed)", vec![("pg-1", Passing), ("web-1", Warning)]),
            (add(Of("web-1".into()), "w", Warning), "Ok(None)", vec![("pg-1", Passing), ("web-1", Warning)]),
            (add(Node(None), "disk", Critical), "Ok(Changed)", vec![("pg-1", Passing), ("web-1", Critical)]),
            (
                add(Node(Some("db-host".into())), "db-host/up", Critical),
                "Ok(Changed)",
                vec![("pg-1", Critical), ("web-1", Critical)],
            ),
            (
                add(Node(Some("nope".into())), "x", Passing),
                "Err(UnknownNode(\"nope\"))",
                vec![("pg-1", Critical), ("web-1", Critical)],
            ),
            (
                add(Of("pg-1".into()), "disk", Passing),
                "Err(CheckIdTaken { check: \"disk\", owner: \"node:\" })",
                vec![("pg-1", Critical), ("web-1", Critical)],
            ),
            (
                Change::CheckUpdate { check_id: "disk".into(), status: Passing, output: String::new() },
                "Ok(Changed)",
                vec![("pg-1", Critical), ("web-1", Warning)],
            ),
            (
                Change::RemoveCheck { check_id: "db-host/up".into() },
                "Ok(Changed)",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            (
                Change::RemoveCheck { check_id: "db-host/up".into() },
                "Err(UnknownCheck(\"db-host/up\"))",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            // One id, one node: pg-1 cannot be registered here too.
            (
                reg(on(None, "PG-1")),
                "Err(IdOnOtherNode { id: \"PG-1\", on: \"node \\\"db-host\\\"\" })",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            // All or nothing: the new instance is undone when the check after it is refused.
            (
                Change::All(vec![reg(on(Some("db-host"), "pg-2")), add(Of("pg-2".into()), "w", Passing)]),
                "Err(CheckIdTaken { check: \"w\", owner: \"web-1\" })",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            // A node record is nobody's instance.
            (
                Change::Deregister { id: "node:db-host".into() },
                "Err(UnknownInstance(\"node:db-host\"))",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            (
                Change::RemoveCheck { check_id: "disk".into() },
                "Ok(Changed)",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            // Refused before this server's node gets a record for it.
            (
                add(Node(None), "w", Passing),
                "Err(CheckIdTaken { check: \"w\", owner: \"web-1\" })",
                vec![("pg-1", Passing), ("web-1", Warning)],
            ),
            (Change::DeregisterNode { node: "DB-HOST".into() }, "Ok(Changed)", vec![("web-1", Warning)]),
            (
                Change::DeregisterNode { node: "db-host".into() },
                "Err(UnknownNode(\"db-host\"))",
                vec![("web-1", Warning)],
            ),
        ];
        for (i, (change, result, want)) in cases.into_iter().enumerate() {
            let shown = format!("{change:?}");
            assert_eq!(format!("{:?}", state.apply(change)), result, "case {i}: {shown}");
            let want: Vec<(String, Status)> = want.into_iter().map(|(id, s)| (id.to_string(), s)).collect();
            assert_eq!(statuses(&state), want, "case {i}: {shown}");
        }
        // The last check of this server's node took its record with it (and the refused one
        // made none); the other node's went.
        assert!(state.entry("node:").is_none() && state.entry("node:db-host").is_none());
        // And the whole batch rolls back to nothing.
        state.rollback();
        assert!(state.is_empty());
    }
}
