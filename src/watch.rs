//! Watching folders for changes (notify), for everything that is reloaded from disk while the
//! server runs: zone files, TLS certificates and keys, token files. One piece, so that each of
//! them reacts to the ways files really change: editors and `cp` write in several steps, deploy
//! tools rename a temporary file over the old one, certbot and Kubernetes swap symlinks.
//!
//! Events are collected until the folders have been quiet for a moment, then handed over as one
//! batch of paths; the quiet window is short enough that a change is acted on well within the
//! 250 ms the contract promises for zone files (and the second promised for certificates).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How long the folders must be quiet before a batch is handed over.
const QUIET: Duration = Duration::from_millis(20);
/// Busy folders are still handed over at least this often.
const MAX_DELAY: Duration = Duration::from_millis(100);

/// A started watch whose events are buffered until `next` reads them. Start it before the first
/// read of what it watches, so that nothing written in between is missed.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    /// What is watched, for log lines ("zone folder", "TLS files").
    what: &'static str,
}

impl Watch {
    /// Watches the folders `dirs` (not their subfolders).
    pub fn dirs(what: &'static str, dirs: &[PathBuf]) -> notify::Result<Watch> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })?;
        for dir in dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(Watch { _watcher: watcher, events, what })
    }

    /// Watches the folders that hold `files`: a file replaced by a rename or a symlink swap is
    /// an event in its folder, not on the file. A file that is a symlink also has the folder of
    /// what it points to watched, so that a target rewritten in place is seen too.
    pub fn files(what: &'static str, files: &[&Path]) -> notify::Result<Watch> {
        let mut dirs = BTreeSet::new();
        for file in files {
            dirs.insert(folder(file));
            if let Ok(target) = std::fs::canonicalize(file) {
                dirs.insert(folder(&target));
            }
        }
        Watch::dirs(what, &dirs.into_iter().collect::<Vec<_>>())
    }

    /// The paths changed in the next burst of events: waits for the first, then collects until
    /// the folders are quiet. `None` once the watch has stopped.
    pub async fn next(&mut self) -> Option<BTreeSet<PathBuf>> {
        let mut paths = BTreeSet::new();
        let first = self.events.recv().await?;
        self.collect(&mut paths, first);
        let deadline = Instant::now() + MAX_DELAY;
        while Instant::now() < deadline {
            match timeout(QUIET, self.events.recv()).await {
                Ok(Some(event)) => self.collect(&mut paths, event),
                Ok(None) | Err(_) => break,
            }
        }
        Some(paths)
    }

    /// Calls `act` after every burst of changes, until `token` is cancelled or the watch stops.
    pub async fn each(mut self, token: CancellationToken, mut act: impl FnMut()) {
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                batch = self.next() => if batch.is_none() { return },
            }
            act();
        }
    }

    fn collect(&self, paths: &mut BTreeSet<PathBuf>, event: notify::Result<notify::Event>) {
        match event {
            // Reading a file changes nothing (and our own reads would otherwise wake us).
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(event) => paths.extend(event.paths),
            Err(e) => warn!(error = %e, watched = self.what, "file watch error"),
        }
    }
}

/// The folder holding `file`; `.` for a bare file name.
fn folder(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
