//! E-mail detector, called by the scanner at each `@`.
//!
//! Local part: the longest run before the `@` of ASCII letters, digits,
//! `. _ % + - * ' ! # $ & = ? ^ ~ { } |` and of any Unicode alphanumeric
//! character, less what comes before its first alphanumeric character
//! (`l'adresse .jean@x.fr`, `<+jean@x.fr>`). `*` is accepted so that a
//! masked address (`m******@gmail.com`) is found again and masked to the
//! same text.
//!
//! Domain: labels of letters, digits (Unicode alphanumerics included) and
//! inner hyphens, separated by single dots, at least two labels; the last
//! one (the TLD) is two or more ASCII letters. The domain is the longest
//! such run of labels: a trailing dot is left out (`écrivez à jean@x.fr.`),
//! and so are labels after the last valid TLD (`jean@x.fr.2024`). A TLD
//! directly followed by a hyphen (`jean@x.fr-`) is not valid, and a label
//! goes on after a hyphen only with a letter or digit, not a `*`.

use super::scan::at;

#[inline]
fn is_local_ascii(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'.' | b'_'
                | b'%'
                | b'+'
                | b'-'
                | b'*'
                | b'\''
                | b'!'
                | b'#'
                | b'$'
                | b'&'
                | b'='
                | b'?'
                | b'^'
                | b'~'
                | b'{'
                | b'}'
                | b'|'
        )
}

/// The char starting at byte `i` of `text`, if `i` is a char boundary.
#[inline]
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// The e-mail address around the `@` at byte `p`: its byte range.
pub(crate) fn at_sign(text: &str, p: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let mut j = p;
    while j > 0 {
        let c = b[j - 1];
        if c < 0x80 {
            if !is_local_ascii(c) {
                break;
            }
            j -= 1;
            continue;
        }
        // Step back to the start of the UTF-8 sequence ending at `j`.
        let mut k = j - 1;
        while k > 0 && (b[k] & 0xC0) == 0x80 && j - k < 4 {
            k -= 1;
        }
        match char_at(text, k) {
            Some(ch) if ch.is_alphanumeric() && k + ch.len_utf8() == j => j = k,
            _ => break,
        }
    }
    // The local part starts at its first alphanumeric character: a masked
    // local part (`j*******`) then still has one, and is found again.
    while j < p {
        match char_at(text, j) {
            Some(ch) if !ch.is_alphanumeric() => j += ch.len_utf8(),
            _ => break,
        }
    }
    if j >= p {
        return None;
    }
    let end = domain(text, p + 1)?;
    Some((j, end))
}

/// End of the domain starting at byte `s`: the longest run of at least two
/// labels whose last label is a valid TLD. A label directly followed by a
/// hyphen that does not go on (`x.com-`) is never the TLD: this keeps the
/// result the same whether what follows was a number or its masked form.
fn domain(text: &str, s: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = s;
    let mut labels = 0usize;
    let mut best = None;
    loop {
        let ls = i;
        let mut last_alnum = None;
        loop {
            let c = at(b, i);
            // `*` counts as a label character (never a letter): a card
            // glued to a domain (`x.com4111…`) keeps the label invalid as
            // a TLD once masked (`x.com****…`), so masking is idempotent.
            if c.is_ascii_alphanumeric() || c == b'*' {
                i += 1;
                last_alnum = Some(i);
            } else if c == b'-' && i > ls {
                i += 1;
                // A hyphen then a masked character: what was masked may
                // have begun with a `+` or a `(` (a phone number, which
                // ends the label at the hyphen) as well as with a digit,
                // so the label ends at the hyphen here too, as it did
                // before masking (`jean@x.fr-+447966197542.MMB`).
                if at(b, i) == b'*' {
                    break;
                }
            } else if c >= 0x80 {
                match char_at(text, i) {
                    Some(ch) if ch.is_alphanumeric() => {
                        i += ch.len_utf8();
                        last_alnum = Some(i);
                    }
                    _ => break,
                }
            } else {
                break;
            }
        }
        let Some(le) = last_alnum else { break };
        labels += 1;
        if le != i {
            // The label ended with hyphens: the domain stops before them.
            break;
        }
        if labels >= 2 && le - ls >= 2 && b[ls..le].iter().all(u8::is_ascii_alphabetic) {
            best = Some(le);
        }
        if at(b, i) == b'.' && starts_label(text, i + 1) {
            i += 1;
        } else {
            break;
        }
    }
    best
}

fn starts_label(text: &str, i: usize) -> bool {
    let c = at(text.as_bytes(), i);
    if c < 0x80 {
        c.is_ascii_alphanumeric() || c == b'*'
    } else {
        char_at(text, i).is_some_and(char::is_alphanumeric)
    }
}
