//! A tenant's live conversations, by id, shared with snapshots in chunks
//! of consecutive ids: taking a snapshot copies one pointer per chunk, a
//! change copies only the chunk and the conversation it touches when a
//! snapshot still holds them (copy on write, `Arc::make_mut`).

use super::Conversation;
use crate::model::ConversationId;
use serde::de::Deserializer;
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Ids per chunk, as a power of two: 64 conversations per pointer a
/// snapshot copies; a copied chunk is 64 pointers.
const CHUNK_BITS: u32 = 6;

type Chunk = BTreeMap<ConversationId, Arc<Conversation>>;

/// Conversations by id. Serialized as the sequence of conversations in id
/// order (what snapshots have always held).
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    chunks: BTreeMap<ConversationId, Arc<Chunk>>,
    len: usize,
}

fn chunk_of(id: ConversationId) -> ConversationId {
    id >> CHUNK_BITS
}

impl Conversations {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, id: &ConversationId) -> Option<&Conversation> {
        self.shared(id).map(|c| &**c)
    }

    /// The conversation as shared with snapshots.
    pub fn shared(&self, id: &ConversationId) -> Option<&Arc<Conversation>> {
        self.chunks.get(&chunk_of(*id))?.get(id)
    }

    pub fn contains_key(&self, id: &ConversationId) -> bool {
        self.shared(id).is_some()
    }

    /// In id order.
    pub fn values(&self) -> impl Iterator<Item = &Conversation> + '_ {
        self.iter_shared().map(|c| &**c)
    }

    /// In id order, as shared with snapshots.
    pub fn iter_shared(&self) -> impl Iterator<Item = &Arc<Conversation>> + '_ {
        self.chunks.values().flat_map(|chunk| chunk.values())
    }

    /// The conversation to change: copied first (with its chunk) if a
    /// snapshot still holds it.
    pub(super) fn get_mut(&mut self, id: &ConversationId) -> Option<&mut Conversation> {
        let chunk = self.chunks.get_mut(&chunk_of(*id))?;
        if !chunk.contains_key(id) {
            return None;
        }
        Arc::make_mut(chunk).get_mut(id).map(Arc::make_mut)
    }

    pub(super) fn insert(&mut self, conversation: Arc<Conversation>) {
        let id = conversation.id;
        let chunk = Arc::make_mut(self.chunks.entry(chunk_of(id)).or_default());
        if chunk.insert(id, conversation).is_none() {
            self.len += 1;
        }
    }

    pub(super) fn remove(&mut self, id: &ConversationId) -> Option<Conversation> {
        let key = chunk_of(*id);
        let chunk = self.chunks.get_mut(&key)?;
        if !chunk.contains_key(id) {
            return None;
        }
        let chunk = Arc::make_mut(chunk);
        let removed = chunk.remove(id)?;
        if chunk.is_empty() {
            self.chunks.remove(&key);
        }
        self.len -= 1;
        Some(Arc::unwrap_or_clone(removed))
    }
}

impl Serialize for Conversations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for c in self.values() {
            seq.serialize_element(c)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Conversations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<Conversation>::deserialize(deserializer)?;
        let mut out = Conversations::default();
        for c in list {
            out.insert(Arc::new(c));
        }
        Ok(out)
    }
}
