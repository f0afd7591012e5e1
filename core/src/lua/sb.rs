//! The `sb` module: what Switchboard gives scripts (since 0.1.0).
//!
//! `sb.log.info/warn/error(message)`, `sb.now()`, `sb.json.encode/decode`,
//! `sb.hmac_sha256(key, data)`, `sb.secure_compare(a, b)`, `sb.mask(text)`,
//! `sb.version`; `sb.pick.longest_idle(candidates, wanted)` (0.4.0) is
//! added by the generation beside its candidates cache (`roles.rs`). Log messages
//! go through the tenant's masker before they are written, so a script
//! cannot put raw customer data in the logs even by mistake.

use crate::masking::Masker;
use hmac::{Hmac, Mac};
use mlua::{Lua, LuaSerdeExt, Table, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest JSON text `sb.json.decode` accepts and `encode` produces.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// An error of `sb.json.decode`, as scripts see it.
fn json_error(e: &dyn std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("sb.json.decode: {e}"))
}

/// Version of the Lua API: the newest version label of `docs/lua.md`
/// (`core/tests/lua_host.rs` `sb_version_is_the_newest_api_in_the_docs`).
pub const API_VERSION: &str = "0.4.0";

/// What the `sb` functions need from the host.
#[derive(Debug, Clone)]
pub struct SbContext {
    pub tenant: String,
    pub masker: Masker,
    /// The time the host gave with the current call (ms since the epoch).
    pub now: Arc<AtomicU64>,
}

/// `file:line` of the Lua code that called into Rust.
fn caller(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let src = d.source();
        let file = src
            .short_src
            .as_deref()
            .unwrap_or("?")
            .trim_start_matches('@')
            .to_string();
        format!("{file}:{}", d.current_line().unwrap_or(0))
    })
    .unwrap_or_else(|| "?".into())
}

fn log_fn(lua: &Lua, ctx: &SbContext, level: &'static str) -> mlua::Result<mlua::Function> {
    let ctx = ctx.clone();
    lua.create_function(move |lua, msg: Value| {
        let text = match &msg {
            Value::String(s) => s.to_string_lossy(),
            other => other.to_string()?,
        };
        let text: String = text.chars().take(2000).collect();
        let masked = ctx.masker.mask(&text);
        let at = caller(lua);
        match level {
            "error" => tracing::error!(target: "switchboard::script", tenant = %ctx.tenant, at = %at, "{masked}"),
            "warn" => tracing::warn!(target: "switchboard::script", tenant = %ctx.tenant, at = %at, "{masked}"),
            _ => tracing::info!(target: "switchboard::script", tenant = %ctx.tenant, at = %at, "{masked}"),
        }
        Ok(())
    })
}

/// Build the `sb` table.
pub fn register(lua: &Lua, ctx: &SbContext) -> mlua::Result<Table> {
    let sb = lua.create_table()?;
    sb.raw_set("version", API_VERSION)?;

    let log = lua.create_table()?;
    for level in ["info", "warn", "error"] {
        log.raw_set(level, log_fn(lua, ctx, level)?)?;
    }
    sb.raw_set("log", log)?;

    let now = ctx.now.clone();
    sb.raw_set(
        "now",
        lua.create_function(move |_, ()| Ok(now.load(Ordering::Relaxed)))?,
    )?;

    let json = lua.create_table()?;
    json.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let j: serde_json::Value = lua.from_value(v)?;
            let s = serde_json::to_string(&j).map_err(mlua::Error::external)?;
            if s.len() > MAX_JSON_BYTES {
                return Err(mlua::Error::runtime("sb.json.encode: result too large"));
            }
            Ok(s)
        })?,
    )?;
    json.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let b = s.as_bytes();
            if b.len() > MAX_JSON_BYTES {
                return Err(mlua::Error::runtime("sb.json.decode: input too large"));
            }
            let value = super::json::decode(lua, &b).map_err(|e| json_error(&e))?;
            Ok(value)
        })?,
    )?;
    sb.raw_set("json", json)?;

    sb.raw_set(
        "hmac_sha256",
        lua.create_function(|_, (key, data): (mlua::String, mlua::String)| {
            Ok(hmac_sha256_hex(&key.as_bytes(), &data.as_bytes()))
        })?,
    )?;

    sb.raw_set(
        "secure_compare",
        lua.create_function(|_, (a, b): (mlua::String, mlua::String)| {
            Ok(secure_compare(&a.as_bytes(), &b.as_bytes()))
        })?,
    )?;

    let masker = ctx.masker.clone();
    sb.raw_set(
        "mask",
        lua.create_function(move |_, text: mlua::String| {
            Ok(masker.mask(&text.to_string_lossy()).into_owned())
        })?,
    )?;
    Ok(sb)
}

/// Hex HMAC-SHA256 of `data` keyed by `key`.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Compare secrets in constant time (for equal lengths).
pub fn secure_compare(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Check a `sha256=<hex>` signature header of `body` in constant time.
pub fn verify_sha256_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}
