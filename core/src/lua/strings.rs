//! Size-capped replacements for `string.find`, `match`, `gmatch`, `gsub`
//! and `rep`.
//!
//! Hooks never run inside C functions, so a backtracking pattern such as
//! `("a"):rep(500):find(".-.-.-b")` would run for seconds whatever the
//! instruction budget. Before calling Lua's own matcher these wrappers cap
//! the subject and the pattern, and refuse a pattern whose worst case on
//! this subject (about `n^k / k!` steps for `k` quantifiers, one more when
//! unanchored) exceeds [`MAX_MATCH_STEPS`].

use mlua::{Function, Lua, MultiValue, Table, Value};

/// Longest subject a pattern function accepts, in bytes.
pub const MAX_SUBJECT: usize = 64 * 1024;
/// Longest pattern, in bytes.
pub const MAX_PATTERN: usize = 256;
/// Estimated worst-case matching steps allowed for one call.
pub const MAX_MATCH_STEPS: f64 = 2.0e7;
/// Longest result of `string.rep`, in bytes.
pub const MAX_REP: usize = 1024 * 1024;

/// Quantifiers (`*`, `+`, `-`, `?`, `%b`) in a pattern, and whether it is
/// anchored with `^`.
pub fn analyze(p: &[u8]) -> (u32, bool) {
    let anchored = p.first() == Some(&b'^');
    let mut i = usize::from(anchored);
    let mut q = 0u32;
    while i < p.len() {
        match p[i] {
            b'(' | b')' => {
                i += 1;
                continue;
            }
            b'%' => match p.get(i + 1) {
                Some(b'b') => {
                    q += 1;
                    i += 4;
                    continue;
                }
                Some(b'f') => {
                    i = skip_set(p, i + 2);
                    continue;
                }
                _ => i += 2,
            },
            b'[' => i = skip_set(p, i),
            _ => i += 1,
        }
        if matches!(p.get(i), Some(b'*' | b'+' | b'-' | b'?')) {
            q += 1;
            i += 1;
        }
    }
    (q, anchored)
}

/// Index just past the set starting at `i` (`[` … `]`).
fn skip_set(p: &[u8], mut i: usize) -> usize {
    i += 1; // '['
    if p.get(i) == Some(&b'^') {
        i += 1;
    }
    if p.get(i) == Some(&b']') {
        i += 1;
    }
    while i < p.len() && p[i] != b']' {
        i += if p[i] == b'%' { 2 } else { 1 };
    }
    i + 1
}

fn has_specials(p: &[u8]) -> bool {
    p.iter().any(|b| b"^$*+?.([%-".contains(b))
}

/// Refuse a call whose worst case is too long.
pub fn check(subject: &[u8], pattern: &[u8], plain: bool, anchors: bool) -> Result<(), String> {
    if subject.len() > MAX_SUBJECT {
        return Err(format!(
            "subject of {} bytes is longer than {MAX_SUBJECT} bytes",
            subject.len()
        ));
    }
    if pattern.len() > MAX_PATTERN {
        return Err(format!("pattern longer than {MAX_PATTERN} bytes"));
    }
    if plain || !has_specials(pattern) {
        return Ok(());
    }
    let (q, anchored) = analyze(pattern);
    let k = q + u32::from(!(anchored && anchors));
    let n = subject.len().max(1) as f64;
    let mut cost = 1.0f64;
    for j in 1..=k {
        cost *= n / f64::from(j);
    }
    if cost * (pattern.len().max(1) as f64) > MAX_MATCH_STEPS {
        return Err(format!(
            "pattern too costly for a subject of {} bytes ({q} quantifiers)",
            subject.len()
        ));
    }
    Ok(())
}

fn bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v {
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(Value::Integer(i)) => Some(i.to_string().into_bytes()),
        Some(Value::Number(n)) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn wrap(
    lua: &Lua,
    original: Function,
    name: &'static str,
    anchors: bool,
) -> mlua::Result<Function> {
    lua.create_function(move |_, args: MultiValue| {
        let subject = bytes(args.front()).unwrap_or_default();
        let pattern = bytes(args.get(1)).unwrap_or_default();
        let plain = name == "find"
            && args
                .get(3)
                .is_some_and(|v| v.as_boolean() != Some(false) && !v.is_nil());
        check(&subject, &pattern, plain, anchors)
            .map_err(|e| mlua::Error::runtime(format!("string.{name}: {e}")))?;
        original.call::<MultiValue>(args)
    })
}

/// Replace the pattern functions and `rep` of `string`.
pub fn register(lua: &Lua, string: &Table) -> mlua::Result<()> {
    for (name, anchors) in [
        ("find", true),
        ("match", true),
        ("gmatch", false),
        ("gsub", true),
    ] {
        let original: Function = string.get(name)?;
        string.raw_set(name, wrap(lua, original, name, anchors)?)?;
    }
    let rep: Function = string.get("rep")?;
    let capped = lua.create_function(move |_, args: MultiValue| {
        let s = bytes(args.front()).map_or(0, |b| b.len());
        let n = match args.get(1) {
            Some(Value::Integer(i)) => *i,
            Some(Value::Number(f)) => *f as i64,
            _ => 0,
        };
        let sep = bytes(args.get(2)).map_or(0, |b| b.len());
        let total = (s as i128 + sep as i128) * i128::from(n.max(0));
        if total > MAX_REP as i128 {
            return Err(mlua::Error::runtime(format!(
                "string.rep: result longer than {MAX_REP} bytes"
            )));
        }
        rep.call::<MultiValue>(args)
    })?;
    string.raw_set("rep", capped)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantifiers_are_counted_outside_sets_and_escapes() {
        assert_eq!(analyze(b".-.-.-b"), (3, false));
        assert_eq!(analyze(b"^%s*(.-)%s*$"), (3, true));
        assert_eq!(analyze(b"[%-+*]x%*"), (0, false));
        assert_eq!(analyze(b"%b()x+"), (2, false));
    }

    #[test]
    fn the_backtracking_bomb_is_refused_and_a_trim_is_not() {
        let a = vec![b'a'; 500];
        assert!(check(&a, b".-.-.-b", false, true).is_err());
        assert!(check(&a[..200], b"^%s*(.-)%s*$", false, true).is_ok());
        assert!(
            check(&a, b".-.-.-b", true, true).is_ok(),
            "plain find is linear"
        );
    }
}
