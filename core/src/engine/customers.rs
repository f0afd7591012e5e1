//! What the engine keeps per customer identity (channel, customer): the
//! last agent who served it and its archived conversations. Shared with
//! snapshots in buckets, like [`super::Conversations`]: taking a snapshot
//! under the engine lock copies one pointer per bucket, not every entry,
//! and a change copies only the bucket it touches while a snapshot still
//! holds it (`Arc::make_mut`).
//!
//! Serialized as the sequence of `(channel, customer, value)` sorted by
//! identity (what snapshots have always held), so the same state gives the
//! same snapshot bytes; the sort runs where the snapshot is encoded, off
//! the engine lock.

use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

/// Buckets of a map that holds anything: a snapshot copies this many
/// pointers; a bucket holds about len / BUCKETS entries.
const BUCKETS: usize = 1024;

/// A customer identity: (channel, customer).
pub type Identity = (String, String);

type Bucket<V> = HashMap<Identity, V>;

/// Values by customer identity, in buckets shared with snapshots.
#[derive(Debug, Clone)]
pub struct CustomerMap<V> {
    /// Empty until the first insert (a tenant nobody wrote to costs
    /// nothing), then exactly [`BUCKETS`] long.
    buckets: Vec<Arc<Bucket<V>>>,
    len: usize,
}

impl<V> Default for CustomerMap<V> {
    fn default() -> Self {
        CustomerMap {
            buckets: Vec::new(),
            len: 0,
        }
    }
}

/// The bucket of an identity. Not std's `RandomState`: a bucket is chosen
/// the same way in every process (FNV-1a over both parts; the channel is
/// followed by a byte no identifier has, so ("ab", "c") and ("a", "bc")
/// differ).
fn bucket_of(key: &Identity) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key
        .0
        .as_bytes()
        .iter()
        .chain(&[0xff])
        .chain(key.1.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % BUCKETS as u64) as usize
}

impl<V: Clone> CustomerMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &Identity) -> Option<&V> {
        self.buckets.get(bucket_of(key))?.get(key)
    }

    /// The bucket of `key`'s index, ready to change.
    fn index_for_change(&mut self, key: &Identity) -> usize {
        if self.buckets.is_empty() {
            self.buckets = (0..BUCKETS).map(|_| Arc::new(HashMap::new())).collect();
        }
        bucket_of(key)
    }

    pub fn insert(&mut self, key: Identity, value: V) {
        let i = self.index_for_change(&key);
        // Copied first if a snapshot holds it.
        if Arc::make_mut(&mut self.buckets[i])
            .insert(key, value)
            .is_none()
        {
            self.len += 1;
        }
    }

    /// The value of `key`, made with `make` if there is none, to change.
    pub fn get_or_insert_with(&mut self, key: Identity, make: impl FnOnce() -> V) -> &mut V {
        let i = self.index_for_change(&key);
        match Arc::make_mut(&mut self.buckets[i]).entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                self.len += 1;
                v.insert(make())
            }
        }
    }

    /// Every entry, sorted by identity.
    pub fn sorted(&self) -> Vec<(&Identity, &V)> {
        let mut all: Vec<(&Identity, &V)> = self.buckets.iter().flat_map(|b| b.iter()).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all
    }
}

impl<V: Clone + Serialize> Serialize for CustomerMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let all = self.sorted();
        let mut seq = s.serialize_seq(Some(all.len()))?;
        for ((channel, customer), v) in all {
            seq.serialize_element(&(channel, customer, v))?;
        }
        seq.end()
    }
}

impl<'de, V: Clone + Deserialize<'de>> Deserialize<'de> for CustomerMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries: Vec<(String, String, V)> = Vec::deserialize(d)?;
        let mut map = CustomerMap::default();
        for (channel, customer, v) in entries {
            map.insert((channel, customer), v);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ch: &str, cu: &str) -> Identity {
        (ch.to_string(), cu.to_string())
    }

    #[test]
    fn a_snapshot_keeps_what_it_saw_and_encodes_sorted() {
        let mut m: CustomerMap<u32> = CustomerMap::default();
        for i in (0..3000u32).rev() {
            m.insert(id("messenger", &format!("psid{i:05}")), i);
        }
        m.insert(id("webchat", "v1"), 7);
        let snap = m.clone();
        m.insert(id("webchat", "v1"), 8);
        *m.get_or_insert_with(id("messenger", "psid00001"), || 0) += 100;
        *m.get_or_insert_with(id("sms", "new"), || 41) += 1;
        assert_eq!(snap.get(&id("webchat", "v1")), Some(&7));
        assert_eq!(snap.get(&id("messenger", "psid00001")), Some(&1));
        assert_eq!(snap.get(&id("sms", "new")), None);
        assert_eq!(m.get(&id("webchat", "v1")), Some(&8));
        assert_eq!(m.get(&id("messenger", "psid00001")), Some(&101));
        assert_eq!(m.get(&id("sms", "new")), Some(&42));
        assert_eq!((snap.len(), m.len()), (3001, 3002));
        let json = serde_json::to_string(&snap).expect("encode");
        assert!(json.starts_with(r#"[["messenger","psid00000",0],["messenger","psid00001",1],"#));
        assert!(json.ends_with(r#"["webchat","v1",7]]"#));
        let back: CustomerMap<u32> = serde_json::from_str(&json).expect("decode");
        assert_eq!(serde_json::to_string(&back).expect("encode"), json);
    }

    #[test]
    fn channel_and_customer_do_not_run_together() {
        let mut m: CustomerMap<u8> = CustomerMap::default();
        m.insert(id("ab", "c"), 1);
        m.insert(id("a", "bc"), 2);
        assert_eq!(
            (m.get(&id("ab", "c")), m.get(&id("a", "bc"))),
            (Some(&1), Some(&2))
        );
        assert_eq!(m.len(), 2);
    }
}
