//! The writes that go beyond one agent's services: checks registered on their own
//! (`/v1/agent/check/register`, `/deregister`) and the catalog's registrations of external
//! nodes and their services (`/v1/catalog/register`, `/deregister`), as consul-esm and
//! registrators use them. Each request becomes one registry change (a catalog registration one
//! `Change::All`), so a refused request changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use tracing::info;

use super::access::Writer;
use super::register::catalog::{self, CatalogDeregistration};
use super::writes::body;
use super::{ApiError, Shared};
use crate::model::id_key;
use crate::registry::{Change, CheckOwner, RegistryError};

fn bad(e: super::FieldError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// `ServiceID` naming no instance is a bad field of the body, not a missing route.
fn unknown_service(field: &str) -> impl Fn(ApiError) -> ApiError + '_ {
    move |e| match e {
        ApiError::Registry(RegistryError::UnknownInstance(id)) => {
            ApiError::BadRequest(format!("{field}: no service instance with id {id:?}"))
        }
        e => e,
    }
}

pub async fn check_register(writer: Writer, bytes: Result<Bytes, BytesRejection>) -> Result<(), ApiError> {
    let reg = catalog::decode_check(&body(bytes)?).map_err(bad)?;
    let check_id = reg.check.id.clone();
    let owner = match reg.service_id.clone() {
        Some(id) => CheckOwner::Instance(id),
        None => CheckOwner::Node(None),
    };
    writer
        .apply(Change::AddCheck { owner, check: reg.check, output: String::new() })
        .await
        .map_err(unknown_service("ServiceID"))?;
    let service_id = reg.service_id.unwrap_or_default();
    info!(check = %check_id, %service_id, "check registered");
    Ok(())
}

pub async fn check_deregister(writer: Writer, Path(check_id): Path<String>) -> Result<(), ApiError> {
    writer.apply(Change::RemoveCheck { check_id: check_id.clone() }).await?;
    info!(check = %check_id, "check deregistered");
    Ok(())
}

pub async fn register(
    State(api): State<Shared>,
    writer: Writer,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(), ApiError> {
    let c = &api.config;
    let reg = catalog::decode_catalog(&body(bytes)?, &c.datacenter, &c.node).map_err(bad)?;
    let node = reg.node.node.as_deref().unwrap_or_default().to_string();
    let snap = api.registry.snapshot();
    let mut changes = Vec::new();
    if !(reg.skip_node_update && snap.node_record(Some(&node)).is_some()) {
        changes.push(Change::Register { instance: reg.node, replace_existing_checks: false });
    }
    let service = reg.service.as_ref().map(|s| s.id.clone());
    if let Some(instance) = reg.service {
        changes.push(Change::Register { instance, replace_existing_checks: false });
    }
    for (path, service_id, check, output) in reg.checks {
        let owner = match service_id {
            None => CheckOwner::Node(Some(node.clone())),
            Some(id) => {
                let here = service.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&id))
                    || snap
                        .instance(&id_key(&id))
                        .is_some_and(|v| v.instance.node.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&node)));
                if !here {
                    return Err(ApiError::BadRequest(format!(
                        "{path}.ServiceID: no service instance {id:?} on node {node:?}"
                    )));
                }
                CheckOwner::Instance(id)
            }
        };
        changes.push(Change::AddCheck { owner, check, output });
    }
    writer.apply(Change::All(changes)).await?;
    info!(%node, service = %service.unwrap_or_default(), "catalog registration");
    Ok(())
}

pub async fn deregister(
    State(api): State<Shared>,
    writer: Writer,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(), ApiError> {
    let c = &api.config;
    let change = match catalog::decode_catalog_deregister(&body(bytes)?, &c.datacenter, &c.node).map_err(bad)? {
        CatalogDeregistration::Node(node) => Change::DeregisterNode { node },
        CatalogDeregistration::Service { node, id } => {
            let snap = api.registry.snapshot();
            let on_node = snap
                .instance(&id_key(&id))
                .is_some_and(|v| v.instance.node.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&node)));
            if !on_node {
                return Err(ApiError::NotFound(format!("no service instance {id:?} on node {node:?}")));
            }
            Change::Deregister { id }
        }
        CatalogDeregistration::Check { check_id, .. } => Change::RemoveCheck { check_id },
    };
    writer.apply(change).await?;
    Ok(())
}
