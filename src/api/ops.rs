//! Operator endpoints and per-request metrics: `GET /metrics` renders the process-wide
//! Prometheus recorder (`crate::metrics`), and a middleware counts and times every API request
//! by method, route template and status, so that `/v1/catalog/service/{name}` is one series
//! however many names are asked for.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The content type of Prometheus' text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

pub async fn metrics() -> Response {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], crate::metrics::render()).into_response()
}

/// Turns away requests over the bounds of `HttpLimits`: headers over `max_header_bytes` (431),
/// and beyond `max_concurrent_requests` in progress (429). `/healthz`, `/readyz` and `/metrics`
/// are never turned away, so that an overloaded server can still be watched.
pub async fn limit(
    axum::extract::State(api): axum::extract::State<super::Shared>,
    req: Request,
    next: Next,
) -> Response {
    let head =
        req.uri().to_string().len() + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    if head > api.config.limits.max_header_bytes {
        crate::metrics::limit_hit(crate::metrics::Limit::HttpHeaderBytes);
        return super::ApiError::HeadersTooLarge { limit: api.config.limits.max_header_bytes }.into_response();
    }
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let Ok(_slot) = api.requests.clone().try_acquire_owned() else {
        crate::metrics::limit_hit(crate::metrics::Limit::HttpRequests);
        return super::ApiError::Busy("too many requests in progress; try again shortly").into_response();
    };
    next.run(req).await
}

/// Counts and times one request. Paths that match no route count as `unmatched`, so that a
/// scanner cannot grow the label set. These series show with their first count: route templates
/// × methods × statuses is too large a set to register at zero.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("signpost_http_request_duration_seconds", "route" => route.clone()).record(started.elapsed());
    metrics::counter!("signpost_http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}
