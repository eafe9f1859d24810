//! Table-driven tests of `State::apply`: each case a sequence of changes, what each one must
//! return, and what the state holds afterwards. (The shared-store side is in `registry/tests.rs`.)

use std::time::Duration;

use super::*;
use crate::model::{CheckSpec, ParsedInstance, ZoneFile};

fn instance(id: &str, port: u16, checks: Vec<CheckSpec>, source: Source) -> Instance {
    Instance { port, source, ..crate::registry::tests::instance(id, checks) }
}

fn ttl(check_id: &str, initial: Status) -> CheckSpec {
    CheckSpec {
        id: check_id.into(),
        name: check_id.into(),
        kind: CheckKind::Ttl { ttl: Duration::from_secs(60) },
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        rise: None,
        fall: None,
        deregister_after: None,
        initial: Some(initial),
    }
}

fn register(id: &str, port: u16, checks: Vec<CheckSpec>) -> Change {
    Change::Register { instance: instance(id, port, checks, Source::Api), replace_existing_checks: false }
}

fn zone_file(path: &str, ids: &[&str]) -> Change {
    let instances = ids
        .iter()
        .map(|id| ParsedInstance { instance: instance(id, 80, vec![], Source::Zone(path.into())), line: 4, col: 6 })
        .collect();
    Change::ZoneFile(ZoneFile { path: path.into(), instances })
}

fn update(check_id: &str, status: Status, output: &str) -> Change {
    Change::CheckUpdate { check_id: check_id.into(), status, output: output.into() }
}

fn maintenance(id: &str, on: bool) -> Change {
    Change::Maintenance { id: id.into(), reason: on.then(|| "deploy".to_string()) }
}

fn resolved(host: &str, addrs: &[&str]) -> Change {
    Change::Resolved { host: host.into(), addrs: addrs.iter().map(|a| a.parse().unwrap()).collect() }
}

/// What a step must return: an effect, or an error whose text contains this.
#[derive(Debug)]
enum Want {
    Is(Effect),
    Refused(&'static str),
}

use Effect::{Changed, Detail, None as Nothing};
use Want::{Is, Refused};

/// Applies `steps` to a new state, checking each result; returns the state.
fn run(case: &str, steps: Vec<(Change, Want)>) -> State {
    let mut state = State::new();
    for (i, (change, want)) in steps.into_iter().enumerate() {
        let got = state.apply(change);
        match (&got, &want) {
            (Ok(e), Is(w)) if e == w => {}
            (Err(e), Refused(w)) if e.to_string().contains(w) => {}
            _ => panic!("{case}, step {i}: got {got:?}, want {want:?}"),
        }
    }
    state
}

#[test]
fn every_change_says_what_it_did_or_why_it_was_refused() {
    let web1 = || register("web-1", 80, vec![]);
    let beat = || vec![ttl("beat", Status::Passing)];
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<(Change, Want)>)> = vec![
        ("a new registration", vec![(web1(), Is(Changed))]),
        ("the same registration again", vec![(web1(), Is(Changed)), (web1(), Is(Nothing))]),
        ("the id in another case is the same instance", vec![(web1(), Is(Changed)), (register("WEB-1", 80, vec![]), Is(Changed))]),
        ("a registration that moves the port", vec![(web1(), Is(Changed)), (register("web-1", 81, vec![]), Is(Changed))]),
        ("deregistering", vec![(web1(), Is(Changed)), (Change::Deregister { id: "web-1".into() }, Is(Changed))]),
        ("deregistering an unknown id", vec![(Change::Deregister { id: "nope".into() }, Refused("unknown service id \"nope\""))]),
        ("maintenance on, on again, off", vec![
            (web1(), Is(Changed)), (maintenance("web-1", true), Is(Changed)),
            (maintenance("web-1", true), Is(Nothing)), (maintenance("web-1", false), Is(Changed)),
        ]),
        ("maintenance of an unknown id", vec![(maintenance("nope", true), Refused("unknown service id"))]),
        ("check updates: same, new output, new status", vec![
            (register("web-1", 80, beat()), Is(Changed)),
            (update("beat", Status::Passing, ""), Is(Nothing)),
            (update("beat", Status::Passing, "ok"), Is(Detail)),
            (update("beat", Status::Critical, "ok"), Is(Changed)),
        ]),
        ("a check update of an unknown check", vec![(update("nope", Status::Passing, ""), Refused("unknown check id \"nope\""))]),
        ("a check id of another instance", vec![
            (register("web-1", 80, beat()), Is(Changed)),
            (register("web-2", 80, beat()), Refused("check id \"beat\" already belongs to instance \"web-1\"")),
        ]),
        ("a zone file, then the same again", vec![(zone_file("a.toml", &["z-1"]), Is(Changed)), (zone_file("a.toml", &["z-1"]), Is(Nothing))]),
        ("a zone file's new version", vec![(zone_file("a.toml", &["z-1"]), Is(Changed)), (zone_file("a.toml", &["z-2"]), Is(Changed))]),
        ("an API registration of a zone file's id", vec![
            (zone_file("a.toml", &["web-1"]), Is(Changed)),
            (web1(), Refused("id \"web-1\" is declared in zone file a.toml; change it there")),
            (Change::Deregister { id: "web-1".into() }, Refused("declared in zone file a.toml")),
        ]),
        ("a zone file claiming an API registration's id", vec![
            (web1(), Is(Changed)),
            (zone_file("a.toml", &["web-1"]), Refused("a.toml:4:6: id \"web-1\" is already taken by an API registration")),
        ]),
        ("a zone file claiming another file's id", vec![
            (zone_file("a.toml", &["z-1"]), Is(Changed)),
            (zone_file("b.toml", &["z-1"]), Refused("already taken by zone file a.toml")),
        ]),
        ("a zone file removed", vec![(zone_file("a.toml", &["z-1"]), Is(Changed)), (Change::ZoneFileRemoved("a.toml".into()), Is(Changed))]),
        ("an unknown zone file removed", vec![(Change::ZoneFileRemoved("a.toml".into()), Is(Nothing))]),
        ("a broken zone file", vec![
            (zone_file("a.toml", &["z-1"]), Is(Changed)),
            (Change::ZoneFileBroken { path: "a.toml".into(), errors: vec![] }, Is(Nothing)),
        ]),
        ("a host name's addresses: new, the same, forgotten, unknown", vec![
            (resolved("db.internal", &["10.0.0.9"]), Is(Detail)),
            (resolved("DB.internal", &["10.0.0.9"]), Is(Nothing)),
            (resolved("db.internal", &[]), Is(Detail)),
            (resolved("db.internal", &[]), Is(Nothing)),
        ]),
    ];
    for (case, steps) in cases {
        run(case, steps);
    }
}

/// What a case is called, its steps, the entry keys after them, and web-1's status (if it is
/// checked).
type Holds = (&'static str, Vec<(Change, Want)>, Vec<&'static str>, Option<Status>);

#[test]
fn what_the_state_holds_after_the_changes() {
    let api_keys = |s: &State| s.keys().map(str::to_string).collect::<Vec<_>>();
    let status = |s: &State, id: &str| s.entry(id).map(Entry::status);
    #[rustfmt::skip]
    let cases: Vec<Holds> = vec![
        ("ids are kept lowercase", vec![(register("Web-1", 80, vec![]), Is(Changed))], vec!["web-1"], Some(Status::Passing)),
        ("a check starts at its initial status", vec![(register("web-1", 80, vec![ttl("c", Status::Warning)]), Is(Changed))], vec!["web-1"], Some(Status::Warning)),
        ("maintenance wins", vec![
            (register("web-1", 80, vec![]), Is(Changed)), (maintenance("web-1", true), Is(Changed)),
        ], vec!["web-1"], Some(Status::Maintenance)),
        ("a refused zone file leaves the API registration", vec![
            (register("web-1", 81, vec![]), Is(Changed)),
            (zone_file("a.toml", &["web-1", "z-2"]), Refused("already taken")),
        ], vec!["web-1"], Some(Status::Passing)),
        ("a removed zone file takes its instances", vec![
            (zone_file("a.toml", &["z-1", "z-2"]), Is(Changed)), (register("web-1", 80, vec![]), Is(Changed)),
            (Change::ZoneFileRemoved("a.toml".into()), Is(Changed)),
        ], vec!["web-1"], Some(Status::Passing)),
        ("a broken zone file keeps serving its last good version", vec![
            (zone_file("a.toml", &["z-1"]), Is(Changed)),
            (Change::ZoneFileBroken { path: "a.toml".into(), errors: vec![] }, Is(Nothing)),
        ], vec!["z-1"], None),
    ];
    for (case, steps, keys, web1) in cases {
        let state = run(case, steps);
        assert_eq!(api_keys(&state), keys, "{case}");
        if web1.is_some() {
            assert_eq!(status(&state, "web-1"), web1, "{case}");
        }
    }
}

/// The checks declared again, `replace_existing_checks`, and the checks with their statuses after.
type Redeclared = (Vec<CheckSpec>, bool, Vec<(&'static str, Status)>);

#[test]
fn re_registering_keeps_the_state_of_checks_declared_the_same_way() {
    let c = |id: &str| ttl(id, Status::Critical);
    #[rustfmt::skip]
    let cases: [Redeclared; 4] = [
        (vec![c("a"), c("b")], false, vec![("a", Status::Passing), ("b", Status::Critical)]),
        (vec![c("b")], false, vec![("b", Status::Critical), ("a", Status::Passing)]),
        (vec![c("b")], true, vec![("b", Status::Critical)]),
        // Declared differently, a check starts afresh.
        (vec![CheckSpec { kind: CheckKind::Ttl { ttl: Duration::from_secs(5) }, ..c("a") }, c("b")], true, vec![("a", Status::Critical), ("b", Status::Critical)]),
    ];
    for (checks, replace, want) in cases {
        let mut state = State::new();
        state.apply(register("web-1", 80, vec![c("a"), c("b")])).unwrap();
        state.apply(update("a", Status::Passing, "up")).unwrap();
        let change = Change::Register {
            instance: instance("web-1", 80, checks.clone(), Source::Api),
            replace_existing_checks: replace,
        };
        state.apply(change).unwrap();
        let entry = state.entry("web-1").unwrap();
        let got: Vec<(&str, Status)> =
            entry.instance.checks.iter().zip(&entry.health.checks).map(|(c, h)| (c.id.as_str(), h.status)).collect();
        assert_eq!(got, want, "{:?}, replace {replace}", checks.iter().map(|c| &c.id).collect::<Vec<_>>());
    }
}

#[test]
fn a_rolled_back_batch_leaves_everything_as_it_was() {
    for (case, change) in [
        ("a registration", register("web-2", 80, vec![])),
        ("a deregistration", Change::Deregister { id: "web-1".into() }),
        ("maintenance", maintenance("web-1", true)),
        ("a zone file", zone_file("a.toml", &["z-1"])),
        ("a zone file removed", Change::ZoneFileRemoved("b.toml".into())),
    ] {
        let mut state = State::new();
        state.apply(register("web-1", 80, vec![])).unwrap();
        state.apply(zone_file("b.toml", &["z-9"])).unwrap();
        let before: Vec<(String, Entry)> =
            state.keys().map(|k| (k.to_string(), state.entry(k).unwrap().clone())).collect();
        state.take_dirty();
        state.begin();
        state.apply(change).unwrap();
        state.rollback();
        let after: Vec<(String, Entry)> =
            state.keys().map(|k| (k.to_string(), state.entry(k).unwrap().clone())).collect();
        assert_eq!(after, before, "{case}");
        assert!(state.take_dirty().is_empty(), "{case}: nothing left to write");
    }
}

#[test]
fn only_api_registrations_are_written_to_the_store() {
    let mut state = State::new();
    state.apply(register("web-1", 80, vec![])).unwrap();
    state.apply(zone_file("a.toml", &["z-1"])).unwrap();
    let dirty: Vec<(String, bool)> = state.take_dirty().into_iter().map(|(k, s)| (k, s.is_some())).collect();
    assert_eq!(dirty, [("web-1".to_string(), true)]);
    state.apply(Change::Deregister { id: "web-1".into() }).unwrap();
    let dirty: Vec<(String, bool)> = state.take_dirty().into_iter().map(|(k, s)| (k, s.is_some())).collect();
    assert_eq!(dirty, [("web-1".to_string(), false)], "a deregistration is a deletion");
}
