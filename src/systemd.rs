//! Telling systemd how the server is doing (sd_notify(3)), when it runs as a `Type=notify`
//! service: READY=1 once it would answer `/readyz` with 200, a one-line STATUS= kept current
//! (services, instances, checks), RELOADING=1 … READY=1 around a reload, STOPPING=1 when it
//! begins to shut down, and WATCHDOG=1 while the DNS loops are alive, so that `WatchdogSec=`
//! restarts a wedged server. Without `NOTIFY_SOCKET` every call does nothing: the same binary
//! runs by hand, in Docker and under systemd.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::dns::Liveness;
use crate::model::Status;
use crate::registry::{Registry, Snapshot};

/// The server is ready: every part would answer now.
pub fn ready(snap: &Snapshot) {
    send(&[NotifyState::Ready, NotifyState::Status(&summary(snap))]);
}

/// A reload begins (systemd waits for the READY=1 that ends it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// A reload is done.
pub fn reloaded(snap: &Snapshot) {
    ready(snap);
}

/// Shutdown begins.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "cannot tell systemd");
    }
}

/// One line on what the server holds, for `systemctl status`.
pub fn summary(snap: &Snapshot) -> String {
    let counts = snap.counts();
    let instances: u64 = counts.instances.iter().sum();
    let checks: u64 = counts.checks.iter().sum();
    let services = snap.service_views().count();
    format!(
        "serving {services} services, {instances} instances ({} passing, {} critical), {checks} checks",
        counts.instances[Status::Passing as usize],
        counts.instances[Status::Critical as usize]
    )
}

/// Keeps systemd's STATUS= current, at most once a second, until `token` is cancelled.
pub async fn keep_status(registry: Registry, token: CancellationToken) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut changes = registry.subscribe();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        send(&[NotifyState::Status(&summary(&registry.snapshot()))]);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Pings systemd's watchdog at half its interval, as long as every DNS loop has shown life
/// within that interval; a loop that stops (a wedged thread, a stuck runtime) stops the pings,
/// and systemd restarts the server after `WatchdogSec=`.
pub async fn watchdog(liveness: Arc<Liveness>, token: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let every = interval / 2;
    let mut tick = tokio::time::interval(every);
    let mut silent = false;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        match liveness.stalest() {
            // Unmoved over a whole tick (a stop is seen at the first tick after it).
            Some(age) if age >= every => {
                if !silent {
                    warn!(?age, watchdog = ?interval, "a DNS loop has not come round; not pinging systemd's watchdog");
                }
                silent = true;
            }
            _ => {
                silent = false;
                send(&[NotifyState::Watchdog]);
            }
        }
    }
}
