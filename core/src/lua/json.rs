//! `sb.json.decode`: a JSON text into Lua values, in two steps.
//!
//! 1. serde_json reads the text into a [`Tape`]: a flat list of the values
//!    in document order, the strings unescaped into one buffer. Any syntax
//!    error is found here, before a single Lua value exists.
//! 2. One protected block walks the tape and builds the tables on the raw
//!    Lua stack (`lua_createtable`, `lua_pushlstring`, `lua_rawset`), each
//!    table made at its final size.
//!
//! Why by hand: going through mlua's serde serializer made every string,
//! every table and every field its own protected call with its own
//! registry reference, which was most of a webhook's adapter call
//! (`cargo run --release --example webhook_ratio`). The values are the
//! ones the serializer gave: `null` is nil (a hole in an array, a missing
//! key in an object), integers that fit stay integers, other numbers are
//! floats, the last of duplicate keys wins.

use mlua::ffi;
use mlua::{Lua, Value};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::ffi::c_int;

/// One value of the text. An object is followed by its key and value
/// pairs, an array by its elements.
#[derive(Debug, Clone, Copy)]
enum Item {
    Object(u32),
    Array(u32),
    Str { at: usize, len: usize },
    Int(i64),
    Num(f64),
    Bool(bool),
    Null,
}

/// A JSON text read, not yet made into Lua values.
#[derive(Debug, Default)]
struct Tape {
    items: Vec<Item>,
    strings: Vec<u8>,
    depth: usize,
    max_depth: usize,
}

impl Tape {
    fn string(&mut self, s: &str) {
        self.items.push(Item::Str {
            at: self.strings.len(),
            len: s.len(),
        });
        self.strings.extend_from_slice(s.as_bytes());
    }

    /// Open a container; its count is set by [`Tape::close`].
    fn open(&mut self, item: Item) -> usize {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        self.items.push(item);
        self.items.len() - 1
    }

    fn close(&mut self, at: usize, count: usize) {
        self.depth -= 1;
        // A text of at most `MAX_JSON_BYTES` has far fewer than 2^32 values.
        let n = u32::try_from(count).unwrap_or(u32::MAX);
        self.items[at] = match self.items[at] {
            Item::Object(_) => Item::Object(n),
            _ => Item::Array(n),
        };
    }
}

/// Reads one value (and what it holds) onto the tape.
struct Read<'t>(&'t mut Tape);

impl<'de> DeserializeSeed<'de> for Read<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Read<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.items.push(Item::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.items.push(Item::Int(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.items.push(match i64::try_from(v) {
            Ok(i) => Item::Int(i),
            Err(_) => Item::Num(v as f64),
        });
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.items.push(Item::Num(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.string(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.items.push(Item::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.0.open(Item::Array(0));
        let mut n = 0;
        while seq.next_element_seed(Read(self.0))?.is_some() {
            n += 1;
        }
        self.0.close(at, n);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.0.open(Item::Object(0));
        let mut n = 0;
        while map.next_key_seed(Read(self.0))?.is_some() {
            map.next_value_seed(Read(self.0))?;
            n += 1;
        }
        self.0.close(at, n);
        Ok(())
    }
}

/// Read `text` (at most `MAX_JSON_BYTES`, checked by the caller) into Lua
/// values. The error is serde_json's, for the script to see.
pub(super) fn decode(lua: &Lua, text: &[u8]) -> Result<Value, serde_json::Error> {
    let mut tape = Tape::default();
    let mut de = serde_json::Deserializer::from_slice(text);
    Read(&mut tape).deserialize(&mut de)?;
    de.end()?;
    // Each open container holds a table and, in an object, a key on the
    // stack; serde_json stops nesting at 128.
    let slots = c_int::try_from(2 * tape.max_depth + 4).unwrap_or(c_int::MAX);
    // SAFETY: the closure only pushes values (after making room for them)
    // and holds nothing with a destructor, so a memory error may jump out
    // of it to the protected call around it.
    let made = unsafe {
        lua.exec_raw::<Value>((), |l| {
            ffi::luaL_checkstack(l, slots, c"JSON nesting".as_ptr());
            push(l, &tape, 0);
        })
    };
    // Out of memory under the script's limit: said as serde_json would
    // not, but as a plain error the script can catch.
    made.map_err(|e| serde::de::Error::custom(format!("cannot make the values: {e}")))
}

/// Push the value at `tape.items[i]`; the index after it.
///
/// # Safety
/// `l` is inside a protected call with room for the tape's nesting.
unsafe fn push(l: *mut ffi::lua_State, tape: &Tape, i: usize) -> usize {
    let Some(&item) = tape.items.get(i) else {
        // Not reached: the tape is whole once serde_json accepted the text.
        unsafe { ffi::lua_pushnil(l) };
        return i + 1;
    };
    // SAFETY: forwarded from this function's contract.
    unsafe {
        match item {
            Item::Object(n) => {
                ffi::lua_createtable(l, 0, c_int::try_from(n).unwrap_or(0));
                let mut next = i + 1;
                for _ in 0..n {
                    next = push(l, tape, next);
                    next = push(l, tape, next);
                    ffi::lua_rawset(l, -3);
                }
                next
            }
            Item::Array(n) => {
                ffi::lua_createtable(l, c_int::try_from(n).unwrap_or(0), 0);
                let mut next = i + 1;
                for k in 1..=n {
                    next = push(l, tape, next);
                    ffi::lua_rawseti(l, -2, ffi::lua_Integer::from(k));
                }
                next
            }
            Item::Str { at, len } => {
                let bytes = tape.strings.get(at..at + len).unwrap_or_default();
                ffi::lua_pushlstring(l, bytes.as_ptr().cast(), bytes.len());
                i + 1
            }
            Item::Int(v) => {
                ffi::lua_pushinteger(l, v);
                i + 1
            }
            Item::Num(v) => {
                ffi::lua_pushnumber(l, v);
                i + 1
            }
            Item::Bool(v) => {
                ffi::lua_pushboolean(l, c_int::from(v));
                i + 1
            }
            Item::Null => {
                ffi::lua_pushnil(l);
                i + 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::LuaSerdeExt;
    use proptest::prelude::*;

    /// What mlua's serializer made of the same text (the decoder before
    /// this one).
    fn transcoded(lua: &Lua, text: &[u8]) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let v = lua
            .to_value_with(
                &serde_transcode::Transcoder::new(&mut de),
                mlua::SerializeOptions::new()
                    .serialize_none_to_null(false)
                    .serialize_unit_to_null(false)
                    .set_array_metatable(false),
            )
            .ok()?;
        de.end().ok()?;
        Some(v)
    }

    /// A Lua value written out with its types (integer or float, the
    /// float's bits) and its tables' pairs sorted: the same text for the
    /// same value whatever the tables' inner order.
    fn canon(v: &Value) -> String {
        match v {
            Value::Nil => "nil".into(),
            Value::Boolean(b) => format!("b{b}"),
            Value::Integer(i) => format!("i{i}"),
            Value::Number(n) => format!("f{:x}", n.to_bits()),
            Value::String(s) => format!("s{:?}", s.as_bytes().to_vec()),
            Value::Table(t) => {
                let mut pairs: Vec<String> = t
                    .pairs::<Value, Value>()
                    .map(|kv| match kv {
                        Ok((k, v)) => format!("{}={}", canon(&k), canon(&v)),
                        Err(e) => format!("error {e}"),
                    })
                    .collect();
                pairs.sort();
                let meta = if t.metatable().is_some() { "meta" } else { "" };
                format!("{meta}{{{}}}", pairs.join(","))
            }
            other => format!("other {other:?}"),
        }
    }

    fn same(a: &Value, b: &Value) -> bool {
        canon(a) == canon(b)
    }

    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e300f64..1e300).prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::vec(("[a-c\u{e9}\"\\\\]{0,3}", inner), 0..6)
                    .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
            ]
        })
    }

    proptest! {
        /// Any JSON value, written out and read back, gives what the
        /// serializer gave.
        #[test]
        fn the_values_are_the_serializers(v in json()) {
            let lua = Lua::new();
            let text = serde_json::to_vec(&v).expect("writes");
            let ours = decode(&lua, &text).expect("reads");
            let theirs = transcoded(&lua, &text).expect("reads");
            prop_assert!(same(&ours, &theirs), "{}", String::from_utf8_lossy(&text));
        }

        /// Any text: an error exactly when the serializer failed, with
        /// serde_json's message.
        #[test]
        fn bad_text_is_refused_alike(text in "[\\[\\]{}:,\"a-c0-9 .eE+\\-nultrfs\\\\]{0,24}") {
            let lua = Lua::new();
            let ours = decode(&lua, text.as_bytes());
            let theirs = transcoded(&lua, text.as_bytes());
            prop_assert_eq!(ours.is_ok(), theirs.is_some(), "{}", text);
            if let (Ok(a), Some(b)) = (&ours, &theirs) {
                prop_assert!(same(a, b), "{}", text);
            }
        }
    }

    /// Duplicate keys (the last wins, a later null removes), holes and
    /// nesting as deep as serde_json allows.
    #[test]
    fn duplicates_holes_and_depth() {
        let lua = Lua::new();
        for text in [
            r#"{"k":1,"k":2,"n":3,"n":null}"#,
            "[1,null,3,null]",
            &format!("{}1{}", "[".repeat(127), "]".repeat(127)),
            &format!("{}{}", r#"{"a":"#.repeat(100), "}".repeat(100)).replace(":}", ":{}}"),
        ] {
            let ours = decode(&lua, text.as_bytes());
            let theirs = transcoded(&lua, text.as_bytes());
            match (ours, theirs) {
                (Ok(a), Some(b)) => assert!(same(&a, &b), "{text}"),
                (a, b) => assert_eq!(a.is_ok(), b.is_some(), "{text}"),
            }
        }
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = decode(&lua, too_deep.as_bytes()).expect_err("too deep");
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
