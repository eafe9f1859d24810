//! Where API registrations outlive the process. The registry writer hands the store one `Batch`
//! per group of changes and answers the clients only after `commit` returns: every write answered
//! 200 is on disk. Zone-file instances are never stored; their files are the source.
//!
//! The embedded store is a journal of our own (see `journal.rs` for why); cluster mode puts etcd
//! behind the same trait (`etcd/`, Cargo feature `cluster`). A shared store differs in three ways
//! the writer knows about: it decides the version (etcd's revision), it may refuse a batch because
//! another replica changed one of its keys first (`StoreError::Conflict`, with what is there now),
//! and it wants TTL heartbeats written too, so that a heartbeat sent to any replica counts on all.

#[cfg(feature = "cluster")]
pub mod etcd;
mod journal;

use std::path::PathBuf;
use std::time::Duration;

pub use journal::Journal;

use crate::model::Stored;

/// Cluster mode: the registry lives in etcd, shared by every replica pointed at the same prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// gRPC endpoints, `http://host:port` (`https://` with `tls`).
    pub endpoints: Vec<String>,
    /// Key prefix, ending in `/` (default `/signpost/`).
    pub prefix: String,
    /// How long a write may wait for etcd, retries included, before it answers 503 (default 5 s).
    pub timeout: Duration,
    /// TTL of the lease that keeps this replica listed as live (default 5 s): its checks are
    /// taken over within two of these after it dies.
    pub lease: Duration,
    /// `[store] ca_file`, `cert_file`, `key_file`: etcd over TLS (`https://` endpoints).
    pub tls: Option<EtcdTls>,
    /// `[store] username`, `password_file`: etcd's authentication.
    pub user: Option<EtcdUser>,
}

/// How replicas reach etcd over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA that issued etcd's certificate (PEM).
    pub ca_file: PathBuf,
    /// A client certificate and its key (PEM), for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// The etcd user replicas authenticate as; the password is read from the file at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdUser {
    pub name: String,
    pub password_file: PathBuf,
}

/// Why a replica's copy of a shared store may be out of date (its watch of etcd is broken), or
/// nothing: set by the cluster source, shown by `/readyz`. A cheap clone of one shared value.
#[derive(Debug, Clone, Default)]
pub struct Degraded(std::sync::Arc<arc_swap::ArcSwapOption<String>>);

impl Degraded {
    pub fn set(&self, reason: String) {
        self.0.store(Some(std::sync::Arc::new(reason)));
    }

    pub fn clear(&self) {
        self.0.store(None);
    }

    /// The reason, while degraded.
    pub fn reason(&self) -> Option<std::sync::Arc<String>> {
        self.0.load_full()
    }
}

/// The seed of the DNS cookie secrets of a server whose store is `dir`, kept in
/// `dir/cookie-seed` (created on first start, readable by the owner only): a restart keeps the
/// server cookies clients hold valid.
pub fn cookie_seed(dir: &std::path::Path) -> Result<[u8; 16], StoreError> {
    let path = dir.join("cookie-seed");
    let io = |source: std::io::Error| StoreError::Io { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_seed(text.trim()).ok_or_else(|| StoreError::Corrupt {
            path: path.clone(),
            message: "not 32 hex digits; remove it and a new one is made at start".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let seed = random_seed().map_err(io)?;
            let tmp = dir.join(".cookie-seed.tmp");
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                f.write_all(hex(&seed).as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            Ok(seed)
        }
        Err(e) => Err(io(e)),
    }
}

/// Sixteen bytes from the kernel's random source.
pub(crate) fn random_seed() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut seed = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(seed)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn parse_seed(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut seed = [0u8; 16];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

/// What one batch of registry changes leaves behind.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// The registry version after the batch; stored so that versions never go back.
    pub version: u64,
    /// Registrations to write (by id key), or to delete (`None`).
    pub ops: Vec<(String, Option<Stored>)>,
    /// For a shared store, parallel to `ops`: the store revision at which each key was last
    /// modified as far as this replica knows (0 = absent). The write happens only if they all
    /// still hold (compare-and-swap), so that no replica overwrites a change it has not seen.
    #[serde(skip)]
    pub expect: Vec<u64>,
    /// TTL heartbeats received here, as (instance key, check id), for a shared store.
    #[serde(skip)]
    pub beats: Vec<(String, String)>,
}

/// Everything a store held when it was opened.
#[derive(Debug, Default)]
pub struct Loaded {
    pub version: u64,
    pub records: Vec<Stored>,
}

/// Where a batch landed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The version the batch was stored at: `Batch::version`, or a shared store's own revision.
    pub version: u64,
    /// A shared store, parallel to `Batch::ops`: the revision each key was written at (a big
    /// batch may take several transactions). Empty: all at `version`.
    pub revisions: Vec<u64>,
}

impl Committed {
    pub fn at(version: u64) -> Committed {
        Committed { version, revisions: Vec::new() }
    }
}

/// What a shared store holds now under one key of a refused batch.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub key: String,
    pub stored: Option<Stored>,
    /// The key's modification revision (0 = absent).
    pub modified: u64,
    /// The store revision this was read at.
    pub revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data dir {}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    /// The shared store could not be reached or refused the write.
    #[error("{0}")]
    Unavailable(String),
    /// Another replica changed a key of the batch first; nothing was written.
    #[error("another replica changed the same registration at the same time")]
    Conflict(Vec<Fresh>),
}

/// A commit in flight, as `Store::commit_async` returns it.
pub type Commit<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Committed, StoreError>> + Send + 'a>>;

/// A durable home for registrations.
pub trait Store: Send + 'static {
    /// Makes `batch` durable: once this returns Ok, it survives `kill -9` and power loss. The
    /// writer calls it on a blocking thread (the journal writes and fsyncs), unless the store
    /// commits through `commit_async`; a store implements one of the two.
    fn commit(&mut self, _batch: &Batch) -> Result<Committed, StoreError> {
        unreachable!("a store without commit_async implements commit")
    }

    /// The commit as a future, for a store whose commit is network I/O (etcd): the writer
    /// awaits it on its own task. Handing each batch to a blocking thread and back costs two
    /// thread wake-ups per write, a tenth of a replica's CPU under a stream of single writes.
    /// None (the default): `commit` runs on a blocking thread.
    fn commit_async<'a>(&self, _batch: &'a Batch) -> Option<Commit<'a>> {
        None
    }

    /// Returns true if other replicas share this store (cluster mode): heartbeats are written,
    /// and `Batch::expect` is honoured.
    fn is_shared(&self) -> bool {
        false
    }

    /// At most this many changes are applied per batch (a shared store's transactions have a
    /// size limit).
    fn max_batch(&self) -> usize {
        1024
    }

    /// Returns true if the store would like a full rewrite (`compact`) to bound its size.
    fn wants_compaction(&self) -> bool {
        false
    }

    /// Replaces the store's content with exactly these records at `version`.
    fn compact(&mut self, _version: u64, _records: Vec<Stored>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A store that keeps nothing, for tools that never write (`check-zones`).
pub struct NoStore;

impl Store for NoStore {
    fn commit(&mut self, batch: &Batch) -> Result<Committed, StoreError> {
        Ok(Committed::at(batch.version))
    }
}
