//! Registry changes that time makes: a TTL check that stops hearing heartbeats turns critical,
//! and an instance critical for longer than its `deregister_after` is removed. They live in the
//! registry, not in the prober, because they need no I/O and must hold for every source alike.
//!
//! Timers are lazy: a deadline is pushed for every heartbeat or transition and checked against
//! the current state when it comes due, so nothing has to be cancelled.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{CheckKind, CheckSpec, CheckState, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    TtlExpiry,
    Reap,
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Kind, String)>>,
    /// TTL checks: when the last heartbeat (or the registration) arrived.
    heartbeat: HashMap<String, Instant>,
    /// Checks now critical: since when.
    critical_since: HashMap<String, Instant>,
}

impl Timers {
    /// Records a check as it now stands. `is_new` = it was not declared a moment ago.
    pub fn observe(&mut self, spec: &CheckSpec, state: &CheckState, is_new: bool, reapable: bool, now: Instant) {
        if let CheckKind::Ttl { ttl } = spec.kind
            && (is_new || !self.heartbeat.contains_key(&spec.id))
        {
            self.beat(&spec.id, ttl, now);
        }
        if state.status == Status::Critical {
            let since = *self.critical_since.entry(spec.id.clone()).or_insert(now);
            if let (Some(after), true) = (spec.deregister_after, reapable) {
                self.heap.push(Reverse((since + after, Kind::Reap, spec.id.clone())));
            }
        } else {
            self.critical_since.remove(&spec.id);
        }
    }

    /// A TTL check heard from its service.
    pub fn beat(&mut self, check_id: &str, ttl: Duration, now: Instant) {
        self.heartbeat.insert(check_id.to_string(), now);
        self.heap.push(Reverse((now + ttl, Kind::TtlExpiry, check_id.to_string())));
    }

    /// Looks at `check_id` again at `at` for `kind` (its owner is another replica for now, or
    /// the change it made could not be stored).
    pub fn defer(&mut self, kind: Kind, check_id: &str, at: Instant) {
        self.heap.push(Reverse((at, kind, check_id.to_string())));
    }

    pub fn forget(&mut self, check_id: &str) {
        self.heartbeat.remove(check_id);
        self.critical_since.remove(check_id);
    }

    /// The earliest pending deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Timers due at `now`, still to be checked against the state.
    pub fn due(&mut self, now: Instant) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, kind, id)) = self.heap.pop().expect("peeked");
            out.push((kind, id));
        }
        out
    }

    /// Returns true if the TTL check has gone `ttl` without a heartbeat.
    pub fn ttl_expired(&self, check_id: &str, ttl: Duration, now: Instant) -> bool {
        self.heartbeat.get(check_id).is_some_and(|last| *last + ttl <= now)
    }

    /// Returns true if the check has been critical for at least `after`.
    pub fn critical_for(&self, check_id: &str, after: Duration, now: Instant) -> bool {
        self.critical_since.get(check_id).is_some_and(|since| *since + after <= now)
    }
}
