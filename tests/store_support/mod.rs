//! What the store tests share: a one-queue, one-agent engine and a web
//! chat customer's first message.

use switchboard_core::command::{Command, CustomerMessage};
use switchboard_core::engine::Engine;
use switchboard_core::masking::Masker;
use switchboard_core::model::{AgentConfig, Cad, QueueConfig, TenantSettings, TransferNotAccepted};

pub fn engine() -> Engine {
    Engine::new(
        TenantSettings {
            mask: true,
            transfer_not_accepted: TransferNotAccepted::ReturnToQueue,
            default_queue: "support".into(),
            archive_after_ms: 600_000,
            idle_reasons: vec![],
            language: Default::default(),
        },
        Masker::default(),
        vec![QueueConfig {
            id: "support".into(),
            name: "Support".into(),
            rona_timeout_ms: 30_000,
        }],
        vec![AgentConfig {
            id: "alice".into(),
            name: "Alice".into(),
            capacity: 2,
            queues: vec!["support".into()],
            skills: vec![],
        }],
    )
}

pub fn customer(i: u64) -> Command {
    Command::CustomerMessage(CustomerMessage {
        channel: "webchat".into(),
        customer: format!("visitor-{i}"),
        customer_name: None,
        text: format!("hello {i}"),
        source: "Web site".into(),
        queue: "support".into(),
        cad: Cad::new(),
        external_id: None,
        attachments: Vec::new(),
        sent_at: None,
    })
}
