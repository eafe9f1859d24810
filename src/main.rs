//! `signpost`: parse the command line, build the app, wait for a signal. Nothing else.
#![deny(unsafe_code)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use signpost::app::{self, Listeners};
use signpost::cli::{Cli, Command, ServeArgs, check_zones};
use signpost::config::{Config, LogFormat, RawConfig};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckZones { dir } => check_zones(&dir.unwrap_or_else(|| "zones".into()))
            .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }),
        Command::ConfigSample => {
            print!("{}", signpost::config::keys::sample());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => signpost::manual::write_man_pages(&dir)
            .map(|pages| {
                for p in pages {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            })
            .with_context(|| format!("cannot write man pages into {}", dir.display())),
        Command::Completions { shell } => {
            // A reader that stops early (`| head`) is no error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &signpost::manual::completions(shell));
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { api, ready } => match signpost::client::healthcheck(&api, ready) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("signpost: unhealthy: {}", describe(&e));
                Ok(ExitCode::from(1))
            }
        },
        client => Ok(signpost::client::run(client)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("signpost: {}", describe(&e));
        ExitCode::from(2)
    })
}

/// An error and its causes on one line, each cause once: typed errors already quote their
/// source in their own message, and anyhow's `{:#}` would repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// The configuration `args` name: the file, then the environment and flags over it.
fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    Ok(raw.overlay(args.overrides()).validate()?)
}

/// glibc's malloc gives threads that meet on a lock arenas of their own (up to 8 per CPU) and
/// keeps what is freed in each for that arena's reuse. A replica joining 100,000 instances from
/// etcd decodes the pages on the runtime's threads and builds the registry on another, and
/// ~13 MB of the pages stayed resident in the runtime threads' arenas for good (165 MB against
/// 152 MB with one arena; bench/README "Cluster mode at scale"). With one arena the registry
/// reuses that memory. The query path allocates little, so the shared lock costs nothing
/// measurable there (bench/dns.sh, same README).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn one_malloc_arena() {
    // SAFETY: `mallopt` takes no pointers and is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

/// The async runtime, with one worker thread fewer than the CPUs (at least one): DNS over UDP,
/// the query path, runs on a thread of its own (`dns/udp.rs`), and the runtime (the API, the
/// registry's writer, the etcd watch, probes, DNS over TCP) wakes its workers for one another.
/// On this 2-core machine a second worker cost a cluster replica 15–20% more CPU per write in
/// those wake-ups (bench/README, "Cluster mode at scale"). `TOKIO_WORKER_THREADS` still decides
/// when set.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cpus.saturating_sub(1).max(1));
    }
    builder.build()
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    let log_filter = init_logging(&config)?;
    let runtime = runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Signal handlers first: a SIGTERM that arrives during start-up must still be graceful.
        let signals = Signals::new()?;
        let listeners = Listeners::bind(&config).await?;
        let token = CancellationToken::new();
        let running = app::start(config, listeners, token.clone()).await?;
        let reload =
            Reload { args, log_filter, reloader: running.reloader.clone(), registry: running.registry.clone() };
        tokio::spawn(signals.run(token, reload));
        running.wait().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// What SIGHUP needs: where the configuration comes from, and the running parts it changes.
struct Reload {
    args: ServeArgs,
    log_filter: LogFilter,
    reloader: std::sync::Arc<app::reload::Reloader>,
    registry: signpost::registry::Registry,
}

impl Reload {
    /// Reads the configuration again and applies it; a configuration that does not validate
    /// changes nothing and is logged.
    fn run(&self) {
        signpost::systemd::reloading();
        match load_config(&self.args) {
            Ok(config) => {
                match log_filter(&config) {
                    Ok(filter) => {
                        if let Err(e) = self.log_filter.reload(filter) {
                            tracing::warn!(error = %e, "log level not changed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %describe(&e), "log level not changed"),
                }
                self.reloader.reload(config);
            }
            Err(e) => {
                tracing::error!(error = %describe(&e), "configuration not reloaded: it does not validate; the one in force stays")
            }
        }
        signpost::systemd::reloaded(&self.registry.snapshot());
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        Ok(Signals { term, int, hup })
    }

    /// SIGHUP: reload. First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
    async fn run(mut self, token: CancellationToken, reload: Reload) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration and zone files");
                    reload.run();
                }
            }
        }
        tracing::info!("shutting down");
        token.cancel();
        tokio::select! { _ = self.term.recv() => {}, _ = self.int.recv() => {} }
        std::process::exit(130);
    }
}

/// The log filter, replaceable while running (a reload's `[log] level`).
type LogFilter = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The filter the configuration asks for: `--log-level` / `SIGNPOST_LOG_LEVEL` / `[log] level`
/// when given (a level or a RUST_LOG-style filter), else `RUST_LOG`, else `info`.
fn log_filter(config: &Config) -> anyhow::Result<EnvFilter> {
    // hickory's crates log routine protocol events at INFO; keep them to warnings unless asked.
    let quiet_hickory = |level: &str| format!("hickory_proto=warn,hickory_resolver=warn,{level}");
    Ok(match &config.log.level {
        // Bare words are checked by the configuration; a filter's syntax here.
        Some(level) => {
            EnvFilter::try_new(quiet_hickory(level)).with_context(|| format!("invalid log filter {level:?}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(quiet_hickory("info"))),
    })
}

/// Logs to stderr through a filter a reload can replace. JSON lines carry the same message
/// texts as text lines, with `message` and the fields at the top level.
fn init_logging(config: &Config) -> anyhow::Result<LogFilter> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(log_filter(config)?);
    let logs = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => logs.with(layer.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))).init(),
        LogFormat::Json => {
            logs.with(layer.json().flatten_event(true).with_current_span(false).with_span_list(false)).init()
        }
    }
    Ok(handle)
}
