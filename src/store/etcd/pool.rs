//! One etcd client per member, and which one to use. etcd-client's own balanced channel keeps
//! sending requests to a member that is down (etcd-client issues #12 and #39), so that losing one
//! member of three would fail writes; here a request that fails moves everyone on to the next
//! member, as etcd's Go client does.
//!
//! Clients connect lazily: a member that is down now is no error until it is asked something.
//! With etcd's authentication a client must authenticate first, which needs its member up; a
//! member down at start gets a client without credentials (its refusals move requests on, as a
//! down member's would) and is connected again in the background until it answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use etcd_client::{Client, ConnectOptions, KvClient};
use tracing::{info, warn};

use super::access;
use crate::store::{ClusterConfig, StoreError};

/// How long authenticating with one member may take at start.
const AUTHENTICATE_WITHIN: Duration = Duration::from_secs(3);
/// Tries per member at start before it is left to the background: a client certificate refused
/// with TLS 1.3 shows as the server's alert on some tries and as a closed connection on others,
/// and only the alert says that the configuration is wrong.
const TRIES_AT_START: usize = 3;
/// How often a member that could not be authenticated with is tried again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct Pool {
    members: Arc<[Member]>,
    current: Arc<AtomicUsize>,
}

struct Member {
    /// `host:port`, for messages.
    endpoint: String,
    client: ArcSwap<Client>,
}

impl Pool {
    /// Clients for the configuration's endpoints, with its TLS files and user. Fails at once when
    /// a member says the configuration is wrong (a wrong password, a refused certificate).
    pub async fn connect(config: &ClusterConfig) -> Result<Pool, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            // A member cut off from the others refuses requests and cancels watches instead of
            // answering from a stale copy or going quiet.
            .with_require_leader(true);
        let access = access::read(config, options)?;
        let authenticated = access.user.as_ref().map(|(name, password)| {
            access.options.clone().with_user(name.as_str(), password.as_str()).with_auto_token_refresh(true)
        });
        let mut members = Vec::with_capacity(config.endpoints.len());
        let mut later = Vec::new();
        for url in &config.endpoints {
            let endpoint = super::host_port(url).to_string();
            let lazy = || async {
                Client::connect([url], Some(access.options.clone()))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("etcd at {endpoint}: {e}")))
            };
            let client = match &authenticated {
                None => lazy().await?,
                Some(options) => match first_authentication(url, options, config, &endpoint).await? {
                    Some(client) => client,
                    None => {
                        later.push((members.len(), url.clone(), options.clone()));
                        lazy().await?
                    }
                },
            };
            members.push(Member { endpoint, client: ArcSwap::from_pointee(client) });
        }
        let pool = Pool { members: members.into(), current: Arc::new(AtomicUsize::new(0)) };
        for (i, url, options) in later {
            tokio::spawn(reconnect(Arc::downgrade(&pool.members), i, url, options));
        }
        Ok(pool)
    }

    /// The member to ask now, with its index for `failed`.
    pub fn client(&self) -> (usize, Client) {
        let i = self.now();
        (i, (**self.members[i].client.load()).clone())
    }

    /// The key-value client of the member to ask now, for a write: a whole `Client` is eight
    /// gRPC clients, and a write needs one.
    pub fn kv(&self) -> (usize, KvClient) {
        let i = self.now();
        (i, self.members[i].client.load().kv_client())
    }

    /// The index of the member to ask now.
    fn now(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.members.len()
    }

    /// Asking member `i` failed: move on to the next (unless someone already has).
    pub fn failed(&self, i: usize) {
        let next = (i + 1) % self.members.len();
        let _ = self.current.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `host:port` of member `i`.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].endpoint
    }
}

/// A client of `url` that has authenticated at start; `None` if the member cannot be reached now
/// (it is left to `reconnect`); an error if it says the configuration is wrong.
async fn first_authentication(
    url: &str,
    options: &ConnectOptions,
    config: &ClusterConfig,
    endpoint: &str,
) -> Result<Option<Client>, StoreError> {
    let mut error = String::from("no answer");
    for _ in 0..TRIES_AT_START {
        match authenticate(url, options).await {
            Ok(client) => return Ok(Some(client)),
            Err(Some(e)) => match access::misconfigured(&e, config, endpoint) {
                Some(why) => return Err(StoreError::Unavailable(why)),
                None => error = e.to_string(),
            },
            Err(None) => {}
        }
    }
    warn!(%endpoint, %error, "cannot authenticate with this etcd member now; trying again in the background");
    Ok(None)
}

/// A client of `url` that has authenticated; `None` in the error when the member did not answer.
async fn authenticate(url: &str, options: &ConnectOptions) -> Result<Client, Option<etcd_client::Error>> {
    match tokio::time::timeout(AUTHENTICATE_WITHIN, Client::connect([url], Some(options.clone()))).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// Authenticates with member `i` until it answers, then puts its client in place; stops when the
/// pool is gone.
async fn reconnect(members: Weak<[Member]>, i: usize, url: String, options: ConnectOptions) {
    loop {
        tokio::time::sleep(RETRY).await;
        if members.strong_count() == 0 {
            return;
        }
        if let Ok(client) = authenticate(&url, &options).await {
            let Some(members) = members.upgrade() else { return };
            members[i].client.store(Arc::new(client));
            info!(endpoint = %members[i].endpoint, "authenticated with the etcd member");
            return;
        }
    }
}
