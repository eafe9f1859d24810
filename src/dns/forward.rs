//! Forwarding: names outside the domain go to upstream resolvers through hickory-resolver, so
//! that resolv.conf can point at signpost and every other lookup still works.
//!
//! Each upstream gets two resolvers: one that asks over UDP and retries over TCP when the answer
//! is truncated, and one that asks over TCP only, for clients that came over TCP. Failover is
//! ours rather than hickory's pool: the pool gives *all* its servers one `timeout` in total, so a
//! silent first upstream would use up the time of the second. Here every upstream gets the whole
//! timeout, queries start at the upstream that answered last (a dead first upstream costs its
//! timeout once, not on every query), and at most `MAX_TRIED` upstreams are tried per query, as
//! glibc does, so SERVFAIL comes within `timeout × MAX_TRIED` whatever the list's length.
//!
//! The loop guard runs at start: an upstream that is one of our own sockets (equal to a listen
//! address, or any address of this host on the port of a wildcard listen address) is dropped with
//! a warning. That is what makes `nameserver 127.0.0.1` in resolv.conf safe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{Resolver, TokioResolver};
use ipnet::IpNet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::answer::{Answer, Transport};
use crate::metrics::{Forwarded, forwarded};

/// Upstreams tried per query at most (glibc's MAXNS), which bounds the time to SERVFAIL.
const MAX_TRIED: usize = 3;
/// Cached responses per resolver.
const CACHE_SIZE: u64 = 4096;
/// The EDNS buffer we advertise upstream (the DNS flag day 2020 value).
const UPSTREAM_PAYLOAD: u16 = 1232;
/// Where the default upstreams come from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Forwarding of names outside the domain (`[dns] upstreams`, `upstream_timeout`,
/// `recursion_allow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// `None`: the nameservers of /etc/resolv.conf, read at start. Empty: no forwarding at all
    /// (names outside the domain are REFUSED).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long one upstream may take before the next is tried.
    pub timeout: Duration,
    /// Clients that may use forwarding; others get REFUSED for names outside the domain.
    pub recursion_allow: Vec<IpNet>,
}

/// The upstreams and who may use them. Cheap to share: the handler holds it in an `Arc`.
pub struct Forwarder {
    upstreams: Vec<Upstream>,
    allow: Vec<IpNet>,
    timeout: Duration,
    /// The upstream that answered last; queries start there.
    preferred: AtomicUsize,
    /// True while no upstream answers: logged once when it starts and once when it ends, not
    /// once per query.
    all_failed: AtomicBool,
}

struct Upstream {
    addr: SocketAddr,
    /// UDP, and TCP when the UDP answer is truncated.
    udp: TokioResolver,
    /// TCP only, for clients that asked over TCP.
    tcp: TokioResolver,
}

/// What one upstream made of a question.
enum Attempt {
    /// An answer to pass on: positive, NXDOMAIN or NODATA.
    Answer(Answer),
    /// A failure worth trying the next upstream for (timeout, I/O, SERVFAIL, REFUSED, ...).
    Failed(String),
}

impl Forwarder {
    /// Builds the forwarder from the configuration: the configured upstreams, or those of
    /// /etc/resolv.conf, minus any that are signpost itself (`listening` are our bound DNS
    /// addresses).
    pub fn new(config: &ForwardConfig, listening: &[SocketAddr]) -> Forwarder {
        let (candidates, source) = match &config.upstreams {
            Some(list) => (list.clone(), "configuration"),
            None => (resolv_conf_nameservers(Path::new(RESOLV_CONF)), RESOLV_CONF),
        };
        let mut upstreams = Vec::new();
        for addr in candidates {
            if is_ourselves(addr, listening) {
                warn!(upstream = %addr, source, "dropping upstream: it is this signpost itself (forwarding to it would loop)");
                continue;
            }
            if upstreams.iter().any(|u: &Upstream| u.addr == addr) {
                continue;
            }
            match (resolver(addr, config.timeout, false), resolver(addr, config.timeout, true)) {
                (Ok(udp), Ok(tcp)) => upstreams.push(Upstream { addr, udp, tcp }),
                (Err(e), _) | (_, Err(e)) => {
                    warn!(upstream = %addr, error = %e, "dropping upstream: cannot build a resolver")
                }
            }
        }
        let list: Vec<String> = upstreams.iter().map(|u| u.addr.to_string()).collect();
        if upstreams.is_empty() {
            warn!(source, "no upstream resolvers: names outside the domain are refused");
        } else {
            info!(upstreams = %list.join(","), source, timeout = ?config.timeout, "forwarding names outside the domain");
        }
        Forwarder {
            upstreams,
            allow: config.recursion_allow.clone(),
            timeout: config.timeout,
            preferred: AtomicUsize::new(0),
            all_failed: AtomicBool::new(false),
        }
    }

    /// The upstreams in use, in configured order.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.upstreams.iter().map(|u| u.addr).collect()
    }

    /// Returns true if there is anywhere to forward to.
    pub fn is_enabled(&self) -> bool {
        !self.upstreams.is_empty()
    }

    /// Returns true if `client` is in `recursion_allow`.
    pub fn allows(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|net| net.contains(&client))
    }

    /// Asks the upstreams, in turn, until one answers; SERVFAIL if none does in time. The answer
    /// keeps the upstream's TTLs (counting down while cached), rcode and negative SOA, and the
    /// question's case in owner names.
    pub async fn forward(&self, qname: &Name, qtype: RecordType, transport: Transport) -> Answer {
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Zone transfers are between a zone's servers, not something to relay.
            forwarded(Forwarded::Refused);
            return Answer { rcode: ResponseCode::Refused, ..Answer::default() };
        }
        let n = self.upstreams.len();
        let deadline = Instant::now() + self.timeout * n.min(MAX_TRIED) as u32;
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        // The resolver's cache is keyed case-insensitively; asking in lowercase keeps what goes
        // upstream independent of whoever asked first.
        let lower = qname.to_lowercase();
        for i in (0..n).map(|k| (first + k) % n).take(MAX_TRIED) {
            let upstream = &self.upstreams[i];
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let resolver = match transport {
                Transport::Udp => &upstream.udp,
                Transport::Tcp => &upstream.tcp,
            };
            let attempt =
                match tokio::time::timeout(left.min(self.timeout), resolver.lookup(lower.clone(), qtype)).await {
                    Ok(result) => attempt(result),
                    Err(_) => Attempt::Failed("timed out".into()),
                };
            match attempt {
                Attempt::Answer(mut ans) => {
                    if i != first {
                        self.preferred.store(i, Ordering::Relaxed);
                    }
                    if self.all_failed.swap(false, Ordering::Relaxed) {
                        info!(upstream = %upstream.addr, "an upstream answers again");
                    }
                    echo_case(qname, &mut ans);
                    forwarded(Forwarded::Answered);
                    return ans;
                }
                Attempt::Failed(why) => {
                    debug!(upstream = %upstream.addr, name = %qname, %qtype, why, "upstream failed");
                }
            }
        }
        if !self.all_failed.swap(true, Ordering::Relaxed) {
            warn!(name = %qname, %qtype, timeout = ?self.timeout, "no upstream answered; SERVFAIL (said once, until an upstream answers again)");
        } else {
            debug!(name = %qname, %qtype, "no upstream answered; SERVFAIL");
        }
        forwarded(Forwarded::Failed);
        Answer { rcode: ResponseCode::ServFail, ..Answer::default() }
    }
}

/// Sorts a resolver's result into an answer to pass on or a failure to try the next upstream for.
fn attempt(result: Result<hickory_resolver::lookup::Lookup, NetError>) -> Attempt {
    match result {
        Ok(lookup) => {
            let m = lookup.message();
            Attempt::Answer(Answer {
                rcode: m.metadata.response_code,
                authoritative: false,
                answers: m.answers.clone(),
                authorities: m.authorities.clone(),
                additionals: m.additionals.clone(),
                regional: false,
            })
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(none)))
            if matches!(none.response_code, ResponseCode::NXDomain | ResponseCode::NoError) =>
        {
            // NXDOMAIN or NODATA: the authority section (the zone's SOA) bounds negative caching
            // downstream too.
            let authorities = match (none.authorities, none.soa) {
                (Some(all), _) => all.to_vec(),
                (None, Some(soa)) => vec![soa.into_record_of_rdata()],
                (None, None) => Vec::new(),
            };
            Attempt::Answer(Answer { rcode: none.response_code, authorities, ..Answer::default() })
        }
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

/// Owner names equal to the question (case-insensitively) take the question's exact case.
fn echo_case(qname: &Name, ans: &mut Answer) {
    for r in ans.answers.iter_mut().chain(&mut ans.authorities).chain(&mut ans.additionals) {
        set_owner_case(qname, r);
    }
}

fn set_owner_case(qname: &Name, r: &mut Record) {
    if r.name == *qname {
        r.name = qname.clone();
    }
}

/// One resolver for one upstream: UDP with TCP on truncation, or TCP only.
fn resolver(addr: SocketAddr, timeout: Duration, tcp_only: bool) -> Result<TokioResolver, NetError> {
    let mut connections = Vec::new();
    if !tcp_only {
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        connections.push(udp);
    }
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    connections.push(tcp);
    // Negative answers from a recursive upstream are final: do not shop around for a positive one.
    let ns = NameServerConfig::new(addr.ip(), true, connections);
    let mut builder =
        Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    opts.timeout = timeout;
    // One try per upstream; failing over is ours (see the module comment).
    opts.attempts = 0;
    opts.num_concurrent_reqs = 1;
    opts.cache_size = CACHE_SIZE;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.preserve_intermediates = true;
    opts.ndots = 0;
    opts.edns0 = true;
    opts.edns_payload_len = UPSTREAM_PAYLOAD;
    builder.build()
}

/// The `nameserver` lines of a resolv.conf; unreadable or absent means none.
pub fn resolv_conf_nameservers(path: &Path) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_resolv_conf(&text),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the system's resolvers");
            Vec::new()
        }
    }
}

fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        // A zone index (fe80::1%eth0) cannot be expressed in a SocketAddr's IP; such servers
        // are skipped rather than misread.
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Returns true if a query sent to `upstream` would arrive at one of our own `listening` sockets.
pub fn is_ourselves(upstream: SocketAddr, listening: &[SocketAddr]) -> bool {
    // Sending to 0.0.0.0 or :: reaches this host (Linux treats it as loopback).
    let ip = match upstream.ip().to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    listening.iter().any(|l| {
        if l.port() != upstream.port() {
            return false;
        }
        let ours = l.ip().to_canonical();
        match ours {
            _ if ours == ip => true,
            // A wildcard socket receives what is sent to any address of this host (of its family;
            // an IPv6 wildcard socket is dual-stack on Linux by default).
            IpAddr::V4(v4) if v4.is_unspecified() => ip.is_ipv4() && is_local_address(ip),
            IpAddr::V6(v6) if v6.is_unspecified() => is_local_address(ip),
            _ => false,
        }
    })
}

/// Returns true if `ip` belongs to this host: only then can a socket be bound to it.
fn is_local_address(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn resolv_conf_nameservers_are_read_with_port_53() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  2001:db8::53 \n\
                    nameserver fe80::1%eth0\noptions edns0\nnameserver\n";
        assert_eq!(parse_resolv_conf(text), addrs(&["10.0.0.2:53", "[2001:db8::53]:53"]));
    }

    #[test]
    fn our_own_sockets_are_recognised() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("127.0.0.1:53", &["127.0.0.1:53"], true),
            ("127.0.0.1:53", &["127.0.0.1:5353"], false),
            ("127.0.0.53:53", &["127.0.0.1:53"], false),
            // systemd-resolved's stub is ours only if we listen there, or on every address.
            ("127.0.0.53:53", &["127.0.0.53:53"], true),
            ("127.0.0.53:53", &["0.0.0.0:53"], true),
            ("127.0.0.53:53", &["[::]:53"], true),
            ("[::1]:53", &["0.0.0.0:53"], false),
            ("[::1]:53", &["[::1]:53", "127.0.0.1:53"], true),
            ("[::ffff:127.0.0.1]:53", &["127.0.0.1:53"], true),
            ("0.0.0.0:53", &["127.0.0.1:53"], true),
            // Not an address of this host: someone else's resolver.
            ("192.0.2.53:53", &["0.0.0.0:53"], false),
        ];
        for &(upstream, listening, want) in cases {
            assert_eq!(is_ourselves(upstream.parse().unwrap(), &addrs(listening)), want, "{upstream} vs {listening:?}");
        }
    }

    #[tokio::test]
    async fn upstreams_equal_to_our_sockets_are_dropped() {
        let config = ForwardConfig {
            upstreams: Some(addrs(&["127.0.0.1:5399", "192.0.2.53:53", "192.0.2.53:53", "127.0.0.1:53"])),
            timeout: Duration::from_secs(1),
            recursion_allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        let f = Forwarder::new(&config, &addrs(&["127.0.0.1:5399"]));
        assert_eq!(f.upstreams(), addrs(&["192.0.2.53:53", "127.0.0.1:53"]));
        assert!(f.allows("127.0.0.9".parse().unwrap()));
        assert!(f.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!f.allows("10.0.0.1".parse().unwrap()));
        assert!(!f.allows("::1".parse().unwrap()));
    }
}
