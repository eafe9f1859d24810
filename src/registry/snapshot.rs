//! Immutable views of the registry, built by the writer after each batch of changes and read by
//! DNS and the API without locks. Everything a query needs is precomputed here: which instances
//! each DNS name covers, which of them are answerable, in what rotation, with what TTL. The only
//! thing a query changes is a rotation counter, an atomic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::model::{Address, Health, Instance, ServicePolicy, Status, WhenNoneHealthy};
use super::state::{Entry, State};
use crate::zones::ZoneError;

/// Global answer policy, from `[dns]`; services may override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub ttl: Duration,
    pub answer_limit: u32,
    pub only_passing: bool,
    pub when_none_healthy: WhenNoneHealthy,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ttl: Duration::from_secs(5),
            answer_limit: 0,
            only_passing: false,
            when_none_healthy: WhenNoneHealthy::Empty,
        }
    }
}

/// One instance as readers see it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub instance: Arc<Instance>,
    pub health: Arc<Health>,
    /// The aggregate of `health`, precomputed.
    pub status: Status,
}

/// The registry at one version.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by id (case-insensitively); `AnswerSet`s index into this.
    pub instances: Vec<InstanceView>,
    by_id: HashMap<String, u32>,
    /// Check id → (instance index, check index).
    checks: HashMap<String, (u32, u32)>,
    /// Lowercase service name → instance indexes, in id order.
    services: BTreeMap<String, Vec<u32>>,
    /// Instance address → instance indexes, for reverse (PTR) lookups.
    by_address: HashMap<IpAddr, Vec<u32>>,
    /// Lowercase host name → addresses, for instances registered with a host name.
    resolved: HashMap<String, Arc<[IpAddr]>>,
    /// Keyed by lowercase service name; the entries themselves live in `entries`.
    names: HashMap<String, ServiceNames>,
    /// Every DNS name's entry; `ServiceNames` and `name_index` refer to them by position.
    entries: Vec<NameEntry>,
    /// Lowercase regions and tags that some instance carries: `<region>.D` and `_<tag>.service.D`
    /// exist as empty non-terminals.
    regions: HashSet<String>,
    tags: HashSet<String>,
    pub zone_errors: Vec<ZoneError>,
    /// When a zone file was last read, in milliseconds since the Unix epoch; 0 = never.
    pub zone_reloaded_ms: u64,
}

/// The DNS names of one service: `<name>`, `<tag>.<name>`, each with or without a region.
#[derive(Debug)]
struct ServiceNames {
    all: RegionSplit,
    by_tag: HashMap<String, RegionSplit>,
}

#[derive(Debug)]
struct RegionSplit {
    any: u32,
    by_region: HashMap<String, u32>,
}

/// One DNS name of a service, for those who index every name (the DNS fast path).
#[derive(Debug, Clone, Copy)]
pub struct NameForm<'a> {
    pub service: &'a str,
    pub tag: Option<&'a str>,
    pub region: Option<&'a str>,
    /// Position for `Snapshot::entry`.
    pub index: u32,
}

/// What one DNS name answers.
#[derive(Debug)]
pub struct NameEntry {
    /// TTL in seconds.
    pub ttl: u32,
    /// Most A/AAAA records per answer; 0 = all.
    pub answer_limit: u32,
    /// Answerable instances with an IPv4 address, an IPv6 address, and any address.
    pub v4: AnswerSet,
    pub v6: AnswerSet,
    pub srv: AnswerSet,
    /// SRV asked as `_<name>._<tag>`: the same members as `srv`, rotating on their own.
    pub srv_rfc2782: AnswerSet,
    pub txt: AnswerSet,
}

/// The instances one (name, type) answers, and where its rotation stands.
#[derive(Debug)]
pub struct AnswerSet {
    /// Indexes into `Snapshot::instances`.
    pub members: Vec<u32>,
    schedule: Schedule,
    /// Queries answered so far; carried over from the previous snapshot so that a registry
    /// change does not restart everyone's rotation at the first instance.
    counter: AtomicU64,
}

/// Which member comes first for the k-th query.
#[derive(Debug)]
enum Schedule {
    /// Equal weights: member k mod n.
    Uniform,
    /// Smooth weighted round-robin, precomputed over one period of Σw queries.
    Weighted(Vec<u32>),
}

/// The largest weighted period kept in memory; larger weight sums are scaled down to it.
const MAX_PERIOD: u64 = 1 << 16;

impl AnswerSet {
    fn new(members: Vec<u32>, weights: impl Iterator<Item = u32>, carried: u64) -> Self {
        let weights: Vec<u64> = weights.map(|w| u64::from(w.max(1))).collect();
        let schedule = if weights.windows(2).all(|w| w[0] == w[1]) {
            Schedule::Uniform
        } else {
            Schedule::Weighted(smooth_weighted_schedule(&weights))
        };
        AnswerSet { members, schedule, counter: AtomicU64::new(carried) }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in this query's rotated order: the scheduled first member, then the others in
    /// their cyclic order after it. Each call advances the rotation by one.
    pub fn rotate(&self) -> impl Iterator<Item = u32> + '_ {
        let k = if self.members.is_empty() { 0 } else { self.counter.fetch_add(1, Ordering::Relaxed) };
        self.order(k)
    }

    /// Members in the order the next query would get, without advancing the rotation: for the
    /// status page, which must show the answer without changing what clients receive.
    pub fn peek(&self) -> impl Iterator<Item = u32> + '_ {
        self.order(self.position())
    }

    /// Members in the order of the k-th query.
    fn order(&self, k: u64) -> impl Iterator<Item = u32> + '_ {
        let n = self.members.len();
        let first = match &self.schedule {
            _ if n == 0 => 0,
            Schedule::Uniform => (k % n as u64) as usize,
            Schedule::Weighted(s) => s[(k % s.len() as u64) as usize] as usize,
        };
        (0..n).map(move |i| self.members[(first + i) % n])
    }

    fn position(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }
}

/// One period of smooth weighted round-robin (nginx's): each step every member gains its weight,
/// the richest goes first and pays the total. Over Σw steps member i goes first exactly wᵢ times,
/// interleaved rather than in bursts.
fn smooth_weighted_schedule(weights: &[u64]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let mut total: u64 = w.iter().sum();
    if total > MAX_PERIOD {
        w = w.iter().map(|x| (x * MAX_PERIOD / total).max(1)).collect();
        total = w.iter().sum();
    }
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, c) in current.iter_mut().enumerate() {
            *c += w[i] as i64;
        }
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        out.push(best as u32);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Returns true if an instance with this status is answered under the given policy.
fn is_healthy(status: Status, only_passing: bool) -> bool {
    match status {
        Status::Passing => true,
        Status::Warning => !only_passing,
        Status::Critical | Status::Maintenance => false,
    }
}

/// A service's effective DNS settings: its declarations merged conservatively, then defaults.
#[derive(Debug, Clone, Copy)]
struct Effective {
    ttl: u32,
    answer_limit: u32,
    only_passing: bool,
    when_none_healthy: WhenNoneHealthy,
}

fn merge_policies<'a>(policies: impl Iterator<Item = &'a ServicePolicy>, d: &Defaults) -> Effective {
    let (mut ttl, mut limit, mut only, mut none): (Option<Duration>, Option<u32>, Option<bool>, _) =
        (None, None, None, None);
    for p in policies {
        ttl = match (ttl, p.ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // 0 means "no limit", so the smallest positive limit wins over it.
        limit = match (limit, p.answer_limit) {
            (Some(a), Some(b)) if a > 0 && b > 0 => Some(a.min(b)),
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        only = match (only, p.only_passing) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        none = match (none, p.when_none_healthy) {
            (Some(WhenNoneHealthy::All), _) | (_, Some(WhenNoneHealthy::All)) => Some(WhenNoneHealthy::All),
            (a, b) => a.or(b),
        };
    }
    Effective {
        ttl: ttl.unwrap_or(d.ttl).as_secs().min(u64::from(u32::MAX)) as u32,
        answer_limit: limit.unwrap_or(d.answer_limit),
        only_passing: only.unwrap_or(d.only_passing),
        when_none_healthy: none.unwrap_or(d.when_none_healthy),
    }
}

impl Snapshot {
    /// Builds the view of `state`, carrying rotation positions over from `previous`.
    pub fn build(state: &State, defaults: &Defaults, previous: Option<&Snapshot>) -> Snapshot {
        let instances: Vec<InstanceView> = state
            .entries
            .values()
            .map(|Entry { instance, health }| InstanceView {
                instance: instance.clone(),
                health: health.clone(),
                status: health.status(),
            })
            .collect();
        let by_id = state.entries.keys().enumerate().map(|(i, k)| (k.clone(), i as u32)).collect();

        // Group instance indexes by service, tag and region (all lowercase).
        let mut services: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut regions = HashSet::new();
        let mut tags = HashSet::new();
        for (i, v) in instances.iter().enumerate() {
            services.entry(v.instance.service.to_ascii_lowercase()).or_default().push(i as u32);
            if let Some(r) = &v.instance.region {
                regions.insert(r.to_ascii_lowercase());
            }
            tags.extend(v.instance.tags.iter().map(|t| t.to_ascii_lowercase()));
        }

        let mut by_address: HashMap<IpAddr, Vec<u32>> = HashMap::new();
        for (i, v) in instances.iter().enumerate() {
            if let Address::Ip(ip) = v.instance.address {
                by_address.entry(ip).or_default().push(i as u32);
            }
        }
        let checks = instances
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                v.instance.checks.iter().enumerate().map(move |(c, spec)| (spec.id.clone(), (i as u32, c as u32)))
            })
            .collect();
        let mut names = HashMap::with_capacity(services.len());
        let mut entries = Vec::new();
        for (service, members) in &services {
            let eff = merge_policies(members.iter().map(|&i| &instances[i as usize].instance.policy), defaults);
            let old = previous.and_then(|p| Some((p, p.names.get(service)?)));
            let mut build = |subset: &[u32], tag: Option<&str>, region: Option<&str>| {
                let carried = old.and_then(|(p, o)| o.lookup(tag, region).map(|i| &p.entries[i as usize]));
                entries.push(NameEntry::build(&instances, &state.resolved, subset, &eff, carried));
                (entries.len() - 1) as u32
            };
            let mut tag_members: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for &i in members {
                for t in &instances[i as usize].instance.tags {
                    let list = tag_members.entry(t.to_ascii_lowercase()).or_default();
                    if list.last() != Some(&i) {
                        list.push(i);
                    }
                }
            }
            let mut split = |subset: &[u32], tag: Option<&str>| RegionSplit {
                any: build(subset, tag, None),
                by_region: group_by_region(&instances, subset)
                    .into_iter()
                    .map(|(r, sub)| {
                        let e = build(&sub, tag, Some(&r));
                        (r, e)
                    })
                    .collect(),
            };
            let all = split(members, None);
            let by_tag = tag_members.iter().map(|(t, sub)| (t.clone(), split(sub, Some(t)))).collect();
            names.insert(service.clone(), ServiceNames { all, by_tag });
        }

        Snapshot {
            version: state.version,
            instances,
            by_id,
            checks,
            services,
            by_address,
            resolved: state.resolved.clone(),
            names,
            entries,
            regions,
            tags,
            zone_errors: state.zone_errors().cloned().collect(),
            zone_reloaded_ms: state.zone_reloaded_ms,
        }
    }

    /// The entry for `<tag>.<service>.service[.<region>]`; arguments must be lowercase.
    pub fn name(&self, service: &str, tag: Option<&str>, region: Option<&str>) -> Option<&NameEntry> {
        self.names.get(service)?.lookup(tag, region).map(|i| &self.entries[i as usize])
    }

    /// Every name entry, by position.
    pub fn entries(&self) -> &[NameEntry] {
        &self.entries
    }

    /// The entry at a position given by `name_forms`.
    pub fn entry(&self, index: u32) -> &NameEntry {
        &self.entries[index as usize]
    }

    /// Every service name form that exists, with its entry's position.
    pub fn name_forms(&self) -> impl Iterator<Item = NameForm<'_>> {
        self.names.iter().flat_map(|(service, names)| {
            let splits =
                std::iter::once((None, &names.all)).chain(names.by_tag.iter().map(|(t, s)| (Some(t.as_str()), s)));
            splits.flat_map(move |(tag, split)| {
                let any = NameForm { service, tag, region: None, index: split.any };
                std::iter::once(any).chain(split.by_region.iter().map(move |(r, &index)| NameForm {
                    service,
                    tag,
                    region: Some(r),
                    index,
                }))
            })
        })
    }

    /// Every region and tag some instance carries (lowercase).
    pub fn regions_and_tags(&self) -> (impl Iterator<Item = &str>, impl Iterator<Item = &str>) {
        (self.regions.iter().map(String::as_str), self.tags.iter().map(String::as_str))
    }

    /// The addresses an instance is reachable at: its IP, or its host name's as last resolved
    /// (none before the first answer).
    pub fn addresses<'a>(&'a self, address: &'a Address) -> impl Iterator<Item = IpAddr> + 'a {
        let (ip, host) = match address {
            Address::Ip(ip) => (Some(*ip), None),
            Address::Host(h) => (None, self.resolved.get(&h.to_ascii_lowercase())),
        };
        ip.into_iter().chain(host.into_iter().flat_map(|a| a.iter().copied()))
    }

    /// The instances registered at this address, in id order.
    pub fn at_address(&self, ip: IpAddr) -> impl Iterator<Item = &InstanceView> {
        self.by_address.get(&ip).into_iter().flatten().map(|&i| &self.instances[i as usize])
    }

    /// The instance with this id (lowercase).
    pub fn instance(&self, id: &str) -> Option<&InstanceView> {
        self.by_id.get(id).map(|&i| &self.instances[i as usize])
    }

    /// The instances of a service (name matched case-insensitively), in id order.
    pub fn service(&self, name: &str) -> impl Iterator<Item = &InstanceView> {
        self.services.get(&name.to_ascii_lowercase()).into_iter().flatten().map(|&i| &self.instances[i as usize])
    }

    /// Every service (lowercase name) with its instances, in name order.
    pub fn services(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &InstanceView>)> {
        self.services.iter().map(|(n, idx)| (n.as_str(), idx.iter().map(|&i| &self.instances[i as usize])))
    }

    /// A check by id: its instance and its index in `instance.checks` / `health.checks`.
    pub fn check(&self, check_id: &str) -> Option<(&InstanceView, usize)> {
        self.checks.get(check_id).map(|&(i, c)| (&self.instances[i as usize], c as usize))
    }

    /// Returns true if some instance carries this region (lowercase).
    pub fn has_region(&self, region: &str) -> bool {
        self.regions.contains(region)
    }

    /// Returns true if some instance carries this tag (lowercase).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }

    /// Returns true if no instance is registered.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}

impl ServiceNames {
    fn lookup(&self, tag: Option<&str>, region: Option<&str>) -> Option<u32> {
        let split = match tag {
            None => &self.all,
            Some(t) => self.by_tag.get(t)?,
        };
        match region {
            None => Some(split.any),
            Some(r) => split.by_region.get(r).copied(),
        }
    }
}

fn group_by_region(instances: &[InstanceView], subset: &[u32]) -> BTreeMap<String, Vec<u32>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for &i in subset {
        if let Some(r) = &instances[i as usize].instance.region {
            out.entry(r.to_ascii_lowercase()).or_default().push(i);
        }
    }
    out
}

impl NameEntry {
    fn build(
        instances: &[InstanceView],
        resolved: &HashMap<String, Arc<[IpAddr]>>,
        subset: &[u32],
        eff: &Effective,
        carried: Option<&NameEntry>,
    ) -> NameEntry {
        let mut answerable: Vec<u32> =
            subset.iter().copied().filter(|&i| is_healthy(instances[i as usize].status, eff.only_passing)).collect();
        if answerable.is_empty() && eff.when_none_healthy == WhenNoneHealthy::All {
            // Fail open, but never to an instance an operator put into maintenance.
            answerable =
                subset.iter().copied().filter(|&i| instances[i as usize].status != Status::Maintenance).collect();
        }
        let family = |want_v4: bool| -> Vec<u32> {
            answerable
                .iter()
                .copied()
                .filter(|&i| match &instances[i as usize].instance.address {
                    Address::Ip(IpAddr::V4(_)) => want_v4,
                    Address::Ip(IpAddr::V6(_)) => !want_v4,
                    Address::Host(h) => resolved
                        .get(&h.to_ascii_lowercase())
                        .is_some_and(|a| a.iter().any(|ip| ip.is_ipv4() == want_v4)),
                })
                .collect()
        };
        let set = |members: Vec<u32>, pick: fn(&NameEntry) -> &AnswerSet| {
            let pos = carried.map(|c| pick(c).position()).unwrap_or(0);
            let weights: Vec<u32> = members.iter().map(|&i| instances[i as usize].instance.weight).collect();
            AnswerSet::new(members, weights.into_iter(), pos)
        };
        NameEntry {
            ttl: eff.ttl,
            answer_limit: eff.answer_limit,
            v4: set(family(true), |e| &e.v4),
            v6: set(family(false), |e| &e.v6),
            srv: set(answerable.clone(), |e| &e.srv),
            srv_rfc2782: set(answerable.clone(), |e| &e.srv_rfc2782),
            txt: set(answerable, |e| &e.txt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firsts(weights: &[u32], queries: usize) -> Vec<u32> {
        let set = AnswerSet::new((0..weights.len() as u32).collect(), weights.iter().copied(), 0);
        (0..queries).map(|_| set.rotate().next().unwrap()).collect()
    }

    #[test]
    fn equal_weights_put_each_member_first_once_per_round() {
        assert_eq!(firsts(&[1, 1, 1], 6), vec![0, 1, 2, 0, 1, 2]);
        let set = AnswerSet::new(vec![7, 8, 9], [2, 2, 2].into_iter(), 0);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![8, 9, 7]);
    }

    #[test]
    fn weights_give_exact_shares_spread_out() {
        let order = firsts(&[5, 1, 1], 7);
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0], "nginx's smooth sequence for 5,1,1");
        let order = firsts(&[3, 1], 8);
        for (m, want) in [(0, 6), (1, 2)] {
            assert_eq!(order.iter().filter(|&&x| x == m).count(), want);
        }
        // Common factors do not lengthen the period.
        assert_eq!(firsts(&[200, 100], 3), vec![0, 1, 0]);
    }

    #[test]
    fn peek_shows_the_next_order_without_advancing() {
        let set = AnswerSet::new(vec![7, 8, 9], [1, 1, 1].into_iter(), 0);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9]);
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![7, 8, 9], "peeking twice changes nothing");
        assert_eq!(set.rotate().collect::<Vec<_>>(), vec![7, 8, 9], "the next query gets what peek showed");
        assert_eq!(set.peek().collect::<Vec<_>>(), vec![8, 9, 7]);
        let weighted = AnswerSet::new(vec![0, 1, 2], [5, 1, 1].into_iter(), 0);
        for _ in 0..9 {
            let seen: Vec<u32> = weighted.peek().collect();
            assert_eq!(weighted.rotate().collect::<Vec<_>>(), seen);
        }
        assert!(AnswerSet::new(vec![], std::iter::empty(), 0).peek().next().is_none());
    }

    #[test]
    fn huge_weight_sums_are_scaled_not_refused() {
        let s = smooth_weighted_schedule(&[65535, 65535, 1, 3]);
        assert!(s.len() as u64 <= MAX_PERIOD + 4);
        assert!(s.contains(&2) && s.contains(&3));
    }
}
