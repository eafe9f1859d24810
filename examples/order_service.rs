//! The guide's self-registration pattern, in Rust: an HTTP service that registers itself with
//! signpost (through the Consul-compatible API) with an HTTP health check when it starts, and
//! deregisters on SIGTERM/SIGINT *before* it stops serving, so that clients stop being sent to it
//! while it still answers the requests already on their way.
//!
//!     cargo run --example order_service -- --signpost http://127.0.0.1:8500 --listen 127.0.0.1:8001
//!     dig @127.0.0.1 order-service.service.local SRV
//!     curl http://127.0.0.1:8001/orders/123
//!
//! Prints `listening ADDR`, `registered ID`, `deregistered ID` and `stopped` on stdout.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// The signpost HTTP API
    #[arg(long, env = "SIGNPOST_API", default_value = "http://127.0.0.1:8500")]
    signpost: String,
    /// Where this service listens (port 0 picks a free one)
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8001")]
    listen: SocketAddr,
    /// Instance id [default: order-service-<pid>]
    #[arg(long, env = "INSTANCE_ID")]
    id: Option<String>,
    /// Service name
    #[arg(long, default_value = "order-service")]
    name: String,
    /// The address signpost and clients reach this instance at [default: the local address
    /// this host uses to reach signpost]
    #[arg(long, env = "ADVERTISE")]
    advertise: Option<IpAddr>,
    /// How often signpost probes /health
    #[arg(long, default_value = "10s")]
    check_interval: String,
    /// How long to keep serving after deregistering (clients may hold the old DNS answer for
    /// its TTL)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    signpost::duration::parse(s).map_err(|e| e.to_string())
}

#[derive(Clone)]
struct Instance {
    id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let id = args.id.clone().unwrap_or_else(|| format!("{}-{}", args.name, std::process::id()));

    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("bind {}", args.listen))?;
    let bound = listener.local_addr()?;
    let address = match args.advertise {
        Some(ip) => ip,
        None if !bound.ip().is_unspecified() => bound.ip(),
        None => route_to(&args.signpost)?,
    };
    println!("listening {bound}");

    let app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "UP"})) }))
        .route("/orders/{id}", get(order))
        .with_state(Instance { id: id.clone() });

    let api = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let registration = json!({
        "ID": id,
        "Name": args.name,
        "Address": address.to_string(),
        "Port": bound.port(),
        "Tags": ["v1", "orders"],
        "Meta": {"version": env!("CARGO_PKG_VERSION")},
        "Check": {
            "HTTP": format!("http://{}/health", SocketAddr::new(address, bound.port())),
            "Interval": args.check_interval,
            "Timeout": "2s",
            "DeregisterCriticalServiceAfter": "1m",
        },
    });
    put(&api, &format!("{}/v1/agent/service/register", args.signpost), Some(&registration)).await?;
    println!("registered {id}");

    // Serve until the first SIGTERM/SIGINT; then deregister, drain, and stop accepting.
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async { draining_rx.await.unwrap_or(()) }).await
    });
    terminated().await?;
    if let Err(e) = put(&api, &format!("{}/v1/agent/service/deregister/{id}", args.signpost), None).await {
        eprintln!("deregistration failed: {e:#}");
    } else {
        println!("deregistered {id}");
    }
    tokio::time::sleep(args.drain).await;
    let _ = draining_tx.send(());
    server.await??;
    println!("stopped");
    Ok(())
}

async fn order(State(me): State<Instance>, Path(order): Path<String>) -> Json<Value> {
    Json(json!({"orderId": order, "status": "completed", "servedBy": me.id}))
}

async fn put(api: &reqwest::Client, url: &str, body: Option<&Value>) -> anyhow::Result<()> {
    let mut req = api.put(url);
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.with_context(|| format!("PUT {url}"))?;
    let status = resp.status();
    anyhow::ensure!(status.is_success(), "PUT {url}: {status}: {}", resp.text().await.unwrap_or_default());
    Ok(())
}

/// The local address this host sends from to reach the signpost API (no packet is sent).
fn route_to(api: &str) -> anyhow::Result<IpAddr> {
    let url = reqwest::Url::parse(api)?;
    let host = url.host_str().context("the signpost URL has no host")?;
    let target = (host.trim_matches(['[', ']']), url.port_or_known_default().unwrap_or(80))
        .to_socket_addrs()?
        .next()
        .context("the signpost host has no address")?;
    let socket = UdpSocket::bind(if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

async fn terminated() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    Ok(())
}
