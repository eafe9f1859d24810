//! The Consul-compatible HTTP API (axum): the agent, catalog and health endpoints that Consul
//! clients (py-consul, node-consul, Go's consul/api, curl scripts) use to register services and
//! read the catalog, plus `/healthz`, `/readyz` and `/metrics` (`ops.rs`, which also counts
//! every request).
//!
//! Writes become registry `Change`s (`writes.rs`; checks on their own and the catalog's
//! external nodes in `catalog.rs`; bodies decoded in `register.rs`) and answer
//! once the change is durable and in the published snapshot, so a 200 is visible in the very
//! next DNS answer. Reads (`reads.rs`) render the current `Snapshot`; `/v1/agent/self`
//! (`agent_self.rs`) describes this server. Failures of either kind become HTTP answers in one
//! place, `error.rs`.

mod access;
mod agent_self;
mod catalog;
mod error;
pub mod filter;
mod listener;
mod nodes;
mod ops;
mod reads;
mod register;
mod render;
mod ui;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, put};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

pub use error::ApiError;
pub use listener::Peer;
pub use register::{FieldError, decode as decode_registration};

use crate::registry::{Catalog, Registry};

/// Largest request body accepted (DESIGN: 64 KiB); larger ones get 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Who this server says it is in Consul's shapes (`Node`, `Address`, `Datacenter`), and who
/// may do what through it.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The tokens and their rules (`acl`); secrets are compared in constant time, never logged.
    pub acl: Arc<crate::acl::Acl>,
    pub node: String,
    pub node_address: String,
    pub datacenter: String,
    /// The DNS domain (`local`), for the status page's `dig` lines.
    pub domain: String,
    /// `[http] max_concurrent_requests`, `max_blocking_queries`, `max_header_bytes`.
    pub limits: HttpLimits,
    /// `[http] tls_cert`: HTTPS with this configuration (reloaded as its files change).
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Cluster mode: why this replica may answer from an old copy of the registry, for `/readyz`.
    pub degraded: crate::store::Degraded,
    /// The live replicas in cluster mode (members and peers); solo otherwise.
    pub replicas: crate::registry::Ownership,
}

/// Bounds on what HTTP clients may ask of the server at once (docs/configuration.md, Limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests in progress at once (the ops endpoints not counted); more get 429.
    pub max_concurrent_requests: usize,
    /// Blocking queries (`?index=`) waiting at once; more get 429.
    pub max_blocking_queries: usize,
    /// Request line and headers together; more get 431.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits { max_concurrent_requests: 1024, max_blocking_queries: 512, max_header_bytes: 16 * 1024 }
    }
}

/// What every handler shares. Reads only: writes go through `access::Writer`.
pub(crate) struct Api {
    registry: Catalog,
    config: ApiConfig,
    /// This listener's `ADDR:PORT`, for `/v1/status/leader`, and its port, for `/v1/agent/self`.
    leader: String,
    port: u16,
    /// True once the app has started; `/readyz` also turns 503 once `shutdown` is cancelled.
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    /// Slots for requests in progress and for blocking queries (`HttpLimits`).
    requests: Arc<tokio::sync::Semaphore>,
    watchers: Arc<tokio::sync::Semaphore>,
}

type Shared = Arc<Api>;

impl Api {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.shutdown.is_cancelled()
    }
}

/// Serves the API on `listener`. Once `shutdown` is cancelled `/readyz` answers 503 and blocking
/// queries answer at once, but requests are still served; once `stop` is cancelled the listener
/// closes and this returns when the requests in flight have finished. Bounding that wait is the
/// caller's (`app`'s grace period).
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    config: ApiConfig,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    stop: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let leader = local.map(|a| a.to_string()).unwrap_or_default();
    let port = local.map_or(0, |a| a.port());
    let requests = Arc::new(tokio::sync::Semaphore::new(config.limits.max_concurrent_requests));
    let watchers = Arc::new(tokio::sync::Semaphore::new(config.limits.max_blocking_queries));
    let (tls, max_handshakes) = (config.tls.clone(), config.limits.max_concurrent_requests);
    let access = Arc::new(access::Access { acl: config.acl.clone(), registry: registry.clone() });
    let api = Arc::new(Api { registry: registry.catalog(), config, leader, port, ready, shutdown, requests, watchers });
    let app = router(api, access).into_make_service_with_connect_info::<Peer>();
    let served = match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await,
        Some(tls) => match listener::TlsListener::new(listener, tls, max_handshakes) {
            Ok(listener) => axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        warn!(error = %e, "HTTP server stopped with an error");
    }
}

fn router(api: Shared, access: Arc<access::Access>) -> Router {
    let writes = Router::new()
        .route("/v1/agent/service/register", put(writes::register))
        .route("/v1/agent/service/deregister/{id}", put(writes::deregister))
        .route("/v1/agent/service/maintenance/{id}", put(writes::maintenance))
        .route("/v1/agent/check/pass/{id}", put(writes::pass))
        .route("/v1/agent/check/warn/{id}", put(writes::warn))
        .route("/v1/agent/check/fail/{id}", put(writes::fail))
        .route("/v1/agent/check/update/{id}", put(writes::update))
        .route("/v1/agent/check/register", put(catalog::check_register))
        .route("/v1/agent/check/deregister/{id}", put(catalog::check_deregister))
        .route("/v1/catalog/register", put(catalog::register))
        .route("/v1/catalog/deregister", put(catalog::deregister));
    let reads = Router::new()
        .route("/v1/agent/services", get(reads::agent_services))
        .route("/v1/agent/service/{id}", get(reads::agent_service))
        .route("/v1/agent/checks", get(reads::agent_checks))
        .route("/v1/agent/health/service/name/{name}", get(reads::agent_health_by_name))
        .route("/v1/catalog/services", get(reads::catalog_services))
        .route("/v1/catalog/service/{name}", get(reads::catalog_service))
        .route("/v1/health/service/{name}", get(reads::health_service))
        .route("/v1/health/checks/{name}", get(reads::health_checks))
        .route("/v1/health/state/{state}", get(reads::health_state))
        .route("/v1/status/leader", get(reads::leader))
        .route("/v1/catalog/nodes", get(nodes::catalog_nodes))
        .route("/v1/catalog/node/{node}", get(nodes::catalog_node))
        .route("/v1/catalog/datacenters", get(nodes::datacenters))
        .route("/v1/health/node/{node}", get(nodes::health_node))
        .route("/v1/agent/members", get(nodes::members))
        .route("/v1/status/peers", get(nodes::status_peers))
        .route("/v1/agent/self", get(agent_self::agent_self))
        .merge(ui::routes())
        .route("/healthz", get(reads::healthz))
        .route("/readyz", get(reads::readyz))
        .route("/metrics", get(ops::metrics));
    let unsupported = nodes::UNSUPPORTED.iter().fold(Router::new(), |r, (prefix, _)| {
        r.route(prefix, any(nodes::unsupported)).route(&format!("{prefix}/{{*rest}}"), any(nodes::unsupported))
    });
    writes
        .merge(reads)
        .merge(unsupported)
        // Every route, those added later included: see access.rs.
        .layer(axum::middleware::from_fn_with_state((api.clone(), access), access::check))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(api.clone(), ops::limit))
        .layer(axum::middleware::from_fn(ops::track))
        .with_state(api)
}

/// Query parameters as Consul clients send them: repeated keys (`tag=a&tag=b`) and bare flags
/// (`?passing`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A flag: absent is false, bare (`?passing`) is true, otherwise Go's `strconv.ParseBool`
    /// spellings (`1`, `true`, `True`, `0`, `false`, ...), as Consul reads them.
    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| ApiError::bad_request(format!("{key}: {v:?} is not true or false"))),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "" | "1" | "t" | "T" | "true" | "True" | "TRUE" => Some(true),
        "0" | "f" | "F" | "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_the_way_consul_reads_them() {
        let p = |q: &[(&str, &str)]| Params(q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        for (v, want) in [("", true), ("1", true), ("true", true), ("True", true), ("0", false), ("false", false)] {
            assert_eq!(p(&[("passing", v)]).flag("passing").unwrap(), want, "{v:?}");
        }
        assert!(!p(&[]).flag("passing").unwrap());
        assert!(p(&[("passing", "yes")]).flag("passing").is_err());
        assert_eq!(p(&[("tag", "a"), ("tag", "b")]).all("tag").collect::<Vec<_>>(), ["a", "b"]);
    }
}
