//! The fast table's index: every name of the domain (lowercase wire form) → what it is, and
//! each service's current encoding in a slot of its own.
//!
//! Both are shared with the previous table but for what a new table changes (`shards.rs` for
//! the names, persistent vectors and maps for the slots). A name points at its service's slot,
//! not at the encoding, so a change to a service's instances replaces one slot and touches none
//! of its names (they change only when its tags or regions do). Names are kept inline and what
//! they are is plain data, so that copying a shard copies bytes and touches no reference count.
//! Measured at 100,000 instances, re-inserting each changed service's names with `Arc` keys and
//! values (each copy touched some 60 reference counts, each a cache miss) was ~45% of a cluster
//! replica's CPU during a fill.

use std::sync::Arc;

use super::encode::ServiceWire;
use super::shards::{Named, Shards};
use crate::dns::parse::Spelling;

/// What a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FastName {
    /// A name of a service: the slot of its encoding, its entry, how it is spelt, and whether
    /// it names a region.
    Service { slot: u32, entry: u32, spelling: Spelling, names_region: bool },
    /// Exists but holds no records here (an empty non-terminal): NODATA.
    Exists,
    /// Exists, but the full handler answers it (the apex, `ns.D`).
    Slow,
}

/// Wire names this long or shorter are kept inline (`_order-service._tcp.service.local` takes
/// 40 bytes); longer ones in a table of their own.
const INLINE: usize = 47;

/// A wire name of at most `INLINE` bytes, zero-filled after them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Short {
    len: u8,
    bytes: [u8; INLINE],
}

impl Short {
    fn new(key: &[u8]) -> Option<Short> {
        let mut bytes = [0; INLINE];
        bytes.get_mut(..key.len())?.copy_from_slice(key);
        Some(Short { len: key.len() as u8, bytes })
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Named for (Short, FastName) {
    fn name(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl Named for (Box<[u8]>, FastName) {
    fn name(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Clone, Default)]
pub(super) struct Index {
    short: Shards<(Short, FastName)>,
    long: Shards<(Box<[u8]>, FastName)>,
    /// Lowercase service name → its slot.
    slots: imbl::HashMap<Arc<str>, u32>,
    /// Slot → the service's encoding; `None` while free.
    wires: imbl::Vector<Option<Arc<ServiceWire>>>,
    /// Slots freed by services that went, taken again first.
    free: imbl::Vector<u32>,
}

impl Index {
    /// What the lowercase wire name `key` is, if it is indexed.
    pub fn get(&self, key: &[u8]) -> Option<FastName> {
        if key.len() <= INLINE { self.short.get(key).map(|e| e.1) } else { self.long.get(key).map(|e| e.1) }
    }

    /// The encoding in `slot`.
    pub fn wire(&self, slot: u32) -> Option<&Arc<ServiceWire>> {
        self.wires.get(slot as usize)?.as_ref()
    }

    /// The current encoding of the service `key` (lowercase).
    pub fn service(&self, key: &str) -> Option<&Arc<ServiceWire>> {
        self.wire(*self.slots.get(key)?)
    }

    /// The slot of the service `key`, if it has one.
    pub fn slot(&self, key: &str) -> Option<u32> {
        self.slots.get(key).copied()
    }

    /// Puts `wire` in the service's slot (given one if it has none); returns the slot.
    pub fn set_service(&mut self, key: &Arc<str>, wire: Arc<ServiceWire>) -> u32 {
        let slot = match self.slots.get(key) {
            Some(&slot) => slot,
            None => {
                let slot = self.free.pop_back().unwrap_or(self.wires.len() as u32);
                self.slots.insert(key.clone(), slot);
                slot
            }
        };
        if slot as usize == self.wires.len() {
            self.wires.push_back(Some(wire));
        } else {
            self.wires.set(slot as usize, Some(wire));
        }
        slot
    }

    /// Frees the service's slot; its names must be gone already.
    pub fn drop_service(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.wires.set(slot as usize, None);
            self.free.push_back(slot);
        }
    }

    /// Indexes `key` as `what`, unless it is that already (an unchanged name copies nothing).
    pub fn insert(&mut self, key: &[u8], what: FastName) {
        if self.get(key) == Some(what) {
            return;
        }
        match Short::new(key) {
            Some(short) => self.short.insert((short, what)),
            None => self.long.insert((key.into(), what)),
        }
    }

    /// Takes `key` out if what it is now passes `owned`.
    pub fn remove_if(&mut self, key: &[u8], owned: impl Fn(FastName) -> bool) {
        if !self.get(key).is_some_and(owned) {
            return;
        }
        if key.len() <= INLINE { self.short.remove(key) } else { self.long.remove(key) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_are_found_and_removed_alike() {
        let mut index = Index::default();
        let short = b"\x03web\x07service\x05local\x00".to_vec();
        let long = [&[60u8][..], &[b'a'; 60], b"\x07service\x05local\x00"].concat();
        for key in [&short, &long] {
            index.insert(key, FastName::Exists);
            assert_eq!(index.get(key), Some(FastName::Exists));
            index.remove_if(key, |w| w == FastName::Slow);
            assert_eq!(index.get(key), Some(FastName::Exists), "not removed when not owned");
            index.remove_if(key, |w| w == FastName::Exists);
            assert_eq!(index.get(key), None);
        }
        // A prefix of a name is another name.
        index.insert(&short, FastName::Slow);
        assert_eq!(index.get(&short[..short.len() - 1]), None);
    }
}
