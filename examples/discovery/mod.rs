//! What `srv_client` and `gateway` share: a hickory resolver pointed at signpost, and SRV
//! answers turned into endpoints (address, port, priority, weight) with their TTL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use hickory_proto::rr::RData;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

/// One instance as an SRV answer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub priority: u16,
    pub weight: u16,
}

/// A resolver that asks only `dns` (signpost), UDP then TCP on truncation, and caches nothing:
/// caching is the caller's choice.
pub fn resolver(dns: SocketAddr) -> anyhow::Result<TokioResolver> {
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = dns.port();
    let ns = NameServerConfig::new(dns.ip(), true, vec![udp, tcp]);
    let mut builder =
        Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    builder.build().context("cannot build the resolver")
}

/// The SRV answer for `name` as endpoints, and its TTL. Targets are looked up in the
/// additional section (signpost puts each target's address there), else resolved.
pub async fn srv(resolver: &TokioResolver, name: &str) -> anyhow::Result<(Vec<Endpoint>, Duration)> {
    let lookup = resolver.srv_lookup(name).await.with_context(|| format!("SRV {name}"))?;
    let mut out = Vec::new();
    let mut ttl = u32::MAX;
    for record in lookup.answers() {
        let RData::SRV(srv) = &record.data else { continue };
        ttl = ttl.min(record.ttl);
        let glued = lookup.additionals().iter().find_map(|r| match &r.data {
            RData::A(a) if r.name == srv.target => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) if r.name == srv.target => Some(IpAddr::V6(a.0)),
            _ => None,
        });
        let ip = match glued {
            Some(ip) => ip,
            None => {
                let ips = resolver.lookup_ip(srv.target.clone()).await.with_context(|| format!("{}", srv.target))?;
                ips.iter().next().with_context(|| format!("{} has no address", srv.target))?
            }
        };
        out.push(Endpoint { addr: SocketAddr::new(ip, srv.port), priority: srv.priority, weight: srv.weight });
    }
    anyhow::ensure!(!out.is_empty(), "no instances of {name}");
    Ok((out, Duration::from_secs(u64::from(ttl))))
}
