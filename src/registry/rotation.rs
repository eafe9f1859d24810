//! Rotation: which instance a (name, type) answers first for each query. Equal weights take
//! turns; unequal ones follow one precomputed period of smooth weighted round-robin. The only
//! state is a counter, an atomic that a query advances, so readers never lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The instances one (name, type) answers, and where its rotation stands.
#[derive(Debug)]
pub struct AnswerSet {
    /// Indexes into `ServiceView::instances`; shared by the sets of a name that have the same
    /// members (SRV, TXT, and usually one address family).
    pub members: Arc<[u32]>,
    schedule: Schedule,
    /// Queries answered so far; carried over from the previous snapshot so that a registry
    /// change does not restart everyone's rotation at the first instance.
    counter: AtomicU64,
}

/// Which member comes first for the k-th query.
#[derive(Debug, Clone)]
pub(super) enum Schedule {
    /// Equal weights: member k mod n.
    Uniform,
    /// Smooth weighted round-robin, precomputed over one period of Σw queries.
    Weighted(Arc<[u32]>),
}

impl Schedule {
    /// Walks `weights` once more only when they differ: most services weigh all alike.
    pub(super) fn new(weights: impl Iterator<Item = u32> + Clone) -> Schedule {
        let mut each = weights.clone().map(|w| w.max(1));
        let first = each.next();
        if each.all(|w| Some(w) == first) {
            return Schedule::Uniform;
        }
        let weights: Vec<u64> = weights.map(|w| u64::from(w.max(1))).collect();
        Schedule::Weighted(smooth_weighted_schedule(&weights).into())
    }
}

/// The largest weighted period kept in memory; larger weight sums are scaled down to it.
const MAX_PERIOD: u64 = 1 << 16;

impl AnswerSet {
    /// `members` with their rotation `schedule`, the first query being the `carried`-th.
    pub(super) fn new(members: Arc<[u32]>, schedule: Schedule, carried: u64) -> Self {
        AnswerSet { members, schedule, counter: AtomicU64::new(carried) }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in this query's rotated order: the scheduled first member, then the others in
    /// their cyclic order after it. Each call advances the rotation by one.
    pub fn rotate(&self) -> impl Iterator<Item = u32> + '_ {
        let k = if self.members.is_empty() { 0 } else { self.counter.fetch_add(1, Ordering::Relaxed) };
        self.order(k)
    }

    /// Members in the order the next query would get, without advancing the rotation: for the
    /// status page, which must show the answer without changing what clients receive.
    pub fn peek(&self) -> impl Iterator<Item = u32> + '_ {
        self.order(self.position())
    }

    /// Members in the order of the k-th query.
    fn order(&self, k: u64) -> impl Iterator<Item = u32> + '_ {
        let n = self.members.len();
        let first = match &self.schedule {
            _ if n == 0 => 0,
            Schedule::Uniform => (k % n as u64) as usize,
            Schedule::Weighted(s) => s[(k % s.len() as u64) as usize] as usize,
        };
        (0..n).map(move |i| self.members[(first + i) % n])
    }

    /// Returns true if its members take equal turns (equal weights).
    pub(super) fn is_uniform(&self) -> bool {
        matches!(self.schedule, Schedule::Uniform)
    }

    /// How many queries it has answered: carried to the next snapshot's set of the same name.
    pub(super) fn position(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// One period of smooth weighted round-robin (nginx's): each step every member gains its weight,
/// the richest goes first and pays the total. Over Σw steps member i goes first exactly wᵢ times,
/// interleaved rather than in bursts.
fn smooth_weighted_schedule(weights: &[u64]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let mut total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        w = w.iter().map(|x| (x * MAX_PERIOD / total).max(1)).collect();
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, c) in current.iter_mut().enumerate() {
            *c += w[i] as i64;
        }
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_set(members: &[u32], weights: &[u32]) -> AnswerSet {
        AnswerSet::new(members.into(), Schedule::new(weights.iter().copied()), 0)
    }

    fn firsts(weights: &[u32], queries: usize) -> Vec<u32> {
        let set = answer_set(&(0..weights.len() as u32).collect::<Vec<_>>(), weights);
        (0..queries).map(|_| set.rotate().next().unwrap()).collect()
    }

    #[test]
    fn equal_weights_put_each_member_first_once_per_round() {
        assert_eq!(firsts(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
        let set = answer_set(&[7, 8, 9], &[2, 2, 2]);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![8, 9, 7]);
    }

    #[test]
    fn weights_give_exact_shares_spread_out() {
        let order = firsts(&[5, 1, 1], 7);
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence for 5,1,1");
        let order = firsts(&[3, 1], 8);
        for (m, want) in [(0, 6), (1, 2)] {
            assert_eq!(order.iter().filter(|&&x| x == m).count(), want);
        }
        // Common factors do not lengthen the period.
        assert_eq!(firsts(&[200, 100], 3), vec![0, 1, 0]);
    }

    #[test]
    fn peek_shows_the_next_order_without_advancing() {
        let set = answer_set(&[7, 8, 9], &[1, 1, 1]);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9], "peeking twice changes nothing");
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9], "the next query gets what peek showed");
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![8, 9, 7]);
        let weighted = answer_set(&[0, 1, 2], &[5, 1, 1]);
        for _ in 0..9 {
            let seen: Vec<u32> = weighted.peek().collect();
            assert_eq!(weighted.rotate().collect::<Vec<_>>(), seen);
        }
        assert!(answer_set(&[], &[]).peek().next().is_none());
    }

    #[test]
    fn huge_weight_sums_are_scaled_not_refused() {
        let s = smooth_weighted_schedule(&[65535, 65535, 1, 3]);
        assert!(s.len() as u64 <= MAX_PERIOD + 4);
        assert!(s.contains(&2) && s.contains(&3));
    }
}
