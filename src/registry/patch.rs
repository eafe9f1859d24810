//! A service's next view made from its previous one when a write changed a few of its
//! instances. Building a view walks every instance's tags, region, policy, status, weight and
//! address; for a service of 3,000 instances that was most of what one write cost a replica.
//! A patch looks only at the instances that changed and moves the others' member indexes. It
//! applies when the change leaves the service's settings and names as they were (see `patch`);
//! otherwise the view is built in full, which gives the same result.

use std::sync::Arc;

use super::rotation::{AnswerSet, Schedule};
use super::service::{Defaults, InstanceView, NameEntry, ServiceView, is_healthy, lowercase, walk_members};
use crate::model::{Address, ServicePolicy};

/// A service's members after a change: `old`'s (in id order) without the `gone` keys (in id
/// order, each among them), each copied through `keep`, and `entering` (in id order) put in
/// their places. Binary searches find where each change goes and the runs between are copied
/// whole, so a change to one instance of a large service compares a few keys, not all of them.
pub(super) fn merge_members<'a>(
    old: &[Arc<InstanceView>],
    gone: impl Iterator<Item = &'a str>,
    entering: impl Iterator<Item = Arc<InstanceView>>,
    keep: impl Fn(&Arc<InstanceView>) -> Arc<InstanceView>,
) -> Vec<Arc<InstanceView>> {
    let position = |from: usize, key: &str| from + old[from..].partition_point(|v| *v.key < *key);
    let mut out = Vec::with_capacity(old.len() + entering.size_hint().0);
    let mut gone = gone.peekable();
    let mut entering = entering.peekable();
    let mut at = 0;
    loop {
        let cut_gone = gone.peek().map(|k| position(at, k));
        let cut_entering = entering.peek().map(|v| position(at, &v.key));
        let Some(cut) = cut_gone.into_iter().chain(cut_entering).min() else { break };
        out.extend(old[at..cut].iter().map(&keep));
        at = cut;
        // An entering instance goes before the old one at its place, which is either later in
        // id order or the one it replaces (then gone).
        if cut_entering == Some(cut) {
            out.extend(entering.next());
        } else if let Some(key) = gone.next()
            && old.get(at).is_some_and(|v| *v.key == *key)
        {
            at += 1;
        }
    }
    out.extend(old[at..].iter().map(&keep));
    out
}

/// The view of `key` with `instances` (in id order), made from `old` when only a few
/// instances differ and every one that does:
/// - declares no service settings (so the merged settings stay), and has an IP address (so
///   the host names to resolve stay);
/// - carries only tags and regions the service already has, and no name loses its last
///   instance (so the names stay);
/// - joins or leaves names whose answers are their healthy instances (not failing open, not
///   empty) of one weight, and keeps them so.
///
/// Otherwise gives `instances` back, for `ServiceView::build`. The members the two versions
/// share must be unchanged (the caller's: no node changed status, no host name resolved anew).
pub(super) fn patch(
    key: Arc<str>,
    old: &ServiceView,
    instances: Vec<Arc<InstanceView>>,
    defaults: &Defaults,
) -> Result<ServiceView, Vec<Arc<InstanceView>>> {
    if old.defaults != *defaults {
        return Err(instances);
    }
    let Some(moves) = Moves::between(&old.instances, &instances) else { return Err(instances) };
    let gone = moves.gone.iter().map(|&i| &*old.instances[i as usize]);
    let entering = moves.entering.iter().map(|&i| &*instances[i as usize]);
    let fits = |v: &InstanceView| {
        let region = v.instance.region.as_deref().map(lowercase);
        let has = |tag: Option<&str>| old.name(tag, region.as_deref()).is_some();
        *v.instance.policy == ServicePolicy::default()
            && matches!(v.instance.address, Address::Ip(_))
            && has(None)
            && v.instance.tags.iter().all(|t| has(Some(&lowercase(t))))
    };
    if !gone.clone().chain(entering.clone()).all(fits) {
        return Err(instances);
    }
    let mut entries = Vec::with_capacity(old.entries.len());
    for form in old.name_forms() {
        let e = old.entry(form.index);
        let covers = |v: &&InstanceView| {
            form.tag.is_none_or(|t| v.instance.tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
                && form.region.is_none_or(|r| v.instance.region.as_ref().is_some_and(|x| x.eq_ignore_ascii_case(r)))
        };
        let size = e.size as usize + entering.clone().filter(covers).count() - gone.clone().filter(covers).count();
        let patched =
            (size > 0).then(|| moves.entry(e, size as u32, covers, &instances, &old.instances, old.eff.only_passing));
        let Some(Some(entry)) = patched else { return Err(instances) };
        entries.push((form.index, entry));
    }
    // The names stay, and so do their entries' positions.
    entries.sort_unstable_by_key(|(index, _)| *index);
    let entries = entries.into_iter().map(|(_, e)| e).collect();
    let mut counts = old.counts;
    gone.for_each(|v| counts.tally(v, -1));
    entering.for_each(|v| counts.tally(v, 1));
    Ok(ServiceView {
        key,
        instances,
        names: old.names.clone(),
        entries,
        hosts: old.hosts.clone(),
        counts,
        defaults: *defaults,
        eff: old.eff,
    })
}

/// Where each member of the old version went in the new one.
struct Moves {
    /// Old index → new index; `u32::MAX` for one that went (or was replaced).
    to: Vec<u32>,
    /// Old indexes of the instances that went or were replaced.
    gone: Vec<u32>,
    /// New indexes of the instances that came or replaced one.
    entering: Vec<u32>,
}

/// Beyond this many changed instances (plus an eighth of the service), a full build costs
/// about what a patch does.
const FEW: usize = 8;

impl Moves {
    fn between(old: &[Arc<InstanceView>], new: &[Arc<InstanceView>]) -> Option<Moves> {
        let most = FEW + old.len().max(new.len()) / 8;
        let mut m = Moves { to: vec![u32::MAX; old.len()], gone: Vec::new(), entering: Vec::new() };
        let mut few = true;
        walk_members(old, new, |i, j, same| {
            match (i, j) {
                (Some(i), Some(j)) if same => m.to[i] = j as u32,
                _ => {
                    m.gone.extend(i.map(|i| i as u32));
                    m.entering.extend(j.map(|j| j as u32));
                }
            }
            few = m.gone.len() + m.entering.len() <= most;
            few
        });
        few.then_some(m)
    }

    /// `e`'s entry in the new version, covering `size` instances, or `None` if it cannot be
    /// patched: its answerable members moved, and the entering instances under its name that
    /// are healthy added.
    fn entry(
        &self,
        e: &NameEntry,
        size: u32,
        covers: impl Fn(&&InstanceView) -> bool,
        new: &[Arc<InstanceView>],
        old: &[Arc<InstanceView>],
        only_passing: bool,
    ) -> Option<NameEntry> {
        // Answers that fail open (every member unhealthy) or are empty are rebuilt in full,
        // and so are weighted rotations.
        let first = *e.srv.members.first()?;
        if !is_healthy(old[first as usize].status, only_passing) || !e.srv.is_uniform() {
            return None;
        }
        let weight = |v: &InstanceView| v.instance.weight.max(1);
        let joining: Vec<u32> = self
            .entering
            .iter()
            .copied()
            .filter(|&j| is_healthy(new[j as usize].status, only_passing) && covers(&&*new[j as usize]))
            .collect();
        let moved = |set: &AnswerSet| -> Vec<u32> {
            set.members.iter().map(|&i| self.to[i as usize]).filter(|&j| j != u32::MAX).collect()
        };
        let kept = moved(&e.srv);
        let w = weight(&new[*kept.first()? as usize]);
        if joining.iter().any(|&j| weight(&new[j as usize]) != w) {
            return None;
        }
        let all: Arc<[u32]> = merge(kept, &joining).into();
        let family = |set: &AnswerSet, v4: bool| -> Arc<[u32]> {
            let of_family =
                |&j: &u32| matches!(new[j as usize].instance.address, Address::Ip(ip) if ip.is_ipv4() == v4);
            // Usually every answerable member has the family, and the old lists were one.
            if Arc::ptr_eq(&set.members, &e.srv.members) && joining.iter().all(&of_family) {
                return all.clone();
            }
            let list = merge(moved(set), &joining.iter().copied().filter(of_family).collect::<Vec<_>>());
            if list.len() == all.len() { all.clone() } else { list.into() }
        };
        let next = |members: Arc<[u32]>, set: &AnswerSet| AnswerSet::new(members, Schedule::Uniform, set.position());
        Some(NameEntry {
            ttl: e.ttl,
            answer_limit: e.answer_limit,
            v4: next(family(&e.v4, true), &e.v4),
            v6: next(family(&e.v6, false), &e.v6),
            srv: next(all.clone(), &e.srv),
            srv_rfc2782: next(all.clone(), &e.srv_rfc2782),
            txt: next(all.clone(), &e.txt),
            ptr: next(all, &e.ptr),
            size,
        })
    }
}

/// Two ascending lists of indexes as one; `b` is short.
fn merge(a: Vec<u32>, b: &[u32]) -> Vec<u32> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut rest = &a[..];
    for &x in b {
        let at = rest.partition_point(|&y| y < x);
        out.extend_from_slice(&rest[..at]);
        out.push(x);
        rest = &rest[at..];
    }
    out.extend_from_slice(rest);
    out
}
