//! Host-name addresses: instances registered as `Address: "db.example.internal"` are answered in
//! DNS with what that name resolves to through the upstream resolvers, re-resolved at the
//! records' TTL (at least every 5 minutes, at most every second).
//!
//! This is a source, like the health probes: it watches the registry for host names, asks the
//! `dns::Forwarder` (the same upstreams, timeouts and failover as forwarding), and feeds each new
//! answer back as a `Change::Resolved`. The registry stays free of I/O, and the DNS path only
//! reads the resolved addresses from the snapshot. A failed lookup keeps the last addresses
//! (serving stale beats serving nothing) and is retried soon.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::dns::{Forwarder, LiveSettings, Transport};
use crate::registry::{Change, Registry};

/// Bounds on how long a resolution is kept before asking again.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(300);
/// When to ask again after no upstream answered.
const RETRY: Duration = Duration::from_secs(5);
/// How long a negative answer without an SOA (so without a negative TTL) is kept.
const NEGATIVE: Duration = Duration::from_secs(30);

/// What one lookup of a host name found.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// Its addresses (none for NXDOMAIN or NODATA) and how long they may be kept.
    Found { addrs: Vec<IpAddr>, ttl: Duration },
    /// No upstream answered.
    Failed,
}

/// Keeps the registry's host names resolved until `token` is cancelled.
pub async fn run(registry: Registry, settings: LiveSettings, token: CancellationToken) {
    // Every published snapshot, a reload's too: it may have brought upstreams.
    let mut versions = registry.subscribe_published();
    // Host (lowercase) → when to resolve it next; `None` while a lookup is running.
    let mut due: HashMap<String, Option<Instant>> = HashMap::new();
    let mut known: HashMap<String, Vec<IpAddr>> = HashMap::new();
    let mut lookups: JoinSet<(String, Lookup)> = JoinSet::new();
    let mut warned = false;
    loop {
        let hosts = hosts(&registry);
        due.retain(|h, _| hosts.contains(h));
        for gone in known.keys().filter(|h| !hosts.contains(*h)).cloned().collect::<Vec<_>>() {
            known.remove(&gone);
            registry.send(Change::Resolved { host: gone, addrs: Vec::new() });
        }
        // The upstreams in force now: a reload may have changed them.
        let forwarder = settings.load().forwarder.clone().filter(|f| f.is_enabled());
        if let Some(forwarder) = forwarder {
            let now = Instant::now();
            for h in hosts {
                let at = due.entry(h.clone()).or_insert(Some(now));
                if at.is_some_and(|t| t <= now) {
                    *at = None;
                    let forwarder = forwarder.clone();
                    lookups.spawn(async move {
                        let found = resolve(&forwarder, &h).await;
                        (h, found)
                    });
                }
            }
        } else {
            if !hosts.is_empty() && !warned {
                warn!(hosts = hosts.len(), "host-name addresses cannot be resolved: there are no upstream resolvers");
                warned = true;
            }
        }
        let next = due.values().flatten().min().copied();
        tokio::select! {
            _ = token.cancelled() => return,
            changed = versions.changed() => if changed.is_err() { return },
            _ = async { sleep_until(next.unwrap_or_else(far_future)).await }, if next.is_some() => {}
            Some(Ok((host, found))) = lookups.join_next(), if !lookups.is_empty() => {
                let refresh = match found {
                    Lookup::Found { addrs, ttl } => {
                        if known.get(&host) != Some(&addrs) {
                            info!(%host, addrs = ?addrs, ttl = ?ttl, "host-name address resolved");
                            known.insert(host.clone(), addrs.clone());
                            registry.send(Change::Resolved { host: host.clone(), addrs });
                        }
                        ttl.clamp(MIN_REFRESH, MAX_REFRESH)
                    }
                    Lookup::Failed => {
                        warn!(%host, retry = ?RETRY, "cannot resolve a host-name address; keeping the last one");
                        RETRY
                    }
                };
                if let Some(at) = due.get_mut(&host) {
                    *at = Some(Instant::now() + refresh);
                }
            }
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400)
}

/// Every host name some instance is registered with, lowercase.
fn hosts(registry: &Registry) -> BTreeSet<String> {
    registry.snapshot().hosts().map(str::to_string).collect()
}

/// Asks for A and AAAA. The TTL is the smallest of the address records' (of a CNAME chain's
/// too), or the negative TTL of an empty answer.
async fn resolve(forwarder: &Forwarder, host: &str) -> Lookup {
    let Ok(mut name) = Name::from_ascii(host) else {
        return Lookup::Found { addrs: Vec::new(), ttl: MAX_REFRESH };
    };
    name.set_fqdn(true);
    let (a, aaaa) = tokio::join!(
        forwarder.forward(&name, RecordType::A, Transport::Udp),
        forwarder.forward(&name, RecordType::AAAA, Transport::Udp)
    );
    let mut addrs = Vec::new();
    let mut ttl: Option<u32> = None;
    let mut failed = 0;
    for answer in [a, aaaa] {
        if !matches!(answer.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            failed += 1;
            continue;
        }
        for r in &answer.answers {
            let ip = match &r.data {
                RData::A(a) => IpAddr::V4(a.0),
                RData::AAAA(a) => IpAddr::V6(a.0),
                RData::CNAME(_) => {
                    ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
                    continue;
                }
                _ => continue,
            };
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
            ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
        }
        if answer.answers.is_empty() {
            // A negative answer is cached for its SOA's minimum (RFC 2308).
            for r in &answer.authorities {
                if let RData::SOA(soa) = &r.data {
                    let negative = r.ttl.min(soa.minimum);
                    ttl = Some(ttl.map_or(negative, |t| t.min(negative)));
                }
            }
        }
    }
    if failed == 2 || (failed == 1 && addrs.is_empty()) {
        // Nothing usable, or half an answer that would drop a family we may already know.
        return Lookup::Failed;
    }
    debug!(%host, ?addrs, ?ttl, "resolved");
    let ttl = match ttl {
        Some(t) => Duration::from_secs(t.into()),
        None if addrs.is_empty() => NEGATIVE,
        None => MAX_REFRESH,
    };
    Lookup::Found { addrs, ttl }
}
