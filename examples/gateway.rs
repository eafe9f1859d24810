//! Server-side discovery: a small HTTP gateway. Clients know only the gateway; for every request
//! to `/<service>/<path>` it asks signpost for `<service>.service.<domain>` (SRV: address and
//! port of the healthy instances, rotated by signpost) and forwards the request to the first
//! one, answering 503 when there is none or it cannot be reached.
//!
//!     cargo run --example gateway -- --dns 127.0.0.1:53 --listen 127.0.0.1:3000
//!     curl http://127.0.0.1:3000/order-service/orders/123
//!
//! Prints `listening ADDR` on stdout once it accepts requests.

mod discovery;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use clap::Parser;
use hickory_resolver::TokioResolver;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    /// signpost's DNS address
    #[arg(long, env = "SIGNPOST_DNS", default_value = "127.0.0.1:53")]
    dns: SocketAddr,
    /// signpost's domain
    #[arg(long, default_value = "local")]
    domain: String,
    /// Where the gateway listens
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:3000")]
    listen: SocketAddr,
}

struct Gateway {
    resolver: TokioResolver,
    http: reqwest::Client,
    domain: String,
}

/// Request bodies forwarded are at most this big.
const MAX_BODY: usize = 1 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gateway = Arc::new(Gateway {
        resolver: discovery::resolver(args.dns)?,
        http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?,
        domain: args.domain.trim_end_matches('.').to_string(),
    });
    let app = Router::new().route("/{service}/{*path}", axum::routing::any(forward)).with_state(gateway);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn unavailable(error: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": error}))).into_response()
}

async fn forward(
    State(gw): State<Arc<Gateway>>,
    Path((service, path)): Path<(String, String)>,
    req: Request,
) -> Response {
    // Per request: signpost answers from memory in microseconds and always has the current set.
    let name = format!("{service}.service.{}.", gw.domain);
    let target = match discovery::srv(&gw.resolver, &name).await {
        Ok((endpoints, _ttl)) => endpoints[0].addr,
        Err(e) => return unavailable(format!("service discovery failed: {e:#}")),
    };
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("http://{target}/{path}{query}");
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let mut upstream = gw.http.request(parts.method, &url).body(body);
    if let Some(ct) = parts.headers.get(axum::http::header::CONTENT_TYPE) {
        upstream = upstream.header(axum::http::header::CONTENT_TYPE, ct);
    }
    match upstream.send().await {
        Ok(resp) => {
            let status = resp.status();
            let content_type = resp.headers().get(axum::http::header::CONTENT_TYPE).cloned();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            if let Some(ct) = content_type {
                out.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
            }
            out.headers_mut().insert("x-served-by", target.to_string().parse().expect("an address is a header value"));
            out
        }
        Err(e) => unavailable(format!("{service} at {target}: {e}")),
    }
}
