//! IBAN detector: country code with its exact length from the SWIFT IBAN
//! registry, then the ISO 7064 mod-97 check (remainder 1).
//!
//! Accepted forms: compact (`DE89370400440532013000`) or printed in groups
//! of four separated by single spaces, dashes or dots
//! (`DE89 3704 0044 0532 0130 00`; any Unicode space or dash in the text is
//! one of these in the view), in upper or lower case, possibly glued to
//! letters (`ibanFR76…`). Anything else is left to the other detectors.

use super::number::card_right_ok;
use super::scan::{at, is_digit, is_word, right_ok};

/// IBAN length per country code, from the SWIFT IBAN registry (territories
/// that use another country's format, like French overseas departments, are
/// written with that country's code and need no entry).
const LENGTHS: &[([u8; 2], usize)] = &[
    (*b"AD", 24),
    (*b"AE", 23),
    (*b"AL", 28),
    (*b"AT", 20),
    (*b"AZ", 28),
    (*b"BA", 20),
    (*b"BE", 16),
    (*b"BG", 22),
    (*b"BH", 22),
    (*b"BI", 27),
    (*b"BR", 29),
    (*b"BY", 28),
    (*b"CH", 21),
    (*b"CR", 22),
    (*b"CY", 28),
    (*b"CZ", 24),
    (*b"DE", 22),
    (*b"DJ", 27),
    (*b"DK", 18),
    (*b"DO", 28),
    (*b"EE", 20),
    (*b"EG", 29),
    (*b"ES", 24),
    (*b"FI", 18),
    (*b"FK", 18),
    (*b"FO", 18),
    (*b"FR", 27),
    (*b"GB", 22),
    (*b"GE", 22),
    (*b"GI", 23),
    (*b"GL", 18),
    (*b"GR", 27),
    (*b"GT", 28),
    (*b"HN", 28),
    (*b"HR", 21),
    (*b"HU", 28),
    (*b"IE", 22),
    (*b"IL", 23),
    (*b"IQ", 23),
    (*b"IS", 26),
    (*b"IT", 27),
    (*b"JO", 30),
    (*b"KW", 30),
    (*b"KZ", 20),
    (*b"LB", 28),
    (*b"LC", 32),
    (*b"LI", 21),
    (*b"LT", 20),
    (*b"LU", 20),
    (*b"LV", 21),
    (*b"LY", 25),
    (*b"MC", 27),
    (*b"MD", 24),
    (*b"ME", 22),
    (*b"MK", 19),
    (*b"MN", 20),
    (*b"MR", 27),
    (*b"MT", 31),
    (*b"MU", 30),
    (*b"NI", 28),
    (*b"NL", 18),
    (*b"NO", 15),
    (*b"OM", 23),
    (*b"PK", 24),
    (*b"PL", 28),
    (*b"PS", 29),
    (*b"PT", 25),
    (*b"QA", 29),
    (*b"RO", 24),
    (*b"RS", 22),
    (*b"RU", 33),
    (*b"SA", 24),
    (*b"SC", 31),
    (*b"SD", 18),
    (*b"SE", 24),
    (*b"SI", 19),
    (*b"SK", 24),
    (*b"SM", 27),
    (*b"SO", 23),
    (*b"ST", 25),
    (*b"SV", 28),
    (*b"TL", 23),
    (*b"TN", 24),
    (*b"TR", 26),
    (*b"UA", 29),
    (*b"VA", 22),
    (*b"VG", 24),
    (*b"XK", 20),
    (*b"YE", 30),
];

/// Longest IBAN of the registry.
const MAX_LEN: usize = 34;

/// The IBAN length of a country (upper-case code), if it has IBANs.
pub(crate) fn country_length(cc: [u8; 2]) -> Option<usize> {
    LENGTHS
        .binary_search_by(|(c, _)| c.cmp(&cc))
        .ok()
        .map(|k| LENGTHS[k].1)
}

/// ISO 7064 mod 97-10 over an IBAN (country code, check digits, BBAN), all
/// ASCII alphanumerics.
pub(crate) fn mod97_ok(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let (head, bban) = iban.split_at(4);
    let mut r = 0u32;
    for &c in bban.iter().chain(head) {
        r = match c {
            b'0'..=b'9' => (r * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(c - b'A') + 10) % 97,
            b'a'..=b'z' => (r * 100 + u32::from(c - b'a') + 10) % 97,
            _ => return false,
        };
    }
    r == 1
}

/// What [`try_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// A valid IBAN ending at this offset.
    Valid(usize),
    /// Right country, length and form but a wrong checksum, ending here.
    Shaped(usize),
    No,
}

/// An IBAN whose first check digit is at `p` (so the country code is at
/// `p - 2`).
pub(crate) fn try_at(b: &[u8], p: usize) -> Found {
    if p < 2 || !is_digit(at(b, p + 1)) {
        return Found::No;
    }
    let s = p - 2;
    if !b[s].is_ascii_alphabetic() || !b[s + 1].is_ascii_alphabetic() {
        return Found::No;
    }
    // Glued to letters is fine (`ibanFR76…`): the country's length and
    // mod-97 are specific enough. Not after a digit, `*` or `@`.
    if s > 0 && matches!(b[s - 1], b'0'..=b'9' | b'*' | b'@') {
        return Found::No;
    }
    let cc = [b[s].to_ascii_uppercase(), b[s + 1].to_ascii_uppercase()];
    let Some(len) = country_length(cc) else {
        return Found::No;
    };
    let is_sep = |c: u8| matches!(c, b' ' | b'-' | b'.');
    let spaced = is_sep(at(b, s + 4));
    let mut strict = false;
    let mut buf = [0u8; MAX_LEN];
    let mut n = 0;
    let mut i = s;
    while n < len {
        if spaced && n > 0 && n % 4 == 0 {
            if !is_sep(at(b, i)) {
                return Found::No;
            }
            strict |= at(b, i) == b' ';
            i += 1;
        }
        let c = at(b, i);
        if !c.is_ascii_alphanumeric() {
            return Found::No;
        }
        buf[n] = c;
        n += 1;
        i += 1;
    }
    // With spaces inside, never glued to a word (see `number::card`).
    let glued_left = s > 0 && is_word(b[s - 1]);
    let end_ok = if strict {
        !glued_left && right_ok(b, i)
    } else {
        card_right_ok(b, i)
    };
    if !end_ok {
        return Found::No;
    }
    if mod97_ok(&buf[..len]) {
        Found::Valid(i)
    } else {
        Found::Shaped(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(LENGTHS.iter().all(|(_, l)| *l <= MAX_LEN));
    }

    #[test]
    fn mod97_examples() {
        assert!(mod97_ok(b"DE89370400440532013000"));
        assert!(mod97_ok(b"gb82west12345698765432"));
        assert!(!mod97_ok(b"DE89370400440532013001"));
    }
}
