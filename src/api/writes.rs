//! Write endpoints: each decodes its request into one registry `Change` and answers 200 with an
//! empty body once the change is durable and published (py-consul treats any other answer as a
//! failure). Changes go through `Writer`, on behalf of the request's caller: the access layer
//! (`access.rs`) has already refused callers who may write nothing, before any body was read,
//! and the registry refuses a change that touches a service the caller may not write.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use tracing::info;

use super::access::Writer;
use super::register::{self, clip_output};
use super::{ApiError, BODY_LIMIT, Params, Peer, Shared};
use crate::model::Status;
use crate::registry::Change;

/// Consul's note when maintenance is switched on without a reason.
const DEFAULT_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

/// The body, or 413 when it is over `BODY_LIMIT`.
pub(super) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge { limit: BODY_LIMIT },
        _ => ApiError::bad_request(format!("body: {}", e.body_text())),
    })
}

pub async fn register(
    writer: Writer,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Query(params): Query<Params>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(), ApiError> {
    let bytes = body(bytes)?;
    let replace_existing_checks = params.flag("replace-existing-checks")?;
    let instance = register::decode(&bytes, peer.ip()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (id, service, address, port) =
        (instance.id.clone(), instance.service.clone(), instance.address.to_string(), instance.port);
    let checks = instance.checks.len();
    writer.apply(Change::Register { instance, replace_existing_checks }).await?;
    info!(%id, %service, %address, port, checks, "registered");
    Ok(())
}

pub async fn deregister(State(api): State<Shared>, writer: Writer, Path(id): Path<String>) -> Result<(), ApiError> {
    let view = api.registry.snapshot().instance(&crate::model::id_key(&id)).cloned();
    writer.apply(Change::Deregister { id: id.clone() }).await?;
    let (service, address) =
        view.map(|v| (v.instance.service.clone(), v.instance.address.to_string())).unwrap_or_default();
    info!(%id, %service, %address, "deregistered");
    Ok(())
}

pub async fn maintenance(
    State(api): State<Shared>,
    writer: Writer,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Result<(), ApiError> {
    if params.get("enable").is_none() {
        return Err(ApiError::bad_request("enable: required (true or false)"));
    }
    let enable = params.flag("enable")?;
    let reason = enable.then(|| match params.get("reason") {
        None | Some("") => DEFAULT_MAINTENANCE_REASON.to_string(),
        Some(r) => clip_output(r),
    });
    writer.apply(Change::Maintenance { id: id.clone(), reason: reason.clone() }).await?;
    let snapshot = api.registry.snapshot();
    let view = snapshot.instance(&crate::model::id_key(&id));
    let service = view.map(|v| v.instance.service.as_str()).unwrap_or_default();
    let address = view.map(|v| v.instance.address.to_string()).unwrap_or_default();
    match reason {
        Some(reason) => info!(%id, %service, %address, %reason, "maintenance on"),
        None => info!(%id, %service, %address, "maintenance off"),
    }
    Ok(())
}

pub async fn pass(writer: Writer, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(writer, id, params, Status::Passing).await
}

pub async fn warn(writer: Writer, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(writer, id, params, Status::Warning).await
}

pub async fn fail(writer: Writer, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(writer, id, params, Status::Critical).await
}

async fn heartbeat(
    writer: Writer,
    Path(check_id): Path<String>,
    Query(params): Query<Params>,
    status: Status,
) -> Result<(), ApiError> {
    let output = clip_output(params.get("note").unwrap_or_default());
    writer.apply(Change::CheckUpdate { check_id, status, output }).await?;
    Ok(())
}

pub async fn update(
    writer: Writer,
    Path(check_id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(), ApiError> {
    let bytes = body(bytes)?;
    let (status, output) = register::decode_check_update(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    writer.apply(Change::CheckUpdate { check_id, status, output }).await?;
    Ok(())
}
