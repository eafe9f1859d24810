//! One etcd client per member, and which one to use. etcd-client's own balanced channel keeps
//! sending requests to a member that is down (etcd-client issues #12 and #39), so that losing one
//! member of three would fail writes; here a request that fails moves everyone on to the next
//! member, as etcd's Go client does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

#[derive(Clone)]
pub(crate) struct Pool {
    clients: Arc<[(String, Client)]>,
    current: Arc<AtomicUsize>,
}

impl Pool {
    /// Clients for `endpoints` (`http://host:port`). Connections are made lazily: a member that
    /// is down now is no error until it is asked something.
    pub async fn connect(endpoints: &[String]) -> Result<Pool, etcd_client::Error> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from the others refuses requests and cancels watches instead of
            // answering from a stale copy or going quiet.
            .with_require_leader(true);
        let mut clients = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let client = Client::connect([e], Some(options.clone())).await?;
            clients.push((e.trim_start_matches("http://").to_string(), client));
        }
        Ok(Pool { clients: clients.into(), current: Arc::new(AtomicUsize::new(0)) })
    }

    /// The member to ask now, with its index for `failed`.
    pub fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len();
        (i, self.clients[i].1.clone())
    }

    /// Asking member `i` failed: move on to the next (unless someone already has).
    pub fn failed(&self, i: usize) {
        let next = (i + 1) % self.clients.len();
        let _ = self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// `host:port` of member `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.clients[i].0
    }
}
