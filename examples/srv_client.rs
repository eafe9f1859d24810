//! Client-side discovery: the client asks signpost for SRV records and picks an instance
//! itself. It caches the answer for its TTL (not asking the registry on every request), picks
//! by SRV priority then weight (RFC 2782), retries another instance with exponential backoff
//! and jitter, and opens a circuit breaker on an instance that keeps failing, so that it is
//! skipped until a trial request after `--breaker-reset` succeeds.
//!
//!     cargo run --example srv_client -- --dns 127.0.0.1:53 --service order-service --requests 10
//!
//! Prints one line per request (`request N ok from ADDR: BODY`), `breaker open ADDR` when a
//! breaker opens, and `summary ok=N failed=M`; exits 1 if any request failed.

mod discovery;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use discovery::Endpoint;
use hickory_resolver::TokioResolver;
use tokio::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// signpost's DNS address
    #[arg(long, default_value = "127.0.0.1:53")]
    dns: SocketAddr,
    /// The service to call
    #[arg(long, default_value = "order-service")]
    service: String,
    /// signpost's domain
    #[arg(long, default_value = "local")]
    domain: String,
    /// The path requested from each instance
    #[arg(long, default_value = "/orders/123")]
    path: String,
    /// How many requests to make
    #[arg(long, default_value_t = 10)]
    requests: u32,
    /// Pause between requests
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    interval: Duration,
    /// Tries per request, each on another instance where there is one
    #[arg(long, default_value_t = 4)]
    attempts: u32,
    /// First backoff; doubled for each retry, plus up to as much again of jitter
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    backoff: Duration,
    /// Consecutive failures that open an instance's breaker
    #[arg(long, default_value_t = 3)]
    breaker_failures: u32,
    /// How long an open breaker skips its instance before one trial request
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    breaker_reset: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    signpost::duration::parse(s).map_err(|e| e.to_string())
}

/// A circuit breaker per instance: closed → (N failures) open → (reset elapsed) half-open, where
/// one success closes it and one failure opens it again.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    /// Returns true if a request may go to this instance now.
    fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|until| now >= until)
    }
}

struct Client {
    args: Args,
    resolver: TokioResolver,
    http: reqwest::Client,
    /// The last SRV answer and when it expires.
    cache: Option<(Vec<Endpoint>, Instant)>,
    breakers: HashMap<SocketAddr, Breaker>,
    rng: Rng,
}

impl Client {
    fn srv_name(&self) -> String {
        format!("_{}._tcp.service.{}.", self.args.service, self.args.domain.trim_end_matches('.'))
    }

    /// The instances, from the cache while its TTL runs; a stale answer beats none when
    /// signpost cannot be reached.
    async fn endpoints(&mut self) -> anyhow::Result<Vec<Endpoint>> {
        let now = Instant::now();
        if let Some((endpoints, until)) = &self.cache
            && now < *until
        {
            return Ok(endpoints.clone());
        }
        match discovery::srv(&self.resolver, &self.srv_name()).await {
            Ok((endpoints, ttl)) => {
                println!("resolved {}: {} instances, ttl {ttl:?}", self.srv_name(), endpoints.len());
                self.cache = Some((endpoints.clone(), now + ttl));
                Ok(endpoints)
            }
            Err(e) => match &self.cache {
                Some((stale, _)) => {
                    println!("resolution failed ({e:#}); using the cached answer");
                    Ok(stale.clone())
                }
                None => Err(e),
            },
        }
    }

    /// RFC 2782: the lowest priority among the usable instances, then a weighted random pick.
    /// Usable: breaker allows it and not yet tried for this request (unless all were).
    fn pick(&mut self, endpoints: &[Endpoint], tried: &[SocketAddr]) -> Option<Endpoint> {
        let now = Instant::now();
        let open = |e: &&Endpoint| self.breakers.get(&e.addr).is_none_or(|b| b.allows(now));
        let mut usable: Vec<&Endpoint> = endpoints.iter().filter(open).filter(|e| !tried.contains(&e.addr)).collect();
        if usable.is_empty() {
            usable = endpoints.iter().filter(open).collect();
        }
        let best = usable.iter().map(|e| e.priority).min()?;
        usable.retain(|e| e.priority == best);
        let total: u64 = usable.iter().map(|e| u64::from(e.weight.max(1))).sum();
        let mut ticket = self.rng.below(total);
        for e in &usable {
            let w = u64::from(e.weight.max(1));
            if ticket < w {
                return Some((*e).clone());
            }
            ticket -= w;
        }
        usable.last().map(|e| (*e).clone())
    }

    fn record(&mut self, addr: SocketAddr, ok: bool) {
        let breaker = self.breakers.entry(addr).or_default();
        if ok {
            if breaker.open_until.is_some() {
                println!("breaker closed {addr}");
            }
            *breaker = Breaker::default();
            return;
        }
        breaker.failures += 1;
        if breaker.failures >= self.args.breaker_failures {
            if breaker.open_until.is_none_or(|until| Instant::now() >= until) {
                println!("breaker open {addr}");
            }
            breaker.open_until = Some(Instant::now() + self.args.breaker_reset);
        }
    }

    /// One request with retries: another instance each time, with backoff and jitter between.
    async fn call(&mut self) -> anyhow::Result<(SocketAddr, String)> {
        let mut tried = Vec::new();
        let mut last = anyhow::anyhow!("no attempt made");
        for attempt in 0..self.args.attempts {
            if attempt > 0 {
                let base = self.args.backoff * 2u32.pow(attempt - 1);
                let jitter = Duration::from_micros(self.rng.below(base.as_micros() as u64 + 1));
                tokio::time::sleep(base + jitter).await;
            }
            let endpoints = self.endpoints().await?;
            let Some(e) = self.pick(&endpoints, &tried) else {
                last = anyhow::anyhow!("every instance's breaker is open");
                continue;
            };
            tried.push(e.addr);
            let url = format!("http://{}{}", e.addr, self.args.path);
            let result = match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.text().await.map_err(anyhow::Error::from),
                Ok(r) => Err(anyhow::anyhow!("{}", r.status())),
                Err(err) => Err(anyhow::Error::from(err)),
            };
            self.record(e.addr, result.is_ok());
            match result {
                Ok(body) => return Ok((e.addr, body)),
                Err(err) => {
                    println!("attempt {} on {} failed: {err}", attempt + 1, e.addr);
                    last = err;
                }
            }
        }
        Err(last)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resolver = discovery::resolver(args.dns)?;
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
    let interval = args.interval;
    let requests = args.requests;
    let mut client = Client { args, resolver, http, cache: None, breakers: HashMap::new(), rng: Rng::new() };
    let (mut ok, mut failed) = (0, 0);
    for n in 1..=requests {
        match client.call().await {
            Ok((addr, body)) => {
                ok += 1;
                println!("request {n} ok from {addr}: {body}");
            }
            Err(e) => {
                failed += 1;
                println!("request {n} failed: {e:#}");
            }
        }
        tokio::time::sleep(interval).await;
    }
    println!("summary ok={ok} failed={failed}");
    Ok(if failed == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

/// A small pseudo-random source (xorshift), seeded from the clock: enough for weights and jitter.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        Rng(seed | 1)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
