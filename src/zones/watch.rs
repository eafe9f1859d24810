//! Watches the zone folder with notify and feeds each created, changed or removed file to the
//! registry. Events are collected until the folder has been quiet for a moment, because editors
//! and `cp` write a file in several steps; the quiet window is short enough that a change is
//! served well within the 250 ms the contract promises.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Outcome;
use crate::registry::{Change, Registry, RegistryError};

/// How long the folder must be quiet before a batch is read.
const QUIET: Duration = Duration::from_millis(20);
/// A busy folder is still read at least this often.
const MAX_DELAY: Duration = Duration::from_millis(100);

/// A started watch whose events are buffered until `run` consumes them. Start it before the
/// first load of the folder, so that nothing written in between is missed.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    dir: PathBuf,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    limits: super::Limits,
}

impl Watcher {
    pub fn start(dir: &Path, limits: super::Limits) -> notify::Result<Watcher> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Watcher { _watcher: watcher, dir: dir.to_path_buf(), events, limits })
    }

    /// Applies changed files to the registry until `token` is cancelled; reads every file again
    /// when `rescan` is notified (a configuration reload).
    pub async fn run(mut self, registry: Registry, rescan: Arc<Notify>, token: CancellationToken) {
        // Files refused because another file held one of their ids: retried after every batch,
        // since the other file may have let go of the id meanwhile.
        // Seeded with the files refused at start-up.
        let mut refused: BTreeSet<PathBuf> = registry.snapshot().zone_errors.iter().map(|e| e.path.clone()).collect();
        loop {
            let mut paths = BTreeSet::new();
            tokio::select! {
                _ = token.cancelled() => return,
                event = self.events.recv() => match event {
                    Some(event) => collect(&mut paths, event),
                    None => return,
                },
                _ = rescan.notified() => {
                    // Every file there now, and every file served before (gone ones go).
                    paths.extend(super::list(&self.dir).unwrap_or_default());
                    paths.extend(registry.snapshot().zone_files());
                }
            }
            let deadline = Instant::now() + MAX_DELAY;
            while Instant::now() < deadline {
                match timeout(QUIET, self.events.recv()).await {
                    Ok(Some(event)) => collect(&mut paths, event),
                    Ok(None) | Err(_) => break,
                }
            }
            paths.extend(refused.iter().cloned());
            for path in paths {
                let change = super::read(&path, self.limits);
                report(&change);
                match registry.apply(change).await {
                    Ok(_) => {
                        refused.remove(&path);
                    }
                    Err(RegistryError::Zone(e)) => {
                        warn!(error = %e, "zone file refused; its last good version keeps serving");
                        refused.insert(path);
                    }
                    Err(RegistryError::Stopped) => return,
                    Err(e) => warn!(error = %e, file = %path.display(), "zone file not applied"),
                }
            }
        }
    }
}

fn collect(paths: &mut BTreeSet<PathBuf>, event: notify::Result<notify::Event>) {
    match event {
        Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
        Ok(event) => paths.extend(event.paths.into_iter().filter(|p| super::is_zone_file(p))),
        Err(e) => warn!(error = %e, "zone folder watch error"),
    }
}

fn report(change: &Change) {
    let broken = matches!(change, Change::ZoneFileBroken { .. });
    crate::metrics::zone_reload(if broken { Outcome::Error } else { Outcome::Ok });
    match change {
        Change::ZoneFile(f) => {
            info!(file = %f.path.display(), instances = f.instances.len(), "zone file loaded")
        }
        Change::ZoneFileRemoved(p) => info!(file = %p.display(), "zone file removed"),
        Change::ZoneFileBroken { errors, .. } => {
            for e in errors {
                warn!(error = %e, "zone file invalid; its last good version keeps serving");
            }
        }
        _ => {}
    }
}
