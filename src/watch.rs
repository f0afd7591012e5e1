//! `switchboard serve --watch` (development): reload a tenant when one of
//! its script files changes, and print what the reload found as
//! `tenant: file:line: message`.
//!
//! The watcher is a plain thread beside the server: every half second it
//! compares each tenant's script files (path, size, modification time)
//! with what it saw, and on a change asks the server's own admin reload
//! (`POST /admin/tenants/{tenant}/reload` on loopback), so a watched
//! reload is exactly an admin's: built beside the live generation,
//! swapped only when valid. Tenants on the bundled scripts are not
//! watched.

use crate::config::Config;
use crate::scripts::{source_of, ScriptSource};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use switchboard_core::lua::SCRIPT_FOLDERS;

/// How often the files are looked at.
const EVERY: Duration = Duration::from_millis(500);

type Seen = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

fn scan(dir: &Path) -> Seen {
    let mut seen = Seen::new();
    let mut stack: Vec<PathBuf> = SCRIPT_FOLDERS.iter().map(|f| dir.join(f)).collect();
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if e.path().extension().is_some_and(|x| x == "lua") {
                seen.insert(e.path(), (meta.len(), meta.modified().ok()));
            }
        }
    }
    seen
}

/// One admin reload over loopback: (status, body).
fn reload(addr: SocketAddr, token: &str, tenant: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "POST /admin/tenants/{tenant}/reload HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// What a reload answered, as lines for the developer.
fn describe(tenant: &str, status: u16, body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    match status {
        200 => vec![format!(
            "{tenant}: reloaded (generation {})",
            v["generation"]
        )],
        422 => v["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{tenant}: {}:{}: {}",
                            e["file"].as_str().unwrap_or("?"),
                            e["line"]
                                .as_u64()
                                .map_or_else(|| "?".to_string(), |l| l.to_string()),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![format!(
            "{tenant}: reload answered {status}: {}",
            body.trim()
        )],
    }
}

/// Start watching the tenants' script folders; reloads go to the server
/// at `addr` with the admin `token`.
pub fn start(cfg: &Config, addr: SocketAddr, token: String) -> std::io::Result<()> {
    let dirs: Vec<(String, PathBuf)> = cfg
        .tenants
        .iter()
        .filter_map(|t| match source_of(t) {
            ScriptSource::Dir(d) => Some((t.id.clone(), d)),
            ScriptSource::Bundled => None,
        })
        .collect();
    for (tenant, dir) in &dirs {
        println!("Watching {} for tenant {tenant}", dir.display());
    }
    std::thread::Builder::new()
        .name("script-watch".into())
        .spawn(move || {
            let mut seen: Vec<Seen> = dirs.iter().map(|(_, d)| scan(d)).collect();
            loop {
                std::thread::sleep(EVERY);
                for ((tenant, dir), before) in dirs.iter().zip(seen.iter_mut()) {
                    let now = scan(dir);
                    if now == *before {
                        continue;
                    }
                    *before = now;
                    match reload(addr, &token, tenant) {
                        Ok((status, body)) => {
                            for line in describe(tenant, status, &body) {
                                println!("{line}");
                            }
                        }
                        Err(e) => println!("{tenant}: cannot reach the server to reload: {e}"),
                    }
                }
            }
        })?;
    Ok(())
}
