//! `switchboard serve --watch`: editing a tenant's script reloads it, and
//! a broken edit prints `tenant: file:line: message` while the old
//! generation keeps serving.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watched {
    /// The next line of stdout that satisfies `pred` (bounded wait).
    fn line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("no such line on stdout: {e}"),
            }
        }
    }
}

#[test]
fn watch_reloads_on_edit_and_prints_a_broken_edit_with_its_line() {
    let dir = Server::new_dir("watch");
    let scripts = dir.join("scripts");
    copy_dir(&repo_scripts(), &scripts);
    let config = demo_config()
        .replace(
            &format!("scripts_dir = {:?}", repo_scripts()),
            &format!("scripts_dir = {scripts:?}"),
        )
        .replace(
            "data_dir = \"./data\"",
            &format!("data_dir = {:?}", dir.join("data")),
        );
    let cfg = dir.join("switchboard.toml");
    std::fs::write(&cfg, config).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--watch", "--config"])
        .arg(&cfg)
        .env("SWITCHBOARD_ADMIN_TOKEN", ADMIN)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchboard");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let w = Watched { child, lines: rx };
    w.line(|l| l.starts_with("Switchboard is listening on "));
    let policy = scripts.join("routing/longest_idle.lua");

    std::fs::write(
        &policy,
        "return { route = function(conversation, candidates, ctx)\n  return candidates[1].id +\nend }\n",
    )
    .expect("break the policy");
    let l = w.line(|l| l.starts_with("demo: "));
    assert_eq!(
        l.split(": ").take(2).collect::<Vec<_>>(),
        ["demo", "routing/longest_idle.lua:3"],
        "{l}"
    );

    std::fs::write(
        &policy,
        "return { route = function(conversation, candidates, ctx)\n  return candidates[1].id\nend }\n-- fixed\n",
    )
    .expect("fix the policy");
    let l = w.line(|l| l.starts_with("demo: reloaded"));
    assert_eq!(l, "demo: reloaded (generation 2)");
}
