//! Property tests of the masking engine: no panic on any input, text outside
//! the spans unchanged, spans rendered by the contract's rules, idempotence.

use proptest::prelude::*;
use switchboard_core::masking::{Kind, Masker, Span};

/// The contract's number rule, written independently of the engine.
fn number_rule(item: &str) -> String {
    let kept: Vec<char> = item.chars().filter(|c| !c.is_whitespace()).collect();
    let cut = kept.len().saturating_sub(4);
    kept.iter()
        .enumerate()
        .map(|(k, &c)| if k < cut { '*' } else { c })
        .collect()
}

/// The contract's e-mail rule.
fn email_rule(item: &str) -> String {
    let (local, domain) = item.split_at(item.find('@').expect("an e-mail span holds an @"));
    let mut chars = local.chars();
    let first = chars.next().expect("non-empty local part");
    std::iter::once(first)
        .chain(chars.map(|_| '*'))
        .chain(domain.chars())
        .collect()
}

/// Checks every invariant on one input; panics (fails the property) if not.
fn check_invariants(masker: &Masker, text: &str) {
    let (masked, spans) = masker.mask_with_spans(text);
    assert_eq!(
        masker.find(text),
        spans,
        "find and mask_with_spans disagree"
    );
    assert_eq!(
        masker.mask(text),
        masked.as_str(),
        "mask and mask_with_spans disagree"
    );

    // Spans sorted, disjoint, non-empty, on char boundaries.
    let mut last = 0;
    for s in &spans {
        assert!(
            s.start >= last && s.start < s.end && s.end <= text.len(),
            "bad span {s:?}"
        );
        assert!(
            text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
            "{s:?}"
        );
        last = s.end;
    }

    // Text outside spans unchanged; each span rendered by its rule.
    let mut expected = String::new();
    let mut last = 0;
    for Span { start, end, kind } in &spans {
        expected.push_str(&text[last..*start]);
        let item = &text[*start..*end];
        let rendered = if *kind == Kind::Email {
            let r = email_rule(item);
            let at = item.find('@').expect("@");
            assert!(
                r.starts_with(item.chars().next().expect("char")),
                "first char kept"
            );
            assert!(r.ends_with(&item[at..]), "domain kept");
            r
        } else {
            let r = number_rule(item);
            let tail: String = {
                let v: Vec<char> = item.chars().filter(|c| !c.is_whitespace()).collect();
                v[v.len().saturating_sub(4)..].iter().collect()
            };
            assert!(r.ends_with(&tail), "{r:?} keeps the last four of {item:?}");
            r
        };
        expected.push_str(&rendered);
        last = *end;
    }
    expected.push_str(&text[last..]);
    assert_eq!(masked, expected, "input {text:?}");

    // Idempotent.
    let again = masker.mask(&masked);
    assert_eq!(again, masked.as_str(), "not idempotent on input {text:?}");
}

/// Pieces that exercise the detectors and their edges when glued together.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "4111 1111 1111 1111", "4111111111111111", "5555-5555-5555-4444", "378282246310005",
            "FR76 3000 6000 0112 3456 7890 189", "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32",
            "123-45-6789", "123 45 6789", "melissa@gmail.com", "x@y.fr", "jean.dupont+a@mail.fr",
            "+447966197542", "+ 1 (123) 456 7890", "+33 (0)6 12 34 56 78", "06 12 34 56 78",
            "0612345678", "(123) 456-7890", "123.456.7890", "07966 197542", "030/12345678",
            "612 34 56 78", "91 123 45 67", "0044 7966 197542", "1-800-555-0199", "12,99 €",
            "2024-03-15", "14h30", "1Z999AA10123456784", "************1111", "m******@gmail.com",
        ]).prop_map(str::to_owned),
        6 => prop::sample::select(vec![
            " ", " ", "-", ".", "/", ",", "(", ")", "+", "@", "*", "'", "_", "\n", "\t", "\u{a0}",
            "é", "😀", "a", "Z", "fr", "com", "0", "00", "1", "12", "123", "1234", "6789", "9",
        ]).prop_map(str::to_owned),
        2 => "[0-9]{1,20}",
        2 => "[0-9 .()+-]{1,24}",
        1 => "[a-zA-Z0-9._+-]{1,8}@[a-z0-9-]{1,6}\\.[a-z]{1,4}",
        1 => any::<String>(),
    ]
}

fn glued() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..12).prop_map(|v| v.concat())
}

proptest! {
    // Failures are pinned as explicit regression tests below, not in a file.
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_on_glued_fragments(text in glued()) {
        check_invariants(&Masker::default(), &text);
    }

    #[test]
    fn invariants_hold_on_any_string(text in any::<String>()) {
        check_invariants(&Masker::default(), &text);
    }

    #[test]
    fn invariants_hold_on_digit_soup(text in "[0-9 +().@a*-]{0,64}") {
        check_invariants(&Masker::default(), &text);
    }
}

/// Regressions found by the properties above, kept as plain tests.
#[test]
fn regression_number_after_hyphen_in_domain_is_stable() {
    // The TLD label went on with `-0100000000` before masking and with
    // `-******0000` after: it must not become an address on the second pass.
    check_invariants(&Masker::default(), "aa@a.aa-0100000000");
    check_invariants(&Masker::default(), "aa@a.aa.0612345678");
}

#[test]
fn regression_masked_local_part_starting_with_punctuation() {
    // `+*****` had no alphanumeric left, so the second pass took the next
    // address instead.
    check_invariants(&Masker::default(), "+jean.dupont+a@mail.fra@0.aa.");
}

#[test]
fn regression_item_followed_by_a_longer_digit_run_or_another_item() {
    // A phone or an SSN used to need the whole run of digit groups: once a
    // card after it was masked, the second pass found it.
    let m = Masker::default();
    check_invariants(&m, "123.456.7890 4111111111111111+3.75555-5555-5555-4444");
    check_invariants(&m, "06 12 34 56 78 4111 1111 1111 1111");
    check_invariants(&m, "123 45 6789 4111 1111 1111 1111");
}

#[test]
fn regression_number_running_into_an_address() {
    // The phone won over the address `7890+x@y.fr`; the second pass found
    // the address again starting in the phone's last four. Addresses win.
    let m = Masker::default();
    check_invariants(&m, "+ 1 (123) 456 7890+x@y.fr.");
    assert_eq!(
        m.mask("+ 1 (123) 456 7890+x@y.fr."),
        "+ 1 (123) 456 7*****@y.fr."
    );
}

#[test]
fn regression_iban_running_into_an_address() {
    // The IBAN lost to the address `189-@a.aa` and its digit groups had
    // been skipped; the second pass found a card among them.
    let m = Masker::default();
    check_invariants(&m, "FR76 3000 6000 0112 3456 7890 189-@a.aa.");
    check_invariants(&m, "FR76 3000 6000 0112 3456 7890 189+A@0.aa");
    check_invariants(&m, "FR76 3000 6000 0112 3456 7890 188-@a.aa.");
}

#[test]
fn regression_overlapping_addresses_compare_in_characters() {
    // `a𐠿_AaA@0.aa` beat `0.aa@00.aaaa` by bytes, but once masked its
    // four-byte letter was a one-byte `*` and it lost on the second pass.
    check_invariants(&Masker::default(), "a𐠿_AaA@0.aa@00.aaaa");
}
