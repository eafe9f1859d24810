//! Which API-registered checks this replica is responsible for: probing them, expiring their TTL
//! and reaping them after `deregister_after`. A lone server owns everything. In cluster mode the
//! live replicas are the keys under `<prefix>replicas/` (each held by the replica's etcd lease),
//! and a check belongs to the replica that wins rendezvous hashing (highest random weight) of
//! (replica id, check id): every replica computes the same owner from the same list without
//! talking to the others, checks spread evenly, and when a replica joins or leaves only the checks
//! it wins or held move. Zone-file checks are never shared: every replica reads its own files
//! and keeps their health itself.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::model::Source;

#[derive(Clone, Default)]
pub struct Ownership(Option<Arc<Shared>>);

struct Shared {
    me: String,
    /// Live replica ids, sorted, always including `me`.
    live: ArcSwap<Vec<String>>,
    /// The HTTP `ADDR:PORT` replicas announced, for `/v1/agent/members` and `/v1/status/peers`.
    http: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Ownership(solo)"),
            Some(s) => write!(f, "Ownership({} of {:?})", s.me, s.live.load()),
        }
    }
}

impl Ownership {
    /// A server alone: every check is its own.
    pub fn solo() -> Ownership {
        Ownership(None)
    }

    /// Replica `me` of a cluster, alone until `set_live` says otherwise.
    pub fn replica(me: &str) -> Ownership {
        let (changed, _) = watch::channel(0);
        Ownership(Some(Arc::new(Shared {
            me: me.to_string(),
            live: ArcSwap::from_pointee(vec![me.to_string()]),
            http: Default::default(),
            changed,
        })))
    }

    /// This replica's id (`None` alone).
    pub fn me(&self) -> Option<&str> {
        self.0.as_ref().map(|s| s.me.as_str())
    }

    /// Returns true if this replica probes, expires and reaps a check of an instance from
    /// `source`: every replica does so for zone-file checks (each serves its own files), only
    /// the owner for API checks.
    pub fn acts_on(&self, source: &Source, check_id: &str) -> bool {
        *source != Source::Api || self.owns(check_id)
    }

    /// Returns true if this replica is responsible for the API check `check_id`.
    pub fn owns(&self, check_id: &str) -> bool {
        let Some(s) = &self.0 else { return true };
        let live = s.live.load();
        let best = live.iter().max_by_key(|r| (weight(r, check_id), r.as_str()));
        best.is_none_or(|r| *r == s.me)
    }

    /// The live replicas changed; `me` is always counted as live.
    pub fn set_live(&self, ids: impl IntoIterator<Item = String>) {
        let Some(s) = &self.0 else { return };
        let mut live: Vec<String> = ids.into_iter().chain([s.me.clone()]).collect();
        live.sort();
        live.dedup();
        if **s.live.load() != live {
            tracing::info!(replicas = ?live, "live replicas changed; checks are shared out again");
            s.live.store(Arc::new(live));
            s.changed.send_modify(|n| *n += 1);
        }
    }

    /// Notes the HTTP address replica `id` announced.
    pub fn set_http(&self, id: &str, http: String) {
        if let Some(s) = &self.0 {
            s.http.lock().expect("not poisoned").insert(id.to_string(), http);
        }
    }

    /// The other live replicas, each with the HTTP address it announced (empty if unknown).
    pub fn others(&self) -> Vec<(String, String)> {
        let Some(s) = &self.0 else { return Vec::new() };
        let http = s.http.lock().expect("not poisoned");
        let live = s.live.load();
        live.iter().filter(|r| **r != s.me).map(|r| (r.clone(), http.get(r).cloned().unwrap_or_default())).collect()
    }

    /// A receiver that changes whenever the live replicas do (`None` alone: they never change).
    pub fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        self.0.as_ref().map(|s| s.changed.subscribe())
    }
}

/// A stable 64-bit weight of (replica, check): FNV-1a, then a finalizer that spreads the bits.
/// Stable across builds and platforms, unlike std's hasher, so that replicas of different
/// versions agree during a rolling upgrade.
fn weight(replica: &str, check_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in replica.bytes().chain([0]).chain(check_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<String> {
        (0..3000).map(|i| format!("service:web-{i}")).collect()
    }

    #[test]
    fn alone_owns_everything() {
        assert!(Ownership::solo().owns("x"));
        assert!(Ownership::replica("a").owns("x"));
    }

    #[test]
    fn every_check_has_exactly_one_owner_and_the_shares_are_even() {
        let ids = ["a", "b", "c"];
        let replicas: Vec<Ownership> = ids.iter().map(|id| Ownership::replica(id)).collect();
        for r in &replicas {
            r.set_live(ids.iter().map(|s| s.to_string()));
        }
        let mut counts = [0; 3];
        for c in checks() {
            let owners: Vec<usize> = (0..3).filter(|&i| replicas[i].owns(&c)).collect();
            assert_eq!(owners.len(), 1, "{c}: {owners:?}");
            counts[owners[0]] += 1;
        }
        for n in counts {
            assert!((800..1200).contains(&n), "{counts:?}");
        }
    }

    #[test]
    fn when_a_replica_leaves_only_its_checks_move() {
        let [a, b] = [Ownership::replica("a"), Ownership::replica("b")];
        for r in [&a, &b] {
            r.set_live(["a", "b", "c"].map(String::from));
        }
        let before: Vec<(bool, bool)> = checks().iter().map(|c| (a.owns(c), b.owns(c))).collect();
        let mut changes = b.subscribe().unwrap();
        for r in [&a, &b] {
            r.set_live(["a", "b"].map(String::from));
        }
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        for (c, (was_a, was_b)) in checks().iter().zip(before) {
            assert!(a.owns(c) != b.owns(c), "{c} has one owner");
            if was_a {
                assert!(a.owns(c), "{c} stayed with a");
            }
            if was_b {
                assert!(b.owns(c), "{c} stayed with b");
            }
        }
        // The same list again is no change.
        b.set_live(["b", "a"].map(String::from));
        assert!(!changes.has_changed().unwrap());
    }
}
