//! The status page in a real browser: Debian's headless Chromium driven by chromedriver over the
//! W3C WebDriver HTTP API (a few requests with reqwest; no WebDriver crate). The page must follow
//! registrations and health changes without reloading, say when the server is gone and recover
//! when it is back. Screenshots land in `target/ui-artifacts/` for people to look at.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::*;

/// Browser start-up and redraws on a loaded 2-core machine can be slow; conditions get this long.
const BROWSER_DEADLINE: Duration = Duration::from_secs(45);

/// chromedriver and one browser session; both end when this is dropped.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium talks to chromedriver over a pipe and exits with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let http = http_client();
        let profile = tempfile::tempdir().unwrap();
        // chromedriver cannot pick its own port: find a free one, and try again if it is taken
        // by the time chromedriver binds it.
        for _ in 0..5 {
            let port = free_port();
            let mut driver = std::process::Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver is installed (scripts/test.sh installs chromium and chromium-driver)");
            let base = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            let ready = loop {
                if let Ok(Some(_)) = driver.try_wait() {
                    break false;
                }
                if let Ok(r) = http.get(format!("{base}/status")).send().await
                    && let Ok(v) = r.json::<Value>().await
                    && v["value"]["ready"] == true
                {
                    break true;
                }
                assert!(started.elapsed() < BROWSER_DEADLINE, "chromedriver did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if !ready {
                continue;
            }
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium(),
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        "--disable-dev-shm-usage", "--window-size=1280,1500",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }}});
            let r = http.post(format!("{base}/session")).json(&caps).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            let session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
            return Browser { driver, base, session, http, _profile: profile };
        }
        panic!("chromedriver could not bind a port");
    }

    /// One WebDriver command; returns its `value`, panicking on a WebDriver error.
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("chromedriver answers");
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Polls `script` until `done` accepts its result; panics with `what` and the last result.
    async fn wait(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.js(script).await;
            if done(&v) {
                return v;
            }
            assert!(started.elapsed() < BROWSER_DEADLINE, "timed out waiting for {what}; last saw {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns true if a JavaScript dialog (an `alert`) is open.
    async fn has_alert(&self) -> bool {
        let url = format!("{}/session/{}/alert/text", self.base, self.session);
        self.http.get(url).send().await.unwrap().status().is_success()
    }

    async fn resize(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64(v.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("ui-artifacts")
}

/// Standard base64, as WebDriver returns screenshots.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// An HTTP health target whose answer can be switched.
async fn target(status: Arc<AtomicU16>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/health",
        get(move || {
            let code = status.load(Ordering::SeqCst);
            async move { (StatusCode::from_u16(code).unwrap(), format!("answered {code}")) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn put(s: &TestServer, path: &str, body: Option<Value>) {
    let mut req = http_client().put(s.url(path));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "PUT {path}");
}

const ZONE: &str = r#"[[service]]
name = "catalog"
tags = ["v1"]
region = "eu-west-1"

[[service.instance]]
id = "catalog-1"
address = "10.0.1.10"
port = 7000
weight = 2

[[service.instance]]
id = "catalog-2"
address = "10.0.1.11"
port = 7000
"#;

fn status_of(id: &str) -> String {
    format!(
        "var e = document.querySelector('tr[data-id=\"{id}\"] td[data-label=\"Status\"] .st'); return e ? e.textContent : null;"
    )
}

const CONN: &str = "var c = document.getElementById('conn'); return [c.textContent, c.classList.contains('down')];";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_registrations_and_health_live() {
    let data = tempfile::tempdir().unwrap();
    let s = server()
        .data_dir(data.path())
        .zone("catalog.toml", ZONE)
        .zone(
            "broken.toml",
            "[[service]]\nname = \"search\"\ncheck = { http = \"http://{address}/\", every = \"5s\" }\n",
        )
        .start()
        .await;
    let health = Arc::new(AtomicU16::new(200));
    let probe = target(health.clone()).await;
    let browser = Browser::start().await;

    browser.goto(&s.url("/ui")).await;
    browser.wait("the first paint", &status_of("catalog-1"), |v| v == "passing").await;
    browser.wait("the page to go live", CONN, |v| v[0].as_str().unwrap_or("").starts_with("Live")).await;
    // Anything that reloads the page would drop this.
    browser.js("window.signpostMarker = 'same page'; return null;").await;

    put(
        &s,
        "/v1/agent/service/register",
        Some(json!({
            "Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": probe.port(),
            "Tags": ["v2", "canary"], "Meta": {"region": "us-east-1", "version": "2.4.1"}, "Weights": {"Passing": 3},
            "Check": {"HTTP": format!("http://{probe}/health"), "Interval": "300ms", "Timeout": "1s",
                      "FailuresBeforeCritical": 1, "SuccessBeforePassing": 1},
        })),
    )
    .await;
    put(
        &s,
        "/v1/agent/service/register",
        Some(json!({"Name": "web", "ID": "web-2", "Address": "127.0.0.2", "Port": 8080, "Tags": ["v1"],
                    "Check": {"TTL": "10m", "Name": "heartbeat"}})),
    )
    .await;
    put(&s, "/v1/agent/check/warn/service:web-2?note=%3Cscript%3Ealert(1)%3C%2Fscript%3E", None).await;

    browser.wait("web-1 to appear and pass", &status_of("web-1"), |v| v == "passing").await;
    browser.wait("web-2 to show its warning", &status_of("web-2"), |v| v == "warning").await;
    let output = browser
        .wait(
            "the check output, as text",
            "var e = document.querySelector('tr[data-id=\"web-2\"] .output'); return e ? e.textContent : null;",
            |v| v.is_string(),
        )
        .await;
    assert_eq!(output, "<script>alert(1)</script>");
    assert_eq!(browser.js("return document.querySelectorAll('#services script').length;").await, 0);
    assert!(!browser.has_alert().await, "the check output did not run");
    let dig = browser
        .wait(
            "web's A answer",
            "var e = document.querySelector('#svc-web dd[data-kind=\"A\"]'); return e ? e.textContent : null;",
            |v| v.as_str().is_some_and(|t| t.contains("127.0.0.1")),
        )
        .await;
    assert!(dig.as_str().unwrap().contains("127.0.0.2"), "warning instances are answered: {dig}");
    let dns_sd = browser.js("return document.querySelector('#svc-web .dns-sd code').textContent;").await;
    assert_eq!(dns_sd, "_web._tcp", "the service's DNS-SD type, as the script draws it");

    // The target starts failing: the instance turns critical and leaves the DNS answer.
    health.store(500, Ordering::SeqCst);
    browser.wait("web-1 to turn critical", &status_of("web-1"), |v| v == "critical").await;
    browser
        .wait(
            "web-1 to leave the A answer",
            "return document.querySelector('#svc-web dd[data-kind=\"A\"]').textContent;",
            |v| v.as_str().is_some_and(|t| !t.contains("127.0.0.1") && t.contains("127.0.0.2")),
        )
        .await;
    let summary = browser.js("return document.querySelector('#summary tr[data-service=\"web\"]').textContent;").await;
    assert!(summary.as_str().unwrap().contains("web2"), "2 instances in the summary: {summary}");

    // Filtering by tag hides the other services, without a round trip.
    browser
        .js("var q = document.getElementById('q'); q.value = 'canary'; q.dispatchEvent(new Event('input')); return null;")
        .await;
    let hidden = browser
        .js("return [document.getElementById('svc-web').hidden, document.getElementById('svc-catalog').hidden];")
        .await;
    assert_eq!(hidden, json!([false, true]));
    browser
        .js("var q = document.getElementById('q'); q.value = ''; q.dispatchEvent(new Event('input')); return null;")
        .await;
    assert_eq!(browser.js("return window.signpostMarker;").await, "same page", "the page was never reloaded");

    let wide = browser.screenshot("status-page.png").await;
    browser.resize(400, 1500).await;
    browser
        .wait("the narrow layout", "return getComputedStyle(document.querySelector('.instances td')).display;", |v| {
            v == "grid"
        })
        .await;
    let narrow = browser.screenshot("status-page-narrow.png").await;
    browser.resize(1280, 1500).await;

    // The server goes away: the page says so, keeps the last state, and recovers when it is back.
    let listen = s.api.trim_start_matches("http://").to_string();
    s.stop().await;
    browser.wait("the page to notice the server is gone", CONN, |v| v[1] == true).await;
    let text = browser.js(CONN).await[0].as_str().unwrap().to_string();
    assert!(text.contains("unreachable"), "{text}");
    assert_eq!(browser.js(&status_of("web-1")).await, "critical", "the last state stays on the page");
    let down = browser.screenshot("status-page-unreachable.png").await;

    let s = server()
        .data_dir(data.path())
        .config(&format!("[http]\nlisten = \"{listen}\"\n"))
        .zone("catalog.toml", ZONE)
        .start()
        .await;
    browser.wait("the page to recover", CONN, |v| v[1] == false).await;
    browser.wait("the restarted server's state", &status_of("web-2"), |v| v == "warning").await;
    assert_eq!(browser.js("return window.signpostMarker;").await, "same page");
    eprintln!("screenshots: {} {} {}", wide.display(), narrow.display(), down.display());
    browser.quit().await;
    drop(s);
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGVsbG8h"), b"hello!");
    assert_eq!(base64("aGk="), b"hi");
}
