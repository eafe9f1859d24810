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

/// Counts and times one request. Paths that match no route count as `unmatched`, so that a
/// scanner cannot grow the label set.
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
