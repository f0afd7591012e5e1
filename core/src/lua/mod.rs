//! The Lua plugin host: tenant scripts as routing policies, wrap-up lists
//! and channel adapters.
//!
//! A [`Generation`] is one loaded, validated set of a tenant's scripts in
//! its own sandboxed Lua state ([`sandbox`]); the server holds the live one
//! and swaps in a new one on reload. A generation implements
//! [`crate::routing::RoutingPolicy`], [`crate::wrapup::WrapUpReasons`] and,
//! per channel, [`crate::channel::ChannelAdapter`]; any script failure
//! falls back to the built-in behaviour and is counted in [`ScriptStats`].
//!
//! **Invariant:** no network or file I/O here except reading the tenant's
//! script files in [`ScriptFiles::read_dir`], at (re)load time; `require`
//! resolves among the files read then. **Invariant:** tenants never share
//! a Lua state; a generation is never mutated after load, only replaced.

mod generation;
mod json;
mod read;
mod returns;
mod roles;
pub mod sandbox;
pub mod sb;
pub mod strings;

pub use generation::{
    ChannelSpec, FileReport, Generation, ScriptFailure, ScriptSpec, ScriptStats, TestOutcome,
};
pub use roles::LuaChannel;
pub use sandbox::Limits;

use std::collections::BTreeMap;
use std::path::Path;

/// A problem in a tenant's scripts, found at load or at a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("{file}:{}: {message}", line.map_or_else(|| "?".to_string(), |l| l.to_string()))]
pub struct ScriptError {
    /// Path relative to the tenant's script folder.
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

impl ScriptError {
    pub fn new(file: &str, line: Option<u32>, message: impl Into<String>) -> Self {
        ScriptError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

/// Folders of a tenant's script directory that scripts may come from.
pub const SCRIPT_FOLDERS: [&str; 5] = ["lib", "routing", "wrapup", "channels", "responses"];
/// Most script files read for one tenant.
pub const MAX_FILES: usize = 1000;
/// Largest script file, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A tenant's script sources by path relative to its script folder
/// (`routing/sticky.lua`), read once per (re)load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptFiles(pub BTreeMap<String, String>);

impl ScriptFiles {
    /// Read the `.lua` files under `dir`'s [`SCRIPT_FOLDERS`].
    pub fn read_dir(dir: &Path) -> Result<ScriptFiles, ScriptError> {
        let mut files = BTreeMap::new();
        if !dir.is_dir() {
            return Err(ScriptError::new(
                &dir.display().to_string(),
                None,
                "script folder not found",
            ));
        }
        for folder in SCRIPT_FOLDERS {
            let mut stack = vec![(dir.join(folder), folder.to_string())];
            while let Some((path, rel)) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&path) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let rel = format!("{rel}/{name}");
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() {
                        stack.push((entry.path(), rel));
                    } else if name.ends_with(".lua") {
                        if files.len() >= MAX_FILES {
                            return Err(ScriptError::new(&rel, None, "too many script files"));
                        }
                        if meta.len() > MAX_FILE_BYTES {
                            return Err(ScriptError::new(&rel, None, "script file too large"));
                        }
                        let text = std::fs::read_to_string(entry.path()).map_err(|e| {
                            ScriptError::new(&rel, None, format!("cannot read: {e}"))
                        })?;
                        files.insert(rel, text);
                    }
                }
            }
        }
        Ok(ScriptFiles(files))
    }

    /// Files given in memory (the scripts bundled in the binary).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> ScriptFiles {
        ScriptFiles(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

/// Turn an mlua error into file:line and message.
pub(crate) fn describe(err: &mlua::Error, default_file: &str) -> ScriptError {
    let msg = innermost(err);
    parse_location(&msg).unwrap_or_else(|| ScriptError::new(default_file, None, msg))
}

fn innermost(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { cause, .. } => innermost(cause),
        mlua::Error::WithContext { cause, .. } => innermost(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::MemoryError(_) => "memory limit exceeded".into(),
        other => other.to_string(),
    }
}

/// `routing/x.lua:12: message` → its parts (first line only).
fn parse_location(msg: &str) -> Option<ScriptError> {
    let first = msg.lines().next().unwrap_or(msg);
    let (file, rest) = first.split_once(".lua:")?;
    let (line, message) = rest.split_once(": ")?;
    let line: u32 = line.parse().ok()?;
    let file = file.trim_start_matches('@').rsplit(' ').next()?;
    Some(ScriptError::new(
        &format!("{file}.lua"),
        Some(line),
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed_from_lua_messages() {
        let e = parse_location("routing/x.lua:12: attempt to index a nil value").expect("parsed");
        assert_eq!(e.file, "routing/x.lua");
        assert_eq!(e.line, Some(12));
        assert_eq!(e.message, "attempt to index a nil value");
        assert!(parse_location("no location here").is_none());
    }
}
