//! `switchboard scripts test`: every script's self-tests run like a test
//! runner, one line per test, exit 1 with the failing assertion's
//! file:line.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

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

fn scripts_test(config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["scripts", "test", "--config"])
        .arg(config)
        .output()
        .expect("run switchboard scripts test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn scripts_test_prints_each_test_and_fails_with_the_assertions_line() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/acme/acme.toml");
    let (code, out) = scripts_test(&example);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" ... ok"), "{out}");
    assert!(out.contains("test result: ok."), "{out}");

    let dir = Server::new_dir("scripts-test");
    copy_dir(&repo_scripts(), &dir);
    std::fs::write(
        dir.join("routing/policy.lua"),
        "local M = {}\nfunction M.route(c, candidates) return candidates[1].id end\nM.tests = {\n  passes = function() assert(1 + 1 == 2) end,\n  fails = function()\n    assert(M.route({}, { { id = 'a' } }) == 'b', 'expected b')\n  end,\n}\nreturn M\n",
    )
    .expect("write");
    let config = demo_config()
        .replace(
            &format!("scripts_dir = {:?}", repo_scripts()),
            &format!("scripts_dir = {dir:?}"),
        )
        .replace(
            "routing = \"routing/longest_idle.lua\"",
            "routing = \"routing/policy.lua\"",
        );
    let cfg = dir.join("switchboard.toml");
    std::fs::write(&cfg, config).expect("config");
    let (code, out) = scripts_test(&cfg);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("{needle:?} in {out}"))
    };
    let failed = at("demo: routing/policy.lua: fails ... FAILED");
    assert_eq!(
        lines[failed + 1],
        "    routing/policy.lua:6: expected b",
        "{out}"
    );
    at("demo: routing/policy.lua: passes ... ok");
    assert!(out.contains("test result: FAILED. "), "{out}");
}
