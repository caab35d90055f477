//! The pools of a `MemoryAllocator` by name. A process has a few pools, so up to `SCAN` of
//! them are found by comparing names (a `DnsLabel` of up to 22 bytes is stored in place, so a
//! comparison is a few instructions, cheaper than hashing one); past that, through a hash index.
//! Either way a lookup is bounded: O(1) in the pool sizes and the pool count.

use hashbrown::HashMap;
use kws_core::DnsLabel;

/// Pools up to this count are found by scanning their names.
const SCAN: usize = 8;

#[derive(Debug)]
pub(crate) struct PoolMap<V> {
    entries: Vec<(DnsLabel, V)>,
    index: HashMap<DnsLabel, usize>,
}

impl<V> Default for PoolMap<V> {
    fn default() -> Self {
        Self { entries: Vec::new(), index: HashMap::new() }
    }
}

impl<V> PoolMap<V> {
    fn position(&self, name: &DnsLabel) -> Option<usize> {
        if self.entries.len() <= SCAN {
            self.entries.iter().position(|(n, _)| n == name)
        } else {
            self.index.get(name).copied()
        }
    }

    /// The pool called `name`.
    pub(crate) fn get_mut(&mut self, name: &DnsLabel) -> Option<&mut V> {
        let i = self.position(name)?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// True when a pool is called `name`.
    pub(crate) fn contains(&self, name: &DnsLabel) -> bool {
        self.position(name).is_some()
    }

    /// Adds a pool; the caller has checked that the name is free.
    pub(crate) fn insert(&mut self, name: DnsLabel, value: V) {
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push((name, value));
    }

    /// Every pool, in creation order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&DnsLabel, &V)> {
        self.entries.iter().map(|(n, v)| (n, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookups agree before and after the map switches from scanning to its index.
    #[test]
    fn finds_every_pool_on_both_sides_of_the_scan_limit() {
        let mut map = PoolMap::default();
        let name = |i: usize| DnsLabel::parse(&format!("p{}{i}", "x".repeat(i))).expect("label");
        for n in 0..40 {
            map.insert(name(n), n);
            for i in 0..=n {
                assert_eq!(map.get_mut(&name(i)).copied(), Some(i), "{n} pools, pool {i}");
            }
            assert!(!map.contains(&name(n + 1)));
            assert_eq!(map.iter().count(), n + 1);
        }
    }
}
