//! Cluster mode's store: the registry in etcd, shared by every replica pointed at the same prefix.
//!
//! Keys under the prefix (default `/signpost/`):
//! - `instances/<id key>`: one API registration, its checks, TTL state and health, as the JSON
//!   `Stored` the embedded store writes.
//! - `beats/<id key>/<check id>`: the time of the last TTL heartbeat, rewritten by each heartbeat
//!   whichever replica received it, so that every replica's TTL timer hears it.
//! - `replicas/<replica id>`: one per live replica, attached to its lease (`members.rs`).
//!
//! Writes: the registry writer hands each batch to `commit` as before. It becomes etcd
//! transactions that compare each key's modification revision with the one this replica last
//! saw (so that no replica overwrites a change it has not seen; on a mismatch the writer applies
//! etcd's value and tries again), retried through leader elections and lost connections until
//! `[store] timeout`, then refused with a message naming etcd. The version (X-Consul-Index, SOA
//! serial) follows etcd's revision: global across replicas, and it never goes back.
//!
//! Reads: `open` loads everything before the replica is `ready`; then the cluster source
//! (`cluster/`) watches the prefix from the loaded revision through the same clients (`link`)
//! and feeds every change to the registry as a remote change.

mod access;
mod pool;

use std::time::Duration;

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use tokio::time::Instant;
use tracing::{info, warn};

pub(crate) use self::pool::Pool;
use super::{Batch, ClusterConfig, Commit, Committed, Fresh, Store, StoreError};
use crate::model::{Stored, id_key};

/// Keys per transaction: a deletion takes two operations (the instance and its heartbeats), and
/// etcd refuses more than 128 operations per transaction branch by default (`--max-txn-ops`).
const CHUNK: usize = 64;
/// How long the initial load may keep trying before the replica gives up starting.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);
/// How long one member may take over a transaction before it goes to the next.
const ATTEMPT: Duration = Duration::from_millis(800);
/// Keys read per request while loading. Large: etcd (3.4, 3.5) walks every key from a page's
/// start to the end of the prefix to count them, whatever the limit, so that a load costs about
/// keys² / PAGE; at 100,000 instances pages of 500 took 3-4 s on a loaded 2-core machine.
const PAGE: i64 = 5_000;
/// The largest page answer accepted (tonic's default is 4 MiB, 800 bytes per record at `PAGE`).
const MAX_PAGE_BYTES: usize = 256 << 20;

/// The store half: what the registry writer commits through. Cloned for each commit, a future
/// the writer awaits (an `Arc` and two short strings).
#[derive(Clone)]
pub struct Etcd {
    pool: Pool,
    keys: Keys,
    timeout: Duration,
    endpoints: String,
}

/// What a load found under the prefix at one revision besides the registrations, which went to
/// its `Sink` as they were read.
pub struct Loaded {
    pub revision: u64,
    /// How many registrations went to the sink.
    pub instances: usize,
    pub replicas: Vec<String>,
    /// The HTTP `ADDR:PORT` each live replica announced in its key.
    pub replica_http: Vec<(String, String)>,
}

/// Where a load puts the registrations it reads, a page at a time as each is decoded: a replica
/// joining 100,000 instances builds its registry from them as they come, and never holds the
/// whole catalog twice (decoded, then as its state). Holding it twice cost ~25 MB of RSS that
/// the allocator kept after the load.
pub trait Sink {
    /// A load at `revision` starts: what an earlier, failed attempt delivered is void.
    fn start(&mut self, revision: u64);
    /// A page of registrations, each with the revision it was last modified at.
    fn page(&mut self, records: Vec<(Stored, u64)>);
}

/// Collects a whole load (the watch's reload after a compaction hands it over in one change).
impl Sink for Vec<(Stored, u64)> {
    fn start(&mut self, _revision: u64) {
        self.clear();
    }

    fn page(&mut self, records: Vec<(Stored, u64)>) {
        self.extend(records);
    }
}

/// Opens the shared store: connects, and reads everything under the prefix into `sink`
/// (retrying while etcd does not answer, for up to 30 s).
pub async fn open(config: &ClusterConfig, sink: &mut impl Sink) -> Result<(Etcd, Loaded), StoreError> {
    let endpoints = config.endpoints.iter().map(|e| host_port(e)).collect::<Vec<_>>().join(",");
    let pool = Pool::connect(config).await?;
    let keys = Keys { prefix: config.prefix.clone() };
    let started = Instant::now();
    let loaded = loop {
        let (i, client) = pool.client();
        let result = tokio::time::timeout(OPEN_PATIENCE, load(&client, &keys, config.timeout, sink)).await;
        if !matches!(result, Ok(Ok(_))) {
            pool.failed(i);
        }
        // A wrong certificate or password will not get better by waiting.
        if let Ok(Err(e)) = &result
            && let Some(why) = access::misconfigured(e, config, pool.endpoint(i))
        {
            return Err(StoreError::Unavailable(why));
        }
        match result {
            Ok(Ok(r)) => break r,
            Ok(Err(e)) if started.elapsed() < OPEN_PATIENCE => {
                warn!(endpoints = %endpoints, error = %e, "etcd did not answer the initial load; trying again")
            }
            Err(_) if started.elapsed() < OPEN_PATIENCE => {
                warn!(endpoints = %endpoints, "etcd did not answer the initial load in time; trying again")
            }
            Ok(Err(e)) => return Err(StoreError::Unavailable(format!("etcd at {endpoints}: {e}"))),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {endpoints} did not answer within {OPEN_PATIENCE:?}"
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    info!(endpoints = %endpoints, prefix = %keys.prefix, revision = loaded.revision, instances = loaded.instances, replicas = loaded.replicas.len(), "cluster store loaded");
    let store = Etcd { pool, keys, timeout: config.timeout, endpoints };
    Ok((store, loaded))
}

impl Etcd {
    /// The clients and key layout this store uses, for the cluster source that watches the same
    /// prefix.
    pub(crate) fn link(&self) -> (Pool, Keys) {
        (self.pool.clone(), self.keys.clone())
    }

    /// Writes `batch` within the store timeout; a refusal names etcd's endpoints.
    async fn transact(&self, batch: &Batch) -> Result<Committed, StoreError> {
        let deadline = Instant::now() + self.timeout;
        commit(&self.pool, &self.keys, batch, deadline).await.map_err(|e| match e {
            StoreError::Unavailable(why) => StoreError::Unavailable(format!(
                "etcd at {} did not accept the write within {}: {why}",
                self.endpoints,
                crate::duration::format(self.timeout)
            )),
            e => e,
        })
    }
}

impl Store for Etcd {
    fn commit_async<'a>(&self, batch: &'a Batch) -> Option<Commit<'a>> {
        let store = self.clone();
        Some(Box::pin(async move { store.transact(batch).await }))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn max_batch(&self) -> usize {
        CHUNK
    }
}

/// Writes a batch: registrations in compare-and-swap transactions of `CHUNK` keys, then the
/// heartbeats.
impl Etcd {
    /// The seed of the DNS cookie secrets every replica under this prefix shares, so that a
    /// client's server cookie from one replica is good at the others: `<prefix>cookie-seed`,
    /// written by the first replica to start (create if absent, in one transaction), read by all.
    pub async fn cookie_seed(&self) -> Result<[u8; 16], StoreError> {
        let key = format!("{}cookie-seed", self.keys.prefix);
        let fresh = super::random_seed().map_err(|e| StoreError::Unavailable(format!("no random seed: {e}")))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), super::hex(&fresh), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = run_txn(&self.pool, txn, Instant::now() + self.timeout).await?;
        if response.succeeded() {
            return Ok(fresh);
        }
        let stored = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        stored.and_then(|v| super::parse_seed(String::from_utf8_lossy(&v).trim())).ok_or_else(|| {
            StoreError::Unavailable(format!("etcd key {key} does not hold a cookie seed (32 hex digits)"))
        })
    }
}

async fn commit(pool: &Pool, keys: &Keys, batch: &Batch, deadline: Instant) -> Result<Committed, StoreError> {
    let mut revision = 0;
    let mut revisions = Vec::with_capacity(batch.ops.len());
    for (i, ops) in batch.ops.chunks(CHUNK).enumerate() {
        let expect = batch.expect.get(i * CHUNK..).unwrap_or_default();
        let mut compares = Vec::with_capacity(ops.len());
        let mut writes = Vec::with_capacity(ops.len() * 2);
        let mut reads = Vec::with_capacity(ops.len());
        for (j, (key, stored)) in ops.iter().enumerate() {
            let k = keys.instance(key);
            compares.push(Compare::mod_revision(
                k.clone(),
                CompareOp::Equal,
                expect.get(j).copied().unwrap_or(0) as i64,
            ));
            match stored {
                Some(s) => writes.push(TxnOp::put(k.clone(), serde_json::to_vec(s).expect("records serialize"), None)),
                None => {
                    writes.push(TxnOp::delete(k.clone(), None));
                    writes.push(TxnOp::delete(keys.beats_of(key), Some(DeleteOptions::new().with_prefix())));
                }
            }
            reads.push(TxnOp::get(k, None));
        }
        let txn = Txn::new().when(compares).and_then(writes).or_else(reads);
        let resp = run_txn(pool, txn, deadline).await?;
        let at = resp.header().map_or(0, |h| h.revision());
        if !resp.succeeded() {
            let fresh = resp
                .op_responses()
                .into_iter()
                .zip(ops)
                .map(|(r, (key, _))| {
                    let kv = match r {
                        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                        _ => None,
                    };
                    let stored = kv.as_ref().and_then(|kv| decode(kv.value(), key));
                    let modified = kv.as_ref().map_or(0, |kv| kv.mod_revision()) as u64;
                    Fresh { key: key.clone(), stored, modified, revision: at as u64 }
                })
                .collect();
            return Err(StoreError::Conflict(fresh));
        }
        revision = at;
        revisions.extend(ops.iter().map(|_| at as u64));
    }
    let now = crate::model::now_ms().to_string();
    for beats in batch.beats.chunks(2 * CHUNK) {
        let puts: Vec<TxnOp> =
            beats.iter().map(|(key, check)| TxnOp::put(keys.beat(key, check), now.clone(), None)).collect();
        let resp = run_txn(pool, Txn::new().and_then(puts), deadline).await?;
        revision = resp.header().map_or(revision, |h| h.revision());
    }
    Ok(Committed { version: revision as u64, revisions })
}

/// Runs a transaction, retrying what etcd may answer differently a moment later (no leader
/// during an election, a member gone, a connection lost) on the next member, until `deadline`.
/// Each attempt gets at most `ATTEMPT`: a transaction takes milliseconds, and one that a member
/// holds longer was most likely forwarded to a leader that died (the member only drops it at its
/// own request timeout, 7 s by default); the next member has a new leader by then.
async fn run_txn(pool: &Pool, txn: Txn, deadline: Instant) -> Result<etcd_client::TxnResponse, StoreError> {
    let mut pause = Duration::from_millis(20);
    let mut last: String;
    let mut tried = 0;
    loop {
        let (i, mut kv) = pool.kv();
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = Instant::now() + ATTEMPT.min(left);
        match tokio::time::timeout_at(attempt.min(deadline), kv.txn(txn.clone())).await {
            Ok(Ok(resp)) => return Ok(resp),
            Ok(Err(e)) if !retryable(&e) => {
                return Err(StoreError::Unavailable(format!("etcd refused the write: {}", short(&e))));
            }
            Ok(Err(e)) => last = format!("{}: {}", pool.endpoint(i), short(&e)),
            Err(_) => last = format!("{}: no answer", pool.endpoint(i)),
        }
        pool.failed(i);
        tried += 1;
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(last));
        }
        // Straight on to the next member; pause once every member has failed.
        if tried % pool.len() == 0 {
            if Instant::now() + pause >= deadline {
                return Err(StoreError::Unavailable(last));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

/// `host:port` of an endpoint URL.
pub(crate) fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://").trim_start_matches("https://")
}

/// An etcd error in a few words: tonic's nest several levels deep; the innermost says most.
fn short(e: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = e else { return e.to_string() };
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}

/// Returns true if the error may go away by itself (and the request is safe to send again: a
/// transaction that did apply fails its compare the second time, and the writer sorts it out).
fn retryable(e: &etcd_client::Error) -> bool {
    use etcd_client::Error;
    use tonic::Code;
    match e {
        Error::GRpcStatus(s) => matches!(
            s.code(),
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Aborted
                | Code::Internal
                | Code::Cancelled
        ),
        Error::TransportError(_) | Error::IoError(_) => true,
        _ => false,
    }
}

/// Everything under the prefix at one revision, read in pages: the registrations (each with
/// its modification revision) and the live replicas. Each page is decoded while etcd reads the
/// next, and its raw keys and values are dropped as soon as they are decoded. Each page may take
/// `per_page`: the whole load grows with the registry, a member that hangs does not.
pub(crate) async fn load(
    client: &etcd_client::Client,
    keys: &Keys,
    per_page: Duration,
    sink: &mut impl Sink,
) -> Result<Loaded, etcd_client::Error> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_PAGE_BYTES);
    let end = prefix_end(keys.prefix.as_bytes());
    let page = |revision: i64| {
        let options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
        if revision > 0 { options.with_revision(revision) } else { options }
    };
    let mut resp = bounded(per_page, kv.get(keys.prefix.as_bytes().to_vec(), Some(page(0)))).await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut loaded = Loaded { revision: revision as u64, instances: 0, replicas: Vec::new(), replica_http: Vec::new() };
    sink.start(loaded.revision);
    loop {
        let kvs = resp.take_kvs();
        let next = match kvs.last() {
            Some(last) if resp.more() => {
                let mut from = last.key().to_vec();
                from.push(0);
                let (mut kv, options) = (kv.clone(), page(revision));
                Some(tokio::spawn(async move { bounded(per_page, kv.get(from, Some(options))).await }))
            }
            _ => None,
        };
        let records = keys.parse_into(kvs, &mut loaded);
        loaded.instances += records.len();
        sink.page(records);
        match next {
            None => return Ok(loaded),
            Some(task) => {
                resp = task.await.map_err(|e| etcd_client::Error::IoError(std::io::Error::other(e)))??;
            }
        }
    }
}

/// `get`, or an error if it takes more than `within`.
async fn bounded<T>(
    within: Duration,
    get: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, etcd_client::Error> {
    tokio::time::timeout(within, get).await.unwrap_or_else(|_| {
        Err(etcd_client::Error::IoError(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer to a page of the load within {}", crate::duration::format(within)),
        )))
    })
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub(crate) fn decode(value: &[u8], key: &str) -> Option<Stored> {
    match serde_json::from_slice::<Stored>(value) {
        Ok(s) if id_key(&s.instance.id) == key => Some(s),
        Ok(s) => {
            warn!(key, id = %s.instance.id, "etcd record under the wrong key; ignored");
            None
        }
        Err(e) => {
            warn!(key, error = %e, "etcd record does not parse; ignored");
            None
        }
    }
}

/// The HTTP `ADDR:PORT` a replica's key announces (`{"http": ...}`, see `app`), if any.
pub(crate) fn replica_http(value: &[u8]) -> Option<String> {
    let about: serde_json::Value = serde_json::from_slice(value).ok()?;
    about.get("http")?.as_str().map(str::to_string)
}

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    Instance(&'a str),
    Beat { instance: &'a str, check: &'a str },
    Replica(&'a str),
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub prefix: String,
}

impl Keys {
    pub(crate) fn instance(&self, key: &str) -> String {
        format!("{}instances/{key}", self.prefix)
    }

    pub(crate) fn beats_of(&self, key: &str) -> String {
        format!("{}beats/{key}/", self.prefix)
    }

    pub(crate) fn beat(&self, key: &str, check: &str) -> String {
        format!("{}beats/{key}/{check}", self.prefix)
    }

    pub(crate) fn replica(&self, id: &str) -> String {
        format!("{}replicas/{id}", self.prefix)
    }

    pub(crate) fn parse<'a>(&self, key: &'a [u8]) -> Key<'a> {
        let Some(rest) = std::str::from_utf8(key).ok().and_then(|k| k.strip_prefix(self.prefix.as_str())) else {
            return Key::Other;
        };
        if let Some(id) = rest.strip_prefix("instances/") {
            return Key::Instance(id);
        }
        if let Some((instance, check)) = rest.strip_prefix("beats/").and_then(|r| r.split_once('/')) {
            return Key::Beat { instance, check };
        }
        if let Some(id) = rest.strip_prefix("replicas/") {
            return Key::Replica(id);
        }
        Key::Other
    }

    /// The registrations among `kvs`, each with its modification revision; the live replicas
    /// and their HTTP addresses go to `loaded`.
    pub(crate) fn parse_into(&self, kvs: Vec<KeyValue>, loaded: &mut Loaded) -> Vec<(Stored, u64)> {
        let mut records = Vec::with_capacity(kvs.len());
        for kv in kvs {
            match self.parse(kv.key()) {
                Key::Instance(key) => {
                    if let Some(s) = decode(kv.value(), key) {
                        records.push((s, kv.mod_revision() as u64));
                    }
                }
                Key::Replica(id) => {
                    loaded.replicas.push(id.to_string());
                    loaded.replica_http.extend(replica_http(kv.value()).map(|h| (id.to_string(), h)));
                }
                Key::Beat { .. } | Key::Other => {}
            }
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = Keys { prefix: "/sp/".into() };
        assert_eq!(keys.parse(keys.instance("web-1").as_bytes()), Key::Instance("web-1"));
        assert_eq!(
            keys.parse(keys.beat("web-1", "service:web-1").as_bytes()),
            Key::Beat { instance: "web-1", check: "service:web-1" }
        );
        assert_eq!(keys.parse(keys.replica("h-1-ab").as_bytes()), Key::Replica("h-1-ab"));
        assert_eq!(keys.parse(b"/sp/other"), Key::Other);
        assert_eq!(keys.parse(b"/elsewhere/instances/x"), Key::Other);
        assert!(keys.beat("web-1", "c").starts_with(&keys.beats_of("web-1")));
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"/sp/"), b"/sp0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
