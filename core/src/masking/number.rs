//! Number detectors: payment cards (Luhn), US social security numbers and
//! phone numbers (international and common national formats).
//!
//! Each detector is called by the scanner at the first digit `p` of a digit
//! run whose left side is a word boundary, reads a bounded window of bytes
//! and reports every valid item starting there (phones may start before `p`
//! to take in a leading `+` or `(`). Reporting every valid prefix, not only
//! the longest, lets overlap resolution fall back on a shorter one; and no
//! detector looks past the byte after its item, so masking one item never
//! changes whether another is found (idempotence).
//!
//! Decisions for ambiguous text (see also the table in
//! `core/tests/masking_cases.txt`):
//! - cards: 13–19 digits, in one block or in groups of at least 3 digits
//!   separated by up to three spaces, dashes, dots or slashes (mixed
//!   allowed: `4111 1111-1111 1111`, `4111.1111.1111.1111`), possibly glued
//!   to letters (`card4111111111111111end`); every Luhn-valid prefix ending
//!   at a group boundary is a candidate (so a card followed by a year,
//!   `4111 1111 1111 1111 2026`, is still masked);
//! - SSN: only the `AAA-GG-SSSS` / `AAA GG SSSS` / `AAA.GG.SSSS` forms
//!   (separators may be mixed). Bare nine-digit
//!   numbers are **not** SSNs: order, invoice and parcel numbers look the
//!   same;
//! - phones: see [`phone`].

use super::scan::{at, is_digit, left_ok, right_ok};

/// Luhn checksum over digit values (0–9), most significant first.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Bytes read as a separator between the digit groups of a card.
#[inline]
fn is_card_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/')
}

/// Most separator bytes between two digit groups of a card (`4111 - 1111`).
const MAX_CARD_SEP: usize = 3;

/// May a card end at `e`? Unlike other numbers a card may be glued to a
/// letter (`card4111111111111111end`, `cc_4111…`): its 13–19 digits and
/// the Luhn check are specific enough. Not followed by another digit, a
/// `*` or an `@`, nor by a decimal part.
#[inline]
pub(crate) fn card_right_ok(b: &[u8], e: usize) -> bool {
    let c = at(b, e);
    if is_digit(c) || c == b'*' || c == b'@' {
        return false;
    }
    !(matches!(c, b'.' | b',') && is_digit(at(b, e + 1)))
}

/// Payment cards starting at `s`: calls `found(end)` for each.
///
/// Groups of at least 3 digits, separated by runs of up to
/// [`MAX_CARD_SEP`] spaces, dashes, dots or slashes, mixed or not (the
/// view has already turned every Unicode space and dash into ASCII).
///
/// A card with spaces inside is never glued to a word (`glued_left`, or a
/// letter right after it): masking removes the spaces, which would join
/// the words on both sides into one token (`x.com4111 1111 … jean@y.fr`
/// would become an address) and masking would not be idempotent.
pub(crate) fn card(b: &[u8], s: usize, glued_left: bool, mut found: impl FnMut(usize)) {
    let mut digits = [0u8; 19];
    let mut total = 0usize;
    let mut groups = 0usize;
    let mut spaced = false;
    let mut i = s;
    loop {
        let gs = i;
        while is_digit(at(b, i)) {
            if total == digits.len() {
                // More than 19 digits in this group: no card ends here.
                return;
            }
            digits[total] = b[i] - b'0';
            total += 1;
            i += 1;
        }
        groups += 1;
        if i - gs < 3 && (groups > 1 || is_card_sep(at(b, i))) {
            // Groups have at least 3 digits (so `2024-03-15` is no card).
            return;
        }
        let end_ok = if spaced {
            right_ok(b, i)
        } else {
            card_right_ok(b, i)
        };
        if (13..=19).contains(&total) && end_ok && luhn(&digits[..total]) {
            found(i);
        }
        let mut j = i;
        while j - i < MAX_CARD_SEP && is_card_sep(at(b, j)) {
            spaced |= at(b, j) == b' ';
            j += 1;
        }
        if j == i || !is_digit(at(b, j)) || (spaced && glued_left) {
            return;
        }
        i = j;
    }
}

/// A US SSN (`AAA-GG-SSSS`, `AAA GG SSSS` or `AAA.GG.SSSS`, separators
/// possibly mixed) starting at `s`: its end.
pub(crate) fn ssn(b: &[u8], s: usize) -> Option<usize> {
    let w = b.get(s..s + 11)?;
    let sep = |c: u8| matches!(c, b'-' | b' ' | b'.');
    if !sep(w[3]) || !sep(w[6]) {
        return None;
    }
    let digits_ok = w[..3]
        .iter()
        .chain(&w[4..6])
        .chain(&w[7..11])
        .all(|c| c.is_ascii_digit());
    if !digits_ok || !right_ok(b, s + 11) {
        return None;
    }
    let num = |r: &[u8]| r.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    let (area, group, serial) = (num(&w[..3]), num(&w[4..6]), num(&w[7..11]));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return None;
    }
    Some(s + 11)
}

/// Most groups a phone number is read in.
const MAX_GROUPS: usize = 8;
/// Most digits in one group (E.164 numbers have at most 15 digits).
const MAX_GROUP_DIGITS: usize = 15;

/// One group of digits of a phone number, possibly in parentheses.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    /// Byte offset just past the group (past its `)` if in parentheses).
    end: usize,
    /// Number of digits.
    len: usize,
    paren: bool,
    /// The separator before this group: `b' '`, `b'-'`, `b'.'`, `b'/'`,
    /// or 0 (first group, or right after a `)`).
    sep: u8,
    /// Its first three digits (0 past its end).
    d0: u8,
    d1: u8,
    d2: u8,
}

/// A run of digit groups as written, e.g. `(123) 456-7890`. It stops
/// before a group of more than [`MAX_GROUP_DIGITS`] digits and after
/// [`MAX_GROUPS`] groups.
struct Groups {
    g: [Group; MAX_GROUPS],
    n: usize,
}

fn read_groups(b: &[u8], start: usize) -> Groups {
    let mut out = Groups {
        g: [Group::default(); MAX_GROUPS],
        n: 0,
    };
    let mut i = start;
    let mut sep = 0u8;
    loop {
        let paren = at(b, i) == b'(';
        let ds = if paren { i + 1 } else { i };
        let mut j = ds;
        while is_digit(at(b, j)) && j - ds <= MAX_GROUP_DIGITS {
            j += 1;
        }
        let len = j - ds;
        if len == 0 || len > MAX_GROUP_DIGITS {
            return out;
        }
        let end = if paren {
            if at(b, j) != b')' {
                return out;
            }
            j + 1
        } else {
            j
        };
        out.g[out.n] = Group {
            end,
            len,
            paren,
            sep,
            d0: b[ds],
            d1: if len > 1 { b[ds + 1] } else { 0 },
            d2: if len > 2 { b[ds + 2] } else { 0 },
        };
        out.n += 1;
        let c = at(b, end);
        let (s, next) = match c {
            b' ' | b'-' | b'.' | b'/' => (c, end + 1),
            _ if paren => (0, end),
            _ => return out,
        };
        let n0 = at(b, next);
        let continues = is_digit(n0) || (n0 == b'(' && s != 0 && is_digit(at(b, next + 1)));
        if !continues {
            return out;
        }
        if out.n == MAX_GROUPS {
            return out;
        }
        sep = s;
        i = next;
    }
}

/// Phone numbers around the digit at `p` (the first digit of a run): calls
/// `found(start, end)` for each, the range including a leading `+` or `(`.
/// Every prefix of the run of digit groups that has one of the shapes
/// below is a candidate.
///
/// Accepted:
/// - international: `+` (optionally followed by one space), then digit
///   groups separated by single spaces, dashes, dots, with parentheses
///   allowed (`+44 (0) 20 7946 0958`, `+ 1 (123) 456 7890`); 8–15 digits
///   not counting a `(0)` trunk group.
///   Also `00` + country code (`0044 7966 197542`), 8–15 digits after `00`
///   (10–15 when written in one block);
/// - North American: `(123) 456-7890`, `123-456-7890`, `123.456.7890`,
///   `123 456 7890`, `1-800-555-1234`;
/// - national numbers with a trunk `0` (France, UK, Germany, Belgium, …):
///   10–12 digits in 2–5 groups of at least 2 digits, first group at most 5,
///   one consistent separator (`/` allowed between two groups:
///   `030/12345678`), or 10–11 digits in one block (`0612345678`);
/// - Spanish: `612 34 56 78` (first digit 6–9), `91 123 45 67` (8 or 9).
///
/// Not accepted: bare 9- or 10-digit numbers without a leading `0`
/// (`123456789`, `1710511200`): order numbers and timestamps look the same.
/// A shape followed by more digit groups is still a phone number
/// (`06 12 34 56 78 90` masks the first ten digits): what follows an item
/// never decides whether it is one, so masking stays idempotent.
pub(crate) fn phone(b: &[u8], p: usize, mut found: impl FnMut(usize, usize)) {
    let (s, plus) = if p >= 1 && b[p - 1] == b'+' {
        (p - 1, true)
    } else if p >= 2 && b[p - 1] == b' ' && b[p - 2] == b'+' {
        (p - 2, true)
    } else if p >= 1 && b[p - 1] == b'(' && read_groups(b, p - 1).n > 0 {
        (p - 1, false)
    } else {
        (p, false)
    };
    if !left_ok(b, s) {
        return;
    }
    let groups = read_groups(b, if plus { p } else { s });
    let g = &groups.g[..groups.n];
    if g.is_empty() {
        return;
    }
    if plus {
        return international(b, g, 0, |e| found(s, e));
    }
    if g[0].d0 == b'0' && g[0].d1 == b'0' && !g[0].paren {
        return international(b, g, 2, |e| found(s, e));
    }
    for k in 1..=g.len() {
        if national(&g[..k]) && right_ok(b, g[k - 1].end) {
            found(s, g[k - 1].end);
        }
    }
}

/// International numbers: each prefix of `g` with 8–15 significant digits
/// (`skip` leading digits, like the `00` prefix, are not counted).
fn international(b: &[u8], g: &[Group], skip: usize, mut found: impl FnMut(usize)) {
    let bad_country = (skip == 0 && g[0].d0 == b'0') || (skip == 2 && g[0].d2 == b'0');
    if g[0].paren || bad_country {
        return;
    }
    let mut total = 0usize;
    for (k, x) in g.iter().enumerate() {
        let trunk = x.paren && x.len == 1 && x.d0 == b'0';
        if !trunk {
            total += x.len;
        }
        let sig = total.saturating_sub(skip);
        if sig > 15 {
            break;
        }
        let min = if skip > 0 && k == 0 { 10 } else { 8 };
        if sig >= min && !x.paren && right_ok(b, x.end) {
            found(x.end);
        }
    }
}

/// National formats; `g` is the whole number.
fn national(g: &[Group]) -> bool {
    let lens =
        |want: &[usize]| g.len() == want.len() && g.iter().zip(want).all(|(x, &w)| x.len == w);
    let seps_in = |from: usize, set: &[u8]| g[from..].iter().all(|x| set.contains(&x.sep));
    let same_sep = |from: usize| g[from..].iter().all(|x| x.sep == g[from].sep);
    let no_paren_from = |from: usize| g[from..].iter().all(|x| !x.paren);
    const SEPS: &[u8] = b" -.";

    // North American.
    if lens(&[3, 3, 4]) && no_paren_from(1) {
        return if g[0].paren {
            seps_in(1, b" -.\0") && seps_in(2, SEPS)
        } else {
            seps_in(1, SEPS) && same_sep(1)
        };
    }
    if lens(&[1, 3, 3, 4]) && g[0].d0 == b'1' && !g[0].paren && no_paren_from(2) {
        return seps_in(1, SEPS) && seps_in(2, b" -.\0") && seps_in(3, SEPS);
    }
    if g.iter().any(|x| x.paren) {
        return false;
    }
    let total: usize = g.iter().map(|x| x.len).sum();
    // Trunk prefix 0 (France, UK, Germany, Belgium, Switzerland, …).
    if g[0].d0 == b'0' && g[0].d1 != b'0' {
        if g.len() == 1 {
            return (10..=11).contains(&total);
        }
        let sep_ok = seps_in(1, SEPS) || (g.len() == 2 && g[1].sep == b'/');
        return sep_ok
            && same_sep(1)
            && g.len() <= 5
            && (10..=12).contains(&total)
            && g[0].len <= 5
            && g.iter().all(|x| x.len >= 2);
    }
    // Spanish (no trunk prefix).
    if g.len() == 4 && seps_in(1, SEPS) && same_sep(1) {
        return (lens(&[3, 2, 2, 2]) && (b'6'..=b'9').contains(&g[0].d0))
            || (lens(&[2, 3, 2, 2]) && (g[0].d0 == b'8' || g[0].d0 == b'9'));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        let d = |s: &str| s.bytes().map(|c| c - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(!luhn(&d("4111111111111112")));
        assert!(luhn(&d("378282246310005")));
    }
}
