//! `sb.pick.longest_idle`, the host's scan of the candidates: it picks
//! exactly what the Lua loop of `pick.lua` picks (on the call's own
//! candidates and on any other list), whatever the order, ties, loads and
//! skills (past the 64 skills that get a bit too), stays read-only and
//! counts against the instruction budget.

mod lua_support;

use lua_support::{bundled, spec, view, with_routing};
use switchboard_core::lua::Generation;
use switchboard_core::model::Cad;
use switchboard_core::routing::{Candidate, RouteDecision, RoutingPolicy};

/// The three ways must agree; the script errors (a fallback) if not.
const COMPARE: &str = r#"
local pick = require "pick"
return { route = function(conversation, candidates, ctx)
  local w = pick.words(conversation.cad.tags)
  local lua = pick.longest_idle(candidates, function(a) return pick.has_all(a, w) end)
  local host = sb.pick.longest_idle(candidates, w)
  local copy = {}
  for i = 1, #candidates do copy[i] = candidates[i] end
  local other = sb.pick.longest_idle(copy, w)
  local via_lib = pick.longest_idle(candidates, w)
  if host ~= lua or other ~= lua or via_lib ~= lua then
    error(("lua %s, host %s, other list %s"):format(
      lua and lua.id, host and host.id, other and other.id))
  end
  return lua and lua.id
end }
"#;

/// A small deterministic generator (the cases are the same on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

struct Agent {
    id: String,
    skills: Vec<String>,
}

/// The choice the bundled policies document: every wanted skill, then
/// the lowest idle_since, then the lowest load, then the lowest id.
fn expected(cands: &[Candidate<'_>], wanted: &[String]) -> Option<String> {
    cands
        .iter()
        .filter(|c| wanted.iter().all(|w| c.skills.contains(w)))
        .min_by(|a, b| (a.idle_since, a.load, a.id).cmp(&(b.idle_since, b.load, b.id)))
        .map(|c| c.id.to_string())
}

#[test]
fn the_host_scan_picks_what_the_lua_loop_picks() {
    let g = Generation::load(&with_routing(COMPARE), 1, 0).expect("loads");
    // 100 skills: past the 64 that get a bit.
    let skill_names: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    let mut rng = Rng(7);
    let agents: Vec<Agent> = (0..80)
        .map(|i| Agent {
            id: format!("agent{:02}", (i * 37) % 80),
            skills: (0..rng.next(6))
                .map(|_| skill_names[rng.next(100) as usize].clone())
                .collect(),
        })
        .collect();
    let mut picked = 0;
    for round in 0..400 {
        // A changing subset in a changing order, with ties.
        let n = 1 + rng.next(80) as usize;
        let start = rng.next(80) as usize;
        let cands: Vec<Candidate<'_>> = (0..n)
            .map(|k| {
                let a = &agents[(start + k * 7) % 80];
                Candidate {
                    id: &a.id,
                    name: &a.id,
                    load: rng.next(3) as u32,
                    capacity: 5,
                    idle_since: 1000 + rng.next(4),
                    skills: &a.skills,
                    stamp: 0,
                }
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        let cands: Vec<Candidate<'_>> = cands.into_iter().filter(|c| seen.insert(c.id)).collect();
        let wanted: Vec<String> = match round % 4 {
            0 => Vec::new(),
            1 => vec![skill_names[rng.next(100) as usize].clone()],
            2 => cands
                .get(rng.next(cands.len() as u64) as usize)
                .map(|c| c.skills.to_vec())
                .unwrap_or_default(),
            _ => vec!["s1".into(), "S70".into()],
        };
        let mut cad = Cad::new();
        cad.insert("tags".into(), wanted.join(","));
        let wanted: Vec<String> = wanted.iter().map(|w| w.to_lowercase()).collect();
        let d = g.route(&view(&cad, None), &cands);
        let want = expected(&cands, &wanted);
        let report = g.report();
        assert_eq!(
            d,
            want.clone()
                .map_or(RouteDecision::KeepQueued, RouteDecision::Agent),
            "round {round}, wanted {wanted:?}: {:?}",
            report[0].last_errors
        );
        picked += usize::from(want.is_some());
    }
    assert!(picked > 150, "most rounds pick someone ({picked})");
}

#[test]
fn the_bundled_skills_policy_falls_back_to_any_candidate() {
    let g = Generation::load(&spec(bundled(), Some("routing/skills.lua")), 1, 0).expect("loads");
    let (en, fr): (Vec<String>, Vec<String>) = (vec!["en".into()], vec!["en".into(), "fr".into()]);
    let cands = [
        Candidate {
            id: "a",
            name: "A",
            load: 0,
            capacity: 2,
            idle_since: 5,
            skills: &en,
            stamp: 0,
        },
        Candidate {
            id: "b",
            name: "B",
            load: 1,
            capacity: 2,
            idle_since: 9,
            skills: &fr,
            stamp: 0,
        },
    ];
    let mut cad = Cad::new();
    cad.insert("language".into(), "FR".into());
    assert_eq!(
        g.route(&view(&cad, None), &cands),
        RouteDecision::Agent("b".into())
    );
    cad.insert("tags".into(), "billing".into());
    assert_eq!(
        g.route(&view(&cad, None), &cands),
        RouteDecision::Agent("a".into()),
        "nobody has every skill: the longest idle"
    );
}

fn failure(source: &str, n: usize) -> (RouteDecision, String, &'static str, Option<u32>) {
    let g = Generation::load(&with_routing(source), 1, 0).expect("loads");
    let ids: Vec<String> = (0..n).map(|i| format!("agent{i}")).collect();
    let none = Vec::new();
    let cands: Vec<Candidate<'_>> = ids
        .iter()
        .map(|id| Candidate {
            id,
            name: id,
            load: 0,
            capacity: 1,
            idle_since: 1,
            skills: &none,
            stamp: 0,
        })
        .collect();
    let d = g.route(&view(&Cad::new(), None), &cands);
    let f = g.report()[0]
        .last_errors
        .first()
        .cloned()
        .expect("a failure");
    (d, f.message, f.kind, f.line)
}

#[test]
fn host_scans_count_against_the_budget() {
    let (d, m, kind, line) = failure(
        "return { route = function(c, cands)\n  while true do sb.pick.longest_idle(cands, { 'x' }) end\nend }",
        500,
    );
    assert_eq!(d, RouteDecision::Fallback);
    assert_eq!((kind, line), ("timeout", Some(2)), "{m}");
    let (d, _, kind, line) = failure(
        "return { route = function(c, cands)\n  local l = {}\n  for i = 1, 1000 do l[i] = cands[1] end\n  while true do sb.pick.longest_idle(l) end\nend }",
        3,
    );
    assert_eq!(d, RouteDecision::Fallback);
    assert_eq!((kind, line), ("timeout", Some(4)));
}

#[test]
fn sb_pick_is_read_only_and_checks_its_arguments() {
    let (d, m, kind, line) = failure(
        "return { route = function(c, cands)\n  sb.pick.longest_idle = nil\nend }",
        2,
    );
    assert_eq!(d, RouteDecision::Fallback);
    assert_eq!((kind, line), ("error", Some(2)));
    assert!(m.contains("sb.pick is read-only"), "{m}");
    let (_, m, kind, _) = failure(
        "return { route = function(c, cands) return sb.pick.longest_idle(42) end }",
        2,
    );
    assert_eq!(kind, "error");
    assert!(
        m.contains("candidates must be a list of agents, not a integer"),
        "{m}"
    );
    let (_, m, _, _) = failure(
        "return { route = function(c, cands) return sb.pick.longest_idle({ 1 }) end }",
        2,
    );
    assert!(m.contains("candidate 1 is a integer"), "{m}");
    let (_, m, _, _) = failure(
        "return { route = function(c, cands) return sb.pick.longest_idle(cands, 'fr') end }",
        2,
    );
    assert!(m.contains("wanted must be a list of skills"), "{m}");
}
