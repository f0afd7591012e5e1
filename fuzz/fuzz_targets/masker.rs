//! Fuzz target for the masking engine: `cargo +nightly fuzz run masker`.
//!
//! Asserts, for any UTF-8 input: no panic; spans sorted, disjoint, on char
//! boundaries; the text outside the spans copied unchanged; each span
//! rendered by its rule (number rule: white space dropped, last four kept;
//! e-mail: first character and domain kept, same number of characters);
//! and idempotence (`mask(mask(x)) == mask(x)`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::masking::{Kind, Masker};

fn number_rule(item: &str) -> String {
    let kept: Vec<char> = item.chars().filter(|c| !c.is_whitespace()).collect();
    let cut = kept.len().saturating_sub(4);
    kept.iter()
        .enumerate()
        .map(|(k, &c)| if k < cut { '*' } else { c })
        .collect()
}

fn email_rule(item: &str) -> String {
    let at = item.find('@').expect("an e-mail span holds an @");
    let (local, domain) = item.split_at(at);
    let mut chars = local.chars();
    let first = chars.next().expect("non-empty local part");
    std::iter::once(first)
        .chain(chars.map(|_| '*'))
        .chain(domain.chars())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let masker = Masker::default();
    let (masked, spans) = masker.mask_with_spans(text);
    assert_eq!(masker.mask(text), masked.as_str());

    let mut expected = String::with_capacity(text.len());
    let mut last = 0;
    for s in &spans {
        assert!(last <= s.start && s.start < s.end && s.end <= text.len());
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        expected.push_str(&text[last..s.start]);
        let item = &text[s.start..s.end];
        expected.push_str(&if s.kind == Kind::Email {
            email_rule(item)
        } else {
            number_rule(item)
        });
        last = s.end;
    }
    expected.push_str(&text[last..]);
    assert_eq!(
        masked, expected,
        "text outside the spans changed or bad rendering"
    );

    assert_eq!(masker.mask(&masked), masked.as_str(), "not idempotent");
});
