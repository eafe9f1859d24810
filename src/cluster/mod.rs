//! Cluster mode as a source: several replicas share one registry in etcd. The store half, which
//! commits this replica's writes, is `store::etcd`; this half follows what every replica wrote
//! (`follow.rs`: the watch of the prefix, fed to the registry as remote changes) and keeps this
//! replica listed as live (`members.rs`: a key on a lease), so that the replicas share out the
//! API checks among the live ones (`registry::Ownership`).

mod follow;
mod members;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::registry::{Ownership, Registry};
use crate::store::etcd::{Etcd, Keys, Loaded, Pool};
use crate::store::{ClusterConfig, Degraded};

/// The watch that follows etcd and the lease that keeps this replica listed as live, started
/// once the registry runs.
pub struct Cluster {
    pool: Pool,
    keys: Keys,
    config: ClusterConfig,
    ownership: Ownership,
    /// The revision the load read at; the watch starts after it.
    revision: i64,
    replicas: Vec<String>,
}

impl Cluster {
    /// This replica in the cluster whose store `etcd` opened and read (`loaded`), under a new
    /// replica id.
    pub fn new(etcd: &Etcd, loaded: &Loaded, config: &ClusterConfig) -> Cluster {
        let me = replica_id();
        let ownership = Ownership::replica(&me);
        ownership.set_live(loaded.replicas.iter().cloned());
        for (id, http) in &loaded.replica_http {
            ownership.set_http(id, http.clone());
        }
        info!(replica = %me, live = loaded.replicas.len(), "joining the cluster");
        let (pool, keys) = etcd.link();
        Cluster {
            pool,
            keys,
            config: config.clone(),
            ownership,
            revision: loaded.revision as i64,
            replicas: loaded.replicas.clone(),
        }
    }

    /// Which API checks this replica probes, expires and reaps.
    pub fn ownership(&self) -> Ownership {
        self.ownership.clone()
    }

    /// Follows etcd into `registry` and holds this replica's lease until `token` is cancelled;
    /// then gives the lease back, so that the others take its checks over at once. `about` is
    /// what the replica key says of this replica (its addresses), for people reading etcd.
    /// While the watch is broken, `degraded` says so.
    pub async fn run(self, registry: Registry, about: serde_json::Value, degraded: Degraded, token: CancellationToken) {
        let me = self.ownership.me().expect("a cluster replica has an id").to_string();
        let hold = members::hold(
            self.pool.clone(),
            self.keys.replica(&me),
            about.to_string(),
            self.config.lease,
            token.clone(),
        );
        let follow = follow::Follower {
            pool: self.pool,
            keys: self.keys,
            next: self.revision + 1,
            registry,
            ownership: self.ownership,
            replicas: self.replicas.into_iter().collect(),
            degraded,
        }
        .run(token);
        tokio::join!(hold, follow);
    }
}

/// A random id for this run of this replica: hostname, pid and a random part, so that a
/// restarted replica never inherits the lease of its previous life.
fn replica_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
    let host = if host.is_empty() { "signpost".to_string() } else { host };
    format!("{host}-{}-{:08x}", std::process::id(), h.finish() as u32)
}
