//! Who may do what, decided for every request in one place: a layer over the whole router, so
//! that a route added later is covered by where it sits, with nothing to remember.
//!
//! - The routes in `OPEN` (health, metrics, the login form, static assets) need nothing.
//! - GET and HEAD read: the service the route names (`{name}`, or the service of the instance
//!   `{id}`) needs `read`; a route that names none (lists, the status page) needs `read` on every
//!   service.
//! - Every other method writes. A caller who may write no service at all is refused before the
//!   body is read; otherwise the handler's change goes through `Writer`, and the registry writer
//!   checks the caller's rules against every service the change touches, as it finds them. One
//!   audit line (target `signpost::audit`) records each write, accepted or refused.
//!
//! Tokens come as Consul clients send them: `?token=`, `X-Consul-Token`, `Authorization:
//! Bearer`, in that order (Consul's); reads also take the status page's cookie.

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::{ApiError, Params, Peer, Shared, ui};
use crate::acl::{Acl, Caller, Policy};
use crate::registry::{Change, Registry, RegistryError, Subject};

/// Routes anyone may use, whatever the rules.
const OPEN: [&str; 7] = ["/", "/healthz", "/readyz", "/metrics", "/ui/login", "/ui/assets/ui.css", "/ui/assets/ui.js"];

/// What the layer needs beyond the handlers' state: the tokens, and the registry's writing
/// half, which handlers reach only through `Writer`.
pub(super) struct Access {
    pub acl: Arc<Acl>,
    pub registry: Registry,
}

/// The token a request carries, in Consul's order of precedence.
pub(super) fn presented(parts: &Parts) -> Option<String> {
    let query = axum::extract::Query::<Params>::try_from_uri(&parts.uri).ok();
    if let Some(t) = query.as_ref().and_then(|q| q.get("token")).map(str::trim).filter(|t| !t.is_empty()) {
        return Some(t.to_string());
    }
    header_token(&parts.headers)
}

/// `X-Consul-Token: T`, else `Authorization: Bearer T`.
fn header_token(headers: &HeaderMap) -> Option<String> {
    let consul = headers.get_all("x-consul-token").iter().find_map(|v| v.to_str().ok().map(str::trim));
    let bearer = || {
        headers.get_all("authorization").iter().find_map(|v| {
            let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
    };
    consul.or_else(bearer).map(str::to_string)
}

/// The layer: decides every request (see the module's comment).
pub(super) async fn check(State((api, access)): State<(Shared, Arc<Access>)>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()) else {
        return next.run(req).await;
    };
    if OPEN.contains(&route.as_str()) || super::nodes::is_unsupported(&route) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await.ok();
    let param =
        |name: &str| params.as_ref().and_then(|p| p.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    if matches!(parts.method, Method::GET | Method::HEAD) {
        let token = presented(&parts).or_else(|| ui::cookie_token(&parts.headers));
        let decided = access.acl.resolve(token.as_deref()).map_err(ApiError::from).and_then(|caller| {
            let denied = |d| ApiError::Denied { denied: d, anonymous: caller.anonymous };
            match (param("name"), param("id")) {
                (Some(service), _) => caller.rules.check(&service, Policy::Read).map_err(denied),
                (None, Some(id)) => match api.registry.snapshot().instance(&crate::model::id_key(&id)) {
                    Some(v) => caller.rules.check(&v.instance.service, Policy::Read).map_err(denied),
                    // Unknown: the handler's 404 says so, and there is nothing to protect.
                    None => Ok(()),
                },
                (None, None) => caller.rules.check_all(Policy::Read).map_err(denied),
            }
        });
        return match decided {
            Ok(()) => next.run(Request::from_parts(parts, body)).await,
            Err(e) => {
                info!(route = %route, error = %e, "read refused");
                if route == "/ui" { ui::login_page(StatusCode::FORBIDDEN, None) } else { e.into_response() }
            }
        };
    }
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<Peer>>().map(|c| c.0.0.ip().to_string());
    let mut audit =
        Audit { route, method: parts.method.to_string(), remote: peer.unwrap_or_default(), ..Audit::default() };
    audit.subject.id = param("id").unwrap_or_default();
    let caller = match access.acl.resolve(presented(&parts).as_deref()) {
        Ok(caller) => caller,
        Err(unknown) => {
            audit.token = "unknown".into();
            return audit.refused("unknown token", ApiError::from(unknown).into_response());
        }
    };
    audit.token = caller.name.to_string();
    if !caller.rules.may_write_any() {
        let e = ApiError::NoWrite { anonymous: caller.anonymous };
        return audit.refused(&e.to_string(), e.into_response());
    }
    let noted = Arc::new(Mutex::new(None));
    parts.extensions.insert(Grant { caller, registry: access.registry.clone(), noted: noted.clone() });
    let response = next.run(Request::from_parts(parts, body)).await;
    if let Some(subject) = noted.lock().expect("not poisoned").take() {
        audit.subject = subject.0;
        audit.reason = subject.1;
    }
    audit.log(response.status());
    response
}

/// One audit line's fields.
#[derive(Default)]
struct Audit {
    token: String,
    remote: String,
    method: String,
    route: String,
    subject: Subject,
    reason: String,
}

impl Audit {
    fn refused(mut self, reason: &str, response: Response) -> Response {
        reason.clone_into(&mut self.reason);
        self.log(response.status());
        response
    }

    /// Operators route these lines by their target (`signpost::audit`); the time is the line's.
    fn log(&self, status: StatusCode) {
        let outcome = if status.is_success() { "accepted" } else { "refused" };
        info!(
            target: "signpost::audit",
            token = %self.token,
            remote = %self.remote,
            method = %self.method,
            route = %self.route,
            service = %self.subject.service,
            id = %self.subject.id,
            status = status.as_u16(),
            outcome,
            reason = %self.reason,
            "write {outcome}"
        );
    }
}

/// What the layer hands a write's handler: the caller, the registry's writing half, and a slot
/// for what the change turned out to be about.
#[derive(Clone)]
pub(super) struct Grant {
    caller: Caller,
    registry: Registry,
    /// The change's subject and, when refused by a rule, why.
    noted: Arc<Mutex<Option<(Subject, String)>>>,
}

/// The only way write handlers change the registry: on behalf of the request's caller.
pub(super) struct Writer(Grant);

impl<S: Send + Sync> FromRequestParts<S> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Writer, ApiError> {
        // Every route that is not a GET passes the layer, which puts the grant there.
        parts
            .extensions
            .get::<Grant>()
            .cloned()
            .map(Writer)
            .ok_or(ApiError::Internal("a write outside the access layer"))
    }
}

impl Writer {
    /// Applies `change` if the caller's rules allow every service it touches; returns the
    /// registry version that includes it.
    pub async fn apply(&self, change: Change) -> Result<u64, ApiError> {
        let grant = &self.0;
        let (result, subject) = grant.registry.apply_as(change, grant.caller.rules.clone()).await;
        let reason = match &result {
            Err(RegistryError::Denied(d)) => d.to_string(),
            _ => String::new(),
        };
        if let Some(subject) = subject {
            *grant.noted.lock().expect("not poisoned") = Some((subject, reason));
        }
        result.map_err(|e| match e {
            RegistryError::Denied(denied) => ApiError::Denied { denied, anonymous: grant.caller.anonymous },
            e => e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_as_consul_clients_send_them_in_consuls_order() {
        let parts = |uri: &str, headers: &[(&str, &str)]| {
            let mut b = axum::http::Request::builder().uri(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 7] = [
            ("/v1/x", &[], None),
            ("/v1/x", &[("authorization", "Bearer abc")], Some("abc")),
            ("/v1/x", &[("authorization", "bearer  abc ")], Some("abc")),
            ("/v1/x", &[("authorization", "Basic abc")], None),
            ("/v1/x", &[("x-consul-token", "def"), ("authorization", "Bearer abc")], Some("def")),
            ("/v1/x?token=q%2Bq", &[("x-consul-token", "def")], Some("q+q")),
            ("/v1/x?index=3", &[("x-consul-token", "def")], Some("def")),
        ];
        for (uri, headers, want) in cases {
            assert_eq!(presented(&parts(uri, headers)).as_deref(), want, "{uri} {headers:?}");
        }
    }
}
