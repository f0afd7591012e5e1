//! Property tests of the masking engine: no panic on any input, text outside
//! the spans unchanged, spans rendered by the contract's rules, idempotence.

use proptest::prelude::*;
use switchboard_core::masking::{is_at_sign, is_invisible, Kind, Masker, Span};

/// Characters a rendering keeps: white space and invisible characters
/// (zero-width spaces, soft hyphens, …) are left out.
fn shown(c: &char) -> bool {
    !c.is_whitespace() && !is_invisible(*c)
}

/// The contract's number rule, written independently of the engine.
fn number_rule(item: &str) -> String {
    let kept: Vec<char> = item.chars().filter(shown).collect();
    let cut = kept.len().saturating_sub(4);
    kept.iter()
        .enumerate()
        .map(|(k, &c)| if k < cut { '*' } else { c })
        .collect()
}

/// The contract's e-mail rule.
fn email_rule(item: &str) -> String {
    let (local, domain) = item.split_at(item.find(is_at_sign).expect("an e-mail span holds an @"));
    let mut chars = local.chars().filter(|c| !is_invisible(*c));
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
            let at = item.find(is_at_sign).expect("@");
            assert!(
                r.starts_with(item.chars().find(|c| !is_invisible(*c)).expect("char")),
                "first char kept"
            );
            assert!(r.ends_with(&item[at..]), "domain kept");
            r
        } else {
            let r = number_rule(item);
            let tail: String = {
                let v: Vec<char> = item.chars().filter(shown).collect();
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

/// Digit zeros of some scripts customers type in: ASCII, full-width,
/// Arabic-Indic, Eastern Arabic-Indic, Devanagari, Bengali, Thai, Myanmar,
/// mathematical bold.
const SCRIPTS: &[u32] = &[
    0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1040, 0x1D7CE,
];
/// Separators between digit groups: Unicode spaces of every width, tabs,
/// double spaces, dashes of every kind, dots and slashes.
const NUMBER_SEPS: &[&str] = &[
    " ",
    "\u{a0}",
    "\u{202f}",
    "\u{2009}",
    "\u{2007}",
    "\u{3000}",
    "\t",
    "  ",
    "-",
    "\u{2010}",
    "\u{2011}",
    "\u{2013}",
    "\u{2212}",
    "\u{ff0d}",
    ".",
    "/",
    " - ",
    "\u{a0}-\u{a0}",
];
/// Separators phone numbers and IBANs are written with (spaces, dashes,
/// dots: any Unicode form of them).
const GROUP_SEPS: &[&str] = &[
    " ", "\u{a0}", "\u{202f}", "\u{2009}", "\u{3000}", "  ", "\t", "-", "\u{2011}", ".",
];
/// Characters that render as nothing.
const INVISIBLE: &[&str] = &[
    "\u{200b}", "\u{200c}", "\u{200d}", "\u{ad}", "\u{2060}", "\u{feff}", "\u{200e}", "\u{2063}",
];

/// What a disguised item is, and how it may be surrounded.
#[derive(Debug, Clone, Copy)]
struct ItemShape {
    kind: &'static str,
    /// Digit groups (a `+` or letters are kept as they are).
    groups: &'static [&'static str],
    /// May be glued to letters (`card4111…`).
    gluable: bool,
    /// Separators may differ between groups.
    mixed: bool,
    seps: &'static [&'static str],
}

const ITEMS: &[ItemShape] = &[
    ItemShape {
        kind: "card",
        groups: &["4111", "1111", "1111", "1111"],
        gluable: true,
        mixed: true,
        seps: NUMBER_SEPS,
    },
    ItemShape {
        kind: "card",
        groups: &["5555", "5555", "5555", "4444"],
        gluable: true,
        mixed: true,
        seps: NUMBER_SEPS,
    },
    ItemShape {
        kind: "card",
        groups: &["3782", "822463", "10005"],
        gluable: true,
        mixed: true,
        seps: NUMBER_SEPS,
    },
    ItemShape {
        kind: "card",
        groups: &["4917610000000000003"],
        gluable: true,
        mixed: true,
        seps: NUMBER_SEPS,
    },
    ItemShape {
        kind: "card",
        groups: &["6011", "1111", "1111", "1117"],
        gluable: true,
        mixed: true,
        seps: NUMBER_SEPS,
    },
    ItemShape {
        kind: "iban",
        groups: &["FR76", "3000", "6000", "0112", "3456", "7890", "189"],
        gluable: true,
        mixed: true,
        seps: GROUP_SEPS,
    },
    ItemShape {
        kind: "iban",
        groups: &["DE89", "3704", "0044", "0532", "0130", "00"],
        gluable: true,
        mixed: true,
        seps: GROUP_SEPS,
    },
    ItemShape {
        kind: "ssn",
        groups: &["123", "45", "6789"],
        gluable: false,
        mixed: true,
        seps: &[" ", "\u{a0}", "\u{202f}", "-", "\u{2011}", "."],
    },
    ItemShape {
        kind: "phone",
        groups: &["06", "12", "34", "56", "78"],
        gluable: false,
        mixed: false,
        seps: GROUP_SEPS,
    },
    ItemShape {
        kind: "phone",
        groups: &["+33", "6", "12", "34", "56", "78"],
        gluable: false,
        mixed: false,
        seps: &[" ", "\u{a0}", "\u{202f}", "\u{2009}"],
    },
    ItemShape {
        kind: "phone",
        groups: &["+44", "7966", "197542"],
        gluable: false,
        mixed: false,
        seps: &[" ", "\u{a0}", "\u{202f}", "-"],
    },
];

/// Writes `digits` in the script whose zero is `zero` (other characters
/// as they are).
fn in_script(digits: &str, zero: u32) -> String {
    digits
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(zero + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// A sensitive item written as customers really write it: random
/// separators, a random digit script (or one per group), invisible
/// characters between its characters, glued to letters when that is
/// allowed. Returns the text, the item's byte range in it, and its kind.
fn disguised() -> impl Strategy<Value = (String, usize, usize, &'static str)> {
    (
        prop::sample::select(ITEMS),
        prop::collection::vec((0..64usize, 0..SCRIPTS.len()), 8),
        prop::collection::vec((0..24usize, 0..INVISIBLE.len()), 0..4),
        0..5usize,
        prop::sample::select(vec![
            "",
            "Ma carte : ",
            "mon numéro ",
            "(",
            "n° ",
            "« ",
            "card ",
            "👍 ",
        ]),
        prop::sample::select(vec!["", " merci", ".", ")", " »", ", exp 12/26", " 🙂"]),
        prop::sample::select(vec!["card", "cc_", "iban", "x"]),
        prop::sample::select(vec!["end", "_x", "Merci"]),
        any::<bool>(),
    )
        .prop_map(
            |(shape, picks, invisible, mode, pre, post, glue_l, glue_r, glued)| {
                let sep_of = |k: usize| {
                    shape.seps[picks[if shape.mixed { k } else { 0 }].0 % shape.seps.len()]
                };
                let mut chars: Vec<String> = Vec::new();
                for (k, g) in shape.groups.iter().enumerate() {
                    if k > 0 {
                        chars.push(sep_of(k).to_owned());
                    }
                    // mode 0: ASCII; 1..=3: one script for all; 4: one per group.
                    let zero = match mode {
                        0 => 0x30,
                        4 => SCRIPTS[picks[k % picks.len()].1],
                        _ => SCRIPTS[picks[0].1],
                    };
                    chars.extend(in_script(g, zero).chars().map(String::from));
                }
                for (pos, which) in invisible {
                    // Only between two characters of the item.
                    let at = 1 + pos % (chars.len() - 1);
                    chars.insert(at, INVISIBLE[which].to_owned());
                }
                let item: String = chars.concat();
                // Glued to letters only without spaces inside (a decision of
                // `number::card`: masking removes the spaces and would join
                // the words around it).
                let gluable = shape.gluable && !item.chars().any(char::is_whitespace);
                let (pre, post) = if glued && gluable {
                    (glue_l, glue_r)
                } else {
                    (pre, post)
                };
                let text = format!("{pre}{item}{post}");
                (text, pre.len(), pre.len() + item.len(), shape.kind)
            },
        )
}

/// An e-mail address with invisible characters in its local part and a
/// full-width or small at sign.
fn disguised_email() -> impl Strategy<Value = (String, usize, usize)> {
    (
        "[a-z][a-z0-9._]{0,10}[a-z0-9]",
        prop::sample::select(vec!["@", "\u{ff20}", "\u{fe6b}"]),
        prop::sample::select(vec!["gmail.com", "orange.fr", "example.co.uk"]),
        prop::collection::vec((0..16usize, 0..INVISIBLE.len()), 0..3),
        prop::sample::select(vec!["", "écrivez à ", "mail: ", "("]),
        prop::sample::select(vec!["", ".", " merci", ")"]),
    )
        .prop_map(|(local, at, domain, invisible, pre, post)| {
            let mut local: Vec<String> = local.chars().map(String::from).collect();
            for (pos, which) in invisible {
                let k = 1 + pos % local.len();
                local.insert(k, INVISIBLE[which].to_owned());
            }
            let item = format!("{}{at}{domain}", local.concat());
            (
                format!("{pre}{item}{post}"),
                pre.len(),
                pre.len() + item.len(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Typography never dodges masking: the whole item, exactly, is found
    /// as its kind, and every invariant holds.
    #[test]
    fn disguised_items_are_found_whole((text, start, end, kind) in disguised()) {
        let m = Masker::default();
        let spans = m.find(&text);
        prop_assert!(
            spans.iter().any(|s| s.start == start && s.end == end && s.kind.as_str() == kind),
            "{kind} {:?} not found whole in {text:?}: {spans:?}", &text[start..end]
        );
        check_invariants(&m, &text);
    }

    #[test]
    fn disguised_addresses_are_found_whole((text, start, end) in disguised_email()) {
        let m = Masker::default();
        let spans = m.find(&text);
        prop_assert!(
            spans.iter().any(|s| s.start == start && s.end == end && s.kind == Kind::Email),
            "{:?} not found whole in {text:?}: {spans:?}", &text[start..end]
        );
        check_invariants(&m, &text);
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
fn regression_phone_after_a_hyphen_in_a_domain() {
    // `mail.fr-+4479…` is no domain (the label ends at the hyphen), but
    // once the phone was masked, `fr-*********7542.MMB` read as labels and
    // the second pass masked the address. A `*` after a hyphen now ends
    // the label as its `+` did.
    let m = Masker::default();
    check_invariants(&m, "jean.dupont+a@mail.fr-+447966197542.MMB.@o3--.mxc");
    check_invariants(&m, "jean@x.fr--+447966197542.com");
    check_invariants(&m, "jean@x.fr-4111111111111111.com");
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
