//! Skills routing as a native plugin: the job of `scripts/routing/skills.lua`,
//! answer for answer, so the two hosts can be compared. It routes over the
//! agent table the SDK keeps (ABI 2: candidates come as slots, skills as
//! numbers); `route` answers the same from a whole JSON request.
//!
//! The conversation's wanted skills are the words of CAD `tags` (split on
//! commas and white space, lower-cased) plus CAD `language` (lower-cased).
//! Without weights (the default) an agent having every wanted skill wins,
//! longest idle first (ties: lower load, then id); when none has them all,
//! the longest-idle candidate. Entry: CAD `topic` = `billing` joins
//! `billing`.
//!
//! Settings `{"weights": {"fr": 3, "billing": 2}}` switch to weighted
//! scoring: each candidate scores the sum of the weights of the wanted skills
//! it has (1 for a wanted skill not listed); the highest score wins, then
//! longest idle. Agents with every skill still score highest, but unlike the
//! default a partial match beats none.

use serde::Deserialize;
use std::collections::BTreeMap;
use switchboard_plugin::wire::{Candidate, Conversation, EntryRequest, RouteAnswer, RouteRequest};
use switchboard_plugin::{export_plugin, Agent, Error, Plugin, RouteCall, Routed, ROLE_ROUTING};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    weights: Option<BTreeMap<String, u32>>,
}

/// The plugin's instance.
#[derive(Debug)]
pub struct SkillsRouter {
    weights: Option<BTreeMap<String, u32>>,
}

/// Lua's `%s` in the C locale: space, \t, \n, \v, \f, \r.
fn lua_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// The wanted skills, in the order skills.lua builds them.
fn wanted(c: &Conversation) -> Vec<String> {
    wanted_of(
        c.cad.get("tags").map(String::as_str),
        c.cad.get("language").map(String::as_str),
    )
}

/// The wanted skills from CAD `tags` and `language`.
fn wanted_of(tags: Option<&str>, language: Option<&str>) -> Vec<String> {
    let mut w: Vec<String> = tags
        .map(|tags| {
            tags.split(|ch| ch == ',' || lua_space(ch))
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    if let Some(lang) = language.filter(|l| !l.is_empty()) {
        w.push(lang.to_ascii_lowercase());
    }
    w
}

/// The same order over the agent table.
fn table_key(a: &Agent) -> (u64, u32, &str) {
    (a.idle_since, a.load, a.id.as_str())
}

/// Whether `a` comes before `b` in [`table_key`]'s order (the ids are
/// compared only on a tie of the numbers).
#[inline]
fn before(a: &Agent, b: &Agent) -> bool {
    match (a.idle_since, a.load).cmp(&(b.idle_since, b.load)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => a.id < b.id,
    }
}

/// The first of `agents` in [`table_key`]'s order among those `keep` keeps.
#[inline]
fn first_of<'a>(
    agents: impl Iterator<Item = &'a Agent>,
    keep: impl Fn(&Agent) -> bool,
) -> Option<&'a Agent> {
    let mut best: Option<&Agent> = None;
    for a in agents {
        if keep(a) && best.is_none_or(|b| before(a, b)) {
            best = Some(a);
        }
    }
    best
}

/// `pick.longest_idle`'s order: idle_since, then load, then id.
fn idle_key(a: &Candidate) -> (u64, u32, &str) {
    (a.idle_since, a.load, a.id.as_str())
}

fn has_all(a: &Candidate, wanted: &[String]) -> bool {
    wanted.iter().all(|w| a.skills.iter().any(|s| s == w))
}

impl SkillsRouter {
    fn pick<'a>(&self, wanted: &[String], candidates: &'a [Candidate]) -> Option<&'a Candidate> {
        match &self.weights {
            None => candidates
                .iter()
                .filter(|a| has_all(a, wanted))
                .min_by(|a, b| idle_key(a).cmp(&idle_key(b)))
                .or_else(|| {
                    candidates
                        .iter()
                        .min_by(|a, b| idle_key(a).cmp(&idle_key(b)))
                }),
            Some(weights) => {
                let score = |a: &Candidate| -> u64 {
                    wanted
                        .iter()
                        .filter(|w| a.skills.iter().any(|s| s == *w))
                        .map(|w| u64::from(weights.get(w).copied().unwrap_or(1)))
                        .sum()
                };
                candidates.iter().min_by(|a, b| {
                    score(b)
                        .cmp(&score(a))
                        .then_with(|| idle_key(a).cmp(&idle_key(b)))
                })
            }
        }
    }
}

impl Plugin for SkillsRouter {
    const ROLES: u32 = ROLE_ROUTING;

    fn create(settings: serde_json::Value) -> Result<Self, Error> {
        let s: Settings = if settings.is_null() {
            Settings::default()
        } else {
            serde_json::from_value(settings).map_err(|e| Error::new(format!("settings: {e}")))?
        };
        Ok(SkillsRouter { weights: s.weights })
    }

    fn entry(&self, r: EntryRequest) -> Result<Option<String>, Error> {
        Ok(
            (r.conversation.cad.get("topic").map(String::as_str) == Some("billing"))
                .then(|| "billing".to_string()),
        )
    }

    const AGENT_TABLE: bool = true;

    /// The decision of [`Plugin::route`], over the agent table: wanted
    /// skills become the table's skill numbers once per call.
    fn route_agents(&self, call: &RouteCall<'_>) -> Result<Routed, Error> {
        let c = &call.conversation;
        let w = wanted_of(c.cad("tags"), c.cad("language"));
        let best = match &self.weights {
            None => {
                // A wanted skill no agent ever had: nobody has them all.
                let set = call.agents.skill_set(w.iter().map(String::as_str));
                set.and_then(|set| first_of(call.candidates(), |a| a.has_all(&set)))
                    .or_else(|| first_of(call.candidates(), |_| true))
            }
            Some(weights) => {
                let scored: Vec<(u32, u64)> = w
                    .iter()
                    .filter_map(|s| {
                        let id = call.agents.skill(s)?;
                        Some((id, u64::from(weights.get(s).copied().unwrap_or(1))))
                    })
                    .collect();
                let score = |a: &Agent| -> u64 {
                    scored
                        .iter()
                        .filter(|(id, _)| a.has_skill(*id))
                        .map(|(_, n)| n)
                        .sum()
                };
                call.candidates().min_by(|a, b| {
                    score(b)
                        .cmp(&score(a))
                        .then_with(|| table_key(a).cmp(&table_key(b)))
                })
            }
        };
        Ok(best.map_or(Routed::KeepQueued, |a| Routed::Agent(a.slot)))
    }

    fn route(&self, r: RouteRequest) -> Result<RouteAnswer, Error> {
        let w = wanted(&r.conversation);
        Ok(match self.pick(&w, &r.candidates) {
            Some(a) => RouteAnswer::Agent(a.id.clone()),
            None => RouteAnswer::KeepQueued,
        })
    }
}

export_plugin!(SkillsRouter);

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, idle_since: u64, skills: &[&str]) -> Candidate {
        Candidate {
            id: id.into(),
            idle_since,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn route(router: &SkillsRouter, cad: &[(&str, &str)], c: Vec<Candidate>) -> RouteAnswer {
        let mut conversation = Conversation::default();
        for (k, v) in cad {
            conversation.cad.insert(k.to_string(), v.to_string());
        }
        router
            .route(RouteRequest {
                conversation,
                candidates: c,
                ..Default::default()
            })
            .expect("route")
    }

    /// skills.lua's own self-test, and its entry rule.
    #[test]
    fn prefers_the_skilled_agent() {
        let r = SkillsRouter::create(serde_json::Value::Null).expect("create");
        let c = || vec![agent("a", 1, &["en"]), agent("b", 5, &["en", "fr"])];
        assert_eq!(
            route(&r, &[("language", "fr")], c()),
            RouteAnswer::Agent("b".into())
        );
        assert_eq!(route(&r, &[], c()), RouteAnswer::Agent("a".into()));
        assert_eq!(
            route(&r, &[("tags", "FR, en")], c()),
            RouteAnswer::Agent("b".into())
        );
        assert_eq!(
            route(&r, &[("language", "de")], c()),
            RouteAnswer::Agent("a".into())
        );
        assert_eq!(route(&r, &[], vec![]), RouteAnswer::KeepQueued);
    }

    #[test]
    fn weights_give_partial_matches_credit() {
        let r =
            SkillsRouter::create(serde_json::json!({"weights": {"billing": 5}})).expect("create");
        let c = vec![
            agent("a", 1, &["en"]),
            agent("b", 5, &["billing"]),
            agent("c", 9, &["fr", "billing"]),
        ];
        // Nobody has fr+billing+en: the weighted best is b or c (billing=5),
        // c has fr too (5+1), so c.
        assert_eq!(
            route(&r, &[("tags", "billing,en"), ("language", "fr")], c),
            RouteAnswer::Agent("c".into())
        );
        assert!(SkillsRouter::create(serde_json::json!({"wieghts": {}})).is_err());
    }
}
