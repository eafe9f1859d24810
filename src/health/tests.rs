//! Table-driven tests of what the prober tells the registry: each case the status a check shows,
//! then a sequence of events (probe results, or a status set from outside), and what each one
//! sends. (The machine's own rules are tested in `machine.rs`; probing real targets in
//! tests/it/health.rs.)

use super::*;
use Status::{Critical, Passing, Warning};

#[derive(Debug, Clone, Copy)]
enum Event {
    /// A probe result with its output.
    Probe(Status, &'static str),
    /// The registry shows this status, set by someone else (an explicit pass/fail call).
    Set(Status),
}

use Event::{Probe, Set};

/// What an event sends the registry: nothing, a new output only, or a new status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Nothing,
    Output(Status, &'static str),
    Status(Status, &'static str),
}

/// What a case is called, the status shown at first, rise, fall, the events, and what each sends.
type Case = (&'static str, Status, u32, u32, Vec<Event>, Vec<Sent>);

#[test]
fn the_registry_is_told_only_what_changes() {
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("the first result is sent at once", Critical, 2, 3,
            vec![Probe(Passing, "200")], vec![Sent::Status(Passing, "200")]),
        ("the same result again sends nothing", Critical, 2, 3,
            vec![Probe(Passing, "200"), Probe(Passing, "200")], vec![Sent::Status(Passing, "200"), Sent::Nothing]),
        ("a new output alone is sent as output", Critical, 2, 3,
            vec![Probe(Passing, "200"), Probe(Passing, "204")], vec![Sent::Status(Passing, "200"), Sent::Output(Passing, "204")]),
        ("failures below fall send their output, then the fall", Passing, 2, 2,
            vec![Probe(Passing, "ok"), Probe(Critical, "refused"), Probe(Critical, "refused")],
            vec![Sent::Output(Passing, "ok"), Sent::Output(Passing, "refused"), Sent::Status(Critical, "refused")]),
        ("warning is up, and shown", Critical, 2, 3,
            vec![Probe(Passing, "200"), Probe(Warning, "429")], vec![Sent::Status(Passing, "200"), Sent::Status(Warning, "429")]),
        ("a status set from outside is followed, counting afresh", Critical, 2, 3,
            vec![Probe(Critical, "down"), Set(Passing), Probe(Critical, "down"), Probe(Critical, "down"), Probe(Critical, "down")],
            vec![Sent::Output(Critical, "down"), Sent::Nothing, Sent::Output(Passing, "down"), Sent::Nothing, Sent::Status(Critical, "down")]),
        ("a status set from outside that is already shown changes nothing", Passing, 1, 1,
            vec![Set(Passing), Probe(Passing, "")], vec![Sent::Nothing, Sent::Nothing]),
    ];
    for (case, start, rise, fall, events, want) in cases {
        let mut v = Verdict::new(start, "", rise, fall);
        let got: Vec<Sent> = events
            .iter()
            .map(|&e| match e {
                Set(status) => {
                    v.follow(status, "");
                    Sent::Nothing
                }
                Probe(status, output) => match v.observe(status, output.to_string()) {
                    None => Sent::Nothing,
                    Some(transition) => {
                        let (s, o) = &v.shown;
                        assert_eq!(o, output, "{case}");
                        if transition { Sent::Status(*s, output) } else { Sent::Output(*s, output) }
                    }
                },
            })
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn lateness_quantiles_read_the_buckets() {
    // (probe start lateness in ms, quantile, the bucket bound it falls under)
    #[rustfmt::skip]
    let cases: [(&[u64], f64, Option<u64>); 6] = [
        (&[], 0.99, Some(0)),
        (&[0, 0, 0], 0.5, Some(1)),
        (&[0, 3, 7], 0.5, Some(5)),
        (&[0, 3, 7], 1.0, Some(10)),
        (&[0; 99], 0.99, Some(1)),
        (&[2000], 0.5, None),
    ];
    for (late, q, want) in cases {
        let stats = Stats::default();
        for &ms in late {
            stats.record_lateness(Duration::from_millis(ms));
        }
        assert_eq!(stats.lateness_quantile_ms(q), want, "{late:?} at {q}");
    }
}
