//! How long the console's reports take for a busy day: 50,000
//! conversations over 100 agents and two queues (queued, accepted after a
//! wait, handled, ended, wrapped up; one in ten first missed by an agent
//! (RONA), one in fifty dropped), recorded as the server records committed
//! events, then the day's queue and agent figures asked for.
//!
//! ```sh
//! cargo run --release --example reports_day
//! ```
//! Prints the median and worst of 20 requests of each kind.

use std::time::{Duration, Instant};
use switchboard::reports::Reports;
use switchboard_core::model::{Cad, StateName};
use switchboard_core::Event;

const CONVERSATIONS: u64 = 50_000;
const AGENTS: u64 = 100;
const DAY: u64 = 86_400_000;

fn day() -> Vec<Event> {
    let mut events = Vec::new();
    for a in 0..AGENTS {
        events.push(Event::AgentState {
            agent: format!("a{a}"),
            state: StateName::Available,
            reason: None,
            at: 0,
        });
    }
    for i in 0..CONVERSATIONS {
        let at = i * (DAY - 600_000) / CONVERSATIONS;
        let queue = if i % 3 == 0 { "billing" } else { "support" }.to_string();
        let agent = format!("a{}", i % AGENTS);
        events.push(Event::Queued {
            conversation: i + 1,
            queue: queue.clone(),
            at,
        });
        if i % 50 == 0 {
            events.push(Event::ConversationDropped {
                conversation: i + 1,
                reason: switchboard_core::engine::CUSTOMER_LEFT.into(),
                at: at + 60_000,
            });
            continue;
        }
        if i % 10 == 0 {
            events.push(Event::OfferRescinded {
                conversation: i + 1,
                agent: agent.clone(),
                reason: "timeout".into(),
            });
        }
        let start = at + 5_000 + (i % 40) * 1_000;
        events.push(Event::ConversationStarted {
            conversation: i + 1,
            agent: agent.clone(),
            queue: queue.clone(),
            channel: "webchat".into(),
            customer: format!("c{i}"),
            customer_name: "Customer".into(),
            source: "Web chat".into(),
            received_at: at,
            cad: Cad::new(),
            at: start,
        });
        let end = start + 120_000 + (i % 300) * 1_000;
        events.push(Event::ConversationEnded {
            conversation: i + 1,
            by: agent.clone(),
            at: end,
        });
        events.push(Event::WrapupSubmitted {
            conversation: i + 1,
            agent,
            reason: ["resolved", "follow_up", "other"][(i % 3) as usize].into(),
            at: end + 10_000,
        });
    }
    // Recorded in time order, as commits come.
    events.sort_by_key(|e| e.at().unwrap_or(0));
    events
}

fn measure(what: &str, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{what}: median {:.1} ms, worst {:.1} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let events = day();
    let mut reports = Reports::default();
    let t = Instant::now();
    for chunk in events.chunks(8) {
        reports.record(chunk, chunk.last().and_then(Event::at).unwrap_or(0));
    }
    reports.advance(DAY);
    println!(
        "{} events of {CONVERSATIONS} conversations recorded in {:.0} ms ({} facts)",
        events.len(),
        t.elapsed().as_secs_f64() * 1e3,
        reports.len()
    );
    let queues = ["support".to_string(), "billing".to_string()];
    let agents: Vec<String> = (0..AGENTS).map(|a| format!("a{a}")).collect();
    let q = reports.queues(0, DAY, &queues);
    let offered: u64 = q.iter().map(|f| f.offered).sum();
    assert_eq!(offered, CONVERSATIONS, "every conversation offered once");
    measure("queue report for the day", || {
        std::hint::black_box(reports.queues(0, DAY, &queues));
    });
    measure("agent report for the day", || {
        std::hint::black_box(reports.agents(0, DAY, &agents));
    });
    measure("queue report as CSV", || {
        std::hint::black_box(switchboard::reports::queues_csv(
            &reports.queues(0, DAY, &queues),
        ));
    });
}
