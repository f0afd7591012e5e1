//! Journal replay: a candidate routing policy asked every routing decision
//! a tenant's journal holds, with exactly the inputs the live policy had
//! (`switchboard scripts replay`, `POST /admin/tenants/{tenant}/replay`).
//!
//! The journal's events are applied one by one to a fresh engine, as on
//! recovery; just before an offer made from a queue is applied, the
//! engine's state is the state the live policy was asked in (the offers
//! made before it in the same dispatch already applied), so
//! `Engine::with_routing_inputs` gives the very view and candidates it
//! saw: agents' states, loads and skills, the conversation as masked.
//! The candidate's answer is resolved by the engine's own rule
//! (`RouteDecision::resolve`) and compared with the agent the journal
//! says got the offer.
//!
//! Decisions that kept a conversation queued leave nothing in the
//! journal: a replay compares the decisions that made an offer.
//! **Invariant:** deterministic: the same journal and script give the
//! same report, byte for byte (time is the journal's, maps are ordered);
//! `tests/replay.rs`.
//!
//! The journal is read through [`Store::journal`], so one path serves
//! both stores: the running server's own (the admin route), or the one a
//! configuration names, opened for reading only by [`open_journal`] (the
//! command), beside a server that keeps writing.

use crate::config::{Config, TenantConfig};
use crate::generation::RoutingCandidate;
use crate::store::{PgStore, SqliteStore, Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use switchboard_core::engine::Engine;
use switchboard_core::model::{ConversationId, Millis, OfferKind};
use switchboard_core::routing::{RouteDecision, RoutingPolicy};
use switchboard_core::{Event, Masker};

/// Why a journal could not be replayed. Each text is whole, cause
/// included (it is what `POST …/replay` answers too).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No SQLite database where the configuration says (`data_dir`).
    #[error("no journal at {}", .0.display())]
    NoJournal(PathBuf),
    /// The store could not be opened: `what` names it (a path, or "the
    /// PostgreSQL journal": a URL may hold a password, never printed).
    #[error("opening {what}: {cause}")]
    Open { what: String, cause: StoreError },
    /// Reading failed, or an event did not decode
    /// ([`StoreError::Unreadable`]: the tenant and the event's number).
    #[error("reading the journal: {0}")]
    Read(StoreError),
    #[error("the tenant's mask patterns: {0}")]
    MaskPatterns(switchboard_core::masking::MaskError),
}

type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// Disagreements kept in a report (the first ones, in journal order).
pub const SAMPLE: usize = 20;

/// The part of the journal replayed: offers made at `since` ≤ t < `until`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub since: Option<Millis>,
    pub until: Option<Millis>,
}

impl Window {
    fn contains(&self, at: Millis) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at < u)
    }
}

/// Offers an agent got: from the live policy, and from the candidate.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Offers {
    pub live: u64,
    pub candidate: u64,
}

/// A decision the candidate made otherwise (ids only).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub conversation: ConversationId,
    pub at: String,
    pub live: String,
    /// `None`: the candidate kept it queued.
    pub candidate: Option<String>,
}

/// A candidate's failure (file:line), as counted during the replay.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub line: Option<u32>,
    pub kind: &'static str,
    pub message: String,
}

/// What a replay found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub tenant: String,
    pub routing: String,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Routing decisions replayed (offers made from a queue in the window).
    pub decisions: u64,
    /// The candidate offered it to the same agent.
    pub agreed: u64,
    /// The candidate chose another agent, or kept it queued.
    pub changed: u64,
    /// The candidate failed (its error is counted; the built-in policy
    /// would have decided).
    pub errors: u64,
    /// Decisions where the live policy itself had failed and the built-in
    /// one decided (offers recorded with generation 0).
    pub live_fallbacks: u64,
    /// Offers per agent, live and with the candidate.
    pub offers: BTreeMap<String, Offers>,
    /// The first disagreements, in journal order.
    pub disagreements: Vec<Change>,
    /// The candidate's last failures, with file:line.
    pub last_errors: Vec<Failure>,
}

/// A replay in progress: feed it the journal's events in order.
pub struct Replayer<'a> {
    engine: Engine,
    candidate: &'a RoutingCandidate,
    window: Window,
    report: Report,
}

impl<'a> Replayer<'a> {
    pub fn new(
        t: &TenantConfig,
        candidate: &'a RoutingCandidate,
        routing: &str,
        window: Window,
    ) -> Result<Replayer<'a>> {
        let masker = Masker::new(&t.mask_patterns).map_err(ReplayError::MaskPatterns)?;
        let engine = Engine::new(t.settings(), masker, t.queue_configs(), t.agent_configs());
        Ok(Replayer {
            engine,
            candidate,
            window,
            report: Report {
                tenant: t.id.clone(),
                routing: routing.to_string(),
                since: window.since.map(crate::clock::rfc3339),
                until: window.until.map(crate::clock::rfc3339),
                decisions: 0,
                agreed: 0,
                changed: 0,
                errors: 0,
                live_fallbacks: 0,
                offers: BTreeMap::new(),
                disagreements: Vec::new(),
                last_errors: Vec::new(),
            },
        })
    }

    /// Apply the next event of the journal, asking the candidate first
    /// when it is a routing decision in the window.
    pub fn event(&mut self, event: &Event) {
        if let Event::Offer {
            conversation,
            agent,
            kind: OfferKind::Queue,
            generation,
            at,
            ..
        } = event
        {
            if self.window.contains(*at) {
                self.decision(*conversation, agent, *generation, *at);
            }
        }
        self.engine.apply(event);
    }

    fn decision(&mut self, id: ConversationId, live: &str, generation: u64, at: Millis) {
        let candidate = self.candidate;
        candidate.set_now(at);
        let asked = self.engine.with_routing_inputs(id, |view, candidates| {
            match candidate.route(view, candidates) {
                RouteDecision::Fallback => Err(()),
                d => Ok(d
                    .resolve(candidates, candidate.generation())
                    .map(|(a, _)| a)),
            }
        });
        // The journal made an offer, so someone could take it; a state
        // that says otherwise is counted as a change to nobody.
        let asked = asked.unwrap_or(Ok(None));
        let r = &mut self.report;
        r.decisions += 1;
        if generation == 0 {
            r.live_fallbacks += 1;
        }
        r.offers.entry(live.to_string()).or_default().live += 1;
        match asked {
            Err(()) => r.errors += 1,
            Ok(chosen) => {
                if let Some(a) = &chosen {
                    r.offers.entry(a.clone()).or_default().candidate += 1;
                }
                if chosen.as_deref() == Some(live) {
                    r.agreed += 1;
                } else {
                    r.changed += 1;
                    if r.disagreements.len() < SAMPLE {
                        r.disagreements.push(Change {
                            conversation: id,
                            at: crate::clock::rfc3339(at),
                            live: live.to_string(),
                            candidate: chosen,
                        });
                    }
                }
            }
        }
    }

    pub fn finish(mut self) -> Report {
        self.report.last_errors = self
            .candidate
            .report()
            .into_iter()
            .flat_map(|r| r.last_errors)
            .map(|f| Failure {
                file: f.file,
                line: f.line,
                kind: f.kind,
                message: f.message,
            })
            .collect();
        self.report
    }
}

/// The journal the configuration names, for reading only: the SQLite
/// database under `data_dir` (read-only: a running server may keep
/// writing), or the PostgreSQL one of `database_url`, without joining the
/// cluster (no heartbeat, no lease, no schema change).
pub fn open_journal(cfg: &Config) -> Result<Box<dyn Store>> {
    match &cfg.database_url {
        None => {
            let path = cfg.data_dir.join("switchboard.db");
            if !path.is_file() {
                return Err(ReplayError::NoJournal(path));
            }
            let store =
                SqliteStore::open_read_only(&cfg.data_dir).map_err(|cause| ReplayError::Open {
                    what: path.display().to_string(),
                    cause,
                })?;
            Ok(Box::new(store))
        }
        Some(url) => {
            let store = PgStore::open_read_only(url).map_err(|cause| ReplayError::Open {
                what: "the PostgreSQL journal (database_url)".into(),
                cause,
            })?;
            Ok(Box::new(store))
        }
    }
}

/// Read tenant `t`'s journal from `store`, in order and never whole, and
/// replay it; reading stops at the first offer at or after the window's
/// end.
pub fn replay_journal(
    store: &dyn Store,
    t: &TenantConfig,
    candidate: &RoutingCandidate,
    routing: &str,
    window: Window,
) -> Result<Report> {
    let mut replayer = Replayer::new(t, candidate, routing, window)?;
    store
        .journal(&t.id, &mut |_, event| {
            if let (Some(until), Some(at)) = (window.until, event_time(&event)) {
                if at >= until {
                    return ControlFlow::Break(());
                }
            }
            replayer.event(&event);
            ControlFlow::Continue(())
        })
        .map_err(ReplayError::Read)?;
    Ok(replayer.finish())
}

/// When an offer was made (the only events the window is checked on).
fn event_time(e: &Event) -> Option<Millis> {
    match e {
        Event::Offer { at, .. } => Some(*at),
        _ => None,
    }
}

impl Report {
    /// The report for people: counts, offers per agent, the sample.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let pct = |n: u64| {
            if self.decisions == 0 {
                "-".to_string()
            } else {
                format!("{:.1}%", n as f64 * 100.0 / self.decisions as f64)
            }
        };
        let _ = writeln!(
            s,
            "tenant {}, candidate {}, from {} to {}",
            self.tenant,
            self.routing,
            self.since.as_deref().unwrap_or("the start"),
            self.until.as_deref().unwrap_or("the end"),
        );
        let _ = writeln!(s, "decisions  {}", self.decisions);
        let _ = writeln!(s, "agreed     {} ({})", self.agreed, pct(self.agreed));
        let _ = writeln!(s, "changed    {} ({})", self.changed, pct(self.changed));
        let _ = writeln!(s, "errors     {} ({})", self.errors, pct(self.errors));
        if self.live_fallbacks > 0 {
            let _ = writeln!(
                s,
                "(the live policy itself failed {} time(s): the built-in policy decided)",
                self.live_fallbacks
            );
        }
        let _ = writeln!(s, "\noffers per agent   live  candidate");
        for (agent, o) in &self.offers {
            let _ = writeln!(s, "  {agent:<16} {:>5}  {:>9}", o.live, o.candidate);
        }
        if !self.disagreements.is_empty() {
            let _ = writeln!(
                s,
                "\ndisagreements (first {} of {}):",
                self.disagreements.len(),
                self.changed
            );
            for d in &self.disagreements {
                let _ = writeln!(
                    s,
                    "  conversation {} at {}: live {}, candidate {}",
                    d.conversation,
                    d.at,
                    d.live,
                    d.candidate.as_deref().unwrap_or("(kept queued)")
                );
            }
        }
        for f in &self.last_errors {
            let _ = writeln!(
                s,
                "error: {}:{}: {} ({})",
                f.file,
                f.line.map_or_else(|| "?".into(), |l| l.to_string()),
                f.message,
                f.kind
            );
        }
        s
    }
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_time(s: &str) -> std::result::Result<Millis, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("{s:?} is before 1970"))
}
