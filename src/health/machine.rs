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

    #[cfg(test)]
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

    /// What a case is called, the status shown before any result, rise, fall, the results, and
    /// the status shown after each.
    type Case = (&'static str, Status, u32, u32, Vec<Status>, Vec<Status>);

    /// Rise, fall, results, the status set from outside, results after it, and the status shown
    /// after each of those.
    type OutsideCase = (u32, u32, Vec<Status>, Status, Vec<Status>, Vec<Status>);

    #[test]
    fn results_and_the_status_they_show() {
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("the first result decides at once", Critical, 2, 3, vec![Passing], vec![Passing]),
            ("even a failure", Passing, 2, 3, vec![Critical], vec![Critical]),
            ("fall failures make it critical, rise successes bring it back", Critical, 2, 3,
                vec![Passing, Critical, Critical, Critical, Passing, Passing],
                vec![Passing, Passing, Passing, Critical, Critical, Passing]),
            ("a single blip does not flap", Critical, 2, 3,
                vec![Passing, Critical, Passing, Critical, Critical, Passing], vec![Passing; 6]),
            ("warning counts as up and shows as warning", Critical, 2, 3,
                vec![Passing, Warning, Passing], vec![Passing, Warning, Passing]),
            ("warning climbs out of critical after rise", Critical, 2, 3,
                vec![Critical, Warning, Warning], vec![Critical, Critical, Warning]),
            ("a success resets the failures counted", Critical, 2, 2,
                vec![Passing, Critical, Passing, Critical, Passing], vec![Passing; 5]),
            ("rise and fall of 1 follow every result", Critical, 1, 1,
                vec![Passing, Critical, Warning, Critical], vec![Passing, Critical, Warning, Critical]),
            ("rise and fall of 0 count as 1", Critical, 0, 0,
                vec![Passing, Critical, Passing], vec![Passing, Critical, Passing]),
        ];
        for (case, start, rise, fall, results, want) in cases {
            let mut m = Machine::new(start, rise, fall);
            let got: Vec<Status> = results.iter().map(|&r| m.observe(r)).collect();
            assert_eq!(got, want, "{case}");
            assert_eq!(m.status(), *want.last().unwrap(), "{case}: status() is the last shown");
        }
    }

    #[test]
    fn a_status_set_from_outside_is_followed_and_counted_from_afresh() {
        #[rustfmt::skip]
        let cases: [OutsideCase; 3] = [
            (2, 3, vec![Passing, Critical, Critical], Passing, vec![Critical, Critical], vec![Passing, Passing]),
            (2, 3, vec![Critical], Passing, vec![Critical, Critical, Critical], vec![Passing, Passing, Critical]),
            (2, 3, vec![Passing], Critical, vec![Passing, Passing], vec![Critical, Passing]),
        ];
        for (rise, fall, before, set, after, want) in cases {
            let mut m = Machine::new(Critical, rise, fall);
            before.iter().for_each(|&r| {
                m.observe(r);
            });
            m.reset_to(set);
            assert_eq!(m.status(), set);
            let got: Vec<Status> = after.iter().map(|&r| m.observe(r)).collect();
            assert_eq!(got, want, "{before:?}, set {set:?}, then {after:?}");
        }
    }
}
