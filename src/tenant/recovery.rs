//! A tenant's state read back from the store: the engine from its
//! snapshot and the journal after it, and the report figures of the days
//! before the snapshot.

use crate::config::TenantConfig;
use crate::store::{Recovered, Store};
use switchboard_core::engine::Engine;
use switchboard_core::model::Millis;
use switchboard_core::{Event, Masker};

/// Events read back per page by [`report_history`].
const HISTORY_PAGE: usize = 10_000;

/// The journal's events up to `snapshot_seq` (what the latest snapshot
/// covers) from `reports_days` days before `now` on, in journal order: the
/// report figures of that time, which the snapshot does not keep. Read
/// backwards until an event older than that; a failed read is logged and
/// leaves the figures to what was read (the engine does not need them).
pub(super) fn report_history(
    store: &dyn Store,
    config: &TenantConfig,
    snapshot_seq: u64,
    now: Millis,
) -> Vec<Event> {
    let since = now.saturating_sub(config.reports_days.saturating_mul(24 * 3_600_000));
    let mut events = Vec::new();
    let mut before = snapshot_seq.saturating_add(1);
    'pages: while before > 1 && config.reports_days > 0 {
        let page = match store.events_before(&config.id, before, HISTORY_PAGE) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(tenant = %config.id, error = %e, "reading the journal for the reports");
                break;
            }
        };
        let Some(&(last, _)) = page.last() else {
            break;
        };
        for (_, ev) in page {
            // A conversation put back in its queue keeps its first queueing
            // time: only the other events say where the window ends.
            let old = !matches!(ev, Event::Queued { .. }) && ev.at().is_some_and(|at| at < since);
            if old {
                break 'pages;
            }
            events.push(ev);
        }
        before = last;
    }
    events.reverse();
    if !events.is_empty() {
        tracing::info!(tenant = %config.id, events = events.len(), "report figures read back from the journal");
    }
    events
}

/// The tenant's engine as the journal left it: configuration, then the
/// snapshot, then the events after it.
pub(super) fn recovered_engine(
    config: &TenantConfig,
    masker: Masker,
    recovered: Recovered,
) -> Engine {
    let mut engine = Engine::new(
        config.settings(),
        masker,
        config.queue_configs(),
        config.agent_configs(),
    );
    engine.seed_roles(config.agents.iter().map(|a| (a.id.clone(), a.role)));
    if let Some(snap) = recovered.snapshot {
        engine.restore(snap);
    }
    for ev in &recovered.events {
        engine.apply(ev);
    }
    if let Err(e) = engine.check_invariants() {
        tracing::warn!(tenant = %config.id, error = %e, "recovered state is inconsistent");
    }
    engine
}
