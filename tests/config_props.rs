//! Configuration loading never panics: arbitrary text and mutations of the
//! demo configuration give a configuration or a clear error. (The same
//! property as the `config` cargo-fuzz target, run in CI.)

use proptest::prelude::*;
use switchboard::config::{Config, DEMO};

#[test]
fn the_demo_configuration_is_valid() {
    let cfg = Config::from_toml_str(DEMO).expect("demo config");
    assert_eq!(cfg.tenants[0].id, "demo");
}

#[test]
fn invalid_configurations_name_the_problem() {
    let bad_queue = DEMO.replace("default_queue = \"support\"", "default_queue = \"nowhere\"");
    let err = format!(
        "{:#}",
        Config::from_toml_str(&bad_queue).expect_err("refused")
    );
    assert!(
        err.contains("default_queue") && err.contains("nowhere"),
        "{err}"
    );
    let bad_pattern =
        format!("{DEMO}\n[[tenants.mask_patterns]]\nname = \"policy\"\nregex = \"(unclosed\"\n");
    let err = format!(
        "{:#}",
        Config::from_toml_str(&bad_pattern).expect_err("refused")
    );
    assert!(err.contains("policy"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = Config::from_toml_str(&text);
    }

    #[test]
    fn mutated_demo_never_panics(cut in 0usize..2000, insert in "[\\[\\]=\"a-z0-9 \\n.#]{0,12}") {
        let mut s = DEMO.to_string();
        let mut at = cut.min(s.len());
        while !s.is_char_boundary(at) { at -= 1; }
        s.insert_str(at, &insert);
        let _ = Config::from_toml_str(&s);
    }
}
