//! Staged start: config → zones → registry → DNS → `ready`; and the shutdown that undoes it.
//! The library never binds by itself: `Listeners::bind` is called by `main` (tests bind port 0
//! and hand their own sockets in), so every start-up failure about ports happens up front with
//! one clear message.
//!
//! Shutdown runs in stages from the one `token` the caller cancels (see `shutdown`): readiness
//! off and the sources (probes, zone watcher) stopped at once; DNS and HTTP keep serving for the
//! drain, so that load balancers see `/readyz` turn 503 before the sockets close; then they stop
//! accepting and finish what is in flight, dropped at the end of the grace period; last the
//! registry writer stops after its current batch, when nothing can write any more.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwapOption;
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api;
use crate::config::{Config, ShutdownConfig};
use crate::dns::{self, Handler, Zone};
use crate::health;
use crate::registry::{OnPublish, Ownership, Registry, State};
use crate::store::{Journal, Store};
use crate::zones::{self, Watcher};

pub mod reload;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot bind {proto} {addr}: {source}; {hint}")]
    Bind { proto: &'static str, addr: SocketAddr, source: io::Error, hint: String },
    #[error("cannot watch zone folder {dir}: {source}")]
    Watch { dir: String, source: notify::Error },
    #[error("cannot read zone folder {dir}: {source}")]
    Zones { dir: String, source: io::Error },
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot load the API tokens: {0}")]
    Acl(#[from] crate::acl::AclError),
}

/// Sockets bound before the app starts.
#[derive(Debug, Default)]
pub struct Listeners {
    pub dns_udp: Vec<UdpSocket>,
    pub dns_tcp: Vec<TcpListener>,
    /// The HTTP API; `None` serves no API.
    pub http: Option<TcpListener>,
}

impl Listeners {
    /// Binds every DNS address of `config`, UDP and TCP on the same port (port 0 picks one free
    /// for both). The default `[::1]:53` is skipped on hosts without IPv6.
    pub async fn bind(config: &Config) -> Result<Listeners, AppError> {
        let mut out = Listeners::default();
        for &addr in &config.dns.listen {
            match bind_pair(addr).await {
                Ok((udp, tcp)) => {
                    out.dns_udp.push(udp);
                    out.dns_tcp.push(tcp);
                }
                Err((proto, e))
                    if config.dns.listen_is_default
                        && addr.is_ipv6()
                        && e.kind() == io::ErrorKind::AddrNotAvailable =>
                {
                    warn!(%addr, error = %e, proto, "skipping the default IPv6 listen address: this host has no IPv6");
                }
                Err((proto, e)) => return Err(bind_error(proto, addr, e)),
            }
        }
        let http = config.http_listen;
        out.http = Some(bind_tcp(http).map_err(|e| bind_error("http", http, e))?);
        Ok(out)
    }
}

/// UDP and TCP on one port. With port 0 the TCP side may find the UDP port taken; try again.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), (&'static str, io::Error)> {
    let mut attempts = 0;
    loop {
        let udp = bind_udp(addr).map_err(|e| ("dns/udp", e))?;
        let port = udp.local_addr().map_err(|e| ("dns/udp", e))?.port();
        match bind_tcp(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && attempts < 10 => {
                attempts += 1;
                drop((udp, e));
            }
            Err(e) => return Err(("dns/tcp", e)),
        }
    }
}

/// Socket buffers for DNS over UDP: a burst of queries arriving while the server loop is
/// descheduled must wait in the kernel rather than be dropped (the default is about 200 KB).
const UDP_BUFFER: usize = 4 << 20;

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn bind_error(proto: &'static str, addr: SocketAddr, source: io::Error) -> AppError {
    let (flag, alt, holders) = match proto {
        "http" => ("--http-addr", SocketAddr::new(addr.ip(), 8501), "a Consul agent, another signpost?"),
        _ => ("--dns-addr", SocketAddr::new(addr.ip(), 8600), "systemd-resolved, dnsmasq, another signpost?"),
    };
    let hint = match source.kind() {
        io::ErrorKind::PermissionDenied => {
            format!(
                "ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep), or use {flag} {alt}"
            )
        }
        io::ErrorKind::AddrInUse => {
            format!("another server ({holders}) holds it; stop it or use {flag} {alt}")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("no interface of this host has that address; use {flag} with one it has")
        }
        _ => format!("use {flag} {alt} or another free address"),
    };
    AppError::Bind { proto, addr, source, hint }
}

/// A started app.
pub struct Running {
    pub registry: Registry,
    /// Applies a new configuration to the running server (SIGHUP).
    pub reloader: Arc<reload::Reloader>,
    pub probe_stats: Arc<health::Stats>,
    pub dns_addrs: Vec<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    tracker: TaskTracker,
}

impl Running {
    /// Waits until every task has stopped (after the token is cancelled).
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Starts everything on the given sockets; returns once the server is ready.
pub async fn start(config: Config, listeners: Listeners, token: CancellationToken) -> Result<Running, AppError> {
    crate::metrics::install();
    health::register_metrics();
    let tracker = TaskTracker::new();
    let tls = https(&config, &tracker, &token)?;
    let acl = tokens(&config, &tracker, &token)?;
    let dir = &config.zones_dir;
    let dir_name = dir.display().to_string();

    // Watch before the first load, so a file written in between is not missed.
    let watcher = if dir.is_dir() {
        Some(
            Watcher::start(dir, config.zone_limits)
                .map_err(|source| AppError::Watch { dir: dir_name.clone(), source })?,
        )
    } else {
        warn!(dir = %dir_name, "zone folder does not exist; no zone files are served");
        None
    };
    let mut state = State::new();
    // Stored registrations first: a zone file that claims one of their ids is the one refused.
    let opened = open_store(&config, &mut state).await?;
    if watcher.is_some() {
        let stored = state.len();
        let errors = zones::load_dir(&mut state, dir, config.zone_limits)
            .map_err(|source| AppError::Zones { dir: dir_name.clone(), source })?;
        for e in &errors {
            warn!(error = %e, "zone file invalid; it is not served until fixed");
        }
        info!(dir = %dir_name, instances = state.len() - stored, errors = errors.len(), "zone files loaded");
    }

    let stages = Stages::default();
    let mut dns_addrs = Vec::new();
    for s in &listeners.dns_udp {
        let addr = s.local_addr().expect("bound socket has an address");
        info!("listening dns/udp {addr}");
        dns_addrs.push(addr);
    }
    for l in &listeners.dns_tcp {
        info!("listening dns/tcp {}", l.local_addr().expect("bound listener has an address"));
    }
    let advertise = config.dns.advertise.or_else(|| first_usable(&dns_addrs)).into_iter().collect();
    let mut zone = Zone::new(
        config.dns.domain.clone(),
        advertise,
        config.dns.defaults.ttl.as_secs() as u32,
        config.dns.negative_ttl.as_secs() as u32,
    );
    // This server is a node of the catalog too: `<node>.node.D` answers its advertised address.
    zone.node = Some(node_name().to_ascii_lowercase());
    let live = reload::dns_settings(&config, zone.clone(), dns::Cookies::new(opened.cookie_seed), &dns_addrs).live();
    // The fast path's pre-encoded answers follow every snapshot, built before the registry tells
    // anyone of the change, so an acknowledged write is in the very next UDP answer too. Only
    // the writer calls this, one snapshot after another: each table is the previous one with
    // the services that changed encoded again, or a new one when a reload changed the settings.
    let fast = Arc::new(ArcSwapOption::<dns::FastTable>::empty());
    let on_publish: OnPublish = {
        let (fast, live) = (fast.clone(), live.clone());
        Box::new(move |snap| {
            let settings = live.load_full();
            let next = match fast.load().as_deref() {
                Some(previous) if Arc::ptr_eq(previous.settings(), &settings) => previous.update(snap.clone()),
                _ => dns::FastTable::build(snap.clone(), settings),
            };
            fast.store(Some(Arc::new(next)));
        })
    };
    let (registry, writer) =
        Registry::start(state, config.dns.defaults, opened.store, on_publish, stages.flush.clone());
    tracker.spawn(async move {
        let _ = writer.await;
    });
    let rescan = Arc::new(tokio::sync::Notify::new());
    if let Some(watcher) = watcher {
        tracker.spawn(watcher.run(registry.clone(), rescan.clone(), token.clone()));
    }
    let probe_stats = Arc::new(health::Stats::default());
    let replicas = opened.ownership.clone();
    tracker.spawn(health::run(registry.clone(), config.health, probe_stats.clone(), opened.ownership, token.clone()));

    // Host-name addresses resolve through the same upstreams as forwarding.
    tracker.spawn(crate::hosts::run(registry.clone(), live.clone(), token.clone()));
    tracker.spawn(crate::metrics::upkeep(token.clone()));
    let (secondaries, targets) = tokio::sync::watch::channel(config.dns.notify.clone());
    tracker.spawn(dns::notify(registry.clone(), zone.clone(), targets, token.clone()));
    let handler = Handler::new(registry.clone(), live.clone());
    // DNS and HTTP: tracked apart, so that shutdown can wait for exactly them.
    let front = TaskTracker::new();
    let liveness = Arc::new(dns::Liveness::new(listeners.dns_udp.len()));
    tracker.spawn(crate::systemd::watchdog(liveness.clone(), token.clone()));
    tracker.spawn(crate::systemd::keep_status(registry.clone(), token.clone()));
    let dns = dns::serve(
        handler,
        fast,
        listeners.dns_udp,
        listeners.dns_tcp,
        config.dns.limits.clone(),
        liveness.clone(),
        stages.stop.clone(),
    );
    front.spawn(bounded("DNS", dns, stages.abort.clone()));

    // `/readyz` answers 200 from `ready` on, and 503 again once `token` is cancelled.
    let ready = Arc::new(AtomicBool::new(false));
    let mut http_addr = None;
    let degraded = crate::store::Degraded::default();
    if let Some(listener) = listeners.http {
        let addr = listener.local_addr().expect("bound listener has an address");
        match &tls {
            Some(_) => info!("listening https {addr}"),
            None => info!("listening http {addr}"),
        }
        http_addr = Some(addr);
        let mut api_config = api_config(&config, config.dns.advertise.or_else(|| first_usable(&dns_addrs)), addr, acl);
        api_config.tls = tls;
        api_config.degraded = degraded.clone();
        api_config.replicas = replicas.clone();
        let api = api::serve(listener, registry.clone(), api_config, ready.clone(), token.clone(), stages.stop.clone());
        front.spawn(bounded("HTTP", api, stages.abort.clone()));
    }
    front.close();
    #[cfg(feature = "cluster")]
    if let Some(cluster) = opened.cluster {
        let about = serde_json::json!({ "dns": dns_addrs, "http": http_addr, "started_ms": crate::model::now_ms() });
        tracker.spawn(cluster.run(registry.clone(), about, degraded, token.clone()));
    }
    tracker.spawn(shutdown(token, config.shutdown, front, stages));

    let reloader =
        Arc::new(reload::Reloader::new(config, live, secondaries, rescan, registry.clone(), dns_addrs.clone()));
    ready.store(true, Ordering::Release);
    info!("ready");
    crate::systemd::ready(&registry.snapshot());
    Ok(Running { registry, probe_stats, dns_addrs, http_addr, reloader, tracker })
}

/// The API's TLS configuration, read and checked, and followed as its files change, when
/// `[http] tls_cert` is set.
fn https(
    config: &Config,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> Result<Option<Arc<crate::tls::ServerTls>>, AppError> {
    let Some(files) = &config.http_tls else { return Ok(None) };
    // Watch before the first read, so a renewal in between is not missed.
    let watch = crate::tls::ServerTls::watch(files)?;
    let tls = Arc::new(crate::tls::ServerTls::load(files.clone())?);
    let expires = tls.expires().unwrap_or_default();
    info!(cert = %files.cert.display(), %expires, client_certificates = files.client_ca.is_some(), "TLS certificate loaded");
    tracker.spawn(tls.clone().follow(watch, token.clone()));
    Ok(Some(tls))
}

/// The API's tokens, read, and followed as their secret files change.
fn tokens(config: &Config, tracker: &TaskTracker, token: &CancellationToken) -> Result<Arc<crate::acl::Acl>, AppError> {
    // Watch before the first read, so a rotation in between is not missed.
    let watch = crate::acl::Acl::watch(&config.acl)?;
    let acl = Arc::new(crate::acl::Acl::load(config.acl.clone())?);
    let names: Vec<&str> = config.acl.tokens.iter().map(|t| t.name.as_str()).collect();
    if acl.has_tokens() {
        info!(management = config.acl.management.is_some(), tokens = ?names, "API tokens loaded");
    }
    if let Some(watch) = watch {
        tracker.spawn(acl.clone().follow(watch, token.clone()));
    }
    Ok(acl)
}

/// The store the registry writes through, and what comes with it.
struct Opened {
    store: Box<dyn Store>,
    /// The DNS cookie secrets' seed: the data dir's, or the one every replica shares.
    cookie_seed: [u8; 16],
    /// Which API checks this server probes, expires and reaps.
    ownership: Ownership,
    /// Cluster mode: the watch and lease, started once the registry runs.
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::Cluster>,
}

/// Opens the store named by the configuration and restores what it holds into `state`.
async fn open_store(config: &Config, state: &mut State) -> Result<Opened, AppError> {
    #[cfg(feature = "cluster")]
    if let Some(c) = &config.cluster {
        let (store, loaded) = crate::store::etcd::open(c, &mut Restoring { state, revision: 0 }).await?;
        let cluster = crate::cluster::Cluster::new(&store, &loaded, c);
        let ownership = cluster.ownership();
        state.set_ownership(ownership.clone());
        let cookie_seed = store.cookie_seed().await?;
        return Ok(Opened { store: Box::new(store), cookie_seed, ownership, cluster: Some(cluster) });
    }
    let (journal, loaded) = Journal::open(&config.data_dir)?;
    info!(dir = %config.data_dir.display(), instances = loaded.records.len(), version = loaded.version, "store opened");
    state.restore(loaded.version, loaded.records);
    Ok(Opened {
        store: Box::new(journal),
        cookie_seed: crate::store::cookie_seed(&config.data_dir)?,
        ownership: Ownership::solo(),
        #[cfg(feature = "cluster")]
        cluster: None,
    })
}

/// The initial load from etcd, restored into the (empty) state a page at a time.
#[cfg(feature = "cluster")]
struct Restoring<'a> {
    state: &'a mut State,
    revision: u64,
}

#[cfg(feature = "cluster")]
impl crate::store::etcd::Sink for Restoring<'_> {
    fn start(&mut self, revision: u64) {
        // An earlier attempt failed part way: start again from nothing.
        *self.state = State::new();
        self.revision = revision;
    }

    fn page(&mut self, records: Vec<(crate::model::Stored, u64)>) {
        self.state.restore_shared(self.revision, records);
    }
}

/// The tokens of shutdown's later stages; the first is the caller's `token`.
#[derive(Default)]
struct Stages {
    /// DNS and HTTP stop accepting and finish what is in flight.
    stop: CancellationToken,
    /// What is still in flight at the end of the grace period is dropped.
    abort: CancellationToken,
    /// The registry writer stops after its current batch.
    flush: CancellationToken,
}

/// Runs a server until it returns by itself or `abort` is cancelled.
async fn bounded(what: &'static str, server: impl Future<Output = ()>, abort: CancellationToken) {
    tokio::select! {
        _ = server => {}
        _ = abort.cancelled() => warn!(server = what, "requests still in flight at the end of the grace period; dropped"),
    }
}

/// Waits for `token`, then takes the app down in stages within `settings.grace`.
async fn shutdown(token: CancellationToken, settings: ShutdownConfig, front: TaskTracker, stages: Stages) {
    token.cancelled().await;
    crate::systemd::stopping();
    let deadline = tokio::time::Instant::now() + settings.grace;
    info!(drain = ?settings.drain, grace = ?settings.grace, "not ready; draining");
    tokio::time::sleep(settings.drain).await;
    stages.stop.cancel();
    if tokio::time::timeout_at(deadline, front.wait()).await.is_err() {
        stages.abort.cancel();
        front.wait().await;
    }
    stages.flush.cancel();
}

/// This server's node name in the catalog: the host name, else "signpost".
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "signpost".into())
}

/// What the API says of this server in Consul's shapes, from the configuration: `Address` is
/// the advertised DNS address (else the API's own), `Datacenter` the server's region (else
/// Consul's "dc1"), `Node` the host name (else "signpost").
fn api_config(
    config: &Config,
    advertise: Option<IpAddr>,
    http: SocketAddr,
    acl: Arc<crate::acl::Acl>,
) -> api::ApiConfig {
    let address = advertise.filter(|ip| !ip.is_unspecified()).unwrap_or(http.ip());
    api::ApiConfig {
        acl,
        node: node_name(),
        node_address: address.to_string(),
        datacenter: config.dns.datacenter().to_string(),
        domain: config.dns.domain.to_ascii().trim_end_matches('.').to_string(),
        limits: config.http_limits,
        tls: None,
        degraded: crate::store::Degraded::default(),
        replicas: crate::registry::Ownership::solo(),
    }
}

/// The address `ns.D` answers with by default: the first listen address a client could reach.
fn first_usable(addrs: &[SocketAddr]) -> Option<IpAddr> {
    addrs.iter().map(|a| a.ip()).find(|ip| !ip.is_unspecified())
}
