//! Canned responses: the answers agents insert instead of retyping them
//! (a `responses` script, docs/lua.md). Checked once at load, like wrap-up
//! lists; placeholders filled per conversation.

use crate::model::MAX_AGENT_MESSAGE_CHARS;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest text of a canned response, in Unicode scalar values (an agent's
/// message limit: inserted as it is, it must be sendable).
pub const MAX_RESPONSE_CHARS: usize = MAX_AGENT_MESSAGE_CHARS;
/// Longest code or title.
pub const MAX_RESPONSE_TITLE_CHARS: usize = 200;

/// One canned response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedResponse {
    pub code: String,
    pub title: String,
    /// May hold `{customer_name}`, `{agent_name}` and `{queue}`.
    pub text: String,
    /// The queues it is offered in; empty: every queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Its language (`en`, `fr`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl CannedResponse {
    /// Whether it is offered in `queue` (and in `language`, when asked).
    pub fn applies_to(&self, queue: &str, language: Option<&str>) -> bool {
        let queue_ok = self.queues.is_empty() || self.queues.iter().any(|q| q == queue);
        let lang_ok = match (language, &self.language) {
            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
            _ => true,
        };
        queue_ok && lang_ok
    }

    /// The text with its placeholders filled, in one pass (a value that
    /// itself looks like a placeholder is left as it is).
    pub fn fill(&self, customer_name: &str, agent_name: &str, queue: &str) -> String {
        fill(&self.text, customer_name, agent_name, queue)
    }
}

/// `text` with `{customer_name}`, `{agent_name}` and `{queue}` replaced.
pub fn fill(text: &str, customer_name: &str, agent_name: &str, queue: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let hit = [
            ("{customer_name}", customer_name),
            ("{agent_name}", agent_name),
            ("{queue}", queue),
        ]
        .into_iter()
        .find(|(p, _)| tail.starts_with(p));
        match hit {
            Some((p, v)) => {
                out.push_str(v);
                rest = &tail[p.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The one check of a list of canned responses, whoever provides it:
/// non-empty, no blank code, title or text, unique codes, text at most
/// [`MAX_RESPONSE_CHARS`], queues among the tenant's.
pub fn check_responses(
    list: Vec<CannedResponse>,
    queues: &[String],
    what: &str,
) -> Result<Arc<[CannedResponse]>, String> {
    if list.is_empty() {
        return Err(format!("{what}: the list is empty"));
    }
    let mut codes = std::collections::HashSet::new();
    for (i, r) in list.iter().enumerate() {
        let n = i + 1;
        if r.code.trim().is_empty() || r.title.trim().is_empty() || r.text.trim().is_empty() {
            return Err(format!(
                "{what}: entry {n} has an empty code, title or text"
            ));
        }
        if r.code.chars().count() > MAX_RESPONSE_TITLE_CHARS
            || r.title.chars().count() > MAX_RESPONSE_TITLE_CHARS
        {
            return Err(format!(
                "{what}: entry {n}: code and title are at most {MAX_RESPONSE_TITLE_CHARS} characters"
            ));
        }
        if r.text.chars().count() > MAX_RESPONSE_CHARS {
            return Err(format!(
                "{what}: entry {n} ({:?}): text over {MAX_RESPONSE_CHARS} characters",
                r.code
            ));
        }
        if !codes.insert(r.code.as_str()) {
            return Err(format!("{what}: code {:?} appears twice", r.code));
        }
        if let Some(q) = r.queues.iter().find(|q| !queues.contains(q)) {
            return Err(format!(
                "{what}: entry {n} ({:?}): unknown queue {q:?}",
                r.code
            ));
        }
    }
    Ok(list.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            fill(
                "Hi {customer_name}, {agent_name} of {queue} {x} {",
                "{agent_name}",
                "Al",
                "Support"
            ),
            "Hi {agent_name}, Al of Support {x} {"
        );
    }
}
