//! The live catalog. One writer task owns the mutable `State`; every source sends it `Change`s;
//! after each batch it makes the batch durable in the store (one write and one fsync for the
//! whole batch: group commit), publishes a new immutable `Snapshot` through an `ArcSwap`, which
//! DNS and the API load without locks, bumps a `watch` channel for those who wait for changes,
//! and only then answers the senders.
//!
//! Sources speak `Change` (`change.rs`); the writer's `State` (`state/`, with its shared-store
//! and zone-file sides) decides each one; `Snapshot` (`snapshot.rs`) is what readers see, made
//! of one `ServiceView` per service (`service.rs`) whose names rotate (`rotation.rs`); time-driven
//! changes are `timers.rs`, the sharing of checks among replicas `ownership.rs`.

mod change;
mod guard;
mod ownership;
mod patch;
mod rotation;
mod service;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;
mod timers;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use change::{Change, CheckOwner, Effect, RegistryError};
pub use guard::Subject;
pub use ownership::Ownership;
pub use rotation::AnswerSet;
pub use service::{Counts, Defaults, InstanceView, NameEntry, NameForm, ServiceView};
pub use snapshot::Snapshot;
pub use state::{Entry, State};

use crate::acl::Rules;
use crate::store::{Batch, Committed, Store, StoreError};

/// Most changes applied before a snapshot is published, so that a burst cannot starve readers
/// of fresh snapshots forever.
const MAX_BATCH: usize = 1024;

/// A change, the rules of whoever asked for it when they limit what it may touch (the API's
/// callers), and where its outcome goes.
struct Request {
    change: Change,
    guard: Option<Arc<Rules>>,
    ack: oneshot::Sender<Outcome>,
}

/// A change's result, and what it was about when it came through `apply_as`.
type Outcome = (Result<u64, RegistryError>, Option<Subject>);

/// Called with every snapshot as it is published, before anyone is told of the change; lets a
/// reader derive its own view (the DNS fast path's pre-encoded answers) in step with the registry.
pub type OnPublish = Box<dyn Fn(&Arc<Snapshot>) + Send + Sync>;

/// A cheap, cloneable handle on the registry.
#[derive(Clone)]
pub struct Registry {
    current: Arc<ArcSwap<Snapshot>>,
    tx: mpsc::UnboundedSender<Request>,
    version: watch::Receiver<u64>,
    published: watch::Receiver<u64>,
}

impl Registry {
    /// Publishes the first snapshot of `state` and starts the writer, which runs until `token`
    /// is cancelled.
    pub fn start(
        mut state: State,
        defaults: Defaults,
        store: Box<dyn Store>,
        on_publish: OnPublish,
        token: CancellationToken,
    ) -> (Registry, tokio::task::JoinHandle<()>) {
        let touched = state.take_touched();
        let first = Arc::new(Snapshot::default().next(&state, &defaults, &touched));
        let gauges = Gauges::new();
        gauges.record(&first);
        on_publish(&first);
        let current = Arc::new(ArcSwap::from(first));
        let (version_tx, version) = watch::channel(state.version);
        let (published_tx, published) = watch::channel(0);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            state,
            defaults,
            store: Some(store),
            on_publish,
            gauges,
            current: current.clone(),
            version: version_tx,
            published: published_tx,
            rx,
        };
        let task = tokio::spawn(writer.run(token));
        (Registry { current, tx, version, published }, task)
    }

    /// The current snapshot; cheap, lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies a change and waits until the snapshot that contains it is published. Returns the
    /// registry version that includes it.
    pub async fn apply(&self, change: Change) -> Result<u64, RegistryError> {
        self.request(change, None).await.0
    }

    /// Applies a change on behalf of a caller whose `rules` say which services it may write:
    /// refused with `RegistryError::Denied` unless they allow every service the change touches,
    /// as the writer finds it. Also returns what the change was about, for audit lines.
    pub async fn apply_as(&self, change: Change, rules: Arc<Rules>) -> (Result<u64, RegistryError>, Option<Subject>) {
        self.request(change, Some(rules)).await
    }

    async fn request(&self, change: Change, guard: Option<Arc<Rules>>) -> Outcome {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Request { change, guard, ack }).is_err() {
            return (Err(RegistryError::Stopped), None);
        }
        done.await.unwrap_or((Err(RegistryError::Stopped), None))
    }

    /// Applies a change without waiting for it (probe results: the next one supersedes it).
    pub fn send(&self, change: Change) {
        let (ack, _) = oneshot::channel();
        let _ = self.tx.send(Request { change, guard: None, ack });
    }

    /// A handle that reads and cannot write, for readers handed around where writes must go
    /// through a checked path (the API's reads).
    pub fn catalog(&self) -> Catalog {
        Catalog(self.clone())
    }

    /// A receiver that changes whenever the catalog's version does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }

    /// A receiver that changes whenever a snapshot is published, also for detail that is not a
    /// new catalog version (a check's output, zone errors): for readers that show detail.
    pub fn subscribe_published(&self) -> watch::Receiver<u64> {
        self.published.clone()
    }
}

/// The reading half of `Registry`: snapshots and change notifications, no writes.
#[derive(Clone)]
pub struct Catalog(Registry);

impl Catalog {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    pub fn subscribe_published(&self) -> watch::Receiver<u64> {
        self.0.subscribe_published()
    }
}

struct Writer {
    state: State,
    defaults: Defaults,
    /// Moved into a blocking task for each commit, and back.
    store: Option<Box<dyn Store>>,
    on_publish: OnPublish,
    gauges: Gauges,
    current: Arc<ArcSwap<Snapshot>>,
    version: watch::Sender<u64>,
    /// Counts published snapshots.
    published: watch::Sender<u64>,
    rx: mpsc::UnboundedReceiver<Request>,
}

/// How often a batch is retried when another replica changed one of its keys first.
const CONFLICT_ATTEMPTS: usize = 5;

impl Writer {
    async fn run(mut self, token: CancellationToken) {
        let mut batch = Vec::new();
        let max_batch = self.store.as_ref().map_or(MAX_BATCH, |s| s.max_batch()).clamp(1, MAX_BATCH);
        loop {
            let deadline = self.state.next_deadline();
            let timer = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = token.cancelled() => return,
                _ = timer => {}
                r = self.rx.recv() => match r {
                    Some(r) => batch.push(r),
                    None => return,
                },
            }
            while batch.len() < max_batch {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Sized up front: a `Request` is large, and growing by doubling copied it over and over.
            let mut remote = Vec::with_capacity(batch.len());
            let mut local = Vec::new();
            for r in batch.drain(..) {
                if r.change.is_remote() { remote.push(r) } else { local.push(r) }
            }
            let mut acks = Vec::with_capacity(remote.len() + local.len());
            let mut effect = self.apply_remote(remote.into_iter().map(|r| {
                acks.push(r.ack);
                r.change
            }));
            let (local, local_acks): (Vec<_>, Vec<_>) = local.into_iter().map(|r| ((r.change, r.guard), r.ack)).unzip();
            let (e, mut results) = self.apply_local(local).await;
            effect = effect.max(e);
            let mut results_remote: Vec<(Result<Effect, RegistryError>, Option<Subject>)> =
                acks.iter().map(|_| (Ok(Effect::None), None)).collect();
            results_remote.append(&mut results);
            acks.extend(local_acks);
            if effect != Effect::None {
                let touched = self.state.take_touched();
                let next = self.current.load().next(&self.state, &self.defaults, &touched);
                self.gauges.record(&next);
                let next = Arc::new(next);
                // Readers of the snapshot first, then derived views (the DNS fast path); both
                // before anyone is acknowledged.
                self.current.store(next.clone());
                (self.on_publish)(&next);
                self.published.send_modify(|n| *n += 1);
            }
            // Also after a failed write: a source that assumed its change would land (a probe
            // result) looks at the catalog again and sees it did not.
            if effect == Effect::Changed || results_remote.iter().any(|r| matches!(r.0, Err(RegistryError::Store(_)))) {
                self.version.send_replace(self.state.version);
            }
            for ((r, subject), ack) in results_remote.into_iter().zip(acks) {
                let _ = ack.send((r.map(|_| self.state.version), subject));
            }
            self.maybe_compact().await;
        }
    }

    /// Applies changes that come from the shared store: already durable, never written back.
    fn apply_remote(&mut self, changes: impl Iterator<Item = Change>) -> Effect {
        let mut effect = Effect::None;
        self.state.begin();
        for change in changes {
            if let Ok(e) = self.state.apply(change) {
                effect = effect.max(e);
            }
        }
        self.state.commit();
        if effect == Effect::Changed {
            // A version at least the store revision of everything applied, and never back.
            self.state.version = (self.state.version + 1).max(self.state.store_revision);
        }
        effect
    }

    /// Applies this replica's own changes and the timers due, makes them durable, and returns
    /// the effect and each change's result. All or nothing: if the store refuses, nothing
    /// changes; if another replica got to a key first, its value is applied and the changes are
    /// tried again on top of it.
    async fn apply_local(
        &mut self,
        mut changes: Vec<(Change, Option<Arc<Rules>>)>,
    ) -> (Effect, Vec<(Result<Effect, RegistryError>, Option<Subject>)>) {
        let mut seen = Effect::None;
        let shared = self.store.as_ref().is_some_and(|s| s.is_shared());
        for attempt in 1.. {
            self.state.begin();
            let mut effect = self.state.expire(tokio::time::Instant::now());
            // Only a shared store can ask for a second attempt; others take the changes as they are.
            let attempt_changes = if shared { changes.clone() } else { std::mem::take(&mut changes) };
            let results: Vec<_> = attempt_changes
                .into_iter()
                .map(|(c, guard)| {
                    let (subject, allowed) = match &guard {
                        Some(rules) => guard::permit(&self.state, &c, rules),
                        None => (None, Ok(())),
                    };
                    let r = allowed.and_then(|()| self.state.apply(c));
                    if let Ok(e) = r {
                        effect = effect.max(e);
                    }
                    (r, subject)
                })
                .collect();
            if self.state.take_errors_changed() {
                effect = effect.max(Effect::Detail);
            }
            let beats = if shared { self.state.take_beats() } else { Vec::new() };
            if effect != Effect::Changed && beats.is_empty() {
                self.state.commit();
                return (seen.max(effect), results);
            }
            let version = self.state.version + 1;
            let ops = if effect == Effect::Changed { self.state.take_dirty() } else { Vec::new() };
            let expect = if shared { self.state.expectations(&ops) } else { Vec::new() };
            let batch = Batch { version, ops, expect, beats };
            let (batch, result) = self.persist(batch).await;
            match result {
                Ok(Committed { version: stored_at, revisions }) => {
                    if shared {
                        self.state.committed(&batch.ops, &revisions, stored_at);
                    }
                    if effect == Effect::Changed {
                        self.state.version = version.max(stored_at);
                    }
                    self.state.commit();
                    return (seen.max(effect), results);
                }
                Err(StoreError::Conflict(fresh)) if shared && attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(
                        keys = fresh.len(),
                        attempt,
                        "another replica changed the same keys first; applying theirs and trying again"
                    );
                    self.state.rollback();
                    seen = seen.max(self.apply_remote(fresh.into_iter().map(Change::from)));
                }
                Err(e) => {
                    tracing::error!(error = %e, "store write failed; the batch is rolled back");
                    self.state.rollback();
                    let err = RegistryError::Store(e.to_string());
                    return (
                        seen,
                        results.into_iter().map(|(r, subject)| (r.and(Err(err.clone())), subject)).collect(),
                    );
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Writes a batch durably: awaited here if the store commits over the network, otherwise
    /// on a blocking thread, off the async ones. Gives the batch back with the result.
    async fn persist(&mut self, batch: Batch) -> (Batch, Result<Committed, StoreError>) {
        let started = std::time::Instant::now();
        let store = self.store.as_ref().expect("the store is home between commits");
        let awaited = match store.commit_async(&batch) {
            Some(commit) => Some(commit.await),
            None => None,
        };
        let (batch, result) = match awaited {
            Some(result) => (batch, result),
            None => {
                let mut store = self.store.take().expect("the store is home between commits");
                let (store, batch, result) = tokio::task::spawn_blocking(move || {
                    let r = store.commit(&batch);
                    (store, batch, r)
                })
                .await
                .expect("store commit does not panic");
                self.store = Some(store);
                (batch, result)
            }
        };
        crate::metrics::store_write(crate::metrics::Outcome::of(&result), started.elapsed());
        (batch, result)
    }

    async fn maybe_compact(&mut self) {
        if !self.store.as_ref().is_some_and(|s| s.wants_compaction()) {
            return;
        }
        let mut store = self.store.take().expect("the store is home between commits");
        let (version, records) = (self.state.version, self.state.stored().collect());
        let (store, result) = tokio::task::spawn_blocking(move || {
            let r = store.compact(version, records);
            (store, r)
        })
        .await
        .expect("store compaction does not panic");
        self.store = Some(store);
        if let Err(e) = result {
            tracing::warn!(error = %e, "store compaction failed; the journal keeps growing until it succeeds");
        }
    }
}

/// Instance and check counts by status, for `/metrics`: the handles looked up once (the
/// recorder is installed before the registry starts), not by name and labels with each snapshot.
struct Gauges {
    instances: [metrics::Gauge; 4],
    checks: [metrics::Gauge; 4],
    version: metrics::Gauge,
}

impl Gauges {
    fn new() -> Gauges {
        Gauges {
            instances: crate::model::Status::ALL.map(|s| metrics::gauge!("signpost_instances", "status" => s.as_str())),
            checks: crate::model::Status::ALL.map(|s| metrics::gauge!("signpost_checks", "status" => s.as_str())),
            version: metrics::gauge!("signpost_registry_version"),
        }
    }

    fn record(&self, snap: &Snapshot) {
        let Counts { instances, checks } = snap.counts();
        for s in crate::model::Status::ALL {
            self.instances[s as usize].set(instances[s as usize] as f64);
            self.checks[s as usize].set(checks[s as usize] as f64);
        }
        self.version.set(snap.version as f64);
    }
}
