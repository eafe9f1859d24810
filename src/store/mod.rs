//! Where API registrations outlive the process. The registry writer hands the store one `Batch`
//! per group of changes and answers the clients only after `commit` returns: every write answered
//! 200 is on disk. Zone-file instances are never stored; their files are the source.
//!
//! The embedded store is a journal of our own (see `journal.rs` for why); cluster mode puts etcd
//! behind the same trait.

mod journal;

use std::path::PathBuf;

pub use journal::Journal;

use crate::registry::Stored;

/// What one batch of registry changes leaves behind.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// The registry version after the batch; stored so that versions never go back.
    pub version: u64,
    /// Registrations to write (by id key), or to delete (`None`).
    pub ops: Vec<(String, Option<Stored>)>,
}

/// Everything a store held when it was opened.
#[derive(Debug, Default)]
pub struct Loaded {
    pub version: u64,
    pub records: Vec<Stored>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data dir {}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
}

/// A durable home for registrations.
pub trait Store: Send + 'static {
    /// Makes `batch` durable: once this returns Ok, it survives `kill -9` and power loss.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;

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
    fn commit(&mut self, _batch: &Batch) -> Result<(), StoreError> {
        Ok(())
    }
}
