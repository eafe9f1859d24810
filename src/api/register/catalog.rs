//! The bodies of checks registered on their own (`PUT /v1/agent/check/register`, Consul's
//! `AgentCheckRegistration`) and of the catalog's writes (`PUT /v1/catalog/register` and
//! `/deregister`, Consul's `CatalogRegistration` and `CatalogDeregistration`, as consul-esm and
//! registrators send them), read the forgiving way registrations are, with the same rules.
//!
//! Check ids are the agent's own in Consul, but per node in the catalog: consul-esm gives the
//! same `externalNodeHealth` to every node it watches. Checks of external nodes are therefore
//! kept under `<node>/<CheckID>` (lowercase node), and shown without it (`shown_check_id`).

use super::{FieldError, Fields, check_as, check_kind, label, meta, meta_at, parse_json, raw_checks, tags, weight};
use crate::model::{Address, CheckKind, CheckSpec, Instance, Source, rules};

/// A check registered on its own: the instance it gates (`ServiceID`), or none for the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRegistration {
    pub service_id: Option<String>,
    pub check: CheckSpec,
}

/// `PUT /v1/agent/check/register`: `Name` required, `CheckID` defaulting to it, then the fields
/// of a service registration's check.
pub fn decode_check(body: &[u8]) -> Result<CheckRegistration, FieldError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value, "")?;
    let name =
        f.str("Name")?.filter(|n| !n.is_empty()).ok_or_else(|| f.error("Name", "required (the check's name)"))?;
    let kind = check_kind(&f)?;
    let check = check_as(&f, &f, kind, name.to_string(), || name.to_string())?;
    let service_id = f.str("ServiceID")?.filter(|s| !s.is_empty()).map(str::to_string);
    Ok(CheckRegistration { service_id, check })
}

/// `PUT /v1/catalog/register`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRegistration {
    /// The node's record: its name, address and `NodeMeta`.
    pub node: Instance,
    /// `SkipNodeUpdate`: an existing node keeps its address and meta.
    pub skip_node_update: bool,
    /// The instance registered on it (`Service`), if any.
    pub service: Option<Instance>,
    /// `Check` and `Checks[]`: where each sits in the body (`Checks[1]`), the instance it gates
    /// (`ServiceID`; `None`: the node), the check and its `Output`.
    pub checks: Vec<(String, Option<String>, CheckSpec, String)>,
}

/// Decodes a catalog registration for datacenter `datacenter`; the node must not be this
/// server's own (`local`), whose services register through the agent.
pub fn decode_catalog(body: &[u8], datacenter: &str, local: &str) -> Result<CatalogRegistration, FieldError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value, "")?;
    let node = node_name(&f, datacenter, local)?;
    let text = f.str("Address")?.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(f.error("Address", "required (the node's IP address or host name)"));
    }
    let address = Address::parse(text).map_err(|e| f.invalid("Address", e))?;
    let node_meta = meta_at(&f, "NodeMeta")?.into();
    let record = Instance::node_record(Some(node), address.clone(), node_meta, Vec::new());
    let skip_node_update = f.bool("SkipNodeUpdate")?.unwrap_or(false);
    let service = match f.get("Service") {
        None => None,
        Some(v) => Some(service(&Fields::new(v, "Service")?, node, &address)?),
    };
    let raw = raw_checks(&f)?;
    let mut checks: Vec<(String, Option<String>, CheckSpec, String)> = Vec::with_capacity(raw.len());
    for (path, value) in raw {
        let f = Fields::new(value, &path)?;
        let (service_id, spec) = catalog_check(&f, node)?;
        if checks.iter().any(|(_, _, c, _)| c.id == spec.id) {
            return Err(FieldError { field: format!("{path}.CheckID"), rule: format!("{:?} is used twice", spec.id) });
        }
        let output = super::clip_output(f.str("Output")?.unwrap_or_default());
        checks.push((path, service_id, spec, output));
    }
    Ok(CatalogRegistration { node: record, skip_node_update, service, checks })
}

/// What `PUT /v1/catalog/deregister` takes away from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogDeregistration {
    /// The node and everything on it.
    Node(String),
    /// One instance on it (`ServiceID`).
    Service { node: String, id: String },
    /// One check on it (`CheckID`, as registered).
    Check { node: String, check_id: String },
}

pub fn decode_catalog_deregister(
    body: &[u8],
    datacenter: &str,
    local: &str,
) -> Result<CatalogDeregistration, FieldError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value, "")?;
    let node = node_name(&f, datacenter, local)?.to_string();
    let service_id = f.str("ServiceID")?.filter(|s| !s.is_empty());
    let check_id = f.str("CheckID")?.filter(|s| !s.is_empty());
    match (service_id, check_id) {
        (Some(_), Some(_)) => Err(f.error("CheckID", "give ServiceID or CheckID, not both")),
        (Some(id), None) => Ok(CatalogDeregistration::Service { node, id: id.to_string() }),
        (None, Some(check)) => Ok(CatalogDeregistration::Check { check_id: external_check_id(&node, check), node }),
        (None, None) => Ok(CatalogDeregistration::Node(node)),
    }
}

/// Where a check of an external node is kept: its id in the node's namespace.
pub fn external_check_id(node: &str, check_id: &str) -> String {
    format!("{}/{check_id}", node.to_ascii_lowercase())
}

/// The `CheckID` a client registered, for a check kept under `spec_id` on `node`.
pub fn shown_check_id<'a>(node: Option<&str>, spec_id: &'a str) -> &'a str {
    let Some(node) = node else { return spec_id };
    match spec_id.split_once('/') {
        Some((n, id)) if n.eq_ignore_ascii_case(node) => id,
        _ => spec_id,
    }
}

/// `Node` (a DNS label, as `<node>.node.D` names it), after `Datacenter` is checked to be ours.
fn node_name<'a>(f: &Fields<'a>, datacenter: &str, local: &str) -> Result<&'a str, FieldError> {
    match f.str("Datacenter")? {
        None | Some("") => {}
        Some(dc) if dc.eq_ignore_ascii_case(datacenter) => {}
        Some(dc) => return Err(f.error("Datacenter", format!("{dc:?} is not this datacenter ({datacenter:?})"))),
    }
    let node = f.str("Node")?.filter(|n| !n.is_empty()).ok_or_else(|| f.error("Node", "required (the node's name)"))?;
    label(f, "Node", node)?;
    if node.eq_ignore_ascii_case(local) {
        return Err(f.error(
            "Node",
            format!("{node:?} is this server's own node; register its services with PUT /v1/agent/service/register"),
        ));
    }
    Ok(node)
}

/// The catalog's `AgentService`: `Service` is the name, `Address` defaults to the node's.
fn service(f: &Fields, node: &str, node_address: &Address) -> Result<Instance, FieldError> {
    let name = f.str("Service")?.or(f.str("Name")?).filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| f.error("Service", "required (the service name)"))?;
    label(f, "Service", name)?;
    let id = f.str("ID")?.filter(|s| !s.is_empty()).unwrap_or(name);
    label(f, "ID", id)?;
    let address = match f.str("Address")?.map(str::trim).filter(|a| !a.is_empty()) {
        None => node_address.clone(),
        Some(text) => Address::parse(text).map_err(|e| f.invalid("Address", e))?,
    };
    let port = f.uint("Port", 0, u16::MAX.into())?.unwrap_or(0) as u16;
    let meta = meta(f)?;
    let (region, policy) = rules::meta_settings(&meta).map_err(|(key, e)| f.invalid(&format!("Meta.{key}"), e))?;
    Ok(Instance {
        id: id.to_string(),
        service: name.to_string(),
        address,
        port,
        tags: tags(f)?,
        weight: weight(f)?,
        region: region.map(Into::into),
        meta: meta.into(),
        checks: Vec::new(),
        policy: policy.into(),
        source: Source::Api,
        node: Some(node.into()),
    })
}

/// A catalog `HealthCheck`: with a `Definition` (or the agent's fields) signpost probes it; a
/// check without one holds the `Status` sent (critical when none is, as in Consul).
fn catalog_check(f: &Fields, node: &str) -> Result<(Option<String>, CheckSpec), FieldError> {
    match f.str("Node")? {
        None | Some("") => {}
        Some(n) if n.eq_ignore_ascii_case(node) => {}
        Some(n) => return Err(f.error("Node", format!("{n:?} is not the node registered ({node:?})"))),
    }
    let definition = f.get("Definition").map(|d| Fields::new(d, &f.name("Definition"))).transpose()?;
    let def = definition.as_ref().unwrap_or(f);
    let probes = ["HTTP", "TCP", "TTL"].iter().chain(super::UNSUPPORTED.iter()).any(|k| def.get(k).is_some());
    let kind = if probes { check_kind(def)? } else { CheckKind::External };
    let default_id = f.str("Name")?.unwrap_or_default().to_string();
    let mut spec = check_as(f, def, kind, default_id, String::new)?;
    if spec.name.is_empty() {
        spec.name.clone_from(&spec.id);
    }
    spec.id = external_check_id(node, &spec.id);
    let service_id = f.str("ServiceID")?.filter(|s| !s.is_empty()).map(str::to_string);
    Ok((service_id, spec))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::Status;

    #[test]
    fn a_catalog_registration_as_consul_esm_sends_it() {
        let body = json!({
            "Datacenter": "DC1", "Node": "db-host", "Address": "10.20.0.5", "NodeMeta": {"external-node": "true"},
            "Service": {"ID": "pg-1", "Service": "postgres", "Port": 5432, "Tags": ["primary"]},
            "Checks": [
                {"Node": "db-host", "CheckID": "externalNodeHealth", "Status": "passing", "Output": "ok"},
                {"CheckID": "pg", "ServiceID": "pg-1",
                 "Definition": {"TCP": "10.20.0.5:5432", "IntervalDuration": "10s"}}
            ]
        });
        let reg = decode_catalog(body.to_string().as_bytes(), "dc1", "myhost").unwrap();
        assert_eq!((reg.node.id.as_str(), reg.node.node.as_deref()), ("node:db-host", Some("db-host")));
        let service = reg.service.unwrap();
        assert_eq!((service.id.as_str(), service.node.as_deref()), ("pg-1", Some("db-host")));
        assert_eq!(service.address, Address::Ip([10, 20, 0, 5].into()), "the node's address");
        let checks: Vec<(&str, Option<&str>, &str, Option<Status>)> = reg
            .checks
            .iter()
            .map(|(_, owner, c, _)| (c.id.as_str(), owner.as_deref(), c.kind.as_str(), c.initial))
            .collect();
        assert_eq!(
            checks,
            [
                ("db-host/externalNodeHealth", None, "external", Some(Status::Passing)),
                ("db-host/pg", Some("pg-1"), "tcp", None),
            ]
        );
        assert_eq!(reg.checks[0].3, "ok");
        assert_eq!(reg.checks[1].2.interval, std::time::Duration::from_secs(10));
    }

    #[test]
    fn external_check_ids_are_kept_per_node_and_shown_as_registered() {
        for (node, id, kept) in [("db-host", "x", "db-host/x"), ("DB", "a/b", "db/a/b")] {
            assert_eq!(external_check_id(node, id), kept);
            assert_eq!(shown_check_id(Some(node), kept), id);
        }
        assert_eq!(shown_check_id(None, "db/x"), "db/x", "this server's checks are shown as they are");
        assert_eq!(shown_check_id(Some("other"), "db/x"), "db/x");
    }
}
