//! The client subcommands (`register`, `deregister`, `pass`, `services`, `instances`): thin
//! wrappers over the HTTP API, so that they show exactly what any Consul client would see.
//!
//! Failures are one line on stderr and exit code 1: the server's refusals as `STATUS: message`
//! (the server's own one-line reason), an unreachable server as the URL tried and the flag that
//! names another.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::cli::{ApiArgs, Command, RegisterArgs};

/// How long the client waits for a connection, and for a whole request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `healthcheck`'s bound on the whole request: container runtimes give a check a few seconds.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The interval of an HTTP or TCP check registered without `--interval`.
const DEFAULT_INTERVAL: &str = "10s";
/// The widest "last output" column shown by `instances`.
const OUTPUT_WIDTH: usize = 60;

/// Runs a client subcommand; prints what went wrong and answers exit code 1 on failure.
pub fn run(command: Command) -> ExitCode {
    match block_on(dispatch(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signpost: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(work))
}

/// `signpost healthcheck`: one `GET /healthz` (or `/readyz`) through the same client as every
/// other subcommand (https:// and client certificates included), within 2 s. Returns an error
/// saying why unless the answer is 200.
pub fn healthcheck(args: &ApiArgs, ready: bool) -> anyhow::Result<()> {
    let path = if ready { "readyz" } else { "healthz" };
    block_on(async {
        let client = Client::with_timeout(args, HEALTHCHECK_TIMEOUT)?;
        client.send(Method::GET, client.url(&[path], &[]), None).await.map(drop).with_context(|| format!("/{path}"))
    })
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Register(args) => register(*args).await,
        Command::Deregister { id, api } => {
            Client::new(&api)?.put(&["v1", "agent", "service", "deregister", &id], &[], None).await?;
            println!("deregistered {id}");
            Ok(())
        }
        Command::Pass { check_id, note, api } => {
            let query: Vec<(&str, &str)> = note.iter().map(|n| ("note", n.as_str())).collect();
            Client::new(&api)?.put(&["v1", "agent", "check", "pass", &check_id], &query, None).await?;
            println!("check {check_id} is passing");
            Ok(())
        }
        Command::Services { api } => services(&Client::new(&api)?).await,
        Command::Instances { name, api } => instances(&Client::new(&api)?, &name).await,
        Command::Checks { api } => checks(&Client::new(&api)?).await,
        Command::Nodes { api } => nodes(&Client::new(&api)?).await,
        Command::Serve(_)
        | Command::CheckZones { .. }
        | Command::Healthcheck { .. }
        | Command::ConfigSample
        | Command::Man { .. }
        | Command::Completions { .. } => Err(anyhow!("not a client subcommand")),
    }
}

/// The API at `--api`, with `--token` on every request.
struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    fn new(args: &ApiArgs) -> anyhow::Result<Client> {
        Client::with_timeout(args, REQUEST_TIMEOUT)
    }

    /// A client whose requests end after `timeout`. `--ca-file` replaces the system's CAs (as
    /// `CONSUL_CACERT` does for Consul's CLI), so that a private CA is the only one trusted.
    fn with_timeout(args: &ApiArgs, timeout: Duration) -> anyhow::Result<Client> {
        let base = Url::parse(&args.api).with_context(|| format!("--api {:?} is not a URL", args.api))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(anyhow!("--api {:?} must be an http:// or https:// URL", args.api));
        }
        // reqwest is built without a default TLS provider (see Cargo.toml); choose ring's.
        crate::tls::install_default_provider();
        let pem = crate::tls::ClientPem::load(
            args.ca_file.as_deref(),
            args.client_cert.as_deref(),
            args.client_key.as_deref(),
        )?;
        let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT.min(timeout)).timeout(timeout);
        if let Some(ca) = &pem.ca {
            let certs = reqwest::Certificate::from_pem_bundle(ca).context("--ca-file")?;
            builder = builder.tls_certs_only(certs);
        }
        if let Some(identity) = pem.identity_pem() {
            builder = builder.identity(reqwest::Identity::from_pem(&identity).context("--client-cert")?);
        }
        let http = builder.build().context("cannot build an HTTP client")?;
        Ok(Client { http, base, token: args.token.clone().filter(|t| !t.is_empty()) })
    }

    /// The URL of a path given as segments, each percent-encoded (`service:web-1` stays one).
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("checked in new").pop_if_empty().extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> anyhow::Result<String> {
        let mut req = self.http.request(method, url.clone());
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| unreachable(&self.base, &url, e))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            return Err(refused(status, &text));
        }
        Ok(text)
    }

    async fn put(&self, segments: &[&str], query: &[(&str, &str)], body: Option<&Value>) -> anyhow::Result<()> {
        self.send(Method::PUT, self.url(segments, query), body).await.map(drop)
    }

    async fn get(&self, segments: &[&str]) -> anyhow::Result<Value> {
        let url = self.url(segments, &[]);
        let text = self.send(Method::GET, url.clone(), None).await?;
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON"))
    }
}

/// The server's refusal as one line: `400 Bad Request: Name: required (the service name)`.
fn refused(status: StatusCode, body: &str) -> anyhow::Error {
    let message = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let status = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    if message.is_empty() { anyhow!("{status}") } else { anyhow!("{status}: {message}") }
}

fn unreachable(base: &Url, url: &Url, e: reqwest::Error) -> anyhow::Error {
    // The innermost cause is the one a person can act on ("Connection refused").
    let mut cause = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = format!(" ({s})");
        source = s.source();
    }
    let tls = crate::tls::refusal(&e).is_some();
    if tls {
        // Also after the connection opened: with TLS 1.3 a missing client certificate is refused
        // once the request is on its way.
        anyhow!(
            "the TLS handshake with the signpost API at {base} failed{cause}; name the CA that issued \
             its certificate with --ca-file or SIGNPOST_CACERT, and if it asks for a client certificate, \
             give one with --client-cert and --client-key"
        )
    } else if e.is_connect() {
        anyhow!(
            "cannot connect to the signpost API at {base}{cause}; is `signpost serve` running there? \
             Name another with --api URL or SIGNPOST_API"
        )
    } else if e.is_timeout() {
        anyhow!("the signpost API at {base} did not answer {url} in time")
    } else {
        anyhow!("request to {url} failed: {e}")
    }
}

/// `register`: the flags as a Consul registration body.
async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let body = registration(&args)?;
    Client::new(&args.api)?.put(&["v1", "agent", "service", "register"], &[], Some(&body)).await?;
    let id = args.id.as_deref().unwrap_or(&args.name);
    let address = args.address.as_deref().unwrap_or("this host's address as the server sees it");
    println!("registered {id} (service {}) at {address}:{}", args.name, args.port);
    if args.ttl.is_some() {
        println!("TTL check service:{id}: keep it passing with `signpost pass service:{id}`");
    }
    Ok(())
}

/// The JSON body `PUT /v1/agent/service/register` takes for these flags.
pub fn registration(args: &RegisterArgs) -> anyhow::Result<Value> {
    let mut meta = Map::new();
    for pair in &args.meta {
        let (k, v) = pair.split_once('=').ok_or_else(|| anyhow!("--meta {pair:?}: expected KEY=VALUE"))?;
        meta.insert(k.to_string(), Value::String(v.to_string()));
    }
    if let Some(region) = &args.region {
        meta.insert(crate::model::rules::META_REGION.into(), Value::String(region.clone()));
    }
    crate::model::rules::meta_count(meta.len()).map_err(|e| anyhow!("--meta: {e}"))?;
    let mut body = json!({ "Name": args.name, "Port": args.port });
    let b = body.as_object_mut().expect("an object");
    if let Some(id) = &args.id {
        b.insert("ID".into(), json!(id));
    }
    if let Some(address) = &args.address {
        b.insert("Address".into(), json!(address));
    }
    if !args.tag.is_empty() {
        b.insert("Tags".into(), json!(args.tag));
    }
    if !meta.is_empty() {
        b.insert("Meta".into(), Value::Object(meta));
    }
    if let Some(w) = args.weight {
        b.insert("Weights".into(), json!({ "Passing": w, "Warning": 1 }));
    }
    let mut check = Map::new();
    let interval = args.interval.as_deref().unwrap_or(DEFAULT_INTERVAL);
    if let Some(url) = &args.http_check {
        check.insert("HTTP".into(), json!(url));
        check.insert("Interval".into(), json!(interval));
    } else if let Some(target) = &args.tcp_check {
        check.insert("TCP".into(), json!(target));
        check.insert("Interval".into(), json!(interval));
    } else if let Some(ttl) = &args.ttl {
        check.insert("TTL".into(), json!(ttl));
    }
    if !check.is_empty() {
        if let Some(t) = &args.timeout {
            check.insert("Timeout".into(), json!(t));
        }
        if let Some(d) = &args.deregister_after {
            check.insert("DeregisterCriticalServiceAfter".into(), json!(d));
        }
        b.insert("Check".into(), Value::Object(check));
    }
    Ok(body)
}

/// One instance as the tables show it.
struct Row {
    id: String,
    address: String,
    port: u64,
    region: String,
    status: &'static str,
    output: String,
}

/// Reads an instance and its checks from the API's `Service` and `Checks` shapes.
fn row(service: &Value, checks: &[&Value]) -> Row {
    let s = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    // The worst check decides, as in DNS: maintenance > critical > warning > passing.
    let rank = |c: &Value| -> (u8, &'static str) {
        let id = c.get("CheckID").and_then(Value::as_str).unwrap_or_default();
        match c.get("Status").and_then(Value::as_str).unwrap_or_default() {
            _ if id.starts_with("_service_maintenance:") => (4, "maintenance"),
            "passing" => (1, "passing"),
            "warning" => (2, "warning"),
            _ => (3, "critical"),
        }
    };
    let worst = checks.iter().max_by_key(|c| rank(c).0);
    let status = worst.map_or("passing", |c| rank(c).1);
    let text = |c: &&Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let output = worst
        .map(|c| if rank(c).1 == "maintenance" { text(c, "Notes") } else { text(c, "Output") })
        .filter(|o| !o.trim().is_empty())
        .or_else(|| checks.iter().map(|c| text(c, "Output")).find(|o| !o.trim().is_empty()))
        .unwrap_or_default();
    Row {
        id: s("ID"),
        address: s("Address"),
        port: service.get("Port").and_then(Value::as_u64).unwrap_or(0),
        region: service.pointer("/Meta/region").and_then(Value::as_str).unwrap_or("-").to_string(),
        status,
        output: one_line(&output, OUTPUT_WIDTH),
    }
}

/// `services`: every service with its instance count, how many DNS answers (passing or warning,
/// their node's checks included), and its DNS-SD service type (browsed as `<type>.service.D`).
/// External nodes' services are there too: one health read per service.
async fn services(client: &Client) -> anyhow::Result<()> {
    let names = client.get(&["v1", "catalog", "services"]).await?;
    let mut rows = Vec::new();
    for name in names.as_object().into_iter().flat_map(|m| m.keys()) {
        let entries = client.get(&["v1", "health", "service", name]).await?;
        let entries = entries.as_array().cloned().unwrap_or_default();
        let healthy = entries
            .iter()
            .filter(|e| {
                let checks: Vec<&Value> = e.get("Checks").and_then(Value::as_array).into_iter().flatten().collect();
                matches!(row(&Value::Null, &checks).status, "passing" | "warning")
            })
            .count();
        let dns_sd = crate::dns::service_type(&name.to_ascii_lowercase()).unwrap_or_else(|| "-".into());
        rows.push(vec![name.clone(), entries.len().to_string(), healthy.to_string(), dns_sd]);
    }
    if rows.is_empty() {
        println!("no services registered");
        return Ok(());
    }
    print!("{}", table(&["SERVICE", "INSTANCES", "HEALTHY", "DNS-SD TYPE"], rows));
    Ok(())
}

/// `instances NAME`: one line per instance of the service, with its health.
async fn instances(client: &Client, name: &str) -> anyhow::Result<()> {
    let entries = client.get(&["v1", "health", "service", name]).await?;
    let entries = entries.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err(anyhow!("no instances of service {name:?} (see `signpost services`)"));
    }
    let rows = entries.iter().map(|e| {
        let checks: Vec<&Value> = e.get("Checks").and_then(Value::as_array).into_iter().flatten().collect();
        let r = row(e.get("Service").unwrap_or(&Value::Null), &checks);
        vec![r.id, r.address, r.port.to_string(), r.region, r.status.to_string(), r.output]
    });
    print!("{}", table(&["ID", "ADDRESS", "PORT", "REGION", "STATUS", "LAST OUTPUT"], rows));
    Ok(())
}

/// `checks`: every check, the nodes' ones (no service) and the instances', with its status, in
/// check id order.
async fn checks(client: &Client) -> anyhow::Result<()> {
    let all = client.get(&["v1", "health", "state", "any"]).await?;
    let all = all.as_array().cloned().unwrap_or_default();
    if all.is_empty() {
        println!("no checks registered");
        return Ok(());
    }
    let s = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let dash = |t: String| if t.is_empty() { "-".to_string() } else { t };
    let mut all = all;
    all.sort_by_key(|c| (s(c, "CheckID"), s(c, "Node")));
    let rows = all.iter().map(|c| {
        let output = if s(c, "Type") == "maintenance" { s(c, "Notes") } else { s(c, "Output") };
        vec![
            s(c, "CheckID"),
            s(c, "Node"),
            dash(s(c, "ServiceID")),
            s(c, "Type"),
            s(c, "Status"),
            one_line(&output, OUTPUT_WIDTH),
        ]
    });
    print!("{}", table(&["CHECK", "NODE", "SERVICE ID", "TYPE", "STATUS", "LAST OUTPUT"], rows));
    Ok(())
}

/// `nodes`: every node with its address, how many instances run on it, and its health: the
/// worst of its own checks (those of no service), which gate every instance on it.
async fn nodes(client: &Client) -> anyhow::Result<()> {
    let nodes = client.get(&["v1", "catalog", "nodes"]).await?;
    let mut rows = Vec::new();
    for node in nodes.as_array().into_iter().flatten() {
        let name = node.get("Node").and_then(Value::as_str).unwrap_or_default();
        let services = client.get(&["v1", "catalog", "node", name]).await?;
        let count = services.get("Services").and_then(Value::as_object).map_or(0, |m| m.len());
        let checks = client.get(&["v1", "health", "node", name]).await?;
        let own: Vec<&Value> = checks
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c.get("ServiceID").and_then(Value::as_str).unwrap_or_default().is_empty())
            .collect();
        let address = node.get("Address").and_then(Value::as_str).unwrap_or_default().to_string();
        let status = row(&Value::Null, &own).status;
        rows.push(vec![name.to_string(), address, count.to_string(), own.len().to_string(), status.to_string()]);
    }
    print!("{}", table(&["NODE", "ADDRESS", "INSTANCES", "NODE CHECKS", "STATUS"], rows));
    Ok(())
}

/// Aligned columns, two spaces apart; the last column is not padded.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = vec![headers.iter().map(|h| h.to_string()).collect()];
    all.extend(rows);
    let mut widths = vec![0; headers.len()];
    for r in &all {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &all {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` on one line, cut to `width` characters with an ellipsis.
fn one_line(text: &str, width: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        return flat;
    }
    let mut cut: String = flat.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["SERVICE", "INSTANCES", "HEALTHY"],
            vec![vec!["web".into(), "12".into(), "3".into()], vec!["payment-service".into(), "1".into(), "1".into()]],
        );
        assert_eq!(
            t,
            "SERVICE          INSTANCES  HEALTHY\n\
             web              12         3\n\
             payment-service  1          1\n"
        );
    }

    #[test]
    fn long_outputs_fit_one_line() {
        assert_eq!(one_line("HTTP 200\nok  fine", 60), "HTTP 200 ok fine");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn server_refusals_are_one_line_with_the_status() {
        let e = refused(StatusCode::BAD_REQUEST, "Port: must be a whole number\n");
        assert_eq!(e.to_string(), "400 Bad Request: Port: must be a whole number");
        assert_eq!(refused(StatusCode::FORBIDDEN, "").to_string(), "403 Forbidden");
    }
}
