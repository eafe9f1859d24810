//! This replica's presence in the cluster: a key under `<prefix>replicas/` attached to an etcd
//! lease that the replica keeps alive. Every replica watches these keys to know which replicas
//! are live (see `registry/ownership.rs` for how checks are shared out among them).
//!
//! Why leases and hashing rather than a lease per check or an elected leader: one lease and one
//! key per replica, whatever the number of checks; no replica coordinates the others, so no
//! second failure mode (a leader that dies) and nothing to hand over; and when a replica dies,
//! etcd deletes its key when the lease runs out (one lease period) and the survivors take its
//! checks at once, within the two lease periods promised. A graceful shutdown revokes the lease,
//! so the checks move without waiting at all.

use std::time::Duration;

use etcd_client::PutOptions;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::etcd::Pool;

/// Keeps `key` = `value` alive on a lease of `ttl` until `token` is cancelled, then revokes it.
/// If the lease is lost (etcd was unreachable for longer than `ttl`), it takes a new one.
pub(super) async fn hold(pool: Pool, key: String, value: String, ttl: Duration, token: CancellationToken) {
    let mut failing = false;
    loop {
        let (i, client) = pool.client();
        let lease = tokio::select! {
            _ = token.cancelled() => return,
            r = tokio::time::timeout(ttl / 2, grant(&client, &key, &value, ttl)) => r.map_err(|_| "no answer".to_string()).and_then(|r| r),
        };
        if lease.is_err() {
            pool.failed(i);
        }
        let lease = match lease {
            Ok(id) => {
                if std::mem::take(&mut failing) {
                    info!(%key, "listed in etcd as live again");
                }
                id
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(%key, error = %e, "cannot list this replica in etcd; trying again");
                }
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        let lost = tokio::select! {
            _ = token.cancelled() => {
                let mut c = client.clone();
                // Best effort: if etcd does not answer, the lease runs out by itself.
                let _ = tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(lease)).await;
                return;
            }
            e = keep_alive(&client, lease, ttl) => e,
        };
        pool.failed(i);
        warn!(%key, error = %lost, "lost the etcd lease; taking a new one");
        failing = true;
    }
}

async fn grant(client: &etcd_client::Client, key: &str, value: &str, ttl: Duration) -> Result<i64, String> {
    let mut c = client.clone();
    let lease = c.lease_grant(ttl.as_secs() as i64, None).await.map_err(|e| e.to_string())?.id();
    c.put(key, value, Some(PutOptions::new().with_lease(lease))).await.map_err(|e| e.to_string())?;
    Ok(lease)
}

/// Renews `lease` three times per `ttl` until that fails; returns why.
async fn keep_alive(client: &etcd_client::Client, lease: i64, ttl: Duration) -> String {
    let mut c = client.clone();
    let (mut keeper, mut answers) = match c.lease_keep_alive(lease).await {
        Ok(k) => k,
        Err(e) => return e.to_string(),
    };
    let period = ttl / 3;
    let mut tick = tokio::time::interval(period);
    let mut last_answer = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if last_answer.elapsed() >= ttl {
                    return "no keep-alive answer for a whole lease period".into();
                }
                match tokio::time::timeout(period, keeper.keep_alive()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return e.to_string(),
                    Err(_) => return "keep-alive request timed out".into(),
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(a)) if a.ttl() > 0 => last_answer = tokio::time::Instant::now(),
                Ok(Some(_)) => return "the lease expired".into(),
                Ok(None) => return "the keep-alive stream ended".into(),
                Err(e) => return e.to_string(),
            },
        }
    }
}
