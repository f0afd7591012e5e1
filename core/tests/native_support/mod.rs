//! Shared by the native host's tests: building the workspace's plugin
//! crates and compiling C plugins, fresh cache folders, and the views
//! policies are given.
//!
//! `cargo test --workspace` does not produce the `cdylib` files of the
//! plugin crates (it builds their unit tests only), so the tests build them
//! with the same cargo, profile and target directory as the test binary
//! itself (found from `current_exe`: `<target>/<profile>/deps/<test>`).
//! Cargo does not hold the build lock while tests run, so this is a quick
//! no-op when they are already built.

#![allow(dead_code)] // each test binary uses part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use switchboard_core::model::Cad;
use switchboard_core::routing::{Candidate, ConversationView};

/// `<target>/<profile>` of the running test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Build the workspace's plugin crates once per test binary; the folder
/// holding their `lib<name>.so`.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile_dir = profile_dir();
        let target = profile_dir.parent().expect("target dir");
        let profile = profile_dir
            .file_name()
            .expect("profile")
            .to_string_lossy()
            .into_owned();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "build",
                "-q",
                "-p",
                "skills-router",
                "-p",
                "sms-adapter",
                "-p",
                "test-plugin",
            ])
            .arg("--target-dir")
            .arg(target);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for the plugins");
        assert!(status.success(), "building the plugin crates failed");
        profile_dir
    })
}

/// A workspace plugin crate's library (`skills_router`).
pub fn plugin(lib_name: &str) -> PathBuf {
    plugin_dir().join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// A fresh folder under the target directory for this test.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = profile_dir().join("native-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The SDK's C header folder.
pub fn include_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk/include")
}

/// Compile C `source` (a file) into `out` (a shared library) with the
/// system `cc`, with `-D` definitions.
pub fn cc(source: &Path, out: &Path, defines: &[&str]) {
    let mut cmd = Command::new("cc");
    cmd.args([
        "-shared", "-fPIC", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1",
    ])
    .arg("-I")
    .arg(include_dir());
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg("-o").arg(out).arg(source);
    let output = cmd.output().expect("run cc");
    assert!(
        output.status.success(),
        "cc {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compile C source text.
pub fn cc_source(dir: &Path, name: &str, source: &str, defines: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write C source");
    let out = dir.join(format!("lib{name}.so"));
    cc(&src, &out, defines);
    out
}

pub fn cad(pairs: &[(&str, &str)]) -> Cad {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn view<'a>(queue: &'a str, cad: &'a Cad) -> ConversationView<'a> {
    ConversationView {
        id: 7,
        queue,
        channel: "webchat",
        customer: "v1",
        customer_name: "Jeanne",
        source: "Web chat",
        preview: "Bonjour",
        cad,
        received_at: 1,
        queued_at: 1,
        last_agent: None,
    }
}

/// Agents `ids[i]` with `skills[i]`, idle since `idle[i]`.
pub struct Agents {
    pub ids: Vec<String>,
    pub skills: Vec<Vec<String>>,
    pub idle: Vec<u64>,
    pub load: Vec<u32>,
}

impl Agents {
    pub fn new(specs: &[(&str, u64, &[&str])]) -> Agents {
        Agents {
            ids: specs.iter().map(|s| s.0.to_string()).collect(),
            idle: specs.iter().map(|s| s.1).collect(),
            skills: specs
                .iter()
                .map(|s| s.2.iter().map(|x| x.to_string()).collect())
                .collect(),
            load: vec![0; specs.len()],
        }
    }

    pub fn candidates(&self) -> Vec<Candidate<'_>> {
        (0..self.ids.len())
            .map(|i| Candidate {
                id: &self.ids[i],
                name: &self.ids[i],
                load: self.load[i],
                capacity: 5,
                idle_since: self.idle[i],
                skills: &self.skills[i],
                stamp: 0,
            })
            .collect()
    }
}
