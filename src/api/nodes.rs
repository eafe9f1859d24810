//! Reads about nodes and the cluster's shape: the catalog's nodes (this server's own, and the
//! external nodes `PUT /v1/catalog/register` added), one node's services and checks, the
//! datacenter, the members and the peers. In cluster mode every replica is a member and a peer;
//! they share one registry, so they serve one node of their own between them (each under its
//! own name). Also the routes of Consul's areas signpost leaves out, which say so.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::reads::{answer, filter_param, filtered, filtered_map, snapshot};
use super::render::{CheckJson, NodeJson, Render, ServiceJson};
use super::{ApiError, Params, Shared};
use crate::registry::{InstanceView, Snapshot};

/// Every node: this server's first, then the external ones by name.
pub async fn catalog_nodes(State(api): State<Shared>, Query(p): Query<Params>) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let mut nodes: Vec<NodeJson> = vec![r.node()];
    nodes.extend(snap.nodes().filter(|v| v.instance.node.is_some()).map(|v| r.node_record(v)));
    Ok(answer(&snap, StatusCode::OK, filtered(&filter, nodes)?))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NodeServices<'a> {
    node: NodeJson<'a>,
    services: BTreeMap<&'a str, ServiceJson<'a>>,
}

/// The instances on `name` (this server's own node, or an external one), or `None` for a node
/// that is not registered.
fn on_node<'s>(
    api: &Shared,
    snap: &'s Snapshot,
    name: &str,
) -> Option<(Option<&'s InstanceView>, Vec<&'s InstanceView>)> {
    if name.eq_ignore_ascii_case(&api.config.node) {
        let here = snap.instances().filter(|v| v.instance.node.is_none()).collect();
        return Some((snap.node_record(None), here));
    }
    let record = snap.node_record(Some(name))?;
    // A walk over every instance: node reads are rare next to DNS, which never does this.
    let here =
        snap.instances().filter(|v| v.instance.node.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))).collect();
    Some((Some(record), here))
}

/// `{Node, Services}`; `null` for an unknown node, as Consul answers.
pub async fn catalog_node(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let Some((record, here)) = on_node(&api, &snap, &name) else {
        return Ok(answer(&snap, StatusCode::OK, serde_json::Value::Null));
    };
    let node = match record.filter(|v| v.instance.node.is_some()) {
        Some(record) => r.node_record(record),
        None => r.node(),
    };
    let services = filtered_map(&filter, here.into_iter().map(|v| (v.instance.id.as_str(), r.service(v))))?;
    Ok(answer(&snap, StatusCode::OK, NodeServices { node, services }))
}

/// The node's own checks, then its instances' (`[]` for an unknown node).
pub async fn health_node(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let mut checks: Vec<CheckJson> = Vec::new();
    if let Some((record, here)) = on_node(&api, &snap, &name) {
        checks.extend(record.into_iter().flat_map(|v| r.checks(v)));
        checks.extend(here.into_iter().flat_map(|v| r.checks(v)));
    }
    Ok(answer(&snap, StatusCode::OK, filtered(&filter, checks)?))
}

pub async fn datacenters(State(api): State<Shared>) -> Response {
    answer(&api.registry.snapshot(), StatusCode::OK, [&api.config.datacenter])
}

/// A member as Consul's `/v1/agent/members` shows one (its serf fields at fixed values).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Member {
    name: String,
    addr: String,
    port: u16,
    tags: BTreeMap<&'static str, String>,
    /// Serf's "alive".
    status: u8,
    protocol_min: u8,
    protocol_max: u8,
    protocol_cur: u8,
    delegate_min: u8,
    delegate_max: u8,
    delegate_cur: u8,
}

/// This server, and in cluster mode every other live replica (named by its replica id, at the
/// HTTP address it announced).
pub async fn members(State(api): State<Shared>) -> Response {
    let c = &api.config;
    let member = |name: String, addr: String, port: u16| Member {
        name,
        addr,
        port,
        tags: [("dc", c.datacenter.clone()), ("role", "node".to_string())].into(),
        status: 1,
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    };
    let body: Vec<Member> = peers(&api)
        .into_iter()
        .map(|(name, http)| {
            let (addr, port) = split_addr(&http);
            member(name, addr, port)
        })
        .collect();
    answer(&api.registry.snapshot(), StatusCode::OK, body)
}

/// Every server's HTTP `ADDR:PORT`, this one's first.
pub async fn status_peers(State(api): State<Shared>) -> Response {
    let body: Vec<String> = peers(&api).into_iter().map(|(_, http)| http).collect();
    answer(&api.registry.snapshot(), StatusCode::OK, body)
}

/// (name, HTTP `ADDR:PORT`) of this server, then of every other live replica.
fn peers(api: &Shared) -> Vec<(String, String)> {
    let mut out = vec![(api.config.node.clone(), api.leader.clone())];
    out.extend(api.config.replicas.others());
    out
}

fn split_addr(addr: &str) -> (String, u16) {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => (addr.to_string(), 0),
    }
}

/// Consul's areas signpost leaves out, as routes (`{*rest}` and all below them).
pub const UNSUPPORTED: [(&str, &str); 6] = [
    ("/v1/kv", "Consul's key/value store"),
    ("/v1/session", "Consul's sessions"),
    ("/v1/event", "Consul's events"),
    ("/v1/connect", "Consul Connect (service mesh)"),
    ("/v1/agent/connect", "Consul Connect (service mesh)"),
    ("/v1/acl", "Consul's ACL management (tokens are declared in signpost's configuration)"),
];

/// Returns true if `route` (as axum matched it) is one of the unsupported areas': they hold
/// nothing to protect, and a 404 saying so helps more than a 403.
pub fn is_unsupported(route: &str) -> bool {
    UNSUPPORTED.iter().any(|(prefix, _)| route == *prefix || route.strip_prefix(prefix) == Some("/{*rest}"))
}

/// 404, naming the route and what it belongs to as unsupported.
pub async fn unsupported(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let area = UNSUPPORTED
        .iter()
        .find(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}/")))
        .map_or("this Consul API", |(_, area)| area);
    let text = format!(
        "{method} {path}: unsupported by signpost ({area}); it serves Consul's service discovery only (see docs/registering.md)"
    );
    (StatusCode::NOT_FOUND, [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
