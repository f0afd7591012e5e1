//! The single pass over the text that finds candidate items.
//!
//! Why hand-written rather than one regex per detector (or one big regex):
//! every built-in item needs an ASCII digit or an `@`, and chat text is
//! mostly letters. A branch-free byte classification over 16-byte chunks
//! (which the compiler vectorizes) skips the letters at several GB/s; each
//! interesting byte is then handed to small parsers that read a bounded
//! number of bytes and validate (Luhn, mod-97, SSN ranges, phone shapes)
//! in place. This keeps the engine one pass over the text, allocation-free
//! until something is found, and linear: every parser reads at most a
//! bounded window, and the scan position only moves forward.
//!
//! Candidates may overlap; `resolve` (in the parent module) picks the
//! winners. **Invariant:** whether a candidate is reported depends only on
//! the bytes of the candidate and the two bytes on each side of it, never
//! on other candidates (every digit run and every `@` is tried, nothing is
//! skipped because a candidate was found). Together with `*` being a word
//! byte, this is what makes masking idempotent: masking the winners cannot
//! create a new candidate, nor remove one that did not overlap them.

use super::{email, iban, number};

/// Internal kind of a candidate. `Tenant(i)` is the index of the tenant
/// pattern in the masker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Det {
    Card,
    Iban,
    Ssn,
    Email,
    Phone,
    Tenant(usize),
    /// IBAN-shaped text with a wrong checksum: kept as it is, and as a
    /// candidate it keeps its digit groups from being read as a card or a
    /// phone number. Never reported nor rendered.
    Keep,
}

impl Det {
    /// Specificity used to break ties between overlapping candidates of the
    /// same length: checksum/structure-validated kinds first, then e-mail,
    /// then tenant patterns, then phone numbers (the loosest detector).
    pub(crate) fn rank(self) -> u8 {
        match self {
            Det::Keep => 5,
            Det::Card | Det::Iban | Det::Ssn => 4,
            Det::Email => 3,
            Det::Tenant(_) => 2,
            Det::Phone => 1,
        }
    }

    /// Whether the item is rendered with the number rule.
    pub(crate) fn is_number_rule(self) -> bool {
        !matches!(self, Det::Email)
    }
}

/// A candidate item: byte range `start..end` in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cand {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) det: Det,
}

/// The byte at `i`, or 0 past the end (0 never matches any class below).
#[inline]
pub(crate) fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// Bytes that glue to a number and make it part of a larger token. `*` is
/// included so that the visible tail of a masked item (`****1111`) is never
/// taken for the start or the end of a new item: this is what makes masking
/// idempotent.
#[inline]
pub(crate) fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'*'
}

#[inline]
fn is_interesting(c: u8) -> bool {
    (c.wrapping_sub(b'0') < 10) | (c == b'@')
}

/// Position of the next ASCII digit or `@` at or after `from`.
#[inline]
pub(crate) fn next_interesting(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut chunks = rest.chunks_exact(16);
    let mut off = from;
    for chunk in &mut chunks {
        // Branch-free OR over the chunk: vectorized by the compiler.
        let hit = chunk.iter().fold(false, |h, &c| h | is_interesting(c));
        if hit {
            return chunk
                .iter()
                .position(|&c| is_interesting(c))
                .map(|k| off + k);
        }
        off += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| is_interesting(c))
        .map(|k| off + k)
}

/// True when the text holds no ASCII digit and no `@`: no built-in detector
/// can match.
#[inline]
pub(crate) fn nothing_to_scan(b: &[u8]) -> bool {
    next_interesting(b, 0).is_none()
}

/// May a number item start at `s`? Not glued to a word, an `@` or a `*`,
/// and not the continuation of a number written with `-`, `.`, `/` or `,`
/// (`2024-03-15`, `1.234.567`, or the tail of a masked `****6-78`).
#[inline]
pub(crate) fn left_ok(b: &[u8], s: usize) -> bool {
    if s == 0 {
        return true;
    }
    let c = b[s - 1];
    if is_word(c) || c == b'@' {
        return false;
    }
    if matches!(c, b'-' | b'.' | b'/' | b',') && s >= 2 {
        let d = b[s - 2];
        if is_digit(d) || d == b'*' {
            return false;
        }
    }
    true
}

/// May a number item end at `e`? Not glued to a word, an `@` or a `*`, and
/// not followed by a decimal part (`.5`, `,99`).
#[inline]
pub(crate) fn right_ok(b: &[u8], e: usize) -> bool {
    let c = at(b, e);
    if is_word(c) || c == b'@' {
        return false;
    }
    !(matches!(c, b'.' | b',') && is_digit(at(b, e + 1)))
}

/// End of the run of ASCII digits starting at `i`.
#[inline]
fn skip_digits(b: &[u8], mut i: usize) -> usize {
    while is_digit(at(b, i)) {
        i += 1;
    }
    i
}

/// Finds every built-in candidate in `text`, appending to `out`.
pub(crate) fn scan(text: &str, out: &mut Vec<Cand>) {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = next_interesting(b, i) {
        if b[p] == b'@' {
            if let Some((s, e)) = email::at_sign(text, p) {
                out.push(Cand {
                    start: s,
                    end: e,
                    det: Det::Email,
                });
            }
            i = p + 1;
            continue;
        }
        // A digit glued to a word: an IBAN (two letters, then digits) or a
        // card glued to letters (`card4111…`) may start there; no other
        // number does. After a `*` (a masked item's visible tail) nothing
        // starts.
        if p > 0 && is_word(b[p - 1]) {
            match iban::try_at(b, p) {
                iban::Found::Valid(e) => out.push(Cand {
                    start: p - 2,
                    end: e,
                    det: Det::Iban,
                }),
                iban::Found::Shaped(e) => out.push(Cand {
                    start: p - 2,
                    end: e,
                    det: Det::Keep,
                }),
                iban::Found::No => {}
            }
            if b[p - 1] != b'*' {
                number::card(b, p, true, |e| {
                    out.push(Cand {
                        start: p,
                        end: e,
                        det: Det::Card,
                    })
                });
            }
            i = skip_digits(b, p);
            continue;
        }
        let next = skip_digits(b, p);
        // Later digit groups of the same item are tried too (see the
        // invariant above); overlap resolution drops them.
        let mut push = |start: usize, end: usize, det: Det| out.push(Cand { start, end, det });
        if left_ok(b, p) {
            number::card(b, p, false, |e| push(p, e, Det::Card));
            if let Some(e) = number::ssn(b, p) {
                push(p, e, Det::Ssn);
            }
        }
        number::phone(b, p, |s, e| push(s, e, Det::Phone));
        i = next;
    }
}
