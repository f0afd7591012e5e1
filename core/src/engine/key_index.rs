//! A hash map whose lookups of absent keys read no key.
//!
//! A `HashMap<String, _>` that misses still compares the keys whose 7-bit
//! tag matches, and each comparison reads a string elsewhere on the heap:
//! with a hundred thousand waiting customers that is a cache miss per
//! lookup that grows with the tenant. Here a table keyed by the key's
//! 64-bit fingerprint holds the key beside its value, so a miss reads one
//! bucket; the rare key whose fingerprint another key already holds goes
//! to a second, ordinary map (exact either way).

use std::borrow::Borrow;
use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// The fingerprint is already a hash: use it as is.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct KeyIndex<K, V, S = RandomState> {
    fingerprint: S,
    main: HashMap<u64, (K, V), BuildHasherDefault<AsIs>>,
    /// Keys whose fingerprint was held by another key when inserted.
    spill: HashMap<K, V>,
}

impl<K: Hash + Eq, V, S: BuildHasher> KeyIndex<K, V, S> {
    fn fingerprint<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.fingerprint.hash_one(key)
    }

    fn spilled<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.spill.is_empty() {
            None
        } else {
            self.spill.get(key)
        }
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.main.get(&self.fingerprint(key)) {
            Some((k, v)) if k.borrow() == key => Some(v),
            _ => self.spilled(key),
        }
    }

    pub(super) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Set `key` to `value`; the value it had, if any.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let fingerprint = self.fingerprint(&key);
        match self.main.entry(fingerprint) {
            Entry::Occupied(mut e) => {
                if e.get().0 == key {
                    Some(std::mem::replace(&mut e.get_mut().1, value))
                } else {
                    self.spill.insert(key, value)
                }
            }
            Entry::Vacant(e) => {
                // Spilled while its fingerprint was taken: it moves back.
                let old = if self.spill.is_empty() {
                    None
                } else {
                    self.spill.remove(&key)
                };
                e.insert((key, value));
                old
            }
        }
    }

    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let fingerprint = self.fingerprint(key);
        if self
            .main
            .get(&fingerprint)
            .is_some_and(|(k, _)| k.borrow() == key)
        {
            return self.main.remove(&fingerprint).map(|(_, v)| v);
        }
        if self.spill.is_empty() {
            None
        } else {
            self.spill.remove(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key gets the same fingerprint: only the spill map keeps
    /// them apart.
    #[derive(Clone, Default)]
    struct Constant;
    impl BuildHasher for Constant {
        type Hasher = AsIs;
        fn build_hasher(&self) -> AsIs {
            AsIs(7)
        }
    }

    fn agrees_with_a_hash_map<S: BuildHasher + Default>() {
        let mut m: KeyIndex<String, u32, S> = KeyIndex {
            fingerprint: S::default(),
            main: HashMap::default(),
            spill: HashMap::new(),
        };
        let mut reference: HashMap<String, u32> = HashMap::new();
        for i in 0..2_000u32 {
            let k = format!("k{}", i % 70);
            assert_eq!(m.insert(k.clone(), i), reference.insert(k, i));
            if i % 3 == 0 {
                let gone = format!("k{}", (i * 7) % 70);
                assert_eq!(m.remove(gone.as_str()), reference.remove(&gone));
            }
            for j in 0..80u32 {
                let k = format!("k{j}");
                assert_eq!(m.get(k.as_str()), reference.get(&k));
                assert_eq!(m.contains_key(k.as_str()), reference.contains_key(&k));
            }
        }
    }

    #[test]
    fn insert_get_remove_agree_with_a_hash_map() {
        agrees_with_a_hash_map::<RandomState>();
    }

    #[test]
    fn keys_sharing_a_fingerprint_stay_apart() {
        agrees_with_a_hash_map::<Constant>();
    }
}
