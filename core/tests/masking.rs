//! Masking: the data-driven table (`masking_cases.txt`), spans and offsets,
//! tenant patterns and the JSON form of spans.

use std::borrow::Cow;

use switchboard_core::masking::{Kind, MaskError, Masker, Span, TenantPattern};

/// Masks `input` with the default detectors and compares with `expected`;
/// also checks that masking is idempotent and that an unchanged message is
/// returned borrowed. Returns a description of the failure, if any.
fn check(masker: &Masker, input: &str, expected: &str) -> Result<(), String> {
    let got = masker.mask(input);
    if got != expected {
        return Err(format!(
            "mask({input:?})\n   got: {got:?}\n  want: {expected:?}"
        ));
    }
    if input == expected && matches!(got, Cow::Owned(_)) {
        return Err(format!("mask({input:?}) is unchanged but not borrowed"));
    }
    let again = masker.mask(&got);
    if again != got {
        return Err(format!("not idempotent on {input:?}: {got:?} -> {again:?}"));
    }
    let (with_spans, spans) = masker.mask_with_spans(input);
    if with_spans != expected {
        return Err(format!("mask_with_spans({input:?}) = {with_spans:?}"));
    }
    if spans != masker.find(input) {
        return Err(format!("find and mask_with_spans disagree on {input:?}"));
    }
    Ok(())
}

#[test]
fn table_of_cases() {
    let masker = Masker::default();
    let table = include_str!("masking_cases.txt");
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in table.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((input, expected)) = line.split_once('\t') else {
            failures.push(format!("line {}: no tab: {line:?}", n + 1));
            continue;
        };
        count += 1;
        if let Err(e) = check(&masker, input, expected) {
            failures.push(format!("line {}: {e}", n + 1));
        }
    }
    assert!(count > 150, "only {count} cases read");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn seed_cases_are_all_in_the_table() {
    let table = include_str!("masking_cases.txt");
    let seed = [
        "+ 1 (123) 456 7890\t**********7890",
        "+447966197542\t*********7542",
        "melissa@gmail.com\tm******@gmail.com",
        "4111 1111 1111 1111\t************1111",
        "123-45-6789\t*******6789",
        "my card 4111 1111 1111 1111 and melissa@gmail.com\tmy card ************1111 and m******@gmail.com",
        "4111 1111 1111 1112\t4111 1111 1111 1112",
        "000-12-3456\t000-12-3456",
    ];
    for row in seed {
        assert!(table.lines().any(|l| l == row), "seed row missing: {row:?}");
    }
}

fn span(start: usize, end: usize, kind: Kind) -> Span {
    Span { start, end, kind }
}

#[test]
fn spans_have_kinds_and_byte_offsets() {
    let m = Masker::default();
    let text = "my card 4111 1111 1111 1111 and melissa@gmail.com";
    assert_eq!(
        m.find(text),
        vec![span(8, 27, Kind::Card), span(32, 49, Kind::Email)]
    );
    assert_eq!(m.find("+447966197542"), vec![span(0, 13, Kind::Phone)]);
    assert_eq!(m.find("SSN 123-45-6789."), vec![span(4, 15, Kind::Ssn)]);
    assert_eq!(
        m.find("IBAN DE89 3704 0044 0532 0130 00!"),
        vec![span(5, 32, Kind::Iban)]
    );
    // The leading `+ ` and the parentheses belong to the phone span.
    assert_eq!(
        m.find("tel + 1 (123) 456 7890"),
        vec![span(4, 22, Kind::Phone)]
    );
    assert_eq!(m.find("(123) 456-7890"), vec![span(0, 14, Kind::Phone)]);
    assert!(m.find("nothing here, 14h30, 12,99 €").is_empty());
}

#[test]
fn span_offsets_are_bytes_on_char_boundaries() {
    let m = Masker::default();
    let text = "Écrivez à élodie@exemple.fr 👍 ou au 06 12 34 56 78 ☎";
    let spans = m.find(text);
    assert_eq!(spans.len(), 2);
    assert_eq!(&text[spans[0].start..spans[0].end], "élodie@exemple.fr");
    assert_eq!(spans[0].kind, Kind::Email);
    assert_eq!(&text[spans[1].start..spans[1].end], "06 12 34 56 78");
    assert_eq!(spans[1].kind, Kind::Phone);
    for s in &spans {
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    let (masked, with) = m.mask_with_spans(text);
    assert_eq!(with, spans);
    assert_eq!(masked, "Écrivez à é*****@exemple.fr 👍 ou au ******5678 ☎");
}

#[test]
fn mask_with_spans_reports_offsets_into_the_input() {
    let m = Masker::default();
    let text = "a 4111 1111 1111 1111 b 123-45-6789 c";
    let (masked, spans) = m.mask_with_spans(text);
    assert_eq!(masked, "a ************1111 b *******6789 c");
    assert_eq!(
        spans,
        vec![span(2, 21, Kind::Card), span(24, 35, Kind::Ssn)]
    );
}

#[test]
fn overlaps_prefer_longest_then_most_specific() {
    let m = Masker::default();
    // A phone number inside an e-mail local part: the e-mail wins.
    assert_eq!(
        m.find("0612345678.x@sfr.fr"),
        vec![span(0, 19, Kind::Email)]
    );
    // A card and an SSN never share bytes; spans are sorted.
    let spans = m.find("123-45-6789 4111111111111111");
    assert_eq!(
        spans,
        vec![span(0, 11, Kind::Ssn), span(12, 28, Kind::Card)]
    );
}

#[test]
fn clean_text_is_borrowed_and_fast_path_agrees() {
    let m = Masker::default();
    for text in [
        "Bonjour, je voudrais de l'aide 🙂",
        "",
        "pas de chiffres ici",
    ] {
        assert!(m.is_clean_fast(text));
        assert!(matches!(m.mask(text), Cow::Borrowed(_)));
    }
    assert!(!m.is_clean_fast("rappel à 14h30"));
    assert!(matches!(m.mask("rappel à 14h30"), Cow::Borrowed(_)));
}

#[test]
fn span_serializes_with_kind_as_string() {
    let s = span(3, 9, Kind::Custom("loyalty".into()));
    let json = serde_json::to_value(&s).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"start": 3, "end": 9, "kind": "loyalty"})
    );
    let json = serde_json::to_string(&span(0, 13, Kind::Phone)).expect("serializes");
    assert_eq!(json, r#"{"start":0,"end":13,"kind":"phone"}"#);
}

fn pattern(name: &str, regex: &str) -> TenantPattern {
    TenantPattern {
        name: name.into(),
        regex: regex.into(),
    }
}

#[test]
fn tenant_patterns_use_the_number_rule_and_their_name() {
    let m = Masker::new(&[pattern("loyalty", r"\bLOY-\d{8}\b")]).expect("compiles");
    let text = "Carte fidélité LOY-12345678, mail melissa@gmail.com";
    let (masked, spans) = m.mask_with_spans(text);
    assert_eq!(
        masked,
        "Carte fidélité ********5678, mail m******@gmail.com"
    );
    assert_eq!(spans[0].kind, Kind::Custom("loyalty".into()));
    assert_eq!(spans[0].kind.as_str(), "loyalty");
    assert_eq!(&text[spans[0].start..spans[0].end], "LOY-12345678");
    assert_eq!(spans[1].kind, Kind::Email);
    // Masked once, left as it is.
    assert_eq!(m.mask(&masked), masked);
    // A tenant pattern may match text without digits, so no fast path.
    assert!(!m.is_clean_fast("no digits"));
}

#[test]
fn tenant_pattern_white_space_is_removed() {
    let m = Masker::new(&[pattern("member", r"MB \d{3} \d{3}")]).expect("compiles");
    assert_eq!(m.mask("id MB 123 456."), "id ****3456.");
}

#[test]
fn tenant_pattern_overlapping_a_builtin_item() {
    // The longer item wins; same length: the built-in card is preferred.
    let m = Masker::new(&[
        pattern("acct", r"\d{4} \d{4}"),
        pattern("card16", r"4111 1111 1111 1111"),
    ])
    .expect("compiles");
    let spans = m.find("4111 1111 1111 1111");
    assert_eq!(spans, vec![span(0, 19, Kind::Card)]);
}

#[test]
fn tenant_pattern_empty_matches_are_ignored() {
    let m = Masker::new(&[pattern("empty", r"x*")]).expect("compiles");
    assert_eq!(m.mask("abc"), "abc");
    assert_eq!(m.mask("axxxxxb"), "a*xxxxb");
}

#[test]
fn bad_tenant_regex_is_an_error_naming_the_pattern() {
    let err = Masker::new(&[pattern("ok", r"\d+"), pattern("broken", r"(unclosed")])
        .expect_err("bad regex");
    let MaskError::BadPattern { name, message } = &err;
    assert_eq!(name, "broken");
    assert!(!message.is_empty());
    assert!(err.to_string().contains("\"broken\""), "{err}");
    let err = Masker::new(&[pattern("", r"\d+")]).expect_err("empty name");
    assert!(matches!(err, MaskError::BadPattern { .. }));
}

#[test]
fn masker_is_cheap_to_share_across_threads() {
    let m = Masker::new(&[pattern("loyalty", r"LOY\d{6}")]).expect("compiles");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || m.mask(&format!("LOY12345{i} +447966197542")).into_owned())
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            h.join().expect("thread"),
            format!("*****345{i} *********7542")
        );
    }
}
