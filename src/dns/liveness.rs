//! When each UDP loop last came round: the loops run on threads of their own, outside the async
//! runtime, so that the runtime being alive says nothing of them. A loop comes round at least
//! every 100 ms, even with no query (its read times out).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One heartbeat per UDP loop, in milliseconds since `started`.
#[derive(Debug)]
pub struct Liveness {
    started: Instant,
    beats: Vec<AtomicU64>,
}

impl Liveness {
    /// For `loops` UDP loops, each counted as alive now.
    pub fn new(loops: usize) -> Liveness {
        Liveness { started: Instant::now(), beats: (0..loops).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Loop `i` came round.
    pub(crate) fn beat(&self, i: usize) {
        if let Some(slot) = self.beats.get(i) {
            slot.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// How long ago the loop that came round longest ago did; `None` without loops.
    pub fn stalest(&self) -> Option<Duration> {
        let now = self.started.elapsed().as_millis() as u64;
        let oldest = self.beats.iter().map(|b| b.load(Ordering::Relaxed)).min()?;
        Some(Duration::from_millis(now.saturating_sub(oldest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stalest_loop_decides() {
        let l = Liveness::new(2);
        std::thread::sleep(Duration::from_millis(30));
        l.beat(0);
        let age = l.stalest().unwrap();
        assert!(age >= Duration::from_millis(30), "loop 1 never came round: {age:?}");
        l.beat(1);
        assert!(l.stalest().unwrap() < Duration::from_millis(30));
        assert_eq!(Liveness::new(0).stalest(), None);
    }
}
