//! A window's group keys, numbered: each distinct key (its Arrow row bytes)
//! gets a dense `u32` id, the number the window's panes and sessions hold
//! instead of the key.
//!
//! Built for a million keys and more: every key's bytes live once, end to
//! end in one arena (`bytes`, with `ends` marking where each stops), and
//! the lookup table holds only ids — its hash and equality read the arena.
//! A key costs its bytes plus about 12 bytes (an end, a table slot and its
//! control byte), where a map of boxed keys plus an owned row per key cost
//! well over 100. Keys are never removed one by one: a window that must
//! forget keys builds a new table of those it keeps ([`KeyTable::retain`]).

use arrow::row::{Row, RowParser};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Group keys by id (see the module documentation).
#[derive(Default)]
pub struct KeyTable {
    /// Every key's bytes, one after another.
    bytes: Vec<u8>,
    /// Where key `id` ends in `bytes` (it starts where `id - 1` ends).
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl KeyTable {
    pub fn new() -> KeyTable {
        KeyTable::default()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of key `id`.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        ((id as usize) < self.ends.len()).then(|| Self::slice(&self.bytes, &self.ends, id))
    }

    /// Key `id` as a row of `parser`'s converter.
    pub fn row<'a>(&'a self, parser: &'a RowParser, id: u32) -> Option<Row<'a>> {
        self.get(id).map(|b| parser.parse(b))
    }

    /// Key `id`'s bytes in an arena (empty when there is no such key).
    fn slice<'a>(bytes: &'a [u8], ends: &[u32], id: u32) -> &'a [u8] {
        let i = id as usize;
        let end = ends.get(i).map_or(0, |&e| e as usize);
        let start = if i == 0 {
            0
        } else {
            ends.get(i - 1).map_or(0, |&e| e as usize)
        };
        bytes.get(start..end).unwrap_or_default()
    }

    /// The id of `key`, if it has one.
    pub fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.table
            .find(hash, |&id| Self::slice(bytes, ends, id) == key)
            .copied()
    }

    /// Gives `key` the next id (the caller found it has none). `None` when
    /// the arena is full (4 GiB of keys).
    pub fn insert(&mut self, key: &[u8]) -> Option<u32> {
        let end = u32::try_from(self.bytes.len() + key.len()).ok()?;
        let id = u32::try_from(self.ends.len()).ok()?;
        let hash = self.hasher.hash_one(key);
        self.bytes.extend_from_slice(key);
        self.ends.push(end);
        let (bytes, ends, hasher) = (&self.bytes, &self.ends, &self.hasher);
        self.table.insert_unique(hash, id, |&other| {
            hasher.hash_one(Self::slice(bytes, ends, other))
        });
        Some(id)
    }

    /// Keeps only the keys `keep` names (each once, in the order given),
    /// numbered anew from 0 in that order.
    pub fn retain(&mut self, keep: &[u32]) {
        let mut kept = KeyTable::new();
        kept.bytes
            .reserve(keep.len() * self.bytes.len() / self.len().max(1));
        kept.ends.reserve(keep.len());
        for &id in keep {
            if let Some(key) = self.get(id) {
                kept.insert(key);
            }
        }
        *self = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_dense_ids_and_are_found_again() {
        let mut t = KeyTable::new();
        let keys: Vec<Vec<u8>> = (0..10_000u32)
            .map(|i| format!("user-{i}").into_bytes())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(k), None);
            assert_eq!(t.insert(k), Some(i as u32));
        }
        assert_eq!(t.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(k), Some(i as u32));
            assert_eq!(t.get(i as u32), Some(k.as_slice()));
        }
        assert_eq!(t.find(b"user-10000"), None);
        assert_eq!(t.get(10_000), None);
        // The empty key is a key like any other.
        assert_eq!(t.insert(b""), Some(10_000));
        assert_eq!(t.find(b""), Some(10_000));
        assert_eq!(t.get(10_000), Some(&b""[..]));
    }

    #[test]
    fn retain_renumbers_in_the_order_given() {
        let mut t = KeyTable::new();
        for k in ["a", "bb", "ccc", "dddd"] {
            t.insert(k.as_bytes());
        }
        t.retain(&[3, 1]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.find(b"dddd"), Some(0));
        assert_eq!(t.find(b"bb"), Some(1));
        assert_eq!(t.find(b"a"), None);
        assert_eq!(t.find(b"ccc"), None);
        assert_eq!(t.insert(b"a"), Some(2));
    }
}
