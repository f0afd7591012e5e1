//! The normalized view the detectors read, and the way back to the
//! original text's bytes.
//!
//! Customers do not type numbers the way a regex expects: French phones and
//! keyboards put no-break spaces (U+00A0, U+202F) between digit groups,
//! Asian keyboards give full-width digits (`４１１１`), Arabic keyboards
//! Arabic-Indic ones (`٤١١١`), copy and paste brings zero-width spaces and
//! soft hyphens, and a full-width `＠` looks like an at sign to any reader.
//! The detectors (`scan.rs` and the parsers it calls) only know ASCII, so
//! they run on a *view* of the text where:
//! - every Unicode decimal digit (general category Nd, any script) is its
//!   ASCII digit;
//! - every Unicode white space (tab, new line, U+00A0, U+2009, U+202F,
//!   U+3000, …) is a space, and a run of them is one space;
//! - every dash (general category Pd, and U+2212 MINUS SIGN) is `-`;
//!   middle dots and bullets are `.`, fraction and division slashes `/`;
//! - full-width ASCII forms (U+FF01–U+FF5E) are their ASCII character, and
//!   the small commercial at (U+FE6B) is `@`;
//! - format characters (general category Cf: zero-width spaces and
//!   joiners, soft hyphen, word joiner, bidi marks and overrides, BOM, tag
//!   characters), variation selectors, the combining grapheme joiner and
//!   the Hangul fillers are left out.
//!
//! Everything else is copied unchanged. Each change is recorded as a
//! [`Sub`] so that a byte range found in the view maps back to the exact
//! byte range of the original text ([`View::to_original`]): masking always
//! replaces what the customer wrote, never the view.
//!
//! Why hand-written rather than `unicode-normalization`'s NFKC: NFKC folds
//! full-width forms but not Arabic-Indic or Devanagari digits (they are not
//! compatibility characters), keeps zero-width characters, and changes
//! letters the detectors do not care about, with no map back to the
//! original bytes. What the detectors need is this small, fixed folding
//! plus the offsets, and it is cheap: pure-ASCII text without tabs or
//! double spaces, or whose only non-ASCII characters stay as they are
//! (`é`, `€`, emoji), needs no view at all ([`View::of`] is `None`).

/// One change between the original text and the view: `o_len` bytes at
/// `o` in the original became `n_len` bytes (0 or 1) at `n` in the view.
#[derive(Debug, Clone, Copy)]
struct Sub {
    n: usize,
    n_len: usize,
    o: usize,
    o_len: usize,
}

/// The normalized text and its map back to the original.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) text: String,
    subs: Vec<Sub>,
}

/// What a character becomes in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Keep,
    Ascii(u8),
    Space,
    Drop,
}

/// The code points of the digit zero of every run of Unicode decimal
/// digits (general category Nd, Unicode 15.0); each run holds the digits 0
/// to 9 in order. Generated with Python's `unicodedata` (every Nd
/// character, grouped by runs of ten) plus the two runs Unicode 15 added.
const DIGIT_ZEROS: &[u32] = &[
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16A60, 0x16AC0,
    0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

/// The value of a non-ASCII Unicode decimal digit.
pub(crate) fn digit_value(c: char) -> Option<u8> {
    let cp = u32::from(c);
    let k = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DIGIT_ZEROS.get(k.checked_sub(1)?)?;
    let v = cp - zero;
    (v < 10).then_some(v as u8)
}

/// Characters that render as nothing (general category Cf, Unicode 15.0,
/// plus variation selectors, the combining grapheme joiner and the Hangul
/// fillers): ignored inside a candidate.
pub fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x34F
            | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE0100..=0xE01EF
    )
}

/// Is `c` read as an at sign (`@`, full-width `＠`, small `﹫`)?
pub fn is_at_sign(c: char) -> bool {
    matches!(c, '@' | '\u{FF20}' | '\u{FE6B}')
}

/// Does `c` fold to an ASCII digit or `@` (where every built-in item
/// starts)?
pub(crate) fn starts_items(c: char) -> bool {
    c.is_ascii_digit()
        || c == '@'
        || (!c.is_ascii() && matches!(fold(c), Fold::Ascii(b) if b.is_ascii_digit() || b == b'@'))
}

/// ASCII control characters that are white space (tab, new line, …).
#[inline]
fn is_space_control(c: u8) -> bool {
    matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1C..=0x1F)
}

fn fold(c: char) -> Fold {
    let cp = u32::from(c);
    // The typographic apostrophe and quotes, frequent in chat text. (Latin
    // letters with accents never get here: `next_odd` skips them.)
    if (0x2018..=0x201F).contains(&cp) {
        return Fold::Keep;
    }
    if c.is_whitespace() {
        return Fold::Space;
    }
    if is_invisible(c) {
        return Fold::Drop;
    }
    if (0xFF01..=0xFF5E).contains(&cp) {
        // Full-width ASCII: same order, offset 0xFEE0.
        return Fold::Ascii((cp - 0xFEE0) as u8);
    }
    if let Some(d) = digit_value(c) {
        return Fold::Ascii(b'0' + d);
    }
    match cp {
        // Dashes (Pd) and the minus sign.
        0x58A
        | 0x5BE
        | 0x1400
        | 0x1806
        | 0x2010..=0x2015
        | 0x2212
        | 0x2E17
        | 0x2E1A
        | 0x2E3A
        | 0x2E3B
        | 0x2E40
        | 0x2E5D
        | 0x301C
        | 0x3030
        | 0x30A0
        | 0xFE31
        | 0xFE32
        | 0xFE58
        | 0xFE63
        | 0x10EAD
        | 0x2043 => Fold::Ascii(b'-'),
        // Middle dots, bullets, one-dot leader: read as dots.
        0xB7 | 0x2022 | 0x2024 | 0x2027 | 0x2219 | 0x22C5 | 0x30FB | 0xFF65 => Fold::Ascii(b'.'),
        // Fraction and division slashes.
        0x2044 | 0x2215 => Fold::Ascii(b'/'),
        0xFE6B => Fold::Ascii(b'@'),
        _ => Fold::Keep,
    }
}

/// Position of the next byte at or after `from` that may start a change:
/// a control character, a space that follows a space, or the first byte
/// of a non-ASCII character other than the Latin letters U+00C0–U+027F
/// (UTF-8 lead bytes 0xC3–0xC9: accented letters, none of which folds, the
/// most frequent non-ASCII characters of chat text). Continuation bytes
/// (0x80–0xBF) never start a character, so they are never reported.
#[inline]
fn next_odd(b: &[u8], from: usize) -> Option<usize> {
    #[inline]
    fn odd(c: u8, prev: u8) -> bool {
        let other_lead = (c >= 0xC0) & !((0xC3..=0xC9).contains(&c));
        other_lead | (c < 0x20) | ((c == b' ') & (prev == b' '))
    }
    let prev_of = |i: usize| if i == 0 { 0 } else { b[i - 1] };
    let mut i = from;
    if i == 0 {
        match b.first() {
            None => return None,
            Some(&c) if odd(c, 0) => return Some(0),
            Some(_) => i = 1,
        }
    }
    // Branch-free over 16 bytes and the 16 before them (vectorized by the
    // compiler), then find the byte in the chunk that was odd.
    while let (Some(cur), Some(prev)) = (b.get(i..i + 16), b.get(i - 1..i + 15)) {
        if cur
            .iter()
            .zip(prev)
            .fold(false, |h, (&c, &p)| h | odd(c, p))
        {
            break;
        }
        i += 16;
    }
    while i < b.len() {
        if odd(b[i], prev_of(i)) {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl View {
    /// The view of `text` (see the module documentation), or `None` when
    /// the text is its own view: nothing to fold (plain ASCII spacing, and
    /// only non-ASCII characters that stay as they are, like `é` or `€`).
    /// Allocates only from the first change on.
    pub(crate) fn of(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let mut view: Option<View> = None;
        // Start of the original bytes not yet copied to the view.
        let mut pending = 0;
        let mut i = 0;
        while let Some(p) = next_odd(b, i) {
            let c = b[p];
            let (mut len, f) = if c >= 0x80 {
                match text.get(p..).and_then(|s| s.chars().next()) {
                    Some(ch) => (ch.len_utf8(), fold(ch)),
                    // Unreachable: `p` is always on a char boundary.
                    None => break,
                }
            } else if c == b' ' || is_space_control(c) {
                (1, Fold::Space)
            } else {
                (1, Fold::Keep)
            };
            if f == Fold::Space {
                // Plain spaces right after belong to the same run.
                while b.get(p + len) == Some(&b' ') {
                    len += 1;
                }
            }
            i = p + len;
            if f == Fold::Keep {
                continue;
            }
            let v = view.get_or_insert_with(|| View {
                text: String::with_capacity(text.len()),
                subs: Vec::new(),
            });
            v.text.push_str(text.get(pending..p).unwrap_or_default());
            pending = i;
            let n = v.text.len();
            let out = match f {
                Fold::Space if v.text.ends_with(' ') => None,
                Fold::Space => Some(b' '),
                Fold::Ascii(a) => Some(a),
                Fold::Drop | Fold::Keep => None,
            };
            v.subs.push(Sub {
                n,
                n_len: usize::from(out.is_some()),
                o: p,
                o_len: len,
            });
            if let Some(a) = out {
                v.text.push(char::from(a));
            }
        }
        let mut v = view?;
        v.text.push_str(text.get(pending..).unwrap_or_default());
        Some(v)
    }

    /// The original range of the view's range `s..e` (on char boundaries
    /// of the view): from the first original character behind `s` to the
    /// end of the one behind `e - 1`. Characters left out of the view
    /// inside the range are inside the result; those just before `s` or
    /// at `e` are not.
    pub(crate) fn to_original(&self, s: usize, e: usize) -> (usize, usize) {
        let start = self.map(s, false);
        let end = if e > s { self.map(e - 1, true) } else { start };
        (start, end.max(start))
    }

    /// Original offset of the character at view offset `p`: its start, or
    /// its end when `end` is set.
    fn map(&self, p: usize, end: bool) -> usize {
        // Changes that lie wholly before `p` (dropped characters at `p`
        // count as before it).
        let k = self.subs.partition_point(|s| s.n + s.n_len <= p);
        if let Some(s) = self.subs.get(k) {
            if s.n <= p && p < s.n + s.n_len {
                return if end { s.o + s.o_len } else { s.o };
            }
        }
        let (bn, bo) = match k.checked_sub(1).and_then(|j| self.subs.get(j)) {
            Some(s) => (s.n + s.n_len, s.o + s.o_len),
            None => (0, 0),
        };
        bo + (p - bn) + usize::from(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orig<'a>(text: &'a str, v: &View, s: usize, e: usize) -> &'a str {
        let (a, b) = v.to_original(s, e);
        &text[a..b]
    }

    #[test]
    fn folds_and_maps_back() {
        let t = "n°\u{a0}４１\u{200b}1-\t 2 x";
        let v = View::of(t).expect("a view");
        assert_eq!(v.text, "n° 411- 2 x");
        let s = v.text.find('4').expect("present");
        let e = v.text.find(" x").expect("present");
        assert_eq!(orig(t, &v, s, e), "４１\u{200b}1-\t 2");
        // A dropped character just before a range is not in it.
        let one = v.text.find("11").expect("present") + 1;
        assert_eq!(orig(t, &v, one, one + 1), "1");
    }

    #[test]
    fn digits_of_every_script() {
        for &z in DIGIT_ZEROS {
            for d in 0..10u32 {
                let c = char::from_u32(z + d).expect("present");
                assert_eq!(digit_value(c), Some(d as u8), "{c:?}");
            }
        }
        assert_eq!(digit_value('a'), None);
        assert_eq!(digit_value('\u{65f}'), None);
    }

    #[test]
    fn text_that_folds_to_itself_needs_no_view() {
        assert!(View::of("card 4111 1111 1111 1111 please").is_none());
        assert!(View::of("Très bien, merci, à demain ‘ok’ 😀").is_none());
        assert_eq!(
            View::of("card 4111  1111").expect("present").text,
            "card 4111 1111"
        );
        assert_eq!(
            View::of("a\u{a0}  \u{202f} b\t\tc").expect("present").text,
            "a b c"
        );
        assert_eq!(View::of("x \u{a0}1").expect("present").text, "x 1");
    }
}
