//! A channel adapter's `inbound` result read in one protected block of raw
//! stack reads, for the usual case: plain tables (no metatable), message
//! events of strings and numbers, no attachments. Anything else returns
//! `None` and is read field by field through mlua (`roles.rs`), which also
//! words every shape error; so both ways give the same result.
//!
//! Why by hand: mlua makes each key string of each `get` in a protected
//! call of its own, and a webhook's result was read with about twenty of
//! them (`cargo run --release --example webhook_ratio`). Here the tables
//! are walked with `lua_next` and `lua_rawgeti`, which neither allocate
//! nor raise an error, so no Lua error can jump over this Rust code.

use crate::channel::{ChannelEvent, HttpResponse, Inbound, InboundMessage};
use crate::model::Cad;
use mlua::{ffi, Lua, Table};
use std::ffi::c_int;

/// Stack slots the walk uses at most: the result, then a key and a value
/// for each of the result, the events list, an event and its `cad`, and a
/// metatable looked at.
const SLOTS: c_int = 16;

/// `inbound`'s result `t`, read without mlua when it has the usual shape
/// (at most `max_events` message events).
pub(super) fn inbound(lua: &Lua, t: &Table, max_events: usize) -> Option<Inbound> {
    let mut read = None;
    // SAFETY: the closure only reads the table passed as its argument
    // (stack index 1) with calls that neither allocate in Lua nor raise an
    // error (`lua_next` is given the keys it returned), after making room
    // for what it pushes; so no Lua error can jump over the Rust values it
    // builds.
    let walked = unsafe {
        lua.exec_raw::<()>(t, |l| {
            if ffi::lua_checkstack(l, SLOTS) != 0 {
                read = result(l, max_events);
            }
            ffi::lua_settop(l, 0);
        })
    };
    walked.ok().and(read)
}

/// A plain table at `idx` (no metatable: a read there is a raw read).
unsafe fn plain_table(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: `l` is a live state with room for one more value.
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
            return false;
        }
        if ffi::lua_getmetatable(l, idx) != 0 {
            ffi::lua_pop(l, 1);
            return false;
        }
        true
    }
}

/// The string at `idx` when it is a string of UTF-8 (no conversion of
/// numbers: that would allocate).
unsafe fn string(l: *mut ffi::lua_State, idx: c_int) -> Option<&'static str> {
    // SAFETY: the bytes live as long as the string stays on the stack or
    // in the table being walked, which outlives every use here (each is
    // copied into a `String` before the walk moves on).
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0usize;
        let p = ffi::lua_tolstring(l, idx, &mut len);
        if p.is_null() {
            return None;
        }
        std::str::from_utf8(std::slice::from_raw_parts(p.cast::<u8>(), len)).ok()
    }
}

/// What a field holds: nothing, a string, or something else.
enum Field {
    Absent,
    Text(String),
    Other,
}

impl Field {
    unsafe fn at(l: *mut ffi::lua_State, idx: c_int) -> Field {
        // SAFETY: forwarded.
        match unsafe { (ffi::lua_type(l, idx), string(l, idx)) } {
            (ffi::LUA_TNIL, _) => Field::Absent,
            (_, Some(s)) => Field::Text(s.to_string()),
            _ => Field::Other,
        }
    }

    /// `Some(None)` for nil, `Some(Some(s))` for a string, `None` else.
    fn optional(self) -> Option<Option<String>> {
        match self {
            Field::Absent => Some(None),
            Field::Text(s) => Some(Some(s)),
            Field::Other => None,
        }
    }
}

/// Walk the plain table at `idx` (absolute), calling `f` with each string
/// key (the value on top of the stack); stops with `None` at the first
/// key that is not a string or when `f` says so.
unsafe fn fields(
    l: *mut ffi::lua_State,
    idx: c_int,
    mut f: impl FnMut(&str) -> Option<()>,
) -> Option<()> {
    // SAFETY: forwarded; `lua_next` is given the key it returned.
    unsafe {
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            let Some(key) = string(l, -2) else {
                ffi::lua_pop(l, 2);
                return None;
            };
            if f(key).is_none() {
                ffi::lua_pop(l, 2);
                return None;
            }
            ffi::lua_pop(l, 1);
        }
        Some(())
    }
}

unsafe fn result(l: *mut ffi::lua_State, max_events: usize) -> Option<Inbound> {
    // SAFETY: the result table is at index 1, with room on the stack.
    unsafe {
        if !plain_table(l, 1) {
            return None;
        }
        let mut response = Some(HttpResponse::text(200, "EVENT_RECEIVED"));
        let mut events = Some(Vec::new());
        fields(l, 1, |key| {
            let top = ffi::lua_gettop(l);
            match key {
                "response" => response = response_at(l, top),
                "events" => events = events_at(l, top, max_events),
                _ => {}
            }
            Some(())
        })?;
        Some(Inbound {
            events: events?,
            response: response?,
        })
    }
}

unsafe fn response_at(l: *mut ffi::lua_State, idx: c_int) -> Option<HttpResponse> {
    // SAFETY: forwarded.
    unsafe {
        if !plain_table(l, idx) {
            return None;
        }
        let (mut status, mut body, mut content_type) = (None, Some(None), Some(None));
        fields(l, idx, |key| {
            match key {
                "status" => {
                    let mut is_int = 0;
                    let v = ffi::lua_tointegerx(l, -1, &mut is_int);
                    let integer = ffi::lua_isinteger(l, -1) != 0 && is_int != 0;
                    status = u16::try_from(v)
                        .ok()
                        .filter(|s| integer && (100..600).contains(s));
                }
                "body" => body = Field::at(l, -1).optional(),
                "content_type" => content_type = Field::at(l, -1).optional(),
                _ => {}
            }
            Some(())
        })?;
        Some(HttpResponse {
            status: status?,
            content_type: content_type?.unwrap_or_else(|| "text/plain; charset=utf-8".into()),
            body: body?.unwrap_or_default(),
        })
    }
}

unsafe fn events_at(
    l: *mut ffi::lua_State,
    idx: c_int,
    max_events: usize,
) -> Option<Vec<ChannelEvent>> {
    // SAFETY: forwarded.
    unsafe {
        if ffi::lua_type(l, idx) == ffi::LUA_TNIL {
            return Some(Vec::new());
        }
        if !plain_table(l, idx) {
            return None;
        }
        let mut events = Vec::new();
        for i in 1.. {
            let t = ffi::lua_rawgeti(l, idx, i);
            if t == ffi::LUA_TNIL {
                ffi::lua_pop(l, 1);
                break;
            }
            let message = if events.len() < max_events {
                message_at(l, ffi::lua_gettop(l))
            } else {
                None
            };
            ffi::lua_pop(l, 1);
            events.push(ChannelEvent::Message(message?));
        }
        Some(events)
    }
}

unsafe fn message_at(l: *mut ffi::lua_State, idx: c_int) -> Option<InboundMessage> {
    // SAFETY: forwarded.
    unsafe {
        if !plain_table(l, idx) {
            return None;
        }
        let mut kind = None;
        let (mut customer, mut text) = (None, None);
        let (mut name, mut entry_point, mut id) = (Some(None), Some(None), Some(None));
        let mut sent_at = None;
        let mut cad = Some(Cad::new());
        fields(l, idx, |key| {
            match key {
                "type" => kind = string(l, -1).map(str::to_string),
                "customer" => customer = string(l, -1).map(str::to_string),
                "text" => text = string(l, -1).map(str::to_string),
                "customer_name" => name = Field::at(l, -1).optional(),
                "entry_point" => entry_point = Field::at(l, -1).optional(),
                "id" => id = Field::at(l, -1).optional(),
                "sent_at" => sent_at = number_at(l, -1),
                "cad" => cad = cad_at(l, ffi::lua_gettop(l)),
                // Attachments (media messages) are read the careful way.
                "attachments" if ffi::lua_type(l, -1) != ffi::LUA_TNIL => return None,
                _ => {}
            }
            Some(())
        })?;
        if kind.as_deref() != Some("message") {
            return None;
        }
        Some(InboundMessage {
            customer: customer.filter(|c| !c.is_empty())?,
            customer_name: name?,
            text: text?,
            entry_point: entry_point?.unwrap_or_default(),
            sent_at,
            cad: cad?,
            external_id: id?.filter(|id| !id.is_empty()),
            attachments: Vec::new(),
        })
    }
}

/// `sent_at` as the careful reader takes it: a non-negative integer, or
/// a non-negative float cut to an integer; anything else is no time.
unsafe fn number_at(l: *mut ffi::lua_State, idx: c_int) -> Option<u64> {
    // SAFETY: forwarded.
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
            return None;
        }
        if ffi::lua_isinteger(l, idx) != 0 {
            u64::try_from(ffi::lua_tointegerx(l, idx, std::ptr::null_mut())).ok()
        } else {
            let n = ffi::lua_tonumberx(l, idx, std::ptr::null_mut());
            (n >= 0.0).then_some(n as u64)
        }
    }
}

unsafe fn cad_at(l: *mut ffi::lua_State, idx: c_int) -> Option<Cad> {
    // SAFETY: forwarded.
    unsafe {
        match ffi::lua_type(l, idx) {
            ffi::LUA_TNIL => return Some(Cad::new()),
            // Not a table: no CAD, as the careful reader says.
            t if t != ffi::LUA_TTABLE => return Some(Cad::new()),
            _ => {}
        }
        if !plain_table(l, idx) {
            return None;
        }
        let mut cad = Cad::new();
        fields(l, idx, |key| {
            let value = string(l, -1)?;
            cad.insert(key.to_string(), value.to_string());
            Some(())
        })?;
        Some(cad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Value;

    /// Results as scripts return them: for each, the raw walk either
    /// declines or reads exactly what the careful reader reads.
    const RESULTS: &[&str] = &[
        "{}",
        "{events = {}}",
        r#"{events = {{type = "message", customer = "c1", text = "hi"}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "hi", id = "m1",
            customer_name = "Ann", entry_point = "page", sent_at = 1700000000000,
            cad = {order = "42", lang = "fr"}}},
          response = {status = 200, body = "EVENT_RECEIVED"}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "", id = "", sent_at = -5}},
          response = {status = 202, body = "ok", content_type = "application/json"}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", sent_at = 12.9}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", sent_at = 0/0}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", sent_at = "5"}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", cad = 5}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", cad = {n = 5}}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", cad = {[1] = "a"}}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x",
            attachments = {{type = "image", url = "https://cdn/x.png"}}}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", attachments = 3}}}"#,
        r#"{events = {{type = "message", customer = "", text = "x"}}}"#,
        r#"{events = {{type = "message", customer = 12, text = "x"}}}"#,
        r#"{events = {{type = "message", customer = "c1"}}}"#,
        r#"{events = {{type = "reaction", customer = "c1", text = "x"}}}"#,
        r#"{events = {{customer = "c1", text = "x"}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "x", customer_name = 7}}}"#,
        r#"{events = {{type = "message", customer = "c1", text = "\xff\xfe"}}}"#,
        r#"{events = {"not a table"}}"#,
        r#"{events = {{type = "message", customer = "a", text = "1"}, nil,
                      {type = "message", customer = "b", text = "2"}}}"#,
        r#"{events = "nope"}"#,
        r#"{response = "nope"}"#,
        r#"{response = {status = 99}}"#,
        r#"{response = {status = 200.0}}"#,
        r#"{response = {status = "200"}}"#,
        r#"{response = {body = "no status"}}"#,
        r#"{response = {status = 200, body = 42}}"#,
        r#"{response = {status = 200, body = {}}}"#,
        r#"setmetatable({}, {__index = {events = {{type = "message", customer = "c", text = "t"}}}})"#,
        r#"{events = setmetatable({}, {__index = function(_, i)
            if i == 1 then return {type = "message", customer = "c", text = "t"} end end})}"#,
        r#"{events = {setmetatable({type = "message", customer = "c"}, {__index = {text = "t"}})}}"#,
        r#"{response = setmetatable({}, {__index = {status = 204}})}"#,
    ];

    fn careful(t: &mlua::Table) -> Result<Inbound, String> {
        super::super::roles::inbound_of(t).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn the_raw_walk_reads_what_the_careful_reader_reads() {
        let lua = Lua::new();
        let mut walked = 0;
        for src in RESULTS {
            let Value::Table(t) = lua
                .load(format!("return {src}"))
                .eval::<Value>()
                .expect(src)
            else {
                panic!("{src} is not a table");
            };
            if let Some(fast) = inbound(&lua, &t, 1000) {
                walked += 1;
                assert_eq!(Ok(fast), careful(&t), "{src}");
            }
        }
        // The usual shapes take the raw walk.
        assert!(walked >= 10, "{walked} results walked");
    }

    #[test]
    fn the_usual_webhook_result_is_walked() {
        let lua = Lua::new();
        let t: mlua::Table = lua.load(RESULTS[3]).eval().expect("a table");
        let read = inbound(&lua, &t, 1000).expect("walked");
        let ChannelEvent::Message(m) = &read.events[0];
        assert_eq!(m.customer, "c1");
        assert_eq!(m.external_id.as_deref(), Some("m1"));
        assert_eq!(m.sent_at, Some(1_700_000_000_000));
        assert_eq!(m.cad.get("order").map(String::as_str), Some("42"));
        assert_eq!(read.response.status, 200);
        // One event too many for the limit: declined (the careful reader
        // says why).
        assert!(inbound(&lua, &t, 0).is_none());
    }
}
