//! Health probing. One scheduler task follows the registry's snapshots to learn which HTTP and
//! TCP checks exist, probes each new one at once and then every interval (the second probe at a
//! random point of the first interval, so that checks registered together do not probe in
//! lockstep), runs probes as separate tasks behind a semaphore so that a slow or hanging target
//! delays nobody else, feeds results through each check's rise/fall machine, and sends the
//! registry only what changed. TTL expiry and `deregister_after` are the registry's own timers.
//! In cluster mode each API check is probed by one replica: the prober skips the checks that
//! `Ownership` gives to another, and looks again whenever the live replicas change.

mod machine;
mod probe;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};
use tracing::debug;

use machine::Machine;
use probe::Probers;

use crate::model::{CheckKind, CheckSpec, Status};
use crate::registry::{Change, InstanceView, Ownership, Registry, ServiceView, Snapshot};

/// The `[health]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub rise: u32,
    pub fall: u32,
    pub max_in_flight: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { rise: 2, fall: 3, max_in_flight: 1024 }
    }
}

/// Counters the prober keeps for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub probes: AtomicU64,
    pub transitions: AtomicU64,
    /// Probe start lateness against its schedule: buckets by upper bound in ms
    /// (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, more).
    pub lateness: [AtomicU64; 11],
}

const LATENESS_BOUNDS_MS: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

impl Stats {
    fn record_lateness(&self, late: Duration) {
        let ms = late.as_millis() as u64;
        let i = LATENESS_BOUNDS_MS.iter().position(|&b| ms < b).unwrap_or(LATENESS_BOUNDS_MS.len());
        self.lateness[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The smallest bucket bound under which at least `q` of the probes started, in ms
    /// (`None` past the last bound).
    pub fn lateness_quantile_ms(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.lateness.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if total > 0 && seen as f64 >= q * total as f64 {
                return LATENESS_BOUNDS_MS.get(i).copied();
            }
        }
        Some(0)
    }
}

struct Tracked {
    spec: Arc<CheckSpec>,
    verdict: Verdict,
    key: delay_queue::Key,
    due: Instant,
    in_flight: bool,
    probed_once: bool,
}

/// What the prober makes of one check's results: the rise/fall machine, and what the registry
/// shows of the check, so that only changes are sent.
#[derive(Debug)]
struct Verdict {
    machine: Machine,
    shown: (Status, String),
}

impl Verdict {
    fn new(status: Status, output: &str, rise: u32, fall: u32) -> Verdict {
        Verdict { machine: Machine::new(status, rise, fall), shown: (status, output.to_string()) }
    }

    /// The registry shows `status`: when someone else set it (an explicit pass/fail call), the
    /// machine follows it and counts afresh from there.
    fn follow(&mut self, status: Status, output: &str) {
        if status != self.shown.0 {
            self.machine.reset_to(status);
            self.shown = (status, output.to_string());
        }
    }

    /// A probe's result. `None` when the registry already shows what it comes to; otherwise
    /// `shown` is the update to send, and the answer says whether its status (not only its
    /// output) changed.
    fn observe(&mut self, result: Status, output: String) -> Option<bool> {
        let shown = (self.machine.observe(result), output);
        if shown == self.shown {
            return None;
        }
        let transition = shown.0 != self.shown.0;
        self.shown = shown;
        Some(transition)
    }
}

struct Outcome {
    check_id: String,
    spec: Arc<CheckSpec>,
    status: Status,
    output: String,
}

/// The label values of the probe families: the kinds probed (TTL checks are not: their
/// heartbeats come through the API) and what a probe finds.
const PROBED: [&str; 2] = [CheckKind::HTTP, CheckKind::TCP];
const PROBE_RESULTS: [Status; 3] = [Status::Passing, Status::Warning, Status::Critical];

/// Registers the prober's metrics at zero, so that `/metrics` shows them before the first probe.
pub fn register_metrics() {
    // A handle asked for is registered, and shown from then on.
    for kind in PROBED {
        let _ = probe_duration(kind);
        for result in PROBE_RESULTS {
            probes(kind, result).increment(0);
        }
    }
    let _ = metrics::histogram!("signpost_probe_lateness_seconds");
    transitions().increment(0);
    metrics::gauge!("signpost_checks_probed").set(0.0);
}

fn probes(kind: &'static str, result: Status) -> metrics::Counter {
    metrics::counter!("signpost_probes_total", "kind" => kind, "result" => result.as_str())
}

fn probe_duration(kind: &'static str) -> metrics::Histogram {
    metrics::histogram!("signpost_probe_duration_seconds", "kind" => kind)
}

fn transitions() -> metrics::Counter {
    metrics::counter!("signpost_check_transitions_total")
}

/// Runs the prober until `token` is cancelled, probing the checks `ownership` gives this server.
pub async fn run(
    registry: Registry,
    settings: Settings,
    stats: Arc<Stats>,
    ownership: Ownership,
    token: CancellationToken,
) {
    let mut owners = ownership.subscribe();
    let mut scheduler = Scheduler {
        ownership,
        registry: registry.clone(),
        settings,
        stats,
        probers: Probers::new(),
        permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
        checks: HashMap::new(),
        last: None,
        queue: DelayQueue::new(),
        results: mpsc::unbounded_channel(),
        probed: metrics::gauge!("signpost_checks_probed"),
    };
    let mut versions = registry.subscribe();
    scheduler.reconcile(&registry.snapshot(), true);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = versions.changed() => {
                if changed.is_err() {
                    return;
                }
                scheduler.reconcile(&registry.snapshot(), false);
            }
            Some(expired) = std::future::poll_fn(|cx| scheduler.queue.poll_expired(cx)) => {
                scheduler.launch(expired.into_inner());
            }
            Some(outcome) = scheduler.results.1.recv() => scheduler.settle(outcome),
            Some(Ok(())) = async { match owners.as_mut() { Some(o) => Some(o.changed().await), None => None } } => {
                scheduler.reconcile(&registry.snapshot(), true);
            }
        }
    }
}

struct Scheduler {
    ownership: Ownership,
    registry: Registry,
    settings: Settings,
    stats: Arc<Stats>,
    probers: Probers,
    permits: Arc<Semaphore>,
    checks: HashMap<String, Tracked>,
    /// The snapshot last reconciled with; the next reconciles only what changed since.
    last: Option<Arc<Snapshot>>,
    queue: DelayQueue<String>,
    results: (mpsc::UnboundedSender<Outcome>, mpsc::UnboundedReceiver<Outcome>),
    /// `signpost_checks_probed`, set after each reconcile (looked up once, not per write).
    probed: metrics::Gauge,
}

impl Scheduler {
    /// Brings the tracked checks in line with the snapshot: new checks are probed at once,
    /// changed ones start afresh, gone ones stop. Only the services that changed since the last
    /// snapshot reconciled are looked at, unless `full` (ownership moved).
    fn reconcile(&mut self, snap: &Arc<Snapshot>, full: bool) {
        let mut present = HashSet::new();
        match self.last.take().filter(|_| !full) {
            Some(last) => {
                let mut before = Vec::new();
                for (old, new) in snap.changed_services(&last) {
                    // Only the instances that changed: a write to one instance of a service of
                    // 10,000 would otherwise walk every check of the other 9,999.
                    for (was, is) in ServiceView::changed_instances(old.map(|o| &**o), new.map(|n| &**n)) {
                        before.extend(was.into_iter().flat_map(|v| v.instance.checks.iter().map(|c| c.id.clone())));
                        if let Some(view) = is {
                            self.follow(view, &mut present);
                        }
                    }
                }
                for (old, new) in snap.changed_nodes(&last) {
                    before.extend(old.into_iter().flat_map(|o| o.instance.checks.iter().map(|c| c.id.clone())));
                    if let Some(view) = new {
                        self.follow(view, &mut present);
                    }
                }
                for id in before.iter().filter(|id| !present.contains(id.as_str())) {
                    if let Some(t) = self.checks.remove(id) {
                        self.queue.try_remove(&t.key);
                    }
                }
            }
            None => {
                for view in snap.instances().chain(snap.nodes()) {
                    self.follow(view, &mut present);
                }
                let gone: Vec<String> =
                    self.checks.keys().filter(|id| !present.contains(id.as_str())).cloned().collect();
                for id in gone {
                    if let Some(t) = self.checks.remove(&id) {
                        self.queue.try_remove(&t.key);
                    }
                }
            }
        }
        self.last = Some(snap.clone());
        self.probed.set(self.checks.len() as f64);
    }

    /// Tracks the checks of one instance that this server probes, adding their ids to `present`.
    fn follow(&mut self, view: &InstanceView, present: &mut HashSet<String>) {
        for (spec, state) in view.instance.checks.iter().zip(&view.health.checks) {
            if !spec.kind.is_probed() {
                continue;
            }
            if !self.ownership.acts_on(&view.instance.source, &spec.id) {
                continue; // Another replica's.
            }
            present.insert(spec.id.clone());
            match self.checks.get_mut(&spec.id) {
                Some(t) if *t.spec == *spec => {
                    // A probe in flight will report on top of what it started from.
                    if !t.in_flight {
                        t.verdict.follow(state.status, &state.output);
                    }
                }
                _ => self.track(spec, state.status, &state.output),
            }
        }
    }

    fn track(&mut self, spec: &CheckSpec, status: Status, output: &str) {
        let rise = spec.rise.unwrap_or(self.settings.rise);
        let fall = spec.fall.unwrap_or(self.settings.fall);
        let now = Instant::now();
        if let Some(old) = self.checks.remove(&spec.id) {
            self.queue.try_remove(&old.key);
        }
        let key = self.queue.insert_at(spec.id.clone(), now);
        let tracked = Tracked {
            spec: Arc::new(spec.clone()),
            verdict: Verdict::new(status, output, rise, fall),
            key,
            due: now,
            in_flight: false,
            probed_once: false,
        };
        self.checks.insert(spec.id.clone(), tracked);
    }

    /// A check is due: start its probe (unless the previous one still runs) and schedule the next.
    fn launch(&mut self, check_id: String) {
        let Some(t) = self.checks.get_mut(&check_id) else { return };
        let now = Instant::now();
        // Lateness is measured from when the probe was due, so the scheduler's own delays count.
        let scheduled = t.due;
        let interval = t.spec.interval.max(Duration::from_millis(100));
        // The first repeat lands at a random point of the interval, spreading checks that were
        // registered together; after that, a fixed rate.
        let next = if t.probed_once { t.due + interval } else { now + interval.mul_f64(0.5 + 0.5 * jitter()) };
        let next = next.max(now);
        t.due = next;
        t.key = self.queue.insert_at(check_id.clone(), next);
        t.probed_once = true;
        if t.in_flight {
            return;
        }
        t.in_flight = true;
        let (spec, probers, permits, tx, stats) =
            (t.spec.clone(), self.probers.clone(), self.permits.clone(), self.results.0.clone(), self.stats.clone());
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let late = Instant::now().saturating_duration_since(scheduled);
            stats.record_lateness(late);
            stats.probes.fetch_add(1, Ordering::Relaxed);
            metrics::histogram!("signpost_probe_lateness_seconds").record(late);
            let started = Instant::now();
            let (status, output) = probers.probe(&spec).await;
            let kind = spec.kind.as_str();
            probe_duration(kind).record(started.elapsed());
            probes(kind, status).increment(1);
            let _ = tx.send(Outcome { check_id, spec, status, output });
        });
    }

    /// A probe finished: run the machine and tell the registry what changed.
    fn settle(&mut self, outcome: Outcome) {
        let Some(t) = self.checks.get_mut(&outcome.check_id) else { return };
        t.in_flight = false;
        if *t.spec != *outcome.spec {
            return; // The check was redefined while this probe ran.
        }
        let Some(transition) = t.verdict.observe(outcome.status, outcome.output) else { return };
        let (status, output) = t.verdict.shown.clone();
        if transition {
            self.stats.transitions.fetch_add(1, Ordering::Relaxed);
            transitions().increment(1);
        } else {
            debug!(check = %outcome.check_id, status = status.as_str(), "check output changed");
        }
        self.registry.send(Change::CheckUpdate { check_id: outcome.check_id, status, output });
    }
}

/// A cheap random fraction in [0, 1), good enough to spread probe schedules.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
