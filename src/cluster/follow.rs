//! Follows etcd: watches the prefix from the last revision seen and turns each event into a
//! registry change (a registration written or deleted by any replica, a heartbeat, a replica
//! joining or leaving). When the watch breaks (a member stopped, etcd down), it is opened again
//! from the next revision, so nothing is missed; if etcd has compacted that revision away, the
//! whole prefix is read again and replaces what the registry holds.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::model::id_key;
use crate::registry::{Change, Ownership, Registry};
use crate::store::etcd::{Key, Keys, Loaded, Pool, decode, load};

pub(super) struct Follower {
    pub pool: Pool,
    pub keys: Keys,
    /// The next revision to watch from.
    pub next: i64,
    pub registry: Registry,
    pub ownership: Ownership,
    pub replicas: BTreeSet<String>,
    /// Set while the watch is broken, with why.
    pub degraded: crate::store::Degraded,
}

/// Pause after a failed watch, doubling up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

impl Follower {
    pub async fn run(mut self, token: CancellationToken) {
        let mut pause = FIRST_PAUSE;
        let mut broken: Option<String> = None;
        loop {
            let ended = tokio::select! {
                _ = token.cancelled() => return,
                r = self.watch(&mut broken) => r,
            };
            match ended {
                Ok(()) => pause = FIRST_PAUSE,
                Err(e) => {
                    self.degraded.set(format!("no watch of etcd ({e}); DNS answers from the last state seen"));
                    if broken.is_none() {
                        warn!(error = %e, from = self.next, "lost the etcd watch; DNS answers from the last state until it is back");
                    }
                    broken = Some(e);
                }
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// One watch, until it breaks. Ok if it ended in a way that calls for a new one at once.
    async fn watch(&mut self, broken: &mut Option<String>) -> Result<(), String> {
        let (i, mut client) = self.pool.client();
        let result = self.watch_on(&mut client, broken).await;
        if result.is_err() {
            self.pool.failed(i);
        }
        result
    }

    async fn watch_on(&mut self, client: &mut etcd_client::Client, broken: &mut Option<String>) -> Result<(), String> {
        let options = WatchOptions::new().with_prefix().with_start_revision(self.next);
        let mut stream =
            tokio::time::timeout(Duration::from_secs(5), client.watch(self.keys.prefix.clone(), Some(options)))
                .await
                .map_err(|_| "no answer".to_string())?
                .map_err(|e| e.to_string())?;
        loop {
            let Some(resp) = stream.message().await.map_err(|e| e.to_string())? else {
                return Err("the watch stream ended".into());
            };
            if resp.created() {
                if broken.take().is_some() {
                    info!(from = self.next, "etcd watch is back; catching up");
                }
                self.degraded.clear();
            }
            if resp.compact_revision() > 0 {
                warn!(
                    wanted = self.next,
                    compacted = resp.compact_revision(),
                    "etcd compacted revisions this replica had not seen; reading everything again"
                );
                self.reload().await?;
                return Ok(());
            }
            if resp.canceled() {
                return Err(format!("etcd cancelled the watch: {}", resp.cancel_reason()));
            }
            let mut replicas_changed = false;
            let events = !resp.events().is_empty();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let revision = kv.mod_revision();
                self.next = self.next.max(revision + 1);
                let put = event.event_type() == EventType::Put;
                match self.keys.parse(kv.key()) {
                    Key::Instance(key) => {
                        let stored = if put { decode(kv.value(), key) } else { None };
                        if put && stored.is_none() {
                            continue;
                        }
                        let modified = if put { revision as u64 } else { 0 };
                        let key = id_key(key);
                        self.registry.send(Change::Remote { key, stored, modified, revision: revision as u64 });
                    }
                    Key::Beat { check, .. } if put => {
                        self.registry.send(Change::RemoteBeat { check_id: check.to_string() });
                    }
                    Key::Replica(id) => {
                        if let Some(http) = crate::store::etcd::replica_http(kv.value()).filter(|_| put) {
                            self.ownership.set_http(id, http);
                        }
                        replicas_changed |=
                            if put { self.replicas.insert(id.to_string()) } else { self.replicas.remove(id) };
                    }
                    Key::Beat { .. } | Key::Other => {}
                }
            }
            if replicas_changed {
                self.ownership.set_live(self.replicas.iter().cloned());
            }
            // etcd sends a revision's events in one response (no fragmenting asked for), in
            // revision order: everything before `next` has been delivered.
            if events {
                self.registry.send(Change::Watched { revision: (self.next - 1) as u64 });
            }
        }
    }

    /// Reads the whole prefix again and replaces the registry's API registrations with it.
    async fn reload(&mut self) -> Result<(), String> {
        let (_, client) = self.pool.client();
        let mut records = Vec::new();
        let loaded = tokio::time::timeout(
            Duration::from_secs(30),
            load(&client, &self.keys, Duration::from_secs(5), &mut records),
        )
        .await
        .map_err(|_| "no answer to the reload".to_string())?
        .map_err(|e| e.to_string())?;
        let Loaded { revision, replicas, replica_http, .. } = loaded;
        for (id, http) in replica_http {
            self.ownership.set_http(&id, http);
        }
        info!(revision, instances = records.len(), "reloaded the registry from etcd");
        self.replicas = replicas.into_iter().collect();
        self.ownership.set_live(self.replicas.iter().cloned());
        self.registry.send(Change::Reload { records, revision });
        self.next = revision as i64 + 1;
        Ok(())
    }
}
