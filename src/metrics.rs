//! Prometheus metrics. One process-wide recorder behind the `metrics` facade; every module
//! records where the event happens, and `GET /metrics` renders the text format. Names follow
//! Prometheus style: `_total` counters, `_seconds` histograms, plain gauges.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder (once per process; later calls return the same handle).
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // DNS answers take microseconds; probes and store writes milliseconds to seconds.
        let fast = [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 2.0];
        let slow = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("signpost_dns_query_duration_seconds".into()), &fast)
            .and_then(|b| b.set_buckets(&slow))
            .expect("bucket lists are non-empty")
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        describe();
        handle
    })
}

/// The current metrics in Prometheus text format.
pub fn render() -> String {
    let handle = install();
    handle.run_upkeep();
    handle.render()
}

/// Folds recorded histogram samples into their buckets every few seconds until `token` is
/// cancelled. The recorder keeps each sample until asked to fold them (a scrape, or this):
/// without it, a server that nobody scrapes keeps every sampled DNS answer time in memory,
/// about 100 KB/s under full load.
pub async fn upkeep(token: CancellationToken) {
    let handle = install();
    let mut tick = tokio::time::interval(UPKEEP);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Counts one hit of a bound (`signpost_limit_hits_total{limit}`): a query dropped, a
/// connection refused or closed, a request turned away.
pub fn limit_hit(limit: &'static str) {
    metrics::counter!("signpost_limit_hits_total", "limit" => limit).increment(1);
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("signpost_dns_queries_total", "DNS queries answered, by query type, response code and transport");
    describe_histogram!("signpost_dns_query_duration_seconds", "Time to answer a DNS query");
    describe_counter!("signpost_dns_forwarded_total", "Queries forwarded upstream, by outcome");
    describe_gauge!("signpost_instances", "Registered instances, by aggregated health status");
    describe_gauge!("signpost_checks", "Health checks, by status");
    describe_gauge!("signpost_registry_version", "The registry version (X-Consul-Index, SOA serial)");
    describe_counter!("signpost_probes_total", "Health probes run, by kind and result");
    describe_histogram!("signpost_probe_duration_seconds", "Time a health probe took, by kind");
    describe_histogram!("signpost_probe_lateness_seconds", "How long after its due time a probe started");
    describe_counter!("signpost_check_transitions_total", "Check status changes decided by probes");
    describe_counter!("signpost_zone_reloads_total", "Zone file loads, by result");
    describe_histogram!("signpost_store_write_duration_seconds", "Time to make one batch durable (write + fsync)");
    describe_counter!("signpost_store_writes_total", "Batches written to the store, by result");
    describe_counter!(
        "signpost_limit_hits_total",
        "Times a resource bound was hit (work dropped, refused or cut), by limit"
    );
    describe_counter!("signpost_http_requests_total", "HTTP API requests, by method, route and status");
    describe_histogram!("signpost_http_request_duration_seconds", "Time to answer an HTTP API request, by route");
}
