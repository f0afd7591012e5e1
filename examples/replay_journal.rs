//! A synthetic journal to measure `switchboard scripts replay`: a tenant of
//! 100 agents (capacity 5, skills), its live policy `routing/skills.lua`,
//! and N conversations (default 50,000: about a day of such a tenant),
//! each offered once by the live policy, accepted, and ended with a
//! wrap-up a few hundred conversations later, so agents' loads and idle
//! times vary. Everything goes through the real engine; the events are
//! appended through the store as the server's journal holds them: to
//! `DIR/data/switchboard.db`, or with `--database-url` to that PostgreSQL
//! database (a fresh one: the tenant must have no journal there yet), which
//! the configuration written then names.
//!
//! ```text
//! cargo run --release --example replay_journal -- /tmp/day [N] [--database-url URL]
//! time target/release/switchboard scripts replay --config /tmp/day/switchboard.toml \
//!     --tenant day --routing routing/longest_idle.lua
//! ```

use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::path::PathBuf;
use switchboard::store::{PgStore, Row, SqliteStore, Store, StoreError, SyncMode};
use switchboard_core::command::CustomerMessage;
use switchboard_core::engine::Engine;
use switchboard_core::model::Cad;
use switchboard_core::{Command, Event, Extensions, Masker};

const AGENTS: usize = 100;
/// Conversations open at once (accepted, not yet ended).
const OPEN: usize = 300;

/// Events appended per commit.
const BATCH: usize = 5_000;

fn config(dir: &std::path::Path, database_url: Option<&str>) -> String {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut s = database_url
        .map(|u| format!("database_url = {u:?}\n"))
        .unwrap_or_default();
    s += &format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[tenants]]\nid = \"day\"\nmask = true\ndefault_queue = \"support\"\nscripts_dir = {:?}\nrouting = \"routing/skills.lua\"\n\n[[tenants.queues]]\nid = \"support\"\n\n[[tenants.queues]]\nid = \"billing\"\n",
        dir.join("data"),
        scripts
    );
    let skills = ["en", "fr", "de", "billing", "vip"];
    for i in 0..AGENTS {
        let mine: Vec<String> = skills
            .iter()
            .enumerate()
            .filter(|(k, _)| (i + k) % 3 != 0)
            .map(|(_, s)| format!("{s:?}"))
            .collect();
        s.push_str(&format!(
            "\n[[tenants.agents]]\nid = \"agent{i:03}\"\nname = \"Agent {i}\"\npassword = \"x\"\ncapacity = 5\nqueues = [\"support\", \"billing\"]\nskills = [{}]\n",
            mine.join(", ")
        ));
    }
    s
}

fn main() -> Result<()> {
    const USAGE: &str = "usage: replay_journal DIR [N] [--database-url URL]";
    let mut database_url = None;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--database-url" {
            database_url = Some(args.next().context(USAGE)?);
        } else {
            positional.push(a);
        }
    }
    let mut positional = positional.into_iter();
    let dir = PathBuf::from(positional.next().context(USAGE)?);
    let n: usize = positional
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    std::fs::create_dir_all(dir.join("data"))?;
    let cfg_path = dir.join("switchboard.toml");
    std::fs::write(&cfg_path, config(&dir, database_url.as_deref()))?;
    let cfg = switchboard::config::Config::load(Some(&cfg_path))?;
    let t = cfg.tenants.first().context("the tenant")?;
    let live = switchboard::generation::load(t, 1, 0)
        .map_err(|e| anyhow::anyhow!("live policy: {e:?}"))?;
    let ext = Extensions {
        routing: &live,
        wrapup: Extensions::builtin().wrapup,
        channels: Extensions::builtin().channels,
    };
    let mut engine = Engine::new(
        t.settings(),
        Masker::new(&t.mask_patterns)?,
        t.queue_configs(),
        t.agent_configs(),
    );
    let mut events: Vec<Event> = Vec::new();
    let mut now = 1_780_000_000_000u64;
    let run = |engine: &mut Engine, c: Command, now: u64, events: &mut Vec<Event>| {
        live.set_now(now);
        match engine.handle(c, now, &ext) {
            Ok(out) => {
                let offered: Vec<(u64, String)> = out
                    .events()
                    .filter_map(|e| match e {
                        Event::Offer {
                            conversation,
                            agent,
                            ..
                        } => Some((*conversation, agent.clone())),
                        _ => None,
                    })
                    .collect();
                events.extend(out.events().cloned());
                offered
            }
            Err(_) => Vec::new(),
        }
    };
    for i in 0..AGENTS {
        let agent = format!("agent{i:03}");
        run(
            &mut engine,
            Command::Login {
                agent: agent.clone(),
            },
            now,
            &mut events,
        );
        run(
            &mut engine,
            Command::SetAvailable { agent },
            now,
            &mut events,
        );
    }
    let langs = ["en", "fr", "de", "es"];
    let mut open: VecDeque<(u64, String)> = VecDeque::new();
    let reason = ext.wrapup.reasons("support")[0].code.clone();
    for i in 0..n {
        now += 1_500;
        let mut cad = Cad::new();
        cad.insert("language".into(), langs[i % langs.len()].into());
        if i % 7 == 0 {
            cad.insert("tags".into(), "vip".into());
        }
        let msg = CustomerMessage {
            channel: "webchat".into(),
            customer: format!("c{i}"),
            customer_name: Some("Customer".into()),
            text: format!("Hello, my card is 4111 1111 1111 1111 ({i})"),
            source: "Web chat".into(),
            queue: if i % 5 == 0 { "billing" } else { "support" }.into(),
            cad,
            external_id: None,
            attachments: Vec::new(),
            sent_at: None,
        };
        for (conversation, agent) in
            run(&mut engine, Command::CustomerMessage(msg), now, &mut events)
        {
            run(
                &mut engine,
                Command::Accept {
                    agent: agent.clone(),
                    conversation,
                },
                now + 200,
                &mut events,
            );
            open.push_back((conversation, agent));
        }
        while open.len() > OPEN {
            let Some((conversation, agent)) = open.pop_front() else {
                break;
            };
            run(
                &mut engine,
                Command::End {
                    agent: agent.clone(),
                    conversation,
                },
                now + 400,
                &mut events,
            );
            run(
                &mut engine,
                Command::WrapUp {
                    agent,
                    conversation,
                    reason: reason.clone(),
                },
                now + 600,
                &mut events,
            );
        }
    }
    let (store, place): (Box<dyn Store>, String) = match &database_url {
        Some(url) => (
            Box::new(PgStore::open(url)?),
            "the PostgreSQL database".into(),
        ),
        None => {
            let data = dir.join("data");
            for f in ["switchboard.db", "switchboard.db-wal", "switchboard.db-shm"] {
                let _ = std::fs::remove_file(data.join(f));
            }
            let place = data.join("switchboard.db").display().to_string();
            (Box::new(SqliteStore::open(&data, SyncMode::Normal)?), place)
        }
    };
    if store.recover(&t.id)?.last_seq > 0 {
        anyhow::bail!("{place} already holds a journal of tenant {}", t.id);
    }
    let mut seq = 0;
    for chunk in events.chunks(BATCH) {
        let mut rows = Vec::with_capacity(chunk.len());
        for e in chunk {
            seq += 1;
            rows.push(Row {
                seq,
                kind: e.type_name(),
                conversation: e.conversation(),
                body: serde_json::to_string(e)?,
            });
        }
        store
            .append(&t.id, 0, rows, Box::new(|| {}))
            .blocking_recv()
            .unwrap_or(Err(StoreError::Stopped))?;
    }
    let offers = events
        .iter()
        .filter(|e| matches!(e, Event::Offer { .. }))
        .count();
    println!(
        "{place}: {} events, {offers} routing decisions; config {}",
        events.len(),
        cfg_path.display()
    );
    Ok(())
}
