//! A hash table of names whose versions share what they did not change: the entries are split
//! into shards by their hash, each shard a flat hash table behind an `Arc`, and a new version
//! copies only the shards it writes to (a few hundred entries of plain bytes: a `memcpy`).
//!
//! It replaced a persistent HAMT (`imbl::HashMap`) for the fast path's names. The HAMT allocates
//! every node at its full 32 entries, and most of its deepest nodes held two or three names, so
//! 100,000 instances' names took 26 MB (heaptrack, a replica joining 100,000 instances); in
//! flat shards they take about a fifth of that, and a lookup is one probe instead of a walk
//! down the trie. Copying whole shards on write costs little here because names change only
//! when services come, go or change their tags or regions, not when their instances do.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};

/// An entry: a name (its lowercase wire form) and what it is.
pub(super) trait Named: Clone {
    fn name(&self) -> &[u8];
}

/// Shards start this many and double whenever they hold this many entries on average, so that
/// a write copies a shard of at most a few hundred entries however large the table grows.
const FIRST_SHARDS: usize = 64;
const PER_SHARD: usize = 256;

#[derive(Clone)]
pub(super) struct Shards<T> {
    /// Seeded at random once; every version of the table hashes with the same seed.
    hasher: DefaultHashBuilder,
    /// A power of two of them (`shard_of`).
    shards: Arc<Vec<Arc<HashTable<T>>>>,
    len: usize,
}

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Shards {
            hasher: DefaultHashBuilder::default(),
            shards: Arc::new((0..FIRST_SHARDS).map(|_| Arc::new(HashTable::new())).collect()),
            len: 0,
        }
    }
}

impl<T: Named> Shards<T> {
    pub fn get(&self, name: &[u8]) -> Option<&T> {
        let hash = self.hasher.hash_one(name);
        self.shards[self.shard(hash)].find(hash, |e| e.name() == name)
    }

    /// Puts `entry` in, in place of any entry of the same name.
    pub fn insert(&mut self, entry: T) {
        if self.len >= self.shards.len() * PER_SHARD {
            self.split();
        }
        let hash = self.hasher.hash_one(entry.name());
        let hasher = self.hasher.clone();
        let table = self.shard_mut(hash);
        match table.entry(hash, |e| e.name() == entry.name(), |e| hasher.hash_one(e.name())) {
            hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = entry,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(entry);
                self.len += 1;
            }
        }
    }

    pub fn remove(&mut self, name: &[u8]) {
        let hash = self.hasher.hash_one(name);
        if let Ok(o) = self.shard_mut(hash).find_entry(hash, |e| e.name() == name) {
            o.remove();
            self.len -= 1;
        }
    }

    fn shard(&self, hash: u64) -> usize {
        shard_of(hash, self.shards.len())
    }

    /// The shard of `hash`, this version's own (copied if it is shared with another).
    fn shard_mut(&mut self, hash: u64) -> &mut HashTable<T> {
        let i = self.shard(hash);
        Arc::make_mut(&mut Arc::make_mut(&mut self.shards)[i])
    }

    /// Twice as many shards, each entry moved to its new one.
    fn split(&mut self) {
        let count = self.shards.len() * 2;
        let each = self.len / count + self.len / count / 4;
        let mut shards: Vec<HashTable<T>> = (0..count).map(|_| HashTable::with_capacity(each)).collect();
        for entry in self.shards.iter().flat_map(|s| s.iter()) {
            let hash = self.hasher.hash_one(entry.name());
            shards[shard_of(hash, count)].insert_unique(hash, entry.clone(), |e| self.hasher.hash_one(e.name()));
        }
        self.shards = Arc::new(shards.into_iter().map(Arc::new).collect());
    }
}

/// Which of `count` shards (a power of two) holds `hash`: from the hash's upper half, which a
/// shard's own table does not use to place it.
fn shard_of(hash: u64, count: usize) -> usize {
    (hash >> 32) as usize & (count - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Named for (Vec<u8>, u32) {
        fn name(&self) -> &[u8] {
            &self.0
        }
    }

    #[test]
    fn versions_keep_their_own_entries_through_splits() {
        let mut table: Shards<(Vec<u8>, u32)> = Shards::default();
        let n = FIRST_SHARDS * PER_SHARD * 3;
        for i in 0..n as u32 {
            table.insert((i.to_be_bytes().to_vec(), i));
        }
        assert!(table.shards.len() >= FIRST_SHARDS * 4, "split as it grew");
        let old = table.clone();
        for i in (0..n as u32).step_by(2) {
            table.remove(&i.to_be_bytes());
        }
        table.insert((7u32.to_be_bytes().to_vec(), 70));
        assert_eq!(table.len, n / 2);
        for i in 0..n as u32 {
            let key = i.to_be_bytes();
            assert_eq!(old.get(&key).map(|e| e.1), Some(i), "the old version is untouched");
            let now = if i == 7 { Some(70) } else { (i % 2 == 1).then_some(i) };
            assert_eq!(table.get(&key).map(|e| e.1), now);
        }
    }
}
