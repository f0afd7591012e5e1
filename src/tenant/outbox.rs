//! Agents' replies on their way to a channel: what an append hands to the
//! tenant's sender (`crate::channels::run_outbox`) once committed, the rows
//! kept in the store's outbox until sent, and a failed delivery reported
//! back to the engine.

use super::{lock, ExecuteError, Tenant};
use crate::store::{OutboxId, OutboxRow, StoreError};
use switchboard_core::channel::OutgoingRequest;
use switchboard_core::model::{DeliveryFailure, Millis};
use switchboard_core::{Carrier, Command, Output};
use tokio::sync::mpsc;

/// An agent's reply on its way out through a channel, as the engine
/// decided it (`message`: the reply's index in the transcript, for
/// reporting a failure back).
#[derive(Debug)]
pub struct Outgoing {
    pub conversation: u64,
    pub channel: String,
    pub message: usize,
    pub request: OutgoingRequest,
    /// The files the reply carries, each sent before the text (see
    /// `crate::channels`); by id, read from the tenant's storage.
    pub attachments: Vec<switchboard_core::model::Attachment>,
    /// Whether the reply has a text to send (a reply may be files alone).
    pub send_text: bool,
    /// Its row in the store's outbox, marked sent once it is.
    pub id: OutboxId,
}

impl Tenant {
    /// The receiver of outgoing channel requests (taken once, by the sender task).
    pub fn take_outbox(&self) -> Option<mpsc::UnboundedReceiver<Outgoing>> {
        lock(&self.outbox_rx).take()
    }

    /// A reply the engine handed out did not reach the customer: journal
    /// it (the agents see `delivery_failed`, the transcript a system line).
    /// True once settled: journaled, or refused by the engine (nothing to
    /// journal); false when it may still be journaled later.
    pub async fn delivery_failed(
        &self,
        conversation: u64,
        message: usize,
        reason: DeliveryFailure,
    ) -> bool {
        let command = Command::DeliveryFailed {
            conversation,
            message,
            reason,
        };
        match self.execute(command).await {
            Ok(_) => true,
            Err(ExecuteError::Command(e)) => {
                tracing::warn!(tenant = %self.config.id, conversation, error = %e, "delivery failure refused by the engine");
                true
            }
            Err(e) => {
                tracing::error!(tenant = %self.config.id, conversation, error = ?e, "delivery failure not journaled");
                false
            }
        }
    }

    /// The replies committed and not yet sent (the store's outbox).
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let (store, key) = (self.store.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || store.outbox_pending(&key))
            .await
            .unwrap_or(Err(StoreError::Stopped))
    }

    /// Record that the reply `id` was sent (or its failure journaled), under
    /// this tenant's epoch: refused once another node owns the tenant.
    pub async fn outbox_sent(&self, ids: Vec<OutboxId>) -> Result<(), StoreError> {
        let (store, key, epoch) = (self.store.clone(), self.key.clone(), self.epoch);
        tokio::task::spawn_blocking(move || store.outbox_sent(&key, epoch, &ids))
            .await
            .unwrap_or(Err(StoreError::Stopped))
    }
}

/// The requests carrying agents' replies, as the engine decided them (web
/// chat replies are pushed as frames instead), and their rows for the
/// store's outbox (`seq`: the append's last event).
pub(super) fn channel_requests(
    out: &Output,
    seq: u64,
    now: Millis,
) -> (Vec<Outgoing>, Vec<OutboxRow>) {
    let mut outgoing = Vec::new();
    let mut rows = Vec::new();
    for d in &out.deliveries {
        let Carrier::Request(request) = &d.carrier else {
            continue;
        };
        let id = OutboxId {
            seq,
            n: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        };
        rows.push(OutboxRow {
            id,
            conversation: d.conversation,
            message: d.message as u64,
            channel: d.channel.clone(),
            customer: d.customer.clone(),
            author: d.author.to_string(),
            text: d.text.clone(),
            at: now,
        });
        outgoing.push(Outgoing {
            conversation: d.conversation,
            channel: d.channel.clone(),
            message: d.message,
            request: request.clone(),
            attachments: d.attachments.clone(),
            send_text: !switchboard_core::model::is_blank(&d.text),
            id,
        });
    }
    (outgoing, rows)
}
