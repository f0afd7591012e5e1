//! Channel message ids seen recently, oldest first, shared with snapshots
//! in chunks: taking a snapshot copies one pointer per chunk instead of
//! one per id (a busy tenant sees millions of ids in the dedupe window).

use crate::model::Millis;
use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// Ids per chunk: a full chunk is never changed again, so only the last
/// one is copied when it grows while a snapshot holds it.
const CHUNK: usize = 64;

type Entry = (Millis, Arc<str>);

/// When each id was seen, in order. Serialized as the sequence of
/// `(at, id)` pairs (what snapshots have always held).
#[derive(Debug, Clone, Default)]
pub struct RecentIds {
    chunks: VecDeque<Arc<Vec<Entry>>>,
    /// Entries of the first chunk already dropped (it is shared: not
    /// changed in place).
    skip: usize,
    len: usize,
}

impl RecentIds {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.chunks.iter().flat_map(|c| c.iter()).skip(self.skip)
    }

    pub fn front(&self) -> Option<&Entry> {
        self.chunks.front()?.get(self.skip)
    }

    pub(super) fn push_back(&mut self, entry: Entry) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(entry);
                self.chunks.push_back(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    pub(super) fn pop_front(&mut self) {
        let Some(first) = self.chunks.front() else {
            return;
        };
        self.skip += 1;
        self.len -= 1;
        if self.skip >= first.len() {
            self.chunks.pop_front();
            self.skip = 0;
        }
    }
}

impl Serialize for RecentIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for e in self.iter() {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for RecentIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<Entry>::deserialize(deserializer)?;
        let mut out = RecentIds::default();
        for e in list {
            out.push_back(e);
        }
        Ok(out)
    }
}
