//! A configuration reload (SIGHUP, `systemctl reload`): the zone files are read again, the
//! settings that can change while the server runs change, and every other setting that differs
//! from the one in force is logged as waiting for a restart. Nothing stops answering: DNS reads
//! its settings once per query from one swappable value, which is replaced whole, and the fast
//! path's table is rebuilt with the new settings by the registry's writer (the one place that
//! builds it, so that no table of an older snapshot can overwrite a newer one).
//!
//! Changed while running: the zone files; `[dns] udp_max_payload`, `region`, `[[regions.client]]`,
//! `nsid`, `transfer_allow`, `notify`, `dns_sd_networks`, `consul_names`, `upstreams`, `upstream_timeout`,
//! `recursion_allow`; and
//! `[log] level` (applied by `main`, which owns the log filter). Everything else is read at start:
//! sockets, the domain and its TTLs, the store, the HTTP API, health defaults, limits, shutdown.
//! (The content of TLS files and token secret files is another matter: it is read again whenever
//! it changes, see `tls` and `acl`.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::dns::{self, Cookies, LiveSettings, Zone};
use crate::registry::{Change, Registry};

/// The DNS side's settings from a configuration: one home for how `[dns]`, `[[regions.client]]`
/// and forwarding become what every query reads, at start and at each reload.
pub fn dns_settings(config: &Config, zone: Zone, cookies: Cookies, listening: &[SocketAddr]) -> dns::Settings {
    // The local datacenter's qualifier follows the region, which a reload may change.
    let consul = config.dns.consul_names.then(|| dns::ConsulNames {
        local: config.dns.region.is_none().then(|| config.dns.datacenter().to_ascii_lowercase()),
    });
    dns::Settings {
        regions: dns::Regions::new(config.dns.client_regions.clone(), config.dns.region.clone()),
        udp_max_payload: config.dns.udp_max_payload,
        nsid: config.dns.nsid.clone(),
        transfers: dns::Transfers::new(config.dns.transfer_allow.clone()),
        // The loop guard needs our own addresses, with the ports port 0 picked.
        forwarder: Some(Arc::new(dns::Forwarder::new(&config.forward, listening))),
        cookies,
        ..dns::Settings::new(Zone { consul, ..zone }).dns_sd_networks(&config.dns.dns_sd_networks)
    }
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Settings that differed and now apply.
    pub applied: Vec<&'static str>,
    /// Settings that differ but apply only after a restart.
    pub need_restart: Vec<&'static str>,
}

/// The parts of a running server a reload changes.
pub struct Reloader {
    /// The configuration in force.
    config: Mutex<Config>,
    live: LiveSettings,
    secondaries: watch::Sender<Vec<SocketAddr>>,
    rescan: Arc<Notify>,
    registry: Registry,
    listening: Vec<SocketAddr>,
}

impl Reloader {
    pub(super) fn new(
        config: Config,
        live: LiveSettings,
        secondaries: watch::Sender<Vec<SocketAddr>>,
        rescan: Arc<Notify>,
        registry: Registry,
        listening: Vec<SocketAddr>,
    ) -> Reloader {
        Reloader { config: Mutex::new(config), live, secondaries, rescan, registry, listening }
    }

    /// Applies `new`: the zone folder is read again, the settings that can change now do, and
    /// each other setting that differs is logged as taking effect at the next restart (the one
    /// in force stays). Returns which were which.
    pub fn reload(&self, new: Config) -> Report {
        let mut in_force = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let report = compare(&in_force, &new);
        let live_dns = [
            "dns.udp_max_payload",
            "dns.region",
            "regions.client",
            "dns.nsid",
            "dns.transfer_allow",
            "dns.dns_sd_networks",
        ];
        let forwarding = ["dns.upstreams", "dns.upstream_timeout", "dns.recursion_allow"];
        if report.applied.iter().any(|k| live_dns.contains(k) || forwarding.contains(k)) {
            let current = self.live.load_full();
            let next = dns_settings(&new, current.zone.clone(), current.cookies.clone(), &self.listening);
            self.live.store(Arc::new(next));
            // The writer builds the fast path's table again with them, at its next snapshot.
            self.registry.send(Change::Republish);
        }
        if report.applied.contains(&"dns.notify") {
            self.secondaries.send_replace(new.dns.notify.clone());
        }
        self.rescan.notify_one();
        for key in &report.need_restart {
            warn!(setting = key, "changed in the configuration; it takes effect at the next restart");
        }
        info!(applied = ?report.applied, need_restart = ?report.need_restart, "configuration reloaded; zone files read again");
        // What applies now is in force; what waits for a restart is not.
        let mut kept = new;
        keep_restart_settings(&mut kept, &in_force);
        *in_force = kept;
        report
    }
}

/// Sorts the settings that differ between `old` and `new` into those that apply now and those
/// that wait for a restart.
fn compare(old: &Config, new: &Config) -> Report {
    let (o, n) = (&old.dns, &new.dns);
    let live: [(&'static str, bool); 12] = [
        ("dns.udp_max_payload", o.udp_max_payload != n.udp_max_payload),
        ("dns.region", o.region != n.region),
        ("regions.client", o.client_regions != n.client_regions),
        ("dns.nsid", o.nsid != n.nsid),
        ("dns.transfer_allow", o.transfer_allow != n.transfer_allow),
        ("dns.notify", o.notify != n.notify),
        ("dns.dns_sd_networks", o.dns_sd_networks != n.dns_sd_networks),
        ("dns.consul_names", o.consul_names != n.consul_names),
        ("dns.upstreams", old.forward.upstreams != new.forward.upstreams),
        ("dns.upstream_timeout", old.forward.timeout != new.forward.timeout),
        ("dns.recursion_allow", old.forward.recursion_allow != new.forward.recursion_allow),
        ("log.level", old.log.level != new.log.level),
    ];
    let restart: [(&'static str, bool); 17] = [
        ("dns.listen", o.listen != n.listen),
        ("dns.domain", o.domain != n.domain),
        ("dns.advertise", o.advertise != n.advertise),
        ("dns.ttl, answer_limit, only_passing or when_none_healthy", o.defaults != n.defaults),
        ("dns.negative_ttl", o.negative_ttl != n.negative_ttl),
        ("dns.max_slow_queries, tcp_* or rrl", o.limits != n.limits),
        ("zones.dir", old.zones_dir != new.zones_dir),
        ("zones.max_file_bytes or max_instances_per_file", old.zone_limits != new.zone_limits),
        ("store.data_dir", old.data_dir != new.data_dir),
        ("store (cluster mode)", old.cluster != new.cluster),
        ("http.listen", old.http_listen != new.http_listen),
        ("http.max_*", old.http_limits != new.http_limits),
        // Which tokens and rules; what a secret file holds is read again whenever it changes.
        ("http.token, reads_need_token or acl", old.acl != new.acl),
        // Which files; what they hold is read again whenever it changes.
        ("http.tls_cert, tls_key or tls_client_ca", old.http_tls != new.http_tls),
        ("health", old.health != new.health),
        ("log.format", old.log.format != new.log.format),
        ("shutdown", old.shutdown != new.shutdown),
    ];
    Report {
        applied: live.into_iter().filter(|(_, changed)| *changed).map(|(k, _)| k).collect(),
        need_restart: restart.into_iter().filter(|(_, changed)| *changed).map(|(k, _)| k).collect(),
    }
}

/// Puts back into `new` the settings of `in_force` that only a restart changes, so that the
/// configuration kept as in force says what the server really runs with.
fn keep_restart_settings(new: &mut Config, in_force: &Config) {
    let (n, o) = (&mut new.dns, &in_force.dns);
    n.listen.clone_from(&o.listen);
    n.listen_is_default = o.listen_is_default;
    n.domain.clone_from(&o.domain);
    n.advertise = o.advertise;
    n.defaults = o.defaults;
    n.negative_ttl = o.negative_ttl;
    n.limits.clone_from(&o.limits);
    new.zones_dir.clone_from(&in_force.zones_dir);
    new.zone_limits = in_force.zone_limits;
    new.data_dir.clone_from(&in_force.data_dir);
    new.cluster.clone_from(&in_force.cluster);
    new.http_listen = in_force.http_listen;
    new.http_limits = in_force.http_limits;
    new.acl.clone_from(&in_force.acl);
    new.http_tls.clone_from(&in_force.http_tls);
    new.health = in_force.health;
    new.log.format = in_force.log.format;
    new.shutdown = in_force.shutdown;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn config(toml: &str) -> Config {
        RawConfig::from_toml(std::path::Path::new("t.toml"), toml).unwrap().validate().unwrap()
    }

    #[test]
    fn settings_sort_into_applied_now_and_at_the_next_restart() {
        let base = config("");
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("", &[], &[]),
            ("[dns]\nnsid = \"a\"\nudp_max_payload = 4096\n", &["dns.udp_max_payload", "dns.nsid"], &[]),
            ("[[regions.client]]\ncidr = \"10.0.0.0/8\"\nregion = \"eu\"\n", &["regions.client"], &[]),
            (
                "[dns]\nupstreams = [\"192.0.2.53\"]\nrecursion_allow = [\"10.0.0.0/8\"]\n",
                &["dns.upstreams", "dns.recursion_allow"],
                &[],
            ),
            (
                "[dns]\ntransfer_allow = [\"127.0.0.1\"]\nnotify = [\"127.0.0.1:5300\"]\n",
                &["dns.transfer_allow", "dns.notify"],
                &[],
            ),
            ("[log]\nlevel = \"debug\"\nformat = \"json\"\n", &["log.level"], &["log.format"]),
            (
                "[dns]\nttl = \"30s\"\ndomain = \"consul\"\n",
                &[],
                &["dns.domain", "dns.ttl, answer_limit, only_passing or when_none_healthy"],
            ),
            ("[health]\nrise = 5\n\n[shutdown]\ngrace = \"9s\"\n", &[], &["health", "shutdown"]),
        ];
        for (toml, applied, restart) in cases {
            let report = compare(&base, &config(toml));
            assert_eq!(report.applied, *applied, "{toml}");
            assert_eq!(report.need_restart, *restart, "{toml}");
        }
    }

    #[test]
    fn what_waits_for_a_restart_stays_as_it_runs() {
        let (running, mut new) = (config(""), config("[dns]\nnsid = \"a\"\nttl = \"30s\"\n"));
        keep_restart_settings(&mut new, &running);
        assert_eq!(new.dns.defaults, running.dns.defaults, "the TTL in force is still the old one");
        assert_eq!(new.dns.nsid.as_deref(), Some(&b"a"[..]));
        assert!(compare(&running, &new).need_restart.is_empty());
    }
}
