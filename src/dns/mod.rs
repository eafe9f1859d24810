//! The DNS server on the sockets `main` bound: our own UDP (`udp`, with the `fast` path in front)
//! and TCP (`tcp`) loops around one full handler (`handler`: bytes in, the encoded answer back).
//! `parse` maps names to what they ask, `answer` builds records from a snapshot, `message` fits
//! them to the client's size, `forward` relays other names upstream, `transfer` serves the zone
//! to secondaries and `notify` tells them of changes.

mod answer;
mod cookie;
mod edns;
mod fast;
mod forward;
mod handler;
mod liveness;
mod message;
mod metrics;
mod notify;
mod parse;
mod region;
mod rrl;
mod tcp;
mod transfer;
mod udp;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use hickory_proto::rr::LowerName;
use ipnet::IpNet;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use answer::{Transport, Zone, distinct_addresses, srv_weight};
pub use cookie::Cookies;
pub use fast::{Client, FastTable};
pub use forward::{ForwardConfig, Forwarder};
pub use handler::{Handler, Reply};
pub use liveness::Liveness;
pub use notify::run as notify;
pub use parse::ConsulNames;
pub use parse::service_type;
pub use region::Regions;
pub use rrl::RrlConfig;
pub use tcp::{Answerers, TcpLimits, serve_stream};
pub use transfer::Transfers;

/// How both paths answer: the zone, the clients' regions, the UDP size cap, the cookies, the
/// NSID, who may transfer the zone and where other names go. Shared by the full handler and
/// every version of the fast path's table; a configuration reload replaces it whole.
#[derive(Clone)]
pub struct Settings {
    pub zone: Zone,
    pub regions: Regions,
    /// The largest UDP answer, whatever the client offers (at least 512).
    pub udp_max_payload: u16,
    pub cookies: Cookies,
    /// `[dns] nsid`: what NSID queries are answered with (RFC 5001); none by default.
    pub nsid: Option<Arc<[u8]>>,
    /// The reverse zones of `[dns] dns_sd_networks`, under which hosts of those networks ask
    /// for the DNS-SD browse domain (`Settings::dns_sd_networks` sets them).
    pub browse_zones: Vec<LowerName>,
    /// Who may transfer the zone (`[dns] transfer_allow`); nobody by default.
    pub transfers: Transfers,
    /// Where names outside the domain go; `None` refuses them.
    pub forwarder: Option<Arc<Forwarder>>,
}

/// The settings in force, read by every query and replaced whole by a configuration reload.
pub type LiveSettings = Arc<arc_swap::ArcSwap<Settings>>;

impl Settings {
    /// Answers for `zone`, with no regions, the default UDP cap, cookies of this process's own
    /// and no NSID.
    pub fn new(zone: Zone) -> Settings {
        Settings {
            zone,
            regions: Regions::default(),
            udp_max_payload: 1232,
            cookies: Cookies::new(cookie::random_seed()),
            nsid: None,
            browse_zones: Vec::new(),
            transfers: Transfers::default(),
            forwarder: None,
        }
    }

    /// These settings, in force until replaced.
    pub fn live(self) -> LiveSettings {
        Arc::new(arc_swap::ArcSwap::from_pointee(self))
    }

    /// Answers the DNS-SD browse-domain questions (RFC 6763 §11) under the reverse zones of
    /// `networks` too, so that their hosts find the browse domain from their own addresses.
    pub fn dns_sd_networks(mut self, networks: &[IpNet]) -> Settings {
        self.browse_zones = networks.iter().map(parse::reverse_zone).collect();
        self.browse_zones.sort();
        self.browse_zones.dedup();
        self
    }

    /// The COOKIE option of an answer to a query that carried `cookie`: the client cookie and a
    /// fresh server cookie. Counts what the query's server cookie was.
    pub(crate) fn answer_cookie(&self, cookie: &edns::Cookie<'_>, ip: std::net::IpAddr) -> [u8; 24] {
        let (verdict, server) = self.cookies.check(&cookie.client, cookie.server, ip, cookie::unix_seconds());
        crate::metrics::cookie(match verdict {
            cookie::Verdict::ClientOnly => crate::metrics::CookieVerdict::ClientOnly,
            cookie::Verdict::Valid => crate::metrics::CookieVerdict::Valid,
            cookie::Verdict::Invalid => crate::metrics::CookieVerdict::Invalid,
        });
        let mut both = [0u8; 24];
        both[..8].copy_from_slice(&cookie.client);
        both[8..].copy_from_slice(&server);
        both
    }

    /// Returns true if `query` carries a server cookie this server (or a replica sharing its
    /// cookie seed) made for the client at `ip` within the last hour: the client has proved it
    /// receives what is sent to its address.
    pub fn has_valid_cookie(&self, query: &[u8], ip: std::net::IpAddr, now: u32) -> bool {
        let Some(opt) = edns::find_opt(query) else { return false };
        let Ok(options) = edns::parse(opt.data) else { return false };
        options.cookie.is_some_and(|c| self.cookies.check(&c.client, c.server, ip, now).0 == cookie::Verdict::Valid)
    }
}

/// The bounds of the DNS servers (`[dns] max_slow_queries`, `tcp_*`, `rrl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// UDP queries the full handler works on at once, over all sockets; more are dropped.
    pub max_slow_queries: usize,
    pub tcp: TcpLimits,
    /// Response-rate limiting of UDP answers; `None` (the default) answers everything.
    pub rrl: Option<RrlConfig>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_slow_queries: 1024, tcp: TcpLimits::default(), rrl: None }
    }
}

/// Serves DNS until `token` is cancelled, then lets in-flight queries finish: UDP through our
/// own loop with the fast path (`udp.rs`), TCP through ours (`tcp.rs`), both with `handler`.
pub async fn serve(
    handler: Handler,
    fast: Arc<ArcSwapOption<FastTable>>,
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    limits: Limits,
    liveness: Arc<Liveness>,
    token: CancellationToken,
) {
    let slow_tasks = TaskTracker::new();
    let slow_slots = Arc::new(Semaphore::new(limits.max_slow_queries.max(1)));
    let rrl = limits.rrl.map(|c| Arc::new(rrl::Rrl::new(c)));
    let loops = TaskTracker::new();
    let connections = TaskTracker::new();
    for (i, socket) in udp.into_iter().enumerate() {
        let slow = udp::Slow { handler: handler.clone(), tracker: slow_tasks.clone(), slots: slow_slots.clone() };
        let alive = (liveness.clone(), i);
        loops.spawn(udp::serve(socket, fast.clone(), slow, rrl.clone(), alive, token.clone()));
    }
    for listener in tcp {
        let answerers = tcp::Answerers { fast: fast.clone(), handler: handler.clone() };
        loops.spawn(tcp::serve(listener, answerers, limits.tcp, connections.clone(), token.clone()));
    }
    token.cancelled().await;
    loops.close();
    loops.wait().await;
    for tracker in [slow_tasks, connections] {
        tracker.close();
        tracker.wait().await;
    }
}
