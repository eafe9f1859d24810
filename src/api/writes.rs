//! Write endpoints: each decodes its request into one registry `Change` and answers 200 with an
//! empty body once the change is durable and published (py-consul treats any other answer as a
//! failure). The token check runs before the handler, so a refused write reads no body.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::info;

use super::register::{self, clip_output};
use super::{ApiError, BODY_LIMIT, Params, Peer, Shared};
use crate::model::Status;
use crate::registry::Change;

/// Consul's note when maintenance is switched on without a reason.
const DEFAULT_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

/// Refuses writes without the configured token (403; nothing changes).
pub async fn authorize(State(api): State<Shared>, req: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(token) = &api.config.token
        && !presented(req.headers()).any(|t| same(t.as_bytes(), token.as_bytes()))
    {
        info!(path = %req.uri().path(), "write refused: missing or wrong token");
        return Err(ApiError::Forbidden);
    }
    Ok(next.run(req).await)
}

/// Tokens a request carries: `X-Consul-Token: T` and `Authorization: Bearer T`.
pub(super) fn presented(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let consul = headers.get_all("x-consul-token").iter().filter_map(|v| v.to_str().ok());
    let bearer = headers.get_all("authorization").iter().filter_map(|v| {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    consul.map(str::trim).chain(bearer)
}

/// Compares in time that depends only on the lengths, so that response times do not reveal
/// how much of a guessed token was right.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let diff = (0..n).fold(a.len() ^ b.len(), |acc, i| {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        acc | usize::from(x ^ y)
    });
    std::hint::black_box(diff) == 0
}

/// The body, or 413 when it is over `BODY_LIMIT`.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge { limit: BODY_LIMIT },
        _ => ApiError::bad_request(format!("body: {}", e.body_text())),
    })
}

pub async fn register(
    State(api): State<Shared>,
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
    api.registry.apply(Change::Register { instance, replace_existing_checks }).await?;
    info!(%id, %service, %address, port, checks, "registered");
    Ok(())
}

pub async fn deregister(State(api): State<Shared>, Path(id): Path<String>) -> Result<(), ApiError> {
    let view = api.registry.snapshot().instance(&crate::model::id_key(&id)).cloned();
    api.registry.apply(Change::Deregister { id: id.clone() }).await?;
    let (service, address) =
        view.map(|v| (v.instance.service.clone(), v.instance.address.to_string())).unwrap_or_default();
    info!(%id, %service, %address, "deregistered");
    Ok(())
}

pub async fn maintenance(
    State(api): State<Shared>,
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
    api.registry.apply(Change::Maintenance { id: id.clone(), reason: reason.clone() }).await?;
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

pub async fn pass(api: State<Shared>, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(api, id, params, Status::Passing).await
}

pub async fn warn(api: State<Shared>, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(api, id, params, Status::Warning).await
}

pub async fn fail(api: State<Shared>, id: Path<String>, params: Query<Params>) -> Result<(), ApiError> {
    heartbeat(api, id, params, Status::Critical).await
}

async fn heartbeat(
    State(api): State<Shared>,
    Path(check_id): Path<String>,
    Query(params): Query<Params>,
    status: Status,
) -> Result<(), ApiError> {
    let output = clip_output(params.get("note").unwrap_or_default());
    api.registry.apply(Change::CheckUpdate { check_id, status, output }).await?;
    Ok(())
}

pub async fn update(
    State(api): State<Shared>,
    Path(check_id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(), ApiError> {
    let bytes = body(bytes)?;
    let (status, output) = register::decode_check_update(&bytes).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    api.registry.apply(Change::CheckUpdate { check_id, status, output }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        for other in [&b"s3cre"[..], b"s3cret!", b"S3cret", b""] {
            assert!(!same(other, b"s3cret"), "{other:?}");
        }
    }

    #[test]
    fn tokens_come_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        h.insert("x-consul-token", "def".parse().unwrap());
        let mut got: Vec<&str> = presented(&h).collect();
        got.sort();
        assert_eq!(got, ["abc", "def"]);
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented(&h).collect::<Vec<_>>(), ["def"]);
    }
}
