//! One probe of one check: an HTTP request or a TCP connect, bounded by the check's timeout.
//! HTTP: 2xx passing, 429 warning, anything else, a timeout or a refused connection critical;
//! the output keeps the start of the body, as Consul's does.

use std::time::Duration;

use reqwest::Method;
use tokio::net::TcpStream;

use crate::model::{CheckKind, CheckSpec, Status};

/// How much of a response body is kept as the check's output.
const BODY_EXCERPT: usize = 512;

/// HTTP clients shared by every probe, so connections to targets are reused.
#[derive(Clone)]
pub struct Probers {
    http: reqwest::Client,
    /// For checks registered with `TLSSkipVerify`.
    http_insecure: reqwest::Client,
}

impl Probers {
    pub fn new() -> Probers {
        // reqwest is built with rustls and no default crypto provider: install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .user_agent(concat!("signpost/", env!("CARGO_PKG_VERSION"), " health check"))
                .pool_idle_timeout(Duration::from_secs(90))
        };
        Probers {
            http: builder().build().expect("HTTP client builds"),
            http_insecure: builder().tls_danger_accept_invalid_certs(true).build().expect("HTTP client builds"),
        }
    }

    /// Runs the check once; returns its result and output. TTL checks are not probed.
    pub async fn probe(&self, spec: &CheckSpec) -> (Status, String) {
        match &spec.kind {
            CheckKind::Http { url, method, headers, tls_skip_verify } => {
                let client = if *tls_skip_verify { &self.http_insecure } else { &self.http };
                http(client, url, method, headers, spec.timeout).await
            }
            CheckKind::Tcp { target } => tcp(target, spec.timeout).await,
            CheckKind::Ttl { .. } | CheckKind::External => (Status::Critical, "not a probed check".into()),
        }
    }
}

impl Default for Probers {
    fn default() -> Self {
        Probers::new()
    }
}

async fn http(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    headers: &std::collections::BTreeMap<String, Vec<String>>,
    timeout: Duration,
) -> (Status, String) {
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let mut req = client.request(method.clone(), url).timeout(timeout);
    for (name, values) in headers {
        for v in values {
            req = req.header(name, v);
        }
    }
    let attempt = async {
        let mut resp = req.send().await?;
        let code = resp.status();
        let mut body = Vec::new();
        while body.len() < BODY_EXCERPT {
            match resp.chunk().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(BODY_EXCERPT);
        Ok::<_, reqwest::Error>((code, body))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok((code, body))) => {
            let status = match code.as_u16() {
                200..=299 => Status::Passing,
                429 => Status::Warning,
                _ => Status::Critical,
            };
            let output = format!("HTTP {method} {url}: {code} Output: {}", String::from_utf8_lossy(&body));
            (status, output)
        }
        Ok(Err(e)) => (Status::Critical, format!("HTTP {method} {url}: {}", error_chain(&e))),
        Err(_) => {
            (Status::Critical, format!("HTTP {method} {url}: timed out after {}", crate::duration::format(timeout)))
        }
    }
}

async fn tcp(target: &str, timeout: Duration) -> (Status, String) {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(_)) => (Status::Passing, format!("TCP connect {target}: Success")),
        Ok(Err(e)) => (Status::Critical, format!("TCP connect {target}: {e}")),
        Err(_) => {
            (Status::Critical, format!("TCP connect {target}: timed out after {}", crate::duration::format(timeout)))
        }
    }
}

/// reqwest's top-level messages are vague ("error sending request"); the cause says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
