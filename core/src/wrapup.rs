//! Wrap-up reasons: the list an agent picks from after a conversation.
//!
//! [`WrapUpReasons`] is the extension point; [`BuiltinWrapUp`] is the
//! default list used when a tenant has none or its script fails.

use crate::model::WrapUpReason;
use std::sync::Arc;

/// Provides the wrap-up reasons for a queue.
pub trait WrapUpReasons: Send + Sync {
    /// The reasons offered after a conversation of `queue` (never empty).
    fn reasons(&self, queue: &str) -> Arc<[WrapUpReason]>;
}

/// The built-in list.
#[derive(Debug, Clone)]
pub struct BuiltinWrapUp {
    reasons: Arc<[WrapUpReason]>,
}

impl BuiltinWrapUp {
    pub fn new(reasons: Vec<WrapUpReason>) -> Self {
        Self {
            reasons: reasons.into(),
        }
    }
}

impl Default for BuiltinWrapUp {
    fn default() -> Self {
        let r = |code: &str, label: &str| WrapUpReason {
            code: code.to_string(),
            label: label.to_string(),
        };
        Self::new(vec![
            r("resolved", "Resolved"),
            r("follow_up", "Follow-up needed"),
            r("transferred", "Transferred"),
            r("no_response", "No response from customer"),
            r("other", "Other"),
        ])
    }
}

impl WrapUpReasons for BuiltinWrapUp {
    fn reasons(&self, _queue: &str) -> Arc<[WrapUpReason]> {
        self.reasons.clone()
    }
}
