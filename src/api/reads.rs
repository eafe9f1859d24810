//! Read endpoints: the current snapshot in Consul's JSON shapes. Every answer carries
//! `X-Consul-Index` (the snapshot's version) and the two headers Go's consul/api insists on
//! (`X-Consul-KnownLeader`, `X-Consul-LastContact`); every one can block
//! (`?index=N&wait=30s`) until the catalog passes version N.
//!
//! Zone-file and API instances look alike here, on this server's node; instances registered
//! through `PUT /v1/catalog/register` show their external node (`nodes.rs` has the node reads),
//! and are not the agent's (`/v1/agent/services` and `/checks` leave them out).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::filter::Filter;
use super::render::{CatalogJson, CheckJson, NodeJson, Render, ServiceJson, has_tags};
use super::{ApiError, Params, Shared};
use crate::model::Status;
use crate::registry::{InstanceView, RegistryError, Snapshot};

/// A blocking query's wait when `?wait=` is absent, and its cap (Consul's figures).
const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// The snapshot to answer from: the current one, or for a blocking query (`?index=N`) the first
/// one past version N, or the current one when the wait ends or shutdown begins.
pub(super) async fn snapshot(api: &Shared, params: &Params) -> Result<Arc<Snapshot>, ApiError> {
    let Some(index) = index_param(params)? else { return Ok(api.registry.snapshot()) };
    let wait = wait_param(params, DEFAULT_WAIT, MAX_WAIT)?;
    block(api, wait, api.registry.subscribe(), |snap| snap.version > index).await
}

/// `?index=N`, if given.
pub(super) fn index_param(params: &Params) -> Result<Option<u64>, ApiError> {
    params
        .get("index")
        .map(|i| i.parse().map_err(|_| ApiError::bad_request(format!("index: {i:?} is not a number"))))
        .transpose()
}

/// `?wait=`: `default` when absent, at most `cap`.
pub(super) fn wait_param(params: &Params, default: Duration, cap: Duration) -> Result<Duration, ApiError> {
    let wait = match params.get("wait") {
        None | Some("") => default,
        Some(w) => crate::duration::parse(w).map_err(|e| ApiError::bad_request(format!("wait: {e}")))?,
    };
    Ok(wait.min(cap))
}

/// Waits until `ready` holds for the published snapshot, looking again whenever `changes` moves,
/// until `wait` ends or shutdown begins; returns the snapshot of that moment. Every blocking
/// read shares this, and with it the bound on how many wait at once (`max_blocking_queries`).
pub(super) async fn block(
    api: &Shared,
    wait: Duration,
    mut changes: tokio::sync::watch::Receiver<u64>,
    mut ready: impl FnMut(&Snapshot) -> bool,
) -> Result<Arc<Snapshot>, ApiError> {
    let Ok(_watching) = api.watchers.clone().try_acquire_owned() else {
        crate::metrics::limit_hit(crate::metrics::Limit::HttpBlockingQueries);
        return Err(ApiError::Busy("too many blocking queries waiting; try again shortly"));
    };
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        // Marked seen before the snapshot is read: a change published after the read wakes us.
        changes.borrow_and_update();
        let snap = api.registry.snapshot();
        if ready(&snap) {
            return Ok(snap);
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = &mut deadline => break,
            _ = api.shutdown.cancelled() => break,
        }
    }
    Ok(api.registry.snapshot())
}

/// `?filter=`, parsed before any wait so that a bad expression is a 400 at once.
pub(super) fn filter_param(params: &Params) -> Result<Option<Filter>, ApiError> {
    params.get("filter").filter(|f| !f.trim().is_empty()).map(Filter::parse).transpose().map_err(filter_error)
}

/// The entries of a list answer that pass `?filter=`, judged on their JSON as the client sees it.
pub(super) fn filtered<T: Serialize>(
    filter: &Option<Filter>,
    items: impl IntoIterator<Item = T>,
) -> Result<Vec<T>, ApiError> {
    Filter::keep(filter.as_ref(), items, json).map_err(filter_error)
}

/// The same for a map answer (`/v1/agent/services`, `/v1/agent/checks`): each value is judged.
pub(super) fn filtered_map<K: Ord, V: Serialize>(
    filter: &Option<Filter>,
    items: impl IntoIterator<Item = (K, V)>,
) -> Result<BTreeMap<K, V>, ApiError> {
    let kept = Filter::keep(filter.as_ref(), items, |(_, v)| json(v)).map_err(filter_error)?;
    Ok(kept.into_iter().collect())
}

fn json(item: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(item).unwrap_or_default()
}

fn filter_error(e: super::filter::FilterError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// A JSON answer with Consul's query headers.
pub(super) fn answer(snapshot: &Snapshot, status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(snapshot.version.max(1)));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    response
}

pub async fn agent_services(State(api): State<Shared>, Query(p): Query<Params>) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let local = snap.instances().filter(|v| v.instance.node.is_none());
    let body = filtered_map(&filter, local.map(|v| (v.instance.id.as_str(), r.service(v))))?;
    Ok(answer(&snap, StatusCode::OK, body))
}

/// One instance as `/v1/agent/services` shows it, plus Consul's `ContentHash` of that
/// definition. Clients block on this endpoint by hash (`?hash=H&wait=`), not by index: the
/// answer comes once the definition no longer hashes to H.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentService<'a> {
    #[serde(flatten)]
    service: ServiceJson<'a>,
    content_hash: String,
}

/// The hash Consul clients hand back in `?hash=`. Only this process compares it with a later
/// one, so std's hasher (fixed keys, not stable across Rust releases) is enough; a client that
/// brings a hash from another build just gets an answer at once.
fn content_hash(service: &ServiceJson) -> String {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(&serde_json::to_vec(service).unwrap_or_default());
    format!("{:x}", h.finish())
}

/// 404 for an id never registered (or gone), at once even when blocking, as Consul does. Ids
/// match case-insensitively, as on the write endpoints.
pub async fn agent_service(
    State(api): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let key = crate::model::id_key(&id);
    let r = Render::new(&api);
    let snap = match p.get("hash") {
        Some(hash) if !hash.is_empty() => {
            let changed = |snap: &Snapshot| snap.instance(&key).is_none_or(|v| content_hash(&r.service(v)) != hash);
            block(&api, wait_param(&p, DEFAULT_WAIT, MAX_WAIT)?, api.registry.subscribe(), changed).await?
        }
        _ => snapshot(&api, &p).await?,
    };
    let Some(view) = snap.instance(&key) else { return Err(RegistryError::UnknownInstance(id).into()) };
    let service = r.service(view);
    let content_hash = content_hash(&service);
    let mut response = answer(&snap, StatusCode::OK, AgentService { service, content_hash: content_hash.clone() });
    if let Ok(v) = HeaderValue::from_str(&content_hash) {
        response.headers_mut().insert("x-consul-contenthash", v);
    }
    Ok(response)
}

pub async fn agent_checks(State(api): State<Shared>, Query(p): Query<Params>) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    // This agent's: its node's checks and its instances', not those of external nodes.
    let local = snap.instances().filter(|v| v.instance.node.is_none()).chain(snap.node_record(None));
    let body = filtered_map(&filter, local.flat_map(|v| r.checks(v)).map(|c| (c.check_id.clone(), c)))?;
    Ok(answer(&snap, StatusCode::OK, body))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentHealth<'a> {
    aggregated_status: &'static str,
    service: ServiceJson<'a>,
    checks: Vec<CheckJson<'a>>,
}

/// 200 passing, 429 warning, 503 critical or maintenance (the worst instance decides), 404
/// unknown; `?format=text` answers the status word alone, as Consul does.
pub async fn agent_health_by_name(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let views: Vec<&InstanceView> = snap.service(&name).collect();
    let Some(worst) = views.iter().map(|v| v.status).max() else {
        return Err(ApiError::NotFound(format!("ServiceName {name} Not Found")));
    };
    let code = match worst {
        Status::Passing => StatusCode::OK,
        Status::Warning => StatusCode::TOO_MANY_REQUESTS,
        Status::Critical | Status::Maintenance => StatusCode::SERVICE_UNAVAILABLE,
    };
    if p.get("format") == Some("text") {
        let mut response = (code, worst.as_str()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return Ok(response);
    }
    let body: Vec<AgentHealth> = views
        .iter()
        .map(|v| AgentHealth { aggregated_status: v.status.as_str(), service: r.service(v), checks: r.checks(v) })
        .collect();
    Ok(answer(&snap, code, body))
}

/// `{"name": ["tag", ...]}`: each service once, under the spelling of its first instance.
/// `?filter=` judges each instance by its `/v1/catalog/service/NAME` entry, as Consul does.
pub async fn catalog_services(State(api): State<Shared>, Query(p): Query<Params>) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let mut body: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (_, views) in snap.services() {
        let views = Filter::keep(filter.as_ref(), views, |v| json(&r.catalog(v))).map_err(filter_error)?;
        let mut views = views.into_iter();
        let Some(first) = views.next() else { continue };
        let mut tags: Vec<&str> = first.instance.tags.iter().map(String::as_str).collect();
        tags.extend(views.flat_map(|v| v.instance.tags.iter().map(String::as_str)));
        tags.sort_unstable();
        tags.dedup();
        body.insert(&first.instance.service, tags);
    }
    Ok(answer(&snap, StatusCode::OK, body))
}

pub async fn catalog_service(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let tags: Vec<&str> = p.all("tag").collect();
    let body: Vec<CatalogJson> =
        filtered(&filter, snap.service(&name).filter(|v| has_tags(v, &tags)).map(|v| r.catalog(v)))?;
    Ok(answer(&snap, StatusCode::OK, body))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry<'a> {
    node: NodeJson<'a>,
    service: ServiceJson<'a>,
    checks: Vec<CheckJson<'a>>,
}

/// `?passing` keeps instances whose checks all pass (warning is dropped too, as in Consul).
pub async fn health_service(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let passing = p.flag("passing")?;
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let tags: Vec<&str> = p.all("tag").collect();
    let entries = snap
        .service(&name)
        .filter(|v| has_tags(v, &tags) && (!passing || v.status == Status::Passing))
        .map(|v| HealthEntry { node: r.node_of(v), service: r.service(v), checks: r.node_and_own_checks(&snap, v) });
    let body = filtered(&filter, entries)?;
    Ok(answer(&snap, StatusCode::OK, body))
}

pub async fn health_checks(
    State(api): State<Shared>,
    Path(name): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let body = filtered(&filter, snap.service(&name).flat_map(|v| r.checks(v)))?;
    Ok(answer(&snap, StatusCode::OK, body))
}

/// The checks in one state, or every check for `any`, in `/v1/health/checks/NAME`'s shape. The
/// states are Consul's: a maintenance check is one of the critical ones, as Consul shows it.
pub async fn health_state(
    State(api): State<Shared>,
    Path(state): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let wanted = match state.as_str() {
        "any" => None,
        "passing" => Some(Status::Passing),
        "warning" => Some(Status::Warning),
        "critical" => Some(Status::Critical),
        _ => {
            return Err(ApiError::bad_request(format!(
                "state: {state:?} is not one of any, passing, warning, critical"
            )));
        }
    };
    let filter = filter_param(&p)?;
    let snap = snapshot(&api, &p).await?;
    let r = Render::new(&api);
    let checks = snap
        .instances()
        .chain(snap.nodes())
        .flat_map(|v| r.checks(v))
        // On the rendered status, so that the maintenance check counts as the critical one it shows.
        .filter(|c| wanted.is_none_or(|s| c.status == s.as_str()));
    let body = filtered(&filter, checks)?;
    Ok(answer(&snap, StatusCode::OK, body))
}

pub async fn leader(State(api): State<Shared>) -> Response {
    answer(&api.registry.snapshot(), StatusCode::OK, &api.leader)
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 once started (store open, zones loaded, DNS bound), 503 from the moment shutdown begins.
/// A replica cut off from etcd stays ready: its DNS answers from the last state it saw are the
/// best there are, and taking every replica out when etcd goes away would leave clients with no
/// answer at all. It says it is degraded, and why, for people and monitors.
pub async fn readyz(State(api): State<Shared>) -> (StatusCode, Cow<'static, str>) {
    if api.is_ready() {
        match api.config.degraded.reason() {
            Some(why) => (StatusCode::OK, Cow::Owned(format!("degraded: {why}"))),
            None => (StatusCode::OK, Cow::Borrowed("ready")),
        }
    } else if api.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, Cow::Borrowed("shutting down"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Cow::Borrowed("starting"))
    }
}
