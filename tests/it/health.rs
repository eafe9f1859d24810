//! Health probing against real HTTP and TCP targets on loopback: what DNS answers follows
//! the checks, with rise/fall, timeouts, TTLs and deregister_after.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use hickory_proto::rr::RecordType;
use signpost::model::{Address, CheckKind, CheckSpec, Instance, Source, Status};
use signpost::registry::Change;

use crate::support::*;

/// An HTTP target whose /health answers with a settable status (0 = hang forever), counting requests.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

impl Target {
    pub async fn start(status: u16) -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Target { addr, status: Arc::new(AtomicU16::new(status)), hits: Arc::new(AtomicUsize::new(0)) };
        let state = t.clone();
        let app = Router::new().route(
            "/health",
            get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    match state.status.load(Ordering::SeqCst) {
                        0 => std::future::pending().await,
                        code => (StatusCode::from_u16(code).unwrap(), format!("status {code}")),
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        t
    }

    pub fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn zone(service: &str, instances: &[(&str, &str, u16)], check: &str) -> String {
    let mut z = format!("[[service]]\nname = \"{service}\"\ncheck = {check}\n");
    for (id, addr, port) in instances {
        z.push_str(&format!("\n[[service.instance]]\nid = \"{id}\"\naddress = \"{addr}\"\nport = {port}\n"));
    }
    z
}

/// The SRV targets DNS answers for a service right now, sorted.
async fn healthy(s: &TestServer, service: &str) -> Vec<String> {
    let m = s.udp(&format!("{service}.service.local."), RecordType::SRV).await;
    let mut targets: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::SRV(srv) => Some(srv.target.to_string()),
            _ => None,
        })
        .collect();
    targets.sort();
    targets
}

fn status_of(s: &TestServer, check_id: &str) -> (Status, String) {
    let snap = s.registry.snapshot();
    let (view, i) = snap.check(check_id).expect("check exists");
    (view.health.checks[i].status, view.health.checks[i].output.clone())
}

#[tokio::test]
async fn a_new_instance_is_absent_until_its_first_good_probe() {
    let target = Target::start(200).await;
    // A long interval: only the immediate first probe runs during this test.
    let check = "{ http = \"http://{address}:{port}/health\", interval = \"1m\" }";
    let s = server().zone("web.toml", &zone("web", &[("web-1", "127.0.0.1", target.addr.port())], check)).start().await;
    // Before the probe answers the check is critical: either NODATA now, or the probe already won.
    wait_for("the first probe to pass", || async { healthy(&s, "web").await == ["web-1.instance.local."] }).await;
    assert_eq!(target.hits(), 1, "one probe, at once, decided it");
    assert_eq!(status_of(&s, "service:web-1").0, Status::Passing);
}

#[tokio::test]
async fn failing_target_leaves_after_fall_probes_and_returns_after_rise() {
    let target = Target::start(200).await;
    let check = "{ http = \"http://{address}:{port}/health\", interval = \"150ms\", rise = 2, fall = 3 }";
    let s = server().zone("web.toml", &zone("web", &[("web-1", "127.0.0.1", target.addr.port())], check)).start().await;
    wait_for("passing", || async { status_of(&s, "service:web-1").0 == Status::Passing }).await;

    target.set(500);
    let base = target.hits();
    // Failures below `fall` change the output only; DNS keeps answering.
    wait_for("the first failure to be recorded", || async { status_of(&s, "service:web-1").1.contains("500") }).await;
    assert_eq!(status_of(&s, "service:web-1").0, Status::Passing);
    assert_eq!(healthy(&s, "web").await, ["web-1.instance.local."]);
    wait_for("web-1 to leave DNS", || async { healthy(&s, "web").await.is_empty() }).await;
    assert_eq!(target.hits() - base, 3, "left after exactly `fall` failed probes");

    target.set(200);
    let base = target.hits();
    wait_for("the first success to be recorded", || async { status_of(&s, "service:web-1").1.contains("200") }).await;
    assert!(healthy(&s, "web").await.is_empty(), "one success is not enough");
    wait_for("web-1 to return", || async { healthy(&s, "web").await == ["web-1.instance.local."] }).await;
    assert_eq!(target.hits() - base, 2, "back after exactly `rise` good probes");
}

#[tokio::test]
async fn too_many_requests_is_a_warning_and_still_answered() {
    let target = Target::start(429).await;
    let check = "{ http = \"http://{address}:{port}/health\", interval = \"1m\" }";
    let s = server().zone("web.toml", &zone("web", &[("web-1", "127.0.0.1", target.addr.port())], check)).start().await;
    wait_for("warning", || async { status_of(&s, "service:web-1").0 == Status::Warning }).await;
    assert_eq!(healthy(&s, "web").await, ["web-1.instance.local."]);
    // only_passing drops warning instances.
    let s = server()
        .config("[dns]\nonly_passing = true\n")
        .zone("web.toml", &zone("web", &[("web-1", "127.0.0.1", target.addr.port())], check))
        .start()
        .await;
    wait_for("warning", || async { status_of(&s, "service:web-1").0 == Status::Warning }).await;
    assert!(healthy(&s, "web").await.is_empty());
}

#[tokio::test]
async fn a_hanging_target_times_out_without_delaying_other_probes() {
    let hang = Target::start(0).await;
    let fast = Target::start(200).await;
    let z = format!(
        "{}\n{}",
        zone(
            "slow",
            &[("slow-1", "127.0.0.1", hang.addr.port())],
            "{ http = \"http://{address}:{port}/health\", interval = \"1m\", timeout = \"300ms\" }"
        ),
        zone(
            "fast",
            &[("fast-1", "127.0.0.1", fast.addr.port())],
            "{ http = \"http://{address}:{port}/health\", interval = \"100ms\" }"
        ),
    );
    let started = Instant::now();
    let s = server().config("[health]\nmax_in_flight = 2\n").zone("z.toml", &z).start().await;
    wait_for("the hanging probe to time out", || async { status_of(&s, "service:slow-1").1.contains("timed out") })
        .await;
    let took = started.elapsed();
    assert_eq!(status_of(&s, "service:slow-1").0, Status::Critical);
    assert!(took >= Duration::from_millis(300), "not before its timeout: {took:?}");
    // Meanwhile the fast check kept its 100 ms schedule.
    assert!(fast.hits() >= 2, "fast target probed {} times while the other hung", fast.hits());
    let before = fast.hits();
    wait_for("more fast probes", || async { fast.hits() >= before + 3 }).await;
}

#[tokio::test]
async fn a_closed_tcp_port_is_critical_and_an_open_one_passing() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Below the ephemeral range: nothing binding port 0 can open it while the test runs.
    let closed = free_port();
    let check = "{ tcp = \"{address}:{port}\", interval = \"1m\" }";
    let s = server()
        .zone(
            "db.toml",
            &zone(
                "db",
                &[("db-1", "127.0.0.1", open.local_addr().unwrap().port()), ("db-2", "127.0.0.1", closed)],
                check,
            ),
        )
        .start()
        .await;
    wait_for("db-2 refused", || async { status_of(&s, "service:db-2").1.contains("refused") }).await;
    wait_for("db-1 passing", || async { status_of(&s, "service:db-1").0 == Status::Passing }).await;
    assert_eq!(status_of(&s, "service:db-2").0, Status::Critical);
    assert_eq!(healthy(&s, "db").await, ["db-1.instance.local."]);
}

fn api_instance(id: &str, check: CheckKind, deregister_after: Option<Duration>, initial: Option<Status>) -> Instance {
    Instance {
        id: id.into(),
        service: "jobs".into(),
        address: Address::Ip("127.0.0.1".parse().unwrap()),
        port: 9000,
        tags: vec![],
        weight: 1,
        region: None,
        meta: Default::default(),
        checks: vec![CheckSpec {
            id: format!("service:{id}"),
            name: "check".into(),
            kind: check,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(200),
            rise: None,
            fall: Some(1),
            deregister_after,
            initial,
        }],
        policy: Default::default(),
        source: Source::Api,
        node: None,
    }
}

#[tokio::test]
async fn a_ttl_check_turns_critical_when_heartbeats_stop() {
    let s = server().start().await;
    let ttl = Duration::from_millis(400);
    let instance = api_instance("job-1", CheckKind::Ttl { ttl }, None, None);
    s.registry.apply(Change::Register { instance, replace_existing_checks: false }).await.unwrap();
    assert!(healthy(&s, "jobs").await.is_empty(), "critical until the first heartbeat");
    let pass =
        || Change::CheckUpdate { check_id: "service:job-1".into(), status: Status::Passing, output: "ok".into() };
    s.registry.apply(pass()).await.unwrap();
    assert_eq!(healthy(&s, "jobs").await, ["job-1.instance.local."]);
    // Heartbeats within the TTL keep it passing...
    for _ in 0..3 {
        tokio::time::sleep(ttl / 2).await; // the heartbeat cadence itself, not synchronisation
        s.registry.apply(pass()).await.unwrap();
        assert_eq!(status_of(&s, "service:job-1").0, Status::Passing);
    }
    // ...and silence makes it critical within a second after the TTL.
    let last = Instant::now();
    wait_for("TTL expiry", || async { healthy(&s, "jobs").await.is_empty() }).await;
    let after = last.elapsed();
    assert!(after >= ttl && after < ttl + Duration::from_secs(1), "expired after {after:?}");
    assert!(status_of(&s, "service:job-1").1.contains("TTL expired"));
}

#[tokio::test]
async fn deregister_after_removes_an_instance_critical_too_long() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let s = server().start().await;
    let after = Duration::from_millis(500);
    let tcp = CheckKind::Tcp { target: closed.to_string() };
    let started = Instant::now();
    let instance = api_instance("job-2", tcp, Some(after), None);
    s.registry.apply(Change::Register { instance, replace_existing_checks: false }).await.unwrap();
    assert!(s.registry.snapshot().instance("job-2").is_some());
    wait_for("the reaper", || async { s.registry.snapshot().instance("job-2").is_none() }).await;
    let took = started.elapsed();
    assert!(took >= after && took < after + Duration::from_secs(1), "removed after {took:?}");
    assert_eq!(
        s.udp("job-2.instance.local.", RecordType::A).await.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
}

#[tokio::test]
async fn a_restart_serves_the_last_known_health_until_fresh_results_arrive() {
    let target = Target::start(200).await;
    let data = tempfile::tempdir().unwrap();
    let s = server().data_dir(data.path()).start().await;
    let url = format!("http://{}/health", target.addr);
    let http = CheckKind::Http { url, method: "GET".into(), headers: Default::default(), tls_skip_verify: false };
    let mut instance = api_instance("job-3", http, None, None);
    instance.checks[0].timeout = Duration::from_secs(5);
    instance.checks[0].interval = Duration::from_secs(60);
    s.registry.apply(Change::Register { instance, replace_existing_checks: false }).await.unwrap();
    wait_for("passing", || async { status_of(&s, "service:job-3").0 == Status::Passing }).await;
    s.stop().await;

    // The target now hangs: after the restart no fresh result can arrive for 5 s, so what DNS
    // answers meanwhile is the stored health. Without it, the instance would be critical.
    target.set(0);
    let s = server().data_dir(data.path()).start().await;
    assert_eq!(status_of(&s, "service:job-3").0, Status::Passing);
    assert_eq!(healthy(&s, "jobs").await, ["job-3.instance.local."]);
    wait_for("the fresh probe to be under way", || async { target.hits() >= 2 }).await;
    assert_eq!(healthy(&s, "jobs").await, ["job-3.instance.local."], "still the last known health");
}
