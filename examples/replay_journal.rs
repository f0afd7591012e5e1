//! A synthetic journal to measure `switchboard scripts replay`: a tenant of
//! 100 agents (capacity 5, skills), its live policy `routing/skills.lua`,
//! and N conversations (default 50,000: about a day of such a tenant),
//! each offered once by the live policy, accepted, and ended with a
//! wrap-up a few hundred conversations later, so agents' loads and idle
//! times vary. Everything goes through the real engine; the events are
//! written to `DIR/data/switchboard.db` as the server's journal holds them.
//!
//! ```text
//! cargo run --release --example replay_journal -- /tmp/day [N]
//! time target/release/switchboard scripts replay --config /tmp/day/switchboard.toml \
//!     --tenant day --routing routing/longest_idle.lua
//! ```

use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::path::PathBuf;
use switchboard_core::command::CustomerMessage;
use switchboard_core::engine::Engine;
use switchboard_core::model::Cad;
use switchboard_core::{Command, Event, Extensions, Masker};

const AGENTS: usize = 100;
/// Conversations open at once (accepted, not yet ended).
const OPEN: usize = 300;

fn config(dir: &std::path::Path) -> String {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut s = format!(
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
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: replay_journal DIR [N]")?);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50_000);
    std::fs::create_dir_all(dir.join("data"))?;
    let cfg_path = dir.join("switchboard.toml");
    std::fs::write(&cfg_path, config(&dir))?;
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
    let db = dir.join("data/switchboard.db");
    let _ = std::fs::remove_file(&db);
    let mut conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(
        "CREATE TABLE events (tenant TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
         conversation INTEGER, body TEXT NOT NULL, PRIMARY KEY (tenant, seq));",
    )?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO events (tenant, seq, type, conversation, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (seq, e) in events.iter().enumerate() {
            insert.execute(rusqlite::params![
                t.id,
                seq as i64 + 1,
                e.type_name(),
                e.conversation().map(|c| c as i64),
                serde_json::to_string(e)?
            ])?;
        }
    }
    tx.commit()?;
    let offers = events
        .iter()
        .filter(|e| matches!(e, Event::Offer { .. }))
        .count();
    println!(
        "{}: {} events, {offers} routing decisions; config {}",
        db.display(),
        events.len(),
        cfg_path.display()
    );
    Ok(())
}
