//! The status page without a browser: its HTML and JSON escape what registrations carry, `/`
//! redirects to it, the token rule for reads, blocking on `/ui/state`, and showing DNS answers
//! without moving their rotation. (`ui_browser.rs` drives it in Chromium.)

use hickory_proto::rr::RecordType;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::*;

const SCRIPT: &str = "<script>alert(1)</script>";

async fn register(s: &TestServer, body: Value) {
    let r = http_client().put(s.url("/v1/agent/service/register")).body(body.to_string()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "registering {body}");
}

async fn get_text(s: &TestServer, path: &str) -> (StatusCode, String) {
    let r = http_client().get(s.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn state(s: &TestServer, query: &str) -> Value {
    let r = http_client().get(s.url(&format!("/ui/state{query}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    assert!(r.headers().contains_key("x-consul-index"));
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn names_tags_meta_and_outputs_are_shown_as_text() {
    let s = server().start().await;
    register(
        &s,
        json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80,
               "Tags": ["<img src=x onerror=alert(2)>", "v2"], "Meta": {"note": "\"><b>bold</b>"},
               "Check": {"TTL": "1m", "Name": "<i>heartbeat</i>"}}),
    )
    .await;
    let r = http_client()
        .put(s.url(&format!("/v1/agent/check/warn/service:web-1?note={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (status, html) = get_text(&s, "/ui").await;
    assert_eq!(status, StatusCode::OK);
    for raw in [SCRIPT, "<img src=x", "<b>bold", "<i>heartbeat"] {
        assert!(!html.contains(raw), "{raw:?} reached the HTML unescaped");
    }
    for escaped in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(2)&gt;",
        "note=&quot;&gt;&lt;b&gt;bold&lt;/b&gt;",
        "&lt;i&gt;heartbeat&lt;/i&gt;",
    ] {
        assert!(html.contains(escaped), "{escaped:?} missing from the HTML");
    }
    assert!(html.contains("DNS-SD service type <code>_web._tcp</code>"), "the service's DNS-SD type is shown");
    // The only scripts are the page's own.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<script src=\"/ui/assets/ui.js\"></script>"));

    let r = http_client().get(s.url("/ui/state")).send().await.unwrap();
    let csp = r.headers().get("content-security-policy").is_none();
    let text = r.text().await.unwrap();
    assert!(csp, "the JSON needs no CSP; the page does");
    assert!(!text.contains('<') && !text.contains('>'), "markup characters are \\u-escaped in the JSON: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let inst = &v["services"][0]["instances"][0];
    assert_eq!(inst["checks"][0]["output"], SCRIPT, "the JSON still carries the exact text");
    assert_eq!(inst["checks"][0]["status"], "warning");
    assert_eq!(inst["tags"][0], "<img src=x onerror=alert(2)>");
    assert_eq!(inst["meta"]["note"], "\"><b>bold</b>");
    assert_eq!(v["services"][0]["dns_sd"], "_web._tcp");

    let r = http_client().get(s.url("/ui")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
}

#[tokio::test]
async fn the_root_redirects_to_the_page_and_assets_are_built_in() {
    let s = server().start().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(s.url("/")).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()[LOCATION], "/ui");
    for (path, kind) in [("/ui/assets/ui.js", "text/javascript"), ("/ui/assets/ui.css", "text/css")] {
        let r = client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()[CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        let body = r.text().await.unwrap();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} fetches nothing from elsewhere");
    }
    let js = get_text(&s, "/ui/assets/ui.js").await.1;
    assert!(!js.contains("innerHTML"), "data reaches the page through textContent only");
}

#[tokio::test]
async fn the_page_shows_zone_files_their_errors_and_the_last_reload() {
    let s = server()
        .zone("good.toml", "[[service]]\nname = \"catalog\"\n\n[[service.instance]]\nid = \"catalog-1\"\naddress = \"10.0.1.1\"\nport = 7000\n")
        .zone("broken.toml", "[[service]]\nname = \"x\"\nbogus = 1\n")
        .start()
        .await;
    let (_, html) = get_text(&s, "/ui").await;
    assert!(html.contains("zone file <code>"), "the source names the file");
    assert!(html.contains("good.toml"));
    assert!(html.contains("broken.toml:3:1"), "file:line:col of the error: {html}");
    assert!(!html.contains("Last reload: <span class=\"reloaded\">never"), "the start-up load counts as a reload");
    let v = state(&s, "").await;
    assert_eq!(v["zones"]["errors"][0]["line"], 3);
    assert!(v["zones"]["reloaded_ms"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn the_filter_works_without_javascript() {
    let s = server().start().await;
    register(&s, json!({"Name": "payments", "ID": "pay-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v2"]})).await;
    register(&s, json!({"Name": "orders", "ID": "ord-1", "Address": "10.0.0.2", "Port": 80, "Tags": ["v1"]})).await;
    let (_, html) = get_text(&s, "/ui?q=V2").await;
    assert!(html.contains("id=\"svc-payments\"") && !html.contains("id=\"svc-orders\""));
    assert!(html.contains("value=\"V2\""), "the search box keeps the query");
    let (_, html) = get_text(&s, "/ui?q=ord").await;
    assert!(!html.contains("id=\"svc-payments\"") && html.contains("id=\"svc-orders\""));
}

/// The A answer, in order.
async fn next_a(s: &TestServer) -> Vec<String> {
    addresses(&s.udp("web.service.local.", RecordType::A).await)
}

#[tokio::test]
async fn showing_the_answers_does_not_move_the_rotation() {
    let s = server().start().await;
    for n in 1..=3 {
        register(&s, json!({"Name": "web", "ID": format!("web-{n}"), "Address": format!("10.0.0.{n}"), "Port": 80}))
            .await;
    }
    let first = next_a(&s).await;
    for _ in 0..5 {
        assert_eq!(get_text(&s, "/ui").await.0, StatusCode::OK);
    }
    let shown = state(&s, "").await["answers"]["web"]["a"].clone();
    let shown: Vec<String> = serde_json::from_value(shown).unwrap();
    let (_, html) = get_text(&s, "/ui").await;
    let second = next_a(&s).await;
    assert_eq!(shown, second, "the page shows what the next query gets");
    assert_eq!(second[0], first[1], "six page views moved the rotation by nothing: {first:?} then {second:?}");
    let in_html = format!("<li><code>{}</code></li><li><code>{}</code></li>", second[0], second[1]);
    assert!(html.contains(&in_html), "the HTML lists the A answer in rotation order");
    let v = state(&s, "").await;
    assert_eq!(v["answers"]["web"]["srv"].as_array().unwrap().len(), 3);
    assert!(v["answers"]["web"]["srv"][0].as_str().unwrap().ends_with(".instance.local."));
}

#[tokio::test]
async fn ui_state_blocks_until_something_shown_changes() {
    let s = server().start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Check": {"TTL": "1m"}}))
        .await;
    let v = state(&s, "").await;
    let (index, hash) = (v["index"].as_u64().unwrap(), v["hash"].as_str().unwrap().to_string());

    // A new output with the same status is no new index, but the page shows outputs: `hash` wakes.
    let pass = |note: &'static str| {
        let url = s.url(&format!("/v1/agent/check/pass/service:web-1?note={note}"));
        async move { assert_eq!(http_client().put(url).send().await.unwrap().status(), StatusCode::OK) }
    };
    pass("one").await;
    let v = state(&s, &format!("?index={index}&hash={hash}&wait=20s")).await;
    let (index, hash) = (v["index"].as_u64().unwrap(), v["hash"].as_str().unwrap().to_string());
    let waiting = {
        let url = s.url(&format!("/ui/state?index={index}&hash={hash}&wait=20s"));
        tokio::spawn(async move { http_client().get(url).send().await.unwrap().text().await.unwrap() })
    };
    pass("two").await;
    let started = std::time::Instant::now();
    let v: Value = serde_json::from_str(&tokio::time::timeout(DEADLINE, waiting).await.unwrap().unwrap()).unwrap();
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(v["services"][0]["instances"][0]["checks"][0]["output"], "two");
    assert_eq!(v["index"].as_u64().unwrap(), index, "an output change is no new registry version");

    // With nothing changing it waits for `wait`, then answers the same state.
    let started = std::time::Instant::now();
    let same = state(&s, &format!("?index={index}&hash={}&wait=300ms", v["hash"].as_str().unwrap())).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(same["hash"], v["hash"]);
}

#[tokio::test]
async fn reads_need_the_token_only_when_configured() {
    let open = server().config("[http]\ntoken = \"s3cret\"\n").start().await;
    assert_eq!(get_text(&open, "/ui").await.0, StatusCode::OK, "a write token alone leaves reads open");

    let s = server().config("[http]\ntoken = \"s3cret\"\nreads_need_token = true\n").start().await;
    let (status, html) = get_text(&s, "/ui").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("name=\"token\"") && html.contains("action=\"/ui/login\""), "the page offers a token form");
    for path in [
        "/ui/state",
        "/v1/agent/services",
        "/v1/catalog/services",
        "/v1/health/service/web",
        "/v1/health/state/any",
        "/v1/agent/self",
    ] {
        assert_eq!(get_text(&s, path).await.0, StatusCode::FORBIDDEN, "{path}");
        let r = http_client().get(s.url(path)).header("X-Consul-Token", "s3cret").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} with the token");
    }
    for path in ["/healthz", "/readyz", "/ui/assets/ui.js"] {
        assert_eq!(get_text(&s, path).await.0, StatusCode::OK, "{path} stays open");
    }

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = |token: &str| {
        client
            .post(s.url("/ui/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let r = login("wrong").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get(SET_COOKIE).is_none());
    let r = login("s3cret").await.unwrap();
    assert!(r.status().is_redirection());
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("s3cret"), "the cookie does not hold the token in clear");
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = client.get(s.url("/ui")).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the cookie opens the page");
    let r = client.get(s.url("/ui/state")).header("Cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "and its live updates");

    // The cookie is for reads: a write with it alone is refused (no cross-site request forgery).
    let body = json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80}).to_string();
    let r = client.put(s.url("/v1/agent/service/register")).header("Cookie", &pair).body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn reads_need_token_without_a_token_is_a_configuration_error() {
    let raw =
        signpost::config::RawConfig::from_toml(std::path::Path::new("s.toml"), "[http]\nreads_need_token = true\n")
            .unwrap();
    let e = raw.validate().unwrap_err().to_string();
    assert!(e.contains("http.reads_need_token"), "{e}");
}
