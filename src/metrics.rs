//! Prometheus metrics. One process-wide recorder behind the `metrics` facade; every module
//! records where the event happens, and `GET /metrics` renders the text format. Names follow
//! Prometheus style: `_total` counters, `_seconds` histograms, plain gauges.
//!
//! A scrape shows every family from the start: counters whose label values are a small known
//! set are registered at zero by `install` (the values are the enums below, which the counting
//! code uses too), gauges are set from the first snapshot, and `describe` gives each family its
//! HELP. Left to appear with their first count, because their label sets are open or large:
//! `signpost_dns_queries_total` (qtype × rcode × proto) and the HTTP request families (every
//! route template × method × any status code a handler or axum answers with).

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often the recorder's histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);

/// Time to answer a DNS query: every query answered, fast path and full handler alike, so that
/// its `_count` is the sum of `signpost_dns_queries_total`. Atomic buckets rather than the
/// recorder's histograms, which keep each sample in memory until a scrape or the upkeep folds
/// it: every query timed that way is megabytes a second at full load.
pub static DNS_QUERY_DURATION: Histogram<13> = Histogram::new(
    "signpost_dns_query_duration_seconds",
    "Time to answer a DNS query, every query counted; the UDP fast path reads queries in batches and \
     counts each batch's time, from reading it to its answers being ready to send, for every query in it",
    // DNS answers take microseconds.
    [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000, 500_000, 2_000_000],
);

/// Declares the values of a label: an enum, each value's text, and `ALL` of them for the
/// registration at zero, so that the list counted from and the list registered are one.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

label_values!(
    /// A resource bound (`signpost_limit_hits_total{limit}`); docs/configuration.md's Limits says what each does.
    Limit {
        SlowQueries = "slow_queries",
        TcpConnections = "tcp_connections",
        TcpIdleTimeout = "tcp_idle_timeout",
        TcpQueriesPerConnection = "tcp_queries_per_connection",
        RrlSlipped = "rrl_slipped",
        RrlDropped = "rrl_dropped",
        HttpRequests = "http_requests",
        HttpBlockingQueries = "http_blocking_queries",
        HttpHeaderBytes = "http_header_bytes",
        TlsHandshakes = "tls_handshakes",
        ZoneFile = "zone_file",
    }
);

label_values!(
    /// What became of a query for a name outside the domain (`signpost_dns_forwarded_total{outcome}`):
    /// an upstream answered (whatever its rcode), none did (SERVFAIL), or it was not relayed (a zone
    /// transfer).
    Forwarded {
        Answered = "answered",
        Failed = "failed",
        Refused = "refused",
    }
);

label_values!(
    /// What became of a NOTIFY to a secondary (`signpost_dns_notifies_total{result}`).
    Notified {
        Acknowledged = "acknowledged",
        Unanswered = "unanswered",
    }
);

label_values!(
    /// What a query's DNS cookie turned out to be (`signpost_dns_cookies_total{verdict}`).
    CookieVerdict {
        ClientOnly = "client_only",
        Valid = "valid",
        Invalid = "invalid",
    }
);

label_values!(
    /// Files read again when they change, besides zone files (`signpost_reloads_total{kind}`).
    Reloaded {
        Tls = "tls",
        Tokens = "tokens",
    }
);

label_values!(
    /// The `result` of a zone file load or a store write.
    Outcome {
        Ok = "ok",
        Error = "error",
    }
);

impl Outcome {
    pub fn of<T, E>(result: &Result<T, E>) -> Outcome {
        if result.is_ok() { Outcome::Ok } else { Outcome::Error }
    }
}

/// Installs the recorder (once per process; later calls return the same handle), and registers
/// the families whose label values are known at zero.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Probes and store writes take milliseconds to seconds.
        let slow = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let handle = PrometheusBuilder::new()
            .set_buckets(&slow)
            .expect("bucket lists are non-empty")
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        describe();
        // A handle asked for is registered, and shown from then on.
        for &limit in Limit::ALL {
            limit_counter(limit).increment(0);
        }
        for &outcome in Forwarded::ALL {
            forwarded_counter(outcome).increment(0);
        }
        for &result in Notified::ALL {
            notified_counter(result).increment(0);
        }
        for &verdict in CookieVerdict::ALL {
            cookie_counter(verdict).increment(0);
        }
        for &result in Outcome::ALL {
            zone_reload_counter(result).increment(0);
            store_write_counter(result).increment(0);
            for &kind in Reloaded::ALL {
                reload_counter(kind, result).increment(0);
            }
        }
        let _ = metrics::histogram!("signpost_store_write_duration_seconds");
        handle
    })
}

/// The current metrics in Prometheus text format. The recorder reads its counters before this
/// reads the DNS histogram, and a query is timed before it is counted: `_count` is never below
/// the sum of the counters it belongs to, and equal once the queries in flight are answered.
pub fn render() -> String {
    let mut text = install().render();
    DNS_QUERY_DURATION.render(&mut text);
    text
}

/// Folds recorded histogram samples into their buckets every few seconds until `token` is
/// cancelled. The recorder keeps each sample until asked to fold them (a scrape, or this):
/// without it, a server that nobody scrapes keeps every probe, store write and API request time
/// in memory.
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
pub fn limit_hit(limit: Limit) {
    limit_counter(limit).increment(1);
}

fn limit_counter(limit: Limit) -> metrics::Counter {
    metrics::counter!("signpost_limit_hits_total", "limit" => limit.as_str())
}

/// Counts a query for a name outside the domain by what became of it.
pub fn forwarded(outcome: Forwarded) {
    forwarded_counter(outcome).increment(1);
}

fn forwarded_counter(outcome: Forwarded) -> metrics::Counter {
    metrics::counter!("signpost_dns_forwarded_total", "outcome" => outcome.as_str())
}

/// Counts a NOTIFY sent to a secondary by what became of it.
pub fn notified(result: Notified) {
    notified_counter(result).increment(1);
}

fn notified_counter(result: Notified) -> metrics::Counter {
    metrics::counter!("signpost_dns_notifies_total", "result" => result.as_str())
}

/// Counts a query that carried a DNS cookie, by what its server cookie turned out to be. On the
/// fast path, so the handles are looked up once, not per query.
pub fn cookie(verdict: CookieVerdict) {
    static HANDLES: OnceLock<Vec<metrics::Counter>> = OnceLock::new();
    let handles = HANDLES.get_or_init(|| CookieVerdict::ALL.iter().map(|&v| cookie_counter(v)).collect());
    handles[verdict as usize].increment(1);
}

fn cookie_counter(verdict: CookieVerdict) -> metrics::Counter {
    metrics::counter!("signpost_dns_cookies_total", "verdict" => verdict.as_str())
}

/// Counts a zone file (re)load after a change in the folder.
pub fn zone_reload(result: Outcome) {
    zone_reload_counter(result).increment(1);
}

fn zone_reload_counter(result: Outcome) -> metrics::Counter {
    metrics::counter!("signpost_zone_reloads_total", "result" => result.as_str())
}

/// Counts TLS files or token files read again after a change (an event that left them as they
/// were is not counted).
pub fn reloaded(kind: Reloaded, result: Outcome) {
    reload_counter(kind, result).increment(1);
}

fn reload_counter(kind: Reloaded, result: Outcome) -> metrics::Counter {
    metrics::counter!("signpost_reloads_total", "kind" => kind.as_str(), "result" => result.as_str())
}

/// Times and counts one batch written to the store.
pub fn store_write(result: Outcome, took: Duration) {
    metrics::histogram!("signpost_store_write_duration_seconds").record(took);
    store_write_counter(result).increment(1);
}

fn store_write_counter(result: Outcome) -> metrics::Counter {
    metrics::counter!("signpost_store_writes_total", "result" => result.as_str())
}

/// A histogram of durations in fixed buckets of atomic counts: recording is three atomic adds
/// and no allocation, memory never grows, and a scrape reads what was recorded up to then.
pub struct Histogram<const N: usize> {
    name: &'static str,
    help: &'static str,
    /// Upper bounds of the buckets in nanoseconds, ascending.
    nanos: [u64; N],
    /// Per bucket (not cumulative).
    counts: [AtomicU64; N],
    /// Past the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// A histogram with buckets up to each of `micros` microseconds, ascending.
    pub const fn new(name: &'static str, help: &'static str, micros: [u64; N]) -> Histogram<N> {
        let mut nanos = micros;
        let mut i = 0;
        while i < N {
            nanos[i] *= 1000;
            i += 1;
        }
        Histogram {
            name,
            help,
            nanos,
            counts: [const { AtomicU64::new(0) }; N],
            over: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records `n` events that took `took` each.
    pub fn record_many(&self, took: Duration, n: u64) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.nanos.partition_point(|&b| b < nanos);
        self.counts.get(bucket).unwrap_or(&self.over).fetch_add(n, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
    }

    /// Appends the family in Prometheus text format. `_count` and the `+Inf` bucket are the sum
    /// of the buckets as read, so that the family is consistent in itself even under load.
    fn render(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", self.help);
        let mut total = 0;
        for (bound, count) in self.nanos.iter().zip(&self.counts) {
            total += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {total}", *bound as f64 / 1e9);
        }
        total += self.over.load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {sum}\n{name}_count {total}\n");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("signpost_dns_queries_total", "DNS queries answered, by query type, response code and transport");
    describe_counter!(
        "signpost_dns_cookies_total",
        "Queries with a DNS cookie, by their server cookie: none yet (client_only), ours (valid), or not (invalid)"
    );
    describe_counter!(
        "signpost_dns_notifies_total",
        "NOTIFY messages sent to secondaries, by whether they were acknowledged"
    );
    describe_counter!("signpost_dns_forwarded_total", "Queries for names outside the domain, by outcome");
    describe_gauge!("signpost_instances", "Registered instances, by aggregated health status");
    describe_gauge!("signpost_checks", "Health checks, by status");
    describe_gauge!("signpost_registry_version", "The registry version (X-Consul-Index, SOA serial)");
    describe_counter!("signpost_probes_total", "Health probes run, by kind and result");
    describe_histogram!("signpost_probe_duration_seconds", "Time a health probe took, by kind");
    describe_histogram!("signpost_probe_lateness_seconds", "How long after its due time a probe started");
    describe_counter!("signpost_check_transitions_total", "Check status changes decided by probes");
    describe_gauge!("signpost_checks_probed", "Health checks this server probes (in cluster mode, its share)");
    describe_counter!("signpost_zone_reloads_total", "Zone file loads after a change in the folder, by result");
    describe_counter!("signpost_reloads_total", "TLS and token files read again after a change, by kind and result");
    describe_histogram!("signpost_store_write_duration_seconds", "Time to make one batch durable (write + fsync)");
    describe_counter!("signpost_store_writes_total", "Batches written to the store, by result");
    describe_counter!(
        "signpost_limit_hits_total",
        "Times a resource bound was hit (work dropped, refused or cut), by limit"
    );
    describe_counter!("signpost_http_requests_total", "HTTP API requests, by method, route and status");
    describe_histogram!("signpost_http_request_duration_seconds", "Time to answer an HTTP API request, by route");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_puts_each_time_in_the_first_bucket_that_holds_it() {
        // (time in µs, how many) recorded → the cumulative counts rendered, then _sum and _count.
        let cases: [(&[(u64, u64)], &str); 4] = [
            (&[], "le=\"0.00001\"} 0|le=\"0.00002\"} 0|le=\"+Inf\"} 0|_sum 0|_count 0"),
            (&[(10, 1)], "le=\"0.00001\"} 1|le=\"0.00002\"} 1|le=\"+Inf\"} 1|_sum 0.00001|_count 1"),
            (&[(11, 3), (5, 1)], "le=\"0.00001\"} 1|le=\"0.00002\"} 4|le=\"+Inf\"} 4|_sum 0.000038|_count 4"),
            (&[(30, 2), (20, 1)], "le=\"0.00001\"} 0|le=\"0.00002\"} 1|le=\"+Inf\"} 3|_sum 0.00008|_count 3"),
        ];
        for (recorded, want) in cases {
            let h = Histogram::new("t_seconds", "help", [10, 20]);
            for &(micros, n) in recorded {
                h.record_many(Duration::from_micros(micros), n);
            }
            let mut text = String::new();
            h.render(&mut text);
            let got: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .map(|l| l.strip_prefix("t_seconds_bucket{").or(l.strip_prefix("t_seconds")).unwrap())
                .collect();
            assert_eq!(got.join("|"), want, "recorded {recorded:?}");
            assert!(text.starts_with("# HELP t_seconds help\n# TYPE t_seconds histogram\n"), "{text}");
        }
    }
}
