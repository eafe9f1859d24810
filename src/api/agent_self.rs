//! `GET /v1/agent/self`: who this agent is, in the part of Consul's shape that clients read.
//! Go's consul/api calls it for `Agent().NodeName()`, py-consul and node-consul expose it as
//! `agent.self()`; scripts read `Config.Datacenter` and `Member.Addr` from it.
//!
//! The identity is the one every catalog read already reports (`ApiConfig`), so `NodeName`,
//! `Datacenter` and `Addr` match the `Node`, `Datacenter` and `Address` fields there. Go decodes
//! the answer as a map of objects, so every top-level value is one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::Shared;
use super::reads::answer;

/// Serf's status code for a member that is up.
const ALIVE: u8 = 1;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSelf<'a> {
    config: Config<'a>,
    member: Member<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config<'a> {
    datacenter: &'a str,
    /// There is one datacenter, so it is the primary one.
    primary_datacenter: &'a str,
    node_name: &'a str,
    /// Empty, as the catalog's node `ID` is: this node has no UUID.
    #[serde(rename = "NodeID")]
    node_id: &'a str,
    /// This server holds the catalog itself (`/v1/status/leader` names it).
    server: bool,
    /// signpost's version, not a Consul one.
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Member<'a> {
    name: &'a str,
    addr: &'a str,
    /// There is no gossip port; this API's port is where the agent is reached.
    port: u16,
    status: u8,
}

pub async fn agent_self(State(api): State<Shared>) -> Response {
    let c = &api.config;
    let body = AgentSelf {
        config: Config {
            datacenter: &c.datacenter,
            primary_datacenter: &c.datacenter,
            node_name: &c.node,
            node_id: "",
            server: true,
            version: env!("CARGO_PKG_VERSION"),
        },
        member: Member { name: &c.node, addr: &c.node_address, port: api.port, status: ALIVE },
    };
    answer(&api.registry.snapshot(), StatusCode::OK, body)
}
