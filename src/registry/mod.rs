//! The live catalog. One writer task owns the mutable `State`; every source sends it `Change`s;
//! after each batch it makes the batch durable in the store (one write and one fsync for the
//! whole batch: group commit), publishes a new immutable `Snapshot` through an `ArcSwap`, which
//! DNS and the API load without locks, bumps a `watch` channel for those who wait for changes,
//! and only then answers the senders.

pub mod model;
mod snapshot;
mod state;
mod timers;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use snapshot::{AnswerSet, Defaults, InstanceView, NameEntry, NameForm, Snapshot};
pub use state::{Change, Effect, Entry, RegistryError, State, Stored, id_key};

use crate::store::{Batch, Store};

/// Most changes applied before a snapshot is published, so that a burst cannot starve readers
/// of fresh snapshots forever.
const MAX_BATCH: usize = 1024;

type Request = (Change, oneshot::Sender<Result<u64, RegistryError>>);

/// Called with every snapshot as it is published, before anyone is told of the change; lets a
/// reader derive its own view (the DNS fast path's pre-encoded answers) in step with the registry.
pub type OnPublish = Box<dyn Fn(&Arc<Snapshot>) + Send + Sync>;

/// A cheap, cloneable handle on the registry.
#[derive(Clone)]
pub struct Registry {
    current: Arc<ArcSwap<Snapshot>>,
    tx: mpsc::UnboundedSender<Request>,
    version: watch::Receiver<u64>,
}

impl Registry {
    /// Publishes the first snapshot of `state` and starts the writer, which runs until `token`
    /// is cancelled.
    pub fn start(
        state: State,
        defaults: Defaults,
        store: Box<dyn Store>,
        on_publish: OnPublish,
        token: CancellationToken,
    ) -> (Registry, tokio::task::JoinHandle<()>) {
        let first = Arc::new(Snapshot::build(&state, &defaults, None));
        on_publish(&first);
        let current = Arc::new(ArcSwap::from(first));
        let (version_tx, version) = watch::channel(state.version);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            state,
            defaults,
            store: Some(store),
            on_publish,
            current: current.clone(),
            version: version_tx,
            rx,
        };
        let task = tokio::spawn(writer.run(token));
        (Registry { current, tx, version }, task)
    }

    /// The current snapshot; cheap, lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Applies a change and waits until the snapshot that contains it is published. Returns the
    /// registry version that includes it.
    pub async fn apply(&self, change: Change) -> Result<u64, RegistryError> {
        let (ack, done) = oneshot::channel();
        self.tx.send((change, ack)).map_err(|_| RegistryError::Stopped)?;
        done.await.map_err(|_| RegistryError::Stopped)?
    }

    /// Applies a change without waiting for it (probe results: the next one supersedes it).
    pub fn send(&self, change: Change) {
        let (ack, _) = oneshot::channel();
        let _ = self.tx.send((change, ack));
    }

    /// A receiver that changes whenever the catalog's version does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.clone()
    }
}

struct Writer {
    state: State,
    defaults: Defaults,
    /// Moved into a blocking task for each commit, and back.
    store: Option<Box<dyn Store>>,
    on_publish: OnPublish,
    current: Arc<ArcSwap<Snapshot>>,
    version: watch::Sender<u64>,
    rx: mpsc::UnboundedReceiver<Request>,
}

impl Writer {
    async fn run(mut self, token: CancellationToken) {
        let mut batch = Vec::new();
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
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.state.begin();
            let mut effect = self.state.expire(tokio::time::Instant::now());
            let mut results = Vec::with_capacity(batch.len());
            for (change, ack) in batch.drain(..) {
                let r = self.state.apply(change);
                if let Ok(e) = r {
                    effect = effect.max(e);
                }
                results.push((r, ack));
            }
            if self.state.take_errors_changed() {
                effect = effect.max(Effect::Detail);
            }
            if effect == Effect::Changed {
                let version = self.state.version + 1;
                let ops = self.state.take_dirty();
                if let Err(e) = self.persist(Batch { version, ops }).await {
                    tracing::error!(error = %e, "store write failed; the batch is rolled back");
                    self.state.rollback();
                    let err = RegistryError::Store(e.to_string());
                    for (r, ack) in results {
                        let _ = ack.send(r.and(Err(err.clone())));
                    }
                    continue;
                }
                self.state.version = version;
            }
            self.state.commit();
            if effect != Effect::None {
                let previous = self.current.load();
                let next = Snapshot::build(&self.state, &self.defaults, Some(&previous));
                record_gauges(&next);
                let next = Arc::new(next);
                (self.on_publish)(&next);
                self.current.store(next);
            }
            if effect == Effect::Changed {
                self.version.send_replace(self.state.version);
            }
            for (r, ack) in results {
                let _ = ack.send(r.map(|_| self.state.version));
            }
            self.maybe_compact().await;
        }
    }

    /// Writes a batch durably, off the async threads.
    async fn persist(&mut self, batch: Batch) -> Result<(), crate::store::StoreError> {
        let mut store = self.store.take().expect("the store is home between commits");
        let started = std::time::Instant::now();
        let (store, result) = tokio::task::spawn_blocking(move || {
            let r = store.commit(&batch);
            (store, r)
        })
        .await
        .expect("store commit does not panic");
        self.store = Some(store);
        metrics::histogram!("signpost_store_write_duration_seconds").record(started.elapsed());
        metrics::counter!("signpost_store_writes_total", "result" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        result
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

/// Instance and check counts by status, for `/metrics`.
fn record_gauges(snap: &Snapshot) {
    use model::Status;
    let all = [Status::Passing, Status::Warning, Status::Critical, Status::Maintenance];
    let mut instances = [0u64; 4];
    let mut checks = [0u64; 4];
    for v in &snap.instances {
        instances[v.status as usize] += 1;
        for c in &v.health.checks {
            checks[c.status as usize] += 1;
        }
    }
    for s in all {
        metrics::gauge!("signpost_instances", "status" => s.as_str()).set(instances[s as usize] as f64);
        metrics::gauge!("signpost_checks", "status" => s.as_str()).set(checks[s as usize] as f64);
    }
    metrics::gauge!("signpost_registry_version").set(snap.version as f64);
}
