//! The registry with a shared store: remote changes, our own writes echoed back by the watch,
//! compare-and-swap conflicts, and timers that belong to another replica.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::model::{Address, CheckKind, CheckSpec, Health, Instance, Source, Status, Stored, id_key};
use crate::store::{Committed, Fresh, StoreError};

/// An API instance of service `web` at 10.0.0.1:80 (the state's own tests use it too).
pub(super) fn instance(id: &str, checks: Vec<CheckSpec>) -> Instance {
    Instance {
        id: id.into(),
        service: "web".into(),
        address: Address::Ip("10.0.0.1".parse().unwrap()),
        port: 80,
        tags: vec![],
        weight: 1,
        region: None,
        meta: Default::default(),
        checks,
        policy: Default::default(),
        source: Source::Api,
        node: None,
    }
}

fn stored(instance: Instance) -> Stored {
    let health = Health::initial(&instance, 0);
    Stored { instance, health }
}

pub(super) fn ttl_check(id: &str, ttl: Duration) -> CheckSpec {
    CheckSpec {
        id: id.into(),
        name: id.into(),
        kind: CheckKind::Ttl { ttl },
        interval: ttl,
        timeout: ttl,
        rise: None,
        fall: None,
        deregister_after: None,
        initial: Some(Status::Passing),
    }
}

fn remote(s: &Stored, modified: u64, revision: u64) -> Change {
    Change::Remote { key: id_key(&s.instance.id), stored: Some(s.clone()), modified, revision }
}

#[test]
fn a_late_echo_of_our_own_older_write_does_not_flap_back() {
    let mut state = State::new();
    let v1 = stored(instance("web-1", vec![]));
    let mut v2 = v1.clone();
    v2.instance.port = 81;
    assert_eq!(state.apply(remote(&v1, 5, 5)).unwrap(), Effect::Changed);
    // We write v2 at revision 7 ...
    state.apply(Change::Register { instance: v2.instance.clone(), replace_existing_checks: false }).unwrap();
    let ops = state.take_dirty();
    assert_eq!(state.expectations(&ops), [5]);
    state.committed(&ops, &[], 7);
    // ... and the watch still delivers an older write of the key, then our own.
    let mut v_other = v1.clone();
    v_other.instance.port = 99;
    assert_eq!(state.apply(remote(&v_other, 6, 6)).unwrap(), Effect::None);
    assert_eq!(state.apply(remote(&v2, 7, 7)).unwrap(), Effect::None);
    assert_eq!(state.entry("web-1").unwrap().instance.port, 81);
    // A newer write by another replica wins, and is not written back.
    assert_eq!(state.apply(remote(&v_other, 8, 8)).unwrap(), Effect::Changed);
    assert_eq!(state.entry("web-1").unwrap().instance.port, 99);
    assert!(state.take_dirty().is_empty());
    assert_eq!(state.expectations(&[("web-1".into(), None)]), [8]);
}

#[test]
fn a_reload_replaces_every_api_registration() {
    let mut state = State::new();
    let (a, b) = (stored(instance("a", vec![])), stored(instance("b", vec![])));
    state.restore_shared(3, vec![(a.clone(), 2), (b.clone(), 3)]);
    let c = stored(instance("c", vec![]));
    let effect = state.apply(Change::Reload { records: vec![(b.clone(), 3), (c.clone(), 9)], revision: 10 }).unwrap();
    assert_eq!(effect, Effect::Changed);
    assert_eq!(state.keys().collect::<Vec<_>>(), ["b", "c"]);
    assert!(state.take_dirty().is_empty());
}

/// A shared store that refuses the first batch: another replica changed the key first.
struct Contested {
    batches: Arc<Mutex<Vec<Batch>>>,
    theirs: Stored,
}

impl Store for Contested {
    fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError> {
        let mut batches = self.batches.lock().unwrap();
        batches.push(batch.clone());
        if batches.len() == 1 {
            let key = id_key(&self.theirs.instance.id);
            return Err(StoreError::Conflict(vec![Fresh {
                key,
                stored: Some(self.theirs.clone()),
                modified: 7,
                revision: 8,
            }]));
        }
        Ok(Committed::at(20))
    }

    fn is_shared(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_conflicting_write_is_applied_again_on_top_of_the_other_replicas() {
    let mine = stored(instance("web-1", vec![]));
    let mut theirs = mine.clone();
    theirs.instance.meta.insert("by".into(), "the other replica".into());
    let mut state = State::new();
    state.restore_shared(5, vec![(mine.clone(), 5)]);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let store = Contested { batches: batches.clone(), theirs };
    let token = CancellationToken::new();
    let (registry, _) = Registry::start(state, Defaults::default(), Box::new(store), Box::new(|_| {}), token.clone());
    let version =
        registry.apply(Change::Maintenance { id: "web-1".into(), reason: Some("upgrade".into()) }).await.unwrap();
    assert!(version >= 20, "the version follows the store's revision: {version}");
    let batches = batches.lock().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!((batches[0].expect.as_slice(), batches[1].expect.as_slice()), (&[5][..], &[7][..]));
    let written = batches[1].ops[0].1.as_ref().unwrap();
    assert_eq!(written.instance.meta.get("by"), Some("the other replica"), "their change is kept");
    assert_eq!(written.health.maintenance.as_deref(), Some("upgrade"), "ours is on top");
    let snap = registry.snapshot();
    assert_eq!(snap.instance("web-1").unwrap().status, Status::Maintenance);
    token.cancel();
}

#[test]
fn a_ttl_check_of_another_replica_expires_here_only_once_it_is_ours() {
    let (me, other) = ("a", "b");
    let ownership = Ownership::replica(me);
    ownership.set_live([me, other].map(String::from));
    let check = (0..).map(|i| format!("service:t-{i}")).find(|c| !ownership.owns(c)).unwrap();
    let mut state = State::new();
    state.set_ownership(ownership.clone());
    let t0 = tokio::time::Instant::now();
    let s = stored(instance("t", vec![ttl_check(&check, Duration::from_secs(1))]));
    state.apply(remote(&s, 1, 1)).unwrap();
    let status = |state: &State| state.check(&check).map(|(e, i)| e.health.checks[i].status).unwrap();
    // Past its TTL, but b owns it: b expires it, not us.
    assert_eq!(state.expire(t0 + Duration::from_secs(2)), Effect::None);
    assert_eq!(status(&state), Status::Passing);
    // b dies: the check is ours, and its overdue expiry comes round again.
    ownership.set_live([me.to_string()]);
    let next = state.next_deadline().expect("the expiry is looked at again");
    assert!(next <= t0 + Duration::from_secs(3));
    assert_eq!(state.expire(next), Effect::Changed);
    assert_eq!(status(&state), Status::Critical);
}

#[test]
fn deleted_ids_are_forgotten_once_the_watch_has_passed_them() {
    let mut state = State::new();
    let live = stored(instance("live", vec![]));
    state.restore_shared(10, vec![(live.clone(), 10)]);
    // 1,000 ids registered and deleted by other replicas, and 1,000 by this one.
    for i in 0..1000u64 {
        let s = stored(instance(&format!("them-{i}"), vec![]));
        state.apply(remote(&s, 11 + 2 * i, 11 + 2 * i)).unwrap();
        let key = id_key(&s.instance.id);
        state.apply(Change::Remote { key, stored: None, modified: 0, revision: 12 + 2 * i }).unwrap();
    }
    for i in 0..1000u64 {
        let id = format!("mine-{i}");
        state.apply(Change::Register { instance: instance(&id, vec![]), replace_existing_checks: false }).unwrap();
        let ops = state.take_dirty();
        state.committed(&ops, &[], 3000 + 2 * i);
        state.apply(Change::Deregister { id }).unwrap();
        let ops = state.take_dirty();
        state.committed(&ops, &[], 3001 + 2 * i);
    }
    assert_eq!(state.remembered(), 2001);
    // The watch has delivered up to before this replica's last deletion: that one stays.
    state.apply(Change::Watched { revision: 4998 }).unwrap();
    assert_eq!(state.remembered(), 2);
    // A forgotten deletion expects the key absent, as its tombstone did; a live key keeps its
    // revision.
    assert_eq!(state.expectations(&[("live".into(), None), ("mine-999".into(), None)]), [10, 0]);
    state.apply(Change::Watched { revision: 4999 }).unwrap();
    assert_eq!(state.remembered(), 1);
    assert_eq!(state.keys().collect::<Vec<_>>(), ["live"]);
    // A key written again after its deletion keeps its new revision.
    let again = stored(instance("them-0", vec![]));
    state.apply(remote(&again, 6000, 6000)).unwrap();
    state.apply(Change::Watched { revision: 6000 }).unwrap();
    assert_eq!(state.expectations(&[("them-0".into(), None)]), [6000]);
}

/// Each snapshot made from the previous one by `next` (what the writer does) holds what one built
/// from scratch holds: every service's members in id order, and every name's answer sets.
#[test]
fn a_snapshot_made_from_the_last_one_equals_one_built_from_scratch() {
    let defaults = Defaults::default();
    let mut state = State::new();
    let mut snap = Arc::new(Snapshot::build(&state, &defaults));
    // A small linear congruential sequence: the same batches on every run.
    let mut seed = 7u64;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for round in 0..2000 {
        state.begin();
        for _ in 0..1 + next(6) {
            let id = format!("i{:02}", next(40));
            let change = if next(3) == 0 {
                Change::Deregister { id }
            } else {
                // Some fail their check, weigh more, or declare settings.
                let mut check = ttl_check(&format!("{id}-ttl"), Duration::from_secs(30));
                check.initial = Some([Status::Passing, Status::Critical, Status::Warning][next(3) as usize]);
                let mut i = instance(&id, if next(2) == 0 { vec![check] } else { vec![] });
                // Instances move between services (which empty now and then), change in place, and
                // carry tags and regions.
                i.service = format!("svc{}", next(8));
                i.port = 80 + next(4) as u16;
                i.tags = (0..next(3)).map(|t| format!("T{t}")).collect();
                i.region = [None, Some("eu".into()), Some("US".into())][next(3) as usize].clone();
                i.weight = if next(10) == 0 { 3 } else { 1 };
                if next(8) == 0 {
                    i.address = Address::Ip(format!("fd00::{}", next(5)).parse().unwrap());
                }
                if next(20) == 0 {
                    i.policy = crate::model::ServicePolicy { only_passing: Some(true), ..Default::default() }.into();
                }
                Change::Register { instance: i, replace_existing_checks: false }
            };
            let _ = state.apply(change);
        }
        state.commit();
        state.version += 1;
        let touched = state.take_touched();
        let prev = snap.clone();
        snap = Arc::new(snap.next(&state, &defaults, &touched));
        let full = Snapshot::build(&state, &defaults);
        // The services `next` says it changed are those whose view differs from the last one.
        let keys = |s: &Snapshot| s.service_views().map(|v| v.key.clone()).collect::<BTreeSet<_>>();
        let differ: Vec<_> = (&keys(&prev) | &keys(&snap))
            .into_iter()
            .filter(|k| match (prev.service_view(k), snap.service_view(k)) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                _ => true,
            })
            .collect();
        let said: Vec<_> =
            snap.changed_services(&prev).iter().map(|(old, new)| new.or(*old).unwrap().key.clone()).collect();
        assert_eq!(said, differ, "round {round}");
        // And the indexes across services, which a write that keeps a service's names skips.
        assert_eq!(snap.counts(), full.counts(), "round {round}");
        assert!(snap.answered_services().eq(full.answered_services()), "round {round}");
        let (regions, tags) = full.regions_and_tags();
        let (regions, tags) = (regions.collect::<Vec<_>>(), tags.collect::<Vec<_>>());
        let (r, t) = snap.regions_and_tags();
        assert_eq!((r.collect::<Vec<_>>(), t.collect::<Vec<_>>()), (regions, tags), "round {round}");
        let members = |s: &Snapshot| -> Vec<(String, Vec<String>)> {
            s.service_views()
                .map(|v| (v.key.to_string(), v.instances.iter().map(|i| i.key.to_string()).collect()))
                .collect()
        };
        assert_eq!(members(&snap), members(&full), "round {round}");
        for (a, b) in snap.service_views().zip(full.service_views()) {
            assert!(a.instances.iter().zip(&b.instances).all(|(x, y)| Arc::ptr_eq(&x.instance, &y.instance)));
            let sets = |v: &ServiceView| -> Vec<(Vec<u32>, bool, u32)> {
                let sets = v.entries().iter().flat_map(|e| [&e.v4, &e.v6, &e.srv, &e.srv_rfc2782, &e.txt, &e.ptr]);
                let sizes = v.entries().iter().flat_map(|e| [e.size, e.ttl].repeat(3));
                sets.zip(sizes).map(|(s, size)| (s.members.to_vec(), s.is_uniform(), size)).collect()
            };
            assert_eq!(sets(a), sets(b), "round {round}: {}", a.key);
            assert_eq!(a.name_forms().collect::<Vec<_>>(), b.name_forms().collect::<Vec<_>>());
            assert_eq!((a.counts, &a.hosts), (b.counts, &b.hosts));
        }
        assert_eq!(snap.len(), full.len());
        assert!(snap.instances().map(|v| &v.key).eq(full.instances().map(|v| &v.key)));
    }
}
