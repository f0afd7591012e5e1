//! Wrap-up reasons: the list an agent picks from after a conversation.
//!
//! [`WrapUpReasons`] is the extension point; [`BuiltinWrapUp`] is the
//! default list used when a tenant has none or its script fails.

use crate::model::WrapUpReason;
use std::sync::{Arc, OnceLock};

/// Provides the wrap-up reasons for a queue.
pub trait WrapUpReasons: Send + Sync {
    /// The reasons offered after a conversation of `queue` (never empty).
    fn reasons(&self, queue: &str) -> Arc<[WrapUpReason]>;
}

/// Check a wrap-up list a script or plugin answered (`what` names it in
/// the message): not empty, every code and label non-blank, codes unique.
/// The one check both the Lua and the native host apply.
pub fn check_reasons(
    reasons: Vec<WrapUpReason>,
    what: &str,
) -> Result<Arc<[WrapUpReason]>, String> {
    if reasons.is_empty() {
        return Err(format!("{what}: the list is empty"));
    }
    let mut codes = std::collections::HashSet::new();
    for (i, r) in reasons.iter().enumerate() {
        if r.code.trim().is_empty() || r.label.trim().is_empty() {
            return Err(format!(
                "{what}: entry {} has an empty code or label",
                i + 1
            ));
        }
        if !codes.insert(r.code.as_str()) {
            return Err(format!("{what}: code {:?} appears twice", r.code));
        }
    }
    Ok(reasons.into())
}

/// The built-in list.
#[derive(Debug, Clone)]
pub struct BuiltinWrapUp {
    reasons: Arc<[WrapUpReason]>,
}

impl BuiltinWrapUp {
    /// The built-in list every fallback uses (the engine's default, the
    /// Lua and native hosts when a tenant has no list or its call fails).
    pub fn shared() -> &'static BuiltinWrapUp {
        static BUILTIN: OnceLock<BuiltinWrapUp> = OnceLock::new();
        BUILTIN.get_or_init(BuiltinWrapUp::default)
    }

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
