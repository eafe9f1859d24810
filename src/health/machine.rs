//! The rise/fall state machine of one check: the first result decides at once; after that,
//! `rise` consecutive good results make a critical check good and `fall` consecutive bad ones
//! make a good check critical. Passing and warning both count as good; the status shown is the
//! latest good result's.

use crate::model::Status;

#[derive(Debug, Clone)]
pub struct Machine {
    status: Status,
    decided: bool,
    up: u32,
    down: u32,
    rise: u32,
    fall: u32,
}

impl Machine {
    /// A machine for a check currently shown as `status`, before any probe result.
    pub fn new(status: Status, rise: u32, fall: u32) -> Machine {
        Machine { status, decided: false, up: 0, down: 0, rise: rise.max(1), fall: fall.max(1) }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// The status was set from outside (an explicit pass/fail call): follow it, and count
    /// afresh from there.
    pub fn reset_to(&mut self, status: Status) {
        self.status = status;
        self.up = 0;
        self.down = 0;
    }

    /// Feeds one probe result; returns the status to show.
    pub fn observe(&mut self, result: Status) -> Status {
        let good = matches!(result, Status::Passing | Status::Warning);
        if good {
            self.up += 1;
            self.down = 0;
        } else {
            self.down += 1;
            self.up = 0;
        }
        let is_good = matches!(self.status, Status::Passing | Status::Warning);
        if !self.decided {
            self.decided = true;
            self.status = result;
        } else if good && (is_good || self.up >= self.rise) {
            self.status = result;
        } else if !good && (!is_good || self.down >= self.fall) {
            self.status = Status::Critical;
        }
        self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn run(start: Status, results: &[Status]) -> Vec<Status> {
        let mut m = Machine::new(start, 2, 3);
        results.iter().map(|&r| m.observe(r)).collect()
    }

    #[test]
    fn the_first_result_decides_at_once() {
        assert_eq!(run(Critical, &[Passing]), [Passing]);
        assert_eq!(run(Passing, &[Critical]), [Critical]);
    }

    #[test]
    fn fall_failures_make_it_critical_and_rise_successes_bring_it_back() {
        let r = run(Critical, &[Passing, Critical, Critical, Critical, Passing, Passing]);
        assert_eq!(r, [Passing, Passing, Passing, Critical, Critical, Passing]);
    }

    #[test]
    fn a_single_blip_does_not_flap() {
        let r = run(Critical, &[Passing, Critical, Passing, Critical, Critical, Passing]);
        assert!(r.iter().all(|&s| s == Passing), "{r:?}");
    }

    #[test]
    fn warning_counts_as_up_and_shows_as_warning() {
        let r = run(Critical, &[Passing, Warning, Passing]);
        assert_eq!(r, [Passing, Warning, Passing]);
        let r = run(Critical, &[Critical, Warning, Warning]);
        assert_eq!(r, [Critical, Critical, Warning]);
    }
}
