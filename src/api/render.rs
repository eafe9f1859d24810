//! Consul's JSON shapes for the read endpoints, rendered from snapshot views: services,
//! checks (with their definitions), catalog entries and this server as Consul's one node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Shared;
use super::register::catalog::shown_check_id;
use crate::duration::format as fmt_duration;
use crate::model::{CheckKind, CheckSpec, CheckState, Meta, Status};
use crate::registry::{InstanceView, Snapshot};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    service: &'a str,
    tags: &'a [String],
    meta: &'a Meta,
    port: u16,
    address: String,
    weights: Weights,
    enable_tag_override: bool,
    datacenter: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Weights {
    passing: u32,
    warning: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CheckJson<'a> {
    node: &'a str,
    #[serde(rename = "CheckID")]
    pub(super) check_id: String,
    name: &'a str,
    pub(super) status: &'static str,
    notes: &'a str,
    output: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    #[serde(rename = "Type")]
    kind: &'static str,
    interval: String,
    timeout: String,
    exposed_port: u16,
    definition: Definition<'a>,
}

/// How a check probes, as Consul's `HealthCheckDefinition`. Durations are always valid Go
/// duration strings (`"0s"` when unset): Go's consul/api fails to decode an empty one.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Definition<'a> {
    #[serde(rename = "HTTP")]
    http: &'a str,
    header: &'a BTreeMap<String, Vec<String>>,
    method: &'a str,
    #[serde(rename = "TLSSkipVerify")]
    tls_skip_verify: bool,
    #[serde(rename = "TCP")]
    tcp: &'a str,
    interval: String,
    timeout: String,
    deregister_critical_service_after: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct NodeJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    pub(super) node: &'a str,
    address: String,
    datacenter: &'a str,
    tagged_addresses: BTreeMap<&'a str, String>,
    /// A node's meta is owned: an external node's lives in a record of another snapshot.
    meta: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CatalogJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    node: &'a str,
    address: String,
    datacenter: &'a str,
    tagged_addresses: BTreeMap<&'a str, String>,
    node_meta: BTreeMap<String, String>,
    service_kind: &'a str,
    #[serde(rename = "ServiceID")]
    service_id: &'a str,
    service_name: &'a str,
    service_tags: &'a [String],
    service_address: String,
    service_weights: Weights,
    service_meta: &'a Meta,
    service_port: u16,
    service_enable_tag_override: bool,
}

/// Renders instances in the shapes above, on this server's node or the external node they
/// were registered on (whose record it looks up in the current snapshot).
pub(super) struct Render<'a> {
    node: &'a str,
    address: &'a str,
    datacenter: &'a str,
    /// Where external nodes' records are looked up: they change far less often than the
    /// snapshot a read answers from, and a newer record is as good.
    nodes: Arc<Snapshot>,
}

impl<'a> Render<'a> {
    pub(super) fn new(api: &'a Shared) -> Render<'a> {
        let c = &api.config;
        Render { node: &c.node, address: &c.node_address, datacenter: &c.datacenter, nodes: api.registry.snapshot() }
    }

    /// The name of the node an instance (or node record) is on.
    pub(super) fn node_name(&self, v: &'a InstanceView) -> &'a str {
        v.instance.node.as_deref().unwrap_or(self.node)
    }

    /// The node an instance is on, in `/v1/health/service`'s `Node` shape.
    pub(super) fn node_of(&self, v: &'a InstanceView) -> NodeJson<'a> {
        let Some(name) = v.instance.node.as_deref() else { return self.node() };
        let (address, meta) = match self.nodes.node_record(Some(name)) {
            Some(record) => (record.instance.address.to_string(), record.instance.meta.clone()),
            None => (v.instance.address.to_string(), Default::default()),
        };
        let mut node = self.external(name, address);
        node.meta = meta.into();
        node
    }

    /// An external node by its record.
    pub(super) fn node_record(&self, record: &'a InstanceView) -> NodeJson<'a> {
        let mut node = self.external(self.node_name(record), record.instance.address.to_string());
        node.meta = record.instance.meta.clone().into();
        node
    }

    fn external(&self, name: &'a str, address: String) -> NodeJson<'a> {
        NodeJson {
            id: "",
            node: name,
            tagged_addresses: [("lan", address.clone()), ("wan", address.clone())].into(),
            address,
            datacenter: self.datacenter,
            meta: BTreeMap::new(),
        }
    }

    pub(super) fn service(&self, v: &'a InstanceView) -> ServiceJson<'a> {
        let i = &v.instance;
        ServiceJson {
            id: &i.id,
            service: &i.service,
            tags: &i.tags,
            meta: &i.meta,
            port: i.port,
            address: i.address.to_string(),
            weights: Weights { passing: i.weight, warning: 1 },
            enable_tag_override: false,
            datacenter: self.datacenter,
        }
    }

    /// This server's node.
    pub(super) fn node(&self) -> NodeJson<'a> {
        self.external(self.node, self.address.to_string())
    }

    pub(super) fn catalog(&self, v: &'a InstanceView) -> CatalogJson<'a> {
        let i = &v.instance;
        let node = self.node_of(v);
        CatalogJson {
            id: "",
            node: node.node,
            address: node.address,
            datacenter: self.datacenter,
            tagged_addresses: node.tagged_addresses,
            node_meta: node.meta,
            service_kind: "",
            service_id: &i.id,
            service_name: &i.service,
            service_tags: &i.tags,
            service_address: i.address.to_string(),
            service_weights: Weights { passing: i.weight, warning: 1 },
            service_meta: &i.meta,
            service_port: i.port,
            service_enable_tag_override: false,
        }
    }

    /// An instance's checks; maintenance shows as Consul shows it, a critical check named
    /// `_service_maintenance:<id>`, first.
    pub(super) fn checks(&self, v: &'a InstanceView) -> Vec<CheckJson<'a>> {
        let i = &v.instance;
        // A node record's checks belong to no service.
        let service_id = if i.is_node() { "" } else { &i.id };
        let base = |check_id: String, name: &'a str, status: Status, kind: &'static str| CheckJson {
            node: self.node_name(v),
            check_id,
            name,
            status: status.as_str(),
            notes: "",
            output: "",
            service_id,
            service_name: &i.service,
            service_tags: &i.tags,
            kind,
            interval: String::new(),
            timeout: String::new(),
            exposed_port: 0,
            definition: definition(None),
        };
        let mut out = Vec::with_capacity(i.checks.len() + 1);
        if let Some(reason) = &v.health.maintenance {
            let mut c = base(
                format!("_service_maintenance:{}", i.id),
                "Service Maintenance Mode",
                Status::Critical,
                "maintenance",
            );
            c.notes = reason;
            out.push(c);
        }
        for (spec, state) in i.checks.iter().zip(&v.health.checks) {
            let id = shown_check_id(i.node.as_deref(), &spec.id).to_string();
            out.push(self.check(base(id, &spec.name, state.status, spec.kind.as_str()), spec, state));
        }
        out
    }

    /// The checks that gate an instance, as `/v1/health/service` lists them: its node's, then
    /// its own (`snap` is the one `v` comes from).
    pub(super) fn node_and_own_checks(&self, snap: &'a Snapshot, v: &'a InstanceView) -> Vec<CheckJson<'a>> {
        match snap.node_record(v.instance.node.as_deref()) {
            None => self.checks(v),
            Some(node) => {
                let mut out = self.checks(node);
                out.extend(self.checks(v));
                out
            }
        }
    }

    fn check(&self, mut c: CheckJson<'a>, spec: &'a CheckSpec, state: &'a CheckState) -> CheckJson<'a> {
        c.output = &state.output;
        if spec.kind.is_probed() {
            c.interval = fmt_duration(spec.interval);
            c.timeout = fmt_duration(spec.timeout);
        }
        c.definition = definition(Some(spec));
        c
    }
}

/// The definition of a check; `None` (the maintenance check) and TTL checks probe nothing.
fn definition(spec: Option<&CheckSpec>) -> Definition<'_> {
    static NO_HEADERS: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let zero = || fmt_duration(Duration::ZERO);
    let mut d = Definition {
        http: "",
        header: &NO_HEADERS,
        method: "",
        tls_skip_verify: false,
        tcp: "",
        interval: zero(),
        timeout: zero(),
        deregister_critical_service_after: zero(),
    };
    let Some(spec) = spec else { return d };
    d.deregister_critical_service_after = spec.deregister_after.map_or_else(zero, fmt_duration);
    match &spec.kind {
        CheckKind::Http { url, method, headers, tls_skip_verify } => {
            (d.http, d.method, d.header, d.tls_skip_verify) = (url, method, headers, *tls_skip_verify);
        }
        CheckKind::Tcp { target } => d.tcp = target,
        CheckKind::Ttl { .. } | CheckKind::External => return d,
    }
    (d.interval, d.timeout) = (fmt_duration(spec.interval), fmt_duration(spec.timeout));
    d
}

/// Returns true if the instance carries every tag asked for (case-insensitively, like DNS).
pub(super) fn has_tags(v: &InstanceView, wanted: &[&str]) -> bool {
    wanted.iter().all(|w| v.instance.tags.iter().any(|t| t.eq_ignore_ascii_case(w)))
}
