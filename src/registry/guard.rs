//! Changes made on someone's behalf (the API's callers, `Registry::apply_as`): which services a
//! change touches, looked up in the state the change meets, and whether the caller's rules allow
//! writing every one of them. Decided by the writer, change by change, so that nothing can slip
//! in between the check and the change (an id re-registered under another service meanwhile).

use super::change::{Change, CheckOwner, RegistryError};
use super::state::State;
use crate::acl::{Policy, Rules};
use crate::model::id_key;

/// What a change is about, for audit lines: the service and the instance id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub service: String,
    pub id: String,
}

/// The change's subject, and whether `rules` allow it: writing the service of the instance it
/// names as it is now, and for a registration also the service it is registered under (taking
/// over another service's id needs both). Whatever changes a node (its record, its checks, the
/// node itself going) gates every service on it that anyone may run there, so it needs write on
/// every service: the management token, or a token whose empty prefix writes and no rule takes
/// that away. Registering a service on an external node as it already is needs the service only.
pub(super) fn permit(state: &State, change: &Change, rules: &Rules) -> (Option<Subject>, Result<(), RegistryError>) {
    let (subject, needs) = needs(state, change);
    let every = if needs.iter().any(Option::is_none) { rules.check_all(Policy::Write) } else { Ok(()) };
    let mut services: Vec<String> = needs.into_iter().flatten().collect();
    services.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let allowed = every
        .and_then(|()| services.iter().try_for_each(|s| rules.check(s, Policy::Write)))
        .map_err(RegistryError::Denied);
    (subject, allowed)
}

/// What a change is about and the services it writes (`None`: every service).
fn needs(state: &State, change: &Change) -> (Option<Subject>, Vec<Option<String>>) {
    let current =
        |id: &str| state.entry(&id_key(id)).filter(|e| !e.instance.is_node()).map(|e| e.instance.service.clone());
    let of_check = |check_id: &str| match state.check(check_id) {
        Some((entry, _)) if entry.instance.is_node() => (Some(node_subject(&entry.instance)), vec![None]),
        Some((entry, _)) => {
            let (service, id) = (entry.instance.service.clone(), entry.instance.id.clone());
            (Some(Subject { service: service.clone(), id }), vec![Some(service)])
        }
        None => (None, Vec::new()),
    };
    match change {
        Change::Register { instance, .. } if instance.is_node() => {
            let unchanged = state
                .entry(&instance.id)
                .is_some_and(|e| e.instance.address == instance.address && e.instance.meta == instance.meta);
            (Some(node_subject(instance)), if unchanged { Vec::new() } else { vec![None] })
        }
        Change::Register { instance, .. } => {
            let subject = Subject { service: instance.service.clone(), id: instance.id.clone() };
            (
                Some(subject),
                [Some(instance.service.clone()), current(&instance.id)].into_iter().flatten().map(Some).collect(),
            )
        }
        Change::Deregister { id } | Change::Maintenance { id, .. } => {
            let service = current(id);
            (
                Some(Subject { service: service.clone().unwrap_or_default(), id: id.clone() }),
                vec![service].into_iter().flatten().map(Some).collect(),
            )
        }
        Change::CheckUpdate { check_id, .. } | Change::RemoveCheck { check_id } => of_check(check_id),
        Change::AddCheck { owner: CheckOwner::Instance(id), check, .. } => {
            let service = current(id);
            (
                Some(Subject { service: service.clone().unwrap_or_default(), id: check.id.clone() }),
                service.into_iter().map(Some).collect(),
            )
        }
        Change::AddCheck { owner: CheckOwner::Node(node), check, .. } => (
            Some(Subject { service: String::new(), id: format!("{}/{}", node.as_deref().unwrap_or(""), check.id) }),
            vec![None],
        ),
        Change::DeregisterNode { node } => (Some(Subject { service: String::new(), id: node.clone() }), vec![None]),
        Change::All(changes) => {
            let mut subject: Option<Subject> = None;
            let mut all = Vec::new();
            for c in changes {
                let (s, n) = needs(state, c);
                // The service a catalog registration is about names it better than its node.
                if subject.as_ref().is_none_or(|s| s.service.is_empty()) && s.is_some() {
                    subject = s;
                }
                all.extend(n);
            }
            (subject, all)
        }
        // Sources inside the server; the API never sends these.
        _ => (None, Vec::new()),
    }
}

/// A node's record as an audit line names it: no service, the node's name as the id.
fn node_subject(record: &crate::model::Instance) -> Subject {
    Subject { service: String::new(), id: record.node.as_deref().unwrap_or_default().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;
    use crate::registry::tests::{instance, ttl_check};

    #[test]
    fn a_change_is_checked_against_every_service_it_touches_as_the_state_has_it() {
        let mut state = State::new();
        let web = instance("web-1", vec![ttl_check("service:web-1", std::time::Duration::from_secs(30))]);
        state.apply(Change::Register { instance: web, replace_existing_checks: false }).unwrap();
        let mut pay = instance("pay-1", vec![]);
        pay.service = "pay-api".into();
        let rules = Rules::new([("pay-".to_string(), Policy::Write), (String::new(), Policy::Read)]);
        let update = |check: &str| Change::CheckUpdate {
            check_id: check.into(),
            status: Status::Passing,
            output: String::new(),
        };
        let mut hijack = pay.clone();
        hijack.id = "WEB-1".into();
        // (change, subject service and id, the service refused if any)
        type Case = (Change, Option<(&'static str, &'static str)>, Option<&'static str>);
        let cases: Vec<Case> = vec![
            (Change::Register { instance: pay, replace_existing_checks: false }, Some(("pay-api", "pay-1")), None),
            // Taking over another service's id needs that service too.
            (
                Change::Register { instance: hijack, replace_existing_checks: false },
                Some(("pay-api", "WEB-1")),
                Some("web"),
            ),
            (Change::Deregister { id: "web-1".into() }, Some(("web", "web-1")), Some("web")),
            (Change::Maintenance { id: "Web-1".into(), reason: None }, Some(("web", "Web-1")), Some("web")),
            // Unknown ids touch nothing: the registry's 404 follows.
            (update("service:web-1"), Some(("web", "web-1")), Some("web")),
            (Change::Deregister { id: "nope".into() }, Some(("", "nope")), None),
            (update("nope"), None, None),
        ];
        for (change, subject, refused) in cases {
            let (got, allowed) = permit(&state, &change, &rules);
            let got = got.as_ref().map(|s| (s.service.as_str(), s.id.as_str()));
            assert_eq!(got, subject, "{change:?}");
            let refused_service = allowed.err().map(|e| match e {
                RegistryError::Denied(d) => d.service.unwrap(),
                e => panic!("{e}"),
            });
            assert_eq!(refused_service.as_deref(), refused, "{change:?}");
        }
    }

    #[test]
    fn whatever_changes_a_node_needs_every_service_and_a_service_on_it_its_own() {
        use crate::model::{Address, Instance, Meta};
        let mut state = State::new();
        let record =
            |ip: [u8; 4]| Instance::node_record(Some("db-host"), Address::Ip(ip.into()), Meta::default(), vec![]);
        state.apply(Change::Register { instance: record([10, 0, 0, 9]), replace_existing_checks: false }).unwrap();
        let team = Rules::new([("pay-".to_string(), Policy::Write), (String::new(), Policy::Read)]);
        let admin = Rules::everything(Policy::Write);
        let mut pay = instance("pay-1", vec![]);
        (pay.service, pay.node) = ("pay-api".into(), Some("db-host".into()));
        let same_node = Change::Register { instance: record([10, 0, 0, 9]), replace_existing_checks: false };
        let moved = Change::Register { instance: record([10, 0, 0, 8]), replace_existing_checks: false };
        let service = Change::Register { instance: pay, replace_existing_checks: false };
        let check = || crate::registry::tests::ttl_check("c", std::time::Duration::from_secs(9));
        // (change, allowed for the team)
        let cases = [
            (Change::All(vec![same_node.clone(), service.clone()]), true),
            (Change::All(vec![moved, service.clone()]), false),
            (Change::AddCheck { owner: CheckOwner::Node(None), check: check(), output: String::new() }, false),
            (
                Change::AddCheck {
                    owner: CheckOwner::Node(Some("db-host".into())),
                    check: check(),
                    output: String::new(),
                },
                false,
            ),
            (
                Change::AddCheck { owner: CheckOwner::Instance("pay-1".into()), check: check(), output: String::new() },
                true,
            ),
            (Change::DeregisterNode { node: "db-host".into() }, false),
        ];
        for (change, allowed) in cases {
            let (_, got) = permit(&state, &change, &team);
            match got {
                Ok(()) => assert!(allowed, "{change:?}"),
                Err(RegistryError::Denied(d)) => assert!(!allowed && d.service.is_none(), "{change:?}: {d}"),
                Err(e) => panic!("{e}"),
            }
            assert!(permit(&state, &change, &admin).1.is_ok(), "the management token may: {change:?}");
        }
    }
}
