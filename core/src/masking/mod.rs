//! Masking of sensitive data (cards, IBAN, SSN, e-mail, phone numbers).
//!
//! Public API (stable, other modules code against it):
//! - `Masker::new(&[TenantPattern]) -> Result<Masker, MaskError>`
//! - `Masker::default()` (default detectors, no tenant pattern)
//! - `Masker::mask(&self, &str) -> Cow<'_, str>`
//! - `Masker::find(&self, &str) -> Vec<Span>`
//! - `Masker::mask_with_spans(&self, &str) -> (String, Vec<Span>)`
//!
//! How it works: detection runs on a normalized view of the text
//! (`normalize.rs`: digits of every script, Unicode spaces and dashes,
//! full-width forms and invisible characters folded), mapped back to the
//! original's exact byte ranges; pure-ASCII text with plain spacing is its
//! own view and takes the fast path. One forward scan over the view's
//! bytes (`scan.rs`) stops only at ASCII digits and `@`, hands each stop to small validating parsers
//! (`number.rs`, `iban.rs`, `email.rs`) and collects candidates; tenant
//! patterns add theirs with their own regexes. Overlapping candidates are
//! then resolved (e-mail addresses first, then longest first, then the most
//! specific kind: card, IBAN and SSN before tenant patterns and phone
//! numbers; see `resolve`), and the winners are rendered (CONTRACT.md, "Masking rules"):
//! - e-mail: first character of the local part, one `*` per other
//!   character of it (characters, not bytes), then `@domain` unchanged;
//! - everything else (the "number rule"): white space removed, then every
//!   character but the last four replaced by `*`.
//!
//! **Invariants:** text outside the spans is copied unchanged; spans are
//! sorted, never overlap and lie on char boundaries; no input panics;
//! with the default detectors `mask(mask(x)) == mask(x)` (a masked item
//! is either not found again, or found and rendered to the same text).
//! Tenant patterns are the tenant's own regexes: idempotence then depends
//! on them (a pattern that matches its own masked form keeps it as is, as
//! long as it matches it whole).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

mod email;
mod iban;
mod normalize;
mod number;
mod scan;

pub use normalize::{is_at_sign, is_invisible};
use scan::{Cand, Det};

/// Kind of a detected sensitive item; serialized as `card`, `iban`, `ssn`,
/// `email`, `phone` or the tenant pattern's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Card,
    Iban,
    Ssn,
    Email,
    Phone,
    Custom(String),
}

impl Kind {
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Ssn => "ssn",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Custom(name) => name,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A detected item: byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

/// Serialized as `{"start": B, "end": B, "kind": "card"}` (the
/// `switchboard mask --json` form).
impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Span", 3)?;
        st.serialize_field("start", &self.start)?;
        st.serialize_field("end", &self.end)?;
        st.serialize_field("kind", self.kind.as_str())?;
        st.end()
    }
}

/// A tenant's own pattern (e.g. loyalty numbers), rendered with the number rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantPattern {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("tenant pattern {name:?}: {message}")]
    BadPattern { name: String, message: String },
}

/// Compiled tenant patterns; shared by every clone of a [`Masker`].
#[derive(Debug, Default)]
struct Inner {
    tenant: Vec<(String, regex::Regex)>,
}

/// The masking engine. Cheap to clone and share (`Send + Sync`): clones
/// share the compiled tenant patterns.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    inner: Arc<Inner>,
}

/// Largest compiled size of one tenant regex (bytes).
const TENANT_REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Masker {
    /// The default detectors plus the tenant's patterns. A pattern whose
    /// regex does not compile (or whose name is empty) is an error naming
    /// it.
    pub fn new(patterns: &[TenantPattern]) -> Result<Self, MaskError> {
        let mut tenant = Vec::with_capacity(patterns.len());
        for p in patterns {
            if p.name.trim().is_empty() {
                return Err(MaskError::BadPattern {
                    name: p.name.clone(),
                    message: "the pattern needs a name".into(),
                });
            }
            let re = regex::RegexBuilder::new(&p.regex)
                .size_limit(TENANT_REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| MaskError::BadPattern {
                    name: p.name.clone(),
                    message: e.to_string(),
                })?;
            tenant.push((p.name.clone(), re));
        }
        Ok(Self {
            inner: Arc::new(Inner { tenant }),
        })
    }

    /// True when `text` certainly holds nothing to mask, decided without
    /// running the detectors: no ASCII digit and no `@` (what every
    /// built-in item needs) and no tenant pattern configured. False means
    /// "maybe": call [`Masker::find`] or [`Masker::mask`].
    pub fn is_clean_fast(&self, text: &str) -> bool {
        self.inner.tenant.is_empty() && !builtin_may_match(text)
    }

    /// The items to mask in `text`: sorted, non-overlapping, byte offsets.
    pub fn find(&self, text: &str) -> Vec<Span> {
        self.candidates(text)
            .into_iter()
            .map(|c| self.span(c))
            .collect()
    }

    /// `text` with every item masked; borrowed when that changes nothing.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let found = self.candidates(text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let masked = render(text, &found);
        // Already-masked items (`m******@gmail.com`) render to themselves.
        if masked == text {
            return Cow::Borrowed(text);
        }
        Cow::Owned(masked)
    }

    /// The masked text and the items found (offsets into `text`).
    pub fn mask_with_spans(&self, text: &str) -> (String, Vec<Span>) {
        let found = self.candidates(text);
        let masked = if found.is_empty() {
            text.to_owned()
        } else {
            render(text, &found)
        };
        (masked, found.into_iter().map(|c| self.span(c)).collect())
    }

    /// An item split over two consecutive messages (`4111 1111`, then
    /// `1111 1111`): `prev` is the earlier message as stored (already
    /// masked), `next` the new one as received. When an item runs from the
    /// end of `prev` into `next`, returns both masked: `prev` with its part
    /// of the item starred, and `next` masked as [`Masker::mask`] would,
    /// plus its part of the item rendered so that the item as a whole
    /// follows the number rule (white space dropped, all but its last four
    /// characters starred). `None` when no item crosses.
    pub fn mask_across(&self, prev: &str, next: &str) -> Option<(String, String)> {
        // Only the end of one and the start of the other can hold an item
        // that spans both: look at a window of each, not at two whole
        // messages, for every message of a conversation.
        let tail_from = floor_char_boundary(prev, prev.len().saturating_sub(ACROSS_WINDOW));
        let head_to = ceil_char_boundary(next, ACROSS_WINDOW.min(next.len()));
        let (tail, head) = (prev.get(tail_from..)?, next.get(..head_to)?);
        // A new line between them: white space for every number detector,
        // and no e-mail address spans it.
        let window = format!("{tail}\n{head}");
        let cut = tail.len();
        let found = self.candidates(&window);
        let cross = found
            .iter()
            .find(|c| c.det.is_number_rule() && c.start < cut && c.end > cut + 1)?;
        // The same item in the two messages joined whole.
        let joined = format!("{prev}\n{next}");
        let cross = Cand {
            start: cross.start + tail_from,
            end: cross.end + tail_from,
            ..*cross
        };
        let cut = prev.len();
        let item = joined.get(cross.start..cross.end)?;
        let shown = item.chars().filter(|&c| rendered(c)).count();
        let keep_from = shown.saturating_sub(4);
        let mut before = String::with_capacity(prev.len());
        before.push_str(prev.get(..cross.start)?);
        let mut after_item = String::new();
        let mut k = 0;
        for (off, ch) in item.char_indices() {
            if !rendered(ch) {
                continue;
            }
            let out = if k < keep_from { '*' } else { ch };
            k += 1;
            if cross.start + off < cut {
                before.push(out);
            } else {
                after_item.push(out);
            }
        }
        let rest = joined.get(cross.end..)?;
        let mut after = after_item;
        after.push_str(&self.mask(rest));
        Some((before, after))
    }

    fn span(&self, c: Cand) -> Span {
        let kind = match c.det {
            // Filtered out by `candidates`.
            Det::Keep => Kind::Custom(String::new()),
            Det::Card => Kind::Card,
            Det::Iban => Kind::Iban,
            Det::Ssn => Kind::Ssn,
            Det::Email => Kind::Email,
            Det::Phone => Kind::Phone,
            Det::Tenant(i) => Kind::Custom(
                self.inner
                    .tenant
                    .get(i)
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default(),
            ),
        };
        Span {
            start: c.start,
            end: c.end,
            kind,
        }
    }

    /// All winning candidates, sorted by start.
    fn candidates(&self, text: &str) -> Vec<Cand> {
        let mut found = Vec::new();
        match normalize::View::of(text) {
            Some(view) if !scan::nothing_to_scan(view.text.as_bytes()) => {
                scan::scan(&view.text, &mut found);
                for c in &mut found {
                    (c.start, c.end) = view.to_original(c.start, c.end);
                }
            }
            Some(_) => {}
            None if !scan::nothing_to_scan(text.as_bytes()) => scan::scan(text, &mut found),
            None => {}
        }
        for (i, (_, re)) in self.inner.tenant.iter().enumerate() {
            found.extend(re.find_iter(text).filter(|m| !m.is_empty()).map(|m| Cand {
                start: m.start(),
                end: m.end(),
                det: Det::Tenant(i),
            }));
        }
        let mut kept = resolve(text, found);
        kept.retain(|c| c.det != Det::Keep);
        kept
    }
}

/// Could a built-in detector match in `text`? False only when no ASCII
/// digit, `@`, nor anything the normalized view turns into one is there.
fn builtin_may_match(text: &str) -> bool {
    if text.is_ascii() {
        return !scan::nothing_to_scan(text.as_bytes());
    }
    text.chars().any(normalize::starts_items)
}

/// Keeps a non-overlapping subset of the candidates, sorted by start.
///
/// E-mail addresses are taken first, then the other candidates longest
/// first, then the most specific ([`Det::rank`]), then the leftmost. Why
/// e-mail first: a number can only overlap an address by running into its
/// local part (`… 456 7890+x@y.fr`); if the number won, the second pass
/// would find the address again, now starting in the number's visible last
/// four, and mask it, so masking would not be idempotent. Every shorter
/// valid prefix of the number is a candidate too, so the part before the
/// address is still masked.
///
/// Length is counted in characters, not bytes: masking an address keeps
/// its character count (a multi-byte letter becomes one `*`), so two
/// overlapping addresses (`a@b.cd@ef.gh`) compare the same way on the
/// second pass.
fn resolve(text: &str, c: Vec<Cand>) -> Vec<Cand> {
    if c.len() <= 1 {
        return c;
    }
    let mut keyed: Vec<(usize, Cand)> = c
        .into_iter()
        .map(|x| (text.get(x.start..x.end).map_or(0, |s| s.chars().count()), x))
        .collect();
    keyed.sort_unstable_by(|(la, a), (lb, b)| {
        (b.det == Det::Email)
            .cmp(&(a.det == Det::Email))
            .then(lb.cmp(la))
            .then(b.det.rank().cmp(&a.det.rank()))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Cand> = Vec::with_capacity(keyed.len());
    for (_, x) in keyed {
        let pos = kept.partition_point(|k| k.start < x.start);
        let clear_left = pos == 0 || kept[pos - 1].end <= x.start;
        let clear_right = pos == kept.len() || x.end <= kept[pos].start;
        if clear_left && clear_right {
            kept.insert(pos, x);
        }
    }
    kept
}

/// `text` with each (sorted, non-overlapping) candidate rendered.
fn render(text: &str, found: &[Cand]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for c in found {
        let (Some(gap), Some(item)) = (text.get(last..c.start), text.get(c.start..c.end)) else {
            // Unreachable: candidates are sorted, disjoint and on char
            // boundaries. Stay safe anyway: keep the text as it is.
            continue;
        };
        out.push_str(gap);
        if c.det.is_number_rule() {
            render_number(&mut out, item);
        } else {
            render_email(&mut out, item);
        }
        last = c.end;
    }
    out.push_str(text.get(last..).unwrap_or_default());
    out
}

/// Characters a rendering leaves out: white space, and the invisible
/// characters the detectors ignored inside the item.
fn rendered(c: char) -> bool {
    !c.is_whitespace() && !normalize::is_invisible(c)
}

/// White space (and invisible characters) removed, then all characters
/// but the last four starred.
fn render_number(out: &mut String, item: &str) {
    let n = item.chars().filter(|&c| rendered(c)).count();
    let keep_from = n.saturating_sub(4);
    for (k, ch) in item.chars().filter(|&c| rendered(c)).enumerate() {
        out.push(if k < keep_from { '*' } else { ch });
    }
}

/// First character of the local part, a `*` per other character of it
/// (invisible ones left out), then the at sign (`@` or a full-width form)
/// and the domain unchanged.
fn render_email(out: &mut String, item: &str) {
    let Some(at) = item.find(normalize::is_at_sign) else {
        render_number(out, item);
        return;
    };
    let (local, domain) = item.split_at(at);
    let mut chars = local.chars().filter(|&c| !normalize::is_invisible(c));
    if let Some(first) = chars.next() {
        out.push(first);
        out.extend(chars.map(|_| '*'));
    }
    out.push_str(domain);
}

/// Bytes of each message [`Masker::mask_across`] looks at around their
/// meeting point: far more than the longest item, even written with
/// separators and invisible characters between its digits.
const ACROSS_WINDOW: usize = 1024;

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary of `s` at or above `i` (`i <= s.len()`).
fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn masker_is_send_sync_clone() {
        assert_send_sync_clone::<Masker>();
    }

    #[test]
    fn an_item_split_over_two_messages_is_masked_in_both() {
        let m = Masker::default();
        assert_eq!(
            m.mask_across("ma carte 4111 1111", "1111 1111 merci"),
            Some(("ma carte ********".into(), "****1111 merci".into()))
        );
        assert_eq!(
            m.mask_across("06 12", "34 56 78"),
            Some(("****".into(), "**5678".into()))
        );
        // Nothing crosses: a number in each, or none.
        assert_eq!(m.mask_across("ma carte 4111", "merci"), None);
        assert_eq!(m.mask_across("le 12", "à 14h30"), None);
        assert_eq!(m.mask_across("", "4111 1111 1111 1111"), None);
        // Long messages: only their meeting point is read, and the rest of
        // each is kept (the new one masked as usual).
        let long_prev = format!("{}ma carte 4111 1111", "é blabla ".repeat(2_000));
        let long_next = format!(
            "1111 1111 merci {}",
            "et encore 4111111111111111 ".repeat(200)
        );
        let (before, after) = m.mask_across(&long_prev, &long_next).expect("found across");
        assert!(before.starts_with(&"é blabla ".repeat(2_000)));
        assert!(before.ends_with("blabla ma carte ********"));
        assert!(
            after.starts_with("****1111 merci et encore ************1111"),
            "{after:.60}"
        );
        assert!(!after.contains("4111111111111111"));
    }

    #[test]
    fn contract_examples() {
        let m = Masker::default();
        assert_eq!(m.mask("melissa@gmail.com"), "m******@gmail.com");
        assert_eq!(m.mask("+447966197542"), "*********7542");
        assert_eq!(m.mask("+ 1 (123) 456 7890"), "**********7890");
        assert_eq!(m.mask("4111 1111 1111 1111"), "************1111");
        assert_eq!(m.mask("123-45-6789"), "*******6789");
    }
}
