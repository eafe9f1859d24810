//! One service as readers see it (`ServiceView`): its instances in id order and every DNS name
//! it has (`<name>`, `<tag>.<name>`, each with or without a region), each with what it answers
//! (`NameEntry`: which instances, in what rotation, with what TTL), all precomputed when the
//! service changes. Its settings are its declarations merged with `[dns]`'s (`Defaults`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::rotation::{AnswerSet, Schedule};
use crate::model::{Address, Health, Instance, ServicePolicy, Status, WhenNoneHealthy};

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
    /// The id's key (`id_key`: lowercase).
    pub key: Arc<str>,
    /// The service's name, lowercase.
    pub service: Arc<str>,
    pub instance: Arc<Instance>,
    pub health: Arc<Health>,
    /// The aggregate of `health`, precomputed.
    pub status: Status,
}

impl InstanceView {
    /// Returns true if both are one version of one instance: what it declares, its health and
    /// its status (which its node's health gates) are the same. One view in both places (most
    /// members, after a write to a few instances of a service) is settled by its address,
    /// without reading it.
    pub fn is_same(&self, other: &InstanceView) -> bool {
        std::ptr::eq(self, other)
            || (Arc::ptr_eq(&self.instance, &other.instance)
                && Arc::ptr_eq(&self.health, &other.health)
                && self.status == other.status)
    }
}

/// Instances and checks by status (indexed by `Status as usize`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub instances: [u64; 4],
    pub checks: [u64; 4],
}

impl Counts {
    /// Adds (`sign` 1) or takes away (-1) one instance and its checks.
    pub(super) fn tally(&mut self, v: &InstanceView, sign: i64) {
        let apply = |a: &mut u64| *a = (*a as i64 + sign) as u64;
        apply(&mut self.instances[v.status as usize]);
        for c in &v.health.checks {
            apply(&mut self.checks[c.status as usize]);
        }
    }

    pub(super) fn add(&mut self, other: &Counts, sign: i64) {
        let apply = |a: &mut u64, b: u64| *a = (*a as i64 + sign * b as i64) as u64;
        for i in 0..4 {
            apply(&mut self.instances[i], other.instances[i]);
            apply(&mut self.checks[i], other.checks[i]);
        }
    }
}

/// One service: its instances and every DNS name it has, with their answers.
#[derive(Debug)]
pub struct ServiceView {
    /// The name, lowercase.
    pub key: Arc<str>,
    /// In id order; `AnswerSet` members index into this.
    pub instances: Vec<Arc<InstanceView>>,
    pub(super) names: ServiceNames,
    /// Every DNS name's entry; `names` refers to them by position.
    pub(super) entries: Vec<NameEntry>,
    /// The host names its instances are registered with: lowercase, distinct.
    pub(super) hosts: Vec<Arc<str>>,
    pub(super) counts: Counts,
    /// What its settings were made from, and what they came to.
    pub(super) defaults: Defaults,
    pub(super) eff: Effective,
}

/// The DNS names of one service: `<name>`, `<tag>.<name>`, each with or without a region.
#[derive(Debug, Clone)]
pub(super) struct ServiceNames {
    all: RegionSplit,
    by_tag: SmallMap<RegionSplit>,
}

#[derive(Debug, Clone)]
struct RegionSplit {
    any: u32,
    by_region: SmallMap<u32>,
}

/// Walks two versions of a service's members (both in id order) side by side: for each
/// instance, its index in each (`None` where it is not there) and whether it is unchanged
/// (`InstanceView::is_same`, compared by pointer, so keys are compared only where they differ).
/// `step` returns false to stop.
pub(super) fn walk_members(
    a: &[Arc<InstanceView>],
    b: &[Arc<InstanceView>],
    mut step: impl FnMut(Option<usize>, Option<usize>, bool) -> bool,
) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (x, y, same) = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.is_same(y) => (Some(i), Some(j), true),
            (Some(x), Some(y)) if x.key == y.key => (Some(i), Some(j), false),
            (Some(x), Some(y)) if x.key < y.key => (Some(i), None, false),
            (Some(_), None) => (Some(i), None, false),
            _ => (None, Some(j), false),
        };
        i += usize::from(x.is_some());
        j += usize::from(y.is_some());
        if !step(x, y, same) {
            return;
        }
    }
}

/// A map sorted by key, for the few tags and regions of one service: a `BTreeMap` allocates
/// room for eleven entries even for one, and there is one per service.
#[derive(Debug, Clone)]
struct SmallMap<V>(Box<[(Box<str>, V)]>);

impl<V> SmallMap<V> {
    fn get(&self, key: &str) -> Option<&V> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &self.0[i].1)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }
}

impl<V> FromIterator<(String, V)> for SmallMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        let mut pairs: Vec<(Box<str>, V)> = iter.into_iter().map(|(k, v)| (k.into_boxed_str(), v)).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        SmallMap(pairs.into())
    }
}

/// One DNS name of a service, for those who index every name (the DNS fast path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameForm<'a> {
    pub service: &'a str,
    pub tag: Option<&'a str>,
    pub region: Option<&'a str>,
    /// Position for `ServiceView::entry`.
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
    /// DNS-SD browsing (PTR on `_<name>._tcp`, `_<tag>._sub._<name>._tcp`): the same members as
    /// `srv`, rotating on their own.
    pub ptr: AnswerSet,
    /// How many instances the name covers, answerable or not.
    pub(super) size: u32,
}

/// Returns true if an instance with this status is answered under the given policy.
pub(super) fn is_healthy(status: Status, only_passing: bool) -> bool {
    match status {
        Status::Passing => true,
        Status::Warning => !only_passing,
        Status::Critical | Status::Maintenance => false,
    }
}

/// A service's effective DNS settings: its declarations merged conservatively, then defaults.
#[derive(Debug, Clone, Copy)]
pub(super) struct Effective {
    ttl: u32,
    answer_limit: u32,
    pub(super) only_passing: bool,
    when_none_healthy: WhenNoneHealthy,
}

fn merge_policies<'a>(policies: impl Iterator<Item = &'a ServicePolicy>, d: &Defaults) -> Effective {
    let p = policies.fold(ServicePolicy::default(), |a, b| a.merge(*b));
    Effective {
        ttl: p.ttl.unwrap_or(d.ttl).as_secs().min(u64::from(u32::MAX)) as u32,
        answer_limit: p.answer_limit.unwrap_or(d.answer_limit),
        only_passing: p.only_passing.unwrap_or(d.only_passing),
        when_none_healthy: p.when_none_healthy.unwrap_or(d.when_none_healthy),
    }
}

impl ServiceView {
    /// Builds the view of one service from its instances (in id order), carrying rotation
    /// positions over from its previous view.
    pub(super) fn build(
        key: Arc<str>,
        instances: Vec<Arc<InstanceView>>,
        resolved: &HashMap<String, Arc<[IpAddr]>>,
        defaults: &Defaults,
        previous: Option<&ServiceView>,
    ) -> ServiceView {
        let eff = merge_policies(instances.iter().map(|v| &*v.instance.policy), defaults);
        let members: Vec<u32> = (0..instances.len() as u32).collect();
        let mut entries = Vec::new();
        let mut build = |subset: &[u32], tag: Option<&str>, region: Option<&str>| {
            let carried = previous.and_then(|p| p.name(tag, region));
            entries.push(NameEntry::build(&instances, resolved, subset, &eff, carried));
            (entries.len() - 1) as u32
        };
        let mut tag_members: BTreeMap<Cow<str>, Vec<u32>> = BTreeMap::new();
        for (i, v) in instances.iter().enumerate() {
            for t in &v.instance.tags {
                let list = tag_members.entry(lowercase(t)).or_default();
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            }
        }
        let mut split = |subset: &[u32], tag: Option<&str>| RegionSplit {
            any: build(subset, tag, None),
            by_region: group_by_region(&instances, subset)
                .into_iter()
                .map(|(r, sub)| {
                    let e = build(&sub, tag, Some(&r));
                    (r.into_owned(), e)
                })
                .collect(),
        };
        let all = split(&members, None);
        let by_tag = tag_members.iter().map(|(t, sub)| (t.to_string(), split(sub, Some(t)))).collect();
        entries.shrink_to_fit();

        let mut counts = Counts::default();
        let mut hosts = BTreeSet::new();
        for v in &instances {
            counts.tally(v, 1);
            if let Address::Host(h) = &v.instance.address {
                hosts.insert(lowercase(h));
            }
        }
        let hosts = hosts.into_iter().map(|h| Arc::from(&*h)).collect();
        ServiceView {
            key,
            instances,
            names: ServiceNames { all, by_tag },
            entries,
            hosts,
            counts,
            defaults: *defaults,
            eff,
        }
    }

    /// The entry for `<tag>.<service>.service[.<region>]`; arguments must be lowercase.
    pub fn name(&self, tag: Option<&str>, region: Option<&str>) -> Option<&NameEntry> {
        self.names.lookup(tag, region).map(|i| &self.entries[i as usize])
    }

    /// The entry at a position given by `name_forms`.
    pub fn entry(&self, index: u32) -> &NameEntry {
        &self.entries[index as usize]
    }

    /// Every name entry, by position.
    pub fn entries(&self) -> &[NameEntry] {
        &self.entries
    }

    /// An instance by its index in `instances` (an `AnswerSet` member).
    pub fn instance(&self, index: u32) -> &InstanceView {
        &self.instances[index as usize]
    }

    /// The service's TTL (its names' entries all share it), which its instances' own names
    /// answer with too.
    pub fn ttl(&self) -> u32 {
        self.entries[self.names.all.any as usize].ttl
    }

    /// Returns true if DNS answers for some instance of the service now (a healthy one, or any
    /// when it fails open): the service is then listed among the DNS-SD service types.
    pub fn is_answered(&self) -> bool {
        !self.entries[self.names.all.any as usize].srv.is_empty()
    }

    /// Every name form of the service, with its entry's position.
    pub fn name_forms(&self) -> impl Iterator<Item = NameForm<'_>> {
        let service = &*self.key;
        let splits =
            std::iter::once((None, &self.names.all)).chain(self.names.by_tag.iter().map(|(t, s)| (Some(t), s)));
        splits.flat_map(move |(tag, split)| {
            let any = NameForm { service, tag, region: None, index: split.any };
            std::iter::once(any).chain(split.by_region.iter().map(move |(r, &index)| NameForm {
                service,
                tag,
                region: Some(r),
                index,
            }))
        })
    }

    /// The instances that differ between two versions of a service (`None`: it did not exist),
    /// as (before, after), in id order. Members the versions share are passed over by pointer,
    /// so this costs a comparison of keys only where they differ.
    pub fn changed_instances<'a>(
        old: Option<&'a ServiceView>,
        new: Option<&'a ServiceView>,
    ) -> Vec<(Option<&'a InstanceView>, Option<&'a InstanceView>)> {
        let members = |v: Option<&'a ServiceView>| v.map_or(&[][..], |v| &v.instances[..]);
        let (a, b) = (members(old), members(new));
        let mut out = Vec::new();
        walk_members(a, b, |i, j, same| {
            if !same {
                out.push((i.map(|i| &*a[i]), j.map(|j| &*b[j])));
            }
            true
        });
        out
    }

    /// The regions and tags the service's instances carry (lowercase): those its names split by.
    pub fn regions_and_tags(&self) -> (impl Iterator<Item = &str>, impl Iterator<Item = &str>) {
        (self.names.all.by_region.iter().map(|(r, _)| r), self.names.by_tag.iter().map(|(t, _)| t))
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

/// `text` in lowercase, copied only when it is not already (tags, regions and host names
/// usually are, and a service's view looks at each of its instances' on every change).
pub(super) fn lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

fn group_by_region<'a>(instances: &'a [Arc<InstanceView>], subset: &[u32]) -> BTreeMap<Cow<'a, str>, Vec<u32>> {
    let mut out: BTreeMap<Cow<str>, Vec<u32>> = BTreeMap::new();
    for &i in subset {
        if let Some(r) = &instances[i as usize].instance.region {
            out.entry(lowercase(r)).or_default().push(i);
        }
    }
    out
}

impl NameEntry {
    fn build(
        instances: &[Arc<InstanceView>],
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
        let schedule = |members: &[u32]| Schedule::new(members.iter().map(|&i| instances[i as usize].instance.weight));
        let all_schedule = schedule(&answerable);
        let all = (Arc::<[u32]>::from(answerable), all_schedule);
        // A family with every answerable instance (the usual case) shares their list.
        let family = |want_v4: bool| -> (Arc<[u32]>, Schedule) {
            let has = |i: &u32| match &instances[*i as usize].instance.address {
                Address::Ip(IpAddr::V4(_)) => want_v4,
                Address::Ip(IpAddr::V6(_)) => !want_v4,
                Address::Host(h) => {
                    resolved.get(&*lowercase(h)).is_some_and(|a| a.iter().any(|ip| ip.is_ipv4() == want_v4))
                }
            };
            if all.0.iter().all(has) {
                return all.clone();
            }
            let members: Vec<u32> = all.0.iter().copied().filter(has).collect();
            let s = schedule(&members);
            (members.into(), s)
        };
        let set = |(members, schedule): (Arc<[u32]>, Schedule), pick: fn(&NameEntry) -> &AnswerSet| {
            let pos = carried.map(|c| pick(c).position()).unwrap_or(0);
            AnswerSet::new(members, schedule, pos)
        };
        NameEntry {
            ttl: eff.ttl,
            answer_limit: eff.answer_limit,
            v4: set(family(true), |e| &e.v4),
            v6: set(family(false), |e| &e.v6),
            srv: set(all.clone(), |e| &e.srv),
            srv_rfc2782: set(all.clone(), |e| &e.srv_rfc2782),
            ptr: set(all.clone(), |e| &e.ptr),
            txt: set(all, |e| &e.txt),
            size: subset.len() as u32,
        }
    }
}
