//! Follows the zone folder (`crate::watch`) and feeds each created, changed or removed zone file
//! to the registry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Outcome;
use crate::registry::{Change, Registry, RegistryError};
use crate::watch::Watch;

/// A started watch of the zone folder whose events are buffered until `run` consumes them.
/// Start it before the first load of the folder, so that nothing written in between is missed.
pub struct Watcher {
    watch: Watch,
    dir: PathBuf,
    limits: super::Limits,
}

impl Watcher {
    pub fn start(dir: &Path, limits: super::Limits) -> notify::Result<Watcher> {
        Ok(Watcher { watch: Watch::dirs("zone folder", &[dir.to_path_buf()])?, dir: dir.to_path_buf(), limits })
    }

    /// Applies changed files to the registry until `token` is cancelled; reads every file again
    /// when `rescan` is notified (a configuration reload).
    pub async fn run(mut self, registry: Registry, rescan: Arc<Notify>, token: CancellationToken) {
        // Files refused because another file held one of their ids: retried after every batch,
        // since the other file may have let go of the id meanwhile.
        // Seeded with the files refused at start-up.
        let mut refused: BTreeSet<PathBuf> = registry.snapshot().zone_errors.iter().map(|e| e.path.clone()).collect();
        loop {
            let mut paths = tokio::select! {
                _ = token.cancelled() => return,
                paths = self.watch.next() => match paths {
                    Some(paths) => paths,
                    None => return,
                },
                _ = rescan.notified() => {
                    // Every file there now, and every file served before (gone ones go).
                    let mut paths: BTreeSet<PathBuf> = super::list(&self.dir).unwrap_or_default().into_iter().collect();
                    paths.extend(registry.snapshot().zone_files());
                    paths
                }
            };
            paths.retain(|p| super::is_zone_file(p));
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
