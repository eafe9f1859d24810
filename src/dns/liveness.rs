//! Whether each UDP loop keeps coming round: the loops run on threads of their own, outside the
//! async runtime, so that the runtime being alive says nothing of them. A loop comes round at
//! least every 100 ms, even with no query (its read times out).
//!
//! A loop only counts its rounds; the watchdog, which looks every few seconds, notes when each
//! count last moved. Reading the clock on every round instead cost each batch of queries a
//! clock read (measured: about 5% of the instructions of a one-query batch).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Liveness {
    /// Per loop, its rounds so far; each is written by its own loop only.
    rounds: Vec<AtomicU64>,
    /// The watchdog's view: each loop's count when it last saw it move, and when that was.
    seen: Mutex<Vec<(u64, Instant)>>,
}

impl Liveness {
    /// For `loops` UDP loops, each counted as alive now.
    pub fn new(loops: usize) -> Liveness {
        let now = Instant::now();
        Liveness { rounds: (0..loops).map(|_| AtomicU64::new(0)).collect(), seen: Mutex::new(vec![(0, now); loops]) }
    }

    /// Loop `i` came round.
    pub(crate) fn beat(&self, i: usize) {
        if let Some(slot) = self.rounds.get(i) {
            // Only loop `i` writes its slot: a load and a store, no locked add.
            slot.store(slot.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// How long the loop that moved longest ago has gone without coming round, as far as the
    /// checks so far can tell (a loop's stop is seen at the first check after it); `None`
    /// without loops.
    pub fn stalest(&self) -> Option<Duration> {
        self.stalest_at(Instant::now())
    }

    fn stalest_at(&self, now: Instant) -> Option<Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut stalest = None;
        for (slot, (count, since)) in self.rounds.iter().zip(seen.iter_mut()) {
            let c = slot.load(Ordering::Relaxed);
            if c != *count {
                (*count, *since) = (c, now);
            }
            stalest = stalest.max(Some(now.saturating_duration_since(*since)));
        }
        stalest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_that_stopped_longest_ago_decides() {
        let l = Liveness::new(2);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        l.beat(0);
        l.beat(1);
        assert_eq!(l.stalest_at(at(1000)), Some(Duration::ZERO), "both moved since the start");
        l.beat(0);
        assert_eq!(l.stalest_at(at(3000)), Some(Duration::from_millis(2000)), "loop 1 has not moved since 1 s");
        l.beat(1);
        assert_eq!(l.stalest_at(at(4000)), Some(Duration::from_millis(1000)), "now loop 0, seen moving at 3 s");
        assert_eq!(l.stalest_at(at(9000)), Some(Duration::from_millis(6000)), "neither has moved since");
        assert_eq!(Liveness::new(0).stalest(), None);
    }
}
