//! Where a function returns values: the lines of its `return` statements
//! that return something, read from its Lua 5.4 bytecode (`lua_dump`
//! with debug info). Used for shape errors: when a script's `route` has
//! one such line, that is the line that returned the bad value.

use mlua::Function;

/// Opcodes (Lua 5.4 `lopcodes.h`) of a return with values.
const OP_TAILCALL: u32 = 69;
const OP_RETURN: u32 = 70;
const OP_RETURN1: u32 = 72;
/// `lineinfo` entry meaning "see abslineinfo".
const ABSLINEINFO: i8 = -0x80;

/// The distinct lines, in order, of `f`'s own statements that return
/// values (nested functions excluded); `None` if the bytecode cannot be
/// read.
pub fn value_return_lines(f: &Function) -> Option<Vec<u32>> {
    let bytes = f.dump(false);
    let mut r = Reader { b: &bytes, at: 0 };
    r.header()?;
    r.byte()?; // upvalue count of the main closure
    let lines = r.function()?;
    Some(lines)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// `dumpSize`: 7-bit groups, most significant first, the last byte
    /// marked with 0x80.
    fn size(&mut self) -> Option<usize> {
        let mut x: usize = 0;
        loop {
            let b = self.byte()?;
            x = x.checked_mul(128)?.checked_add(usize::from(b & 0x7f))?;
            if b & 0x80 != 0 {
                return Some(x);
            }
        }
    }

    fn string(&mut self) -> Option<()> {
        let n = self.size()?;
        if n > 0 {
            self.take(n - 1)?;
        }
        Some(())
    }

    fn header(&mut self) -> Option<()> {
        if self.take(4)? != b"\x1bLua" || self.byte()? != 0x54 || self.byte()? != 0 {
            return None;
        }
        self.take(6)?; // LUAC_DATA
        let (inst, int, num) = (self.byte()?, self.byte()?, self.byte()?);
        if inst != 4 {
            return None;
        }
        self.take(usize::from(int))?;
        self.take(usize::from(num))?;
        Some(())
    }

    /// One function prototype; the return lines of this one only.
    fn function(&mut self) -> Option<Vec<u32>> {
        self.string()?; // source
        let linedefined = self.size()?;
        self.size()?; // lastlinedefined
        self.take(3)?; // numparams, is_vararg, maxstacksize
        let ncode = self.size()?;
        let code: Vec<u32> = self
            .take(ncode.checked_mul(4)?)?
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let nk = self.size()?;
        for _ in 0..nk {
            match self.byte()? {
                // nil, false, true
                0x00 | 0x01 | 0x11 => {}
                // float, integer
                0x13 | 0x03 => {
                    self.take(8)?;
                }
                // short and long strings
                0x04 | 0x14 => self.string()?,
                _ => return None,
            }
        }
        let nup = self.size()?;
        self.take(nup.checked_mul(3)?)?;
        let nprotos = self.size()?;
        for _ in 0..nprotos {
            self.function()?;
        }
        let nline = self.size()?;
        let lineinfo: Vec<i8> = self.take(nline)?.iter().map(|&b| b as i8).collect();
        let nabs = self.size()?;
        let mut abs = Vec::with_capacity(nabs);
        for _ in 0..nabs {
            abs.push((self.size()?, self.size()?));
        }
        let nloc = self.size()?;
        for _ in 0..nloc {
            self.string()?;
            self.size()?;
            self.size()?;
        }
        let nupn = self.size()?;
        for _ in 0..nupn {
            self.string()?;
        }
        if lineinfo.len() != code.len() {
            return None;
        }
        let mut lines = Vec::new();
        let mut line = i64::try_from(linedefined).ok()?;
        for (pc, (&i, &delta)) in code.iter().zip(&lineinfo).enumerate() {
            if delta == ABSLINEINFO {
                let &(_, l) = abs.iter().find(|(p, _)| *p == pc)?;
                line = i64::try_from(l).ok()?;
            } else {
                line += i64::from(delta);
            }
            let op = i & 0x7f;
            let b = (i >> 16) & 0xff;
            let returns_values =
                op == OP_RETURN1 || op == OP_TAILCALL || (op == OP_RETURN && b != 1);
            if returns_values {
                let l = u32::try_from(line).ok()?;
                if lines.last() != Some(&l) && !lines.contains(&l) {
                    lines.push(l);
                }
            }
        }
        Some(lines)
    }
}
