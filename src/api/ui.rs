//! The status page, `GET /ui`: services, instances, checks and what DNS answers right now, for
//! people. Read-only by construction: its routes only read snapshots (the login form sets a
//! cookie and nothing else).
//!
//! The first paint is server-rendered HTML (`ui/html.rs`), so the page works without
//! JavaScript; `ui.js` then follows `/ui/state`, a blocking query over the same model
//! (`ui/model.rs`) as JSON, and redraws with DOM calls (`textContent`, never `innerHTML`).
//! Assets are compiled in: no build step, nothing fetched from elsewhere, works offline.
//!
//! When requests without a token may not read every service (`[http] reads_need_token = true`,
//! or `[acl.anonymous]` rules), the page needs a token that may. A browser cannot send a header
//! on navigation, so `/ui` then offers a form that stores the token in an HttpOnly,
//! SameSite=Strict cookie; the cookie is accepted on reads only, never on writes (no CSRF). Who
//! may see the page is decided with every other read, in `access.rs`.

mod html;
mod model;

use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tracing::info;

use super::{ApiError, Params, Shared, reads};
use crate::model::now_ms;

/// Longest and default wait of a blocking `/ui/state` (the page asks for 30 s).
const MAX_WAIT: Duration = Duration::from_secs(60);
const COOKIE: &str = "signpost_token";

const CSS: &str = include_str!("ui/ui.css");
const JS: &str = include_str!("ui/ui.js");
/// Scripts and styles from this origin only: even if some data escaped escaping, an injected
/// inline script would not run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The page, its state, and what anyone may use (`access::OPEN`): the redirect, the login
/// form's target and the static assets.
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/state", get(state))
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", post(login))
        .route("/ui/assets/ui.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/ui/assets/ui.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// The token stored by the login form, for reads.
pub(super) fn cookie_token(headers: &HeaderMap) -> Option<String> {
    String::from_utf8(cookie(headers)?).ok()
}

/// The token stored by the login form (hex, so that any token is a valid cookie value).
fn cookie(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    unhex(value)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// The form that asks for a token, for a browser refused the page.
pub(super) fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem =
        problem.map(|p| format!("<p class=\"banner bad\" role=\"alert\">{}</p>\n", html::E(p))).unwrap_or_default();
    let body = format!(
        r##"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>signpost status: token needed</title><link rel="stylesheet" href="/ui/assets/ui.css"></head>
<body>
<header><h1>signpost <span class="sub">status</span></h1></header>
<main>
<h2>Token needed</h2>
{problem}<p>This server is configured so that reading every service needs a token (<code>[http] reads_need_token</code> or <code>[acl.anonymous]</code>).</p>
<form class="filter" method="post" action="/ui/login">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Open the status page</button>
</form>
</main>
</body>
</html>
"##
    );
    html_response(status, body)
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

/// Stores a token that may read every service in a cookie and sends the browser back to `/ui`.
async fn login(State(api): State<Shared>, Form(login): Form<Login>) -> Response {
    let token = login.token.trim();
    let caller = match api.config.acl.resolve(Some(token)) {
        Ok(caller) if !caller.anonymous => caller,
        _ => {
            info!("status page login refused: unknown token");
            return login_page(StatusCode::FORBIDDEN, Some("That is not a token this server knows."));
        }
    };
    if let Err(e) = caller.rules.check_all(crate::acl::Policy::Read) {
        info!(token = %caller.name, "status page login refused: the token may not read every service");
        return login_page(StatusCode::FORBIDDEN, Some(&format!("That token may not read every service: {e}")));
    }
    let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    let cookie = format!("{COOKIE}={hex}; Path=/; HttpOnly; SameSite=Strict");
    let mut r = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn page(State(api): State<Shared>, Query(p): Query<Params>) -> Response {
    let page = model::Page::build(&api.registry.snapshot(), &api.config.domain, now_ms());
    html_response(StatusCode::OK, html::page(&page, p.get("q").unwrap_or("")))
}

/// Everything the page shows, as JSON. Blocks like the other reads: with `?index=N` until the
/// registry passes version N, with `?hash=H` (the last answer's `hash`) until anything shown
/// differs, at most `?wait=` (default and cap 60 s).
async fn state(State(api): State<Shared>, Query(p): Query<Params>) -> Result<Response, ApiError> {
    let index = reads::index_param(&p)?;
    let hash = p.get("hash").filter(|h| !h.is_empty());
    let build = |snap: &crate::registry::Snapshot| model::Page::build(snap, &api.config.domain, now_ms());
    let snap = if index.is_none() && hash.is_none() {
        api.registry.snapshot()
    } else {
        // Woken by every published snapshot, not only new versions: the page shows detail
        // (checks' output, zone errors) that is not a catalog version.
        let wait = reads::wait_param(&p, MAX_WAIT, MAX_WAIT)?;
        reads::block(&api, wait, api.registry.subscribe_published(), |snap| {
            index.is_some_and(|i| snap.version > i) || hash.is_some_and(|h| build(snap).hash != h)
        })
        .await?
    };
    let page = build(&snap);
    let mut r = json(&page);
    let h = r.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(page.index));
    if let Ok(v) = HeaderValue::from_str(&page.hash) {
        h.insert("x-signpost-content-hash", v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// JSON with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026` (as Go's encoder and so
/// Consul do): the text stays the same to a JSON parser, and holds no markup even if some
/// browser or proxy ever treated it as HTML. Outside strings JSON has no such characters.
fn json(page: &model::Page) -> Response {
    let text = match serde_json::to_string(page) {
        Ok(t) => t.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026"),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the page: {e}")).into_response(),
    };
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_holds_the_token_in_hex() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; signpost_token=733b3d; c=d"));
        assert_eq!(cookie(&h).as_deref(), Some(&b"s;="[..]));
        h.insert(header::COOKIE, HeaderValue::from_static("signpost_token=zz"));
        assert_eq!(cookie(&h), None);
        h.insert(header::COOKIE, HeaderValue::from_static("signpost_token=abc"));
        assert_eq!(cookie(&h), None);
    }
}
