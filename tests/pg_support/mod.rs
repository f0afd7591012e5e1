//! A throwaway PostgreSQL database per test: [`fresh_database`] creates
//! one on the server named by `SWITCHBOARD_TEST_DATABASE_URL` (or the local
//! one at `postgres://postgres@127.0.0.1:5432/postgres`), and the guard
//! drops it again. Without a server the PostgreSQL tests are skipped, said
//! once; with `SWITCHBOARD_TEST_DATABASE_URL` set, a server that does not
//! answer is a failure, not a skip (CI sets it).
//!
//! The synchronous client runs a runtime of its own, so every call here
//! runs on a thread of its own: the guard can be made and dropped inside
//! `#[tokio::test]` too.

#![allow(dead_code)] // each test crate uses its own part of this

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Duration;

/// The variable naming the test server (a database URL; any database on
/// it, the tests create their own).
pub const URL_VAR: &str = "SWITCHBOARD_TEST_DATABASE_URL";
/// Tried when [`URL_VAR`] is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test; dropped (with its connections) when
/// the guard is.
#[derive(Debug)]
pub struct PgDb {
    /// The URL of the new database.
    pub url: String,
    /// Its name.
    pub name: String,
    /// The server's URL (its maintenance database), to drop it from.
    admin: String,
}

/// A new, empty database on the test server, or `None` (said once) when
/// no server answers and none was named.
pub fn fresh_database(tag: &str) -> Option<PgDb> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let (admin, named) = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => (url, true),
        _ => (DEFAULT_URL.to_string(), false),
    };
    if !reachable(&admin) {
        if named {
            panic!("{URL_VAR} is set ({admin}) but that PostgreSQL server does not answer");
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Written to the process's stderr itself: the test harness
            // hides what a passing test prints, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "PostgreSQL not reachable (set {URL_VAR}): skipping PostgreSQL tests"
            );
        });
        return None;
    }
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!(
        "sb_test_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        tag
    );
    name.truncate(63); // PostgreSQL's identifier limit
    let create = format!("CREATE DATABASE \"{name}\"");
    on_own_thread({
        let admin = admin.clone();
        move || {
            let mut client = connect(&admin)?;
            client.batch_execute(&create)?;
            Ok(())
        }
    })
    .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
    Some(PgDb {
        url: with_database(&admin, &name),
        name,
        admin,
    })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = on_own_thread(move || {
            let mut client = connect(&admin)?;
            client.batch_execute(&drop)?;
            Ok(())
        }) {
            eprintln!("dropping the test database {}: {e}", self.name);
        }
    }
}

/// Whether the server at `url` answers (asked once per test process).
/// The first time, databases left by test processes that are gone (killed
/// before their guards ran) and that nobody uses are dropped.
fn reachable(url: &str) -> bool {
    static ANSWERS: OnceLock<bool> = OnceLock::new();
    let url = url.to_string();
    *ANSWERS.get_or_init(move || {
        on_own_thread(move || {
            let mut client = connect(&url)?;
            // Tidying is best effort: it never makes the server unusable.
            let _ = drop_leftovers(&mut client);
            Ok(())
        })
        .is_ok()
    })
}

/// Drop the test databases of processes that are gone and that nobody
/// uses (another machine's or namespace's process is not seen in /proc,
/// but its connections are).
fn drop_leftovers(client: &mut postgres::Client) -> Result<(), postgres::Error> {
    let names = client.query(
        "SELECT d.datname FROM pg_database d WHERE d.datname LIKE 'sb\\_test\\_%'
         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        &[],
    )?;
    for row in names {
        let name: String = row.try_get(0)?;
        if left_by_a_gone_process(&name) {
            client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))?;
        }
    }
    Ok(())
}

/// `sb_test_<pid>_...` whose process no longer runs on this machine.
fn left_by_a_gone_process(name: &str) -> bool {
    let pid = name
        .strip_prefix("sb_test_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => {
            pid != std::process::id()
                && std::path::Path::new("/proc/self").exists()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        None => false,
    }
}

fn connect(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    config.connect(postgres::NoTls)
}

/// Run `f` on a thread of its own (the client must not run on a runtime's
/// thread) and wait for it.
fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || f().map_err(|e| format!("{e:#}")))
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL client panicked".into()))
}

/// `url` with its database replaced by `name` (URL form:
/// `postgres://user@host:port/db?options`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let Some(scheme_end) = base.find("://") else {
        // key=value form: a later dbname wins.
        return format!("{url} dbname={name}");
    };
    let authority_end = base[scheme_end + 3..]
        .find('/')
        .map(|i| scheme_end + 3 + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
